"""The REST API and the process around it.

create_app(settings) is also the in-process entry point for end-to-end tests:
its lifespan opens the database (creating the schema), the service channels,
and starts the worker; leaving it stops the worker (analyses in flight go back
to the queue) and closes everything.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from sqlalchemy.exc import DBAPIError

from raddiff_kit.images import ImageStore
from raddiff_kit.settings import SharedSettings, load_settings
from raddiff_orchestrator.agent.config import LLM_METHODS
from raddiff_orchestrator.agent.embeddings import EmbeddingCache
from raddiff_orchestrator.agent.pipeline import PipelineOptions
from raddiff_orchestrator.clients import ServiceClients
from raddiff_orchestrator.inputs import InputProblem, InputResolver, Limits
from raddiff_orchestrator.metrics import SUBMITTED, StatusCounts, exposition
from raddiff_orchestrator.report.routes import router as report_router
from raddiff_orchestrator.runner import AgentRunner
from raddiff_orchestrator.schemas import Accepted, AnalysisCreate, AnalysisPage, AnalysisSummary, AnalysisView, Status
from raddiff_orchestrator.settings import OrchestratorSettings, ServiceTargets
from raddiff_orchestrator.store import (
    AnalysisFinished,
    AnalysisNotFound,
    AnalysisRecord,
    AnalysisStore,
    DatabaseVectorStore,
)
from raddiff_orchestrator.worker import AnalysisRunner, Worker, WorkerOptions


@dataclass
class Orchestrator:
    """What the routes need, built by the lifespan."""

    settings: OrchestratorSettings
    store: AnalysisStore
    resolver: InputResolver
    clients: ServiceClients
    worker: Worker | None
    registry: CollectorRegistry


def create_app(
    settings: OrchestratorSettings | None = None,
    *,
    shared: SharedSettings | None = None,
    targets: ServiceTargets | None = None,
    runner: AnalysisRunner | None = None,
    serve_api: bool = True,
    run_worker: bool | None = None,
) -> FastAPI:
    """The orchestrator as an ASGI app.

    settings, shared, targets: read from the environment when not given.
    runner: what runs an analysis; default the agent over the configured services.
    serve_api: False leaves only /healthz, /readyz and /metrics (a worker-only replica).
    run_worker: default settings.worker_concurrency > 0.
    """
    settings = settings or load_settings(OrchestratorSettings)
    shared = shared or load_settings(SharedSettings)
    targets = targets or load_settings(ServiceTargets)
    with_worker = settings.worker_concurrency > 0 if run_worker is None else run_worker
    if with_worker and settings.worker_concurrency < 1:
        raise ValueError("a worker needs RADDIFF_ORCH_WORKER_CONCURRENCY of at least 1")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = AnalysisStore(settings.resolved_database_url())
        await asyncio.to_thread(store.create_schema)
        clients = ServiceClients(targets.configured(), settings.call_timeout_seconds, settings.llm_model)
        limits = Limits(
            max_images_per_set=settings.max_images_per_set,
            max_rank_images_per_set=settings.max_rank_images_per_set,
            max_manifest_bytes=settings.max_manifest_bytes,
            validation_threads=settings.validation_threads,
        )
        registry = CollectorRegistry()
        registry.register(StatusCounts(store.count_by_status))
        worker = None
        if with_worker:
            options = PipelineOptions(
                caption_concurrency=settings.caption_concurrency,
                caption_max_tokens=settings.caption_max_tokens,
                embed_batch_size=settings.embed_batch_size,
            )
            vectors = DatabaseVectorStore(store.engine) if settings.embedding_cache_in_database else None
            cache = EmbeddingCache(vectors, settings.embedding_cache_items)
            worker = Worker(
                store,
                runner or AgentRunner(clients.models(), options, cache),
                WorkerOptions(
                    owner=settings.resolved_worker_id(),
                    concurrency=settings.worker_concurrency,
                    lease_seconds=settings.lease_seconds,
                    heartbeat_seconds=settings.heartbeat_seconds,
                    poll_seconds=settings.poll_seconds,
                    max_attempts=settings.max_attempts,
                ),
            )
            worker.start()
        resolver = InputResolver(ImageStore(shared.root_paths(), shared.scratch_dir), limits)
        app.state.orchestrator = Orchestrator(settings, store, resolver, clients, worker, registry)
        try:
            yield
        finally:
            if worker is not None:
                await worker.stop()
            await clients.close()
            store.dispose()

    app = FastAPI(
        title="RadDiff orchestrator",
        version="0.1.0",
        description="Finds, in radiology language, what distinguishes chest X-ray set A from set B.",
        lifespan=lifespan,
    )
    app.add_exception_handler(InputProblem, _input_problem)
    app.add_exception_handler(DBAPIError, _database_down)
    app.include_router(ops)
    if serve_api:
        app.include_router(api)
        app.include_router(report_router)
    return app


def _orchestrator(request: Request) -> Orchestrator:
    return request.app.state.orchestrator


Orch = Annotated[Orchestrator, Depends(_orchestrator)]


async def _input_problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputProblem)
    body: dict[str, Any] = {"detail": exc.message}
    if exc.problems:
        body["problems"] = exc.problems
    return JSONResponse(body, status_code=exc.status)


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"the database is unavailable: {type(exc).__name__}"}, status_code=503)


# -- views ----------------------------------------------------------------------------------
def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


def _summary_fields(record: AnalysisRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "status": record.status,
        "stage": record.stage,
        "progress": record.progress,
        "cancel_requested": record.cancel_requested,
        "sets": record.summary,
        "attempts": record.attempts,
        "created_at": _iso(record.created_at),
        "updated_at": _iso(record.updated_at),
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
        "error": record.error,
    }


def _view(record: AnalysisRecord) -> AnalysisView:
    task = record.task or {}
    return AnalysisView(
        **_summary_fields(record),
        ground_truth=task.get("ground_truth"),
        config=task.get("config", {}),
        results=record.result,
    )


def _encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": seq}).encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        seq = data["before"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError
        return seq
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise InputProblem(400, "page_token is not a token this API returned") from None


# -- the API ---------------------------------------------------------------------------------
api = APIRouter(prefix="/v1", tags=["analyses"])


@api.post("/analyses", status_code=202, response_model=Accepted)
async def submit_analysis(body: AnalysisCreate, orch: Orch, response: Response) -> Accepted:
    """Validate the two sets (every image is decoded) and queue the analysis."""
    if orch.clients.client("llm") is None:
        config = body.config
        if config.proposer.method in LLM_METHODS:
            raise InputProblem(
                422,
                f"config.proposer.method is {config.proposer.method!r} but no LLM is configured (RADDIFF_LLM_TARGET)",
            )
        if config.dedup.method == "llm":
            raise InputProblem(422, "config.dedup.method is 'llm' but no LLM is configured (RADDIFF_LLM_TARGET)")
    task = await asyncio.to_thread(orch.resolver.resolve, body)
    summary = {
        "a": {"name": task.set_a.name, "images": len(task.set_a.uris)},
        "b": {"name": task.set_b.name, "images": len(task.set_b.uris)},
    }
    record = await asyncio.to_thread(orch.store.submit, task.to_json(), summary, body.name)
    SUBMITTED.inc()
    if orch.worker is not None:
        orch.worker.notify()
    url = f"/v1/analyses/{record.id}"
    response.headers["Location"] = url
    return Accepted(id=record.id, status=record.status, url=url)


@api.get("/analyses/{analysis_id}", response_model=AnalysisView)
async def get_analysis(analysis_id: str, orch: Orch) -> AnalysisView:
    return _view(await _fetch(orch, analysis_id))


async def _fetch(orch: Orchestrator, analysis_id: str) -> AnalysisRecord:
    try:
        return await asyncio.to_thread(orch.store.get, analysis_id)
    except AnalysisNotFound:
        raise InputProblem(404, f"no analysis has id {analysis_id!r}") from None


@api.get("/analyses", response_model=AnalysisPage)
async def list_analyses(
    orch: Orch,
    page_size: Annotated[int | None, Query(ge=1, description="default 20")] = None,
    page_token: Annotated[str | None, Query(description="next_page_token of the previous page")] = None,
    status: Status | None = None,
) -> AnalysisPage:
    """Newest first."""
    size = page_size or orch.settings.page_size_default
    if size > orch.settings.page_size_max:
        raise InputProblem(422, f"page_size {size} is over the maximum of {orch.settings.page_size_max}")
    before = _decode_token(page_token) if page_token else None
    records, next_seq = await asyncio.to_thread(orch.store.list_page, size, before, status)
    return AnalysisPage(
        analyses=[AnalysisSummary(**_summary_fields(r)) for r in records],
        next_page_token=_encode_token(next_seq) if next_seq is not None else None,
    )


@api.delete("/analyses/{analysis_id}", status_code=202, response_model=AnalysisView)
async def cancel_analysis(analysis_id: str, orch: Orch) -> AnalysisView:
    """Cancel: a queued analysis at once, a running one at its next step (cancel_requested until then)."""
    try:
        record = await asyncio.to_thread(orch.store.request_cancel, analysis_id)
    except AnalysisNotFound:
        raise InputProblem(404, f"no analysis has id {analysis_id!r}") from None
    except AnalysisFinished as exc:
        raise InputProblem(409, str(exc)) from None
    return _view(record)


# -- operations --------------------------------------------------------------------------------
ops = APIRouter(tags=["operations"])


@ops.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@ops.get("/readyz")
async def readyz(orch: Orch) -> JSONResponse:
    """The database answers and every configured service's health check says SERVING."""
    try:
        await asyncio.to_thread(orch.store.ping)
        database = "ok"
    except DBAPIError as exc:
        database = f"unavailable: {type(exc).__name__}"
    services = await orch.clients.health(orch.settings.health_timeout_seconds)
    ready = database == "ok" and all(s == "SERVING" for s in services.values())
    body = {"ready": ready, "database": database, "services": services}
    return JSONResponse(body, status_code=200 if ready else 503)


@ops.get("/metrics")
async def metrics(orch: Orch) -> Response:
    payload = await asyncio.to_thread(exposition, orch.registry)
    return Response(payload, media_type=CONTENT_TYPE_LATEST)
