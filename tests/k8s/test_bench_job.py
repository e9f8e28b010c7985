"""charts/jobs/render_bench_job.py: one Indexed Job per JSONL of benchmark pairs, one index per pair."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.k8s import chartcheck as cc
from tests.k8s.conftest import find

CLI = cc.ROOT / "charts" / "jobs" / "render_bench_job.py"
PAIRS = [{"id": "cardiomegaly-vs-normal", "set_a": "a.csv", "set_b": "b.csv"}, {"id": "p2"}, {"id": "p3"}]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CLI), *args], capture_output=True, text=True, timeout=120)


def write_pairs(tmp_path: Path, lines: list[str], name: str = "pairs.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    # A blank line is not a pair: index i must be the i-th pair.
    return write_pairs(tmp_path, [json.dumps(PAIRS[0]), "", json.dumps(PAIRS[1]), json.dumps(PAIRS[2])])


def rendered_job(*args: str) -> list[dict]:
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_one_index_per_pair(pairs_file: Path) -> None:
    docs = rendered_job(str(pairs_file), "-f", str(cc.profile_path("values-gpu.yaml")))
    (job,) = [d for d in docs if d["kind"] == "Job"]
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 3 and spec["parallelism"] == 3
    assert [json.loads(line) for line in configmap["data"]["pairs.jsonl"].splitlines()] == PAIRS
    assert 1 <= spec["maxFailedIndexes"] <= 3 and spec["backoffLimitPerIndex"] >= 1
    assert spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"][:2] == ["raddiff-bench", "run-pair"]
    args = dict(zip(container["command"][2::2], container["command"][3::2], strict=True))
    assert args["--index"] == "$(JOB_COMPLETION_INDEX)" and args["--jsonl"] == "/bench/pairs.jsonl"
    (volume,) = [v for v in pod["volumes"] if v["name"] == "pairs"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"] == job["metadata"]["name"]
    # The orchestrator URL is the release's orchestrator Service.
    chart = cc.render(values=[cc.profile_path("values-gpu.yaml")])
    service = find(chart, "Service", "raddiff-orchestrator")
    assert args["--orchestrator"] == f"http://raddiff-orchestrator:{service['spec']['ports'][0]['port']}"
    assert cc.check_schemas(docs) == [] and cc.check_jobs(docs) == [] and cc.check_names(docs) == []


def test_bad_input_fails_the_index_without_retry(pairs_file: Path) -> None:
    values = yaml.safe_load((cc.CHART / "values.yaml").read_text())["bench"]
    (job,) = [d for d in rendered_job(str(pairs_file)) if d["kind"] == "Job"]
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailIndex",
        "onExitCodes": {"containerName": "bench", "operator": "In", "values": [values["badInputExitCode"]]},
    }
    assert rules[1]["action"] == "Ignore" and rules[1]["onPodConditions"][0]["type"] == "DisruptionTarget"


def test_name_follows_the_pairs_and_the_release(tmp_path: Path, pairs_file: Path) -> None:
    first = rendered_job(str(pairs_file))[1]["metadata"]["name"]
    again = rendered_job(str(pairs_file))[1]["metadata"]["name"]
    other = rendered_job(str(write_pairs(tmp_path, [json.dumps(PAIRS[0])], "one.jsonl")))[1]["metadata"]["name"]
    assert first == again != other and first.startswith("raddiff-bench-")
    docs = rendered_job(str(pairs_file), "--release", "rd", "--name", "sweep-7")
    (job,) = [d for d in docs if d["kind"] == "Job"]
    assert job["metadata"]["name"] == "sweep-7"
    assert "http://rd-orchestrator:80" in job["spec"]["template"]["spec"]["containers"][0]["command"]


@pytest.mark.parametrize(
    ("lines", "args", "message"),
    [
        (['{"id": 1}', "{not json"], [], "pairs.jsonl:2: not JSON"),
        (['{"id": 1}', "[1, 2]"], [], "pairs.jsonl:2: a pair must be a JSON object, not list"),
        (["", "  "], [], "holds no pairs"),
        (['{"id": 1}'], ["--name", "Sweep_1"], "job name 'Sweep_1' must be a DNS-1123 label"),
        (['{"id": 1}'], ["--name", "s" * 53], "at most 52 characters"),
        (['{"pad": "' + "x" * 1_000_000 + '"}'], [], "a ConfigMap holds at most"),
    ],
)
def test_bad_input_is_refused_with_exit_2(tmp_path: Path, lines: list[str], args: list[str], message: str) -> None:
    proc = run(str(write_pairs(tmp_path, lines)), *args)
    assert proc.returncode == 2 and message in proc.stderr and proc.stdout == ""


def test_a_missing_file_and_a_broken_chart_are_reported(tmp_path: Path, pairs_file: Path) -> None:
    proc = run(str(tmp_path / "absent.jsonl"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr
    proc = run(str(pairs_file), "--chart", str(tmp_path / "no-chart"))
    assert proc.returncode == 1 and "helm failed" in proc.stderr


def test_cronjob_and_rendered_job_share_one_job_spec(pairs_file: Path, rendered: dict) -> None:
    cron = copy.deepcopy(find(rendered["values-gpu.yaml"], "CronJob", "raddiff-bench"))  # the fixture is shared
    assert cron["spec"]["suspend"] is True
    cron_spec = cron["spec"]["jobTemplate"]["spec"]
    (job,) = [
        d for d in rendered_job(str(pairs_file), "-f", str(cc.profile_path("values-gpu.yaml"))) if d["kind"] == "Job"
    ]
    spec = job["spec"]
    for key in ("completions", "parallelism", "maxFailedIndexes"):
        spec.pop(key), cron_spec.pop(key)
    job_pod, cron_pod = spec.pop("template"), cron_spec.pop("template")
    assert spec == cron_spec
    job_pod["spec"].pop("volumes"), cron_pod["spec"].pop("volumes")
    job_pod["spec"]["containers"][0]["image"] = cron_pod["spec"]["containers"][0]["image"]  # skaffold's tag
    assert job_pod == cron_pod
