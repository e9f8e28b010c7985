"""--seeds for compare and protocol: parsing, the seed sent, the mean and spread over seeds on hand-made results
(the gain paired by seed), and one seed's output exactly as without --seeds. Runs are stubbed: no stack."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

import pytest

from raddiff_bench import cli, multiseed, protocol
from raddiff_bench.cli import main
from raddiff_bench.multiseed import Spread, calibration_over_seeds, compare_over_seeds, parse_seeds, spread
from raddiff_bench.results import PairResult, RankedFinding
from raddiff_bench.table import compare, summarize


def judged(pair_id: str, difficulty: str, scores: list[int]) -> PairResult:
    result = PairResult(0, pair_id, difficulty, "a", "b")
    result.findings = [
        RankedFinding(rank=i + 1, finding=f"f{i}", q_value=0.01, supported=True) for i in range(len(scores))
    ]
    return result.judged(scores, "semantic", "orchestrator")


def null_pair(pair_id: str, supported: bool) -> PairResult:
    result = PairResult(0, pair_id, "null", "x", "y", null=True)
    result.findings = [RankedFinding(rank=1, finding="f", q_value=0.01 if supported else 0.5, supported=supported)]
    return result.judged([], "none", "none")


# -- parsing ---------------------------------------------------------------------------------------------------
def test_seeds_parse_in_the_order_given() -> None:
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds(" 7 , 3") == [7, 3]
    assert parse_seeds("5") == [5]
    assert parse_seeds(str(2**63 - 1)) == [2**63 - 1]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0,x,2", "not 'x'"),
        ("1.5", "not '1.5'"),
        ("-1", "not '-1'"),
        ("0,,1", "not ''"),
        (str(2**63), "from 0 to 2**63-1"),
        ("", "at least one seed"),
        ("1,2,1", "each seed once: 1 given more than once"),
        ("3,3,4,4", "3, 4 given more than once"),
    ],
)
@pytest.mark.parametrize("command", ["protocol", "compare"])
def test_bad_seeds_are_a_usage_error(
    command: str, text: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [command, "--orchestrator", "http://127.0.0.1:9", "--config", "a.yaml", "--config", "b.yaml"]
    args += ["--data", str(tmp_path)] if command == "protocol" else ["--jsonl", str(tmp_path / "b.jsonl")]
    with pytest.raises(SystemExit) as exited:
        main([*args, f"--seeds={text}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --seeds:" in err and says in err


def test_the_seed_is_written_into_the_config_sent(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("seed: 0\nnum_iterations: 2\n")
    args = argparse.Namespace(judge_backend=None, timeout=1.0, poll=1.0)
    assert cli._options(args, config).config == {"seed": 0, "num_iterations": 2}  # its own seed
    assert cli._options(multiseed.seeded(args, 4), config).config == {"seed": 4, "num_iterations": 2}
    assert cli._options(multiseed.seeded(args, None), config).config["seed"] == 0
    assert multiseed.with_seed({}, 9) == {"seed": 9}


# -- arithmetic ------------------------------------------------------------------------------------------------
def test_spread_is_mean_sample_sd_min_and_max_of_what_is_there() -> None:
    assert spread([0.5, 0.25, 0.0]) == Spread(0.25, 0.25, 0.0, 0.5, 3)  # sample SD: sqrt((1/16 + 0 + 1/16) / 2)
    assert spread([0.4, None]) == Spread(0.4, None, 0.4, 0.4, 1)  # one value: no SD
    assert spread([None, None]) == Spread(None, None, None, None, 0)


# Per seed, the same three pairs (two easy, one hard) with the judge's scores for candidate and reference.
CANDIDATE = {
    0: {"e1": [2], "e2": [0, 2], "h1": [1]},  # Acc@1: easy 0.5, hard 0.5, overall 1.5/3; Acc@5: easy 1, hard 0.5
    1: {"e1": [2], "e2": [2], "h1": [0]},  # easy 1.0, hard 0.0, overall 2/3; Acc@5 the same
    2: {"e1": [0], "e2": [0], "h1": [2]},  # easy 0.0, hard 1.0, overall 1/3; Acc@5 the same
}
REFERENCE = {
    0: {"e1": [1], "e2": [0], "h1": [0]},  # easy 0.25, hard 0.0; Acc@5 the same
    1: {"e1": [2], "e2": [0], "h1": [0]},  # easy 0.5, hard 0.0
    2: {"e1": [0], "e2": [0], "h1": [1]},  # easy 0.0, hard 0.5
}
DIFFICULTY = {"e1": "easy", "e2": "easy", "h1": "hard"}


def seed_results(scores: dict[str, list[int]]) -> list[PairResult]:
    return [judged(pair_id, DIFFICULTY[pair_id], s) for pair_id, s in scores.items()]


def test_accuracy_over_three_seeds_with_the_gain_paired_by_seed() -> None:
    per_seed = [
        compare(summarize(seed_results(CANDIDATE[s])), summarize(seed_results(REFERENCE[s]))) for s in (0, 1, 2)
    ]
    easy, hard, overall = compare_over_seeds(per_seed)
    assert (easy.group, easy.pairs, hard.pairs, overall.group, overall.pairs) == ("easy", 2, 1, "overall", 3)
    cand, ref = easy.acc_at_1
    assert cand == Spread(0.5, 0.5, 0.0, 1.0, 3)
    assert ref.mean == pytest.approx(0.25) and ref.sd == pytest.approx(0.25) and (ref.min, ref.max) == (0.0, 0.5)
    # Paired: the gains are 0.25, 0.5, 0.0 per seed; their SD (0.25) is not what the columns' SDs would suggest.
    assert easy.gain_at_1.mean == pytest.approx(0.25) and easy.gain_at_1.sd == pytest.approx(0.25)
    assert (easy.gain_at_1.min, easy.gain_at_1.max) == (0.0, 0.5)
    assert easy.acc_at_5[0].mean == pytest.approx(2 / 3)  # seed 0's e2 matches at rank 2: Acc@5 1.0
    hard_gains = [0.5, 0.0, 0.5]
    assert hard.gain_at_1.mean == pytest.approx(fmean(hard_gains)) and hard.gain_at_1.sd == pytest.approx(
        stdev(hard_gains)
    )
    overall_cand = [1.5 / 3, 2 / 3, 1 / 3]
    overall_gain = [c - r for c, r in zip(overall_cand, [0.5 / 3, 1 / 3, 0.5 / 3], strict=True)]
    assert overall.acc_at_1[0].mean == pytest.approx(fmean(overall_cand))
    assert overall.acc_at_1[0].sd == pytest.approx(stdev(overall_cand))
    assert overall.gain_at_1.mean == pytest.approx(fmean(overall_gain))
    assert overall.gain_at_1.sd == pytest.approx(stdev(overall_gain))
    assert (overall.gain_at_1.min, overall.gain_at_1.max) == pytest.approx((min(overall_gain), max(overall_gain)))

    text = multiseed.render_accuracy("full.yaml", "base.yaml", [0, 1, 2], {"dev": compare_over_seeds(per_seed)})
    lines = text.splitlines()
    assert "3 seeds (0, 1, 2)" in lines[0] and "paired by seed" in lines[0]
    assert "dev (3 pairs): Acc@1" in lines and "dev (3 pairs): Acc@5" in lines
    easy_line = next(line for line in lines if line.startswith("easy"))  # Acc@1's block comes first
    assert easy_line.split() == [
        "easy", "2", "0.500", "0.500", "0.000", "1.000", "0.250", "0.250", "0.000", "0.500",
        "+0.250", "0.250", "+0.000", "+0.500",
    ]  # fmt: skip


def test_seeds_over_different_pairs_do_not_aggregate() -> None:
    one = compare(summarize(seed_results(CANDIDATE[0])), summarize(seed_results(REFERENCE[0])))
    fewer = compare(summarize(seed_results({"e1": [2]})), summarize(seed_results({"e1": [2]})))
    with pytest.raises(ValueError, match="same pairs"):
        compare_over_seeds([one, fewer])


def test_calibration_over_three_seeds() -> None:
    # Null share per seed: 1/2, 0/2, then no null pair finished (left out of the spread, counted as failed).
    nulls = [
        [null_pair("n1", True), null_pair("n2", False)],
        [null_pair("n1", False), null_pair("n2", False)],
        [PairResult(0, "n1", "null", "x", "y", null=True).fail("boom")] * 2,
    ]
    per_seed = [protocol.calibration(["full.yaml"], {"null": [n]}) for n in nulls]
    (row,) = calibration_over_seeds(per_seed)
    assert (row.config, row.measure, row.split, row.pairs, row.failed) == ("full.yaml", "null share", "null", 4, 2)
    assert row.after == Spread(0.25, stdev([0.5, 0.0]), 0.0, 0.5, 2)
    assert row.before == row.after  # q 0.01 exactly where supported
    # False support per pair over the seeds: a supported top finding judged 0 counts.
    positives = [[judged("p", "easy", [0])], [judged("p", "easy", [2])], [judged("p", "easy", [0, 0])]]
    per_seed = [protocol.calibration(["c"], {"dev": [p, p]}) for p in positives]
    false, true = calibration_over_seeds(per_seed)
    assert (false.measure, false.after.mean, false.after.min, false.after.max) == ("false support / pair", 1.0, 0, 2)
    assert false.after.sd == pytest.approx(1.0)
    assert (true.measure, true.after.mean) == ("true support", pytest.approx(1 / 3))
    text = multiseed.render_calibration([0, 1, 2], calibration_over_seeds(per_seed))
    assert "Calibration over 3 seeds (0, 1, 2)" in text and "summed over the seeds" in text and "target <= 5%" in text
    line = next(line for line in text.splitlines() if "false support" in line)
    assert line.split()[-8:] == ["1.000", "1.000", "0.000", "2.000", "1.000", "1.000", "0.000", "2.000"]


# -- the commands, runs stubbed ---------------------------------------------------------------------------------
def _pairs_jsonl(path: Path, null: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        {"pair_id": pid, "difficulty": "null" if null else DIFFICULTY[pid], "set1": "a", "set2": "b", "null": null,
         "set1_images": ["a.png"], "set2_images": ["b.png"]}
        for pid in (("n1", "n2") if null else ("e1", "e2", "h1"))
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _stub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, str, int | None]]:
    """Each split's JSONL written by hand; each run answered from CANDIDATE / REFERENCE by its seed (None: 0)."""
    calls: list[tuple[str, str, int | None]] = []

    def ensure(split: str, root: Path, **kwargs: object) -> Path:
        return _pairs_jsonl(tmp_path / "data" / split / "pairs.jsonl", split == "null")

    async def fake_run(args: Any, config: Path, jsonl: Path | None = None) -> tuple[str, dict, list[PairResult]]:
        jsonl = jsonl or args.jsonl
        seed = cli._options(args, None).config.get("seed")  # what would have been sent
        calls.append((jsonl.parent.name, config.name, seed))
        if jsonl.parent.name == "null":
            results = [null_pair("n1", (seed or 0) == 0), null_pair("n2", False)]
        else:
            results = seed_results((CANDIDATE if config.name == "full.yaml" else REFERENCE)[seed or 0])
        return f"run of {config.name}", {"config": {"seed": seed}}, results

    monkeypatch.setattr(protocol, "ensure_split", ensure)
    monkeypatch.setattr("raddiff_bench.cli._run_images", fake_run)
    return calls


