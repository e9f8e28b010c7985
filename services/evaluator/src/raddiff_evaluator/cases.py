"""The semantic judge against the synonym and hypernym cases (data/synonym_cases.jsonl):
exact agreement per category and split, and the cases it gets wrong.

    python -m raddiff_evaluator.cases              # table per category, both splits
    python -m raddiff_evaluator.cases --misses     # and every disagreement with the judge's reason
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources

from raddiff_evaluator.engine import JudgeInput
from raddiff_evaluator.semantic import SemanticJudge

SPLITS = ("tune", "heldout")


@dataclass(frozen=True)
class Case:
    id: str
    split: str
    category: str
    prediction: str
    truth_a: str
    truth_b: str
    label: int
    reason: str


@dataclass(frozen=True)
class Judged:
    case: Case
    score: int
    rationale: str

    @property
    def agrees(self) -> bool:
        return self.score == self.case.label


def load_cases(split: str | None = None) -> list[Case]:
    text = resources.files("raddiff_evaluator").joinpath("data/synonym_cases.jsonl").read_text(encoding="utf-8")
    cases = [Case(**json.loads(line)) for line in text.splitlines() if line.strip()]
    return [c for c in cases if split is None or c.split == split]


def judge_cases(judge: SemanticJudge, cases: list[Case]) -> list[Judged]:
    out = []
    for case in cases:
        verdict = judge.judge_sync(JudgeInput([case.prediction], case.truth_a, case.truth_b))[0]
        out.append(Judged(case, verdict.score, verdict.rationale))
    return out


def accuracy(judged: list[Judged]) -> float:
    return sum(j.agrees for j in judged) / len(judged) if judged else float("nan")


def table(judged: list[Judged]) -> str:
    """Exact agreement per category, one column per split and overall."""
    cells: dict[str, dict[str, list[Judged]]] = defaultdict(lambda: defaultdict(list))
    for j in judged:
        for column in (j.case.split, "all"):
            cells[j.case.category][column].append(j)
            cells["ALL"][column].append(j)
    columns = (*SPLITS, "all")
    lines = [f"{'category':<16}" + "".join(f"{c:>16}" for c in columns)]
    for category in [*sorted(k for k in cells if k != "ALL"), "ALL"]:
        row = cells[category]
        parts = []
        for column in columns:
            group = row.get(column, [])
            parts.append(f"{sum(j.agrees for j in group):>4}/{len(group):<3} {accuracy(group):>6.3f}" if group else "-")
        lines.append(f"{category:<16}" + "".join(f"{p:>16}" for p in parts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=[*SPLITS, "all"], default="all")
    parser.add_argument("--misses", action="store_true", help="list every disagreement with the judge's reason")
    args = parser.parse_args(argv)

    from raddiff_evaluator.embedder import SentenceEmbedder

    judge = SemanticJudge(SentenceEmbedder())
    judge.load_sync()
    judged = judge_cases(judge, load_cases(None if args.split == "all" else args.split))
    print(table(judged))
    if args.misses:
        for j in judged:
            if not j.agrees:
                c = j.case
                print(
                    f"  {c.id} [{c.category}] label {c.label} judged {j.score}: {c.prediction!r} | "
                    f"A {c.truth_a!r} B {c.truth_b!r}: {j.rationale}"
                )


if __name__ == "__main__":
    main()
