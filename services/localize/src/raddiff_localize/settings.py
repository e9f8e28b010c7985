"""RADDIFF_LOCALIZE_* keys, plus the targets of the services its backends call (RADDIFF_<X>_TARGET)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from raddiff_kit.settings import ServiceSettings
from raddiff_localize.similarity_map import MapOptions


class LocalizeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RADDIFF_LOCALIZE_", extra="ignore", populate_by_name=True)

    grpc_port: int = Field(default=50054, ge=1, le=65535)
    metrics_port: int = Field(default=9104, ge=0, le=65535)
    # Clients of service X read RADDIFF_<X>_TARGET; empty means that service is not reachable.
    llm_target: str = Field(default="", validation_alias=AliasChoices("RADDIFF_LLM_TARGET"))
    embedding_target: str = Field(default="", validation_alias=AliasChoices("RADDIFF_EMBEDDING_TARGET"))
    vlm_target: str = Field(default="", validation_alias=AliasChoices("RADDIFF_VLM_TARGET"))
    # "model" needs only the embedding service: the embedded default.
    default_backend: str = "model"
    max_findings: int = Field(default=20, ge=1)
    max_images: int = Field(default=80, ge=1, description="images per call, all sets together")
    crop_max_px: int = Field(default=1024, ge=16, description="longest side of a stored crop")

    llm_model: str = Field(default="", description="empty means the proxy's default model")
    llm_timeout_s: float = Field(default=120.0, gt=0, description="per LLM call, capped by the caller's deadline")
    llm_retries: int = Field(default=2, ge=0, description="new tries after an unusable answer")

    embedding_timeout_s: float = Field(default=60.0, gt=0, description="per embedding call, capped by the deadline")
    model_map_cells: int = Field(default=28, ge=4, le=256, description="the similarity map's grid over an image")
    model_smooth_cells: float = Field(default=1.0, ge=0, description="Gaussian sigma of the t-map, in cells")
    model_min_peak_t: float = Field(default=3.0, gt=0, description="a t-map whose |t| stays below this is flat")
    model_region_fraction: float = Field(default=0.5, gt=0, le=1, description="region cells: |t| >= this * peak")
    model_min_box_side: float = Field(default=0.15, gt=0, le=1, description="smallest box side, normalised")

    vlm_timeout_s: float = Field(default=60.0, gt=0, description="per VLM call, capped by the caller's deadline")
    vlm_retries: int = Field(default=1, ge=0, description="new tries, sampled, after an answer without a box")
    vlm_max_images: int = Field(default=8, ge=1, description="A images the VLM is asked about, per finding")
    vlm_max_tokens: int = Field(default=24, ge=4, description="a box is four location tokens")
    vlm_concurrency: int = Field(default=8, ge=1, description="VLM calls in flight per Localize call")

    def map_options(self) -> MapOptions:
        return MapOptions(
            cells=self.model_map_cells,
            smooth_cells=self.model_smooth_cells,
            min_peak_t=self.model_min_peak_t,
            region_fraction=self.model_region_fraction,
            min_box_side=self.model_min_box_side,
        )
