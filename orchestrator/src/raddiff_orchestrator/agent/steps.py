"""The agent's steps. Each reads and extends one AnalysisState; a pipeline runs them in order.

One iteration is: draw the rounds' samples, describe them (VLM), draw their grids, search the
previous top findings' regions (iteration 2 on), propose per round, deduplicate the pooled
proposals, rank them by AUROC, judge them. After the last iteration the statistics step builds
the final ranking with its confidence intervals, p- and q-values.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from raddiff_orchestrator.agent.auroc import auroc_rows
from raddiff_orchestrator.agent.dedup import Deduplicator, normal_form
from raddiff_orchestrator.agent.embeddings import CachedEmbedder
from raddiff_orchestrator.agent.ports import Box, Captioner, DependencyError, Judge, Localizer, Sampling
from raddiff_orchestrator.agent.proposers import Evidence, Proposal, ProposalInput, Proposer
from raddiff_orchestrator.agent.results import (
    AnalysisResult,
    BoxOut,
    Evaluation,
    FindingResult,
    Histogram,
    ImageScore,
    IterationResult,
    ProposalRound,
    RankedBrief,
    VisualSearch,
)
from raddiff_orchestrator.agent.statistics import (
    FindingStats,
    benjamini_hochberg,
    effect_sizes,
    finding_stats,
    histogram,
    permutation_p_values,
    softmax_against_negation,
)
from raddiff_orchestrator.agent.task import AnalysisTask

StageReport = Callable[[float], Awaitable[None]]  # fraction of the current step done

GRID_CAPACITY = 20  # a 4x5 grid per set (LocalizeService.Grid, and each half of Localize's combined grid)
WHOLE_IMAGE = Box(0.0, 0.0, 1.0, 1.0)
MIN_BOX_SIDE = 0.05  # a thinner box is widened around its centre: a sliver shows nothing when zoomed


def accuracy_at(scores: Sequence[int], k: int) -> float:
    """RadDiff's Acc@k: the best judge score among the top k, over the maximum score 2."""
    return max(scores[:k], default=0) / 2.0


def seeded_sample(uris: Sequence[str], k: int, seed: str) -> list[str]:
    """k of the uris, the same k for the same seed; all of them, in order, when k covers them."""
    if k >= len(uris):
        return list(uris)
    return random.Random(seed).sample(list(uris), k)


# -- the state -----------------------------------------------------------------------------------
@dataclass
class RoundWork:
    index: int
    sample_a: list[str]
    sample_b: list[str]
    grid_a: str = ""
    grid_b: str = ""
    searches: list[VisualSearch] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)


@dataclass
class Scored:
    """A finding scored on every ranked image (A's first, then B's)."""

    finding: str
    scores: np.ndarray
    auroc: float
    effect_size: float  # Cohen's d, A minus B
    chexzero_auroc: float | None
    iteration: int  # the first iteration that proposed it
    searches: list[VisualSearch] = field(default_factory=list)


@dataclass
class IterationWork:
    index: int
    feedback: list[RankedBrief] = field(default_factory=list)
    rounds: list[RoundWork] = field(default_factory=list)
    deduplicated: list[str] = field(default_factory=list)
    ranking: list[Scored] = field(default_factory=list)
    evaluation: Evaluation | None = None


@dataclass
class AnalysisState:
    task: AnalysisTask
    captions: dict[str, str] = field(default_factory=dict)  # each image described once per analysis
    iterations: list[IterationWork] = field(default_factory=list)
    rank_a: list[str] = field(default_factory=list)
    rank_b: list[str] = field(default_factory=list)
    image_vectors: np.ndarray | None = None
    tested: dict[str, Scored] = field(default_factory=dict)  # normal form -> every finding ranked in the run
    final: list[Scored] = field(default_factory=list)
    final_stats: list[FindingStats] = field(default_factory=list)
    q_values: dict[str, float] = field(default_factory=dict)
    evaluation: Evaluation | None = None
    proposer: str = ""
    embedding_model: str = ""
    cache: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def current(self) -> IterationWork:
        return self.iterations[-1]

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def evidence(self, uris: Sequence[str]) -> list[Evidence]:
        reports = self.task.reports
        return [Evidence(u, self.captions.get(u, ""), reports.get(u, "")) for u in uris]

    def described(self, uris: Sequence[str]) -> list[Evidence]:
        """The evidence of every image of `uris` described so far in this analysis, any round or iteration."""
        return self.evidence([u for u in uris if u in self.captions])

    def result(self) -> dict[str, Any]:
        return build_result(self).to_json()


