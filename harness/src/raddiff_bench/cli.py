"""raddiff-bench: RadDiff's accuracy harness.

  raddiff-bench run --jsonl BENCH.jsonl --orchestrator URL [--pairs id,id] [--concurrency N] [--config cfg.yaml]
                    [--judge-backend semantic|llm] [--out results.json] [--image-root DIR] [--evaluator HOST:PORT]
  raddiff-bench run --reports-jsonl REPORTS.jsonl --evaluator HOST:PORT [--pairs ...] [--out ...]
  raddiff-bench run-pair --jsonl BENCH.jsonl --index I --orchestrator URL [...]
  raddiff-bench compare --jsonl BENCH.jsonl --orchestrator URL --config CANDIDATE.yaml --config REFERENCE.yaml
                    [--pairs ...] [--concurrency N] [--seeds 0,1,2] [--out comparison.json] [...]
  raddiff-bench protocol --data DIR --orchestrator URL --config CANDIDATE.yaml --config REFERENCE.yaml
                    [--splits dev,generalisation,null] [--final] [--seeds 0,1,2] [--workers N] [--out protocol.json]
                    [...]

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

from raddiff_bench import multiseed, protocol
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
        if result.status != "succeeded":
            outcome = f"FAILED: {result.error}"
        elif result.null:
            outcome = f"null pair: {sum(f.supported is True for f in result.findings)} supported finding(s)"
        else:
            outcome = f"Acc@1 {result.acc_at_1:.1f}  Acc@5 {result.acc_at_5:.1f}"
        print(f"[{done}/{total}] {result.id} ({result.difficulty}) {result.seconds:.1f} s  {outcome}", file=sys.stderr)

    return line


def _options(args: argparse.Namespace, config: Path | None) -> RunOptions:
    # `seed` is set by --seeds (compare, protocol) for one run of several; otherwise the config's own seed.
    agent_config = multiseed.with_seed(
        with_judge_backend(read_config(config), args.judge_backend), multiseed.seed_of(args)
    )
    return RunOptions(config=agent_config, timeout_s=args.timeout, poll_s=args.poll)


async def _run_images(
    args: argparse.Namespace, config: Path | None, jsonl: Path | None = None
) -> tuple[str, dict[str, Any], list[PairResult]]:
    jsonl = jsonl or args.jsonl
    pairs = load_image_pairs(jsonl, args.pairs, args.image_root)
    options = _options(args, config)
    async with Orchestrator(args.orchestrator) as orch, evaluator(args.evaluator) as judge:
        results = await run_pairs(orch, pairs, options, args.concurrency, judge, _progress(len(pairs)))
    judges = ", ".join(sorted({r.judge for r in results if r.judge})) or "none"
    title = (
        f"RadDiff on {jsonl.name}: {len(pairs)} pair(s) through {args.orchestrator} "
        f"(config: {config or 'the orchestrator defaults'}; judge: {judges})"
    )
    run = {"jsonl": str(jsonl), "orchestrator": args.orchestrator, "config": options.config}
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
    """Two configs over the same pairs, one after the other, and the first's accuracies beside the second's; with
    --seeds, both once per seed and the comparison's mean and spread over the seeds."""
    if len(args.configs) != 2:
        raise _Usage("compare takes exactly two --config files: the candidate, then the reference")
    seeds = multiseed.seeds_of(args)
    several = len(seeds) > 1
    runs, documents, per_seed = [], [], []
    for seed in seeds:
        pair_rows = []
        for config in args.configs:
            title, run, results = asyncio.run(_run_images(multiseed.seeded(args, seed), config))
            title += f" [seed {seed}]" if several else ""
            rows = summarize(results)
            print(render(title, rows, results) + "\n")
            runs.append(results)
            documents.append(multiseed.tagged(report(title, run, rows, results), config, seed, several))
            pair_rows.append(rows)
        per_seed.append(compare(pair_rows[0], pair_rows[1]))
    candidate, reference = args.configs[0].name, args.configs[1].name
    if several:
        rows_over_seeds = {args.jsonl.name: multiseed.compare_over_seeds(per_seed)}
        print(multiseed.render_accuracy(candidate, reference, args.seeds, rows_over_seeds))
        document = multiseed.compare_document(
            str(args.configs[0]), str(args.configs[1]), args.seeds, per_seed, documents
        )
    else:
        print(render_comparison(candidate, reference, per_seed[0]))
        document = {
            "schema": "raddiff.bench-compare/1",
            "candidate": str(args.configs[0]),
            "reference": str(args.configs[1]),
            "comparison": comparison_json(per_seed[0]),
            "runs": documents,
        }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {args.out}")
    return EXIT_OK if all(r.status == "succeeded" for results in runs for r in results) else EXIT_FAILED


