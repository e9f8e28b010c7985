"""The one data layer: analyses in SQLite (default) or PostgreSQL, via SQLAlchemy 2.

Work is handed out by lease. A worker claims an analysis atomically (FOR
UPDATE SKIP LOCKED on PostgreSQL, a compare-and-set UPDATE everywhere), then
renews its lease by heartbeat; every later write names the lease owner, so a
worker that lost its lease (it stalled, another replica took over) can no
longer change the analysis. An analysis whose lease expired is claimable
again: its replica died.

Every method is synchronous and short; async callers run them in a thread.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine, make_url

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})

_Json = JSON().with_variant(JSONB(), "postgresql")
metadata = MetaData()
analyses = Table(
    "analyses",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # submission order; paging key
    Column("id", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=True),
    Column("status", String(16), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("progress", Float, nullable=False),
    Column("summary", _Json, nullable=False),  # set names and sizes, for listings
    Column("task", _Json, nullable=False),
    Column("result", _Json, nullable=True),
    Column("error", Text, nullable=True),
    Column("cancel_requested", Boolean, nullable=False),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Index("ix_analyses_status_seq", "status", "seq"),
)
# The persistent half of the agent's embedding cache (agent.embeddings): one row per (model, input).
embedding_cache = Table(
    "embedding_cache",
    metadata,
    Column("model_id", String(300), primary_key=True),
    Column("key", String(64), primary_key=True),  # sha256 of the input's cache key
    Column("vector", LargeBinary, nullable=False),  # float32, little-endian
    Column("created_at", Float, nullable=False),
)
_SUMMARY_COLUMNS = [c for c in analyses.c if c.name not in ("task", "result")]
_SCHEMA_LOCK_KEY = 7_426_150  # any constant: serialises schema creation across replicas


class AnalysisNotFound(Exception):
    pass


class AnalysisFinished(Exception):
    """The analysis already reached a final status."""


@dataclass(frozen=True)
class AnalysisRecord:
    id: str
    seq: int
    name: str | None
    status: str
    stage: str
    progress: float
    summary: dict[str, Any]
    cancel_requested: bool
    lease_owner: str | None
    lease_expires_at: float | None
    attempts: int
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    task: dict[str, Any] | None = None  # absent in listings
    result: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Any) -> AnalysisRecord:
        return cls(**dict(row._mapping))


@dataclass(frozen=True)
class LeaseState:
    held: bool  # False: another worker owns the analysis now, or it is no longer running
    cancel_requested: bool


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class AnalysisStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_schema(self) -> None:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            metadata.create_all(conn)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    # -- the API's side ---------------------------------------------------------------
    def submit(self, task: dict[str, Any], summary: dict[str, Any], name: str | None = None) -> AnalysisRecord:
        now = time.time()
        analysis_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                analyses.insert().values(
                    id=analysis_id,
                    name=name,
                    status=QUEUED,
                    stage=QUEUED,
                    progress=0.0,
                    summary=summary,
                    task=task,
                    cancel_requested=False,
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            return self._get(conn, analysis_id, full=True)

    def get(self, analysis_id: str, full: bool = True) -> AnalysisRecord:
        with self.engine.connect() as conn:
            return self._get(conn, analysis_id, full)

    def _get(self, conn: Connection, analysis_id: str, full: bool) -> AnalysisRecord:
        columns = list(analyses.c) if full else _SUMMARY_COLUMNS
        row = conn.execute(select(*columns).where(analyses.c.id == analysis_id)).first()
        if row is None:
            raise AnalysisNotFound(analysis_id)
        return AnalysisRecord.from_row(row)

    def list_page(
        self, limit: int, before_seq: int | None = None, status: str | None = None
    ) -> tuple[list[AnalysisRecord], int | None]:
        """Newest first; returns the page and the seq to continue before, or None at the end."""
        query = select(*_SUMMARY_COLUMNS).order_by(analyses.c.seq.desc()).limit(limit + 1)
        if before_seq is not None:
            query = query.where(analyses.c.seq < before_seq)
        if status is not None:
            query = query.where(analyses.c.status == status)
        with self.engine.connect() as conn:
            rows = [AnalysisRecord.from_row(r) for r in conn.execute(query)]
        if len(rows) > limit:
            return rows[:limit], rows[limit - 1].seq
        return rows, None

    def request_cancel(self, analysis_id: str) -> AnalysisRecord:
        """A queued analysis is cancelled at once; a running one is flagged and stops at its next step."""
        now = time.time()
        where_id = analyses.c.id == analysis_id
        for _ in range(5):  # the status may change under us (claimed, released); each loop sees a newer one
            with self.engine.begin() as conn:
                queued = conn.execute(
                    update(analyses)
                    .where(where_id, analyses.c.status == QUEUED)
                    .values(status=CANCELLED, stage=CANCELLED, cancel_requested=True, updated_at=now, finished_at=now)
                )
                if queued.rowcount == 0:
                    conn.execute(
                        update(analyses)
                        .where(where_id, analyses.c.status == RUNNING)
                        .values(cancel_requested=True, updated_at=now)
                    )
                record = self._get(conn, analysis_id, full=True)
            if record.status in TERMINAL and not (record.status == CANCELLED and queued.rowcount):
                raise AnalysisFinished(f"analysis {analysis_id} already {record.status}")
            if record.cancel_requested:
                return record
        raise AnalysisFinished(f"analysis {analysis_id} kept changing status; try again")

    def count_by_status(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(analyses.c.status, func.count()).group_by(analyses.c.status)).all()
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({status: n for status, n in rows})
        return counts

    # -- the worker's side --------------------------------------------------------------
    def claim(self, owner: str, lease_seconds: float, max_attempts: int) -> AnalysisRecord | None:
        """Take the oldest queued analysis, or one whose lease expired; None when there is none."""
        for _ in range(10):
            now = time.time()
            claimable = or_(
                analyses.c.status == QUEUED,
                and_(analyses.c.status == RUNNING, analyses.c.lease_expires_at < now),
            )
            with self.engine.begin() as conn:
                row = conn.execute(
                    select(analyses.c.seq, analyses.c.id, analyses.c.attempts, analyses.c.cancel_requested)
                    .where(claimable)
                    .order_by(analyses.c.seq)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    return None
                this = and_(analyses.c.seq == row.seq, claimable)
                if row.cancel_requested:  # cancelled while its worker was dying
                    values: dict[str, Any] = {"status": CANCELLED, "stage": CANCELLED, "finished_at": now}
                elif row.attempts >= max_attempts:
                    values = {
                        "status": FAILED,
                        "stage": FAILED,
                        "finished_at": now,
                        "error": f"abandoned: its worker stopped without finishing {row.attempts} times",
                    }
                else:
                    values = {
                        "status": RUNNING,
                        "stage": "claimed",
                        "progress": 0.0,
                        "error": None,
                        "lease_owner": owner,
                        "lease_expires_at": now + lease_seconds,
                        "attempts": row.attempts + 1,
                        "started_at": func.coalesce(analyses.c.started_at, now),
                    }
                done = conn.execute(update(analyses).where(this).values(updated_at=now, **values))
                if done.rowcount == 1 and values["status"] == RUNNING:
                    return self._get(conn, row.id, full=True)
        return None

    def renew(
        self,
        analysis_id: str,
        owner: str,
        lease_seconds: float,
        stage: str | None = None,
        progress: float | None = None,
    ) -> LeaseState:
        """Extend the lease (and record progress) if `owner` still holds it."""
        now = time.time()
        values: dict[str, Any] = {"lease_expires_at": now + lease_seconds, "updated_at": now}
        if stage is not None:
            values["stage"] = stage
        if progress is not None:
            values["progress"] = progress
        with self.engine.begin() as conn:
            done = conn.execute(update(analyses).where(self._held(analysis_id, owner)).values(**values))
            if done.rowcount == 0:
                return LeaseState(held=False, cancel_requested=False)
            flag = conn.execute(select(analyses.c.cancel_requested).where(analyses.c.id == analysis_id)).scalar()
        return LeaseState(held=True, cancel_requested=bool(flag))

    def finish(
        self,
        analysis_id: str,
        owner: str,
        status: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        """Record the outcome; False when `owner` no longer holds the lease (its write is refused)."""
        if status not in TERMINAL:
            raise ValueError(f"{status!r} is not a final status")
        now = time.time()
        values: dict[str, Any] = {
            "status": status,
            "stage": "done" if status == SUCCEEDED else status,
            "result": result,
            "error": error,
            "lease_owner": None,
            "lease_expires_at": None,
            "updated_at": now,
            "finished_at": now,
        }
        if status == SUCCEEDED:
            values["progress"] = 1.0
        with self.engine.begin() as conn:
            done = conn.execute(update(analyses).where(self._held(analysis_id, owner)).values(**values))
        return done.rowcount == 1

    def release(self, analysis_id: str, owner: str) -> bool:
        """Give an analysis back to the queue (this worker is shutting down); not counted as an attempt."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(analyses)
                .where(self._held(analysis_id, owner))
                .values(
                    status=QUEUED,
                    stage=QUEUED,
                    progress=0.0,
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=analyses.c.attempts - 1,
                    updated_at=time.time(),
                )
            )
        return done.rowcount == 1

    @staticmethod
    def _held(analysis_id: str, owner: str) -> Any:
        return and_(analyses.c.id == analysis_id, analyses.c.status == RUNNING, analyses.c.lease_owner == owner)


