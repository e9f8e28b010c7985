"""The offline judge: radiology structure where sentence embeddings are weak,
all-MiniLM-L6-v2 similarity where the lexicon has nothing to say.

Each phrase is read into Mentions (findings.py). A prediction's mention is set
against A's and B's: the finding must be A's (same concept, or by embedding the
same words), asserted the way A asserts it, and carry A's attributes.

  2  A's finding with every attribute A states (extra compatible detail is fine)
  1  A's finding with an attribute missing or wrong; a broader category; a related finding or sign
  0  unrelated; negated where A asserts (or the reverse); or B's state ("NG tube in stomach")

Thresholds on cosine similarity come from the lexicon's own synonym sets
(THRESHOLDS below), not from the labelled cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raddiff_evaluator import lexicon as lx
from raddiff_evaluator.embedder import SentenceEmbedder
from raddiff_evaluator.engine import JudgeBackend, JudgeInput, Verdict
from raddiff_evaluator.findings import Attributes, Mention, offers_alternatives, parse
from raddiff_kit.deadlines import Deadline, run_blocking


@dataclass(frozen=True)
class Thresholds:
    # all-MiniLM-L6-v2 cosines between the lexicon's synonym phrases: at 0.70, 26% of same-concept pairs
    # and 0.2% of unrelated pairs pass; at 0.60, 50% and 1%. The embedder only decides where the lexicon
    # cannot, so these favour precision.
    same: float = 0.70
    related: float = 0.60
    # Closer to B than to A by this much: the phrase describes B.
    side_margin: float = 0.05


_RELATION_WORDS = {"broader": "broader than", "narrower": "narrower than", "related": "related to"}


@dataclass(frozen=True)
class Outcome:
    score: int
    reason: str


def _ancestors(key: str) -> list[str]:
    chain = []
    parent = lx.BY_KEY[key].parent
    while parent is not None:
        chain.append(parent)
        parent = lx.BY_KEY[parent].parent
    return chain


def concept_relation(pred: str, truth: str) -> str | None:
    """How a prediction's lexicon concept stands to the truth's: same, broader, narrower, related or None."""
    if pred == truth:
        return "same"
    if pred in _ancestors(truth):
        return "broader"
    if truth in _ancestors(pred):
        return "narrower"
    if truth in lx.BY_KEY[pred].related or pred in lx.BY_KEY[truth].related:
        return "related"
    return None


def _position_relation(pred: str | None, truth: str, device: lx.Concept | None) -> str:
    """match (equal or more specific), broader, missing or wrong."""
    if pred is None:
        return "missing"
    normal = device.normal_positions if device else frozenset()
    if pred == "standard":
        return "match" if truth in normal else "wrong"
    if pred == truth or lx.POSITION_PARENTS.get(pred) == truth:
        return "match"
    if lx.POSITION_PARENTS.get(truth) == pred:
        return "broader"
    if pred == "too_deep" and device is not None and truth in device.deep_positions:
        return "broader"
    if pred == "malpositioned" and truth not in normal:
        return "broader"
    return "wrong"


def attribute_problems(pred: Attributes, truth: Attributes, device: lx.Concept | None) -> list[str]:
    """What the prediction leaves out of, or gets wrong about, the attributes the truth states."""
    problems = []
    if truth.laterality and pred.laterality != truth.laterality:
        problems.append(f"side {pred.laterality or 'missing'} (truth: {truth.laterality})")
    if truth.severity and not pred.severity & truth.severity:
        got = "/".join(sorted(pred.severity)) or "missing"
        problems.append(f"severity {got} (truth: {'/'.join(sorted(truth.severity))})")
    if truth.zones:
        covered = {lx.ZONE_PARENTS.get(z, z) for z in pred.zones} | pred.zones
        if (
            not pred.zones
            or not truth.zones <= covered
            or not all(z in truth.zones or lx.ZONE_PARENTS.get(z) in truth.zones for z in pred.zones)
        ):
            got = "/".join(sorted(pred.zones)) or "missing"
            problems.append(f"zone {got} (truth: {'/'.join(sorted(truth.zones))})")
    if truth.position:
        relation = _position_relation(pred.position, truth.position, device)
        if relation != "match":
            problems.append(f"position {pred.position or 'missing'} ({relation}; truth: {truth.position})")
    return problems


def _differing(a: Attributes, b: Attributes) -> Attributes:
    """B's attributes where they differ from A's: the part of B that sets it apart."""
    return Attributes(
        laterality=b.laterality if b.laterality != a.laterality else None,
        severity=b.severity if b.severity != a.severity else frozenset(),
        zones=b.zones if b.zones != a.zones else frozenset(),
        position=b.position if b.position != a.position else None,
    )


def _narrowing(pred: Attributes, truth: Attributes) -> str:
    """A severity a negation adds to the truth's: what it leaves undenied. (A side does not narrow:
    "the left pneumothorax has resolved" names which one is gone.)"""
    return "/".join(sorted(pred.severity)) if pred.severity and not truth.severity else ""


class SemanticJudge(JudgeBackend):
    name = "semantic"

    def __init__(self, embedder: SentenceEmbedder, thresholds: Thresholds | None = None) -> None:
        self.embedder = embedder
        self.thresholds = thresholds or Thresholds()
        self._anchor_keys: list[str] = []
        self._anchor_texts: list[str] = []
        self._anchors: np.ndarray | None = None

    async def load(self) -> None:
        await run_blocking(Deadline(), self.load_sync)

    def load_sync(self) -> None:
        self.embedder.load()
        pairs = [(c.key, s) for c in lx.CONCEPTS for s in c.synonyms]
        self._anchor_keys = [k for k, _ in pairs]
        self._anchor_texts = [s.lower() for _, s in pairs]
        self._anchors = self.embedder.encode([s for _, s in pairs])

    async def judge(self, item: JudgeInput, deadline: Deadline) -> list[Verdict]:
        return await run_blocking(deadline, self.judge_sync, item)

    def judge_sync(self, item: JudgeInput) -> list[Verdict]:
        truth_a = [self._resolve(m) for m in parse(item.truth_a)]
        truth_b = [self._resolve(m) for m in parse(item.truth_b)]
        # A's difference: its mentions minus any that B states identically ("NG tube" is on both sides).
        distinct = [m for m in truth_a if m not in truth_b] or truth_a
        any_of = offers_alternatives(item.truth_a, truth_a)
        vectors = self.embedder.encode([*item.predictions, item.truth_a, item.truth_b])
        verdicts = []
        for i, prediction in enumerate(item.predictions):
            outcome = self._score(prediction, distinct, truth_b, any_of)
            cos_a, cos_b = float(vectors[i] @ vectors[-2]), float(vectors[i] @ vectors[-1])
            verdicts.append(Verdict(outcome.score, f"{outcome.reason} [cos to A {cos_a:.2f}, to B {cos_b:.2f}]"))
        return verdicts

    # -- reading ------------------------------------------------------------
    def _resolve(self, mention: Mention) -> Mention:
        """A phrase no pattern matched may still be a lexicon finding in other words: ask the embedder."""
        if mention.concept is not None or self._anchors is None:
            return mention
        sims = self._anchors @ self.embedder.encode([mention.text])[0]
        # An anchor that holds all the phrase's words and more is not its synonym: "heart size" leaves out
        # the "increased" of "increased heart size" (the same rule as _relation's).
        words = set(mention.text.split())
        sims[[words < set(anchor.split()) for anchor in self._anchor_texts]] = -1.0
        best = int(np.argmax(sims))
        if sims[best] >= self.thresholds.same:
            return Mention(self._anchor_keys[best], mention.text, mention.negated, mention.attributes)
        return mention

    def _relation(self, pred: Mention, truth: Mention) -> tuple[str | None, str]:
        if pred.concept and truth.concept:
            return concept_relation(pred.concept, truth.concept), "lexicon"
        pred_words, truth_words = set(pred.text.split()), set(truth.text.split())
        if pred_words and pred_words < truth_words:
            # "emphysema" for "subcutaneous emphysema": embeddings reward the shared word; it names less.
            return "broader", f"{pred.text!r} leaves out {' '.join(sorted(truth_words - pred_words))!r}"
        cos = self.embedder.similarity(pred.text, truth.text)
        note = f"embedding cos {cos:.2f} between {pred.text!r} and {truth.text!r}"
        if cos >= self.thresholds.same:
            return "same", note
        if cos >= self.thresholds.related:
            return "related", note
        return None, note

    # -- scoring ------------------------------------------------------------
    def _score(self, prediction: str, truth_a: list[Mention], truth_b: list[Mention], any_of: bool = False) -> Outcome:
        pred_mentions = [self._resolve(m) for m in parse(prediction)]
        # A mention that names A's finding itself speaks for the prediction; related ones only when none does.
        direct = [p for p in pred_mentions if any(p.concept and p.concept == a.concept for a in truth_a)]
        pred_mentions = direct or pred_mentions
        outcomes = [self._score_pair(p, a, truth_b) for a in truth_a for p in pred_mentions]
        best = max(outcomes, key=lambda o: o.score)
        # "X and Y" needs both; "X or Y" (any_of) is stated by either.
        if len(truth_a) > 1 and best.score == 2 and not any_of:
            full = {id(a) for a in truth_a for p in pred_mentions if self._score_pair(p, a, truth_b).score == 2}
            if len(full) < len(truth_a):
                return Outcome(1, f"covers only part of A: {best.reason}")
        if best.score == 0 and len(outcomes) > 1:
            # Several readings all fail: the first explains the prediction's main finding.
            return outcomes[0]
        return best

    def _score_pair(self, pred: Mention, a: Mention, truth_b: list[Mention]) -> Outcome:
        relation, how = self._relation(pred, a)
        said = f"{'no ' if pred.negated else ''}{pred.label}"
        if relation is None:
            matches_b = [b for b in truth_b if b.concept and b.concept == pred.concept]
            where = " (B's finding)" if matches_b else ""
            return Outcome(0, f"0: {said}{where} is unrelated to A's {a.label} ({how})")
        if pred.concept == lx.ROOT:
            if pred.negated and a.negated:
                return Outcome(1, f"1: a normal study implies A's no {a.label} but names no finding")
            if not pred.negated:
                return Outcome(0, f"0: '{pred.text}' is too general to name A's {a.label}")
        if relation == "narrower" and not a.negated and a.concept and lx.BY_KEY[a.concept].device:
            # A device category is any of its kinds: a pacemaker is an implanted cardiac device, a PICC a central
            # line. Denials stay strict: "no pacemaker" leaves an ICD undenied.
            relation, how = "same", f"{how}; a {pred.label} is a {a.label}"
        if relation == "broader" and pred.negated and a.negated:
            # Denying the broader category denies A's finding too: "clear lungs" says "no consolidation".
            relation, how = "same", f"{how}; no {pred.label} entails no {a.label}"
        if pred.negated != a.negated:
            side = " as B does" if any(b.negated == pred.negated and b.concept == a.concept for b in truth_b) else ""
            verb = "negates" if pred.negated else "asserts"
            return Outcome(0, f"0: {verb} {pred.label}{side}, the opposite of A ({a.text})")
        if relation != "same":
            return Outcome(1, f"1: {said} is {_RELATION_WORDS[relation]} A's {a.label} ({how})")
        device = lx.BY_KEY[a.concept] if a.concept and lx.BY_KEY[a.concept].device else None
        b_side = self._describes_b(pred, a, truth_b, device)
        if b_side:
            return Outcome(0, f"0: {said} {pred.attributes.describe()} describes B ({b_side})")
        problems = attribute_problems(pred.attributes, a.attributes, device)
        if pred.negated and not problems:
            # "no large effusion" denies less than "no effusion": B's small effusions still fit it.
            narrowing = _narrowing(pred.attributes, a.attributes)
            if narrowing:
                return Outcome(1, f"1: denies only {narrowing} {pred.label}; A denies any ({how})")
        if problems:
            return Outcome(1, f"1: {said} as in A, but " + "; ".join(problems))
        detail = pred.attributes.describe()
        return Outcome(2, f"2: states A's {said}{' ' + detail if detail else ''} ({how})")

    def _describes_b(self, pred: Mention, a: Mention, truth_b: list[Mention], device: lx.Concept | None) -> str:
        """Non-empty when the prediction carries what sets B apart from A (same finding, B's attributes)."""
        for b in truth_b:
            if b.negated != pred.negated:
                continue
            if a.concept and b.concept == a.concept:
                apart = _differing(a.attributes, b.attributes)
                stated = (
                    (apart.laterality and pred.attributes.laterality)
                    or (apart.severity and pred.attributes.severity)
                    or (apart.zones and pred.attributes.zones)
                    or (apart.position and pred.attributes.position)
                )
                if apart != Attributes() and stated and not attribute_problems(pred.attributes, apart, device):
                    return f"B: {b.text} {b.attributes.describe()}".strip()
            elif not a.concept and not b.concept and b.text != a.text:
                cos_a = self.embedder.similarity(pred.text, a.text)
                cos_b = self.embedder.similarity(pred.text, b.text)
                if cos_b > cos_a + self.thresholds.side_margin:
                    return f"closer to B's {b.text!r} (cos {cos_b:.2f}) than to A's (cos {cos_a:.2f})"
        return ""
