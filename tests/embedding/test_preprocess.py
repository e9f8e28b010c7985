"""The two preprocessings, checked on the tensor values of a known image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from raddiff_embedding.preprocess import CHEXZERO_MEAN, CHEXZERO_STD, build_preprocess, chexzero_pad

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def two_tone(width: int = 400, height: int = 200) -> Image.Image:
    """Left half gray 200, right half gray 50, as an RGB file would load."""
    pixels = np.full((height, width), 50, dtype=np.uint8)
    pixels[:, : width // 2] = 200
    return Image.fromarray(pixels, "L").convert("RGB")


def test_chexzero_pad_keeps_aspect_and_centres_on_black() -> None:
    padded = chexzero_pad(two_tone())
    assert padded.mode == "L" and padded.size == (320, 320)
    pixels = np.asarray(padded)
    # 400x200 -> 320x160, pasted at y = (320 - 160) // 2 = 80.
    assert pixels[:80].max() == 0 and pixels[240:].max() == 0
    assert pixels[100, 10] == 200 and pixels[200, 310] == 50


def test_chexzero_is_gray_on_the_0_255_scale_with_its_own_mean_and_std() -> None:
    tensor = build_preprocess("chexzero", 224)(two_tone())
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    assert torch.equal(tensor[0], tensor[1]) and torch.equal(tensor[1], tensor[2])
    # Padding rows (0..55 of 224) are black: (0 - mean) / std.
    np.testing.assert_allclose(tensor[0, 10, 112].item(), -CHEXZERO_MEAN / CHEXZERO_STD, atol=1e-4)
    # Inside the image, away from edges: the raw 0-255 value normalised.
    np.testing.assert_allclose(tensor[0, 112, 40].item(), (200 - CHEXZERO_MEAN) / CHEXZERO_STD, atol=1e-3)
    np.testing.assert_allclose(tensor[0, 112, 190].item(), (50 - CHEXZERO_MEAN) / CHEXZERO_STD, atol=1e-3)


def test_chexzero_model_at_320_skips_the_resize() -> None:
    tensor = build_preprocess("chexzero", 320)(two_tone())
    expected = (np.asarray(chexzero_pad(two_tone()), dtype=np.float32) - CHEXZERO_MEAN) / CHEXZERO_STD
    np.testing.assert_allclose(tensor[0].numpy(), expected, atol=1e-5)


def test_raddiff_is_clip_shortest_side_centre_crop_with_openai_stats() -> None:
    tensor = build_preprocess("raddiff", 224)(two_tone())
    assert tensor.shape == (3, 224, 224)
    # 400x200 -> 448x224, centre crop keeps source x 100..300: left half 200, right half 50, no padding.
    for channel in range(3):
        high = (200 / 255 - OPENAI_MEAN[channel]) / OPENAI_STD[channel]
        low = (50 / 255 - OPENAI_MEAN[channel]) / OPENAI_STD[channel]
        np.testing.assert_allclose(tensor[channel, 10, 40].item(), high, atol=1e-3)
        np.testing.assert_allclose(tensor[channel, 200, 190].item(), low, atol=1e-3)
    assert not torch.equal(tensor[0], tensor[2])  # per-channel statistics


def test_the_two_preprocessings_differ_on_the_same_image() -> None:
    image = two_tone()
    raddiff, chexzero = build_preprocess("raddiff", 224)(image), build_preprocess("chexzero", 224)(image)
    assert (raddiff - chexzero).abs().max() > 1.0


def test_unknown_preprocessing_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown preprocessing 'imagenet'"):
        build_preprocess("imagenet", 224)  # type: ignore[arg-type]
