"""What one analysis is asked: two validated image sets and how to compare them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ProposerChoice = Literal["auto", "llm", "offline"]


@dataclass(frozen=True)
class ImageSet:
    name: str
    uris: list[str]  # canonical file:/// uris, already validated


@dataclass(frozen=True)
class GroundTruth:
    a: str
    b: str


@dataclass(frozen=True)
class AgentConfig:
    sample_size: int = 20  # images of each set captioned
    seed: int = 0
    rank_cap: int = 1000  # images of each set ranked
    proposer: ProposerChoice = "auto"  # auto: the LLM when one is configured, else offline
    min_findings: int = 5
    max_findings: int = 10
    judge_backend: str = ""  # empty: the evaluator's default


@dataclass(frozen=True)
class AnalysisTask:
    set_a: ImageSet
    set_b: ImageSet
    config: AgentConfig = field(default_factory=AgentConfig)
    reports: dict[str, str] = field(default_factory=dict)  # image uri -> report text
    ground_truth: GroundTruth | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnalysisTask:
        truth = data.get("ground_truth")
        return cls(
            set_a=ImageSet(**data["set_a"]),
            set_b=ImageSet(**data["set_b"]),
            config=AgentConfig(**data.get("config", {})),
            reports=dict(data.get("reports", {})),
            ground_truth=GroundTruth(**truth) if truth else None,
        )
