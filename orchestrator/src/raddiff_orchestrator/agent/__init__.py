"""The RadDiff agent: domain logic only. It talks to models through the small
interfaces in `ports` and reports progress through a callback; it has no
transport code, so the same agent runs over gRPC, in-process or in a test."""

from raddiff_orchestrator.agent.pipeline import Models, Pipeline, PipelineOptions, build_pipeline
from raddiff_orchestrator.agent.ports import AnalysisCancelled, DependencyError
from raddiff_orchestrator.agent.task import AgentConfig, AnalysisTask, GroundTruth, ImageSet

__all__ = [
    "AgentConfig",
    "AnalysisCancelled",
    "AnalysisTask",
    "DependencyError",
    "GroundTruth",
    "ImageSet",
    "Models",
    "Pipeline",
    "PipelineOptions",
    "build_pipeline",
]
