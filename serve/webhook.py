"""Pushing stored fall events to a webhook: each one at least once, in order, signed, by one worker at a time.

Why: the stream answer tells the camera client about a fall, but the one who must act is often elsewhere
(a carer's app, a nurse-call system). Polling ``GET /v1/events`` works, yet a push is what such a system
expects, and a push must not be lost: an event is sent only after it is stored (the transactional-outbox
pattern, with the events table itself as the outbox), it is marked sent only after a 2xx answer, and a failed send is retried with backoff (0.5 s doubling to 60 s) for as long as it takes, so a
receiver that is down or misconfigured delays alerts but never drops one. Later events wait behind it (their
order is kept), except behind an event the receiver keeps failing while it takes the next one: that event is
parked and retried on its own, so it cannot hold back every later alert. A send that reached the receiver just
before a crash is sent again after the restart: the receiver drops repeats by the ``X-Actionpose-Event-Id``
header (the event's id).

Each request is signed like Stripe's and GitHub's webhooks: ``X-Actionpose-Signature: sha256=HEX`` is the
HMAC-SHA256 of ``"{timestamp}.{body}"`` under ``ACTIONPOSE_WEBHOOK_SECRET``, with ``X-Actionpose-Timestamp``
(UNIX seconds) so a receiver can refuse old replays. :func:`verify` is the receiver's check.

Several workers or servers on one database: each runs a :class:`WebhookSender`; a lease in the database
(``webhook_state``) lets one deliver, and another takes over ``LEASE_S`` after it stops renewing.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import socket
import time
import uuid
from typing import Any, Optional
from urllib.parse import urlsplit

from serve.storage import webhook_claim, webhook_park, webhook_pending, webhook_release, webhook_result

log = logging.getLogger("serve.webhook")

LEASE_S = 15.0      # a worker that stops renewing loses the delivery lease after this long (or 3 x the timeout)
POLL_S = 0.5        # how often pending events are looked for (a worker that stored one wakes its sender at once)
BACKOFF_MAX_S = 60.0
PROBE_AFTER = 3     # the oldest event's failures in a row before the next event is tried to tell event from receiver


def backoff(attempts: int) -> float:
    """0.5 s after the first failure, doubling to :data:`BACKOFF_MAX_S`."""
    return min(BACKOFF_MAX_S, 0.5 * 2 ** (max(attempts, 1) - 1))


def shown_url(url: str) -> str:
    """Scheme, host and port only, for logs and the status endpoint: user info, query and even the path can
    hold the receiver's token (a Slack or Teams incoming-webhook URL is a secret path)."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname or ''}{f':{u.port}' if u.port else ''}/" + ("..." if u.path.strip("/") else "")


