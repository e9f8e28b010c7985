"""Specificity: does a finding's text track the difference between the sets more than texts about other things?

Raw AUROC answers "do the images of A score higher than B's on this text?". Every text's similarity moves with
the sets' common shift in embedding space, so in an effusion pair "endotracheal tube" can reach AUROC 1.000 too:
the statistic is right that the scores differ, the claim it is read as is false. The specificity test asks the
narrower question:

1. Each image's score is residualised on the common shift: its similarity to the finding minus its mean
   similarity to a bank of control statements (agent/data/controls.yaml) about many different things.
2. The finding's *specific AUROC* is the AUROC of those residuals, A against B.
3. Its null is the text permutation null: the specific AUROCs of the control statements that name *other*
   things than the finding (a statement of the finding's own concept is never its control). A finding that
   rides along with the shift sits inside that distribution; one that explains the difference stands above it.
   p is the upper tail of a Student t prediction for one more draw from the controls' AUROCs (K - 1 degrees of
   freedom), so it is continuous and can fall below 1 / (K + 1), which the FDR over a run's findings needs.
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

from raddiff_orchestrator.agent.auroc import auroc_rows

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


@dataclass(frozen=True)
class ShiftModel:
    """The sets' common shift as the control statements see it, for one analysis's ranked images."""

    baseline: np.ndarray  # (images,): each image's mean similarity to every control statement
    control_aurocs: np.ndarray  # (controls,): each control's specific AUROC, A against B

    @classmethod
    def fit(cls, control_scores: np.ndarray, positive: np.ndarray) -> ShiftModel:
        """control_scores: (controls, images) cosine similarities; positive marks A's images."""
        baseline = control_scores.mean(0)
        return cls(baseline, auroc_rows(control_scores - baseline[None, :], positive))

    def residuals(self, scores: np.ndarray) -> np.ndarray:
        """(findings, images) scores less each image's baseline."""
        return np.asarray(scores, np.float64) - self.baseline[None, :]


def specific_p_value(specific_auroc: float, null_aurocs: np.ndarray) -> float:
    """One-sided p of a finding's specific AUROC against its controls' (a Student t prediction: the chance
    that one more statement naming another thing would score this high)."""
    k = null_aurocs.shape[0]
    if k < 3:
        return 1.0  # too few controls to say anything: never supported on this ground
    mean, sd = float(null_aurocs.mean()), float(null_aurocs.std(ddof=1))
    if sd <= 0:
        return 0.0 if specific_auroc > mean else 1.0
    t = (specific_auroc - mean) / (sd * np.sqrt(1 + 1 / k))
    return float(stats.t.sf(t, k - 1))


@dataclass(frozen=True)
class SpecificStats:
    auroc: float
    ci_low: float
    ci_high: float
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
