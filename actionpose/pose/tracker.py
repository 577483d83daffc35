"""Multi-person tracking: ByteTrack-style two-stage association on box IoU and keypoint OKS.

Stage 1 matches confident detections to every live track (active or recently lost) with
``(1 - w) * IoU + w * OKS`` against the track's constant-velocity prediction; stage 2 gives the
leftover low-score detections a chance to continue active tracks by IoU alone (ByteTrack's point:
an occluded person's weak box still belongs to its track). A lost track is kept for ``buffer``
frames, so a person who disappears behind someone briefly gets the old ID back.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from actionpose.pose.geometry import box_iou

# COCO keypoint sigmas (pycocotools); other layouts use their mean.
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0


def oks(kps_a: np.ndarray, sc_a: np.ndarray, kps_b: np.ndarray, sc_b: np.ndarray, area: float,
        sigmas: np.ndarray | None = None, thr: float = 0.2) -> float:
    """Object keypoint similarity of two poses over joints confident in both (0 if none are)."""
    vis = (sc_a >= thr) & (sc_b >= thr)
    if not vis.any():
        return 0.0
    k = (sigmas if sigmas is not None and len(sigmas) == len(kps_a) else np.full(len(kps_a), COCO_SIGMAS.mean())) * 2
    d2 = ((kps_a - kps_b) ** 2).sum(-1)
    e = d2 / (2 * max(area, 1.0) * k ** 2)
    return float(np.exp(-e[vis]).mean())


@dataclass
class Track:
    track_id: int
    box: np.ndarray
    score: float
    kps: np.ndarray | None
    kp_scores: np.ndarray | None
    last_seen: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    hits: int = 1

    def predict(self, frame: int) -> np.ndarray:
        gap = min(frame - self.last_seen, 10)  # constant velocity, but never extrapolate far
        return self.box + self.velocity * gap

    def shift(self, frame: int) -> np.ndarray:
        p = self.predict(frame)
        return np.array([(p[0] + p[2] - self.box[0] - self.box[2]) / 2, (p[1] + p[3] - self.box[1] - self.box[3]) / 2])


@dataclass
class Tracker:
    """Assigns persistent IDs; call :meth:`update` once per frame with that frame's detections."""

    high_thr: float = 0.3
    low_thr: float = 0.1
    match_thr: float = 0.2
    low_iou_thr: float = 0.4
    buffer: int = 30
    kp_weight: float = 0.5
    sigmas: np.ndarray | None = None
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 0

    def reset(self) -> None:
        self.tracks, self.next_id = [], 0

    def _similarity(self, tracks: list[Track], frame: int, boxes, kps, kp_scores) -> np.ndarray:
        if not tracks or not len(boxes):
            return np.zeros((len(tracks), len(boxes)), np.float32)
        sim = self._iou(tracks, frame, boxes)
        if kps is None or self.kp_weight <= 0:
            return sim
        out = np.empty_like(sim)
        for i, t in enumerate(tracks):
            if t.kps is None:
                out[i] = sim[i]
                continue
            moved = t.kps + t.shift(frame)
            area = float(np.prod(np.clip(t.box[2:] - t.box[:2], 1, None)))
            for j in range(len(boxes)):
                o = oks(moved, t.kp_scores, kps[j], kp_scores[j], area, self.sigmas)
                out[i, j] = (1 - self.kp_weight) * sim[i, j] + self.kp_weight * o
        return out

    @staticmethod
    def _iou(tracks: list[Track], frame: int, boxes: np.ndarray) -> np.ndarray:
        """IoU with the track's predicted box or its last box, whichever is higher: a person who
        stops abruptly (lands after a fall) must not be lost to an overshooting velocity."""
        pred = box_iou(np.stack([t.predict(frame) for t in tracks]), boxes)
        last = box_iou(np.stack([t.box for t in tracks]), boxes)
        return np.maximum(pred, last)

    def weak_candidates(self, frame: int, boxes: np.ndarray, confident: np.ndarray, iou_thr: float = 0.3,
                        max_gap: int = 5) -> np.ndarray:
        """Mask of the weak boxes worth a pose call: for each recently seen track that no confident box
        covers, the one weak box overlapping its prediction most (ByteTrack's second stage, but
        without paying a pose call for every weak box in a crowd)."""
        keep = np.zeros(len(boxes), bool)
        live = [t for t in self.tracks if frame - t.last_seen <= max_gap]
        if not live or not len(boxes):
            return keep
        iou = self._iou(live, frame, boxes)  # [tracks, boxes]
        for i in range(len(live)):
            if confident.any() and iou[i, confident].max() >= iou_thr:
                continue
            cand = np.where(confident, -1.0, iou[i])
            j = int(cand.argmax())
            if cand[j] >= iou_thr:
                keep[j] = True
        return keep

    @staticmethod
    def _match(sim: np.ndarray, thr: float) -> list[tuple[int, int]]:
        if sim.size == 0:
            return []
        rows, cols = linear_sum_assignment(-sim)
        return [(r, c) for r, c in zip(rows, cols) if sim[r, c] >= thr]

    def _apply(self, t: Track, frame: int, box, score, kp, kps_) -> None:
        gap = max(frame - t.last_seen, 1)
        v = (box - t.box) / gap
        t.velocity = 0.6 * t.velocity + 0.4 * v if t.hits > 1 else v
        t.box, t.score, t.kps, t.kp_scores, t.last_seen = box, float(score), kp, kps_, frame
        t.hits += 1

    def update(self, frame: int, boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray | None = None,
               kp_scores: np.ndarray | None = None) -> np.ndarray:
        """Returns one track id per detection (-1 for a low-score detection that matched nothing)."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        ids = np.full(len(boxes), -1, np.int64)
        self.tracks = [t for t in self.tracks if frame - t.last_seen <= self.buffer]
        high = np.nonzero(scores >= self.high_thr)[0]
        low = np.nonzero((scores < self.high_thr) & (scores >= self.low_thr))[0]

        def sub(idx):
            return (boxes[idx], None if kps is None else kps[idx], None if kp_scores is None else kp_scores[idx])

        # stage 1: confident detections vs all live tracks (re-identifies recently lost ones)
        tracks = sorted(self.tracks, key=lambda t: frame - t.last_seen)
        sim = self._similarity(tracks, frame, *sub(high))
        matched_t = set()
        for r, c in self._match(sim, self.match_thr):
            j = high[c]
            self._apply(tracks[r], frame, boxes[j], scores[j], None if kps is None else kps[j],
                        None if kp_scores is None else kp_scores[j])
            ids[j] = tracks[r].track_id
            matched_t.add(r)
        # stage 2: weak detections continue tracks seen in the previous frame, by IoU only
        rest = [t for i, t in enumerate(tracks) if i not in matched_t and frame - t.last_seen <= 1]
        if rest and len(low):
            iou = self._iou(rest, frame, boxes[low])
            for r, c in self._match(iou, self.low_iou_thr):
                j = low[c]
                self._apply(rest[r], frame, boxes[j], scores[j], None if kps is None else kps[j],
                            None if kp_scores is None else kp_scores[j])
                ids[j] = rest[r].track_id
        # new tracks from unmatched confident detections
        for j in high:
            if ids[j] < 0:
                t = Track(self.next_id, boxes[j].copy(), float(scores[j]), None if kps is None else kps[j],
                          None if kp_scores is None else kp_scores[j], frame)
                self.tracks.append(t)
                ids[j] = t.track_id
                self.next_id += 1
        return ids
