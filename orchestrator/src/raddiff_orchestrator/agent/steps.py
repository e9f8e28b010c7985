"""The agent's steps. Each reads and extends one AnalysisState; a pipeline runs
them in order. Later agents add steps (refinement, visual search, statistics)
or swap strategies (proposers) without touching the others."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from raddiff_orchestrator.agent.auroc import auroc_rows
from raddiff_orchestrator.agent.ports import Captioner, DependencyError, Embedder, Judge, Sampling
from raddiff_orchestrator.agent.proposers import Evidence, Proposer
from raddiff_orchestrator.agent.task import AnalysisTask

StageReport = Callable[[float], Awaitable[None]]  # fraction of the current step done

CAPTION_PROMPT = "Describe this image in detail."


@dataclass(frozen=True)
class RankedFinding:
    finding: str
    auroc: float
    mean_similarity_a: float
    mean_similarity_b: float


@dataclass(frozen=True)
class Evaluation:
    scores: list[int]
    acc_at_1: float
    acc_at_5: float
    backend: str
    rationales: list[str] = field(default_factory=list)


def accuracy_at(scores: Sequence[int], k: int) -> float:
    """RadDiff's Acc@k: the best judge score among the top k, over the maximum score 2."""
    return max(scores[:k], default=0) / 2.0


@dataclass
class AnalysisState:
    task: AnalysisTask
    sample_a: list[str] = field(default_factory=list)
    sample_b: list[str] = field(default_factory=list)
    evidence_a: list[Evidence] = field(default_factory=list)
    evidence_b: list[Evidence] = field(default_factory=list)
    proposer: str = ""
    findings: list[str] = field(default_factory=list)
    ranked: list[RankedFinding] = field(default_factory=list)
    ranked_images: dict[str, int] = field(default_factory=dict)
    evaluation: Evaluation | None = None
    notes: list[str] = field(default_factory=list)

    def result(self) -> dict[str, Any]:
        return {
            "proposer": self.proposer,
            "findings": [{"rank": i, **asdict(r)} for i, r in enumerate(self.ranked, 1)],
            "evaluation": asdict(self.evaluation) if self.evaluation else None,
            "samples": {
                "a": [{"uri": e.uri, "caption": e.caption} for e in self.evidence_a],
                "b": [{"uri": e.uri, "caption": e.caption} for e in self.evidence_b],
            },
            "ranked_images": self.ranked_images,
            "notes": self.notes,
        }


class Step(Protocol):
    stage: str
    weight: float  # share of the whole run's progress

    async def run(self, state: AnalysisState, report: StageReport) -> None: ...


def seeded_sample(uris: Sequence[str], k: int, seed: str) -> list[str]:
    """k of the uris, the same k for the same seed; all of them, in order, when k covers them."""
    if k >= len(uris):
        return list(uris)
    return random.Random(seed).sample(list(uris), k)


class SampleImages:
    stage = "sample"
    weight = 0.01

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        config = state.task.config
        state.sample_a = seeded_sample(state.task.set_a.uris, config.sample_size, f"{config.seed}:caption:a")
        state.sample_b = seeded_sample(state.task.set_b.uris, config.sample_size, f"{config.seed}:caption:b")


class CaptionImages:
    stage = "caption"
    weight = 0.45

    def __init__(
        self, captioner: Captioner, concurrency: int, max_tokens: int = 256, prompt: str = CAPTION_PROMPT
    ) -> None:
        self._captioner = captioner
        self._concurrency = concurrency
        self._max_tokens = max_tokens
        self._prompt = prompt

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        uris = [*state.sample_a, *state.sample_b]
        sampling = Sampling(max_tokens=self._max_tokens, temperature=0.0, seed=state.task.config.seed)
        gate = asyncio.Semaphore(self._concurrency)
        done = 0

        async def caption(uri: str) -> str:
            nonlocal done
            async with gate:
                text = await self._captioner.caption(uri, self._prompt, sampling)
            done += 1
            await report(done / len(uris))
            return text

        captions = await asyncio.gather(*(caption(u) for u in uris))
        reports = state.task.reports
        evidence = [Evidence(u, c.strip(), reports.get(u, "")) for u, c in zip(uris, captions, strict=True)]
        state.evidence_a = evidence[: len(state.sample_a)]
        state.evidence_b = evidence[len(state.sample_a) :]


