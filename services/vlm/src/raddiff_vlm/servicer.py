"""VLMService: proto in, engine call, proto out."""

from __future__ import annotations

import grpc
from PIL import Image

from raddiff.v1 import common_pb2, vlm_pb2, vlm_pb2_grpc
from raddiff_kit.deadlines import Deadline, run_blocking
from raddiff_kit.images import ImageStore
from raddiff_vlm.engine import GenerationRequest, VLMEngine


class VLMServicer(vlm_pb2_grpc.VLMServiceServicer):
    def __init__(self, engine: VLMEngine, images: ImageStore) -> None:
        self._engine = engine
        self._images = images

    async def Generate(
        self, request: vlm_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> vlm_pb2.GenerateResponse:
        deadline = Deadline.from_context(context)
        sampling = self._engine.validate(
            prompt=request.prompt,
            n_images=len(request.images),
            json_schema=request.json_schema,
            max_tokens=request.sampling.max_tokens,
            temperature=request.sampling.temperature,
            top_p=request.sampling.top_p,
            seed=request.sampling.seed,
        )
        # Decoding happens here, before batching: a bad image fails its own call only.
        images = await run_blocking(deadline, self._load_images, list(request.images))
        result = await self._engine.generate(GenerationRequest(request.prompt, images, sampling), deadline)
        return vlm_pb2.GenerateResponse(
            text=result.text,
            usage=common_pb2.TokenUsage(
                prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens
            ),
            finish_reason=result.finish_reason,
        )

    async def Info(self, request: vlm_pb2.VLMInfoRequest, context: grpc.aio.ServicerContext) -> vlm_pb2.VLMInfoResponse:
        info = self._engine.info()
        return vlm_pb2.VLMInfoResponse(
            model=info.model,
            engine=info.engine,
            max_images_per_request=info.max_images_per_request,
            max_tokens=info.max_tokens,
        )

    def _load_images(self, refs: list[common_pb2.ImageRef]) -> list[Image.Image]:
        return [self._images.load(ref.uri, ref.sha256) for ref in refs]
