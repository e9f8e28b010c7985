"""Chat engines: what the servicer calls, with no gRPC in here.

ChatEngine is the interface. OpenAICompatibleEngine talks to the upstream
through the official openai client (its own retries off, so this module
decides: bounded attempts, exponential backoff with jitter, Retry-After
honoured, a semaphore on calls in flight). UnconfiguredEngine answers when no
upstream is set. cache.CachingEngine wraps either with the response cache.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import openai

from raddiff_kit.deadlines import Deadline
from raddiff_kit.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceError,
    Unavailable,
)
from raddiff_kit.logs import log_fields
from raddiff_llm_proxy.metrics import COMPLETION_TOKENS, COST, PROMPT_TOKENS, UPSTREAM_CALLS
from raddiff_llm_proxy.settings import LLMSettings

log = logging.getLogger("raddiff.llm")

# Statuses worth another attempt (the openai client's own choice): timeout, conflict, rate limit, server errors.
RETRYABLE_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    data: bytes
    mime: str
    sha256: str

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class Message:
    role: str
    parts: tuple[TextPart | ImagePart, ...]


@dataclass(frozen=True)
class ChatSampling:
    """None leaves the upstream's default."""

    max_tokens: int | None = None
    temperature: float = 0.0
    top_p: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class ChatCall:
    model: str
    messages: tuple[Message, ...]
    json_schema: dict[str, Any] | None = None
    sampling: ChatSampling = ChatSampling()
    no_cache: bool = False


@dataclass(frozen=True)
class ChatAnswer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    finish_reason: str = ""
    cached: bool = False


class ChatEngine(ABC):
    @abstractmethod
    async def chat(self, call: ChatCall, deadline: Deadline) -> ChatAnswer: ...

    async def close(self) -> None:
        return None


class UnconfiguredEngine(ChatEngine):
    async def chat(self, call: ChatCall, deadline: Deadline) -> ChatAnswer:
        raise FailedPrecondition(
            "no LLM upstream configured: set RADDIFF_LLM_BASE_URL to an OpenAI-compatible /v1 URL "
            "(with RADDIFF_LLM_API_KEY and RADDIFF_LLM_MODEL)"
        )


