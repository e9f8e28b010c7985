"""A contact sheet: one row per finding, its severities and positions across, all on the same patient and pose.

Yellow: the finding's box; cyan: a tube's or line's tip box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from raddiff_synth.catalog import KINDS
from raddiff_synth.render import Generator, image_rng

# (row title, [(caption, kind, attributes) ...]); kind None is the normal reference.
ROWS: list[tuple[str, list[tuple[str, str | None, dict[str, str]]]]] = [
    ("normal", [("normal PA", None, {}), ("normal AP", None, {"view": "AP"})]),
    (
        "pleural effusion",
        [
            (f"{sev} {side}", "pleural_effusion", {"side": side, "severity": sev})
            for side in ("right", "left")
            for sev in ("small", "moderate", "large")
        ],
    ),
    (
        "cardiomegaly",
        [("normal heart", None, {})]
        + [(sev, "cardiomegaly", {"severity": sev}) for sev in ("mild", "moderate", "severe")],
    ),
    (
        "consolidation",
        [
            (lobe.replace("_", " "), "consolidation", {"lobe": lobe})
            for lobe in ("right_upper", "right_middle", "right_lower", "left_upper", "left_lower")
        ],
    ),
    (
        "atelectasis",
        [
            (lobe.replace("_", " "), "atelectasis", {"lobe": lobe})
            for lobe in ("right_upper", "right_middle", "right_lower", "left_upper", "left_lower")
        ],
    ),
    (
        "nodule / mass",
        [
            ("nodule RUL", "nodule", {"size": "nodule", "lobe": "right_upper"}),
            ("nodule LLL", "nodule", {"size": "nodule", "lobe": "left_lower"}),
            ("mass RUL", "nodule", {"size": "mass", "lobe": "right_upper"}),
            ("mass LUL", "nodule", {"size": "mass", "lobe": "left_upper"}),
            ("mass RLL", "nodule", {"size": "mass", "lobe": "right_lower"}),
        ],
    ),
    (
        "pneumothorax",
        [
            (f"{size} {side}", "pneumothorax", {"side": side, "size": size})
            for side in ("right", "left")
            for size in ("small", "moderate", "large")
        ],
    ),
    ("edema", [(sev, "edema", {"severity": sev}) for sev in ("mild", "moderate", "severe")]),
    (
        "ET tube",
        [
            (pos.replace("_", " "), "endotracheal_tube", {"position": pos})
            for pos in ("normal", "low", "right_bronchus")
        ],
    ),
    (
        "NG tube",
        [
            (pos.replace("_", " "), "enteric_tube", {"position": pos})
            for pos in ("stomach", "esophagus_coiled", "bronchus")
        ],
    ),
    (
        "central line",
        [
            ("R IJ CVC, SVC", "central_line", {"type": "cvc", "side": "right", "tip": "svc"}),
            ("R IJ CVC, RA", "central_line", {"type": "cvc", "side": "right", "tip": "right_atrium"}),
            ("L subclavian, SVC", "central_line", {"type": "cvc", "side": "left", "tip": "svc"}),
            ("R PICC, SVC", "central_line", {"type": "picc", "side": "right", "tip": "svc"}),
            ("L PICC, brachioceph.", "central_line", {"type": "picc", "side": "left", "tip": "brachiocephalic"}),
        ],
    ),
    (
        "pacemaker / ICD",
        [
            ("pacemaker left", "cardiac_device", {"type": "pacemaker", "side": "left"}),
            ("ICD left", "cardiac_device", {"type": "icd", "side": "left"}),
            ("pacemaker right", "cardiac_device", {"type": "pacemaker", "side": "right"}),
        ],
    ),
]
SHEET_SEED = 7  # a training-range seed: the sheet is documentation, never benchmark data
CAPTION_PX = 14
TITLE_PX = 110


def render_contact_sheet(out: Path, tile: int = 224, generator: Generator | None = None, boxes: bool = True) -> Path:
    generator = generator or Generator()
    columns = max(len(cells) for _, cells in ROWS)
    sheet = Image.new("RGB", (TITLE_PX + columns * tile, len(ROWS) * (tile + CAPTION_PX)), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for row, (title, cells) in enumerate(ROWS):
        top = row * (tile + CAPTION_PX)
        draw.text((6, top + tile // 2), title, fill=(255, 255, 255), font=font)
        for column, (caption, kind, attributes) in enumerate(cells):
            view = attributes.get("view", "PA")
            findings = []
            if kind is not None:
                findings = [KINDS[kind].resolve(attributes, image_rng(SHEET_SEED, 3))]
            radiograph = generator.render(SHEET_SEED, findings, size=tile, view=view)
            tile_image = Image.fromarray(np.stack([radiograph.pixels] * 3, axis=-1))
            if boxes:
                tile_draw = ImageDraw.Draw(tile_image)
                for placed in radiograph.findings:
                    for box, colour in ((placed.box, (255, 210, 0)), (placed.tip_box, (0, 220, 255))):
                        if box is not None:
                            x0, y0, x1, y1 = (v * tile for v in box)
                            tile_draw.rectangle((x0, y0, min(x1, tile - 1), min(y1, tile - 1)), outline=colour)
            left = TITLE_PX + column * tile
            sheet.paste(tile_image, (left, top))
            draw.text((left + 4, top + tile + 1), caption, fill=(200, 200, 200), font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out


def finding_rows() -> list[str]:
    return [title for title, _ in ROWS]
