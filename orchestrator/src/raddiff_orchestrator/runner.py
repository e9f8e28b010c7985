"""The production runner: the RadDiff agent over the configured models, one embedding cache per process."""

from __future__ import annotations

from typing import Any

from raddiff_orchestrator.agent.embeddings import EmbeddingCache
from raddiff_orchestrator.agent.pipeline import Models, PipelineOptions, build_pipeline
from raddiff_orchestrator.agent.ports import Progress
from raddiff_orchestrator.agent.steps import build_result
from raddiff_orchestrator.agent.task import AnalysisTask


class AgentRunner:
    def __init__(self, models: Models, options: PipelineOptions, cache: EmbeddingCache | None = None) -> None:
        self.models = models
        self.options = options
        self.cache = cache or EmbeddingCache()

    async def __call__(self, task: AnalysisTask, progress: Progress) -> dict[str, Any]:
        pipeline = build_pipeline(task.config, self.models, self.options, self.cache)
        state = await pipeline.run(task, progress)
        return build_result(state).to_json()
