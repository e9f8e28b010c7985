"""A content-addressed response cache on disk.

The key is a sha256 over everything that decides the answer: the model, the
messages (each image by its sha256, not its bytes), the JSON schema and the
sampling. An entry is one small JSON file, written to a temporary name and
renamed into place, so a reader never sees half an answer and the cache
survives restarts (mount the folder on a volume to share it between pods).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from raddiff_kit.deadlines import Deadline
from raddiff_llm_proxy.engine import ChatAnswer, ChatCall, ChatEngine, ImagePart
from raddiff_llm_proxy.metrics import CACHE_LOOKUPS

log = logging.getLogger("raddiff.llm.cache")

# Bump when the key's layout changes, so old entries are not misread.
KEY_VERSION = 1


def cache_key(call: ChatCall) -> str:
    messages = [
        {
            "role": message.role,
            "content": [
                {"image_sha256": part.sha256} if isinstance(part, ImagePart) else {"text": part.text}
                for part in message.parts
            ],
        }
        for message in call.messages
    ]
    material: dict[str, Any] = {
        "v": KEY_VERSION,
        "model": call.model,
        "messages": messages,
        "json_schema": call.json_schema,
        "sampling": asdict(call.sampling),
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> ChatAnswer | None:
        path = self._path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            return ChatAnswer(
                text=entry["text"],
                prompt_tokens=int(entry["prompt_tokens"]),
                completion_tokens=int(entry["completion_tokens"]),
                model=entry["model"],
                finish_reason=entry.get("finish_reason", ""),
                cached=True,
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A damaged entry is a miss; the next answer overwrites it.
            log.warning("unreadable cache entry %s: %s", path, exc)
            return None

    def put(self, key: str, answer: ChatAnswer) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = asdict(answer)
        entry.pop("cached")
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entry, handle, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class CachingEngine(ChatEngine):
    """Answers from the cache when it can (no upstream call), and stores every fresh answer.

    no_cache skips the lookup but still stores the fresh answer, so it refreshes the entry.
    """

    def __init__(self, inner: ChatEngine, cache: ResponseCache) -> None:
        self.inner = inner
        self.cache = cache

    async def chat(self, call: ChatCall, deadline: Deadline) -> ChatAnswer:
        key = cache_key(call)
        if not call.no_cache:
            hit = await asyncio.to_thread(self.cache.get, key)
            CACHE_LOOKUPS.labels("hit" if hit else "miss").inc()
            if hit is not None:
                return hit
        answer = await self.inner.chat(call, deadline)
        try:
            await asyncio.to_thread(self.cache.put, key, answer)
        except OSError as exc:  # a full or read-only disk costs the cache, not the answer
            log.warning("cannot store cache entry %s: %s", key, exc)
        return answer

    async def close(self) -> None:
        await self.inner.close()
