"""Findings: what each one looks like on the canvas, its attributes, and its ground-truth phrase.

A finding kind declares its attributes and their allowed values; `resolve` fills the ones a spec leaves open
from the image's random stream, so that every image's metadata holds concrete values. `apply` draws the finding
on the canvas (in water-equivalent mm, physically: airless tissue replacing aerated lung, fluid, metal) and
returns the canvas box it occupies.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from raddiff_synth.anatomy import Box, mask_box
from raddiff_synth.canvas import AIRLESS_GAIN, Canvas, disc_path, smooth_noise, smoothstep, soften, warp_about
from raddiff_synth.layers import LOBES, LUNG_SIDES

SIDES = ("right", "left")
LOBE_NAMES = tuple(LOBES)
LOBE_WORDS = {
    "right_upper": "right upper lobe",
    "right_middle": "right middle lobe",
    "right_lower": "right lower lobe",
    "left_upper": "left upper lobe",
    "left_lower": "left lower lobe",
}


# Named boxes a finding marks on the canvas: "box" always (where the finding is), "tip_box" for tubes and lines.
Marks = dict[str, Box]


class SpecError(ValueError):
    """A finding or cohort spec is wrong; the message names the offending key."""


@dataclass(frozen=True)
class Finding:
    """A concrete finding on one image: its kind and every attribute resolved."""

    kind: str
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        """The attribute's value, or "" where a spec left it open (phrases then leave it out)."""
        return self.attributes.get(key, "")


