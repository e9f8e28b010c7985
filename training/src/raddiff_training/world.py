"""The training world: which findings each training image carries, and the rendered images, cached.

Every image comes from a seed in the synth's TRAINING range ([0, 1e9)); the benchmark's range is never touched.
Training images are seeds [0, n); held-out images (the model cards' figures) are seeds [HELD_OUT_START, +m).
A seed fixes everything: its findings (drawn here from its own random stream), the synth's pose, exposure and
noise, and so its pixels.

Images are rendered at the benchmark's 512 px and then shrunk exactly as each service shrinks a 512 px file:
bicubic to the CLIP's input (the embedding service's "raddiff" preprocessing) and the VLM's image processor's
Lanczos resize. So a model sees in training what it sees when serving, noise texture included.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from raddiff_synth import Finding, Generator
from raddiff_synth.catalog import KINDS
from raddiff_synth.render import PlacedFinding, image_rng
from raddiff_synth.seeds import TRAINING_SEEDS

# Bump when draw_findings or the rendering below changes, so that stale caches are rebuilt, never reused.
WORLD_VERSION = 1
# The synth draws from streams 0-4 of an image's seed; this stream picks a training image's findings.
WORLD_STREAM = 10
HELD_OUT_START = 900_000_000
RENDER_SIZE = 512

# Chance that a training image carries each kind; about one image in eight is entirely normal on top of that.
PREVALENCE = {
    "pleural_effusion": 0.24,
    "cardiomegaly": 0.22,
    "consolidation": 0.2,
    "atelectasis": 0.2,
    "nodule": 0.22,
    "pneumothorax": 0.22,
    "edema": 0.2,
    "endotracheal_tube": 0.2,
    "enteric_tube": 0.2,
    "central_line": 0.2,
    "cardiac_device": 0.15,
}
NORMAL_SHARE = 0.12
# Kinds that can appear twice (both sides, two lobes) do so this often; the second differs in this attribute.
SECOND_INSTANCE = 0.15
DIFFERS_BY = {"pleural_effusion": "side", "pneumothorax": "side", "consolidation": "lobe", "atelectasis": "lobe"}


def training_seeds(count: int) -> range:
    return range(TRAINING_SEEDS.start, TRAINING_SEEDS.start + count)


def held_out_seeds(count: int) -> range:
    return range(HELD_OUT_START, HELD_OUT_START + count)


def draw_findings(seed: int) -> list[Finding]:
    """The findings of training image `seed`, attributes resolved, in catalogue order."""
    if seed not in TRAINING_SEEDS:
        raise ValueError(f"seed {seed} is outside the training range {TRAINING_SEEDS}")
    rng = image_rng(seed, WORLD_STREAM)
    if rng.random() < NORMAL_SHARE:
        return []
    findings: list[Finding] = []
    for kind, share in PREVALENCE.items():
        if rng.random() >= share:
            continue
        first = KINDS[kind].resolve({}, rng)
        findings.append(first)
        if kind in DIFFERS_BY and rng.random() < SECOND_INSTANCE:
            key = DIFFERS_BY[kind]
            others = [v for v in KINDS[kind].choices[key] if v != first.get(key)]
            findings.append(KINDS[kind].resolve({key: others[int(rng.integers(len(others)))]}, rng))
    return findings


@dataclass(frozen=True)
class ImageSet:
    """Rendered images of a run of seeds, each shrunk for both models, with their placed findings."""

    seeds: np.ndarray  # (n,) int64
    views: list[str]
    findings: list[tuple[PlacedFinding, ...]]
    clip_pixels: np.ndarray  # (n, size, size) uint8, as the embedding service's "raddiff" preprocessing shrinks them
    vlm_pixels: np.ndarray  # (n, size, size) uint8, as the VLM's image processor shrinks them

    def __len__(self) -> int:
        return len(self.seeds)

    def kinds(self, index: int) -> list[Finding]:
        return [placed.finding for placed in self.findings[index]]

    def subset(self, indices: Sequence[int]) -> ImageSet:
        picked = np.asarray(indices, dtype=np.int64)
        return ImageSet(
            self.seeds[picked],
            [self.views[i] for i in picked],
            [self.findings[i] for i in picked],
            self.clip_pixels[picked],
            self.vlm_pixels[picked],
        )


def default_cache_dir() -> Path:
    if explicit := os.environ.get("RADDIFF_TRAIN_CACHE"):
        return Path(explicit)
    if model_dir := os.environ.get("RADDIFF_MODEL_DIR"):
        return Path(model_dir) / "train-cache"
    return Path.home() / ".cache" / "raddiff" / "training"


def _synth_fingerprint() -> str:
    """Changes whenever the synth's code does, so a cache never outlives the renderer that made it."""
    digest = hashlib.sha256(f"world-v{WORLD_VERSION}".encode())
    package = resources.files("raddiff_synth")
    for name in sorted(p.name for p in package.iterdir() if p.name.endswith(".py")):
        digest.update(name.encode())
        digest.update(package.joinpath(name).read_bytes())
    return digest.hexdigest()[:12]


