"""Durable storage (SQLAlchemy Core): fall events, streaming sessions' state and hashed API keys.

SQLite in WAL mode with ``synchronous=FULL`` by default; any SQLAlchemy URL (``postgresql+psycopg://``)
for deployments. An event is committed before the HTTP response that reports it is sent, and the
unique key ``(session_id, track_id, start_ms)`` makes a re-sent stream idempotent: the same fall
is stored once, and the existing row is returned. A streaming session's detector state is saved in
the same transaction as the events it produced (compare-and-swap on a version number), so sessions
survive restarts and any worker can serve any session.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from sqlalchemy import (BigInteger, Column, Float, Integer, LargeBinary, MetaData, String, Table, UniqueConstraint,
                        create_engine, delete, event, func, or_, select, update)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError

from actionpose.errors import ActionposeError

metadata = MetaData()
events = Table(
    "fall_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(128), nullable=False, index=True),
    Column("track_id", String(64), nullable=False),
    Column("start_ms", BigInteger, nullable=False),  # dedup key (_start_key); stream times may be UNIX seconds
    Column("start_time", Float, nullable=False),
    Column("detected_time", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("created_at", Float, nullable=False, index=True),
    Column("kind", String(16), nullable=False, server_default="fall"),  # fall / still_down / recovered (FallEvent)
    UniqueConstraint("session_id", "track_id", "start_ms", name="uq_event"),
)
sessions = Table(
    "stream_sessions", metadata,
    Column("session_id", String(128), primary_key=True),
    Column("state", LargeBinary, nullable=False),    # FallDetector.state_bytes()
    Column("version", Integer, nullable=False),      # +1 per saved request: concurrent writers cannot both win
    Column("updated_at", Float, nullable=False, index=True),
)
session_watch = Table(
    # a session with a fallen person whose still_down is pending: when (server time) it falls due if the camera
    # goes silent, so the server raises it without frames (serve/silent.py). A table of its own, not a column of
    # stream_sessions: databases made before it get it from create_all, with no migration
    "session_watch", metadata,
    Column("session_id", String(128), primary_key=True),
    Column("due_at", Float, nullable=False, index=True),
)
webhook_state = Table(
    "webhook_state", metadata,  # one row: where event delivery to ACTIONPOSE_WEBHOOK_URL stands (serve/webhook.py)
    Column("name", String(32), primary_key=True),
    Column("start_after_id", BigInteger, nullable=False),  # events up to this id predate the webhook: not sent
    Column("last_event_id", BigInteger, nullable=True),   # the event delivered last (for the status)
    Column("owner", String(64), nullable=True),           # the worker that delivers now (a lease, not a lock)
    Column("lease_until", Float, nullable=False),
    Column("attempts", Integer, nullable=False),          # failed tries of the next event
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", String(300), nullable=True),
    Column("delivered", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)
webhook_sent = Table(
    # one row per delivered event. Why not a cursor ("every id up to N was sent"): PostgreSQL hands out ids at
    # insert and rows appear at commit, so an event with a lower id can become visible after a higher one was
    # sent, and a cursor past it would skip it for good
    "webhook_sent", metadata,
    Column("event_id", BigInteger, primary_key=True),
    Column("sent_at", Float, nullable=False),
)
webhook_parked = Table(
    # an event the receiver refused several times while it took the one after it: retried on its own schedule,
    # so one event the receiver cannot take does not hold back every later alert (serve/webhook.py)
    "webhook_parked", metadata,
    Column("event_id", BigInteger, primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", String(300), nullable=True),
    Column("updated_at", Float, nullable=False),
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
    """The engine with its tables created; a URL that cannot work is one :class:`ActionposeError` naming
    ``ACTIONPOSE_DB_URL`` (password hidden) and the reason, not a driver traceback at worker start-up."""
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise ActionposeError("ACTIONPOSE_DB_URL: not a database URL (value not shown: it may hold a password); use sqlite:///PATH or "
                              "postgresql+psycopg://USER:PASSWORD@HOST/DB") from None
    if url.startswith("sqlite:///"):
        for parent in Path(url.removeprefix("sqlite:///")).parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ActionposeError(f"ACTIONPOSE_DB_URL={shown}: {parent} is a file, not a folder")
                break
    try:
        return _open_db(url)
    except OSError as e:
        raise ActionposeError(f"ACTIONPOSE_DB_URL={shown}: cannot create the database file's folder "
                              f"({e.strerror or e})") from None
    except (ImportError, NoSuchModuleError) as e:
        raise ActionposeError(f"ACTIONPOSE_DB_URL={shown}: no driver for this database ({e}); use sqlite:///PATH "
                              "or postgresql+psycopg://... (pip install 'psycopg[binary]')") from None
    except SQLAlchemyError as e:
        first = str(getattr(e, "orig", None) or e).splitlines()[0][:200]
        raise ActionposeError(f"ACTIONPOSE_DB_URL={shown}: cannot open the database ({first})") from None


def _open_db(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():  # health events and key hashes: owner-only (SQLite gives -wal/-shm the same mode)
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
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
    _add_kind_column(engine)
    return engine


def _add_kind_column(engine: Engine) -> None:
    """A database made before events had a ``kind`` gets the column (its rows are falls). Several workers
    may start at once: the one that loses the race finds the column there."""
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    if "kind" in {c["name"] for c in inspect(engine).get_columns("fall_events")}:
        return
    try:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE fall_events ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'fall'"))
    except (OperationalError, ProgrammingError):
        if "kind" not in {c["name"] for c in inspect(engine).get_columns("fall_events")}:
            raise


def store_events(engine: Engine, session_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert events (one transaction, committed on return); duplicates return the stored row."""
    with engine.begin() as conn:
        return _store_events(conn, session_id, rows, time.time())


