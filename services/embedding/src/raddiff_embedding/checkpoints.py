"""The two checkpoint kinds the embedding service loads, and a CLI that writes the second.

(a) A CheXzero checkpoint as its authors publish it: a plain OpenAI-CLIP state
    dict saved with torch.save (visual.conv1.weight, transformer.resblocks.*,
    text_projection, logit_scale, ...). open_clip infers the architecture from
    the tensor shapes. CheXzero tokenises with CLIP's BPE, context 77.
(b) The project's own models: a folder with open_clip_config.json (an
    open_clip model config, plus a "model_name") and open_clip_model.safetensors.

    python -m raddiff_embedding.checkpoints init-random DIR [--seed N] [--config FILE] [--force | --if-missing]

writes a randomly initialised checkpoint of kind (b), until trained ones exist.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import open_clip
import torch
from open_clip.model import build_model_from_openai_state_dict
from safetensors.torch import save_file

from raddiff_kit.images import sha256_file

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
DEFAULT_CONFIG = "raddiff-clip-small.json"
# Keys a jit-exported OpenAI model carries beside its tensors.
_OPENAI_META_KEYS = ("input_resolution", "context_length", "vocab_size")

Tokenizer = Callable[[list[str]], torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the path and the problem."""


@dataclass
class LoadedClip:
    model: torch.nn.Module
    tokenizer: Tokenizer
    name: str
    # sha256 over the files that define the weights, so a model_id changes when they do.
    digest: str
    image_size: int


def load_checkpoint(path: Path) -> LoadedClip:
    if path.is_dir():
        return _load_open_clip_dir(path)
    if path.is_file():
        return _load_openai_state_dict(path)
    raise CheckpointError(
        f"embedding checkpoint {path} does not exist; set RADDIFF_EMBEDDING_CHECKPOINT to a CheXzero .pt file "
        f"or a model folder, or write one with `python -m raddiff_embedding.checkpoints init-random {path}`"
    )


def _load_openai_state_dict(path: Path) -> LoadedClip:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"embedding checkpoint {path} is not a torch state dict: {exc}") from None
    state = _unwrap_state_dict(state, path)
    if "visual.proj" not in state or "text_projection" not in state:
        raise CheckpointError(
            f"embedding checkpoint {path} is not an OpenAI-format CLIP ViT state dict (no visual.proj/text_projection)"
        )
    try:
        model = build_model_from_openai_state_dict(dict(state))
        # open_clip builds OpenAI models in half precision; reload the tensors at full precision.
        model.float()
        model.load_state_dict(state)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"embedding checkpoint {path} does not fit a CLIP model: {exc}") from None
    tokenizer = open_clip.SimpleTokenizer(context_length=model.context_length)
    return LoadedClip(model.eval(), tokenizer, path.stem, sha256_file(path), _square_size(model, path))


def _unwrap_state_dict(state: object, path: Path) -> dict[str, torch.Tensor]:
    """Accept a bare state dict, {"state_dict": ...}, and DataParallel's "module." prefix."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"embedding checkpoint {path} does not hold a state dict")
    tensors = {str(k).removeprefix("module."): v for k, v in state.items() if k not in _OPENAI_META_KEYS}
    if not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise CheckpointError(f"embedding checkpoint {path} does not hold a state dict of tensors")
    return tensors


def _load_open_clip_dir(folder: Path) -> LoadedClip:
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for needed in (config_path, weights_path):
        if not needed.is_file():
            raise CheckpointError(f"embedding checkpoint folder {folder} has no {needed.name}")
    try:
        config = json.loads(config_path.read_text())
        # open_clip prefers WEIGHTS_NAME in the folder and loads it strictly.
        model = open_clip.create_model(f"local-dir:{folder}")
        tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    except (ValueError, KeyError, TypeError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"embedding checkpoint folder {folder} does not load: {exc}") from None
    digest = hashlib.sha256((sha256_file(config_path) + sha256_file(weights_path)).encode()).hexdigest()
    name = str(config.get("model_name") or folder.name)
    return LoadedClip(model.eval(), tokenizer, name, digest, _square_size(model, folder))


def _square_size(model: torch.nn.Module, path: Path) -> int:
    height, width = model.visual.image_size
    if height != width:
        raise CheckpointError(f"embedding checkpoint {path} expects {width}x{height} images; only square is supported")
    return int(height)


def init_random(folder: Path, seed: int = 0, config: Path | None = None, force: bool = False) -> Path:
    """Write a randomly initialised checkpoint of kind (b) into `folder`."""
    weights_path = folder / WEIGHTS_NAME
    if weights_path.exists() and not force:
        raise CheckpointError(f"{weights_path} already exists; pass --force to overwrite it")
    folder.mkdir(parents=True, exist_ok=True)
    if config is None:
        with resources.as_file(resources.files("raddiff_embedding") / "configs" / DEFAULT_CONFIG) as default:
            shutil.copyfile(default, folder / CONFIG_NAME)
    else:
        shutil.copyfile(config, folder / CONFIG_NAME)
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights_path))
    weights_path.chmod(0o644)  # safetensors writes owner-only; the service may run as another user
    return weights_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raddiff_embedding.checkpoints")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init-random", help="write a small randomly initialised open_clip checkpoint")
    init.add_argument("folder", type=Path)
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("--config", type=Path, default=None, help=f"an open_clip config JSON (default {DEFAULT_CONFIG})")
    init.add_argument("--force", action="store_true", help="overwrite existing weights")
    init.add_argument("--if-missing", action="store_true", help="do nothing when the folder already has weights")
    args = parser.parse_args(argv)
    if args.if_missing and (args.folder / WEIGHTS_NAME).exists():
        print(f"kept {args.folder / WEIGHTS_NAME}")
        return 0
    try:
        written = init_random(args.folder, args.seed, args.config, args.force)
    except (CheckpointError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
