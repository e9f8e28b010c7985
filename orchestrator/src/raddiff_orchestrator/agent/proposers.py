"""Proposers turn the captions (and reports) of two samples into candidate
findings, phrased in radiology language, that are more common in A than in B.

Each proposer is a strategy behind one small interface, so later ones (visual
proposers that look at image grids, refinement rounds) slot in beside these.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from raddiff_orchestrator.agent.ports import ChatMessage, ChatModel, DependencyError, NotConfigured, Sampling
from raddiff_orchestrator.agent.task import AgentConfig


@dataclass(frozen=True)
class Evidence:
    """What is known about one sampled image: its caption and, when given, its report."""

    uri: str
    caption: str
    report: str = ""

    def text(self) -> str:
        return f"{self.caption}\n{self.report}" if self.report else self.caption


class Proposer(Protocol):
    name: str

    async def propose(self, a: Sequence[Evidence], b: Sequence[Evidence], config: AgentConfig) -> list[str]: ...


def clean_findings(raw: Sequence[object], limit: int) -> list[str]:
    """Trimmed, whitespace-collapsed, case-insensitively unique strings, at most `limit`."""
    seen: set[str] = set()
    out: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            continue
        text = " ".join(item.split()).strip(" .;,")
        if text and text.lower() not in seen:
            seen.add(text.lower())
            out.append(text)
    return out[:limit]


# -- the LLM proposer -----------------------------------------------------------------

SYSTEM_PROMPT = (
    "You are an expert radiologist. You compare two groups of chest X-rays and name, in radiology "
    "language, the findings that distinguish the first group from the second."
)
_MAX_TEXT_CHARS = 1200  # per caption or report; keeps a 2 x 20 image prompt well inside any context


def findings_schema(config: AgentConfig) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "findings": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": config.min_findings,
                "maxItems": config.max_findings,
            }
        },
        "required": ["findings"],
        "additionalProperties": False,
    }


def _describe(group: str, evidence: Sequence[Evidence]) -> str:
    lines = [f"Group {group} ({len(evidence)} images):"]
    for i, item in enumerate(evidence, 1):
        lines.append(f"{group}{i}. Description: {item.caption[:_MAX_TEXT_CHARS]}")
        if item.report:
            lines.append(f"    Report: {item.report[:_MAX_TEXT_CHARS]}")
    return "\n".join(lines)


def proposal_prompt(a: Sequence[Evidence], b: Sequence[Evidence], config: AgentConfig) -> str:
    return (
        f"{_describe('A', a)}\n\n{_describe('B', b)}\n\n"
        f"List {config.min_findings} to {config.max_findings} radiological findings that are more common in "
        "group A than in group B. Each finding is a short phrase a radiologist would write about a single "
        'image (for example "right pleural effusion" or "enlarged cardiac silhouette"). Answer with JSON: '
        '{"findings": ["...", "..."]}.'
    )


def parse_findings(text: str, limit: int) -> list[str]:
    """The findings in a model's JSON answer; ValueError naming what is wrong."""
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.DOTALL)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the answer is not JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise ValueError('the answer is not an object with a "findings" list')
    findings = clean_findings(data["findings"], limit)
    if not findings:
        raise ValueError("the answer lists no findings")
    return findings


