"""The ranker's statistics on known numbers, with scipy as the reference where it has the function."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from raddiff_orchestrator.agent.auroc import auroc, auroc_rows
from raddiff_orchestrator.agent.statistics import (
    benjamini_hochberg,
    bootstrap_auroc_ci,
    effect_sizes,
    finding_stats,
    histogram,
    permutation_p_values,
    softmax_against_negation,
    welch_t,
)

RNG = np.random.default_rng(7)


def test_welch_t_matches_scipy() -> None:
    a = RNG.normal(0.3, 1.0, size=(4, 30))
    b = RNG.normal(0.0, 2.0, size=(4, 45))
    t, p = welch_t(a, b)
    ref = stats.ttest_ind(a, b, axis=1, equal_var=False)
    assert t == pytest.approx(ref.statistic, rel=1e-10)
    assert p == pytest.approx(ref.pvalue, rel=1e-8)


def test_welch_t_without_variance_is_defined() -> None:
    t, p = welch_t(np.array([[1.0, 1.0, 1.0]]), np.array([[0.0, 0.0]]))
    assert t[0] == np.inf and p[0] == 0.0
    t, p = welch_t(np.array([[2.0, 2.0]]), np.array([[2.0, 2.0]]))
    assert t[0] == 0.0 and p[0] == 1.0
    t, p = welch_t(np.array([[2.0]]), np.array([[1.0, 3.0]]))  # one image: no variance to estimate
    assert t[0] == 0.0 and p[0] == 1.0


def test_benjamini_hochberg_matches_scipy_and_a_hand_example() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5, 0.2])
    assert benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p, method="bh"))
    # by hand: sorted 0.005 0.01 0.03 0.04 0.2 0.5 -> x 6/rank -> 0.03 0.03 0.06 0.06 0.24 0.5, then cumulative min
    assert benjamini_hochberg(np.array([0.04, 0.005, 0.5])) == pytest.approx([0.06, 0.015, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        benjamini_hochberg(np.array([0.1, 1.5]))


def test_exact_permutation_p_value_on_a_tiny_case() -> None:
    # A = {3, 4}, B = {1, 2}: of the 6 ways to label 2 of 4 images as A, only the observed one gives AUROC 1.
    scores = np.array([[3.0, 4.0, 1.0, 2.0]])
    positive = np.array([True, True, False, False])
    p = permutation_p_values(scores, positive, permutations=20_000, seed=1)
    assert p[0] == pytest.approx(1 / 6, abs=0.01)
    # against scipy's own permutation test of the rank-sum statistic
    ref = stats.permutation_test(
        ([3.0, 4.0], [1.0, 2.0]), lambda x, y: np.mean(x) - np.mean(y), alternative="greater", n_resamples=np.inf
    )
    assert p[0] == pytest.approx(ref.pvalue, abs=0.01)


def test_permutation_p_values_are_calibrated_and_find_real_differences() -> None:
    null = RNG.normal(size=(200, 40))  # 200 findings with no difference between the 20 A and 20 B images
    positive = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    p = permutation_p_values(null, positive, permutations=400, seed=3)
    assert 0.03 < (p < 0.05).mean() < 0.08  # about 5% below 0.05 under the null
    assert p.min() >= 1 / 401
    shifted = null[:1] + np.r_[np.full(20, 2.0), np.zeros(20)]
    assert permutation_p_values(shifted, positive, permutations=400, seed=3)[0] == pytest.approx(1 / 401)


def test_bootstrap_interval_agrees_with_a_direct_resampling() -> None:
    a = RNG.normal(0.5, 1, size=25)
    b = RNG.normal(0.0, 1, size=30)
    low, high = bootstrap_auroc_ci(a[None], b[None], resamples=2000, level=0.9, seed=5)
    # the same idea the slow way: resample each set, recompute the AUROC
    rng = np.random.default_rng(11)
    values = []
    for _ in range(2000):
        ra, rb = rng.choice(a, a.size), rng.choice(b, b.size)
        values.append(auroc(np.r_[ra, rb], np.r_[np.ones(a.size, bool), np.zeros(b.size, bool)]))
    ref_low, ref_high = np.quantile(values, [0.05, 0.95])
    assert low[0] == pytest.approx(ref_low, abs=0.03) and high[0] == pytest.approx(ref_high, abs=0.03)
    point = auroc(np.r_[a, b], np.r_[np.ones(25, bool), np.zeros(30, bool)])
    assert low[0] < point < high[0]


def test_bootstrap_weighted_auroc_is_exact_with_ties() -> None:
    # With every image drawn exactly once the weighted formula must give the plain AUROC, ties included.
    a = np.array([[1.0, 2.0, 2.0, 3.0]])
    b = np.array([[2.0, 0.0, 2.0]])
    expected = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in itertools.product(a[0], b[0])) / 12
    low, high = bootstrap_auroc_ci(a, b, resamples=3000, level=0.999, seed=0)
    assert low[0] <= expected <= high[0]
    both = np.r_[a[0], b[0]]
    assert auroc(both, np.r_[np.ones(4, bool), np.zeros(3, bool)]) == pytest.approx(expected)


def test_softmax_against_negation_is_chexzeros_two_way_softmax() -> None:
    positive, negative = np.array([0.3, 0.1]), np.array([0.1, 0.3])
    expected = np.exp(positive) / (np.exp(positive) + np.exp(negative))
    assert softmax_against_negation(positive, negative) == pytest.approx(expected)


def test_finding_stats_put_it_together() -> None:
    scores = np.r_[RNG.normal(1, 1, 30), RNG.normal(0, 1, 30)][None]
    positive = np.r_[np.ones(30, bool), np.zeros(30, bool)]
    (found,) = finding_stats(scores, positive, np.array([0.002]), resamples=500, level=0.95, seed=0)
    assert found.auroc == pytest.approx(auroc(scores[0], positive))
    assert found.ci_low < found.auroc < found.ci_high and found.p_value == 0.002
    ref = stats.ttest_ind(scores[0, :30], scores[0, 30:], equal_var=False)
    assert found.t_statistic == pytest.approx(ref.statistic) and found.t_p_value == pytest.approx(ref.pvalue)
    assert found.mean_a == pytest.approx(scores[0, :30].mean())


def test_histogram_shares_its_edges() -> None:
    edges, a, b = histogram(np.array([0.0, 0.5, 1.0]), np.array([0.25, 0.25]), bins=4)
    assert edges == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert a == [1, 0, 1, 1] and b == [0, 2, 0, 0]


def test_effect_size_is_cohens_d_with_the_pooled_standard_deviation() -> None:
    a, b = np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0, 4.0])
    pooled = np.sqrt((a.var(ddof=1) * 2 + b.var(ddof=1) * 3) / 5)
    b_above = np.array([1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 9.0])  # A's three below B's four
    scores = np.stack([np.r_[a, b], b_above, np.full(7, 0.5), np.r_[np.ones(3), np.zeros(4)]])
    positive = np.r_[np.ones(3, bool), np.zeros(4, bool)]
    d = effect_sizes(scores, positive)
    assert d[0] == pytest.approx((a.mean() - b.mean()) / pooled)
    assert d[1] < 0  # B above A
    assert d[2] == 0.0  # no spread, equal means
    assert d[3] == np.inf  # no spread, A above B


def test_effect_size_orders_findings_that_all_reach_auroc_one() -> None:
    rng = np.random.default_rng(0)
    positive = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    narrow = np.r_[rng.normal(1.0, 0.1, 50), rng.normal(0.0, 0.1, 50)]  # d about 10
    wide = np.r_[rng.normal(0.5, 0.1, 50), rng.normal(0.0, 0.1, 50)]  # d about 5, still no overlap
    scores = np.stack([wide, narrow])
    assert (auroc_rows(scores, positive) == 1.0).all()
    d = effect_sizes(scores, positive)
    assert d[1] > d[0] > 3
