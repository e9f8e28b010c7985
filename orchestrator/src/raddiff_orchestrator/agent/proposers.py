"""Proposers turn what is known about two samples (descriptions, reports, image grids, the previous
iteration's scores and zoom grids) into candidate findings, phrased in radiology language, that are
more common in A than in B.

Each proposer is a strategy behind one small interface:
- LLMProposer in three styles: "visdiff" (descriptions only, a general-domain prompt: the VisDiff
  baseline), "raddiff" (descriptions plus the two 4x5 grids to a multimodal LLM: RadDiff's default),
  "reports" (the sets' reports plus the grids: RadDiff's upper bound);
- ContrastProposer, the offline one (no LLM): phrases whose share of A's documents stands out against
  B's by the log-odds ratio with an informative Dirichlet prior (Monroe et al. 2008); it refines from
  the VLM's descriptions of the zoom crops and keeps what scored well;
- FallbackProposer ("auto"): the LLM while it has a model behind it, else the offline one.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from raddiff_kit.json_schema import short_text
from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.ports import ChatMessage, ChatModel, DependencyError, NotConfigured, Sampling
from raddiff_orchestrator.agent.results import RankedBrief, VisualSearch


@dataclass(frozen=True)
class Evidence:
    """What is known about one sampled image: its caption and, when given, its report."""

    uri: str
    caption: str
    report: str = ""

    def text(self) -> str:
        return f"{self.caption}\n{self.report}" if self.report else self.caption


@dataclass(frozen=True)
class ProposalInput:
    """One round's material: the samples' evidence, their grids, and from iteration 2 the feedback."""

    a: Sequence[Evidence]
    b: Sequence[Evidence]
    grid_a: str = ""  # 4x5 grid of A's sample (multimodal proposers), scratch:// uri
    grid_b: str = ""
    feedback: Sequence[RankedBrief] = ()  # the previous iteration's top-k with their AUROC
    searches: Sequence[VisualSearch] = ()  # one zoom grid per top finding, when cropping
    # Every image of each set described so far in the analysis (earlier rounds and iterations too).
    described_a: Sequence[Evidence] = ()
    described_b: Sequence[Evidence] = ()


@dataclass(frozen=True)
class Proposal:
    text: str
    searches: tuple[int, ...] = ()  # indices into ProposalInput.searches of the zoom crops that led to it


class Proposer(Protocol):
    name: str
    needs_grids: bool  # whether rounds must draw the 4x5 grids of their samples
    needs_captions: bool  # whether sampled images must be described by the VLM
    uses_llm: bool

    async def propose(self, given: ProposalInput, config: AgentConfig, notes: list[str]) -> list[Proposal]:
        """The round's findings; every retry, repair or fallback is appended to notes."""
        ...


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


# -- the LLM proposers ----------------------------------------------------------------------

RADIOLOGY_SYSTEM = (
    "You are an expert radiologist. You compare two groups of chest X-rays and name, in radiology "
    "language, the findings that distinguish the first group from the second."
)
GENERAL_SYSTEM = "You are a careful analyst who compares two groups of images and names what sets them apart."
_MAX_TEXT_CHARS = 1200  # per caption or report; keeps a 2 x 20 image prompt well inside any context

_PHRASING = (
    "Each finding is one short phrase a radiologist would write about a single image, specific about side, "
    'location and severity when they matter (for example "right pleural effusion", "enlarged cardiac '
    'silhouette", "left lower lobe consolidation"). Name what is present in group A, never an absence, and do '
    "not mention the groups in a finding."
)
_GENERAL_PHRASING = (
    "Each concept is a short phrase that could describe a single image of group A (for example "
    '"bright region at the bottom", "large round shape"). Do not mention the groups in a concept.'
)


def findings_schema(config: AgentConfig) -> dict[str, Any]:
    proposer = config.proposer
    return {
        "type": "object",
        "properties": {
            "findings": {
                "type": "array",
                "items": short_text(120),
                "minItems": min(proposer.min_hypotheses, proposer.num_hypotheses),
                "maxItems": proposer.num_hypotheses,
            }
        },
        "required": ["findings"],
        "additionalProperties": False,
    }


def group_lines(a: Sequence[Evidence], b: Sequence[Evidence], source: str) -> str:
    """RadDiff's layout: one line per image, "Group A: ..." then "Group B: ..."; source caption or report."""

    def one(group: str, item: Evidence) -> str:
        text = item.report if source == "report" else item.caption
        flat = " ".join((text or "(none)").split())[:_MAX_TEXT_CHARS]
        return f"Group {group}: {flat}"

    return "\n".join([*(one("A", e) for e in a), *(one("B", e) for e in b)])


