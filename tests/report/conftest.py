"""Fixtures: a data root of small radiograph-like images, a scratch store holding a zoom grid and its crops,
and an orchestrator (SQLite, no worker) whose store holds analyses in each state, the finished one with a
result built from the agent's own result types (raddiff_orchestrator.agent.results)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from raddiff_kit.images import ImageStore
from raddiff_kit.settings import SharedSettings
from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.results import (
    AnalysisResult,
    BoxOut,
    Evaluation,
    FindingResult,
    Histogram,
    ImageScore,
    IterationResult,
    ProposalRound,
    RankedBrief,
    VisualSearch,
)
from raddiff_orchestrator.app import create_app
from raddiff_orchestrator.settings import OrchestratorSettings, ServiceTargets
from raddiff_orchestrator.store import AnalysisStore

FINDINGS = [
    "moderate right pleural effusion",
    "blunting of the right costophrenic angle",
    "<script>alert('x')</script> opacity",  # free text from a model: must be shown as text
]
AUROCS = [0.861, 0.702, 0.55]


def radiograph(seed: int, effusion: bool, size: tuple[int, int] = (240, 256)) -> Image.Image:
    """Two dark lungs in a gray body; with effusion, the right lung's base (viewer's left) is white."""
    rng = np.random.default_rng(seed)
    width, height = size
    image = Image.fromarray(rng.normal(150, 10, (height, width)).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.12, height * 0.12, width * 0.46, height * 0.85), fill=40)
    draw.ellipse((width * 0.54, height * 0.12, width * 0.88, height * 0.85), fill=45)
    if effusion:
        draw.rectangle((width * 0.12, height * 0.62, width * 0.46, height * 0.85), fill=215)
    return image


@dataclass
class Analyses:
    client: TestClient
    store: AnalysisStore
    images: ImageStore
    finished: str  # succeeded, with the result below
    result: dict[str, Any]
    queued: str
    running: str
    failed: str
    cancelled: str
    set_a: list[str]
    set_b: list[str]
    zoom_grid: str
    stray_scratch: str  # in the scratch store, but named by no analysis


def _histogram(a: np.ndarray, b: np.ndarray, bins: int = 12) -> Histogram:
    edges = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), bins + 1)
    return Histogram(
        edges.tolist(), np.histogram(a, edges)[0].tolist(), np.histogram(b, edges)[0].tolist()
    )


def build_result(set_a: list[str], set_b: list[str], zoom_grid: str, crops: list[str]) -> dict[str, Any]:
    """A two-iteration result in the agent's own types; scores drawn so each finding's AUROC is about right."""
    rng = np.random.default_rng(4)
    search = VisualSearch(
        finding=FINDINGS[0],
        auroc=0.84,
        box=BoxOut(0.1, 0.55, 0.5, 0.9),
        backend="model",
        grid_uri=zoom_grid,
        crop_uris={"a": crops[: len(crops) // 2], "b": crops[len(crops) // 2 :]},
    )
    findings = []
    for rank, (text, auroc) in enumerate(zip(FINDINGS, AUROCS, strict=True), 1):
        shift = 0.02 * (auroc - 0.5) * 10
        a, b = rng.normal(0.25 + shift, 0.02, len(set_a)), rng.normal(0.25, 0.02, len(set_b))
        order = sorted([(s, u, "a") for s, u in zip(a, set_a, strict=True)] +
                       [(s, u, "b") for s, u in zip(b, set_b, strict=True)], reverse=True)
        findings.append(
            FindingResult(
                rank=rank, finding=text, auroc=auroc, auroc_ci=[auroc - 0.08, min(1.0, auroc + 0.07)], ci_level=0.95,
                p_value=0.0009 if rank == 1 else 0.03 * rank, q_value=0.0027 if rank == 1 else 0.045 * rank,
                t_statistic=float(5.1 / rank), effect_size=float(2.4 / rank), t_p_value=1e-5 * rank,
                mean_a=float(a.mean()), mean_b=float(b.mean()),
                chexzero_auroc=None, iteration=2 if rank == 1 else 1, origin="refinement" if rank == 1 else "proposal",
                histogram=_histogram(a, b), scores={"a": a.tolist(), "b": b.tolist()},
                most_a_like=[ImageScore(u, g, float(s)) for s, u, g in order[:4]],
                least_a_like=[ImageScore(u, g, float(s)) for s, u, g in order[::-1][:4]],
                searches=[search] if rank == 1 else [],
                specific_auroc=0.91 if rank == 1 else 0.52,
                specific_auroc_ci=[0.86, 0.95] if rank == 1 else [0.44, 0.6],
                specific_effect_size=1.9 if rank == 1 else 0.05,
                specific_p_value=0.0004 if rank == 1 else 0.4,
                specific_q_value=0.0012 if rank == 1 else 0.6,
                supported=rank == 1,
                support=(
                    f"supported: AUROC {auroc:.3f} (q 0.0027), specific AUROC 0.910 (q 0.0012)"
                    if rank == 1
                    else "moves with every text: specific AUROC 0.520, q 0.6 (FDR 0.05)"
                ),
            )
        )
    rounds = [ProposalRound(1, set_a[:4], set_b[:4], "", "", [*FINDINGS[1:], "small left pleural effusion"])]
    result = AnalysisResult(
        config=AgentConfig().to_json(),
        proposer="offline",
        embedding_model="raddiff-clip-small@sha256:0123456789abcdef+raddiff",
        ranked_images={"a": len(set_a), "b": len(set_b)},
        ranked_uris={"a": set_a, "b": set_b},
        findings=findings,
        supported=1,
        verdict=f"1 of {len(findings)} findings supported at FDR 0.05",
        iterations=[
            IterationResult(1, rounds=rounds, deduplicated=FINDINGS[1:], ranked=[RankedBrief(FINDINGS[1], 0.702)],
                            evaluation=Evaluation([1, 0], 0.5, 0.5, "semantic")),
            IterationResult(2, feedback=[RankedBrief(FINDINGS[1], 0.702)], searches=[search],
                            rounds=[ProposalRound(1, set_a[:4], set_b[:4], "", "", [FINDINGS[0]])],
                            deduplicated=[FINDINGS[0]],
                            ranked=[RankedBrief(f, a) for f, a in zip(FINDINGS, AUROCS, strict=True)],
                            evaluation=Evaluation([2, 1, 0], 1.0, 1.0, "semantic")),
        ],
        evaluation=Evaluation([2, 1, 0], 1.0, 1.0, "semantic"),
        notes=["search (model): finding 2 ('blunting of the right costophrenic angle'): the A-versus-B similarity "
               "map is flat (peak |t| 1.20 < 3); using the whole image"],
    )
    return result.to_json()


# The keys added to raddiff.result/1 since its first release; a result stored before them lacks them.
NEWER_FINDING_KEYS = {
    "effect_size", "specific_auroc", "specific_auroc_ci", "specific_effect_size", "specific_p_value",
    "specific_q_value", "supported", "support",
}  # fmt: skip
NEWER_RESULT_KEYS = {"supported", "verdict"}


def first_release(result: dict[str, Any]) -> dict[str, Any]:
    """The result as the first release's agent stored it: none of the newer keys."""
    old = {k: v for k, v in result.items() if k not in NEWER_RESULT_KEYS}
    old["findings"] = [{k: v for k, v in f.items() if k not in NEWER_FINDING_KEYS} for f in result["findings"]]
    return old


