"""The model backend: the similarity-map arithmetic on hand-made maps, then over gRPC with the real
embedding service (a small randomly initialised CLIP), checked against an independent recomputation
from the service's own patch and text vectors."""

from __future__ import annotations

import warnings
from dataclasses import astuple

import grpc
import numpy as np
import pytest
from scipy import ndimage, stats

from raddiff.v1 import common_pb2, embedding_pb2, localize_pb2
from raddiff_kit.deadlines import Deadline
from raddiff_localize.backends import LocalizeJob
from raddiff_localize.engine import NormBox, Ref
from raddiff_localize.model_backend import ModelBackend
from raddiff_localize.similarity_map import (
    MapOptions,
    on_image_grid,
    smooth,
    strongest_region,
    welch_t_map,
    widen,
)
from tests.localize.conftest import BLOB_CENTRE, CHESTS, Data, ModelStack

FINDINGS = ["a round opacity in the right upper lobe", "cardiomegaly"]


def localize_request(data: Data, set_a: list[str], set_b: list[str], findings: list[str] = FINDINGS):
    return localize_pb2.LocalizeRequest(
        set_a=data.refs(*set_a), set_b=data.refs(*set_b), findings=findings, backend="model"
    )


def blobs(count: int = CHESTS) -> list[str]:
    return [f"blob{i}.png" for i in range(count)]


def clears(count: int = CHESTS) -> list[str]:
    return [f"clear{i}.png" for i in range(count)]


# -- the arithmetic on hand-made maps ---------------------------------------------------------------
def test_a_centre_crop_frame_leaves_the_unseen_sides_empty() -> None:
    similarity = np.arange(16, dtype=np.float32).reshape(4, 4)
    grid = on_image_grid(similarity, (0.25, 0.0, 0.75, 1.0), cells=8)  # the model saw the middle half
    assert np.isnan(grid[:, :2]).all() and np.isnan(grid[:, 6:]).all()
    # Cell column 2 (centre x = 0.3125) is in patch column 0; cell row 5 (centre y = 0.6875) in patch row 2.
    assert grid[5, 2] == similarity[2, 0] and grid[0, 5] == similarity[0, 3]


def test_a_letterboxed_frame_covers_the_whole_image() -> None:
    similarity = np.arange(4, dtype=np.float32).reshape(2, 2)
    grid = on_image_grid(similarity, (0.0, -0.5, 1.0, 1.5), cells=4)  # a wide image padded above and below
    assert not np.isnan(grid).any()
    # The image's rows span the middle half of the input: all of them fall in patch rows 0 and 1 around y=0.5.
    assert grid[0, 0] == similarity[0, 0] and grid[3, 3] == similarity[1, 1]


def test_the_t_map_is_welchs_t() -> None:
    rng = np.random.default_rng(1)
    maps_a, maps_b = rng.normal(0.2, 1, (7, 5, 5)), rng.normal(0, 2, (9, 5, 5))
    expected = stats.ttest_ind(maps_a, maps_b, axis=0, equal_var=False).statistic
    np.testing.assert_allclose(welch_t_map(maps_a, maps_b), expected, rtol=1e-10)
    # A cell that only one image of A saw has no t.
    maps_a[1:, 0, 0] = np.nan
    assert np.isnan(welch_t_map(maps_a, maps_b)[0, 0])
    # Identical sets: no difference anywhere.
    assert np.all(welch_t_map(maps_a[1:, 1:, 1:], maps_a[1:, 1:, 1:]) == 0)


def test_smoothing_is_a_gaussian_that_ignores_empty_cells() -> None:
    delta = np.zeros((9, 9))
    delta[4, 4] = 1.0
    np.testing.assert_allclose(smooth(delta, 1.2)[2:7, 2:7], ndimage.gaussian_filter(delta, 1.2)[2:7, 2:7] /
                               ndimage.gaussian_filter(np.ones((9, 9)), 1.2, mode="constant")[2:7, 2:7])
    flat = np.full((6, 6), 2.5)
    flat[:, :2] = np.nan
    smoothed = smooth(flat, 1.0)
    assert np.isnan(smoothed[:, :2]).all()
    np.testing.assert_allclose(smoothed[:, 2:], 2.5)  # NaN cells do not pull the edge down


def test_the_strongest_region_wins_whatever_its_sign() -> None:
    options = MapOptions(cells=20, min_peak_t=3.0, region_fraction=0.5, min_box_side=0.0)
    t_map = np.zeros((20, 20))
    t_map[2:6, 12:18] = 5.0  # rows 2..5, cols 12..17: a weaker, larger region
    t_map[14:16, 3:5] = -9.0  # a stronger, smaller region where A is less similar
    region = strongest_region(t_map, options)
    # Region sums: 24 cells * 5 = 120 against 4 * 9 = 36, so the larger one has more evidence...
    assert region.box == NormBox(12 / 20, 2 / 20, 18 / 20, 6 / 20) and region.peak == 9.0
    # ...until the threshold (half the peak, 4.5) is raised over it.
    high = strongest_region(t_map, MapOptions(cells=20, min_peak_t=3.0, region_fraction=0.6, min_box_side=0.0))
    assert high.box == NormBox(3 / 20, 14 / 20, 5 / 20, 16 / 20)


def test_a_flat_map_has_no_region() -> None:
    t_map = np.random.default_rng(0).normal(0, 0.5, (10, 10))
    region = strongest_region(t_map, MapOptions(min_peak_t=3.0))
    assert region.box is None and region.peak == pytest.approx(np.abs(t_map).max())
    assert strongest_region(np.full((4, 4), np.nan), MapOptions()).box is None


