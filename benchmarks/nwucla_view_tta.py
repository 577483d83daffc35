"""Test-time camera rotations on NW-UCLA: top-1 of a 3D joint model with the test clips rotated about the
vertical axis, per angle and averaged (docs/history/training-log.md, "Test-time camera rotations").

Usage: python benchmarks/nwucla_view_tta.py MODEL.onnx DATA.pkl [SPLIT]   (SPLIT default train_v2)
"""
import sys

import numpy as np

from actionpose.data.format import load_dataset
from actionpose.inference.predictor import load_predictor

ANGLES = [0, -30, -15, 15, 30]


def rot_y(kp: np.ndarray, deg: float) -> np.ndarray:
    """Rotate [..., 3] joints about the camera's vertical (y) axis: a change of camera azimuth."""
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    return kp @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32).T


def main(model: str, data: str, split: str = "train_v2") -> None:
    ds = load_dataset(data)
    byid = {a["frame_dir"]: a for a in ds.annotations}
    anns = [byid[i] for i in ds.split[split]]
    labels = np.array([a["label"] for a in anns])
    pred = load_predictor(model, threads=1)
    probs = {}
    for ang in ANGLES:
        seqs = [(rot_y(np.asarray(a["keypoint"], np.float32), ang), a.get("keypoint_score")) for a in anns]
        probs[ang] = pred.predict_sequences(seqs)
        print(f"rotation {ang:+d} deg: top1 {100 * (probs[ang].argmax(1) == labels).mean():.2f}", flush=True)
    for name, angs in [("mean of 5", ANGLES), ("mean of 3 (0, +-15)", [0, -15, 15])]:
        p = np.mean([probs[a] for a in angs], 0)
        print(f"{name}: top1 {100 * (p.argmax(1) == labels).mean():.2f} (n={len(labels)})")


if __name__ == "__main__":
    main(*sys.argv[1:])
