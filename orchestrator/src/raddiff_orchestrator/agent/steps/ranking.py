"""Ranking: every finding scored on every ranked image, its AUROC (A positive) and ordering."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from raddiff_orchestrator.agent.auroc import auroc_rows
from raddiff_orchestrator.agent.dedup import normal_form
from raddiff_orchestrator.agent.embeddings import CachedEmbedder
from raddiff_orchestrator.agent.ports import DependencyError
from raddiff_orchestrator.agent.results import VisualSearch
from raddiff_orchestrator.agent.specificity import ControlBank, ShiftModel, default_bank
from raddiff_orchestrator.agent.statistics import effect_sizes, softmax_against_negation
from raddiff_orchestrator.agent.steps.state import AnalysisState, IterationWork, Scored, StageReport, seeded_sample


class RankFindings:
    """AUROC of each finding's score over every ranked image of both sets (A positive), and its specific AUROC:
    the same on scores residualised on the shift the control statements share (agent/specificity.py).

    Images and the control statements are embedded once per analysis (and through the cache, once per model);
    a finding ranked in an earlier iteration keeps its scores.
    """

    stage = "rank"
    weight = 0.25

    def __init__(self, embedder: CachedEmbedder, bank: ControlBank | None = None) -> None:
        self._embedder = embedder
        self._bank = bank or default_bank()

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        work = state.current
        if state.image_vectors is None:
            await self._embed_images(state, report)
        assert state.image_vectors is not None
        if state.shift is None:
            controls = await self._embedder.embed_texts(self._bank.texts)
            state.shift = ShiftModel(controls @ state.image_vectors.T, state.positive)
        new = [f for f in dict.fromkeys(work.deduplicated) if normal_form(f) not in state.tested]
        if new:
            self._score(state, new, await self._vectors(state, new))
        evidence = _evidence_by_finding(work)
        # A finding the LLM deduplication reworded came from the zoom grids when every proposal did.
        everything = [p for r in work.rounds for p in r.proposals]
        reworded = (
            [s for r in work.rounds for s in r.searches] if everything and all(p.searches for p in everything) else []
        )
        ranking: list[Scored] = []
        for finding in work.deduplicated:
            key = normal_form(finding)
            scored = state.tested[key]
            if not scored.searches and scored.iteration == work.index:
                scored.searches = list(evidence.get(key, reworded))
            if scored not in ranking:
                ranking.append(scored)
        work.ranking = ranked(ranking, state.task.config.ranker.order)
        if work.index > 1:
            order = state.task.config.ranker.order
            work.ranking = settle_newcomers(work.ranking, work.index, held_out(state), state.positive, order)
        state.embedding_model = await self._embedder.model_id()
        state.cache = vars(self._embedder.use).copy()
        await report(1.0)

    async def _embed_images(self, state: AnalysisState, report: StageReport) -> None:
        config = state.task.config
        cap = config.ranker.max_num_samples or 5000
        state.rank_a = seeded_sample(state.task.set_a.uris, cap, f"{config.seed}:rank:a")
        state.rank_b = seeded_sample(state.task.set_b.uris, cap, f"{config.seed}:rank:b")

        async def batches(fraction: float) -> None:
            await report(0.9 * fraction)

        state.image_vectors = await self._embedder.embed_images([*state.rank_a, *state.rank_b], batches)

    async def _vectors(self, state: AnalysisState, findings: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        texts = await self._embedder.embed_texts(findings)
        negations = None
        if state.task.config.ranker.scoring != "cosine":
            negations = await self._embedder.embed_texts([f"no {f}" for f in findings])
        return texts, negations

    def _score(self, state: AnalysisState, findings: list[str], vectors: tuple[np.ndarray, np.ndarray | None]) -> None:
        images = state.image_vectors
        assert images is not None
        texts, negations = vectors
        if texts.shape[1] != images.shape[1]:
            raise DependencyError(f"text vectors have {texts.shape[1]} dims but image vectors {images.shape[1]}")
        positive = state.positive
        cosine = texts @ images.T  # (findings, images): both sides unit length
        softmax = softmax_against_negation(cosine, negations @ images.T) if negations is not None else None
        scoring = state.task.config.ranker.scoring
        scores = softmax if scoring == "softmax" and softmax is not None else cosine
        aurocs = auroc_rows(scores, positive)
        effects = effect_sizes(scores, positive)
        chexzero = auroc_rows(softmax, positive) if softmax is not None else None
        assert state.shift is not None
        # Always on the cosine, like the controls' similarities the shift is measured on.
        specific = np.concatenate(
            [state.shift.residuals(cosine[i], self._bank.controls_for(f)) for i, f in enumerate(findings)]
        )
        specific_aurocs = auroc_rows(specific, positive)
        specific_effects = effect_sizes(specific, positive)
        index = state.current.index
        for i, finding in enumerate(findings):
            state.tested[normal_form(finding)] = Scored(
                finding=finding,
                scores=scores[i],
                auroc=float(aurocs[i]),
                effect_size=float(effects[i]),
                chexzero_auroc=float(chexzero[i]) if chexzero is not None else None,
                iteration=index,
                specific=specific[i],
                specific_auroc=float(specific_aurocs[i]),
                specific_effect=float(specific_effects[i]),
            )


def ranked(findings: Iterable[Scored], order: str) -> list[Scored]:
    """Best first. Each order breaks its ties by the other figures, and the finding's text last, so that the
    order never depends on which round proposed a finding first."""
    if order == "effect_size":
        return sorted(findings, key=lambda s: (-s.effect_size, -s.auroc, s.finding))
    if order == "specific":
        return sorted(findings, key=lambda s: (-(s.specific_auroc or 0.0), -s.auroc, -s.effect_size, s.finding))
    return sorted(findings, key=lambda s: (-s.auroc, -s.effect_size, -(s.specific_auroc or 0.0), s.finding))


def held_out(state: AnalysisState) -> np.ndarray:
    """Mask of the ranked images (A's first) that no proposal was read from: never described in this analysis."""
    return np.array([uri not in state.captions for uri in [*state.rank_a, *state.rank_b]], dtype=bool)


def settle_newcomers(
    ranking: list[Scored], iteration: int, unseen: np.ndarray, positive: np.ndarray, order: str
) -> list[Scored]:
    """A finding first proposed in this iteration (a refinement or a sibling) stays above an established one only
    when it wins on the images no proposal was read from: on the images it was read from it wins by construction.
    With fewer than two such images in a set, a newcomer never overtakes."""
    enough = min(int((unseen & positive).sum()), int((unseen & ~positive).sum())) >= 2
    key = {id(s): _unseen_key(s, unseen, positive, order) if enough else None for s in ranking}
    out = list(ranking)
    moved = True
    while moved:  # newcomers only ever move down, so this ends
        moved = False
        for i in range(len(out) - 1):
            new, old = out[i], out[i + 1]
            if new.iteration == iteration and old.iteration < iteration:
                wins = key[id(new)] is not None and key[id(new)] > key[id(old)]
                if not wins:
                    out[i], out[i + 1] = old, new
                    moved = True
    return out


def _unseen_key(scored: Scored, unseen: np.ndarray, positive: np.ndarray, order: str) -> tuple[float, float]:
    """The order's statistic on the unseen images only: (AUROC, effect size) of the scores the order ranks by."""
    values = scored.specific if order == "specific" and scored.specific is not None else scored.scores
    rows, labels = values[unseen][None, :], positive[unseen]
    auroc, effect = float(auroc_rows(rows, labels)[0]), float(effect_sizes(rows, labels)[0])
    return (effect, auroc) if order == "effect_size" else (auroc, effect)


def _evidence_by_finding(work: IterationWork) -> dict[str, list[VisualSearch]]:
    """The zoom crops that led to each of an iteration's proposals, by normal form ([] for none)."""
    out: dict[str, list[VisualSearch]] = {}
    for rnd in work.rounds:
        for proposal in rnd.proposals:
            led = out.setdefault(normal_form(proposal.text), [])
            led.extend(rnd.searches[i] for i in proposal.searches if rnd.searches[i] not in led)
    return out
