"""The specificity test: a finding is supported only when its text tracks the difference more than texts about
other things do, and a newcomer outranks an established finding only on images no proposal was read from."""

from __future__ import annotations

import numpy as np
import pytest

from raddiff_orchestrator.agent.specificity import ShiftModel, default_bank, specific_p_value, verdict
from raddiff_orchestrator.agent.statistics import honest_intervals, wilson_interval
from raddiff_orchestrator.agent.steps.ranking import ranked, settle_newcomers
from raddiff_orchestrator.agent.steps.state import Scored


def test_a_finding_is_never_its_own_control() -> None:
    bank = default_bank()
    for finding, concept in [
        ("moderate right pleural effusion", "pleural_effusion"),
        ("endotracheal tube in the right main bronchus", "endotracheal_tube"),
        ("left chest wall pacemaker", "cardiac_device"),
        ("ICD", "cardiac_device"),
        ("hyperexpanded lungs", "hyperinflation"),
    ]:
        assert concept in bank.concepts_of(finding), finding
        controls = {bank.controls[i].concept for i in bank.controls_for(finding)}
        assert concept not in controls and len(controls) >= 10, finding


def test_a_finding_of_no_known_concept_loses_the_controls_sharing_its_words() -> None:
    bank = default_bank()
    assert not bank.concepts_of("tube")
    texts = [bank.controls[i].text for i in bank.controls_for("tube")]
    assert texts and not any("tube" in t for t in texts)
    # side and severity words name no thing: sharing only them keeps a control
    assert any("right" in t for t in texts)


def _world(seed: int = 0, n: int = 120, k: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images whose every text score rides a common shift (A higher), plus one direction only the truth follows."""
    rng = np.random.default_rng(seed)
    positive = np.r_[np.ones(n // 2, bool), np.zeros(n // 2, bool)]
    shift = positive * 1.0 + rng.normal(0, 0.3, n)  # what separates the sets in embedding space
    own = positive * 1.5 + rng.normal(0, 0.3, n)  # what only the true finding sees
    loadings = rng.uniform(0.5, 1.5, k)
    controls = loadings[:, None] * shift[None, :] + rng.normal(0, 0.3, (k, n))
    truth = 1.0 * shift + own
    rider = 1.0 * shift + rng.normal(0, 0.3, n)
    return controls, positive, truth, rider


def test_the_text_that_explains_the_difference_is_specific_and_the_rider_is_not() -> None:
    controls, positive, truth, rider = _world()
    model = ShiftModel(controls, positive)
    idx = np.arange(controls.shape[0])
    null = model.null_effects(idx)
    assert null.shape == (controls.shape[0],)
    truth_d = float(
        np.mean(model.residuals(truth, idx)[0][positive]) - np.mean(model.residuals(truth, idx)[0][~positive])
    )
    rider_res = model.residuals(rider, idx)[0]
    rider_d = float(rider_res[positive].mean() - rider_res[~positive].mean())
    assert truth_d > rider_d
    from raddiff_orchestrator.agent.statistics import effect_sizes

    p_truth = specific_p_value(float(effect_sizes(model.residuals(truth, idx), positive)[0]), null)
    p_rider = specific_p_value(float(effect_sizes(model.residuals(rider, idx), positive)[0]), null)
    assert p_truth < 0.001 < 0.05 < p_rider


def test_residuals_are_centred_and_orthogonal_to_the_shift_direction() -> None:
    controls, positive, truth, _ = _world(1)
    model = ShiftModel(controls, positive)
    idx = np.arange(controls.shape[0])
    res = model.residuals(truth, idx)[0]
    assert abs(res.mean()) < 1e-9
    assert abs(res @ model.direction(idx)) < 1e-9


def test_specific_p_value_edges() -> None:
    assert specific_p_value(3.0, np.array([0.1, 0.2])) == 1.0  # too few controls: never supported
    assert specific_p_value(3.0, np.full(10, 0.5)) == 0.0
    assert specific_p_value(0.1, np.full(10, 0.5)) == 1.0
    null = np.random.default_rng(0).normal(0, 1, 200)
    assert specific_p_value(0.0, null) == pytest.approx(0.5, abs=0.06)
    assert specific_p_value(4.0, null) < 0.001


def test_the_verdict_needs_both_the_set_difference_and_the_specificity() -> None:
    assert verdict(0.9, 0.001, 0.8, 0.01, 0.05) == (
        True,
        "supported: AUROC 0.900 (q 0.001), specific AUROC 0.800 (q 0.01)",
    )
    ok, why = verdict(1.0, 0.001, 0.51, 0.62, 0.05)
    assert not ok and why.startswith("moves with every text: specific AUROC 0.510, q 0.62")
    ok, why = verdict(0.55, 0.3, 0.9, 0.001, 0.05)
    assert not ok and why.startswith("not more common in A: AUROC 0.550, q 0.3")
    assert not verdict(0.4, 0.001, 0.9, 0.001, 0.05)[0]  # more common in B


def test_a_perfect_separation_gets_an_honest_interval() -> None:
    low, high = honest_intervals(np.array([1.0, 0.8]), np.array([1.0, 0.7]), np.array([1.0, 0.9]), 150, 150, 0.95)
    assert high[0] == 1.0 and 0.95 < low[0] < 0.99  # Wilson over 150 comparisons, not [1.000, 1.000]
    assert (low[1], high[1]) == (0.7, 0.9)  # a bootstrap interval with width is kept
    assert wilson_interval(1.0, 30, 0.95)[0] < wilson_interval(1.0, 150, 0.95)[0]


def _scored(name: str, iteration: int, scores: np.ndarray, auroc: float) -> Scored:
    return Scored(name, scores, auroc, 0.0, None, iteration)


def test_a_newcomer_overtakes_only_on_images_no_proposal_was_read_from() -> None:
    positive = np.r_[np.ones(6, bool), np.zeros(6, bool)]
    unseen = np.array([False, False, False, True, True, True] * 2)
    # the established finding separates the unseen images; the sibling only the images it was read from
    established = _scored("moderate right pneumothorax", 1, np.r_[0, 0, 0, 0.6, 0.4, 0.1, 0, 0, 0, 0.5, 0, 0], 0.75)
    sibling = _scored("small left pneumothorax", 2, np.r_[1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0.0], 0.75)
    order = ranked([sibling, established], "auroc")
    assert [s.finding for s in settle_newcomers(order, 2, unseen, positive, "auroc")] == [
        "moderate right pneumothorax",
        "small left pneumothorax",
    ]
    # a refinement that also wins on the unseen images keeps its place above
    refinement = _scored("large right pneumothorax", 2, np.r_[1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0.0], 0.9)
    settled = settle_newcomers(ranked([established, refinement], "auroc"), 2, unseen, positive, "auroc")
    assert [s.finding for s in settled] == ["large right pneumothorax", "moderate right pneumothorax"]
    # with no unseen images a newcomer never overtakes
    settled = settle_newcomers([refinement, established], 2, np.zeros(12, bool), positive, "auroc")
    assert [s.finding for s in settled] == ["moderate right pneumothorax", "large right pneumothorax"]


def test_ties_are_broken_by_evidence_then_text_never_by_proposal_order() -> None:
    a = Scored("b finding", np.zeros(2), 1.0, 2.0, None, 1)
    b = Scored("a finding", np.zeros(2), 1.0, 3.0, None, 1)
    c = Scored("c finding", np.zeros(2), 1.0, 3.0, None, 1)
    for order in ([a, b, c], [c, b, a], [b, a, c]):
        assert [s.finding for s in ranked(order, "auroc")] == ["a finding", "c finding", "b finding"]
