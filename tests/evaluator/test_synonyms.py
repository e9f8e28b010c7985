"""The semantic judge knows radiology synonyms and hypernyms (issue 11, item 8), measured on the labelled
synonym cases (data/synonym_cases.jsonl; `python -m raddiff_evaluator.cases` prints the table).

Floors. tune (192 cases): the lexicon was extended against these, so near-perfect agreement is expected;
>= 0.97 allows five regressions. Every category must keep >= 0.8 on its own, so one family of synonyms
cannot collapse behind a good total. heldout (45 cases, new truth pairs, written after the lexicon and
never tuned on; 42/45 when written): >= 0.85 allows six misses. The judge before this change scored
138/192 (0.719) on tune and 38/45 (0.844) on heldout, so both floors fail on it."""

from __future__ import annotations

from collections import defaultdict

import pytest

from raddiff_evaluator.cases import Judged, accuracy, judge_cases, load_cases, table
from raddiff_evaluator.embedder import SentenceEmbedder
from raddiff_evaluator.findings import offers_alternatives, parse
from raddiff_evaluator.semantic import SemanticJudge
from tests.evaluator.conftest import Evaluator

FLOORS = {"tune": 0.97, "heldout": 0.85}
CATEGORY_FLOOR = 0.8
CATEGORIES = {
    "device",
    "hyperinflation",
    "effusion",
    "cardiomegaly",
    "edema",
    "consolidation",
    "atelectasis",
    "pneumothorax",
    "nodule_mass",
    "side_severity",
    "lobe",
    "negation",
    "set_b",
    "unrelated",
    "fragment",
}


@pytest.fixture(scope="module")
def judged() -> list[Judged]:
    judge = SemanticJudge(SentenceEmbedder())
    judge.load_sync()
    return judge_cases(judge, load_cases())


def test_the_cases_cover_what_the_issue_names() -> None:
    cases = load_cases()
    assert len(cases) >= 80 and len({c.id for c in cases}) == len(cases)
    assert {c.category for c in cases} == CATEGORIES
    assert all(c.label in (0, 1, 2) and c.reason and c.prediction and c.truth_a and c.truth_b for c in cases)
    for split in ("tune", "heldout"):
        assert {c.label for c in load_cases(split)} == {0, 1, 2}
    # Held-out truth pairs are ones the tune split never uses.
    pairs = {split: {(c.truth_a, c.truth_b) for c in load_cases(split)} for split in ("tune", "heldout")}
    assert not pairs["tune"] & pairs["heldout"]
    text = " ".join(c.prediction for c in cases).lower()
    for word in ("pacemaker", "icd", "lead", "hyperexpanded", "ett", "ng tube", "cvc", "picc", "rul", "tip", "spine"):
        assert word in text, word


@pytest.mark.parametrize("split", ["tune", "heldout"])
def test_agreement_with_the_labels(judged: list[Judged], split: str) -> None:
    mine = [j for j in judged if j.case.split == split]
    misses = "\n".join(
        f"{j.case.id} [{j.case.category}] label {j.case.label} judged {j.score}: {j.case.prediction!r} "
        f"vs A {j.case.truth_a!r}: {j.rationale}"
        for j in mine
        if not j.agrees
    )
    print("\n" + table(mine) + ("\n" + misses if misses else ""))
    assert accuracy(mine) >= FLOORS[split], misses
    if split == "tune":
        by_category: dict[str, list[Judged]] = defaultdict(list)
        for j in mine:
            by_category[j.case.category].append(j)
        low = {c: round(accuracy(js), 3) for c, js in by_category.items() if accuracy(js) < CATEGORY_FLOOR}
        assert not low, misses


IMPLANTED = ("implanted cardiac device", "no implanted device")
HYPERINFLATED = ("hyperinflated lungs", "normal lung volumes")


@pytest.mark.parametrize(
    ("prediction", "truth", "score"),
    [
        # The defects issue 11 names: each scored 0 before.
        ("pacemaker", IMPLANTED, 2),
        ("ICD", IMPLANTED, 2),
        ("lead", IMPLANTED, 1),  # part of the device, not the device
        ("hyperexpanded", HYPERINFLATED, 2),
        ("hyperexpanded lungs", HYPERINFLATED, 2),
        ("emphysema", HYPERINFLATED, 1),
        ("flattened diaphragms", HYPERINFLATED, 1),
        # The hypernym runs one way: the category for a kind is broader, and denying a kind denies too little.
        ("implanted cardiac device", ("pacemaker", "no pacemaker"), 1),
        ("no pacemaker", ("no implanted device", "implanted cardiac device"), 1),
        # Synonyms do not override negation or B.
        ("no pacemaker", IMPLANTED, 0),
        ("normal lung volumes", HYPERINFLATED, 0),
        ("low lung volumes", ("hyperinflated lungs", "low lung volumes"), 0),
        ("heart size", ("cardiomegaly", "normal heart size"), 0),
    ],
)
async def test_the_named_defects_through_the_service(
    evaluator: Evaluator, prediction: str, truth: tuple[str, str], score: int
) -> None:
    response = await evaluator.judge([prediction], *truth, backend="semantic")
    assert list(response.scores) == [score], response.rationales[0]


def test_alternatives_in_a_truth_are_read_as_any_of() -> None:
    for phrase, any_of in [
        ("pneumonia or consolidation", True),
        ("pulmonary edema or vascular congestion", True),
        ("cardiomegaly with pulmonary edema", False),  # both needed
        ("no consolidation, effusion or pneumothorax", False),  # a denial needs every item
        ("pleural effusion", False),
    ]:
        assert offers_alternatives(phrase, parse(phrase)) is any_of, phrase