def test_small_boxes_are_widened_inside_the_image() -> None:
    assert astuple(widen(NormBox(0.5, 0.5, 0.55, 0.6), 0.2)) == pytest.approx((0.425, 0.45, 0.625, 0.65))
    assert astuple(widen(NormBox(0.0, 0.95, 0.05, 1.0), 0.2)) == pytest.approx((0.0, 0.8, 0.2, 1.0))
    assert widen(NormBox(0.1, 0.1, 0.9, 0.9), 0.2) == NormBox(0.1, 0.1, 0.9, 0.9)


# -- over gRPC, with the real embedding model --------------------------------------------------------
async def test_the_box_covers_the_blob_that_only_set_a_has(model_stack: ModelStack, data: Data) -> None:
    reply = await model_stack.localize.Localize(localize_request(data, blobs(), clears()), timeout=60)
    assert reply.backend == "model" and list(reply.repairs) == []
    for box in reply.boxes:
        # The bright blob changes the patch tokens where it is, in every image of A: a real signal even for
        # random weights. The box holds the blob's centre and stays in the upper left of the image.
        assert box.x0 <= BLOB_CENTRE[0] <= box.x1 and box.y0 <= BLOB_CENTRE[1] <= box.y1
        assert box.x1 <= 0.5 and box.y1 <= 0.55
        assert box.x1 - box.x0 >= 0.15 - 1e-6 and box.y1 - box.y0 >= 0.15 - 1e-6  # float32 on the wire


async def test_the_maps_are_the_t_statistics_of_the_served_vectors(model_stack: ModelStack, data: Data) -> None:
    """Recompute every finding's unsmoothed t-map from vectors fetched one image at a time, with scipy."""
    set_a, set_b = blobs(7), clears(6)  # more than one patch call each (5 images per call)
    options = MapOptions(cells=10, smooth_cells=0.0)
    backend = ModelBackend(model_stack.embedding_target, 30.0, options)
    await backend.start()
    try:
        job = LocalizeJob([Ref(r.uri) for r in data.refs(*set_a)], [Ref(r.uri) for r in data.refs(*set_b)], FINDINGS)
        maps = await backend.finding_maps(job, Deadline())
    finally:
        await backend.stop()

    texts = await model_stack.embedding.EmbedTexts(embedding_pb2.EmbedTextsRequest(texts=FINDINGS), timeout=30)
    assert maps.model_id == texts.model_id

    async def cell_values(names: list[str], finding: np.ndarray) -> np.ndarray:
        """(n, cells, cells): each image's similarity at each cell centre, by an explicit loop."""
        out = np.full((len(names), options.cells, options.cells), np.nan)
        for n, name in enumerate(names):
            request = embedding_pb2.EmbedImagePatchesRequest(images=[common_pb2.ImageRef(uri=data.ref(name).uri)])
            (grid,) = (await model_stack.embedding.EmbedImagePatches(request, timeout=30)).grids
            patches = np.asarray(grid.values).reshape(grid.rows, grid.cols, grid.dim)
            f = grid.frame
            for row in range(options.cells):
                for col in range(options.cells):
                    u, v = (col + 0.5) / options.cells, (row + 0.5) / options.cells
                    c = int(np.floor((u - f.x0) / (f.x1 - f.x0) * grid.cols))
                    r = int(np.floor((v - f.y0) / (f.y1 - f.y0) * grid.rows))
                    if 0 <= r < grid.rows and 0 <= c < grid.cols:
                        out[n, row, col] = float(patches[r, c] @ finding)
        return out

    for index, vector in enumerate(texts.embeddings):
        finding = np.asarray(vector.values)
        a, b = await cell_values(set_a, finding), await cell_values(set_b, finding)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns about the cells no image saw; their t is NaN
            expected = stats.ttest_ind(a, b, axis=0, equal_var=False, nan_policy="omit").statistic
        expected = np.asarray(np.ma.filled(expected, np.nan), dtype=np.float64)
        np.testing.assert_allclose(maps.t_maps[index], expected, rtol=1e-4, atol=1e-4, equal_nan=True)
    # The images are 300x260 and centre-cropped: a strip at each side was never seen.
    assert np.isnan(maps.t_maps[0][:, 0]).all() and not np.isnan(maps.t_maps[0][:, 5]).any()


async def test_identical_sets_give_a_flat_map_and_the_whole_image(model_stack: ModelStack, data: Data) -> None:
    reply = await model_stack.localize.Localize(localize_request(data, clears(6), clears(6)), timeout=60)
    assert [(b.x0, b.y0, b.x1, b.y1) for b in reply.boxes] == [(0, 0, 1, 1)] * 2
    assert list(reply.repairs) == [
        f"finding {i + 1} ({f!r}): the A-versus-B similarity map is flat (peak |t| 0.00 < 3); using the whole image"
        for i, f in enumerate(FINDINGS)
    ]


async def test_a_single_image_in_a_set_gives_the_whole_image(model_stack: ModelStack, data: Data) -> None:
    reply = await model_stack.localize.Localize(localize_request(data, blobs(1), clears(3)), timeout=60)
    assert [(b.x0, b.y0, b.x1, b.y1) for b in reply.boxes] == [(0, 0, 1, 1)] * 2
    assert reply.repairs[0] == (
        f"finding 1 ({FINDINGS[0]!r}): set A has 1 images and set B 3; comparing them per region needs at least 2 "
        "in each; using the whole image"
    )


async def test_a_bad_image_names_its_place_in_the_callers_set(model_stack: ModelStack, data: Data) -> None:
    request = localize_request(data, blobs(3), [*clears(6), "missing.png"])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await model_stack.localize.Localize(request, timeout=60)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    details = error.value.details()
    assert details.startswith("set_b[5:7]: the embedding service answered NOT_FOUND: images[1]: ")
    assert "missing.png" in details and "does not exist" in details
