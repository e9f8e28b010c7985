"""Cohort specs (YAML): which findings differ between set A and set B, at what prevalence, over which background.

    pairs:
      - id: effusion_right_moderate            # unique, [a-z0-9_-]
        difficulty: easy                        # easy | medium | hard
        per_set: 150                            # images in each set (optional; spec-level default)
        a: [{kind: pleural_effusion, side: right, severity: moderate, prevalence: 1.0}]
        b: []                                   # findings of set B (prevalence defaults to 1.0)
        background: [{kind: cardiomegaly, rate: 0.2}]   # same rate in both sets
        set1: "moderate right pleural effusion" # optional; derived from a/b when left out
        set2: "no pleural effusion"
        view: PA                                # optional: PA | AP for both sets (default: random per image)
        size: 1024                              # optional: this pair's image size (default: the spec's)
      - id: null-effusion-same                  # a null pair: the sets must not differ
        null: true                              # a and b empty, or the same findings at the same prevalence
        a: [{kind: pleural_effusion, prevalence: 0.3}]
        b: [{kind: pleural_effusion, prevalence: 0.3}]

Spec-level keys: name, size, per_set, and seed_block (default 0): pair i of a spec takes its image seeds from
slot seed_block * 1000 + i (raddiff_synth/seeds.py), so specs with different blocks never share a seed.
A null pair's difficulty is "null" and its set1/set2 default to "no difference (set A)" / "(set B)"; its
JSONL line carries `"null": true`.

Attributes left out of a finding (or given as `any`) are drawn per image. Errors name the offending key,
e.g. `pairs[3].a[0].severity: 'huge' is not one of small, moderate, large or 'any'`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from raddiff_synth.catalog import KINDS
from raddiff_synth.findings import Finding, SpecError
from raddiff_synth.render import VIEWS
from raddiff_synth.seeds import PAIRS_PER_BLOCK, SEED_BLOCKS, pair_slot

DIFFICULTIES = ("easy", "medium", "hard")
NULL_DIFFICULTY = "null"
# Distinct, so the CSV's group names (and RadDiff's loader, which reads them) still tell A from B.
NULL_SET1, NULL_SET2 = "no difference (set A)", "no difference (set B)"
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
MAX_PER_SET = 10_000
SIZES = (32, 2048)  # image size bounds, in pixels


@dataclass(frozen=True)
class FindingSpec:
    kind: str
    attributes: Mapping[str, Any]  # possibly partial: open attributes are drawn per image
    rate: float  # prevalence within its set (or, for background, in both sets)
    where: str  # the spec path, for error messages

    def label(self) -> str:
        return KINDS[self.kind].label(Finding(self.kind, self._fixed()))

    def negative(self) -> str:
        return KINDS[self.kind].negative

    def _fixed(self) -> dict[str, Any]:
        return {k: v for k, v in self.attributes.items() if v != "any"}

    def key(self) -> tuple[str, tuple[tuple[str, Any], ...], float]:
        """What the finding is, apart from where it is written: two sides with equal keys do not differ."""
        return self.kind, tuple(sorted(self.attributes.items())), self.rate


@dataclass(frozen=True)
class PairSpec:
    id: str
    index: int  # position in the spec
    slot: int  # seed_block * 1000 + index: fixes the pair's seeds (raddiff_synth/seeds.py)
    difficulty: str
    per_set: int
    a: tuple[FindingSpec, ...]
    b: tuple[FindingSpec, ...]
    background: tuple[FindingSpec, ...]
    set1: str
    set2: str
    view: str | None
    size: int | None = None  # this pair's image size; None: the spec's
    null: bool = False  # the sets do not differ: calibration, no Acc figure


@dataclass(frozen=True)
class CohortSpec:
    name: str
    size: int
    pairs: tuple[PairSpec, ...]
    seed_block: int = 0

    def select(self, ids: list[str] | None) -> tuple[PairSpec, ...]:
        if not ids:
            return self.pairs
        known = {pair.id: pair for pair in self.pairs}
        missing = [i for i in ids if i not in known]
        if missing:
            raise SpecError(f"pairs: {', '.join(missing)} not in the spec (known: {', '.join(known)})")
        return tuple(known[i] for i in ids)


def load_spec(path: Path) -> CohortSpec:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc})") from None
    return parse_spec(document)


def parse_spec(document: Any) -> CohortSpec:
    top = _mapping(document, "spec", {"name", "size", "per_set", "pairs", "seed_block"})
    size = _int(top.get("size", 512), "size", *SIZES)
    default_per_set = _int(top.get("per_set", 150), "per_set", 1, MAX_PER_SET)
    seed_block = _int(top.get("seed_block", 0), "seed_block", 0, SEED_BLOCKS - 1)
    raw_pairs = top.get("pairs")
    if not isinstance(raw_pairs, list) or not raw_pairs:
        raise SpecError("pairs: must be a non-empty list of pairs")
    if len(raw_pairs) > PAIRS_PER_BLOCK:
        raise SpecError(f"pairs: {len(raw_pairs)} pairs, more than the {PAIRS_PER_BLOCK} a seed block holds")
    pairs = tuple(_pair(raw, i, default_per_set, seed_block) for i, raw in enumerate(raw_pairs))
    seen: set[str] = set()
    for pair in pairs:
        if pair.id in seen:
            raise SpecError(f"pairs[{pair.index}].id: {pair.id!r} is used by an earlier pair")
        seen.add(pair.id)
    name = top.get("name", "RadDiffSynth")
    if not isinstance(name, str) or not ID_PATTERN.match(name.lower()):
        raise SpecError(f"name: {name!r} must be a short identifier")
    return CohortSpec(name=name, size=size, pairs=pairs, seed_block=seed_block)


def _pair(raw: Any, index: int, default_per_set: int, seed_block: int) -> PairSpec:
    where = f"pairs[{index}]"
    allowed = {"id", "difficulty", "per_set", "a", "b", "background", "set1", "set2", "view", "size", "null"}
    if isinstance(raw, Mapping) and None in raw:  # YAML reads an unquoted `null:` key as None
        raw = {("null" if k is None else k): v for k, v in raw.items()}
    pair = _mapping(raw, where, allowed)
    pair_id = pair.get("id")
    if not isinstance(pair_id, str) or not ID_PATTERN.match(pair_id):
        raise SpecError(f"{where}.id: {pair_id!r} must match {ID_PATTERN.pattern}")
    null = pair.get("null", False)
    if not isinstance(null, bool):
        raise SpecError(f"{where}.null: {null!r} must be true or false")
    difficulty = pair.get("difficulty", NULL_DIFFICULTY if null else "medium")
    allowed_difficulties = (NULL_DIFFICULTY,) if null else DIFFICULTIES
    if difficulty not in allowed_difficulties:
        raise SpecError(f"{where}.difficulty: {difficulty!r} is not one of {', '.join(allowed_difficulties)}")
    per_set = _int(pair.get("per_set", default_per_set), f"{where}.per_set", 1, MAX_PER_SET)
    size = _int(pair["size"], f"{where}.size", *SIZES) if "size" in pair else None
    a = _findings(pair.get("a", []), f"{where}.a", "prevalence")
    b = _findings(pair.get("b", []), f"{where}.b", "prevalence")
    background = _findings(pair.get("background", []), f"{where}.background", "rate")
    same = sorted(f.key() for f in a) == sorted(f.key() for f in b)
    if null and not same:
        raise SpecError(f"{where}.b: a null pair's sides must carry the same findings at the same prevalence")
    if not null and same:
        why = "both a and b are empty" if not a else "a and b carry the same findings at the same prevalence"
        raise SpecError(f"{where}: {why}, so the sets would not differ (mark a null pair with null: true)")
    differing = {f.kind for f in (*a, *b)}
    for finding in background:
        if finding.kind in differing:
            raise SpecError(f"{finding.where}.kind: {finding.kind} is already in a or b")
    for side in (a, b):
        _no_duplicate_single(side + background)
    view = pair.get("view")
    if view is not None and view not in VIEWS:
        raise SpecError(f"{where}.view: {view!r} is not one of {', '.join(VIEWS)}")
    set1, set2 = (NULL_SET1, NULL_SET2) if null else _ground_truth(a, b)
    for key, default in (("set1", set1), ("set2", set2)):
        value = pair.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise SpecError(f"{where}.{key}: must be a non-empty string")
    return PairSpec(
        id=pair_id,
        index=index,
        slot=pair_slot(seed_block, index),
        difficulty=difficulty,
        per_set=per_set,
        a=a,
        b=b,
        background=background,
        set1=pair.get("set1", set1),
        set2=pair.get("set2", set2),
        view=view,
        size=size,
        null=null,
    )


def _ground_truth(a: tuple[FindingSpec, ...], b: tuple[FindingSpec, ...]) -> tuple[str, str]:
    """RadDiffBench-style strings: what characterises each set, or the absence of the other set's findings."""

    def describe(own: tuple[FindingSpec, ...], other: tuple[FindingSpec, ...]) -> str:
        if own:
            return " and ".join(f.label() for f in own)
        kinds = list(dict.fromkeys(f.kind for f in other))
        return " or ".join(KINDS[k].negative for k in kinds)

    return describe(a, b), describe(b, a)


