"""The "model" backend: the region where the embedding model's patch-level similarity to a finding
differs most between sets A and B. It needs no LLM, only the embedding service
(RADDIFF_EMBEDDING_TARGET), and it is the embedded default.

Every image's patch grid is fetched once per call and shared by all findings; the maps themselves
are similarity_map.py's arithmetic.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from raddiff.v1 import common_pb2, embedding_pb2, embedding_pb2_grpc
from raddiff_kit.client import ServiceClient
from raddiff_kit.deadlines import Deadline, run_blocking
from raddiff_kit.errors import FailedPrecondition, ServiceError, Unavailable
from raddiff_localize.backends import Localization, LocalizeJob, RemoteBackend, call_upstream
from raddiff_localize.boxes import finding_label
from raddiff_localize.engine import WHOLE_IMAGE, NormBox, Ref
from raddiff_localize.similarity_map import Frame, MapOptions, finding_t_map, strongest_region

EMBEDDING_SERVICE = "raddiff.v1.EmbeddingService"
WHO = "the embedding service"


@dataclass
class PatchedImage:
    grid: np.ndarray  # (rows, cols, dim), each patch vector L2-normalised
    frame: Frame


@dataclass
class FindingMaps:
    """What the backend computed for one call: a smoothed t-map per finding, and the model that made it."""

    t_maps: list[np.ndarray]
    model_id: str


class ModelBackend(RemoteBackend):
    name = "model"
    service, stub_class = EMBEDDING_SERVICE, embedding_pb2_grpc.EmbeddingServiceStub
    target_var, what = "RADDIFF_EMBEDDING_TARGET", "embedding service"

    def __init__(self, target: str, timeout_s: float, options: MapOptions) -> None:
        super().__init__(target, timeout_s)
        self._options = options

    async def localize(self, job: LocalizeJob, deadline: Deadline) -> Localization:
        if min(len(job.set_a), len(job.set_b)) < 2:
            reason = (
                f"set A has {len(job.set_a)} images and set B {len(job.set_b)}; comparing them per region needs "
                "at least 2 in each"
            )
            labels = [finding_label(i, job.findings) for i in range(len(job.findings))]
            repairs = [f"{label}: {reason}; using the whole image" for label in labels]
            return Localization([WHOLE_IMAGE] * len(labels), repairs)
        maps = await self.finding_maps(job, deadline)
        regions = [strongest_region(t_map, self._options) for t_map in maps.t_maps]
        boxes: list[NormBox] = []
        repairs: list[str] = []
        for index, region in enumerate(regions):
            if region.box is None:
                repairs.append(
                    f"{finding_label(index, job.findings)}: the A-versus-B similarity map is flat (peak |t| "
                    f"{region.peak:.2f} < {self._options.min_peak_t:g}); using the whole image"
                )
            boxes.append(region.box or WHOLE_IMAGE)
        return Localization(boxes, repairs)

    async def finding_maps(self, job: LocalizeJob, deadline: Deadline) -> FindingMaps:
        """The smoothed Welch t-map (A against B) of every finding's patch similarity, on each image's grid."""
        client = self.client()
        info = await call_upstream(client, "Info", embedding_pb2.EmbeddingInfoRequest(), deadline, WHO)
        if info.max_patch_images < 1:
            raise FailedPrecondition(
                f"the embedding model {info.model_id} has no patch tokens in the joint space; the model backend "
                "needs a CLIP vision transformer"
            )
        texts, images_a, images_b = await asyncio.gather(
            call_upstream(client, "EmbedTexts", embedding_pb2.EmbedTextsRequest(texts=job.findings), deadline, WHO),
            self._patches(client, job.set_a, "set_a", info.max_patch_images, deadline),
            self._patches(client, job.set_b, "set_b", info.max_patch_images, deadline),
        )
        model_ids = {info.model_id, texts.model_id, *(m for _, m in images_a), *(m for _, m in images_b)}
        if len(model_ids) > 1:
            # Replicas in the middle of a rollout: vectors of two models cannot be compared.
            raise Unavailable(f"{WHO} answered with different models ({', '.join(sorted(model_ids))}); try again")
        finding_vectors = np.asarray([list(v.values) for v in texts.embeddings], dtype=np.float32)
        a = [image for chunk, _ in images_a for image in chunk]
        b = [image for chunk, _ in images_b for image in chunk]
        t_maps = await run_blocking(deadline, self._t_maps, finding_vectors, a, b)
        return FindingMaps(t_maps, info.model_id)

    def _t_maps(self, findings: np.ndarray, a: list[PatchedImage], b: list[PatchedImage]) -> list[np.ndarray]:
        def similarities(images: list[PatchedImage], vector: np.ndarray) -> list[tuple[np.ndarray, Frame]]:
            return [(image.grid @ vector, image.frame) for image in images]

        return [finding_t_map(similarities(a, vector), similarities(b, vector), self._options) for vector in findings]

    async def _patches(
        self, client: ServiceClient, refs: list[Ref], field: str, per_call: int, deadline: Deadline
    ) -> list[tuple[list[PatchedImage], str]]:
        """Every image's patch grid, in order, in calls of at most `per_call` images (the service's cap)."""

        async def chunk(start: int) -> tuple[list[PatchedImage], str]:
            images = [common_pb2.ImageRef(uri=r.uri, sha256=r.sha256) for r in refs[start : start + per_call]]
            request = embedding_pb2.EmbedImagePatchesRequest(images=images)
            try:
                reply = await call_upstream(client, "EmbedImagePatches", request, deadline, WHO, loads_images=True)
            except ServiceError as exc:
                # The service counts images from 0 in each call; say which of the caller's it was given.
                raise exc.within(f"{field}[{start}:{start + len(images)}]") from None
            return [_patched(grid) for grid in reply.grids], reply.model_id

        return list(await asyncio.gather(*(chunk(start) for start in range(0, len(refs), per_call))))

def _patched(grid: embedding_pb2.PatchGrid) -> PatchedImage:
    values = np.asarray(grid.values, dtype=np.float32).reshape(grid.rows, grid.cols, grid.dim)
    frame = grid.frame
    return PatchedImage(values, (frame.x0, frame.y0, frame.x1, frame.y1))
