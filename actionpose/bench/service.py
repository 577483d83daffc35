"""``actionpose bench service``: load-test the fall service from this (second) process on loopback.

Starts ``python -m serve`` on 127.0.0.1 with a temporary database and key, then drives
``POST /v1/fall/predict`` with 64-frame coco17 windows from N concurrent asyncio/httpx clients
(closed loop: each client sends its next request when the previous answer arrives) and reports
p50/p99 latency and requests/s per level, next to the in-process predictor's own throughput
(batched, as the service batches) measured in the same run.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HELP = "load-test the fall service (p50/p99, req/s at 1/8/32 clients) vs the in-process predictor"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--seconds", type=float, default=10.0, help="measured time per concurrency level")
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--model", default="fall")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads in the server and in-process")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (predict is stateless)")


def _window(frames: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    base = rng.normal(300, 60, (17, 2))
    return (base[None] + rng.normal(0, 2, (frames, 17, 2))).round(2).tolist()


def in_process(model: str, frames: int, threads: int, seconds: float, batch: int) -> float:
    """Windows per second of FallDetector.predict_batch (preparation + ONNX) in this process."""
    from actionpose.inference.fall import FallDetector

    det = FallDetector.from_pretrained(model, threads=threads)
    ws = [np.asarray(_window(frames, i), np.float32) for i in range(batch)]
    det.predict_batch(ws)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        det.predict_batch(ws)
        n += batch
    return n / (time.perf_counter() - t0)


async def _load(url: str, key: str, body: dict, clients: int, seconds: float) -> tuple[list[float], int, float]:
    import httpx

    lat: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, limits=limits, timeout=30) as c:
        for _ in range(min(clients, 4)):  # warm-up
            await c.post("/v1/fall/predict", json=body)
        t_end = time.perf_counter() + seconds

        async def worker():
            nonlocal errors
            while time.perf_counter() < t_end:
                t = time.perf_counter()
                r = await c.post("/v1/fall/predict", json=body)
                if r.status_code == 200:
                    lat.append(time.perf_counter() - t)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(clients)])
        wall = time.perf_counter() - t0
    return lat, errors, wall


def run(args: argparse.Namespace) -> int:
    import httpx

    from serve.storage import add_key, open_db

    tmp = Path(tempfile.mkdtemp(prefix="ap_bench_"))
    url_db = f"sqlite:///{tmp / 'events.db'}"
    key = add_key(open_db(url_db), "bench")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, ACTIONPOSE_DB_URL=url_db, ACTIONPOSE_FALL_MODEL=args.model,
               ACTIONPOSE_THREADS=str(args.threads))
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", str(args.workers), "--log-level", "warning"], cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "server.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            print(f"error: server did not start; see {tmp / 'server.log'}")
            return 2
        body = {"layout": "coco17", "fps": 30, "keypoints": _window(args.frames)}
        rows = []
        for n in args.clients:
            lat, errors, wall = asyncio.run(_load(url, key, body, n, args.seconds))
            a = np.array(lat) * 1000
            rows.append((n, len(lat), errors, np.percentile(a, 50), np.percentile(a, 99), len(lat) / wall))
    finally:
        proc.terminate()
        proc.wait(10)
    ref = in_process(args.model, args.frames, args.threads, min(args.seconds, 5.0), batch=32)
    ref1 = in_process(args.model, args.frames, args.threads, min(args.seconds, 3.0), batch=1)
    print(f"fall service load test: {args.frames}-frame coco17 windows, POST /v1/fall/predict on 127.0.0.1, "
          f"{os.cpu_count()} CPUs, server workers={args.workers}, onnxruntime threads={args.threads}, "
          f"{args.seconds:g} s per level")
    print(f"in-process FallDetector.predict_batch: {ref:.1f} windows/s (batch 32), {ref1:.1f} windows/s (batch 1)")
    print("| clients | requests | errors | p50 ms | p99 ms | req/s | service / in-process (batch 32) |")
    print("|---|---|---|---|---|---|---|")
    for n, cnt, err, p50, p99, rps in rows:
        print(f"| {n} | {cnt} | {err} | {p50:.1f} | {p99:.1f} | {rps:.1f} | {rps / ref:.0%} |")
    return 0
