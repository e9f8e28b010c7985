"""raddiff-synth: render radiographs, write cohorts and benchmarks, draw the contact sheet, time the generator."""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import resources
from pathlib import Path

from raddiff_synth.catalog import KINDS
from raddiff_synth.findings import SpecError
from raddiff_synth.render import DEFAULT_SIZE, Generator, image_rng
from raddiff_synth.report import write_report
from raddiff_synth.source import SourceMissingError

BENCHMARK_SPEC = "benchmark.yaml"
# The test protocol's splits, each a shipped spec with its own seed block: dev (what you tune on), test (run
# only to report), generalisation (pair kinds dev lacks) and null (pairs that do not differ: calibration).
SPLIT_SPECS = {
    "dev": BENCHMARK_SPEC,
    "test": "test.yaml",
    "generalisation": "generalisation.yaml",
    "null": "null.yaml",
}


def builtin_spec(name: str = BENCHMARK_SPEC) -> Path:
    return Path(str(resources.files("raddiff_synth") / "specs" / name))


def split_spec(split: str) -> Path:
    if split not in SPLIT_SPECS:
        raise SpecError(f"split: {split!r} is not one of {', '.join(SPLIT_SPECS)}")
    return builtin_spec(SPLIT_SPECS[split])


def _spec_path(value: str) -> Path:
    if value == "default":
        return builtin_spec()
    return split_spec(value) if value in SPLIT_SPECS else Path(value)


def parse_finding(text: str) -> tuple[str, dict[str, str]]:
    """`kind` or `kind:key=value,key=value`, e.g. pleural_effusion:side=right,severity=moderate."""
    kind, _, rest = text.partition(":")
    if kind not in KINDS:
        raise SpecError(f"--finding: {kind!r} is not a known finding ({', '.join(KINDS)})")
    attributes = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"--finding {text}: {item!r} is not key=value")
        attributes[key] = value
    return kind, attributes


def cmd_render(args: argparse.Namespace) -> None:
    rng = image_rng(args.seed, 3)
    findings = [
        KINDS[kind].resolve(attributes, rng, f"--finding {kind}")
        for kind, attributes in map(parse_finding, args.finding)
    ]
    radiograph = Generator().render(args.seed, findings, size=args.size, view=args.view)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    radiograph.save(out)
    report = write_report(findings, radiograph.acquisition.view, image_rng(args.seed, 4))
    out.with_suffix(".txt").write_text(report)
    out.with_suffix(".json").write_text(json.dumps({**radiograph.metadata(), "report": report}, indent=1))
    print(report)


def _write(args: argparse.Namespace, benchmark: bool) -> None:
    from raddiff_synth.cohort import write_cohort
    from raddiff_synth.spec import load_spec, validate_benchmark

    spec = load_spec(_spec_path(args.spec))
    if benchmark:
        validate_benchmark(spec)
    pair_ids = args.pairs.split(",") if args.pairs else None
    started = time.perf_counter()
    jsonl = write_cohort(
        spec,
        Path(args.out),
        pair_ids=pair_ids,
        per_set=args.per_set,
        size=args.size,
        workers=args.workers,
        progress=True,
    )
    print(f"wrote {jsonl} in {time.perf_counter() - started:.1f} s")


def cmd_contact_sheet(args: argparse.Namespace) -> None:
    from raddiff_synth.contact_sheet import render_contact_sheet

    print(render_contact_sheet(Path(args.out), tile=args.tile))


def cmd_bench(args: argparse.Namespace) -> None:
    """Time per image, PNG encoding included, over the shipped benchmark's findings. CPU time is this process's
    own (it ignores other processes competing for the core); run under `taskset -c 0` to stay on one core."""
    from raddiff_synth.spec import load_spec

    generator = Generator()
    cases = [pair.a + pair.background for pair in load_spec(builtin_spec()).pairs]
    cpu, wall = [], []
    for i in range(args.count + 3):
        seed = 10_000 + i
        rng = image_rng(seed, 3)
        findings = [KINDS[f.kind].resolve(f.attributes, rng) for f in cases[i % len(cases)] if rng.random() < f.rate]
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        generator.render(seed, findings, size=args.size).png_bytes()
        if i >= 3:  # the first calls fill caches
            cpu.append(time.process_time() - started_cpu)
            wall.append(time.perf_counter() - started_wall)
    print(
        f"{args.size} px, {len(cpu)} images: CPU {_median_ms(cpu):.1f} ms median ({_mean_ms(cpu):.1f} mean), "
        f"wall {_median_ms(wall):.1f} ms median per image"
    )


def _median_ms(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] * 1000


def _mean_ms(values: list[float]) -> float:
    return sum(values) / len(values) * 1000


def cmd_report_benchmark(args: argparse.Namespace) -> None:
    from raddiff_synth.openi import write_report_benchmark

    path, pairs = write_report_benchmark(Path(args.out), per_set=args.per_set, include_text=args.include_text)
    print(f"wrote {len(pairs)} pairs to {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raddiff-synth", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="render one radiograph with its report and metadata")
    render.add_argument("out", help="PNG path; the report (.txt) and metadata (.json) go beside it")
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--size", type=int, default=DEFAULT_SIZE)
    render.add_argument("--view", choices=("PA", "AP"))
    render.add_argument("--finding", action="append", default=[], help="kind[:key=value,...]; repeatable")
    render.set_defaults(func=cmd_render)

    for name, benchmark in (("cohort", False), ("benchmark", True)):
        cmd = sub.add_parser(name, help=f"write a {'benchmark' if benchmark else 'cohort'} in RadDiffBench format")
        cmd.add_argument(
            "spec",
            help="YAML spec, 'default' for the shipped benchmark spec, or a shipped split: " + ", ".join(SPLIT_SPECS),
        )
        cmd.add_argument("out", help="output folder")
        cmd.add_argument("--pairs", help="comma-separated pair ids (default: all)")
        cmd.add_argument("--per-set", "--limit", type=int, dest="per_set", help="images per set, overriding the spec")
        cmd.add_argument("--size", type=int, help="image size in pixels (default: the spec's)")
        cmd.add_argument("--workers", type=int, default=1, help="processes")
        cmd.set_defaults(func=lambda a, b=benchmark: _write(a, b))

    sheet = sub.add_parser("contact-sheet", help="render the contact sheet (one row per finding)")
    sheet.add_argument("out")
    sheet.add_argument("--tile", type=int, default=224)
    sheet.set_defaults(func=cmd_contact_sheet)

    bench = sub.add_parser("bench", help="print the time per image")
    bench.add_argument("--size", type=int, default=DEFAULT_SIZE)
    bench.add_argument("--count", type=int, default=60)
    bench.set_defaults(func=cmd_bench)

    reports = sub.add_parser("report-benchmark", help="write report-set pairs from the real OpenI reports")
    reports.add_argument("out", help="output JSONL path")
    reports.add_argument("--per-set", type=int, default=60, help="reports per set, at most")
    reports.add_argument(
        "--include-text", action="store_true", help="embed the report texts (CC BY-NC-ND: keep out of the repository)"
    )
    reports.set_defaults(func=cmd_report_benchmark)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (SpecError, SourceMissingError) as exc:
        print(f"raddiff-synth: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
