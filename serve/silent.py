"""Escalating a fall whose camera went silent: ``still_down`` on the server's clock.

Why: a stream's follow-ups are judged when frames come, so a camera that stopped sending after a fall (unplugged,
its app killed, the network down, its phone's battery flat) left the person on the floor without the
``still_down`` escalation until frames came again, perhaps never. Each saved session with a pending
``still_down`` has a due time in the database (``session_watch``: the stream time it falls due, carried onto the
server's clock from the session's last frames). A stream whose frames keep coming raises it itself; once it is
``grace_s`` overdue and no request has raised it, a worker loads the session, moves its detector's clock on by the
server time that passed since its last frames (:meth:`FallDetector.tick`), and stores the ``still_down`` with the
session's state in one transaction, as a stream request would: it reaches ``GET /v1/events``, the metrics and the
webhook. Every worker checks; the session's version check lets one of them store it, and the events' unique key
keeps it once. Frames that come later are taken as before (``recovered`` still follows a recovery).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Optional

from serve.storage import load_session, save_session, silent_sessions

log = logging.getLogger("serve.silent")

POLL_S = 1.0


async def cancel_task(task: Optional[asyncio.Task]) -> None:
    """Cancel a worker's background loop and wait until it has stopped (the webhook sender's too)."""
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


def server_due(det: Any, now: float) -> Optional[float]:
    """When (server time) the detector's next ``still_down`` falls due if no frame comes after its last one at
    ``now``; None when none is pending."""
    due = det.silent_due()
    return None if due is None or det.last_time is None else now + (due - det.last_time)


class SilentWatch:
    """One per worker: ``start()``, ``await stop()``; ``check()`` is one pass (tests call it directly)."""

    def __init__(self, engine: Any, restore: Callable[[str, Optional[bytes]], Any], lock: Callable[[str], Any],
                 grace_s: float, stored: Callable[[], None] = lambda: None):
        self.engine, self.restore, self.lock, self.grace_s, self.stored = engine, restore, lock, grace_s, stored
        self._task: Optional[asyncio.Task] = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_task(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                if await asyncio.to_thread(self.check):
                    self.stored()
            except Exception as e:  # noqa: BLE001 - a database hiccup must not end the checks for the worker's life
                log.warning("silent-camera check failed (%s: %s); retrying", type(e).__name__, str(e)[:200])

    def check(self, now: Optional[float] = None) -> list[dict[str, Any]]:
        """Raise what is overdue in every silent session; returns the stored events."""
        now = time.time() if now is None else now
        out: list[dict[str, Any]] = []
        for sid in silent_sessions(self.engine, now - self.grace_s):
            with self.lock(sid):  # this worker's stream requests for the session wait (other workers: the version)
                saved, version, updated = load_session(self.engine, sid)
                if saved is None:
                    continue
                det = self.restore(sid, saved)
                if det.last_time is None:  # unreadable state: nothing to escalate; the watch row goes
                    save_session(self.engine, sid, saved, version, [], None, at=updated)
                    continue
                stream_now = det.last_time + max(0.0, now - updated)
                found = [ev.to_dict() for ev in det.tick(stream_now)]
                rows = save_session(self.engine, sid, det.state_bytes(), version, found, server_due(det, updated),
                                    at=updated)  # updated_at stays the last frames' time: the clock counts from it
                if rows:
                    log.warning("session %s: no frames for %.0f s after a fall: %s raised on the server's clock",
                                sid, now - updated, ", ".join(f"{r['kind']} (track {r['track_id']})" for r in rows))
                    out += rows
        return out
