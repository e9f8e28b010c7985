"""The offline proposer (no LLM): phrases A's documents affirm clearly more often than B's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.proposers.base import Evidence, Proposal, ProposalInput
from raddiff_orchestrator.agent.proposers.findings import finding_set
from raddiff_orchestrator.agent.proposers.phrases import (
    PhraseContrast,
    as_phrase,
    contains_phrase,
    contrast_phrases,
    core_words,
    log_odds_z,
    names_a_side,
    phrase_set,
    refines,
    statement_set,
)


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
        self,
        docs_a: Sequence[str],
        docs_b: Sequence[str],
        limit: int,
        vocabulary: AbstractSet[str] | None = None,
        reports: bool = False,
    ) -> list[PhraseContrast]:
        """The best separating phrases, at most `limit`; only phrases in `vocabulary` when one is given, and
        only whole findings (see findings.is_finding) when the documents are `reports`."""
        # A phrase seen once is noise unless the sample itself is that small.
        min_share_a = min(self.min_count, len(docs_a)) / len(docs_a) - 1e-12
        extract = finding_set if reports else phrase_set
        rows = [
            r
            for r in contrast_phrases(docs_a, docs_b, self.max_words, self.prior, extract)
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
                if nearly_as_good and other.words > best.words and contains_phrase(other.phrase, best.phrase):
                    best = other
            if any(contains_phrase(c.phrase, best.phrase) or contains_phrase(best.phrase, c.phrase) for c in chosen):
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
        # Given reports, the documents are mostly report prose: contrast only its whole findings.
        with_reports = any(e.report for e in (*docs_a, *docs_b))
        # Each kept finding with what the descriptions say more specifically about it, the better supported
        # wording first: where deduplication finds two the same, the earlier stands for both.
        proposals = []
        for finding in kept:
            better, rest = self.specifics(finding, docs_a, docs_b)
            proposals += [Proposal(t) for t in (*better, finding, *rest)]
        proposals += [
            Proposal(r.phrase)
            for r in self.select([e.text() for e in docs_a], [e.text() for e in docs_b], limit, reports=with_reports)
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