class FindingKind(ABC):
    name: ClassVar[str]
    # attribute -> allowed values (the first is not a default: unset attributes are drawn at random)
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    negative: ClassVar[str]  # ground-truth phrase for its absence, RadDiffBench style
    # Kinds that can appear once per image (one heart, one endotracheal tube).
    single: ClassVar[bool] = True
    # Devices draw after the parenchyma so that they stay on top.
    is_device: ClassVar[bool] = False

    def resolve(self, given: Mapping[str, Any], rng: np.random.Generator, where: str = "finding") -> Finding:
        attributes: dict[str, Any] = {}
        for key, value in given.items():
            if key not in self.choices:
                known = ", ".join(sorted(self.choices)) or "none"
                raise SpecError(f"{where}.{key}: unknown attribute of {self.name} (known: {known})")
            if value not in (*self.choices[key], "any"):
                raise SpecError(f"{where}.{key}: {value!r} is not one of {', '.join(self.choices[key])} or 'any'")
        for key, allowed in self.choices.items():
            value = given.get(key, "any")
            attributes[key] = allowed[int(rng.integers(len(allowed)))] if value == "any" else value
        attributes.update(self.extra_attributes(attributes, rng))
        return Finding(self.name, attributes)

    def extra_attributes(self, attributes: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """Continuous attributes drawn per image (sizes, positions), recorded in the metadata."""
        return {}

    @abstractmethod
    def apply(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Box | Marks:
        """Draw the finding; return its canvas box, or named boxes with at least "box"."""

    def place(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Marks:
        marks = self.apply(canvas, finding, rng)
        return marks if isinstance(marks, dict) else {"box": marks}

    def label(self, finding: Finding) -> str:
        """Short ground-truth phrase for a set that has this finding, RadDiffBench style; open attributes are
        left out ("pleural effusion" when neither side nor severity is fixed)."""
        return " ".join(self.phrase(finding).split())

    @abstractmethod
    def phrase(self, finding: Finding) -> str: ...


class PleuralEffusion(FindingKind):
    name = "pleural_effusion"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"side": SIDES, "severity": ("small", "moderate", "large")}
    negative = "no pleural effusion"
    single = False
    # Height of the fluid level above the lateral costophrenic angle, as a fraction of the lung's height.
    LEVEL: ClassVar[dict[str, float]] = {"small": 0.13, "moderate": 0.32, "large": 0.58}

    def phrase(self, finding: Finding) -> str:
        return f"{finding.get('severity')} {finding.get('side')} pleural effusion"

    def apply(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Box:
        side = finding.get("side")
        anatomy = canvas.anatomy
        c0, r0, c1, r1 = anatomy.lung_box(side)
        window = canvas.window((c0, r0, c1, r1), margin=8)
        lung = window.of(anatomy.lung_thickness[side])
        mask = window.of(anatomy.lung_masks[side])
        height = r1 - r0
        cols, rows = window.grid()
        # 0 at the mediastinal edge of the lung, 1 at the lateral chest wall.
        lateral = (c1 - cols) / (c1 - c0) if side == "right" else (cols - c0) / (c1 - c0)
        lateral = np.clip(lateral, 0.0, 1.0)
        level = r1 - self.LEVEL[finding.get("severity")] * height * float(rng.uniform(0.9, 1.1))
        # Meniscus: the fluid climbs the lateral chest wall, higher laterally than medially.
        top = level - 0.2 * height * lateral**1.5
        # The fluid layer thins towards its upper edge, so the opacity fades upwards instead of ending flat.
        depth = (rows - top) / (0.1 * height)
        layered = smoothstep(depth) * AIRLESS_GAIN * np.maximum(lung, 12.0 * mask)
        # A thin rind of fluid along the lateral wall above the level (the meniscus sign).
        wall = lateral**8 * np.clip(1.0 - (top - rows) / (0.1 * height), 0.0, 1.0) * (rows < top)
        delta = soften(layered * mask + 25.0 * wall * mask, 2.0)
        return canvas.add(delta.astype(np.float32), threshold=4.0, window=window)


class Cardiomegaly(FindingKind):
    name = "cardiomegaly"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"severity": ("mild", "moderate", "severe")}
    negative = "normal heart size"
    WIDTH_GAIN: ClassVar[dict[str, float]] = {"mild": 1.16, "moderate": 1.3, "severe": 1.45}

    def phrase(self, finding: Finding) -> str:
        return f"{finding.get('severity')} cardiomegaly"

    def apply(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Box:
        gain = self.WIDTH_GAIN[finding.get("severity")] * float(rng.uniform(0.97, 1.03))
        return enlarge_heart(canvas, gain)


def enlarge_heart(canvas: Canvas, gain: float) -> Box:
    """Enlarge the heart about its base (upper right, where the great vessels hold it): it grows to the left,
    displacing aerated lung; where no lung lies behind (below the diaphragm) nothing changes. Gains compound
    (an AP film's magnification times cardiomegaly) and only the increment is added, never twice."""
    before, after = canvas.heart_gain, canvas.heart_gain * gain
    canvas.path += _heart_excess(canvas, after) - _heart_excess(canvas, before)
    canvas.heart_gain = after
    return mask_box(_grown_heart(canvas, after) > 2.0)


def _grown_heart(canvas: Canvas, gain: float) -> np.ndarray:
    heart = canvas.layers.thickness["heart"]
    c0, r0, c1, r1 = canvas.anatomy.heart_box
    anchor = (c0 + 0.3 * (c1 - c0), r0 + 0.25 * (r1 - r0))
    # Growth is transverse (the cardiothoracic ratio): the heart's flat base on the diaphragm stays put.
    return warp_about(heart, anchor, gain, 1.0)


def _heart_excess(canvas: Canvas, gain: float) -> np.ndarray:
    if gain == 1.0:
        return np.zeros(canvas.shape, np.float32)
    heart = canvas.layers.thickness["heart"]
    lung = canvas.anatomy.lung_thickness["both"]
    return (AIRLESS_GAIN * np.minimum(np.clip(_grown_heart(canvas, gain) - heart, 0.0, None), lung)).astype(np.float32)


class Consolidation(FindingKind):
    name = "consolidation"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"lobe": LOBE_NAMES}
    negative = "no focal consolidation"
    single = False

    def phrase(self, finding: Finding) -> str:
        return f"{LOBE_WORDS.get(finding.get('lobe'), '')} consolidation"

    def apply(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Box:
        lobe_name = finding.get("lobe")
        window = canvas.window(mask_box(canvas.anatomy.lobe_masks[lobe_name]), margin=2)
        lobe = window.of(canvas.layers.thickness[lobe_name])
        # Patchy airspace filling with spared bronchi: a smooth texture, denser centrally.
        texture = smooth_noise(rng, window.shape, 12, 0.55, 1.0)
        return canvas.add(AIRLESS_GAIN * lobe * texture, threshold=6.0, window=window)


class Atelectasis(FindingKind):
    """Lobar collapse: the airless lobe shrinks towards the hilum (volume loss) and turns dense."""

    name = "atelectasis"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"lobe": LOBE_NAMES}
    negative = "no atelectasis"
    single = False

    def phrase(self, finding: Finding) -> str:
        return f"{LOBE_WORDS.get(finding.get('lobe'), '')} atelectasis"

    def apply(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Box:
        lobe_name = finding.get("lobe")
        lobe = canvas.layers.thickness[lobe_name]
        side = "right" if lobe_name.startswith("right") else "left"
        c0, r0, c1, r1 = mask_box(canvas.anatomy.lobe_masks[lobe_name])
        medial_col = c1 if side == "right" else c0
        height = r1 - r0
        # Upper lobes collapse up and in towards the superior mediastinum, lower lobes down and in behind the heart
        # (a triangle against the spine), the middle lobe in towards the right heart border.
        anchor_row = {"upper": r0 + 0.15 * height, "middle": r0 + 0.5 * height, "lower": r1 - 0.1 * height}
        anchor = (medial_col, anchor_row[lobe_name.split("_")[1]])
        shrink = float(rng.uniform(0.5, 0.65))
        collapsed = warp_about(lobe, anchor, shrink, shrink)
        # The airless lobe is compacted into its shadow; the remaining lobes expand to fill the space.
        lung = canvas.anatomy.lung_thickness[side]
        delta = 0.6 * AIRLESS_GAIN * np.minimum(collapsed / shrink, lung)
        return canvas.add(delta.astype(np.float32), threshold=8.0)


class Nodule(FindingKind):
    name = "nodule"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"size": ("nodule", "mass"), "lobe": LOBE_NAMES}
    negative = "no pulmonary nodule or mass"
    single = False
    DIAMETER_MM: ClassVar[dict[str, tuple[float, float]]] = {"nodule": (8.0, 24.0), "mass": (35.0, 60.0)}

    def phrase(self, finding: Finding) -> str:
        word = "pulmonary nodule" if finding.get("size") == "nodule" else "mass"
        return f"{LOBE_WORDS.get(finding.get('lobe'), '')} {word}"

    def extra_attributes(self, attributes: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        low, high = self.DIAMETER_MM[attributes["size"]]
        return {"diameter_mm": round(float(rng.uniform(low, high)), 1), "anchor": float(rng.random())}

    def apply(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Box:
        spacing = canvas.layers.spacing_mm
        radius = finding.get("diameter_mm") / 2 / spacing
        lobe = canvas.layers.thickness[finding.get("lobe")]
        # Centre where the lobe is thick enough to hold the sphere, away from its edges.
        thick = np.argwhere(lobe > min(0.8 * float(lobe.max()), 2 * radius * spacing + 20))
        row, col = thick[int(finding.get("anchor") * len(thick)) % len(thick)]
        box = (col + 0.5 - radius, row + 0.5 - radius, col + 0.5 + radius, row + 0.5 + radius)
        window = canvas.window(box, margin=2)
        centre = (col + 0.5 - window.cols.start, row + 0.5 - window.rows.start)
        sphere = disc_path(window.shape, centre, radius) * spacing
        # Soft tissue replacing lung, with a slightly lobulated density.
        canvas.add(AIRLESS_GAIN * sphere * smooth_noise(rng, window.shape, 6, 0.85, 1.05), window=window)
        return box


class Pneumothorax(FindingKind):
    """Air in the pleural space: the lung retracts from the apex and lateral wall; beyond its edge (the visceral
    pleural line) there are no lung markings."""

    name = "pneumothorax"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"side": SIDES, "size": ("small", "moderate", "large")}
    negative = "no pneumothorax"
    single = False
    RETRACTION: ClassVar[dict[str, float]] = {"small": 0.88, "moderate": 0.76, "large": 0.6}

    def phrase(self, finding: Finding) -> str:
        return f"{finding.get('size')} {finding.get('side')} pneumothorax"

    def apply(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Box:
        side = finding.get("side")
        c0, r0, c1, r1 = canvas.anatomy.lung_box(side)
        window = canvas.window((c0, r0, c1, r1), margin=2)
        parenchyma = window.of(canvas.layers.lung[side])
        mask = window.of(canvas.anatomy.lung_masks[side])
        keep = self.RETRACTION[finding.get("size")] * float(rng.uniform(0.97, 1.03))
        # Upright, pleural air rises: the lung falls away from the apex, and from the lateral wall most near the
        # apex, towards its medial base. (Window coordinates from here on.)
        c0, r0, c1, r1 = (
            c0 - window.cols.start,
            r0 - window.rows.start,
            c1 - window.cols.start,
            r1 - window.rows.start,
        )
        medial = c1 if side == "right" else c0
        collapsed = _retract(parenchyma, medial, r0, r1, keep)
        collapsed_mask = _retract(mask.astype(np.float32), medial, r0, r1, keep) > 0.5
        # Tissue is conserved: the smaller lung is a little denser.
        delta = np.where(mask, collapsed / math.sqrt(keep) - parenchyma, 0.0)
        # The visceral pleura seen edge-on: a thin white line along the retracted lung's free edge.
        edge = collapsed_mask & ~_eroded(collapsed_mask, 2) & _eroded(mask, 4)
        delta += 16.0 * edge
        # The box holds the apical and upper lateral air space, where the lucency is (a rim of it runs further down).
        space = mask & ~collapsed_mask & (window.of(canvas.anatomy.lung_thickness[side]) > 15.0)
        limit = r0 + min(1.0, 3.0 * (1.0 - keep)) * (r1 - r0)
        upper = np.arange(mask.shape[0])[:, None] < limit
        canvas.add(delta.astype(np.float32), window=window)
        return window.to_canvas(mask_box((space | edge) & upper))


def _retract(image: np.ndarray, medial_col: float, apex_row: float, base_row: float, keep: float) -> np.ndarray:
    """The lung shrunk to `keep` of its height towards its base, and narrowed towards the mediastinum by up to
    the same fraction at the apex, not at all at the base."""
    rows, cols = np.indices(image.shape, dtype=np.float32)
    source_rows = base_row + (rows + 0.5 - base_row) / keep
    height_share = np.clip((base_row - source_rows) / (base_row - apex_row), 0.0, 1.0)
    narrowing = 1.0 - (1.0 - keep) * height_share
    source_cols = medial_col + (cols + 0.5 - medial_col) / narrowing
    return ndimage.map_coordinates(image, [source_rows - 0.5, source_cols - 0.5], order=1, cval=0.0)


def _eroded(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    return ndimage.binary_erosion(mask, iterations=iterations)


class Edema(FindingKind):
    """Mild: vascular congestion (prominent, indistinct perihilar vessels); moderate and severe: perihilar
    haziness spreading outwards, both sides."""

    name = "edema"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"severity": ("mild", "moderate", "severe")}
    negative = "no pulmonary edema"
    HAZE: ClassVar[dict[str, float]] = {"mild": 0.12, "moderate": 0.5, "severe": 0.8}

    def phrase(self, finding: Finding) -> str:
        severity = finding.get("severity")
        return "pulmonary vascular congestion" if severity == "mild" else f"{severity} pulmonary edema"

    def apply(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Box:
        severity = finding.get("severity")
        boxes = []
        for side in LUNG_SIDES:
            c0, r0, c1, r1 = canvas.anatomy.lung_box(side)
            window = canvas.window((c0, r0, c1, r1))
            cols, rows = window.grid()
            hilum_col = c1 - 0.12 * (c1 - c0) if side == "right" else c0 + 0.12 * (c1 - c0)
            hilum = (hilum_col, r0 + 0.45 * (r1 - r0))
            spread = (0.45 if severity == "severe" else 0.33) * (c1 - c0)
            weight = np.exp(-(((cols - hilum[0]) / spread) ** 2 + ((rows - hilum[1]) / (1.3 * spread)) ** 2))
            lung = window.of(canvas.anatomy.lung_thickness[side])
            # Congested vessels: the parenchyma's own fine texture (vessels) turned up around the hila.
            vessels = window.of(canvas.anatomy.vessel_texture[side])
            haze = self.HAZE[severity] * AIRLESS_GAIN * lung * smooth_noise(rng, window.shape, 8, 0.7, 1.0)
            canvas.add((weight * (2.5 * vessels + haze)).astype(np.float32), window=window)
            inside = (weight > 0.35) & window.of(canvas.anatomy.lung_masks[side])
            boxes.append(window.to_canvas(mask_box(inside)))
        return (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
