"""The test protocol: dev, test and generalisation accuracies side by side, and null calibration.

Splits are raddiff-synth's shipped specs, each with its own seed block: dev (the benchmark tuned on), test
(locked: run only to report, with --final), generalisation (pair kinds dev lacks) and null (sets that do not
differ). The positive splits run with both configs; the null split with the candidate only unless asked.

Calibration compares two rules for "supported" on the same results:
  before  the raw rule: a finding counts as supported when its q_value < the run's ranker.fdr
  after   the orchestrator's `supported` flag (set difference and specificity both hold at that FDR)
and reports, per config: the share of null pairs with any supported finding (target <= 5%), and on positive
pairs the false-support rate: top-5 findings the judge scores 0 that are nevertheless supported, per pair.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from raddiff_bench.pairs import BadInput
from raddiff_bench.results import PairResult, RankedFinding
from raddiff_bench.table import OVERALL, Comparison, compare, comparison_json, summarize

SPLITS = ("dev", "test", "generalisation", "null")
POSITIVE = ("dev", "test", "generalisation")
LOCKED = "test"
DEFAULT_SPLITS = ("dev", "generalisation", "null")  # --final adds the test split
NULL_TARGET = 0.05
TOP_K = 5

Rule = Callable[[RankedFinding, float], bool]


def before(finding: RankedFinding, fdr: float) -> bool:
    """The raw rule: the set difference alone, q < FDR."""
    return finding.q_value is not None and finding.q_value < fdr


def after(finding: RankedFinding, fdr: float) -> bool:
    """The orchestrator's call (missing: not supported)."""
    return finding.supported is True


RULES: dict[str, Rule] = {"before": before, "after": after}


class Locked(Exception):
    """The test split was asked for without --final."""


def choose_splits(requested: Sequence[str] | None, final: bool) -> list[str]:
    """The splits to run, in protocol order; the test split only with --final."""
    splits = list(requested) if requested else [*DEFAULT_SPLITS, *([LOCKED] if final else [])]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise BadInput(f"--splits: {', '.join(unknown)} not among {', '.join(SPLITS)}")
    if LOCKED in splits and not final:
        raise Locked(
            "the test split is locked: it is run only to report final figures, never to tune on. "
            "Tune on dev (and look at generalisation); give --final to run test"
        )
    return [s for s in SPLITS if s in splits]


# -- data ----------------------------------------------------------------------------------------------------
def ensure_split(split: str, root: Path, *, workers: int, per_set: int | None, size: int | None) -> Path:
    """The split's JSONL under root/split, generated from its shipped spec unless an earlier run wrote the same."""
    try:
        from raddiff_synth.cli import split_spec
        from raddiff_synth.cohort import write_cohort
        from raddiff_synth.findings import SpecError
        from raddiff_synth.source import SourceMissingError
        from raddiff_synth.spec import load_spec
    except ImportError:
        raise BadInput("the protocol generates its splits with raddiff-synth: pip install -e synth") from None
    out = root / split
    try:
        spec = load_spec(split_spec(split))
        jsonl = out / f"{spec.name}.jsonl"
        if jsonl.is_file() and _manifest_matches(out, [p.id for p in spec.pairs], per_set, size or spec.size):
            return jsonl
        print(f"generating the {split} split into {out}")
        return write_cohort(spec, out, per_set=per_set, size=size, workers=workers, progress=True)
    except (SpecError, SourceMissingError) as exc:
        raise BadInput(f"{split}: {exc}") from None


def _manifest_matches(out: Path, ids: list[str], per_set: int | None, size: int) -> bool:
    """Whether raddiff-synth's manifest there is of the same pairs, set size and image size."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    same_pairs = [p.get("id") for p in manifest.get("pairs", [])] == ids
    return same_pairs and manifest.get("per_set_override") == per_set and manifest.get("size") == size


# -- accuracy: the positive splits side by side ----------------------------------------------------------------
def accuracy(runs: Mapping[str, Sequence[Sequence[PairResult]]]) -> dict[str, list[Comparison]]:
    """Per positive split, each difficulty's Acc@1 / Acc@5, candidate beside reference, and the overall row."""
    out = {}
    for split, results in runs.items():
        if split in POSITIVE and len(results) == 2:
            out[split] = compare(summarize(results[0]), summarize(results[1]))
    return out


def render_accuracy(candidate: str, reference: str, table: Mapping[str, list[Comparison]]) -> str:
    groups = [g for g in ("easy", "medium", "hard") if any(r.group == g for rows in table.values() for r in rows)]
    groups += [*sorted({r.group for rows in table.values() for r in rows} - {*groups, OVERALL}), OVERALL]
    cell = 30
    head = f"{'':<12}" + "".join(f"{f'{split} ({_pairs(rows)} pairs)':^{cell}}" for split, rows in table.items())
    sub = f"{'difficulty':<12}" + f"{'n':>4}{'Acc@1':>7}{'ref':>6}{'Acc@5':>7}{'ref':>6}" * len(table)
    lines = [f"Accuracy: {candidate} (Acc@1, Acc@5) beside {reference} (ref)", head, sub, "-" * len(sub)]
    for group in groups:
        if group == OVERALL:
            lines.append("-" * len(sub))
        line = f"{group:<12}"
        for rows in table.values():
            row = next((r for r in rows if r.group == group), None)
            line += (
                f"{row.pairs:>4}{row.acc_at_1[0]:>7.3f}{row.acc_at_1[1]:>6.3f}{row.acc_at_5[0]:>7.3f}{row.acc_at_5[1]:>6.3f}"
                if row
                else f"{'-':>4}{'-':>7}{'-':>6}{'-':>7}{'-':>6}"
            )
        lines.append(line)
    return "\n".join(lines)


