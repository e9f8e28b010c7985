"""Deduplication of the findings pooled over a proposal's rounds.

Two strategies behind one interface:
- by the LLM (RadDiff's way): one call lists the pooled findings and asks for them merged;
- by text-embedding similarity with a threshold (the offline default). The vectors are the embedding
  service's own text vectors (EmbedTexts), not a general sentence embedder: two findings whose
  vectors nearly coincide in the ranker's space get nearly the same scores on every image, so for a
  ranking by AUROC they are the same finding, which is exactly what deduplication should remove.
  It also keeps torch out of the orchestrator and costs no extra model (the vectors are cached and
  reused when the findings are ranked).
Both first fold trivial variants (case, spacing, punctuation, plurals) without any model.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import numpy as np

from raddiff_kit.json_schema import short_text
from raddiff_kit.llm_json import NoUsableAnswer, Refusal, Unusable, ask_json, loads_answer
from raddiff_orchestrator.agent.ports import ChatMessage, ChatModel, Sampling

_WORD = re.compile(r"[a-z0-9]+")


def normal_form(text: str) -> str:
    """Lower case, punctuation and hyphens as spaces, plurals folded: "Pleural effusions." -> "pleural effusion"."""
    return " ".join(_fold(w) for w in _WORD.findall(text.lower()))


def _fold(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def lexical_unique(findings: Sequence[str]) -> list[str]:
    """The first of each set of findings with the same normal form, in order; blanks dropped."""
    seen: set[str] = set()
    out: list[str] = []
    for text in findings:
        key = normal_form(text)
        if key and key not in seen:
            seen.add(key)
            out.append(" ".join(text.split()).strip(" .;,"))
    return out


def greedy_representatives(vectors: np.ndarray, threshold: float) -> list[int]:
    """Indices kept: each row joins the first kept row it is at least `threshold` similar to, else is kept.

    Rows are unit vectors; order decides which of two near-duplicates stands for both (the earlier).
    """
    kept: list[int] = []
    for i in range(vectors.shape[0]):
        if not kept or float((vectors[kept] @ vectors[i]).max()) < threshold:
            kept.append(i)
    return kept


class Deduplicator(Protocol):
    name: str

    async def deduplicate(self, findings: Sequence[str], notes: list[str]) -> list[str]: ...


class LexicalDeduplicator:
    """Only trivial variants folded (dedup.method "none"): every distinct wording is kept."""

    name = "none"

    async def deduplicate(self, findings: Sequence[str], notes: list[str]) -> list[str]:
        return lexical_unique(findings)


TextEmbed = Callable[[Sequence[str]], Awaitable[np.ndarray]]


class EmbeddingDeduplicator:
    name = "embedding"

    def __init__(self, embed_texts: TextEmbed, threshold: float) -> None:
        self._embed = embed_texts
        self.threshold = threshold

    async def deduplicate(self, findings: Sequence[str], notes: list[str]) -> list[str]:
        unique = lexical_unique(findings)
        if len(unique) < 2:
            return unique
        vectors = np.asarray(await self._embed(unique), dtype=np.float64)
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return [unique[i] for i in greedy_representatives(vectors, self.threshold)]


DEDUP_PROMPT = (
    "Below is a numbered list of findings, each claimed to be more common in one group of chest X-rays than "
    "in another. Several say the same thing in different words. Merge the findings that mean the same "
    "radiological finding (same abnormality, and the same side, location and severity where they are given) "
    "into one phrase, keep every distinct finding, and do not add new ones. Keep the wording short and "
    'radiological.\n\n{listed}\n\nAnswer with JSON: {{"findings": ["...", "..."]}}.'
)


def dedup_schema(count: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"findings": {"type": "array", "items": short_text(120), "minItems": 1, "maxItems": count}},
        "required": ["findings"],
        "additionalProperties": False,
    }


class LLMDeduplicator:
    """RadDiff's deduplication: one LLM call; an unusable answer is asked again, then the fallback is used."""

    name = "llm"

    def __init__(self, chat: ChatModel, fallback: Deduplicator, seed: int = 0, attempts: int = 2) -> None:
        self._chat = chat
        self._fallback = fallback
        self._seed = seed
        self._attempts = attempts

    async def deduplicate(self, findings: Sequence[str], notes: list[str]) -> list[str]:
        unique = lexical_unique(findings)
        if len(unique) < 2:
            return unique
        listed = "\n".join(f"{i}. {f}" for i, f in enumerate(unique, 1))
        schema = dedup_schema(len(unique))
        sampling = Sampling(max_tokens=64 + 24 * len(unique), temperature=0.0, seed=self._seed)

        # The changed conversation of a retry also bypasses any response cache, so the attempt is not needed.
        async def send(conversation: list[ChatMessage], attempt: int) -> str:
            return await self._chat.chat(conversation, schema, sampling)

        def note(refusal: Refusal) -> None:
            notes.append(f"dedup: LLM answer {refusal.attempt} unusable ({refusal.problem})")

        try:
            answer = await ask_json(
                send,
                [ChatMessage("user", DEDUP_PROMPT.format(listed=listed))],
                lambda text: _parse_merged(text, len(unique)),
                attempts=self._attempts,
                message=ChatMessage,
                on_refusal=note,
            )
        except NoUsableAnswer:
            notes.append(f"dedup: used {self._fallback.name} similarity after {self._attempts} unusable LLM answers")
            return await self._fallback.deduplicate(unique, notes)
        return answer.value


def _parse_merged(answer: str, count: int) -> list[str]:
    """The merged findings of a model's JSON answer, at most `count`; Unusable naming what is wrong."""
    data = loads_answer(answer)
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise Unusable('the answer is not an object with a "findings" list')
    merged = lexical_unique([f for f in data["findings"] if isinstance(f, str)])
    if not merged:
        raise Unusable("the answer lists no findings")
    if len(merged) > count:
        raise Unusable(f"the answer lists {len(merged)} findings, more than the {count} given")
    return merged
