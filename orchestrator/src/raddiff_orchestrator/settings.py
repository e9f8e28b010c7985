"""The orchestrator's configuration: RADDIFF_ORCH_* keys, plus the shared
RADDIFF_* keys (data roots, scratch store) and the services' targets."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OrchestratorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RADDIFF_ORCH_", extra="ignore")

    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)

    # -- persistence -----------------------------------------------------------
    state_dir: Path = Field(default=Path("/tmp/raddiff-orchestrator"), description="holds the SQLite file")
    # Empty means SQLite in state_dir; postgresql+psycopg://user@host/db for replicas sharing one database.
    database_url: str = ""

    # -- worker ------------------------------------------------------------------
    # Analyses run at once by this process; 0 makes `serve` an API-only replica.
    worker_concurrency: int = Field(default=2, ge=0, le=64)
    # Empty means hostname-pid-random: unique per process, so a restarted process never
    # mistakes a dead predecessor's lease for its own.
    worker_id: str = ""
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    # An analysis whose workers died this many times is failed rather than retried forever.
    max_attempts: int = Field(default=3, ge=1)

    # -- calls to the services -----------------------------------------------------
    call_timeout_seconds: float = Field(default=120.0, gt=0, description="deadline of every model call")
    health_timeout_seconds: float = Field(default=2.0, gt=0)
    embed_batch_size: int = Field(default=64, ge=1, le=1024)
    caption_concurrency: int = Field(default=4, ge=1, le=256)
    caption_max_tokens: int = Field(default=256, ge=1, le=4096)
    # Empty means the LLM proxy's default model.
    llm_model: str = ""
    # Embedding vectors kept in this process (LRU), in front of the database's embedding_cache table.
    embedding_cache_items: int = Field(default=50_000, ge=0)
    embedding_cache_in_database: bool = True

    # -- limits on what one analysis may ask for ------------------------------------
    max_images_per_set: int = Field(default=5000, ge=1)
    # Images of each set ranked (AUROC); a request may ask for fewer, never more. RadDiff's cap is 5000.
    max_rank_images_per_set: int = Field(default=5000, ge=2)
    max_manifest_bytes: int = Field(default=64 * 1024 * 1024, ge=1, description="largest CSV or JSONL accepted")
    validation_threads: int = Field(default=4, ge=1, le=64)
    page_size_default: int = Field(default=20, ge=1)
    page_size_max: int = Field(default=200, ge=1)

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> OrchestratorSettings:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("heartbeat_seconds must be shorter than lease_seconds, or leases expire between beats")
        return self

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'orchestrator.db').resolve()}"

    def resolved_worker_id(self) -> str:
        return self.worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class ServiceTargets(BaseSettings):
    """Where each service listens (RADDIFF_<X>_TARGET); empty means not configured."""

    model_config = SettingsConfigDict(env_prefix="RADDIFF_", extra="ignore")

    vlm_target: str = ""
    embedding_target: str = ""
    llm_target: str = ""
    localize_target: str = ""
    evaluator_target: str = ""

    def configured(self) -> dict[str, str]:
        """Service name -> target for every service that has one."""
        named = {
            "vlm": self.vlm_target,
            "embedding": self.embedding_target,
            "llm": self.llm_target,
            "localize": self.localize_target,
            "evaluator": self.evaluator_target,
        }
        return {name: target for name, target in named.items() if target}
