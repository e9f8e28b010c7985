"""How the semantic judge reads radiology phrases (findings.parse), and the scores that follow from it."""

from __future__ import annotations

import pytest

from raddiff_evaluator.findings import normalise, parse
from tests.evaluator.conftest import Evaluator


def _read(phrase: str) -> list[tuple[str | None, bool]]:
    return [(m.concept, m.negated) for m in parse(phrase)]


def test_abbreviations_and_hyphens_are_normalised() -> None:
    assert normalise("NG-tube tip in the R. atrium; ETT 4 cm above the carina") == (
        "nasogastric tube tip in the r atrium; endotracheal tube 4 cm above the carina"
    )
    assert normalise("RLL consolidation, right-sided") == "right lower lobe consolidation, right sided"


def test_negation_runs_through_a_list_and_stops_at_a_new_statement() -> None:
    assert _read("No focal consolidation, pleural effusion, or pneumothorax") == [
        ("consolidation", True),
        ("pleural_effusion", True),
        ("pneumothorax", True),
    ]
    # No "or": the comma starts a new statement, not a list of denials.
    assert _read("no pleural effusion, moderate cardiomegaly") == [("pleural_effusion", True), ("cardiomegaly", False)]
    assert _read("no pneumothorax but small left pleural effusion") == [
        ("pneumothorax", True),
        ("pleural_effusion", False),
    ]
    assert _read("the right pneumothorax has resolved") == [("pneumothorax", True)]
    assert _read("pleural effusions are less common") == [("pleural_effusion", True)]


def test_phrases_that_state_absence_without_a_negation_word() -> None:
    assert _read("normal cardiomediastinal silhouette") == [("cardiomegaly", True)]
    assert _read("heart size and pulmonary vascularity within normal limits") == [("cardiomegaly", True)]
    assert _read("sharp costophrenic angles") == [("pleural_effusion", True)]
    assert _read("lungs are clear") == [("lung_opacity", True)]


@pytest.mark.parametrize(
    ("phrase", "laterality", "severity", "zones", "position"),
    [
        ("moderate right-sided pleural effusion", "right", {"moderate"}, set(), None),
        ("bibasilar atelectasis", "bilateral", set(), {"lower"}, None),
        ("pneumothorax at the left apex", "left", set(), {"apical"}, None),
        # Cardiac chambers are positions, not sides.
        ("PICC tip in the right atrium", None, set(), set(), "right_atrium"),
        ("enteric tube tip below the left hemidiaphragm", None, set(), set(), "stomach"),
        ("ETT in the right mainstem bronchus", "right", set(), set(), "bronchus"),
        # The last position named is where a device ends.
        ("NG tube through the esophagus into the stomach", None, set(), set(), "stomach"),
        # Only devices have positions: free air under the diaphragm is not a tube in the stomach.
        ("free air under the diaphragm", None, set(), set(), None),
    ],
)
def test_attributes(phrase: str, laterality: str | None, severity: set, zones: set, position: str | None) -> None:
    [mention] = parse(phrase)
    got = mention.attributes
    assert (got.laterality, set(got.severity), set(got.zones), got.position) == (laterality, severity, zones, position)


def test_leftmost_longest_match_picks_the_specific_finding() -> None:
    assert _read("pericardial effusion") == [("pericardial_effusion", False)]
    assert _read("nodular opacity in the right upper lung") == [("nodule", False)]
    assert _read("subcutaneous emphysema") == [("subcutaneous_emphysema", False)]
    assert _read("massive effusion") == [("pleural_effusion", False)]  # "massive" is no mass
    assert _read("hiatal hernia") == [(None, False)]  # outside the lexicon: left to the embedder


@pytest.mark.parametrize(
    ("prediction", "truth_a", "truth_b", "score"),
    [
        # Denying a broader category denies A's finding; denying a narrower one does not deny A's.
        ("clear lungs", "no consolidation", "left lower lobe consolidation", 2),
        ("no focal consolidation", "clear lungs", "bibasilar airspace disease", 1),
        # A denial narrowed by severity leaves B's small effusions undenied.
        ("no large pleural effusion", "no pleural effusion", "small bilateral pleural effusions", 1),
        # A list of denials that includes A's: the direct mention decides.
        ("no consolidation, atelectasis or pneumothorax", "no atelectasis", "bibasilar atelectasis", 2),
        ("no consolidation, effusion or pneumothorax", "moderate right pleural effusion", "no pleural effusion", 0),
        ("right effusion less frequent in group A", "moderate right pleural effusion", "no pleural effusion", 0),
        # Part of the truth's words is broader, however close the embeddings are.
        ("emphysema", "subcutaneous emphysema", "no subcutaneous emphysema", 0),
        ("hernia", "hiatal hernia", "no hiatal hernia", 1),
        ("a normal chest radiograph", "no pleural effusion", "moderate right pleural effusion", 1),
        ("abnormality", "cardiomegaly", "normal heart size", 0),
    ],
)
async def test_scores_that_follow_from_the_reading(
    evaluator: Evaluator, prediction: str, truth_a: str, truth_b: str, score: int
) -> None:
    response = await evaluator.judge([prediction], truth_a, truth_b, backend="semantic")
    assert list(response.scores) == [score], response.rationales[0]
