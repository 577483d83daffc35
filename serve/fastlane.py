"""A fast lane for the hot endpoint, ``POST /v1/fall/predict``, in front of FastAPI.

Why: on 2 cores the service's cost per request was mostly FastAPI/Starlette machinery (request object,
dependency solving, routing, response classes, middleware layers), about as much as the model's own
work per window. The lane serves only the *happy path* of that one route itself - valid key, declared
body size within the limit, a window that parses - with the very same parse functions, checks, batcher
and response body as the FastAPI route. Anything else (no or bad key, missing Content-Length, a body
that does not parse, any other route) goes through the whole FastAPI app unchanged, with the body
already read replayed to it, so every error message, status code and the OpenAPI schema still come
from one place.

:class:`ServiceApp` puts the lane at the app's front door, before FastAPI's own per-request layers
(telemetry check, server-error, body-limit and user middleware: ~20 us per request, measured, when the
lane was a middleware inside them). An exception that escapes the lane is answered 500 by the server.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional

import orjson
from fastapi import FastAPI

from actionpose.errors import ActionposeError
from serve.auth import key_from_headers

_JSON_HEADERS = [(b"content-type", b"application/json")]


class ServiceApp(FastAPI):
    """FastAPI whose ``fast_lane`` (when set) takes ``POST <lane.path>`` before any of FastAPI's layers."""

    fast_lane: Optional["PredictFastLane"] = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        lane = self.fast_lane
        if lane is not None and scope["type"] == "http" and scope["path"] == lane.path and scope["method"] == "POST":
            scope["app"] = self
            return await lane(scope, receive, send)
        return await super().__call__(scope, receive, send)

    def full_app(self, scope: dict, receive: Callable, send: Callable) -> Any:
        """The request through all of FastAPI (the lane's fallback)."""
        return super().__call__(scope, receive, send)


class PredictFastLane:
    def __init__(self, app: ServiceApp, path: str, parse_json: Callable, parse_binary: Callable, max_bytes: int,
                 timeout_s: float):
        self.app, self.path, self.max_bytes, self.timeout_s = app.full_app, path, max_bytes, timeout_s
        self.parse_json, self.parse_binary = parse_json, parse_binary
        self.served = 0  # answered here, not by the FastAPI route (tests check the lane is really taken)
        self._reading: dict[asyncio.Task, float] = {}  # requests still reading their body -> deadline (loop time)
        self._expired: set[asyncio.Task] = set()       # cancelled by the sweep, answered 408
        self._sweep: Optional[asyncio.TimerHandle] = None
        self._sweep_loop: Optional[asyncio.AbstractEventLoop] = None  # the loop the sweep runs on (None: stopped)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        state = scope["app"].state
        # a repeated header counts by its first value, as in Starlette's ``request.headers`` on the FastAPI side
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}
        length = headers.get("content-length", "")
        keys = getattr(state, "keys", None)
        if keys is None or not length.isdigit() or int(length) > self.max_bytes:
            return await self.app(scope, receive, send)  # FastAPI explains the refusal
        try:
            await keys.ensure_fresh()  # once a second, shared by every request waiting on it
        except Exception:  # noqa: BLE001 - the database failed: FastAPI's path answers it as for any route
            return await self.app(scope, receive, send)
        if not keys.valid(key_from_headers(headers)):
            return await self.app(scope, receive, send)  # FastAPI words the 401
        messages: list[dict] = []
        size = 0
        task = asyncio.current_task()
        loop = task.get_loop()  # not get_running_loop(): on Python 3.11 each call is a getpid() system call
        self._reading[task] = loop.time() + self.timeout_s
        if self._sweep_loop is not loop:  # stopped, or the app now runs on another loop (tests, restarts)
            self._start_sweep(loop)
        try:
            while True:
                msg = await receive()
                messages.append(msg)
                if msg["type"] != "http.request":
                    break
                size += len(msg.get("body", b""))
                if size > self.max_bytes or not msg.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()  # our cancel, not the server's: answer it
            # answered here: handing on to FastAPI made the client wait a second timeout (20 s)
            return await _respond(send, 408, orjson.dumps({"detail": body_timeout_detail(self.timeout_s)}))
        finally:
            self._reading.pop(task, None)
        if not messages or messages[-1]["type"] != "http.request" or messages[-1].get("more_body", False) \
                or size > self.max_bytes:
            return await self.app(scope, _replay(messages, receive), send)
        body = messages[0].get("body", b"") if len(messages) == 1 else b"".join(m.get("body", b"") for m in messages)
        try:
            if headers.get("content-type", "").startswith("application/octet-stream"):
                kp, sc, layout, fps = self.parse_binary(body, headers)
            else:
                kp, sc, layout, fps = self.parse_json(body)
        except Exception:  # noqa: BLE001 - the FastAPI route re-parses and words the 4xx
            return await self.app(scope, _replay(messages, receive), send)
        try:
            verdict, advice = await state.batcher.submit(kp, sc, layout, fps)
        except ActionposeError as e:  # same answer as the app's ActionposeError handler
            return await _respond(send, 422, orjson.dumps({"detail": str(e)}))
        self.served += 1
        await _respond(send, 200, predict_reply(verdict, state.detector.config.threshold, len(kp), advice))

    def _start_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Check the deadlines of the requests still reading their body a few times per timeout.

        Why not ``asyncio.timeout`` per request: its timer handle is created and cancelled for every
        request although the body has nearly always arrived with the headers (~10 us a request on this
        2-core VM, 2 % of the service's CPU per request). Here a request only enters and leaves a dict;
        a stalled one is cancelled at most ``timeout_s / 4`` (and 1 s) late."""
        tick = min(1.0, self.timeout_s / 4)
        self._reading = {t: d for t, d in self._reading.items() if t.get_loop() is loop}  # a closed loop's leftovers

        def sweep() -> None:
            if self._sweep_loop is not loop:  # superseded by a sweep on another loop: touch nothing
                return
            now = loop.time()
            for task, deadline in list(self._reading.items()):
                if deadline <= now and task not in self._expired and task.get_loop() is loop:
                    self._expired.add(task)
                    task.cancel()
            if self._reading:
                self._sweep = loop.call_later(tick, sweep)
            else:
                self._sweep = self._sweep_loop = None

        self._sweep_loop = loop
        self._sweep = loop.call_later(tick, sweep)


def body_timeout_detail(seconds: float) -> str:
    """The 408 answer's text, shared by this lane and the app's body guard."""
    return f"request body not received within {seconds:g} s"


def predict_reply(verdict: tuple, threshold: float, frames: int, warnings: list[str]) -> bytes:
    """The predict answer's bytes, shared by this lane and the FastAPI route (so they cannot drift);
    ``verdict`` is ``FallDetector.finish_scan``'s ``Verdict``."""
    prob, is_fall, peak_time, windows, fall_start = verdict
    return orjson.dumps({"prob": prob, "is_fall": is_fall, "threshold": threshold, "frames": frames,
                         "windows": windows, "peak_time": peak_time, "fall_start": fall_start, "warnings": warnings})


def _replay(messages: list[dict], receive: Callable) -> Callable:
    pending = list(messages)

    async def replay() -> dict:
        return pending.pop(0) if pending else await receive()

    return replay


async def _respond(send: Callable, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
