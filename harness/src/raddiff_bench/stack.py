"""The local stack (raddiff_kit.localstack) as a context manager on free ports, for the demo and the tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from raddiff_kit import localstack


@dataclass(frozen=True)
class LocalStack:
    run_dir: Path
    envs: dict[str, dict[str, str]]
    addresses: dict[str, str]

    @property
    def url(self) -> str:
        return self.addresses["orchestrator"]

    @property
    def evaluator(self) -> str:
        return self.addresses["evaluator"]


def models_ready(model_dir: Path) -> bool:
    """The embedded default's checkpoints (`make models`) are in model_dir."""
    return (model_dir / "clip").is_dir() and (model_dir / "vlm" / "config.json").is_file()


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _ports(base: int) -> list[int]:
    processes = localstack.PROCESSES
    http = localstack.orchestrator_port(base)
    return (
        [http]
        + [base + p.port_offset for p in processes if p.grpc_service]
        + [base + 1000 + p.port_offset for p in processes if p.grpc_service]
    )


def free_base_port(prefer_default: bool = True) -> int:
    """localstack's default base port when all its ports are free (the orchestrator on 8000), else a free range."""
    if prefer_default and all(_free(p) for p in _ports(localstack.DEFAULT_BASE_PORT)):
        return localstack.DEFAULT_BASE_PORT
    return localstack.free_base_port()


@contextmanager
def local_stack(
    data_roots: list[Path],
    run_dir: Path,
    model_dir: Path,
    base_port: int | None = None,
    extra_env: dict[str, str] | None = None,
    timeout_s: float = 300,
    keep: bool = False,
) -> Iterator[LocalStack]:
    """Start the six processes, wait until all are ready, yield, and stop them: always after an error or
    an interrupt, otherwise unless keep."""
    port = base_port if base_port is not None else free_base_port()
    envs = localstack.stack_env(run_dir, data_roots, model_dir, port)
    localstack.start(run_dir, envs, extra_env)
    try:
        addresses = localstack.wait_ready(run_dir, envs, timeout_s)
        yield LocalStack(run_dir, envs, addresses)
    except BaseException:
        localstack.stop(run_dir)
        raise
    if not keep:
        localstack.stop(run_dir)
