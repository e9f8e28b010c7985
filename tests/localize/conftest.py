"""Fixtures: distinctive test images, a scripted LLM proxy (it stands in for a paid LLM) and the
localize service, both real gRPC servers in this process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image
from raddiff.v1 import common_pb2, llm_pb2, llm_pb2_grpc, localize_pb2_grpc
from raddiff_kit.client import open_channel
from raddiff_kit.errors import ServiceError
from raddiff_kit.images import ImageStore
from raddiff_kit.server import Registration, ServiceApp
from raddiff_kit.settings import ServiceSettings, SharedSettings
from raddiff_localize.app import SERVICE, build_app
from raddiff_localize.backends import LLM_SERVICE
from raddiff_localize.settings import LocalizeSettings

# Eight colours no letterbox (black) or band (white) pixel can be mistaken for.
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (200, 30, 200), (30, 200, 200),
           (120, 60, 10), (10, 60, 120)]


@dataclass
class Data:
    root: Path
    scratch: Path

    def ref(self, name: str) -> common_pb2.ImageRef:
        return common_pb2.ImageRef(uri=(self.root / name).as_uri())

    def refs(self, *names: str) -> list[common_pb2.ImageRef]:
        return [self.ref(n) for n in names]

    def store(self) -> ImageStore:
        return ImageStore([self.root], self.scratch)

    def pixels(self, uri: str) -> np.ndarray:
        return np.asarray(self.store().load(uri))


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    base = tmp_path_factory.mktemp("localize")
    found = Data(base / "data", base / "scratch")
    found.root.mkdir()
    for index, colour in enumerate(COLOURS):
        Image.new("RGB", (400, 200), colour).save(found.root / f"wide{index}.png")  # letterboxed top and bottom
        Image.new("RGB", (100, 200), colour).save(found.root / f"tall{index}.png")  # letterboxed left and right
    rng = np.random.default_rng(0)
    for index in range(2):
        noise = rng.integers(0, 256, size=(200, 300, 3), dtype=np.uint8)
        Image.fromarray(noise).save(found.root / f"noise{index}.png")
    return found


@dataclass
class ScriptedLLMProxy(llm_pb2_grpc.LLMProxyServiceServicer):
    """Answers Chat from a script (texts, or errors to raise) and records every request."""

    script: list[str | ServiceError] = field(default_factory=list)
    requests: list[llm_pb2.ChatRequest] = field(default_factory=list)

    def play(self, *replies: str | ServiceError) -> None:
        self.script[:] = replies
        self.requests.clear()

    async def Chat(self, request: llm_pb2.ChatRequest, context: grpc.aio.ServicerContext) -> llm_pb2.ChatResponse:
        self.requests.append(request)
        if not self.script:
            raise ServiceError("the script ran out of answers")
        reply = self.script.pop(0)
        if isinstance(reply, ServiceError):
            raise reply
        return llm_pb2.ChatResponse(text=reply, model="scripted")


@dataclass
class Stack:
    localize: localize_pb2_grpc.LocalizeServiceStub
    proxy: ScriptedLLMProxy
    settings: LocalizeSettings


@pytest.fixture(scope="session")
async def stack(data: Data) -> AsyncIterator[Stack]:
    proxy = ScriptedLLMProxy()
    proxy_app = ServiceApp(
        name="scripted-llm",
        settings=ServiceSettings(metrics_port=0),
        registrations=[Registration(proxy, llm_pb2_grpc.add_LLMProxyServiceServicer_to_server, LLM_SERVICE)],
    )
    proxy_server, proxy_port = await proxy_app.start("127.0.0.1:0")
    settings = LocalizeSettings(
        llm_target=f"127.0.0.1:{proxy_port}", llm_model="radiology-test", llm_retries=2, metrics_port=0,
        drain_seconds=1,
    )
    shared = SharedSettings(data_roots=str(data.root), scratch_dir=data.scratch)
    app = build_app(settings, shared)
    server, port = await app.start("127.0.0.1:0")
    channel = open_channel(f"127.0.0.1:{port}", SERVICE)
    yield Stack(localize_pb2_grpc.LocalizeServiceStub(channel), proxy, settings)
    await channel.close()
    await app.drain(server)
    await proxy_server.stop(0)