def _pairs(rows: list[Comparison]) -> int:
    return next(r.pairs for r in rows if r.group == OVERALL)


# -- calibration ---------------------------------------------------------------------------------------------
def supported_count(result: PairResult, rule: Rule, top: int | None = None) -> int:
    return sum(rule(f, result.fdr) for f in result.findings[:top])


def null_share(results: Sequence[PairResult], rule: Rule) -> float | None:
    """Share of the null pairs that finished with at least one finding supported; None when none finished."""
    done = [r for r in results if r.status == "succeeded"]
    return fmean(supported_count(r, rule) > 0 for r in done) if done else None


def false_support(results: Sequence[PairResult], rule: Rule, top: int = TOP_K) -> float | None:
    """Per judged positive pair, the top-k findings the judge scored 0 that are nevertheless supported (mean)."""
    done = [r for r in results if r.status == "succeeded" and not r.null]
    if not done:
        return None
    return fmean(sum(f.score == 0 and rule(f, r.fdr) for f in r.findings[:top]) for r in done)


def true_support(results: Sequence[PairResult], rule: Rule, top: int = TOP_K) -> float | None:
    """Share of judged positive pairs with a supported top-k finding the judge scored 1 or 2 (so a rule that
    supports nothing does not look calibrated for free)."""
    done = [r for r in results if r.status == "succeeded" and not r.null]
    if not done:
        return None
    return fmean(any((f.score or 0) >= 1 and rule(f, r.fdr) for f in r.findings[:top]) for r in done)


@dataclass(frozen=True)
class CalibrationRow:
    config: str
    measure: str  # "null share", "false support / pair", "true support"
    split: str
    pairs: int  # that finished
    failed: int
    before: float | None
    after: float | None
    missing: int  # findings without a `supported` field (an orchestrator that predates it)


MEASURES: dict[str, Callable[[Sequence[PairResult], Rule], float | None]] = {
    "null share": null_share,
    "false support / pair": false_support,
    "true support": true_support,
}


def calibration(configs: Sequence[str], runs: Mapping[str, Sequence[Sequence[PairResult]]]) -> list[CalibrationRow]:
    """Null share on the null split; false and true support on each positive split and all of them; per config."""
    rows = []
    for c, config in enumerate(configs):
        by_split = {split: results[c] for split, results in runs.items() if c < len(results)}
        positive = [r for split, results in by_split.items() if split in POSITIVE for r in results]
        if "null" in by_split:
            rows.append(_calibration_row(config, "null share", "null", by_split["null"]))
        for measure in ("false support / pair", "true support"):
            rows.extend(
                _calibration_row(config, measure, split, results)
                for split, results in by_split.items()
                if split in POSITIVE
            )
            if len([s for s in by_split if s in POSITIVE]) > 1:
                rows.append(_calibration_row(config, measure, "all positive", positive))
    return rows


def _calibration_row(config: str, measure: str, split: str, results: Sequence[PairResult]) -> CalibrationRow:
    done = [r for r in results if r.status == "succeeded"]
    return CalibrationRow(
        config=config,
        measure=measure,
        split=split,
        pairs=len(done),
        failed=len(results) - len(done),
        before=MEASURES[measure](results, before),
        after=MEASURES[measure](results, after),
        missing=sum(f.supported is None for r in done for f in r.findings),
    )


def render_calibration(rows: Sequence[CalibrationRow]) -> str:
    width = max([24, *(len(r.config) + 2 for r in rows)])  # config paths are as long as their folders
    header = f"{'config':<{width}}{'measure':<22}{'split':<16}{'pairs':>6}{'failed':>7}{'before':>8}{'after':>8}"
    lines = [
        "Calibration: before = q_value < FDR (the set difference alone); after = the result's `supported` flag",
        header,
        "-" * len(header),
    ]
    for row in rows:
        lines.append(
            f"{row.config:<{width}}{row.measure:<22}{row.split:<16}{row.pairs:>6}{row.failed:>7}"
            f"{_num(row.before):>8}{_num(row.after):>8}"
        )
    lines.extend(calibration_note(sum(r.missing for r in rows)))
    return "\n".join(lines)


def calibration_note(missing: int) -> list[str]:
    """The lines under a calibration table (one seed's or several's): what the measures are, and how many findings
    came without a `supported` field."""
    lines = [
        f"null share: null pairs with any supported finding (target <= {NULL_TARGET:.0%}); false support: top-{TOP_K} "
        f"findings judged 0 yet supported, per positive pair; true support: positive pairs with a supported "
        f"top-{TOP_K} finding judged 1 or 2."
    ]
    if missing:
        lines.append(f"{missing} finding(s) came without a `supported` field and count as not supported (after).")
    return lines


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def document(
    configs: Sequence[str],
    final: bool,
    data: Mapping[str, str],
    reports: Mapping[str, list[dict[str, Any]]],
    table: Mapping[str, list[Comparison]],
    rows: Sequence[CalibrationRow],
) -> dict[str, Any]:
    """The one JSON the protocol writes: what ran, the side-by-side accuracies, calibration and every run."""
    return {
        "schema": "raddiff.bench-protocol/1",
        "configs": list(configs),
        "final": final,
        "splits": {split: {"jsonl": data[split], "runs": reports[split]} for split in reports},
        "accuracy": {split: comparison_json(comparisons) for split, comparisons in table.items()},
        "calibration": [asdict(r) for r in rows],
    }