def load_images(
    seeds: range, size: int, *, cache_dir: Path | None = None, workers: int = 2, progress: bool = True
) -> ImageSet:
    """The images of `seeds` at `size` px, from the cache or rendered into it (about 25 ms per image)."""
    if not seeds or seeds.step != 1:
        raise ValueError(f"seeds must be a non-empty contiguous range, not {seeds}")
    if seeds.start not in TRAINING_SEEDS or seeds.stop - 1 not in TRAINING_SEEDS:
        raise ValueError(f"seeds {seeds} leave the training range {TRAINING_SEEDS}")
    folder = (cache_dir or default_cache_dir()) / f"world-{seeds.start}-{len(seeds)}-{size}px-{_synth_fingerprint()}"
    if (folder / "samples.json").is_file():
        try:
            return _read(folder)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    images = _render(seeds, size, workers, progress)
    _write_atomically(folder, images)
    return images


def _read(folder: Path) -> ImageSet:
    samples = json.loads((folder / "samples.json").read_text())
    clip = np.load(folder / "clip.npy")
    vlm = np.load(folder / "vlm.npy")
    if not len(samples) == len(clip) == len(vlm):
        raise ValueError(f"cache {folder} is inconsistent")
    return ImageSet(
        np.array([s["seed"] for s in samples], dtype=np.int64),
        [s["view"] for s in samples],
        [tuple(_placed(f) for f in s["findings"]) for s in samples],
        clip,
        vlm,
    )


def _placed(record: dict) -> PlacedFinding:
    tip = record.get("tip_box")
    return PlacedFinding(
        Finding(record["kind"], record["attributes"]), tuple(record["box"]), tuple(tip) if tip else None
    )


def _record(placed: PlacedFinding) -> dict:
    record = {"kind": placed.finding.kind, "attributes": dict(placed.finding.attributes), "box": list(placed.box)}
    if placed.tip_box:
        record["tip_box"] = list(placed.tip_box)
    return record


def _write_atomically(folder: Path, images: ImageSet) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        np.save(staging / "clip.npy", images.clip_pixels)
        np.save(staging / "vlm.npy", images.vlm_pixels)
        samples = [
            {"seed": int(seed), "view": view, "findings": [_record(p) for p in placed]}
            for seed, view, placed in zip(images.seeds, images.views, images.findings, strict=True)
        ]
        (staging / "samples.json").write_text(json.dumps(samples))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# -- rendering, in worker processes ------------------------------------------------------------------------------

# Per process: one generator (its CT layers are costly to load) and one VLM image processor per image size.
_WORKER: dict[int, tuple[Generator, object]] = {}


def _worker_state(size: int) -> tuple[Generator, object]:
    if size not in _WORKER:
        from raddiff_vlm.checkpoints import TinyVLMShape, build_image_processor

        generator = next(iter(_WORKER.values()))[0] if _WORKER else Generator()
        _WORKER[size] = (generator, build_image_processor(TinyVLMShape(image_size=size)))
    return _WORKER[size]


def render_one(seed: int, size: int) -> tuple[str, tuple[PlacedFinding, ...], np.ndarray, np.ndarray]:
    """One training image: its view, placed findings, and its pixels shrunk for the CLIP and for the VLM."""
    generator, image_processor = _worker_state(size)
    radiograph = generator.render(seed, draw_findings(seed), size=RENDER_SIZE)
    image = Image.fromarray(radiograph.pixels)
    clip = np.asarray(image.resize((size, size), Image.Resampling.BICUBIC))
    processed = image_processor(images=[[image.convert("RGB")]], return_tensors="np")["pixel_values"]
    # The processor's uint8 -> [-1, 1] map is exact and invertible; keep one channel of a grey image.
    vlm = np.rint((processed[0, 0, 0] + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    return radiograph.acquisition.view, radiograph.findings, clip, vlm


def _render_chunk(seeds: list[int], size: int) -> list[tuple[str, tuple[PlacedFinding, ...], np.ndarray, np.ndarray]]:
    return [render_one(seed, size) for seed in seeds]


def _chunks(seeds: range, size: int) -> Iterator[list[int]]:
    for start in range(0, len(seeds), size):
        yield list(seeds[start : start + size])


def _render(seeds: range, size: int, workers: int, progress: bool) -> ImageSet:
    chunks = list(_chunks(seeds, 50))
    rows: list[tuple[str, tuple[PlacedFinding, ...], np.ndarray, np.ndarray]] = []
    bar = tqdm(total=len(seeds), desc=f"rendering {len(seeds)} images", unit="img", disable=not progress)
    with ProcessPoolExecutor(max_workers=workers) if workers > 1 else _Inline() as pool:
        for chunk in pool.map(_render_chunk, chunks, [size] * len(chunks)):
            rows.extend(chunk)
            bar.update(len(chunk))
    bar.close()
    return ImageSet(
        np.asarray(list(seeds), dtype=np.int64),
        [r[0] for r in rows],
        [r[1] for r in rows],
        np.stack([r[2] for r in rows]),
        np.stack([r[3] for r in rows]),
    )


class _Inline:
    """ProcessPoolExecutor's map, in this process (one worker, and in tests)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn, *iterables):  # type: ignore[no-untyped-def]
        return map(fn, *iterables)
