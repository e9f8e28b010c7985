"""What one analysis is asked: two validated image sets and how to compare them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from raddiff_orchestrator.agent.config import AgentConfig


@dataclass(frozen=True)
class ImageSet:
    name: str
    uris: list[str]  # canonical file:/// uris, already validated


@dataclass(frozen=True)
class GroundTruth:
    a: str
    b: str


@dataclass(frozen=True)
class AnalysisTask:
    set_a: ImageSet
    set_b: ImageSet
    config: AgentConfig = field(default_factory=AgentConfig)
    reports: dict[str, str] = field(default_factory=dict)  # image uri -> report text
    ground_truth: GroundTruth | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "set_a": {"name": self.set_a.name, "uris": list(self.set_a.uris)},
            "set_b": {"name": self.set_b.name, "uris": list(self.set_b.uris)},
            "config": self.config.to_json(),
            "reports": dict(self.reports),
            "ground_truth": {"a": self.ground_truth.a, "b": self.ground_truth.b} if self.ground_truth else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnalysisTask:
        truth = data.get("ground_truth")
        return cls(
            set_a=ImageSet(**data["set_a"]),
            set_b=ImageSet(**data["set_b"]),
            config=AgentConfig.model_validate(data.get("config", {})),
            reports=dict(data.get("reports", {})),
            ground_truth=GroundTruth(**truth) if truth else None,
        )
