"""Durable storage (SQLAlchemy Core): fall events and hashed API keys.

SQLite in WAL mode with ``synchronous=FULL`` by default; any SQLAlchemy URL (``postgresql+psycopg://``)
for deployments. An event is committed before the HTTP response that reports it is sent, and the
unique key ``(session_id, track_id, start_ms)`` makes a re-sent stream idempotent: the same fall
is stored once, and the existing row is returned.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path
from typing import Any

from sqlalchemy import (BigInteger, Column, Float, Integer, MetaData, String, Table, UniqueConstraint, create_engine, event,
                        select)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

metadata = MetaData()
events = Table(
    "fall_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(128), nullable=False, index=True),
    Column("track_id", String(64), nullable=False),
    Column("start_ms", BigInteger, nullable=False),  # stream times may be UNIX seconds: ms overflow int32
    Column("start_time", Float, nullable=False),
    Column("detected_time", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("created_at", Float, nullable=False, index=True),
    UniqueConstraint("session_id", "track_id", "start_ms", name="uq_event"),
)
api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)


def hash_key(key: str) -> str:
    """SHA-256 of the key: keys are 256-bit random tokens, so a fast hash is enough (as for GitHub
    tokens); only the hash is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def open_db(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()
    metadata.create_all(engine)
    return engine


def store_events(engine: Engine, session_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert events (one transaction, committed on return); duplicates return the stored row."""
    out = []
    now = time.time()
    with engine.begin() as conn:
        for r in rows:
            key = {"session_id": session_id, "track_id": str(r["track_id"]), "start_ms": int(round(r["start_time"] * 1000))}
            existing = conn.execute(select(events).where(*(events.c[k] == v for k, v in key.items()))).mappings().first()
            if existing is None:
                try:
                    with conn.begin_nested():
                        conn.execute(events.insert().values(**key, start_time=float(r["start_time"]),
                                                            detected_time=float(r["detected_time"]),
                                                            confidence=float(r["confidence"]), created_at=now))
                except IntegrityError:  # a concurrent request stored it first
                    pass
                existing = conn.execute(select(events).where(*(events.c[k] == v for k, v in key.items()))
                                        ).mappings().first()
            out.append(dict(existing))
    return out


def query_events(engine: Engine, session_id: str | None, since: float | None, until: float | None,
                 limit: int, after_id: int | None = None) -> list[dict[str, Any]]:
    q = select(events).order_by(events.c.id).limit(limit)
    if session_id is not None:
        q = q.where(events.c.session_id == session_id)
    if since is not None:
        q = q.where(events.c.created_at >= since)
    if until is not None:
        q = q.where(events.c.created_at < until)
    if after_id is not None:
        q = q.where(events.c.id > after_id)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def add_key(engine: Engine, name: str) -> str:
    """Create a key named ``name``; the key itself is returned once and never stored."""
    key = "ap_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(api_keys.insert().values(name=name, key_hash=hash_key(key), created_at=time.time()))
    return key


def revoke_key(engine: Engine, name: str) -> bool:
    with engine.begin() as conn:
        res = conn.execute(api_keys.update().where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                           .values(revoked_at=time.time()))
        return res.rowcount > 0


def list_keys(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(api_keys.c.name, api_keys.c.created_at, api_keys.c.revoked_at))
                .mappings()]


def active_key_hashes(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(select(api_keys.c.key_hash).where(api_keys.c.revoked_at.is_(None)))}


def ping(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(select(1))
        return True
    except Exception:
        return False
