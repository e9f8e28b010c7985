"""The chart's wiring works when its commands run: render the CPU profile, run the model-cache fill Job
and every Deployment's command with the environment, volumes and ports the manifests give it (Service
names mapped to 127.0.0.1), wait on the rendered probes, run an analysis through the orchestrator's
REST API, then stop everything the way the kubelet does and check each process drains in its grace."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.k8s import chartcheck as cc
from tests.k8s import localrun as lr

pytestmark = pytest.mark.slow


def cpu_profile() -> list[dict]:
    return cc.render(values=[cc.profile_path("values-cpu.yaml")])


def test_rendering_maps_onto_loopback(tmp_path: Path) -> None:
    """The extraction alone: every process gets loopback targets, folders for its mounts, free ports."""
    cluster = lr.LocalCluster(cpu_profile(), tmp_path, {("raddiff-postgres", "url"): "sqlite:///x.db"})
    launches = {launch.name: launch for launch in cluster.deployments()}
    assert set(launches) == {
        f"raddiff-{c}/{c}" for c in ("vlm", "embedding", "llm-proxy", "localize", "evaluator", "orchestrator")
    }
    orch = launches["raddiff-orchestrator/orchestrator"]
    scratch = str(tmp_path / "claims" / "raddiff-scratch")
    for name, launch in launches.items():
        # The evaluator mounts no scratch store; its reference points where nothing may be written.
        expected = str(cluster.unmounted / "scratch") if name.startswith("raddiff-evaluator/") else scratch
        assert launch.env["RADDIFF_SCRATCH_DIR"] == expected
        port = cluster.port_map[50052]
        assert launch.env["RADDIFF_EMBEDDING_TARGET"] == f"dns:///127.0.0.1:{port}"
    assert launches["raddiff-embedding/embedding"].env["RADDIFF_EMBEDDING_GRPC_PORT"] == str(cluster.port_map[50052])
    assert orch.env["RADDIFF_ORCH_DATABASE_URL"] == "sqlite:///x.db"
    assert orch.env["RADDIFF_ORCH_PORT"] == str(orch.ports["http"])
    assert Path(orch.argv[0]).name == "raddiff-orchestrator"


def _cohort(folder: Path, count: int) -> tuple[list[str], list[str]]:
    """A small synthetic cohort whose sets differ by a moderate right pleural effusion: A's and B's paths."""
    synth = Path(sys.executable).parent / "raddiff-synth"
    subprocess.run(
        [str(synth), "cohort", "default", str(folder), "--pairs", "effusion-right-moderate",
         "--per-set", str(count), "--size", "256"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    pair = json.loads((folder / "RadDiffSynth.jsonl").read_text().splitlines()[0])
    return [str(folder / p) for p in pair["set1_images"]], [str(folder / p) for p in pair["set2_images"]]


def _http(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def test_cpu_profile_runs_an_analysis(tmp_path: Path) -> None:
    for module in ("raddiff_vlm", "raddiff_embedding", "raddiff_llm_proxy", "raddiff_localize", "raddiff_evaluator"):
        pytest.importorskip(module)
    pytest.importorskip("raddiff_orchestrator.app")
    docs = cpu_profile()
    secrets = {("raddiff-postgres", "url"): f"sqlite:///{tmp_path / 'orchestrator.db'}"}
    cluster = lr.LocalCluster(docs, tmp_path / "cluster", secrets)
    logs = tmp_path / "logs"

    # The model-cache fill Job first: its builders write the embedded default checkpoints.
    for step in cluster.job("raddiff-model-cache-fill"):
        code = lr.run_to_end(step, logs, timeout_s=300)
        assert code == 0, lr.tail(step)

    launches = cluster.deployments()
    try:
        for launch in launches:
            lr.start(launch, logs)
        lr.wait_ready(launches, timeout_s=min(300, max(x.startup_budget_s for x in launches)))
        for launch in launches:
            assert lr.probe(launch, launch.liveness), f"{launch.name}: liveness probe fails\n{lr.tail(launch)}"

        data = cluster.claim_dir("raddiff-data")
        set_a, set_b = _cohort(data / "cohort", 6)
        orch = next(x for x in launches if x.name.startswith("raddiff-orchestrator/"))
        base = f"http://127.0.0.1:{orch.ports['http']}"
        accepted = _http(
            "POST",
            f"{base}/v1/analyses",
            {
                "input": {"kind": "sets", "set_a": set_a, "set_b": set_b},
                "ground_truth": {"a": "moderate right pleural effusion", "b": "no pleural effusion"},
                "config": {"sample_size": 3, "min_findings": 1, "max_findings": 3},
            },
        )
        deadline = time.monotonic() + 300
        view = _http("GET", base + accepted["url"])
        while view["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1)
            view = _http("GET", base + accepted["url"])
        assert view["status"] == "succeeded", (view["error"], view, "\n".join(lr.tail(x) for x in launches))
        results = view["results"]
        # Every service took part: VLM captions, embedding scores, the judge's evaluation against the truth.
        findings = results.get("findings") or []
        assert findings and all(0.0 <= f.get("auroc", -1) <= 1.0 for f in findings), results
        assert results.get("embedding_model"), sorted(results)
        assert results.get("evaluation") is not None, results.get("notes")
        # No process wrote where its pod has no volume (a read-only root filesystem in the cluster).
        assert not cluster.unmounted.exists() or not any(cluster.unmounted.rglob("*"))
    finally:
        stopped = lr.stop(launches)
    # SIGTERM drains within the pod's grace period, with a clean exit (uvicorn re-raises the SIGTERM it
    # handled once it has shut down, so the orchestrator ends by that signal; the kit's servers exit 0).
    for name, (code, seconds) in stopped.items():
        launch = next(x for x in launches if x.name == name)
        clean = (0, -signal.SIGTERM) if name.startswith("raddiff-orchestrator/") else (0,)
        assert code in clean and seconds < launch.grace_s, (name, code, seconds, lr.tail(launch))
