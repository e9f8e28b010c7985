"""Fixtures: distinctive test images, a scripted LLM proxy (it stands in for a paid LLM), the real
embedding and VLM services with small randomly initialised models, and the localize service: all real
gRPC servers in this process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from raddiff.v1 import common_pb2, embedding_pb2_grpc, llm_pb2, llm_pb2_grpc, localize_pb2_grpc, vlm_pb2_grpc
from raddiff_embedding import app as embedding_app
from raddiff_embedding.checkpoints import init_random as init_random_clip
from raddiff_embedding.settings import EmbeddingSettings
from raddiff_kit.client import open_channel
from raddiff_kit.errors import ServiceError
from raddiff_kit.images import ImageStore
from raddiff_kit.server import Registration, ServiceApp
from raddiff_kit.settings import ServiceSettings, SharedSettings
from raddiff_localize.app import SERVICE, build_app
from raddiff_localize.backends import LLM_SERVICE
from raddiff_localize.settings import LocalizeSettings
from raddiff_vlm import app as vlm_app
from raddiff_vlm.checkpoints import init_random as init_random_vlm
from raddiff_vlm.settings import VLMSettings

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
    for index in range(CHESTS):
        chest_like(index, blob=True).save(found.root / f"blob{index}.png")
        chest_like(100 + index, blob=False).save(found.root / f"clear{index}.png")
    return found


CHESTS = 12
# Where chest_like draws the bright blob, normalised to the image (jittered by up to 0.03 each way).
BLOB_CENTRE = (0.25, 0.3)


def chest_like(seed: int, blob: bool, size: tuple[int, int] = (300, 260)) -> Image.Image:
    """Two lung-like ellipses on noise; with blob, a bright round opacity near BLOB_CENTRE (upper left)."""
    rng = np.random.default_rng(seed)
    width, height = size
    image = Image.fromarray(rng.normal(40, 12, (height, width)).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.1, height * 0.15, width * 0.45, height * 0.85), fill=int(rng.integers(90, 130)))
    draw.ellipse((width * 0.55, height * 0.15, width * 0.9, height * 0.85), fill=int(rng.integers(90, 130)))
    if blob:
        x = width * (BLOB_CENTRE[0] + rng.uniform(-0.03, 0.03))
        y = height * (BLOB_CENTRE[1] + rng.uniform(-0.03, 0.03))
        radius = width * 0.07
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=240)
    return image.filter(ImageFilter.GaussianBlur(1.5)).convert("RGB")


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


# A small cap, so that the model backend fetches a set's patch grids in several calls.
PATCH_IMAGES_PER_CALL = 5


@dataclass
class ModelStack:
    """A localize service whose model and vlm backends reach real embedding and VLM services."""

    localize: localize_pb2_grpc.LocalizeServiceStub
    embedding: embedding_pb2_grpc.EmbeddingServiceStub
    vlm: vlm_pb2_grpc.VLMServiceStub
    settings: LocalizeSettings
    embedding_target: str


@pytest.fixture(scope="session")
async def model_stack(data: Data, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ModelStack]:
    shared = SharedSettings(data_roots=str(data.root), scratch_dir=data.scratch)
    clip = tmp_path_factory.mktemp("clip")
    init_random_clip(clip, seed=3)
    embedding_settings = EmbeddingSettings(
        checkpoint=clip, metrics_port=0, max_patch_images=PATCH_IMAGES_PER_CALL, max_wait_ms=20
    )
    embedding = embedding_app.build_app(embedding_settings, shared)
    embedding_server, embedding_port = await embedding.start("127.0.0.1:0")
    vlm_checkpoint = init_random_vlm(tmp_path_factory.mktemp("vlm") / "tiny-vlm", seed=0)
    vlm = vlm_app.build_app(VLMSettings(checkpoint=vlm_checkpoint, metrics_port=0, batch_wait_ms=20), shared)
    vlm_server, vlm_port = await vlm.start("127.0.0.1:0")
    settings = LocalizeSettings(
        embedding_target=f"127.0.0.1:{embedding_port}", vlm_target=f"127.0.0.1:{vlm_port}", vlm_max_images=4,
        vlm_retries=1, metrics_port=0, drain_seconds=1,
    )
    app = build_app(settings, shared)
    server, port = await app.start("127.0.0.1:0")
    channels = [
        open_channel(f"127.0.0.1:{port}", SERVICE),
        open_channel(f"127.0.0.1:{embedding_port}", embedding_app.SERVICE),
        open_channel(f"127.0.0.1:{vlm_port}", vlm_app.SERVICE_FULL_NAME),
    ]
    yield ModelStack(
        localize_pb2_grpc.LocalizeServiceStub(channels[0]),
        embedding_pb2_grpc.EmbeddingServiceStub(channels[1]),
        vlm_pb2_grpc.VLMServiceStub(channels[2]),
        settings,
        f"127.0.0.1:{embedding_port}",
    )
    for channel in channels:
        await channel.close()
    await app.drain(server)
    await embedding_server.stop(0)
    await vlm_server.stop(0)