PROTOCOL = ["protocol", "--orchestrator", "http://127.0.0.1:9", "--config", "full.yaml", "--config", "base.yaml"]
PROTOCOL += ["--splits", "dev,null"]


def test_one_seed_prints_and_writes_what_the_protocol_did_without_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = _stub(monkeypatch, tmp_path)
    plain, seeded = tmp_path / "plain.json", tmp_path / "seeded.json"
    assert main([*PROTOCOL, "--data", str(tmp_path / "data"), "--out", str(plain)]) == 0
    without = capsys.readouterr().out
    assert calls == [("dev", "full.yaml", None), ("dev", "base.yaml", None), ("null", "full.yaml", None)]
    calls.clear()
    assert main([*PROTOCOL, "--data", str(tmp_path / "data"), "--seeds", "0", "--out", str(seeded)]) == 0
    with_one = capsys.readouterr().out
    assert calls == [("dev", "full.yaml", 0), ("dev", "base.yaml", 0), ("null", "full.yaml", 0)]
    assert with_one.replace(str(seeded), str(plain)) == without
    # The one-run tables, exactly: the first two lines of each, pinned.
    lines = without.splitlines()
    assert lines[0] == "Accuracy: full.yaml (Acc@1, Acc@5) beside base.yaml (ref)"
    assert lines[1].strip() == "dev (3 pairs)"
    assert next(line for line in lines if line.startswith("overall")).split() == [
        "overall", "3", "0.500", "0.167", "0.833", "0.167",
    ]  # fmt: skip
    assert "Calibration: before = q_value < FDR" in without and "over" not in without.split("Calibration")[1][:20]
    first, second = json.loads(plain.read_text()), json.loads(seeded.read_text())
    assert first["schema"] == second["schema"] == "raddiff.bench-protocol/1"
    assert "seeds" not in second and "per_seed" not in second
    for document in (first, second):  # the one-run run documents, untagged
        document["splits"]["dev"]["runs"][0]["run"] = document["splits"]["dev"]["runs"][1]["run"] = None
        document["splits"]["null"]["runs"][0]["run"] = None
    assert first == second


