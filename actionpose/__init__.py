"""actionpose: skeleton-based action recognition from video.

Pose frontend (ONNX) -> keypoint sequences (PYSKL pickle) -> ST-GCN family (ONNX) -> segments/events.
Heavy parts are imported lazily so ``import actionpose`` and ``actionpose --help`` stay fast.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "FallDetector": "actionpose.inference.fall",
    "RepCounter": "actionpose.inference.reps",
    "SkeletonDataset": "actionpose.data.format",
    "load_dataset": "actionpose.data.format",
    "save_dataset": "actionpose.data.format",
    "get_layout": "actionpose.skeleton",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'actionpose' has no attribute {name!r}")
