"""Configuration from the environment, and the console entry point as a real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raddiff.v1 import evaluator_pb2, evaluator_pb2_grpc
from raddiff_evaluator.settings import EvaluatorSettings
from raddiff_kit.settings import load_settings


def test_settings_read_the_service_prefix_and_the_shared_llm_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADDIFF_EVALUATOR_DEFAULT_BACKEND", "llm")
    monkeypatch.setenv("RADDIFF_EVALUATOR_LLM_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("RADDIFF_LLM_TARGET", "dns:///raddiff-llm-proxy-headless:50053")
    settings = load_settings(EvaluatorSettings)
    assert (settings.default_backend, settings.llm_max_attempts) == ("llm", 2)
    assert settings.llm_target == "dns:///raddiff-llm-proxy-headless:50053"
    assert (settings.grpc_port, settings.metrics_port) == (50055, 9105)


def test_a_bad_setting_exits_naming_the_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("RADDIFF_EVALUATOR_DEFAULT_BACKEND", "gpt4")
    with pytest.raises(SystemExit) as caught:
        load_settings(EvaluatorSettings)
    assert caught.value.code == 2
    assert "RADDIFF_EVALUATOR_DEFAULT_BACKEND" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_service_runs_as_a_process_and_drains_on_sigterm() -> None:
    port = _free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RADDIFF_EVALUATOR_HOST": "127.0.0.1",
        "RADDIFF_EVALUATOR_GRPC_PORT": str(port),
        "RADDIFF_EVALUATOR_METRICS_PORT": "0",
        "RADDIFF_EVALUATOR_DRAIN_SECONDS": "1",
    }
    process = subprocess.Popen([sys.executable, "-m", "raddiff_evaluator"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        serving = False
        deadline = time.monotonic() + 120
        while not serving and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            serving = line.startswith("{") and json.loads(line).get("msg") == "serving"
        assert serving, "the service never logged that it was serving"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            request = evaluator_pb2.JudgeRequest(
                predictions=["enlarged cardiac silhouette"], truth_a="cardiomegaly", truth_b="normal heart size"
            )
            response = evaluator_pb2_grpc.EvaluatorServiceStub(channel).Judge(request, timeout=30)
            assert list(response.scores) == [2] and response.backend == "semantic"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
