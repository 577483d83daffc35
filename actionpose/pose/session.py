"""onnxruntime sessions with the checks that turn a wrong file into a one-line error."""
from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from actionpose.errors import ActionposeError

DEFAULT_THREADS = 2
MAX_THREADS = 256  # far above any CPU here; 100000 started ~15,400 threads, took 16 GB and ignored SIGTERM


def checked_threads(threads: int) -> int:
    """``threads`` for an ONNX Runtime session, or a one-line error naming the option and its range."""
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ActionposeError(f"--threads {threads}: give a whole number of CPU threads from 1 to {MAX_THREADS}")
    return threads


def open_session(path: str | Path, expected_shape: tuple[int | None, ...] | None = None,
                 threads: int = DEFAULT_THREADS, what: str = "model") -> ort.InferenceSession:
    """Load an ONNX file on the CPU provider; refuse it if its first input's static dims disagree."""
    path = Path(path)
    so = ort.SessionOptions()
    so.intra_op_num_threads = checked_threads(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # no busy-waiting worker threads: on a shared 2-core machine spinning only steals CPU from others
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        msg = str(e).splitlines()[0][:160]
        raise ActionposeError(f"{path}: cannot load {what} as ONNX ({msg})") from None
    if expected_shape is not None:
        shape = sess.get_inputs()[0].shape
        ok = len(shape) == len(expected_shape) and all(
            e is None or not isinstance(s, int) or s == e for s, e in zip(shape, expected_shape))
        if not ok:
            want = "x".join("?" if e is None else str(e) for e in expected_shape)
            got = "x".join(str(s) if isinstance(s, int) else "?" for s in shape)
            raise ActionposeError(f"{path}: input shape {got} does not match the {what} entry ({want})")
    return sess
