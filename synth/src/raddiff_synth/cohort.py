"""Write cohorts in RadDiffBench's format.

Layout under OUT:
    images/<pair_id>/<A|B>/<nnnnnn>.png   the radiograph
    images/<pair_id>/<A|B>/<nnnnnn>.txt   its report (FINDINGS / IMPRESSION)
    images/<pair_id>/<A|B>/<nnnnnn>.json  its metadata (seed, acquisition, findings with attributes and boxes)
    <name>.csv    path,group_name,subset,side  (RadDiff's loader reads path and group_name, and filters on
                  `subset` when its config names one; subset is the pair id, so group names that repeat across
                  pairs, such as "no pleural effusion", stay unambiguous)
    <name>.jsonl  one line per pair: set1, set2, set1_images, set2_images (RadDiffBench's keys), plus pair_id,
                  difficulty, the per-set prevalence of each differing finding, and `"null": true` on null pairs
    manifest.json the spec as resolved, the seed block and range, the image size (per pair where it differs)

Which images carry a finding is decided per pair by exact counts (round(prevalence * n)) placed by a seeded
permutation, so a set's prevalence is exactly the spec's, not merely close to it in expectation.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from raddiff_synth.catalog import KINDS
from raddiff_synth.findings import Finding
from raddiff_synth.render import Generator, image_rng
from raddiff_synth.report import write_report
from raddiff_synth.seeds import BENCHMARK_SEEDS, SEEDS_PER_SIDE, benchmark_seed
from raddiff_synth.spec import CohortSpec, FindingSpec, PairSpec

SIDES = ("A", "B")


@dataclass(frozen=True)
class PlannedImage:
    pair: PairSpec
    side: str
    index: int
    seed: int
    findings: tuple[FindingSpec, ...]

    @property
    def relative_stem(self) -> str:
        return f"images/{self.pair.id}/{self.side}/{self.index:06d}"


def plan_pair(pair: PairSpec, per_set: int | None = None) -> list[PlannedImage]:
    """Which findings each image of the pair carries: exact counts, positions from a seeded permutation."""
    count = per_set or pair.per_set
    if count > SEEDS_PER_SIDE:
        raise ValueError(f"{count} images per set exceed the {SEEDS_PER_SIDE} seeds a side has")
    planned = []
    for side_index, (side, own) in enumerate(zip(SIDES, (pair.a, pair.b), strict=True)):
        rng = np.random.default_rng([BENCHMARK_SEEDS.start, pair.slot, side_index])
        carriers: list[list[FindingSpec]] = [[] for _ in range(count)]
        for finding in (*own, *pair.background):
            chosen = rng.permutation(count)[: round(finding.rate * count)]
            for i in chosen:
                carriers[i].append(finding)
        for i in range(count):
            seed = benchmark_seed(pair.slot, side_index, i)
            planned.append(PlannedImage(pair, side, i, seed, tuple(carriers[i])))
    return planned


def resolve(image: PlannedImage) -> list[Finding]:
    rng = image_rng(image.seed, 3)
    return [KINDS[f.kind].resolve(f.attributes, rng, f.where) for f in image.findings]


_GENERATOR: Generator | None = None


def _generator() -> Generator:
    global _GENERATOR
    if _GENERATOR is None:
        _GENERATOR = Generator()
    return _GENERATOR


def render_image(image: PlannedImage, out: Path, size: int) -> str:
    """Render one planned image with its report and metadata; returns its relative PNG path."""
    findings = resolve(image)
    radiograph = _generator().render(image.seed, findings, size=size, view=image.pair.view)
    report = write_report(findings, radiograph.acquisition.view, image_rng(image.seed, 4))
    stem = out / image.relative_stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    radiograph.save(stem.with_suffix(".png"))
    stem.with_suffix(".txt").write_text(report)
    metadata = {"pair_id": image.pair.id, "side": image.side, **radiograph.metadata(), "report": report}
    stem.with_suffix(".json").write_text(json.dumps(metadata, indent=1))
    return f"{image.relative_stem}.png"


def _render_batch(batch: list[PlannedImage], out: Path, size: int) -> list[str]:
    return [render_image(image, out, size) for image in batch]


def _batches(images: list[PlannedImage], size: int) -> Iterator[list[PlannedImage]]:
    for start in range(0, len(images), size):
        yield images[start : start + size]


def write_cohort(
    spec: CohortSpec,
    out: Path,
    *,
    pair_ids: list[str] | None = None,
    per_set: int | None = None,
    size: int | None = None,
    workers: int = 1,
    generator: Generator | None = None,
    progress: bool = False,
) -> Path:
    """Write the selected pairs; returns the JSONL path. `size` overrides every pair's size (a pair's own
    `size`, else the spec's), so small trial runs stay small."""
    global _GENERATOR
    if generator is not None:
        _GENERATOR = generator
    pairs = spec.select(pair_ids)
    sizes = {pair.id: size or pair.size or spec.size for pair in pairs}
    out.mkdir(parents=True, exist_ok=True)
    plans = [plan_pair(pair, per_set) for pair in pairs]
    planned = [image for plan in plans for image in plan]
    paths: dict[tuple[str, str, int], str] = {}
    # One pair per batch, so each batch renders at one size.
    batches = [batch for plan in plans for batch in _batches(plan, 25)]
    batch_sizes = [sizes[batch[0].pair.id] for batch in batches]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = pool.map(_render_batch, batches, [out] * len(batches), batch_sizes)
            _collect(batches, results, paths, progress)
    else:
        rendered = (_render_batch(b, out, s) for b, s in zip(batches, batch_sizes, strict=True))
        _collect(batches, rendered, paths, progress)
    return _write_index(spec, pairs, planned, paths, out, (size or spec.size, sizes), per_set)


