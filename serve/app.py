"""FastAPI app: fall prediction, streaming fall events, durable event log.

Start (one command, loopback only):  ``python -m serve --host 127.0.0.1 --port 8000``
(or ``uvicorn serve.app:app --host 127.0.0.1 --port 8000``). Settings: :mod:`serve.settings`.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import asynccontextmanager
from typing import Any, Optional

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Security
from fastapi.exception_handlers import http_exception_handler
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
import pydantic_core
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from actionpose.errors import ActionposeError
from actionpose.inference.fall import score_channel
from actionpose.inference.fall_prep import input_advice, person_frames
from actionpose.skeleton import get_layout
from serve.auth import KeyChecker, key_from_headers
from serve.batching import MicroBatcher
from serve.fastlane import PredictFastLane, ServiceApp, body_timeout_detail, predict_reply
from serve.schemas import (ERROR_RESPONSES, SESSION_RESPONSES, STREAM_RESPONSES, EventKind, EventOut, EventsResponse,
                           PredictRequest, PredictResponse, SessionOut, StreamRequest, StreamResponse, WebhookOut)
from serve.settings import Settings, plain_number
from serve.metrics import prometheus_text
from serve.silent import SilentWatch, server_due
from serve.storage import (delete_session, forget_sessions, load_session, metrics_snapshot, open_db, ping,
                           query_events, save_session)
from serve.window_json import window_from_json

log = logging.getLogger("serve")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access[_-]?token|password)=)[^&\s]*")


class _RedactQuerySecrets(logging.Filter):
    """Keys belong in headers, but a client that puts one in the URL (``?api_key=...``) got its key written
    to the access log in full; the value is replaced before the line is formatted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            args = list(record.args)
            args[2] = _SECRET_QUERY.sub(r"\1***", args[2])
            record.args = tuple(args)
        return True


logging.getLogger("uvicorn.access").addFilter(_RedactQuerySecrets())
WORKER_ID = uuid.uuid4().hex[:8]  # random per worker process: names the worker without exposing its pid
_EVENT_FILTERS = {"session_id", "kind", "since", "until", "after_id", "limit"}
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (python -m serve keys add NAME)")
_BEARER = HTTPBearer(auto_error=False, description="the same API key as `Authorization: Bearer <key>`")
_FUTURE_SLACK_S = 600.0  # stream timestamps may run this far ahead of the server clock (camera clock skew)
SESSION_ID = Path(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$",
                  description="client-chosen stream id (letters, digits, . _ : -)")


class _TooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body larger than {limit} bytes")


class _BodyTimeout(HTTPException):
    def __init__(self, seconds: float):
        super().__init__(408, body_timeout_detail(seconds))


class BodyGuard:
    """ASGI middleware: refuse bodies over the limit (by Content-Length up front, and by counting) and
    clients that stall mid-body (slow-loris) before any of it reaches the app."""

    def __init__(self, app, max_bytes: int, timeout_s: float):  # noqa: ANN001
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                return await JSONResponse({"detail": "invalid Content-Length header"}, 400)(scope, receive, send)
            if too_big:
                return await JSONResponse({"detail": str(_TooLarge(self.max_bytes).detail)}, 413)(scope, receive, send)
        state = {"received": 0, "done": False}

        async def guarded_receive():
            if state["done"]:
                return await receive()
            try:
                async with asyncio.timeout(self.timeout_s):  # no extra task per chunk (wait_for made one)
                    msg = await receive()
            except TimeoutError:
                raise _BodyTimeout(self.timeout_s) from None
            if msg["type"] == "http.request":
                state["received"] += len(msg.get("body", b""))
                if state["received"] > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
                state["done"] = not msg.get("more_body", False)
            return msg

        await self.app(scope, guarded_receive, send)


class SessionLocks:
    """One lock per stream session in this worker (LRU-bounded), so one worker's requests for a session
    run in order; across workers the database's version check keeps them apart."""

    def __init__(self, max_sessions: int):
        self.max = max_sessions
        self._d: OrderedDict[str, threading.Lock] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sid: str) -> threading.Lock:
        with self._lock:
            if sid not in self._d:
                self._d[sid] = threading.Lock()
                while len(self._d) > self.max:
                    self._d.popitem(last=False)
            self._d.move_to_end(sid)
            return self._d[sid]


