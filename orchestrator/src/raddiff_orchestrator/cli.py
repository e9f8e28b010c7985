"""raddiff-orchestrator analyze: one analysis from a YAML config, in this process or on a running orchestrator.

    raddiff-orchestrator analyze --config configs/embedded.yaml \\
        --csv /data/pairs.csv --group-a effusion --group-b normal [--truth-a ... --truth-b ...] \\
        [--set proposer.num_rounds=1 ...] [--url http://orchestrator:8000] [--out result.json]

The config file has RadDiff's keys (see agent/config.py); an optional `data:` section (RadDiff's
data.root / data.name / data.group1 / data.group2: the CSV root/name.csv and its two groups) names
the input when no input flag does. `--set key.path=value` overrides one key (the value read as YAML).

Without --url the analysis runs here, against the services named by RADDIFF_<X>_TARGET, reading
images under RADDIFF_DATA_ROOTS, and caching embeddings in the orchestrator's database
(RADDIFF_ORCH_DATABASE_URL / STATE_DIR), so repeated runs embed each image once. With --url it is
submitted to that orchestrator's REST API and followed until it ends. Either way the results JSON
is written to --out (or stdout) and progress to stderr. Exit status: 0 done, 1 the analysis failed,
2 a bad config or input (the message names the key or the problem).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from raddiff_kit.images import ImageStore
from raddiff_kit.settings import SharedSettings, load_settings
from raddiff_orchestrator.agent.config import ConfigError, describe_errors, parse_config, read_yaml
from raddiff_orchestrator.agent.embeddings import EmbeddingCache
from raddiff_orchestrator.agent.pipeline import PipelineOptions
from raddiff_orchestrator.agent.ports import DependencyError
from raddiff_orchestrator.clients import ServiceClients
from raddiff_orchestrator.inputs import InputProblem, InputResolver, Limits
from raddiff_orchestrator.runner import AgentRunner
from raddiff_orchestrator.schemas import AnalysisCreate
from raddiff_orchestrator.settings import OrchestratorSettings, ServiceTargets
from raddiff_orchestrator.store import AnalysisStore, DatabaseVectorStore

_FINAL = ("succeeded", "failed", "cancelled")


class UsageError(Exception):
    """A config or input that cannot be used: exit status 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML config (RadDiff's keys); default: RadDiff's defaults")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. proposer.num_rounds=1 (repeatable)",
    )
    source = parser.add_argument_group("input (one of)")
    source.add_argument("--csv", help="CSV with path and group_name columns (optional report)")
    source.add_argument("--group-a", help="the CSV's group for set A")
    source.add_argument("--group-b", help="the CSV's group for set B")
    source.add_argument("--jsonl", help="RadDiffBench-style JSONL")
    source.add_argument("--pair-index", type=int, help="the JSONL line, from 0")
    source.add_argument("--set1", help="the JSONL pair's set1 name")
    source.add_argument("--set2", help="the JSONL pair's set2 name")
    source.add_argument("--set-a", nargs="+", help="image paths of set A")
    source.add_argument("--set-b", nargs="+", help="image paths of set B")
    parser.add_argument("--truth-a", help="ground truth of set A (with --truth-b: the run is judged)")
    parser.add_argument("--truth-b", help="ground truth of set B")
    parser.add_argument("--name", help="a name for the analysis")
    parser.add_argument("--url", help="submit to this orchestrator instead of running here")
    parser.add_argument("--out", type=Path, help="write the results JSON here (default: stdout)")
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="with --url: how often to look")


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    """The REST request the arguments describe; UsageError naming what is wrong."""
    config = read_yaml(args.config) if args.config else {}
    data = config.pop("data", None)
    for item in args.overrides:
        apply_override(config, item)
    parse_config(config, str(args.config or "config"))  # fail here, naming the key, before any work
    body: dict[str, Any] = {"input": input_of(args, data), "config": config}
    if args.truth_a or args.truth_b:
        if not (args.truth_a and args.truth_b):
            raise UsageError("give both --truth-a and --truth-b, or neither")
        body["ground_truth"] = {"a": args.truth_a, "b": args.truth_b}
    if args.name:
        body["name"] = args.name
    try:
        AnalysisCreate.model_validate(body)
    except ValidationError as exc:
        raise UsageError(describe_errors(exc)) from None
    return body


def apply_override(config: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--set {item!r} is not KEY=VALUE")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise UsageError(f"--set {key}: the value is not valid YAML ({exc})") from None
    target = config
    *parents, last = key.strip().split(".")
    for part in parents:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"--set {key}: {part} is not a section")
        target = child
    target[last] = value


