"""The VLM service over real gRPC, serving a real (random-weight) Idefics3 checkpoint."""

from __future__ import annotations

import asyncio
import importlib.util

import grpc
import pytest
from prometheus_client import REGISTRY

from raddiff.v1 import common_pb2, vlm_pb2, vlm_pb2_grpc
from raddiff_kit.client import open_channel
from raddiff_kit.settings import SharedSettings
from raddiff_vlm.app import SERVICE_FULL_NAME, build_app
from tests.vlm.conftest import MAX_TOKENS_LIMIT, DataDirs, vlm_settings


def request(
    data_dirs: DataDirs,
    prompt: str = "Describe the findings in this chest X-ray.",
    images: tuple[str, ...] = ("cxr0.png",),
    **sampling: float,
) -> vlm_pb2.GenerateRequest:
    return vlm_pb2.GenerateRequest(
        prompt=prompt,
        images=[common_pb2.ImageRef(uri=data_dirs.uri(name)) for name in images],
        sampling=common_pb2.SamplingParams(**sampling),
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_generate_returns_text_for_an_image(vlm, data_dirs: DataDirs) -> None:
    reply = await vlm.Generate(request(data_dirs, max_tokens=12), timeout=60)
    assert reply.text.strip()
    assert reply.finish_reason in ("stop", "length")
    assert 1 <= reply.usage.completion_tokens <= 12
    # The 64 image tokens of the 256x256 image (plus the text) are part of the prompt.
    assert reply.usage.prompt_tokens > 64


async def test_a_prompt_without_images_is_answered(vlm, data_dirs: DataDirs) -> None:
    reply = await vlm.Generate(request(data_dirs, prompt="Write the impression.", images=(), max_tokens=8), timeout=60)
    assert reply.text.strip()
    assert reply.usage.prompt_tokens < 64


async def test_greedy_is_deterministic_and_depends_on_the_image(vlm, data_dirs: DataDirs) -> None:
    first = await vlm.Generate(request(data_dirs, max_tokens=16), timeout=60)
    second = await vlm.Generate(request(data_dirs, max_tokens=16), timeout=60)
    other_image = await vlm.Generate(request(data_dirs, images=("cxr3.png",), max_tokens=16), timeout=60)
    assert first.text == second.text
    assert first.usage == second.usage
    assert other_image.text != first.text


async def test_max_tokens_is_honoured(vlm, data_dirs: DataDirs) -> None:
    for limit in (1, 5, 40):
        reply = await vlm.Generate(request(data_dirs, images=("cxr1.png",), max_tokens=limit), timeout=60)
        assert reply.finish_reason == "length"
        assert reply.usage.completion_tokens == limit
    default = await vlm.Generate(request(data_dirs, images=("cxr1.png",)), timeout=60)
    assert default.usage.completion_tokens == 24  # default_max_tokens of the test settings


async def test_seeded_sampling_repeats_and_seeds_differ(vlm, data_dirs: DataDirs) -> None:
    a = await vlm.Generate(request(data_dirs, temperature=1.0, seed=7, max_tokens=20), timeout=60)
    b = await vlm.Generate(request(data_dirs, temperature=1.0, seed=7, max_tokens=20), timeout=60)
    c = await vlm.Generate(request(data_dirs, temperature=1.0, seed=8, max_tokens=20), timeout=60)
    greedy = await vlm.Generate(request(data_dirs, max_tokens=20), timeout=60)
    assert a.text == b.text
    assert a.text != c.text
    assert a.text != greedy.text
    # At the limits, sampling collapses onto the most likely token: the greedy answer, and no NaN.
    cold = await vlm.Generate(request(data_dirs, temperature=1e-6, seed=5, max_tokens=20), timeout=60)
    narrow = await vlm.Generate(request(data_dirs, temperature=1.0, top_p=1e-6, seed=5, max_tokens=20), timeout=60)
    assert cold.text == narrow.text == greedy.text


async def test_concurrent_calls_are_batched_and_match_answers_alone(vlm, data_dirs: DataDirs) -> None:
    # Different prompt lengths (left padding), image counts, max_tokens and one seeded sampling row.
    requests = [
        request(data_dirs, "Describe the findings in this chest X-ray.", ("cxr0.png",), max_tokens=20),
        request(data_dirs, "Is there a pleural effusion?", ("cxr1.png", "cxr2.png"), max_tokens=12),
        request(data_dirs, "Where is the pneumothorax? Give its bounding box.", ("cxr3.png",), max_tokens=30),
        request(data_dirs, "Write the impression.", ("cxr4.png",), temperature=0.8, top_p=0.9, seed=3, max_tokens=16),
        request(data_dirs, "List the differences between group A and group B.", ("cxr5.png",), max_tokens=9),
        request(data_dirs, "Write the impression.", (), max_tokens=10),  # no image: decoded as its own group
    ]
    batches_before = metric("raddiff_batch_size_count", service="vlm")
    rows_before = metric("raddiff_batch_size_sum", service="vlm")
    together = await asyncio.gather(*(vlm.Generate(r, timeout=60) for r in requests))
    batches = metric("raddiff_batch_size_count", service="vlm") - batches_before
    rows = metric("raddiff_batch_size_sum", service="vlm") - rows_before
    assert rows == len(requests)
    assert batches < rows, "no batch held more than one request"

    for req, batched in zip(requests, together, strict=True):
        alone = await vlm.Generate(req, timeout=60)
        assert batched.text == alone.text
        assert batched.usage == alone.usage
        assert batched.usage.completion_tokens <= req.sampling.max_tokens


async def test_a_too_short_deadline_stops_the_work(vlm, data_dirs: DataDirs) -> None:
    engine = (await vlm.Info(vlm_pb2.VLMInfoRequest(), timeout=10)).engine
    abandoned_before = sum(
        metric("raddiff_vlm_abandoned_requests_total", engine=engine, reason=reason)
        for reason in ("deadline", "cancelled")
    )
    tokens_before = metric("raddiff_vlm_generated_tokens_total", engine=engine)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await vlm.Generate(request(data_dirs, images=("cxr2.png",), max_tokens=MAX_TOKENS_LIMIT), timeout=1.0)
    assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    # The engine notices at its next decoding step and drops the row.
    for _ in range(600):
        abandoned = sum(
            metric("raddiff_vlm_abandoned_requests_total", engine=engine, reason=reason)
            for reason in ("deadline", "cancelled")
        )
        if abandoned > abandoned_before:
            break
        await asyncio.sleep(0.05)
    assert abandoned == abandoned_before + 1
    spent = metric("raddiff_vlm_generated_tokens_total", engine=engine) - tokens_before
    assert 0 <= spent < MAX_TOKENS_LIMIT
    # And the engine serves the next caller.
    reply = await vlm.Generate(request(data_dirs, max_tokens=4), timeout=60)
    assert reply.usage.completion_tokens == 4


async def test_info(vlm) -> None:
    info = await vlm.Info(vlm_pb2.VLMInfoRequest(), timeout=10)
    assert info.engine == "transformers"
    assert info.model == "tiny-vlm"
    assert info.max_images_per_request == 2
    assert info.max_tokens == MAX_TOKENS_LIMIT


# Engine-agnostic (tests/vllm runs it against every engine); json_schema support differs by engine.
@pytest.mark.parametrize(
    ("images", "prompt", "sampling", "json_schema", "code", "words"),
    [
        (("missing.png",), "Describe.", {}, "", grpc.StatusCode.NOT_FOUND, "does not exist"),
        (("report.png",), "Describe.", {}, "", grpc.StatusCode.INVALID_ARGUMENT, "not an image"),
        (("cut.png",), "Describe.", {}, "", grpc.StatusCode.INVALID_ARGUMENT, "truncated"),
        (("../outside/elsewhere.png",), "Describe.", {}, "", grpc.StatusCode.INVALID_ARGUMENT, "outside"),
        (("cxr0.png",), "  ", {}, "", grpc.StatusCode.INVALID_ARGUMENT, "prompt is empty"),
        (("cxr0.png",), "Look at <image> here", {}, "", grpc.StatusCode.INVALID_ARGUMENT, "image placeholder"),
        (("cxr0.png",) * 3, "Describe.", {}, "", grpc.StatusCode.INVALID_ARGUMENT, "at most 2"),
        (("cxr0.png",), "Describe.", {"max_tokens": 99999}, "", grpc.StatusCode.INVALID_ARGUMENT, "limit"),
        (("cxr0.png",), "Describe.", {"max_tokens": -1}, "", grpc.StatusCode.INVALID_ARGUMENT, "max_tokens"),
        (("cxr0.png",), "Describe.", {"temperature": -0.5}, "", grpc.StatusCode.INVALID_ARGUMENT, "temperature"),
        (("cxr0.png",), "Describe.", {"top_p": 1.5}, "", grpc.StatusCode.INVALID_ARGUMENT, "top_p"),
    ],
)
async def test_bad_input_gets_a_clear_error(vlm, data_dirs, images, prompt, sampling, json_schema, code, words) -> None:
    bad = request(data_dirs, prompt, images, **sampling)
    bad.json_schema = json_schema
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await vlm.Generate(bad, timeout=30)
    assert failed.value.code() == code
    assert words in failed.value.details()


async def test_the_transformers_engine_refuses_a_json_schema(vlm, data_dirs: DataDirs) -> None:
    constrained = request(data_dirs)
    constrained.json_schema = '{"type": "object"}'
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await vlm.Generate(constrained, timeout=30)
    assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "json_schema" in failed.value.details()


async def test_a_sha256_that_does_not_match_is_refused(vlm, data_dirs: DataDirs) -> None:
    bad = request(data_dirs)
    bad.images[0].sha256 = "0" * 64
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await vlm.Generate(bad, timeout=30)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_missing_checkpoint_stops_start_with_a_clear_message(tmp_path, data_dirs: DataDirs) -> None:
    shared = SharedSettings(data_roots=str(data_dirs.root), scratch_dir=data_dirs.scratch)
    app = build_app(vlm_settings(tmp_path / "nothing-here"), shared)
    with pytest.raises(SystemExit) as stopped:
        await app.start("127.0.0.1:0")
    assert "no VLM checkpoint" in str(stopped.value)
    assert "init-random" in str(stopped.value)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed in this venv")
def test_choosing_vllm_where_it_is_not_installed_says_how_to_get_it(tmp_path, data_dirs: DataDirs) -> None:
    shared = SharedSettings(data_roots=str(data_dirs.root), scratch_dir=data_dirs.scratch)
    with pytest.raises(SystemExit) as stopped:
        build_app(vlm_settings(tmp_path, engine="vllm"), shared)
    assert "RADDIFF_VLM_ENGINE=vllm" in str(stopped.value)
    assert "make-vllm-env.sh" in str(stopped.value)


@pytest.mark.parametrize("invariant", [True, False])
async def test_batch_invariant_decoding_runs_each_request_on_its_own(
    checkpoint, data_dirs: DataDirs, monkeypatch: pytest.MonkeyPatch, invariant: bool
) -> None:
    # Padding a row beside longer ones moves its logits by ~1e-6: enough to flip a close greedy token, so a
    # caption would depend on what it was batched with. Batch-invariant decoding never pads a row.
    from raddiff_vlm.transformers_engine import TransformersEngine

    rows: list[int] = []
    decode = TransformersEngine._decode

    def spy(self: TransformersEngine, jobs: list, inputs: dict) -> list:
        rows.append(len(jobs))
        return decode(self, jobs, inputs)

    monkeypatch.setattr(TransformersEngine, "_decode", spy)
    shared = SharedSettings(data_roots=str(data_dirs.root), scratch_dir=data_dirs.scratch)
    app = build_app(vlm_settings(checkpoint, batch_invariant=invariant), shared)
    server, port = await app.start("127.0.0.1:0")
    channel = open_channel(f"127.0.0.1:{port}", SERVICE_FULL_NAME)
    try:
        stub = vlm_pb2_grpc.VLMServiceStub(channel)
        requests = [
            request(data_dirs, "Describe the findings in this chest X-ray.", ("cxr0.png",), max_tokens=6),
            request(data_dirs, "Is there a pleural effusion in this image?", ("cxr1.png",), max_tokens=6),
            request(data_dirs, "Write the impression.", ("cxr2.png",), max_tokens=6),
        ]
        await asyncio.gather(*(stub.Generate(r, timeout=60) for r in requests))
    finally:
        await channel.close()
        await app.drain(server)
    assert sum(rows) == len(requests)
    assert (max(rows) == 1) == invariant
