"""What only the vLLM engine does: continuous batching, JSON-schema output, aborting abandoned requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import grpc
import jsonschema
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raddiff.v1 import vlm_pb2_grpc
from raddiff_kit.client import open_channel
from raddiff_kit.settings import SharedSettings
from raddiff_vlm.app import SERVICE_FULL_NAME, build_app, create_engine
from tests.helpers import DataDirs
from tests.vllm.conftest import Served, engine_settings
from tests.vlm.test_service import metric, request

FINDING = {
    "type": "object",
    "properties": {
        "finding": {"enum": ["effusion", "pneumothorax", "cardiomegaly", "no finding"]},
        "present": {"type": "boolean"},
        "side": {"enum": ["left", "right", "bilateral"]},
    },
    "required": ["finding", "present", "side"],
    "additionalProperties": False,
}
FINDINGS_LIST = {
    "type": "object",
    "properties": {
        "findings": {"type": "array", "items": {"enum": ["effusion", "edema", "nodule"]}, "minItems": 1, "maxItems": 3},
        "severity": {"type": "integer", "minimum": 0, "maximum": 3},
    },
    "required": ["findings", "severity"],
    "additionalProperties": False,
}


async def eventually(condition: Callable[[], bool], seconds: float = 20.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


def running() -> float:
    return metric("raddiff_vlm_engine_requests_running", engine="vllm")


async def test_concurrent_requests_are_batched_and_each_answered(served: dict[str, Served], data_dirs) -> None:
    prompts = [
        "Describe the findings in this chest X-ray.",
        "Is there a pleural effusion?",
        "Where is the pneumothorax? Give its bounding box.",
        "Write the impression.",
    ]
    requests = [
        request(data_dirs, prompts[i % 4], (f"cxr{i % 6}.png",), max_tokens=20 + 3 * i) for i in range(8)
    ]
    seen: list[float] = []
    done = asyncio.Event()

    async def watch() -> None:  # vLLM's scheduler figure, as the metrics endpoint shows it
        while not done.is_set():
            seen.append(running())
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    replies = await asyncio.gather(*(served["vllm"].stub.Generate(r, timeout=120) for r in requests))
    done.set()
    await watcher

    assert max(seen) > 1, f"vLLM never ran more than one request at once (figures seen: {sorted(set(seen))})"
    # Each batched answer is the one the transformers engine gives the request alone.
    for req, reply in zip(requests, replies, strict=True):
        alone = await served["transformers"].stub.Generate(req, timeout=60)
        assert (reply.text, reply.usage, reply.finish_reason) == (alone.text, alone.usage, alone.finish_reason)
        assert reply.usage.completion_tokens == req.sampling.max_tokens
    assert await eventually(lambda: running() == 0)
    assert metric("raddiff_vlm_engine_requests_waiting", engine="vllm") == 0


async def test_output_follows_each_requests_json_schema(served: dict[str, Served], data_dirs: DataDirs) -> None:
    vlm = served["vllm"].stub
    constrained = []
    for schema, image in ((FINDING, "cxr0.png"), (FINDINGS_LIST, "cxr1.png"), (FINDING, "cxr2.png")):
        req = request(data_dirs, "Report the main finding as JSON.", (image,), max_tokens=64)
        req.json_schema = json.dumps(schema)
        constrained.append((schema, req))
    replies = await asyncio.gather(*(vlm.Generate(req, timeout=120) for _, req in constrained))
    for (schema, _), reply in zip(constrained, replies, strict=True):
        assert reply.finish_reason == "stop", reply.text  # the grammar ends the answer
        jsonschema.validate(json.loads(reply.text), schema)
        assert reply.usage.completion_tokens < 64
    # The same request without a schema is not JSON: the constraint did the work.
    free_request = request(data_dirs, "Report the main finding as JSON.", ("cxr0.png",), max_tokens=64)
    free = await vlm.Generate(free_request, timeout=60)
    with pytest.raises((json.JSONDecodeError, jsonschema.ValidationError)):
        jsonschema.validate(json.loads(free.text), FINDING)


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"type": "nonsense"}', "nonsense"),
        ('{"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}', "missing"),
    ],
)
async def test_a_schema_that_cannot_be_followed_is_refused(served, data_dirs, schema: str, words: str) -> None:
    bad = request(data_dirs, max_tokens=8)
    bad.json_schema = schema
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await served["vllm"].stub.Generate(bad, timeout=60)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in failed.value.details()


async def test_a_passed_deadline_aborts_the_vllm_request(served: dict[str, Served], data_dirs: DataDirs) -> None:
    engine = served["vllm"].engine
    abandoned_before = metric("raddiff_vlm_abandoned_requests_total", engine="vllm", reason="deadline") + metric(
        "raddiff_vlm_abandoned_requests_total", engine="vllm", reason="cancelled"
    )
    tokens_before = metric("raddiff_vlm_generated_tokens_total", engine="vllm")
    long = request(data_dirs, images=("cxr5.png",), max_tokens=1500)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await served["vllm"].stub.Generate(long, timeout=1.0)
    assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # vLLM itself no longer holds the request, well before 1,500 tokens could have been decoded.
    assert await eventually(lambda: engine.unfinished_requests() == 0, seconds=5)
    assert await eventually(lambda: running() == 0, seconds=5)
    abandoned = metric("raddiff_vlm_abandoned_requests_total", engine="vllm", reason="deadline") + metric(
        "raddiff_vlm_abandoned_requests_total", engine="vllm", reason="cancelled"
    )
    assert abandoned == abandoned_before + 1
    assert metric("raddiff_vlm_generated_tokens_total", engine="vllm") - tokens_before < 1500


async def test_a_caller_that_goes_away_aborts_the_vllm_request(served: dict[str, Served], data_dirs: DataDirs) -> None:
    engine = served["vllm"].engine
    cancelled_before = metric("raddiff_vlm_abandoned_requests_total", engine="vllm", reason="cancelled")
    call = served["vllm"].stub.Generate(request(data_dirs, images=("cxr4.png",), max_tokens=1500), timeout=120)
    assert await eventually(lambda: engine.unfinished_requests() == 1), "the request never reached vLLM"
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await eventually(lambda: engine.unfinished_requests() == 0, seconds=5)
    assert await eventually(
        lambda: metric("raddiff_vlm_abandoned_requests_total", engine="vllm", reason="cancelled")
        == cancelled_before + 1,
        seconds=5,
    )
    # And the engine serves the next caller.
    reply = await served["vllm"].stub.Generate(request(data_dirs, max_tokens=4), timeout=60)
    assert reply.usage.completion_tokens == 4


async def test_a_missing_checkpoint_stops_start_with_a_clear_message(tmp_path, data_dirs: DataDirs) -> None:
    shared = SharedSettings(data_roots=str(data_dirs.root), scratch_dir=data_dirs.scratch)
    app = build_app(engine_settings(tmp_path / "nothing-here", "vllm"), shared)
    with pytest.raises(SystemExit) as stopped:
        await app.start("127.0.0.1:0")
    assert "no VLM checkpoint" in str(stopped.value)


async def test_a_dead_engine_turns_the_service_not_serving(checkpoint, data_dirs: DataDirs) -> None:
    shared = SharedSettings(data_roots=str(data_dirs.root), scratch_dir=data_dirs.scratch)
    settings = engine_settings(checkpoint, "vllm")
    engine = create_engine(settings, shared)
    app = build_app(settings, shared, engine=engine)
    app.health_check_seconds = 0.1
    server, port = await app.start("127.0.0.1:0")
    channel = open_channel(f"127.0.0.1:{port}", SERVICE_FULL_NAME)
    health = health_pb2_grpc.HealthStub(channel)
    try:
        check = health_pb2.HealthCheckRequest(service=SERVICE_FULL_NAME)
        assert (await health.Check(check, timeout=5)).status == health_pb2.HealthCheckResponse.SERVING
        # The flag vLLM's own engine-core monitor sets when the core process dies; vLLM never clears it.
        engine._engine.engine_core.resources.engine_dead = True
        async with asyncio.timeout(10):
            while (await health.Check(check, timeout=5)).status != health_pb2.HealthCheckResponse.NOT_SERVING:
                await asyncio.sleep(0.05)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await vlm_pb2_grpc.VLMServiceStub(channel).Generate(request(data_dirs, max_tokens=2), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await channel.close()
        await app.drain(server)
