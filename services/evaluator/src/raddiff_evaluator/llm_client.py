"""The LLM judge's chat client: raddiff.v1.LLMProxyService/Chat over the kit's shared channel,
with a deadline on every call. The proxy's status codes pass through as the kit's errors, so
"no LLM configured" (FAILED_PRECONDITION) reaches the evaluator's caller as FAILED_PRECONDITION."""

from __future__ import annotations

import grpc

from raddiff.v1 import common_pb2, llm_pb2, llm_pb2_grpc
from raddiff_evaluator.llm_judge import ChatTurn
from raddiff_kit import errors
from raddiff_kit.client import open_channel
from raddiff_kit.deadlines import Deadline

SERVICE = "raddiff.v1.LLMProxyService"

# Codes that mean the same to our caller as to us. INVALID_ARGUMENT is not among them: a request
# the proxy refuses is this service's fault, not the caller's, so it becomes INTERNAL.
_PASSED_THROUGH: dict[grpc.StatusCode, type[errors.ServiceError]] = {
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.UNIMPLEMENTED: errors.Unimplemented,
}


class ProxyChatClient:
    def __init__(self, target: str, model: str, timeout_s: float) -> None:
        self.target = target
        self.model = model
        self.timeout_s = timeout_s
        self._channel: grpc.aio.Channel | None = None
        self._stub: llm_pb2_grpc.LLMProxyServiceStub | None = None

    def _connect(self) -> llm_pb2_grpc.LLMProxyServiceStub:
        if not self.target:
            raise errors.FailedPrecondition("the llm backend needs RADDIFF_LLM_TARGET, the LLM proxy's address")
        if self._stub is None:
            self._channel = open_channel(self.target, SERVICE)
            self._stub = llm_pb2_grpc.LLMProxyServiceStub(self._channel)
        return self._stub

    async def chat(
        self, turns: list[ChatTurn], json_schema: str, max_tokens: int, fresh: bool, deadline: Deadline
    ) -> str:
        stub = self._connect()
        remaining = deadline.remaining()
        timeout = self.timeout_s if remaining is None else min(self.timeout_s, remaining)
        if timeout <= 0:
            raise errors.DeadlineExceeded("the caller's deadline passed before the LLM was asked")
        request = llm_pb2.ChatRequest(
            model=self.model,
            messages=[llm_pb2.ChatMessage(role=t.role, content=[llm_pb2.ContentPart(text=t.text)]) for t in turns],
            json_schema=json_schema,
            sampling=common_pb2.SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=0),
            no_cache=fresh,
        )
        try:
            response = await stub.Chat(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            kind = _PASSED_THROUGH.get(exc.code(), errors.ServiceError)
            raise kind(f"LLM proxy at {self.target}: {exc.code().name}: {exc.details()}") from None
        return response.text

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel, self._stub = None, None
