"""The agent over gRPC against the real services, started in-process: the VLM (a tiny random-init
checkpoint), the embedding model (a small random-init CLIP) and the evaluator (real MiniLM weights).

Random weights make the captions and similarities arbitrary, so the tests assert what must hold
whatever the weights: every sampled image captioned by the VLM, each image embedded once in
batches, every AUROC equal to the pairwise definition on the service's own vectors, the judge's
scores turned into Acc@1 / Acc@5 by RadDiff's formula, and the whole run through the REST API.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw
from prometheus_client import REGISTRY
from raddiff_kit.settings import SharedSettings
from raddiff_orchestrator.agent.pipeline import PipelineOptions
from raddiff_orchestrator.agent.ports import DependencyError
from raddiff_orchestrator.agent.task import AgentConfig, AnalysisTask, GroundTruth, ImageSet
from raddiff_orchestrator.app import create_app
from raddiff_orchestrator.clients import ServiceClients
from raddiff_orchestrator.runner import AgentRunner
from raddiff_orchestrator.settings import ServiceTargets

from tests.orchestrator.conftest import make_settings

vlm_app = pytest.importorskip("raddiff_vlm.app")
vlm_checkpoints = pytest.importorskip("raddiff_vlm.checkpoints")
vlm_settings = pytest.importorskip("raddiff_vlm.settings")
embedding_app = pytest.importorskip("raddiff_embedding.app")
embedding_checkpoints = pytest.importorskip("raddiff_embedding.checkpoints")
embedding_settings = pytest.importorskip("raddiff_embedding.settings")
evaluator_app = pytest.importorskip("raddiff_evaluator.app")
evaluator_settings = pytest.importorskip("raddiff_evaluator.settings")

pytestmark = pytest.mark.slow

BATCH = 4
EFFUSION = [
    "Moderate left pleural effusion with basilar atelectasis.",
    "Small right pleural effusion. Heart size is normal.",
    "Large bilateral pleural effusions and cardiomegaly.",
]
NORMAL = ["The lungs are clear. Heart size is normal.", "No acute cardiopulmonary process."]


def radiograph(seed: int, bright: bool) -> Image.Image:
    """Two lung-like fields; set A's carry a dense lower-left opacity (an effusion's shape)."""
    image = Image.new("L", (160, 150), 25 + 3 * seed)
    draw = ImageDraw.Draw(image)
    draw.ellipse((15 + seed, 20, 75, 130), fill=170)
    draw.ellipse((85, 20, 145 - seed, 130), fill=175)
    if bright:
        draw.rectangle((15, 95, 75, 130), fill=235)
    return image


@dataclass
class Stack:
    root: Path
    set_a: list[str]
    set_b: list[str]
    targets: ServiceTargets


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    base = tmp_path_factory.mktemp("agent-stack")
    root, scratch = base / "data", base / "scratch"
    root.mkdir()
    set_a, set_b = [], []
    for i in range(6):
        radiograph(i, bright=True).save(root / f"a{i}.png")
        set_a.append((root / f"a{i}.png").as_uri())
    for i in range(5):
        radiograph(i, bright=False).save(root / f"b{i}.png")
        set_b.append((root / f"b{i}.png").as_uri())
    shared = SharedSettings(data_roots=str(root), scratch_dir=scratch)

    vlm_ckpt = vlm_checkpoints.init_random(base / "vlm", seed=0)
    clip_ckpt = base / "clip"
    embedding_checkpoints.init_random(clip_ckpt, seed=3)
    apps = [
        vlm_app.build_app(
            vlm_settings.VLMSettings(checkpoint=vlm_ckpt, metrics_port=0, default_max_tokens=8, max_tokens_limit=64),
            shared,
        ),
        embedding_app.build_app(
            embedding_settings.EmbeddingSettings(checkpoint=clip_ckpt, metrics_port=0, max_wait_ms=1), shared
        ),
        evaluator_app.build_app(evaluator_settings.EvaluatorSettings(metrics_port=0)),
    ]
    started = [await app.start("127.0.0.1:0") for app in apps]
    vlm_port, embedding_port, evaluator_port = (port for _, port in started)
    targets = ServiceTargets(
        vlm_target=f"127.0.0.1:{vlm_port}",
        embedding_target=f"127.0.0.1:{embedding_port}",
        evaluator_target=f"127.0.0.1:{evaluator_port}",
    )
    yield Stack(root, set_a, set_b, targets)
    for app, (server, _) in zip(apps, started, strict=True):
        await app.drain(server)


def task_for(stack: Stack, **config: Any) -> AnalysisTask:
    reports = {u: EFFUSION[i % 3] for i, u in enumerate(stack.set_a)}
    reports |= {u: NORMAL[i % 2] for i, u in enumerate(stack.set_b)}
    return AnalysisTask(
        set_a=ImageSet("effusion", stack.set_a),
        set_b=ImageSet("normal", stack.set_b),
        config=AgentConfig(**{"sample_size": 3, "seed": 1, "rank_cap": 1000, **config}),
        reports=reports,
        ground_truth=GroundTruth("chest X-rays with pleural effusion", "normal chest X-rays"),
    )


def embed_calls() -> float:
    value = REGISTRY.get_sample_value(
        "raddiff_grpc_requests_total", {"service": "embedding", "method": "EmbedImages", "code": "OK"}
    )
    return value or 0.0


def pairwise_auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


async def test_the_agent_over_grpc(stack: Stack) -> None:
    clients = ServiceClients(stack.targets.configured(), timeout_s=60)
    try:
        runner = AgentRunner(clients.models(), PipelineOptions(caption_max_tokens=8, embed_batch_size=BATCH))
        reported: list[tuple[str, float]] = []

        async def progress(stage: str, fraction: float) -> None:
            reported.append((stage, fraction))

        calls_before = embed_calls()
        result = await runner(task_for(stack), progress)
        calls = embed_calls() - calls_before

        # progress: every stage in order, fractions never going back, ending at 1
        stages = list(dict.fromkeys(s for s, _ in reported))
        assert stages == ["sample", "caption", "propose", "rank", "judge", "done"]
        fractions = [f for _, f in reported]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0

        # three images of each set captioned by the VLM, with their reports as evidence
        assert len(result["samples"]["a"]) == 3 and len(result["samples"]["b"]) == 3
        assert {s["uri"] for s in result["samples"]["a"]} <= set(stack.set_a)
        assert all(isinstance(s["caption"], str) for s in result["samples"]["a"] + result["samples"]["b"])

        # the reports make the offline proposer's first finding certain; all 11 images were ranked,
        # each embedded once, in batches of at most BATCH
        assert result["proposer"] == "offline"
        findings = result["findings"]
        assert "pleural effusion" in [f["finding"] for f in findings], findings
        assert result["ranked_images"] == {"a": 6, "b": 5}
        assert calls == math.ceil(11 / BATCH)

        # every AUROC is the pairwise definition on the embedding service's own cosine similarities
        model = clients.models().embedder
        assert model is not None
        images = await model.embed_images(stack.set_a + stack.set_b)
        texts = await model.embed_texts([f["finding"] for f in findings])
        similarity = (texts / np.linalg.norm(texts, axis=1, keepdims=True)) @ (
            images / np.linalg.norm(images, axis=1, keepdims=True)
        ).T
        for row, finding in zip(similarity, findings, strict=True):
            assert finding["auroc"] == pytest.approx(pairwise_auroc(row[:6], row[6:]), abs=1e-6)
            assert finding["mean_similarity_a"] == pytest.approx(row[:6].mean(), abs=1e-5)
        assert [f["auroc"] for f in findings] == sorted((f["auroc"] for f in findings), reverse=True)
        assert [f["rank"] for f in findings] == list(range(1, len(findings) + 1))

        # the evaluator judged the ranked list; Acc@k follows from its scores
        evaluation = result["evaluation"]
        scores = evaluation["scores"]
        assert len(scores) == len(findings) and set(scores) <= {0, 1, 2}
        assert evaluation["acc_at_1"] == scores[0] / 2 and evaluation["acc_at_5"] == max(scores[:5]) / 2
        assert evaluation["backend"] == "semantic"
    finally:
        await clients.close()


async def test_a_cap_ranks_a_seeded_subset(stack: Stack) -> None:
    clients = ServiceClients(stack.targets.configured(), timeout_s=60)
    try:
        runner = AgentRunner(clients.models(), PipelineOptions(caption_max_tokens=4, embed_batch_size=BATCH))

        async def progress(stage: str, fraction: float) -> None:
            return None

        first = await runner(task_for(stack, rank_cap=3), progress)
        again = await runner(task_for(stack, rank_cap=3), progress)
        assert first["ranked_images"] == {"a": 3, "b": 3}
        assert [f["auroc"] for f in first["findings"]] == [f["auroc"] for f in again["findings"]]
    finally:
        await clients.close()


async def test_a_dead_service_fails_the_analysis_with_its_name(stack: Stack) -> None:
    targets = ServiceTargets(vlm_target=stack.targets.vlm_target, embedding_target="127.0.0.1:1")
    clients = ServiceClients(targets.configured(), timeout_s=5)
    try:
        runner = AgentRunner(clients.models(), PipelineOptions(caption_max_tokens=4))

        async def progress(stage: str, fraction: float) -> None:
            return None

        with pytest.raises(DependencyError, match=r"embedding Embed(Texts|Images) failed: UNAVAILABLE"):
            await runner(task_for(stack), progress)
    finally:
        await clients.close()


async def test_rest_end_to_end(stack: Stack, tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'orchestrator.db'}", caption_max_tokens=8, embed_batch_size=BATCH
    )
    app = create_app(
        settings,
        shared=SharedSettings(data_roots=str(stack.root), scratch_dir=tmp_path / "scratch"),
        targets=stack.targets,
    )
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://o") as http:
        assert (await http.get("/readyz")).json()["services"] == {
            "vlm": "SERVING",
            "embedding": "SERVING",
            "evaluator": "SERVING",
        }
        body = {
            "input": {"kind": "sets", "set_a": stack.set_a, "set_b": stack.set_b},
            "reports": {u: EFFUSION[i % 3] for i, u in enumerate(stack.set_a)},
            "ground_truth": {"a": "pleural effusion", "b": "no pleural effusion"},
            "config": {"sample_size": 2},
        }
        reply = await http.post("/v1/analyses", json=body)
        assert reply.status_code == 202, reply.text
        url = reply.json()["url"]
        for _ in range(600):
            view = (await http.get(url)).json()
            if view["status"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.1)
        assert view["status"] == "succeeded", view
        assert view["results"]["findings"][0]["finding"]
        assert view["results"]["evaluation"]["acc_at_1"] in (0.0, 0.5, 1.0)
        assert set(view["results"]["stage_seconds"]) == {"sample", "caption", "propose", "rank", "judge"}
