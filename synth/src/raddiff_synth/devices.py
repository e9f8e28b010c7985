"""Support devices, routed along the projected anatomy (trachea, esophagus, veins, heart) to their tip position.

Each device's `box` bounds all of it inside the canvas; tubes and lines also record a `tip_box` around their
tip, the part whose position the findings are about. Radio-opaque parts are drawn as lines of high attenuation
(water-equivalent mm per pixel of coverage); plastic walls as a faint band. Paths are smooth splines through
anatomical waypoints with a little per-image jitter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from raddiff_synth.anatomy import Anatomy, Box, Point
from raddiff_synth.canvas import Canvas
from raddiff_synth.findings import SIDES, Finding, FindingKind, Marks

METAL = 45.0  # a wire or radio-opaque stripe: a thin line as bright as bone
TOP = -40.0  # rows above the canvas: tubes enter from the neck, beyond the frame


def spline(points: list[Point], samples_per_segment: int = 16) -> list[Point]:
    """Catmull-Rom curve through `points`."""
    p = np.array(points, dtype=np.float64)
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    curve = []
    t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None]
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        segment = 0.5 * (
            2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
        )
        curve.extend(map(tuple, segment))
    curve.append(tuple(p[-2]))
    return curve  # type: ignore[return-value]


def line_at(line: Mapping[int, float], row: float) -> float:
    """Column of a centreline at `row`, holding its end values beyond its extent."""
    rows = sorted(line)
    return float(np.interp(row, rows, [line[r] for r in rows]))


def draw_tube(canvas: Canvas, points: list[Point], width_mm: float, wall: float, stripe: float) -> Box:
    """A tube of `width_mm` with faint walls (`wall`) and a radio-opaque stripe (`stripe`) along its length."""
    spacing = canvas.layers.spacing_mm
    curve = spline(points)
    if wall > 0:
        canvas.stroke(curve, width_mm / spacing, wall)
    canvas.stroke(curve, max(2.0, 1.4 / spacing), stripe)
    return curve_box(curve, width_mm / spacing)


def curve_box(curve: list[Point], margin: float) -> Box:
    """Bounds of a drawn curve, not clipped: a tube entering from the neck runs above the canvas, and the frame
    clips boxes to the image."""
    cols = [c for c, _ in curve]
    rows = [r for _, r in curve]
    return (min(cols) - margin, min(rows) - margin, max(cols) + margin, max(rows) + margin)


def tip_box(point: Point, radius: float) -> Box:
    return (point[0] - radius, point[1] - radius, point[0] + radius, point[1] + radius)


def jitter(rng: np.random.Generator, points: list[Point], amount: float) -> list[Point]:
    return [(c + float(rng.normal(0, amount)), r + float(rng.normal(0, amount))) for c, r in points]


def right_bronchus_path(anatomy: Anatomy, depth: float) -> list[Point]:
    """From the carina down the right main bronchus and bronchus intermedius; depth 0..1 how far."""
    col, row = anatomy.carina
    mm = 1.0 / anatomy.layers.spacing_mm
    ends = [(col - 22 * mm, row + 18 * mm), (col - 30 * mm, row + 50 * mm), (col - 40 * mm, row + 95 * mm)]
    return ends[: 1 + round(depth * (len(ends) - 1))]


class EndotrachealTube(FindingKind):
    name = "endotracheal_tube"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"position": ("normal", "low", "right_bronchus")}
    negative = "no endotracheal tube"
    is_device = True
    TIP_ABOVE_CARINA_MM: ClassVar[dict[str, float]] = {"normal": 50.0, "low": 8.0}

    def phrase(self, finding: Finding) -> str:
        return {
            "normal": "endotracheal tube in standard position",
            "low": "endotracheal tube tip low, just above the carina",
            "right_bronchus": "endotracheal tube in the right main bronchus",
        }.get(finding.get("position"), "endotracheal tube")

    def apply(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Box | Marks:
        anatomy = canvas.anatomy
        position = finding.get("position")
        carina_row = anatomy.carina[1]
        mm = 1.0 / canvas.layers.spacing_mm
        line = anatomy.trachea_line
        top = min(line)
        points: list[Point] = [(line_at(line, top) + 6, TOP), (line_at(line, top), float(top))]
        if position == "right_bronchus":
            points += [(line_at(line, r), float(r)) for r in np.linspace(top + 30, carina_row - 4, 3)]
            points += right_bronchus_path(anatomy, 0.0)
        else:
            tip_row = carina_row - (self.TIP_ABOVE_CARINA_MM[position] + float(rng.uniform(-6, 6))) * mm
            points += [(line_at(line, r), float(r)) for r in np.linspace(top + 25, tip_row, 3)]
        extent = draw_tube(canvas, points, 9.0, 6.0, METAL)
        return {"box": extent, "tip_box": tip_box(points[-1], 14 * mm)}


class Enteric(FindingKind):
    name = "enteric_tube"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"position": ("stomach", "esophagus_coiled", "bronchus")}
    negative = "no enteric tube"
    is_device = True

    def phrase(self, finding: Finding) -> str:
        return {
            "stomach": "NG tube in stomach",
            "esophagus_coiled": "NG tube coiled in the esophagus",
            "bronchus": "NG tube in bronchus",
        }.get(finding.get("position"), "NG tube")

    def apply(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Box | Marks:
        anatomy = canvas.anatomy
        mm = 1.0 / canvas.layers.spacing_mm
        position = finding.get("position")
        if position == "bronchus":
            line = anatomy.trachea_line
            top = min(line)
            points = [(line_at(line, top) + 3, TOP)]
            points += [(line_at(line, r) + 2, float(r)) for r in np.linspace(top, anatomy.carina[1] - 4, 4)]
            points += right_bronchus_path(anatomy, 1.0)
        else:
            line = anatomy.esophagus_line
            top, bottom = min(line), max(line)
            points = [(line_at(line, top), TOP)]
            if position == "esophagus_coiled":
                points += self._coil(line, top + float(rng.uniform(0.25, 0.4)) * (bottom - top), 11 * mm)
            else:
                points += [(line_at(line, r), float(r)) for r in np.linspace(top, bottom, 6)]
                col, row = anatomy.stomach_centre
                # Across the gastro-oesophageal junction, along the greater curvature to the body of the stomach.
                points += [(col - 5 * mm, row - 25 * mm), (col + 8 * mm, row), (col + 2 * mm, row + 20 * mm)]
        points = points[:2] + jitter(rng, points[2:], 1.5)
        extent = draw_tube(canvas, points, 5.0, 2.0, METAL * 0.7)
        tip = points[-1]
        if position == "esophagus_coiled":
            return {"box": extent, "tip_box": curve_box(points[2:], 10 * mm)}
        return {"box": extent, "tip_box": tip_box(tip, 18 * mm)}

    @staticmethod
    def _coil(line: Mapping[int, float], row: float, radius: float) -> list[Point]:
        """Down the oesophagus to `row`, then loops that turn back up: a tube that never reached the stomach."""
        top = min(line)
        points: list[Point] = [(line_at(line, r), float(r)) for r in np.linspace(top, row, 4)]
        centre_col = line_at(line, row)
        for turn in np.linspace(0, 4 * np.pi, 13)[1:]:
            points.append((centre_col + radius * np.sin(turn), row - radius * (1 - np.cos(turn)) - turn * 1.5))
        points.append((centre_col - radius * 0.5, row - 3.5 * radius))
        return points


class CentralLine(FindingKind):
    name = "central_line"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "type": ("cvc", "picc"),
        "side": SIDES,
        "tip": ("svc", "right_atrium", "brachiocephalic"),
    }
    negative = "no central venous catheter"
    is_device = True
    single = False

    def phrase(self, finding: Finding) -> str:
        kind = "PICC" if finding.get("type") == "picc" else "central venous catheter"
        where = {
            "svc": "in the low SVC",
            "right_atrium": "in the right atrium",
            "brachiocephalic": "in the brachiocephalic vein",
        }.get(finding.get("tip"))
        return f"{finding.get('side')} {kind}" + (f" with tip {where}" if where else "")

    def apply(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Box | Marks:
        anatomy = canvas.anatomy
        mm = 1.0 / canvas.layers.spacing_mm
        side, kind, tip = finding.get("side"), finding.get("type"), finding.get("tip")
        width = canvas.shape[1]
        svc = anatomy.svc_line
        svc_top, (junction_col, junction_row) = min(svc), anatomy.cavoatrial_junction
        clav_col, clav_row = anatomy.clavicle_mid(side)
        outward = -1.0 if side == "right" else 1.0
        if kind == "picc":
            # From the arm, along the axillary and subclavian veins beneath the clavicle.
            start: list[Point] = [(0.0 if side == "right" else float(width), clav_row + 70 * mm)]
            start += [(clav_col + outward * 45 * mm, clav_row + 35 * mm), (clav_col, clav_row + 22 * mm)]
        elif side == "right":
            # Right internal jugular: straight down the neck into the right brachiocephalic vein.
            start = [(line_at(svc, svc_top) - 14 * mm, TOP), (line_at(svc, svc_top) - 12 * mm, 10.0)]
        else:
            # Left subclavian: under the left clavicle, then across the mediastinum in the left brachiocephalic vein.
            start = [(clav_col + 30 * mm, clav_row + 22 * mm), (clav_col, clav_row + 20 * mm)]
        venous: list[Point] = []
        if side == "left":
            venous.append((line_at(svc, svc_top) + 30 * mm, svc_top - 15 * mm))
        venous.append((line_at(svc, svc_top), float(svc_top)))
        if tip == "brachiocephalic":
            points = [*start, venous[0]] if side == "left" else [*start, venous[-1]]
        else:
            points = start + venous + [(junction_col, junction_row - 12 * mm)]
            if tip == "right_atrium":
                points.append((junction_col + 6 * mm, junction_row + 30 * mm))
        points = [*jitter(rng, points[:-1], 1.0), points[-1]]
        extent = draw_tube(canvas, points, 2.5, 0.0, METAL * (0.8 if kind == "cvc" else 0.6))
        return {"box": extent, "tip_box": tip_box(points[-1], 15 * mm)}


class CardiacDevice(FindingKind):
    name = "cardiac_device"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"type": ("pacemaker", "icd"), "side": SIDES}
    negative = "no pacemaker or ICD"
    is_device = True

    def phrase(self, finding: Finding) -> str:
        kind = {"pacemaker": "pacemaker", "icd": "ICD"}.get(finding.get("type"), "pacemaker or ICD")
        side = finding.get("side")
        return f"{side}-sided {kind}" if side else kind

    def extra_attributes(self, attributes: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        return {"leads": 2 if attributes["type"] == "pacemaker" else 1}

    def apply(self, canvas: Canvas, finding: Finding, rng: np.random.Generator) -> Box | Marks:
        anatomy = canvas.anatomy
        mm = 1.0 / canvas.layers.spacing_mm
        side, kind = finding.get("side"), finding.get("type")
        outward = -1.0 if side == "right" else 1.0
        clav_col, clav_row = anatomy.clavicle_mid(side)
        can_w, can_h = (48 * mm, 40 * mm) if kind == "pacemaker" else (62 * mm, 52 * mm)
        can_centre = (
            clav_col + outward * 40 * mm + float(rng.normal(0, 3)),
            clav_row + 55 * mm + float(rng.normal(0, 3)),
        )
        # The generator: a dense metal can with rounded corners.
        can_box = (
            can_centre[0] - can_w / 2,
            can_centre[1] - can_h / 2,
            can_centre[0] + can_w / 2,
            can_centre[1] + can_h / 2,
        )
        window = canvas.window(can_box, margin=2)
        cols, rows = window.grid()
        u = np.abs(cols - can_centre[0]) / (can_w / 2)
        v = np.abs(rows - can_centre[1]) / (can_h / 2)
        can = np.clip((1.0 - (u**4 + v**4)) * 8.0, 0.0, 1.0)
        canvas.add((140.0 * can).astype(np.float32), window=window)
        svc = anatomy.svc_line
        svc_top = min(svc)
        junction_col, junction_row = anatomy.cavoatrial_junction
        hc0, hr0, hc1, hr1 = anatomy.heart_box
        vein: list[Point] = [
            (can_centre[0] - outward * 18 * mm, can_centre[1] - 12 * mm),
            (clav_col, clav_row + 18 * mm),
            (line_at(svc, svc_top) + (30 * mm if side == "left" else -8 * mm), svc_top - 10 * mm),
            (line_at(svc, svc_top), float(svc_top) + 10 * mm),
            (junction_col, junction_row - 5 * mm),
        ]
        rv_apex = (hc0 + 0.72 * (hc1 - hc0), hr0 + 0.8 * (hr1 - hr0))
        rv_lead = [*vein, (junction_col + 15 * mm, junction_row + 20 * mm), rv_apex]
        rv_curve = spline(jitter(rng, rv_lead, 1.0))
        canvas.stroke(rv_curve, 1.6 * mm, METAL)
        box = curve_box(rv_curve, 4 * mm)
        if kind == "pacemaker":
            ra_lead = [*vein, (junction_col + 8 * mm, junction_row + 12 * mm), (junction_col + 22 * mm, junction_row)]
            canvas.stroke(spline(jitter(rng, ra_lead, 1.0)), 1.6 * mm, METAL)
        else:
            # Shock coils: thick dense segments in the SVC and along the distal right-ventricular lead.
            coil = rv_curve[int(len(rv_curve) * 0.78) : int(len(rv_curve) * 0.97)]
            canvas.stroke(coil, 4.0 * mm, METAL)
        c0, r0, c1, r1 = box
        return (
            min(c0, can_centre[0] - can_w / 2),
            min(r0, can_centre[1] - can_h / 2),
            max(c1, can_centre[0] + can_w / 2),
            max(r1, can_centre[1] + can_h / 2),
        )
