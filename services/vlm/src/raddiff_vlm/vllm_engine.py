"""The vLLM engine: vLLM's AsyncLLM inside the service process.

Every generate() call is its own vLLM request; vLLM's scheduler batches the
requests in flight continuously (no MicroBatcher), each with its own sampling,
max_tokens and JSON schema. When the caller's deadline passes or the caller
goes away, the request is aborted in vLLM, so no more tokens are spent on it.

AsyncLLM runs its engine core in one child process; VLLM_ENABLE_V1_MULTIPROCESSING=0
with the "uni" executor keeps the model worker inside that process instead of a
second one. The prompt is rendered and the answer decoded with the checkpoint's
own processor, exactly as the transformers engine does, so both engines' greedy
answers agree for a model both can run.

vLLM's scheduler figures (requests running and waiting, KV cache use) reach the
service's Prometheus metrics through a stat logger, every engine step.

This module imports vllm: raddiff_vlm.app.create_engine imports it only when
RADDIFF_VLM_ENGINE=vllm.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import GenerationConfig
from vllm import AsyncEngineArgs, SamplingParams
from vllm.config import StructuredOutputsConfig
from vllm.exceptions import GracefulHTTPError, VLLMClientError, VLLMError
from vllm.platforms import current_platform
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError
from vllm.v1.metrics.loggers import StatLoggerBase

from raddiff_kit.deadlines import Deadline
from raddiff_kit.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, ServiceError, Unavailable
from raddiff_kit.logs import log_fields
from raddiff_vlm.engine import GenerationRequest, GenerationResult, Sampling
from raddiff_vlm.hf_checkpoint import (
    CheckpointEngine,
    answer_text,
    eos_token_ids,
    load_processor,
    render_prompt,
    require_checkpoint,
)
from raddiff_vlm.metrics import (
    ABANDONED,
    GENERATED_TOKENS,
    KV_CACHE_USAGE,
    PROMPT_TOKENS,
    REQUESTS_RUNNING,
    REQUESTS_WAITING,
)
from raddiff_vlm.settings import VLMSettings

log = logging.getLogger("raddiff.vlm.vllm")

# Read by vLLM when the engine is created; a value already in the environment wins.
_VLLM_ENVIRONMENT = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # with the uni executor: no separate worker process
    "VLLM_HOST_IP": "127.0.0.1",  # the engine core is local; otherwise vLLM picks eth0's address
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
}
# vLLM raises any temperature below this to it (against NaN); such a request asks for all but greedy decoding.
VLLM_MIN_TEMPERATURE = 0.01


class SchedulerFigures(StatLoggerBase):
    """vLLM's stat logger interface: copies the scheduler's queue figures to the service's gauges."""

    def __init__(self, vllm_config: Any, engine_index: int = 0, engine_name: str = "vllm") -> None:
        self.running = REQUESTS_RUNNING.labels(engine_name)
        self.waiting = REQUESTS_WAITING.labels(engine_name)
        self.kv_cache = KV_CACHE_USAGE.labels(engine_name)

    def record(
        self,
        scheduler_stats: Any,
        iteration_stats: Any,
        mm_cache_stats: Any = None,
        engine_idx: int = 0,
    ) -> None:
        if scheduler_stats is None:
            return
        self.running.set(scheduler_stats.num_running_reqs)
        # Requests deferred by a transient constraint wait too.
        self.waiting.set(scheduler_stats.num_waiting_reqs + scheduler_stats.num_skipped_waiting_reqs)
        self.kv_cache.set(scheduler_stats.kv_cache_usage)

    def log_engine_initialized(self) -> None:
        pass


