"""The VLM's targets: captions that name every finding with its attributes, and boxes as location tokens."""

from __future__ import annotations

import numpy as np
import pytest

from raddiff_kit.grounding import decode_boxes
from raddiff_synth import Finding
from raddiff_synth.render import PlacedFinding
from raddiff_training.captions import (
    LABELS,
    NORMAL_CAPTION,
    NOT_SEEN,
    GroundingQuery,
    box_iou,
    caption,
    grounding_answer,
    parse_caption,
    query_for,
)
from raddiff_training.world import draw_findings


def test_every_label_reads_back_as_its_finding() -> None:
    assert len(LABELS) == 60
    for text, finding in LABELS.items():
        parsed = parse_caption(caption([finding]))
        assert parsed.findings == [finding] and not parsed.unparsed, text


def test_captions_of_training_images_name_every_finding() -> None:
    for seed in range(200):
        findings = draw_findings(seed)
        text = caption(findings)
        parsed = parse_caption(text)
        assert not parsed.unparsed
        assert parsed.normal == (not findings)
        said = sorted((f.kind, sorted(f.attributes.items())) for f in parsed.findings)
        # Drawn sizes and anchors are not named; every categorical attribute is.
        truth = sorted(
            (f.kind, sorted((k, v) for k, v in f.attributes.items() if isinstance(v, str))) for f in findings
        )
        assert said == truth, text


def test_caption_order_and_wording() -> None:
    findings = [
        Finding("cardiomegaly", {"severity": "mild"}),
        Finding("pleural_effusion", {"side": "left", "severity": "small"}),
        Finding("pleural_effusion", {"side": "right", "severity": "large"}),
        Finding("enteric_tube", {"position": "bronchus"}),
    ]
    assert caption(findings) == (
        "NG tube in bronchus. Large right pleural effusion. Small left pleural effusion. Mild cardiomegaly."
    )
    assert caption([]) == NORMAL_CAPTION
    parsed = parse_caption("Mild cardiomegaly. Something else entirely.  ")
    assert parsed.findings == [Finding("cardiomegaly", {"severity": "mild"})]
    assert parsed.unparsed == ["Something else entirely"]


def test_grounding_answers_hold_the_matching_boxes() -> None:
    right = PlacedFinding(Finding("pleural_effusion", {"side": "right", "severity": "small"}), (0.1, 0.5, 0.45, 0.9))
    left = PlacedFinding(Finding("pleural_effusion", {"side": "left", "severity": "large"}), (0.55, 0.3, 0.9, 0.9))
    tube = PlacedFinding(Finding("enteric_tube", {"position": "stomach"}), (0.4, 0.0, 0.6, 0.8), (0.5, 0.7, 0.6, 0.8))
    placed = [left, right, tube]
    both = GroundingQuery("pleural effusion", "pleural_effusion", ())
    answer = grounding_answer(both, placed)
    assert answer.count("<loc") == 8
    boxes = decode_boxes(answer)
    assert boxes[0][0] < boxes[1][0]  # left to right on the image
    assert box_iou(boxes[0], right.box) > 0.95 and box_iou(boxes[1], left.box) > 0.95
    only_left = GroundingQuery("left pleural effusion", "pleural_effusion", (("side", "left"),))
    assert box_iou(decode_boxes(grounding_answer(only_left, placed))[0], left.box) > 0.95
    tip = GroundingQuery("tip of the NG tube", "enteric_tube", (), tip=True)
    assert box_iou(decode_boxes(grounding_answer(tip, placed))[0], tube.tip_box) > 0.9
    assert grounding_answer(GroundingQuery("pneumothorax", "pneumothorax", ()), placed) == NOT_SEEN
    assert tip.prompt() == "Where is the tip of the NG tube?"


def test_queries_name_what_they_match() -> None:
    rng = np.random.default_rng(3)
    finding = Finding("central_line", {"type": "picc", "side": "left", "tip": "svc"})
    full = query_for(finding, rng, full=True)
    assert full.phrase == "left PICC with tip in the low SVC" and not full.tip
    for _ in range(30):
        query = query_for(finding, rng)
        assert ("type", "picc") in query.attributes  # "PICC" vs "central venous catheter" is never left open
        assert query.matches(PlacedFinding(finding, (0, 0, 1, 1)))


def test_box_iou() -> None:
    assert box_iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert box_iou((0, 0, 0.5, 1), (0.5, 0, 1, 1)) == 0.0
    assert box_iou((0, 0, 1, 1), (0, 0, 0.5, 1)) == pytest.approx(0.5)
