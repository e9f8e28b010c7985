"""Grid and Crop over gRPC: geometry, tile placement and crop content checked on pixels."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest
from PIL import Image

from raddiff.v1 import common_pb2, localize_pb2
from raddiff_localize.engine import NormBox, cut_box, square_around
from tests.localize.conftest import COLOURS, Data, Stack

BLACK, WHITE = (0, 0, 0), (255, 255, 255)


def colour_at(pixels: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in pixels[y, x])


async def test_two_sets_a_above_b_with_a_white_band(stack: Stack, data: Data) -> None:
    set_a = data.refs(*(f"wide{i}.png" for i in range(7)))  # two rows of five
    set_b = data.refs("tall0.png", "tall1.png", "wide2.png")  # one row
    reply = await stack.localize.Grid(localize_pb2.GridRequest(set_a=set_a, set_b=set_b), timeout=30)
    assert reply.grid.uri.startswith("scratch://") and reply.grid.sha256 in reply.grid.uri
    grid = data.pixels(reply.grid.uri)
    assert grid.shape == (2 * 256 + 50 + 256, 5 * 256, 3)
    for index in range(7):  # A: tile centres carry each image's colour, in row-major order
        row, col = divmod(index, 5)
        x, y = col * 256 + 128, row * 256 + 128
        assert colour_at(grid, x, y) == COLOURS[index]
        # 400x200 in a 256 tile: 256x128 at y offset 64, black above and below.
        assert colour_at(grid, x, row * 256 + 60) == BLACK and colour_at(grid, x, row * 256 + 68) == COLOURS[index]
        assert colour_at(grid, x, row * 256 + 196) == BLACK
    assert colour_at(grid, 2 * 256 + 128, 256 + 128) == BLACK  # A's empty tiles stay black
    assert {colour_at(grid, x, y) for x in (0, 700, 1279) for y in (512, 536, 561)} == {WHITE}
    top_b = 2 * 256 + 50
    # B's tall 100x200 images: 128x256 at x offset 64, black left and right.
    for col, colour in enumerate([COLOURS[0], COLOURS[1]]):
        assert colour_at(grid, col * 256 + 128, top_b + 128) == colour
        assert colour_at(grid, col * 256 + 60, top_b + 128) == BLACK
        assert colour_at(grid, col * 256 + 196, top_b + 128) == BLACK
    assert colour_at(grid, 2 * 256 + 128, top_b + 128) == COLOURS[2]


async def test_one_set_with_a_custom_layout_and_the_same_grid_twice_is_stored_once(stack: Stack, data: Data) -> None:
    layout = localize_pb2.GridLayout(rows=2, cols=3, tile_px=100)
    request = localize_pb2.GridRequest(set_a=data.refs(*(f"wide{i}.png" for i in range(5))), layout=layout)
    first = await stack.localize.Grid(request, timeout=30)
    grid = data.pixels(first.grid.uri)
    assert grid.shape == (200, 300, 3)
    assert [colour_at(grid, (i % 3) * 100 + 50, (i // 3) * 100 + 50) for i in range(5)] == COLOURS[:5]
    assert colour_at(grid, 250, 150) == BLACK
    again = await stack.localize.Grid(request, timeout=30)
    assert again.grid.uri == first.grid.uri  # content-addressed


@pytest.mark.parametrize(
    "request_, message",
    [
        (localize_pb2.GridRequest(), "set_a is empty"),
        (localize_pb2.GridRequest(set_b=[common_pb2.ImageRef(uri="file:///x.png")]), "set_a is empty"),
        (
            localize_pb2.GridRequest(layout=localize_pb2.GridLayout(rows=-1)),
            "layout.rows is -1",
        ),
        (localize_pb2.GridRequest(layout=localize_pb2.GridLayout(tile_px=5000)), "layout.tile_px is 5000"),
    ],
)
async def test_bad_grid_requests(stack: Stack, data: Data, request_: localize_pb2.GridRequest, message: str) -> None:
    if message.startswith("layout"):
        request_.set_a.append(data.ref("wide0.png"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stack.localize.Grid(request_, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.value.details()


async def test_too_many_images_for_the_layout_names_the_numbers(stack: Stack, data: Data) -> None:
    request = localize_pb2.GridRequest(set_a=data.refs("wide0.png"), set_b=data.refs(*["wide1.png"] * 21))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stack.localize.Grid(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "set_b has 21 images; the 4x5 layout holds 20"
    layout = localize_pb2.GridLayout(rows=2, cols=3)
    small = localize_pb2.GridRequest(set_a=data.refs(*["wide1.png"] * 7), layout=layout)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stack.localize.Grid(small, timeout=10)
    assert error.value.details() == "set_a has 7 images; the 2x3 layout holds 6"


async def test_bad_image_references_name_the_set_and_index(stack: Stack, data: Data) -> None:
    request = localize_pb2.GridRequest(set_a=data.refs("wide0.png"), set_b=data.refs("wide1.png", "gone.png"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stack.localize.Grid(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error.value.details().startswith("set_b[1]: image") and "does not exist" in error.value.details()
    outside = localize_pb2.GridRequest(set_a=[common_pb2.ImageRef(uri="file:///etc/hostname")])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stack.localize.Grid(outside, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "outside the data roots" in error.value.details()


async def test_crops_are_the_source_pixels_of_the_box_squared_in_request_order(stack: Stack, data: Data) -> None:
    box = common_pb2.Box(x0=0.1, y0=0.2, x1=0.5, y1=0.7)
    request = localize_pb2.CropRequest(images=data.refs("noise0.png", "noise1.png", "noise0.png"), box=box)
    reply = await stack.localize.Crop(request, timeout=30)
    assert len(reply.crops) == 3 and reply.crops[0].uri == reply.crops[2].uri
    # The float32 box covers pixels x 30..150, y 40..140 of a 300x200 image; squared around its centre: y 30..150.
    x0, y0 = math.floor(box.x0 * 300), math.floor(box.y0 * 200)
    x1, y1 = math.ceil(box.x1 * 300), math.ceil(box.y1 * 200)
    assert (x0, y0, x1, y1) == (30, 40, 150, 140)
    for ref, name in zip(reply.crops, ["noise0.png", "noise1.png", "noise0.png"], strict=True):
        source = np.asarray(Image.open(data.root / name).convert("RGB"))  # 300x200
        np.testing.assert_array_equal(data.pixels(ref.uri), source[30:150, 30:150])
    assert data.pixels(reply.grid.uri).shape == (256, 5 * 256, 3)  # one row of the 8x5 zoom grid


def black_share(pixels: np.ndarray) -> float:
    """The share of pure-black (letterbox) pixels; the noise images have none of their own."""
    return float((pixels.sum(axis=2) == 0).mean())


async def test_a_tall_narrow_box_fills_its_zoom_tile_with_context(stack: Stack, data: Data) -> None:
    # 30x160 pixels of a 300x200 image: letterboxed, its tile was 81% black.
    box = common_pb2.Box(x0=0.45, y0=0.1, x1=0.55, y1=0.9)
    reply = await stack.localize.Crop(localize_pb2.CropRequest(images=data.refs("noise0.png"), box=box), timeout=30)
    source = np.asarray(Image.open(data.root / "noise0.png").convert("RGB"))
    assert black_share(source) == 0
    assert black_share(data.pixels(reply.grid.uri)[:, :256]) == 0
    crop = data.pixels(reply.crops[0].uri)
    np.testing.assert_array_equal(crop, source[20:180, 70:230])  # a square around the box, which lies inside it


@pytest.mark.parametrize(
    "rect, size, square",
    [
        ((135, 20, 165, 180), (300, 200), (70, 20, 230, 180)),  # widened evenly about the centre
        ((0, 20, 30, 180), (300, 200), (0, 20, 160, 180)),  # at the left edge: context from the right only
        ((280, 0, 300, 100), (300, 200), (200, 0, 300, 100)),  # at the right edge
        ((10, 40, 130, 41), (300, 200), (10, 0, 130, 120)),  # a flat box grows up and down, stopped by the top
        ((135, 40, 136, 41), (300, 200), (135, 40, 136, 41)),  # a square stays itself
        ((40, 0, 60, 200), (100, 200), (0, 0, 100, 200)),  # image narrower than the box is tall: all its width
        ((0, 0, 300, 200), (300, 200), (0, 0, 300, 200)),  # the whole image
    ],
)
def test_a_box_is_squared_inside_the_image(
    rect: tuple[int, int, int, int], size: tuple[int, int], square: tuple[int, int, int, int]
) -> None:
    assert square_around(rect, *size) == square


async def test_forty_crops_make_the_8x5_zoom_grid(stack: Stack, data: Data) -> None:
    names = [f"wide{i % 8}.png" for i in range(40)]
    box = common_pb2.Box(x0=0.25, y0=0.25, x1=0.75, y1=0.75)
    reply = await stack.localize.Crop(localize_pb2.CropRequest(images=data.refs(*names), box=box), timeout=60)
    grid = data.pixels(reply.grid.uri)
    assert grid.shape == (8 * 256, 5 * 256, 3)
    for index in (0, 7, 21, 39):
        row, col = divmod(index, 5)
        assert colour_at(grid, col * 256 + 128, row * 256 + 128) == COLOURS[index % 8]
    too_many = localize_pb2.CropRequest(images=data.refs(*names, "wide0.png"), box=box)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stack.localize.Crop(too_many, timeout=10)
    assert error.value.details() == "41 images to crop; the 8x5 layout holds 40"


@pytest.mark.parametrize(
    "box, message",
    [
        (common_pb2.Box(x0=0.6, y0=0.1, x1=0.4, y1=0.9), "is not normalised"),
        (common_pb2.Box(x0=-0.1, y0=0.1, x1=0.4, y1=0.9), "x0=-0.1"),
        (common_pb2.Box(x0=0.1, y0=0.1, x1=1.2, y1=0.9), "x1=1.2"),
        (common_pb2.Box(x0=0.3, y0=0.5, x1=0.3, y1=0.9), "need 0 <= x0 < x1 <= 1"),
        (common_pb2.Box(x0=0.1, y0=0.9, x1=0.4, y1=0.2), "0 <= y0 < y1 <= 1"),
        (common_pb2.Box(x0=float("nan"), y0=0.1, x1=0.4, y1=0.9), "not a finite number"),
        (None, "box is missing"),
    ],
)
async def test_bad_boxes_are_refused(stack: Stack, data: Data, box: common_pb2.Box | None, message: str) -> None:
    request = localize_pb2.CropRequest(images=data.refs("noise0.png"), box=box)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stack.localize.Crop(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.value.details()


async def test_crop_without_images_is_refused(stack: Stack) -> None:
    request = localize_pb2.CropRequest(box=common_pb2.Box(x0=0, y0=0, x1=1, y1=1))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stack.localize.Crop(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and error.value.details() == "no images given"


def test_a_large_crop_is_scaled_down_keeping_its_aspect() -> None:
    image = Image.new("RGB", (2000, 1000), (90, 90, 90))
    # 1600x500 squared to 1600x1000 (the image's height), then scaled to fit 400.
    assert cut_box(image, NormBox(0.0, 0.0, 0.8, 0.5), max_px=400).size == (400, 250)
    assert cut_box(image, NormBox(0.0, 0.0, 0.1, 0.1), max_px=400).size == (200, 200)


def test_a_tiny_box_still_covers_one_pixel() -> None:
    assert NormBox(0.5, 0.5, 0.5001, 0.5001).pixels(100, 100) == (50, 50, 51, 51)
    assert NormBox(0.999, 0.0, 1.0, 1.0).pixels(10, 10) == (9, 0, 10, 10)
