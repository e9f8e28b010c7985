"""What the agent needs from the outside world, as small interfaces.

The agent never sees a transport: gRPC adapters (raddiff_orchestrator.clients)
implement these, and so could anything else that runs the same models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class DependencyError(Exception):
    """A model the agent relies on failed or is not configured; the message names which and why."""


class NotConfigured(DependencyError):
    """The service is reachable but has no model behind it (e.g. the LLM proxy without an upstream)."""


class AnalysisCancelled(Exception):
    """Raised by a progress callback when the analysis should stop at this step."""


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 0  # 0 is the server's default
    temperature: float = 0.0  # greedy
    seed: int = 0


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system, user or assistant
    text: str
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class Box:
    """Normalised coordinates: 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1."""

    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class Judgement:
    scores: list[int]  # 0, 1 or 2 per prediction, in order
    backend: str = ""
    rationales: list[str] = field(default_factory=list)


class Captioner(Protocol):
    async def caption(self, image_uri: str, prompt: str, sampling: Sampling) -> str: ...


class Embedder(Protocol):
    """CLIP-style: images and texts in one space; rows are L2-normalised."""

    async def embed_images(self, image_uris: Sequence[str]) -> np.ndarray: ...

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    async def model_id(self) -> str:
        """Identifies the weights and preprocessing behind the vectors (the cache key's model part)."""
        ...


class ChatModel(Protocol):
    async def chat(
        self, messages: Sequence[ChatMessage], json_schema: dict[str, Any] | None, sampling: Sampling
    ) -> str: ...


@dataclass(frozen=True)
class Localization:
    """The Localize service's answer: one box per finding as it sent them (unchecked), and its repairs."""

    boxes: list[Box]
    backend: str
    repairs: list[str] = field(default_factory=list)


class Localizer(Protocol):
    async def localize(
        self, set_a: Sequence[str], set_b: Sequence[str], findings: Sequence[str], backend: str
    ) -> Localization:
        """backend: "llm", "vlm", "model", or "" for the service's default."""
        ...

    async def crop(self, image_uris: Sequence[str], box: Box) -> tuple[str, list[str]]:
        """(zoom grid uri, one crop uri per image)."""
        ...

    async def grid(self, set_a: Sequence[str], set_b: Sequence[str]) -> str: ...


class Judge(Protocol):
    async def judge(self, predictions: Sequence[str], truth_a: str, truth_b: str, backend: str) -> Judgement: ...


class Progress(Protocol):
    """Told the stage and the overall fraction done; may raise AnalysisCancelled."""

    async def __call__(self, stage: str, fraction: float) -> None: ...
