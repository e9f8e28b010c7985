"""RADDIFF_LOCALIZE_* keys, plus RADDIFF_LLM_TARGET (the LLM proxy this service calls)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict
from raddiff_kit.settings import ServiceSettings


class LocalizeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RADDIFF_LOCALIZE_", extra="ignore", populate_by_name=True)

    grpc_port: int = Field(default=50054, ge=1, le=65535)
    metrics_port: int = Field(default=9104, ge=0, le=65535)
    # Clients of service X read RADDIFF_<X>_TARGET; empty means no LLM is reachable.
    llm_target: str = Field(default="", validation_alias=AliasChoices("RADDIFF_LLM_TARGET"))
    default_backend: str = "llm"
    llm_model: str = Field(default="", description="empty means the proxy's default model")
    llm_timeout_s: float = Field(default=120.0, gt=0, description="per LLM call, capped by the caller's deadline")
    llm_retries: int = Field(default=2, ge=0, description="new tries after an unusable answer")
    max_findings: int = Field(default=20, ge=1)
    max_images: int = Field(default=80, ge=1, description="images per call, all sets together")
    crop_max_px: int = Field(default=1024, ge=16, description="longest side of a stored crop")
