"""AUROC as the Mann-Whitney U statistic: the chance that a random positive
scores above a random negative, ties counting one half."""

from __future__ import annotations

import numpy as np


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array; tied values share the mean of the ranks they span."""
    n = values.shape[0]
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], n]  # exclusive
    mean_rank = (starts + 1 + ends) / 2.0  # mean of the 1-based ranks start+1 .. end
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = mean_rank[group]
    return ranks


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """AUROC of `scores` for the boolean labels `positive`."""
    return float(auroc_rows(np.asarray(scores, dtype=np.float64)[None, :], positive)[0])


def auroc_rows(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUROC of each row of a (rows, n) score matrix against the same n labels."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    if scores.ndim != 2 or scores.shape[1] != positive.shape[0]:
        raise ValueError(f"scores {scores.shape} do not match {positive.shape[0]} labels")
    n_pos = int(positive.sum())
    n_neg = positive.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative")
    if not np.isfinite(scores).all():
        raise ValueError("AUROC scores must be finite")
    out = np.empty(scores.shape[0], dtype=np.float64)
    for i, row in enumerate(scores):
        rank_sum = average_ranks(row)[positive].sum()
        out[i] = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return out
