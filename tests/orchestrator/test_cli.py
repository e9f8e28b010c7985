"""The console script as its container runs it: configured by environment, serving HTTP, stopping
cleanly on SIGTERM. With no model service configured, an analysis fails with a message naming the
missing target (the worker is wired to the real agent here)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.orchestrator.conftest import DataRoot, sets_body

SCRIPT = Path(sys.executable).parent / "raddiff-orchestrator"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def environment(tmp_path: Path, data: DataRoot, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not (k.startswith("RADDIFF_") and k.endswith("_TARGET"))}
    env.update(
        RADDIFF_ORCH_HOST="127.0.0.1",
        RADDIFF_ORCH_PORT=str(port),
        RADDIFF_ORCH_STATE_DIR=str(tmp_path / "state"),
        RADDIFF_ORCH_POLL_SECONDS="0.1",
        RADDIFF_DATA_ROOTS=str(data.root),
        RADDIFF_SCRATCH_DIR=str(tmp_path / "scratch"),
        RADDIFF_LOG_LEVEL="INFO",
    )
    return env


def test_serve_runs_an_analysis_and_stops_on_sigterm(tmp_path: Path, data: DataRoot) -> None:
    port = free_port()
    env = environment(tmp_path, data, port)
    migrate = subprocess.run([SCRIPT, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert migrate.returncode == 0 and "schema ready (sqlite)" in migrate.stdout
    process = subprocess.Popen([SCRIPT, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if request(f"{base}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the orchestrator never became ready"
            time.sleep(0.1)
        status, accepted = request(f"{base}/v1/analyses", sets_body(data))
        assert status == 202
        for _ in range(100):
            status, view = request(f"{base}{accepted['url']}")
            if view["status"] == "failed":
                break
            time.sleep(0.1)
        assert view["error"] == "no captioning model is configured (RADDIFF_VLM_TARGET)"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    log = process.stdout.read().decode() if process.stdout else ""
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status reports it
    assert code in (0, -signal.SIGTERM), log
    assert "worker stopped" in log and "Application shutdown complete" in log
    assert (tmp_path / "state" / "orchestrator.db").exists()


def test_worker_refuses_zero_concurrency(tmp_path: Path, data: DataRoot) -> None:
    env = environment(tmp_path, data, free_port()) | {"RADDIFF_ORCH_WORKER_CONCURRENCY": "0"}
    result = subprocess.run([SCRIPT, "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "RADDIFF_ORCH_WORKER_CONCURRENCY" in result.stderr


def test_bad_settings_name_the_key(tmp_path: Path, data: DataRoot) -> None:
    env = environment(tmp_path, data, free_port()) | {"RADDIFF_ORCH_LEASE_SECONDS": "soon"}
    result = subprocess.run([SCRIPT, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "RADDIFF_ORCH_LEASE_SECONDS" in result.stderr
