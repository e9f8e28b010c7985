"""Specificity: does a finding's text track the difference between the sets more than texts about other things?

Raw AUROC answers "do the images of A score higher than B's on this text?". Every text's similarity moves with
the sets' common shift in embedding space, so in an effusion pair "endotracheal tube" can reach AUROC 1.000 too:
the statistic is right that the scores differ, the claim it is read as is false. The specificity test asks the
narrower question:

1. Each image's score is residualised on the common shift: the leading direction, over the images, of the
   similarities of a bank of control statements (agent/data/controls.yaml) that name *other* things than the
   finding (a statement of the finding's own concept is never its control).
2. The finding's *specific AUROC* is the AUROC of those residuals, A against B; its specific effect size their
   Cohen's d.
3. Its null is the text permutation null: the residual effect sizes of the control statements themselves. A
   finding that rides along with the shift sits inside that distribution; one that explains the difference
   stands above it. p is the upper tail of a Student t prediction for one more draw from the controls
   (K - 1 degrees of freedom), so it is continuous and can fall below 1 / (K + 1), which the FDR over a run's
   findings needs. Effect sizes, not AUROCs: when the sets separate well every AUROC saturates at 0 or 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import yaml
from scipy import stats

from raddiff_orchestrator.agent.statistics import effect_sizes

# Words that say where or how much, never what: a finding sharing only these with a control still names another thing.
_QUALIFIERS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "with",
        "and",
        "or",
        "no",
        "not",
        "is",
        "are",
        "there",
        "left",
        "right",
        "bilateral",
        "both",
        "upper",
        "middle",
        "lower",
        "lobe",
        "lobes",
        "small",
        "mild",
        "moderate",
        "large",
        "severe",
        "minimal",
        "trace",
        "tiny",
        "new",
        "increased",
        "decreased",
        "base",
        "bases",
        "apex",
        "apical",
        "basilar",
        "lung",
        "lungs",
        "chest",
        "side",
        "sided",
        "position",
        "positioned",
        "tip",
        "level",
    ]
)


@dataclass(frozen=True)
class Control:
    concept: str
    text: str


@dataclass(frozen=True)
class ControlBank:
    """The control statements and the words that name each concept."""

    controls: tuple[Control, ...]
    names: dict[str, tuple[str, ...]]

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.controls]

    def concepts_of(self, finding: str) -> set[str]:
        """The concepts a finding names (by their naming words; short names must match whole words)."""
        text = finding.lower()
        return {concept for concept, names in self.names.items() if any(_names(text, n) for n in names)}

    def controls_for(self, finding: str) -> np.ndarray:
        """Indices of the statements that name other things than the finding. A finding of no known concept
        excludes the statements that share one of its content words ("tube" excludes every tube statement)."""
        concepts = self.concepts_of(finding)
        words = _content_words(finding)
        keep = [
            i
            for i, c in enumerate(self.controls)
            if c.concept not in concepts and (concepts or not words & _content_words(c.text))
        ]
        return np.asarray(keep, dtype=np.int64)


def _names(text: str, name: str) -> bool:
    pattern = rf"\b{re.escape(name)}\b" if len(name) <= 4 else rf"\b{re.escape(name)}"
    return re.search(pattern, text) is not None


def _content_words(text: str) -> set[str]:
    return {w.rstrip("s") for w in re.findall(r"[a-z]+", text.lower()) if w not in _QUALIFIERS and len(w) > 2}


@cache
def default_bank() -> ControlBank:
    raw: dict[str, Any] = yaml.safe_load(
        resources.files("raddiff_orchestrator.agent").joinpath("data/controls.yaml").read_text()
    )
    controls = tuple(Control(concept, text) for concept, body in raw.items() for text in body["statements"])
    names = {concept: tuple(str(n).lower() for n in body["names"]) for concept, body in raw.items()}
    return ControlBank(controls, names)


class ShiftModel:
    """The sets' common shift as the control statements see it, for one analysis's ranked images.

    For a finding, the shift is the leading direction (first principal component over the images) of the
    similarities of the statements that name other things: residualising on it removes what every text shares.
    The null is cross-fitted: the controls are split in two halves, and each half's residual effect sizes are
    taken on the other half's direction, so that no null text was used to fit the direction it is measured on,
    just as the finding was not. Measured on the dev split (harness ranker_probe) against no residualisation,
    the mean of the controls, a per-text regression on it, and 3 or 6 components: one component and the
    median/MAD scale gave the most truths supported for the fewest decoys.
    """

    def __init__(self, control_scores: np.ndarray, positive: np.ndarray) -> None:
        self.control_scores = np.asarray(control_scores, np.float64)  # (controls, images): cosine similarities
        self.positive = np.asarray(positive, bool)
        self._directions: dict[bytes, np.ndarray] = {}
        self._nulls: dict[bytes, np.ndarray] = {}

    def direction(self, controls: np.ndarray) -> np.ndarray:
        """(images,): unit first principal direction of the given controls' centred similarities."""
        key = controls.tobytes()
        if key not in self._directions:
            block = self.control_scores[controls]
            block = block - block.mean(1, keepdims=True)
            self._directions[key] = np.linalg.svd(block, full_matrices=False)[2][0]
        return self._directions[key]

    def residuals(self, scores: np.ndarray, controls: np.ndarray) -> np.ndarray:
        """(rows, images) scores, each row centred and less its projection on the controls' shift direction."""
        scores = np.atleast_2d(np.asarray(scores, np.float64))
        centred = scores - scores.mean(1, keepdims=True)
        if controls.shape[0] < 2:
            return centred
        v = self.direction(controls)
        return centred - np.outer(centred @ v, v)

    def null_effects(self, controls: np.ndarray) -> np.ndarray:
        """Cross-fitted residual effect sizes (Cohen's d, A minus B) of the controls themselves."""
        key = controls.tobytes()
        if key not in self._nulls:
            halves = controls[::2], controls[1::2]
            parts = [
                effect_sizes(self.residuals(self.control_scores[held], fit), self.positive)
                for fit, held in (halves, halves[::-1])
                if fit.shape[0] >= 2 and held.shape[0] >= 1
            ]
            self._nulls[key] = np.concatenate(parts) if parts else np.zeros(0)
        return self._nulls[key]