def test_three_seeds_run_each_config_once_per_seed_and_report_the_spread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = _stub(monkeypatch, tmp_path)
    out = tmp_path / "protocol.json"
    assert main([*PROTOCOL, "--data", str(tmp_path / "data"), "--seeds", "0,1,2", "--out", str(out)]) == 0
    assert calls == [
        (split, config, seed)
        for seed in (0, 1, 2)
        for split, config in (("dev", "full.yaml"), ("dev", "base.yaml"), ("null", "full.yaml"))
    ]
    printed = capsys.readouterr().out
    assert "Accuracy over 3 seeds (0, 1, 2)" in printed and "Calibration over 3 seeds (0, 1, 2)" in printed
    document = json.loads(out.read_text())
    assert document["schema"] == "raddiff.bench-protocol-seeds/1" and document["seeds"] == [0, 1, 2]
    runs = document["splits"]["dev"]["runs"]
    assert [(r["config"], r["seed"]) for r in runs] == [(c, s) for s in (0, 1, 2) for c in ("full.yaml", "base.yaml")]
    assert runs[2]["title"] == "run of full.yaml [seed 1]" and len(runs[2]["pairs"]) == 3
    assert [p["seed"] for p in document["per_seed"]] == [0, 1, 2]
    assert document["per_seed"][1]["accuracy"]["dev"][0]["acc_at_1"] == {
        "candidate": 1.0,
        "reference": 0.5,
        "gain": 0.5,
    }
    easy = document["accuracy"]["dev"][0]
    assert easy["group"] == "easy" and easy["acc_at_1"]["gain"]["mean"] == pytest.approx(0.25)
    assert easy["acc_at_1"]["candidate"] == {"mean": 0.5, "sd": 0.5, "min": 0.0, "max": 1.0, "seeds": 3}
    (null,) = [r for r in document["calibration"] if r["measure"] == "null share"]
    assert null["after"]["mean"] == pytest.approx(1 / 6) and (null["pairs"], null["failed"]) == (6, 0)


