"""RadDiff's orchestrator: REST API, persistence, worker and agent.

In-process entry point: raddiff_orchestrator.app.create_app(settings) returns
the FastAPI app; its lifespan opens the database and the service channels and
starts the worker.
"""
