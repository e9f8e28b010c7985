"""A pipeline runs steps in order and reports stage and overall progress.

The progress callback is also the cancellation point: it is called before
every step and may raise AnalysisCancelled, so a cancelled analysis stops at
its next step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from raddiff_orchestrator.agent.ports import (
    Captioner,
    ChatModel,
    DependencyError,
    Embedder,
    Judge,
    Localizer,
    Progress,
)
from raddiff_orchestrator.agent.proposers import ContrastProposer, FallbackProposer, LLMProposer, Proposer
from raddiff_orchestrator.agent.steps import (
    AnalysisState,
    CaptionImages,
    JudgeFindings,
    ProposeFindings,
    RankFindings,
    SampleImages,
    Step,
)
from raddiff_orchestrator.agent.task import AgentConfig, AnalysisTask


class Pipeline:
    def __init__(self, steps: Sequence[Step]) -> None:
        if not steps:
            raise ValueError("a pipeline needs at least one step")
        self.steps = list(steps)

    async def run(self, task: AnalysisTask, progress: Progress) -> AnalysisState:
        state = AnalysisState(task)
        total = sum(s.weight for s in self.steps)
        done = 0.0
        for step in self.steps:
            await progress(step.stage, done / total)

            async def report(fraction: float, step: Step = step, start: float = done) -> None:
                await progress(step.stage, (start + step.weight * min(max(fraction, 0.0), 1.0)) / total)

            await step.run(state, report)
            done += step.weight
        await progress("done", 1.0)
        return state


@dataclass(frozen=True)
class Models:
    """The models an agent may use; None where a service is not configured."""

    captioner: Captioner | None = None
    embedder: Embedder | None = None
    chat: ChatModel | None = None
    localizer: Localizer | None = None
    judge: Judge | None = None


@dataclass(frozen=True)
class PipelineOptions:
    caption_concurrency: int = 4
    caption_max_tokens: int = 256
    embed_batch_size: int = 64


def choose_proposer(config: AgentConfig, chat: ChatModel | None) -> Proposer:
    if config.proposer == "offline" or (config.proposer == "auto" and chat is None):
        return ContrastProposer()
    if chat is None:
        raise DependencyError("the LLM proposer was asked for but no LLM is configured (RADDIFF_LLM_TARGET)")
    if config.proposer == "auto":
        return FallbackProposer(LLMProposer(chat), ContrastProposer())
    return LLMProposer(chat)


def build_pipeline(config: AgentConfig, models: Models, options: PipelineOptions) -> Pipeline:
    """This issue's agent: sample, caption, propose, rank by AUROC, judge."""
    if models.captioner is None:
        raise DependencyError("no captioning model is configured (RADDIFF_VLM_TARGET)")
    if models.embedder is None:
        raise DependencyError("no embedding model is configured (RADDIFF_EMBEDDING_TARGET)")
    return Pipeline(
        [
            SampleImages(),
            CaptionImages(models.captioner, options.caption_concurrency, options.caption_max_tokens),
            ProposeFindings(choose_proposer(config, models.chat)),
            RankFindings(models.embedder, options.embed_batch_size),
            JudgeFindings(models.judge),
        ]
    )