def _collect(
    batches: list[list[PlannedImage]],
    results: Iterable[list[str]],
    paths: dict[tuple[str, str, int], str],
    progress: bool,
) -> None:
    done = 0
    for batch, rendered in zip(batches, results, strict=True):
        for image, path in zip(batch, rendered, strict=True):
            paths[(image.pair.id, image.side, image.index)] = path
        done += len(batch)
        if progress:
            print(f"\r{done} images", end="", flush=True)
    if progress:
        print()


def _write_index(
    spec: CohortSpec,
    pairs: tuple[PairSpec, ...],
    planned: list[PlannedImage],
    paths: dict[tuple[str, str, int], str],
    out: Path,
    sizes: tuple[int, dict[str, int]],  # the default size, and each pair's
    per_set: int | None,
) -> Path:
    csv_path = out / f"{spec.name}.csv"
    jsonl_path = out / f"{spec.name}.jsonl"
    by_pair: dict[str, dict[str, list[str]]] = {p.id: {"A": [], "B": []} for p in pairs}
    for image in planned:
        by_pair[image.pair.id][image.side].append(paths[(image.pair.id, image.side, image.index)])
    with _atomic(csv_path) as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "group_name", "subset", "side"])
        for pair in pairs:
            for side, group in (("A", pair.set1), ("B", pair.set2)):
                for path in by_pair[pair.id][side]:
                    writer.writerow([path, group, pair.id, side])
    with _atomic(jsonl_path) as handle:
        for pair in pairs:
            line = {
                "set1": pair.set1,
                "set2": pair.set2,
                "set1_images": by_pair[pair.id]["A"],
                "set2_images": by_pair[pair.id]["B"],
                "pair_id": pair.id,
                "difficulty": pair.difficulty,
                "set1_prevalence": {f.label(): f.rate for f in pair.a},
                "set2_prevalence": {f.label(): f.rate for f in pair.b},
            }
            if pair.null:
                line["null"] = True
            handle.write(json.dumps(line) + "\n")
    default_size, pair_sizes = sizes
    manifest = {
        "name": spec.name,
        "size": default_size,
        "per_set_override": per_set,
        "seed_block": spec.seed_block,
        "seed_range": [BENCHMARK_SEEDS.start, BENCHMARK_SEEDS.stop],
        "pairs": [_manifest_pair(p, pair_sizes[p.id], default_size) for p in pairs],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return jsonl_path


def _manifest_pair(pair: PairSpec, size: int, default_size: int) -> dict[str, object]:
    entry: dict[str, object] = {
        "id": pair.id,
        "index": pair.index,
        "difficulty": pair.difficulty,
        "set1": pair.set1,
        "set2": pair.set2,
    }
    if size != default_size:
        entry["size"] = size
    if pair.null:
        entry["null"] = True
    return entry


@contextmanager
def _atomic(path: Path) -> Iterator[TextIO]:
    """Write a text file aside and rename it into place, so a reader never sees half an index."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", newline="") as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
