"""GET /v1/analyses/{id}/report (the HTML evidence report) and GET /v1/analyses/{id}/images/{n} (the
images it shows, as thumbnails). Included by raddiff_orchestrator.app beside the JSON API."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from raddiff_kit.errors import ServiceError
from raddiff_orchestrator.inputs import InputProblem
from raddiff_orchestrator.report.images import analysis_images, thumbnail
from raddiff_orchestrator.report.render import render_report, render_status
from raddiff_orchestrator.store import AnalysisNotFound, AnalysisRecord

router = APIRouter(prefix="/v1", tags=["reports"])

# A page about an analysis still queued or running reloads itself this often (seconds).
PENDING_REFRESH_S = 10


async def _record(request: Request, analysis_id: str) -> AnalysisRecord | None:
    orch = request.app.state.orchestrator
    try:
        return await asyncio.to_thread(orch.store.get, analysis_id)
    except AnalysisNotFound:
        return None


@router.get(
    "/analyses/{analysis_id}/report",
    response_class=HTMLResponse,
    responses={404: {"description": "no analysis has this id"}, 409: {"description": "the analysis has no result"}},
)
async def analysis_report(analysis_id: str, request: Request) -> HTMLResponse:
    """The evidence report of a finished analysis, as one HTML page (no script)."""
    record = await _record(request, analysis_id)
    if record is None:
        page = render_status("No such analysis", f"No analysis has the id {analysis_id!r}.")
        return HTMLResponse(page, status_code=404)
    if record.status != "succeeded" or record.result is None:
        return HTMLResponse(_no_report_page(record), status_code=409)
    return HTMLResponse(await asyncio.to_thread(render_report, record))


def _no_report_page(record: AnalysisRecord) -> str:
    name = record.name or f"Analysis {record.id}"
    if record.status in ("queued", "running"):
        stage = f"now at “{record.stage}”, {record.progress:.0%} done" if record.status == "running" else "waiting"
        return render_status(
            "The report is not ready yet",
            f"This analysis is {record.status} ({stage}). Its evidence report appears here when it has finished.",
            name,
            refresh=PENDING_REFRESH_S,
        )
    if record.status == "failed":
        error = record.error or "not recorded"
        return render_status("This analysis failed", f"It has no evidence report. What went wrong: {error}", name)
    return render_status(
        "This analysis was cancelled", "It stopped before it finished, so it has no evidence report.", name
    )


@router.get(
    "/analyses/{analysis_id}/images/{n}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no such analysis or image"}},
)
async def analysis_image(
    analysis_id: str,
    n: Annotated[int, Path(ge=0, description="the image's place in the analysis's image list")],
    request: Request,
    size: Annotated[int, Query(ge=16, le=2048, description="longest side of the thumbnail, in pixels")] = 256,
) -> Response:
    """An image the analysis may show: its inputs (set A, then B) and the grids and crops its result names."""
    record = await _record(request, analysis_id)
    if record is None:
        raise InputProblem(404, f"no analysis has id {analysis_id!r}")
    uris = analysis_images(record.task, record.result)
    if n >= len(uris):
        raise InputProblem(404, f"analysis {analysis_id!r} has {len(uris)} images; there is no image {n}")
    store = request.app.state.orchestrator.resolver.images
    try:
        data = await asyncio.to_thread(thumbnail, store, uris[n], size)
    except ServiceError as exc:
        message = f"image {n} of analysis {analysis_id!r} cannot be read any more: {exc.message}"
        raise InputProblem(404, message) from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
