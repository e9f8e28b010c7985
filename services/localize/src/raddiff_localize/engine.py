"""Grids, crops and boxes: pure image work on the kit's ImageStore. No gRPC in here.

RadDiff shows a VLM or LLM one picture per question: a set as 4x5 tiles of
256 px, or sets A and B as two such blocks, A above B, with a 50 px band
between them; zoom crops of a box from every image are tiled the same way
(the 40 crops of 20 A + 20 B images as 8x5). Tiles keep each image's aspect
ratio (letterboxed on black); the band between the sets is white. A zoom crop
is widened to the square tile's shape around the box, taking in the image's
own pixels, so the region fills its tile instead of a strip between black bars.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from raddiff_kit.errors import InvalidArgument, ServiceError
from raddiff_kit.images import ImageStore

BACKGROUND = (0, 0, 0)
BAND = (255, 255, 255)
MAX_TILE_PX = 1024
MAX_CANVAS_PIXELS = 40_000_000


@dataclass(frozen=True)
class Layout:
    rows: int
    cols: int
    tile_px: int
    gap_px: int

    @property
    def capacity(self) -> int:
        return self.rows * self.cols

    def resolve(self, rows: int = 0, cols: int = 0, tile_px: int = 0, gap_px: int = 0) -> Layout:
        """This layout with the caller's non-zero values in place of its defaults."""
        for name, value in (("rows", rows), ("cols", cols), ("tile_px", tile_px), ("gap_px", gap_px)):
            if value < 0:
                raise InvalidArgument(f"layout.{name} is {value}; use 0 for the default or a positive number")
        layout = Layout(rows or self.rows, cols or self.cols, tile_px or self.tile_px, gap_px or self.gap_px)
        if layout.tile_px > MAX_TILE_PX:
            raise InvalidArgument(f"layout.tile_px is {layout.tile_px}; the limit is {MAX_TILE_PX}")
        return layout

    def label(self) -> str:
        return f"{self.rows}x{self.cols}"


GRID_LAYOUT = Layout(rows=4, cols=5, tile_px=256, gap_px=50)
ZOOM_LAYOUT = Layout(rows=8, cols=5, tile_px=256, gap_px=50)


@dataclass(frozen=True)
class Ref:
    uri: str
    sha256: str = ""


@dataclass(frozen=True)
class Stored:
    uri: str
    sha256: str


@dataclass(frozen=True)
class Placement:
    """Where image `index` of `group` ("A", "B", or "" for crops) was drawn: its pixels, not its tile."""

    group: str
    index: int
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class NormBox:
    """A box in normalised coordinates of one image: 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1."""

    x0: float
    y0: float
    x1: float
    y1: float

    def validate(self, what: str = "box") -> NormBox:
        values = (self.x0, self.y0, self.x1, self.y1)
        if not all(math.isfinite(v) for v in values):
            raise InvalidArgument(f"{what} {values} has a value that is not a finite number")
        if not (0 <= self.x0 < self.x1 <= 1 and 0 <= self.y0 < self.y1 <= 1):
            raise InvalidArgument(
                f"{what} (x0={self.x0:g}, y0={self.y0:g}, x1={self.x1:g}, y1={self.y1:g}) is not normalised: "
                "need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1"
            )
        return self

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The smallest pixel rectangle covering the box, at least one pixel wide and high."""
        left, top = min(math.floor(self.x0 * width), width - 1), min(math.floor(self.y0 * height), height - 1)
        right = max(left + 1, min(math.ceil(self.x1 * width), width))
        bottom = max(top + 1, min(math.ceil(self.y1 * height), height))
        return left, top, right, bottom


WHOLE_IMAGE = NormBox(0.0, 0.0, 1.0, 1.0)


def fit_in_tile(image: Image.Image, tile_px: int) -> Image.Image:
    """The image scaled, aspect kept, so that its longest side is tile_px."""
    scale = tile_px / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size and image.mode == "RGB":
        return image
    return image.convert("RGB").resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def letterbox(image: Image.Image, tile_px: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The image fitted into a square tile, centred on black; also the (x, y, w, h) it occupies."""
    fitted = fit_in_tile(image, tile_px)
    tile = Image.new("RGB", (tile_px, tile_px), BACKGROUND)
    x, y = (tile_px - fitted.width) // 2, (tile_px - fitted.height) // 2
    tile.paste(fitted, (x, y))
    return tile, (x, y, fitted.width, fitted.height)


GROUP_FIELDS = {"A": "set_a", "B": "set_b", "": "images"}


def check_fits(group: str, count: int, layout: Layout) -> None:
    if count > layout.capacity:
        what = f"{GROUP_FIELDS[group]} has {count} images" if group else f"{count} images to crop"
        raise InvalidArgument(f"{what}; the {layout.label()} layout holds {layout.capacity}")