class Step(Protocol):
    stage: str
    weight: float  # share of the whole run's progress

    async def run(self, state: AnalysisState, report: StageReport) -> None: ...


# -- sampling and description ------------------------------------------------------------------
class DrawSamples:
    """Each round's samples, seeded; the same ones every iteration unless proposer.resample."""

    stage = "sample"
    weight = 0.01

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        config = state.task.config
        draw = self.iteration if config.proposer.resample else 1
        work = IterationWork(self.iteration)
        if state.iterations:
            work.feedback = [RankedBrief(s.finding, s.auroc) for s in state.current.ranking[: config.proposer.topk]]
        for r in range(1, config.proposer.num_rounds + 1):
            seed = f"{config.seed}:sample:{draw}:{r}"
            n = config.proposer.num_samples
            work.rounds.append(
                RoundWork(
                    r,
                    seeded_sample(state.task.set_a.uris, n, f"{seed}:a"),
                    seeded_sample(state.task.set_b.uris, n, f"{seed}:b"),
                )
            )
        state.iterations.append(work)


class DescribeImages:
    """The VLM describes every sampled image not described yet ("Describe this image in detail.")."""

    stage = "caption"
    weight = 0.3

    def __init__(self, captioner: Captioner | None, proposer: Proposer, concurrency: int, max_tokens: int) -> None:
        self._captioner = captioner
        self._proposer = proposer
        self._concurrency = concurrency
        self._max_tokens = max_tokens

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        if not self._proposer.needs_captions:
            return
        if self._captioner is None:
            raise DependencyError("no captioning model is configured (RADDIFF_VLM_TARGET)")
        wanted = dict.fromkeys(u for r in state.current.rounds for u in [*r.sample_a, *r.sample_b])
        todo = [u for u in wanted if u not in state.captions]
        config = state.task.config
        texts = await describe(
            self._captioner,
            todo,
            config.captioner.prompt,
            Sampling(self._max_tokens, 0.0, config.seed),
            self._concurrency,
            report,
        )
        for uri, text in zip(todo, texts, strict=True):
            state.captions[uri] = text
            if not text:
                state.note(f"the VLM gave an empty description of {uri}")


async def describe(
    captioner: Captioner, uris: Sequence[str], prompt: str, sampling: Sampling, concurrency: int, report: StageReport
) -> list[str]:
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(uri: str) -> str:
        nonlocal done
        async with gate:
            text = await captioner.caption(uri, prompt, sampling)
        done += 1
        await report(done / len(uris))
        return " ".join(text.split())

    return list(await asyncio.gather(*(one(u) for u in uris)))


class DrawGrids:
    """The two 4x5 grids of each round's samples, for a multimodal proposer in a round without zoom grids."""

    stage = "grid"
    weight = 0.02

    def __init__(self, localizer: Localizer | None, proposer: Proposer, cropping: bool) -> None:
        self._localizer = localizer
        self._proposer = proposer
        self._cropping = cropping

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        work = state.current
        if not self._proposer.needs_grids or (self._cropping and work.feedback):
            return  # RadDiff shows zoom grids instead once there are findings to search
        if self._localizer is None:
            raise DependencyError(
                "the proposer needs image grids but no localize service is configured (RADDIFF_LOCALIZE_TARGET)"
            )
        for i, rnd in enumerate(work.rounds, 1):
            rnd.grid_a = await self._localizer.grid(shown(rnd.sample_a, state), [])
            rnd.grid_b = await self._localizer.grid(shown(rnd.sample_b, state), [])
            await report(i / len(work.rounds))


