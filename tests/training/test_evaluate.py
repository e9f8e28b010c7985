"""The model cards' figures, computed on cases whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from raddiff_kit.grounding import encode_box
from raddiff_synth import Finding
from raddiff_synth.render import PlacedFinding
from raddiff_training.captions import NOT_SEEN, GroundingQuery, caption
from raddiff_training.evaluate import (
    GroundingCase,
    auroc,
    clip_row_specs,
    clip_rows,
    clip_summary,
    score_captions,
    score_grounding,
)
from raddiff_training.world import ImageSet

RIGHT = Finding("pleural_effusion", {"side": "right", "severity": "small"})
LEFT = Finding("pleural_effusion", {"side": "left", "severity": "large"})
HEART = Finding("cardiomegaly", {"severity": "mild"})


def image_set(findings: list[list[Finding]]) -> ImageSet:
    n = len(findings)
    placed = [
        tuple(
            PlacedFinding(f, (0.1 + 0.5 * (f.get("side") == "left"), 0.4, 0.45 + 0.5 * (f.get("side") == "left"), 0.9))
            for f in fs
        )
        for fs in findings
    ]
    blank = np.zeros((n, 8, 8), dtype=np.uint8)
    return ImageSet(np.arange(n), ["PA"] * n, placed, blank, blank)


def test_auroc() -> None:
    labels = np.array([True, True, False, False])
    assert auroc(np.array([0.9, 0.8, 0.1, 0.2]), labels) == 1.0
    assert auroc(np.array([0.1, 0.2, 0.9, 0.8]), labels) == 0.0
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5]), labels) == 0.5
    assert auroc(np.array([0.9, 0.2, 0.5, 0.1]), labels) == 0.75
    with pytest.raises(ValueError, match="one positive and one negative"):
        auroc(np.array([0.1, 0.2]), np.array([True, True]))


def test_clip_rows_score_the_texts_similarity() -> None:
    # 12 images: 4 right effusions, 4 left ones, 4 with a big heart only.
    images = image_set([[RIGHT]] * 4 + [[LEFT]] * 4 + [[HEART]] * 4)
    texts: list[str] = sorted({spec.text for spec in clip_row_specs()})
    axis = {text: i for i, text in enumerate(texts)}

    def embed_texts(batch: list[str]) -> np.ndarray:
        return np.eye(len(texts))[[axis[t] for t in batch]]

    # An ideal model: similar to "pleural effusion" with an effusion, to "right pleural effusion" with a right one.
    vectors = np.zeros((12, len(texts)))
    vectors[:8, axis["pleural effusion"]] = 1.0
    vectors[:4, axis["right pleural effusion"]] = 1.0
    vectors[8:, axis["no pleural effusion"]] = 1.0
    rows = {row.name: row for row in clip_rows(vectors, embed_texts, images)}
    assert rows["pleural effusion"].auroc == 1.0
    assert (rows["pleural effusion"].positives, rows["pleural effusion"].negatives) == (8, 4)
    assert rows["pleural_effusion.side=right"].auroc == 1.0
    assert (rows["pleural_effusion.side=right"].positives, rows["pleural_effusion.side=right"].negatives) == (4, 4)
    assert rows["pleural_effusion.side=left"].auroc == 0.5  # the model never learnt "left"
    negation = rows["pleural_effusion"]  # "no pleural effusion": images without one are the positives
    assert negation.group == "negation" and negation.auroc == 1.0 and negation.positives == 4
    assert rows["cardiomegaly"].auroc == 0.5  # no signal: all similarities equal
    assert "pneumothorax" not in rows  # no image has one: no row
    summary = clip_summary(list(rows.values()))
    assert summary["pleural_effusion.side_mean_auroc"] == 0.75


def test_caption_scores_count_kinds_and_full_labels() -> None:
    truths = [[RIGHT], [LEFT, HEART], [], [HEART]]
    perfect = score_captions([caption(t) for t in truths], truths)
    assert perfect.kind["pleural_effusion"] == {"precision": 1.0, "recall": 1.0, "support": 2}
    assert perfect.label["cardiomegaly"]["recall"] == 1.0 and perfect.normal_accuracy == 1.0
    said = ["Small left pleural effusion.", "Large left pleural effusion.", "Mild cardiomegaly.", "Nonsense."]
    scores = score_captions(said, truths)
    # Effusion named in both effusion images (one with the wrong side): kind right, one label wrong.
    assert scores.kind["pleural_effusion"] == {"precision": 1.0, "recall": 1.0, "support": 2}
    assert scores.label["pleural_effusion"]["precision"] == 0.5 and scores.label["pleural_effusion"]["recall"] == 0.5
    # Cardiomegaly: said once in a normal image, missed in two.
    assert scores.kind["cardiomegaly"] == {"precision": 0.0, "recall": 0.0, "support": 2}
    assert scores.normal_accuracy == 0.0 and scores.unparsed_sentences == 1


def test_grounding_scores() -> None:
    images = image_set([[RIGHT], [LEFT]])
    effusion = GroundingQuery("pleural effusion", "pleural_effusion", ())
    pneumothorax = GroundingQuery("pneumothorax", "pneumothorax", ())
    cases = [
        GroundingCase(0, effusion, True),
        GroundingCase(1, effusion, True),
        GroundingCase(0, pneumothorax, False),
        GroundingCase(1, pneumothorax, False),
    ]
    exact = encode_box(*images.findings[0][0].box)
    table, not_seen = score_grounding(cases, [exact, "no box here", NOT_SEEN, exact], images)
    effusion_row = table["pleural_effusion"]
    assert effusion_row["queries"] == 2 and effusion_row["iou_at_0_5"] == 0.5
    assert 0.48 < effusion_row["mean_iou"] <= 0.5  # one near-exact box (bins), one answer without a box
    assert not_seen == 0.5
