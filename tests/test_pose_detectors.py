"""Detectors: YOLOX grid decode + NMS on a tiny ONNX model with a known head output; COCO AP on ../shared."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actionpose.pose.detectors import YOLOX
from actionpose.pose.zoo import get_model
from test_pose_decoders import const_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def test_yolox_grid_decode_and_nms(tmp_path):
    rows = np.zeros((3549, 85), np.float32)
    rows[:, 2:4] = -10  # tiny boxes everywhere, scores 0
    # stride-8 cell (x=10, y=20) -> row 20*52+10: a 64x128 person box centred at ((10+0.5)*8, (20+0.5)*8)
    r = 20 * 52 + 10
    rows[r] = 0
    rows[r, :4] = [0.5, 0.5, np.log(64 / 8), np.log(128 / 8)]
    rows[r, 4], rows[r, 5] = 0.9, 0.8
    # its neighbour: nearly the same box, lower score -> removed by NMS
    rows[r + 1, :4] = [-0.4, 0.5, np.log(64 / 8), np.log(128 / 8)]
    rows[r + 1, 4], rows[r + 1, 5] = 0.8, 0.7
    # a stride-32 cell with a confident non-person class -> ignored
    s32 = 52 * 52 + 26 * 26 + 3 * 13 + 4
    rows[s32, :4] = [0.5, 0.5, np.log(2), np.log(3)]
    rows[s32, 4], rows[s32, 6] = 0.95, 0.95
    path = const_model(tmp_path / "yolox.onnx", {"output": rows[None]}, in_shape=(1, 3, 416, 416))
    det = YOLOX(get_model("yolox-nano"), path, threads=1, score_thr=0.3)
    img = np.zeros((208, 416, 3), np.uint8)  # letterbox ratio 1.0 (width 416)
    boxes, scores = det(img)
    assert boxes.shape == (1, 4)
    np.testing.assert_allclose(boxes[0], [84 - 32, 164 - 64, 84 + 32, 164 + 64], atol=1e-3)
    assert scores[0] == pytest.approx(0.72)
    img2 = np.zeros((416, 832, 3), np.uint8)  # ratio 0.5: boxes come back in image pixels (x2)
    boxes2, _ = det(img2)
    np.testing.assert_allclose(boxes2[0], 2 * boxes[0], atol=1e-3)


def test_default_frontend_coco_ap_on_shared_images():
    ann = SHARED / "images" / "coco" / "test_coco.json"
    if not ann.exists():
        pytest.skip("../shared not present: images/coco")
    from actionpose.pose import load_frontend
    from actionpose.pose.evaluate import coco_ap

    r = coco_ap(load_frontend("default", progress=False), ann)
    # 12 labelled people in 4 images; measured 0.593 AP / 0.911 AP50 (docs/frontend.md)
    assert r["AP50"] >= 0.8 and r["AP"] >= 0.45