def shown(sample: list[str], state: AnalysisState) -> list[str]:
    """The images of a sample that fit one 4x5 block."""
    if len(sample) > GRID_CAPACITY:
        state.note(f"grids and zoom grids show the first {GRID_CAPACITY} of each sample of {len(sample)} images")
    return sample[:GRID_CAPACITY]


# -- targeted visual search -------------------------------------------------------------------------
def repair_boxes(boxes: Sequence[Box], findings: Sequence[str], notes: list[str]) -> list[Box]:
    """Exactly one usable box per finding: extra boxes dropped, missing ones the whole image, values clamped
    into [0, 1], reversed corners swapped, slivers widened; every repair noted."""
    count = len(findings)
    if len(boxes) != count:
        remedy = "extra ones ignored" if len(boxes) > count else "the whole image used for the missing"
        notes.append(f"search: {len(boxes)} boxes came back for {count} findings; {remedy}")
    out: list[Box] = []
    for i, finding in enumerate(findings):
        if i >= len(boxes):
            out.append(WHOLE_IMAGE)
            continue
        box = boxes[i]
        values = [box.x0, box.y0, box.x1, box.y1]
        if not all(math.isfinite(v) for v in values):
            notes.append(f"search: the box for {finding!r} has a non-finite value; used the whole image")
            out.append(WHOLE_IMAGE)
            continue
        x0, y0, x1, y1 = (min(1.0, max(0.0, v)) for v in values)
        if [x0, y0, x1, y1] != values:
            notes.append(
                f"search: the box for {finding!r} {tuple(round(v, 3) for v in values)} was clamped into [0, 1]"
            )
        if x0 > x1 or y0 > y1:
            notes.append(f"search: the box for {finding!r} had reversed corners; swapped them")
            x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
            notes.append(f"search: the box for {finding!r} was thinner than {MIN_BOX_SIDE}; widened it")
            x0, x1 = _widen(x0, x1)
            y0, y1 = _widen(y0, y1)
        out.append(Box(x0, y0, x1, y1))
    return out


def _widen(low: float, high: float) -> tuple[float, float]:
    if high - low >= MIN_BOX_SIDE:
        return low, high
    centre = min(1 - MIN_BOX_SIDE / 2, max(MIN_BOX_SIDE / 2, (low + high) / 2))
    return centre - MIN_BOX_SIDE / 2, centre + MIN_BOX_SIDE / 2


class SearchRegions:
    """RadDiff's targeted visual search, per round: one box per previous top finding (Localize with the
    configured backend), that box cropped from the round's sampled images into an 8x5 zoom grid, and for
    the offline proposer the crops re-described by the VLM."""

    stage = "search"
    weight = 0.12

    def __init__(
        self,
        localizer: Localizer | None,
        captioner: Captioner | None,
        proposer: Proposer,
        concurrency: int,
        max_tokens: int,
    ) -> None:
        self._localizer = localizer
        self._captioner = captioner
        self._proposer = proposer
        self._concurrency = concurrency
        self._max_tokens = max_tokens

    def backend(self, state: AnalysisState) -> str:
        chosen = state.task.config.proposer.box_source
        if chosen == "auto":
            return "llm" if self._proposer.uses_llm else "model"
        return chosen

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        work = state.current
        if not work.feedback:
            state.note(f"iteration {work.index}: no findings from the previous iteration to search")
            return
        if self._localizer is None:
            raise DependencyError("iterative_cropping needs the localize service (RADDIFF_LOCALIZE_TARGET)")
        findings = [f.finding for f in work.feedback]
        aurocs = {f.finding: f.auroc for f in work.feedback}
        backend = self.backend(state)
        for i, rnd in enumerate(work.rounds, 1):
            shown_a, shown_b = shown(rnd.sample_a, state), shown(rnd.sample_b, state)
            answer = await self._localizer.localize(shown_a, shown_b, findings, backend)
            for repair in answer.repairs:
                state.note(f"search ({answer.backend or backend}): {repair}")
            boxes = repair_boxes(answer.boxes, findings, state.notes)
            for finding, box in zip(findings, boxes, strict=True):
                grid, crops = await self._localizer.crop([*shown_a, *shown_b], box)
                if len(crops) != len(shown_a) + len(shown_b):
                    raise DependencyError(
                        f"localize Crop returned {len(crops)} crops for {len(shown_a) + len(shown_b)} images"
                    )
                crops_a, crops_b = crops[: len(shown_a)], crops[len(shown_a) :]
                captions = await self._describe_crops(crops_a, crops_b, state)
                rnd.searches.append(
                    VisualSearch(
                        finding=finding,
                        auroc=aurocs[finding],
                        box=BoxOut(box.x0, box.y0, box.x1, box.y1),
                        backend=answer.backend or backend,
                        grid_uri=grid,
                        crop_uris={"a": crops_a, "b": crops_b},
                        captions=captions,
                    )
                )
            await report(i / len(work.rounds))

    async def _describe_crops(
        self, crops_a: list[str], crops_b: list[str], state: AnalysisState
    ) -> dict[str, list[str]]:
        """The offline proposer refines from words: the VLM describes a few crops of each set."""
        config = state.task.config
        n = 0 if self._proposer.uses_llm else min(config.proposer.describe_crops, len(crops_a), len(crops_b))
        if n == 0:
            return {"a": [], "b": []}
        if self._captioner is None:
            raise DependencyError("describing the zoom crops needs the VLM (RADDIFF_VLM_TARGET)")

        async def ignore(_: float) -> None:
            return None

        sampling = Sampling(self._max_tokens, 0.0, config.seed)
        texts = await describe(
            self._captioner, [*crops_a[:n], *crops_b[:n]], config.captioner.prompt, sampling, self._concurrency, ignore
        )
        return {"a": texts[:n], "b": texts[n:]}


