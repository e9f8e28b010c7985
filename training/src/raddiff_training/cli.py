"""raddiff-train: train, evaluate and install the project's own models.

    raddiff-train clip [--out DIR] [--steps N] [--images N] ...      train the CLIP, evaluate it, save it
    raddiff-train vlm  [--out DIR] [--clip DIR] [--steps N] ...      train the VLM from the CLIP's tower
    raddiff-train eval-clip DIR | eval-vlm DIR [--held-out N]        the card's figures for a saved checkpoint
    raddiff-train ensure MODEL_DIR [--no-train]                      MODEL_DIR/clip and MODEL_DIR/vlm, trained

By default `clip` and `vlm` write into this package's committed weights folder (weights/clip, weights/vlm), which
`ensure` copies from; pass --out to write elsewhere. Every run is seeded: the same command on the same machine
and thread count gives the same weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from raddiff_training.world import held_out_seeds, load_images, training_seeds

# Held-out images rendered once for both cards: seeds 900,000,000 to 900,000,599; the VLM's figures use the first N.
HELD_OUT = 600


def _committed(name: str) -> Path:
    return Path(str(resources.files("raddiff_training") / "weights" / name))


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _update_provenance(folder: Path, **values: object) -> None:
    path = folder / "raddiff_checkpoint.json"
    data = json.loads(path.read_text())
    data.update(values)
    path.write_text(json.dumps(data, indent=2) + "\n")


def run_clip(args: argparse.Namespace) -> Path:
    from raddiff_training import clip
    from raddiff_training.statements import corpus_sentences

    started, load_before = time.monotonic(), _load()
    images = load_images(training_seeds(args.images), clip.IMAGE_SIZE, cache_dir=args.cache, workers=args.workers)
    render_seconds = time.monotonic() - started
    tokenizer = clip.build_tokenizer(corpus_sentences(200))
    config = clip.clip_config(tokenizer)
    model = clip.build_model(config, args.seed)
    train_config = clip.ClipTrainConfig(
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        attribute_weight=args.attribute_weight,
        attribute_start=args.attribute_start,
    )
    result = clip.train_clip(model, tokenizer, images, train_config)
    total = time.monotonic() - started
    provenance = clip.provenance(
        train_config,
        images,
        result,
        render_seconds=round(render_seconds, 1),
        total_seconds=round(total, 1),
        load_average_before=load_before,
        load_average_after=_load(),
        parameters=sum(p.numel() for p in model.parameters()),
    )
    folder = clip.save_clip(model, tokenizer, config, args.out or _committed("clip"), provenance)
    print(f"saved the CLIP to {folder}: {total / 60:.1f} min, {render_seconds:.0f} s of it rendering images")
    _eval_clip(folder, args.held_out, args.cache, args.workers)
    return folder


def _eval_clip(folder: Path, held_out: int, cache: Path | None, workers: int) -> None:
    from raddiff_training import clip, evaluate

    images = load_images(held_out_seeds(max(held_out, HELD_OUT)), clip.IMAGE_SIZE, cache_dir=cache, workers=workers)
    images = images.subset(range(held_out))
    rows = evaluate.evaluate_clip(folder, images)
    summary = evaluate.clip_summary(rows)
    seeds = held_out_seeds(held_out)
    quality = {"held_out_seeds": [seeds.start, seeds.stop], "summary": summary, "rows": [asdict(r) for r in rows]}
    _update_provenance(folder, quality=quality)
    print(evaluate.clip_markdown(rows))
    print(json.dumps(summary, indent=1))


def run_vlm(args: argparse.Namespace) -> Path:
    from raddiff_embedding.checkpoints import load_checkpoint
    from raddiff_training import vlm

    started, load_before = time.monotonic(), _load()
    images = load_images(
        training_seeds(args.images), vlm.VLM_SHAPE.image_size, cache_dir=args.cache, workers=args.workers
    )
    render_seconds = time.monotonic() - started
    clip_folder = args.clip or _committed("clip")
    model, processor = vlm.build_vlm(args.seed)
    vlm.copy_clip_tower(model, load_checkpoint(clip_folder).model.visual)
    train_config = vlm.VlmTrainConfig(
        steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, threads=args.threads
    )
    result = vlm.train_vlm(model, processor, images, train_config)
    total = time.monotonic() - started
    provenance = vlm.provenance(
        train_config,
        images,
        result,
        clip=str(clip_folder.name),
        render_seconds=round(render_seconds, 1),
        total_seconds=round(total, 1),
        load_average_before=load_before,
        load_average_after=_load(),
        parameters=sum(p.numel() for p in model.parameters()),
    )
    folder = vlm.save_vlm(model, processor, args.out or _committed("vlm"), provenance)
    print(f"saved the VLM to {folder}: {total / 60:.1f} min, {render_seconds:.0f} s of it rendering images")
    _eval_vlm(folder, args.held_out, args.cache, args.workers)
    return folder


def _eval_vlm(folder: Path, held_out: int, cache: Path | None, workers: int) -> None:
    from raddiff_training import evaluate, vlm

    images = load_images(held_out_seeds(HELD_OUT), vlm.VLM_SHAPE.image_size, cache_dir=cache, workers=workers)
    quality = evaluate.evaluate_vlm(folder, images.subset(range(min(held_out, len(images)))))
    seeds = held_out_seeds(held_out)
    _update_provenance(folder, quality={"held_out_seeds": [seeds.start, seeds.stop], **quality.to_json()})
    print(evaluate.vlm_markdown(quality))
    print(json.dumps(quality.overall(), indent=1))
    for example in quality.examples:
        print(f"  seed {example['seed']}: truth: {example['truth']}\n      caption: {example['caption']}")


def run_ensure(args: argparse.Namespace) -> None:
    from raddiff_training import ensure

    def train(kind: str):
        def build(folder: Path) -> None:
            defaults = build_parser().parse_args([kind, "--out", str(folder)])
            if kind == "vlm":
                defaults.clip = args.model_dir / "clip"
            (run_clip if kind == "clip" else run_vlm)(defaults)

        return None if args.no_train else build

    ensure.ensure_slot(args.model_dir, ensure.CLIP, train("clip"))
    ensure.ensure_slot(args.model_dir, ensure.VLM, train("vlm"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raddiff-train", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, steps, batch, lr, held_out in (("clip", 700, 32, 2e-3, 600), ("vlm", 1300, 32, 2e-3, 200)):
        sub = commands.add_parser(name, help=f"train the {name.upper()} and report its quality on held-out images")
        sub.add_argument(
            "--out", type=Path, default=None, help=f"checkpoint folder (default: the package's weights/{name})"
        )
        sub.add_argument("--steps", type=int, default=steps)
        sub.add_argument("--batch", type=int, default=batch)
        sub.add_argument("--lr", type=float, default=lr)
        sub.add_argument("--images", type=int, default=8000, help="training images: seeds 0..N-1")
        sub.add_argument("--held-out", type=int, default=held_out, help="held-out images for the figures")
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--threads", type=int, default=1, help="torch threads (the weights depend on it)")
        sub.add_argument("--workers", type=int, default=2, help="processes rendering images")
        sub.add_argument("--cache", type=Path, default=None, help="rendered-image cache (default $RADDIFF_TRAIN_CACHE)")
        if name == "clip":
            from raddiff_training.clip import ClipTrainConfig

            clip_defaults = ClipTrainConfig()
            sub.add_argument(
                "--attribute-weight",
                type=float,
                default=clip_defaults.attribute_weight,
                help="weight of the attribute-contrast term (0: the sigmoid and dense losses only)",
            )
            sub.add_argument(
                "--attribute-start",
                type=int,
                default=clip_defaults.attribute_start,
                help="the step the attribute-contrast term starts ramping in at",
            )
        if name == "vlm":
            sub.add_argument("--clip", type=Path, default=None, help="the CLIP whose tower starts the VLM's")
    for name in ("eval-clip", "eval-vlm"):
        sub = commands.add_parser(name, help="the model card's figures for a saved checkpoint")
        sub.add_argument("folder", type=Path)
        sub.add_argument("--held-out", type=int, default=600 if name == "eval-clip" else 200)
        sub.add_argument("--workers", type=int, default=2)
        sub.add_argument("--cache", type=Path, default=None)
    ensure = commands.add_parser("ensure", help="put the trained CLIP and VLM under MODEL_DIR (clip/, vlm/)")
    ensure.add_argument("model_dir", type=Path)
    ensure.add_argument("--no-train", action="store_true", help="fail instead of training when nothing is committed")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "clip":
            run_clip(args)
        elif args.command == "vlm":
            run_vlm(args)
        elif args.command == "eval-clip":
            _eval_clip(args.folder, args.held_out, args.cache, args.workers)
        elif args.command == "eval-vlm":
            _eval_vlm(args.folder, args.held_out, args.cache, args.workers)
        else:
            run_ensure(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