@pytest.fixture(scope="module")
def analyses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Analyses]:
    base = tmp_path_factory.mktemp("report")
    root, scratch = base / "data", base / "scratch"
    for folder in (root / "a", root / "b", scratch):
        folder.mkdir(parents=True)
    set_a, set_b = [], []
    for i in range(8):
        for group, paths, effusion in (("a", set_a, True), ("b", set_b, False)):
            path = root / group / f"{group}{i}.png"
            radiograph(i + (0 if effusion else 50), effusion).save(path)
            paths.append(path.as_uri())
    images = ImageStore([root], scratch)
    crops = [images.put_png(images.load(u).crop((20, 150, 120, 230)))[0] for u in set_a[:4] + set_b[:4]]
    grid = Image.new("RGB", (5 * 64, 2 * 64))
    for n, uri in enumerate(crops):
        grid.paste(images.load(uri).resize((64, 64)), ((n % 5) * 64, (n // 5) * 64))
    zoom_grid = images.put_png(grid)[0]
    stray = images.put_png(Image.new("RGB", (32, 32), (255, 0, 0)))[0]

    settings = OrchestratorSettings(database_url=f"sqlite:///{base / 'orch.db'}", worker_concurrency=0)
    app = create_app(settings, shared=SharedSettings(data_roots=str(root), scratch_dir=scratch),
                     targets=ServiceTargets(), run_worker=False)
    with TestClient(app) as client:
        store: AnalysisStore = app.state.orchestrator.store
        task = {"set_a": {"name": "effusion", "uris": set_a}, "set_b": {"name": "no effusion", "uris": set_b},
                "config": AgentConfig().to_json(), "reports": {},
                "ground_truth": {"a": "moderate right pleural effusion", "b": "no pleural effusion"}}
        summary = {"a": {"name": "effusion", "images": 8}, "b": {"name": "no effusion", "images": 8}}
        ids = {}
        for state in ("finished", "failed", "cancelled", "running", "queued"):
            ids[state] = store.submit(task, summary, name=f"Effusion study ({state})").id
        result = build_result(set_a, set_b, zoom_grid, crops)
        for state, status, kwargs in (
            ("finished", "succeeded", {"result": result}),
            ("failed", "failed", {"error": "embedding EmbedImages failed: UNAVAILABLE: connection refused"}),
        ):
            claimed = store.claim("test-worker", 60, 3)
            assert claimed is not None and claimed.id == ids[state]
            store.finish(ids[state], "test-worker", status, **kwargs)
        store.request_cancel(ids["cancelled"])
        claimed = store.claim("test-worker", 600, 3)
        assert claimed is not None and claimed.id == ids["running"]
        store.renew(ids["running"], "test-worker", 600, stage="rank", progress=0.4)
        yield Analyses(client, store, images, ids["finished"], result, ids["queued"], ids["running"], ids["failed"],
                       ids["cancelled"], set_a, set_b, zoom_grid, stray)
