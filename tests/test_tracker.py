"""Tracker: IDs survive a crossing, a short occlusion, weak detections; lost tracks expire."""
from __future__ import annotations

import numpy as np

from actionpose.pose.tracker import COCO_SIGMAS, Tracker, oks

# a standing COCO-17 skeleton, 100 px tall, origin at its box centre
_SKEL = np.array([[0, -45], [-3, -48], [3, -48], [-7, -46], [7, -46], [-15, -30], [15, -30], [-18, -10], [18, -10],
                  [-20, 8], [20, 8], [-10, 5], [10, 5], [-10, 28], [10, 28], [-10, 50], [10, 50]], np.float32)


def person(cx, cy, scale=1.0, arms_up=False):
    k = _SKEL * scale
    if arms_up:
        k = k.copy()
        k[[7, 8, 9, 10], 1] = -60 * scale  # elbows and wrists above the head
    k = k + [cx, cy]
    box = np.array([k[:, 0].min() - 5, k[:, 1].min() - 5, k[:, 0].max() + 5, k[:, 1].max() + 5], np.float32)
    return box, k, np.full(17, 0.9, np.float32)


def run(tracker, frames):
    out = []
    for f, dets in enumerate(frames):
        if not dets:
            out.append([])
            tracker.update(f, np.zeros((0, 4)), np.zeros(0), np.zeros((0, 17, 2)), np.zeros((0, 17)))
            continue
        boxes, kps, scs, scores = zip(*[(b, k, s, sc) for (b, k, s), sc in dets])
        out.append(list(tracker.update(f, np.stack(boxes), np.array(scores), np.stack(kps), np.stack(scs))))
    return out


def test_crossing_keeps_ids():
    # A walks right, B walks left, both through x=300 at frame 20; detections listed in a
    # different order every frame so the IDs cannot come from the input order
    frames = []
    for f in range(41):
        a = (person(100 + 10 * f, 200), 0.9)
        b = (person(500 - 10 * f, 205, scale=1.1, arms_up=True), 0.85)
        frames.append([a, b] if f % 2 else [b, a])
    ids = run(Tracker(sigmas=COCO_SIGMAS), frames)
    a_ids = {ids[f][f % 2 == 0] for f in range(41)}
    b_ids = {ids[f][f % 2 == 1] for f in range(41)}
    assert len(a_ids) == 1 and len(b_ids) == 1 and a_ids != b_ids


def test_short_occlusion_reidentified_by_prediction():
    # B disappears behind A for 8 frames and reappears where its motion predicts
    frames = []
    for f in range(40):
        a = (person(300, 200), 0.9)
        dets = [a]
        if not 15 <= f < 23:
            dets.append((person(100 + 8 * f, 210, arms_up=True), 0.9))
        frames.append(dets)
    ids = run(Tracker(sigmas=COCO_SIGMAS), frames)
    b_before, b_after = ids[14][1], ids[23][1]
    assert b_before == b_after
    assert {i[0] for i in ids} == {ids[0][0]}


def test_low_score_detection_continues_track_but_never_starts_one():
    t = Tracker()
    b, k, s = person(200, 200)
    assert t.update(0, b[None], np.array([0.9]), k[None], s[None])[0] == 0
    assert t.update(1, b[None] + 2, np.array([0.15]), k[None] + 2, s[None])[0] == 0  # ByteTrack stage 2
    far, kf, sf = person(600, 200)
    assert t.update(2, far[None], np.array([0.15]), kf[None], sf[None])[0] == -1  # weak and unmatched


def test_lost_track_expires_after_buffer():
    t = Tracker(buffer=5)
    b, k, s = person(200, 200)
    first = t.update(0, b[None], np.array([0.9]), k[None], s[None])[0]
    for f in range(1, 8):
        t.update(f, np.zeros((0, 4)), np.zeros(0), np.zeros((0, 17, 2)), np.zeros((0, 17)))
    assert t.update(8, b[None], np.array([0.9]), k[None], s[None])[0] != first


def test_oks_identity_and_distance():
    _, k, s = person(0, 0)
    assert oks(k, s, k, s, 100 * 40, COCO_SIGMAS) == 1.0
    assert oks(k, s, k + 30, s, 100 * 40, COCO_SIGMAS) < 0.2
    assert oks(k, s * 0, k, s, 100 * 40) == 0.0  # no joint confident in both


def test_weak_candidates_one_per_uncovered_track():
    t = Tracker()
    b1, k1, s1 = person(100, 200)
    b2, k2, s2 = person(400, 200)
    t.update(0, np.stack([b1, b2]), np.array([0.9, 0.9]), np.stack([k1, k2]), np.stack([s1, s2]))
    # frame 1: a confident box covers track 0; track 1 has only weak boxes, one much closer than the others
    boxes = np.stack([b1, b2 + 2, b2 + 25, b2 + 60, b1 + 3])
    confident = np.array([True, False, False, False, False])
    keep = t.weak_candidates(1, boxes, confident)
    assert keep.tolist() == [False, True, False, False, False]
