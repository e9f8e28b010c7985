"""Cohorts on disk: RadDiffBench's CSV and JSONL, exact prevalences, reports and metadata beside each image."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from raddiff_synth.cli import main
from raddiff_synth.cohort import write_cohort
from raddiff_synth.render import Generator
from raddiff_synth.seeds import BENCHMARK_SEEDS
from raddiff_synth.spec import parse_spec

SPEC = {
    "name": "Tiny",
    "size": 96,
    "per_set": 10,
    "pairs": [
        {
            "id": "effusion-70-30",
            "difficulty": "hard",
            "a": [{"kind": "pleural_effusion", "side": "right", "severity": "moderate", "prevalence": 0.7}],
            "b": [{"kind": "pleural_effusion", "side": "right", "severity": "moderate", "prevalence": 0.3}],
            "background": [{"kind": "central_line", "rate": 0.4}],
            "set1": "moderate right pleural effusion",
            "set2": "no pleural effusion",
        },
        {
            "id": "ng-position",
            "difficulty": "hard",
            "a": [{"kind": "enteric_tube", "position": "bronchus"}],
            "b": [{"kind": "enteric_tube", "position": "stomach"}],
            "background": [{"kind": "cardiomegaly", "rate": 0.5}],
        },
        {
            "id": "effusion-none",
            "difficulty": "easy",
            "a": [],
            "b": [{"kind": "pleural_effusion", "side": "left"}],
        },
    ],
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory, generator: Generator) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    write_cohort(parse_spec(SPEC), out, generator=generator)
    return out


def _metadata(out: Path, relative_png: str) -> dict:
    return json.loads((out / relative_png).with_suffix(".json").read_text())


def test_csv_has_raddiff_columns_and_every_image(cohort: Path) -> None:
    with (cohort / "Tiny.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "group_name", "subset", "side"]
    assert len(rows) == 3 * 2 * 10
    for row in rows:
        image = Image.open(cohort / row["path"])
        assert image.size == (96, 96) and image.mode == "L"
    # "no pleural effusion" names set B of one pair and set A of another: the subset column keeps them apart.
    groups = {(r["subset"], r["side"]): r["group_name"] for r in rows}
    assert groups[("effusion-70-30", "B")] == groups[("effusion-none", "A")] == "no pleural effusion"
    assert groups[("effusion-none", "B")] == "left pleural effusion"


def test_jsonl_is_raddiffbench_format(cohort: Path) -> None:
    lines = [json.loads(line) for line in (cohort / "Tiny.jsonl").read_text().splitlines()]
    assert [line["pair_id"] for line in lines] == ["effusion-70-30", "ng-position", "effusion-none"]
    with (cohort / "Tiny.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for line in lines:
        assert {"set1", "set2", "set1_images", "set2_images", "difficulty"} <= set(line)
        assert all(isinstance(line[k], str) for k in ("set1", "set2"))
        for side, key in (("A", "set1_images"), ("B", "set2_images")):
            expected = [r["path"] for r in rows if r["subset"] == line["pair_id"] and r["side"] == side]
            assert line[key] == expected
            assert all(not Path(p).is_absolute() for p in line[key])
    assert (lines[1]["set1"], lines[1]["set2"]) == ("NG tube in bronchus", "NG tube in stomach")


def test_prevalence_matches_the_spec_exactly(cohort: Path) -> None:
    line = json.loads((cohort / "Tiny.jsonl").read_text().splitlines()[0])
    counts = {}
    for key in ("set1_images", "set2_images"):
        kinds = [[f["kind"] for f in _metadata(cohort, p)["findings"]] for p in line[key]]
        counts[key] = (
            sum("pleural_effusion" in k for k in kinds),
            sum("central_line" in k for k in kinds),
        )
    assert counts["set1_images"] == (7, 4)
    assert counts["set2_images"] == (3, 4)


def test_each_image_has_report_and_metadata_that_agree(cohort: Path) -> None:
    line = json.loads((cohort / "Tiny.jsonl").read_text().splitlines()[1])
    for path in line["set1_images"]:
        metadata = _metadata(cohort, path)
        report = (cohort / path).with_suffix(".txt").read_text()
        assert metadata["report"] == report
        assert metadata["seed"] in BENCHMARK_SEEDS
        tube = next(f for f in metadata["findings"] if f["kind"] == "enteric_tube")
        assert tube["attributes"]["position"] == "bronchus"
        assert "tip_box" in tube and len(tube["box"]) == 4
        assert "bronch" in report.split("IMPRESSION:")[1]


def test_cohort_is_reproducible_and_pairs_keep_their_seeds(tmp_path: Path, cohort: Path, generator: Generator) -> None:
    again = tmp_path / "again"
    # Writing one pair alone gives the same images as writing it among others: its seeds follow its index.
    write_cohort(parse_spec(SPEC), again, pair_ids=["ng-position"], generator=generator)
    for side in ("A", "B"):
        for i in range(10):
            name = f"images/ng-position/{side}/{i:06d}"
            assert (again / f"{name}.png").read_bytes() == (cohort / f"{name}.png").read_bytes()
            assert (again / f"{name}.txt").read_text() == (cohort / f"{name}.txt").read_text()


def test_cli_cohort_writes_selected_pairs(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps(SPEC))  # JSON is YAML
    out = tmp_path / "out"
    assert main(["cohort", str(spec), str(out), "--pairs", "effusion-none", "--per-set", "2", "--size", "64"]) == 0
    lines = (out / "Tiny.jsonl").read_text().splitlines()
    assert len(lines) == 1 and len(json.loads(lines[0])["set2_images"]) == 2
    assert Image.open(out / json.loads(lines[0])["set2_images"][0]).size == (64, 64)
    assert main(["cohort", str(spec), str(out), "--pairs", "nope"]) == 2