class VLLMEngine(CheckpointEngine):
    name = "vllm"
    supports_json_schema = True

    def __init__(self, settings: VLMSettings, checkpoint: Path) -> None:
        super().__init__(settings)
        self.checkpoint = Path(checkpoint)
        self._engine: AsyncLLM | None = None
        self._processor: Any = None
        self._eos_ids: list[int] = []
        self._max_context = 0

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        require_checkpoint(self.checkpoint)
        for key, value in _VLLM_ENVIRONMENT.items():
            os.environ.setdefault(key, value)
        if current_platform.is_cpu():
            # vLLM sets OpenMP up for a worker only in its mp executor. Under "uni" the engine core would run one
            # OpenMP thread per core, spinning against each other and the service's own thread: decoding was ~30x
            # slower on 2 cores. One core stays for the service, as vLLM's own CPU binding reserves it.
            os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) - 1)))
        # Loading blocks for seconds (the engine core process starts and profiles the model).
        await asyncio.get_running_loop().run_in_executor(None, self._load)

    def _load(self) -> None:
        settings = self.settings
        try:
            processor = load_processor(
                self.checkpoint, trust_remote_code=settings.trust_remote_code, image_backend=settings.image_backend
            )
            generation_config = GenerationConfig.from_pretrained(self.checkpoint)
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise FailedPrecondition(f"cannot load the VLM checkpoint at {self.checkpoint}: {exc}") from exc
        args = AsyncEngineArgs(
            model=str(self.checkpoint),
            trust_remote_code=settings.trust_remote_code,
            dtype=settings.dtype,
            max_model_len=settings.vllm_max_model_len or None,
            max_num_seqs=settings.max_batch,
            enforce_eager=settings.vllm_enforce_eager,
            kv_cache_memory_bytes=settings.vllm_kv_cache_bytes or None,
            gpu_memory_utilization=settings.vllm_gpu_memory_utilization,
            limit_mm_per_prompt={"image": settings.max_images_per_request},
            distributed_executor_backend="uni",
            # Compact JSON: free whitespace between tokens lets a small model fill max_tokens with newlines.
            structured_outputs_config=StructuredOutputsConfig(backend="xgrammar", disable_any_whitespace=True),
            # Stats go to SchedulerFigures only, not to vLLM's own log lines and Prometheus registry.
            disable_log_stats=True,
        )
        try:
            engine = AsyncLLM.from_engine_args(
                args, stat_loggers=[lambda config, index: SchedulerFigures(config, index, self.name)]
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise FailedPrecondition(f"vLLM cannot serve the checkpoint at {self.checkpoint}: {exc}") from exc
        self._processor = processor
        self._eos_ids = eos_token_ids(generation_config, processor.tokenizer)
        self._max_context = engine.model_config.max_model_len
        self._engine = engine
        log_fields(
            log,
            "vlm model loaded",
            checkpoint=str(self.checkpoint),
            engine=self.name,
            max_model_len=engine.model_config.max_model_len,
            kv_cache_bytes=settings.vllm_kv_cache_bytes,
        )

    async def stop(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            # Stops the engine core process; waits for it, so it runs off the event loop.
            await asyncio.get_running_loop().run_in_executor(None, engine.shutdown)

    # -- the interface -----------------------------------------------------
    def healthy(self) -> bool:
        # `errored`: the engine core process died or its output loop stopped; vLLM does not recover from either.
        return self._engine is not None and not self._engine.errored

    def unfinished_requests(self) -> int:
        """Requests vLLM still holds (waiting, running, or finishing)."""
        return self._engine.get_num_unfinished_requests() if self._engine is not None else 0

    async def generate(self, request: GenerationRequest, deadline: Deadline) -> GenerationResult:
        engine = self._engine
        if engine is None:
            raise Unavailable("the vLLM engine is not running")
        deadline.check()
        request_id = uuid.uuid4().hex
        progress = _Progress()
        try:
            async with asyncio.timeout(deadline.remaining()):
                await self._decode(engine, request, request_id, progress)
        except TimeoutError:
            await self._abandon(engine, request_id, "deadline", progress)
            raise DeadlineExceeded(f"stopped decoding after {len(progress.tokens)} tokens: caller deadline") from None
        except asyncio.CancelledError:
            await self._abandon(engine, request_id, "cancelled", progress)
            raise
        except VLLMError as exc:
            raise _service_error(exc) from exc
        if progress.finish not in ("stop", "length"):
            raise Unavailable(f"vLLM ended the request without an answer (finish reason {progress.finish!r})")
        return self._result(progress)

    async def _decode(self, engine: AsyncLLM, request: GenerationRequest, request_id: str, progress: _Progress) -> None:
        prompt: dict[str, Any] = {"prompt": render_prompt(self._processor, request.prompt, len(request.images))}
        if request.images:
            prompt["multi_modal_data"] = {"image": request.images}
        outputs = engine.generate(prompt, self._sampling_params(request.sampling), request_id)
        # However the loop ends, the generator closes at once, and vLLM aborts the request if it is unfinished.
        async with aclosing(outputs):
            async for output in outputs:
                if not progress.prompt_tokens:
                    progress.prompt_tokens = len(output.prompt_token_ids or ())
                    self._check_fits(progress.prompt_tokens, request.sampling.max_tokens)
                completion = output.outputs[0]
                progress.tokens.extend(completion.token_ids)
                progress.finish = completion.finish_reason

    # -- helpers -----------------------------------------------------------
    def _check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        # vLLM would cut the answer short at the context's end; the service refuses such a request instead, as
        # the transformers engine does (leaving the loop aborts the vLLM request).
        if prompt_tokens + max_tokens > self._max_context:
            raise InvalidArgument(
                f"prompt ({prompt_tokens} tokens, images included) plus max_tokens ({max_tokens}) "
                f"exceeds the model's context of {self._max_context} tokens"
            )

    def _sampling_params(self, sampling: Sampling) -> SamplingParams:
        structured = None
        if sampling.json_schema is not None:
            structured = StructuredOutputsParams(json=sampling.json_schema)
        # The limit of sampling as the temperature falls is greedy decoding, as in the transformers engine.
        temperature = 0.0 if sampling.temperature < VLLM_MIN_TEMPERATURE else sampling.temperature
        return SamplingParams(
            max_tokens=sampling.max_tokens,
            temperature=temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            stop_token_ids=self._eos_ids,
            structured_outputs=structured,
            # Token ids only, as they come: decoding happens once, as the transformers engine does it.
            detokenize=False,
            output_kind=RequestOutputKind.DELTA,
        )

    def _result(self, progress: _Progress) -> GenerationResult:
        tokens = progress.tokens
        # "stop" means a stop token ended the answer (no stop strings are used); vLLM keeps it in token_ids.
        answer = tokens[:-1] if progress.finish == "stop" else tokens
        PROMPT_TOKENS.labels(self.name).inc(progress.prompt_tokens)
        GENERATED_TOKENS.labels(self.name).inc(len(tokens))
        return GenerationResult(
            text=answer_text(self._processor.tokenizer, answer),
            prompt_tokens=progress.prompt_tokens,
            completion_tokens=len(tokens),
            finish_reason="stop" if progress.finish == "stop" else "length",
            token_ids=tuple(tokens),
        )

    async def _abandon(self, engine: AsyncLLM, request_id: str, reason: str, progress: _Progress) -> None:
        # Closing the generator aborted the request already; aborting by id as well costs nothing.
        await engine.abort(request_id)
        ABANDONED.labels(self.name, reason).inc()
        GENERATED_TOKENS.labels(self.name).inc(len(progress.tokens))


@dataclass
class _Progress:
    """What one request has received so far."""

    tokens: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    finish: str | None = None


def _service_error(exc: Exception) -> ServiceError:
    """vLLM's refusal of a request as the service's error (the interceptor maps it to a status code)."""
    if isinstance(exc, VLLMClientError):
        return InvalidArgument(f"vLLM refused the request: {exc}")
    if isinstance(exc, GracefulHTTPError):  # admission control: busy
        return Unavailable(f"vLLM is busy: {exc.message}")
    if isinstance(exc, EngineDeadError):
        return Unavailable(f"the vLLM engine died: {exc}")
    # vLLM wraps what its input processing refuses with a ValueError as a generic engine error.
    if isinstance(exc.__cause__, ValueError | TypeError):
        return InvalidArgument(f"vLLM refused the request: {exc.__cause__}")
    return ServiceError(f"vLLM failed: {type(exc).__name__}: {exc}")
