"""raddiff-orchestrator [serve|worker|migrate|analyze]

serve    the REST API on RADDIFF_ORCH_PORT, with RADDIFF_ORCH_WORKER_CONCURRENCY worker slots (0: API only)
worker   a worker-only replica (health, readiness and metrics on the same port)
migrate  create the database schema and exit
analyze  one analysis from a YAML config, here or on a running orchestrator (analyze --help)
"""

from __future__ import annotations

import argparse

import uvicorn

from raddiff_kit.logs import configure_logging
from raddiff_kit.settings import SharedSettings, load_settings
from raddiff_orchestrator import cli
from raddiff_orchestrator.app import create_app
from raddiff_orchestrator.settings import OrchestratorSettings
from raddiff_orchestrator.store import AnalysisStore


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="raddiff-orchestrator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command")
    for name in ("serve", "worker", "migrate"):
        commands.add_parser(name)
    analyze = commands.add_parser(
        "analyze", description=cli.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_arguments(analyze)
    args = parser.parse_args(argv)
    args.command = args.command or "serve"
    if args.command == "analyze":
        raise SystemExit(cli.analyze(args))
    shared = load_settings(SharedSettings)
    configure_logging(shared.log_level)
    settings = load_settings(OrchestratorSettings)
    if args.command == "migrate":
        store = AnalysisStore(settings.resolved_database_url())
        store.create_schema()
        store.dispose()
        print(f"schema ready ({store.dialect})")
        return
    if args.command == "worker" and settings.worker_concurrency < 1:
        raise SystemExit("raddiff-orchestrator worker needs RADDIFF_ORCH_WORKER_CONCURRENCY of at least 1")
    app = create_app(settings, shared=shared, serve_api=args.command == "serve")
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
