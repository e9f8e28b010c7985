"""LLMProxyService: proto in, engine call, proto out."""

from __future__ import annotations

import hashlib
import io
import json
import math
from typing import Any

import grpc
from PIL import Image

from raddiff.v1 import common_pb2, llm_pb2, llm_pb2_grpc
from raddiff_kit.deadlines import Deadline, run_blocking
from raddiff_kit.errors import FailedPrecondition, InvalidArgument
from raddiff_kit.images import ImageStore, decode_image
from raddiff_llm_proxy.engine import ChatCall, ChatEngine, ChatSampling, ImagePart, Message, TextPart

ROLES = ("system", "user", "assistant")
# Formats every OpenAI-compatible upstream accepts as they are; anything else is sent as PNG.
SENDABLE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


class LLMProxyServicer(llm_pb2_grpc.LLMProxyServiceServicer):
    def __init__(self, engine: ChatEngine, images: ImageStore, default_model: str, max_images: int) -> None:
        self._engine = engine
        self._images = images
        self._default_model = default_model
        self._max_images = max_images

    async def Chat(self, request: llm_pb2.ChatRequest, context: grpc.aio.ServicerContext) -> llm_pb2.ChatResponse:
        deadline = Deadline.from_context(context)
        call = await run_blocking(deadline, self._call, request)
        answer = await self._engine.chat(call, deadline)
        return llm_pb2.ChatResponse(
            text=answer.text,
            usage=common_pb2.TokenUsage(prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens),
            model=answer.model,
            cached=answer.cached,
            finish_reason=answer.finish_reason,
        )

    def _call(self, request: llm_pb2.ChatRequest) -> ChatCall:
        """Validate the request (cheap checks first), then read its images."""
        model = request.model or self._default_model
        if not model:
            raise FailedPrecondition("no model named: set ChatRequest.model or RADDIFF_LLM_MODEL")
        if not request.messages:
            raise InvalidArgument("messages is empty")
        n_images = 0
        for index, message in enumerate(request.messages):
            if message.role not in ROLES:
                raise InvalidArgument(f"message {index} has role {message.role!r}; use one of {', '.join(ROLES)}")
            if not message.content:
                raise InvalidArgument(f"message {index} has no content parts")
            for number, part in enumerate(message.content):
                kind = part.WhichOneof("part")
                if kind is None:
                    raise InvalidArgument(f"message {index} part {number} is neither text nor image")
                if kind == "image":
                    n_images += 1
                    if message.role != "user":
                        raise InvalidArgument(f"message {index} ({message.role}) has an image; only user messages may")
        if n_images > self._max_images:
            raise InvalidArgument(
                f"request has {n_images} images; at most {self._max_images} are allowed "
                "(RADDIFF_LLM_MAX_IMAGES_PER_REQUEST)"
            )
        schema = _schema(request.json_schema)
        sampling = _sampling(request.sampling)
        messages = tuple(
            Message(
                role=message.role,
                parts=tuple(
                    self._image(part.image) if part.WhichOneof("part") == "image" else TextPart(part.text)
                    for part in message.content
                ),
            )
            for message in request.messages
        )
        return ChatCall(model, messages, schema, sampling, no_cache=request.no_cache)

    def _image(self, ref: common_pb2.ImageRef) -> ImagePart:
        path = self._images.resolve(ref.uri)
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if ref.sha256 and ref.sha256.lower() != digest:
            raise InvalidArgument(f"image {ref.uri!r} does not match its sha256")
        image = decode_image(data, ref.uri)  # refuses non-images and truncated files
        with Image.open(io.BytesIO(data)) as probe:
            mime = SENDABLE_FORMATS.get(probe.format or "")
        if mime is None:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data, mime = buffer.getvalue(), "image/png"
            digest = hashlib.sha256(data).hexdigest()
        return ImagePart(data=data, mime=mime, sha256=digest)


def _schema(text: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"json_schema is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise InvalidArgument("json_schema must be a JSON object")
    return schema


def _sampling(params: common_pb2.SamplingParams) -> ChatSampling:
    if params.max_tokens < 0:
        raise InvalidArgument(f"max_tokens must be >= 0 (0 means the upstream's default), got {params.max_tokens}")
    if not (math.isfinite(params.temperature) and 0.0 <= params.temperature <= 2.0):
        raise InvalidArgument(f"temperature must be in [0, 2] (0 is greedy), got {params.temperature}")
    if not 0.0 <= params.top_p <= 1.0:
        raise InvalidArgument(f"top_p must be in [0, 1] (0 means the upstream's default), got {params.top_p}")
    return ChatSampling(
        max_tokens=params.max_tokens or None,
        temperature=float(params.temperature),
        top_p=float(params.top_p) or None,
        seed=params.seed or None,
    )
