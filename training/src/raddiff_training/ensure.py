"""Give the services the trained models: `raddiff-train ensure $RADDIFF_MODEL_DIR`.

Puts the CLIP at MODEL_DIR/clip and the VLM at MODEL_DIR/vlm: copies of the weights committed in this package
(trained here by `raddiff-train clip` and `raddiff-train vlm`), or, where none are committed, trains them (with
progress bars; about a quarter of an hour each on two cores).

A folder already there is replaced only when it is a random-init checkpoint or an older trained one of ours;
anything else (someone's own checkpoint) is left alone and reported. To serve real checkpoints instead, point
RADDIFF_EMBEDDING_CHECKPOINT / RADDIFF_VLM_CHECKPOINT at them: the model folder is then not read at all.

`python -m raddiff_training.ensure MODEL_DIR [clip] [vlm]` installs the committed weights only and never
trains; it needs nothing beyond the standard library, so the service images carry this package without its
training dependencies (the CPU chart's model-cache fill Job runs it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PROVENANCE_NAME = "raddiff_checkpoint.json"


@dataclass(frozen=True)
class ModelSlot:
    name: str  # "clip" or "vlm": the committed folder's name and the one under MODEL_DIR
    weights_file: str  # the file whose presence makes a folder a checkpoint
    root: Path | None = None  # where committed weights live; None: this package's weights/

    def committed(self) -> Path | None:
        root = self.root or Path(str(resources.files("raddiff_training") / "weights"))
        folder = root / self.name
        return folder if (folder / self.weights_file).is_file() else None


CLIP = ModelSlot("clip", "open_clip_model.safetensors")
VLM = ModelSlot("vlm", "model.safetensors")


def folder_digest(folder: Path) -> str:
    """sha256 over every file's name and bytes: equal digests, equal checkpoints."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _kind(folder: Path, slot: ModelSlot) -> str:
    """ "missing", "ours-trained", "random-init" or "foreign"."""
    if not folder.exists() or not (folder / slot.weights_file).exists():
        # An empty or half-written folder holds nothing worth keeping.
        return "missing" if not folder.exists() or not any(folder.iterdir()) else "foreign"
    provenance = folder / PROVENANCE_NAME
    if not provenance.is_file():
        # The embedding service's init-random writes no provenance; its config names the random model.
        config = folder / "open_clip_config.json"
        if config.is_file() and json.loads(config.read_text()).get("model_name") == "raddiff-clip-small":
            return "random-init"
        return "foreign"
    try:
        kind = json.loads(provenance.read_text()).get("kind")
    except (ValueError, OSError):
        return "foreign"
    return {"trained": "ours-trained", "random-init": "random-init"}.get(kind, "foreign")


def ensure_slot(
    model_dir: Path, slot: ModelSlot, train: Callable[[Path], None] | None, log: Callable[[str], None] = print
) -> Path:
    """Make model_dir/<slot> the trained model; `train(folder)` builds it when nothing is committed."""
    target = model_dir / slot.name
    kind = _kind(target, slot)
    committed = slot.committed()
    if kind == "foreign":
        log(f"kept {target}: it is not a checkpoint this project wrote, so it is not replaced")
        return target
    if committed is not None:
        if kind == "ours-trained" and folder_digest(target) == folder_digest(committed):
            log(f"kept {target} (the committed trained {slot.name})")
            return target
        _copy_atomically(committed, target)
        replaced = {
            "missing": "",
            "random-init": " (replaced a random-init one)",
            "ours-trained": " (replaced an older one)",
        }
        log(f"installed the trained {slot.name} at {target}{replaced[kind]}")
        return target
    if kind == "ours-trained":
        log(f"kept {target} (trained here; no committed weights to compare with)")
        return target
    if train is None:
        raise FileNotFoundError(f"no committed {slot.name} weights in this package and training was not allowed")
    log(f"no committed {slot.name} weights: training one into {target}")
    train(target)
    return target


def _copy_atomically(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    for path in staging.iterdir():
        path.chmod(0o644)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


SLOTS = {slot.name: slot for slot in (CLIP, VLM)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m raddiff_training.ensure", description="install the committed trained models (no training)"
    )
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("models", nargs="*", help=f"any of {', '.join(sorted(SLOTS))} (default: all of them)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) - set(SLOTS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(sorted(SLOTS))}")
    try:
        for name in args.models or sorted(SLOTS):
            ensure_slot(args.model_dir, SLOTS[name], train=None)
    except FileNotFoundError as exc:
        print(f"raddiff_training.ensure: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
