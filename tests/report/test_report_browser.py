"""The report in a real browser: headless Chromium opens it from 127.0.0.1, loads its images from the
orchestrator, and draws a page that is not blank. Skipped, with the reason, where Chromium is absent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi import Request, Response
from PIL import Image

from raddiff_kit.settings import SharedSettings
from raddiff_orchestrator.app import create_app
from raddiff_orchestrator.settings import OrchestratorSettings, ServiceTargets
from tests.report.browser import find_chromium, screenshot, serve
from tests.report.conftest import Analyses

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install -y chromium)"
)

SET_A_COLOUR = np.array([0xD5, 0x5E, 0x00])  # the report's set A vermillion
HEADER_COLOUR = np.array([0x14, 0x21, 0x3D])


def test_chromium_draws_the_report_with_its_images(analyses: Analyses, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    orch = analyses.client.app.state.orchestrator  # type: ignore[attr-defined]
    images = orch.resolver.images
    app = create_app(
        OrchestratorSettings(database_url=orch.settings.database_url, worker_concurrency=0),
        shared=SharedSettings(data_roots=":".join(str(r) for r in images.roots), scratch_dir=images.scratch_dir),
        targets=ServiceTargets(),
        run_worker=False,
    )
    seen: list[str] = []

    @app.middleware("http")
    async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        seen.append(f"{request.method} {request.url.path} {response.status_code}")
        return response

    out = tmp_path / "report.png"
    with serve(app) as base:
        screenshot(CHROMIUM, f"{base}/v1/analyses/{analyses.finished}/report", out)

    assert f"GET /v1/analyses/{analyses.finished}/report 200" in seen
    served = [p for p in seen if "/images/" in p]
    assert served and all(p.endswith(" 200") for p in served), seen

    pixels = np.asarray(Image.open(out).convert("RGB"), dtype=np.int16)
    assert pixels.shape == (2400, 1280, 3)
    assert pixels.std() > 30, "the screenshot is nearly one colour"
    near = lambda colour: int((np.abs(pixels - colour).max(axis=2) <= 12).sum())  # noqa: E731
    assert near(HEADER_COLOUR) > 50_000  # the header band
    assert near(SET_A_COLOUR) > 1_000  # chips, bars, plots and thumbnail borders in set A's colour
