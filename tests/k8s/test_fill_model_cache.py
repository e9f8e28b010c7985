"""The model-cache fill Job's script (charts/raddiff/files/fill_model_cache.py), run for real against a
file server on loopback: what lands, what is checked, what is kept, what is refused."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s import chartcheck as cc

SCRIPT = cc.CHART / "files" / "fill_model_cache.py"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A weights file served on 127.0.0.1; yields (url, its bytes)."""
    root = tmp_path / "www"
    root.mkdir()
    payload = bytes(range(256)) * 4096
    (root / "weights.pt").write_bytes(payload)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/weights.pt", payload
    finally:
        server.shutdown()
        server.server_close()


def fill(tmp_path: Path, plan: object) -> subprocess.CompletedProcess[str]:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    cache = tmp_path / "models"
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--plan", str(plan_file), "--cache", str(cache)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_fetches_checks_and_keeps(tmp_path: Path, served: tuple[str, bytes]) -> None:
    url, payload = served
    digest = hashlib.sha256(payload).hexdigest()
    plan = [{"dir": "clip", "url": url, "sha256": digest, "file": "chexzero.pt"}, {"dir": "vlm", "hf": ""}]
    proc = fill(tmp_path, plan)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "models/clip/chexzero.pt").read_bytes() == payload
    assert proc.stdout.splitlines() == [f"clip: fetched from {url}", "vlm: skipped (no source set in the plan)"]
    assert not list((tmp_path / "models").glob(".*.partial"))
    # A second run finds the folder complete and fetches nothing.
    again = fill(tmp_path, plan)
    assert again.returncode == 0 and again.stdout.splitlines()[0] == "clip: already complete"


def test_a_checksum_mismatch_leaves_no_folder(tmp_path: Path, served: tuple[str, bytes]) -> None:
    url, _ = served
    proc = fill(tmp_path, [{"dir": "clip", "url": url, "sha256": "0" * 64, "file": "chexzero.pt"}])
    assert proc.returncode == 1 and "does not match" in proc.stderr
    assert not (tmp_path / "models/clip").exists()


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"dir": "clip"}, "must be a JSON list"),
        ([{"url": "http://x"}], "needs a 'dir'"),
        ([{"dir": "../etc", "url": "http://x", "file": "f"}], "one plain folder name"),
        ([{"dir": "a", "hf": "r"}, {"dir": "a", "hf": "r"}], "appears twice"),
        ([{"dir": "a", "hf": "r", "url": "http://x"}], "names both 'hf' and 'url'"),
        ([{"dir": "a", "url": "http://x"}], "no 'file'"),
    ],
)
def test_a_malformed_plan_is_refused_with_exit_2(tmp_path: Path, plan: object, message: str) -> None:
    proc = fill(tmp_path, plan)
    assert proc.returncode == 2 and message in proc.stderr


def test_the_chart_ships_the_script_and_a_plan_it_accepts(tmp_path: Path, rendered: dict) -> None:
    configmap = next(
        d
        for d in rendered["values-gpu.yaml"]
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "raddiff-model-cache-fill"
    )
    assert configmap["data"]["fill_model_cache.py"].strip() == SCRIPT.read_text().strip()
    plan = json.loads(configmap["data"]["plan.json"])
    assert {entry["dir"] for entry in plan} == {"vlm", "clip"}  # the services' default checkpoint folders
    # The chart's own plan parses (entries without a source are skipped, none is fetched here).
    offline = [{k: v for k, v in e.items() if k not in ("hf", "revision")} | {"url": ""} for e in plan]
    proc = fill(tmp_path, offline)
    assert proc.returncode == 0, proc.stderr
