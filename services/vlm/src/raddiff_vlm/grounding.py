"""How the VLM writes a box: four location tokens, x0 y0 x1 y1.

Each coordinate is a normalised position (0..1) quantised into LOC_BINS bins,
written as one token <locNNN>. One token per coordinate is far easier for a
small model to learn than digits, and it is the PaliGemma convention except for
the order, which follows raddiff.v1.Box.
"""

from __future__ import annotations

import re

LOC_BINS = 256
_LOC = re.compile(r"<loc(\d{3})>")


def loc_token(index: int) -> str:
    return f"<loc{index:03d}>"


def encode_box(x0: float, y0: float, x1: float, y1: float) -> str:
    """The four location tokens of a normalised box."""
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise ValueError(f"box ({x0}, {y0}, {x1}, {y1}) is not 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1")
    return "".join(loc_token(min(LOC_BINS - 1, int(v * LOC_BINS))) for v in (x0, y0, x1, y1))


def decode_boxes(text: str) -> list[tuple[float, float, float, float]]:
    """Every well-formed box in a model answer (groups of four location tokens), bin centres."""
    bins = [int(m) for m in _LOC.findall(text)]
    boxes = []
    for i in range(0, len(bins) - 3, 4):
        x0, y0, x1, y1 = ((b + 0.5) / LOC_BINS for b in bins[i : i + 4])
        if x0 < x1 and y0 < y1:
            boxes.append((x0, y0, x1, y1))
    return boxes