def _findings(raw: Any, where: str, rate_key: str) -> tuple[FindingSpec, ...]:
    if not isinstance(raw, list):
        raise SpecError(f"{where}: must be a list of findings")
    return tuple(_finding(item, f"{where}[{i}]", rate_key) for i, item in enumerate(raw))


def _finding(raw: Any, where: str, rate_key: str) -> FindingSpec:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: must be a mapping with a kind")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise SpecError(f"{where}.kind: {kind!r} is not a known finding ({', '.join(KINDS)})")
    other_rate = "rate" if rate_key == "prevalence" else "prevalence"
    if other_rate in raw:
        raise SpecError(f"{where}.{other_rate}: use {rate_key} here")
    rate = raw.get(rate_key, 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise SpecError(f"{where}.{rate_key}: {rate!r} must be a number in [0, 1]")
    attributes = {k: v for k, v in raw.items() if k not in ("kind", rate_key)}
    definition = KINDS[kind]
    for key, value in attributes.items():
        if key not in definition.choices:
            known = ", ".join(sorted(definition.choices)) or "none"
            raise SpecError(f"{where}.{key}: unknown attribute of {kind} (known: {known})")
        if value not in (*definition.choices[key], "any"):
            raise SpecError(f"{where}.{key}: {value!r} is not one of {', '.join(definition.choices[key])} or 'any'")
    return FindingSpec(kind=kind, attributes=attributes, rate=float(rate), where=where)


def _no_duplicate_single(findings: tuple[FindingSpec, ...]) -> None:
    seen: dict[str, str] = {}
    for finding in findings:
        if KINDS[finding.kind].single and finding.kind in seen:
            also = seen[finding.kind]
            raise SpecError(f"{finding.where}.kind: {finding.kind} can appear once per image (also {also})")
        seen[finding.kind] = finding.where


def _mapping(raw: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: must be a mapping")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SpecError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
    return raw


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"{where}: {value!r} must be an integer in {low}..{high}")
    return value


BENCHMARK_MIN_PAIRS = 40
BENCHMARK_PER_SET = (100, 300)


def validate_benchmark(spec: CohortSpec) -> None:
    """The shipped benchmark's rules: enough pairs, every difficulty, 100 to 300 images per set."""
    if len(spec.pairs) < BENCHMARK_MIN_PAIRS:
        raise SpecError(f"pairs: a benchmark needs at least {BENCHMARK_MIN_PAIRS} pairs, this has {len(spec.pairs)}")
    missing = set(DIFFICULTIES) - {pair.difficulty for pair in spec.pairs}
    if missing:
        raise SpecError(f"pairs: no pair of difficulty {', '.join(sorted(missing))}")
    low, high = BENCHMARK_PER_SET
    for pair in spec.pairs:
        if not low <= pair.per_set <= high:
            raise SpecError(f"pairs[{pair.index}].per_set: {pair.per_set} is outside {low}..{high} for a benchmark")
