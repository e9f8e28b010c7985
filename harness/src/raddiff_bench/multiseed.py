"""Several seeds instead of one draw: --seeds for `compare` and `protocol`.

An analysis is deterministic for a given seed and config, but the agent samples (proposals, crops) from the
config's `seed`, so one run is one draw of that sampling. With --seeds each config runs once per seed (its
`seed` key overridden) and the accuracy and calibration tables give, per cell, the mean over the seeds and the
spread: the sample standard deviation and the min and max. The gain is paired: candidate minus reference within
each seed (both ran on the same pairs with the same seed), and its spread is that of those per-seed gains, not
one derived from the two columns' spreads.

One seed is today's output, unchanged: the callers use the one-run tables then, and these only for two or more.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

from raddiff_bench.protocol import CalibrationRow, calibration_note
from raddiff_bench.table import OVERALL, Comparison
from raddiff_bench.table import comparison_json as table_comparison_json

SEED_MAX = 2**63 - 1  # the orchestrator's bound on `seed` (agent config: 0 <= seed <= 2**63 - 1)
_INTEGER = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() would let "²" through to int()


def parse_seeds(text: str) -> list[int]:
    """--seeds "0,1,2": distinct non-negative integers, in the order given (argparse turns the error into exit 2)."""
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise argparse.ArgumentTypeError("name at least one seed, e.g. --seeds 0,1,2")
    bad = [p for p in parts if not _INTEGER.fullmatch(p) or int(p) > SEED_MAX]
    if bad:
        shown = ", ".join(repr(p) for p in bad)
        raise argparse.ArgumentTypeError(
            f"seeds are comma-separated integers from 0 to 2**63-1, e.g. 0,1,2; not {shown} (in {text!r})"
        )
    seeds = [int(p) for p in parts]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        # The same seed twice is the same draw twice (analyses are deterministic): it would shrink the spread.
        raise argparse.ArgumentTypeError(f"each seed once: {', '.join(map(str, twice))} given more than once")
    return seeds


def with_seed(config: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """A copy of the agent config with `seed` set; the config itself when seed is None (its own seed)."""
    return config if seed is None else {**config, "seed": seed}


def add_seeds_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seeds",
        type=parse_seeds,
        help="comma-separated agent seeds, e.g. 0,1,2: each config runs once per seed (its `seed` key set to it) "
        "and the tables give the mean, sample SD and min-max over the seeds, the gain paired by seed "
        "(default: one run with each config's own seed)",
    )


def seeds_of(args: argparse.Namespace) -> list[int | None]:
    """The seeds to run each config with: --seeds, or [None] (once, with the config's own seed)."""
    return list(args.seeds) if getattr(args, "seeds", None) else [None]


def seeded(args: argparse.Namespace, seed: int | None) -> argparse.Namespace:
    """The arguments of one run: `seed` (None: the config's own) is what the run's config gets (see seed_of)."""
    return argparse.Namespace(**{**vars(args), "seed": seed})


def seed_of(args: argparse.Namespace) -> int | None:
    """The seed a run overrides its config's with; None for the config's own (`run` and `run-pair` have none)."""
    seed = getattr(args, "seed", None)
    return seed if isinstance(seed, int) else None


def tagged(document: dict[str, Any], config: Path, seed: int | None, several: bool) -> dict[str, Any]:
    """A run's --out document; with several seeds it says which config and seed it was (one seed: unchanged)."""
    return {"config": str(config), "seed": seed, **document} if several else document


# -- the spread over seeds -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spread:
    mean: float | None  # None when no seed had a value (e.g. no null pair finished in any)
    sd: float | None  # sample SD (n - 1); None under two values
    min: float | None
    max: float | None
    seeds: int  # how many seeds had a value


def spread(values: Sequence[float | None]) -> Spread:
    """Mean, sample SD, min and max of the values that are there (a seed whose measure is None is left out)."""
    present = [v for v in values if v is not None]
    if not present:
        return Spread(None, None, None, None, 0)
    sd = stdev(present) if len(present) > 1 else None
    return Spread(fmean(present), sd, min(present), max(present), len(present))


@dataclass(frozen=True)
class SeedComparison:
    """One difficulty's row over the seeds: (candidate, reference) spreads and the paired gain's."""

    group: str
    pairs: int
    acc_at_1: tuple[Spread, Spread]
    acc_at_5: tuple[Spread, Spread]
    gain_at_1: Spread
    gain_at_5: Spread


def compare_over_seeds(per_seed: Sequence[Sequence[Comparison]]) -> list[SeedComparison]:
    """Row by row, one comparison per seed (each candidate beside reference on the same pairs) into one."""
    if not per_seed:
        raise ValueError("no seeds to aggregate")
    shape = [(r.group, r.pairs) for r in per_seed[0]]
    if any([(r.group, r.pairs) for r in rows] != shape for rows in per_seed):
        raise ValueError("the seeds' runs do not cover the same pairs")
    out = []
    for i, (group, pairs) in enumerate(shape):
        rows = [seed_rows[i] for seed_rows in per_seed]
        out.append(
            SeedComparison(
                group=group,
                pairs=pairs,
                acc_at_1=(spread([r.acc_at_1[0] for r in rows]), spread([r.acc_at_1[1] for r in rows])),
                acc_at_5=(spread([r.acc_at_5[0] for r in rows]), spread([r.acc_at_5[1] for r in rows])),
                gain_at_1=spread([r.gain_at_1 for r in rows]),  # paired: each seed's own difference
                gain_at_5=spread([r.gain_at_5 for r in rows]),
            )
        )
    return out


def accuracy_over_seeds(per_seed: Sequence[Mapping[str, list[Comparison]]]) -> dict[str, list[SeedComparison]]:
    """protocol.accuracy's tables, one per seed, into one per split."""
    splits = list(per_seed[0]) if per_seed else []
    return {split: compare_over_seeds([tables[split] for tables in per_seed]) for split in splits}


@dataclass(frozen=True)
class SeedCalibrationRow:
    config: str
    measure: str
    split: str
    pairs: int  # that finished, summed over the seeds
    failed: int  # summed over the seeds
    before: Spread
    after: Spread
    missing: int  # findings without a `supported` field, summed over the seeds


def calibration_over_seeds(per_seed: Sequence[Sequence[CalibrationRow]]) -> list[SeedCalibrationRow]:
    """protocol.calibration's rows, one list per seed, into one row per config, measure and split (first seed's
    order; every seed ran the same splits and configs, so each has the same rows)."""
    keyed = [{(r.config, r.measure, r.split): r for r in rows} for rows in per_seed]
    out = []
    for key in keyed[0] if keyed else {}:
        rows = [k[key] for k in keyed if key in k]
        out.append(
            SeedCalibrationRow(
                *key,
                pairs=sum(r.pairs for r in rows),
                failed=sum(r.failed for r in rows),
                before=spread([r.before for r in rows]),
                after=spread([r.after for r in rows]),
                missing=sum(r.missing for r in rows),
            )
        )
    return out


# -- the printed tables ------------------------------------------------------------------------------------------
def _stats(value: Spread, signed: bool = False) -> str:
    """mean, sd, min, max in 28 characters ('-' for what is not there); a gain's mean, min and max signed."""
    sign = "+" if signed else ""
    return "".join(
        f"{'-':>7}" if v is None else f"{v:>{'' if cell == 'sd' else sign}7.3f}"
        for cell, v in zip(("mean", "sd", "min", "max"), (value.mean, value.sd, value.min, value.max), strict=True)
    )


def _seed_list(seeds: Sequence[int]) -> str:
    return f"{len(seeds)} seeds ({', '.join(map(str, seeds))})"


SPREAD_NOTE = "mean, sample SD (sd), min and max over the seeds"


def render_accuracy(
    candidate: str, reference: str, seeds: Sequence[int], table: Mapping[str, list[SeedComparison]]
) -> str:
    """Per split and measure (Acc@1, Acc@5), each difficulty's candidate, reference and paired gain."""
    sub = (
        f"{'difficulty':<12}{'n':>5}  {'cand':>7}{'sd':>7}{'min':>7}{'max':>7}  {'ref':>7}{'sd':>7}{'min':>7}"
        f"{'max':>7}  {'gain':>7}{'sd':>7}{'min':>7}{'max':>7}"
    )
    lines = [
        f"Accuracy over {_seed_list(seeds)}: {candidate} (cand) beside {reference} (ref), and the gain cand - ref "
        "paired by seed;",
        f"each: {SPREAD_NOTE}",
    ]
    for split, rows in table.items():
        pairs = next(r.pairs for r in rows if r.group == OVERALL)
        for measure in ("Acc@1", "Acc@5"):
            lines += ["", f"{split} ({pairs} pairs): {measure}", sub, "-" * len(sub)]
            for row in rows:
                if row.group == OVERALL:
                    lines.append("-" * len(sub))
                cand, ref = row.acc_at_1 if measure == "Acc@1" else row.acc_at_5
                gain = row.gain_at_1 if measure == "Acc@1" else row.gain_at_5
                lines.append(
                    f"{row.group:<12}{row.pairs:>5}  {_stats(cand)}  {_stats(ref)}  {_stats(gain, signed=True)}"
                )
    return "\n".join(lines)


def render_calibration(seeds: Sequence[int], rows: Sequence[SeedCalibrationRow]) -> str:
    width = max([24, *(len(r.config) + 2 for r in rows)])  # config paths are as long as their folders
    header = (
        f"{'config':<{width}}{'measure':<22}{'split':<16}{'pairs':>6}{'failed':>7}  "
        f"{'before':>7}{'sd':>7}{'min':>7}{'max':>7}  {'after':>7}{'sd':>7}{'min':>7}{'max':>7}"
    )
    lines = [
        f"Calibration over {_seed_list(seeds)}: before = q_value < FDR (the set difference alone); after = the "
        "result's `supported` flag;",
        f"each: {SPREAD_NOTE}; pairs and failed are summed over the seeds",
        header,
        "-" * len(header),
    ]
    for row in rows:
        lines.append(
            f"{row.config:<{width}}{row.measure:<22}{row.split:<16}{row.pairs:>6}{row.failed:>7}  "
            f"{_stats(row.before)}  {_stats(row.after)}"
        )
    lines.extend(calibration_note(sum(r.missing for r in rows)))
    return "\n".join(lines)


# -- JSON -------------------------------------------------------------------------------------------------------
def _spread_json(value: Spread) -> dict[str, Any]:
    return asdict(value)


def comparison_json(rows: Sequence[SeedComparison]) -> list[dict[str, Any]]:
    return [
        {
            "group": r.group,
            "pairs": r.pairs,
            "acc_at_1": {
                "candidate": _spread_json(r.acc_at_1[0]),
                "reference": _spread_json(r.acc_at_1[1]),
                "gain": _spread_json(r.gain_at_1),
            },
            "acc_at_5": {
                "candidate": _spread_json(r.acc_at_5[0]),
                "reference": _spread_json(r.acc_at_5[1]),
                "gain": _spread_json(r.gain_at_5),
            },
        }
        for r in rows
    ]


def calibration_json(rows: Sequence[SeedCalibrationRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def compare_document(
    candidate: str,
    reference: str,
    seeds: Sequence[int],
    per_seed: Sequence[Sequence[Comparison]],
    runs: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """compare --out over several seeds: the aggregate, each seed's comparison, and every run (each with its seed)."""
    return {
        "schema": "raddiff.bench-compare-seeds/1",
        "candidate": candidate,
        "reference": reference,
        "seeds": list(seeds),
        "comparison": comparison_json(compare_over_seeds(per_seed)),
        "per_seed": [
            {"seed": seed, "comparison": table_comparison_json(rows)}
            for seed, rows in zip(seeds, per_seed, strict=True)
        ],
        "runs": list(runs),
    }


def protocol_document(
    configs: Sequence[str],
    final: bool,
    seeds: Sequence[int],
    data: Mapping[str, str],
    reports: Mapping[str, list[dict[str, Any]]],
    per_seed_tables: Sequence[Mapping[str, list[Comparison]]],
    per_seed_rows: Sequence[Sequence[CalibrationRow]],
) -> dict[str, Any]:
    """protocol --out over several seeds: protocol.document's shape with the aggregates in place of the one-run
    tables, each seed's own tables under per_seed, and every run (each with its config and seed)."""
    return {
        "schema": "raddiff.bench-protocol-seeds/1",
        "configs": list(configs),
        "final": final,
        "seeds": list(seeds),
        "splits": {split: {"jsonl": data[split], "runs": reports[split]} for split in reports},
        "accuracy": {split: comparison_json(rows) for split, rows in accuracy_over_seeds(per_seed_tables).items()},
        "calibration": calibration_json(calibration_over_seeds(per_seed_rows)),
        "per_seed": [
            {
                "seed": seed,
                "accuracy": {split: table_comparison_json(rows) for split, rows in tables.items()},
                "calibration": [asdict(r) for r in rows],
            }
            for seed, tables, rows in zip(seeds, per_seed_tables, per_seed_rows, strict=True)
        ],
    }
