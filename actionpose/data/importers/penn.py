"""Penn Action ``labels/*.mat`` (13 joints, 2D pixels, official train flag)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from actionpose.data.format import SkeletonDataset, make_annotation, validate_annotation
from actionpose.data.importers import register_importer
from actionpose.data.importers.common import find_files, mat_key, read_mat
from actionpose.errors import where

PENN_CLASSES = ["baseball_pitch", "baseball_swing", "bench_press", "bowl", "clean_and_jerk", "golf_swing",
                "jump_rope", "jumping_jacks", "pullup", "pushup", "situp", "squat", "strum_guitar",
                "tennis_forehand", "tennis_serve"]


def penn_scores(kp: np.ndarray, visibility: np.ndarray) -> np.ndarray:
    """Penn's visibility flags -> keypoint scores. Penn marks an occluded joint visibility 0 but still
    fills in the annotator's guess of where it is, except a few left at the image corner (x, y <= 2):
    seen 1.0, guessed 0.5 (usable, e.g. for counting repetitions), corner 0.0 (missing). Scoring the
    guesses 0 made `actionpose reps` refuse clips whose documented counts use them."""
    return np.where(visibility > 0, 1.0, np.where(penn_corner(kp), 0.0, 0.5)).astype(np.float32)


def penn_corner(kp: np.ndarray) -> np.ndarray:
    """Joints left at the image corner (x, y <= 2 px): not annotated at all."""
    return (np.asarray(kp) <= 2).all(-1)


@register_importer("penn")
def import_penn(src: Path) -> SkeletonDataset:
    anns, split = [], {"train": [], "test": []}
    for path in find_files(src, "*.mat"):
        m = read_mat(path)
        action = str(np.asarray(mat_key(m, "action", path)).ravel()[0])
        if action not in PENN_CLASSES:
            raise where(path, f"unknown action {action!r}")
        x = np.asarray(mat_key(m, "x", path), dtype=np.float32)
        y = np.asarray(mat_key(m, "y", path), dtype=np.float32)
        if x.ndim != 2 or x.shape != y.shape:
            raise where(path, f"x/y shapes {x.shape} and {y.shape} differ or are not [T, 13]")
        if x.shape[1] != 13:
            raise where(path, f"{x.shape[1]} joints but Penn Action (penn13) has 13")
        vis = np.asarray(m.get("visibility", np.ones_like(x)), dtype=np.float32)
        if vis.shape != x.shape:
            vis = np.ones_like(x)
        h, w = (int(v) for v in np.asarray(mat_key(m, "dimensions", path)).ravel()[:2])
        kp = np.stack([x, y], -1)[None]
        scores = penn_scores(kp[0], vis)[None]
        # a corner joint is stored as the canonical missing joint, (0, 0) with score 0. Left at (1, 1) px it counted
        # as present wherever joints are told apart by their coordinates (the centring and scaling of a sequence):
        # 187,326 joints in 769 of 2,326 clips pulled the body's box to the image corner
        kp[penn_corner(kp)] = 0.0
        ann = make_annotation(path.stem, PENN_CLASSES.index(action), kp, scores, img_shape=(h, w),
                              view=str(np.asarray(m.get("pose", [""])).ravel()[0]))
        validate_annotation(ann, "penn13", len(PENN_CLASSES), path)
        anns.append(ann)
        flag = int(np.asarray(mat_key(m, "train", path)).ravel()[0])
        split["train" if flag == 1 else "test"].append(path.stem)
    return SkeletonDataset(anns, layout="penn13", classes=list(PENN_CLASSES), split=split,
                           meta={"source": "penn_action", "protocol": "official train flag", "coords": "pixels"})