def draw_grid(groups: list[tuple[str, list[Image.Image]]], layout: Layout) -> tuple[Image.Image, list[Placement]]:
    """One block of tiles per group, top to bottom, with a white band of gap_px between blocks.

    A block has only the rows its images need (up to layout.rows); every block is layout.cols wide.
    """
    for group, images in groups:
        check_fits(group, len(images), layout)
    width = layout.cols * layout.tile_px
    heights = [math.ceil(len(images) / layout.cols) * layout.tile_px for _, images in groups]
    height = sum(heights) + layout.gap_px * (len(groups) - 1)
    if width * height > MAX_CANVAS_PIXELS:
        raise InvalidArgument(f"a {width}x{height} grid is over the {MAX_CANVAS_PIXELS} pixel limit")
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    placements: list[Placement] = []
    top = 0
    for block, ((group, images), block_height) in enumerate(zip(groups, heights, strict=True)):
        if block:
            canvas.paste(BAND, (0, top, width, top + layout.gap_px))
            top += layout.gap_px
        for index, image in enumerate(images):
            row, col = divmod(index, layout.cols)
            tile, (x, y, w, h) = letterbox(image, layout.tile_px)
            tile_x, tile_y = col * layout.tile_px, top + row * layout.tile_px
            canvas.paste(tile, (tile_x, tile_y))
            placements.append(Placement(group, index, tile_x + x, tile_y + y, w, h))
        top += block_height
    return canvas, placements


def square_around(rect: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """The smallest square holding the pixel rectangle, centred on it and shifted to lie inside the image.

    Tiles are square, so a crop of this shape fills one; a side the image is too short for stays the image's
    (the only case in which a tile keeps letterbox padding). The rectangle always lies inside the result.
    """
    left, top, right, bottom = rect
    side = max(right - left, bottom - top)

    def span(start: int, end: int, limit: int) -> tuple[int, int]:
        size = min(side, limit)
        first = min(max((start + end - size) // 2, 0), limit - size)
        return first, first + size

    (x0, x1), (y0, y1) = span(left, right, width), span(top, bottom, height)
    return x0, y0, x1, y1


def cut_box(image: Image.Image, box: NormBox, max_px: int) -> Image.Image:
    """The box with context to a square cut at native resolution, scaled down only if a side is over max_px."""
    region = image.crop(square_around(box.pixels(image.width, image.height), image.width, image.height))
    if max(region.size) > max_px:
        scale = max_px / max(region.size)
        size = (max(1, round(region.width * scale)), max(1, round(region.height * scale)))
        region = region.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return region


@dataclass
class RenderedGrid:
    image: Stored
    placements: list[Placement]
    layout: Layout


class GridEngine:
    """Loads references, draws grids and crops, and keeps the results in the scratch store."""

    def __init__(self, store: ImageStore, crop_max_px: int) -> None:
        self.store = store
        self.crop_max_px = crop_max_px

    def grid(self, set_a: list[Ref], set_b: list[Ref], layout: Layout) -> RenderedGrid:
        """Set A alone, or A above B."""
        groups = [("A", set_a), ("B", set_b)] if set_b else [("A", set_a)]
        for group, refs in groups:  # before decoding anything: an oversized request costs nothing
            check_fits(group, len(refs), layout)

        def fit(image: Image.Image) -> Image.Image:
            return fit_in_tile(image, layout.tile_px)

        canvas, placements = draw_grid([(group, self._load_each(refs, group, fit)) for group, refs in groups], layout)
        return RenderedGrid(self._put(canvas), placements, layout)

    def crop(self, refs: list[Ref], box: NormBox, layout: Layout) -> tuple[RenderedGrid, list[Stored]]:
        """The box (squared, see cut_box) cut from every image, each stored, and all tiled into one zoom grid."""
        check_fits("", len(refs), layout)
        crops = self._load_each(refs, "", lambda image: cut_box(image, box, self.crop_max_px))
        canvas, placements = draw_grid([("", crops)], layout)
        return RenderedGrid(self._put(canvas), placements, layout), [self._put(c) for c in crops]

    def _load_each(
        self, refs: list[Ref], group: str, reduce: Callable[[Image.Image], Image.Image]
    ) -> list[Image.Image]:
        """Decode one image at a time and keep only its reduced form, so 40 radiographs never sit in memory."""
        reduced = []
        for index, ref in enumerate(refs):
            try:
                image = self.store.load(ref.uri, ref.sha256, mode="RGB")
            except ServiceError as exc:
                raise exc.within(f"{GROUP_FIELDS[group]}[{index}]") from None
            reduced.append(reduce(image))
        return reduced

    def _put(self, image: Image.Image) -> Stored:
        return Stored(*self.store.put_png(image))
