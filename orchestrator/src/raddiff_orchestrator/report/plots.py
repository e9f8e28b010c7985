"""Inline SVG plots for the evidence report: plain shapes and text, no plotting library, no script.

Colours are the Okabe-Ito pair that colour-blind readers tell apart: set A vermillion, set B blue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

COLOUR_A = "#d55e00"
COLOUR_B = "#0072b2"
INK = "#222"
GRID = "#ddd"
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


@dataclass(frozen=True)
class Frame:
    """A plot area inside an SVG of width x height, with margins for the axes' labels."""

    width: int
    height: int
    left: int = 52
    right: int = 26
    top: int = 12
    bottom: int = 40

    @property
    def inner_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def inner_height(self) -> float:
        return self.height - self.top - self.bottom

    def x(self, fraction: float) -> float:
        return self.left + fraction * self.inner_width

    def y(self, fraction: float) -> float:
        return self.top + (1 - fraction) * self.inner_height


def _svg(frame: Frame, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {frame.width} {frame.height}" '
        f'width="{frame.width}" height="{frame.height}" role="img" aria-label="{escape(label)}">'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = 11, colour: str = INK) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{colour}" {FONT}>'
        f"{escape(text)}</text>"
    )


def score_histogram(
    edges: Sequence[float],
    counts_a: Sequence[int],
    counts_b: Sequence[int],
    mean_a: float | None = None,
    mean_b: float | None = None,
    width: int = 460,
    height: int = 190,
) -> str:
    """Both sets' score distributions as outlined, lightly filled steps, each as a share of its own set
    (so sets of different sizes compare), with each set's mean as a dashed line."""
    frame = Frame(width, height)
    bins = len(counts_a)
    if bins == 0 or len(edges) != bins + 1 or len(counts_b) != bins:
        return _svg(frame, [_text(width / 2, height / 2, "no score distribution recorded")], "no scores")
    total_a, total_b = max(1, sum(counts_a)), max(1, sum(counts_b))
    shares_a = [c / total_a for c in counts_a]
    shares_b = [c / total_b for c in counts_b]
    step = _nice_step(max(max(shares_a), max(shares_b), 1e-9) / 4)
    top = step * math.ceil(max(max(shares_a), max(shares_b), 1e-9) / step - 1e-9)
    low, high = float(edges[0]), float(edges[-1])
    span = (high - low) or 1.0

    def x_of(value: float) -> float:
        return frame.x((value - low) / span)

    body = []
    places = max(0, -math.floor(math.log10(step * 100) + 1e-9))  # 10% steps: "10%"; 2.5% steps: "2.5%"
    for tick in range(round(top / step) + 1):  # horizontal guides at each step of the share
        share = tick * step
        y = frame.y(share / top)
        body.append(f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y:.1f}" y2="{y:.1f}" '
                    f'stroke="{GRID}" stroke-width="1"/>')
        body.append(_text(frame.left - 6, y + 4, f"{100 * share:.{places}f}%", anchor="end", size=10))
    for shares, colour in ((shares_b, COLOUR_B), (shares_a, COLOUR_A)):
        points = [f"{x_of(low):.1f},{frame.y(0):.1f}"]
        for index, share in enumerate(shares):
            y = frame.y(share / top)
            points += [f"{x_of(edges[index]):.1f},{y:.1f}", f"{x_of(edges[index + 1]):.1f},{y:.1f}"]
        points.append(f"{x_of(high):.1f},{frame.y(0):.1f}")
        body.append(f'<polygon points="{" ".join(points)}" fill="{colour}" fill-opacity="0.22" stroke="{colour}" '
                    'stroke-width="1.8" stroke-linejoin="round"/>')
    for mean, colour in ((mean_a, COLOUR_A), (mean_b, COLOUR_B)):
        if mean is not None and low <= mean <= high:
            x = x_of(mean)
            body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.y(1):.1f}" y2="{frame.y(0):.1f}" '
                        f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="4 3"/>')
    axis_y = frame.y(0)
    body.append(f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{axis_y:.1f}" y2="{axis_y:.1f}" '
                f'stroke="{INK}" stroke-width="1"/>')
    for fraction in (0.0, 0.5, 1.0):
        value = low + fraction * span
        body.append(_text(frame.x(fraction), axis_y + 14, f"{value:.3f}", size=10))
    body.append(_text(frame.x(0.5), frame.height - 6, "similarity of the image to the finding"))
    label = "Score distributions of set A and set B"
    return _svg(frame, body, label)


def auroc_by_iteration(iterations: Sequence[Sequence[float]], width: int = 460, height: int = 170) -> str:
    """Each iteration's ranked AUROCs (best first) as dots, the best one larger, on a 0.5 .. 1 axis."""
    frame = Frame(width, height, left=44, bottom=34)
    count = len(iterations)
    if count == 0:
        return _svg(frame, [_text(width / 2, height / 2, "no iterations recorded")], "no iterations")
    values = [v for row in iterations for v in row]
    low = min(0.5, math.floor(min(values, default=0.5) * 10) / 10)

    def y_of(auroc: float) -> float:
        return frame.y((auroc - low) / (1 - low))

    body = []
    steps = round((1 - low) / 0.1)
    for tick in range(steps + 1):
        value = low + tick * 0.1
        y = y_of(value)
        body.append(f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y:.1f}" y2="{y:.1f}" '
                    f'stroke="{GRID}" stroke-width="1"/>')
        body.append(_text(frame.left - 6, y + 4, f"{value:.1f}", anchor="end", size=10))
    for index, row in enumerate(iterations):
        x = frame.x((index + 0.5) / count)
        for rank, auroc in enumerate(row):
            radius, offset = (6.0, 0.0) if rank == 0 else (3.5, (rank % 3 - 1) * 7.0)  # spread the others apart
            body.append(f'<circle cx="{x + offset:.1f}" cy="{y_of(auroc):.1f}" r="{radius}" '
                        f'fill="{COLOUR_A}" fill-opacity="{0.9 if rank == 0 else 0.45}"/>')
        body.append(_text(x, frame.height - 18, f"iteration {index + 1}"))
    body.append(_text(frame.left - 34, frame.top + 4, "AUROC", anchor="start", size=10))
    return _svg(frame, body, "AUROC of each iteration's ranked findings")


def _nice_step(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value`: a tick step to read easily."""
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value - 1e-12:
            return step * power
    return 10 * power