def input_of(args: argparse.Namespace, data: Any) -> dict[str, Any]:
    chosen = [name for name in ("csv", "jsonl", "set_a") if getattr(args, name)]
    if len(chosen) > 1:
        raise UsageError("give one input: --csv, --jsonl or --set-a/--set-b")
    if args.csv:
        if not (args.group_a and args.group_b):
            raise UsageError("--csv needs --group-a and --group-b")
        return {"kind": "csv", "path": str(Path(args.csv).resolve()), "group_a": args.group_a, "group_b": args.group_b}
    if args.jsonl:
        found: dict[str, Any] = {"kind": "jsonl", "path": str(Path(args.jsonl).resolve())}
        if args.pair_index is not None:
            found["pair_index"] = args.pair_index
        if args.set1 or args.set2:
            found |= {"set1": args.set1, "set2": args.set2}
        return found
    if args.set_a:
        if not args.set_b:
            raise UsageError("--set-a needs --set-b")
        return {
            "kind": "sets",
            "set_a": [str(Path(p).resolve()) for p in args.set_a],
            "set_b": [str(Path(p).resolve()) for p in args.set_b],
        }
    if data is not None:
        return _data_section(data)
    raise UsageError(
        "no input: give --csv, --jsonl or --set-a/--set-b, or a data: section (root, name, group1, group2)"
    )


_DATA_KEYS = ("root", "name", "group1", "group2")


def _data_section(data: Any) -> dict[str, Any]:
    """RadDiff's data section: the CSV at root/name.csv and its two groups."""
    if not isinstance(data, dict):
        raise UsageError("data: must be a mapping with root, name, group1 and group2")
    unknown = sorted(set(data) - set(_DATA_KEYS))
    missing = [k for k in _DATA_KEYS if k not in data]
    if unknown or missing:
        raise UsageError(f"data: unknown keys {unknown} / missing keys {missing}; it takes {', '.join(_DATA_KEYS)}")
    path = Path(str(data["root"])) / f"{data['name']}.csv"
    return {"kind": "csv", "path": str(path.resolve()), "group_a": str(data["group1"]), "group_b": str(data["group2"])}


# -- running ---------------------------------------------------------------------------------------
async def run_here(body: dict[str, Any]) -> dict[str, Any]:
    """The analysis in this process over the configured services; its result, or DependencyError."""
    settings = load_settings(OrchestratorSettings)
    shared = load_settings(SharedSettings)
    targets = load_settings(ServiceTargets)
    limits = Limits(
        max_images_per_set=settings.max_images_per_set,
        max_rank_images_per_set=settings.max_rank_images_per_set,
        max_manifest_bytes=settings.max_manifest_bytes,
        validation_threads=settings.validation_threads,
    )
    resolver = InputResolver(ImageStore(shared.root_paths(), shared.scratch_dir), limits)
    try:
        task = await asyncio.to_thread(resolver.resolve, AnalysisCreate.model_validate(body))
    except InputProblem as exc:
        raise UsageError("; ".join([exc.message, *exc.problems])) from None
    store = AnalysisStore(settings.resolved_database_url())
    await asyncio.to_thread(store.create_schema)
    clients = ServiceClients(targets.configured(), settings.call_timeout_seconds, settings.llm_model)
    options = PipelineOptions(settings.caption_concurrency, settings.caption_max_tokens, settings.embed_batch_size)
    cache = EmbeddingCache(DatabaseVectorStore(store.engine), settings.embedding_cache_items)
    last = {"stage": "", "at": 0.0}

    async def progress(stage: str, fraction: float) -> None:
        now = time.monotonic()
        if stage != last["stage"] or now - float(last["at"]) > 2:
            print(f"{stage} {fraction:.0%}", file=sys.stderr, flush=True)
            last.update(stage=stage, at=now)

    try:
        return await AgentRunner(clients.models(), options, cache)(task, progress)
    finally:
        await clients.close()
        store.dispose()


def run_remote(body: dict[str, Any], url: str, poll_seconds: float) -> dict[str, Any]:
    base = url.rstrip("/")
    status, accepted = _http("POST", f"{base}/v1/analyses", body)
    if status >= 400:
        raise UsageError(f"the orchestrator refused the analysis (HTTP {status}): {accepted.get('detail', accepted)}")
    print(f"submitted {accepted['id']}", file=sys.stderr, flush=True)
    shown = ""
    while True:
        status, view = _http("GET", f"{base}{accepted['url']}")
        if status >= 400:
            raise DependencyError(f"the orchestrator answered HTTP {status}: {view}")
        line = f"{view['status']} {view['stage']} {view['progress']:.0%}"
        if line != shown:
            print(line, file=sys.stderr, flush=True)
            shown = line
        if view["status"] in _FINAL:
            break
        time.sleep(poll_seconds)
    if view["status"] != "succeeded":
        raise DependencyError(f"the analysis {view['status']}: {view.get('error') or ''}".strip())
    return view["results"]


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except urllib.error.URLError as exc:
        raise DependencyError(f"cannot reach the orchestrator at {url}: {exc.reason}") from None


def analyze(args: argparse.Namespace) -> int:
    try:
        body = request_body(args)
        result = run_remote(body, args.url, args.poll_seconds) if args.url else asyncio.run(run_here(body))
    except (UsageError, ConfigError) as exc:
        print(f"raddiff-orchestrator analyze: {exc}", file=sys.stderr)
        return 2
    except DependencyError as exc:
        print(f"raddiff-orchestrator analyze: the analysis failed: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0
