"""Which findings a training image carries, the seeds it may use, and its pixels as each service would see them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raddiff_embedding.preprocess import build_preprocess
from raddiff_synth import Generator
from raddiff_synth.catalog import KINDS
from raddiff_synth.seeds import BENCHMARK_SEEDS
from raddiff_training import world
from raddiff_training.clip import image_batch
from raddiff_training.vlm import vlm_pixels
from raddiff_training.world import DIFFERS_BY, draw_findings, held_out_seeds, load_images, training_seeds
from raddiff_vlm.checkpoints import TinyVLMShape, build_image_processor
from tests.training.conftest import TINY_SIZE


def test_findings_are_fixed_by_the_seed_and_cover_every_kind() -> None:
    draws = [draw_findings(seed) for seed in range(600)]
    assert draws[:50] == [draw_findings(seed) for seed in range(50)]
    kinds = Counter(f.kind for findings in draws for f in findings)
    assert set(kinds) == set(KINDS)
    assert all(count >= 60 for count in kinds.values()), kinds  # each kind in roughly a fifth of the images
    normal = sum(not findings for findings in draws) / len(draws)
    assert 0.1 < normal < 0.25
    for findings in draws:  # a kind seen twice differs where the anatomy says it must (two sides, two lobes)
        for kind, key in DIFFERS_BY.items():
            values = [f.get(key) for f in findings if f.kind == kind]
            assert len(values) == len(set(values))
        assert all(f.attributes for f in findings if KINDS[f.kind].choices)  # attributes resolved


def test_held_out_seeds_are_training_seeds_disjoint_from_the_training_images() -> None:
    assert set(held_out_seeds(1000)).isdisjoint(training_seeds(100_000))
    draw_findings(held_out_seeds(1)[0])  # still the training range
    with pytest.raises(ValueError, match="outside the training range"):
        draw_findings(BENCHMARK_SEEDS.start)
    with pytest.raises(ValueError, match="leave the training range"):
        load_images(range(BENCHMARK_SEEDS.start - 2, BENCHMARK_SEEDS.start + 2), TINY_SIZE)


def test_cached_pixels_are_what_each_service_makes_of_the_512_px_file() -> None:
    seed, size = 11, 160
    view, placed, clip, vlm = world.render_one(seed, size)
    radiograph = Generator().render(seed, draw_findings(seed), size=world.RENDER_SIZE)
    assert [p.finding for p in placed] == draw_findings(seed) and view == radiograph.acquisition.view
    as_file = Image.fromarray(radiograph.pixels).convert("RGB")
    service = build_preprocess("raddiff", size)(as_file)
    assert np.array_equal(image_batch(clip[None])[0].numpy(), service.numpy())
    processed = build_image_processor(TinyVLMShape(image_size=size))(images=[[as_file]], return_tensors="pt")
    assert np.array_equal(vlm_pixels(vlm[None])[0].numpy(), processed["pixel_values"][0, 0].numpy())


def test_a_second_load_reads_the_cache(tiny_images: world.ImageSet, train_cache: Path, monkeypatch) -> None:
    def no_rendering(*args: object) -> None:
        raise AssertionError("rendered again instead of reading the cache")

    monkeypatch.setattr(world, "_render", no_rendering)
    again = load_images(training_seeds(16), TINY_SIZE, cache_dir=train_cache, workers=1, progress=False)
    assert np.array_equal(again.clip_pixels, tiny_images.clip_pixels)
    assert np.array_equal(again.vlm_pixels, tiny_images.vlm_pixels)
    assert again.findings == tiny_images.findings and again.views == tiny_images.views
    assert tiny_images.clip_pixels.shape == (16, TINY_SIZE, TINY_SIZE)
    assert [tiny_images.kinds(i) for i in range(16)] == [draw_findings(s) for s in range(16)]