def cmd_protocol(args: argparse.Namespace) -> int:
    """Each split generated if need be, run with both configs (null: the candidate only), then the side-by-side
    accuracies, the calibration table and one JSON."""
    if len(args.configs) != 2:
        raise _Usage("protocol takes exactly two --config files: the candidate, then the reference")
    try:
        splits = protocol.choose_splits(args.splits, args.final)
    except protocol.Locked as exc:
        raise _Usage(str(exc)) from None
    data = {
        split: protocol.ensure_split(split, args.data, workers=args.workers, per_set=args.per_set, size=args.size)
        for split in splits
    }
    names = [str(c) for c in args.configs]
    seeds = multiseed.seeds_of(args)
    several = len(seeds) > 1
    # Per seed, in the one-run shape (split -> [candidate's results, reference's]), so that each seed's tables
    # are protocol.accuracy's and protocol.calibration's and one seed is exactly the one-run protocol.
    per_seed: list[dict[str, list[list[PairResult]]]] = []
    reports: dict[str, list[dict[str, Any]]] = {split: [] for split in splits}
    for seed in seeds:
        runs: dict[str, list[list[PairResult]]] = {}
        for split in splits:
            configs = args.configs if split != "null" or args.null_with_reference else args.configs[:1]
            runs[split] = []
            for config in configs:
                print(f"== {split}: {config}" + (f" (seed {seed})" if seed is not None else ""), file=sys.stderr)
                title, run, results = asyncio.run(
                    _run_images(multiseed.seeded(_split_args(args, split), seed), config, data[split])
                )
                title += f" [seed {seed}]" if several else ""
                runs[split].append(results)
                reports[split].append(
                    multiseed.tagged(report(title, run, summarize(results), results), config, seed, several)
                )
        per_seed.append(runs)
    tables = [protocol.accuracy(runs) for runs in per_seed]
    calibrations = [protocol.calibration(names, runs) for runs in per_seed]
    candidate, reference = args.configs[0].name, args.configs[1].name
    paths = {split: str(path) for split, path in data.items()}
    if several:
        if tables[0]:
            table = multiseed.accuracy_over_seeds(tables)
            print(multiseed.render_accuracy(candidate, reference, args.seeds, table) + "\n")
        print(multiseed.render_calibration(args.seeds, multiseed.calibration_over_seeds(calibrations)))
        document = multiseed.protocol_document(names, args.final, args.seeds, paths, reports, tables, calibrations)
    else:
        if tables[0]:
            print(protocol.render_accuracy(candidate, reference, tables[0]) + "\n")
        print(protocol.render_calibration(calibrations[0]))
        document = protocol.document(names, args.final, paths, reports, tables[0], calibrations[0])
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {args.out}")
    failed = any(r.status != "succeeded" for runs in per_seed for split in runs.values() for rs in split for r in rs)
    return EXIT_FAILED if failed else EXIT_OK


def _split_args(args: argparse.Namespace, split: str) -> argparse.Namespace:
    """--image-root names the folder the orchestrator sees --data in; each split lies in its own folder there."""
    return argparse.Namespace(**{**vars(args), "image_root": args.image_root / split if args.image_root else None})


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


def _splits(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _configs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        dest="configs",
        type=Path,
        action="append",
        required=True,
        help="twice: the candidate config, then the reference (e.g. the baseline)",
    )


def _protocol_parser(sub: Any) -> None:
    cmd = sub.add_parser(
        "protocol",
        help="the test protocol: dev, generalisation (and, with --final, test) accuracies side by side, "
        "and null calibration",
        description="Generates each split from raddiff-synth's shipped spec under --data (unless there already), "
        "runs the positive splits with both configs and the null split with the candidate, and prints the "
        "accuracies side by side and the calibration table. The test split is LOCKED: it is run only to report "
        "final figures, never to tune on, and only with --final.",
    )
    cmd.add_argument("--data", type=Path, required=True, help="folder of the splits' data (DIR/<split>/)")
    cmd.add_argument(
        "--splits",
        type=_splits,
        help=f"comma-separated among {', '.join(protocol.SPLITS)} "
        f"(default: {', '.join(protocol.DEFAULT_SPLITS)}, plus test with --final)",
    )
    cmd.add_argument(
        "--final", action="store_true", help="unlock the test split: for the final report only, never for tuning"
    )
    cmd.add_argument("--null-with-reference", action="store_true", help="run the null split with both configs")
    cmd.add_argument("--workers", type=_positive, default=1, help="processes generating images")
    cmd.add_argument("--per-set", type=_positive, help="images per set, overriding the specs (small trial runs)")
    cmd.add_argument("--size", type=_positive, help="image size, overriding the specs (small trial runs)")
    cmd.add_argument("--concurrency", type=_positive, default=2, help="pairs in flight at once")
    multiseed.add_seeds_option(cmd)
    cmd.add_argument("--out", type=Path, help="write every run, the accuracies and the calibration as one JSON")
    cmd.set_defaults(pairs=None)
    _common(cmd, one_config=False)  # --image-root: where the orchestrator sees --data
    _configs(cmd)
    cmd.set_defaults(func=cmd_protocol)


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
    multiseed.add_seeds_option(both)
    both.add_argument("--out", type=Path, help="write both tables, every pair and the comparison as JSON")
    _common(both, one_config=False)
    _configs(both)
    both.set_defaults(func=cmd_compare)
    _protocol_parser(sub)
    pair = sub.add_parser("run-pair", help="run one pair (a Kubernetes Indexed Job's index) and print one JSON line")
    pair.add_argument("--jsonl", type=Path, required=True)
    pair.add_argument("--index", type=int, required=True, help="0-based among the JSONL's non-blank lines")
    _common(pair)
    pair.set_defaults(func=cmd_run_pair)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("run-pair", "compare", "protocol") and not args.orchestrator:
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
