"""raddiff-bench: RadDiff's accuracy harness.

  raddiff-bench run --jsonl BENCH.jsonl --orchestrator URL [--pairs id,id] [--concurrency N] [--config cfg.yaml]
                    [--judge-backend semantic|llm] [--out results.json] [--image-root DIR] [--evaluator HOST:PORT]
  raddiff-bench run --reports-jsonl REPORTS.jsonl --evaluator HOST:PORT [--pairs ...] [--out ...]
  raddiff-bench run-pair --jsonl BENCH.jsonl --index I --orchestrator URL [...]
  raddiff-bench compare --jsonl BENCH.jsonl --orchestrator URL --config CANDIDATE.yaml --config REFERENCE.yaml
                    [--pairs ...] [--concurrency N] [--out comparison.json] [...]

Exit codes: 0 every pair succeeded; 1 a pair failed (run: the table is still printed and written);
3 bad input (a malformed pair or JSONL, a missing file, a bad config, the orchestrator's 4xx), which the
Kubernetes bench Job's podFailurePolicy fails without retry (bench.badInputExitCode); 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from raddiff_bench.client import Orchestrator
from raddiff_bench.config import judge_backend, read_config, with_judge_backend
from raddiff_bench.pairs import BadInput, load_image_pair, load_image_pairs, load_report_pairs
from raddiff_bench.reports import TITLE as REPORTS_TITLE
from raddiff_bench.reports import openi_texts, run_report_pairs
from raddiff_bench.results import PairResult
from raddiff_bench.runner import RunOptions, evaluator, run_pair, run_pairs
from raddiff_bench.table import compare, comparison_json, render, render_comparison, report, summarize

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3  # = charts/raddiff/values.yaml bench.badInputExitCode


def _progress(total: int) -> Any:
    done = 0

    def line(result: PairResult) -> None:
        nonlocal done
        done += 1
        outcome = (
            f"Acc@1 {result.acc_at_1:.1f}  Acc@5 {result.acc_at_5:.1f}"
            if result.status == "succeeded"
            else f"FAILED: {result.error}"
        )
        print(f"[{done}/{total}] {result.id} ({result.difficulty}) {result.seconds:.1f} s  {outcome}", file=sys.stderr)

    return line


def _options(args: argparse.Namespace, config: Path | None) -> RunOptions:
    agent_config = with_judge_backend(read_config(config), args.judge_backend)
    return RunOptions(config=agent_config, timeout_s=args.timeout, poll_s=args.poll)


async def _run_images(args: argparse.Namespace, config: Path | None) -> tuple[str, dict[str, Any], list[PairResult]]:
    pairs = load_image_pairs(args.jsonl, args.pairs, args.image_root)
    options = _options(args, config)
    async with Orchestrator(args.orchestrator) as orch, evaluator(args.evaluator) as judge:
        results = await run_pairs(orch, pairs, options, args.concurrency, judge, _progress(len(pairs)))
    judges = ", ".join(sorted({r.judge for r in results if r.judge})) or "none"
    title = (
        f"RadDiff on {args.jsonl.name}: {len(pairs)} pair(s) through {args.orchestrator} "
        f"(config: {config or 'the orchestrator defaults'}; judge: {judges})"
    )
    run = {"jsonl": str(args.jsonl), "orchestrator": args.orchestrator, "config": options.config}
    return title, run, results


async def _run_reports(args: argparse.Namespace) -> tuple[str, dict[str, Any], list[PairResult]]:
    if not args.evaluator:
        raise _Usage(
            "the report benchmark is judged by the evaluation service: give --evaluator HOST:PORT "
            "or set RADDIFF_EVALUATOR_TARGET"
        )
    pairs = load_report_pairs(args.reports_jsonl, args.pairs, openi_texts)
    config = read_config(args.config)
    backend = args.judge_backend or judge_backend(config)
    async with evaluator(args.evaluator) as judge:
        if judge is None:  # not reached: the target was checked above
            raise _Usage("no evaluator target")
        results = await run_report_pairs(pairs, judge, config, backend, args.concurrency, _progress(len(pairs)))
    judges = ", ".join(sorted({r.judge for r in results if r.judge})) or "none"
    title = f"{REPORTS_TITLE} ({judges}): {args.reports_jsonl.name}, {len(pairs)} pair(s)"
    run = {"reports_jsonl": str(args.reports_jsonl), "evaluator": args.evaluator, "config": config}
    return title, run, results


class _Usage(Exception):
    pass


def cmd_run(args: argparse.Namespace) -> int:
    if (args.jsonl is None) == (args.reports_jsonl is None):
        raise _Usage("give either --jsonl (image pairs) or --reports-jsonl (report pairs)")
    if args.jsonl is not None and not args.orchestrator:
        raise _Usage("--jsonl needs --orchestrator URL")
    title, run, results = asyncio.run(_run_reports(args) if args.reports_jsonl else _run_images(args, args.config))
    rows = summarize(results)
    print(render(title, rows, results))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report(title, run, rows, results), indent=1) + "\n")
        print(f"wrote {args.out}")
    return EXIT_OK if all(r.status == "succeeded" for r in results) else EXIT_FAILED


def cmd_compare(args: argparse.Namespace) -> int:
    """Two configs over the same pairs, one after the other, and the first's accuracies beside the second's."""
    if len(args.configs) != 2:
        raise _Usage("compare takes exactly two --config files: the candidate, then the reference")
    runs = []
    for config in args.configs:
        title, run, results = asyncio.run(_run_images(args, config))
        rows = summarize(results)
        print(render(title, rows, results) + "\n")
        runs.append((title, run, rows, results))
    comparison = compare(runs[0][2], runs[1][2])
    print(render_comparison(args.configs[0].name, args.configs[1].name, comparison))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "schema": "raddiff.bench-compare/1",
            "candidate": str(args.configs[0]),
            "reference": str(args.configs[1]),
            "comparison": comparison_json(comparison),
            "runs": [report(*run) for run in runs],
        }
        args.out.write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {args.out}")
    return EXIT_OK if all(r.status == "succeeded" for run in runs for r in run[3]) else EXIT_FAILED


def cmd_run_pair(args: argparse.Namespace) -> int:
    """One pair (a Kubernetes Indexed Job's index); one JSON line on stdout whatever happens."""
    try:
        pair = load_image_pair(args.jsonl, args.index, args.image_root)
        options = _options(args, args.config)
    except BadInput as exc:
        print(json.dumps({"index": args.index, "status": "failed", "error": str(exc), "bad_input": True}))
        return EXIT_BAD_INPUT

    async def go() -> PairResult:
        async with Orchestrator(args.orchestrator) as orch, evaluator(args.evaluator) as judge:
            return await run_pair(orch, pair, options, judge)

    result = asyncio.run(go())
    print(json.dumps(result.to_json()))
    if result.status == "succeeded":
        return EXIT_OK
    return EXIT_BAD_INPUT if result.bad_input else EXIT_FAILED


def _ids(text: str) -> list[str]:
    ids = [p.strip() for p in text.split(",") if p.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("name at least one pair id")
    return ids


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _common(parser: argparse.ArgumentParser, one_config: bool = True) -> None:
    parser.add_argument("--orchestrator", help="the orchestrator's base URL, e.g. http://127.0.0.1:8000")
    if one_config:
        parser.add_argument("--config", type=Path, help="agent config (YAML), sent unchanged as the analysis's config")
    parser.add_argument("--judge-backend", choices=("semantic", "llm"), help="default: the evaluator's own")
    parser.add_argument(
        "--image-root",
        type=Path,
        help="where relative image paths start, as the orchestrator sees it (default: the JSONL's folder)",
    )
    parser.add_argument(
        "--evaluator",
        default=os.environ.get("RADDIFF_EVALUATOR_TARGET") or None,
        help="the evaluation service (host:port) for results that come back unjudged "
        "(default: RADDIFF_EVALUATOR_TARGET)",
    )
    parser.add_argument("--timeout", type=_seconds, default=3600.0, help="seconds per pair before it is cancelled")
    parser.add_argument("--poll", type=_seconds, default=1.0, help="seconds between status polls")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raddiff-bench",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a benchmark and print its table")
    run.add_argument("--jsonl", type=Path, help="RadDiffBench-format pairs (set1, set2, set1_images, set2_images)")
    run.add_argument("--reports-jsonl", type=Path, help="report pairs (raddiff-synth report-benchmark)")
    run.add_argument("--pairs", type=_ids, help="comma-separated pair ids (default: every pair)")
    run.add_argument("--concurrency", type=_positive, default=2, help="pairs in flight at once")
    run.add_argument("--out", type=Path, help="write the table and every pair's result as JSON")
    _common(run)
    run.set_defaults(func=cmd_run)
    both = sub.add_parser("compare", help="run two configs over the same pairs and compare their accuracies")
    both.add_argument("--jsonl", type=Path, required=True)
    both.add_argument("--pairs", type=_ids, help="comma-separated pair ids (default: every pair)")
    both.add_argument("--concurrency", type=_positive, default=2, help="pairs in flight at once")
    both.add_argument("--out", type=Path, help="write both tables, every pair and the comparison as JSON")
    _common(both, one_config=False)
    both.add_argument(
        "--config",
        dest="configs",
        type=Path,
        action="append",
        required=True,
        help="twice: the candidate config, then the reference (e.g. the baseline)",
    )
    both.set_defaults(func=cmd_compare)
    pair = sub.add_parser("run-pair", help="run one pair (a Kubernetes Indexed Job's index) and print one JSON line")
    pair.add_argument("--jsonl", type=Path, required=True)
    pair.add_argument("--index", type=int, required=True, help="0-based among the JSONL's non-blank lines")
    _common(pair)
    pair.set_defaults(func=cmd_run_pair)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("run-pair", "compare") and not args.orchestrator:
        parser.error(f"{args.command} needs --orchestrator URL")
    try:
        return args.func(args)
    except _Usage as exc:
        parser.error(str(exc))
    except BadInput as exc:
        print(f"raddiff-bench: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("raddiff-bench: interrupted; analyses in flight were cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
