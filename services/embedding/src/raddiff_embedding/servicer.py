"""EmbeddingService: requests are validated, images loaded and preprocessed per caller, then
concurrent callers' items share engine batches through the kit's MicroBatcher.

EmbedImagePatches answers a float grid per image (14 x 14 x 256 floats, ~200 KB, for the project's small
ViT-B/16-style model), so it takes at most max_patch_images images per call: the setting, further capped so
that a response stays under gRPC's 4 MB message limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import grpc
import numpy as np
import torch

from raddiff.v1 import common_pb2, embedding_pb2, embedding_pb2_grpc
from raddiff_embedding.engine import EmbeddingEngine
from raddiff_embedding.preprocess import Frame
from raddiff_embedding.settings import EmbeddingSettings
from raddiff_kit.batching import MicroBatcher
from raddiff_kit.deadlines import Deadline, run_blocking
from raddiff_kit.errors import FailedPrecondition, InvalidArgument, ServiceError
from raddiff_kit.grpc_options import MAX_MESSAGE_BYTES
from raddiff_kit.images import ImageStore


class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    def __init__(
        self, settings: EmbeddingSettings, store: ImageStore, load_engine: Callable[[], EmbeddingEngine]
    ) -> None:
        self._settings = settings
        self._store = store
        self._load_engine = load_engine
        self._engine: EmbeddingEngine | None = None
        size, wait_s = settings.max_batch, settings.max_wait_ms / 1000
        self._image_batcher: MicroBatcher[torch.Tensor, np.ndarray] = MicroBatcher(
            lambda inputs: self.engine.embed_prepared(inputs), "embedding-images", size, wait_s
        )
        self._text_batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(
            lambda texts: self.engine.embed_texts(texts), "embedding-texts", size, wait_s
        )
        # Patch grids are large: a batch of them holds no more than one call's worth.
        self._patch_batcher: MicroBatcher[torch.Tensor, np.ndarray] = MicroBatcher(
            lambda inputs: self.engine.embed_prepared_patches(inputs), "embedding-patches", size, wait_s
        )

    async def start(self) -> None:
        """Load the engine in a thread: it takes seconds."""
        self._engine = await asyncio.to_thread(self._load_engine)

    @property
    def engine(self) -> EmbeddingEngine:
        if self._engine is None:
            raise FailedPrecondition("the embedding model is not loaded yet")
        return self._engine

    async def EmbedImages(
        self, request: embedding_pb2.EmbedImagesRequest, context: grpc.aio.ServicerContext
    ) -> embedding_pb2.EmbedImagesResponse:
        engine = self.engine
        refs = list(request.images)
        self._check_count(len(refs), "images")
        deadline = Deadline.from_context(context)
        # Decode and preprocess before batching: a bad file fails only its own caller,
        # and the queue holds small tensors rather than full-size radiographs.
        inputs = await run_blocking(deadline, self._prepare_images, engine, refs)
        vectors = await self._image_batcher.submit(inputs, deadline)
        return embedding_pb2.EmbedImagesResponse(embeddings=_to_proto(vectors), model_id=engine.model_id)

    async def EmbedTexts(
        self, request: embedding_pb2.EmbedTextsRequest, context: grpc.aio.ServicerContext
    ) -> embedding_pb2.EmbedTextsResponse:
        engine = self.engine
        texts = list(request.texts)
        self._check_count(len(texts), "texts")
        for index, text in enumerate(texts):
            if not text.strip():
                raise InvalidArgument(f"texts[{index}] is empty")
            if len(text) > self._settings.max_text_chars:
                raise InvalidArgument(
                    f"texts[{index}] has {len(text)} characters; the limit is {self._settings.max_text_chars}"
                )
        vectors = await self._text_batcher.submit(texts, Deadline.from_context(context))
        return embedding_pb2.EmbedTextsResponse(embeddings=_to_proto(vectors), model_id=engine.model_id)

    async def EmbedImagePatches(
        self, request: embedding_pb2.EmbedImagePatchesRequest, context: grpc.aio.ServicerContext
    ) -> embedding_pb2.EmbedImagePatchesResponse:
        engine = self.engine
        if engine.patch_grid is None:
            raise FailedPrecondition(f"the embedding model {engine.model_id} has no patch tokens in the joint space")
        refs = list(request.images)
        limit = self.max_patch_images(engine)
        if not refs:
            raise InvalidArgument("no images given")
        if len(refs) > limit:
            rows, cols = engine.patch_grid
            raise InvalidArgument(
                f"{len(refs)} images in one EmbedImagePatches call; the limit is {limit} "
                f"(each answer is a {rows}x{cols}x{engine.dim} float grid and a response must stay under 4 MB)"
            )
        deadline = Deadline.from_context(context)
        prepared = await run_blocking(deadline, self._prepare_with_frames, engine, refs)
        grids = await self._patch_batcher.submit([inputs for inputs, _ in prepared], deadline)
        return embedding_pb2.EmbedImagePatchesResponse(
            grids=[_grid_proto(grid, frame) for grid, (_, frame) in zip(grids, prepared, strict=True)],
            model_id=engine.model_id,
        )

    def max_patch_images(self, engine: EmbeddingEngine) -> int:
        """The setting, capped so that a response of full grids fits in a gRPC message (with 10% to spare)."""
        if engine.patch_grid is None:
            return 0
        rows, cols = engine.patch_grid
        grid_bytes = rows * cols * engine.dim * 4 + 64  # packed float32, plus the frame and field headers
        return max(1, min(self._settings.max_patch_images, int(MAX_MESSAGE_BYTES * 0.9) // grid_bytes))

    async def Info(
        self, request: embedding_pb2.EmbeddingInfoRequest, context: grpc.aio.ServicerContext
    ) -> embedding_pb2.EmbeddingInfoResponse:
        engine = self.engine
        rows, cols = engine.patch_grid or (0, 0)
        return embedding_pb2.EmbeddingInfoResponse(
            model_id=engine.model_id,
            dim=engine.dim,
            preprocessing=engine.preprocessing,
            image_size=engine.image_size,
            patch_rows=rows,
            patch_cols=cols,
            max_patch_images=self.max_patch_images(engine),
        )

    def _check_count(self, count: int, what: str) -> None:
        if count == 0:
            raise InvalidArgument(f"no {what} given")
        if count > self._settings.max_items:
            raise InvalidArgument(f"{count} {what} in one call; the limit is {self._settings.max_items}")

    def _prepare_images(self, engine: EmbeddingEngine, refs: list[common_pb2.ImageRef]) -> list[torch.Tensor]:
        return [inputs for inputs, _ in self._prepare_with_frames(engine, refs)]

    def _prepare_with_frames(
        self, engine: EmbeddingEngine, refs: list[common_pb2.ImageRef]
    ) -> list[tuple[torch.Tensor, Frame]]:
        prepared = []
        for index, ref in enumerate(refs):
            try:
                image = self._store.load(ref.uri, ref.sha256)
            except ServiceError as exc:
                raise exc.within(f"images[{index}]") from None
            prepared.append((engine.prepare_image(image), engine.input_frame(image)))
        return prepared


def _to_proto(vectors: Sequence[np.ndarray]) -> list[common_pb2.Vector]:
    return [common_pb2.Vector(values=vector.tolist()) for vector in vectors]


def _grid_proto(grid: np.ndarray, frame: Frame) -> embedding_pb2.PatchGrid:
    rows, cols, dim = grid.shape
    x0, y0, x1, y1 = frame
    return embedding_pb2.PatchGrid(
        rows=rows,
        cols=cols,
        dim=dim,
        values=grid.ravel().tolist(),
        frame=embedding_pb2.InputFrame(x0=x0, y0=y0, x1=x1, y1=y1),
    )
