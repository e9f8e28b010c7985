"""The REST API's request and response shapes (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.results import StoredResult

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
_NonEmpty = Annotated[str, Field(min_length=1, max_length=4096)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class SetsInput(_Strict):
    """Two image sets given directly: absolute paths or file:/// uris under RADDIFF_DATA_ROOTS."""

    kind: Literal["sets"]
    set_a: list[_NonEmpty]
    set_b: list[_NonEmpty]
    name_a: str = Field(default="A", min_length=1, max_length=200)
    name_b: str = Field(default="B", min_length=1, max_length=200)


class CsvInput(_Strict):
    """A CSV with `path` and `group_name` columns (optional `report`); paths relative to the CSV's folder."""

    kind: Literal["csv"]
    path: _NonEmpty
    group_a: str = Field(min_length=1)
    group_b: str = Field(min_length=1)


class JsonlInput(_Strict):
    """One pair of a RadDiffBench-style JSONL (set1, set2, set1_images, set2_images per line),
    chosen by 0-based line index or by its set names."""

    kind: Literal["jsonl"]
    path: _NonEmpty
    pair_index: int | None = Field(default=None, ge=0)
    set1: str | None = None
    set2: str | None = None

    @model_validator(mode="after")
    def _one_way_to_choose(self) -> JsonlInput:
        by_index = self.pair_index is not None
        by_name = self.set1 is not None or self.set2 is not None
        if by_index == by_name or (by_name and (self.set1 is None or self.set2 is None)):
            raise ValueError("choose the pair either by pair_index or by both set1 and set2")
        return self


class GroundTruthIn(_Strict):
    a: str = Field(min_length=1, max_length=2000, description="the true description of set A")
    b: str = Field(min_length=1, max_length=2000, description="the true description of set B")


class AnalysisCreate(_Strict):
    input: Annotated[SetsInput | CsvInput | JsonlInput, Field(discriminator="kind")]
    name: str | None = Field(default=None, max_length=200)
    reports: dict[str, str] = Field(
        default_factory=dict, description="report text per image, keyed by the image's path or uri"
    )
    ground_truth: GroundTruthIn | None = None
    config: AgentConfig = Field(
        default_factory=AgentConfig, description="RadDiff's config keys (configs/raddiff_base.yaml); see AgentConfig"
    )


class Accepted(BaseModel):
    id: str
    status: Status
    url: str


class AnalysisSummary(BaseModel):
    id: str
    name: str | None
    status: Status
    stage: str
    progress: float
    cancel_requested: bool
    sets: dict[str, Any]
    attempts: int
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None


class AnalysisView(AnalysisSummary):
    ground_truth: dict[str, str] | None
    config: dict[str, Any]
    # The agent's own result model (raddiff.result/1 plus the worker's stage_seconds), so that the OpenAPI
    # schema shows every field; a stored result is validated into it as it is served.
    results: StoredResult | None = Field(
        description="the analysis's result (raddiff_orchestrator.agent.results), null until it has succeeded"
    )


class AnalysisPage(BaseModel):
    analyses: list[AnalysisSummary]
    next_page_token: str | None