# -- proposals, deduplication, ranking ----------------------------------------------------------------
class ProposeFindings:
    stage = "propose"
    weight = 0.12

    def __init__(self, proposer: Proposer) -> None:
        self._proposer = proposer

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        work = state.current
        config = state.task.config
        for i, rnd in enumerate(work.rounds, 1):
            given = ProposalInput(
                a=state.evidence(rnd.sample_a),
                b=state.evidence(rnd.sample_b),
                grid_a=rnd.grid_a,
                grid_b=rnd.grid_b,
                feedback=work.feedback,
                searches=rnd.searches,
                described_a=state.described(state.task.set_a.uris),
                described_b=state.described(state.task.set_b.uris),
            )
            rnd.proposals = await self._proposer.propose(given, config, state.notes)
            state.proposer = self._proposer.name
            if not rnd.proposals:
                state.note(
                    f"iteration {work.index} round {rnd.index}: the {self._proposer.name} proposer found no "
                    "finding more common in A than in B"
                )
            await report(i / len(work.rounds))


class DeduplicateFindings:
    stage = "dedup"
    weight = 0.03

    def __init__(self, deduplicator: Deduplicator) -> None:
        self._deduplicator = deduplicator

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        work = state.current
        pooled = [p.text for r in work.rounds for p in r.proposals]
        work.deduplicated = await self._deduplicator.deduplicate(pooled, state.notes) if pooled else []


class RankFindings:
    """AUROC of each finding's score over every ranked image of both sets (A positive).

    Images are embedded once per analysis (and through the cache, once per model); a finding ranked in an
    earlier iteration keeps its scores.
    """

    stage = "rank"
    weight = 0.25

    def __init__(self, embedder: CachedEmbedder) -> None:
        self._embedder = embedder

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        work = state.current
        if state.image_vectors is None:
            await self._embed_images(state, report)
        assert state.image_vectors is not None
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
        positive = np.r_[np.ones(len(state.rank_a), bool), np.zeros(len(state.rank_b), bool)]
        cosine = texts @ images.T  # (findings, images): both sides unit length
        softmax = softmax_against_negation(cosine, negations @ images.T) if negations is not None else None
        scoring = state.task.config.ranker.scoring
        scores = softmax if scoring == "softmax" and softmax is not None else cosine
        aurocs = auroc_rows(scores, positive)
        effects = effect_sizes(scores, positive)
        chexzero = auroc_rows(softmax, positive) if softmax is not None else None
        index = state.current.index
        for i, finding in enumerate(findings):
            state.tested[normal_form(finding)] = Scored(
                finding=finding,
                scores=scores[i],
                auroc=float(aurocs[i]),
                effect_size=float(effects[i]),
                chexzero_auroc=float(chexzero[i]) if chexzero is not None else None,
                iteration=index,
            )


