"""The LLM proxy over real gRPC against a scripted OpenAI-compatible server: request shapes and error paths."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys

import grpc
import pytest
from prometheus_client import REGISTRY

from raddiff.v1 import common_pb2, llm_pb2
from tests.llm_proxy.conftest import Files, Reply, ScriptedUpstream, StartProxy, chest_picture, error_body

SCHEMA = {
    "type": "object",
    "properties": {"findings": {"type": "array", "items": {"type": "string"}}},
    "required": ["findings"],
    "additionalProperties": False,
}


def chat(
    files: Files,
    text: str = "What differs between set A and set B?",
    images: tuple[str, ...] = ("a.png",),
    **fields: object,
) -> llm_pb2.ChatRequest:
    parts = [llm_pb2.ContentPart(text=text)]
    parts += [llm_pb2.ContentPart(image=common_pb2.ImageRef(uri=files.uri(name))) for name in images]
    return llm_pb2.ChatRequest(
        messages=[
            llm_pb2.ChatMessage(role="system", content=[llm_pb2.ContentPart(text="You are a radiologist.")]),
            llm_pb2.ChatMessage(role="user", content=parts),
        ],
        **fields,
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_request_carries_text_image_schema_and_sampling(
    upstream: ScriptedUpstream, files: Files, start_proxy: StartProxy
) -> None:
    prompt_before = metric("raddiff_llm_prompt_tokens_total", model="scripted-model")
    cost_before = metric("raddiff_llm_cost_usd_total", model="scripted-model")
    async with start_proxy(base_url=upstream.url, prompt_price_per_1k=0.5, completion_price_per_1k=2.0) as proxy:
        reply = await proxy.Chat(
            chat(
                files,
                json_schema=json.dumps(SCHEMA),
                sampling=common_pb2.SamplingParams(max_tokens=200, temperature=0.2, top_p=0.9, seed=11),
            ),
            timeout=30,
        )
    [seen] = upstream.seen
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer test-key"
    body = seen.body
    assert body["model"] == "scripted-model"
    assert body["messages"][0] == {"role": "system", "content": "You are a radiologist."}
    text_part, image_part = body["messages"][1]["content"]
    assert text_part == {"type": "text", "text": "What differs between set A and set B?"}
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == (files.root / "a.png").read_bytes()
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA, "strict": True},
    }
    assert body["max_completion_tokens"] == 200
    assert body["temperature"] == pytest.approx(0.2)
    assert body["top_p"] == pytest.approx(0.9)
    assert body["seed"] == 11

    assert reply.text == "finding: What differs between set A and set B?"
    assert reply.model == "scripted-model"
    assert reply.finish_reason == "stop"
    assert not reply.cached
    assert reply.usage.prompt_tokens == len(json.dumps(body["messages"])) // 4
    assert reply.usage.completion_tokens == len(reply.text.split()) == 9
    usage = reply.usage
    assert metric("raddiff_llm_prompt_tokens_total", model="scripted-model") - prompt_before == usage.prompt_tokens
    cost = metric("raddiff_llm_cost_usd_total", model="scripted-model") - cost_before
    assert cost == pytest.approx((usage.prompt_tokens * 0.5 + usage.completion_tokens * 2.0) / 1000)


async def test_an_image_in_another_format_is_sent_as_png(
    upstream: ScriptedUpstream, files: Files, start_proxy: StartProxy
) -> None:
    async with start_proxy(base_url=upstream.url) as proxy:
        await proxy.Chat(chat(files, images=("c.tif",)), timeout=30)
    url = upstream.seen[0].body["messages"][1]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")


async def test_429_then_200_is_retried_after_retry_after(
    upstream: ScriptedUpstream, files: Files, start_proxy: StartProxy
) -> None:
    limited_before = metric("raddiff_llm_upstream_calls_total", model="scripted-model", outcome="rate_limited")
    upstream.script.append(Reply(429, error_body("Rate limit reached", "rate_limit_error"), {"Retry-After": "0.3"}))
    async with start_proxy(base_url=upstream.url) as proxy:
        reply = await proxy.Chat(chat(files), timeout=30)
    assert reply.text.startswith("finding:")
    assert len(upstream.seen) == 2
    # The proxy waited as long as the upstream asked, not its own (0.05 s at most) backoff.
    assert upstream.seen[1].at - upstream.seen[0].at >= 0.28
    limited = metric("raddiff_llm_upstream_calls_total", model="scripted-model", outcome="rate_limited")
    assert limited - limited_before == 1


async def test_server_errors_until_the_bound_give_unavailable(
    upstream: ScriptedUpstream, files: Files, start_proxy: StartProxy
) -> None:
    upstream.default = Reply(503, error_body("The server is overloaded", "server_error"))
    async with start_proxy(base_url=upstream.url, max_attempts=3) as proxy:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await proxy.Chat(chat(files), timeout=30)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "3 times" in failed.value.details()
    assert "overloaded" in failed.value.details()
    assert len(upstream.seen) == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, grpc.StatusCode.INVALID_ARGUMENT),
        (401, grpc.StatusCode.FAILED_PRECONDITION),
        (404, grpc.StatusCode.NOT_FOUND),
    ],
)
async def test_a_client_error_is_not_retried_and_says_why(
    upstream: ScriptedUpstream, files: Files, start_proxy: StartProxy, status: int, code: grpc.StatusCode
) -> None:
    upstream.default = Reply(status, error_body(f"Invalid schema for response_format (HTTP {status})"))
    async with start_proxy(base_url=upstream.url) as proxy:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await proxy.Chat(chat(files, json_schema=json.dumps(SCHEMA)), timeout=30)
    assert failed.value.code() == code
    assert f"Invalid schema for response_format (HTTP {status})" in failed.value.details()
    assert len(upstream.seen) == 1


async def test_a_slow_upstream_times_out(upstream: ScriptedUpstream, files: Files, start_proxy: StartProxy) -> None:
    upstream.default = Reply(delay_s=1.5)
    def timeouts() -> float:
        return metric("raddiff_llm_upstream_calls_total", model="scripted-model", outcome="timeout")

    timeouts_before = timeouts()
    async with start_proxy(base_url=upstream.url, timeout_s=0.3, max_attempts=2) as proxy:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await proxy.Chat(chat(files), timeout=30)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no answer within 0.3 s" in failed.value.details()
        assert timeouts() - timeouts_before == 2
        # The caller's own deadline, shorter than the per-call timeout, ends the call too.
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await proxy.Chat(chat(files, text="again"), timeout=0.5)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_an_unreachable_upstream_gives_unavailable(files: Files, start_proxy: StartProxy) -> None:
    async with start_proxy(base_url="http://127.0.0.1:9/v1", max_attempts=2) as proxy:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await proxy.Chat(chat(files), timeout=30)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "cannot reach http://127.0.0.1:9/v1" in failed.value.details()


async def test_the_cache_answers_without_the_upstream_and_survives_a_restart(
    upstream: ScriptedUpstream, files: Files, start_proxy: StartProxy
) -> None:
    hits_before = metric("raddiff_llm_cache_lookups_total", result="hit")
    async with start_proxy(base_url=upstream.url) as proxy:
        first = await proxy.Chat(chat(files), timeout=30)
        second = await proxy.Chat(chat(files), timeout=30)
    assert not first.cached
    assert second.cached
    assert (second.text, second.usage, second.model) == (first.text, first.usage, first.model)
    assert len(upstream.seen) == 1
    assert metric("raddiff_llm_cache_lookups_total", result="hit") - hits_before == 1

    # A new process over the same folder, even with no upstream, still answers from the cache.
    async with start_proxy(base_url="") as proxy:
        again = await proxy.Chat(chat(files), timeout=30)
    assert again.cached and again.text == first.text

    async with start_proxy(base_url=upstream.url) as proxy:
        # Other sampling is another question.
        await proxy.Chat(chat(files, sampling=common_pb2.SamplingParams(temperature=0.7)), timeout=30)
        assert len(upstream.seen) == 2
        # The same file name with other pixels is another question too.
        chest_picture(5).save(files.root / "a.png")
        changed = await proxy.Chat(chat(files), timeout=30)
        assert not changed.cached
        assert len(upstream.seen) == 3
        # no_cache goes to the upstream even when the answer is cached.
        fresh = await proxy.Chat(chat(files, no_cache=True), timeout=30)
        assert not fresh.cached
        assert len(upstream.seen) == 4


async def test_the_concurrency_limit_holds(upstream: ScriptedUpstream, files: Files, start_proxy: StartProxy) -> None:
    upstream.default = Reply(delay_s=0.2)
    async with start_proxy(base_url=upstream.url, max_concurrency=2, cache_enabled=False) as proxy:
        replies = await asyncio.gather(*(proxy.Chat(chat(files, text=f"question {i}"), timeout=30) for i in range(6)))
    assert [r.text for r in replies] == [f"finding: question {i}" for i in range(6)]
    assert len(upstream.seen) == 6
    assert upstream.max_in_flight == 2


async def test_no_upstream_is_a_failed_precondition(files: Files, start_proxy: StartProxy) -> None:
    async with start_proxy(base_url="") as proxy:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await proxy.Chat(chat(files), timeout=30)
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no LLM upstream configured: set RADDIFF_LLM_BASE_URL" in failed.value.details()


def _message(role: str, *parts: llm_pb2.ContentPart) -> llm_pb2.ChatMessage:
    return llm_pb2.ChatMessage(role=role, content=list(parts))


def _image(files: Files, name: str) -> llm_pb2.ContentPart:
    return llm_pb2.ContentPart(image=common_pb2.ImageRef(uri=files.uri(name)))


TEXT = llm_pb2.ContentPart(text="hello")


@pytest.mark.parametrize(
    ("build", "code", "words"),
    [
        (lambda f: llm_pb2.ChatRequest(), grpc.StatusCode.INVALID_ARGUMENT, "messages is empty"),
        (lambda f: llm_pb2.ChatRequest(messages=[_message("robot", TEXT)]), grpc.StatusCode.INVALID_ARGUMENT, "role"),
        (lambda f: llm_pb2.ChatRequest(messages=[_message("user")]), grpc.StatusCode.INVALID_ARGUMENT, "no content"),
        (
            lambda f: llm_pb2.ChatRequest(messages=[_message("user", llm_pb2.ContentPart())]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "neither text nor image",
        ),
        (
            lambda f: llm_pb2.ChatRequest(messages=[_message("system", _image(f, "a.png"))]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "only user messages",
        ),
        (
            lambda f: llm_pb2.ChatRequest(messages=[_message("user", *[_image(f, "a.png")] * 3)]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "at most 2",
        ),
        (lambda f: chat(f, json_schema="{not json"), grpc.StatusCode.INVALID_ARGUMENT, "not valid JSON"),
        (lambda f: chat(f, json_schema="[1, 2]"), grpc.StatusCode.INVALID_ARGUMENT, "JSON object"),
        (
            lambda f: chat(f, sampling=common_pb2.SamplingParams(temperature=3.0)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "temperature",
        ),
        (
            lambda f: chat(f, sampling=common_pb2.SamplingParams(max_tokens=-5)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_tokens",
        ),
        (lambda f: chat(f, images=("missing.png",)), grpc.StatusCode.NOT_FOUND, "does not exist"),
        (lambda f: chat(f, images=("notes.png",)), grpc.StatusCode.INVALID_ARGUMENT, "not an image"),
        (lambda f: chat(f, images=("../outside.png",)), grpc.StatusCode.INVALID_ARGUMENT, "outside"),
    ],
)
async def test_bad_requests_are_refused_before_any_upstream_call(
    upstream: ScriptedUpstream, files: Files, start_proxy: StartProxy, build, code, words
) -> None:
    (files.root.parent / "outside.png").write_bytes((files.root / "a.png").read_bytes())
    async with start_proxy(base_url=upstream.url, max_images_per_request=2) as proxy:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await proxy.Chat(build(files), timeout=30)
    assert failed.value.code() == code
    assert words in failed.value.details()
    assert upstream.seen == []


async def test_no_model_anywhere_is_a_failed_precondition(
    upstream: ScriptedUpstream, files: Files, start_proxy: StartProxy
) -> None:
    async with start_proxy(base_url=upstream.url, model="") as proxy:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await proxy.Chat(chat(files), timeout=30)
        assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "RADDIFF_LLM_MODEL" in failed.value.details()
        named = await proxy.Chat(chat(files, model="gpt-4o-mini"), timeout=30)
    assert named.model == "gpt-4o-mini"
    assert upstream.seen[0].body["model"] == "gpt-4o-mini"


def test_the_proxy_does_not_import_torch() -> None:
    code = "import sys, raddiff_llm_proxy.app; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