def feedback_block(feedback: Sequence[RankedBrief]) -> str:
    """RadDiff's previous-results block: "Top k Difference: ..." / "Top k Score: ..." lines."""
    lines = []
    for i, item in enumerate(feedback, 1):
        lines.append(f"Top {i} Difference: {item.finding}")
        lines.append(f"Top {i} Score: {item.auroc:.3f}")
    return "\n".join(lines)


def proposal_prompt(style: str, given: ProposalInput, config: AgentConfig) -> str:
    """The user message of one proposal round; the images travel beside it (see proposal_images)."""
    low, high = min(config.proposer.min_hypotheses, config.proposer.num_hypotheses), config.proposer.num_hypotheses
    source = "report" if style == "reports" else "caption"
    what = "radiology reports" if source == "report" else "descriptions written by a vision-language model"
    parts: list[str] = []
    if style == "visdiff":
        parts.append(
            "Here are descriptions of the images of two groups, one per line, each starting with its group.\n\n"
            + group_lines(given.a, given.b, source)
        )
    else:
        if given.searches:
            parts.append(_zoom_intro(given))
        else:
            parts.append(
                f"The first image is a 4x5 grid of group A's chest X-rays ({len(given.a)} images, up to 20 shown); "
                f"the second is the same for group B ({len(given.b)} images)."
            )
        parts.append(
            f"Here are the {what} of the same X-rays, one per line:\n\n" + group_lines(given.a, given.b, source)
        )
    if given.feedback:
        parts.append(
            "In the previous iteration these were the top findings. Each score is the AUROC with which the "
            "finding's image-text similarity separates group A (positive) from group B: 0.5 is chance, 1.0 is "
            "perfect separation.\n" + feedback_block(given.feedback) + "\n"
            "Refine them: keep what scores well, make it more specific (side, location, severity), and replace "
            "what scores near 0.5 with findings the images support better."
        )
    if style == "visdiff":
        parts.append(
            f"List {low} to {high} distinct concepts that are more often true of group A's images than of group "
            f"B's. {_GENERAL_PHRASING}"
        )
    else:
        parts.append(
            f"List {low} to {high} radiological findings that are more common in group A than in group B. {_PHRASING}"
        )
    parts.append('Answer with JSON only: {"findings": ["...", "..."]}.')
    return "\n\n".join(parts)


def _zoom_intro(given: ProposalInput) -> str:
    n_a = len(given.searches[0].crop_uris.get("a", []))
    lines = [
        f"The images are zoom grids, one per previous top finding. Zoom grid k shows the region boxed for Top k "
        f"Difference, cropped from every sampled X-ray: the first {n_a} tiles (in reading order) are group A's, "
        "the rest group B's."
    ]
    for i, search in enumerate(given.searches, 1):
        box = search.box
        lines.append(
            f'Zoom grid {i}: Top {i} Difference "{search.finding}", region x {box.x0:.2f}-{box.x1:.2f}, '
            f"y {box.y0:.2f}-{box.y1:.2f} of the X-ray."
        )
    return "\n".join(lines)


def proposal_images(style: str, given: ProposalInput) -> tuple[str, ...]:
    """RadDiff's images: the two grids in iteration 1; the zoom grids once there are searches."""
    if style == "visdiff":
        return ()
    if given.searches:
        return tuple(s.grid_uri for s in given.searches)
    return tuple(u for u in (given.grid_a, given.grid_b) if u)


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
    """An LLM reads both groups (and, multimodal, looks at their grids) and names what A has more of.

    An unusable answer is sent back with what is wrong, up to `attempts` answers; the notes say so.
    """

    needs_captions = True
    uses_llm = True

    def __init__(self, chat: ChatModel, style: str = "raddiff", attempts: int = 2) -> None:
        if style not in ("visdiff", "raddiff", "reports"):
            raise ValueError(f"unknown LLM proposer style {style!r}")
        self._chat = chat
        self._attempts = attempts
        self.name = style
        self.needs_grids = style != "visdiff"
        self.needs_captions = style != "reports"

    async def propose(self, given: ProposalInput, config: AgentConfig, notes: list[str]) -> list[Proposal]:
        system = GENERAL_SYSTEM if self.name == "visdiff" else RADIOLOGY_SYSTEM
        user = ChatMessage("user", proposal_prompt(self.name, given, config), proposal_images(self.name, given))
        messages = [ChatMessage("system", system), user]
        sampling = Sampling(max_tokens=1024, temperature=0.0, seed=config.seed)
        led_by = tuple(range(len(given.searches)))
        problem = ""
        for attempt in range(1, self._attempts + 1):
            answer = await self._chat.chat(messages, findings_schema(config), sampling)
            try:
                found = parse_findings(answer, config.proposer.num_hypotheses)
            except ValueError as exc:
                problem = str(exc)
                notes.append(f"{self.name} proposer: answer {attempt} unusable ({problem})")
                # Say what was wrong; the changed conversation also bypasses any response cache.
                messages = [
                    *messages,
                    ChatMessage("assistant", answer),
                    ChatMessage("user", f"That answer cannot be used: {problem}. Answer again with JSON only."),
                ]
                continue
            return [Proposal(text, led_by) for text in found]
        raise DependencyError(f"the LLM gave no usable findings after {self._attempts} attempts: {problem}")


