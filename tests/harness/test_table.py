"""The table's arithmetic on known per-pair scores: Acc@k, means per difficulty, failures counted as 0."""

from __future__ import annotations

import json

import pytest

from raddiff_bench.results import PairResult, RankedFinding, accuracy_at
from raddiff_bench.table import compare, comparison_json, render, render_comparison, report, summarize


def judged(pair_id: str, difficulty: str, scores: list[int], seconds: float) -> PairResult:
    result = PairResult(0, pair_id, difficulty, "a truth", "b truth", seconds=seconds)
    result.findings = [RankedFinding(rank=i, finding=f"finding {i}") for i in range(1, len(scores) + 1)]
    return result.judged(scores, "semantic", "orchestrator")


def failed(pair_id: str, difficulty: str, seconds: float, error: str = "analysis failed: boom") -> PairResult:
    return PairResult(0, pair_id, difficulty, "a", "b", seconds=seconds).fail(error)


@pytest.mark.parametrize(
    ("scores", "at_1", "at_5"),
    [
        ([2, 0, 0], 1.0, 1.0),
        ([0, 1, 0, 0, 0], 0.0, 0.5),
        ([0, 0, 1, 2, 0], 0.0, 1.0),
        ([0, 0, 0, 0, 0, 2], 0.0, 0.0),  # a match at rank 6 is outside Acc@5
        ([1], 0.5, 0.5),
        ([], 0.0, 0.0),  # no finding proposed
    ],
)
def test_acc_at_k_is_raddiffs(scores: list[int], at_1: float, at_5: float) -> None:
    assert accuracy_at(scores, 1) == at_1 and accuracy_at(scores, 5) == at_5
    result = judged("p", "easy", scores, 1.0)
    assert result.status == "succeeded"
    assert (result.acc_at_1, result.acc_at_5) == (at_1, at_5)
    assert [f.score for f in result.findings] == scores


def test_rows_per_difficulty_and_overall_count_failures_as_zero() -> None:
    results = [
        judged("e1", "easy", [2, 0], 10.0),  # 1.0 / 1.0
        judged("e2", "easy", [0, 0, 1], 20.0),  # 0.0 / 0.5
        judged("h1", "hard", [1, 2], 30.0),  # 0.5 / 1.0
        failed("h2", "hard", 0.5),  # 0 / 0, not timed
        judged("m1", "medium", [0, 0, 0, 0, 0, 2], 40.0),  # 0 / 0
        judged("x1", "custom", [2], 50.0),  # an unknown difficulty gets its own row, after the known ones
    ]
    rows = {r.group: r for r in summarize(results)}
    assert list(rows) == ["easy", "medium", "hard", "custom", "overall"]
    assert (rows["easy"].pairs, rows["easy"].failed) == (2, 0)
    assert rows["easy"].acc_at_1 == pytest.approx(0.5) and rows["easy"].acc_at_5 == pytest.approx(0.75)
    assert rows["easy"].seconds_per_pair == pytest.approx(15.0)
    assert (rows["hard"].pairs, rows["hard"].failed) == (2, 1)
    assert rows["hard"].acc_at_1 == pytest.approx(0.25) and rows["hard"].acc_at_5 == pytest.approx(0.5)
    assert rows["hard"].seconds_per_pair == pytest.approx(30.0)  # the failure's 0.5 s is left out
    assert rows["medium"].acc_at_5 == 0.0
    overall = rows["overall"]
    assert (overall.pairs, overall.failed) == (6, 1)
    assert overall.acc_at_1 == pytest.approx((1 + 0 + 0.5 + 0 + 0 + 1) / 6)
    assert overall.acc_at_5 == pytest.approx((1 + 0.5 + 1 + 0 + 0 + 1) / 6)
    assert overall.seconds_per_pair == pytest.approx(30.0)


def test_a_group_with_only_failures_has_no_time() -> None:
    (row, overall) = summarize([failed("f", "hard", 2.0)])
    assert row.failed == 1 and row.acc_at_1 == 0.0 and row.seconds_per_pair is None
    assert overall.pairs == 1
    with pytest.raises(ValueError, match="no pair results"):
        summarize([])


