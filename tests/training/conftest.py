"""Shared fixtures: a handful of tiny rendered training images (a private cache), and tiny model shapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from raddiff_training.world import ImageSet, load_images, training_seeds
from raddiff_vlm.checkpoints import TinyVLMShape

TINY_SIZE = 32  # two 16 px patches a side
# A VLM whose vision tower has the tiny CLIP's shape (width 64, two layers, MLP 4x) and a one-layer decoder.
TINY_VLM = TinyVLMShape(
    image_size=TINY_SIZE,
    patch_size=16,
    scale_factor=2,
    vision_hidden=64,
    vision_layers=2,
    vision_intermediate=256,
    vision_act="gelu",
    vision_norm_eps=1e-5,
    text_hidden=64,
    text_layers=1,
    text_heads=2,
    text_kv_heads=1,
    text_intermediate=128,
)


@pytest.fixture(scope="session")
def train_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("train-cache")


@pytest.fixture(scope="session")
def tiny_images(train_cache: Path) -> ImageSet:
    return load_images(training_seeds(16), TINY_SIZE, cache_dir=train_cache, workers=1, progress=False)
