"""gRPC adapters: the agent's model interfaces implemented over the services' contracts.

One channel per configured service (raddiff_kit.client.open_channel), opened
once and reused by every call; every call carries a timeout. A failed call
becomes a DependencyError that names the service, the method and the status.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raddiff.v1 import (
    common_pb2,
    embedding_pb2,
    embedding_pb2_grpc,
    evaluator_pb2,
    evaluator_pb2_grpc,
    llm_pb2,
    llm_pb2_grpc,
    localize_pb2,
    localize_pb2_grpc,
    vlm_pb2,
    vlm_pb2_grpc,
)
from raddiff_kit.client import ServiceClient, open_channel
from raddiff_orchestrator.agent.pipeline import Models
from raddiff_orchestrator.agent.ports import (
    Box,
    ChatMessage,
    DependencyError,
    Judgement,
    Localization,
    NotConfigured,
    Sampling,
)

# name (as in RADDIFF_<NAME>_TARGET) -> (full gRPC service name, stub class)
SERVICES: dict[str, tuple[str, Any]] = {
    "vlm": ("raddiff.v1.VLMService", vlm_pb2_grpc.VLMServiceStub),
    "embedding": ("raddiff.v1.EmbeddingService", embedding_pb2_grpc.EmbeddingServiceStub),
    "llm": ("raddiff.v1.LLMProxyService", llm_pb2_grpc.LLMProxyServiceStub),
    "localize": ("raddiff.v1.LocalizeService", localize_pb2_grpc.LocalizeServiceStub),
    "evaluator": ("raddiff.v1.EvaluatorService", evaluator_pb2_grpc.EvaluatorServiceStub),
}


async def _call(client: ServiceClient, service: str, method: str, request: Any) -> Any:
    try:
        return await client.call(method, request)
    except grpc.aio.AioRpcError as exc:
        error = NotConfigured if exc.code() == grpc.StatusCode.FAILED_PRECONDITION else DependencyError
        raise error(f"{service} {method} failed: {exc.code().name}: {exc.details()}") from None


def _refs(uris: Sequence[str]) -> list[common_pb2.ImageRef]:
    return [common_pb2.ImageRef(uri=u) for u in uris]


def _sampling(s: Sampling) -> common_pb2.SamplingParams:
    return common_pb2.SamplingParams(max_tokens=s.max_tokens, temperature=s.temperature, seed=s.seed)


def _matrix(vectors: Sequence[common_pb2.Vector], service: str) -> np.ndarray:
    rows = [list(v.values) for v in vectors]
    if len({len(r) for r in rows}) > 1:
        raise DependencyError(f"{service} returned vectors of different lengths")
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)


def _box(box: common_pb2.Box) -> Box:
    return Box(box.x0, box.y0, box.x1, box.y1)


class GrpcCaptioner:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def caption(self, image_uri: str, prompt: str, sampling: Sampling) -> str:
        request = vlm_pb2.GenerateRequest(prompt=prompt, images=_refs([image_uri]), sampling=_sampling(sampling))
        reply = await _call(self._client, "vlm", "Generate", request)
        return reply.text


class GrpcEmbedder:
    """The model_id comes from Info once, then from every reply, so a redeployed model is noticed."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client
        self._model_id = ""

    async def model_id(self) -> str:
        if not self._model_id:
            reply = await _call(self._client, "embedding", "Info", embedding_pb2.EmbeddingInfoRequest())
            self._model_id = reply.model_id
        return self._model_id

    async def embed_images(self, image_uris: Sequence[str]) -> np.ndarray:
        request = embedding_pb2.EmbedImagesRequest(images=_refs(image_uris))
        reply = await _call(self._client, "embedding", "EmbedImages", request)
        self._model_id = reply.model_id or self._model_id
        return _matrix(reply.embeddings, "embedding")

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        request = embedding_pb2.EmbedTextsRequest(texts=list(texts))
        reply = await _call(self._client, "embedding", "EmbedTexts", request)
        self._model_id = reply.model_id or self._model_id
        return _matrix(reply.embeddings, "embedding")


