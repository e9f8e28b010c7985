"""Each image embedded once per model, whatever the number of findings, iterations or analyses.

Vectors are cached per (the embedding service's model_id, a key of the input): an image's key is its
uri with the file's mtime and size (a rewritten file is a new key; reading every file for a sha256
would cost as much I/O as the embedding service's own read), a scratch:// uri is its sha256 already,
and a text's key is the text. The cache is an in-process LRU in front of an optional persistent
VectorStore (the orchestrator's database, so every replica and every later analysis shares it).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote, urlparse

import numpy as np

from raddiff_orchestrator.agent.ports import DependencyError, Embedder

BatchReport = Callable[[float], Awaitable[None]]


class VectorStore(Protocol):
    """A persistent map (model_id, key) -> vector. Blocking: the cache calls it in a thread."""

    def get_many(self, model_id: str, keys: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_many(self, model_id: str, vectors: dict[str, np.ndarray]) -> None: ...


def image_key(uri: str) -> str:
    """The cache key of an image: a scratch uri as is; a file with its mtime and size."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        try:
            info = os.stat(unquote(parsed.path))
        except OSError:
            return f"image:{uri}"  # the embedding service will say what is wrong with it
        return f"image:{uri}|{info.st_mtime_ns}|{info.st_size}"
    return f"image:{uri}"


def text_key(text: str) -> str:
    return "text:" + hashlib.sha256(text.encode()).hexdigest()


def unit_rows(vectors: np.ndarray, expected: int, what: str) -> np.ndarray:
    """The vectors as unit rows, after checking the service sent one finite vector per input."""
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != expected:
        raise DependencyError(f"the embedder returned {array.shape} for {expected} {what}s")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not np.isfinite(array).all() or (norms == 0).any():
        raise DependencyError(f"the embedder returned a zero or non-finite {what} vector")
    return array / norms


class EmbeddingCache:
    """Shared by every analysis of a process: an LRU of vectors, backed by a VectorStore when given."""

    def __init__(self, store: VectorStore | None = None, max_items: int = 50_000) -> None:
        self.store = store
        self.max_items = max_items
        self._lru: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    async def get(self, model_id: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for key in keys:
            vector = self._lru.get((model_id, key))
            if vector is not None:
                self._lru.move_to_end((model_id, key))
                found[key] = vector
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if missing and self.store is not None:
            stored = await asyncio.to_thread(self.store.get_many, model_id, missing)
            for key, vector in stored.items():
                self._remember(model_id, key, vector)
            found.update(stored)
        return found

    async def put(self, model_id: str, vectors: dict[str, np.ndarray]) -> None:
        for key, vector in vectors.items():
            self._remember(model_id, key, vector)
        if self.store is not None and vectors:
            await asyncio.to_thread(self.store.put_many, model_id, vectors)

    def _remember(self, model_id: str, key: str, vector: np.ndarray) -> None:
        self._lru[(model_id, key)] = vector
        self._lru.move_to_end((model_id, key))
        while len(self._lru) > self.max_items:
            self._lru.popitem(last=False)


@dataclass
class CacheUse:
    image_hits: int = 0
    image_misses: int = 0
    text_hits: int = 0
    text_misses: int = 0


@dataclass
class CachedEmbedder:
    """The embedder of one analysis: unit vectors, each input sent to the service at most once."""

    inner: Embedder
    cache: EmbeddingCache
    batch_size: int = 64
    use: CacheUse = field(default_factory=CacheUse)
    _model_id: str = ""

    async def model_id(self) -> str:
        if not self._model_id:
            self._model_id = await self.inner.model_id()
            if not self._model_id:
                raise DependencyError("the embedding service reported no model_id; vectors cannot be cached by model")
        return self._model_id

    async def embed_images(self, uris: Sequence[str], report: BatchReport | None = None) -> np.ndarray:
        keys = await asyncio.to_thread(lambda: [image_key(u) for u in uris])
        rows = await self._embed(list(uris), keys, self.inner.embed_images, "image", report)
        return rows

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return await self._embed(list(texts), [text_key(t) for t in texts], self.inner.embed_texts, "text", None)

    async def _embed(
        self,
        items: list[str],
        keys: list[str],
        call: Callable[[Sequence[str]], Awaitable[np.ndarray]],
        what: str,
        report: BatchReport | None,
    ) -> np.ndarray:
        if not items:
            return np.zeros((0, 0))
        model = await self.model_id()
        found = await self.cache.get(model, keys)
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        item_of = dict(zip(keys, items, strict=True))
        hits = len(keys) - sum(1 for k in keys if k not in found)
        if what == "image":
            self.use.image_hits += hits
            self.use.image_misses += len(todo)
        else:
            self.use.text_hits += hits
            self.use.text_misses += len(todo)
        batches = [todo[i : i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
        for done, batch in enumerate(batches, 1):
            vectors = unit_rows(await call([item_of[k] for k in batch]), len(batch), what)
            current = await self.inner.model_id()
            if current != model:
                raise DependencyError(
                    f"the embedding model changed during the analysis (from {model} to {current}); submit it again"
                )
            fresh = {k: v.astype(np.float32) for k, v in zip(batch, vectors, strict=True)}
            await self.cache.put(model, fresh)
            found.update(fresh)
            if report is not None:
                await report(done / len(batches))
        dims = {found[k].shape[0] for k in keys}
        if len(dims) > 1:
            raise DependencyError(f"cached and fresh {what} vectors differ in length: {sorted(dims)}")
        return np.stack([found[k] for k in keys]).astype(np.float64)
