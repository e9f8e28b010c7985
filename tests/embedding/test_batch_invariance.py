"""An input's vector is bit-identical whatever it is batched with (issue 11 item 7: reproducible results).

The service batches concurrent callers together; a model's float results depend on its batch's shape, so
without fixed-shape passes an image's vector would change (~1e-7) with the traffic around it, and with it
AUROC ties, thresholds and rankings. These tests compare with assert_array_equal, not a tolerance.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from raddiff.v1 import common_pb2, embedding_pb2, embedding_pb2_grpc
from raddiff_embedding.engine import OpenClipEngine, in_fixed_batches
from tests.embedding.conftest import xray_like
from tests.helpers import DataDirs

Stub = embedding_pb2_grpc.EmbeddingServiceStub


@pytest.fixture(scope="module")
def engine(small_checkpoint: Path) -> OpenClipEngine:
    return OpenClipEngine.from_checkpoint(small_checkpoint, "raddiff", batch_shape=4)


@pytest.fixture(scope="module")
def prepared(engine: OpenClipEngine) -> list[torch.Tensor]:
    return [engine.prepare_image(xray_like(seed)) for seed in range(11)]


TEXTS = [
    "large right pleural effusion",
    "cardiomegaly",
    "endotracheal tube in the right main bronchus",
    "no acute cardiopulmonary process",
    "small left apical pneumothorax",
    "severe cardiomegaly with pulmonary edema",
    "left lower lobe atelectasis",
    "nodule",
    "pacemaker",
]


def _batchings(n: int, seed: int) -> list[list[int]]:
    """Ways to run item 0 among others: alone, at every place in calls of several sizes, shuffled."""
    rng = random.Random(seed)
    out: list[list[int]] = [[0]]
    for size in sorted({s for s in (2, 3, 4, 5, 7, n) if s <= n}):
        others = rng.sample(range(1, n), size - 1)
        for place in {0, size // 2, size - 1}:
            out.append([*others[:place], 0, *others[place:]])
    return out


def test_in_fixed_batches_pads_every_pass_to_the_shape_and_drops_the_padding() -> None:
    shapes: list[int] = []

    def run(chunk: list[int]) -> np.ndarray:
        shapes.append(len(chunk))
        return np.asarray(chunk, dtype=np.float32)[:, None] * 2

    out = in_fixed_batches(list(range(10)), 4, run)
    assert shapes == [4, 4, 4]
    np.testing.assert_array_equal(out[:, 0], np.arange(10) * 2)
    shapes.clear()
    assert in_fixed_batches(list(range(3)), 0, run).shape == (3, 1)  # 0: one pass as it comes
    assert shapes == [3]


def test_an_image_vector_does_not_depend_on_its_batch(engine: OpenClipEngine, prepared: list[torch.Tensor]) -> None:
    alone = engine.embed_prepared([prepared[0]])[0]
    for order in _batchings(len(prepared), seed=1):
        got = engine.embed_prepared([prepared[i] for i in order])
        np.testing.assert_array_equal(got[order.index(0)], alone, err_msg=f"batched as {order}")


def test_a_text_vector_does_not_depend_on_its_batch(engine: OpenClipEngine) -> None:
    alone = engine.embed_texts([TEXTS[0]])[0]
    for order in _batchings(len(TEXTS), seed=2):
        got = engine.embed_texts([TEXTS[i] for i in order])
        np.testing.assert_array_equal(got[order.index(0)], alone, err_msg=f"batched as {order}")


def test_a_patch_grid_does_not_depend_on_its_batch(engine: OpenClipEngine, prepared: list[torch.Tensor]) -> None:
    alone = engine.embed_prepared_patches([prepared[0]])[0]
    for order in _batchings(6, seed=3):
        got = engine.embed_prepared_patches([prepared[i] for i in order])
        np.testing.assert_array_equal(got[order.index(0)], alone, err_msg=f"batched as {order}")


async def test_concurrent_callers_get_the_vectors_of_a_lone_call(embedding_stub: Stub, data_dirs: DataDirs) -> None:
    """Through the service's micro-batcher: however calls are merged, each image's vector is the lone call's."""
    names = [f"cxr{i}.png" for i in range(8)]

    def request(*chosen: str) -> embedding_pb2.EmbedImagesRequest:
        return embedding_pb2.EmbedImagesRequest(images=[common_pb2.ImageRef(uri=data_dirs.uri(n)) for n in chosen])

    def vectors(reply: embedding_pb2.EmbedImagesResponse) -> np.ndarray:
        return np.array([list(v.values) for v in reply.embeddings], dtype=np.float32)

    alone = {n: vectors(await embedding_stub.EmbedImages(request(n), timeout=20))[0] for n in names}
    calls = [names[i : i + k] for i, k in ((0, 3), (3, 1), (4, 4), (1, 2), (5, 3))]
    replies = await asyncio.gather(*(embedding_stub.EmbedImages(request(*c), timeout=30) for c in calls))
    for chosen, reply in zip(calls, replies, strict=True):
        for name, vector in zip(chosen, vectors(reply), strict=True):
            np.testing.assert_array_equal(vector, alone[name], err_msg=f"{name} called with {chosen}")

    texts = TEXTS[:6]
    lone = {
        t: vectors(await embedding_stub.EmbedTexts(embedding_pb2.EmbedTextsRequest(texts=[t]), timeout=20))[0]
        for t in texts
    }
    together = await asyncio.gather(
        *(embedding_stub.EmbedTexts(embedding_pb2.EmbedTextsRequest(texts=texts[i:]), timeout=20) for i in range(3))
    )
    for i, reply in enumerate(together):
        for text, vector in zip(texts[i:], vectors(reply), strict=True):
            np.testing.assert_array_equal(vector, lone[text], err_msg=f"{text!r} called with {texts[i:]}")
