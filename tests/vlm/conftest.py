"""Shared fixtures: a real tiny random VLM checkpoint, a data root with good and bad files, a running service."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.helpers import DataDirs

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from raddiff.v1 import vlm_pb2_grpc
from raddiff_kit.client import open_channel
from raddiff_kit.settings import SharedSettings
from raddiff_vlm.app import SERVICE_FULL_NAME, build_app
from raddiff_vlm.checkpoints import init_random
from raddiff_vlm.settings import VLMSettings

MAX_TOKENS_LIMIT = 1500


def radiograph(seed: int, size: tuple[int, int] = (320, 300)) -> Image.Image:
    """A distinctive grayscale picture: two bright lung-like ellipses and a rib-like bar placed by the seed."""
    image = Image.new("L", size, 15 + 5 * seed)
    draw = ImageDraw.Draw(image)
    w, h = size
    shift = (seed * 29) % (w // 6)
    draw.ellipse((w // 10 + shift, h // 6, w // 2 - 5, 5 * h // 6), fill=200 - 9 * seed)
    draw.ellipse((w // 2 + 5, h // 6, 9 * w // 10 - shift, 5 * h // 6), fill=180 + 5 * seed)
    y = (seed * 47) % (h - 12)
    draw.rectangle((0, y, w - 1, y + 10), fill=90)
    return image


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_random(tmp_path_factory.mktemp("vlm-checkpoint") / "tiny-vlm", seed=0)


@pytest.fixture(scope="session")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> DataDirs:
    base = tmp_path_factory.mktemp("vlm-data")
    dirs = DataDirs(base / "data", base / "outside", base / "scratch")
    dirs.root.mkdir()
    dirs.outside.mkdir()
    for seed in range(6):
        radiograph(seed).save(dirs.root / f"cxr{seed}.png")
    radiograph(9).save(dirs.outside / "elsewhere.png")
    (dirs.root / "report.png").write_text("FINDINGS: no acute cardiopulmonary process.")
    data = (dirs.root / "cxr0.png").read_bytes()
    (dirs.root / "cut.png").write_bytes(data[: len(data) // 2])
    return dirs


def vlm_settings(checkpoint: Path, **overrides: object) -> VLMSettings:
    values: dict[str, object] = {
        "checkpoint": checkpoint,
        "metrics_port": 0,
        "max_images_per_request": 2,
        "default_max_tokens": 24,
        "max_tokens_limit": MAX_TOKENS_LIMIT,
        "batch_wait_ms": 100.0,  # generous, so concurrent test calls share a batch
    }
    values.update(overrides)
    return VLMSettings(**values)


@pytest.fixture(scope="module")
async def vlm(checkpoint: Path, data_dirs: DataDirs) -> AsyncIterator[vlm_pb2_grpc.VLMServiceStub]:
    shared = SharedSettings(data_roots=str(data_dirs.root), scratch_dir=data_dirs.scratch)
    app = build_app(vlm_settings(checkpoint), shared)
    server, port = await app.start("127.0.0.1:0")
    channel = open_channel(f"127.0.0.1:{port}", SERVICE_FULL_NAME)
    yield vlm_pb2_grpc.VLMServiceStub(channel)
    await channel.close()
    await app.drain(server)
