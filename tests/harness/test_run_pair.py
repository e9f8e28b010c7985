"""run-pair's exit codes, which the Kubernetes bench Job's podFailurePolicy acts on, against the real
orchestrator served in process (no model services: it validates input as in production, and any analysis
it runs fails for want of models). The success path runs on the local stack (test_stack_run.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from raddiff_bench.cli import EXIT_BAD_INPUT
from tests.harness.conftest import Bare, bench, write_jsonl

CHART_VALUES = Path(__file__).resolve().parents[2] / "charts" / "raddiff" / "values.yaml"
BAD_INPUT = yaml.safe_load(CHART_VALUES.read_text())["bench"]["badInputExitCode"]


def one_json_line(stdout: str) -> dict:
    (line,) = stdout.splitlines()
    return json.loads(line)


def run_pair(jsonl: Path, index: int, url: str, *extra: str) -> tuple[int, dict]:
    proc = bench("run-pair", "--jsonl", str(jsonl), "--index", str(index), "--orchestrator", url, *extra)
    return proc.returncode, one_json_line(proc.stdout)


def test_the_bad_input_exit_code_is_the_charts() -> None:
    assert EXIT_BAD_INPUT == BAD_INPUT


def test_images_the_orchestrator_cannot_find_exit_with_the_bad_input_code(bare: Bare, tmp_path: Path) -> None:
    missing = str(bare.data / "a" / "missing.png")
    jsonl = write_jsonl(
        tmp_path / "p.jsonl",
        [{"set1": "effusion", "set2": "normal", "set1_images": [*bare.images_a, missing],
          "set2_images": bare.images_b, "pair_id": "gone"}],
    )  # fmt: skip
    code, line = run_pair(jsonl, 0, bare.url)
    assert code == BAD_INPUT
    assert (line["id"], line["status"], line["bad_input"], line["analysis_id"]) == ("gone", "failed", True, None)
    assert "HTTP 404" in line["error"] and "missing.png" in line["error"] and "does not exist" in line["error"]


def test_a_config_the_orchestrator_refuses_exits_with_the_bad_input_code(bare: Bare, tmp_path: Path) -> None:
    jsonl = write_jsonl(
        tmp_path / "p.jsonl",
        [{"set1": "effusion", "set2": "normal", "set1_images": bare.images_a, "set2_images": bare.images_b}],
    )
    config = tmp_path / "bad.yaml"
    config.write_text("proposer:\n  num_roundz: 2\n")
    code, line = run_pair(jsonl, 0, bare.url, "--config", str(config))
    assert code == BAD_INPUT and line["bad_input"] is True
    assert "HTTP 422" in line["error"] and "num_roundz" in line["error"]


def test_an_analysis_that_fails_exits_1_and_says_why(bare: Bare, tmp_path: Path) -> None:
    jsonl = write_jsonl(
        tmp_path / "p.jsonl",
        [{"set1": "effusion", "set2": "normal", "set1_images": bare.images_a, "set2_images": bare.images_b,
          "pair_id": "no-models", "difficulty": "easy"}],
    )  # fmt: skip
    code, line = run_pair(jsonl, 0, bare.url, "--poll", "0.1", "--config", str(_offline_config(tmp_path)))
    assert code == 1
    assert line["status"] == "failed" and line["bad_input"] is False and line["acc_at_1"] == 0.0
    assert line["error"].startswith("analysis failed:") and "RADDIFF_VLM_TARGET" in line["error"]
    # The analysis was really submitted, with the pair's truths as its ground truth.
    view = httpx.get(f"{bare.url}/v1/analyses/{line['analysis_id']}").json()
    assert view["status"] == "failed" and view["ground_truth"] == {"a": "effusion", "b": "normal"}


def _offline_config(tmp_path: Path) -> Path:
    path = tmp_path / "offline.yaml"
    path.write_text("proposer:\n  method: offline\n")
    return path


def test_an_unreachable_orchestrator_exits_1(bare: Bare, tmp_path: Path) -> None:
    jsonl = write_jsonl(
        tmp_path / "p.jsonl",
        [{"set1": "effusion", "set2": "normal", "set1_images": bare.images_a, "set2_images": bare.images_b}],
    )
    code, line = run_pair(jsonl, 0, "http://127.0.0.1:9")  # the discard port: nothing listens
    assert code == 1 and line["bad_input"] is False and "ConnectError" in line["error"]


@pytest.mark.parametrize(
    ("lines", "index", "message"),
    [
        (['{"set1": "a", "set2": "b", "set1_images": ["a.png"], "set2_images": ["b.png"]}'], 1, "out of range"),
        (["{not json"], 0, "p.jsonl:1: not JSON"),
        (['{"set1": "a", "set2": "b", "set1_images": ["a.png"]}'], 0, "set2_images must be a non-empty list"),
    ],
)
def test_a_malformed_pair_exits_with_the_bad_input_code_before_any_request(
    tmp_path: Path, lines: list[str], index: int, message: str
) -> None:
    jsonl = write_jsonl(tmp_path / "p.jsonl", lines)
    code, line = run_pair(jsonl, index, "http://127.0.0.1:9")  # never contacted
    assert code == BAD_INPUT
    assert line == {"index": index, "status": "failed", "error": line["error"], "bad_input": True}
    assert message in line["error"]


def test_reports_asked_for_but_missing_are_bad_input(bare: Bare, tmp_path: Path) -> None:
    jsonl = write_jsonl(
        tmp_path / "p.jsonl",
        [{"set1": "effusion", "set2": "normal", "set1_images": bare.images_a, "set2_images": bare.images_b}],
    )
    config = tmp_path / "reports.yaml"
    config.write_text("proposer:\n  method: reports\n")
    code, line = run_pair(jsonl, 0, bare.url, "--config", str(config))
    assert code == BAD_INPUT and "the config asks for reports but" in line["error"] and "a0.txt" in line["error"]


def test_run_reports_failed_pairs_as_failed_and_counts_them_as_zero(bare: Bare, tmp_path: Path) -> None:
    jsonl = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"set1": "effusion", "set2": "normal", "set1_images": [str(bare.data / "gone.png")],
             "set2_images": bare.images_b, "pair_id": "gone", "difficulty": "easy"},
            {"set1": "effusion", "set2": "normal", "set1_images": bare.images_a, "set2_images": bare.images_b,
             "pair_id": "no-models", "difficulty": "hard"},
        ],
    )  # fmt: skip
    out = tmp_path / "out" / "results.json"
    proc = bench(
        "run", "--jsonl", str(jsonl), "--orchestrator", bare.url, "--config", str(_offline_config(tmp_path)),
        "--out", str(out), "--poll", "0.1",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    data = json.loads(out.read_text())
    assert [(p["id"], p["status"], p["bad_input"]) for p in data["pairs"]] == [
        ("gone", "failed", True),
        ("no-models", "failed", False),
    ]
    overall = data["table"][-1]
    assert (overall["group"], overall["pairs"], overall["failed"], overall["acc_at_5"]) == ("overall", 2, 2, 0.0)
    assert (
        "  gone [easy]: rejected with HTTP 404" in proc.stdout and "  no-models [hard]: analysis failed" in proc.stdout
    )
    assert "[2/2]" in proc.stderr  # a progress line per pair
