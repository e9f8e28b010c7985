"""RADDIFF_LLM_* configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from raddiff_kit.settings import ServiceSettings


class LLMSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RADDIFF_LLM_", extra="ignore")

    grpc_port: int = Field(default=50053, ge=1, le=65535)
    metrics_port: int = Field(default=9103, ge=0, le=65535)

    # The upstream: OpenAI (https://api.openai.com/v1), Azure OpenAI's v1 endpoint
    # (https://<resource>.openai.azure.com/openai/v1/) or an in-cluster vLLM (http://vllm:8000/v1).
    base_url: str = Field(default="", description="OpenAI-compatible base URL; empty means no upstream")
    api_key: SecretStr = Field(default=SecretStr(""), description="from a Kubernetes Secret; empty for vLLM")
    model: str = Field(default="", description="model used when a request names none")

    timeout_s: float = Field(default=60.0, gt=0, description="per upstream call")
    max_attempts: int = Field(default=4, ge=1, description="upstream calls per request, the first included")
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=20.0, ge=0)
    # A Retry-After longer than this is not waited for: the request fails UNAVAILABLE at once.
    retry_after_cap_s: float = Field(default=60.0, ge=0)
    max_concurrency: int = Field(default=8, ge=1, description="calls in flight to the upstream")

    cache_enabled: bool = True
    cache_dir: Path = Field(default=Path("/tmp/raddiff-llm-cache"), description="content-addressed response cache")

    # USD per 1,000 tokens, for the cost counter (0 counts nothing).
    prompt_price_per_1k: float = Field(default=0.0, ge=0)
    completion_price_per_1k: float = Field(default=0.0, ge=0)

    max_images_per_request: int = Field(default=16, ge=0)
    # OpenAI's strict structured outputs; vLLM ignores the flag and always constrains.
    json_schema_strict: bool = True
