"""The persistent half of the embedding cache, on both databases: vectors round-trip exactly, per model,
a second write of the same key keeps the first, and lookups of many keys are chunked."""

from __future__ import annotations

import numpy as np

from raddiff_orchestrator.agent.embeddings import EmbeddingCache, image_key, text_key
from raddiff_orchestrator.store import AnalysisStore, DatabaseVectorStore


def test_vectors_round_trip_per_model(store: AnalysisStore) -> None:
    vectors = DatabaseVectorStore(store.engine)
    rng = np.random.default_rng(0)
    written = {f"image:file:///x{i}.png|1|2": rng.normal(size=8).astype(np.float32) for i in range(1203)}
    vectors.put_many("clip@1", written)
    found = vectors.get_many("clip@1", [*written, "image:file:///never.png|1|2"])
    assert set(found) == set(written)  # more keys than one IN (...) chunk; the unknown one absent
    assert all(np.array_equal(found[k], v) for k, v in written.items())
    assert vectors.get_many("clip@2", list(written)[:3]) == {}  # another model's vectors are not these
    key = next(iter(written))
    vectors.put_many("clip@1", {key: np.zeros(8, np.float32)})  # a second write of a key keeps the first
    assert np.array_equal(vectors.get_many("clip@1", [key])[key], written[key])


async def test_the_cache_reads_through_to_the_database(store: AnalysisStore) -> None:
    first = EmbeddingCache(DatabaseVectorStore(store.engine))
    await first.put("m", {"k": np.ones(4, np.float32)})
    later = EmbeddingCache(DatabaseVectorStore(store.engine), max_items=1)  # a new process
    assert np.array_equal((await later.get("m", ["k", "missing"]))["k"], np.ones(4, np.float32))


def test_cache_keys(tmp_path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"x")
    first = image_key(path.as_uri())
    path.write_bytes(b"xy")  # rewritten: a new size (and mtime), so a new key
    assert image_key(path.as_uri()) != first and first.startswith(f"image:{path.as_uri()}|")
    assert image_key("scratch://" + "0" * 64 + ".png") == "image:scratch://" + "0" * 64 + ".png"
    assert text_key("effusion") != text_key("Effusion")
