"""AUROC as Mann-Whitney U with ties counted one half, against values worked out by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from raddiff_orchestrator.agent.auroc import auroc, auroc_rows, average_ranks


def pairwise_auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The definition, pair by pair: P(positive > negative) + P(tie) / 2."""
    pos, neg = scores[positive], scores[~positive]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_average_ranks_share_the_mean_of_tied_ranks() -> None:
    # sorted: 1 (rank 1), 2 (rank 2), 3, 3 (ranks 3 and 4 -> 3.5 each)
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    # three-way tie at the bottom spans ranks 1..3 -> 2
    assert average_ranks(np.array([0.0, 0.0, 5.0, 0.0])).tolist() == [2.0, 2.0, 4.0, 2.0]


def test_hand_computed_with_ties() -> None:
    # A = [0.8, 0.5, 0.5], B = [0.5, 0.2]. Pairs: 0.8 beats both (2); each 0.5 ties 0.5 (0.5)
    # and beats 0.2 (1), twice -> 3. Total 5 of 6 pairs.
    scores = np.array([0.8, 0.5, 0.5, 0.5, 0.2])
    positive = np.array([True, True, True, False, False])
    assert auroc(scores, positive) == pytest.approx(5 / 6)


def test_second_hand_computed_case() -> None:
    # A = [1, 2], B = [2, 3]: (1,2)=0, (1,3)=0, (2,2)=0.5, (2,3)=0 -> 0.5 / 4
    assert auroc(np.array([1.0, 2.0, 2.0, 3.0]), np.array([True, True, False, False])) == pytest.approx(0.125)


def test_extremes() -> None:
    positive = np.array([True, True, False, False])
    assert auroc(np.array([0.9, 0.8, 0.1, 0.2]), positive) == 1.0
    assert auroc(np.array([0.1, 0.2, 0.9, 0.8]), positive) == 0.0
    assert auroc(np.array([0.3, 0.3, 0.3, 0.3]), positive) == 0.5


def test_agrees_with_the_pairwise_definition_on_heavily_tied_data() -> None:
    rng = np.random.default_rng(7)
    for _ in range(25):
        n = int(rng.integers(3, 40))
        scores = rng.integers(0, 4, n).astype(float)  # few distinct values: many ties
        positive = rng.random(n) < 0.5
        if positive.all() or not positive.any():
            continue
        assert auroc(scores, positive) == pytest.approx(pairwise_auroc(scores, positive))


def test_rows_are_scored_independently() -> None:
    positive = np.array([True, False, False])
    matrix = np.array([[3.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 2.0, 1.0]])
    # row 3: A=2 vs B=[2, 1] -> 0.5 + 1 = 1.5 of 2
    assert auroc_rows(matrix, positive).tolist() == pytest.approx([1.0, 0.0, 0.75])


def test_refuses_what_has_no_answer() -> None:
    with pytest.raises(ValueError, match="one positive and one negative"):
        auroc(np.array([0.1, 0.2]), np.array([True, True]))
    with pytest.raises(ValueError, match="finite"):
        auroc(np.array([0.1, np.nan]), np.array([True, False]))
    with pytest.raises(ValueError, match="do not match"):
        auroc_rows(np.zeros((2, 3)), np.array([True, False]))
