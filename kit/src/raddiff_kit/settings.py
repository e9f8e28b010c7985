"""Configuration from environment variables, validated at start.

Every service subclasses ServiceSettings with its own env prefix
(RADDIFF_EMBEDDING_GRPC_PORT, ...). Shared keys (data roots, scratch store)
are read without a service prefix so that one value serves the whole stack.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)


class SharedSettings(BaseSettings):
    """Keys every service reads under the common RADDIFF_ prefix."""

    model_config = SettingsConfigDict(env_prefix="RADDIFF_", extra="ignore")

    # Colon-separated list of folders whose images the services may read.
    data_roots: str = Field(default="", description="colon-separated folders images may be read from")
    scratch_dir: Path = Field(default=Path("/tmp/raddiff-scratch"), description="store for grids and crops")
    # The model cache; each service's default checkpoint lives in a folder under it.
    model_dir: Path = Field(default=Path(".models"), description="model cache folder")
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"unknown log level {value!r}; use DEBUG, INFO, WARNING or ERROR")
        return upper

    def root_paths(self) -> list[Path]:
        return [Path(p) for p in self.data_roots.split(":") if p]


class ServiceSettings(BaseSettings):
    """Transport keys every gRPC service has; subclasses set env_prefix."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = "0.0.0.0"
    grpc_port: int = Field(default=50051, ge=1, le=65535)
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="0 disables the metrics endpoint")
    # Seconds to finish in-flight calls after SIGTERM; keep below the pod's
    # terminationGracePeriodSeconds minus its preStop pause.
    drain_seconds: float = Field(default=20.0, ge=0)
    max_concurrent_rpcs: int = Field(default=256, ge=1)


def load_settings(cls: type[S]) -> S:
    """Build settings from the environment, or exit with a message naming the bad key."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"invalid configuration for {cls.__name__}:"]
        for err in exc.errors():
            key = (prefix + "_".join(str(p) for p in err["loc"])).upper()
            lines.append(f"  {key}: {err['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
