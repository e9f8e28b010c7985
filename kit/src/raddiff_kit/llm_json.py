"""Asking an LLM for JSON: send, parse, and on an unusable answer send it back with what is wrong, within a bound.

The loop is the same wherever a service or the orchestrator wants structured output from a chat model; what
differs is kept with the caller: how a conversation is sent (a gRPC proxy, an HTTP API, and how their transport
errors map: whatever `send` raises passes through untouched, since asking again cannot cure an outage), the
message type, the parser with its bounds, the wording of the correction, and what is done after the last
refusal (an error, a fallback, a repair of the last partly usable answer). Message types differ per caller
(the orchestrator's ChatMessage, the proxy's protobuf, the evaluator's ChatTurn), so the loop is generic in
them and builds its two follow-up turns through `message(role, text)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

M = TypeVar("M")  # one message of the caller's conversation type
T = TypeVar("T")  # the parsed, validated value

_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class Unusable(ValueError):
    """An answer that cannot be used. The message says what is wrong; it is sent back to the model as is.

    partial: what a caller could still use from this answer if no later one is better (a parsed answer with
    some good entries), or None. It rides on the refusal so a caller's fallback can repair it.
    """

    def __init__(self, problem: str, partial: object | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.partial = partial


@dataclass(frozen=True)
class Refusal:
    """One answer that was refused: its 1-based attempt number, its text, and why."""

    attempt: int
    answer: str
    problem: str
    partial: object | None = None


@dataclass(frozen=True)
class JsonAnswer(Generic[T]):
    """The value of the first usable answer, and the refusals before it (empty when the first was usable)."""

    value: T
    refusals: list[Refusal]


class NoUsableAnswer(Exception):
    """Every attempt was refused; the message names the count and the last problem."""

    def __init__(self, refusals: Sequence[Refusal]) -> None:
        if not refusals:
            raise ValueError("NoUsableAnswer needs at least one refusal")
        self.refusals = list(refusals)
        super().__init__(f"no usable answer in {len(self.refusals)} attempts: {self.problem}")

    @property
    def problem(self) -> str:
        return self.refusals[-1].problem

    @property
    def partial(self) -> object | None:
        """The partial value of the latest refused answer that had one: the best left to repair."""
        return next((r.partial for r in reversed(self.refusals) if r.partial is not None), None)


def cannot_be_used(problem: str) -> str:
    """The usual correction: what is wrong, and the demand for JSON only."""
    return f"That answer cannot be used: {problem}. Answer again with JSON only."


def loads_answer(text: str, not_json: str = "the answer is not JSON") -> Any:
    """The JSON in a model's answer, also when it is wrapped in a code fence or a sentence.

    Raises Unusable("<not_json> (<why> at position <n>)"), the position from the most specific reading tried
    (the fence's body, the outermost object), since that is the one worth showing to the model.
    """
    body = text.strip()
    candidates = [body]
    fenced = _FENCE.fullmatch(body)
    if fenced:
        candidates.append(fenced.group(1))
    outer = _OBJECT.search(body)
    if outer and outer.group() not in candidates:
        candidates.append(outer.group())
    error: json.JSONDecodeError | None = None
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as exc:
            error = exc
    assert error is not None  # at least the body was tried
    raise Unusable(f"{not_json} ({error.msg} at position {error.pos})") from None


async def ask_json(
    send: Callable[[list[M], int], Awaitable[str]],
    messages: Sequence[M],
    parse: Callable[[str], T],
    *,
    attempts: int,
    message: Callable[[str, str], M],
    correction: Callable[[str], str] = cannot_be_used,
    on_refusal: Callable[[Refusal], None] | None = None,
) -> JsonAnswer[T]:
    """Ask until an answer parses, at most `attempts` times.

    send(conversation, attempt): the model's answer text; attempt is 1-based, so a caller can bypass a
    response cache on a retry (the changed conversation alone may not). Its exceptions pass through.
    parse(text): the value, or Unusable whose message is the problem. Only Unusable means "ask again":
    any other exception is a bug or an outage and propagates.
    message(role, text): one turn in the caller's type; after a refusal the answer goes back as the
    "assistant" turn and correction(problem) as the next "user" turn.
    on_refusal(refusal): called as each answer is refused, so a caller's running notes keep them even when a
    later send raises.
    Raises NoUsableAnswer with every refusal after the last attempt.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    conversation = list(messages)
    refusals: list[Refusal] = []
    for attempt in range(1, attempts + 1):
        answer = await send(conversation, attempt)
        try:
            value = parse(answer)
        except Unusable as exc:
            refusals.append(Refusal(attempt, answer, exc.problem, exc.partial))
            if on_refusal is not None:
                on_refusal(refusals[-1])
            # A new list each round: a sender may keep the one it was given (a recorded request, a log).
            conversation = [*conversation, message("assistant", answer), message("user", correction(exc.problem))]
            continue
        return JsonAnswer(value, refusals)
    raise NoUsableAnswer(refusals)
