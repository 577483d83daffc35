"""API-key check: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``.

Only SHA-256 hashes live in the database (``python -m serve keys add NAME`` prints a new key once).
The set of active hashes is cached for ``ttl_s`` (1 s), so a revoked key stops working within a
second on every worker without a database read per request. Keys are never logged.
"""
from __future__ import annotations

import hmac
import threading
import time

from sqlalchemy.engine import Engine

from serve.storage import active_key_hashes, hash_key


class KeyChecker:
    def __init__(self, engine: Engine, ttl_s: float = 1.0):
        self.engine, self.ttl_s = engine, ttl_s
        self._hashes: set[str] = set()
        self._loaded = -1e9
        self._lock = threading.Lock()

    def stale(self) -> bool:
        """True when the next check would read the database (the async caller then refreshes in a thread,
        so a slow database never blocks the event loop)."""
        return time.monotonic() - self._loaded > self.ttl_s

    def refresh(self) -> None:
        self._active()

    def _active(self) -> set[str]:
        now = time.monotonic()
        if now - self._loaded > self.ttl_s:
            with self._lock:
                if now - self._loaded > self.ttl_s:
                    self._hashes, self._loaded = active_key_hashes(self.engine), now
        return self._hashes

    def valid(self, key: str | None) -> bool:
        if not key or len(key) > 256:
            return False
        h = hash_key(key)
        return any(hmac.compare_digest(h, known) for known in self._active())


def key_from_headers(headers) -> str | None:  # noqa: ANN001
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None