class FallbackProposer:
    """The "auto" choice: the LLM while it has a model behind it; from its first NotConfigured, the fallback."""

    def __init__(self, primary: Proposer, fallback: Proposer) -> None:
        self._primary, self._fallback = primary, fallback
        self._active = primary

    @property
    def active(self) -> Proposer:
        return self._active

    @property
    def name(self) -> str:
        return self._active.name

    @property
    def needs_grids(self) -> bool:
        return self._active.needs_grids

    @property
    def needs_captions(self) -> bool:
        return self._primary.needs_captions or self._fallback.needs_captions

    @property
    def uses_llm(self) -> bool:
        return self._active.uses_llm

    async def propose(self, given: ProposalInput, config: AgentConfig, notes: list[str]) -> list[Proposal]:
        if self._active is self._primary:
            try:
                return await self._primary.propose(given, config, notes)
            except NotConfigured as exc:
                self._active = self._fallback
                notes.append(
                    f"the {self._primary.name} proposer is not available ({exc}); used the {self._fallback.name} "
                    "proposer from here on"
                )
        return await self._fallback.propose(given, config, notes)


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
        yield from _ngrams(run, max_words)


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
        while run and run[0] in _STOPWORDS:
            run = run[1:]
        while run and run[-1] in _STOPWORDS:
            run = run[:-1]
        if 0 < len(run) <= max_words and len(set(run)) == len(run) and not set(run) <= _MODIFIERS | _STOPWORDS:
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


def _ngrams(words: list[str], max_words: int) -> Iterator[str]:
    for n in range(1, max_words + 1):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if gram[0] in _STOPWORDS or gram[-1] in _STOPWORDS or "xxxx" in gram:
                continue
            if len(set(gram)) < n:
                continue  # "right right pleural": a stutter of degenerate output, never a finding
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


def contrast_phrases(
    docs_a: Sequence[str], docs_b: Sequence[str], max_words: int = 4, prior: float = 4.0
) -> list[PhraseContrast]:
    """Every phrase of A with the share of A's and B's documents that affirm it, most separating first."""
    if not docs_a or not docs_b:
        raise ValueError("contrasting phrases needs documents on both sides")
    count_a = Counter(p for doc in docs_a for p in phrase_set(doc, max_words))
    count_b = Counter(p for doc in docs_b for p in phrase_set(doc, max_words))
    n_a, n_b = len(docs_a), len(docs_b)
    rows = [
        PhraseContrast(p, n / n_a, count_b[p] / n_b, log_odds_z(n, n_a, count_b[p], n_b, prior))
        for p, n in count_a.items()
    ]
    # Equal separation: the longer, more specific phrase first.
    rows.sort(key=lambda r: (-r.separation, -r.words, -r.share_a, r.phrase))
    return rows


def _contains(longer: str, shorter: str) -> bool:
    return f" {shorter} " in f" {longer} "


_SIDE_WORDS = frozenset({"right", "left", "bilateral", "unilateral"})


def names_a_side(text: str) -> bool:
    """Whether a finding says its side ("right", "left-sided", "bilateral")."""
    return any(word.split("-")[0] in _SIDE_WORDS for word in text.lower().split())


def refines(phrase: str, finding: str) -> bool:
    """Whether a zoom crop's phrase says more about the finding searched, or something else about it: it names
    the finding's own words (not its side, size or place: "effusion" of "moderate right pleural effusion") and
    is not a part of it. "large right pleural effusion" refines it; "effusion" and "lobe mass" do not."""
    return core_words(finding) <= set(phrase.split()) and not _contains(as_phrase(finding), phrase)


