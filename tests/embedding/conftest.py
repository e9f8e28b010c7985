"""Shared fixtures: a small random checkpoint, a data root with good and bad files, a running service."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.helpers import DataDirs

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from raddiff.v1 import embedding_pb2_grpc
from raddiff_embedding.app import SERVICE, build_app
from raddiff_embedding.checkpoints import init_random
from raddiff_embedding.settings import EmbeddingSettings
from raddiff_kit.client import open_channel
from raddiff_kit.settings import SharedSettings


def xray_like(seed: int, size: tuple[int, int] = (300, 260)) -> Image.Image:
    """A distinctive grayscale picture: a bright ellipse and a bar whose places depend on the seed."""
    image = Image.new("L", size, 20 + 7 * seed)
    draw = ImageDraw.Draw(image)
    w, h = size
    x = (seed * 37) % (w // 2)
    draw.ellipse((x, h // 4, x + w // 3, h // 4 + h // 2), fill=230)
    y = (seed * 53) % (h - 20)
    draw.rectangle((0, y, w - 1, y + 15), fill=120)
    return image.convert("RGB")


@pytest.fixture(scope="session")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> DataDirs:
    base = tmp_path_factory.mktemp("embedding-data")
    dirs = DataDirs(base / "data", base / "outside", base / "scratch")
    dirs.root.mkdir()
    dirs.outside.mkdir()
    for seed in range(8):
        xray_like(seed).save(dirs.root / f"cxr{seed}.png")
    # The same picture as a 16-bit grayscale PNG, as many radiograph datasets ship.
    wide = np.asarray(xray_like(0).convert("L"), dtype=np.uint16) * 257
    Image.fromarray(wide).save(dirs.root / "cxr0-16bit.png")
    xray_like(99).save(dirs.outside / "secret.png")
    (dirs.root / "escape.png").symlink_to(dirs.outside / "secret.png")
    (dirs.root / "notes.png").write_text("FINDINGS: no acute cardiopulmonary process.")
    Image.effect_noise((256, 256), 40).save(dirs.root / "noise.png")
    data = (dirs.root / "noise.png").read_bytes()
    (dirs.root / "cut.png").write_bytes(data[: len(data) // 2])
    return dirs


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip-small")
    init_random(folder, seed=3)
    return folder


@pytest.fixture(scope="session")
async def embedding_stub(
    small_checkpoint: Path, data_dirs: DataDirs
) -> AsyncIterator[embedding_pb2_grpc.EmbeddingServiceStub]:
    settings = EmbeddingSettings(
        checkpoint=small_checkpoint, preprocessing="raddiff", metrics_port=0, max_items=8, max_wait_ms=150
    )
    shared = SharedSettings(data_roots=str(data_dirs.root), scratch_dir=data_dirs.scratch)
    server, port = await build_app(settings, shared).start("127.0.0.1:0")
    channel = open_channel(f"127.0.0.1:{port}", SERVICE)
    yield embedding_pb2_grpc.EmbeddingServiceStub(channel)
    await channel.close()
    await server.stop(0)
