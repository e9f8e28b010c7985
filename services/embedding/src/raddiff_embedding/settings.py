"""RADDIFF_EMBEDDING_* keys."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from raddiff_kit.settings import ServiceSettings, SharedSettings

DEFAULT_BATCH_SHAPE = 8  # rows per forward pass: about full throughput on a CPU, little padding for a lone call

Preprocessing = Literal["raddiff", "chexzero"]


class EmbeddingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RADDIFF_EMBEDDING_", extra="ignore", env_ignore_empty=True)

    grpc_port: int = Field(default=50052, ge=1, le=65535)
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    # A CheXzero/OpenAI-format state dict file, or a folder with open_clip_config.json and its weights.
    # Unset means $RADDIFF_MODEL_DIR/clip.
    checkpoint: Path | None = None
    preprocessing: Preprocessing = "raddiff"
    max_items: int = Field(default=256, ge=1, description="images or texts per call")
    max_patch_images: int = Field(
        default=16, ge=1, description="images per EmbedImagePatches call (also capped by gRPC's 4 MB message limit)"
    )
    max_text_chars: int = Field(default=4000, ge=1)
    max_batch: int = Field(default=32, ge=1, description="items per engine batch across concurrent calls")
    max_wait_ms: float = Field(default=5.0, ge=0, description="how long a batch waits to fill")
    batch_shape: int = Field(
        default=DEFAULT_BATCH_SHAPE,
        ge=0,
        description="rows in every forward pass (a batch runs as passes of exactly this many, the last padded), "
        "so a vector is bit-identical whatever it was batched with; 0 runs each batch as it comes (faster on a "
        "GPU, but vectors then vary by ~1e-7 with concurrent traffic)",
    )
    torch_threads: int = Field(default=0, ge=0, description="0 keeps torch's default")
    # "auto" is the first GPU when torch sees one, else the CPU.
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")

    def checkpoint_path(self, shared: SharedSettings) -> Path:
        return self.checkpoint if self.checkpoint is not None else shared.model_dir / "clip"
