"""The ranker's statistics, per finding, on the scores of A's and B's images (A the positive class).

Everything is vectorised over findings and resamples, so a run of 30 findings on 2 x 5,000 images
takes well under a second: the permutation test reuses each finding's ranks (a permutation moves
labels, not scores) and the bootstrap reuses each finding's sorted B scores (a resample only
re-weights them). numpy and scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

from raddiff_orchestrator.agent.auroc import auroc_rows, average_ranks

_CHUNK_CELLS = 4_000_000  # resamples x images per block: about 32 MB of float64 at a time


@dataclass(frozen=True)
class FindingStats:
    auroc: float
    ci_low: float
    ci_high: float
    p_value: float  # permutation, one-sided (A > B)
    t_statistic: float  # Welch, A minus B
    t_p_value: float  # two-sided
    mean_a: float
    mean_b: float


def welch_t(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welch's t (A minus B) and its two-sided p-value per row of (findings, n) score matrices.

    Rows with no variance on either side get t = 0, p = 1 when the means agree and +-inf, p = 0 otherwise;
    with fewer than two scores on a side there is no variance to estimate, and t = 0, p = 1.
    """
    a, b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    n_a, n_b = a.shape[1], b.shape[1]
    if n_a < 2 or n_b < 2:
        return np.zeros(a.shape[0]), np.ones(a.shape[0])
    diff = a.mean(1) - b.mean(1)
    va, vb = a.var(1, ddof=1) / n_a, b.var(1, ddof=1) / n_b
    se = np.sqrt(va + vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
        df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    df = np.where(np.isfinite(df), df, n_a + n_b - 2)
    p = np.where(np.isinf(t), 0.0, 2 * stats.t.sf(np.abs(np.nan_to_num(t, posinf=0, neginf=0)), df))
    return t, p


def effect_sizes(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Cohen's d of each row of a (rows, n) score matrix, A minus B, over the pooled standard deviation.

    Unlike the empirical AUROC it keeps growing once A and B no longer overlap (under a binormal model
    AUROC = Phi(d / sqrt 2)), so it orders findings that all separate the sets perfectly. Rows with no
    spread get 0 when the means agree and +-inf otherwise.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    a, b = scores[:, positive], scores[:, ~positive]
    diff = a.mean(1) - b.mean(1)
    dof = max(a.shape[1] + b.shape[1] - 2, 1)
    pooled = np.sqrt((a.var(1) * a.shape[1] + b.var(1) * b.shape[1]) / dof)
    with np.errstate(divide="ignore", invalid="ignore"):
        spreadless = np.where(diff == 0, 0.0, np.sign(diff) * np.inf)
        return np.where(pooled > 0, diff / np.where(pooled > 0, pooled, 1.0), spreadless)


def permutation_p_values(scores: np.ndarray, positive: np.ndarray, permutations: int, seed: int) -> np.ndarray:
    """One-sided p-value of each row's AUROC (A above B) under random relabelling of the images.

    p = (1 + #{permuted AUROC >= observed}) / (1 + permutations), never 0. The same permutations are
    used for every row, so rows are compared on equal terms.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n = positive.shape[0]
    n_pos = int(positive.sum())
    ranks = np.stack([average_ranks(row) for row in scores])  # (rows, n)
    observed = ranks[:, positive].sum(1)
    rng = np.random.default_rng(seed)
    exceed = np.zeros(scores.shape[0], dtype=np.int64)
    block = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < permutations:
        size = min(block, permutations - done)
        # Each row of `labels` marks n_pos images as A: the first n_pos of a random permutation.
        order = rng.random((size, n)).argsort(axis=1)[:, :n_pos]
        labels = np.zeros((size, n), dtype=np.float64)
        np.put_along_axis(labels, order, 1.0, axis=1)
        sums = labels @ ranks.T  # (size, rows): rank sum of the relabelled A
        exceed += (sums >= observed[None, :] - 1e-9).sum(0)
        done += size
    return (1 + exceed) / (1 + permutations)


def bootstrap_auroc_ci(
    a: np.ndarray, b: np.ndarray, resamples: int, level: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each row's AUROC over stratified bootstrap resamples (A and B resampled apart).

    A resample is a multiplicity per image, so AUROC* = sum_i w_i * (C[lo_i] + C[hi_i]) / 2 / (n_a n_b), where
    C is the cumulative multiplicity of B's sorted scores and lo_i, hi_i bound a_i's ties among them. The
    multiplicities are drawn once, in sorted order (a permuted multinomial draw is a multinomial draw), so
    C is shared by every row and a row costs one sparse product.
    """
    a, b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    n_a, n_b = a.shape[1], b.shape[1]
    rng = np.random.default_rng(seed)
    # Laid out image-major, so the sparse product and the sum below run over contiguous memory.
    weights_a = np.ascontiguousarray(_multiplicities(rng, n_a, resamples).T)  # (n_a, resamples)
    cumulative = np.zeros((n_b + 1, resamples))
    np.cumsum(_multiplicities(rng, n_b, resamples).T, axis=0, out=cumulative[1:])
    low = np.empty(a.shape[0])
    high = np.empty(a.shape[0])
    alpha = (1 - level) / 2
    rows = np.r_[np.arange(n_a), np.arange(n_a)]
    for row in range(a.shape[0]):
        sorted_b = np.sort(b[row])
        bounds = np.r_[np.searchsorted(sorted_b, a[row], "left"), np.searchsorted(sorted_b, a[row], "right")]
        # (n_b + 1, n_a): half a count at each of a_i's two bounds
        pick = sparse.csr_matrix((np.full(2 * n_a, 0.5), (bounds, rows)), shape=(n_b + 1, n_a))
        spread = pick @ weights_a  # (n_b + 1, resamples): each bound's share of the A weights
        values = np.einsum("kr,kr->r", spread, cumulative) / (n_a * n_b)
        low[row], high[row] = np.quantile(values, [alpha, 1 - alpha])
    return low, high


def wilson_interval(proportion: float, n: int, level: float) -> tuple[float, float]:
    """Wilson's score interval of a proportion observed over n trials."""
    z = float(stats.norm.ppf(1 - (1 - level) / 2))
    centre = (proportion + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(proportion * (1 - proportion) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def honest_intervals(
    auroc: np.ndarray, low: np.ndarray, high: np.ndarray, n_a: int, n_b: int, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap interval, except where every resample gave the same AUROC (perfect separation, typically
    [1.000, 1.000]): there Wilson's interval over min(n_a, n_b) comparisons says what the sample sizes allow."""
    low, high = np.array(low, dtype=np.float64), np.array(high, dtype=np.float64)
    for i in np.flatnonzero(high - low <= 1e-12):
        low[i], high[i] = wilson_interval(float(auroc[i]), max(1, min(n_a, n_b)), level)
    return low, high


def _multiplicities(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """(resamples, n): how often each of n items is drawn in each resample of size n."""
    draws = rng.integers(0, n, size=(resamples, n)) + (np.arange(resamples) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (the smallest FDR at which each test is rejected), in input order."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    if ((p < 0) | (p > 1) | ~np.isfinite(p)).any():
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    q = np.empty(m)
    q[order] = q_sorted
    return q


def softmax_against_negation(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """CheXzero's zero-shot probability: softmax over the similarities to a finding and to its negation."""
    return 1.0 / (1.0 + np.exp(np.asarray(negative, np.float64) - np.asarray(positive, np.float64)))


def finding_stats(
    scores: np.ndarray, positive: np.ndarray, p_values: np.ndarray, resamples: int, level: float, seed: int
) -> list[FindingStats]:
    """Every statistic of every row of a (findings, images) score matrix; the permutation p-values are
    given, because they are computed over every finding of a run (see permutation_p_values)."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    a, b = scores[:, positive], scores[:, ~positive]
    auroc = auroc_rows(scores, positive)
    low, high = bootstrap_auroc_ci(a, b, resamples, level, seed)
    low, high = honest_intervals(auroc, low, high, a.shape[1], b.shape[1], level)
    p = np.asarray(p_values, dtype=np.float64)
    t, t_p = welch_t(a, b)
    return [
        FindingStats(
            auroc=float(auroc[i]),
            ci_low=float(low[i]),
            ci_high=float(high[i]),
            p_value=float(p[i]),
            t_statistic=float(t[i]),
            t_p_value=float(t_p[i]),
            mean_a=float(a[i].mean()),
            mean_b=float(b[i].mean()),
        )
        for i in range(scores.shape[0])
    ]


def histogram(a: np.ndarray, b: np.ndarray, bins: int = 20) -> tuple[list[float], list[int], list[int]]:
    """Counts of A's and B's scores over shared, equal-width bins spanning both."""
    both = np.concatenate([a, b])
    low, high = float(both.min()), float(both.max())
    if high <= low:
        high = low + 1e-6
    edges = np.linspace(low, high, bins + 1)
    return edges.tolist(), np.histogram(a, edges)[0].tolist(), np.histogram(b, edges)[0].tolist()
