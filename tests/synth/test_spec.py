"""Cohort specs: the shipped benchmark is valid, and a bad spec gets an error that names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from raddiff_synth.cli import builtin_spec, main
from raddiff_synth.findings import SpecError
from raddiff_synth.seeds import BENCHMARK_SEEDS, TRAINING_SEEDS, benchmark_seed
from raddiff_synth.spec import load_spec, parse_spec, validate_benchmark


def _spec(**pair: object) -> dict:
    base = {"id": "p", "a": [{"kind": "cardiomegaly", "severity": "mild"}], "b": []}
    base.update(pair)
    return {"pairs": [base]}


def test_shipped_benchmark_spec_is_valid() -> None:
    spec = load_spec(builtin_spec())
    validate_benchmark(spec)
    assert len(spec.pairs) >= 40
    by_difficulty = {d: [p for p in spec.pairs if p.difficulty == d] for d in ("easy", "medium", "hard")}
    assert all(len(pairs) >= 8 for pairs in by_difficulty.values())
    assert all(100 <= p.per_set <= 300 for p in spec.pairs)
    hard = by_difficulty["hard"]
    # Hard pairs include prevalence contrasts (70/30) and same-kind contrasts (laterality, severity, position).
    assert any(f.rate == 0.7 for p in hard for f in p.a)
    assert any(p.a and p.b and p.a[0].kind == p.b[0].kind for p in hard)


def test_ground_truth_strings_follow_raddiffbench_style() -> None:
    spec = load_spec(builtin_spec())
    pairs = {p.id: p for p in spec.pairs}
    assert (pairs["effusion-right-moderate"].set1, pairs["effusion-right-moderate"].set2) == (
        "moderate right pleural effusion",
        "no pleural effusion",
    )
    assert (pairs["ng-bronchus-vs-stomach"].set1, pairs["ng-bronchus-vs-stomach"].set2) == (
        "NG tube in bronchus",
        "NG tube in stomach",
    )


def test_open_attributes_leave_the_phrase_general() -> None:
    spec = parse_spec(_spec(a=[{"kind": "pleural_effusion", "side": "any"}]))
    assert spec.pairs[0].set1 == "pleural effusion"
    assert spec.pairs[0].set2 == "no pleural effusion"


@pytest.mark.parametrize(
    ("document", "key"),
    [
        (_spec(a=[{"kind": "pleural_efusion"}]), r"pairs\[0\]\.a\[0\]\.kind"),
        (_spec(a=[{"kind": "pleural_effusion", "severity": "huge"}]), r"pairs\[0\]\.a\[0\]\.severity"),
        (_spec(a=[{"kind": "pleural_effusion", "colour": "red"}]), r"pairs\[0\]\.a\[0\]\.colour"),
        (_spec(a=[{"kind": "edema", "prevalence": 1.5}]), r"pairs\[0\]\.a\[0\]\.prevalence"),
        (_spec(a=[{"kind": "edema", "rate": 0.5}]), r"pairs\[0\]\.a\[0\]\.rate"),
        (_spec(background=[{"kind": "cardiomegaly", "rate": 0.2}]), r"pairs\[0\]\.background\[0\]\.kind"),
        (_spec(background=[{"kind": "edema", "prevalence": 0.2}]), r"pairs\[0\]\.background\[0\]\.prevalence"),
        (_spec(a=[{"kind": "cardiomegaly"}, {"kind": "cardiomegaly"}]), r"pairs\[0\]\.a\[1\]\.kind"),
        (_spec(a=[], b=[]), r"pairs\[0\]"),
        (_spec(id="Bad Id"), r"pairs\[0\]\.id"),
        (_spec(difficulty="extreme"), r"pairs\[0\]\.difficulty"),
        (_spec(per_set=0), r"pairs\[0\]\.per_set"),
        (_spec(view="lateral"), r"pairs\[0\]\.view"),
        (_spec(colour="red"), r"pairs\[0\]\.colour"),
        (_spec(a="cardiomegaly"), r"pairs\[0\]\.a"),
        ({"pairs": []}, r"^pairs"),
        ({"pairs": [_spec()["pairs"][0], _spec()["pairs"][0]]}, r"pairs\[1\]\.id"),
        ({"size": 10, **_spec()}, r"^size"),
        ({"sizes": 10, **_spec()}, r"spec\.sizes"),
        ([1, 2], r"^spec"),
    ],
)
def test_bad_spec_names_the_key(document: object, key: str) -> None:
    with pytest.raises(SpecError, match=key):
        parse_spec(document)


def test_unreadable_or_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("pairs: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(broken)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")


def test_cli_reports_a_bad_spec_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("pairs:\n  - id: x\n    a: [{kind: pneumothorax, size: enormous}]\n")
    assert main(["cohort", str(spec), str(tmp_path / "out")]) == 2
    assert "pairs[0].a[0].size" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_benchmark_command_enforces_benchmark_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("pairs:\n  - id: x\n    a: [{kind: edema}]\n")
    assert main(["benchmark", str(spec), str(tmp_path / "out")]) == 2
    assert "at least 40 pairs" in capsys.readouterr().err


def test_benchmark_and_training_seeds_are_disjoint() -> None:
    assert not any(seed in TRAINING_SEEDS for seed in (BENCHMARK_SEEDS.start, BENCHMARK_SEEDS.stop - 1))
    assert TRAINING_SEEDS.stop <= BENCHMARK_SEEDS.start
    seeds = {benchmark_seed(p, s, i) for p in range(3) for s in (0, 1) for i in range(300)}
    assert len(seeds) == 3 * 2 * 300
    assert all(seed in BENCHMARK_SEEDS for seed in seeds)
    with pytest.raises(ValueError, match="index"):
        benchmark_seed(0, 0, 10_000)
