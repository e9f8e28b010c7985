"""EmbeddingService over a real in-process gRPC server with a small randomly initialised model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from raddiff.v1 import common_pb2, embedding_pb2, embedding_pb2_grpc
from raddiff_embedding.app import build_app
from raddiff_embedding.engine import OpenClipEngine
from raddiff_embedding.settings import EmbeddingSettings
from raddiff_kit.images import ImageStore, sha256_file
from raddiff_kit.settings import SharedSettings, load_settings
from tests.helpers import DataDirs

Stub = embedding_pb2_grpc.EmbeddingServiceStub


def _vectors(response: embedding_pb2.EmbedImagesResponse | embedding_pb2.EmbedTextsResponse) -> np.ndarray:
    return np.array([list(v.values) for v in response.embeddings], dtype=np.float32)


def _images(dirs: DataDirs, *names: str) -> embedding_pb2.EmbedImagesRequest:
    return embedding_pb2.EmbedImagesRequest(images=[common_pb2.ImageRef(uri=dirs.uri(n)) for n in names])


@pytest.fixture(scope="module")
def reference_engine(small_checkpoint: Path) -> OpenClipEngine:
    return OpenClipEngine.from_checkpoint(small_checkpoint, "raddiff")


async def test_info_describes_the_loaded_model(embedding_stub: Stub, reference_engine: OpenClipEngine) -> None:
    info = await embedding_stub.Info(embedding_pb2.EmbeddingInfoRequest(), timeout=10)
    assert info.model_id == reference_engine.model_id
    assert info.model_id.startswith("raddiff-clip-small@sha256:") and info.model_id.endswith("+raddiff")
    assert (info.dim, info.preprocessing, info.image_size) == (256, "raddiff", 224)


async def test_image_vectors_are_unit_length_and_match_the_engine(
    embedding_stub: Stub, data_dirs: DataDirs, reference_engine: OpenClipEngine
) -> None:
    names = ["cxr0.png", "cxr1.png", "cxr2.png"]
    path = data_dirs.root / "cxr0.png"
    request = _images(data_dirs, *names)
    request.images[0].sha256 = sha256_file(path)
    response = await embedding_stub.EmbedImages(request, timeout=10)
    got = _vectors(response)
    assert got.shape == (3, 256)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    store = ImageStore([data_dirs.root], data_dirs.scratch)
    expected = reference_engine.embed_images([store.load(data_dirs.uri(n)) for n in names])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert response.model_id == reference_engine.model_id
    # Distinct images give distinct vectors.
    assert float(got[0] @ got[1]) < 0.9999


async def test_text_vectors_are_unit_length_and_match_the_engine(
    embedding_stub: Stub, reference_engine: OpenClipEngine
) -> None:
    texts = ["large left pleural effusion", "cardiomegaly", "large left pleural effusion"]
    response = await embedding_stub.EmbedTexts(embedding_pb2.EmbedTextsRequest(texts=texts), timeout=10)
    got = _vectors(response)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, reference_engine.embed_texts(texts), atol=1e-5)
    np.testing.assert_allclose(got[0], got[2], atol=1e-6)
    assert not np.allclose(got[0], got[1], atol=1e-3)


async def test_a_16_bit_png_embeds_like_its_8_bit_twin(embedding_stub: Stub, data_dirs: DataDirs) -> None:
    response = await embedding_stub.EmbedImages(_images(data_dirs, "cxr0.png", "cxr0-16bit.png"), timeout=10)
    eight, sixteen = _vectors(response)
    np.testing.assert_allclose(sixteen, eight, atol=1e-6)


def _batch_stats(name: str) -> tuple[float, float]:
    labels = {"service": name}
    count = REGISTRY.get_sample_value("raddiff_batch_size_count", labels) or 0.0
    total = REGISTRY.get_sample_value("raddiff_batch_size_sum", labels) or 0.0
    return count, total


async def test_concurrent_calls_share_batches_and_each_gets_its_own_vectors(
    embedding_stub: Stub, data_dirs: DataDirs, reference_engine: OpenClipEngine
) -> None:
    names = [f"cxr{i}.png" for i in range(6)]
    store = ImageStore([data_dirs.root], data_dirs.scratch)
    expected = {n: reference_engine.embed_images([store.load(data_dirs.uri(n))])[0] for n in names}
    count0, items0 = _batch_stats("embedding-images")
    responses = await asyncio.gather(
        *(embedding_stub.EmbedImages(_images(data_dirs, n), timeout=20) for n in names)
    )
    count1, items1 = _batch_stats("embedding-images")
    assert items1 - items0 == len(names)
    assert count1 - count0 < len(names), "six concurrent calls ran as six separate engine batches"
    for name, response in zip(names, responses, strict=True):
        np.testing.assert_allclose(_vectors(response)[0], expected[name], atol=1e-5)

    texts = ["effusion", "pneumothorax", "atelectasis", "edema"]
    count0, _ = _batch_stats("embedding-texts")
    replies = await asyncio.gather(
        *(embedding_stub.EmbedTexts(embedding_pb2.EmbedTextsRequest(texts=[t]), timeout=20) for t in texts)
    )
    count1, _ = _batch_stats("embedding-texts")
    assert count1 - count0 < len(texts)
    for text, reply in zip(texts, replies, strict=True):
        np.testing.assert_allclose(_vectors(reply)[0], reference_engine.embed_texts([text])[0], atol=1e-5)


async def test_a_bad_file_fails_only_its_own_caller(embedding_stub: Stub, data_dirs: DataDirs) -> None:
    good = [embedding_stub.EmbedImages(_images(data_dirs, f"cxr{i}.png"), timeout=20) for i in range(3)]
    bad = embedding_stub.EmbedImages(_images(data_dirs, "cxr4.png", "cut.png"), timeout=20)
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert all(isinstance(r, embedding_pb2.EmbedImagesResponse) for r in results[:3])
    assert isinstance(results[3], grpc.aio.AioRpcError)
    assert results[3].code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "images[1]" in results[3].details() and "truncated" in results[3].details()


@pytest.mark.parametrize(
    "uri, code, message",
    [
        ("{root}/missing.png", grpc.StatusCode.NOT_FOUND, "does not exist"),
        ("{outside}/secret.png", grpc.StatusCode.INVALID_ARGUMENT, "outside the data roots"),
        ("{root}/../outside/secret.png", grpc.StatusCode.INVALID_ARGUMENT, "outside the data roots"),
        ("{root}/escape.png", grpc.StatusCode.INVALID_ARGUMENT, "outside the data roots"),
        ("{root}/notes.png", grpc.StatusCode.INVALID_ARGUMENT, "not an image"),
        ("{root}/cut.png", grpc.StatusCode.INVALID_ARGUMENT, "truncated"),
        ("http://example.org/cxr.png", grpc.StatusCode.INVALID_ARGUMENT, "unsupported scheme"),
        ("", grpc.StatusCode.INVALID_ARGUMENT, "empty image uri"),
    ],
)
async def test_bad_images_are_refused_with_a_clear_error(
    embedding_stub: Stub, data_dirs: DataDirs, uri: str, code: grpc.StatusCode, message: str
) -> None:
    uri = uri.format(root="file://" + str(data_dirs.root), outside="file://" + str(data_dirs.outside))
    request = embedding_pb2.EmbedImagesRequest(images=[common_pb2.ImageRef(uri=uri)])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await embedding_stub.EmbedImages(request, timeout=10)
    assert error.value.code() == code
    assert message in error.value.details() and "images[0]" in error.value.details()


async def test_wrong_sha256_is_refused(embedding_stub: Stub, data_dirs: DataDirs) -> None:
    request = _images(data_dirs, "cxr0.png")
    request.images[0].sha256 = "0" * 64
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await embedding_stub.EmbedImages(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "sha256" in error.value.details()


@pytest.mark.parametrize(
    "method, request_, message",
    [
        ("EmbedImages", embedding_pb2.EmbedImagesRequest(), "no images given"),
        ("EmbedTexts", embedding_pb2.EmbedTextsRequest(), "no texts given"),
        ("EmbedTexts", embedding_pb2.EmbedTextsRequest(texts=["effusion", ""]), "texts[1] is empty"),
        ("EmbedTexts", embedding_pb2.EmbedTextsRequest(texts=["  \n"]), "texts[0] is empty"),
        ("EmbedTexts", embedding_pb2.EmbedTextsRequest(texts=["x"] * 9), "9 texts in one call; the limit is 8"),
        ("EmbedTexts", embedding_pb2.EmbedTextsRequest(texts=["x" * 4001]), "4001 characters"),
    ],
)
async def test_bad_requests_are_invalid_argument(embedding_stub: Stub, method: str, request_, message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await getattr(embedding_stub, method)(request_, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


async def test_too_many_images_names_the_limit(embedding_stub: Stub, data_dirs: DataDirs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await embedding_stub.EmbedImages(_images(data_dirs, *["cxr0.png"] * 9), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "9 images in one call; the limit is 8" in error.value.details()


async def test_a_missing_checkpoint_stops_the_start_with_a_message(tmp_path: Path) -> None:
    shared = SharedSettings(model_dir=tmp_path / "models", scratch_dir=tmp_path / "scratch")
    app = build_app(EmbeddingSettings(checkpoint=None, metrics_port=0), shared)
    with pytest.raises(SystemExit, match=r"models/clip does not exist.*init-random"):
        await app.start("127.0.0.1:0")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RADDIFF_MODEL_DIR", str(tmp_path))
    monkeypatch.delenv("RADDIFF_EMBEDDING_CHECKPOINT", raising=False)
    monkeypatch.setenv("RADDIFF_EMBEDDING_PREPROCESSING", "chexzero")
    settings = load_settings(EmbeddingSettings)
    assert settings.checkpoint_path(load_settings(SharedSettings)) == tmp_path / "clip"
    assert (settings.preprocessing, settings.grpc_port, settings.metrics_port) == ("chexzero", 50052, 9102)
    monkeypatch.setenv("RADDIFF_EMBEDDING_CHECKPOINT", str(tmp_path / "chexzero.pt"))
    assert load_settings(EmbeddingSettings).checkpoint_path(load_settings(SharedSettings)) == tmp_path / "chexzero.pt"
    assert settings.device == "auto"
    monkeypatch.setenv("RADDIFF_EMBEDDING_PREPROCESSING", "imagenet")
    with pytest.raises(SystemExit):
        load_settings(EmbeddingSettings)
    monkeypatch.setenv("RADDIFF_EMBEDDING_PREPROCESSING", "chexzero")
    monkeypatch.setenv("RADDIFF_EMBEDDING_DEVICE", "tpu")
    with pytest.raises(SystemExit):
        load_settings(EmbeddingSettings)