def _store_events(conn: Any, session_id: str, rows: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        key = {"session_id": session_id, "track_id": str(r["track_id"]), "start_ms": _start_key(r)}
        stored = select(events).where(*(events.c[k] == v for k, v in key.items()))
        existing = conn.execute(stored).mappings().first()
        if existing is None:
            try:
                with conn.begin_nested():
                    conn.execute(events.insert().values(**key, kind=r.get("kind", "fall"),
                                                        start_time=float(r["start_time"]),
                                                        detected_time=float(r["detected_time"]),
                                                        confidence=float(r["confidence"]), created_at=now))
            except IntegrityError:  # a concurrent request stored it first
                pass
            existing = conn.execute(stored).mappings().first()
        out.append(dict(existing))
    return out


_FOLLOW_UP_CODE = {"still_down": 1, "recovered": 2}


def _start_key(row: dict[str, Any]) -> int:
    """The ``start_ms`` of an event's unique key. A fall's is its start in ms (>= 0, as ever); a follow-up's is
    negative, ``-(2 * ms + code)``, so it can never take the key of a fall, nor still_down the one of recovered,
    and the unique constraint stays the same in databases made before follow-ups existed. Why it matters: a key
    taken by another event made the insert return that event instead, which for a fall would lose the alarm."""
    ms = int(round(float(row["start_time"]) * 1000))
    kind = row.get("kind", "fall")
    return ms if kind == "fall" else -(2 * ms + _FOLLOW_UP_CODE[kind])


def load_session(engine: Engine, session_id: str) -> tuple[bytes | None, int, float | None]:
    """A session's saved detector state, its version and when it was saved; ``(None, 0, None)`` for a new
    session."""
    with engine.connect() as conn:
        row = conn.execute(select(sessions.c.state, sessions.c.version, sessions.c.updated_at)
                           .where(sessions.c.session_id == session_id)).first()
    return (None, 0, None) if row is None else (bytes(row[0]), int(row[1]), float(row[2]))


def save_session(engine: Engine, session_id: str, state: bytes, version: int, rows: list[dict[str, Any]],
                 silent_due: float | None = None, at: float | None = None,
                 had_watch: bool = True) -> list[dict[str, Any]] | None:
    """Store a request's events and the session state it left, in one transaction, if the session is
    still at ``version`` (what the request started from). None when another request saved the session
    in between: nothing is written and the caller re-runs its frames on the newer state.

    ``silent_due``: the server time at which a pending ``still_down`` falls due if no frame comes (None: none
    pending). ``at``: the session's new ``updated_at`` (default now; the silent-camera check keeps the time of the
    last frames, which its stream-time estimate counts from). ``had_watch``: False when the state the caller
    started from had no pending ``still_down`` either, so there is no watch row to delete (a stream request
    of a session without a fall, the common case, writes nothing more)."""
    now = time.time()
    at = now if at is None else at
    with engine.begin() as conn:
        if version == 0:
            try:
                with conn.begin_nested():
                    conn.execute(sessions.insert().values(session_id=session_id, state=state, version=1, updated_at=at))
            except IntegrityError:
                return None
        elif conn.execute(update(sessions).where(sessions.c.session_id == session_id, sessions.c.version == version)
                          .values(state=state, version=version + 1, updated_at=at)).rowcount != 1:
            return None
        if silent_due is None:
            if had_watch:
                conn.execute(delete(session_watch).where(session_watch.c.session_id == session_id))
        elif conn.execute(update(session_watch).where(session_watch.c.session_id == session_id)
                          .values(due_at=silent_due)).rowcount == 0:
            conn.execute(session_watch.insert().values(session_id=session_id, due_at=silent_due))
        return _store_events(conn, session_id, rows, now)


def silent_sessions(engine: Engine, due_by: float, limit: int = 100) -> list[str]:
    """Sessions whose pending ``still_down`` was due by server time ``due_by`` (no frames came to raise it)."""
    with engine.connect() as conn:
        return list(conn.execute(select(session_watch.c.session_id).where(session_watch.c.due_at <= due_by)
                                 .order_by(session_watch.c.due_at).limit(limit)).scalars())


def delete_session(engine: Engine, session_id: str) -> bool:
    """Delete one session's saved state (its events stay in the log); False when it had none."""
    with engine.begin() as conn:
        conn.execute(delete(session_watch).where(session_watch.c.session_id == session_id))
        return conn.execute(delete(sessions).where(sessions.c.session_id == session_id)).rowcount > 0


def forget_sessions(engine: Engine, idle_s: float) -> int:
    """Delete the state of sessions idle for more than ``idle_s`` seconds (their events stay). A session with a
    pending ``still_down`` (a camera silent after a fall) is kept until the silent-camera check has raised it:
    deleting it lost the escalation whenever ``idle_s`` was shorter than ``long_lie_s``."""
    with engine.begin() as conn:
        n = conn.execute(delete(sessions).where(sessions.c.updated_at < time.time() - idle_s,
                                                sessions.c.session_id.not_in(select(session_watch.c.session_id)))
                         ).rowcount
        conn.execute(delete(session_watch).where(session_watch.c.session_id.not_in(select(sessions.c.session_id))))
        return n


def query_events(engine: Engine, session_id: str | None, since: float | None, until: float | None,
                 limit: int, after_id: int | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    q = select(events).order_by(events.c.id).limit(limit)
    if session_id is not None:
        q = q.where(events.c.session_id == session_id)
    if kind is not None:
        q = q.where(events.c.kind == kind)
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
    if not re.fullmatch(r"[A-Za-z0-9._:@-]{1,64}", name or ""):
        # a 300-character name overflowed the column on PostgreSQL; one with a newline broke `keys list`
        raise ActionposeError(f"key name {name!r}: use 1-64 letters, digits or . _ : @ -")
    key = "ap_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        # a revoked key's name can be given to a new key (rotation): the old row keeps its history under a
        # suffixed name; an *active* key of that name still makes the insert fail (names are unique)
        for (rid, revoked) in conn.execute(select(api_keys.c.id, api_keys.c.revoked_at).where(
                api_keys.c.name == name, api_keys.c.revoked_at.is_not(None))):
            conn.execute(api_keys.update().where(api_keys.c.id == rid)
                         .values(name=f"{name[:90]}~revoked-{int(revoked)}-{rid}"))
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


WEBHOOK = "default"


def webhook_claim(engine: Engine, owner: str, lease_s: float) -> dict[str, Any] | None:
    """The delivery state if ``owner`` holds (or now takes) the delivery lease, else None.

    One worker (of one or many servers on the database) delivers at a time, so events go out once and in
    order; a worker that dies loses the lease after ``lease_s`` and another one carries on with what is not
    marked sent. The first claim ever records the newest stored event: history from before a webhook was
    configured is not sent."""
    now = time.time()
    with engine.begin() as conn:
        row = conn.execute(select(webhook_state).where(webhook_state.c.name == WEBHOOK)).mappings().first()
        if row is None:
            newest = conn.execute(select(func.max(events.c.id))).scalar() or 0
            try:
                with conn.begin_nested():
                    conn.execute(webhook_state.insert().values(
                        name=WEBHOOK, start_after_id=newest, last_event_id=None, owner=owner,
                        lease_until=now + lease_s, attempts=0, next_attempt_at=0.0, last_error=None, delivered=0,
                        updated_at=now))
            except IntegrityError:  # another worker made the row first: it holds the lease
                return None
        elif row["owner"] != owner and row["lease_until"] > now:
            return None
        elif conn.execute(update(webhook_state).where(
                webhook_state.c.name == WEBHOOK,
                or_(webhook_state.c.owner == owner, webhook_state.c.lease_until <= now, webhook_state.c.owner.is_(None)))
                .values(owner=owner, lease_until=now + lease_s)).rowcount != 1:
            return None
        return dict(conn.execute(select(webhook_state).where(webhook_state.c.name == WEBHOOK)).mappings().first())


def _unsent(start_after_id: int) -> Any:
    return (select(events).outerjoin(webhook_sent, webhook_sent.c.event_id == events.c.id)
            .where(events.c.id > start_after_id, webhook_sent.c.event_id.is_(None)))


def webhook_pending(engine: Engine, start_after_id: int, limit: int, now: float | None = None) -> list[dict[str, Any]]:
    """Stored events not yet delivered (after the webhook's start) and due, oldest first: a parked event is due
    when its own retry time has come. Each row has ``parked_attempts`` (None: not parked)."""
    now = time.time() if now is None else now
    q = (_unsent(start_after_id).add_columns(webhook_parked.c.attempts.label("parked_attempts"))
         .outerjoin(webhook_parked, webhook_parked.c.event_id == events.c.id)
         .where(or_(webhook_parked.c.event_id.is_(None), webhook_parked.c.next_attempt_at <= now)))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q.order_by(events.c.id).limit(limit)).mappings()]


