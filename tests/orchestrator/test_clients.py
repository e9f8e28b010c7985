"""The gRPC adapters. The LLM proxy is a scripted stand-in (it fronts a paid API) used for request
shapes and error paths; Grid and Crop run on the real localize service, started in-process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from PIL import Image

from raddiff.v1 import llm_pb2, llm_pb2_grpc
from raddiff_kit.images import ImageStore
from raddiff_kit.server import Registration, ServiceApp
from raddiff_kit.settings import ServiceSettings, SharedSettings
from raddiff_orchestrator.agent.config import AgentConfig
from raddiff_orchestrator.agent.ports import Box, ChatMessage, DependencyError, Sampling
from raddiff_orchestrator.agent.proposers import Evidence, LLMProposer, ProposalInput
from raddiff_orchestrator.clients import GrpcChatModel, ServiceClients


@dataclass
class ScriptedProxy(llm_pb2_grpc.LLMProxyServiceServicer):
    """Answers from a script (text, or a status to fail with) and records each request."""

    replies: list[str | grpc.StatusCode] = field(default_factory=list)
    requests: list[llm_pb2.ChatRequest] = field(default_factory=list)
    deadlines: list[float | None] = field(default_factory=list)

    async def Chat(self, request: llm_pb2.ChatRequest, context: grpc.aio.ServicerContext) -> llm_pb2.ChatResponse:
        self.requests.append(request)
        self.deadlines.append(context.time_remaining())
        reply = self.replies.pop(0)
        if isinstance(reply, grpc.StatusCode):
            await context.abort(reply, "upstream said no")
        return llm_pb2.ChatResponse(text=reply, model="scripted")


@pytest.fixture(scope="module")
async def proxy() -> AsyncIterator[tuple[ScriptedProxy, str]]:
    servicer = ScriptedProxy()
    app = ServiceApp(
        "scripted-llm",
        ServiceSettings(metrics_port=0, drain_seconds=0),
        [Registration(servicer, llm_pb2_grpc.add_LLMProxyServiceServicer_to_server, "raddiff.v1.LLMProxyService")],
    )
    server, port = await app.start("127.0.0.1:0")
    yield servicer, f"127.0.0.1:{port}"
    await app.drain(server)


async def test_chat_request_shape_and_deadline(proxy: tuple[ScriptedProxy, str]) -> None:
    servicer, target = proxy
    servicer.replies = ['{"findings": ["cardiomegaly"]}']
    clients = ServiceClients({"llm": target}, timeout_s=7, llm_model="gpt-x")
    try:
        chat = clients.models().chat
        assert isinstance(chat, GrpcChatModel)
        messages = [ChatMessage("system", "be brief"), ChatMessage("user", "look", ("file:///data/a.png",))]
        answer = await chat.chat(messages, {"type": "object"}, Sampling(max_tokens=50, temperature=0.2, seed=9))
    finally:
        await clients.close()
    assert answer == '{"findings": ["cardiomegaly"]}'
    request = servicer.requests[-1]
    assert request.model == "gpt-x" and json.loads(request.json_schema) == {"type": "object"}
    assert request.sampling.max_tokens == 50 and request.sampling.seed == 9
    assert [m.role for m in request.messages] == ["system", "user"]
    user = request.messages[1].content
    assert user[0].text == "look" and user[1].image.uri == "file:///data/a.png"
    # every call has a timeout; the server re-bases it on its own clock, a few milliseconds either way
    assert servicer.deadlines[-1] is not None and 0 < servicer.deadlines[-1] <= 7.1


async def test_the_llm_proposer_through_the_proxy(proxy: tuple[ScriptedProxy, str]) -> None:
    servicer, target = proxy
    servicer.replies = ["not json", json.dumps({"findings": ["right pleural effusion", "basilar atelectasis"]})]
    clients = ServiceClients({"llm": target}, timeout_s=5)
    try:
        chat = clients.models().chat
        assert chat is not None
        a, b = [Evidence("file:///a.png", "opacity at the right base")], [Evidence("file:///b.png", "clear")]
        found = await LLMProposer(chat, "visdiff").propose(ProposalInput(a, b), AgentConfig(), [])
    finally:
        await clients.close()
    assert [f.text for f in found] == ["right pleural effusion", "basilar atelectasis"]
    assert len(servicer.requests[-1].messages) == 4  # the retry carries the bad answer and the reason


async def test_a_failing_proxy_becomes_a_dependency_error_that_names_it(proxy: tuple[ScriptedProxy, str]) -> None:
    servicer, target = proxy
    servicer.replies = [grpc.StatusCode.RESOURCE_EXHAUSTED]
    clients = ServiceClients({"llm": target}, timeout_s=5)
    try:
        chat = clients.models().chat
        assert chat is not None
        with pytest.raises(DependencyError, match="llm Chat failed: RESOURCE_EXHAUSTED: upstream said no"):
            await chat.chat([ChatMessage("user", "x")], None, Sampling())
    finally:
        await clients.close()


async def test_health_names_each_service(proxy: tuple[ScriptedProxy, str]) -> None:
    _, target = proxy
    clients = ServiceClients({"llm": target, "vlm": "127.0.0.1:1"}, timeout_s=5)
    try:
        assert await clients.health(1.0) == {"llm": "SERVING", "vlm": "UNREACHABLE (UNAVAILABLE)"}
    finally:
        await clients.close()


def test_unknown_services_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown services"):
        ServiceClients({"ocr": "127.0.0.1:1"}, timeout_s=1)


async def test_grid_and_crop_on_the_real_localize_service(tmp_path: Path) -> None:
    localize_app = pytest.importorskip("raddiff_localize.app")
    localize_settings = pytest.importorskip("raddiff_localize.settings")
    root, scratch = tmp_path / "data", tmp_path / "scratch"
    root.mkdir()
    uris = []
    for i in range(3):
        Image.new("L", (120, 100), 40 * i).save(root / f"x{i}.png")
        uris.append((root / f"x{i}.png").as_uri())
    shared = SharedSettings(data_roots=str(root), scratch_dir=scratch)
    app = localize_app.build_app(localize_settings.LocalizeSettings(metrics_port=0, drain_seconds=0), shared)
    server, port = await app.start("127.0.0.1:0")
    clients = ServiceClients({"localize": f"127.0.0.1:{port}"}, timeout_s=20)
    try:
        localizer = clients.models().localizer
        assert localizer is not None
        store = ImageStore([root], scratch)
        grid = await localizer.grid(uris[:2], uris[2:])
        assert grid.startswith("scratch://") and store.load(grid).size[0] > 120
        zoom, crops = await localizer.crop(uris, Box(0.25, 0.25, 0.75, 0.75))
        assert len(crops) == 3 and all(c.startswith("scratch://") for c in [zoom, *crops])
        assert store.load(crops[1]).getpixel((5, 5)) == (40, 40, 40)  # the crop of the second image
        with pytest.raises(DependencyError, match="localize Crop failed: INVALID_ARGUMENT"):
            await localizer.crop(uris, Box(0.8, 0.1, 0.2, 0.9))  # x0 > x1
    finally:
        await clients.close()
        await app.drain(server)
