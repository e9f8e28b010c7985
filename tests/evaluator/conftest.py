"""A running evaluator (real MiniLM weights) wired to an in-process scripted LLM proxy.

The scripted proxy stands in for a paid LLM behind raddiff.v1.LLMProxyService: it
answers from a script, or fails with a status, and records every request."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from raddiff.v1 import evaluator_pb2, evaluator_pb2_grpc, llm_pb2, llm_pb2_grpc
from raddiff_evaluator.app import SERVICE, build_app
from raddiff_evaluator.settings import EvaluatorSettings
from raddiff_kit.client import open_channel

Reply = str | tuple[grpc.StatusCode, str]


@dataclass
class ScriptedLLMProxy(llm_pb2_grpc.LLMProxyServiceServicer):
    replies: list[Reply] = field(default_factory=list)
    requests: list[llm_pb2.ChatRequest] = field(default_factory=list)
    # Seconds the caller left for each call: proves the evaluator passes a deadline on.
    time_remaining: list[float | None] = field(default_factory=list)

    def script(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests.clear()
        self.time_remaining.clear()

    async def Chat(self, request: llm_pb2.ChatRequest, context: grpc.aio.ServicerContext) -> llm_pb2.ChatResponse:
        self.requests.append(request)
        self.time_remaining.append(context.time_remaining())
        if not self.replies:
            await context.abort(grpc.StatusCode.INTERNAL, "the scripted proxy has no reply left")
        reply = self.replies.pop(0)
        if isinstance(reply, tuple):
            await context.abort(*reply)
        return llm_pb2.ChatResponse(text=reply, model="scripted", finish_reason="stop")


@dataclass
class Evaluator:
    stub: evaluator_pb2_grpc.EvaluatorServiceStub
    llm: ScriptedLLMProxy

    async def judge(
        self, predictions: list[str], truth_a: str, truth_b: str, backend: str = "", timeout: float = 30
    ) -> evaluator_pb2.JudgeResponse:
        request = evaluator_pb2.JudgeRequest(predictions=predictions, truth_a=truth_a, truth_b=truth_b, backend=backend)
        return await self.stub.Judge(request, timeout=timeout)


@pytest.fixture(scope="session")
async def llm_proxy() -> AsyncIterator[tuple[ScriptedLLMProxy, int]]:
    proxy = ScriptedLLMProxy()
    server = grpc.aio.server()
    llm_pb2_grpc.add_LLMProxyServiceServicer_to_server(proxy, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield proxy, port
    await server.stop(0)


@pytest.fixture(scope="session")
async def evaluator(llm_proxy: tuple[ScriptedLLMProxy, int]) -> AsyncIterator[Evaluator]:
    proxy, port = llm_proxy
    settings = EvaluatorSettings(metrics_port=0, drain_seconds=0, llm_target=f"127.0.0.1:{port}", llm_max_attempts=3)
    server, bound = await build_app(settings).start("127.0.0.1:0")
    channel = open_channel(f"127.0.0.1:{bound}", SERVICE)
    yield Evaluator(evaluator_pb2_grpc.EvaluatorServiceStub(channel), proxy)
    await channel.close()
    await server.stop(0)
