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
from typing import Any


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
    quick_deaths = 0
    while not stopping:
        for i, p in enumerate(procs):
            if not p.is_alive() and not stopping:
                if time.monotonic() - started[i] < 10:
                    quick_deaths += 1
                    if quick_deaths > 3 * workers:  # workers die on start: a bug or a bad setting, not bad luck
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
    return 0 if quick_deaths <= 3 * workers else 1