def ranked(findings: Iterable[Scored], order: str) -> list[Scored]:
    """Best first. Sorting is stable, so proposal order breaks what ties remain."""
    if order == "effect_size":
        return sorted(findings, key=lambda s: -s.effect_size)
    return sorted(findings, key=lambda s: (-s.auroc, -s.effect_size))


def _evidence_by_finding(work: IterationWork) -> dict[str, list[VisualSearch]]:
    """The zoom crops that led to each of an iteration's proposals, by normal form ([] for none)."""
    out: dict[str, list[VisualSearch]] = {}
    for rnd in work.rounds:
        for proposal in rnd.proposals:
            led = out.setdefault(normal_form(proposal.text), [])
            led.extend(rnd.searches[i] for i in proposal.searches if rnd.searches[i] not in led)
    return out


# -- judging and the final statistics ------------------------------------------------------------------------
class JudgeFindings:
    """Scores a ranking against the ground truth, when there is one: an iteration's, or the final one."""

    stage = "judge"
    weight = 0.04

    def __init__(self, judge: Judge | None, final: bool = False) -> None:
        self._judge = judge
        self._final = final

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        truth = state.task.ground_truth
        if truth is None:
            return
        config = state.task.config
        ranking = state.final if self._final else state.current.ranking
        predictions = [s.finding for s in ranking[: config.evaluator.n_hypotheses]]
        owner = ranked_by(state, ranking) if self._final else state.current
        if self._final and owner is not None and owner.evaluation is not None:
            state.evaluation = owner.evaluation  # judged already, as that iteration's ranking
            return
        if not predictions:
            evaluation = Evaluation(scores=[], acc_at_1=0.0, acc_at_5=0.0, backend="none")
        elif self._judge is None:
            state.note("ground truth was given but no evaluator is configured (RADDIFF_EVALUATOR_TARGET)")
            return
        else:
            verdict = await self._judge.judge(predictions, truth.a, truth.b, config.evaluator.backend)
            if len(verdict.scores) != len(predictions) or any(s not in (0, 1, 2) for s in verdict.scores):
                raise DependencyError(f"the evaluator returned scores {verdict.scores} for {len(predictions)} findings")
            evaluation = Evaluation(
                scores=list(verdict.scores),
                acc_at_1=accuracy_at(verdict.scores, 1),
                acc_at_5=accuracy_at(verdict.scores, 5),
                backend=verdict.backend,
                rationales=list(verdict.rationales),
            )
        state.evaluation = evaluation
        if owner is not None:
            owner.evaluation = evaluation


def ranked_by(state: AnalysisState, ranking: Sequence[Scored]) -> IterationWork | None:
    """The iteration whose ranking this is (the final one is usually the last iteration's), if any."""
    names = [s.finding for s in ranking]
    return next((w for w in reversed(state.iterations) if [s.finding for s in w.ranking] == names), None)


class SummarizeFindings:
    """The final ranking (the last iteration's, or every iteration's merged) with its statistics; the
    permutation p-values cover every finding ranked in the run, so the q-values control the FDR over them."""

    stage = "statistics"
    weight = 0.05

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        config = state.task.config
        if config.merge:
            state.final = ranked(state.tested.values(), config.ranker.order)
        elif state.iterations:
            state.final = list(state.current.ranking)
            if not state.final:
                earlier = next((w for w in reversed(state.iterations) if w.ranking), None)
                if earlier is not None:
                    state.final = list(earlier.ranking)
                    state.note(
                        f"iteration {state.current.index} ranked no finding; the result is iteration "
                        f"{earlier.index}'s ranking"
                    )
        if not state.final:
            return
        positive = np.r_[np.ones(len(state.rank_a), bool), np.zeros(len(state.rank_b), bool)]
        ranker = config.ranker
        everything = list(state.tested.values())
        p_all = await asyncio.to_thread(
            permutation_p_values, np.stack([s.scores for s in everything]), positive, ranker.permutations, config.seed
        )
        q_all = benjamini_hochberg(p_all)
        state.q_values = {normal_form(s.finding): float(q) for s, q in zip(everything, q_all, strict=True)}
        p_of = {normal_form(s.finding): float(p) for s, p in zip(everything, p_all, strict=True)}
        state.final_stats = await asyncio.to_thread(
            finding_stats,
            np.stack([s.scores for s in state.final]),
            positive,
            np.array([p_of[normal_form(s.finding)] for s in state.final]),
            ranker.bootstrap,
            ranker.ci_level,
            config.seed,
        )