class OpenAICompatibleEngine(ChatEngine):
    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            # A local vLLM needs no key, but the client insists on one.
            api_key=settings.api_key.get_secret_value() or "unused",
            max_retries=0,
            timeout=settings.timeout_s,
        )
        self._slots = asyncio.Semaphore(settings.max_concurrency)

    async def close(self) -> None:
        await self._client.close()

    async def chat(self, call: ChatCall, deadline: Deadline) -> ChatAnswer:
        request = self._request(call)
        last_failure = ""
        for attempt in range(1, self.settings.max_attempts + 1):
            retry_after: float | None = None
            try:
                async with self._slots:
                    response = await self._client.chat.completions.create(
                        **request, timeout=self._attempt_timeout(deadline, last_failure)
                    )
            except openai.APIStatusError as exc:
                if exc.status_code not in RETRYABLE_STATUS and exc.status_code < 500:
                    UPSTREAM_CALLS.labels(call.model, "rejected").inc()
                    raise _rejection(exc, call.model) from None
                outcome = "rate_limited" if exc.status_code == 429 else "server_error"
                retry_after = _retry_after(exc.response.headers)
                last_failure = f"HTTP {exc.status_code}: {exc.message}"
            except openai.APITimeoutError:
                outcome, last_failure = "timeout", f"no answer within {self.settings.timeout_s:g} s"
            except openai.APIConnectionError as exc:
                outcome, last_failure = "connection_error", f"cannot reach {self.settings.base_url}: {exc}"
            else:
                UPSTREAM_CALLS.labels(call.model, "ok").inc()
                return self._answer(call, response)
            UPSTREAM_CALLS.labels(call.model, outcome).inc()
            if deadline.expired():  # the attempt was cut short by the caller's deadline, not the upstream
                raise DeadlineExceeded(_deadline_message(last_failure))
            log_fields(
                log, "upstream call failed", logging.WARNING, attempt=attempt, outcome=outcome, error=last_failure
            )
            if attempt < self.settings.max_attempts:
                await asyncio.sleep(self._delay(attempt, retry_after, deadline, last_failure))
        raise Unavailable(f"LLM upstream failed {self.settings.max_attempts} times; last: {last_failure}")

    def _request(self, call: ChatCall) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": call.model,
            "messages": [_message(m) for m in call.messages],
            "temperature": call.sampling.temperature,
        }
        if call.sampling.max_tokens is not None:
            request["max_completion_tokens"] = call.sampling.max_tokens
        if call.sampling.top_p is not None:
            request["top_p"] = call.sampling.top_p
        if call.sampling.seed is not None:
            request["seed"] = call.sampling.seed
        if call.json_schema is not None:
            schema = {"name": "response", "schema": call.json_schema, "strict": self.settings.json_schema_strict}
            request["response_format"] = {"type": "json_schema", "json_schema": schema}
        return request

    def _attempt_timeout(self, deadline: Deadline, last_failure: str) -> float:
        remaining = deadline.remaining()
        if remaining is None:
            return self.settings.timeout_s
        if remaining <= 0:
            raise DeadlineExceeded(_deadline_message(last_failure))
        return min(self.settings.timeout_s, remaining)

    def _delay(self, attempt: int, retry_after: float | None, deadline: Deadline, last_failure: str) -> float:
        if retry_after is not None:
            if retry_after > self.settings.retry_after_cap_s:
                raise Unavailable(f"LLM upstream asks to retry after {retry_after:g} s; last: {last_failure}")
            delay = retry_after
        else:
            # Exponential backoff with jitter, so callers that failed together do not retry together.
            ceiling = min(self.settings.backoff_max_s, self.settings.backoff_initial_s * 2 ** (attempt - 1))
            delay = random.uniform(ceiling / 2, ceiling)
        remaining = deadline.remaining()
        if remaining is not None and delay >= remaining:
            raise DeadlineExceeded(_deadline_message(last_failure))
        return delay

    def _answer(self, call: ChatCall, response: Any) -> ChatAnswer:
        if not response.choices:
            raise Unavailable("LLM upstream answered with no choices")
        choice = response.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if choice.message.content is None and refusal:
            raise FailedPrecondition(f"the model refused to answer: {refusal}")
        usage = response.usage
        prompt = usage.prompt_tokens if usage is not None else 0
        completion = usage.completion_tokens if usage is not None else 0
        model = response.model or call.model
        PROMPT_TOKENS.labels(model).inc(prompt)
        COMPLETION_TOKENS.labels(model).inc(completion)
        price = self.settings
        COST.labels(model).inc((prompt * price.prompt_price_per_1k + completion * price.completion_price_per_1k) / 1000)
        return ChatAnswer(
            text=choice.message.content or "",
            prompt_tokens=prompt,
            completion_tokens=completion,
            model=model,
            finish_reason=choice.finish_reason or "",
        )


def _message(message: Message) -> dict[str, Any]:
    parts = message.parts
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return {"role": message.role, "content": parts[0].text}
    content = [
        {"type": "image_url", "image_url": {"url": part.data_url()}}
        if isinstance(part, ImagePart)
        else {"type": "text", "text": part.text}
        for part in parts
    ]
    return {"role": message.role, "content": content}


def _rejection(exc: openai.APIStatusError, model: str) -> ServiceError:
    """A 4xx the upstream will not change its mind about, as the gRPC error that says why."""
    status, detail = exc.status_code, exc.message
    if status in (400, 413, 422):
        return InvalidArgument(f"LLM upstream rejected the request (HTTP {status}): {detail}")
    if status in (401, 403):
        return FailedPrecondition(
            f"LLM upstream refused the credentials (HTTP {status}): {detail}; check RADDIFF_LLM_API_KEY"
        )
    if status == 404:
        return NotFound(
            f"LLM upstream has no model {model!r} or no such route (HTTP 404): {detail}; check RADDIFF_LLM_BASE_URL"
        )
    return FailedPrecondition(f"LLM upstream refused the request (HTTP {status}): {detail}")


def _retry_after(headers: Any) -> float | None:
    """Seconds the upstream asks us to wait (retry-after-ms, retry-after seconds or HTTP date), if any."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    return None


def _deadline_message(last_failure: str) -> str:
    suffix = f"; last upstream failure: {last_failure}" if last_failure else ""
    return f"the caller's deadline passed before the LLM upstream answered{suffix}"