def webhook_park(engine: Engine, owner: str, event_id: int, attempts: int, error: str, retry_in: float) -> None:
    """Set one event aside to be retried on its own after ``retry_in`` (if ``owner`` holds the lease): the
    receiver failed it ``attempts`` times while taking the event after it."""
    now = time.time()
    values = dict(attempts=attempts, next_attempt_at=now + retry_in, last_error=error[:300], updated_at=now)
    with engine.begin() as conn:
        holder = conn.execute(select(webhook_state.c.owner).where(webhook_state.c.name == WEBHOOK)).scalar()
        if holder != owner:
            return
        if conn.execute(update(webhook_parked).where(webhook_parked.c.event_id == event_id)
                        .values(**values)).rowcount == 0:
            conn.execute(webhook_parked.insert().values(event_id=event_id, **values))


def webhook_result(engine: Engine, owner: str, event_id: int, error: str | None, retry_in: float = 0.0) -> None:
    """Record one try. A delivery is marked sent whoever holds the lease now (the receiver has it: sending it
    again would only repeat it); a failure counts an attempt and sets when to retry, if ``owner`` holds the lease."""
    now = time.time()
    state = (webhook_state.c.name == WEBHOOK, webhook_state.c.owner == owner)
    with engine.begin() as conn:
        if error is None:
            try:
                with conn.begin_nested():
                    conn.execute(webhook_sent.insert().values(event_id=event_id, sent_at=now))
            except IntegrityError:  # another worker recorded it first
                return
            conn.execute(delete(webhook_parked).where(webhook_parked.c.event_id == event_id))
            conn.execute(update(webhook_state).where(webhook_state.c.name == WEBHOOK).values(
                last_event_id=event_id, delivered=webhook_state.c.delivered + 1, updated_at=now))
            conn.execute(update(webhook_state).where(*state).values(attempts=0, next_attempt_at=0.0, last_error=None))
        else:
            conn.execute(update(webhook_state).where(*state).values(
                attempts=webhook_state.c.attempts + 1, next_attempt_at=now + retry_in, last_error=error[:300],
                updated_at=now))


