"""The engine interface the servicer talks to.

As vLLM separates its API server from its engine client, the servicer only
knows VLMEngine: validate a request cheaply, then `await generate(...)`. The
engine owns batching, decoding and the model. Implementations live in their
own modules and import their base from here; app.create_engine imports one
only when chosen (RADDIFF_VLM_ENGINE), so an image that serves one engine need
not install another's dependencies, and this module never imports them.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

from PIL import Image

from raddiff_kit.deadlines import Deadline
from raddiff_kit.errors import InvalidArgument, Unimplemented
from raddiff_vlm.settings import VLMSettings

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Sampling:
    """Resolved sampling: max_tokens > 0, temperature 0 is greedy, seed None is unseeded.

    json_schema, when set, is a JSON object (as text) the answer must follow.
    """

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    json_schema: str | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    images: list[Image.Image] = field(default_factory=list)
    sampling: Sampling = field(default_factory=lambda: Sampling(max_tokens=64))


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    # The completion's token ids, the stop token included (len == completion_tokens).
    token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class EngineInfo:
    model: str
    engine: str
    max_images_per_request: int
    max_tokens: int


class VLMEngine(ABC):
    """An async engine client: many generate() calls may be in flight at once."""

    name: ClassVar[str]
    # Engines that can constrain decoding to a JSON schema set this.
    supports_json_schema: ClassVar[bool] = False

    def __init__(self, settings: VLMSettings) -> None:
        self.settings = settings

    @abstractmethod
    async def start(self) -> None:
        """Load the model; called once before the server accepts calls."""

    @abstractmethod
    async def stop(self) -> None:
        """Release the model after the server drained."""

    @abstractmethod
    def info(self) -> EngineInfo: ...

    def healthy(self) -> bool:
        """False once the engine can no longer answer (the service then reports NOT_SERVING)."""
        return True

    @abstractmethod
    async def generate(self, request: GenerationRequest, deadline: Deadline) -> GenerationResult:
        """Decode one request; raises raddiff_kit.errors (DeadlineExceeded when the deadline passes)."""

    def image_placeholder(self) -> str | None:
        """The model's image token, which a user prompt must not contain."""
        return None

    def validate(
        self,
        *,
        prompt: str,
        n_images: int,
        json_schema: str,
        max_tokens: int,
        temperature: float,
        top_p: float,
        seed: int,
    ) -> Sampling:
        """Cheap checks before any image is read; returns the resolved sampling."""
        if json_schema and not self.supports_json_schema:
            raise Unimplemented(
                f"json_schema is not supported by the {self.name} engine (it cannot constrain decoding); "
                "leave json_schema empty, or serve the model with an engine that supports it"
            )
        if not prompt.strip():
            raise InvalidArgument("prompt is empty")
        placeholder = self.image_placeholder()
        if placeholder and placeholder in prompt:
            raise InvalidArgument(
                f"prompt contains the image placeholder {placeholder!r}; pass images in the images field instead"
            )
        limit = self.settings.max_images_per_request
        if n_images > limit:
            raise InvalidArgument(
                f"request has {n_images} images; this server accepts at most {limit} per request "
                "(RADDIFF_VLM_MAX_IMAGES_PER_REQUEST)"
            )
        sampling = resolve_sampling(
            max_tokens,
            temperature,
            top_p,
            seed,
            default_max_tokens=self.settings.default_max_tokens,
            max_tokens_limit=self.settings.max_tokens_limit,
        )
        return replace(sampling, json_schema=parse_json_schema(json_schema)) if json_schema else sampling


def resolve_sampling(
    max_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    *,
    default_max_tokens: int,
    max_tokens_limit: int,
) -> Sampling:
    """Proto sampling (0 means default) to Sampling, refusing values that make no sense."""
    if max_tokens < 0:
        raise InvalidArgument(f"max_tokens must be >= 0 (0 means the default), got {max_tokens}")
    if max_tokens > max_tokens_limit:
        raise InvalidArgument(
            f"max_tokens {max_tokens} exceeds this server's limit of {max_tokens_limit} (RADDIFF_VLM_MAX_TOKENS_LIMIT)"
        )
    if not temperature >= 0.0:  # also refuses NaN
        raise InvalidArgument(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if not 0.0 <= top_p <= 1.0:
        raise InvalidArgument(f"top_p must be in [0, 1] (0 means 1), got {top_p}")
    return Sampling(
        max_tokens=max_tokens or default_max_tokens,
        temperature=float(temperature),
        top_p=float(top_p) or 1.0,
        seed=seed or None,
    )


def parse_json_schema(text: str) -> str:
    """The request's json_schema if it is a JSON object; whether the engine can follow it is the engine's to say."""
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"json_schema is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise InvalidArgument(f"json_schema must be a JSON object (a JSON Schema), got {type(schema).__name__}")
    return text
