"""BlazePose the MediaPipe way: one-euro ROI smoothing, alignment ROI, heatmap refinement, MediaPipe's pose
detector (anchors, weighted NMS, ROI), and — on ../shared — agreement with MediaPipe's own output."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from actionpose.pose.detectors import BlazePoseDetector, ssd_anchors, weighted_nms
from actionpose.pose.estimators import _sigmoid, refine_from_heatmap
from actionpose.pose.roi_tracking import OneEuro, RoiState, alignment_roi
from actionpose.pose.zoo import get_model
from test_pose_decoders import const_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MP_REF = Path(__file__).parent / "fixtures" / "pose" / "mediapipe_fall_video_1.npz"


def test_one_euro_matches_mediapipe_formula():
    f = OneEuro(min_cutoff=0.01, beta=10.0, d_cutoff=1.0, rate=30.0)
    assert f(np.array([100.0]), 0.01)[0] == 100.0  # the first value passes through
    assert f(np.array([100.0]), 0.01)[0] == pytest.approx(100.0)  # a still point stays still
    # a 30 px jump at object size 100: speed 30 * 0.01 * 30 Hz = 9 /s, derivative EMA alpha(1 Hz)
    a_d = 1 / (1 + 30 / (2 * np.pi * 1.0))
    dx = a_d * 9.0
    a = 1 / (1 + 30 / (2 * np.pi * (0.01 + 10.0 * dx)))
    assert f(np.array([130.0]), 0.01)[0] == pytest.approx(a * 130 + (1 - a) * 100, rel=1e-9)
    assert 100 < a * 130 + (1 - a) * 100 < 130  # follows with lag


def test_alignment_roi_orientation_and_size():
    up = alignment_roi([100, 200], [100, 120])  # scale point straight above the hips: upright
    np.testing.assert_allclose(up, [100, 200, 2 * 80 * 1.25, 0.0], atol=1e-5)
    right = alignment_roi([100, 200], [180, 200])  # head to the right: lying, rotated +90 degrees
    assert right[3] == pytest.approx(np.pi / 2)


def test_roi_state_smooths_and_copies_independently():
    s = RoiState.start(np.array([[100.0, 200.0], [100.0, 120.0]]))
    roi0 = s.roi.copy()
    c = s.copy()
    c.update(np.array([[140.0, 200.0], [140.0, 120.0]]))  # the person moved 40 px right
    assert roi0[0] < c.roi[0] < 140  # smoothed: the ROI moves part of the way
    np.testing.assert_array_equal(s.roi, roi0)  # the original state is untouched


def _refine_loop(xy, heatmap, kernel=7, min_conf=0.5):
    """refine_landmarks_from_heatmap_calculator.cc, transcribed literally (per landmark, per cell)."""
    hh, hw, _ = heatmap.shape
    out = np.array(xy, np.float32)
    off = (kernel - 1) // 2
    for j in range(len(xy)):
        c, r = int(xy[j, 0] * hw), int(xy[j, 1] * hh)
        if c < 0 or c >= hw or r < 0 or r >= hh:
            continue
        s = wc = wr = mx = 0.0
        for row in range(max(0, r - off), min(hh, r + off + 1)):
            for col in range(max(0, c - off), min(hw, c + off + 1)):
                conf = float(_sigmoid(np.float64(heatmap[row, col, j])))
                s, mx, wc, wr = s + conf, max(mx, conf), wc + col * conf, wr + row * conf
        if mx >= min_conf and s > 0:
            out[j] = [wc / hw / s, wr / hh / s]
    return out


def test_refine_from_heatmap_is_mediapipes_arithmetic():
    rng = np.random.default_rng(0)
    for _ in range(5):
        hm = rng.normal(0, 3, (64, 64, 39)).astype(np.float32)
        xy = rng.uniform(-0.1, 1.1, (39, 2)).astype(np.float32)  # some outside: left as they are
        np.testing.assert_allclose(refine_from_heatmap(xy, hm), _refine_loop(xy, hm), atol=1e-6)
    hm = np.full((64, 64, 1), -50.0, np.float32)
    hm[20, 30, 0] = 50.0  # one hot cell -> exactly col / width, row / height (no half-cell shift)
    np.testing.assert_allclose(refine_from_heatmap(np.array([[31.4 / 64, 21.2 / 64]]), hm)[0], [30 / 64, 20 / 64],
                               atol=1e-6)


def test_ssd_anchors_and_weighted_nms():
    a = ssd_anchors(224)
    assert a.shape == (2254, 2)  # 28*28*2 + 14*14*2 + 7*7*6
    np.testing.assert_allclose(a[:2], [[0.5 / 28, 0.5 / 28]] * 2)
    np.testing.assert_allclose(a[-1], [6.5 / 7, 6.5 / 7])
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    pts = np.array([[[0, 0]], [[2, 2]], [[9, 9]]], np.float32)
    out = weighted_nms(boxes, pts, np.array([0.9, 0.6, 0.8], np.float32), 0.3)
    assert len(out) == 2 and out[0][2] == pytest.approx(0.9) and out[1][2] == pytest.approx(0.8)
    np.testing.assert_allclose(out[0][0], [0.4, 0, 10.4, 10], atol=1e-5)  # score-weighted mean
    np.testing.assert_allclose(out[0][1], [[0.8, 0.8]], atol=1e-5)


def test_blazepose_detector_decodes_one_person(tmp_path):
    raw = np.zeros((1, 2254, 12), np.float32)
    logit = np.full((1, 2254, 1), -20.0, np.float32)
    i = 28 * 28 * 2 + (7 * 14 + 6) * 2  # stride-16 cell (x=6, y=7): anchor centre (6.5/14, 7.5/14)
    raw[0, i, :4] = [0, 0, 20, 20]
    raw[0, i, 4:8] = [0, 0, 0, -56]  # hip centre on the anchor, full-body point 56 px (of 224) above it
    logit[0, i, 0] = 3.0
    path = const_model(tmp_path / "det.onnx", {"Identity": raw, "Identity_1": logit}, in_shape=(1, 224, 224, 3))
    det = BlazePoseDetector(get_model("blazepose-detector"), path, threads=1)
    img = np.zeros((112, 224, 3), np.uint8)  # letterboxed: the 224-px square is centred on the 224x112 frame
    boxes, scores = det(img)
    assert boxes.shape == (1, 4) and scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-5)
    cx, cy = 6.5 / 14 * 224, 7.5 / 14 * 224 - 56  # tensor px -> frame px (the frame sits 56 px down)
    np.testing.assert_allclose(det.last_rois[0], [cx, cy, 2 * 56 * 1.25, 0.0], atol=1e-3)
    np.testing.assert_allclose(boxes[0], [cx - 56, cy - 56, cx + 56, cy + 56], atol=1e-3)


def _agreement(frames_kp, ref, alpha=0.05):
    ok = total = 0
    for kp, m in zip(frames_kp, ref):
        vis = m[:, 2] >= 0.5
        size = max(np.ptp(m[vis, 0]), np.ptp(m[vis, 1]))
        total += int(vis.sum())
        if kp is not None:
            ok += int((np.hypot(*(kp[vis] - m[vis, :2]).T) <= alpha * size).sum())
    return ok / total


@pytest.mark.parametrize("frontend,det_every", [("blazepose-detector+blazepose", 0), ("rtmdet-nano+blazepose", 10)])
def test_blazepose_agrees_with_mediapipe_on_the_fall_video(frontend, det_every):
    video = SHARED / "videos" / "fall_video_1.mp4"
    if not video.exists() or not (SHARED / "models" / "blazepose_detector.onnx").exists():
        pytest.skip("../shared not present: fall video / BlazePose models")
    from actionpose.pose import load_frontend

    ref = np.load(MP_REF)
    fe = load_frontend(frontend, det_every=det_every, max_persons=1, progress=False)
    cap, kps, rois = cv2.VideoCapture(str(video)), [], []
    for i in range(len(ref["landmarks"])):
        ok, img = cap.read()
        assert ok
        r = fe.process(img, i)
        kps.append(r.persons[0].keypoints if r.persons else None)
        rois.append(r.persons[0].roi.roi if r.persons and r.persons[0].roi is not None else np.full(4, np.nan))
    assert _agreement(kps, ref["landmarks"]) >= 0.95  # MediaPipe's own output, PCK@0.05 of its landmark box
    # from frame 15 on (after both seeds settled) the smoothed ROI follows MediaPipe's within a few px
    err = np.abs(np.array(rois) - ref["roi_from_landmarks"])[15:]
    assert np.nanmax(err[:, :2]) < 10 and np.nanmax(err[:, 2]) < 0.06 * np.nanmedian(ref["roi_from_landmarks"][15:, 2])


def test_mediapipe_frontend_detecting_every_frame_keeps_one_track():
    """With the detector on every frame (the CLI default), MediaPipe's detector returns two overlapping
    detections of the falling man (frame 55); the followed ROI goes to one of them and the other is dropped
    as a duplicate instead of starting a second skeleton of the same body."""
    video = SHARED / "videos" / "fall_video_1.mp4"
    if not video.exists() or not (SHARED / "models" / "blazepose_detector.onnx").exists():
        pytest.skip("../shared not present: fall video / BlazePose models")
    from actionpose.pose import load_frontend

    fe = load_frontend("mediapipe", det_every=1, progress=False)
    ids = [[p.track_id for p in fr.persons] for fr in fe.stream(str(video), keep_images=False)]
    assert len(ids) == 108 and all(i == [0] for i in ids)
