"""Compose one radiograph: base layers + findings -> frame (pose, habitus, inspiration) -> display -> 8-bit."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from raddiff_synth.anatomy import Anatomy
from raddiff_synth.canvas import Canvas
from raddiff_synth.catalog import KINDS
from raddiff_synth.findings import Finding, SpecError, enlarge_heart
from raddiff_synth.geometry import Frame
from raddiff_synth.layers import Layers, load_layers

VIEWS = ("PA", "AP")
DEFAULT_SIZE = 512
FIELD_PX = 440.0  # canvas pixels across the output for an average patient on a PA film
BONE_KNEE_MM = 12.0  # bone excess saturates past this so that thin ribs stand out and the spine does not glare
AP_HEART_GAIN = 1.07
PAD_ROWS = 64  # the heart is further from the detector on an AP film, so it is magnified


@dataclass(frozen=True)
class Acquisition:
    view: str
    rotation_deg: float
    shift_x: float  # fraction of the field
    shift_y: float
    habitus: float  # >1: a broader patient fills more of the frame
    inspiration: float  # >1: deeper breath, taller lungs
    exposure: float  # scales the display's attenuation range
    contrast: float  # display gamma
    bone_weight: float  # bone contrast (lower kVp: brighter bones)
    noise: float  # quantum noise, display units

    @classmethod
    def sample(cls, rng: np.random.Generator, view: str | None = None) -> Acquisition:
        view = view or VIEWS[int(rng.random() < 0.4)]
        if view not in VIEWS:
            raise SpecError(f"view: {view!r} is not one of {', '.join(VIEWS)}")
        portable = view == "AP"
        return cls(
            view=view,
            rotation_deg=float(rng.uniform(-4.0, 4.0)),
            shift_x=float(rng.uniform(-0.04, 0.04)),
            shift_y=float(rng.uniform(-0.04, 0.04)),
            habitus=float(rng.uniform(0.92, 1.08)),
            inspiration=float(rng.uniform(0.9, 1.02) if portable else rng.uniform(0.97, 1.08)),
            exposure=float(rng.uniform(0.88, 1.15)),
            contrast=float(rng.uniform(0.85, 1.2)),
            bone_weight=float(rng.uniform(1.6, 2.4)),
            noise=float(rng.uniform(0.006, 0.02)),
        )


NormalisedBox = tuple[float, float, float, float]  # (x0, y0, x1, y1) as fractions of the output's width/height


@dataclass(frozen=True)
class PlacedFinding:
    finding: Finding
    box: NormalisedBox
    tip_box: NormalisedBox | None = None  # tubes and lines: around the tip


@dataclass(frozen=True)
class Radiograph:
    seed: int
    pixels: np.ndarray  # uint8, size x size
    acquisition: Acquisition
    findings: tuple[PlacedFinding, ...]

    def png_bytes(self) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(self.pixels).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    def save(self, path: Path) -> None:
        path.write_bytes(self.png_bytes())

    def metadata(self) -> dict:
        return {
            "seed": self.seed,
            "size": int(self.pixels.shape[0]),
            "view": self.acquisition.view,
            "acquisition": asdict(self.acquisition),
            "findings": [
                {
                    "kind": placed.finding.kind,
                    "attributes": dict(placed.finding.attributes),
                    "label": KINDS[placed.finding.kind].label(placed.finding),
                    "box": [round(v, 4) for v in placed.box],
                    **({"tip_box": [round(v, 4) for v in placed.tip_box]} if placed.tip_box else {}),
                }
                for placed in self.findings
            ],
        }


def _soft_edge(rows: np.ndarray, count: int) -> np.ndarray:
    """`count` rows continuing an edge of the canvas: its mean profile, smoothed across so no bone streaks."""
    profile = ndimage.gaussian_filter1d(rows.mean(axis=0), 8.0)
    return np.repeat(profile[None, :], count, axis=0)


def image_rng(seed: int, stream: int, *more: int) -> np.random.Generator:
    """Independent, reproducible random streams per image: 0 acquisition, 1 findings' drawing, 2 noise,
    3 attribute resolution, 4 report wording."""
    if seed < 0:
        raise SpecError(f"seed: {seed} is negative")
    return np.random.default_rng([seed, stream, *more])


class Generator:
    """Renders radiographs from the cached layers; one instance serves any number of images."""

    def __init__(self, layers: Layers | None = None) -> None:
        self.layers = layers or load_layers()
        self.anatomy = Anatomy(self.layers)
        knee = BONE_KNEE_MM
        self._bone = (knee * (1.0 - np.exp(-self.layers.bone / knee))).astype(np.float32)
        self._air_and_soft = (self.layers.soft + sum(self.layers.lung.values())).astype(np.float32)
        c0, r0, c1, r1 = self.anatomy.lungs_box
        # A little above the lungs' middle: their lowest parts are the posterior recesses behind the abdomen.
        self._centre = ((c0 + c1) / 2, r0 + 0.44 * (r1 - r0))
        self._apex_row = r0

    def render(
        self,
        seed: int,
        findings: Sequence[Finding] = (),
        size: int = DEFAULT_SIZE,
        view: str | None = None,
    ) -> Radiograph:
        if not 32 <= size <= 2048:
            raise SpecError(f"size: {size} is outside 32..2048 pixels")
        acquisition = Acquisition.sample(image_rng(seed, 0), view)
        canvas = Canvas(
            layers=self.layers,
            anatomy=self.anatomy,
            path=self._air_and_soft + acquisition.bone_weight * self._bone,
            view=acquisition.view,
        )
        if acquisition.view == "AP":
            enlarge_heart(canvas, AP_HEART_GAIN)
        ordered = sorted(enumerate(findings), key=lambda item: KINDS[item[1].kind].is_device)
        marks = {index: KINDS[f.kind].place(canvas, f, image_rng(seed, 1, index)) for index, f in ordered}
        frame = self._frame(acquisition, size)
        pixels = self._display(canvas.path, frame, acquisition, image_rng(seed, 2))
        placed = tuple(
            PlacedFinding(
                finding,
                frame.box_to_output(marks[i]["box"]),
                frame.box_to_output(marks[i]["tip_box"]) if "tip_box" in marks[i] else None,
            )
            for i, finding in enumerate(findings)
        )
        return Radiograph(seed=seed, pixels=pixels, acquisition=acquisition, findings=placed)

    def _frame(self, acquisition: Acquisition, size: int) -> Frame:
        magnification = 1.05 if acquisition.view == "AP" else 1.0
        field = FIELD_PX / (acquisition.habitus * magnification)
        centre = (
            self._centre[0] + acquisition.shift_x * field,
            self._centre[1] + acquisition.shift_y * field,
        )
        return Frame.build(
            size=size,
            centre=centre,
            field_px=field,
            rotation_deg=acquisition.rotation_deg,
            stretch=acquisition.inspiration,
            stretch_anchor_row=self._apex_row,
        )

    @staticmethod
    def _display(path: np.ndarray, frame: Frame, acquisition: Acquisition, rng: np.random.Generator) -> np.ndarray:
        # Shrink first when the output is much smaller than the field, so bilinear sampling does not alias.
        reduce = max(1, int(np.hypot(*frame.matrix[0])))
        if reduce > 1:
            h, w = (path.shape[0] // reduce) * reduce, (path.shape[1] // reduce) * reduce
            path = path[:h, :w].reshape(h // reduce, reduce, w // reduce, reduce).mean(axis=(1, 3))
        # The CT ends at the neck and upper abdomen: extend both ends so a tilted frame never shows its edge.
        pad = PAD_ROWS // reduce
        path = np.concatenate([_soft_edge(path[:8], pad), path, _soft_edge(path[-8:], pad)])
        a, b, c, d, e, f = frame.pil_coefficients(reduce)
        warped = Image.fromarray(path.astype(np.float32)).transform(
            (frame.size, frame.size),
            Image.Transform.AFFINE,
            (a, b, c, d, e, f + pad),
            resample=Image.Resampling.BILINEAR,
        )
        total = np.asarray(warped)
        # Transmission display: 1 - exp(-attenuation) over a window that starts at aerated lung.
        floor, scale, ceiling = 70.0, 140.0 * acquisition.exposure, 260.0
        shown = -np.expm1(-np.clip(total - floor, 0.0, None) / scale) / -np.expm1(-(ceiling - floor) / scale)
        shown = np.clip(shown, 0.0, 1.0) ** acquisition.contrast
        shown += acquisition.noise * rng.standard_normal(shown.shape, dtype=np.float32)
        return (np.clip(shown, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
