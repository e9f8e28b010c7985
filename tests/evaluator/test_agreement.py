"""The semantic judge against the hand-labelled set, through the running service.

Floors. tune: the lexicon and rules were written against this split, so anything under near-perfect
agreement is a regression (>= 0.95 agreement, kappa >= 0.90). heldout: never tuned on, small (33
cases: one disagreement costs 3 points); it must stay within Landis and Koch's "almost perfect"
band (kappa > 0.80) with agreement >= 0.85, which allows about four disagreements.
Run with -s to see the figures."""

from __future__ import annotations

import pytest

from raddiff_evaluator.agreement import cohen_kappa, exact_agreement, load_cases, report
from tests.evaluator.conftest import Evaluator

FLOORS = {"tune": (0.95, 0.90), "heldout": (0.85, 0.80)}


def test_cohen_kappa_arithmetic() -> None:
    # observed 3/4; chance (1*1 + 1*2 + 2*1) / 16 = 5/16; kappa = (0.75 - 0.3125) / 0.6875
    assert cohen_kappa([0, 1, 2, 2], [0, 1, 2, 1]) == pytest.approx(0.636363, abs=1e-6)
    assert cohen_kappa([0, 1, 2], [0, 1, 2]) == 1.0
    assert cohen_kappa([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    assert exact_agreement([0, 1, 2, 2], [0, 1, 2, 1]) == 0.75


def test_the_labelled_set_is_what_its_readme_says() -> None:
    cases = load_cases()
    assert len(cases) >= 40 and len({c.id for c in cases}) == len(cases)
    assert {c.split for c in cases} == {"tune", "heldout"}
    assert all(c.label in (0, 1, 2) and c.reason and c.prediction and c.truth_a and c.truth_b for c in cases)
    # Held-out truth pairs are ones the tune split never uses.
    pairs = {split: {(c.truth_a, c.truth_b) for c in load_cases(split)} for split in ("tune", "heldout")}
    assert not pairs["tune"] & pairs["heldout"]
    # Every score occurs in each split, so kappa is meaningful.
    for split in ("tune", "heldout"):
        assert {c.label for c in load_cases(split)} == {0, 1, 2}
    text = " ".join(c.truth_a + " " + c.prediction for c in cases).lower()
    for topic in (
        "effusion",
        "cardiomegaly",
        "consolidation",
        "atelectasis",
        "nodule",
        "mass",
        "pneumothorax",
        "edema",
        "et tube",
        "ng tube",
        "picc",
        "pacemaker",
    ):
        assert topic in text, topic


@pytest.mark.parametrize("split", ["tune", "heldout"])
async def test_semantic_judge_agrees_with_the_labels(evaluator: Evaluator, split: str) -> None:
    cases = load_cases(split)
    responses = [await evaluator.judge([c.prediction], c.truth_a, c.truth_b, backend="semantic") for c in cases]
    result = report(split, cases, [r.scores[0] for r in responses], [r.rationales[0] for r in responses])
    print("\n" + result.summary())
    for case, score, why in result.disagreements:
        print(f"  {case.id} labelled {case.label}, judged {score}: {case.prediction!r} vs A {case.truth_a!r}: {why}")
    min_agreement, min_kappa = FLOORS[split]
    assert result.agreement >= min_agreement, result.summary()
    assert result.kappa >= min_kappa, result.summary()
