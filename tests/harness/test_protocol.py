"""The test protocol: the --final lock, null pairs through the runner, and the accuracy and calibration arithmetic
on hand-made results (the raw rule q < FDR against the orchestrator's `supported` flag)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from raddiff_bench import protocol
from raddiff_bench.cli import main
from raddiff_bench.pairs import BadInput, ImagePair, load_image_pairs
from raddiff_bench.protocol import after, before, calibration, choose_splits, false_support, null_share, true_support
from raddiff_bench.results import PairResult, RankedFinding, ranked_findings
from raddiff_bench.runner import RunOptions, analysis_request, run_pair
from raddiff_orchestrator.agent.results import AnalysisResult, Evaluation, FindingResult, Histogram, StoredResult


def finding(rank: int, q: float | None, supported: bool | None, score: int | None = None) -> RankedFinding:
    return RankedFinding(rank=rank, finding=f"f{rank}", score=score, q_value=q, supported=supported)


def null_result(pair_id: str, *findings: RankedFinding, fdr: float = 0.05) -> PairResult:
    result = PairResult(0, pair_id, "null", "no difference (set A)", "no difference (set B)", null=True, fdr=fdr)
    result.findings = list(findings)
    return result.judged([], "none", "none")


def positive(pair_id: str, difficulty: str, *findings: RankedFinding) -> PairResult:
    result = PairResult(0, pair_id, difficulty, "a", "b")
    result.findings = list(findings)
    return result.judged([f.score or 0 for f in findings], "semantic", "orchestrator")


# -- the lock ----------------------------------------------------------------------------------------------------
def test_the_test_split_runs_only_with_final() -> None:
    assert choose_splits(None, final=False) == ["dev", "generalisation", "null"]
    assert choose_splits(None, final=True) == ["dev", "test", "generalisation", "null"]
    assert choose_splits(["null", "dev"], final=False) == ["dev", "null"]
    with pytest.raises(protocol.Locked, match="locked"):
        choose_splits(["dev", "test"], final=False)
    with pytest.raises(BadInput, match="holdout"):
        choose_splits(["holdout"], final=True)


def test_the_command_refuses_the_test_split_before_generating_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def generate(*args: object, **kwargs: object) -> None:
        raise AssertionError("the locked split's data was generated")

    monkeypatch.setattr(protocol, "ensure_split", generate)  # a broken lock fails here, fast
    args = ["protocol", "--data", str(tmp_path / "data"), "--orchestrator", "http://127.0.0.1:9"]
    args += ["--config", "a.yaml", "--config", "b.yaml", "--splits", "dev,test"]
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert "test split is locked" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
    with pytest.raises(SystemExit):
        main(["protocol", "--help"])
    assert "LOCKED" in capsys.readouterr().out


def test_protocol_takes_two_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["protocol", "--data", str(tmp_path), "--orchestrator", "http://127.0.0.1:9", "--config", "a.yaml"])
    assert "exactly two --config" in capsys.readouterr().err


# -- null pairs through the harness ---------------------------------------------------------------------------
def test_null_pairs_are_read_and_sent_without_ground_truth(tmp_path: Path) -> None:
    line = {"set1": "s1", "set2": "s2", "set1_images": ["a.png"], "set2_images": ["b.png"], "pair_id": "n"}
    (tmp_path / "b.jsonl").write_text(json.dumps(line | {"null": True}) + "\n" + json.dumps(line) + "\n")
    null, plain = load_image_pairs(tmp_path / "b.jsonl")
    assert null.null and not plain.null
    assert "ground_truth" not in analysis_request(null, {})
    assert analysis_request(plain, {})["ground_truth"] == {"a": "s1", "b": "s2"}


class FakeOrchestrator:
    """Answers one analysis with a fixed view; records what was submitted."""

    def __init__(self, view: dict[str, Any]) -> None:
        self.view, self.bodies = view, []  # type: ignore[var-annotated]

    async def submit(self, body: dict[str, Any]) -> str:
        self.bodies.append(body)
        return "an-id"

    async def wait(self, analysis_id: str, timeout_s: float, poll_s: float, on_progress: Any = None) -> dict:
        return self.view


def _finding_json(rank: int, text: str, q: float, **specific: Any) -> dict[str, Any]:
    histogram = Histogram([0.0, 1.0], [1], [1])
    item = FindingResult(
        rank=rank, finding=text, auroc=0.7, auroc_ci=[0.6, 0.8], ci_level=0.95, p_value=q / 2, q_value=q,
        t_statistic=2.0, effect_size=0.5, t_p_value=0.01, mean_a=0.3, mean_b=0.2, chexzero_auroc=None,
        iteration=1, origin="proposal", histogram=histogram, scores=None, most_a_like=[], least_a_like=[],
        **specific,
    )  # fmt: skip
    return AnalysisResult(config={}, findings=[item]).to_json()["findings"][0]  # type: ignore[no-any-return]


# A result as the orchestrator serves it (raddiff.result/1), its second finding as an orchestrator that predates
# the specificity test wrote it: no `supported`, no specific_* keys.
RESULTS = {
    **AnalysisResult(
        config={}, verdict="no supported difference found", evaluation=Evaluation([2, 0], 1.0, 1.0, "semantic")
    ).to_json(),
    "findings": [
        _finding_json(1, "effusion", 0.01, supported=False, specific_auroc=0.52, specific_q_value=0.4),
        {k: v for k, v in _finding_json(2, "line", 0.2).items() if k != "supported" and not k.startswith("specific")},
    ],
    "stage_seconds": {"rank": 0.5},
}


def test_a_null_pair_is_not_judged_and_keeps_the_support_fields() -> None:
    pair = ImagePair(0, "n", "null", "s1", "s2", ("/a.png",), ("/b.png",), null=True)
    fake = FakeOrchestrator({"status": "succeeded", "config": {"ranker": {"fdr": 0.1}}, "results": RESULTS})
    result = asyncio.run(run_pair(fake, pair, RunOptions(config={"ranker": {"fdr": 0.2}})))  # type: ignore[arg-type]
    assert result.status == "succeeded" and result.null and result.scores == [] and result.judge == "none"
    assert "ground_truth" not in fake.bodies[0]
    assert result.fdr == 0.1  # the analysis's own config first
    assert result.verdict == "no supported difference found"
    first, second = result.findings
    assert (first.supported, first.specific_auroc, first.specific_q_value) == (False, 0.52, 0.4)
    assert (second.supported, second.specific_auroc) == (None, None)
    assert result.to_json()["null"] is True and result.to_json()["findings"][0]["supported"] is False


def test_a_positive_pair_is_judged_and_the_fdr_defaults_to_005() -> None:
    pair = ImagePair(0, "p", "easy", "s1", "s2", ("/a.png",), ("/b.png",))
    fake = FakeOrchestrator({"status": "succeeded", "config": {}, "results": RESULTS})
    result = asyncio.run(run_pair(fake, pair, RunOptions(config={})))  # type: ignore[arg-type]
    assert result.scores == [2, 0] and not result.null and result.fdr == 0.05
    assert [f.score for f in result.findings] == [2, 0]
    assert ranked_findings(StoredResult.from_json(RESULTS))[0].supported is False


def test_a_result_not_in_the_result_models_shape_fails_the_pair_and_says_why() -> None:
    pair = ImagePair(0, "p", "easy", "s1", "s2", ("/a.png",), ("/b.png",))
    broken = {**RESULTS, "findings": [{"finding": "effusion", "q_value": 0.01}]}  # no rank, AUROC, ...
    fake = FakeOrchestrator({"status": "succeeded", "config": {}, "results": broken})
    result = asyncio.run(run_pair(fake, pair, RunOptions(config={})))  # type: ignore[arg-type]
    assert result.status == "failed" and not result.bad_input
    assert result.error is not None and result.error.startswith("the orchestrator's result cannot be read: Validat")
    assert "findings.0.auroc" in result.error


# -- calibration arithmetic ------------------------------------------------------------------------------------
def test_the_two_rules() -> None:
    assert before(finding(1, 0.049, False), 0.05) and not before(finding(1, 0.05, True), 0.05)
    assert not before(finding(1, None, True), 0.05)
    assert after(finding(1, 0.9, True), 0.05) and not after(finding(1, 0.01, None), 0.05)


def test_null_share_before_and_after() -> None:
    nulls = [
        null_result("quiet", finding(1, 0.3, False)),
        null_result("raw-only", finding(1, 0.01, False), finding(2, 0.02, False)),
        null_result("both", finding(1, 0.01, True)),
        null_result("loose-fdr", finding(1, 0.08, False), fdr=0.1),  # its own FDR decides the raw rule
        null_result("nothing"),
        PairResult(0, "broken", "null", "a", "b", null=True).fail("boom"),  # failed: not in the share
    ]
    assert null_share(nulls, before) == pytest.approx(3 / 5)
    assert null_share(nulls, after) == pytest.approx(1 / 5)
    assert null_share(nulls[-1:], after) is None


def test_false_support_counts_top5_zeros_that_are_supported_per_pair() -> None:
    pairs = [
        # raw: f1 (score 0) and f3 (score 0) supported -> 2; after: only f3 -> 1. f2 scored 2 is no false support.
        positive("p1", "easy", finding(1, 0.01, False, 0), finding(2, 0.01, True, 2), finding(3, 0.01, True, 0)),
        # a supported 0 at rank 6 is outside the top 5
        positive("p2", "hard", *(finding(i, 0.5, False, 0) for i in range(1, 6)), finding(6, 0.01, True, 0)),
        # score 1 is a partial match, not a false support
        positive("p3", "hard", finding(1, 0.01, True, 1)),
    ]
    assert false_support(pairs, before) == pytest.approx(2 / 3)
    assert false_support(pairs, after) == pytest.approx(1 / 3)
    assert true_support(pairs, before) == pytest.approx(2 / 3)  # p1 (f2) and p3
    assert true_support(pairs, after) == pytest.approx(2 / 3)
    assert false_support([PairResult(0, "x", "easy", "a", "b").fail("boom")], before) is None


def test_calibration_rows_per_config_split_and_all_positive() -> None:
    dev = [positive("d", "easy", finding(1, 0.01, False, 0))]
    gen = [positive("g", "hard", finding(1, 0.01, True, 0), finding(2, 0.01, None, 0))]
    runs = {"dev": [dev, dev], "generalisation": [gen, gen], "null": [[null_result("n", finding(1, 0.01, None))]]}
    rows = calibration(["full.yaml", "base.yaml"], runs)
    by_key = {(r.config, r.measure, r.split): r for r in rows}
    assert ("base.yaml", "null share", "null") not in by_key  # the null split ran with the candidate only
    null = by_key[("full.yaml", "null share", "null")]
    assert (null.pairs, null.before, null.after, null.missing) == (1, 1.0, 0.0, 1)
    assert by_key[("full.yaml", "false support / pair", "dev")].before == 1.0
    assert by_key[("full.yaml", "false support / pair", "generalisation")].after == 1.0
    pooled = by_key[("base.yaml", "false support / pair", "all positive")]
    assert (pooled.pairs, pooled.before, pooled.after) == (2, 1.5, 0.5)
    text = protocol.render_calibration(rows)
    assert "target <= 5%" in text and "finding(s) came without a `supported` field" in text


def test_accuracy_puts_splits_side_by_side_and_skips_the_null_split() -> None:
    dev_full = [positive("a", "easy", finding(1, 0.01, True, 2)), positive("b", "hard", finding(1, 0.5, False, 0))]
    dev_base = [positive("a", "easy", finding(1, 0.01, True, 1)), positive("b", "hard", finding(1, 0.5, False, 0))]
    gen = [positive("c", "medium", finding(1, 0.5, False, 0), finding(2, 0.01, True, 2))]
    table = protocol.accuracy({"dev": [dev_full, dev_base], "generalisation": [gen, gen], "null": [[]]})
    assert list(table) == ["dev", "generalisation"]
    overall = table["dev"][-1]
    assert (overall.group, overall.pairs, overall.acc_at_1, overall.acc_at_5) == (
        "overall",
        2,
        (0.5, 0.25),
        (0.5, 0.25),
    )
    text = protocol.render_accuracy("full.yaml", "base.yaml", table)
    lines = text.splitlines()
    assert "dev (2 pairs)" in lines[1] and "generalisation (1 pairs)" in lines[1]
    medium = next(line for line in lines if line.startswith("medium"))
    assert medium.split()[1] == "-" and medium.split()[-4:] == ["0.000", "0.000", "1.000", "1.000"]
    document = protocol.document(["full.yaml", "base.yaml"], False, {"dev": "x"}, {"dev": []}, table, [])
    assert document["accuracy"]["dev"][-1]["acc_at_1"]["candidate"] == 0.5 and document["final"] is False


# -- the command, data generated for real (tiny), runs faked -----------------------------------------------------
def test_splits_are_generated_once_and_again_when_the_size_changes(tmp_path: Path) -> None:
    jsonl = protocol.ensure_split("null", tmp_path, workers=1, per_set=1, size=32)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) >= 20 and all(line["null"] is True for line in lines)
    written = jsonl.stat().st_mtime_ns
    assert protocol.ensure_split("null", tmp_path, workers=1, per_set=1, size=32) == jsonl
    assert jsonl.stat().st_mtime_ns == written  # reused
    protocol.ensure_split("null", tmp_path, workers=1, per_set=1, size=40)
    assert jsonl.stat().st_mtime_ns != written


def test_the_command_runs_each_split_and_writes_one_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, str]] = []

    async def fake_run(args: Any, config: Path, jsonl: Path) -> tuple[str, dict, list[PairResult]]:
        calls.append((jsonl.parent.name, config.name))
        pairs = load_image_pairs(jsonl)
        if pairs[0].null:
            results = [null_result(p.id, finding(1, 0.01, p.index == 0)) for p in pairs]
        else:
            results = [positive(p.id, p.difficulty, finding(1, 0.01, True, 2)) for p in pairs]
        return f"run of {jsonl.name}", {"jsonl": str(jsonl)}, results

    monkeypatch.setattr("raddiff_bench.cli._run_images", fake_run)
    out = tmp_path / "protocol.json"
    args = ["protocol", "--data", str(tmp_path / "data"), "--orchestrator", "http://127.0.0.1:9"]
    args += ["--config", "full.yaml", "--config", "base.yaml", "--splits", "generalisation,null"]
    args += ["--per-set", "1", "--size", "32", "--out", str(out)]
    assert main(args) == 0
    assert calls == [("generalisation", "full.yaml"), ("generalisation", "base.yaml"), ("null", "full.yaml")]
    printed = capsys.readouterr().out
    assert "generalisation (18 pairs)" in printed and "null share" in printed
    document = json.loads(out.read_text())
    assert document["schema"] == "raddiff.bench-protocol/1" and not document["final"]
    assert len(document["splits"]["generalisation"]["runs"]) == 2 and len(document["splits"]["null"]["runs"]) == 1
    null = next(r for r in document["calibration"] if r["measure"] == "null share")
    assert (null["before"], null["after"]) == (1.0, pytest.approx(1 / null["pairs"]))
    assert document["splits"]["null"]["runs"][0]["pairs"][0]["null"] is True
