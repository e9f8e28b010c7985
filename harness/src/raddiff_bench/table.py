"""The benchmark table: Acc@1 and Acc@5 per difficulty and overall, pairs, failures, time per pair.

Every pair counts: a failed pair scores 0 in both accuracies (the table says so and lists them).
The mean time is over the pairs that finished, so quick refusals do not flatter it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import fmean
from typing import Any

from raddiff_bench.results import PairResult

DIFFICULTY_ORDER = ("easy", "medium", "hard")
OVERALL = "overall"


@dataclass(frozen=True)
class Row:
    group: str  # a difficulty, or "overall"
    pairs: int
    failed: int
    acc_at_1: float
    acc_at_5: float
    seconds_per_pair: float | None  # mean over the pairs that succeeded; None when none did


def _row(group: str, results: Sequence[PairResult]) -> Row:
    finished = [r.seconds for r in results if r.status == "succeeded"]
    return Row(
        group=group,
        pairs=len(results),
        failed=sum(r.status != "succeeded" for r in results),
        acc_at_1=fmean(r.acc_at_1 for r in results),
        acc_at_5=fmean(r.acc_at_5 for r in results),
        seconds_per_pair=fmean(finished) if finished else None,
    )


def _order(difficulty: str) -> tuple[int, str]:
    known = difficulty in DIFFICULTY_ORDER
    return (DIFFICULTY_ORDER.index(difficulty) if known else len(DIFFICULTY_ORDER), difficulty)


def summarize(results: Sequence[PairResult]) -> list[Row]:
    """One row per difficulty (easy, medium, hard, then any other in name order), then the overall row."""
    if not results:
        raise ValueError("no pair results to summarize")
    groups = sorted({r.difficulty for r in results}, key=_order)
    rows = [_row(g, [r for r in results if r.difficulty == g]) for g in groups]
    return [*rows, _row(OVERALL, results)]


def render(title: str, rows: Sequence[Row], results: Sequence[PairResult]) -> str:
    header = f"{'difficulty':<12}{'pairs':>6}{'failed':>8}{'Acc@1':>8}{'Acc@5':>8}{'s/pair':>9}"
    lines = [title, header, "-" * len(header)]
    for row in rows:
        if row.group == OVERALL:
            lines.append("-" * len(header))
        seconds = f"{row.seconds_per_pair:.1f}" if row.seconds_per_pair is not None else "-"
        lines.append(
            f"{row.group:<12}{row.pairs:>6}{row.failed:>8}{row.acc_at_1:>8.3f}{row.acc_at_5:>8.3f}{seconds:>9}"
        )
    lines.append("Failed pairs count as 0 in Acc@1 and Acc@5; s/pair is the mean over the pairs that succeeded.")
    failed = [r for r in results if r.status != "succeeded"]
    if failed:
        lines.append(f"Failed ({len(failed)}):")
        lines.extend(f"  {r.id} [{r.difficulty}]: {r.error}" for r in failed)
    return "\n".join(lines)


def report(title: str, run: dict[str, Any], rows: Sequence[Row], results: Sequence[PairResult]) -> dict[str, Any]:
    """The JSON written by --out: what was run, the table, and every pair."""
    return {
        "schema": "raddiff.bench/1",
        "title": title,
        "run": run,
        "table": [asdict(r) for r in rows],
        "pairs": [r.to_json() for r in results],
    }


@dataclass(frozen=True)
class Comparison:
    group: str
    pairs: int
    acc_at_1: tuple[float, float]  # (candidate, reference)
    acc_at_5: tuple[float, float]

    @property
    def gain_at_1(self) -> float:
        return self.acc_at_1[0] - self.acc_at_1[1]

    @property
    def gain_at_5(self) -> float:
        return self.acc_at_5[0] - self.acc_at_5[1]


def compare(candidate: Sequence[Row], reference: Sequence[Row]) -> list[Comparison]:
    """Row by row, two tables of the same pairs: the candidate's accuracies beside the reference's."""
    if [r.group for r in candidate] != [r.group for r in reference]:
        raise ValueError("the two runs do not cover the same difficulties")
    return [
        Comparison(c.group, c.pairs, (c.acc_at_1, r.acc_at_1), (c.acc_at_5, r.acc_at_5))
        for c, r in zip(candidate, reference, strict=True)
    ]


def render_comparison(candidate: str, reference: str, rows: Sequence[Comparison]) -> str:
    header = f"{'difficulty':<12}{'pairs':>6}{'Acc@1':>8}{'ref':>8}{'gain':>8}   {'Acc@5':>6}{'ref':>8}{'gain':>8}"
    lines = [f"{candidate} against {reference} (ref), on the same pairs:", header, "-" * len(header)]
    for row in rows:
        if row.group == OVERALL:
            lines.append("-" * len(header))
        lines.append(
            f"{row.group:<12}{row.pairs:>6}{row.acc_at_1[0]:>8.3f}{row.acc_at_1[1]:>8.3f}{row.gain_at_1:>+8.3f}"
            f"   {row.acc_at_5[0]:>6.3f}{row.acc_at_5[1]:>8.3f}{row.gain_at_5:>+8.3f}"
        )
    return "\n".join(lines)


def comparison_json(rows: Sequence[Comparison]) -> list[dict[str, Any]]:
    return [
        {
            "group": r.group,
            "pairs": r.pairs,
            "acc_at_1": {"candidate": r.acc_at_1[0], "reference": r.acc_at_1[1], "gain": r.gain_at_1},
            "acc_at_5": {"candidate": r.acc_at_5[0], "reference": r.acc_at_5[1], "gain": r.gain_at_5},
        }
        for r in rows
    ]
