"""Service settings from environment variables (one place, documented in docs/fall.md)."""
from __future__ import annotations

import os
from dataclasses import dataclass


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


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

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(db_url=_env("ACTIONPOSE_DB_URL", cls.db_url), model=_env("ACTIONPOSE_FALL_MODEL", cls.model),
                   max_body_bytes=int(_env("ACTIONPOSE_MAX_BODY_BYTES", str(cls.max_body_bytes))),
                   session_idle_s=float(_env("ACTIONPOSE_SESSION_IDLE_S", str(cls.session_idle_s))),
                   body_timeout_s=float(_env("ACTIONPOSE_BODY_TIMEOUT_S", str(cls.body_timeout_s))),
                   batch_max=int(_env("ACTIONPOSE_BATCH_MAX", str(cls.batch_max))),
                   batch_wait_ms=float(_env("ACTIONPOSE_BATCH_WAIT_MS", str(cls.batch_wait_ms))),
                   batch_parallel=int(_env("ACTIONPOSE_BATCH_PARALLEL", str(cls.batch_parallel))),
                   threads=int(_env("ACTIONPOSE_THREADS", str(cls.threads))),
                   fast_lane=_env("ACTIONPOSE_FAST_LANE", "1").lower() not in ("0", "false", "no", "off"))
