"""SIGTERM stops a run the way Ctrl-C does.

Why: ``docker stop``, systemd and ``timeout`` end a process with SIGTERM, whose default action kills it
at once - a live ``tag`` lost its open segments and its summary, and an output being written was left
as a hidden temporary file beside the target. Raised as ``KeyboardInterrupt`` instead, every path that
already handles Ctrl-C (close open segments, write what was seen, remove temporary files) handles it too.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

_received: list[int] = []


def stop_name() -> str:
    """How the current run was stopped, for messages: ``SIGTERM`` or ``Ctrl-C``."""
    return "SIGTERM" if _received else "Ctrl-C"


def stopped_by_sigterm() -> bool:
    return bool(_received)


def _on_sigterm(signum: int, frame: object) -> None:  # noqa: ARG001
    _received.append(signum)
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """While the block runs, SIGTERM raises ``KeyboardInterrupt`` (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    _received.clear()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
