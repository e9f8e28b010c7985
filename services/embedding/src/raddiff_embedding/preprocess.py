"""Image preprocessing: a PIL image becomes a model input tensor (3, S, S).

"raddiff" is standard CLIP inference preprocessing (bicubic resize of the
shortest side, centre crop, OpenAI mean/std). "chexzero" reproduces
CheXzero's own pipeline: data_process.preprocess (grayscale, longest side
resized to 320 px with Lanczos, centred on a black 320 px square), then its
zero_shot transforms on the 0-255 scale (Normalize(101.48761, 83.43944),
bicubic Resize to the model's input size).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import open_clip
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from raddiff_embedding.settings import Preprocessing

Preprocess = Callable[[Image.Image], torch.Tensor]
# (x0, y0, x1, y1): the model's square input on the original image, in the image's normalised coordinates.
Frame = tuple[float, float, float, float]

CHEXZERO_PAD_PX = 320
CHEXZERO_MEAN = 101.48761
CHEXZERO_STD = 83.43944


def chexzero_pad(image: Image.Image, size: int = CHEXZERO_PAD_PX) -> Image.Image:
    """CheXzero's data_process.preprocess: keep aspect ratio, zero-pad to a centred square."""
    gray = image.convert("L")
    ratio = size / max(gray.size)
    new_size = (max(1, int(gray.width * ratio)), max(1, int(gray.height * ratio)))
    resized = gray.resize(new_size, Image.Resampling.LANCZOS)  # PIL's old ANTIALIAS
    canvas = Image.new("L", (size, size))
    canvas.paste(resized, ((size - new_size[0]) // 2, (size - new_size[1]) // 2))
    return canvas


def chexzero_tensor(image: Image.Image, image_size: int) -> torch.Tensor:
    pixels = torch.from_numpy(np.asarray(chexzero_pad(image), dtype=np.float32))
    tensor = (pixels.expand(3, -1, -1) - CHEXZERO_MEAN) / CHEXZERO_STD
    if image_size != CHEXZERO_PAD_PX:
        # CheXzero ran torchvision 0.11, whose tensor Resize had no antialiasing.
        tensor = TF.resize(tensor, [image_size, image_size], InterpolationMode.BICUBIC, antialias=False)
    return tensor.contiguous()


def build_preprocess(name: Preprocessing, image_size: int) -> Preprocess:
    if name == "chexzero":
        return lambda image: chexzero_tensor(image, image_size)
    if name == "raddiff":
        return open_clip.image_transform(
            image_size,
            is_train=False,
            mean=open_clip.OPENAI_DATASET_MEAN,
            std=open_clip.OPENAI_DATASET_STD,
        )
    raise ValueError(f"unknown preprocessing {name!r}; use 'raddiff' or 'chexzero'")


def input_frame(name: Preprocessing, image_size: int, width: int, height: int) -> Frame:
    """Where the square model input of a width x height image lies on that image (see build_preprocess).

    "raddiff" resizes the shortest side and centre-crops, so the frame lies inside 0..1; "chexzero"
    letterboxes the whole image, so the frame reaches outside 0..1 on the padded axis. The arithmetic
    follows torchvision's Resize/CenterCrop and chexzero_pad, rounding included.
    """
    if name == "raddiff":
        short, long = sorted((width, height))
        resized_long = int(image_size * long / short)
        new_w, new_h = (image_size, resized_long) if width <= height else (resized_long, image_size)
        left, top = round((new_w - image_size) / 2.0), round((new_h - image_size) / 2.0)
        return left / new_w, top / new_h, (left + image_size) / new_w, (top + image_size) / new_h
    if name == "chexzero":
        ratio = CHEXZERO_PAD_PX / max(width, height)
        new_w, new_h = max(1, int(width * ratio)), max(1, int(height * ratio))
        left, top = (CHEXZERO_PAD_PX - new_w) // 2, (CHEXZERO_PAD_PX - new_h) // 2
        return -left / new_w, -top / new_h, (CHEXZERO_PAD_PX - left) / new_w, (CHEXZERO_PAD_PX - top) / new_h
    raise ValueError(f"unknown preprocessing {name!r}; use 'raddiff' or 'chexzero'")
