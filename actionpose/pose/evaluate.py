"""Accuracy checks for frontends: COCO OKS AP (pycocotools) and PCK against a reference skeleton."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import cv2
import numpy as np

from actionpose.errors import ActionposeError
from actionpose.skeleton import map_keypoints


def coco_ap(frontend, ann_file: str | Path, image_dir: str | Path | None = None) -> dict[str, float]:
    """Run ``frontend`` on every image of a COCO keypoint json and score it with pycocotools.

    Person score = detection score x mean keypoint score (as mmpose ranks top-down results).
    Keypoints are mapped into COCO-17 by joint name (BlazePose-33 -> 17 works, others must too).
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:  # pragma: no cover - dev extra
        raise ActionposeError("pycocotools is needed for COCO AP: pip install pycocotools") from None
    ann_file = Path(ann_file)
    image_dir = Path(image_dir) if image_dir else ann_file.parent
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
    results = []
    for img_id in gt.getImgIds():
        info = gt.loadImgs(img_id)[0]
        img = cv2.imread(str(image_dir / info["file_name"]))
        if img is None:
            raise ActionposeError(f"{image_dir / info['file_name']}: cannot read image")
        frontend.reset()
        fr = frontend.process(img, 0, 0.0)
        for p in fr.persons:
            kp = map_keypoints(p.keypoints, frontend.layout, "coco17")
            sc = map_keypoints(p.scores[:, None], frontend.layout, "coco17")[:, 0]
            flat = np.concatenate([kp, sc[:, None]], 1).reshape(-1)
            results.append({"image_id": img_id, "category_id": 1, "keypoints": flat.round(2).tolist(),
                            "score": float(p.score * sc.mean())})
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR": 0.0, "detections": 0}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return {"AP": float(s[0]), "AP50": float(s[1]), "AP75": float(s[2]), "AR": float(s[5]),
            "detections": len(results)}


def pck(pred: np.ndarray, ref: np.ndarray, valid: np.ndarray, alpha: float = 0.1) -> tuple[int, int]:
    """Correct/total keypoints of one person: within ``alpha`` x max(w, h) of the reference's box."""
    if not valid.any():
        return 0, 0
    r = ref[valid]
    size = float(max(np.ptp(r[:, 0]), np.ptp(r[:, 1]), 1.0))
    d = np.hypot(*(pred[valid] - r).T)
    return int((d <= alpha * size).sum()), int(valid.sum())


def pck_vs_reference(frontend, video: str | Path, reference: np.ndarray, alpha: float = 0.1,
                     fps: float | None = None) -> dict[str, float]:
    """PCK of a single-person video against a per-frame COCO-17 reference [T,17,2] (<= 0 = missing).

    Each frame takes the person nearest the reference's centre; a frame where the frontend found
    nobody counts all its reference points as misses.
    """
    ok = total = frames_found = 0
    per_frame = []
    for fr in frontend.stream(str(video), fps=fps, keep_images=False):
        if fr.source_index >= len(reference):
            break
        ref = reference[fr.source_index]
        valid = (ref > 0).all(1)
        n = int(valid.sum())
        if not fr.persons:
            total += n
            per_frame.append(0.0)
            continue
        c = ref[valid].mean(0)
        best = min(fr.persons, key=lambda p: np.hypot(*(p.keypoints.mean(0) - c)) if frontend.layout == "coco17"
                   else np.hypot(*(map_keypoints(p.keypoints, frontend.layout, "coco17").mean(0) - c)))
        kp = map_keypoints(best.keypoints, frontend.layout, "coco17")
        a, b = pck(kp, ref, valid, alpha)
        ok, total, frames_found = ok + a, total + b, frames_found + 1
        per_frame.append(a / max(b, 1))
    return {"pck": ok / max(total, 1), "correct": ok, "total": total, "frames_with_person": frames_found,
            "frames": len(per_frame)}

