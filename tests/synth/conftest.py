"""Shared fixtures: one generator (the projected layers are cached on disk after the first build)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from raddiff_synth.render import Generator


@pytest.fixture(scope="session")
def generator() -> Generator:
    return Generator()
