"""The kit's server lifecycle, interceptor, health, metrics, deadlines and drain, on a real grpc.aio server."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from raddiff.v1 import evaluator_pb2, evaluator_pb2_grpc
from raddiff_kit.batching import MicroBatcher
from raddiff_kit.client import open_channel
from raddiff_kit.deadlines import Deadline, run_blocking
from raddiff_kit.errors import DeadlineExceeded, InvalidArgument
from raddiff_kit.grpc_options import service_config
from raddiff_kit.server import Registration, ServiceApp
from raddiff_kit.settings import ServiceSettings

SERVICE = "raddiff.v1.EvaluatorService"


class ProbeServicer(evaluator_pb2_grpc.EvaluatorServiceServicer):
    """Behaves according to the first prediction, to drive each path of the kit."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.finished = 0
        self.cancelled = 0

    async def Judge(self, request: evaluator_pb2.JudgeRequest, context: grpc.aio.ServicerContext):
        what = request.predictions[0] if request.predictions else ""
        if what == "invalid":
            raise InvalidArgument("prediction 0 is invalid")
        if what == "crash":
            raise RuntimeError("engine exploded")
        if what == "slow":
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        if what == "deadline":
            return await run_blocking(Deadline.from_context(context), lambda: evaluator_pb2.JudgeResponse())
        self.finished += 1
        return evaluator_pb2.JudgeResponse(scores=[2], acc_at_1=1.0)


@pytest.fixture()
async def running():
    servicer = ProbeServicer()
    app = ServiceApp(
        name="probe",
        settings=ServiceSettings(metrics_port=0, drain_seconds=5),
        registrations=[Registration(servicer, evaluator_pb2_grpc.add_EvaluatorServiceServicer_to_server, SERVICE)],
    )
    server, port = await app.start("127.0.0.1:0")
    channel = open_channel(f"127.0.0.1:{port}", SERVICE)
    yield app, server, servicer, channel
    servicer.release.set()
    await channel.close()
    await server.stop(0)


def _count(code: str) -> float:
    value = REGISTRY.get_sample_value(
        "raddiff_grpc_requests_total", {"service": "probe", "method": "Judge", "code": code}
    )
    return value or 0.0


async def test_errors_become_status_codes_and_metrics(running) -> None:
    _, _, _, channel = running
    stub = evaluator_pb2_grpc.EvaluatorServiceStub(channel)
    before_ok, before_bad = _count("OK"), _count("INVALID_ARGUMENT")
    reply = await stub.Judge(evaluator_pb2.JudgeRequest(predictions=["fine"]), timeout=5)
    assert list(reply.scores) == [2]
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.Judge(evaluator_pb2.JudgeRequest(predictions=["invalid"]), timeout=5)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad.value.details() == "prediction 0 is invalid"
    with pytest.raises(grpc.aio.AioRpcError) as crash:
        await stub.Judge(evaluator_pb2.JudgeRequest(predictions=["crash"]), timeout=5)
    assert crash.value.code() == grpc.StatusCode.INTERNAL
    assert "RuntimeError: engine exploded" in crash.value.details()
    # The server survives and keeps counting.
    await stub.Judge(evaluator_pb2.JudgeRequest(predictions=["fine"]), timeout=5)
    assert _count("OK") == before_ok + 2
    assert _count("INVALID_ARGUMENT") == before_bad + 1


async def test_health_and_reflection_are_served(running) -> None:
    _, _, _, channel = running
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = set()
    async for reply in reflect.ServerReflectionInfo(ask(), timeout=5):
        names |= {s.name for s in reply.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


async def test_an_unhealthy_engine_turns_the_health_status_to_not_serving() -> None:
    alive = True
    app = ServiceApp(
        name="probe",
        settings=ServiceSettings(metrics_port=0, drain_seconds=1),
        registrations=[
            Registration(ProbeServicer(), evaluator_pb2_grpc.add_EvaluatorServiceServicer_to_server, SERVICE)
        ],
        engine_healthy=lambda: alive,
        health_check_seconds=0.05,
    )
    server, port = await app.start("127.0.0.1:0")
    channel = open_channel(f"127.0.0.1:{port}", SERVICE)
    health = health_pb2_grpc.HealthStub(channel)

    async def status(name: str = "") -> int:
        return (await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status

    try:
        await asyncio.sleep(0.2)
        assert await status() == health_pb2.HealthCheckResponse.SERVING
        alive = False
        await asyncio.sleep(0.2)
        assert await status() == await status(SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
        alive = True
        await asyncio.sleep(0.2)
        assert await status(SERVICE) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close()
        await app.drain(server)


async def test_oversized_message_is_refused_clearly(running) -> None:
    _, _, _, channel = running
    stub = evaluator_pb2_grpc.EvaluatorServiceStub(channel)
    huge = "x" * (5 * 1024 * 1024)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Judge(evaluator_pb2.JudgeRequest(predictions=[huge]), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_deadline_cancels_waiting_work(running) -> None:
    _, _, servicer, channel = running
    stub = evaluator_pb2_grpc.EvaluatorServiceStub(channel)
    finished = servicer.finished
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Judge(evaluator_pb2.JudgeRequest(predictions=["slow"]), timeout=0.3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The server cancels the handler on its own schedule (later on a loaded machine): wait for it.
    async with asyncio.timeout(10):
        while not servicer.cancelled:
            await asyncio.sleep(0.02)
    servicer.release.set()
    await asyncio.sleep(0.1)
    assert servicer.finished == finished  # the handler was cancelled, not run to the end


async def test_drain_finishes_inflight_and_refuses_new_calls(running) -> None:
    app, server, servicer, channel = running
    stub = evaluator_pb2_grpc.EvaluatorServiceStub(channel)
    async def slow_call() -> evaluator_pb2.JudgeResponse:
        return await stub.Judge(evaluator_pb2.JudgeRequest(predictions=["slow"]), timeout=10)

    inflight = asyncio.create_task(slow_call())
    await asyncio.sleep(0.2)
    drain = asyncio.create_task(app.drain(server))
    await asyncio.sleep(0.2)
    health = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Judge(evaluator_pb2.JudgeRequest(predictions=["fine"]), timeout=1, wait_for_ready=False)
    servicer.release.set()
    reply = await inflight
    assert list(reply.scores) == [2]
    await drain
    with pytest.raises(grpc.aio.AioRpcError):
        await health.Check(health_pb2.HealthCheckRequest(), timeout=1)


async def test_run_blocking_refuses_expired_work() -> None:
    with pytest.raises(DeadlineExceeded):
        await run_blocking(Deadline(at=0.0), lambda: 1)
    assert await run_blocking(Deadline(), lambda: 41 + 1) == 42


async def test_micro_batcher_joins_concurrent_callers() -> None:
    batches: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        batches.append(items)
        return [2 * i for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(double, "probe-batch", max_batch=8, max_wait_s=0.05)
    results = await asyncio.gather(*(batcher.submit([i, 10 + i], Deadline()) for i in range(3)))
    assert results == [[0, 20], [2, 22], [4, 24]]
    assert max(len(b) for b in batches) > 2  # several callers' items shared a batch


def test_retry_policy_is_only_for_unavailable_on_idempotent_methods() -> None:
    config = json.loads(service_config("raddiff.v1.EmbeddingService"))
    policy = config["methodConfig"][0]["retryPolicy"]
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert "methodConfig" not in json.loads(service_config("raddiff.v1.LLMProxyService"))