def test_the_printed_table_lists_every_failure_with_its_error() -> None:
    results = [judged("e1", "easy", [2], 12.0), failed("h2", "hard", 1.0, "rejected with HTTP 404: image missing")]
    text = render("a title", summarize(results), results)
    lines = text.splitlines()
    assert lines[0] == "a title"
    easy = next(line for line in lines if line.startswith("easy"))
    assert easy.split() == ["easy", "1", "0", "1.000", "1.000", "12.0"]
    hard = next(line for line in lines if line.startswith("hard"))
    assert hard.split() == ["hard", "1", "1", "0.000", "0.000", "-"]
    assert next(line for line in lines if line.startswith("overall")).split()[1:5] == ["2", "1", "0.500", "0.500"]
    assert "count as 0" in text
    assert "  h2 [hard]: rejected with HTTP 404: image missing" in lines


def test_the_json_report_holds_the_table_and_every_pair() -> None:
    results = [judged("e1", "easy", [0, 2], 3.0), failed("h2", "hard", 1.0)]
    data = json.loads(json.dumps(report("t", {"jsonl": "x.jsonl"}, summarize(results), results)))
    assert data["schema"] == "raddiff.bench/1" and data["run"] == {"jsonl": "x.jsonl"}
    assert [r["group"] for r in data["table"]] == ["easy", "hard", "overall"]
    first, second = data["pairs"]
    assert (first["id"], first["status"], first["acc_at_1"], first["acc_at_5"]) == ("e1", "succeeded", 0.0, 1.0)
    assert first["scores"] == [0, 2] and [f["score"] for f in first["findings"]] == [0, 2]
    assert (second["status"], second["error"], second["acc_at_5"]) == ("failed", "analysis failed: boom", 0.0)


def test_scores_a_judge_could_not_have_given_fail_the_pair() -> None:
    result = PairResult(0, "p", "easy", "a", "b")
    result.findings = [RankedFinding(rank=1, finding="x")]
    assert result.judged([3], "semantic", "harness").status == "failed"
    result = PairResult(0, "p", "easy", "a", "b")
    result.findings = [RankedFinding(rank=1, finding="x")]
    bad = result.judged([2, 2], "semantic", "harness")
    assert bad.status == "failed" and "for 1 findings" in (bad.error or "") and bad.acc_at_1 == 0.0


def test_a_comparison_puts_each_difficultys_accuracies_side_by_side_with_the_gain() -> None:
    candidate = summarize([judged("a", "easy", [2], 1.0), judged("b", "hard", [0, 2], 1.0)])
    reference = summarize([judged("a", "easy", [1], 1.0), judged("b", "hard", [0, 0, 1], 1.0)])
    rows = compare(candidate, reference)
    assert [r.group for r in rows] == ["easy", "hard", "overall"]
    assert (rows[0].acc_at_1, rows[0].gain_at_1) == ((1.0, 0.5), 0.5)
    assert (rows[1].acc_at_5, rows[1].gain_at_5) == ((1.0, 0.5), 0.5)
    assert rows[2].acc_at_1 == (0.5, 0.25) and rows[2].pairs == 2
    text = render_comparison("full.yaml", "baseline.yaml", rows)
    assert text.splitlines()[0].startswith("full.yaml against baseline.yaml")
    assert text.splitlines()[-1].split() == ["overall", "2", "0.500", "0.250", "+0.250", "1.000", "0.500", "+0.500"]
    assert comparison_json(rows)[2]["acc_at_5"] == {"candidate": 1.0, "reference": 0.5, "gain": 0.5}


def test_runs_over_different_difficulties_do_not_compare() -> None:
    with pytest.raises(ValueError, match="same difficulties"):
        compare(summarize([judged("a", "easy", [2], 1.0)]), summarize([judged("a", "hard", [2], 1.0)]))
