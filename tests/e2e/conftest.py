"""The six real processes on loopback, started exactly as `make up` starts them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from raddiff_kit import localstack

BIN = Path(sys.executable).parent
# Short captions and leases keep the suite quick on 2 cores; nothing else differs from `make up`.
TEST_ENV = {
    "RADDIFF_ORCH_CAPTION_MAX_TOKENS": "24",
    "RADDIFF_ORCH_LEASE_SECONDS": "3",
    "RADDIFF_ORCH_HEARTBEAT_SECONDS": "1",
    "RADDIFF_ORCH_POLL_SECONDS": "0.2",
}


@dataclass
class Stack:
    run_dir: Path
    data_dir: Path
    envs: dict[str, dict[str, str]]
    addresses: dict[str, str]

    @property
    def url(self) -> str:
        return self.addresses["orchestrator"]

    def metrics_url(self, name: str) -> str:
        proc = next(p for p in localstack.PROCESSES if p.name == name)
        return f"http://127.0.0.1:{self.envs[name][proc.prefix + 'METRICS_PORT']}/metrics"

    def restart(self, name: str, sig: int) -> None:
        localstack.stop(self.run_dir, only=[name], sig=sig)
        localstack.start(self.run_dir, self.envs, TEST_ENV, only=[name])
        localstack.wait_ready(self.run_dir, self.envs, 180, only=[name])


def _model_dir(tmp: Path) -> Path:
    """The repo's model cache when `make models` built it, else fresh small checkpoints in tmp."""
    cached = Path(os.environ.get("RADDIFF_MODEL_DIR", Path(__file__).resolve().parents[2] / ".models"))
    if (cached / "clip").is_dir() and (cached / "vlm" / "config.json").is_file():
        return cached
    for module, folder in (("raddiff_embedding.checkpoints", "clip"), ("raddiff_vlm.checkpoints", "vlm")):
        subprocess.run([sys.executable, "-m", module, "init-random", str(tmp / folder)], check=True)
    return tmp


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    data_dir = root / "data"
    # A small synthetic cohort: 12 images per set that differ by a moderate right pleural effusion.
    subprocess.run(
        [str(BIN / "raddiff-synth"), "cohort", "default", str(data_dir), "--pairs", "effusion-right-moderate",
         "--per-set", "12", "--size", "256"],
        check=True, capture_output=True,
    )
    run_dir = root / "run"
    envs = localstack.stack_env(run_dir, [data_dir], _model_dir(root / "models"), localstack.free_base_port())
    began = time.monotonic()
    localstack.start(run_dir, envs, TEST_ENV)
    try:
        addresses = localstack.wait_ready(run_dir, envs, 300)
        print(f"\nstack ready in {time.monotonic() - began:.1f} s")
        yield Stack(run_dir, data_dir, envs, addresses)
    finally:
        localstack.stop(run_dir)


def http_json(method: str, url: str, body: object | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def wait_finished(url: str, analysis_id: str, timeout_s: float = 600) -> dict:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        status, view = http_json("GET", f"{url}/v1/analyses/{analysis_id}")
        if status == 200 and view["status"] in ("succeeded", "failed", "cancelled"):
            return view
        time.sleep(0.5)
    raise AssertionError(f"analysis {analysis_id} did not finish in {timeout_s} s")
