"""Sampling and description: each round's seeded samples, the VLM's descriptions, the 4x5 grids."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from raddiff_orchestrator.agent.ports import Captioner, DependencyError, Localizer, Sampling
from raddiff_orchestrator.agent.proposers import Proposer
from raddiff_orchestrator.agent.results import RankedBrief
from raddiff_orchestrator.agent.steps.state import AnalysisState, IterationWork, RoundWork, StageReport, seeded_sample

GRID_CAPACITY = 20  # a 4x5 grid per set (LocalizeService.Grid, and each half of Localize's combined grid)


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
