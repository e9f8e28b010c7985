"""Embedding engines: images and texts to L2-normalised vectors. No gRPC in here."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
from open_clip.transformer import VisionTransformer
from PIL import Image

from raddiff_embedding.checkpoints import LoadedClip, Tokenizer, load_checkpoint
from raddiff_embedding.preprocess import Frame, Preprocess, build_preprocess, input_frame
from raddiff_embedding.settings import Preprocessing


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class OpenClipEngine(EmbeddingEngine):
    def __init__(self, loaded: LoadedClip, preprocessing: Preprocessing, device: str = "cpu") -> None:
        self._device = resolve_device(device)
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
    def from_checkpoint(cls, path: Path, preprocessing: Preprocessing, device: str = "cpu") -> OpenClipEngine:
        return cls(load_checkpoint(path), preprocessing, device)

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
        batch = torch.stack(inputs).to(self._device)
        with torch.inference_mode():
            return self._model.encode_image(batch, normalize=True).float().cpu().numpy()

    def embed_texts(self, texts: list[str]) -> np.ndarray:
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
