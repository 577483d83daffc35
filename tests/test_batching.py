"""The predict micro-batcher in both scoring modes: on the event loop (default) and in threads."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from actionpose.errors import ActionposeError
from actionpose.inference.fall import ScanPlan
from serve.batching import MicroBatcher


class FakeDetector:
    """Probability = the window's mean; a window holding -1 is refused in preparation; `boom` fails scoring;
    a window holding 7 gets advice (each answer is ``(probability, advice)``)."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.boom = False

    def prepare(self, window, scores, layout, fps):  # noqa: ANN001, ANN201
        if (window == -1).any():
            raise ActionposeError("keypoints: bad window")
        return window, np.ones(window.shape[:2], np.float32)

    def prepare_batch(self, windows, scores, layout, fps):  # noqa: ANN001, ANN201
        if any((w == -1).any() for w in windows):
            raise ActionposeError("keypoints: bad window in batch")
        return np.stack(windows), np.ones((len(windows), *windows[0].shape[:2]), np.float32)

    def prepare_scan(self, windows, scores, layout, fps, row0=0):  # noqa: ANN001, ANN201 - no window is split here
        kp, sc = self.prepare_batch(windows, scores, layout, fps)
        return kp, sc, [ScanPlan(slice(row0 + i, row0 + i + 1), (len(w),), len(w), fps) for i, w in enumerate(windows)]

    def finish_scan(self, probs, plans, kp=None):  # noqa: ANN001, ANN201 - the answer is the probability alone here
        return [float(probs[p.rows][0]) for p in plans]

    def input_advice(self, windows, scores, layout):  # noqa: ANN001, ANN201
        return [["sevens"] if (w == 7).any() else [] for w in windows]

    def score_prepared(self, kp, sc):  # noqa: ANN001, ANN201
        if self.boom:
            raise RuntimeError("onnx failed")
        self.calls.append(len(kp))
        return kp.reshape(len(kp), -1).mean(1)


@pytest.mark.parametrize("parallel", [0, 1, 2])
def test_concurrent_requests_share_calls_and_get_their_own_answers(parallel):
    det = FakeDetector()

    async def go():
        b = MicroBatcher(det, max_batch=8, parallel=parallel)
        b.start()
        wins = [np.full((4, 17, 2), float(i), np.float32) for i in range(20)]
        wins[5] = np.full((4, 17, 2), -1, np.float32)
        out = await asyncio.gather(*[b.submit(w, None, "coco17", 30.0) for w in wins], return_exceptions=True)
        await b.stop()
        return out, b

    out, b = asyncio.run(go())
    assert isinstance(out[5], ActionposeError)  # only the bad window fails; the rest of its batch is scored
    assert [o for i, o in enumerate(out) if i != 5] == [(float(i), ["sevens"] if i == 7 else []) for i in range(20)
                                                        if i != 5]
    assert b.items == 20 and b.batches < 20 and max(det.calls) <= 8


@pytest.mark.parametrize("parallel", [0, 1])
def test_a_failing_model_call_fails_its_requests_and_the_batcher_goes_on(parallel):
    det = FakeDetector()

    async def go():
        b = MicroBatcher(det, max_batch=4, parallel=parallel)
        b.start()
        det.boom = True
        bad = await asyncio.gather(*[b.submit(np.zeros((2, 17, 2), np.float32), None, "coco17", 30.0)
                                     for _ in range(3)], return_exceptions=True)
        det.boom = False
        good = await b.submit(np.ones((2, 17, 2), np.float32), None, "coco17", 30.0)
        await b.stop()
        return bad, good

    bad, good = asyncio.run(go())
    assert all(isinstance(e, RuntimeError) for e in bad) and good == (1.0, [])


@pytest.mark.parametrize("parallel", [0, 1])
def test_a_full_batch_does_not_wait_for_the_batch_timer(parallel):
    """With ``wait_ms`` set, a batch that reaches ``max_batch`` is scored at once; a partial one waits."""
    det = FakeDetector()

    async def go():
        b = MicroBatcher(det, max_batch=4, wait_ms=60_000, parallel=parallel)
        b.start()
        win = np.ones((2, 17, 2), np.float32)
        full = await asyncio.wait_for(asyncio.gather(*[b.submit(win, None, "coco17", 30.0) for _ in range(4)]), 5)
        partial = asyncio.ensure_future(b.submit(win, None, "coco17", 30.0))
        await asyncio.sleep(0.2)
        waited = not partial.done()
        partial.cancel()
        await b.stop()
        return full, waited

    full, waited = asyncio.run(go())
    assert full == [(1.0, [])] * 4 and det.calls == [4] and waited


def test_on_loop_batch_waits_while_requests_keep_arriving():
    """Requests whose handlers submit one loop turn apart (a server reads bytes in one turn and runs the
    handler in the next) join one batch; scoring at the first call gave the first request a batch of its own."""
    det = FakeDetector()

    async def go():
        b = MicroBatcher(det, max_batch=32, parallel=0)
        b.start()
        wins = [np.full((4, 17, 2), float(i), np.float32) for i in range(12)]

        async def late(i: int, turns: int) -> float:
            for _ in range(turns):
                await asyncio.sleep(0)  # one loop turn each
            return await b.submit(wins[i], None, "coco17", 30.0)

        out = await asyncio.gather(*[late(i, i // 4) for i in range(12)])  # 4 per turn over 3 turns
        alone = await b.submit(wins[0], None, "coco17", 30.0)  # a lone request is still answered
        await b.stop()
        return out, alone

    out, alone = asyncio.run(go())
    assert out == [(float(i), ["sevens"] if i == 7 else []) for i in range(12)] and alone == (0.0, [])
    assert det.calls == [12, 1]


def test_a_long_window_is_scored_off_the_loop_so_short_requests_go_on():
    """A 512-frame window is ~225 windows of the model (FallDetector.prepare_scan), ~0.1-0.2 s: scored on the
    event loop it held up the worker's other requests and /healthz (probe). It runs in a thread now; a short
    request submitted after it is answered first, and both answers equal the in-process predictor's."""
    import os

    from actionpose.inference.fall import FallDetector

    det = FallDetector.from_pretrained(os.environ.get("ACTIONPOSE_FALL_MODEL", "fall"), threads=1)
    rng = np.random.default_rng(0)
    base = np.array([[320, 100], [325, 95], [315, 95], [330, 98], [310, 98], [345, 150], [295, 150], [355, 210],
                     [285, 210], [360, 260], [280, 260], [335, 270], [305, 270], [338, 360], [302, 360],
                     [340, 450], [300, 450]], np.float32)
    long = (base[None] + rng.normal(0, 1.5, (512, 17, 2))).astype(np.float32)
    short = long[:64]
    done: list[str] = []

    async def go():
        b = MicroBatcher(det, max_batch=8, parallel=0)
        b.start()

        async def ask(name, w):
            res = await b.submit(w, None, "coco17", 30.0)
            done.append(name)
            return res

        t_long = asyncio.ensure_future(ask("long", long))
        await asyncio.sleep(0)  # the long one is submitted first
        out = await asyncio.gather(t_long, ask("short", short))
        await b.stop()
        return out

    (v_long, _), (v_short, _) = asyncio.run(go())
    assert done == ["short", "long"]
    here_long, here_short = det.predict(long, layout="coco17"), det.predict(short, layout="coco17")
    assert v_long.windows == here_long.windows == 225 and v_long.prob == pytest.approx(here_long.prob, abs=1e-6)
    assert v_short.windows == 1 and v_short.prob == pytest.approx(here_short.prob, abs=1e-6)
