"""A pipeline runs steps in order and reports stage and overall progress.

The progress callback is also the cancellation point: it is called before
every step and may raise AnalysisCancelled, so a cancelled analysis stops at
its next step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from raddiff_orchestrator.agent.config import LLM_METHODS, AgentConfig
from raddiff_orchestrator.agent.dedup import (
    Deduplicator,
    EmbeddingDeduplicator,
    LexicalDeduplicator,
    LLMDeduplicator,
)
from raddiff_orchestrator.agent.embeddings import CachedEmbedder, EmbeddingCache
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
    DeduplicateFindings,
    DescribeImages,
    DrawGrids,
    DrawSamples,
    JudgeFindings,
    ProposeFindings,
    RankFindings,
    SearchRegions,
    Step,
    SummarizeFindings,
)
from raddiff_orchestrator.agent.task import AnalysisTask


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
    """The configured proposer; "auto" is RadDiff's when an LLM is configured (falling back to the offline
    one when the LLM proxy has no upstream), else the offline one."""
    method = config.proposer.method
    if method == "offline" or (method == "auto" and chat is None):
        return ContrastProposer()
    if chat is None:
        raise DependencyError(f"the {method} proposer needs an LLM but none is configured (RADDIFF_LLM_TARGET)")
    if method == "auto":
        return FallbackProposer(LLMProposer(chat, "raddiff"), ContrastProposer())
    assert method in LLM_METHODS
    return LLMProposer(chat, method)


def choose_deduplicator(
    config: AgentConfig, proposer: Proposer, chat: ChatModel | None, embedder: CachedEmbedder
) -> Deduplicator:
    """The configured deduplication; "auto" is the LLM's while the proposer has one (RadDiff), else similarity."""
    by_similarity = EmbeddingDeduplicator(embedder.embed_texts, config.dedup.threshold)
    method = config.dedup.method
    if method == "none":
        return LexicalDeduplicator()
    if method == "embedding" or (method == "auto" and (chat is None or not proposer.uses_llm)):
        return by_similarity
    if chat is None:
        raise DependencyError("dedup.method is llm but no LLM is configured (RADDIFF_LLM_TARGET)")
    by_llm = LLMDeduplicator(chat, by_similarity, config.seed)
    # Under "auto" the proposer may fall back to the offline one; deduplication then follows it.
    following = method == "auto" and isinstance(proposer, FallbackProposer)
    return _LLMWhileActive(by_llm, by_similarity, proposer) if following else by_llm


class _LLMWhileActive:
    """Under "auto", the LLM deduplicates while the proposer still has one; after a fallback, similarity."""

    def __init__(self, llm: Deduplicator, fallback: Deduplicator, proposer: Proposer) -> None:
        self._llm, self._fallback, self._proposer = llm, fallback, proposer

    @property
    def name(self) -> str:
        return self._llm.name if self._proposer.uses_llm else self._fallback.name

    async def deduplicate(self, findings: Sequence[str], notes: list[str]) -> list[str]:
        chosen = self._llm if self._proposer.uses_llm else self._fallback
        return await chosen.deduplicate(findings, notes)


def build_pipeline(
    config: AgentConfig, models: Models, options: PipelineOptions, cache: EmbeddingCache | None = None
) -> Pipeline:
    """RadDiff's agent: num_iterations of (sample, describe, grid, search, propose, deduplicate, rank,
    judge), then the final statistics."""
    proposer = choose_proposer(config, models.chat)
    if proposer.needs_captions and models.captioner is None:
        raise DependencyError("no captioning model is configured (RADDIFF_VLM_TARGET)")
    if models.embedder is None:
        raise DependencyError("no embedding model is configured (RADDIFF_EMBEDDING_TARGET)")
    cropping = config.proposer.iterative_cropping and config.num_iterations > 1
    if (cropping or proposer.needs_grids) and models.localizer is None:
        raise DependencyError(
            "visual search and image grids need the localize service (RADDIFF_LOCALIZE_TARGET); "
            "or set proposer.iterative_cropping: false with the visdiff or offline proposer"
        )
    embedder = CachedEmbedder(models.embedder, cache or EmbeddingCache(), options.embed_batch_size)
    deduplicator = choose_deduplicator(config, proposer, models.chat, embedder)
    concurrency, max_tokens = options.caption_concurrency, options.caption_max_tokens
    steps: list[Step] = []
    for k in range(1, config.num_iterations + 1):
        steps.append(DrawSamples(k))
        if proposer.needs_captions:
            steps.append(DescribeImages(models.captioner, proposer, concurrency, max_tokens))
        if proposer.needs_grids and not (cropping and k > 1):
            steps.append(DrawGrids(models.localizer, proposer, cropping))
        if cropping and k > 1:
            steps.append(SearchRegions(models.localizer, models.captioner, proposer, concurrency, max_tokens))
        steps += [ProposeFindings(proposer), DeduplicateFindings(deduplicator), RankFindings(embedder)]
        if config.evaluator.each_iteration:
            steps.append(JudgeFindings(models.judge))
    # The result may not be the last iteration's ranking (merged, or an earlier one when the last ranked
    # nothing): what is judged is what is reported.
    steps += [SummarizeFindings(), JudgeFindings(models.judge, final=True)]
    return Pipeline(steps)
