"""The committed screenshot of the evidence report, from a real run: a synthetic pair (raddiff-synth), the
six processes on loopback (raddiff_kit.localstack, as `make up` starts them), one analysis through the
REST API with the embedded default (offline proposer on the reports, 2 iterations, model-based visual
search), then headless Chromium on its report.

    python -m tests.report.evidence_screenshot docs/evidence_report.png [--per-set 20] [--keep DIR]

Needs `make models` (or writes small random checkpoints into the work folder), raddiff-synth with its CT
wheel, and Chromium. Takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from raddiff_kit import localstack
from tests.report.browser import find_chromium, screenshot

PAIR = "effusion-right-moderate"
REPO = Path(__file__).resolve().parents[2]
# Short captions and quick polling; nothing else differs from `make up`.
STACK_ENV = {"RADDIFF_ORCH_CAPTION_MAX_TOKENS": "48", "RADDIFF_ORCH_POLL_SECONDS": "0.2"}


def _http(method: str, url: str, body: object | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.loads(reply.read())


def _model_dir(work: Path) -> Path:
    cached = REPO / ".models"
    if (cached / "clip").is_dir() and (cached / "vlm" / "config.json").is_file():
        return cached
    for module, folder in (("raddiff_embedding.checkpoints", "clip"), ("raddiff_vlm.checkpoints", "vlm")):
        subprocess.run([sys.executable, "-m", module, "init-random", str(work / folder)], check=True)
    return work


def run(out: Path, per_set: int, work: Path) -> str:
    data = work / "data"
    synth = Path(sys.executable).parent / "raddiff-synth"
    subprocess.run([str(synth), "cohort", "default", str(data), "--pairs", PAIR, "--per-set", str(per_set),
                    "--size", "320"], check=True, capture_output=True)
    images = data / "images" / PAIR
    set_a = sorted(str(p) for p in (images / "A").glob("*.png"))
    set_b = sorted(str(p) for p in (images / "B").glob("*.png"))
    reports = {p: Path(p).with_suffix(".txt").read_text() for p in set_a + set_b}

    run_dir = work / "run"
    envs = localstack.stack_env(run_dir, [data], _model_dir(work / "models"), localstack.free_base_port())
    localstack.start(run_dir, envs, STACK_ENV)
    try:
        url = localstack.wait_ready(run_dir, envs, 300)["orchestrator"]
        body = {
            "name": "Moderate right pleural effusion vs none (synthetic)",
            "input": {"kind": "sets", "set_a": set_a, "set_b": set_b, "name_a": "effusion", "name_b": "no effusion"},
            "reports": reports,
            "ground_truth": {"a": "moderate right pleural effusion", "b": "no pleural effusion"},
            "config": {
                "seed": 7,
                "num_iterations": 2,
                "proposer": {"method": "offline", "num_rounds": 2, "num_samples": 10, "box_source": "model"},
            },
        }
        analysis = _http("POST", f"{url}/v1/analyses", body)["id"]
        began = time.monotonic()
        while (view := _http("GET", f"{url}/v1/analyses/{analysis}"))["status"] not in ("succeeded", "failed"):
            if time.monotonic() - began > 1200:
                raise SystemExit(f"analysis {analysis} did not finish in 20 minutes")
            time.sleep(1)
        if view["status"] != "succeeded":
            raise SystemExit(f"analysis {analysis} failed: {view['error']}")
        print(f"analysis {analysis} finished in {time.monotonic() - began:.0f} s")
        (work / "result.json").write_text(json.dumps(view["results"], indent=1))
        chromium = find_chromium()
        if chromium is None:
            raise SystemExit("headless Chromium is not installed (Debian: apt-get install -y chromium)")
        screenshot(chromium, f"{url}/v1/analyses/{analysis}/report", out)
        return analysis
    finally:
        localstack.stop(run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.report.evidence_screenshot")
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-set", type=int, default=20)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.out.resolve(), args.per_set, args.keep.resolve())
        return
    with tempfile.TemporaryDirectory(prefix="raddiff-evidence-") as work:
        run(args.out.resolve(), args.per_set, Path(work))


if __name__ == "__main__":
    main()
