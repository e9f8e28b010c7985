"""Where a finding's patch-level similarity differs between two sets: pure numpy/scipy, no gRPC.

Each image's patch grid of similarities (patch vector . finding vector) is laid onto a common
cells x cells grid over the image itself (the model saw a square crop or a letterboxed square, so
each image's patches land differently on it). Per cell, a Welch t statistic compares A with B; the
t-map is smoothed, and the strongest connected region of large |t| becomes the box. Either sign
counts: a finding may be phrased as an absence or a decrease, and CLIP-style models read negation
poorly, so the evidence is where the similarity differs most, whichever way.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from raddiff_localize.engine import NormBox

Frame = tuple[float, float, float, float]
# |t| where the sets differ without any spread within them (identical images in each set).
T_CAP = 1e6


@dataclass(frozen=True)
class MapOptions:
    cells: int = 28  # resolution of the common grid over each image
    smooth_cells: float = 1.0  # Gaussian sigma of the t-map smoothing, in cells
    min_peak_t: float = 3.0  # below this, the map is flat: no region stands out
    region_fraction: float = 0.5  # a region is the cells with |t| at least this fraction of the peak
    min_box_side: float = 0.15  # a box narrower than this (in image widths/heights) is widened about its centre


def on_image_grid(similarity: np.ndarray, frame: Frame, cells: int) -> np.ndarray:
    """(cells, cells): at each cell centre of the image, the similarity of the patch that covers it.

    NaN where the model did not see that part of the image (outside a centre crop).
    """
    rows, cols = similarity.shape
    x0, y0, x1, y1 = frame
    centres = (np.arange(cells) + 0.5) / cells
    col = np.floor((centres - x0) / (x1 - x0) * cols).astype(int)
    row = np.floor((centres - y0) / (y1 - y0) * rows).astype(int)
    col_ok, row_ok = (col >= 0) & (col < cols), (row >= 0) & (row < rows)
    grid = similarity[np.clip(row, 0, rows - 1)[:, None], np.clip(col, 0, cols - 1)[None, :]].astype(np.float64)
    grid[~(row_ok[:, None] & col_ok[None, :])] = np.nan
    return grid


def welch_t_map(maps_a: np.ndarray, maps_b: np.ndarray) -> np.ndarray:
    """Per cell, Welch's t of A against B over (n, cells, cells) stacks; NaN where a set has under 2 values.

    Where both sets have no spread at all, t is 0 if their means agree and +-T_CAP if they do not.
    """
    n_a, n_b = np.sum(~np.isnan(maps_a), axis=0), np.sum(~np.isnan(maps_b), axis=0)
    enough = (n_a >= 2) & (n_b >= 2)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # cells a set never saw: NaN is the answer
        diff = np.nanmean(maps_a, axis=0) - np.nanmean(maps_b, axis=0)
        se = np.sqrt(np.nanvar(maps_a, axis=0, ddof=1) / n_a + np.nanvar(maps_b, axis=0, ddof=1) / n_b)
        t = np.where(se > 0, diff / se, np.sign(diff) * T_CAP)
    return np.where(enough, np.clip(t, -T_CAP, T_CAP), np.nan)


def smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur that ignores NaN cells (normalised convolution) and keeps them NaN."""
    if sigma <= 0:
        return values.copy()
    valid = ~np.isnan(values)
    weight = ndimage.gaussian_filter(valid.astype(np.float64), sigma, mode="constant")
    total = ndimage.gaussian_filter(np.where(valid, values, 0.0), sigma, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / weight
    out[~valid] = np.nan
    return out


@dataclass(frozen=True)
class Region:
    box: NormBox | None  # None when the map is flat
    peak: float  # the largest |t| after smoothing (NaN when no cell has a value)


def strongest_region(t_map: np.ndarray, options: MapOptions) -> Region:
    """The bounding box of the connected region with the largest summed |t|, in the image's coordinates."""
    strength = np.abs(t_map)
    if not np.any(np.isfinite(strength)):
        return Region(None, math.nan)
    strength = np.where(np.isnan(strength), 0.0, strength)
    peak = float(strength.max())
    if peak < options.min_peak_t:
        return Region(None, peak)
    labels, count = ndimage.label(strength >= max(options.min_peak_t, options.region_fraction * peak))
    sums = ndimage.sum_labels(strength, labels, index=np.arange(1, count + 1))
    rows, cols = np.nonzero(labels == int(np.argmax(sums)) + 1)
    cells = t_map.shape[0]
    left, top, right, bottom = (float(v) / cells for v in (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
    return Region(widen(NormBox(left, top, right, bottom), options.min_box_side), peak)


def widen(box: NormBox, min_side: float) -> NormBox:
    """The box grown about its centre to at least min_side on each axis, shifted to stay inside 0..1."""

    def axis(lo: float, hi: float) -> tuple[float, float]:
        if hi - lo >= min_side:
            return lo, hi
        centre = (lo + hi) / 2
        lo = min(max(0.0, centre - min_side / 2), 1.0 - min_side)
        return lo, lo + min_side

    x0, x1 = axis(box.x0, box.x1)
    y0, y1 = axis(box.y0, box.y1)
    return NormBox(x0, y0, x1, y1)


def finding_t_map(
    similarities_a: list[tuple[np.ndarray, Frame]],
    similarities_b: list[tuple[np.ndarray, Frame]],
    options: MapOptions,
) -> np.ndarray:
    """The smoothed Welch t-map of one finding, from each image's (patch similarity grid, frame)."""
    maps_a = np.stack([on_image_grid(s, f, options.cells) for s, f in similarities_a])
    maps_b = np.stack([on_image_grid(s, f, options.cells) for s, f in similarities_b])
    return smooth(welch_t_map(maps_a, maps_b), options.smooth_cells)

