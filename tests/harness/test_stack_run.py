"""The harness on the real local stack (six processes, the embedded default's models): `raddiff-bench run`
on a 2-pair, 8-images-per-set synthetic benchmark, `run-pair`'s success, and the report benchmark judged
by the stack's evaluator on real OpenI reports."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import httpx
import pytest

from raddiff_bench.results import PairResult, RankedFinding
from raddiff_bench.runner import evaluator, judge_result
from raddiff_bench.stack import LocalStack
from tests.harness.conftest import BENCH_PAIRS, FAST_CONFIG, bench, write_jsonl

pytestmark = pytest.mark.slow


def test_run_scores_every_pair_through_the_rest_api(stack: LocalStack, small_bench: Path, fast_config: Path) -> None:
    out = small_bench.parent / "results.json"
    proc = bench(
        "run", "--jsonl", str(small_bench), "--orchestrator", stack.url, "--concurrency", "2",
        "--config", str(fast_config), "--out", str(out), "--poll", "0.3",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    pairs = data["pairs"]
    assert [p["id"] for p in pairs] == list(BENCH_PAIRS)
    expected_truths = [json.loads(line) for line in small_bench.read_text().splitlines()]
    for pair, line in zip(pairs, expected_truths, strict=True):
        assert pair["status"] == "succeeded" and pair["error"] is None, pair
        assert (pair["set1"], pair["set2"], pair["difficulty"]) == (line["set1"], line["set2"], line["difficulty"])
        assert pair["judged_by"] == "orchestrator"
        findings = pair["findings"]
        if not findings:  # the proposer may find nothing in 8 random-VLM captions: then nothing is judged
            assert pair["judge"] == "none" and pair["scores"] == [] and pair["acc_at_5"] == 0.0
            assert any("found no finding" in note for note in pair["notes"])
        else:  # one judge score per ranked finding, best AUROC first; Acc@k follows from the scores
            assert pair["judge"] == "semantic" and len(pair["scores"]) == len(findings)
            assert [f["score"] for f in findings] == pair["scores"]
            aurocs = [f["auroc"] for f in findings]
            assert aurocs == sorted(aurocs, reverse=True) and all(0 <= a <= 1 for a in aurocs)
            assert all(f["auroc_ci"][0] <= f["auroc"] <= f["auroc_ci"][1] for f in findings)
            assert pair["acc_at_1"] == pair["scores"][0] / 2 and pair["acc_at_5"] == max(pair["scores"][:5]) / 2
        assert pair["seconds"] > 0
        # The orchestrator got the pair's truths as ground truth and the config as given.
        view = httpx.get(f"{stack.url}/v1/analyses/{pair['analysis_id']}", timeout=30).json()
        assert view["ground_truth"] == {"a": line["set1"], "b": line["set2"]}
        assert view["config"]["num_iterations"] == FAST_CONFIG["num_iterations"]
        assert view["config"]["proposer"]["num_samples"] == FAST_CONFIG["proposer"]["num_samples"]
        assert view["sets"]["a"]["images"] == len(line["set1_images"]) == 8
    assert any(p["judge"] == "semantic" for p in pairs), "the evaluator judged no pair"
    table = {row["group"]: row for row in data["table"]}
    assert list(table) == ["easy", "hard", "overall"]
    assert table["overall"]["pairs"] == 2 and table["overall"]["failed"] == 0
    assert table["overall"]["acc_at_5"] == pytest.approx(sum(p["acc_at_5"] for p in pairs) / 2)
    assert table["easy"]["acc_at_1"] == pairs[0]["acc_at_1"] and table["hard"]["acc_at_1"] == pairs[1]["acc_at_1"]
    printed = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.split()}
    assert printed["overall"][1:3] == ["2", "0"]
    assert float(printed["overall"][4]) == pytest.approx(table["overall"]["acc_at_5"], abs=5e-4)


def test_compare_runs_both_configs_over_the_same_pairs(stack: LocalStack, small_bench: Path, fast_config: Path) -> None:
    single = fast_config.parent / "single.yaml"
    single.write_text(json.dumps({**FAST_CONFIG, "num_iterations": 1}))
    out = small_bench.parent / "comparison.json"
    proc = bench(
        "compare", "--jsonl", str(small_bench), "--orchestrator", stack.url, "--config", str(fast_config),
        "--config", str(single), "--out", str(out), "--poll", "0.3",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    candidate, reference = data["runs"]
    assert candidate["run"]["config"]["num_iterations"] == FAST_CONFIG["num_iterations"]
    assert reference["run"]["config"]["num_iterations"] == 1
    assert [p["id"] for p in candidate["pairs"]] == [p["id"] for p in reference["pairs"]] == list(BENCH_PAIRS)
    for row, c, r in zip(data["comparison"], candidate["table"], reference["table"], strict=True):
        assert row["group"] == c["group"] == r["group"]
        assert row["acc_at_1"] == {"candidate": c["acc_at_1"], "reference": r["acc_at_1"],
                                   "gain": pytest.approx(c["acc_at_1"] - r["acc_at_1"])}  # fmt: skip
    assert "against single.yaml (ref)" in proc.stdout
    refused = bench("compare", "--jsonl", str(small_bench), "--orchestrator", stack.url, "--config", str(single))
    assert refused.returncode == 2 and "exactly two --config" in refused.stderr


def test_run_pair_exits_0_with_one_json_line(stack: LocalStack, small_bench: Path, fast_config: Path) -> None:
    proc = bench(
        "run-pair", "--jsonl", str(small_bench), "--index", "0", "--orchestrator", stack.url,
        "--config", str(fast_config), "--poll", "0.3",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert (result["index"], result["id"], result["status"]) == (0, BENCH_PAIRS[0], "succeeded")
    assert len(result["scores"]) == len(result["findings"])
    assert result["acc_at_5"] == max(result["scores"][:5], default=0) / 2


@pytest.mark.skipif(importlib.util.find_spec("torchxrayvision") is None, reason="the OpenI reports are not installed")
def test_the_report_benchmark_is_judged_by_the_evaluator(stack: LocalStack, tmp_path: Path) -> None:
    from raddiff_synth.openi import build_pairs

    lines, _ = build_pairs(per_set=30)
    chosen = [line for line in lines if line["pair_id"] in ("cardiomegaly-vs-normal", "effusion-left-vs-right")]
    jsonl = write_jsonl(tmp_path / "reports.jsonl", chosen)
    out = tmp_path / "reports.json"
    proc = bench("run", "--reports-jsonl", str(jsonl), "--evaluator", stack.evaluator, "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("Report benchmark: the offline ContrastProposer on the report texts")
    data = json.loads(out.read_text())
    by_id = {p["id"]: p for p in data["pairs"]}
    for pair in by_id.values():
        assert pair["status"] == "succeeded" and pair["judged_by"] == "harness" and pair["judge"] == "semantic"
        assert len(pair["scores"]) == len(pair["findings"]) > 0
        assert all(f["share_a"] > f["share_b"] for f in pair["findings"])  # each is affirmed more often in A
    # "cardiomegaly" is what cardiomegaly reports say and normal ones do not; the judge calls it a match.
    cardiomegaly = {f["finding"]: f["score"] for f in by_id["cardiomegaly-vs-normal"]["findings"]}
    assert cardiomegaly.get("cardiomegaly") == 2


async def test_a_result_left_unjudged_is_judged_by_the_harness(stack: LocalStack) -> None:
    def unjudged() -> PairResult:
        result = PairResult(0, "p", "easy", "moderate right pleural effusion", "no pleural effusion")
        result.findings = [RankedFinding(1, "cardiomegaly"), RankedFinding(2, "moderate right pleural effusion")]
        return result

    async with evaluator(stack.evaluator) as judge:
        judged = await judge_result(unjudged(), judge, "semantic")
    assert (judged.status, judged.judged_by, judged.judge) == ("succeeded", "harness", "semantic")
    assert judged.scores == [0, 2] and (judged.acc_at_1, judged.acc_at_5) == (0.0, 1.0)
    alone = await judge_result(unjudged(), None, "")
    assert alone.status == "failed" and "no evaluator target was given (--evaluator)" in (alone.error or "")


def test_a_pair_over_its_time_is_cancelled_and_fails(stack: LocalStack, small_bench: Path, fast_config: Path) -> None:
    proc = bench(
        "run-pair", "--jsonl", str(small_bench), "--index", "1", "--orchestrator", stack.url,
        "--config", str(fast_config), "--timeout", "0.2", "--poll", "0.1",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "failed" and "did not finish within 0.2 s; cancelled it" in result["error"]
    view = httpx.get(f"{stack.url}/v1/analyses/{result['analysis_id']}", timeout=30).json()
    assert view["cancel_requested"] or view["status"] == "cancelled"
