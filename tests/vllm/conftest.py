"""One tiny real VLM checkpoint served by both engines in one session, for the engine-agreement tests.

These tests need vLLM, which lives in its own venv (the service's vLLM image carries its own torch):
    scripts/make-vllm-env.sh && .venv-vllm/bin/python -m pytest tests/vllm -q
Elsewhere (the main .venv) they skip. vLLM starts once per session (its engine core is a child process,
stopped at the end), with a 64 MiB KV cache so that it does not take the machine's memory.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from raddiff.v1 import vlm_pb2_grpc
from raddiff_kit.client import open_channel
from raddiff_kit.settings import SharedSettings
from raddiff_vlm.app import SERVICE_FULL_NAME, build_app, create_engine
from raddiff_vlm.engine import VLMEngine
from raddiff_vlm.settings import VLMSettings
from tests.vlm import conftest as vlm_conftest
from tests.vlm.conftest import DataDirs, vlm_settings

# The same checkpoint and data root fixtures as tests/vlm.
checkpoint = vlm_conftest.checkpoint
data_dirs = vlm_conftest.data_dirs

ENGINES = ("transformers", "vllm")
HERE = Path(__file__).parent
VLLM_MISSING = importlib.util.find_spec("vllm") is None
KV_CACHE_BYTES = 64 * 2**20


def engine_settings(checkpoint: Path, engine: str) -> VLMSettings:
    """The tests/vlm settings, on the named engine; vLLM with a small KV cache."""
    return vlm_settings(checkpoint, engine=engine, vllm_kv_cache_bytes=KV_CACHE_BYTES, max_batch=8)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Where vLLM is not installed (the main .venv), every test of this folder skips, saying why."""
    if not VLLM_MISSING:
        return
    skip = pytest.mark.skip(
        reason="vLLM is not installed in this venv; build .venv-vllm with scripts/make-vllm-env.sh and run "
        "`.venv-vllm/bin/python -m pytest tests/vllm`"
    )
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(skip)


@dataclass
class Served:
    engine: VLMEngine
    stub: vlm_pb2_grpc.VLMServiceStub


@pytest.fixture(scope="session")
async def served(checkpoint: Path, data_dirs: DataDirs) -> AsyncIterator[dict[str, Served]]:
    """Both engines behind their own gRPC server, started once; everything is stopped at the end."""
    shared = SharedSettings(data_roots=str(data_dirs.root), scratch_dir=data_dirs.scratch)
    async with AsyncExitStack() as stack:
        services: dict[str, Served] = {}
        for name in ENGINES:
            settings = engine_settings(checkpoint, name)
            engine = create_engine(settings, shared)
            app = build_app(settings, shared, engine=engine)
            server, port = await app.start("127.0.0.1:0")
            stack.push_async_callback(app.drain, server)
            channel = open_channel(f"127.0.0.1:{port}", SERVICE_FULL_NAME)
            stack.push_async_callback(channel.close)
            services[name] = Served(engine, vlm_pb2_grpc.VLMServiceStub(channel))
        yield services


@pytest.fixture(scope="session", params=ENGINES)
def vlm(request: pytest.FixtureRequest, served: dict[str, Served]) -> vlm_pb2_grpc.VLMServiceStub:
    """The service on each engine in turn: the tests/vlm behaviour tests take this fixture."""
    return served[request.param].stub
