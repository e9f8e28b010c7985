"""`make demo`: one synthetic pair end to end on the local stack.

    python -m raddiff_bench.demo [--pair effusion-right-moderate] [--per-set 50] [--size 256] [--keep]

Generates the pair into .data/demo (kept and reused when it matches), starts the six processes on free
ports (the defaults when they are free), runs the analysis through the REST API with the embedded default
config (configs/embedded.yaml when the repository has it), prints the ranked findings with their statistics
and the judge's Acc@1 / Acc@5 against the pair's ground truth, prints the evidence report's URL, and stops
the stack (unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from raddiff_bench.client import Orchestrator
from raddiff_bench.config import EMBEDDED_CONFIG, read_config
from raddiff_bench.pairs import BadInput, load_image_pairs
from raddiff_bench.results import PairResult, RankedFinding
from raddiff_bench.runner import RunOptions, evaluator, run_pair
from raddiff_bench.stack import local_stack, models_ready

DEFAULT_PAIR = "effusion-right-moderate"


def _manifest(path: Path) -> dict[str, Any]:
    """What an earlier run wrote there (raddiff-synth's manifest.json); empty when absent or unreadable."""
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def generate_pair(out: Path, pair_id: str, per_set: int, size: int, workers: int) -> Path:
    """The pair in RadDiffBench format under out; reused when out already holds exactly it."""
    try:
        from raddiff_synth.cli import builtin_spec
        from raddiff_synth.cohort import write_cohort
        from raddiff_synth.findings import SpecError
        from raddiff_synth.source import SourceMissingError
        from raddiff_synth.spec import load_spec
    except ImportError:
        raise BadInput("the demo generates its pair with raddiff-synth: pip install -e synth") from None
    known = _manifest(out / "manifest.json")
    if known:
        same = (
            known.get("size") == size
            and known.get("per_set_override") == per_set
            and [p["id"] for p in known.get("pairs", [])] == [pair_id]
        )
        jsonl = out / f"{known.get('name')}.jsonl"
        if same and jsonl.is_file():
            print(f"reusing {jsonl}")
            return jsonl
    began = time.monotonic()
    try:
        jsonl = write_cohort(
            load_spec(builtin_spec()), out, pair_ids=[pair_id], per_set=per_set, size=size, workers=workers
        )
    except (SpecError, SourceMissingError) as exc:
        raise BadInput(str(exc)) from None
    print(f"generated {pair_id}: {per_set} + {per_set} images of {size} px in {time.monotonic() - began:.1f} s")
    return jsonl


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if value >= 10**-digits else f"{value:.1e}"


def findings_table(findings: list[RankedFinding]) -> str:
    header = (
        f"{'rank':>4}  {'AUROC':>6}  {'CI':>15}  {'q':>7}  {'specific':>8}  {'spec-q':>7}  {'supported':>9}  "
        f"{'judge':>5}  finding"
    )
    lines = [header]
    for f in findings:
        ci = f"[{f.auroc_ci[0]:.3f}, {f.auroc_ci[1]:.3f}]" if f.auroc_ci else "-"
        score = "-" if f.score is None else str(f.score)
        supported = "-" if f.supported is None else ("yes" if f.supported else "no")
        lines.append(
            f"{f.rank:>4}  {_number(f.auroc):>6}  {ci:>15}  {_number(f.q_value):>7}  {_number(f.specific_auroc):>8}  "
            f"{_number(f.specific_q_value):>7}  {supported:>9}  {score:>5}  {f.finding}"
        )
    return "\n".join(lines)


def print_result(result: PairResult, report_url: str, top: int = 10) -> None:
    print(f"\nA: {result.set1!r}   B: {result.set2!r}   ({result.seconds:.1f} s, proposer: {result.proposer or '-'})")
    if result.status != "succeeded":
        print(f"the analysis failed: {result.error}")
        return
    print(findings_table(result.findings[:top]) if result.findings else "no finding was proposed")
    if result.verdict:
        print(f"verdict: {result.verdict}")
    if len(result.findings) > top:
        print(f"  ... and {len(result.findings) - top} more, lower ranked (all of them are in the evidence report)")
    print(
        f"\njudge ({result.judge}, by the {result.judged_by}): Acc@1 = {result.acc_at_1:.1f}   "
        f"Acc@5 = {result.acc_at_5:.1f}   (2 = matches A's truth, 1 = partly, 0 = no)"
    )
    for note in result.notes:
        print(f"note: {note}")
    print(f"evidence report: {report_url}")


async def analyse(
    url: str, evaluator_target: str | None, jsonl: Path, config: dict[str, Any], timeout_s: float
) -> tuple[PairResult, str]:
    """The pair through the REST API, printing each change of stage; the result and its report's URL."""
    (pair,) = load_image_pairs(jsonl)
    shown = ("", -1.0)  # stage and progress last printed: a line per stage and per 10 points of progress

    async def progress(view: dict[str, Any]) -> None:
        nonlocal shown
        stage, done = str(view.get("stage", "")), 100 * float(view.get("progress", 0))
        if stage != shown[0] or done >= shown[1] + 10:
            print(f"  {view['status']:<8} {stage:<10} {done:5.1f}%", flush=True)
            shown = (stage, done)

    async with Orchestrator(url) as orch, evaluator(evaluator_target) as judge:
        result = await run_pair(orch, pair, RunOptions(config, timeout_s, 1.0), judge, progress)
        return result, orch.report_url(result.analysis_id or "<none>")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m raddiff_bench.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default=DEFAULT_PAIR, help="a pair id of the shipped benchmark spec")
    parser.add_argument("--per-set", type=int, default=50, help="images per set (40 to 60 is plenty)")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels")
    parser.add_argument("--data-dir", type=Path, default=Path(".data") / "demo")
    parser.add_argument("--run-dir", type=Path, default=Path(".run") / "demo", help="the stack's pids, logs, state")
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("RADDIFF_MODEL_DIR", ".models")))
    default_config = EMBEDDED_CONFIG if EMBEDDED_CONFIG.is_file() else None
    parser.add_argument(
        "--config",
        type=Path,
        default=default_config,
        help=f"agent config (default: {EMBEDDED_CONFIG} when it exists, else the orchestrator's defaults)",
    )
    parser.add_argument("--base-port", type=int, help="the stack's base port (default: 50050 when free)")
    parser.add_argument(
        "--orchestrator",
        help="use this running stack (e.g. `make up`'s http://127.0.0.1:8000) instead of starting one; "
        "--data-dir must then lie under its RADDIFF_DATA_ROOTS",
    )
    parser.add_argument("--evaluator", help="with --orchestrator: the evaluator, for a result left unjudged")
    parser.add_argument("--timeout", type=float, default=900, help="seconds the analysis may take")
    parser.add_argument("--workers", type=int, default=2, help="processes generating images")
    parser.add_argument("--top", type=int, default=10, help="ranked findings printed")
    parser.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.orchestrator and not models_ready(args.model_dir):
        print(f"no model checkpoints in {args.model_dir}: run `make models` first", file=sys.stderr)
        return 3
    began = time.monotonic()
    try:
        config = read_config(args.config)
        jsonl = generate_pair(args.data_dir, args.pair, args.per_set, args.size, args.workers)
    except BadInput as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 3
    print(f"config: {args.config or 'the orchestrator defaults'}", flush=True)
    if args.orchestrator:
        result, report_url = asyncio.run(analyse(args.orchestrator, args.evaluator, jsonl, config, args.timeout))
        print_result(result, report_url, args.top)
    else:
        print(f"starting the local stack (logs in {args.run_dir}/) ...", flush=True)
        with local_stack([args.data_dir], args.run_dir, args.model_dir, args.base_port, keep=args.keep) as stack:
            print(f"orchestrator at {stack.url}", flush=True)
            result, report_url = asyncio.run(analyse(stack.url, stack.evaluator, jsonl, config, args.timeout))
            print_result(result, report_url, args.top)
        if args.keep:
            print(f"the stack is still running: python -m raddiff_kit.localstack down --run-dir {args.run_dir}")
        else:
            print("stopped the stack (--keep leaves it running, with the report served)")
    print(f"demo finished in {time.monotonic() - began:.1f} s")
    return 0 if result.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