# -- the result ---------------------------------------------------------------------------------------------
def build_result(state: AnalysisState) -> AnalysisResult:
    config = state.task.config
    n_a, n_b = len(state.rank_a), len(state.rank_b)
    keep_scores = max(n_a, n_b) <= config.ranker.max_scores_in_result
    result = AnalysisResult(
        config=config.to_json(),
        proposer=state.proposer,
        embedding_model=state.embedding_model,
        ranked_images={"a": n_a, "b": n_b},
        ranked_uris={"a": list(state.rank_a), "b": list(state.rank_b)} if keep_scores else {"a": [], "b": []},
        evaluation=state.evaluation,
        notes=list(state.notes),
        cache=dict(state.cache),
    )
    for rank, (scored, st) in enumerate(zip(state.final, state.final_stats, strict=False), 1):
        a, b = scored.scores[:n_a], scored.scores[n_a:]
        edges, hist_a, hist_b = histogram(a, b)
        result.findings.append(
            FindingResult(
                rank=rank,
                finding=scored.finding,
                auroc=scored.auroc,
                auroc_ci=[st.ci_low, st.ci_high],
                ci_level=config.ranker.ci_level,
                p_value=st.p_value,
                q_value=state.q_values.get(normal_form(scored.finding), 1.0),
                t_statistic=_finite(st.t_statistic),
                effect_size=_finite(scored.effect_size),
                t_p_value=st.t_p_value,
                mean_a=st.mean_a,
                mean_b=st.mean_b,
                chexzero_auroc=scored.chexzero_auroc,
                iteration=scored.iteration,
                origin="refinement" if scored.searches else "proposal",
                histogram=Histogram(edges, hist_a, hist_b),
                scores={"a": a.tolist(), "b": b.tolist()} if keep_scores else None,
                most_a_like=_extremes(state, scored.scores, config.ranker.extremes, highest=True),
                least_a_like=_extremes(state, scored.scores, config.ranker.extremes, highest=False),
                searches=list(scored.searches),
            )
        )
    for work in state.iterations:
        result.iterations.append(
            IterationResult(
                index=work.index,
                feedback=list(work.feedback),
                searches=[s for r in work.rounds for s in r.searches],
                rounds=[
                    ProposalRound(r.index, r.sample_a, r.sample_b, r.grid_a, r.grid_b, [p.text for p in r.proposals])
                    for r in work.rounds
                ],
                deduplicated=list(work.deduplicated),
                ranked=[RankedBrief(s.finding, s.auroc) for s in work.ranking],
                evaluation=work.evaluation,
            )
        )
    if state.iterations and state.iterations[0].rounds:
        first = state.iterations[0].rounds[0]
        result.samples = {
            group: [{"uri": e.uri, "caption": e.caption, "report": e.report} for e in state.evidence(sample)]
            for group, sample in (("a", first.sample_a), ("b", first.sample_b))
        }
    return result


def _finite(value: float) -> float:
    """JSON has no infinity: a t with no variance on either side is reported as +-1e308."""
    return value if math.isfinite(value) else math.copysign(1e308, value)


def _extremes(state: AnalysisState, scores: np.ndarray, count: int, highest: bool) -> list[ImageScore]:
    uris = [*state.rank_a, *state.rank_b]
    groups = ["a"] * len(state.rank_a) + ["b"] * len(state.rank_b)
    order = np.argsort(-scores if highest else scores, kind="mergesort")[:count]
    return [ImageScore(uris[i], groups[i], float(scores[i])) for i in order]
