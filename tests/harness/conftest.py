"""Fixtures for the harness: a real orchestrator in process (no model services), a small synthetic
benchmark, the real local stack on free ports, and the raddiff-bench command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
import yaml
from PIL import Image

from raddiff_bench.stack import LocalStack, local_stack
from raddiff_kit import localstack
from raddiff_kit.settings import SharedSettings
from raddiff_orchestrator.app import create_app
from raddiff_orchestrator.settings import OrchestratorSettings, ServiceTargets
from tests.e2e.conftest import TEST_ENV, _model_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BIN = Path(sys.executable).parent
# Two pairs of different difficulty, 8 images a set: small enough for a couple of minutes on 2 cores.
BENCH_PAIRS = ("effusion-right-moderate", "effusion-laterality")
# The real agent, cut to one iteration of one round so that a pair takes seconds.
FAST_CONFIG = {
    "seed": 0,
    "num_iterations": 1,
    "proposer": {"method": "offline", "num_rounds": 1, "num_samples": 8, "iterative_cropping": False},
    "ranker": {"permutations": 100, "bootstrap": 100},
    "evaluator": {"backend": "semantic"},
}


def bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The installed raddiff-bench console script, as the Job's pods run it."""
    return subprocess.run([str(BIN / "raddiff-bench"), *args], capture_output=True, text=True, timeout=timeout)


def write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


# -- a real orchestrator, in process, without model services --------------------------------
@dataclass
class Bare:
    url: str
    data: Path  # its only data root
    images_a: list[str]
    images_b: list[str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _images(folder: Path, prefix: str, count: int, level: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i}.png"
        Image.effect_noise((40, 40), 10 + i).point(lambda v, lv=level: min(255, v // 2 + lv)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="session")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bare]:
    """create_app over real HTTP (uvicorn in a thread) with a worker but no model service configured:
    it validates input exactly as in production, and every analysis it runs fails for want of models."""
    root = tmp_path_factory.mktemp("bare")
    data = root / "data"
    images_a, images_b = _images(data / "a", "a", 3, 120), _images(data / "b", "b", 3, 30)
    settings = OrchestratorSettings(
        database_url=f"sqlite:///{root / 'orchestrator.db'}",
        worker_concurrency=1,
        poll_seconds=0.05,
        heartbeat_seconds=0.2,
        lease_seconds=5.0,
        max_attempts=1,
    )
    app = create_app(
        settings,
        shared=SharedSettings(data_roots=str(data), scratch_dir=root / "scratch"),
        targets=ServiceTargets(
            vlm_target="", embedding_target="", llm_target="", localize_target="", evaluator_target=""
        ),
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > end or not thread.is_alive():
            raise RuntimeError("the in-process orchestrator did not start")
        time.sleep(0.05)
    try:
        yield Bare(f"http://127.0.0.1:{port}", data, images_a, images_b)
    finally:
        server.should_exit = True
        thread.join(15)


# -- a small synthetic benchmark and the real local stack ------------------------------------
@pytest.fixture(scope="session")
def small_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped spec's two pairs, 8 images a set at 256 px, in RadDiffBench format; its JSONL."""
    out = tmp_path_factory.mktemp("bench")
    subprocess.run(
        [str(BIN / "raddiff-synth"), "benchmark", "default", str(out), "--pairs", ",".join(BENCH_PAIRS),
         "--per-set", "8", "--size", "256"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return out / "RadDiffSynth.jsonl"


@pytest.fixture(scope="session")
def fast_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "fast.yaml"
    path.write_text(yaml.safe_dump(FAST_CONFIG))
    return path


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, small_bench: Path) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("stack")
    models = _model_dir(root / "models")
    port = localstack.free_base_port()  # never the defaults: a developer's `make up` may want them
    with local_stack([small_bench.parent], root / "run", models, port, extra_env=TEST_ENV) as running:
        yield running
