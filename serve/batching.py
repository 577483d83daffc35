"""Micro-batching: concurrent predict requests are prepared and scored together in one ONNX call.

A request appends its window to a queue; everything waiting (up to ``max_batch``) is scored as one
batch, which closes when the queue is drained, never after a fixed sleep. Batches grow with the load
by themselves: what arrives while a batch is scored becomes the next one.

``parallel=0`` (the service's default) scores on the event loop itself: the batch is scheduled with
``call_soon``, so every request the loop parsed in the same turn joins it. Parsing and scoring then
take turns on one core instead of overlapping, but there is no hand-off to a thread and no two threads
fighting over the GIL; measured faster at every load with one worker process per core
(``--workers N``; docs/fall.md). ``parallel=N`` hands batches to N scoring threads instead, dispatched
from the request itself whenever a thread is free (a separate batcher task would only run after the
loop had parsed every ready request). ``wait_ms`` > 0 holds a batch open that long for company (off by
default: on 2 busy cores it only adds latency).
"""
from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from actionpose.errors import ActionposeError


@dataclass
class _Item:
    window: np.ndarray
    scores: np.ndarray | None
    layout: str
    fps: float
    future: asyncio.Future


class MicroBatcher:
    def __init__(self, detector: Any, max_batch: int = 32, wait_ms: float = 0.0, parallel: int = 1):
        self.detector, self.max_batch, self.wait_s = detector, max(1, max_batch), wait_ms / 1000
        self.parallel = max(0, parallel)  # batches scored at once in threads (ORT's run is thread-safe); 0: on the loop
        self.pending: deque[_Item] = deque()
        self.executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._inflight = 0
        self._on_loop_scheduled = False
        self._looked = 0  # pending requests when the on-loop batch last looked (it waits while that grows)
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.parallel:
            self.executor = ThreadPoolExecutor(self.parallel, thread_name_prefix="fall-onnx")

    async def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        if self.executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, window: np.ndarray, scores: np.ndarray | None, layout: str, fps: float) -> Any:
        span = getattr(self.detector, "span_frames", None)
        if span is not None and len(window) > 2 * span(fps):
            # a window read as dozens to hundreds of 2.13-s windows (FallDetector.prepare_scan; 512 frames: ~0.1-0.2 s)
            # is scored in a thread: on the loop it held up every other request of the worker, /healthz included
            res = (await self._loop.run_in_executor(None, self._score, [_Item(window, scores, layout, fps, None)]))[0]
            self.batches, self.items = self.batches + 1, self.items + 1
            if isinstance(res, BaseException):
                raise res
            return res
        fut = self._loop.create_future()
        self.pending.append(_Item(window, scores, layout, fps, fut))
        if self.wait_s <= 0 or len(self.pending) >= self.max_batch:
            self._dispatch()
        elif self._timer is None:
            self._timer = self._loop.call_later(self.wait_s, self._dispatch)
        return await fut

    def _dispatch(self) -> None:
        """Hand what is waiting to the free scoring threads, or schedule scoring on the loop (runs on the loop)."""
        if self._timer is not None:
            self._timer.cancel()  # a full batch goes before its timer (a no-op when the timer is what fired)
            self._timer = None
        if not self.parallel:
            if self.pending and not self._on_loop_scheduled:
                self._on_loop_scheduled = True
                self._loop.call_soon(self._score_on_loop)
            return
        while self.pending and self._inflight < self.parallel:
            batch = self._take()
            if batch:
                self._inflight += 1
                self._loop.run_in_executor(self.executor, self._score, batch).add_done_callback(
                    lambda f, batch=batch: self._finish(batch, f))

    def _take(self) -> list[_Item]:
        batch = [self.pending.popleft() for _ in range(min(len(self.pending), self.max_batch))]
        return [it for it in batch if not it.future.done()]  # client went away meanwhile

    def _score_on_loop(self) -> None:
        """``parallel=0``: one batch scored right here; the rest waits for the next loop turn, so new
        requests that arrive meanwhile are parsed and join it.

        While the queue still grows from one loop turn to the next (and is short of a full batch), the
        batch waits one more turn: a request's bytes are read in one turn but its handler only submits in
        the next, so scoring at the first call left the requests read alongside for a batch of their own.
        Measured at 32 clients: one-window batches were 20 % of all batches."""
        n = len(self.pending)
        if self._looked < n < self.max_batch:
            self._looked = n
            self._loop.call_soon(self._score_on_loop)
            return
        self._looked = 0
        self._on_loop_scheduled = False
        batch = self._take()
        if batch:
            try:
                results = self._score(batch)
            except Exception as e:  # noqa: BLE001 - a failed batch fails its requests, the loop goes on
                results = [e] * len(batch)
            self._answer(batch, results)
        self._next()

    def _finish(self, batch: list[_Item], done: asyncio.Future) -> None:
        """Runs on the event loop when a thread has scored a batch: answer it, start the next batch."""
        self._inflight -= 1
        exc = done.exception() if not done.cancelled() else asyncio.CancelledError()
        self._answer(batch, [exc] * len(batch) if exc is not None else done.result())
        self._next()

    def _answer(self, batch: list[_Item], results: list[Any]) -> None:
        self.batches += 1
        self.items += len(batch)
        for item, res in zip(batch, results):
            if not item.future.done():
                (item.future.set_exception(res) if isinstance(res, BaseException) else item.future.set_result(res))

    def _next(self) -> None:
        if self.wait_s <= 0 or len(self.pending) >= self.max_batch:
            self._dispatch()
        elif self.pending and self._timer is None:
            self._timer = self._loop.call_later(self.wait_s, self._dispatch)

    def _score(self, batch: list[_Item]) -> list[Any]:
        """Prepare per (layout, fps) group in one vectorised pass, score all in one ONNX call; an item
        whose preparation fails gets its own error, the rest of the batch is still scored. Each result is
        ``(Verdict, advice)`` (``FallDetector.finish_scan``; advice: what looks wrong with
        the window, ``FallDetector.input_advice``)."""
        det = self.detector
        results: list[Any] = [None] * len(batch)
        groups: dict[tuple[str, float], list[int]] = {}
        for i, it in enumerate(batch):
            groups.setdefault((it.layout, it.fps), []).append(i)
        order, kps, scs, plans, rows = [], [], [], [], 0
        advice: dict[int, list[str]] = {}
        for (layout, fps), idx in groups.items():
            try:  # a window longer than the model's 2.13 s becomes every 2.13-s window in it (prepare_scan)
                kp, sc, plan = det.prepare_scan([batch[i].window for i in idx], [batch[i].scores for i in idx],
                                                layout=layout, fps=fps, row0=rows)
                order += idx
                rows += len(kp)
                kps.append(kp)
                scs.append(sc)
                plans += plan
                advice.update(zip(idx, det.input_advice([batch[i].window for i in idx],
                                                        [batch[i].scores for i in idx], layout)))
            except ActionposeError:
                for i in idx:  # find which one is bad
                    try:
                        kp, sc, plan = det.prepare_scan([batch[i].window], [batch[i].scores], layout=layout, fps=fps,
                                                        row0=rows)
                        advice[i] = det.input_advice([batch[i].window], [batch[i].scores], layout)[0]
                        order.append(i)
                        rows += len(kp)
                        kps.append(kp)
                        scs.append(sc)
                        plans += plan
                    except ActionposeError as e:
                        results[i] = e
        if order:
            kp_all = np.concatenate(kps)
            probs = det.score_prepared(kp_all, np.concatenate(scs))
            for i, verdict in zip(order, det.finish_scan(probs, plans, kp_all)):
                results[i] = (verdict, advice[i])
        return results

