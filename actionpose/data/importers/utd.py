"""UTD-MHAD ``Skeleton/aA_sS_tT_skeleton.mat`` (Kinect v1 20 joints, UTD order, 3D metres).

Cross-subject protocol: odd subjects train, even subjects test.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from actionpose.data.format import SkeletonDataset, make_annotation, validate_annotation
from actionpose.data.importers import register_importer
from actionpose.data.importers.common import find_files, mat_key, read_mat
from actionpose.errors import where

UTD_CLASSES = ["swipe_left", "swipe_right", "wave", "clap", "throw", "arm_cross", "basketball_shoot",
               "draw_x", "draw_circle_cw", "draw_circle_ccw", "draw_triangle", "bowling", "boxing",
               "baseball_swing", "tennis_swing", "arm_curl", "tennis_serve", "push", "knock", "catch",
               "pickup_throw", "jog", "walk", "sit_to_stand", "stand_to_sit", "lunge", "squat"]
_NAME = re.compile(r"a(\d+)_s(\d+)_t(\d+)_skeleton")


@register_importer("utd")
def import_utd(src: Path) -> SkeletonDataset:
    anns, split = [], {"train": [], "test": []}
    for path in find_files(src, "*_skeleton.mat"):
        match = _NAME.fullmatch(path.stem)
        if not match:
            raise where(path, "file name is not of the UTD-MHAD form aA_sS_tT_skeleton.mat")
        action, subject, _ = (int(g) for g in match.groups())
        if not 1 <= action <= len(UTD_CLASSES):
            raise where(path, f"action {action} outside 1..{len(UTD_CLASSES)}")
        skel = np.asarray(mat_key(read_mat(path), "d_skel", path), dtype=np.float32)
        if skel.ndim != 3 or skel.shape[1] != 3:
            raise where(path, f"'d_skel' has shape {skel.shape}, expected [20, 3, T]")
        if skel.shape[0] != 20:
            raise where(path, f"{skel.shape[0]} joints but UTD-MHAD (kinect20_utd) has 20")
        name = path.stem.removesuffix("_skeleton")
        ann = make_annotation(name, action - 1, skel.transpose(2, 0, 1)[None], subject=subject, fps=30.0)  # README: 30 fps
        validate_annotation(ann, "kinect20_utd", len(UTD_CLASSES), path)
        anns.append(ann)
        split["train" if subject % 2 == 1 else "test"].append(name)
    return SkeletonDataset(anns, layout="kinect20_utd", classes=list(UTD_CLASSES), split=split,
                           meta={"source": "utd_mhad", "protocol": "cross-subject (odd train, even test)",
                                 "coords": "metres"})
