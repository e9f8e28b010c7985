"""The RadDiff agent: domain logic only. It talks to models through the small
interfaces in `ports` and reports progress through a callback; it has no
transport code, so the same agent runs over gRPC, in-process or in a test."""

from raddiff_orchestrator.agent.config import AgentConfig, ConfigError, parse_config
from raddiff_orchestrator.agent.embeddings import EmbeddingCache, VectorStore
from raddiff_orchestrator.agent.pipeline import Models, Pipeline, PipelineOptions, build_pipeline
from raddiff_orchestrator.agent.ports import AnalysisCancelled, DependencyError
from raddiff_orchestrator.agent.results import AnalysisResult
from raddiff_orchestrator.agent.task import AnalysisTask, GroundTruth, ImageSet

__all__ = [
    "AgentConfig",
    "AnalysisCancelled",
    "AnalysisResult",
    "AnalysisTask",
    "ConfigError",
    "DependencyError",
    "EmbeddingCache",
    "GroundTruth",
    "ImageSet",
    "Models",
    "Pipeline",
    "PipelineOptions",
    "VectorStore",
    "build_pipeline",
    "parse_config",
]
