"""Reads a short finding phrase into Mentions: which finding (a lexicon concept,
or the phrase's core words when no pattern matches), whether it is asserted or
negated, and the attributes chest X-ray findings are qualified by: side,
severity, lung zone, device position. Sentence embeddings blur exactly these
(a negated or opposite-side phrase embeds next to the original), so they are
read here by rule; see lexicon.py for the vocabulary."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from raddiff_evaluator import lexicon as lx

_SEPARATOR = re.compile(r",|;|\b(and|but|while|whereas|with)\b")
_PRE_NEGATION = re.compile(rf"\b(?:{lx.PRE_NEGATION})\b")
_POST_NEGATION = re.compile(rf"\b(?:{lx.POST_NEGATION})\b")
_LIST_END = re.compile(r"\b(or|nor)\b")
_TERMINATOR = re.compile(rf"(\b(?:{lx.NEGATION_TERMINATORS})\b)|;")
_NON_LATERAL = re.compile(rf"\b(?:{lx.NON_LATERAL})\b")
_POSITIONS = lx.compile_alternatives(lx.POSITIONS)
_LATERALITY = lx.compile_alternatives(lx.LATERALITY)
_SEVERITY = lx.compile_alternatives(lx.SEVERITY)
_ZONES = lx.compile_alternatives(lx.ZONES)
_CONCEPT_PATTERNS = [(re.compile(rf"\b(?:{p})\b"), c.key, False) for c in lx.CONCEPTS for p in c.patterns] + [
    (re.compile(rf"\b(?:{p})\b"), key, True) for p, key in lx.ABSENCE_PHRASES
]


@dataclass(frozen=True)
class Attributes:
    laterality: str | None = None
    severity: frozenset[str] = frozenset()
    zones: frozenset[str] = frozenset()
    position: str | None = None

    def describe(self) -> str:
        parts = [self.laterality or "", "/".join(sorted(self.severity)), "/".join(sorted(self.zones))]
        parts.append(f"at {self.position}" if self.position else "")
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Mention:
    # Lexicon key, or None when no pattern matched and the core words stand for the finding.
    concept: str | None
    text: str
    negated: bool
    attributes: Attributes = field(default_factory=Attributes)

    @property
    def label(self) -> str:
        return lx.BY_KEY[self.concept].label if self.concept else repr(self.text)


def normalise(text: str) -> str:
    out = text.lower()
    out = re.sub(r"[-_/]", " ", out)
    out = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", out)  # keep decimal points only
    out = re.sub(r"[^a-z0-9.,; ]", " ", out)
    for pattern, replacement in lx.ABBREVIATIONS:
        out = re.sub(pattern, replacement, out)
    return re.sub(r"\s+", " ", out).strip()


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def read_attributes(text: str) -> Attributes:
    # Positions first, blanked out, so "right atrium" or "below the left hemidiaphragm" is not read as a side.
    positions: list[tuple[int, str]] = []
    for pattern, value in _POSITIONS:
        for match in pattern.finditer(text):
            positions.append((match.start(), value))
            text = _blank(text, match.start(), match.end())
    text = _NON_LATERAL.sub(lambda m: " " * len(m.group()), text)
    sides = {value for pattern, value in _LATERALITY if pattern.search(text)}
    laterality = "bilateral" if "bilateral" in sides or {"right", "left"} <= sides else next(iter(sides), None)
    return Attributes(
        laterality=laterality,
        severity=frozenset(v for p, v in _SEVERITY if p.search(text)),
        zones=frozenset(v for p, v in _ZONES if p.search(text)),
        # The last position named is where the device ends ("through the esophagus into the stomach").
        position=max(positions)[1] if positions else None,
    )


def core_words(text: str) -> str:
    """The words left when negation, attributes and framing are taken out: what the phrase is about."""
    for pattern in (_PRE_NEGATION, _POST_NEGATION, _NON_LATERAL):
        text = pattern.sub(" ", text)
    for pattern, _ in (*_POSITIONS, *_LATERALITY, *_SEVERITY, *_ZONES):
        text = pattern.sub(" ", text)
    words = [w for w in re.findall(r"[a-z0-9]+", text) if w not in lx.FRAMING_WORDS]
    return " ".join(words)


def _concept_spans(text: str) -> list[tuple[int, int, str, bool]]:
    """Leftmost-longest, non-overlapping lexicon matches: (start, end, key, stated as absence)."""
    found = [
        (m.start(), m.end(), key, absent) for pattern, key, absent in _CONCEPT_PATTERNS for m in pattern.finditer(text)
    ]
    found.sort(key=lambda s: (s[0], -(s[1] - s[0]), s[3] is False))
    chosen: list[tuple[int, int, str, bool]] = []
    for span in found:
        if not chosen or span[0] >= chosen[-1][1]:
            chosen.append(span)
    return chosen


def _boundary(text: str, end_prev: int, start_next: int) -> int:
    """Where one mention's clause ends and the next one's begins: the last separator between them."""
    separators = list(_SEPARATOR.finditer(text, end_prev, start_next))
    return separators[-1].start() if separators else end_prev


def _continues_negated_list(text: str, previous_end: int, start: int) -> bool:
    """Whether a finding is the next item of the negated list before it ("no effusion, edema or pneumothorax")."""
    if _TERMINATOR.search(text, previous_end, start):
        return False
    return bool(_LIST_END.search(text, previous_end))


def offers_alternatives(phrase: str, mentions: list[Mention]) -> bool:
    """Whether a phrase asserts its findings as alternatives ("pneumonia or consolidation"), so that naming
    any one states it. A negated list ("no edema or effusion") denies every item, so it needs them all."""
    return len(mentions) > 1 and not any(m.negated for m in mentions) and bool(_LIST_END.search(normalise(phrase)))


def parse(phrase: str) -> list[Mention]:
    text = normalise(phrase)
    spans = _concept_spans(text)
    if not spans:
        negated = bool(_PRE_NEGATION.search(text) or _POST_NEGATION.search(text))
        return [Mention(None, core_words(text) or text, negated, read_attributes(text))]
    bounds = [0, *(_boundary(text, spans[i][1], spans[i + 1][0]) for i in range(len(spans) - 1)), len(text)]
    mentions: list[Mention] = []
    for i, (start, end, key, stated_absent) in enumerate(spans):
        window_start, window_end = bounds[i], bounds[i + 1]
        negated = (
            stated_absent
            or bool(_PRE_NEGATION.search(text, window_start, start))
            or bool(_POST_NEGATION.search(text, end, window_end))
            or (i > 0 and mentions[-1].negated and _continues_negated_list(text, spans[i - 1][1], start))
        )
        attributes = read_attributes(text[window_start:window_end])
        if not lx.BY_KEY[key].device:
            attributes = replace(attributes, position=None)  # "under the diaphragm" places free air, not a tube
        mentions.append(Mention(key, text[start:end], negated, attributes))
    return mentions