class ProposeFindings:
    stage = "propose"
    weight = 0.15

    def __init__(self, proposer: Proposer) -> None:
        self._proposer = proposer

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        state.proposer = self._proposer.name
        state.findings = await self._proposer.propose(state.evidence_a, state.evidence_b, state.task.config)
        state.proposer = self._proposer.name
        if note := getattr(self._proposer, "note", ""):
            state.notes.append(note)
        if not state.findings:
            state.notes.append(f"the {self._proposer.name} proposer found no finding more common in A than in B")


class RankFindings:
    """AUROC of each finding's CLIP similarity over every image of both sets (A positive)."""

    stage = "rank"
    weight = 0.3

    def __init__(self, embedder: Embedder, batch_size: int) -> None:
        self._embedder = embedder
        self._batch_size = batch_size

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        if not state.findings:
            return
        config = state.task.config
        rank_a = seeded_sample(state.task.set_a.uris, config.rank_cap, f"{config.seed}:rank:a")
        rank_b = seeded_sample(state.task.set_b.uris, config.rank_cap, f"{config.seed}:rank:b")
        state.ranked_images = {"a": len(rank_a), "b": len(rank_b)}
        unique = list(dict.fromkeys([*rank_a, *rank_b]))  # each image embedded once
        batches = [unique[i : i + self._batch_size] for i in range(0, len(unique), self._batch_size)]
        steps = len(batches) + 1
        texts = unit_rows(await self._embedder.embed_texts(state.findings), len(state.findings), "text")
        await report(1 / steps)
        rows: list[np.ndarray] = []
        for i, batch in enumerate(batches, 2):
            rows.append(unit_rows(await self._embedder.embed_images(batch), len(batch), "image"))
            await report(i / steps)
        index = {uri: i for i, uri in enumerate(unique)}
        images = np.concatenate(rows)[[index[u] for u in [*rank_a, *rank_b]]]
        if texts.shape[1] != images.shape[1]:
            raise DependencyError(f"text vectors have {texts.shape[1]} dims but image vectors {images.shape[1]}")
        similarity = texts @ images.T  # (findings, images): cosine, both sides unit length
        positive = np.r_[np.ones(len(rank_a), bool), np.zeros(len(rank_b), bool)]
        scores = auroc_rows(similarity, positive)
        ranked = [
            RankedFinding(
                finding=f,
                auroc=float(scores[i]),
                mean_similarity_a=float(similarity[i, positive].mean()),
                mean_similarity_b=float(similarity[i, ~positive].mean()),
            )
            for i, f in enumerate(state.findings)
        ]
        state.ranked = sorted(ranked, key=lambda r: -r.auroc)  # stable: proposal order breaks ties


def unit_rows(vectors: np.ndarray, expected: int, what: str) -> np.ndarray:
    """The vectors as unit rows, after checking the service sent one finite vector per input."""
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != expected:
        raise DependencyError(f"the embedder returned {array.shape} for {expected} {what}s")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not np.isfinite(array).all() or (norms == 0).any():
        raise DependencyError(f"the embedder returned a zero or non-finite {what} vector")
    return array / norms


class JudgeFindings:
    """Scores the ranked findings against the ground truth, when there is one."""

    stage = "judge"
    weight = 0.09

    def __init__(self, judge: Judge | None) -> None:
        self._judge = judge

    async def run(self, state: AnalysisState, report: StageReport) -> None:
        truth = state.task.ground_truth
        if truth is None:
            return
        predictions = [r.finding for r in state.ranked]
        if not predictions:
            state.evaluation = Evaluation(scores=[], acc_at_1=0.0, acc_at_5=0.0, backend="none")
            return
        if self._judge is None:
            state.notes.append("ground truth was given but no evaluator is configured (RADDIFF_EVALUATOR_TARGET)")
            return
        verdict = await self._judge.judge(predictions, truth.a, truth.b, state.task.config.judge_backend)
        if len(verdict.scores) != len(predictions) or any(s not in (0, 1, 2) for s in verdict.scores):
            raise DependencyError(f"the evaluator returned scores {verdict.scores} for {len(predictions)} findings")
        state.evaluation = Evaluation(
            scores=list(verdict.scores),
            acc_at_1=accuracy_at(verdict.scores, 1),
            acc_at_5=accuracy_at(verdict.scores, 5),
            backend=verdict.backend,
            rationales=list(verdict.rationales),
        )