def webhook_release(engine: Engine, owner: str) -> None:
    """Give the lease up (a worker shutting down), so another worker or a restarted server carries on at once."""
    with engine.begin() as conn:
        conn.execute(update(webhook_state).where(webhook_state.c.name == WEBHOOK, webhook_state.c.owner == owner)
                     .values(owner=None, lease_until=0.0))


def metrics_snapshot(engine: Engine) -> dict[str, Any]:
    """What ``GET /metrics`` reports, read from the database at scrape time, so every worker answers the same
    numbers and no request pays for counting: stored events per kind, sessions with saved state, and the
    webhook's delivery state (None without one)."""
    with engine.connect() as conn:
        by_kind = dict(conn.execute(select(events.c.kind, func.count()).group_by(events.c.kind)).all())
        n_sessions = conn.execute(select(func.count()).select_from(sessions)).scalar()
    return {"events": {str(k): int(v) for k, v in by_kind.items()}, "sessions": int(n_sessions or 0),
            "webhook": webhook_status(engine)}


def webhook_status(engine: Engine, n_parked: int = 10) -> dict[str, Any] | None:
    """The stored delivery state, how many events wait, and the oldest events set aside after the receiver
    kept failing them (``parked``: id, attempts, last_error, next_attempt_at); None before the first claim."""
    with engine.connect() as conn:
        row = conn.execute(select(webhook_state).where(webhook_state.c.name == WEBHOOK)).mappings().first()
        if row is None:
            return None
        pending = conn.execute(select(func.count()).select_from(_unsent(row["start_after_id"]).subquery())).scalar()
        unsent = _unsent(row["start_after_id"]).with_only_columns(events.c.id).subquery()
        parked_q = select(webhook_parked).where(webhook_parked.c.event_id.in_(select(unsent.c.id)))
        n = conn.execute(select(func.count()).select_from(parked_q.subquery())).scalar()
        parked = [{"id": int(r["event_id"]), "attempts": int(r["attempts"]), "last_error": r["last_error"],
                   "next_attempt_at": float(r["next_attempt_at"])}
                  for r in conn.execute(parked_q.order_by(webhook_parked.c.event_id).limit(n_parked)).mappings()]
    return {**dict(row), "pending": int(pending), "parked_count": int(n or 0), "parked": parked}
