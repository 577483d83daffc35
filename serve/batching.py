"""Micro-batching: concurrent predict requests are prepared and scored in one ONNX call.

Requests put their window on an asyncio queue; one worker task takes what is waiting (up to
``max_batch``, waiting at most ``wait_ms`` for more) and runs preparation + the ONNX call in a thread,
so the event loop keeps serving ``/healthz`` while the model runs.
"""
from __future__ import annotations

import asyncio
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
    def __init__(self, detector: Any, max_batch: int = 32, wait_ms: float = 2.0):
        self.detector, self.max_batch, self.wait_s = detector, max_batch, wait_ms / 1000
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()

    async def submit(self, window: np.ndarray, scores: np.ndarray | None, layout: str, fps: float) -> Any:
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put(_Item(window, scores, layout, fps, fut))
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.wait_s
            while len(batch) < self.max_batch:
                timeout = deadline - loop.time()
                try:
                    batch.append(self.queue.get_nowait() if timeout <= 0 else
                                 await asyncio.wait_for(self.queue.get(), timeout))
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
            results = await asyncio.to_thread(self._score, batch)
            self.batches += 1
            self.items += len(batch)
            for item, res in zip(batch, results):
                if not item.future.done():
                    (item.future.set_exception(res) if isinstance(res, BaseException) else item.future.set_result(res))

    def _score(self, batch: list[_Item]) -> list[Any]:
        det = self.detector
        prepped, results = [], [None] * len(batch)
        for i, it in enumerate(batch):
            try:
                prepped.append((i, det.prepare(it.window, it.scores, layout=it.layout, fps=it.fps)))
            except ActionposeError as e:
                results[i] = e
        if prepped:
            probs = det.score_prepared(np.stack([p[1][0] for p in prepped]), np.stack([p[1][1] for p in prepped]))
            for (i, _), p in zip(prepped, probs):
                results[i] = float(p)
        return results
