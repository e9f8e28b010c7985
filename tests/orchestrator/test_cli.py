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


def wait_ready(process: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if request(f"{base}/readyz")[0] == 200:
                return
        except OSError:
            pass
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        assert time.monotonic() < deadline, "the orchestrator never became ready"
        time.sleep(0.1)


def test_serve_runs_an_analysis_and_stops_on_sigterm(tmp_path: Path, data: DataRoot) -> None:
    port = free_port()
    env = environment(tmp_path, data, port)
    migrate = subprocess.run([SCRIPT, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert migrate.returncode == 0 and "schema ready (sqlite)" in migrate.stdout
    process = subprocess.Popen([SCRIPT, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, base)
        status, accepted = request(f"{base}/v1/analyses", sets_body(data))
        assert status == 202
        for _ in range(100):
            status, view = request(f"{base}{accepted['url']}")
            if view["status"] == "failed":
                break
            time.sleep(0.1)
        assert view["error"] == "no captioning model is configured (RADDIFF_VLM_TARGET)"

        # the analyze command submits to it and follows the analysis to its end
        config = tmp_path / "cfg.yaml"
        config.write_text("num_iterations: 1\nproposer:\n  method: offline\n  num_samples: 3\n")
        images = [str(p) for p in data.set_a[:2]], [str(p) for p in data.set_b[:2]]
        analyze = [SCRIPT, "analyze", "--config", config, "--url", base, "--poll-seconds", "0.1"]
        ran = subprocess.run(
            [*analyze, "--set-a", *images[0], "--set-b", *images[1]],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 1
        assert "failed: no captioning model is configured (RADDIFF_VLM_TARGET)" in ran.stderr
        assert "submitted " in ran.stderr and ran.stdout == ""
        # an input the orchestrator refuses is a usage error that says why
        missing = str(data.root / "a" / "nope.png")
        ran = subprocess.run(
            [*analyze, "--set-a", missing, "--set-b", *images[1]], env=env, capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 2 and "HTTP 404" in ran.stderr and "does not exist" in ran.stderr
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


def test_analyze_names_a_bad_config_key_before_any_work(tmp_path: Path, data: DataRoot) -> None:
    env = environment(tmp_path, data, free_port())
    config = tmp_path / "cfg.yaml"
    config.write_text("proposer:\n  num_round: 2\n")
    images = ["--set-a", str(data.set_a[0]), "--set-b", str(data.set_b[0])]
    ran = subprocess.run([SCRIPT, "analyze", "--config", config, *images], env=env, capture_output=True, text=True)
    assert ran.returncode == 2 and "proposer.num_round: Extra inputs are not permitted" in ran.stderr
    ran = subprocess.run(
        [SCRIPT, "analyze", "--set", "num_iterations=zero", *images], env=env, capture_output=True, text=True
    )
    assert ran.returncode == 2 and "num_iterations: Input should be a valid integer" in ran.stderr
    ran = subprocess.run([SCRIPT, "analyze", "--csv", "x.csv"], env=env, capture_output=True, text=True)
    assert ran.returncode == 2 and "--csv needs --group-a and --group-b" in ran.stderr
