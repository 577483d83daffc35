"""API-key check: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``.

Only SHA-256 hashes live in the database (``python -m serve keys add NAME`` prints a new key once).
The set of active hashes is cached for ``ttl_s`` (1 s), so a revoked key stops working within a
second on every worker without a database read per request. Keys are never logged.

When the cache goes stale under load, every request that finds it stale awaits the *same* reload
(:meth:`KeyChecker.ensure_fresh`): one thread hop and one database read per second, not one per
request. (Each stale request used to start its own reload and take FastAPI's slow path meanwhile:
~7 % of the server's busy time at 2,000 req/s, measured with py-spy.)
"""
from __future__ import annotations

import asyncio
import hmac
import threading
import time

from sqlalchemy.engine import Engine

from serve.storage import active_key_hashes, hash_key


class KeyChecker:
    def __init__(self, engine: Engine, ttl_s: float = 1.0):
        self.engine, self.ttl_s = engine, ttl_s
        # the active hashes and the verdicts cached for exactly that set, swapped together (the reload runs
        # in a thread: a verdict from the old set must never land in the new set's cache)
        self._current: tuple[set[str], dict[str, bool]] = (set(), {})
        self._loaded = -1e9
        self._lock = threading.Lock()
        self._reload: asyncio.Future | None = None  # the one reload in flight, shared by every stale request

    def stale(self) -> bool:
        """True when the next check would read the database (the async caller then refreshes in a thread,
        so a slow database never blocks the event loop)."""
        return time.monotonic() - self._loaded > self.ttl_s

    def refresh(self) -> None:
        self._active()

    async def ensure_fresh(self) -> None:
        """Reload in a thread when stale (a slow database never blocks the event loop); requests that
        find the cache stale meanwhile wait for that same reload. A failed reload raises in each of
        them, and the next stale request tries again."""
        if not self.stale():
            return
        loop = asyncio.get_running_loop()
        if self._reload is None or self._reload.done() or self._reload.get_loop() is not loop:
            self._reload = asyncio.ensure_future(asyncio.to_thread(self.refresh))
        await asyncio.shield(self._reload)

    def _active(self) -> tuple[set[str], dict[str, bool]]:
        now = time.monotonic()
        if now - self._loaded > self.ttl_s:
            with self._lock:
                if now - self._loaded > self.ttl_s:
                    hashes = active_key_hashes(self.engine)
                    if hashes != self._current[0]:
                        self._current = (hashes, {})  # a revoked key must not stay valid through its verdict
                    self._loaded = now
        return self._current

    def valid(self, key: str | None) -> bool:
        """Whether ``key`` hashes to an active key. The verdict for a key is kept until the set of active
        hashes changes: a client sends the same key with every request, and hashing it each time was
        ~5 us of the fast lane's ~25 us per request (measured). Bounded, so random keys cannot grow it."""
        if not key or len(key) > 256:
            return False
        hashes, verdicts = self._active()
        ok = verdicts.get(key)
        if ok is None:
            h = hash_key(key)
            ok = any(hmac.compare_digest(h, known) for known in hashes)
            if len(verdicts) >= 1024:
                verdicts.clear()
            verdicts[key] = ok
        return ok


def key_from_headers(headers) -> str | None:  # noqa: ANN001
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None
