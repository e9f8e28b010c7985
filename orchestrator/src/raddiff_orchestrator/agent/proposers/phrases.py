"""Phrases of captions and reports for the offline proposer: affirmed clauses (negations left out),
their n-grams and whole statements, and the log-odds contrast of two sets of documents."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache

# Words a finding may contain but never start or end with.
_STOPWORD_TEXT = """
    a an the of in on at to for from with by and or as is are was were be been being this that these those
    there here it its which who whom whose what when where while into onto over under than then also both
    each either any some such very may might can could would should will shall has have had do does did
    image images picture photo photograph shows show showing shown seen see noted note visible appears appear
    appearance demonstrates demonstrated evident present identified patient view views frontal lateral
    x-ray x-rays xray radiograph radiographs film study exam examination described description
    likely possibly probably slightly mildly overall otherwise again"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# Side, size, time and anatomy words: part of a finding ("small right pleural effusion"), never one alone.
_MODIFIER_TEXT = """
    right left bilateral unilateral small large mild moderate severe minimal marked stable new unchanged
    increased decreased enlarged prominent borderline upper lower mid middle base bases basilar apical chronic
    acute old prior previous diffuse focal patchy pleural pulmonary cardiac mediastinal hilar lung lobe zone
    airspace vascular thoracic bony osseous soft tissue tissues size"""
MODIFIERS = frozenset(_MODIFIER_TEXT.split())
# A negation cue negates the rest of its sentence ("No effusion, pneumothorax or edema"); a trailing
# cue negates all of it ("The effusion has resolved").
_NEGATIONS = frozenset({"no", "not", "without", "negative", "free", "absence", "nor"})
_TRAILING_NEGATIONS = frozenset({"resolved", "absent", "removed"})
# Words that join two findings ("effusion with atelectasis"): a phrase never spans one.
_JOINERS = frozenset({"and", "or", "with", "versus", "as", "which", "while", "also", "plus"})
_SENTENCE_BREAK = re.compile(r"[.;:!?\n]+|\bbut\b|\bhowever\b|\balthough\b")
_SEGMENT_BREAK = re.compile(r"[,()\[\]/]")
_WORD = re.compile(r"[a-z][a-z\-']*")
_GROUNDING_TOKEN = re.compile(r"<loc\d+>")  # a grounding answer's box tokens, not words


