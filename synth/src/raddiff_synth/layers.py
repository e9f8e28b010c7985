"""Project the CT once into 2-D layers and cache them.

Line integrals add up, so every structure group is projected along the anterior-posterior axis once
(parallel beam) and each radiograph is a weighted sum of these layers plus the findings' own layers.
Units: millimetres of water-equivalent path (mu / mu_water integrated along the ray), so 1 mm of soft
tissue adds about 1 and 1 mm of aerated lung about 0.15.

Canvas: rows run from head (row 0) to feet, columns from the patient's right (column 0) to left, the way a
frontal radiograph is displayed; pixels are square (the CT's in-plane spacing).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from raddiff_synth.source import ChestCT, ct_files, load_chest_ct

# Bump when the projection changes so that stale caches are rebuilt, never reused.
LAYER_VERSION = 3

LOBES = {
    "right_upper": "lung_upper_lobe_right",
    "right_middle": "lung_middle_lobe_right",
    "right_lower": "lung_lower_lobe_right",
    "left_upper": "lung_upper_lobe_left",
    "left_lower": "lung_lower_lobe_left",
}
LUNG_SIDES = {
    "right": ("right_upper", "right_middle", "right_lower"),
    "left": ("left_upper", "left_lower"),
}
# Structure groups whose path length (mm) is kept, to place findings and devices on the anatomy.
THICKNESS_GROUPS: dict[str, tuple[str, ...]] = {
    **{lobe: (name,) for lobe, name in LOBES.items()},
    "heart": ("heart", "atrial_appendage_left"),
    "aorta": ("aorta",),
    "svc": ("superior_vena_cava",),
    "brachiocephalic_vein_left": ("brachiocephalic_vein_left",),
    "brachiocephalic_vein_right": ("brachiocephalic_vein_right",),
    "trachea": ("trachea",),
    "esophagus": ("esophagus",),
    "stomach": ("stomach",),
    "clavicle_left": ("clavicula_left",),
    "clavicle_right": ("clavicula_right",),
    "liver": ("liver",),
}
BONE_PREFIXES = ("vertebrae_", "rib_", "clavicula_", "scapula_", "humerus_")
BONE_NAMES = ("sternum", "costal_cartilages")
CARDIOVASCULAR = (
    "heart",
    "aorta",
    "pulmonary_vein",
    "brachiocephalic_trunk",
    "subclavian_artery_right",
    "subclavian_artery_left",
    "common_carotid_artery_right",
    "common_carotid_artery_left",
    "brachiocephalic_vein_left",
    "brachiocephalic_vein_right",
    "atrial_appendage_left",
    "superior_vena_cava",
    "inferior_vena_cava",
)
# The CT is contrast-enhanced; a plain radiograph sees blood as soft tissue, so non-bone voxels are capped.
SOFT_TISSUE_CAP_HU = 80


@dataclass(frozen=True)
class Layers:
    spacing_mm: float
    soft: np.ndarray  # everything in the body except lung parenchyma, bone counted as water
    bone: np.ndarray  # bone's attenuation above water: weighted per image (kVp) to set bone contrast
    lung: dict[str, np.ndarray]  # lung parenchyma (air, vessels, interstitium) per side
    thickness: dict[str, np.ndarray]  # path length through each group, mm

    @property
    def shape(self) -> tuple[int, int]:
        return self.soft.shape  # type: ignore[return-value]

    def lung_thickness(self, side: str) -> np.ndarray:
        return sum(self.thickness[lobe] for lobe in LUNG_SIDES[side])  # type: ignore[return-value]


def default_cache_dir() -> Path:
    if explicit := os.environ.get("RADDIFF_SYNTH_CACHE"):
        return Path(explicit)
    if model_dir := os.environ.get("RADDIFF_MODEL_DIR"):
        return Path(model_dir) / "synth-cache"
    return Path.home() / ".cache" / "raddiff" / "synth"


def _source_fingerprint() -> str:
    digest = hashlib.sha256(f"v{LAYER_VERSION}".encode())
    for path in ct_files():
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}".encode())
    return digest.hexdigest()[:16]


def load_layers(cache_dir: Path | None = None) -> Layers:
    """The cached layers, projecting the CT (a few seconds) the first time."""
    cache_dir = cache_dir or default_cache_dir()
    path = cache_dir / f"layers-{_source_fingerprint()}.npz"
    if path.is_file():
        try:
            return _read(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # a truncated or foreign file: rebuild it below
    layers = project(load_chest_ct())
    _write_atomically(path, layers)
    return layers


def _read(path: Path) -> Layers:
    with np.load(path) as data:
        arrays = {key: data[key].astype(np.float32) for key in data.files}
    return Layers(
        spacing_mm=float(arrays.pop("spacing_mm")),
        soft=arrays.pop("soft"),
        bone=arrays.pop("bone"),
        lung={side: arrays.pop(f"lung_{side}") for side in LUNG_SIDES},
        thickness={key.removeprefix("thick_"): value for key, value in arrays.items()},
    )


def _write_atomically(path: Path, layers: Layers) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "spacing_mm": np.float32(layers.spacing_mm),
        "soft": layers.soft,
        "bone": layers.bone,
        **{f"lung_{side}": value for side, value in layers.lung.items()},
        **{f"thick_{key}": value.astype(np.float16) for key, value in layers.thickness.items()},
    }
    # Another process may build the same cache at the same time: write aside, then rename.
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as handle:
        np.savez_compressed(handle, **arrays)
    os.replace(handle.name, path)


def _body_mask(hu: np.ndarray) -> np.ndarray:
    """Per axial slice, the largest connected region above -500 HU with its holes filled: drops table and wires."""
    mask = np.zeros(hu.shape, dtype=bool)
    for z in range(hu.shape[2]):
        components, count = ndimage.label(hu[:, :, z] > -500)
        if count == 0:
            continue
        largest = np.argmax(np.bincount(components.ravel())[1:]) + 1
        mask[:, :, z] = ndimage.binary_fill_holes(components == largest)
    return mask


def _ids(structures: dict[str, int], names: tuple[str, ...]) -> list[int]:
    return [structures[name] for name in names if name in structures]


def project(ct: ChestCT) -> Layers:
    sx, sy, sz = ct.spacing_mm
    labels = ct.labels
    names = ct.structures
    body = _body_mask(ct.hu)
    bone_ids = [i for n, i in names.items() if n.startswith(BONE_PREFIXES)] + _ids(names, BONE_NAMES)
    lobe_ids = _ids(names, tuple(LOBES.values()))
    is_bone = np.isin(labels, bone_ids)
    is_lung = np.isin(labels, lobe_ids)

    hu = ct.hu.astype(np.float32)
    soft_hu = np.minimum(hu, SOFT_TISSUE_CAP_HU)
    mu = np.where(body, np.clip(1.0 + soft_hu / 1000.0, 0.0, None), 0.0).astype(np.float32)
    bone_excess = np.where(is_bone & body, np.clip(hu / 1000.0, 0.0, None), 0.0).astype(np.float32)
    del hu, soft_hu

    def to_canvas(per_column: np.ndarray) -> np.ndarray:
        """(x, z) column sums -> canvas rows head-to-feet, columns patient's right-to-left, square pixels."""
        image = per_column.T[::-1]
        rows = round(image.shape[0] * sz / sx)
        return ndimage.zoom(image, (rows / image.shape[0], 1.0), order=1, mode="nearest", grid_mode=True).astype(
            np.float32
        )

    lung = {}
    for side, lobes in LUNG_SIDES.items():
        side_mask = np.isin(labels, _ids(names, tuple(LOBES[lobe] for lobe in lobes)))
        lung[side] = to_canvas((mu * side_mask).sum(axis=1) * sy)
    soft = to_canvas((mu * ~is_lung).sum(axis=1) * sy)
    bone = to_canvas(bone_excess.sum(axis=1) * sy)
    thickness = {
        group: to_canvas(np.isin(labels, _ids(names, members)).sum(axis=1, dtype=np.float32) * sy)
        for group, members in THICKNESS_GROUPS.items()
    }
    return Layers(spacing_mm=sx, soft=soft, bone=bone, lung=lung, thickness=thickness)
