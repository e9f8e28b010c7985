"""`raddiff-train ensure MODEL_DIR`: the trained models reach the services, and nobody's own checkpoint is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from raddiff_embedding.checkpoints import init_random
from raddiff_training.ensure import CLIP, ModelSlot, ensure_slot, folder_digest
from raddiff_training.ensure import main as ensure_main


def committed_clip(root: Path) -> ModelSlot:
    folder = root / "clip"
    folder.mkdir(parents=True)
    (folder / CLIP.weights_file).write_bytes(b"trained weights")
    (folder / "raddiff_checkpoint.json").write_text(json.dumps({"kind": "trained"}))
    return ModelSlot("clip", CLIP.weights_file, root)


def refuse_training(folder: Path) -> None:
    raise AssertionError("trained although weights are committed")


def test_installs_the_committed_model_then_keeps_it(tmp_path: Path) -> None:
    slot = committed_clip(tmp_path / "package")
    model_dir = tmp_path / "models"
    notes: list[str] = []
    target = ensure_slot(model_dir, slot, refuse_training, notes.append)
    assert target == model_dir / "clip"
    assert folder_digest(target) == folder_digest(slot.committed())
    assert "installed" in notes[-1]
    ensure_slot(model_dir, slot, refuse_training, notes.append)
    assert "kept" in notes[-1]


def test_replaces_a_random_init_or_stale_trained_model(tmp_path: Path) -> None:
    slot = committed_clip(tmp_path / "package")
    model_dir = tmp_path / "models"
    init_random(model_dir / "clip", seed=0)  # what `make models` wrote before trained models existed
    notes: list[str] = []
    ensure_slot(model_dir, slot, refuse_training, notes.append)
    assert folder_digest(model_dir / "clip") == folder_digest(slot.committed())
    assert "random-init" in notes[-1]
    (model_dir / "clip" / CLIP.weights_file).write_bytes(b"an older training run")
    ensure_slot(model_dir, slot, refuse_training, notes.append)
    assert (model_dir / "clip" / CLIP.weights_file).read_bytes() == b"trained weights"


def test_leaves_someone_elses_checkpoint_alone(tmp_path: Path) -> None:
    slot = committed_clip(tmp_path / "package")
    mine = tmp_path / "models" / "clip"
    mine.mkdir(parents=True)
    (mine / CLIP.weights_file).write_bytes(b"my own CheXzero conversion")
    notes: list[str] = []
    ensure_slot(tmp_path / "models", slot, refuse_training, notes.append)
    assert (mine / CLIP.weights_file).read_bytes() == b"my own CheXzero conversion"
    assert "not replaced" in notes[-1]


def test_trains_when_nothing_is_committed_and_may_refuse_to(tmp_path: Path) -> None:
    empty = ModelSlot("vlm", "model.safetensors", tmp_path / "nothing-committed")
    trained: list[Path] = []

    def train(folder: Path) -> None:
        trained.append(folder)
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"fresh")
        (folder / "raddiff_checkpoint.json").write_text(json.dumps({"kind": "trained"}))

    ensure_slot(tmp_path / "models", empty, train, lambda _: None)
    assert trained == [tmp_path / "models" / "vlm"]
    ensure_slot(tmp_path / "models", empty, train, lambda _: None)  # trained once: kept
    assert len(trained) == 1
    with pytest.raises(FileNotFoundError, match="no committed vlm weights"):
        ensure_slot(tmp_path / "elsewhere", empty, None, lambda _: None)


def test_the_module_command_installs_only_committed_weights_with_the_standard_library(tmp_path: Path) -> None:
    # The service images carry this package without its dependencies: the command must not need them.
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] in {'torch', 'numpy', 'raddiff_synth', 'open_clip', 'transformers'}:\n"
        "        raise ImportError(name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "import runpy\n"
        "sys.argv = ['ensure', sys.argv[1], 'clip']\n"
        "runpy.run_module('raddiff_training.ensure', run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"installed the trained clip at {tmp_path / 'clip'}" in done.stdout
    assert folder_digest(tmp_path / "clip") == folder_digest(CLIP.committed())
    assert not (tmp_path / "vlm").exists()


def test_the_module_command_refuses_an_unknown_model_and_installs_a_named_one(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        ensure_main([str(tmp_path), "clip", "bogus"])
    assert exit_info.value.code == 2 and not (tmp_path / "clip").exists()
    assert ensure_main([str(tmp_path), "vlm"]) == 0 and (tmp_path / "vlm" / "model.safetensors").is_file()
