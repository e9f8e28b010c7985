"""The frame: one affine map from output pixels to canvas pixels (pose, habitus, inspiration, magnification)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from raddiff_synth.anatomy import Box


@dataclass(frozen=True)
class Frame:
    """canvas = matrix @ output + offset, in continuous pixel coordinates (pixel i spans [i, i+1])."""

    matrix: np.ndarray  # 2x2, acting on (col, row)
    offset: np.ndarray  # 2
    size: int  # output width and height, pixels

    @classmethod
    def build(
        cls,
        *,
        size: int,
        centre: tuple[float, float],
        field_px: float,
        rotation_deg: float,
        stretch: float,
        stretch_anchor_row: float,
    ) -> Frame:
        """field_px canvas pixels across the output; rotated by rotation_deg; rows below stretch_anchor_row
        stretched by `stretch` (deeper inspiration: a taller chest)."""
        scale = field_px / size
        theta = math.radians(rotation_deg)
        cos, sin = math.cos(theta), math.sin(theta)
        rotate = np.array([[cos, -sin], [sin, cos]])
        squash = np.array([[1.0, 0.0], [0.0, 1.0 / stretch]])
        matrix = squash @ rotate * scale
        half = size / 2
        # Output centre maps to `centre` before the stretch; the stretch is about the anchor row.
        cx, cy = centre
        offset = np.array([cx, stretch_anchor_row + (cy - stretch_anchor_row) / stretch]) - matrix @ np.array(
            [half, half]
        )
        return cls(matrix=matrix, offset=offset, size=size)

    def pil_coefficients(self, reduce: int = 1) -> tuple[float, ...]:
        """PIL's AFFINE data (input = a*x + b*y + c, d*x + e*y + f) for a canvas shrunk `reduce` times."""
        m = self.matrix / reduce
        o = self.offset / reduce
        return (m[0, 0], m[0, 1], o[0], m[1, 0], m[1, 1], o[1])

    def to_output(self, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inverse = np.linalg.inv(self.matrix)
        points = inverse @ (np.stack([cols, rows]) - self.offset[:, None])
        return points[0], points[1]

    def box_to_output(self, box: Box) -> tuple[float, float, float, float]:
        """A canvas box as the normalised (x0, y0, x1, y1) box that bounds it in the output, clipped to [0, 1]."""
        c0, r0, c1, r1 = box
        xs, ys = self.to_output(np.array([c0, c1, c1, c0]), np.array([r0, r0, r1, r1]))
        clip = lambda v: float(min(max(v / self.size, 0.0), 1.0))  # noqa: E731
        return (clip(xs.min()), clip(ys.min()), clip(xs.max()), clip(ys.max()))
