"""Embedding engines: images and texts to L2-normalised vectors. No gRPC in here.

Batch-invariant results: a model's float results depend on the shape of the batch an input runs in (BLAS
and cuBLAS pick their blocking, and so their order of summation, by the matrix shapes), by ~1e-7 here,
enough to flip an AUROC tie, a similarity threshold or a ranking. The service batches concurrent callers
together (raddiff_kit.batching.MicroBatcher), so without care an image's vector would depend on who else
was calling at that moment, and an analysis on a busy stack (or one reading vectors another analysis
cached) would not repeat one run alone. So every forward pass has the same shape: `batch_shape` rows,
the last pass of a call padded with copies of its last input (`in_fixed_batches`). With the shape fixed,
a row's result depends on that row alone, not on the other rows or its place among them; the tests check
that vectors are bit-identical however the inputs are batched.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from open_clip.transformer import VisionTransformer
from PIL import Image

from raddiff_embedding.checkpoints import LoadedClip, Tokenizer, load_checkpoint
from raddiff_embedding.preprocess import Frame, Preprocess, build_preprocess, input_frame
from raddiff_embedding.settings import DEFAULT_BATCH_SHAPE, Preprocessing


class EmbeddingEngine(ABC):
    """A CLIP-style dual encoder. Every returned vector is L2-normalised float32.

    Besides one vector per image, a vision transformer gives one per patch
    (embed_prepared_patches), to show where in an image a text's similarity lies.
    """

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Identifies weights and preprocessing, so callers can cache vectors per model."""

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @property
    @abstractmethod
    def preprocessing(self) -> str: ...

    @property
    @abstractmethod
    def image_size(self) -> int: ...

    @abstractmethod
    def prepare_image(self, image: Image.Image) -> torch.Tensor:
        """The model input for one image (after preprocessing), small enough to queue for a batch."""

    @abstractmethod
    def embed_prepared(self, inputs: list[torch.Tensor]) -> np.ndarray:
        """(n, dim) float32 for n prepared images."""

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """(n, dim) float32 for n PIL images."""
        return self.embed_prepared([self.prepare_image(image) for image in images])

    @abstractmethod
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32 for n non-empty strings."""

    @property
    @abstractmethod
    def patch_grid(self) -> tuple[int, int] | None:
        """(rows, cols) of embed_prepared_patches, or None when the model has no patch tokens."""

    @abstractmethod
    def input_frame(self, image: Image.Image) -> Frame:
        """Where prepare_image(image) lies on the image, in its normalised coordinates."""

    @abstractmethod
    def embed_prepared_patches(self, inputs: list[torch.Tensor]) -> np.ndarray:
        """(n, rows, cols, dim) float32: every patch token in the joint space, each L2-normalised."""


Item = TypeVar("Item")


def in_fixed_batches(items: Sequence[Item], size: int, run: Callable[[list[Item]], np.ndarray]) -> np.ndarray:
    """run() over passes of exactly `size` items, the last padded with copies of its last item (their
    outputs dropped): each item's output is then the same whatever it is batched with. size 0 runs
    all items in one pass of their own number (faster on a GPU, not batch-invariant)."""
    if size <= 0 or not items:
        return run(list(items))
    outputs = []
    for start in range(0, len(items), size):
        chunk = list(items[start : start + size])
        real = len(chunk)
        chunk += [chunk[-1]] * (size - real)
        outputs.append(run(chunk)[:real])
    return np.concatenate(outputs)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class OpenClipEngine(EmbeddingEngine):
    def __init__(
        self,
        loaded: LoadedClip,
        preprocessing: Preprocessing,
        device: str = "cpu",
        batch_shape: int = DEFAULT_BATCH_SHAPE,
    ) -> None:
        self._device = resolve_device(device)
        self._batch_shape = batch_shape
        self._model = loaded.model.eval().to(self._device)
        self._tokenizer: Tokenizer = loaded.tokenizer
        self._preprocess: Preprocess = build_preprocess(preprocessing, loaded.image_size)
        self._preprocessing = preprocessing
        self._image_size = loaded.image_size
        self._model_id = f"{loaded.name}@sha256:{loaded.digest[:16]}+{preprocessing}"
        self._dim = int(self.embed_texts(["dimension probe"]).shape[-1])
        self._patch_grid = _patch_grid(self._model.visual)
        # One image through the model now, so the first caller does not pay torch's one-time set-up.
        self.embed_images([Image.new("RGB", (self._image_size, self._image_size))])

    @classmethod
    def from_checkpoint(
        cls, path: Path, preprocessing: Preprocessing, device: str = "cpu", batch_shape: int = DEFAULT_BATCH_SHAPE
    ) -> OpenClipEngine:
        return cls(load_checkpoint(path), preprocessing, device, batch_shape)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def preprocessing(self) -> str:
        return self._preprocessing

    @property
    def image_size(self) -> int:
        return self._image_size

    def prepare_image(self, image: Image.Image) -> torch.Tensor:
        return self._preprocess(image)

    def embed_prepared(self, inputs: list[torch.Tensor]) -> np.ndarray:
        return in_fixed_batches(inputs, self._batch_shape, self._image_pass)

    def _image_pass(self, inputs: list[torch.Tensor]) -> np.ndarray:
        batch = torch.stack(inputs).to(self._device)
        with torch.inference_mode():
            return self._model.encode_image(batch, normalize=True).float().cpu().numpy()

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        # The tokenizer pads every text to the model's context length: a pass's shape is its row count.
        return in_fixed_batches(texts, self._batch_shape, self._text_pass)

    def _text_pass(self, texts: list[str]) -> np.ndarray:
        tokens = self._tokenizer(texts).to(self._device)
        with torch.inference_mode():
            return self._model.encode_text(tokens, normalize=True).float().cpu().numpy()

    @property
    def patch_grid(self) -> tuple[int, int] | None:
        return self._patch_grid

    def input_frame(self, image: Image.Image) -> Frame:
        return input_frame(self._preprocessing, self._image_size, image.width, image.height)

    def embed_prepared_patches(self, inputs: list[torch.Tensor]) -> np.ndarray:
        if self._patch_grid is None:
            raise ValueError("this model's image tower has no patch tokens in the joint space")
        return in_fixed_batches(inputs, self._batch_shape, self._patch_pass)

    def _patch_pass(self, inputs: list[torch.Tensor]) -> np.ndarray:
        visual = self._model.visual
        batch = torch.stack(inputs).to(self._device)
        with torch.inference_mode():
            # The last block's output through ln_post, as the pooled class token gets it, then proj:
            # each patch token lands in the space the pooled image vector and the texts share.
            out = visual.forward_intermediates(
                batch, indices=1, normalize_intermediates=True, intermediates_only=True, output_fmt="NLC"
            )
            patches = out["image_intermediates"][-1] @ visual.proj
            patches = torch.nn.functional.normalize(patches, dim=-1)
        rows, cols = self._patch_grid
        return patches.float().cpu().numpy().reshape(len(inputs), rows, cols, -1)


def _patch_grid(visual: torch.nn.Module) -> tuple[int, int] | None:
    """The patch grid when the tower is a plain CLIP ViT (class-token pooling, ln_post then proj); else None.

    Attention-pooled (CoCa) or timm towers put their tokens through other heads, so their patch tokens
    would not live in the space the texts are compared in.
    """
    plain = (
        isinstance(visual, VisionTransformer)
        and visual.attn_pool is None
        and not visual.final_ln_after_pool
        and visual.pool_type == "tok"
        and visual.proj is not None
    )
    if not plain:
        return None
    rows, cols = visual.grid_size
    return int(rows), int(cols)