def singular(word: str) -> str:
    """A plural folded onto its singular, so "effusions" counts as "effusion" ("opacities" as "opacity")."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def affirmed_runs(text: str) -> Iterator[list[str]]:
    """The affirmed clauses of a caption or report as runs of (singular) words: sentences split at joiners,
    negated sentence tails left out. Phrases are n-grams of a run; a statement is a whole run."""
    for sentence in _SENTENCE_BREAK.split(_GROUNDING_TOKEN.sub(" ", text.lower())):
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
                    yield run
                    run = []
                    continue
                run.append(singular(word))
            yield run
            if negated:
                break


def phrases(text: str, max_words: int = 4) -> Iterator[str]:
    """Affirmed word n-grams of a caption or report, negated sentence tails left out."""
    for run in affirmed_runs(text):
        yield from ngrams(run, max_words)


@lru_cache(maxsize=8192)
def phrase_set(text: str, max_words: int = 4) -> frozenset[str]:
    """The distinct phrases of one document; a refinement reads the same captions several times a round."""
    return frozenset(phrases(text, max_words))


@lru_cache(maxsize=8192)
def statement_set(text: str, max_words: int = 8) -> frozenset[str]:
    """The distinct whole affirmed clauses of one document ("endotracheal tube in the right main bronchus"),
    outer stopwords trimmed; those longer than `max_words`, stuttering or naming no finding left out."""
    out = set()
    for run in affirmed_runs(text):
        while run and run[0] in STOPWORDS:
            run = run[1:]
        while run and run[-1] in STOPWORDS:
            run = run[:-1]
        if 0 < len(run) <= max_words and len(set(run)) == len(run) and not set(run) <= MODIFIERS | STOPWORDS:
            out.add(" ".join(run))
    return frozenset(bilateral(out))


def bilateral(statements: AbstractSet[str]) -> set[str]:
    """One image's statements with the same finding stated on the right and on the left said once, bilateral:
    "large right pleural effusion" and "large left pleural effusion" are "large bilateral pleural effusion"."""
    out = set(statements)
    for statement in statements:
        words = statement.split()
        if "right" in words:
            left = " ".join("left" if w == "right" else w for w in words)
            if left in statements:
                out -= {statement, left}
                out.add(" ".join("bilateral" if w == "right" else w for w in words))
    return out


def ngrams(words: list[str], max_words: int) -> Iterator[str]:
    for n in range(1, max_words + 1):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if gram[0] in STOPWORDS or gram[-1] in STOPWORDS or "xxxx" in gram:
                continue
            if len(set(gram)) < n:
                continue  # "right right pleural": a stutter of degenerate output, never a finding
            if all(w in MODIFIERS or w in STOPWORDS for w in gram):
                continue  # "right lower", "pleural": no finding named
            if n == 1 and len(gram[0]) < 3:
                continue
            yield " ".join(gram)


@dataclass(frozen=True)
class PhraseContrast:
    phrase: str
    share_a: float  # fraction of A's documents that affirm it
    share_b: float
    z: float = 0.0  # log-odds ratio (A vs B) over its standard error, informative Dirichlet prior

    @property
    def separation(self) -> float:
        return self.share_a - self.share_b

    @property
    def words(self) -> int:
        return self.phrase.count(" ") + 1


def log_odds_z(y_a: int, n_a: int, y_b: int, n_b: int, prior: float) -> float:
    """z-score of the log-odds ratio of a phrase's document rate in A vs B (Monroe, Colaresi & Quinn 2008).

    The prior adds `prior` pseudo-documents split by the pooled rate, which shrinks rare phrases
    toward "no difference" and keeps the odds finite when a phrase is in every or no document.
    """
    pooled = (y_a + y_b + 0.5) / (n_a + n_b + 1)  # strictly inside (0, 1), so both odds stay finite
    alpha_in, alpha_out = prior * pooled, prior * (1 - pooled)
    a_in, a_out = y_a + alpha_in, n_a - y_a + alpha_out
    b_in, b_out = y_b + alpha_in, n_b - y_b + alpha_out
    delta = math.log(a_in / a_out) - math.log(b_in / b_out)
    return delta / math.sqrt(1 / a_in + 1 / a_out + 1 / b_in + 1 / b_out)


# One document's distinct phrases of at most so many words.
PhraseSet = Callable[[str, int], frozenset[str]]


def contrast_phrases(
    docs_a: Sequence[str],
    docs_b: Sequence[str],
    max_words: int = 4,
    prior: float = 4.0,
    extract: PhraseSet = phrase_set,
) -> list[PhraseContrast]:
    """Every phrase of A with the share of A's and B's documents that affirm it, most separating first."""
    if not docs_a or not docs_b:
        raise ValueError("contrasting phrases needs documents on both sides")
    count_a = Counter(p for doc in docs_a for p in extract(doc, max_words))
    count_b = Counter(p for doc in docs_b for p in extract(doc, max_words))
    n_a, n_b = len(docs_a), len(docs_b)
    rows = [
        PhraseContrast(p, n / n_a, count_b[p] / n_b, log_odds_z(n, n_a, count_b[p], n_b, prior))
        for p, n in count_a.items()
    ]
    # Equal separation: the longer, more specific phrase first.
    rows.sort(key=lambda r: (-r.separation, -r.words, -r.share_a, r.phrase))
    return rows


def contains_phrase(longer: str, shorter: str) -> bool:
    return f" {shorter} " in f" {longer} "


_SIDE_WORDS = frozenset({"right", "left", "bilateral", "unilateral"})


def names_a_side(text: str) -> bool:
    """Whether a finding says its side ("right", "left-sided", "bilateral")."""
    return any(word.split("-")[0] in _SIDE_WORDS for word in text.lower().split())


def refines(phrase: str, finding: str) -> bool:
    """Whether a zoom crop's phrase says more about the finding searched, or something else about it: it names
    the finding's own words (not its side, size or place: "effusion" of "moderate right pleural effusion") and
    is not a part of it. "large right pleural effusion" refines it; "effusion" and "lobe mass" do not."""
    return core_words(finding) <= set(phrase.split()) and not contains_phrase(as_phrase(finding), phrase)


def as_phrase(finding: str) -> str:
    """A finding in the phrases' own form: lower case, words only, plurals folded ("Pleural effusions")."""
    return " ".join(singular(w) for w in _WORD.findall(finding.lower()))


def core_words(finding: str) -> set[str]:
    """What a finding names, without its side, size or place: {"effusion"} of "moderate right pleural effusion"."""
    words = set(as_phrase(finding).split())
    return {w for w in words if w not in MODIFIERS and w not in STOPWORDS} or words
