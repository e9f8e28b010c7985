"""The per-image working surface that findings draw on, and the small raster tools they share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from raddiff_synth.anatomy import Anatomy, Box, Point, mask_box
from raddiff_synth.layers import Layers

# Water-equivalent attenuation that airless tissue or fluid adds per mm of aerated lung it replaces.
AIRLESS_GAIN = 0.85


@dataclass
class Canvas:
    """P is the total path (water-equivalent mm) per canvas pixel; findings add to it in place."""

    layers: Layers
    anatomy: Anatomy
    path: np.ndarray
    view: str  # "PA" or "AP"
    heart_gain: float = 1.0  # the heart's width relative to the CT's, once enlarged (AP magnification, cardiomegaly)

    @property
    def shape(self) -> tuple[int, int]:
        return self.path.shape  # type: ignore[return-value]

    def window(self, box: Box, margin: float = 0.0) -> Window:
        return Window.around(box, self.shape, margin)

    def add(self, delta: np.ndarray, threshold: float = 2.0, window: Window | None = None) -> Box:
        """Add a delta (full canvas, or the size of `window`); the box bounds where it changes the path by more
        than `threshold` mm."""
        window = window or Window(slice(0, self.shape[0]), slice(0, self.shape[1]))
        self.path[window.rows, window.cols] += delta
        return window.to_canvas(mask_box(np.abs(delta) > threshold))

    def stroke(self, points: list[Point], width: float, value: float) -> None:
        """Add a line of `width` canvas pixels through `points` carrying `value` mm at full coverage."""
        cols = [c for c, _ in points]
        rows = [r for _, r in points]
        window = self.window((min(cols), min(rows), max(cols), max(rows)), margin=width + 2)
        if window.empty:
            return
        local = [(c - window.cols.start, r - window.rows.start) for c, r in points]
        self.path[window.rows, window.cols] += value * polyline_path(window.shape, local, width)


@dataclass(frozen=True)
class Window:
    """A rectangle of the canvas: findings compute their deltas on it rather than on the whole canvas."""

    rows: slice
    cols: slice

    @classmethod
    def around(cls, box: Box, shape: tuple[int, int], margin: float = 0.0) -> Window:
        c0, r0, c1, r1 = box
        return cls(
            slice(max(int(r0 - margin), 0), max(min(int(np.ceil(r1 + margin)), shape[0]), 0)),
            slice(max(int(c0 - margin), 0), max(min(int(np.ceil(c1 + margin)), shape[1]), 0)),
        )

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.stop - self.rows.start, self.cols.stop - self.cols.start)

    @property
    def empty(self) -> bool:
        return self.shape[0] <= 0 or self.shape[1] <= 0

    def of(self, array: np.ndarray) -> np.ndarray:
        return array[self.rows, self.cols]

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Canvas column and row of every pixel centre in the window."""
        rows, cols = np.indices(self.shape, dtype=np.float32)
        return cols + self.cols.start + 0.5, rows + self.rows.start + 0.5

    def to_canvas(self, box: Box) -> Box:
        c0, r0, c1, r1 = box
        return (c0 + self.cols.start, r0 + self.rows.start, c1 + self.cols.start, r1 + self.rows.start)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int, low: float, high: float) -> np.ndarray:
    """Low-frequency texture in [low, high]: a coarse random grid smoothly enlarged to `shape`."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    image = Image.fromarray(coarse).resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return low + (high - low) * np.clip(np.asarray(image), 0.0, 1.0)


def warp_about(
    image: np.ndarray, centre: Point, scale_x: float, scale_y: float, shift: Point = (0.0, 0.0)
) -> np.ndarray:
    """`image` enlarged by (scale_x, scale_y) about `centre` and moved by `shift` (canvas pixels)."""
    cx, cy = centre
    dx, dy = shift
    coefficients = (1 / scale_x, 0.0, cx - (cx + dx) / scale_x, 0.0, 1 / scale_y, cy - (cy + dy) / scale_y)
    warped = Image.fromarray(image.astype(np.float32)).transform(
        (image.shape[1], image.shape[0]), Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR
    )
    return np.asarray(warped)


def disc_path(shape: tuple[int, int], centre: Point, radius: float) -> np.ndarray:
    """Path length (pixels) through a sphere of `radius` pixels seen face-on: 2 * sqrt(r^2 - d^2)."""
    rows, cols = np.indices(shape, dtype=np.float32)
    d2 = (cols + 0.5 - centre[0]) ** 2 + (rows + 0.5 - centre[1]) ** 2
    return 2.0 * np.sqrt(np.clip(radius * radius - d2, 0.0, None))


def polyline_path(shape: tuple[int, int], points: list[Point], width: float, supersample: int = 2) -> np.ndarray:
    """A line of `width` canvas pixels through `points`, as coverage in [0, 1] (anti-aliased by supersampling)."""
    size = (shape[1] * supersample, shape[0] * supersample)
    image = Image.new("L", size, 0)
    scaled = [(x * supersample, y * supersample) for x, y in points]
    ImageDraw.Draw(image).line(scaled, fill=255, width=max(1, round(width * supersample)), joint="curve")
    reduced = image.resize((shape[1], shape[0]), Image.Resampling.BOX)
    return np.asarray(reduced, dtype=np.float32) / 255.0


def soften(delta: np.ndarray, sigma: float) -> np.ndarray:
    """Blur a finding's delta where it is non-zero (plus a margin), so its edges are not drawn with a ruler."""
    nonzero = np.abs(delta) > 1e-3
    if not nonzero.any():
        return delta
    c0, r0, c1, r1 = (int(v) for v in mask_box(nonzero))
    margin = int(4 * sigma) + 1
    r0, c0 = max(r0 - margin, 0), max(c0 - margin, 0)
    r1, c1 = min(r1 + margin, delta.shape[0]), min(c1 + margin, delta.shape[1])
    out = delta.copy()
    out[r0:r1, c0:c1] = ndimage.gaussian_filter(delta[r0:r1, c0:c1], sigma)
    return out
