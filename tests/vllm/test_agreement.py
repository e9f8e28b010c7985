"""With greedy decoding, the vLLM engine and the transformers engine give the same tokens.

Same checkpoint, same prompt, same image: the engines share nothing but the folder on disk (vLLM runs its
own Idefics3 implementation and kernels in its engine core process), so agreement here is the evidence that
the vLLM engine serves the model faithfully.
"""

from __future__ import annotations

import grpc
import pytest

from raddiff.v1 import vlm_pb2
from raddiff_kit.deadlines import Deadline
from raddiff_kit.images import ImageStore
from raddiff_vlm.engine import GenerationRequest, GenerationResult, Sampling
from tests.helpers import DataDirs
from tests.vllm.conftest import Served
from tests.vlm.test_service import request

CASES = [
    ("Describe the findings in this chest X-ray.", ("cxr0.png",), 40),
    ("Is there a pleural effusion?", ("cxr1.png", "cxr2.png"), 24),
    ("Where is the pneumothorax? Give its bounding box.", ("cxr3.png",), 32),
    ("Write the impression.", (), 16),
]


async def generate(
    served: Served, data_dirs: DataDirs, prompt: str, images: tuple[str, ...], max_tokens: int
) -> GenerationResult:
    store = ImageStore([data_dirs.root], data_dirs.scratch)
    loaded = [store.load(data_dirs.uri(name)) for name in images]
    return await served.engine.generate(GenerationRequest(prompt, loaded, Sampling(max_tokens=max_tokens)), Deadline())


@pytest.mark.parametrize(("prompt", "images", "max_tokens"), CASES)
async def test_greedy_tokens_agree(served: dict[str, Served], data_dirs: DataDirs, prompt, images, max_tokens) -> None:
    hf = await generate(served["transformers"], data_dirs, prompt, images, max_tokens)
    vllm = await generate(served["vllm"], data_dirs, prompt, images, max_tokens)
    assert len(hf.token_ids) == hf.completion_tokens > 0
    assert vllm.token_ids == hf.token_ids
    assert (vllm.prompt_tokens, vllm.completion_tokens, vllm.finish_reason) == (
        hf.prompt_tokens,
        hf.completion_tokens,
        hf.finish_reason,
    )
    assert vllm.text == hf.text
    # The image is part of the prompt in both: 64 image tokens each.
    assert hf.prompt_tokens > 64 * len(images)


async def test_answers_agree_over_the_wire(served: dict[str, Served], data_dirs: DataDirs) -> None:
    for prompt, images, max_tokens in CASES:
        req = request(data_dirs, prompt, images, max_tokens=max_tokens)
        hf = await served["transformers"].stub.Generate(req, timeout=60)
        vllm = await served["vllm"].stub.Generate(req, timeout=60)
        assert (vllm.text, vllm.usage, vllm.finish_reason) == (hf.text, hf.usage, hf.finish_reason)


async def test_different_images_give_different_tokens(served: dict[str, Served], data_dirs: DataDirs) -> None:
    # Guards the agreement above against an engine that ignores the image.
    prompt = "Describe the findings in this chest X-ray."
    first = await generate(served["vllm"], data_dirs, prompt, ("cxr0.png",), 24)
    other = await generate(served["vllm"], data_dirs, prompt, ("cxr4.png",), 24)
    assert first.token_ids != other.token_ids


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
async def test_info_names_the_engine(served: dict[str, Served], engine: str) -> None:
    info = await served[engine].stub.Info(vlm_pb2.VLMInfoRequest(), timeout=10)
    assert (info.engine, info.model, info.max_images_per_request) == (engine, "tiny-vlm", 2)


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
async def test_a_request_beyond_the_context_is_refused_alike(served, data_dirs: DataDirs, engine: str) -> None:
    # vLLM alone would cut the answer short at the context's end; both engines refuse it before decoding.
    long = request(data_dirs, "Describe the lungs. " * 150, max_tokens=1500)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await served[engine].stub.Generate(long, timeout=60)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "exceeds the model's context of 2048 tokens" in failed.value.details()
