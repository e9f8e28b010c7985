"""Localize with the llm backend against a scripted LLM proxy over gRPC: good answers, repairs within
a bound, and the proxy's errors."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import numpy as np
import pytest

from raddiff.v1 import localize_pb2, localize_pb2_grpc
from raddiff_kit.client import open_channel
from raddiff_kit.errors import FailedPrecondition, Unavailable
from raddiff_kit.settings import SharedSettings, load_settings
from raddiff_localize.app import SERVICE, build_app
from raddiff_localize.boxes import parse_answer
from raddiff_localize.settings import LocalizeSettings
from tests.localize.conftest import COLOURS, Data, Stack

FINDINGS = ["left pleural effusion", "cardiomegaly"]


def request(data: Data, findings: list[str] = FINDINGS, backend: str = "llm") -> localize_pb2.LocalizeRequest:
    return localize_pb2.LocalizeRequest(
        set_a=data.refs("wide0.png", "wide1.png", "wide2.png"),
        set_b=data.refs("wide3.png", "wide4.png"),
        findings=findings,
        backend=backend,
    )


def answer(*boxes: tuple[float, float, float, float], findings: list[str] = FINDINGS) -> str:
    keys = ("x0", "y0", "x1", "y1")
    entries = [{"finding": f, **dict(zip(keys, b, strict=True))} for f, b in zip(findings, boxes, strict=False)]
    return json.dumps({"boxes": entries})


def boxes_of(reply: localize_pb2.LocalizeResponse) -> np.ndarray:
    return np.array([[b.x0, b.y0, b.x1, b.y1] for b in reply.boxes])


async def test_a_good_answer_is_returned_as_is(stack: Stack, data: Data) -> None:
    stack.proxy.play(answer((0.55, 0.5, 0.95, 0.9), (0.3, 0.4, 0.8, 0.85)))
    reply = await stack.localize.Localize(request(data), timeout=30)
    np.testing.assert_allclose(boxes_of(reply), [[0.55, 0.5, 0.95, 0.9], [0.3, 0.4, 0.8, 0.85]], atol=1e-6)
    assert reply.backend == "llm" and list(reply.repairs) == []

    (sent,) = stack.proxy.requests
    assert sent.model == "radiology-test" and sent.sampling.temperature == 0
    schema = json.loads(sent.json_schema)
    assert schema["properties"]["boxes"]["minItems"] == schema["properties"]["boxes"]["maxItems"] == 2
    assert [m.role for m in sent.messages] == ["system", "user"]
    prompt, image = sent.messages[1].content
    assert all(f"{i + 1}. {f}" in prompt.text for i, f in enumerate(FINDINGS))
    assert "3 images) is set A" in prompt.text and "2 images) is set B" in prompt.text
    grid = data.pixels(image.image.uri)  # the combined grid the LLM saw, from the scratch store
    assert grid.shape == (256 + 50 + 256, 5 * 256, 3)
    assert tuple(grid[128, 2 * 256 + 128]) == COLOURS[2]  # A's third image
    assert tuple(grid[256 + 50 + 128, 256 + 128]) == COLOURS[4]  # B's second image


async def test_invalid_json_is_asked_again_and_the_second_answer_used(stack: Stack, data: Data) -> None:
    stack.proxy.play("Sure! The effusion is at the left base.", answer((0.5, 0.5, 1, 1), (0.2, 0.3, 0.8, 0.9)))
    reply = await stack.localize.Localize(request(data), timeout=30)
    np.testing.assert_allclose(boxes_of(reply), [[0.5, 0.5, 1, 1], [0.2, 0.3, 0.8, 0.9]], atol=1e-6)
    assert len(reply.repairs) == 1
    assert reply.repairs[0].startswith("attempt 1: invalid JSON") and reply.repairs[0].endswith("asked again")
    first, second = stack.proxy.requests
    assert [m.role for m in second.messages] == ["system", "user", "assistant", "user"]
    assert second.messages[2].content[0].text == "Sure! The effusion is at the left base."
    assert "invalid JSON" in second.messages[3].content[0].text
    assert second.messages[1] == first.messages[1]


async def test_the_wrong_count_is_retried_within_the_bound_then_falls_back(stack: Stack, data: Data) -> None:
    one_box = answer((0.1, 0.1, 0.4, 0.4), findings=FINDINGS[:1])
    stack.proxy.play(one_box, one_box, one_box, answer((0, 0, 0.5, 0.5), (0, 0, 0.5, 0.5)))
    reply = await stack.localize.Localize(request(data), timeout=30)
    assert len(stack.proxy.requests) == 3  # one try and llm_retries=2 more, never the fourth scripted answer
    np.testing.assert_allclose(boxes_of(reply), [[0.1, 0.1, 0.4, 0.4], [0, 0, 1, 1]], atol=1e-6)
    assert list(reply.repairs) == [
        "attempt 1: 1 boxes for 2 findings; asked again",
        "attempt 2: 1 boxes for 2 findings; asked again",
        "attempt 3: 1 boxes for 2 findings; gave up",
        "finding 2 ('cardiomegaly'): no usable box after 3 attempts; using the whole image",
    ]


async def test_too_many_boxes_keep_the_first_ones(stack: Stack, data: Data) -> None:
    three = answer((0.1, 0.1, 0.2, 0.2), (0.3, 0.3, 0.4, 0.4), (0.5, 0.5, 0.6, 0.6), findings=[*FINDINGS, "extra"])
    stack.proxy.play(three, three, three)
    reply = await stack.localize.Localize(request(data), timeout=30)
    np.testing.assert_allclose(boxes_of(reply), [[0.1, 0.1, 0.2, 0.2], [0.3, 0.3, 0.4, 0.4]], atol=1e-6)
    assert reply.repairs[-1] == "ignored 1 boxes beyond the 2 findings"


async def test_out_of_range_and_inverted_boxes_are_clipped_and_reordered(stack: Stack, data: Data) -> None:
    stack.proxy.play(answer((0.8, -0.1, 0.2, 0.5), (0.1, 0.9, 1.4, 0.2)))
    reply = await stack.localize.Localize(request(data), timeout=30)
    assert len(stack.proxy.requests) == 1
    np.testing.assert_allclose(boxes_of(reply), [[0.2, 0.0, 0.8, 0.5], [0.1, 0.2, 1.0, 0.9]], atol=1e-6)
    assert list(reply.repairs) == [
        "finding 1 ('left pleural effusion'): x0 and x1 swapped",
        "finding 1 ('left pleural effusion'): y0 -0.1 clipped to 0",
        "finding 2 ('cardiomegaly'): y0 and y1 swapped",
        "finding 2 ('cardiomegaly'): x1 1.4 clipped to 1",
    ]


async def test_a_box_without_area_is_asked_again(stack: Stack, data: Data) -> None:
    outside, small = (1.2, 0.1, 1.5, 0.5), (0.1, 0.1, 0.2, 0.2)
    stack.proxy.play(answer(outside, small), answer((0.6, 0.1, 0.9, 0.5), small))
    reply = await stack.localize.Localize(request(data), timeout=30)
    np.testing.assert_allclose(boxes_of(reply)[0], [0.6, 0.1, 0.9, 0.5], atol=1e-6)
    assert list(reply.repairs) == [
        "attempt 1: finding 1 ('left pleural effusion'): the box has no area inside the image; asked again"
    ]


async def test_no_llm_configured_at_the_proxy_is_failed_precondition(stack: Stack, data: Data) -> None:
    stack.proxy.play(FailedPrecondition("no LLM is configured: set RADDIFF_LLM_BASE_URL"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stack.localize.Localize(request(data), timeout=30)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.value.details() == (
        "the LLM proxy answered FAILED_PRECONDITION: no LLM is configured: set RADDIFF_LLM_BASE_URL"
    )


async def test_an_unavailable_proxy_is_unavailable(stack: Stack, data: Data) -> None:
    # Clients retry Localize on UNAVAILABLE (the kit's service config), so every try meets the outage.
    stack.proxy.play(*[Unavailable("upstream is down")] * 4)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stack.localize.Localize(request(data), timeout=30)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE and "upstream is down" in error.value.details()


async def test_a_backend_without_its_service_target_is_failed_precondition(data: Data) -> None:
    shared = SharedSettings(data_roots=str(data.root), scratch_dir=data.scratch)
    app = build_app(LocalizeSettings(metrics_port=0), shared)  # no target of any service
    server, port = await app.start("127.0.0.1:0")
    channel = open_channel(f"127.0.0.1:{port}", SERVICE)
    stub = localize_pb2_grpc.LocalizeServiceStub(channel)
    errors = {}
    try:
        for backend in ("llm", "model", "vlm", ""):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.Localize(request(data, backend=backend), timeout=10)
            errors[backend] = error.value
    finally:
        await channel.close()
        await server.stop(0)
    assert all(e.code() == grpc.StatusCode.FAILED_PRECONDITION for e in errors.values())
    assert "set RADDIFF_LLM_TARGET" in errors["llm"].details()
    assert "set RADDIFF_EMBEDDING_TARGET" in errors["model"].details()
    assert "set RADDIFF_VLM_TARGET" in errors["vlm"].details()
    assert errors[""].details() == errors["model"].details()  # the model backend is the default


@pytest.mark.parametrize(
    "change, message",
    [
        ({"findings": []}, "no findings given"),
        ({"findings": ["effusion", " "]}, "findings[1] is empty"),
        ({"findings": ["x"] * 21}, "21 findings in one call; the limit is 20"),
        ({"backend": "magic"}, "unknown backend 'magic'; known: llm, model, vlm"),
        ({"set_b": []}, "set_b is empty"),
    ],
)
async def test_bad_localize_requests(stack: Stack, data: Data, change: dict, message: str) -> None:
    bad = request(data)
    for key, value in change.items():
        bad.ClearField(key)
        getattr(bad, key).extend(value) if isinstance(value, list) else setattr(bad, key, value)
    stack.proxy.play()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stack.localize.Localize(bad, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.value.details()
    assert stack.proxy.requests == []


def test_parser_edge_cases() -> None:
    bare = parse_answer('[{"x0": 0.1, "y0": 0.1, "x1": 0.2, "y1": 0.2}]', ["effusion"])
    assert bare.problem is None and bare.repairs == ["the answer was a bare list; read it as the boxes"]
    words = parse_answer('{"boxes": [{"x0": "left", "y0": 0, "x1": 1, "y1": true}]}', ["effusion"])
    assert words.boxes == [None] and "not all finite numbers" in (words.problem or "")
    assert parse_answer('{"regions": []}', ["effusion"]).problem == 'the answer has no "boxes" list'


def test_settings_read_the_llm_target_without_the_service_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RADDIFF_LLM_TARGET", "dns:///raddiff-llm-proxy-headless:50053")
    monkeypatch.setenv("RADDIFF_EMBEDDING_TARGET", "dns:///raddiff-embedding-headless:50052")
    monkeypatch.setenv("RADDIFF_VLM_TARGET", "dns:///raddiff-vlm-headless:50051")
    monkeypatch.setenv("RADDIFF_LOCALIZE_LLM_RETRIES", "4")
    monkeypatch.setenv("RADDIFF_LOCALIZE_MODEL_MIN_PEAK_T", "2.5")
    settings = load_settings(LocalizeSettings)
    assert settings.llm_target == "dns:///raddiff-llm-proxy-headless:50053" and settings.llm_retries == 4
    assert settings.embedding_target == "dns:///raddiff-embedding-headless:50052"
    assert settings.vlm_target == "dns:///raddiff-vlm-headless:50051"
    assert settings.default_backend == "model" and settings.map_options().min_peak_t == 2.5
    assert (settings.grpc_port, settings.metrics_port) == (50054, 9104)
    monkeypatch.setenv("RADDIFF_LOCALIZE_DEFAULT_BACKEND", "magic")
    with pytest.raises(SystemExit, match="'magic' is not one of llm, model, vlm"):
        build_app(shared=SharedSettings(scratch_dir=tmp_path))
