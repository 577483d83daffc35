"""Several worker processes that each listen on their own ``SO_REUSEPORT`` socket.

Why not uvicorn's ``--workers``: there all workers accept from one shared socket, and the kernel hands a
burst of new connections to whichever worker wakes first. In the load tests half of the 2-worker runs put
every camera on one worker (docs/fall.md). With one socket per worker in a ``SO_REUSEPORT`` group the
kernel spreads connections over the workers by a hash of their addresses. The parent only starts the
workers, restarts one that dies, and passes SIGTERM/SIGINT on (each worker shuts down gracefully).
"""
from __future__ import annotations

import multiprocessing as mp
import signal
import socket
import sys
import time
from collections import deque
from typing import Any

QUICK_S = 10.0      # a worker that exits this soon after it started died "on start"
CRASH_WINDOW_S = 300.0  # ... and 3 x workers such deaths within this long mean a bug or a bad setting


class StartFailures:
    """Workers that died on start, over the last :data:`CRASH_WINDOW_S`. Why a window: the count used to run for
    the service's whole life, so a few unrelated crashes days apart (7 with 2 workers) stopped the service (probe)."""

    def __init__(self, workers: int, window_s: float = CRASH_WINDOW_S):
        self.limit, self.window_s, self.times = 3 * workers, window_s, deque()

    def add(self, now: float) -> bool:
        """Count one; True when more than the limit died within the window."""
        self.times.append(now)
        while self.times and self.times[0] < now - self.window_s:
            self.times.popleft()
        return len(self.times) > self.limit


def available() -> bool:
    return hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")


def _bound(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    sock = _bound(host, port, reuse_port=True)
    sock.listen(backlog)
    return sock


def _worker(host: str, port: int, options: dict[str, Any]) -> None:
    import uvicorn

    sock = _listen(host, port, options.get("backlog", 2048))
    uvicorn.Server(uvicorn.Config("serve.app:app", **options)).run(sockets=[sock])


def run(host: str, port: int, workers: int, options: dict[str, Any], started: str = "") -> int:
    """Serve ``serve.app:app`` from ``workers`` processes; returns when they have stopped. ``started`` is
    printed once the port is known to be free."""
    try:  # fail here, once and clearly, if anything listens there already - another copy of this service
        # too: a probe without SO_REUSEPORT cannot join its group, so traffic is never split between two servers
        _bound(host, port, reuse_port=False).close()
    except OSError as e:
        print(f"error: cannot listen on {host}:{port}: {e.strerror}", file=sys.stderr)
        return 2
    if started:
        print(started, file=sys.stderr)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(host, port, options), name=f"serve-worker-{i}") for i in range(workers)]
    for p in procs:
        p.start()
    stopping = False

    def stop(signum: int, frame: Any) -> None:  # noqa: ARG001
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive():
                p.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = [time.monotonic()] * workers
    failures, failed = StartFailures(workers), False
    while not stopping:
        for i, p in enumerate(procs):
            if not p.is_alive() and not stopping:
                if time.monotonic() - started[i] < QUICK_S:
                    if failures.add(time.monotonic()):  # workers die on start: a bug or a bad setting, not bad luck
                        failed = True
                        print("error: workers keep exiting on start; see the messages above", file=sys.stderr)
                        stop(signal.SIGTERM, None)
                        break
                print(f"worker {p.name} exited ({p.exitcode}); starting another", file=sys.stderr)
                procs[i] = ctx.Process(target=_worker, args=(host, port, options), name=p.name)
                procs[i].start()
                started[i] = time.monotonic()
        time.sleep(0.2)
    for p in procs:
        p.join(15)
        if p.is_alive():
            p.kill()
    return 1 if failed else 0
