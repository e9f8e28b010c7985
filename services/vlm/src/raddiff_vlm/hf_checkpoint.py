"""What every engine reads from a local Hugging Face checkpoint folder the same way.

Both engines render the prompt with the checkpoint's own processor and chat
template, stop on the same end tokens and decode the answer with the same
tokenizer call, so that for one model, prompt and image their greedy answers
can agree token for token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raddiff_kit.errors import FailedPrecondition
from raddiff_vlm.engine import EngineInfo, VLMEngine
from raddiff_vlm.settings import VLMSettings


class CheckpointEngine(VLMEngine):
    """An engine that serves a local checkpoint folder with that folder's processor (both engines are)."""

    checkpoint: Path
    settings: VLMSettings
    _processor: Any

    def info(self) -> EngineInfo:
        return EngineInfo(
            model=self.checkpoint.name,
            engine=self.name,
            max_images_per_request=self.settings.max_images_per_request,
            max_tokens=self.settings.max_tokens_limit,
        )

    def image_placeholder(self) -> str | None:
        return image_placeholder(self._processor)


def require_checkpoint(path: Path) -> None:
    """Refuse to start without a checkpoint, saying how to make one."""
    if not (path / "config.json").is_file():
        raise FailedPrecondition(
            f"no VLM checkpoint at {path} (config.json missing): set RADDIFF_VLM_CHECKPOINT, or build one with "
            f"`python -m raddiff_vlm.checkpoints init-random {path}`"
        )


def load_processor(path: Path, *, trust_remote_code: bool, image_backend: str) -> Any:
    """The checkpoint's AutoProcessor (tokenizer, image processor, chat template)."""
    from transformers import AutoProcessor

    extra = {"backend": image_backend} if image_backend else {}
    return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code, **extra)


def image_placeholder(processor: Any) -> str:
    return getattr(processor, "image_token", None) or "<image>"


def render_prompt(processor: Any, prompt: str, n_images: int) -> str:
    """The model's prompt text: images first, then the user's text, then the answer cue."""
    if getattr(processor, "chat_template", None):
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return image_placeholder(processor) * n_images + prompt


def eos_token_ids(generation_config: Any, tokenizer: Any) -> list[int]:
    """The tokens that end an answer: the generation config's, else the tokenizer's."""
    eos = getattr(generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        raise FailedPrecondition("the checkpoint defines no end-of-sequence token (generation_config or tokenizer)")
    return [int(e) for e in eos] if isinstance(eos, list | tuple) else [int(eos)]


def answer_text(tokenizer: Any, token_ids: list[int]) -> str:
    """The answer as the caller reads it: special tokens dropped, location tokens kept."""
    return tokenizer.decode(token_ids, skip_special_tokens=True).strip()
