"""The report benchmark: real OpenI reports, grouped by their MeSH tags into set pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raddiff_synth.cli import main
from raddiff_synth.openi import MIN_PER_SET, build_pairs, load_reports, report_texts


@pytest.fixture(scope="module")
def lines() -> list[dict]:
    built, skipped = build_pairs(per_set=40)
    assert skipped == []
    return built


def test_at_least_twenty_pairs_over_all_difficulties(lines: list[dict]) -> None:
    assert len(load_reports()) > 3_800
    assert len(lines) >= 20
    assert {line["difficulty"] for line in lines} == {"easy", "medium", "hard"}
    for line in lines:
        a, b = line["set1_reports"], line["set2_reports"]
        assert MIN_PER_SET <= len(a) <= 40 and MIN_PER_SET <= len(b) <= 40
        assert not set(a) & set(b)
        assert line["set1"] != line["set2"]


def test_sets_follow_their_mesh_tags(lines: list[dict]) -> None:
    reports = load_reports()
    by_id = {line["pair_id"]: line for line in lines}
    effusion = by_id["effusion-vs-normal"]
    assert all(any(t.startswith("Pleural Effusion") for t in reports[i].tags) for i in effusion["set1_reports"])
    assert all(reports[i].tags == {"normal"} for i in effusion["set2_reports"])


def _share(texts: list[str], word: str) -> float:
    return sum(word in text.lower() for text in texts) / len(texts)


def test_report_texts_agree_with_the_ground_truth(lines: list[dict]) -> None:
    by_id = {line["pair_id"]: line for line in lines}
    effusion = by_id["effusion-vs-normal"]
    assert _share(report_texts(effusion["set1_reports"]), "effusion") > 0.9
    cardiomegaly = by_id["cardiomegaly-vs-normal"]
    set1 = report_texts(cardiomegaly["set1_reports"])
    assert _share(set1, "cardiomegaly") + _share(set1, "enlarged") > 0.8
    sides = by_id["effusion-left-vs-right"]
    left, right = report_texts(sides["set1_reports"]), report_texts(sides["set2_reports"])
    assert _share(left, "left") > _share(right, "left")
    assert _share(right, "right") > _share(left, "right")


def test_sampling_is_deterministic(lines: list[dict]) -> None:
    again, _ = build_pairs(per_set=40)
    assert again == lines


def test_cli_writes_ids_and_only_optionally_texts(tmp_path: Path) -> None:
    out = tmp_path / "reports.jsonl"
    assert main(["report-benchmark", str(out), "--per-set", "20"]) == 0
    first = json.loads(out.read_text().splitlines()[0])
    assert {"set1", "set2", "set1_reports", "set2_reports", "pair_id", "difficulty"} <= set(first)
    assert "set1_texts" not in first
    assert main(["report-benchmark", str(out), "--per-set", "20", "--include-text"]) == 0
    first = json.loads(out.read_text().splitlines()[0])
    assert first["set1_texts"][0].startswith("FINDINGS:")
    with pytest.raises(KeyError, match="no OpenI report"):
        report_texts(["CXR-does-not-exist"])
