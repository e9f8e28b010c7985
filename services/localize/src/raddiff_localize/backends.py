"""Localize backends: one normalised box per finding.

"llm" draws sets A and B as one grid, asks the LLM proxy for a box per
finding under a JSON schema, and repairs what comes back within a bound.
"model" (model_backend.py) finds where the embedding model's patch-level
similarity to the finding differs most between A and B. "vlm"
(vlm_backend.py) asks the VLM to ground the finding on A's images.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc

from raddiff.v1 import common_pb2, llm_pb2, llm_pb2_grpc
from raddiff_kit.client import ServiceClient, open_channel
from raddiff_kit.deadlines import Deadline, run_blocking
from raddiff_kit.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from raddiff_kit.llm_json import NoUsableAnswer, Refusal, Unusable, ask_json
from raddiff_localize.boxes import ParsedAnswer, box_schema, finding_label, parse_answer
from raddiff_localize.engine import GRID_LAYOUT, WHOLE_IMAGE, GridEngine, NormBox, Ref, RenderedGrid


@dataclass
class LocalizeJob:
    set_a: list[Ref]
    set_b: list[Ref]
    findings: list[str]


@dataclass
class Localization:
    boxes: list[NormBox]
    repairs: list[str] = field(default_factory=list)


class LocalizeBackend(ABC):
    name: str

    async def start(self) -> None:  # noqa: B027 - an optional hook
        """Open what the backend needs (channels, models) before the server takes calls."""

    async def stop(self) -> None:  # noqa: B027 - an optional hook
        """Release it after the drain."""

    @abstractmethod
    async def localize(self, job: LocalizeJob, deadline: Deadline) -> Localization:
        """Exactly one box per finding, in order; every repair made along the way listed."""


LLM_SERVICE = "raddiff.v1.LLMProxyService"
SYSTEM_PROMPT = (
    "You are a radiologist localising findings on chest X-rays. "
    "Answer only with JSON that matches the given schema."
)

_UPSTREAM_ERRORS: dict[grpc.StatusCode, type[ServiceError]] = {
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}
# When the upstream service loads the caller's images, its verdict on them is the caller's problem.
_IMAGE_ERRORS: dict[grpc.StatusCode, type[ServiceError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
}


def connect(target: str, service: str, stub_class: type, timeout_s: float) -> ServiceClient | None:
    """A client of `service` at `target`, or None when no target is configured."""
    if not target:
        return None
    channel = open_channel(target, service)
    return ServiceClient(channel, stub_class(channel), timeout_s)


class RemoteBackend(LocalizeBackend):
    """A backend that asks one other service; the channel opens with the server and closes after its drain."""

    service: str  # full gRPC service name
    stub_class: type
    target_var: str  # the setting that names the service, for the error when it is unset
    what: str  # the service in words

    def __init__(self, target: str, timeout_s: float) -> None:
        self._target = target
        self._timeout_s = timeout_s
        self._client: ServiceClient | None = None

    async def start(self) -> None:
        self._client = connect(self._target, self.service, self.stub_class, self._timeout_s)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def client(self) -> ServiceClient:
        if self._client is None:
            raise FailedPrecondition(
                f"no {self.what} is configured for the {self.name} backend: set {self.target_var}"
            )
        return self._client


async def call_upstream(
    client: ServiceClient, method: str, request: object, deadline: Deadline, who: str, loads_images: bool = False
) -> Any:
    """One call, its timeout capped by the caller's deadline; a failure becomes the kit error that fits it.

    who: how the error names the service ("the LLM proxy"). loads_images: the service reads the caller's
    images, so its INVALID_ARGUMENT and NOT_FOUND pass through as such.
    """
    remaining = deadline.remaining()
    timeout = client.timeout_s if remaining is None else min(client.timeout_s, remaining)
    if timeout <= 0:
        raise DeadlineExceeded(f"the caller's deadline passed before {who} answered")
    try:
        return await client.call(method, request, timeout_s=timeout)
    except grpc.aio.AioRpcError as exc:
        errors = {**_UPSTREAM_ERRORS, **(_IMAGE_ERRORS if loads_images else {})}
        error = errors.get(exc.code(), ServiceError)
        raise error(f"{who} answered {exc.code().name}: {exc.details()}") from None


def localize_prompt(findings: list[str], grid: RenderedGrid) -> str:
    counts = Counter(p.group for p in grid.placements)
    cols = grid.layout.cols
    listed = "\n".join(f"{i + 1}. {finding}" for i, finding in enumerate(findings))
    return (
        f"The image is a grid of chest X-rays, {cols} per row, each letterboxed on black. "
        f"The top block ({counts['A']} images) is set A; below a white band, the bottom block "
        f"({counts['B']} images) is set B.\n"
        "Each finding below describes how set A differs from set B. For each finding, give one box where it shows, "
        "in coordinates normalised to a single X-ray (not the grid, not the black padding): x0, y0 at the top left "
        "and x1, y1 at the bottom right, each from 0 to 1, with x0 < x1 and y0 < y1.\n"
        f'Answer {{"boxes": [...]}} with exactly {len(findings)} boxes, in the order of the findings, '
        "each repeating its finding.\n"
        f"Findings:\n{listed}"
    )


class LLMBackend(RemoteBackend):
    name = "llm"
    service, stub_class = LLM_SERVICE, llm_pb2_grpc.LLMProxyServiceStub
    target_var, what = "RADDIFF_LLM_TARGET", "LLM proxy"

    def __init__(self, grids: GridEngine, target: str, model: str, timeout_s: float, retries: int) -> None:
        super().__init__(target, timeout_s)
        self._grids = grids
        self._model = model
        self._attempts = retries + 1

    async def localize(self, job: LocalizeJob, deadline: Deadline) -> Localization:
        client = self.client()
        grid = await run_blocking(deadline, self._grids.grid, job.set_a, job.set_b, GRID_LAYOUT)
        findings = job.findings
        messages = [
            _message("system", SYSTEM_PROMPT),
            llm_pb2.ChatMessage(
                role="user",
                content=[
                    llm_pb2.ContentPart(text=localize_prompt(findings, grid)),
                    llm_pb2.ContentPart(image=common_pb2.ImageRef(uri=grid.image.uri, sha256=grid.image.sha256)),
                ],
            ),
        ]
        schema = json.dumps(box_schema(len(findings)))

        # The changed conversation of a retry also bypasses the proxy's cache, so the attempt is not needed.
        async def send(conversation: list[llm_pb2.ChatMessage], attempt: int) -> str:
            return await self._chat(client, conversation, schema, len(findings), deadline)

        try:
            answer = await ask_json(
                send,
                messages,
                lambda text: _usable_boxes(parse_answer(text, findings)),
                attempts=self._attempts,
                message=_message,
                correction=lambda problem: (
                    f"That answer cannot be used: {problem}. Answer again with exactly {len(findings)} boxes, "
                    "as JSON that matches the schema."
                ),
            )
        except NoUsableAnswer as exc:
            repairs = [self._refused(r) for r in exc.refusals]
            last = exc.partial if isinstance(exc.partial, ParsedAnswer) else None
            return _fall_back(last, findings, repairs, self._attempts)
        parsed = answer.value
        repairs = [self._refused(r) for r in answer.refusals] + parsed.repairs
        return Localization([b for b in parsed.boxes if b is not None], repairs)

    def _refused(self, refusal: Refusal) -> str:
        outcome = "gave up" if refusal.attempt == self._attempts else "asked again"
        return f"attempt {refusal.attempt}: {refusal.problem}; {outcome}"

    async def _chat(
        self, client: ServiceClient, messages: list[llm_pb2.ChatMessage], schema: str, count: int, deadline: Deadline
    ) -> str:
        request = llm_pb2.ChatRequest(
            model=self._model,
            messages=messages,
            json_schema=schema,
            sampling=common_pb2.SamplingParams(max_tokens=200 + 80 * count, temperature=0.0),
        )
        response = await call_upstream(client, "Chat", request, deadline, "the LLM proxy")
        return response.text


def _usable_boxes(answer: ParsedAnswer) -> ParsedAnswer:
    """The answer as it stands, or Unusable; one with some boxes rides along for the fallback to repair."""
    if answer.problem is not None:
        raise Unusable(answer.problem, partial=answer if answer.boxes else None)
    return answer


def _fall_back(
    parsed: ParsedAnswer | None, findings: list[str], repairs: list[str], attempts: int
) -> Localization:
    """The usable boxes of the last parseable answer, and the whole image for every finding without one."""
    entries = parsed.boxes if parsed else []
    if parsed:
        repairs += parsed.repairs
        if len(entries) > len(findings):
            repairs.append(f"ignored {len(entries) - len(findings)} boxes beyond the {len(findings)} findings")
    boxes = []
    for index in range(len(findings)):
        box = entries[index] if index < len(entries) else None
        if box is None:
            repairs.append(
                f"{finding_label(index, findings)}: no usable box after {attempts} attempts; using the whole image"
            )
            box = WHOLE_IMAGE
        boxes.append(box)
    return Localization(boxes, repairs)


def _message(role: str, text: str) -> llm_pb2.ChatMessage:
    return llm_pb2.ChatMessage(role=role, content=[llm_pb2.ContentPart(text=text)])
