"""Service settings from environment variables (one place, documented in docs/fall.md)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

from actionpose.errors import ActionposeError


@dataclass(frozen=True)
class Settings:
    db_url: str = "sqlite:///serve_data/events.db"
    model: str = "fall"
    max_body_bytes: int = 2_000_000          # whole request body
    max_window_frames: int = 512             # /v1/fall/predict window length
    max_stream_frames: int = 256             # frames per /v1/fall/stream request
    max_persons: int = 16                    # persons per stream frame
    max_sessions: int = 1000                 # per-session locks kept per worker (LRU beyond; state is in the database)
    session_idle_s: float = 86400.0          # a stream session's saved state is forgotten after this long idle
    body_timeout_s: float = 10.0             # a client that stalls mid-body longer than this gets 408
    batch_max: int = 32                      # micro-batch: most windows per ONNX call
    batch_wait_ms: float = 0.0               # extra wait for company (0: a batch closes when the queue is drained)
    batch_parallel: int = 0                  # 0: score on the event loop (measured best); N: N scoring threads
    threads: int = 1                         # onnxruntime intra-op threads (1: no spin-wait under load)
    fast_lane: bool = True                   # predict's happy path outside FastAPI's routing (serve/fastlane.py)
    long_lie_s: float = 60.0                 # streams: "still_down" when a fallen person is not seen up this long after
    hold_lost_s: float = 0.0                 # streams: a person missing from frames has their last pose held this long
                                             # for the fall windows (FallConfig.hold_lost_s; 0: off)
    silent_grace_s: float = 5.0              # streams: a pending still_down this overdue with no frames is raised on the
                                             # server's clock (a camera silent after a fall, serve/silent.py)
    webhook_url: str = ""                    # POST every stored event here (serve/webhook.py); "" = off
    webhook_secret: str = ""                 # HMAC key of the webhook signature; required with a URL
    webhook_timeout_s: float = 5.0           # one webhook request's limit (a timeout counts as a failed try)

    def __post_init__(self) -> None:
        """The webhook settings, checked here so a Settings built in code is refused like the environment's."""
        if self.webhook_url:
            from serve.webhook import check_url, shown_url

            why = check_url(self.webhook_url)
            if why:  # the value may hold a token: show it only once it parsed as a URL
                raise ActionposeError(f"ACTIONPOSE_WEBHOOK_URL: {why}")
            if len(self.webhook_secret) < 16:
                raise ActionposeError(f"ACTIONPOSE_WEBHOOK_SECRET: set at least 16 characters to sign the requests to "
                                      f"{shown_url(self.webhook_url)} (receivers check X-Actionpose-Signature with it)")
        elif self.webhook_secret:
            raise ActionposeError("ACTIONPOSE_WEBHOOK_SECRET is set but ACTIONPOSE_WEBHOOK_URL is not: no events "
                                  "would be sent")

    def __repr__(self) -> str:  # never the secret or the webhook's path (settings get printed and logged)
        from serve.webhook import shown_url

        hidden = {"webhook_secret": "***" if self.webhook_secret else "",
                  "webhook_url": shown_url(self.webhook_url) if self.webhook_url else ""}
        shown = {f.name: hidden.get(f.name, getattr(self, f.name)) for f in fields(self)}
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @classmethod
    def from_env(cls) -> "Settings":
        """Every field from ``ACTIONPOSE_<FIELD>`` (``ACTIONPOSE_DB_URL``, ``ACTIONPOSE_BATCH_MAX``, ...; the model
        from ``ACTIONPOSE_FALL_MODEL``); a value that does not parse or is out of range raises
        :class:`ActionposeError` naming the variable."""
        values: dict = {}
        for f in fields(cls):
            name = _ENV_NAMES.get(f.name, "ACTIONPOSE_" + f.name.upper())
            raw = os.environ.get(name)
            if raw is None:
                continue
            default = getattr(cls, f.name)
            try:
                if isinstance(default, bool):
                    if raw.lower() not in _BOOLS:
                        raise ValueError
                    value = _BOOLS[raw.lower()]
                else:
                    value = plain_number(raw, type(default)) if not isinstance(default, str) else raw
            except ValueError:
                raise ActionposeError(f"{name}={raw!r}: expected {_KIND[type(default)]}") from None
            low, high = _MIN.get(f.name), _MAX.get(f.name)
            if isinstance(value, float) and not math.isfinite(value):  # inf passed ">= low" and crashed the workers
                raise ActionposeError(f"{name}={raw!r}: must be a finite number")
            if low is not None and not value >= low:
                raise ActionposeError(f"{name}={raw!r}: must be >= {low}")
            if high is not None and not value <= high:
                raise ActionposeError(f"{name}={raw!r}: must be <= {high:g}")
            values[f.name] = value
        return cls(**values)


def plain_number(raw: str, kind: type = float) -> int | float:
    """``kind(raw)`` for a number as people write it: Python also reads "1_0" as 10, which a setting or a
    header (ACTIONPOSE_MAX_PERSONS=1_0, X-Fps: 1_8) never means; ValueError for it as for any other text."""
    if "_" in raw:
        raise ValueError(f"{raw!r} holds an underscore")
    return kind(raw)


_ENV_NAMES = {"model": "ACTIONPOSE_FALL_MODEL"}
_MAX = {"long_lie_s": 3600.0,  # FallConfig's own bound (fall_aftermath.LONG_LIE_MAX_S)
        "webhook_timeout_s": 60.0, "silent_grace_s": 600.0, "hold_lost_s": 5.0}
_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
_KIND = {int: "an integer", float: "a number", str: "text", bool: "1/0, true/false, yes/no or on/off"}
_MIN = {"max_body_bytes": 1, "max_window_frames": 1, "max_stream_frames": 1, "max_persons": 1, "max_sessions": 1,
        "session_idle_s": 60.0, "body_timeout_s": 0.001, "batch_max": 1, "batch_wait_ms": 0.0, "batch_parallel": 0,
        "threads": 1, "long_lie_s": 1.0, "webhook_timeout_s": 0.1,
        "silent_grace_s": 0.5, "hold_lost_s": 0.0}
