"""Render the Indexed Job of a benchmark sweep for one JSONL of pairs, ready for kubectl.

    python charts/jobs/render_bench_job.py PAIRS.jsonl [--release raddiff] [--namespace raddiff]
        [-f charts/raddiff/values-gpu.yaml] [--name NAME] [-o job.yaml]
    kubectl apply -n raddiff -f job.yaml

Output: a ConfigMap holding the pairs and an Indexed Job with one index per pair (blank lines are not
pairs); index i runs `raddiff-bench run-pair --jsonl /bench/pairs.jsonl --index i --orchestrator URL`
against the release's orchestrator. The Job comes from the chart's own template (templates/bench-job.yaml,
shared with the suspended CronJob), rendered with `helm template`, so it always matches the release.
Exit status: 0 rendered, 2 bad input (the message names the line), 1 helm failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "raddiff"
# A ConfigMap holds at most 1 MiB, keys and metadata included.
MAX_JSONL_BYTES = 900 * 1024
MAX_JOB_NAME = 52  # room for the pods' -<index>-<random> suffixes within 63


class BadInput(ValueError):
    """The JSONL or the options are wrong; the message says where."""


def read_pairs(path: Path) -> list[str]:
    """The non-blank lines of a JSONL file, each checked to be one JSON object."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_JSONL_BYTES:
        raise BadInput(f"{path} is {len(raw)} bytes; a ConfigMap holds at most {MAX_JSONL_BYTES} (split the sweep)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path} is not UTF-8 (byte {exc.start})") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(value, dict):
            raise BadInput(f"{path}:{number}: a pair must be a JSON object, not {type(value).__name__}")
        pairs.append(line.strip())
    if not pairs:
        raise BadInput(f"{path} holds no pairs")
    return pairs


def job_name(release: str, pairs: list[str], name: str | None) -> str:
    """The given name, or <release>-bench-<content hash>: the same pairs give the same Job."""
    if name is None:
        digest = hashlib.sha256("\n".join(pairs).encode()).hexdigest()[:10]
        name = f"{release}-bench-{digest}"
    if len(name) > MAX_JOB_NAME or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        raise BadInput(f"job name {name!r} must be a DNS-1123 label of at most {MAX_JOB_NAME} characters")
    return name


def helm_binary() -> str:
    for candidate in (os.environ.get("HELM"), str(ROOT / ".tools" / "bin" / "helm"), shutil.which("helm")):
        if candidate and Path(candidate).exists():
            return candidate
    raise FileNotFoundError("helm not found: set $HELM, or run scripts/fetch-k8s-tools.sh")


def render(pairs: list[str], name: str, release: str, namespace: str, values: list[Path], chart: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = Path(tmp) / "pairs.jsonl"
        jsonl.write_text("\n".join(pairs) + "\n")
        args = [helm_binary(), "template", release, str(chart), "--namespace", namespace]
        for v in values:
            args += ["-f", str(v)]
        args += [
            "--set", "bench.job.enabled=true",
            "--set", f"bench.job.pairs={len(pairs)}",
            "--set-string", f"bench.job.name={name}",
            "--set-file", f"bench.job.jsonl={jsonl}",
            "--show-only", "templates/bench-job.yaml",
        ]  # fmt: skip
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jsonl", type=Path, help="benchmark pairs, one JSON object per line")
    parser.add_argument("--release", default="raddiff", help="the Helm release the sweep runs against")
    parser.add_argument("--namespace", default="raddiff")
    parser.add_argument("-f", "--values", type=Path, action="append", default=[], help="the release's values files")
    parser.add_argument("--name", help="Job name (default: <release>-bench-<hash of the pairs>)")
    parser.add_argument("--chart", type=Path, default=CHART)
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    try:
        pairs = read_pairs(args.jsonl)
        name = job_name(args.release, pairs, args.name)
    except BadInput as exc:
        print(f"render_bench_job: {exc}", file=sys.stderr)
        return 2
    try:
        manifest = render(pairs, name, args.release, args.namespace, args.values, args.chart)
    except (RuntimeError, FileNotFoundError) as exc:
        print(f"render_bench_job: helm failed: {exc}", file=sys.stderr)
        return 1
    if args.output:
        args.output.write_text(manifest)
        print(f"wrote {args.output}: Job {name}, {len(pairs)} indexes", file=sys.stderr)
    else:
        sys.stdout.write(manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
