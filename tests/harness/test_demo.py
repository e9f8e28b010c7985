"""`make demo` (python -m raddiff_bench.demo): its pair, its printout, and one run on the local stack."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from raddiff_bench import demo
from raddiff_bench.results import RankedFinding
from raddiff_bench.stack import LocalStack


def test_the_pair_is_generated_once_and_reused_while_it_matches(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    jsonl = demo.generate_pair(out, "effusion-right-moderate", per_set=2, size=64, workers=1)
    (line,) = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert line["pair_id"] == "effusion-right-moderate" and line["set1"] == "moderate right pleural effusion"
    assert len(line["set1_images"]) == len(line["set2_images"]) == 2
    image = out / line["set1_images"][0]
    assert image.with_suffix(".txt").is_file()  # the report the reports proposer would read
    written = image.stat().st_mtime_ns
    assert demo.generate_pair(out, "effusion-right-moderate", per_set=2, size=64, workers=1) == jsonl
    assert "reusing" in capsys.readouterr().out and image.stat().st_mtime_ns == written
    demo.generate_pair(out, "effusion-right-moderate", per_set=2, size=96, workers=1)  # another size: rebuilt
    assert json.loads((out / "manifest.json").read_text())["size"] == 96


def test_an_unknown_pair_and_missing_models_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert demo.main(["--model-dir", str(tmp_path / "none")]) == 3
    assert "run `make models` first" in capsys.readouterr().err
    models = tmp_path / "models"
    (models / "clip").mkdir(parents=True)
    (models / "vlm").mkdir()
    (models / "vlm" / "config.json").write_text("{}")
    args = ["--model-dir", str(models), "--pair", "no-such-pair", "--data-dir", str(tmp_path / "d"), "--per-set", "2"]
    assert demo.main(args) == 3
    assert "no-such-pair" in capsys.readouterr().err


def test_the_findings_table_shows_the_statistics_that_are_there() -> None:
    findings = [
        RankedFinding(
            1, "right pleural effusion", 2, 0.9123, [0.85, 0.96], 0.001, 0.002,
            supported=True, specific_auroc=0.88, specific_q_value=0.004,
        ),
        RankedFinding(2, "cardiomegaly", 0, 0.51, None, 0.00001, 0.00002, supported=False, specific_auroc=0.5),
        RankedFinding(3, "unjudged", None, 0.4),
    ]
    header, first, second, third = demo.findings_table(findings).splitlines()
    assert header.split() == ["rank", "AUROC", "CI", "q", "specific", "spec-q", "supported", "judge", "finding"]
    assert first.split() == [
        "1", "0.912", "[0.850,", "0.960]", "0.002", "0.880", "0.004", "yes", "2", "right", "pleural", "effusion"
    ]
    assert second.split() == ["2", "0.510", "-", "2.0e-05", "0.500", "-", "no", "0", "cardiomegaly"]
    assert third.split() == ["3", "0.400", "-", "-", "-", "-", "-", "-", "unjudged"]


@pytest.mark.slow
def test_the_demo_runs_its_pair_and_prints_ranked_findings_and_the_report_url(
    stack: LocalStack, small_bench: Path, fast_config: Path, capsys: pytest.CaptureFixture
) -> None:
    # On the running test stack (as after `make up`); its data root holds the demo's folder.
    data_dir = small_bench.parent / "demo"
    args = ["--orchestrator", stack.url, "--config", str(fast_config), "--data-dir", str(data_dir), "--per-set", "8"]
    assert demo.main(args) == 0
    out = capsys.readouterr().out
    assert "A: 'moderate right pleural effusion'   B: 'no pleural effusion'" in out
    assert re.search(r"judge \(\w+, by the orchestrator\): Acc@1 = [01]\.\d   Acc@5 = [01]\.\d", out)
    assert re.search(r"rank +AUROC +CI +q +specific +spec-q +supported +judge +finding", out) or (
        "no finding was proposed" in out
    )
    assert re.search(r"verdict: (no supported difference found|\d+ of \d+ findings supported)", out)
    (url,) = re.findall(r"evidence report: (\S+)", out)
    assert re.fullmatch(re.escape(stack.url) + r"/v1/analyses/[0-9a-f]+/report", url)
    page = httpx.get(url, timeout=60)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