def specific_p_value(effect: float, null_effects: np.ndarray) -> float:
    """One-sided p of a finding's residual effect size against its controls': a Student t prediction for one more
    statement naming another thing, on the controls' median and MAD (a few controls that truly move with the
    difference would otherwise inflate the scale and hide every finding)."""
    k = null_effects.shape[0]
    if k < 3:
        return 1.0  # too few controls to say anything: never supported on this ground
    centre = float(np.median(null_effects))
    scale = 1.4826 * float(np.median(np.abs(null_effects - centre)))
    if scale <= 0:
        return 0.0 if effect > centre else 1.0
    t = (effect - centre) / (scale * np.sqrt(1 + 1 / k))
    return float(stats.t.sf(t, k - 1))


@dataclass(frozen=True)
class SpecificStats:
    auroc: float
    ci_low: float
    ci_high: float
    effect_size: float  # Cohen's d of the residuals, A minus B
    p_value: float
    q_value: float
    supported: bool
    support: str  # why, in words, for the report


def verdict(raw_auroc: float, raw_q: float, specific: float, specific_q: float, fdr: float) -> tuple[bool, str]:
    """Supported only where the sets differ on the finding (raw) and the finding tracks that difference more than
    statements about other things (specific), each at the configured FDR."""
    if raw_auroc <= 0.5 or raw_q >= fdr:
        return False, f"not more common in A: AUROC {raw_auroc:.3f}, q {raw_q:.3g} (FDR {fdr:g})"
    if specific <= 0.5 or specific_q >= fdr:
        return False, f"moves with every text: specific AUROC {specific:.3f}, q {specific_q:.3g} (FDR {fdr:g})"
    return True, f"supported: AUROC {raw_auroc:.3f} (q {raw_q:.3g}), specific AUROC {specific:.3f} (q {specific_q:.3g})"