def check_url(url: str) -> Optional[str]:
    """Why ``url`` cannot be a webhook, or None. Spaces and control characters are refused here: a URL read
    from a file with its newline started a server that then failed every send."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return "holds a space, newline or other control character (a value read from a file with its newline?)"
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError as e:
        return f"not a URL ({e})"
    if u.scheme not in ("http", "https") or not u.hostname:
        return "must be an http:// or https:// URL with a host"
    if port == 0:
        return "port 0 cannot be reached"
    return None


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, headers: Any, body: bytes, tolerance_s: float = 300.0, now: Optional[float] = None) -> bool:
    """The receiver's check: the signature matches and the timestamp is within ``tolerance_s`` of ``now``."""
    ts = headers.get("X-Actionpose-Timestamp", "")
    try:
        fresh = abs((now if now is not None else time.time()) - float(ts)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(signature(secret, ts, body), headers.get("X-Actionpose-Signature", ""))


def event_body(row: dict[str, Any]) -> bytes:
    """The JSON sent for one stored event: the fields of ``GET /v1/events``, plus ``type``."""
    keys = ("id", "session_id", "track_id", "kind", "start_time", "detected_time", "confidence", "created_at")
    return json.dumps({"type": "fall_event", **{k: row[k] for k in keys}}, separators=(",", ":")).encode()


class WebhookSender:
    """One per worker: ``start()``, ``wake()`` when this worker stored events, ``await stop()``."""

    def __init__(self, engine: Any, url: str, secret: str, timeout_s: float = 5.0):
        self.engine, self.url, self.secret, self.timeout_s = engine, url, secret, timeout_s
        # the lease outlasts three sends: a receiver slow to answer (up to the timeout) cannot let it lapse
        # mid-send, which had two workers take it from each other and send one event every 15 s for ever
        self.lease_s = max(LEASE_S, 3 * timeout_s)
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._task: Optional[asyncio.Task] = None
        self._client: Any = None

    def start(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False,
                                         headers={"User-Agent": "actionpose-webhook/1.0"})
        self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        from serve.silent import cancel_task

        await cancel_task(self._task)
        if self._client is not None:
            await self._client.aclose()
        try:  # a graceful stop hands the lease on at once (after a kill -9 it lapses after LEASE_S)
            await asyncio.to_thread(webhook_release, self.engine, self.owner)
        except Exception as e:  # noqa: BLE001 - shutting down: the lease lapses by itself
            log.warning("webhook: could not release the delivery lease (%s)", str(e)[:200])

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a database hiccup must not end delivery for the worker's life
                log.warning("webhook: delivery loop error (%s: %s); retrying", type(e).__name__, str(e)[:200])
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def step(self) -> int:
        """Deliver what is due while holding the lease; returns the number of events delivered.

        A failed send stops the step and backs off, so events keep their order while the receiver is down.
        Once the oldest event has failed :data:`PROBE_AFTER` times in a row, the event after it is tried too:
        if the receiver takes that one, the failure belongs to the event, not the receiver, and the event is
        parked (retried on its own backoff, never dropped) instead of holding back every later alert."""
        state = await asyncio.to_thread(webhook_claim, self.engine, self.owner, self.lease_s)
        if state is None or time.time() < state["next_attempt_at"]:
            return 0
        sent, attempts, claimed = 0, int(state["attempts"]), time.monotonic()
        held: Optional[tuple[dict[str, Any], str, int]] = None  # a failed event waiting for the next one's answer
        for row in await asyncio.to_thread(webhook_pending, self.engine, int(state["start_after_id"]), 50):
            if time.monotonic() - claimed > self.lease_s / 3:  # renewed between sends: the lease outlasts any one
                # send (lease_s >= 3 x the timeout), so it cannot lapse mid-batch and another worker send again
                if await asyncio.to_thread(webhook_claim, self.engine, self.owner, self.lease_s) is None:
                    return sent
                claimed = time.monotonic()
            error = await self._send(row)
            if error is None:
                await asyncio.to_thread(webhook_result, self.engine, self.owner, int(row["id"]), None)
                sent, attempts = sent + 1, 0
                if held is not None:  # the receiver takes later events: set the failing one aside
                    await self._park(*held)
                    held = None
                continue
            parked = row.get("parked_attempts")
            tries = (int(parked) if parked is not None else attempts) + 1
            if held is None and (parked is not None or tries >= PROBE_AFTER):
                held = (row, error, tries)  # ask the next event whether the receiver takes anything
                continue
            # two failures in a row (or a fresh oldest event failing): the receiver is failing, everything waits
            for r, e, n in ([held] if held is not None else []) + [(row, error, tries)]:
                if r.get("parked_attempts") is not None:
                    await self._park(r, e, n)  # a parked event's own schedule goes on as well
            await self._fail(attempts + 1, *(held[:2] if held is not None else (row, error)))
            return sent
        if held is not None:  # nothing after it to ask
            if held[0].get("parked_attempts") is not None:
                await self._park(*held)  # a parked event failing alone backs off on its own, not the receiver
            else:
                await self._fail(attempts + 1, held[0], held[1])
        return sent

    async def _park(self, row: dict[str, Any], error: str, tries: int) -> None:
        retry_in = backoff(tries)
        await asyncio.to_thread(webhook_park, self.engine, self.owner, int(row["id"]), tries, error, retry_in)
        log.warning("webhook: event %s to %s failed (%s) while the receiver took later events; attempt %d, set "
                    "aside, retry in %.1f s", row["id"], shown_url(self.url), error, tries, retry_in)

    async def _fail(self, attempts: int, row: dict[str, Any], error: str) -> None:
        """The receiver failed: every send waits ``backoff(attempts)`` (order kept)."""
        retry_in = backoff(attempts)
        await asyncio.to_thread(webhook_result, self.engine, self.owner, int(row["id"]), error, retry_in)
        log.warning("webhook: event %s to %s failed (%s); attempt %d, retry in %.1f s", row["id"],
                    shown_url(self.url), error, attempts, retry_in)

    async def _send(self, row: dict[str, Any]) -> Optional[str]:
        """None when the receiver answered 2xx, else why not (one line)."""
        import httpx

        body = event_body(row)
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Actionpose-Event-Id": str(row["id"]),
                   "X-Actionpose-Timestamp": ts, "X-Actionpose-Signature": signature(self.secret, ts, body)}
        try:
            r = await self._client.post(self.url, content=body, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as e:  # InvalidURL is no HTTPError
            return f"{type(e).__name__}: {str(e)[:150] or 'no answer'}"
        if 200 <= r.status_code < 300:
            return None
        return f"HTTP {r.status_code}"
