"""LocalizeService: proto -> grid engine or backend -> proto."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from raddiff.v1 import common_pb2, localize_pb2, localize_pb2_grpc
from raddiff_kit.deadlines import Deadline, run_blocking
from raddiff_kit.errors import InvalidArgument
from raddiff_localize.backends import LocalizeBackend, LocalizeJob
from raddiff_localize.engine import GRID_LAYOUT, ZOOM_LAYOUT, GridEngine, Layout, NormBox, Ref, Stored
from raddiff_localize.settings import LocalizeSettings

MAX_FINDING_CHARS = 2000


class LocalizeServicer(localize_pb2_grpc.LocalizeServiceServicer):
    def __init__(
        self, settings: LocalizeSettings, grids: GridEngine, backends: dict[str, LocalizeBackend]
    ) -> None:
        self._settings = settings
        self._grids = grids
        self._backends = backends

    async def Grid(
        self, request: localize_pb2.GridRequest, context: grpc.aio.ServicerContext
    ) -> localize_pb2.GridResponse:
        if not request.set_a:
            raise InvalidArgument("set_a is empty")
        self._check_total(len(request.set_a) + len(request.set_b))
        layout = _layout(GRID_LAYOUT, request.layout)
        grid = await run_blocking(
            Deadline.from_context(context), self._grids.grid, _refs(request.set_a), _refs(request.set_b), layout
        )
        return localize_pb2.GridResponse(grid=_ref_proto(grid.image))

    async def Crop(
        self, request: localize_pb2.CropRequest, context: grpc.aio.ServicerContext
    ) -> localize_pb2.CropResponse:
        if not request.images:
            raise InvalidArgument("no images given")
        self._check_total(len(request.images))
        if not request.HasField("box"):
            raise InvalidArgument("box is missing")
        box = NormBox(request.box.x0, request.box.y0, request.box.x1, request.box.y1).validate("box")
        layout = _layout(ZOOM_LAYOUT, request.layout)
        grid, crops = await run_blocking(
            Deadline.from_context(context), self._grids.crop, _refs(request.images), box, layout
        )
        return localize_pb2.CropResponse(grid=_ref_proto(grid.image), crops=[_ref_proto(c) for c in crops])

    async def Localize(
        self, request: localize_pb2.LocalizeRequest, context: grpc.aio.ServicerContext
    ) -> localize_pb2.LocalizeResponse:
        name = request.backend or self._settings.default_backend
        backend = self._backends.get(name)
        if backend is None:
            raise InvalidArgument(f"unknown backend {name!r}; known: {', '.join(sorted(self._backends))}")
        findings = list(request.findings)
        self._check_findings(findings)
        for field, refs in (("set_a", request.set_a), ("set_b", request.set_b)):
            if not refs:
                raise InvalidArgument(f"{field} is empty; Localize compares two sets")
        self._check_total(len(request.set_a) + len(request.set_b))
        job = LocalizeJob(_refs(request.set_a), _refs(request.set_b), findings)
        result = await backend.localize(job, Deadline.from_context(context))
        boxes = [common_pb2.Box(x0=b.x0, y0=b.y0, x1=b.x1, y1=b.y1) for b in result.boxes]
        return localize_pb2.LocalizeResponse(boxes=boxes, backend=backend.name, repairs=result.repairs)

    def _check_total(self, count: int) -> None:
        if count > self._settings.max_images:
            raise InvalidArgument(f"{count} images in one call; the limit is {self._settings.max_images}")

    def _check_findings(self, findings: list[str]) -> None:
        if not findings:
            raise InvalidArgument("no findings given")
        if len(findings) > self._settings.max_findings:
            raise InvalidArgument(f"{len(findings)} findings in one call; the limit is {self._settings.max_findings}")
        for index, finding in enumerate(findings):
            if not finding.strip():
                raise InvalidArgument(f"findings[{index}] is empty")
            if len(finding) > MAX_FINDING_CHARS:
                raise InvalidArgument(
                    f"findings[{index}] has {len(finding)} characters; the limit is {MAX_FINDING_CHARS}"
                )


def _layout(default: Layout, layout: localize_pb2.GridLayout) -> Layout:
    return default.resolve(layout.rows, layout.cols, layout.tile_px, layout.gap_px)


def _refs(refs: Sequence[common_pb2.ImageRef]) -> list[Ref]:
    return [Ref(ref.uri, ref.sha256) for ref in refs]


def _ref_proto(stored: Stored) -> common_pb2.ImageRef:
    return common_pb2.ImageRef(uri=stored.uri, sha256=stored.sha256)