class LLMProposer:
    """VisDiff's proposer: an LLM reads both groups' captions and names what A has more of."""

    name = "llm"

    def __init__(self, chat: ChatModel, attempts: int = 2) -> None:
        self._chat = chat
        self._attempts = attempts

    async def propose(self, a: Sequence[Evidence], b: Sequence[Evidence], config: AgentConfig) -> list[str]:
        messages = [ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", proposal_prompt(a, b, config))]
        sampling = Sampling(max_tokens=1024, temperature=0.0, seed=config.seed)
        problem = ""
        for _ in range(self._attempts):
            answer = await self._chat.chat(messages, findings_schema(config), sampling)
            try:
                return parse_findings(answer, config.max_findings)
            except ValueError as exc:
                problem = str(exc)
                # Say what was wrong; the changed conversation also bypasses any response cache.
                messages = [
                    *messages,
                    ChatMessage("assistant", answer),
                    ChatMessage("user", f"That answer cannot be used: {problem}. Answer again with JSON only."),
                ]
        raise DependencyError(f"the LLM gave no usable findings after {self._attempts} attempts: {problem}")


class FallbackProposer:
    """The "auto" choice: the LLM when it has a model behind it, else the offline proposer."""

    def __init__(self, primary: Proposer, fallback: Proposer) -> None:
        self._primary, self._fallback = primary, fallback
        self.name = primary.name
        self.note = ""

    async def propose(self, a: Sequence[Evidence], b: Sequence[Evidence], config: AgentConfig) -> list[str]:
        try:
            return await self._primary.propose(a, b, config)
        except NotConfigured as exc:
            self.name = self._fallback.name
            self.note = f"the {self._primary.name} proposer is not available ({exc}); used the {self.name} proposer"
            return await self._fallback.propose(a, b, config)


# -- the offline proposer -------------------------------------------------------------

# Words a finding may contain but never start or end with.
_STOPWORD_TEXT = """
    a an the of in on at to for from with by and or as is are was were be been being this that these those
    there here it its which who whom whose what when where while into onto over under than then also both
    each either any some such very may might can could would should will shall has have had do does did
    image images picture photo photograph shows show showing shown seen see noted note visible appears appear
    appearance demonstrates demonstrated evident present identified patient view views frontal lateral
    x-ray x-rays xray radiograph radiographs film study exam examination described description
    likely possibly probably slightly mildly overall otherwise again"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# Side, size, time and anatomy words: part of a finding ("small right pleural effusion"), never one alone.
_MODIFIER_TEXT = """
    right left bilateral unilateral small large mild moderate severe minimal marked stable new unchanged
    increased decreased enlarged prominent borderline upper lower mid middle base bases basilar apical chronic
    acute old prior previous diffuse focal patchy pleural pulmonary cardiac mediastinal hilar lung lobe zone
    airspace vascular thoracic bony osseous soft tissue tissues size"""
_MODIFIERS = frozenset(_MODIFIER_TEXT.split())
# A negation cue negates the rest of its sentence ("No effusion, pneumothorax or edema"); a trailing
# cue negates all of it ("The effusion has resolved").
_NEGATIONS = frozenset({"no", "not", "without", "negative", "free", "absence", "nor"})
_TRAILING_NEGATIONS = frozenset({"resolved", "absent", "removed"})
# Words that join two findings ("effusion with atelectasis"): a phrase never spans one.
_JOINERS = frozenset({"and", "or", "with", "versus", "as", "which", "while", "also", "plus"})
_SENTENCE_BREAK = re.compile(r"[.;:!?\n]+|\bbut\b|\bhowever\b|\balthough\b")
_SEGMENT_BREAK = re.compile(r"[,()\[\]/]")
_WORD = re.compile(r"[a-z][a-z\-']*")


def singular(word: str) -> str:
    """A plural folded onto its singular, so "effusions" counts as "effusion" ("opacities" as "opacity")."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def phrases(text: str, max_words: int = 4) -> Iterator[str]:
    """Affirmed word n-grams of a caption or report, negated sentence tails left out."""
    for sentence in _SENTENCE_BREAK.split(text.lower()):
        if not _TRAILING_NEGATIONS.isdisjoint(_WORD.findall(sentence)):
            continue
        negated = False
        for segment in _SEGMENT_BREAK.split(sentence):
            run: list[str] = []
            for word in _WORD.findall(segment):
                if word in _NEGATIONS:
                    negated = True
                    break
                if word in _JOINERS:
                    yield from _ngrams(run, max_words)
                    run = []
                    continue
                run.append(singular(word))
            yield from _ngrams(run, max_words)
            if negated:
                break


def _ngrams(words: list[str], max_words: int) -> Iterator[str]:
    for n in range(1, max_words + 1):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if gram[0] in _STOPWORDS or gram[-1] in _STOPWORDS or "xxxx" in gram:
                continue
            if all(w in _MODIFIERS or w in _STOPWORDS for w in gram):
                continue  # "right lower", "pleural": no finding named
            if n == 1 and len(gram[0]) < 3:
                continue
            yield " ".join(gram)


@dataclass(frozen=True)
class PhraseContrast:
    phrase: str
    share_a: float  # fraction of A's documents that affirm it
    share_b: float

    @property
    def separation(self) -> float:
        return self.share_a - self.share_b

    @property
    def words(self) -> int:
        return self.phrase.count(" ") + 1


def contrast_phrases(docs_a: Sequence[str], docs_b: Sequence[str], max_words: int = 4) -> list[PhraseContrast]:
    """Every phrase of A with the share of A's and B's documents that affirm it, most separating first."""
    if not docs_a or not docs_b:
        raise ValueError("contrasting phrases needs documents on both sides")
    count_a = Counter(p for doc in docs_a for p in set(phrases(doc, max_words)))
    count_b = Counter(p for doc in docs_b for p in set(phrases(doc, max_words)))
    rows = [PhraseContrast(p, n / len(docs_a), count_b[p] / len(docs_b)) for p, n in count_a.items()]
    # Equal separation: the longer, more specific phrase first.
    rows.sort(key=lambda r: (-r.separation, -r.words, -r.share_a, r.phrase))
    return rows


def _contains(longer: str, shorter: str) -> bool:
    return f" {shorter} " in f" {longer} "


class ContrastProposer:
    """The offline proposer: phrases that A's captions affirm clearly more often than B's.

    Phrases are ranked by separation (share of A's documents minus share of B's). A phrase is
    replaced by a longer phrase containing it when that one separates nearly as well
    ("effusion" -> "pleural effusion"), and a phrase overlapping one already chosen is skipped.
    """

    name = "offline"

    def __init__(
        self, min_separation: float = 0.1, min_count: int = 2, max_words: int = 4, specificity: float = 0.75
    ) -> None:
        self.min_separation = min_separation
        self.min_count = min_count
        self.max_words = max_words
        self.specificity = specificity

    def select(self, docs_a: Sequence[str], docs_b: Sequence[str], limit: int) -> list[PhraseContrast]:
        # A phrase seen once is noise unless the sample itself is that small.
        min_share_a = min(self.min_count, len(docs_a)) / len(docs_a) - 1e-12
        rows = [
            r
            for r in contrast_phrases(docs_a, docs_b, self.max_words)
            if r.separation >= self.min_separation and r.share_a >= min_share_a
        ]
        chosen: list[PhraseContrast] = []
        for row in rows:
            if len(chosen) >= limit:
                break
            best = row
            for other in rows:  # most separating first: each step up is the best longer phrase
                nearly_as_good = other.separation >= self.specificity * row.separation
                if nearly_as_good and other.words > best.words and _contains(other.phrase, best.phrase):
                    best = other
            if any(_contains(c.phrase, best.phrase) or _contains(best.phrase, c.phrase) for c in chosen):
                continue
            chosen.append(best)
        return chosen

    async def propose(self, a: Sequence[Evidence], b: Sequence[Evidence], config: AgentConfig) -> list[str]:
        rows = self.select([e.text() for e in a], [e.text() for e in b], config.max_findings)
        return [r.phrase for r in rows]
