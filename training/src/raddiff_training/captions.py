"""What the VLM is taught to say: a caption that lists an image's findings, and boxes for "where is X?".

The caption is the image's findings as RadDiffBench-style labels, one sentence each, in the synth's report order
("Endotracheal tube in the right main bronchus. Moderate right pleural effusion. Mild cardiomegaly."), or
"No acute cardiopulmonary process." for a normal image. Short labels are what the offline proposer contrasts
best (its phrases are word n-grams of affirmed sentences) and what a benchmark's ground truth is written in;
every attribute the generator controls (side, severity, lobe, size, device position) is named.

A grounding answer is the matching findings' boxes as <locNNN> tokens (raddiff_vlm.grounding), left to right,
or "Not seen." when the image has no such finding.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raddiff_kit.grounding import LOC_BINS, encode_box
from raddiff_synth import Finding
from raddiff_synth.catalog import KINDS
from raddiff_synth.render import PlacedFinding
from raddiff_synth.report import ORDER
from raddiff_training.statements import FIXED_ATTRIBUTES, categorical

CAPTION_PROMPT = "Describe this image in detail."  # the orchestrator's caption prompt (agent/steps.py)
CAPTION_PROMPTS = (
    CAPTION_PROMPT,
    "Describe the findings in this chest X-ray.",
    "What is abnormal in this image?",
    "List the findings.",
)
NORMAL_CAPTION = "No acute cardiopulmonary process."
NOT_SEEN = "Not seen."
GROUNDING_TEMPLATES = (
    "Where is the {}?",
    "Where is the {}? Give its bounding box.",
    "Locate the {}.",
    "Give the bounding box of the {}.",
)
DEVICE_TIPS = ("endotracheal_tube", "enteric_tube", "central_line")
_SENTENCE_END = re.compile(r"\.(?:\s+|$)")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _order_key(finding: Finding) -> tuple[int, tuple[int, ...]]:
    choices = KINDS[finding.kind].choices
    # The report's order of kinds; within a kind, the catalogue's order of values (right before left).
    return ORDER.index(finding.kind), tuple(
        choices[k].index(finding.attributes[k]) for k in choices if k in finding.attributes
    )


def caption(findings: Sequence[Finding]) -> str:
    """The caption the VLM is trained to write for an image with these findings."""
    if not findings:
        return NORMAL_CAPTION
    ordered = sorted(findings, key=_order_key)
    return " ".join(_cap(KINDS[f.kind].label(f)) + "." for f in ordered)


def _label_table() -> dict[str, Finding]:
    table: dict[str, Finding] = {}
    for kind, spec in KINDS.items():
        keys = sorted(spec.choices)
        for values in itertools.product(*(spec.choices[k] for k in keys)):
            finding = Finding(kind, dict(zip(keys, values, strict=True)))
            table[spec.label(finding).lower()] = finding
    return table


LABELS = _label_table()


@dataclass(frozen=True)
class ParsedCaption:
    findings: list[Finding]
    normal: bool  # said "No acute cardiopulmonary process."
    unparsed: list[str]  # sentences that name no known finding


def parse_caption(text: str) -> ParsedCaption:
    """The findings a caption names, read back by exact label (what captions are trained to be)."""
    findings: list[Finding] = []
    unparsed: list[str] = []
    normal = False
    for sentence in _SENTENCE_END.split(text.strip()):
        key = " ".join(sentence.split()).lower()
        if not key:
            continue
        if key == NORMAL_CAPTION.lower().rstrip("."):
            normal = True
        elif key in LABELS:
            findings.append(LABELS[key])
        else:
            unparsed.append(sentence)
    return ParsedCaption(findings, normal, unparsed)


# -- grounding ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundingQuery:
    phrase: str  # what the prompt names: "right pleural effusion", "tip of the NG tube"
    kind: str
    attributes: tuple[tuple[str, str], ...]
    tip: bool = False

    def matches(self, placed: PlacedFinding) -> bool:
        f = placed.finding
        return f.kind == self.kind and all(f.attributes.get(k) == v for k, v in self.attributes)

    def boxes(self, placed: Sequence[PlacedFinding]) -> list[tuple[float, float, float, float]]:
        """The truth: every matching finding's box (tip box for a tip query) that spans at least one bin."""
        out = []
        for p in placed:
            box = p.tip_box if self.tip else p.box
            if box is not None and self.matches(p) and _spans_a_bin(box):
                out.append(tuple(float(v) for v in box))
        return sorted(out)

    def prompt(self, template: str = GROUNDING_TEMPLATES[0]) -> str:
        return template.format(self.phrase)


def _spans_a_bin(box: Sequence[float]) -> bool:
    x0, y0, x1, y1 = box
    return x1 - x0 >= 1 / LOC_BINS and y1 - y0 >= 1 / LOC_BINS


def query_for(finding: Finding, rng: np.random.Generator, full: bool = False) -> GroundingQuery:
    """A "where is X?" question about one finding: its full label, or with open-able attributes left out."""
    attributes = categorical(finding)
    fixed = FIXED_ATTRIBUTES.get(finding.kind, ())
    if not full:
        attributes = {k: v for k, v in attributes.items() if k in fixed or rng.random() < 0.5}
    phrase = KINDS[finding.kind].label(Finding(finding.kind, attributes))
    tip = finding.kind in DEVICE_TIPS and not full and rng.random() < 0.3
    if tip:
        phrase = f"tip of the {phrase}"
    return GroundingQuery(phrase, finding.kind, tuple(sorted(attributes.items())), tip)


def grounding_answer(query: GroundingQuery, placed: Sequence[PlacedFinding]) -> str:
    boxes = query.boxes(placed)
    if not boxes:
        return NOT_SEEN
    return "".join(encode_box(*_clip_box(box)) for box in boxes)


def _clip_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (min(1.0, max(0.0, float(v))) for v in box)
    return x0, y0, x1, y1


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