def test_compare_with_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = _stub(monkeypatch, tmp_path)
    jsonl = _pairs_jsonl(tmp_path / "bench" / "b.jsonl", null=False)
    args = ["compare", "--jsonl", str(jsonl), "--orchestrator", "http://127.0.0.1:9"]
    args += ["--config", "full.yaml", "--config", "base.yaml"]
    one = tmp_path / "one.json"
    assert main([*args, "--out", str(one)]) == 0
    assert json.loads(one.read_text())["schema"] == "raddiff.bench-compare/1"
    assert "full.yaml against base.yaml (ref)" in capsys.readouterr().out
    calls.clear()
    out = tmp_path / "three.json"
    assert main([*args, "--seeds", "2,0,1", "--out", str(out)]) == 0
    assert [(c, s) for _, c, s in calls] == [(c, s) for s in (2, 0, 1) for c in ("full.yaml", "base.yaml")]
    printed = capsys.readouterr().out
    assert "Accuracy over 3 seeds (2, 0, 1)" in printed and "b.jsonl (3 pairs): Acc@5" in printed
    document = json.loads(out.read_text())
    assert document["schema"] == "raddiff.bench-compare-seeds/1" and document["seeds"] == [2, 0, 1]
    assert [(r["config"], r["seed"]) for r in document["runs"]][:2] == [("full.yaml", 2), ("base.yaml", 2)]
    overall = document["comparison"][-1]
    assert overall["group"] == "overall" and overall["acc_at_1"]["gain"]["seeds"] == 3
    assert [p["comparison"][-1]["acc_at_1"]["candidate"] for p in document["per_seed"]] == pytest.approx(
        [1 / 3, 1.5 / 3, 2 / 3]
    )
