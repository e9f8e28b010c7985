"""The whole stack on loopback: the six processes, started with the same console
commands and environment variables their containers use.

    python -m raddiff_kit.localstack up [--data-root DIR ...] [--base-port N]
    python -m raddiff_kit.localstack status
    python -m raddiff_kit.localstack down

`up` waits until every gRPC health check answers SERVING and the orchestrator's
/readyz answers 200, then prints where each process listens. State (pids, logs,
scratch store, database) lives under --run-dir (default .run/).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


@dataclass(frozen=True)
class Process:
    name: str
    command: str  # console script installed by the process's package
    prefix: str  # env prefix of its settings
    port_offset: int  # gRPC (or HTTP) port = base + offset; metrics = base + 1000 + offset
    target_var: str | None  # how clients find it (RADDIFF_<X>_TARGET)
    grpc_service: str | None


PROCESSES = [
    Process("vlm", "raddiff-vlm", "RADDIFF_VLM_", 1, "RADDIFF_VLM_TARGET", "raddiff.v1.VLMService"),
    Process("embedding", "raddiff-embedding", "RADDIFF_EMBEDDING_", 2, "RADDIFF_EMBEDDING_TARGET",
            "raddiff.v1.EmbeddingService"),
    Process("llm_proxy", "raddiff-llm-proxy", "RADDIFF_LLM_", 3, "RADDIFF_LLM_TARGET", "raddiff.v1.LLMProxyService"),
    Process("localize", "raddiff-localize", "RADDIFF_LOCALIZE_", 4, "RADDIFF_LOCALIZE_TARGET",
            "raddiff.v1.LocalizeService"),
    Process("evaluator", "raddiff-evaluator", "RADDIFF_EVALUATOR_", 5, "RADDIFF_EVALUATOR_TARGET",
            "raddiff.v1.EvaluatorService"),
    Process("orchestrator", "raddiff-orchestrator", "RADDIFF_ORCH_", 0, None, None),
]

DEFAULT_BASE_PORT = 50050
ORCHESTRATOR_DEFAULT_PORT = 8000


def stack_env(run_dir: Path, data_roots: list[Path], model_dir: Path, base_port: int) -> dict[str, dict[str, str]]:
    """Every process's environment: the shared keys plus its own ports and the targets it calls."""
    shared = {
        "RADDIFF_DATA_ROOTS": ":".join(str(p.resolve()) for p in data_roots),
        "RADDIFF_SCRATCH_DIR": str((run_dir / "scratch").resolve()),
        "RADDIFF_MODEL_DIR": str(model_dir.resolve()),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    targets = {p.target_var: f"127.0.0.1:{base_port + p.port_offset}" for p in PROCESSES if p.target_var}
    envs: dict[str, dict[str, str]] = {}
    for proc in PROCESSES:
        env = {**shared, **targets, f"{proc.prefix}HOST": "127.0.0.1"}
        if proc.grpc_service:
            env[f"{proc.prefix}GRPC_PORT"] = str(base_port + proc.port_offset)
            env[f"{proc.prefix}METRICS_PORT"] = str(base_port + 1000 + proc.port_offset)
        else:
            env[f"{proc.prefix}PORT"] = str(orchestrator_port(base_port))
            env[f"{proc.prefix}STATE_DIR"] = str((run_dir / "orchestrator").resolve())
        envs[proc.name] = env
    return envs


def free_base_port() -> int:
    """A base port whose whole range (gRPC, metrics, REST) is free on loopback, for tests and benchmarks."""
    for _ in range(50):
        base = random.randrange(20000, 40000, 10)
        ports = [base + p.port_offset for p in PROCESSES] + [base + 1000 + p.port_offset for p in PROCESSES]
        if all(_port_free(p) for p in ports):
            return base
    raise RuntimeError("no free port range found on 127.0.0.1")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def orchestrator_port(base_port: int) -> int:
    return ORCHESTRATOR_DEFAULT_PORT if base_port == DEFAULT_BASE_PORT else base_port


def start(
    run_dir: Path,
    envs: dict[str, dict[str, str]],
    extra_env: dict[str, str] | None = None,
    only: list[str] | None = None,
) -> None:
    """Start every process (or those named in `only`) in its own session, logging to run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    for proc in PROCESSES:
        if only is not None and proc.name not in only:
            continue
        if _alive(run_dir, proc.name):
            raise SystemExit(f"{proc.name} is already running ({run_dir}/{proc.name}.pid); run down first")
        log = (run_dir / f"{proc.name}.log").open("ab")
        env = {**os.environ, **envs[proc.name], **(extra_env or {})}
        child = subprocess.Popen(
            [str(bin_dir / proc.command)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        (run_dir / f"{proc.name}.pid").write_text(str(child.pid))


def wait_ready(
    run_dir: Path, envs: dict[str, dict[str, str]], timeout_s: float = 300, only: list[str] | None = None
) -> dict[str, str]:
    """Block until every process is healthy; return name -> address. Fails with the log tail of a dead process."""
    deadline = time.monotonic() + timeout_s
    addresses: dict[str, str] = {}
    for proc in PROCESSES:
        if only is not None and proc.name not in only:
            continue
        env = envs[proc.name]
        if proc.grpc_service:
            address = f"127.0.0.1:{env[proc.prefix + 'GRPC_PORT']}"
            check = lambda a=address: _grpc_serving(a)  # noqa: E731
        else:
            address = f"http://127.0.0.1:{env[proc.prefix + 'PORT']}"
            check = lambda a=address: _http_ok(a + "/readyz")  # noqa: E731
        while not check():
            if not _alive(run_dir, proc.name):
                tail = (run_dir / f"{proc.name}.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"{proc.name} exited before it was ready; its log ends:\n{tail}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{proc.name} was not ready within {timeout_s:.0f} s (log: {run_dir / proc.name}.log)")
            time.sleep(0.25)
        addresses[proc.name] = address
    return addresses


def stop(run_dir: Path, timeout_s: float = 30, only: list[str] | None = None, sig: int = signal.SIGTERM) -> list[str]:
    """Send `sig` (SIGTERM: each process drains) to every process, then SIGKILL what is left after timeout_s."""
    stopped = []
    for proc in reversed(PROCESSES):
        if only is not None and proc.name not in only:
            continue
        pid_file = run_dir / f"{proc.name}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pid_file.unlink()
            continue
        end = time.monotonic() + timeout_s
        while _pid_alive(pid) and time.monotonic() < end:
            time.sleep(0.1)
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
        pid_file.unlink()
        stopped.append(proc.name)
    return stopped


def _alive(run_dir: Path, name: str) -> bool:
    pid_file = run_dir / f"{name}.pid"
    return pid_file.exists() and _pid_alive(int(pid_file.read_text()))


def _pid_alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap our own children, so they do not linger as zombies
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def _grpc_serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="raddiff_kit.localstack", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    parser.add_argument("--run-dir", type=Path, default=Path(".run"))
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("RADDIFF_MODEL_DIR", ".models")))
    parser.add_argument("--data-root", type=Path, action="append", default=[], help="folder images may be read from")
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    data_roots = args.data_root or [Path(".data")]
    envs = stack_env(args.run_dir, data_roots, args.model_dir, args.base_port)
    if args.action == "env":
        print(json.dumps(envs, indent=2))
    elif args.action == "up":
        for root in data_roots:
            root.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        start(args.run_dir, envs)
        try:
            addresses = wait_ready(args.run_dir, envs, args.timeout)
        except SystemExit:
            stop(args.run_dir)
            raise
        print(f"stack ready in {time.monotonic() - began:.1f} s; logs in {args.run_dir}/")
        for proc in PROCESSES:
            metrics = envs[proc.name].get(f"{proc.prefix}METRICS_PORT")
            extra = f"  metrics http://127.0.0.1:{metrics}/metrics" if metrics else "  (REST, /docs, /metrics)"
            print(f"  {proc.name:<13} {addresses[proc.name]}{extra}")
    elif args.action == "down":
        stopped = stop(args.run_dir)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    else:
        for proc in PROCESSES:
            print(f"  {proc.name:<13} {'running' if _alive(args.run_dir, proc.name) else 'stopped'}")


if __name__ == "__main__":
    main()
