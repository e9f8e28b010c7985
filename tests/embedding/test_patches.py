"""EmbedImagePatches: patch tokens in the joint space, their grid, their frame on the image, and the call cap."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from open_clip.transformer import VisionTransformer
from PIL import Image, ImageDraw

from raddiff.v1 import common_pb2, embedding_pb2, embedding_pb2_grpc
from raddiff_embedding.engine import OpenClipEngine, _patch_grid
from raddiff_embedding.preprocess import build_preprocess, input_frame
from raddiff_kit.images import ImageStore
from tests.helpers import DataDirs

Stub = embedding_pb2_grpc.EmbeddingServiceStub


def _request(dirs: DataDirs, *names: str) -> embedding_pb2.EmbedImagePatchesRequest:
    return embedding_pb2.EmbedImagePatchesRequest(images=[common_pb2.ImageRef(uri=dirs.uri(n)) for n in names])


def _grid(grid: embedding_pb2.PatchGrid) -> np.ndarray:
    return np.asarray(grid.values, dtype=np.float32).reshape(grid.rows, grid.cols, grid.dim)


@pytest.fixture(scope="module")
def reference_engine(small_checkpoint: Path) -> OpenClipEngine:
    return OpenClipEngine.from_checkpoint(small_checkpoint, "raddiff")


def _marker_image(size: tuple[int, int], centre: tuple[float, float]) -> Image.Image:
    """A black image with a bright 12 px square centred at the normalised point `centre`."""
    image = Image.new("L", size, 0)
    x, y = centre[0] * size[0], centre[1] * size[1]
    ImageDraw.Draw(image).rectangle((x - 6, y - 6, x + 5, y + 5), fill=255)
    return image.convert("RGB")


@pytest.mark.parametrize("preprocessing", ["raddiff", "chexzero"])
@pytest.mark.parametrize("size", [(400, 200), (200, 400), (333, 331), (260, 300)])
def test_the_frame_maps_model_input_pixels_back_to_their_place(
    preprocessing: str, size: tuple[int, int]
) -> None:
    """A marker drawn at a known place is found in the model input where the frame says it is."""
    centre = (0.45, 0.55)  # inside the centre crop of every size above
    tensor = build_preprocess(preprocessing, 224)(_marker_image(size, centre))  # type: ignore[arg-type]
    channel = tensor[0].numpy()
    rows, cols = np.nonzero(channel > channel.min() + 0.5 * (channel.max() - channel.min()))
    x0, y0, x1, y1 = input_frame(preprocessing, 224, *size)  # type: ignore[arg-type]
    found_x = x0 + (x1 - x0) * (cols.mean() + 0.5) / 224
    found_y = y0 + (y1 - y0) * (rows.mean() + 0.5) / 224
    # Within a couple of source pixels (resampling blurs the marker's edges).
    assert abs(found_x - centre[0]) * size[0] < 2.0
    assert abs(found_y - centre[1]) * size[1] < 2.0
    if preprocessing == "raddiff":
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1  # a centre crop: the frame lies inside the image
    else:
        assert x0 <= 0 and y0 <= 0 and x1 >= 1 and y1 >= 1  # letterboxed: the whole image is seen


async def test_info_gives_the_patch_grid_and_the_call_cap(embedding_stub: Stub) -> None:
    info = await embedding_stub.Info(embedding_pb2.EmbeddingInfoRequest(), timeout=10)
    assert (info.patch_rows, info.patch_cols) == (14, 14)  # 224 px in 16 px patches
    # 14*14*256 float32 is ~200 KB: 18 fit in 90% of 4 MB, and the setting (16) is lower.
    assert info.max_patch_images == 16


async def test_patch_grids_are_the_transformer_tokens_through_ln_post_and_proj(
    embedding_stub: Stub, data_dirs: DataDirs, reference_engine: OpenClipEngine
) -> None:
    names = ["cxr0.png", "cxr1.png"]
    response = await embedding_stub.EmbedImagePatches(_request(data_dirs, *names), timeout=20)
    assert response.model_id == reference_engine.model_id
    grids = np.stack([_grid(g) for g in response.grids])
    assert grids.shape == (2, 14, 14, 256)
    np.testing.assert_allclose(np.linalg.norm(grids, axis=-1), 1.0, atol=1e-5)

    # Recompute with open_clip's own intermediates, class token included: the class token through the same
    # ln_post and proj is the pooled image vector EmbedImages answers, so the patches share its space.
    store = ImageStore([data_dirs.root], data_dirs.scratch)
    images = [store.load(data_dirs.uri(n)) for n in names]
    batch = torch.stack([reference_engine.prepare_image(i) for i in images])
    visual = reference_engine._model.visual
    with torch.inference_mode():
        out = visual.forward_intermediates(
            batch, indices=1, normalize_intermediates=True, intermediates_only=True, output_fmt="NLC",
            output_extra_tokens=True,
        )
        tokens = torch.nn.functional.normalize(out["image_intermediates"][-1] @ visual.proj, dim=-1)
        pooled = torch.nn.functional.normalize(out["image_intermediates_prefix"][-1][:, 0] @ visual.proj, dim=-1)
    np.testing.assert_allclose(grids.reshape(2, 196, 256), tokens.numpy(), atol=1e-5)
    pooled_reply = await embedding_stub.EmbedImages(
        embedding_pb2.EmbedImagesRequest(images=_request(data_dirs, *names).images), timeout=20
    )
    served = np.array([list(v.values) for v in pooled_reply.embeddings], dtype=np.float32)
    np.testing.assert_allclose(pooled.numpy(), served, atol=1e-5)
    # Patches are not all the same vector: they carry where things are.
    assert float(np.min(grids[0].reshape(196, 256) @ grids[0, 7, 7])) < 0.99

    # cxr0 is 300x260: resized to 258x224, centre-cropped at x 17..241.
    frame = response.grids[0].frame
    assert (frame.x0, frame.y0, frame.x1, frame.y1) == pytest.approx((17 / 258, 0.0, 241 / 258, 1.0), abs=1e-6)


async def test_a_full_call_fits_in_one_grpc_message(embedding_stub: Stub, data_dirs: DataDirs) -> None:
    names = [f"cxr{i % 8}.png" for i in range(16)]
    response = await embedding_stub.EmbedImagePatches(_request(data_dirs, *names), timeout=60)
    assert len(response.grids) == 16
    assert response.ByteSize() > 3_000_000  # 16 grids of ~200 KB: close to, and under, the 4 MB limit
    np.testing.assert_allclose(_grid(response.grids[8]), _grid(response.grids[0]), atol=1e-6)  # same image


@pytest.mark.parametrize(
    "names, message",
    [
        ([], "no images given"),
        (["cxr0.png"] * 17, "17 images in one EmbedImagePatches call; the limit is 16"),
        (["cxr0.png", "cut.png"], "images[1]: "),
        (["cxr0.png", "missing.png"], "images[1]: "),
    ],
)
async def test_bad_patch_requests_name_the_problem(
    embedding_stub: Stub, data_dirs: DataDirs, names: list[str], message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await embedding_stub.EmbedImagePatches(_request(data_dirs, *names), timeout=10)
    assert error.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert message in error.value.details()


def test_only_a_plain_clip_vit_has_patch_tokens_in_the_joint_space() -> None:
    def tower(**kwargs: object) -> VisionTransformer:
        return VisionTransformer(
            image_size=32, patch_size=8, width=32, layers=1, heads=2, mlp_ratio=2.0, output_dim=16, **kwargs
        )

    assert _patch_grid(tower()) == (4, 4)
    assert _patch_grid(tower(attentional_pool=True, attn_pooler_heads=2, attn_pooler_queries=4)) is None
    assert _patch_grid(tower(pool_type="avg")) is None
    assert _patch_grid(torch.nn.Identity()) is None
