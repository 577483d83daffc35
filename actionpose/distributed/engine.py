"""Distributed extraction on Ray: one pose frontend (its own ONNX sessions) per actor, shards, resume.

Why Ray actors: loading the ONNX sessions costs far more than a short video, so each worker keeps
its frontend for the whole run; Ray schedules the actors over one machine or a cluster
(``ray start --head`` / ``--address``) and tells us when a worker process dies, so a crashing video
is recorded as a failure instead of taking the run down. Results travel back to the driver, which
writes each video's shard as soon as it arrives (no shared output filesystem needed; the input
videos must be readable by every worker).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from actionpose.distributed.shards import ShardStore, merge, video_key
from actionpose.errors import ActionposeError


@dataclass
class ExtractOptions:
    """Everything that changes a video's result (stored in the shard manifest; a resume must match)."""

    frontend: str = "default"
    fps: float | None = None
    max_persons: int | None = None
    layout: str | None = None
    max_frames: int | None = None
    det_every: int = 1
    det_size: int | None = None
    pose_model: str | None = None
    det_model: str | None = None

    def manifest(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RayExtractResult:
    out: Path
    videos: int                     # in the merged pickle
    extracted: int                  # this run
    skipped: int                    # finished by an earlier run
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    frames: int = 0                 # decoded by this run
    workers: int = 0


class _Worker:
    """Ray actor body: builds the frontend once, then extracts one video per call."""

    def __init__(self, options: dict[str, Any], threads: int):
        from actionpose.pose.frontend import load_frontend

        o = dict(options)
        self.extract_args = {k: o.pop(k) for k in ("fps", "max_persons", "layout", "max_frames")}
        self.fe = load_frontend(o.pop("frontend"), threads=threads, progress=False, **o)

    def ready(self) -> bool:
        return True

    def extract(self, source: str) -> dict[str, Any]:
        """``{"ok": annotation}`` or ``{"error": one line}``; never raises for a bad video."""
        from actionpose.pose.extraction import extract_video

        a = self.extract_args
        try:
            ann = extract_video(self.fe, source, a["fps"], a["max_persons"], None, False, a["layout"],
                                a["max_frames"])
            return {"ok": ann}
        except Exception as e:  # noqa: BLE001 - any per-video error is recorded, the run goes on
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            msg = msg[len(source) + 2:] if msg.startswith(f"{source}: ") else msg  # the record names it
            return {"error": msg if isinstance(e, ActionposeError) else f"{type(e).__name__}: {msg}"}


def _init_ray(workers: int, address: str | None) -> tuple[Any, bool]:
    """``(ray, started_here)``: join a running session/cluster, or start a private local one."""
    try:
        import ray
    except ImportError:
        raise ActionposeError("--ray needs Ray: pip install 'actionpose[distributed]' (ray[default])") from None
    if ray.is_initialized():
        return ray, False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:  # sized to the workers, so their actors (1 CPU each) all fit
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return ray, True


def extract_ray(source: str | Path, out: str | Path, workers: int = 2, options: ExtractOptions | None = None,
                threads: int = 1, address: str | None = None,
                on_result: Callable[[str, str | None], None] | None = None) -> RayExtractResult:
    """Extract every video of ``source`` on ``workers`` Ray actors into ``out`` (resumable, see shards.py).

    ``on_result(source, error_or_None)`` is called as each video finishes (progress output).
    """
    from actionpose.pose.sources import expand_sources

    if workers < 1:
        raise ActionposeError(f"--workers must be >= 1, got {workers}")
    options = options or ExtractOptions()
    sources = [str(s) for s in expand_sources(source)]
    if any("://" in s or s.isdigit() for s in sources):
        raise ActionposeError(f"{source}: --ray extracts video files (a file or a folder), not live streams")
    store = ShardStore.open(out, options.manifest())
    pending = [s for s in sources if not store.done(video_key(s))]
    skipped = len(sources) - len(pending)
    t0 = time.perf_counter()
    frames = extracted = 0

    n = min(workers, len(pending))
    if n:  # a finished run resumes without starting Ray at all
        ray, started = _init_ray(workers, address)
        try:
            frames, extracted = _run(ray, n, pending, store, options, threads, on_result)
        finally:
            if started:
                ray.shutdown()
    seconds = time.perf_counter() - t0
    meta = {"frontend": options.frontend, "extracted_with": f"ray ({n} workers)" if n else "ray (resumed)"}
    ds = merge(store, sources, out, options.layout, meta)
    return RayExtractResult(Path(out), len(ds), extracted, skipped, ds.meta["failures"], seconds, frames, n)


def _run(ray, n: int, pending: list[str], store: ShardStore, options: ExtractOptions, threads: int,
         on_result: Callable[[str, str | None], None] | None) -> tuple[int, int]:
    """Keep every actor busy with one video at a time; write shards/failures as results arrive."""
    Actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(_Worker)
    actors = [Actor.remote(options.manifest(), threads) for _ in range(n)]
    try:  # a frontend that cannot load (bad model file...) is one error, not N failed videos
        ray.get([a.ready.remote() for a in actors])
    except ray.exceptions.RayActorError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        cause = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else type(e).__name__)
        raise ActionposeError(f"Ray worker could not start the pose frontend: {cause[:300]}") from None
    frames = extracted = 0
    queue = list(reversed(pending))
    running: dict[Any, tuple[Any, str]] = {}

    def submit(actor) -> None:
        if queue:
            src = queue.pop()
            running[actor.extract.remote(src)] = (actor, src)

    for a in actors:
        submit(a)
    try:
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            actor, src = running.pop(ref)
            key = video_key(src)
            try:
                res = ray.get(ref)
            except ray.exceptions.RayActorError as e:  # the worker process died on this video
                res = {"error": f"worker died ({type(e).__name__}); Ray restarted it"}
            except ray.exceptions.RayTaskError as e:  # raised outside the per-video guard (e.g. unpickling)
                res = {"error": f"{type(e.cause).__name__}: {e.cause}"}
            if "ok" in res:
                store.write(key, res["ok"])
                extracted += 1
                frames += int(res["ok"]["keypoint"].shape[1])
            else:
                store.record_failure(key, src, res["error"])
            if on_result is not None:
                on_result(src, res.get("error"))
            submit(actor)
    finally:
        for a in actors:
            ray.kill(a)
    return frames, extracted


def print_progress(src: str, error: str | None) -> None:
    print(f"{'done' if error is None else 'FAILED'}: {src}" + (f" ({error})" if error else ""), file=sys.stderr,
          flush=True)