def as_phrase(finding: str) -> str:
    """A finding in the phrases' own form: lower case, words only, plurals folded ("Pleural effusions")."""
    return " ".join(singular(w) for w in _WORD.findall(finding.lower()))


def core_words(finding: str) -> set[str]:
    """What a finding names, without its side, size or place: {"effusion"} of "moderate right pleural effusion"."""
    words = set(as_phrase(finding).split())
    return {w for w in words if w not in _MODIFIERS and w not in _STOPWORDS} or words


def region_words(x0: float, y0: float, x1: float, y1: float) -> str:
    """Where a box lies on a frontal chest X-ray, in a radiologist's words ("right lower", "left", "").

    The patient's right is on the image's left (the radiographic convention). Central boxes name no side.
    """
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = "right" if cx < 0.4 else "left" if cx > 0.6 else ""
    zone = "upper" if cy < 0.4 else "lower" if cy > 0.6 else ""
    return " ".join(w for w in (side, zone) if w) if side else ""


class ContrastProposer:
    """The offline proposer: phrases that A's documents affirm clearly more often than B's.

    Phrases are ordered by the log-odds z-score ("log_odds", the default) or by separation (share of A's
    documents minus share of B's) and kept when they separate by at least `min_separation`. A phrase is
    replaced by a longer phrase containing it when that one separates nearly as well ("effusion" ->
    "pleural effusion"), and a phrase overlapping one already chosen is skipped.

    Refinement (iteration 2 on): the previous top findings that separated better than chance and that this
    round's sample does not contradict (see `replicated`) come first, so they compete again and deduplication
    keeps their wording, each with what the descriptions state more specifically about it (see `specifics`;
    a statement better supported than the finding's own words goes before it); phrases are contrasted over
    every image described so far in the analysis, so a phrase that one new sample happens to favour does not
    displace what the earlier ones established; each zoom crop set the VLM described is contrasted the same
    way (A's crops against B's), keeping the phrases that refine the finding searched; and a finding whose box
    lies to one side is proposed again with that side.
    """

    name = "offline"
    needs_grids = False
    needs_captions = True
    uses_llm = False

    def __init__(
        self,
        min_separation: float = 0.1,
        min_count: int = 2,
        max_words: int = 4,
        specificity: float = 0.75,
        statistic: str = "log_odds",
        prior: float = 4.0,
        per_search: int = 3,
        per_finding: int = 3,
    ) -> None:
        if statistic not in ("log_odds", "separation"):
            raise ValueError(f"unknown statistic {statistic!r}")
        self.min_separation = min_separation
        self.min_count = min_count
        self.max_words = max_words
        self.specificity = specificity
        self.statistic = statistic
        self.prior = prior
        self.per_search = per_search
        self.per_finding = per_finding

    def select(
        self, docs_a: Sequence[str], docs_b: Sequence[str], limit: int, vocabulary: AbstractSet[str] | None = None
    ) -> list[PhraseContrast]:
        """The best separating phrases, at most `limit`; only phrases in `vocabulary` when one is given."""
        # A phrase seen once is noise unless the sample itself is that small.
        min_share_a = min(self.min_count, len(docs_a)) / len(docs_a) - 1e-12
        rows = [
            r
            for r in contrast_phrases(docs_a, docs_b, self.max_words, self.prior)
            if r.separation >= self.min_separation
            and r.share_a >= min_share_a
            and (vocabulary is None or r.phrase in vocabulary)
        ]
        if self.statistic == "log_odds":
            rows.sort(key=lambda r: (-round(r.z, 9), -r.words, r.phrase))
        chosen: list[PhraseContrast] = []
        for row in rows:
            if len(chosen) >= limit:
                break
            best = row
            for other in rows:  # each step up is the best longer phrase
                nearly_as_good = other.separation >= self.specificity * row.separation
                if nearly_as_good and other.words > best.words and _contains(other.phrase, best.phrase):
                    best = other
            if any(_contains(c.phrase, best.phrase) or _contains(best.phrase, c.phrase) for c in chosen):
                continue
            chosen.append(best)
        return chosen

    def vocabulary(self, evidence: Sequence[Evidence]) -> frozenset[str]:
        """Every phrase that some of these documents affirm."""
        return frozenset().union(*(phrase_set(e.text(), self.max_words) for e in evidence))

    def replicated(self, given: ProposalInput) -> list[str]:
        """The previous top findings that beat chance and that this round's own sample does not contradict.

        A finding the VLM says of some described image must again be affirmed by more of this round's A
        images than of its B images: a phrase that one earlier sample favoured by chance (a device present at
        the same rate in both sets) is dropped, as RadDiff's LLM drops what scored poorly. With new samples
        each iteration (proposer.resample) this is a test on fresh images; a finding no described image
        mentions (an LLM's wording) is kept, since the descriptions say nothing about it.
        """
        seen = self.vocabulary([*given.described_a, *given.described_b])
        docs_a = [phrase_set(e.text(), self.max_words) for e in given.a]
        docs_b = [phrase_set(e.text(), self.max_words) for e in given.b]
        kept = []
        for item in given.feedback:
            if item.auroc <= 0.5:
                continue
            phrase = as_phrase(item.finding)
            if phrase in seen and docs_a and docs_b:
                share_a = sum(phrase in doc for doc in docs_a) / len(docs_a)
                share_b = sum(phrase in doc for doc in docs_b) / len(docs_b)
                if share_a <= share_b:
                    continue
            kept.append(item.finding)
        return kept

    def specifics(
        self, finding: str, docs_a: Sequence[Evidence], docs_b: Sequence[Evidence]
    ) -> tuple[list[str], list[str]]:
        """What the descriptions say more specifically about a finding, more often of A than of B: those they
        support better than the finding's own words, and the rest.

        The offline counterpart of RadDiff's "make it more specific (side, location, severity)": the whole
        statements that name what the finding names ("large bilateral pleural effusion" or "severe
        cardiomegaly" for "right pleural effusion" or "cardiomegaly"), at most `per_finding`, by the log-odds z
        of the documents stating them; each stated by at least `min_count` of A's documents. A finding no
        document states whole ("lobe mass", a fragment) is supported less than any statement containing it.
        """
        n_a, n_b = len(docs_a), len(docs_b)
        if not n_a or not n_b:
            return [], []
        core, own = core_words(finding), as_phrase(finding)
        count_a = Counter(s for e in docs_a for s in statement_set(e.text()) if core <= set(s.split()))
        count_b = Counter(s for e in docs_b for s in statement_set(e.text()) if core <= set(s.split()))
        rows = [
            (log_odds_z(n, n_a, count_b[s], n_b, self.prior), s)
            for s, n in count_a.items()
            if s != own and n >= min(self.min_count, n_a) and n / n_a > count_b[s] / n_b
        ]
        rows.sort(key=lambda r: (-round(r[0], 9), r[1]))
        own_z = log_odds_z(count_a[own], n_a, count_b[own], n_b, self.prior)
        chosen = rows[: self.per_finding]
        return [s for z, s in chosen if z > own_z], [s for z, s in chosen if z <= own_z]

    async def propose(self, given: ProposalInput, config: AgentConfig, notes: list[str]) -> list[Proposal]:
        limit = config.proposer.num_hypotheses
        refining = bool(given.feedback)
        kept = self.replicated(given) if refining else []
        dropped = {item.finding for item in given.feedback if item.auroc > 0.5} - set(kept)  # not replicated
        docs_a, docs_b = given.a, given.b
        if refining and given.described_a and given.described_b:
            docs_a, docs_b = given.described_a, given.described_b
        # Each kept finding with what the descriptions say more specifically about it, the better supported
        # wording first: where deduplication finds two the same, the earlier stands for both.
        proposals = []
        for finding in kept:
            better, rest = self.specifics(finding, docs_a, docs_b)
            proposals += [Proposal(t) for t in (*better, finding, *rest)]
        proposals += [
            Proposal(r.phrase)
            for r in self.select([e.text() for e in docs_a], [e.text() for e in docs_b], limit)
            if r.phrase not in dropped
        ]
        # The VLM describes a crop out of the setting it learned in, and its wording can degrade there;
        # a crop's phrase counts only when the VLM also says it of some whole image.
        attested = self.vocabulary([*given.a, *given.b])
        for index, search in enumerate(given.searches):
            if search.auroc <= 0.5:
                continue  # a search for a finding more common in B refines nothing about A
            crops_a, crops_b = search.captions.get("a", []), search.captions.get("b", [])
            if crops_a and crops_b:
                for row in self.select(crops_a, crops_b, self.per_search, attested):
                    if refines(row.phrase, search.finding):
                        proposals.append(Proposal(row.phrase, (index,)))
            where = region_words(search.box.x0, search.box.y0, search.box.x1, search.box.y1)
            said = set(search.finding.lower().split())
            if where and not names_a_side(search.finding) and said.isdisjoint(where.split()):
                proposals.append(Proposal(f"{where} {search.finding}", (index,)))
        return proposals
