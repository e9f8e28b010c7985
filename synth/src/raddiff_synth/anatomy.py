"""Landmarks on the canvas, read from the projected label maps, so findings and devices land on the anatomy."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from raddiff_synth.layers import LOBES, LUNG_SIDES, Layers

Point = tuple[float, float]  # (column, row) on the canvas
Box = tuple[float, float, float, float]  # (col0, row0, col1, row1) on the canvas

MIN_PATH_MM = 2.0  # a pixel belongs to a structure where the ray crosses at least this much of it


def mask_box(mask: np.ndarray) -> Box:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("empty mask has no box")
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def centreline(mask: np.ndarray) -> dict[int, float]:
    """Row -> mean column of the mask in that row."""
    line = {}
    for row in np.flatnonzero(mask.any(axis=1)):
        line[int(row)] = float(np.flatnonzero(mask[row]).mean())
    return line


@dataclass(frozen=True)
class Anatomy:
    layers: Layers

    def mask(self, group: str) -> np.ndarray:
        return self.layers.thickness[group] > MIN_PATH_MM

    @cached_property
    def lung_thickness(self) -> dict[str, np.ndarray]:
        """Path length through each lung (mm), and through both under "both"."""
        sides = {side: self.layers.lung_thickness(side) for side in LUNG_SIDES}
        return {**sides, "both": sides["right"] + sides["left"]}

    @cached_property
    def lung_masks(self) -> dict[str, np.ndarray]:
        return {side: self.lung_thickness[side] > MIN_PATH_MM for side in LUNG_SIDES}

    @cached_property
    def lobe_masks(self) -> dict[str, np.ndarray]:
        return {lobe: self.mask(lobe) for lobe in LOBES}

    @cached_property
    def vessel_texture(self) -> dict[str, np.ndarray]:
        """Fine structure of the lung parenchyma (vessels, bronchial walls) away from the lung's borders: what
        congestion makes prominent. Borders are left out: partial volume with the heart would draw a false rim."""
        texture = {}
        for side, mask in self.lung_masks.items():
            parenchyma = self.layers.lung[side]
            fine = np.clip(parenchyma - ndimage.gaussian_filter(parenchyma, 3.0), 0.0, None)
            texture[side] = (fine * ndimage.binary_erosion(mask, iterations=6)).astype(np.float32)
        return texture

    def lung_box(self, side: str) -> Box:
        return mask_box(self.lung_masks[side])

    @cached_property
    def lungs_box(self) -> Box:
        return mask_box(self.lung_masks["right"] | self.lung_masks["left"])

    @cached_property
    def heart_box(self) -> Box:
        return mask_box(self.mask("heart"))

    @cached_property
    def heart_centre(self) -> Point:
        rows, cols = np.nonzero(self.mask("heart"))
        return float(cols.mean()), float(rows.mean())

    @cached_property
    def trachea_line(self) -> dict[int, float]:
        """Centre of the trachea above the carina (rows where it is a single narrow tube)."""
        mask = self.mask("trachea")
        line = {}
        for row, col in centreline(mask).items():
            width = np.flatnonzero(mask[row]).size
            if width <= 30 / self.layers.spacing_mm:
                line[row] = col
            elif line:
                break  # the bronchi begin: the carina is above this row
        return line

    @cached_property
    def carina(self) -> Point:
        row = max(self.trachea_line)
        return self.trachea_line[row], float(row)

    @cached_property
    def esophagus_line(self) -> dict[int, float]:
        return centreline(self.mask("esophagus"))

    @cached_property
    def stomach_centre(self) -> Point:
        rows, cols = np.nonzero(self.mask("stomach"))
        return float(np.median(cols)), float(np.median(rows))

    @cached_property
    def svc_line(self) -> dict[int, float]:
        return centreline(self.mask("svc"))

    @cached_property
    def cavoatrial_junction(self) -> Point:
        row = max(self.svc_line)
        return self.svc_line[row], float(row)

    def clavicle_mid(self, side: str) -> Point:
        rows, cols = np.nonzero(self.mask(f"clavicle_{side}"))
        return float(np.median(cols)), float(np.median(rows))

    def diaphragm_row(self, side: str) -> float:
        """Row of the hemidiaphragm dome: where the lung's lower edge is highest over the lung's middle third."""
        mask = self.lung_masks[side]
        c0, _, c1, _ = self.lung_box(side)
        third = (c1 - c0) / 3
        cols = range(int(c0 + third), int(c1 - third))
        return float(min(np.flatnonzero(mask[:, c])[-1] for c in cols))

    def apex_row(self, side: str) -> float:
        return self.lung_box(side)[1]
