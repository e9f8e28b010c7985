"""The transformers engine: a local Hugging Face checkpoint, batched generate().

Concurrent requests are collected by raddiff_kit.batching.MicroBatcher and
decoded together in one left-padded generate() call. Each row keeps its own
settings inside the shared call:
- sampling: generate() runs greedy and RowSampler draws each sampling row's
  token with that row's temperature, top_p and seeded generator, so a row's
  output does not depend on what it was batched with;
- limits: RowStops ends a row at its own max_tokens, or as soon as its
  caller's deadline passes or the caller goes away (no more tokens are spent
  on an answer nobody will read).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.utils import logging as hf_logging

from raddiff_kit.batching import MicroBatcher
from raddiff_kit.deadlines import Deadline
from raddiff_kit.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, ServiceError
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
from raddiff_vlm.metrics import ABANDONED, GENERATED_TOKENS, PROMPT_TOKENS, QueueFigures
from raddiff_vlm.settings import VLMSettings

log = logging.getLogger("raddiff.vlm.transformers")

# Auto classes a remote-code checkpoint may declare in its config's auto_map, best first.
_REMOTE_AUTO_CLASSES = {
    "AutoModelForImageTextToText": AutoModelForImageTextToText,
    "AutoModelForCausalLM": AutoModelForCausalLM,
}


@dataclass
class _Job:
    """One request as the batch worker sees it."""

    text: str  # the rendered prompt, image placeholders included
    images: list[Image.Image]
    sampling: Sampling
    deadline: Deadline
    cancelled: threading.Event = field(default_factory=threading.Event)

    def abandoned(self) -> str | None:
        if self.cancelled.is_set():
            return "cancelled"
        if self.deadline.expired():
            return "deadline"
        return None


class RowStops(StoppingCriteria):
    """Ends each row at its own max_tokens, or when its caller no longer waits."""

    def __init__(self, jobs: list[_Job], prompt_len: int) -> None:
        self.jobs = jobs
        self.prompt_len = prompt_len
        self.max_new = torch.tensor([job.sampling.max_tokens for job in jobs])
        # row -> (reason, tokens generated when it was stopped)
        self.stopped_early: dict[int, tuple[str, int]] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_len
        done = generated >= self.max_new
        for row, job in enumerate(self.jobs):
            if row not in self.stopped_early and (reason := job.abandoned()):
                self.stopped_early[row] = (reason, generated)
        for row in self.stopped_early:
            done[row] = True
        return done.to(input_ids.device)


class RowSampler(LogitsProcessor):
    """Draws the next token of each sampling row with its own settings and generator.

    generate() runs with do_sample=False; a sampling row leaves here with only
    its drawn token possible, so the greedy step picks it. Greedy rows pass
    through untouched.
    """

    def __init__(self, jobs: list[_Job]) -> None:
        self.rows: list[tuple[int, Sampling, torch.Generator]] = []
        for row, job in enumerate(jobs):
            if not job.sampling.greedy:
                seed = job.sampling.seed if job.sampling.seed is not None else secrets.randbits(62)
                self.rows.append((row, job.sampling, torch.Generator().manual_seed(seed)))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row, sampling, generator in self.rows:
            logits = scores[row].float().cpu()
            # Shift before scaling, so a tiny temperature cannot overflow to inf - inf = NaN.
            probs = torch.softmax((logits - logits.max()) / sampling.temperature, dim=-1)
            if sampling.top_p < 1.0:
                sorted_probs, order = torch.sort(probs, descending=True)
                # Keep the smallest prefix whose mass reaches top_p (the top token always stays).
                outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= sampling.top_p
                sorted_probs[outside] = 0.0
                probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
            token = torch.multinomial(probs, 1, generator=generator).item()
            forced = torch.full_like(scores[row], float("-inf"))
            forced[token] = 0.0
            scores[row] = forced
        return scores


class TransformersEngine(CheckpointEngine):
    name = "transformers"

    def __init__(self, settings: VLMSettings, checkpoint: Path) -> None:
        super().__init__(settings)
        self.checkpoint = Path(checkpoint)
        self._model: Any = None
        self._processor: Any = None
        self._eos_ids: list[int] = []
        self._pad_id = 0
        self._max_context = 0
        self._queue = QueueFigures(self.name)
        self._batcher: MicroBatcher[_Job, GenerationResult | ServiceError] = MicroBatcher(
            self._run_batch,
            service_name="vlm",
            max_batch=settings.max_batch,
            max_wait_s=settings.batch_wait_ms / 1000,
        )

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._load)

    async def stop(self) -> None:
        self._model = None

    def _load(self) -> None:
        path = self.checkpoint
        require_checkpoint(path)
        hf_logging.disable_progress_bar()
        if self.settings.torch_threads:
            torch.set_num_threads(self.settings.torch_threads)
        remote = self.settings.trust_remote_code
        try:
            processor = load_processor(path, trust_remote_code=remote, image_backend=self.settings.image_backend)
            config = AutoConfig.from_pretrained(path, trust_remote_code=remote)
            model_class = _model_class(config)
            dtype = "auto" if self.settings.dtype == "auto" else getattr(torch, self.settings.dtype)
            model = model_class.from_pretrained(path, trust_remote_code=remote, dtype=dtype)
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise FailedPrecondition(f"cannot load the VLM checkpoint at {path}: {exc}") from exc
        if getattr(processor, "image_processor", None) is None:
            raise FailedPrecondition(
                f"the checkpoint at {path} has no image processor (AutoProcessor loaded {type(processor).__name__})"
            )
        processor.tokenizer.padding_side = "left"  # generation appends on the right
        self._model = model.to(self.settings.device).eval()
        self._processor = processor
        self._eos_ids = eos_token_ids(model.generation_config, processor.tokenizer)
        pad = model.generation_config.pad_token_id
        self._pad_id = pad if pad is not None else (processor.tokenizer.pad_token_id or self._eos_ids[0])
        self._max_context = model.config.get_text_config().max_position_embeddings
        log_fields(
            log,
            "vlm model loaded",
            checkpoint=str(path),
            model_class=type(model).__name__,
            parameters=sum(p.numel() for p in model.parameters()),
            device=self.settings.device,
        )

    # -- the interface -----------------------------------------------------
    async def generate(self, request: GenerationRequest, deadline: Deadline) -> GenerationResult:
        text = render_prompt(self._processor, request.prompt, len(request.images))
        job = _Job(text, request.images, request.sampling, deadline)
        self._queue.accepted(1)
        try:
            [result] = await self._batcher.submit([job], deadline)
        except asyncio.CancelledError:
            job.cancelled.set()  # the worker stops decoding this row at its next step
            raise
        finally:
            self._queue.accepted(-1)
        if isinstance(result, ServiceError):
            raise result
        return result

    # -- the batch worker (runs in a thread) --------------------------------
    def _run_batch(self, jobs: list[_Job]) -> list[GenerationResult | ServiceError]:
        results: list[GenerationResult | ServiceError | None] = [None] * len(jobs)
        self._queue.running(len(jobs))
        try:
            self._run_groups(jobs, results)
        finally:
            self._queue.running(0)
        return [r for r in results if r is not None]

    def _run_groups(self, jobs: list[_Job], results: list[GenerationResult | ServiceError | None]) -> None:
        # The processor pads images per row; a row without images cannot share a batch with rows that have them.
        groups: dict[bool, list[int]] = defaultdict(list)
        for index, job in enumerate(jobs):
            groups[bool(job.images)].append(index)
        if self.settings.batch_invariant:
            for index, job in enumerate(jobs):  # each request its own pass: the same tokens alone or in any batch
                results[index] = self._generate_group([job])[0]
            return
        for indices in groups.values():
            outputs = self._generate_group([jobs[i] for i in indices])
            for i, out in zip(indices, outputs, strict=True):
                results[i] = out

    def _generate_group(self, jobs: list[_Job]) -> list[GenerationResult | ServiceError]:
        try:
            inputs = self._prepare(jobs)
        except ServiceError as exc:
            if len(jobs) == 1:
                return [exc]
            # Rare: find the row the processor refuses by running each alone.
            return [out for job in jobs for out in self._generate_group([job])]
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        too_long = {
            row: InvalidArgument(
                f"prompt ({n} tokens, images included) plus max_tokens ({jobs[row].sampling.max_tokens}) "
                f"exceeds the model's context of {self._max_context} tokens"
            )
            for row, n in enumerate(lengths)
            if n + jobs[row].sampling.max_tokens > self._max_context
        }
        if not too_long:
            return self._decode(jobs, inputs)
        fits = [job for row, job in enumerate(jobs) if row not in too_long]
        decoded = iter(self._generate_group(fits) if fits else [])
        return [too_long[row] if row in too_long else next(decoded) for row in range(len(jobs))]

    def _prepare(self, jobs: list[_Job]) -> dict[str, torch.Tensor]:
        texts = [job.text for job in jobs]
        images = [job.images for job in jobs] if jobs[0].images else None
        try:
            inputs = self._processor(text=texts, images=images, return_tensors="pt", padding=True)
        except (ValueError, TypeError, OSError) as exc:
            raise InvalidArgument(f"the model's processor cannot prepare this request: {exc}") from exc
        moved = {}
        for key, value in inputs.items():
            if not isinstance(value, torch.Tensor):
                continue
            value = value.to(self.settings.device)
            moved[key] = value.to(self._model.dtype) if value.is_floating_point() else value
        return moved

    def _decode(self, jobs: list[_Job], inputs: dict[str, torch.Tensor]) -> list[GenerationResult | ServiceError]:
        prompt_len = inputs["input_ids"].shape[1]
        stops = RowStops(jobs, prompt_len)
        sampler = RowSampler(jobs)
        config = GenerationConfig(
            max_new_tokens=max(job.sampling.max_tokens for job in jobs),
            do_sample=False,
            eos_token_id=self._eos_ids,
            pad_token_id=self._pad_id,
        )
        with torch.inference_mode():
            out = self._model.generate(
                **inputs,
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler] if sampler.rows else []),
                stopping_criteria=StoppingCriteriaList([stops]),
            )
        new_tokens = out[:, prompt_len:].tolist()
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        eos = set(self._eos_ids)
        results: list[GenerationResult | ServiceError] = []
        for row, job in enumerate(jobs):
            tokens = new_tokens[row][: job.sampling.max_tokens]
            stop_at = next((k for k, token in enumerate(tokens) if token in eos), None)
            if stop_at is None and row in stops.stopped_early:
                reason, generated = stops.stopped_early[row]
                ABANDONED.labels(self.name, reason).inc()
                GENERATED_TOKENS.labels(self.name).inc(generated)
                results.append(DeadlineExceeded(f"stopped decoding after {generated} tokens: caller {reason}"))
                continue
            finish = "stop" if stop_at is not None else "length"
            answer = tokens[:stop_at] if stop_at is not None else tokens
            completion = tokens[: stop_at + 1] if stop_at is not None else tokens  # the stop token counts
            text = answer_text(self._processor.tokenizer, answer)
            PROMPT_TOKENS.labels(self.name).inc(prompt_lengths[row])
            GENERATED_TOKENS.labels(self.name).inc(len(completion))
            results.append(
                GenerationResult(text, int(prompt_lengths[row]), len(completion), finish, token_ids=tuple(completion))
            )
        return results


def _model_class(config: Any) -> Any:
    """AutoModelForImageTextToText, unless a remote-code checkpoint declares another Auto class."""
    auto_map = getattr(config, "auto_map", None) or {}
    for name, cls in _REMOTE_AUTO_CLASSES.items():
        if name in auto_map:
            return cls
    return AutoModelForImageTextToText

