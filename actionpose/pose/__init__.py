"""The frozen 2D pose frontend: ONNX person detection, top-down pose, tracking, ``extract``.

    from actionpose.pose import load_frontend, extract
    fe = load_frontend("default")            # vendored RTMDet-nano + MoveNet, offline
    for frame in fe.stream("video.mp4"):     # frame.persons: [Person(track_id, keypoints, scores, box)]
        ...
    ds = extract("video.mp4", "out.pkl")     # canonical PYSKL pickle, one annotation per video
"""
from actionpose.pose.frontend import (FramePoses, Frontend, FrontendSpec, Person, get_frontend_spec, list_frontends,
                                      load_frontend, register_frontend)

__all__ = ["FramePoses", "Frontend", "FrontendSpec", "Person", "extract", "get_frontend_spec", "list_frontends",
           "load_frontend", "register_frontend"]


def extract(*args, **kwargs):
    """See :func:`actionpose.pose.extraction.extract` (imported lazily)."""
    from actionpose.pose.extraction import extract as _extract

    return _extract(*args, **kwargs)
