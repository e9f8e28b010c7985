"""Reading an LLM's boxes: the JSON schema it is asked for, and a parser that repairs what it can
(inverted or out-of-range coordinates) and says what it cannot (bad JSON, wrong count, no area)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from raddiff_kit.json_schema import short_text
from raddiff_localize.engine import NormBox

_KEYS = ("x0", "y0", "x1", "y1")


def box_schema(count: int) -> dict[str, object]:
    """Exactly `count` boxes, each normalised to one X-ray, in the order of the findings."""
    coordinate = {"type": "number", "minimum": 0, "maximum": 1}
    box = {
        "type": "object",
        "properties": {"finding": short_text(120), **{key: coordinate for key in _KEYS}},
        "required": ["finding", *_KEYS],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"boxes": {"type": "array", "items": box, "minItems": count, "maxItems": count}},
        "required": ["boxes"],
        "additionalProperties": False,
    }


@dataclass
class ParsedAnswer:
    # One entry per box in the answer; None where the entry was unusable.
    boxes: list[NormBox | None] = field(default_factory=list)
    # Why the answer must be asked for again; None when it is usable as it stands.
    problem: str | None = None
    # What was fixed in the usable entries.
    repairs: list[str] = field(default_factory=list)


def finding_label(index: int, findings: list[str]) -> str:
    return f"finding {index + 1} ({findings[index]!r})" if index < len(findings) else f"box {index + 1}"


def parse_answer(text: str, findings: list[str]) -> ParsedAnswer:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return ParsedAnswer(problem=f"invalid JSON ({exc})")
    answer = ParsedAnswer()
    if isinstance(data, list):
        answer.repairs.append("the answer was a bare list; read it as the boxes")
        entries = data
    elif isinstance(data, dict) and isinstance(data.get("boxes"), list):
        entries = data["boxes"]
    else:
        return ParsedAnswer(problem='the answer has no "boxes" list')
    problems = []
    for index, entry in enumerate(entries):
        label = finding_label(index, findings)
        box, repairs, problem = repair_box(entry)
        answer.boxes.append(box)
        answer.repairs.extend(f"{label}: {r}" for r in repairs)
        if problem:
            problems.append(f"{label}: {problem}")
    if len(entries) != len(findings):
        problems.insert(0, f"{len(entries)} boxes for {len(findings)} findings")
    answer.problem = "; ".join(problems) or None
    return answer


def repair_box(entry: object) -> tuple[NormBox | None, list[str], str | None]:
    """(box or None, repairs made, why it is unusable)."""
    if not isinstance(entry, dict):
        return None, [], "not an object with x0, y0, x1, y1"
    values = [entry.get(key) for key in _KEYS]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return None, [], "x0, y0, x1, y1 are not all finite numbers"
    x0, y0, x1, y1 = (float(v) for v in values)  # type: ignore[arg-type]
    repairs = []
    if x0 > x1:
        x0, x1 = x1, x0
        repairs.append("x0 and x1 swapped")
    if y0 > y1:
        y0, y1 = y1, y0
        repairs.append("y0 and y1 swapped")
    clipped = []
    for key, value in zip(_KEYS, (x0, y0, x1, y1), strict=True):
        inside = min(1.0, max(0.0, value))
        if inside != value:
            repairs.append(f"{key} {value:g} clipped to {inside:g}")
        clipped.append(inside)
    x0, y0, x1, y1 = clipped
    if x0 >= x1 or y0 >= y1:
        return None, repairs, "the box has no area inside the image"
    return NormBox(x0, y0, x1, y1), repairs, None
