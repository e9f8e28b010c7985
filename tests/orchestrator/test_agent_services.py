"""The agent over gRPC against the real services, started in-process: the VLM (a tiny random-init
checkpoint), the embedding model (a small random-init CLIP), the localize service (grids, crops and
its model-based boxes from the embedding service's patches) and the evaluator (real MiniLM weights).

Random weights make the captions and similarities arbitrary, so the tests assert what must hold
whatever the weights: every sampled image captioned by the VLM, each image embedded once in
batches (and never again in a later iteration or analysis), every AUROC equal to the pairwise
definition on the service's own vectors, the feedback of iteration k+1 equal to iteration k's top-k
with its AUROC, one box per top finding cropped from every sampled image, the judge's scores turned
into Acc@1 / Acc@5 by RadDiff's formula, and the whole run through the REST API.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw
from prometheus_client import REGISTRY

from raddiff_kit.images import ImageStore
from raddiff_kit.settings import SharedSettings
from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.embeddings import EmbeddingCache
from raddiff_orchestrator.agent.pipeline import PipelineOptions
from raddiff_orchestrator.agent.ports import DependencyError
from raddiff_orchestrator.agent.task import AnalysisTask, GroundTruth, ImageSet
from raddiff_orchestrator.app import create_app
from raddiff_orchestrator.clients import ServiceClients
from raddiff_orchestrator.runner import AgentRunner
from raddiff_orchestrator.settings import ServiceTargets
from raddiff_orchestrator.store import AnalysisStore, DatabaseVectorStore
from tests.orchestrator.conftest import make_settings

vlm_app = pytest.importorskip("raddiff_vlm.app")
vlm_checkpoints = pytest.importorskip("raddiff_vlm.checkpoints")
vlm_settings = pytest.importorskip("raddiff_vlm.settings")
embedding_app = pytest.importorskip("raddiff_embedding.app")
embedding_checkpoints = pytest.importorskip("raddiff_embedding.checkpoints")
embedding_settings = pytest.importorskip("raddiff_embedding.settings")
localize_app = pytest.importorskip("raddiff_localize.app")
localize_settings = pytest.importorskip("raddiff_localize.settings")
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
    scratch: Path
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
    localize = localize_app.build_app(
        localize_settings.LocalizeSettings(
            embedding_target=f"127.0.0.1:{embedding_port}", vlm_target=f"127.0.0.1:{vlm_port}", metrics_port=0
        ),
        shared,
    )
    apps.append(localize)
    started.append(await localize.start("127.0.0.1:0"))
    targets = ServiceTargets(
        vlm_target=f"127.0.0.1:{vlm_port}",
        embedding_target=f"127.0.0.1:{embedding_port}",
        evaluator_target=f"127.0.0.1:{evaluator_port}",
        localize_target=f"127.0.0.1:{started[-1][1]}",
    )
    yield Stack(root, scratch, set_a, set_b, targets)
    for app, (server, _) in zip(reversed(apps), reversed(started), strict=True):
        await app.drain(server)


def task_for(stack: Stack, **config: Any) -> AnalysisTask:
    reports = {u: EFFUSION[i % 3] for i, u in enumerate(stack.set_a)}
    reports |= {u: NORMAL[i % 2] for i, u in enumerate(stack.set_b)}
    defaults: dict[str, Any] = {
        "seed": 1,
        "num_iterations": 1,
        "proposer": {"method": "offline", "num_samples": 3, "num_rounds": 1},
        "ranker": {"max_num_samples": 1000, "permutations": 200, "bootstrap": 200},
    }
    return AnalysisTask(
        set_a=ImageSet("effusion", stack.set_a),
        set_b=ImageSet("normal", stack.set_b),
        config=AgentConfig.model_validate(defaults | config),
        reports=reports,
        ground_truth=GroundTruth("chest X-rays with pleural effusion", "normal chest X-rays"),
    )


def calls(service: str, method: str) -> float:
    value = REGISTRY.get_sample_value(
        "raddiff_grpc_requests_total", {"service": service, "method": method, "code": "OK"}
    )
    return value or 0.0


def pairwise_auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


async def _quiet(stage: str, fraction: float) -> None:
    return None


async def test_the_agent_over_grpc(stack: Stack) -> None:
    clients = ServiceClients(stack.targets.configured(), timeout_s=60)
    try:
        runner = AgentRunner(clients.models(), PipelineOptions(caption_max_tokens=8, embed_batch_size=BATCH))
        reported: list[tuple[str, float]] = []

        async def progress(stage: str, fraction: float) -> None:
            reported.append((stage, fraction))

        embeds_before = calls("embedding", "EmbedImages")
        result = await runner(task_for(stack), progress)
        embeds = calls("embedding", "EmbedImages") - embeds_before

        # progress: every stage in order, fractions never going back, ending at 1
        stages = list(dict.fromkeys(s for s, _ in reported))
        assert stages == ["sample", "caption", "propose", "dedup", "rank", "judge", "statistics", "done"]
        fractions = [f for _, f in reported]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0

        # three images of each set captioned by the VLM, with their reports as evidence
        assert result["schema"] == "raddiff.result/1"
        assert len(result["samples"]["a"]) == 3 and len(result["samples"]["b"]) == 3
        assert {s["uri"] for s in result["samples"]["a"]} <= set(stack.set_a)
        assert all(isinstance(s["caption"], str) for s in result["samples"]["a"] + result["samples"]["b"])

        # the reports make the offline proposer's first finding certain; all 11 images were ranked,
        # each embedded once, in batches of at most BATCH
        assert result["proposer"] == "offline"
        findings = result["findings"]
        assert "pleural effusion" in [f["finding"] for f in findings], findings
        assert result["ranked_images"] == {"a": 6, "b": 5}
        assert embeds == math.ceil(11 / BATCH)
        assert result["cache"]["image_misses"] == 11 and result["embedding_model"]

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
            assert finding["mean_a"] == pytest.approx(row[:6].mean(), abs=1e-5)
            assert finding["scores"]["a"] == pytest.approx(row[:6].tolist(), abs=1e-5)
            # the statistics are there and consistent with each other
            low, high = finding["auroc_ci"]
            assert 0.0 <= low <= high <= 1.0 and finding["ci_level"] == 0.95
            assert 1 / 201 <= finding["p_value"] <= 1.0 and finding["q_value"] >= finding["p_value"] - 1e-12
            assert sum(finding["histogram"]["a"]) == 6 and sum(finding["histogram"]["b"]) == 5
            best = finding["most_a_like"][0]
            assert best["score"] == pytest.approx(float(row.max()), abs=1e-5)
            assert finding["origin"] == "proposal" and finding["iteration"] == 1
        assert [f["auroc"] for f in findings] == sorted((f["auroc"] for f in findings), reverse=True)
        assert [f["rank"] for f in findings] == list(range(1, len(findings) + 1))
        assert result["ranked_uris"] == {"a": stack.set_a, "b": stack.set_b}

        # the evaluator judged the ranked list; Acc@k follows from its scores
        evaluation = result["evaluation"]
        scores = evaluation["scores"]
        assert len(scores) == len(findings) and set(scores) <= {0, 1, 2}
        assert evaluation["acc_at_1"] == scores[0] / 2 and evaluation["acc_at_5"] == max(scores[:5]) / 2
        assert evaluation["backend"] == "semantic"
        assert result["iterations"][0]["evaluation"] == evaluation
    finally:
        await clients.close()


async def test_the_loop_feeds_back_and_searches_the_top_findings(stack: Stack) -> None:
    clients = ServiceClients(stack.targets.configured(), timeout_s=60)
    try:
        runner = AgentRunner(clients.models(), PipelineOptions(caption_max_tokens=8, embed_batch_size=BATCH))
        config = {
            "num_iterations": 3,
            "proposer": {
                "method": "offline",
                "num_samples": 4,
                "num_rounds": 2,
                "topk": 2,
                "box_source": "model",
                "describe_crops": 2,
            },
        }
        embeds_before = calls("embedding", "EmbedImages")
        localize_before = calls("localize", "Localize")
        result = await runner(task_for(stack, **config), _quiet)
        # every image embedded once for all three iterations
        assert calls("embedding", "EmbedImages") - embeds_before == math.ceil(11 / BATCH)
        iterations = result["iterations"]
        assert [it["index"] for it in iterations] == [1, 2, 3]
        assert iterations[0]["feedback"] == [] and iterations[0]["searches"] == []
        # one Localize call per round of iterations 2 and 3
        assert calls("localize", "Localize") - localize_before == 4
        scratch = ImageStore([stack.root], stack.scratch)
        for previous, current in itertools.pairwise(iterations):
            # iteration k+1 is fed iteration k's top-k with its AUROC
            assert current["feedback"] == previous["ranked"][:2]
            # RadDiff re-draws the same samples every iteration
            assert [r["sample_a"] for r in current["rounds"]] == [r["sample_a"] for r in iterations[0]["rounds"]]
            # one box per top finding per round, cropped from every sampled image into one zoom grid
            per_round = len(current["feedback"])
            assert len(current["searches"]) == per_round * len(current["rounds"])
            for rnd_index, rnd in enumerate(current["rounds"]):
                round_searches = current["searches"][rnd_index * per_round : (rnd_index + 1) * per_round]
                assert [s["finding"] for s in round_searches] == [f["finding"] for f in current["feedback"]]
                for search in round_searches:
                    assert search["backend"] == "model"
                    assert len(search["crop_uris"]["a"]) == len(rnd["sample_a"]) == 4
                    assert len(search["crop_uris"]["b"]) == len(rnd["sample_b"]) == 4
                    box = search["box"]
                    assert 0 <= box["x0"] < box["x1"] <= 1 and 0 <= box["y0"] < box["y1"] <= 1
                    # a crop is the box widened to a square (so it fills its tile), within its image
                    crop = scratch.load(search["crop_uris"]["a"][0])
                    source = scratch.load(rnd["sample_a"][0])
                    side = max((box["x1"] - box["x0"]) * source.width, (box["y1"] - box["y0"]) * source.height)
                    expected = (min(side, source.width), min(side, source.height))
                    assert abs(crop.width - expected[0]) <= 1.5 and abs(crop.height - expected[1]) <= 1.5
                    assert scratch.load(search["grid_uri"]).width > crop.width
                    # the offline proposer refines from the VLM's descriptions of two crops of each set
                    assert len(search["captions"]["a"]) == 2 and len(search["captions"]["b"]) == 2
            # the offline proposer keeps the previous top findings that beat chance, so they compete again
            kept = {f["finding"] for f in current["feedback"] if f["auroc"] > 0.5}
            assert kept <= set(current["deduplicated"])
        # the final ranking is the last iteration's, with the zoom crops that led to refined findings
        assert [f["finding"] for f in result["findings"]] == [r["finding"] for r in iterations[-1]["ranked"]]
        for finding in result["findings"]:
            if finding["origin"] == "refinement":
                assert finding["searches"] and all(s["grid_uri"].startswith("scratch://") for s in finding["searches"])
        # p-values cover every finding tested in the run: q-values need all of them
        assert all(0 < f["q_value"] <= 1 for f in result["findings"])
    finally:
        await clients.close()


async def test_chexzero_scoring_and_merged_iterations(stack: Stack) -> None:
    clients = ServiceClients(stack.targets.configured(), timeout_s=60)
    try:
        runner = AgentRunner(clients.models(), PipelineOptions(caption_max_tokens=4, embed_batch_size=BATCH))
        proposer = {"method": "offline", "num_samples": 3, "num_rounds": 1, "iterative_cropping": False}
        config = {"num_iterations": 2, "merge": True, "proposer": proposer, "ranker": {"scoring": "both"}}
        result = await runner(task_for(stack, **config), _quiet)
        model = clients.models().embedder
        assert model is not None

        def unit(matrix: np.ndarray) -> np.ndarray:
            return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

        images = unit(await model.embed_images(stack.set_a + stack.set_b))
        texts = [f["finding"] for f in result["findings"]]
        positive = unit(await model.embed_texts(texts)) @ images.T
        negative = unit(await model.embed_texts([f"no {t}" for t in texts])) @ images.T
        for finding, pos, neg in zip(result["findings"], positive, negative, strict=True):
            # ranked by cosine; CheXzero's softmax of the finding against its negation reported beside it
            assert finding["auroc"] == pytest.approx(pairwise_auroc(pos[:6], pos[6:]), abs=1e-6)
            softmax = np.exp(pos) / (np.exp(pos) + np.exp(neg))
            assert finding["chexzero_auroc"] == pytest.approx(pairwise_auroc(softmax[:6], softmax[6:]), abs=1e-6)
        # merged: every finding ranked in either iteration, judged again as one list
        tested = {r["finding"] for it in result["iterations"] for r in it["ranked"]}
        assert set(texts) == tested and len(texts) == len(tested)
        assert len(result["evaluation"]["scores"]) == len(texts)
    finally:
        await clients.close()


async def test_new_samples_each_iteration_when_asked(stack: Stack) -> None:
    clients = ServiceClients(stack.targets.configured(), timeout_s=60)
    try:
        runner = AgentRunner(clients.models(), PipelineOptions(caption_max_tokens=4, embed_batch_size=BATCH))
        config = {
            "num_iterations": 2,
            "proposer": {
                "method": "offline",
                "num_samples": 3,
                "num_rounds": 1,
                "resample": True,
                "iterative_cropping": False,
            },
        }
        result = await runner(task_for(stack, **config), _quiet)
        first, second = (it["rounds"][0] for it in result["iterations"])
        assert first["sample_a"] != second["sample_a"] or first["sample_b"] != second["sample_b"]
        assert result["iterations"][1]["searches"] == []
        again = await runner(task_for(stack, **config), _quiet)
        assert [it["rounds"] for it in again["iterations"]] == [it["rounds"] for it in result["iterations"]]
    finally:
        await clients.close()


async def test_a_cap_ranks_a_seeded_subset(stack: Stack) -> None:
    clients = ServiceClients(stack.targets.configured(), timeout_s=60)
    try:
        runner = AgentRunner(clients.models(), PipelineOptions(caption_max_tokens=4, embed_batch_size=BATCH))
        capped = {"max_num_samples": 3, "permutations": 200, "bootstrap": 200}
        first = await runner(task_for(stack, ranker=capped), _quiet)
        again = await runner(task_for(stack, ranker=capped), _quiet)
        assert first["ranked_images"] == {"a": 3, "b": 3}
        assert [f["auroc"] for f in first["findings"]] == [f["auroc"] for f in again["findings"]]
        assert [f["auroc_ci"] for f in first["findings"]] == [f["auroc_ci"] for f in again["findings"]]
        assert again["cache"]["image_misses"] == 0  # the second analysis reused every image's vector
    finally:
        await clients.close()


async def test_embeddings_are_reused_across_analyses_through_the_database(stack: Stack, tmp_path: Path) -> None:
    store = AnalysisStore(f"sqlite:///{tmp_path / 'cache.db'}")
    store.create_schema()
    clients = ServiceClients(stack.targets.configured(), timeout_s=60)
    try:
        options = PipelineOptions(caption_max_tokens=4, embed_batch_size=BATCH)
        first = AgentRunner(clients.models(), options, EmbeddingCache(DatabaseVectorStore(store.engine)))
        await first(task_for(stack), _quiet)
        before = calls("embedding", "EmbedImages")
        # a new process: an empty LRU, the same database
        second = AgentRunner(clients.models(), options, EmbeddingCache(DatabaseVectorStore(store.engine)))
        result = await second(task_for(stack), _quiet)
        assert calls("embedding", "EmbedImages") == before
        assert result["cache"]["image_hits"] == 11 and result["cache"]["image_misses"] == 0
    finally:
        await clients.close()
        store.dispose()


async def test_a_dead_service_fails_the_analysis_with_its_name(stack: Stack) -> None:
    targets = ServiceTargets(vlm_target=stack.targets.vlm_target, embedding_target="127.0.0.1:1")
    clients = ServiceClients(targets.configured(), timeout_s=5)
    try:
        runner = AgentRunner(clients.models(), PipelineOptions(caption_max_tokens=4))
        with pytest.raises(DependencyError, match=r"embedding (Info|Embed(Texts|Images)) failed: UNAVAILABLE"):
            await runner(task_for(stack), _quiet)
    finally:
        await clients.close()


async def test_rest_end_to_end(stack: Stack, tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'orchestrator.db'}", caption_max_tokens=8, embed_batch_size=BATCH)
    app = create_app(
        settings,
        shared=SharedSettings(data_roots=str(stack.root), scratch_dir=stack.scratch),
        targets=stack.targets,
    )
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://o") as http:
        assert (await http.get("/readyz")).json()["services"] == {
            "vlm": "SERVING",
            "embedding": "SERVING",
            "evaluator": "SERVING",
            "localize": "SERVING",
        }
        body = {
            "input": {"kind": "sets", "set_a": stack.set_a, "set_b": stack.set_b},
            "reports": {u: EFFUSION[i % 3] for i, u in enumerate(stack.set_a)},
            "ground_truth": {"a": "pleural effusion", "b": "no pleural effusion"},
            # the embedded default's shape: the offline proposer, two iterations, model-based search
            "config": {"proposer": {"num_samples": 2, "num_rounds": 1, "topk": 2}},
        }
        reply = await http.post("/v1/analyses", json=body)
        assert reply.status_code == 202, reply.text
        url = reply.json()["url"]
        for _ in range(900):
            view = (await http.get(url)).json()
            if view["status"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.1)
        assert view["status"] == "succeeded", view
        results = view["results"]
        assert results["findings"][0]["finding"] and results["proposer"] == "offline"
        assert results["evaluation"]["acc_at_1"] in (0.0, 0.5, 1.0)
        assert len(results["iterations"]) == 2 and results["iterations"][1]["searches"]
        assert {s["backend"] for s in results["iterations"][1]["searches"]} == {"model"}
        assert set(results["stage_seconds"]) == {
            "sample",
            "caption",
            "search",
            "propose",
            "dedup",
            "rank",
            "judge",
            "statistics",
        }
        assert view["config"]["proposer"]["num_samples"] == 2 and view["config"]["num_iterations"] == 2


async def test_the_cli_runs_the_embedded_config_in_process(stack: Stack, tmp_path: Path) -> None:
    """`raddiff-orchestrator analyze` with configs/embedded.yaml (shrunk by --set), run in its own process
    against this stack; a second run embeds nothing: the vectors are in the orchestrator's database."""
    table = stack.root / "pairs.csv"
    rows = [f"{Path(u[7:]).name},effusion" for u in stack.set_a] + [f"{Path(u[7:]).name},normal" for u in stack.set_b]
    table.write_text("path,group_name\n" + "\n".join(rows) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADDIFF_")}
    env |= {
        "RADDIFF_DATA_ROOTS": str(stack.root),
        "RADDIFF_SCRATCH_DIR": str(stack.scratch),
        "RADDIFF_ORCH_STATE_DIR": str(tmp_path / "state"),
        "RADDIFF_ORCH_EMBED_BATCH_SIZE": str(BATCH),
        "RADDIFF_ORCH_CAPTION_MAX_TOKENS": "8",
        **{f"RADDIFF_{name.upper()}_TARGET": target for name, target in stack.targets.configured().items()},
    }
    shrink = ["num_samples=3", "num_rounds=1", "topk=2", "describe_crops=2"]
    args = [
        "analyze",
        "--config",
        str(Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"),
        "--csv",
        str(table),
        "--group-a",
        "effusion",
        "--group-b",
        "normal",
        "--truth-a",
        "pleural effusion",
        "--truth-b",
        "no pleural effusion",
        *itertools.chain.from_iterable(("--set", f"proposer.{item}") for item in shrink),
        "--set",
        "ranker.permutations=200",
        "--set",
        "ranker.bootstrap=200",
    ]
    script = Path(sys.executable).parent / "raddiff-orchestrator"

    async def run(out: Path) -> dict[str, Any]:
        process = await asyncio.create_subprocess_exec(
            script, *args, "--out", str(out), env=env, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=300)
        assert process.returncode == 0, stderr.decode()
        assert "statistics" in stderr.decode()  # progress went to stderr
        return json.loads(out.read_text())

    first = await run(tmp_path / "first.json")
    assert first["config"]["proposer"]["method"] == "offline" and first["config"]["num_iterations"] == 2
    assert first["ranked_images"] == {"a": 6, "b": 5} and first["evaluation"]["backend"] == "semantic"
    assert {s["backend"] for s in first["iterations"][1]["searches"]} == {"model"}
    second = await run(tmp_path / "second.json")
    assert second["cache"]["image_misses"] == 0 and second["cache"]["image_hits"] == 11
    assert [f["auroc"] for f in second["findings"]] == [f["auroc"] for f in first["findings"]]