class DatabaseVectorStore:
    """Embedding vectors in the orchestrator's database, so every replica and every later analysis reuses them.

    Chosen over a file cache because it needs no volume of its own, is shared by replicas through
    PostgreSQL as it is by worker slots through SQLite, and survives restarts with the analyses.
    """

    _CHUNK = 500  # keys per IN (...) query

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    @staticmethod
    def _hashed(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    def get_many(self, model_id: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        by_hash = {self._hashed(k): k for k in keys}
        hashes = list(by_hash)
        found: dict[str, np.ndarray] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(hashes), self._CHUNK):
                rows = conn.execute(
                    select(embedding_cache.c.key, embedding_cache.c.vector).where(
                        embedding_cache.c.model_id == model_id,
                        embedding_cache.c.key.in_(hashes[start : start + self._CHUNK]),
                    )
                )
                for hashed, blob in rows:
                    found[by_hash[hashed]] = np.frombuffer(blob, dtype="<f4").copy()
        return found

    def put_many(self, model_id: str, vectors: dict[str, np.ndarray]) -> None:
        now = time.time()
        rows = [
            {
                "model_id": model_id,
                "key": self._hashed(k),
                "vector": np.asarray(v, dtype="<f4").tobytes(),
                "created_at": now,
            }
            for k, v in vectors.items()
        ]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), self._CHUNK):
                statement = self._insert(embedding_cache).on_conflict_do_nothing()
                conn.execute(statement, rows[start : start + self._CHUNK])
