"""What the harness records per pair: the ranked findings, the judge's scores, Acc@1 / Acc@5, the time, and
whether it failed (a failed pair counts 0; it is never dropped)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from raddiff_orchestrator.agent.results import AnalysisResult

Status = Literal["succeeded", "failed"]
DEFAULT_FDR = 0.05  # the orchestrator's ranker.fdr default


def accuracy_at(scores: Sequence[int], k: int) -> float:
    """RadDiff's Acc@k: the best judge score among the top k findings over the maximum score 2 (0 if none)."""
    return max(scores[:k], default=0) / 2.0


@dataclass(frozen=True)
class RankedFinding:
    rank: int
    finding: str
    score: int | None = None  # the judge's 2 / 1 / 0; None when the judge did not see it
    auroc: float | None = None
    auroc_ci: list[float] | None = None
    p_value: float | None = None
    q_value: float | None = None
    share_a: float | None = None  # report benchmark: share of A's / B's reports that affirm the finding
    share_b: float | None = None
    supported: bool | None = None  # the orchestrator's call: set difference and specificity hold at its FDR
    specific_auroc: float | None = None
    specific_q_value: float | None = None


@dataclass
class PairResult:
    index: int
    id: str
    difficulty: str
    set1: str
    set2: str
    status: Status = "failed"
    error: str | None = None
    bad_input: bool = False  # the orchestrator refused the pair (4xx) or the pair itself is malformed
    analysis_id: str | None = None
    proposer: str = ""
    findings: list[RankedFinding] = field(default_factory=list)
    scores: list[int] = field(default_factory=list)
    judge: str = ""  # the backend that scored
    judged_by: str = ""  # "orchestrator" or "harness"
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    null: bool = False  # a null pair: the sets do not differ, so no Acc figure; only what it claims counts
    fdr: float = DEFAULT_FDR  # the run's ranker.fdr, for the raw rule (q_value < fdr)
    verdict: str = ""  # the result's verdict in words, e.g. "no supported difference found"

    @property
    def acc_at_1(self) -> float:
        return accuracy_at(self.scores, 1) if self.status == "succeeded" else 0.0

    @property
    def acc_at_5(self) -> float:
        return accuracy_at(self.scores, 5) if self.status == "succeeded" else 0.0

    def fail(self, error: str, bad_input: bool = False) -> PairResult:
        self.status, self.error, self.bad_input = "failed", error, bad_input
        return self

    def judged(self, scores: Sequence[int], backend: str, by: str) -> PairResult:
        """Record the judge's scores (one per finding, best first) and mark the pair succeeded."""
        if len(scores) > len(self.findings) or any(s not in (0, 1, 2) for s in scores):
            return self.fail(f"the judge returned scores {list(scores)} for {len(self.findings)} findings")
        self.scores, self.judge, self.judged_by, self.status = list(scores), backend, by, "succeeded"
        self.findings = [
            RankedFinding(**{**asdict(f), "score": scores[i] if i < len(scores) else None})
            for i, f in enumerate(self.findings)
        ]
        return self

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "acc_at_1": self.acc_at_1, "acc_at_5": self.acc_at_5, "seconds": round(self.seconds, 3)}


def ranked_findings(results: AnalysisResult) -> list[RankedFinding]:
    """The ranked findings of an analysis result (GET /v1/analyses/{id} `results`, read with
    StoredResult.from_json), best first."""
    return [
        RankedFinding(
            rank=item.rank,
            finding=item.finding,
            auroc=item.auroc,
            auroc_ci=list(item.auroc_ci) or None,
            p_value=item.p_value,
            q_value=item.q_value,
            # None, not the model's default False, where the orchestrator ran no specificity test (an older one).
            supported=item.supported if item.specificity_tested else None,
            specific_auroc=item.specific_auroc,
            specific_q_value=item.specific_q_value,
        )
        for item in results.findings
    ]


def ranker_fdr(*configs: dict[str, Any] | None) -> float:
    """ranker.fdr of the first config that states it (the analysis's own, then the one sent), else 0.05."""
    for config in configs:
        ranker = (config or {}).get("ranker")
        if isinstance(ranker, dict) and isinstance(ranker.get("fdr"), int | float):
            return float(ranker["fdr"])
    return DEFAULT_FDR