class GrpcChatModel:
    def __init__(self, client: ServiceClient, model: str = "") -> None:
        self._client = client
        self._model = model

    async def chat(
        self, messages: Sequence[ChatMessage], json_schema: dict[str, Any] | None, sampling: Sampling
    ) -> str:
        request = llm_pb2.ChatRequest(
            model=self._model,
            messages=[
                llm_pb2.ChatMessage(
                    role=m.role,
                    content=[
                        llm_pb2.ContentPart(text=m.text),
                        *(llm_pb2.ContentPart(image=common_pb2.ImageRef(uri=u)) for u in m.images),
                    ],
                )
                for m in messages
            ],
            json_schema=json.dumps(json_schema) if json_schema else "",
            sampling=_sampling(sampling),
        )
        reply = await _call(self._client, "llm", "Chat", request)
        return reply.text


class GrpcLocalizer:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def localize(
        self, set_a: Sequence[str], set_b: Sequence[str], findings: Sequence[str], backend: str
    ) -> Localization:
        request = localize_pb2.LocalizeRequest(
            set_a=_refs(set_a), set_b=_refs(set_b), findings=list(findings), backend=backend
        )
        reply = await _call(self._client, "localize", "Localize", request)
        return Localization([_box(b) for b in reply.boxes], reply.backend, list(reply.repairs))

    async def crop(self, image_uris: Sequence[str], box: Box) -> tuple[str, list[str]]:
        request = localize_pb2.CropRequest(
            images=_refs(image_uris), box=common_pb2.Box(x0=box.x0, y0=box.y0, x1=box.x1, y1=box.y1)
        )
        reply = await _call(self._client, "localize", "Crop", request)
        return reply.grid.uri, [c.uri for c in reply.crops]

    async def grid(self, set_a: Sequence[str], set_b: Sequence[str]) -> str:
        request = localize_pb2.GridRequest(set_a=_refs(set_a), set_b=_refs(set_b))
        reply = await _call(self._client, "localize", "Grid", request)
        return reply.grid.uri


class GrpcJudge:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def judge(self, predictions: Sequence[str], truth_a: str, truth_b: str, backend: str) -> Judgement:
        request = evaluator_pb2.JudgeRequest(
            predictions=list(predictions), truth_a=truth_a, truth_b=truth_b, backend=backend
        )
        reply = await _call(self._client, "evaluator", "Judge", request)
        return Judgement(scores=list(reply.scores), backend=reply.backend, rationales=list(reply.rationales))


class ServiceClients:
    """The channels to every configured service; create inside the event loop that uses them."""

    def __init__(self, targets: dict[str, str], timeout_s: float, llm_model: str = "") -> None:
        unknown = set(targets) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; known: {sorted(SERVICES)}")
        self.targets = dict(targets)
        self._llm_model = llm_model
        self._clients: dict[str, ServiceClient] = {}
        for name, target in self.targets.items():
            full_name, stub = SERVICES[name]
            channel = open_channel(target, full_name)
            self._clients[name] = ServiceClient(channel=channel, stub=stub(channel), timeout_s=timeout_s)

    def client(self, name: str) -> ServiceClient | None:
        return self._clients.get(name)

    def models(self) -> Models:
        def adapter(name: str, make: Any) -> Any:
            client = self._clients.get(name)
            return make(client) if client else None

        return Models(
            captioner=adapter("vlm", GrpcCaptioner),
            embedder=adapter("embedding", GrpcEmbedder),
            chat=adapter("llm", lambda c: GrpcChatModel(c, self._llm_model)),
            localizer=adapter("localize", GrpcLocalizer),
            judge=adapter("evaluator", GrpcJudge),
        )

    async def health(self, timeout_s: float) -> dict[str, str]:
        """grpc.health.v1 status of each configured service: SERVING, NOT_SERVING, or why it did not answer."""

        async def check(client: ServiceClient) -> str:
            try:
                reply = await health_pb2_grpc.HealthStub(client.channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
                )
            except grpc.aio.AioRpcError as exc:
                return f"UNREACHABLE ({exc.code().name})"
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

        names = list(self._clients)
        statuses = await asyncio.gather(*(check(self._clients[n]) for n in names))
        return dict(zip(names, statuses, strict=True))

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