def _restore(detector: Any, session_id: str, saved: Optional[bytes]) -> Any:
    """A streaming detector for a session, from its saved state; an unreadable state starts the session
    afresh (logged) rather than locking a camera out."""
    from actionpose.inference.fall import FallDetector

    det = FallDetector(detector.scorer, detector.config)
    if saved is not None:
        try:
            det.load_state(saved)
        except ActionposeError as e:
            log.warning("session %s: %s; starting it with empty state", session_id, e)
    return det


def _warm_up(detector: Any) -> None:
    """Pay first-use costs at start-up, not on the first alert: ONNX Runtime plans its buffers on its first
    runs, and the first fall-start estimate (it used to import scipy.signal then: ~0.8 s, seen as the first
    stream requests' p99)."""
    from actionpose.inference.fall import FallDetector, hip_drop_start

    hip_drop_start(np.zeros((8, 13, 2), np.float32), np.arange(8) / 30)
    det = FallDetector(detector.scorer, detector.config)
    person = np.array([[320, 100]] + [[300 + 10 * (j % 2), 150 + 25 * j] for j in range(12)], np.float32)
    det.update_many([({0: person}, i / 30) for i in range(45)], layout="body13")


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _add_docs_page(app: FastAPI) -> None:
    """``GET /docs`` (Swagger UI) and ``GET /redoc`` with their scripts served by this process (the files
    that the ``fastapi-offline`` package ships), not from a CDN as FastAPI's default pages do: on a
    hospital network without internet access those pages stayed blank. Without the package the
    default CDN pages are served."""
    from importlib.resources import files

    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    try:
        static = files("fastapi_offline") / "static"
        local = static.is_dir()
    except ModuleNotFoundError:
        local = False
    if local:
        from fastapi.staticfiles import StaticFiles

        app.mount("/docs-assets", StaticFiles(directory=str(static)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")  # behind a proxy that serves the API under a prefix
        assets = dict(swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
                      swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
                      swagger_favicon_url=f"{root}/docs-assets/favicon.png") if local else {}
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - API docs", **assets)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        assets = dict(redoc_js_url=f"{root}/docs-assets/redoc.standalone.js",
                      redoc_favicon_url=f"{root}/docs-assets/favicon.png", with_google_fonts=False) if local else {}
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - API docs", **assets)


def create_app(settings: Optional[Settings] = None) -> ServiceApp:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from actionpose.inference.fall import FallDetector

        app.state.engine = open_db(settings.db_url)
        app.state.keys = KeyChecker(app.state.engine)
        app.state.detector = FallDetector.from_pretrained(settings.model, threads=settings.threads,  # once per worker
                                                          long_lie_s=settings.long_lie_s,
                                                          hold_lost_s=settings.hold_lost_s)
        _warm_up(app.state.detector)
        app.state.session_locks = SessionLocks(settings.max_sessions)
        app.state.sessions_swept = 0.0
        app.state.batcher = MicroBatcher(app.state.detector, settings.batch_max, settings.batch_wait_ms,
                                           settings.batch_parallel)
        app.state.batcher.start()
        app.state.webhook = None
        if settings.webhook_url:
            from serve.webhook import WebhookSender

            app.state.webhook = WebhookSender(app.state.engine, settings.webhook_url, settings.webhook_secret,
                                              settings.webhook_timeout_s)
            app.state.webhook.start()
        # a camera silent after a fall: its still_down raised on the server's clock (serve/silent.py)
        app.state.silent = SilentWatch(app.state.engine, lambda sid, saved: _restore(app.state.detector, sid, saved),
                                       app.state.session_locks.get, settings.silent_grace_s,
                                       stored=lambda: app.state.webhook and app.state.webhook.wake())
        app.state.silent.start()
        # everything loaded so far lives as long as the worker: keep it out of the collector's scans
        # (one JSON window makes ~1,100 short-lived lists, so collections run every request or two;
        # scanning the whole heap in them was the main source of p99 spikes: 62 -> 15 ms at 8 clients)
        gc.collect()
        gc.freeze()
        app.state.ready = True
        yield
        app.state.ready = False
        await app.state.silent.stop()
        await app.state.batcher.stop()
        if app.state.webhook is not None:
            await app.state.webhook.stop()
        app.state.engine.dispose()

    app = ServiceApp(title="actionpose fall detection", version="1.0",
                  description="Fall probability for keypoint windows, streaming fall events per session, and a "
                              "durable event log. Data endpoints need an API key (`X-API-Key` header).",
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    _add_docs_page(app)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        msgs = [f"{_loc(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in errs[:5]]
        return JSONResponse({"detail": "; ".join(msgs) + (f" (+{len(errs) - 5} more)" if len(errs) > 5 else ""),
                             "errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errs[:20]]},
                            status_code=422)

    @app.exception_handler(ActionposeError)
    async def _bad(request: Request, exc: ActionposeError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError):
        # the database unreachable (PostgreSQL restarting, SQLite locked): a plain-text 500 told a client nothing;
        # 503 with Retry-After says "try again", and no event was half-stored (each request is one transaction)
        log.warning("%s %s: database unavailable (%s)", request.method, request.url.path,
                    str(getattr(exc, "orig", exc)).splitlines()[0][:200])
        return JSONResponse({"detail": "database unavailable; retry shortly"}, status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        # FastAPI's body reader answers JSON that json.loads cannot take (nesting too deep, a 5,000-digit
        # number) with a bare 400 "There was an error parsing the body"; predict said why with 422
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return JSONResponse({"detail": "body: JSON that cannot be read (nested too deeply, or a number with too "
                                           "many digits)"}, status_code=422)
        return await http_exception_handler(request, exc)

    async def require_key(request: Request, _key: Optional[str] = Security(_API_KEY),
                          _bearer: Optional[HTTPAuthorizationCredentials] = Security(_BEARER)) -> None:
        """Async: a cached hash compare needs no thread hop; the once-a-second key reload runs in a thread.
        (The two Security parameters only declare the schemes in OpenAPI, so Swagger's "Authorize" and
        generated clients send the key; the key is read from the headers below either way.)"""
        keys = request.app.state.keys
        await keys.ensure_fresh()
        if not keys.valid(key_from_headers(request.headers)):
            raise HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})

    def finish_window(kp: np.ndarray, sc: Optional[np.ndarray], layout: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Shape, length and value checks on a [T, V, C] array (both parsing paths end here)."""
        v = get_layout(layout).num_joints
        t, joints, c = kp.shape
        if not 1 <= t <= settings.max_window_frames:
            raise ActionposeError(f"keypoints: {t} frames; allowed 1..{settings.max_window_frames}")
        if joints != v:
            raise ActionposeError(f"keypoints[0]: {joints} joints but layout {layout} has {v}")
        if c not in (2, 3):
            raise ActionposeError("keypoints[0]: each joint needs 2 (x, y) or 3 (x, y, score) numbers")
        if not np.abs(kp).max() <= 1e6:  # one pass: NaN fails the compare, inf exceeds the bound
            raise ActionposeError("keypoints: values must be finite numbers with |value| <= 1e6")
        if c == 3:
            if sc is None:
                sc = score_channel(kp[..., 2])
            kp = kp[..., :2]
        return kp.astype(np.float32), sc

    def check_window(req: PredictRequest) -> tuple[np.ndarray, Optional[np.ndarray]]:
        v = get_layout(req.layout).num_joints
        t = len(req.keypoints)
        if not 1 <= t <= settings.max_window_frames:
            raise ActionposeError(f"keypoints: {t} frames; allowed 1..{settings.max_window_frames}")
        for i, frame in enumerate(req.keypoints):
            if len(frame) != v:
                raise ActionposeError(f"keypoints[{i}]: {len(frame)} joints but layout {req.layout} has {v}")
            c = {len(p) for p in frame}
            if not c <= {2, 3} or len(c) != 1:
                raise ActionposeError(f"keypoints[{i}]: each joint needs 2 (x, y) or 3 (x, y, score) numbers")
        kp = np.asarray(req.keypoints, dtype=np.float64)
        if kp.ndim != 3 or not np.isfinite(kp).all() or np.abs(kp).max() > 1e6:
            raise ActionposeError("keypoints: values must be finite numbers with |value| <= 1e6, same channels in every frame")
        sc = None
        if req.scores is not None:
            sc = np.asarray(req.scores, dtype=np.float32) if all(len(s) == v for s in req.scores) else None
            if sc is None or sc.shape != (t, v):
                raise ActionposeError(f"scores: shape must be [{t}][{v}] like keypoints")
        if kp.shape[-1] == 3:
            if sc is not None:  # the in-process API refuses this too; the service used `scores` silently
                raise ActionposeError("keypoints: a third (score) channel and separate scores were both given")
            sc = score_channel(kp[..., 2])
            kp = kp[..., :2]
        return kp, sc

    # HEAD too: load balancers and uptime checkers often probe with it
    @app.head("/healthz", include_in_schema=False)
    @app.get("/healthz", tags=["ops"], summary="liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.head("/readyz", include_in_schema=False)
    @app.get("/readyz", tags=["ops"], summary="readiness: model loaded and database reachable")
    async def readyz(request: Request):
        ok = getattr(request.app.state, "ready", False) and await asyncio.to_thread(ping, request.app.state.engine)
        return JSONResponse({"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503)

    def no_session(session_id: str) -> HTTPException:
        """The 404 of GET and DELETE on a session without saved state."""
        return HTTPException(404, f"session {session_id}: no saved state (never streamed, ended, or idle longer "
                                  f"than {settings.session_idle_s:g} s)")

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse,
             summary="Prometheus metrics: stored events per kind, stream sessions, webhook delivery")
    async def metrics(request: Request) -> Response:
        """Read from the database at scrape time (no per-request counting on the hot path, and every worker
        answers the same numbers). Aggregate counts only, no session ids: unauthenticated like /healthz, so a
        Prometheus server scrapes it without a key. 503 when the database cannot be read."""
        try:
            snap = await asyncio.to_thread(metrics_snapshot, request.app.state.engine)
        except SQLAlchemyError as e:
            log.warning("metrics: database not readable (%s)", type(e).__name__)
            return PlainTextResponse("database not readable\n", status_code=503)
        return PlainTextResponse(prometheus_text(snap, ready=bool(getattr(request.app.state, "ready", False)),
                                                 webhook=bool(settings.webhook_url)),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    allowed_layouts = set(PredictRequest.model_fields["layout"].annotation.__args__)
    allowed_keys = set(PredictRequest.model_fields)

    def parse_predict(body: bytes) -> tuple[np.ndarray, Optional[np.ndarray], str, float]:
        """Fast path for the hot endpoint: simdjson straight to numpy (serve/window_json.py); anything
        unusual (NaN literals, scores, odd types, ragged windows) goes through the pydantic model for its
        exact messages. Both paths end in the same numpy checks."""
        fast = window_from_json(body, allowed_keys, allowed_layouts)
        if fast is not None:
            kp, layout, fps = fast
            return (*finish_window(kp, None, layout), layout, fps)
        try:
            data = pydantic_core.from_json(body, allow_inf_nan=True)  # NaN literals reach the finite check
        except ValueError as e:
            raise RequestValidationError([{"loc": ("body",), "msg": f"JSON decode error ({str(e)[:120]})",
                                           "type": "json_invalid"}]) from None
        try:
            req = PredictRequest.model_validate(data)
        except ValidationError as e:
            raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in e.errors()]) from None
        kp, sc = check_window(req)
        return kp, sc, req.layout, req.fps

    def parse_binary(body: bytes, headers: Any) -> tuple[np.ndarray, Optional[np.ndarray], str, float]:
        """``application/octet-stream``: little-endian float32 [T, V, C] with ``X-Layout``, ``X-Shape: T,V,C``
        and optional ``X-Fps`` headers - no text parsing at all; the same limits and value checks."""
        layout = headers.get("x-layout")
        if layout not in allowed_layouts:
            raise ActionposeError("X-Layout header: " + ("missing" if layout is None else f"{layout!r} is not")
                                  + f" one of {', '.join(sorted(allowed_layouts))} (the float32 body's layout)")
        try:
            fps = plain_number(headers.get("x-fps", "30"))
        except ValueError:
            fps = float("nan")
        if not 0 < fps <= 240:
            raise ActionposeError("X-Fps header: must be a number in (0, 240]")
        try:
            shape = tuple(int(x) for x in headers.get("x-shape", "").split(","))
        except ValueError:
            shape = ()
        if len(shape) != 3 or min(shape) < 0:
            raise ActionposeError("X-Shape header: must be T,V,C (frames, joints, 2 or 3 channels)")
        if len(body) != 4 * shape[0] * shape[1] * shape[2]:
            raise ActionposeError(f"body: {len(body)} bytes but X-Shape {','.join(map(str, shape))} "
                                  f"needs {4 * shape[0] * shape[1] * shape[2]} (float32 little-endian)")
        kp = np.frombuffer(body, dtype="<f4").reshape(shape)
        return (*finish_window(kp, None, layout), layout, fps)

    # the hot route's happy path skips FastAPI's machinery (same parsers, batcher and reply; see fastlane.py)
    if settings.fast_lane:
        app.fast_lane = PredictFastLane(app, path="/v1/fall/predict", parse_json=parse_predict,
                                        parse_binary=parse_binary, max_bytes=settings.max_body_bytes,
                                        timeout_s=settings.body_timeout_s)

    binary_doc = ("Alternative compact body: `Content-Type: application/octet-stream`, the window as little-endian "
                  "float32 [T][V][C] (C = 2 or 3) with headers `X-Layout` (layout name), `X-Shape: T,V,C` and "
                  "optional `X-Fps` (default 30).")

    @app.post("/v1/fall/predict", response_model=PredictResponse, tags=["fall"], dependencies=[Depends(require_key)], responses=ERROR_RESPONSES,
              summary="fall probability of one keypoint window (micro-batched with concurrent requests)",
              description="JSON body as below. " + binary_doc,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": PredictRequest.model_json_schema()},
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def predict(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-type", "").startswith("application/octet-stream"):
            kp, sc, layout, fps = parse_binary(body, request.headers)
        else:
            kp, sc, layout, fps = parse_predict(body)
        verdict, advice = await request.app.state.batcher.submit(kp, sc, layout, fps)
        return Response(predict_reply(verdict, request.app.state.detector.config.threshold, len(kp), advice),
                        media_type="application/json")

    @app.post("/v1/fall/stream/{session_id}", response_model=StreamResponse, tags=["fall"],
              dependencies=[Depends(require_key)], responses=STREAM_RESPONSES,
              summary="append frames to a session; returns fall events (each stored before this reply)")
    async def stream(req: StreamRequest, request: Request, response: Response,
                     session_id: str = SESSION_ID) -> StreamResponse:
        v = get_layout(req.layout).num_joints
        if len(req.frames) > settings.max_stream_frames:
            raise ActionposeError(f"frames: {len(req.frames)} frames; at most {settings.max_stream_frames} per request")
        frames = []
        for i, f in enumerate(req.frames):
            if i and f.timestamp <= req.frames[i - 1].timestamp:
                raise ActionposeError(f"frames[{i}].timestamp: {f.timestamp} is not after the previous frame's")
            if f.timestamp > time.time() + _FUTURE_SLACK_S:
                raise ActionposeError(f"frames[{i}].timestamp: {f.timestamp} is more than {_FUTURE_SLACK_S:g} s ahead of "
                                      "the server's clock; a session's frames must be in order, so one frame from the "
                                      "future would block every real frame after it (409) until the clock caught up")
            if len(f.persons) > settings.max_persons:
                raise ActionposeError(f"frames[{i}].persons: at most {settings.max_persons} persons")
            persons, seen = {}, set()
            for j, p in enumerate(f.persons):
                where = f"frames[{i}].persons[{j}]"
                if len(p.keypoints) != v or {len(k) for k in p.keypoints} - {2, 3} or len({len(k) for k in p.keypoints}) != 1:
                    raise ActionposeError(f"{where}.keypoints: need {v} joints of 2 or 3 numbers for layout {req.layout}")
                if str(p.track_id) in seen:  # 1 and "1" are one track once stored (ids are kept as text)
                    if "track_id" not in p.model_fields_set:  # left out: it defaults to 0, so two people collide
                        raise ActionposeError(f"{where}.track_id: missing; with several persons in a frame each needs "
                                              "its own track_id (the same one in every frame it is in)")
                    raise ActionposeError(f"{where}.track_id: {p.track_id!r} appears twice in one frame")
                seen.add(str(p.track_id))
                kp = np.asarray(p.keypoints, dtype=np.float64)
                if not np.isfinite(kp).all() or np.abs(kp).max() > 1e6:
                    raise ActionposeError(f"{where}.keypoints: values must be finite numbers with |value| <= 1e6")
                if p.scores is not None:
                    if len(p.scores) != v:
                        raise ActionposeError(f"{where}.scores: need {v} values")
                    if kp.shape[1] == 3:  # the third channel was dropped without a word (predict refuses it)
                        raise ActionposeError(f"{where}: a third (score) channel in keypoints and separate scores "
                                              "were both given")
                    kp = np.concatenate([kp[:, :2], np.asarray(p.scores, np.float32)[:, None]], -1)
                persons[str(p.track_id)] = kp
            frames.append((f.timestamp, persons))
        state = request.app.state
        lock = state.session_locks.get(session_id)

        def run() -> tuple[list[dict[str, Any]], Optional[float]]:
            """Load the session's state, run the frames, save state + events in one transaction; if another
            worker saved the session meanwhile, run the frames again on its newer state. Returns the stored
            events and the session's newest frame time."""
            with lock:  # this worker's requests for one session, one at a time and in order
                for _ in range(5):
                    saved, version, _ = load_session(state.engine, session_id)
                    det = _restore(state.detector, session_id, saved)
                    had_watch = det.silent_due() is not None  # a watch row to update or delete (serve/silent.py)
                    if det.last_time is not None and frames and frames[0][0] <= det.last_time:
                        raise HTTPException(409, f"frames[0].timestamp: {frames[0][0]} is not after this session's last "
                                                 f"processed frame ({det.last_time}). A re-sent request: its events are "
                                                 f"in GET /v1/events, send only newer frames. Otherwise a later request "
                                                 f"overtook this one: send a session's frames in time order, one "
                                                 f"request at a time. A changed clock (milliseconds fixed to "
                                                 f"seconds, a reset): DELETE /v1/fall/stream/{session_id} or use a "
                                                 f"new session_id")
                    error = None
                    try:  # all due windows of the request in one ONNX call
                        events = det.update_many([(persons, ts) for ts, persons in frames], layout=req.layout)
                    except ActionposeError as e:  # frames before the bad one count: their state and events are kept
                        error, events = e, getattr(e, "events", [])
                    found = [ev.to_dict() for ev in events]
                    rows = save_session(state.engine, session_id, det.state_bytes(), version, found,
                                        server_due(det, time.time()), had_watch=had_watch)
                    if rows is not None:
                        break
                else:  # five lost races in a row: transient contention, not the client's fault
                    raise HTTPException(503, f"session {session_id} is being updated by other requests; retry",
                                        headers={"Retry-After": "1"})
            if time.time() - state.sessions_swept > 60:  # forget idle sessions' state now and then
                state.sessions_swept = time.time()
                forget_sessions(state.engine, settings.session_idle_s)
            return rows, det.last_time, error, list(det.advice)

        rows, last, error, advice = await asyncio.to_thread(run)
        if rows and state.webhook is not None:  # stored: this worker's sender delivers them now, not at its next poll
            state.webhook.wake()
        if error is not None:  # the frames before the bad one were processed: their events are stored and said here
            # (a still_down raised by them used to reach the database but not the client, whose re-send got a 409)
            return JSONResponse(status_code=422, content={"detail": str(error),
                                                          "events": [EventOut(**r).model_dump() for r in rows]})
        response.headers["X-Worker"] = WORKER_ID  # which worker answered (sessions work on any; for diagnosis)
        said = stream_advice(frames, req.layout)  # this request's keypoints, and the tracks' windows (frame rate, bursts)
        return StreamResponse(session_id=session_id, frames=len(frames), events=[EventOut(**r) for r in rows],
                              last_timestamp=last, warnings=said + [a for a in advice if a not in said])

    def stream_advice(frames: list[tuple[float, dict[str, np.ndarray]]], layout: str) -> list[str]:
        """What looks wrong with a request's keypoints (normalised, upside down), judged on all its
        person-frames together: the same rules and words as the in-process warnings."""
        pts = [kp for _, persons in frames for kp in persons.values()]
        if not pts:
            return []
        return input_advice(*person_frames(pts), layout, app.state.detector.config.prep.score_min)[0]

    @app.get("/v1/fall/stream/{session_id}", response_model=SessionOut, tags=["fall"],
             dependencies=[Depends(require_key)], responses=SESSION_RESPONSES,
             summary="a stream session's saved state: where a client resumes after a crash or lost reply")
    async def session_info(request: Request, session_id: str = SESSION_ID) -> SessionOut:
        state = request.app.state
        saved, _, updated = await asyncio.to_thread(load_session, state.engine, session_id)
        if saved is None:
            raise no_session(session_id)
        det = _restore(state.detector, session_id, saved)  # unreadable: empty, as the next stream request will
        return SessionOut(session_id=session_id, last_timestamp=det.last_time, persons=len(det.track_ids),
                          updated_at=updated)

    @app.delete("/v1/fall/stream/{session_id}", status_code=204, tags=["fall"], dependencies=[Depends(require_key)],
                responses=SESSION_RESPONSES,
                summary="end a stream session: its saved state is deleted now (its events stay in GET /v1/events)")
    async def end_session(request: Request, session_id: str = SESSION_ID) -> Response:
        """Why: a session's state (the last seconds of every person's keypoints) otherwise stays until it has
        been idle for ``session_idle_s``; an app that ends monitoring, or must not keep a person's data, says
        so. The next frames sent under the id start a new session."""
        state = request.app.state
        lock = state.session_locks.get(session_id)

        def run() -> bool:
            with lock:  # not in the middle of this worker's request for the session
                return delete_session(state.engine, session_id)

        if not await asyncio.to_thread(run):
            raise no_session(session_id)
        return Response(status_code=204)

    @app.get("/v1/events", response_model=EventsResponse, tags=["events"], dependencies=[Depends(require_key)], responses=ERROR_RESPONSES,
             summary="stored fall events, oldest first; filter by session and server time range")
    async def list_events(request: Request,
                          session_id: Optional[str] = Query(None, min_length=1, max_length=128),
                          kind: Optional[EventKind] = Query(None, description="only events of this kind"),
                          since: Optional[float] = Query(None, ge=0, le=1e11, allow_inf_nan=False,
                                                         description="UNIX time, inclusive"),
                          until: Optional[float] = Query(None, ge=0, le=1e11, allow_inf_nan=False,
                                                         description="UNIX time, exclusive"),
                          after_id: Optional[int] = Query(None, ge=0, le=2**62, description="page after this id"),
                          limit: int = Query(100, ge=1, le=1000)) -> EventsResponse:
        unknown = sorted(set(request.query_params) - _EVENT_FILTERS)
        if unknown:  # a misspelt filter would otherwise return every event as if it had matched
            raise ActionposeError(f"query parameter(s) {', '.join(map(repr, unknown))} unknown; filters: "
                                  f"{', '.join(sorted(_EVENT_FILTERS))}")
        repeated = sorted({k for k in request.query_params if len(request.query_params.getlist(k)) > 1})
        if repeated:  # the last value silently won: ?session_id=a&session_id=b answered for b only
            raise ActionposeError(f"query parameter(s) {', '.join(map(repr, repeated))} given more than once; "
                                  "give each filter once")
        if since is not None and until is not None and since >= until:
            raise ActionposeError(f"since ({since}) must be before until ({until}): the range is empty")
        rows = await asyncio.to_thread(query_events, request.app.state.engine, session_id, since, until, limit, after_id,
                                       kind)
        return EventsResponse(events=[EventOut(**r) for r in rows])

    @app.get("/v1/webhook", response_model=WebhookOut, tags=["events"], dependencies=[Depends(require_key)],
             responses=ERROR_RESPONSES, summary="where delivery of events to ACTIONPOSE_WEBHOOK_URL stands")
    async def webhook_info(request: Request) -> WebhookOut:
        from serve.storage import webhook_status
        from serve.webhook import shown_url

        if not settings.webhook_url:
            return WebhookOut(enabled=False)
        st = await asyncio.to_thread(webhook_status, request.app.state.engine) or {}
        return WebhookOut(enabled=True, url=shown_url(settings.webhook_url), last_delivered_id=st.get("last_event_id"),
                          pending=st.get("pending"), delivered=st.get("delivered"), failed_attempts=st.get("attempts"),
                          last_error=st.get("last_error"), next_attempt_at=st.get("next_attempt_at") or None,
                          parked_count=st.get("parked_count"), parked=st.get("parked", []),
                          # events held after a kill -9 and restart showed no reason: the dead worker's lease
                          delivery_worker=(st.get("owner") or "").rsplit(":", 1)[-1] or None,  # not its host or pid
                          lease_until=st.get("lease_until") if st.get("owner") else None)

    return app


app = create_app()
