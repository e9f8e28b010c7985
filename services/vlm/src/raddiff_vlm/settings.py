"""RADDIFF_VLM_* configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from raddiff_kit.settings import ServiceSettings, SharedSettings

# Engines this build can serve; the servicer only ever sees the abstract VLMEngine.
KNOWN_ENGINES = ("transformers", "vllm")


class VLMSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RADDIFF_VLM_", extra="ignore")

    grpc_port: int = Field(default=50051, ge=1, le=65535)
    metrics_port: int = Field(default=9101, ge=0, le=65535)

    engine: str = Field(
        default="transformers",
        description="which engine serves the model: transformers (any checkpoint, remote code included) or vllm "
        "(architectures vLLM supports natively; needs the vllm package)",
    )
    # A local Hugging Face checkpoint folder; empty means $RADDIFF_MODEL_DIR/vlm.
    checkpoint: Path | None = None
    # Remote-code checkpoints (CheXagent-2-3b) run code shipped inside the folder.
    trust_remote_code: bool = False
    device: str = Field(default="cpu", description="transformers engine's torch device: cpu, cuda, cuda:1, ...")
    # Both engines; "auto" takes the checkpoint's torch_dtype.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"
    # "pil" gives the same pixels as a vLLM server without torchvision; empty keeps the checkpoint's default.
    image_backend: str = "pil"
    torch_threads: int = Field(default=0, ge=0, description="0 keeps torch's default")

    max_images_per_request: int = Field(default=4, ge=1)
    default_max_tokens: int = Field(default=256, ge=1, description="used when a request leaves max_tokens at 0")
    max_tokens_limit: int = Field(default=1024, ge=1, description="the largest max_tokens a request may ask for")
    max_batch: int = Field(default=8, ge=1, description="requests decoded together (vllm: max_num_seqs)")
    batch_wait_ms: float = Field(default=10.0, ge=0, description="how long a batch waits to fill (transformers)")
    batch_invariant: bool = Field(
        default=True,
        description="transformers: decode each request of a batch on its own, so that its tokens never depend on "
        "what it was batched with (padding moves logits by ~1e-6, enough to flip a close greedy token); on CPU "
        "as fast as padded batches (measured 4.0 s against 9.0 s for 24 captions); false trades that for GPU "
        "throughput",
    )

    # The vllm engine's knobs (vLLM batches continuously: no batch_wait_ms).
    vllm_kv_cache_bytes: int = Field(
        default=256 * 2**20,
        ge=0,
        description="KV cache size in bytes; 0 lets vLLM size it from vllm_gpu_memory_utilization (GPU only: on a "
        "CPU vLLM would take most of the machine's memory)",
    )
    vllm_gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    vllm_max_model_len: int = Field(default=0, ge=0, description="context length; 0 takes the model's own")
    # Eager mode skips torch.compile and CUDA graphs: the CPU build's compile cache is unreliable, and start is faster.
    vllm_enforce_eager: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> VLMSettings:
        if self.engine not in KNOWN_ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; this build serves {', '.join(KNOWN_ENGINES)}")
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError(
                f"default_max_tokens ({self.default_max_tokens}) exceeds max_tokens_limit ({self.max_tokens_limit})"
            )
        return self

    def checkpoint_path(self, shared: SharedSettings) -> Path:
        return self.checkpoint if self.checkpoint is not None else shared.model_dir / "vlm"
