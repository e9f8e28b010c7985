"""How a box is written in a VLM answer: four location tokens, x0 y0 x1 y1.

Each coordinate is a normalised position (0..1) quantised into LOC_BINS bins,
written as one token <locNNN> (the PaliGemma convention, in raddiff.v1.Box's
order). The VLM service writes boxes this way and the localize service reads
them, so the format lives here, beside the contracts both sides share.
"""

from __future__ import annotations

import re

LOC_BINS = 256
# Four location tokens in a row (whitespace between them allowed); stray tokens in other text are not a box.
_BOX = re.compile(r"<loc(\d{3})>\s*<loc(\d{3})>\s*<loc(\d{3})>\s*<loc(\d{3})>")


def loc_token(index: int) -> str:
    return f"<loc{index:03d}>"


def encode_box(x0: float, y0: float, x1: float, y1: float) -> str:
    """The four location tokens of a normalised box."""
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise ValueError(f"box ({x0}, {y0}, {x1}, {y1}) is not 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1")
    return "".join(loc_token(min(LOC_BINS - 1, int(v * LOC_BINS))) for v in (x0, y0, x1, y1))


def decode_boxes(text: str) -> list[tuple[float, float, float, float]]:
    """Every well-formed box in a model answer (four location tokens in a row), at bin centres.

    Groups with a bin beyond LOC_BINS or without area (x0 >= x1 or y0 >= y1) are skipped.
    """
    boxes = []
    for match in _BOX.finditer(text):
        bins = [int(g) for g in match.groups()]
        if max(bins) >= LOC_BINS:
            continue
        x0, y0, x1, y1 = ((b + 0.5) / LOC_BINS for b in bins)
        if x0 < x1 and y0 < y1:
            boxes.append((x0, y0, x1, y1))
    return boxes
