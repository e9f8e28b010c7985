"""The state one analysis builds up, and the shape of a step: each step reads and extends one AnalysisState."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from raddiff_orchestrator.agent.proposers import Evidence, Proposal
from raddiff_orchestrator.agent.results import Evaluation, RankedBrief, VisualSearch
from raddiff_orchestrator.agent.specificity import ShiftModel, SpecificStats
from raddiff_orchestrator.agent.statistics import FindingStats
from raddiff_orchestrator.agent.task import AnalysisTask

StageReport = Callable[[float], Awaitable[None]]  # fraction of the current step done


def accuracy_at(scores: Sequence[int], k: int) -> float:
    """RadDiff's Acc@k: the best judge score among the top k, over the maximum score 2."""
    return max(scores[:k], default=0) / 2.0


def seeded_sample(uris: Sequence[str], k: int, seed: str) -> list[str]:
    """k of the uris, the same k for the same seed; all of them, in order, when k covers them."""
    if k >= len(uris):
        return list(uris)
    return random.Random(seed).sample(list(uris), k)


# -- the state -----------------------------------------------------------------------------------
@dataclass
class RoundWork:
    index: int
    sample_a: list[str]
    sample_b: list[str]
    grid_a: str = ""
    grid_b: str = ""
    searches: list[VisualSearch] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)


@dataclass
class Scored:
    """A finding scored on every ranked image (A's first, then B's)."""

    finding: str
    scores: np.ndarray
    auroc: float
    effect_size: float  # Cohen's d, A minus B
    chexzero_auroc: float | None
    iteration: int  # the first iteration that proposed it
    specific: np.ndarray | None = None  # scores less each image's baseline (specificity.ShiftModel)
    specific_auroc: float | None = None
    specific_effect: float | None = None  # Cohen's d of the residuals: what the specificity test compares
    searches: list[VisualSearch] = field(default_factory=list)


@dataclass
class IterationWork:
    index: int
    feedback: list[RankedBrief] = field(default_factory=list)
    rounds: list[RoundWork] = field(default_factory=list)
    deduplicated: list[str] = field(default_factory=list)
    ranking: list[Scored] = field(default_factory=list)
    evaluation: Evaluation | None = None


@dataclass
class AnalysisState:
    task: AnalysisTask
    captions: dict[str, str] = field(default_factory=dict)  # each image described once per analysis
    iterations: list[IterationWork] = field(default_factory=list)
    rank_a: list[str] = field(default_factory=list)
    rank_b: list[str] = field(default_factory=list)
    image_vectors: np.ndarray | None = None
    shift: ShiftModel | None = None  # the sets' common shift, as the control statements see it
    tested: dict[str, Scored] = field(default_factory=dict)  # normal form -> every finding ranked in the run
    final: list[Scored] = field(default_factory=list)
    final_stats: list[FindingStats] = field(default_factory=list)
    q_values: dict[str, float] = field(default_factory=dict)
    specificity: dict[str, SpecificStats] = field(default_factory=dict)  # normal form -> a final finding's
    evaluation: Evaluation | None = None
    proposer: str = ""
    embedding_model: str = ""
    cache: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def positive(self) -> np.ndarray:
        """Labels of the ranked images, A's first: True for A."""
        return np.r_[np.ones(len(self.rank_a), bool), np.zeros(len(self.rank_b), bool)]

    @property
    def current(self) -> IterationWork:
        return self.iterations[-1]

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def evidence(self, uris: Sequence[str]) -> list[Evidence]:
        reports = self.task.reports
        return [Evidence(u, self.captions.get(u, ""), reports.get(u, "")) for u in uris]

    def described(self, uris: Sequence[str]) -> list[Evidence]:
        """The evidence of every image of `uris` described so far in this analysis, any round or iteration."""
        return self.evidence([u for u in uris if u in self.captions])


class Step(Protocol):
    stage: str
    weight: float  # share of the whole run's progress

    async def run(self, state: AnalysisState, report: StageReport) -> None: ...
