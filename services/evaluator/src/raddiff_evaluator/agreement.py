"""Agreement of a judge with the hand-labelled set (data/judge_cases.jsonl):
exact agreement and Cohen's kappa, per split.

    python -m raddiff_evaluator.agreement        # the semantic judge, in-process
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from raddiff_evaluator.engine import SCORES


@dataclass(frozen=True)
class LabelledCase:
    id: str
    split: str
    prediction: str
    truth_a: str
    truth_b: str
    label: int
    reason: str


def load_cases(split: str | None = None) -> list[LabelledCase]:
    text = resources.files("raddiff_evaluator").joinpath("data/judge_cases.jsonl").read_text(encoding="utf-8")
    cases = [LabelledCase(**json.loads(line)) for line in text.splitlines() if line.strip()]
    return [c for c in cases if split is None or c.split == split]


def exact_agreement(labels: Sequence[int], judged: Sequence[int]) -> float:
    return sum(x == y for x, y in zip(labels, judged, strict=True)) / len(labels)


def cohen_kappa(labels: Sequence[int], judged: Sequence[int]) -> float:
    """Unweighted Cohen's kappa over the scores 0, 1, 2: agreement beyond what the marginals give by chance."""
    n = len(labels)
    observed = exact_agreement(labels, judged)
    count_l, count_j = Counter(labels), Counter(judged)
    expected = sum(count_l[s] * count_j[s] for s in SCORES) / (n * n)
    return 1.0 if expected == 1.0 else (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class AgreementReport:
    split: str
    n: int
    agreement: float
    kappa: float
    disagreements: list[tuple[LabelledCase, int, str]]

    def summary(self) -> str:
        return f"{self.split}: n={self.n} exact agreement {self.agreement:.3f} Cohen's kappa {self.kappa:.3f}"


def report(split: str, cases: list[LabelledCase], scores: list[int], rationales: list[str]) -> AgreementReport:
    labels = [c.label for c in cases]
    wrong = [(c, s, r) for c, s, r in zip(cases, scores, rationales, strict=True) if s != c.label]
    return AgreementReport(split, len(cases), exact_agreement(labels, scores), cohen_kappa(labels, scores), wrong)


def main() -> None:
    from raddiff_evaluator.embedder import SentenceEmbedder
    from raddiff_evaluator.engine import JudgeInput
    from raddiff_evaluator.semantic import SemanticJudge

    judge = SemanticJudge(SentenceEmbedder())
    judge.load_sync()
    for split in ("tune", "heldout"):
        cases = load_cases(split)
        verdicts = [judge.judge_sync(JudgeInput([c.prediction], c.truth_a, c.truth_b))[0] for c in cases]
        result = report(split, cases, [v.score for v in verdicts], [v.rationale for v in verdicts])
        print(result.summary())
        for case, score, why in result.disagreements:
            print(f"  {case.id} label {case.label} judged {score}: {case.prediction!r} | A {case.truth_a!r}: {why}")


if __name__ == "__main__":
    main()
