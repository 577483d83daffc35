"""Person detectors: image (BGR) -> boxes [N,4] xyxy in image pixels and scores [N]."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from actionpose.pose.geometry import letterbox
from actionpose.pose.session import open_session
from actionpose.pose.zoo import ModelSpec


class RTMDet:
    """mmdeploy RTMDet export: BGR, (x - mean) / std, letterbox top-left pad 114; NMS inside the graph.

    The nano export only runs with batch 1, so frames go one at a time.
    """

    mean = np.array([103.53, 116.28, 123.675], np.float32)
    std = np.array([57.375, 57.12, 58.395], np.float32)

    def __init__(self, spec: ModelSpec, path: Path, threads: int = 2, size: int = 320, score_thr: float = 0.3):
        self.session = open_session(path, spec.input_shape, threads, f"detector {spec.name}")
        self.input_name = self.session.get_inputs()[0].name
        self.size, self.score_thr = size, score_thr

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        canvas, r = letterbox(image, (self.size, self.size))
        x = (canvas.astype(np.float32) - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), r

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, r = self.preprocess(image)
        dets, labels = self.session.run(None, {self.input_name: x})[:2]
        dets, labels = dets[0], labels[0]
        keep = (dets[:, 4] >= self.score_thr) & (labels == 0)
        return (dets[keep, :4] / r).astype(np.float32), dets[keep, 4].astype(np.float32)


class YOLOX:
    """Raw YOLOX head (no NMS): BGR 0..255, letterbox pad 114; grid decode + NMS here."""

    def __init__(self, spec: ModelSpec, path: Path, threads: int = 2, score_thr: float = 0.3, nms_thr: float = 0.45):
        self.session = open_session(path, spec.input_shape, threads, f"detector {spec.name}")
        self.input_name = self.session.get_inputs()[0].name
        self.size = int(spec.input_shape[2] or 416)
        self.score_thr, self.nms_thr = score_thr, nms_thr
        grids, strides = [], []
        for st in (8, 16, 32):
            n = self.size // st
            xv, yv = np.meshgrid(np.arange(n), np.arange(n))
            grids.append(np.stack([xv, yv], -1).reshape(-1, 2))
            strides.append(np.full((n * n, 1), st))
        self.grid = np.concatenate(grids).astype(np.float32)
        self.stride = np.concatenate(strides).astype(np.float32)

    def decode(self, out: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
        """[A, 85] head rows -> person boxes/scores after NMS, in image pixels."""
        score = out[:, 4] * out[:, 5]
        m = score >= self.score_thr
        if not m.any():
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        xy = (out[m, :2] + self.grid[m]) * self.stride[m]
        wh = np.exp(out[m, 2:4]) * self.stride[m]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1) / ratio
        score = score[m]
        keep = cv2.dnn.NMSBoxes([[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes],
                                score.tolist(), self.score_thr, self.nms_thr)
        keep = np.asarray(keep, np.int64).reshape(-1)
        return boxes[keep].astype(np.float32), score[keep].astype(np.float32)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        canvas, r = letterbox(image, (self.size, self.size))
        x = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
        out = self.session.run(None, {self.input_name: x})[0][0]
        return self.decode(out, r)


def ssd_anchors(size: int = 224, strides: tuple[int, ...] = (8, 16, 32, 32, 32)) -> np.ndarray:
    """MediaPipe's ``SsdAnchorsCalculator`` for the pose detector (fixed anchor size, 2 anchors per layer,
    layers with the same stride share one grid): [A, 2] anchor centres, normalised; 2254 for 224 px."""
    out, i = [], 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = int(np.ceil(size / strides[i]))
        yy, xx = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        centres = np.stack([xx, yy], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, 2 * (j - i), axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(out).astype(np.float32)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, iou_thr: float) -> list[tuple]:
    """MediaPipe's WEIGHTED non-max suppression: each cluster (IoU > ``iou_thr`` with its best box)
    becomes the score-weighted mean of its boxes and keypoints, keeping the best score."""
    from actionpose.pose.geometry import box_iou

    order = np.argsort(-scores)
    out = []
    while len(order):
        iou = box_iou(boxes[order[:1]], boxes[order])[0]
        members = order[iou > iou_thr]
        members = members if len(members) else order[:1]
        w = scores[members][:, None]
        out.append(((boxes[members] * w).sum(0) / w.sum(), (points[members] * w[:, :, None]).sum(0) / w.sum(),
                    float(scores[order[0]])))
        order = order[~np.isin(order, members)]
    return out


class BlazePoseDetector:
    """MediaPipe's pose detector (``pose_detection_cpu.pbtxt``): the whole frame letterboxed (centred,
    zero border) into 224x224 RGB in [-1, 1]; SSD anchors; sigmoid scores >= 0.5; weighted NMS at IoU 0.3.

    Each detection carries a face box and four keypoints; MediaPipe's pose ROI is the rotated square
    around keypoint 0 (hip centre) with side 2 x |kp1 - kp0| x 1.25, rotated so kp0 -> kp1 points up.
    ``last_rois`` holds that ROI per returned box, for the landmark model; the returned box is the
    unexpanded square around the hip centre (what the tracker matches on).
    """

    own_threshold = True  # MediaPipe's min_detection_confidence; its weak detections are not people

    def __init__(self, spec: ModelSpec, path: Path, threads: int = 2, score_thr: float = 0.5, nms_thr: float = 0.3):
        self.session = open_session(path, spec.input_shape, threads, f"detector {spec.name}")
        self.input_name = self.session.get_inputs()[0].name
        self.size = int(spec.input_shape[1] or 224)
        self.score_thr, self.nms_thr = score_thr, nms_thr
        self.anchors = ssd_anchors(self.size)
        self.last_rois = np.zeros((0, 4), np.float32)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from actionpose.pose.estimators import roi_matrix, roi_to_image
        from actionpose.pose.roi_tracking import alignment_roi

        h, w = image.shape[:2]
        frame_roi = np.array([w / 2, h / 2, max(w, h), 0.0], np.float32)
        im = cv2.warpAffine(image, roi_matrix(*frame_roi, self.size), (self.size, self.size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        x = np.ascontiguousarray(im[None, :, :, ::-1], dtype=np.float32) / 127.5 - 1.0
        raw, logit = self.session.run(None, {self.input_name: x})
        raw, logit = raw[0], logit[0, :, 0]
        scores = (1.0 / (1.0 + np.exp(-np.clip(logit.astype(np.float64), -100, 100)))).astype(np.float32)
        m = scores >= min(self.score_thr, 0.999)
        if not m.any():
            self.last_rois = np.zeros((0, 4), np.float32)
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        a, r = self.anchors[m], raw[m] / self.size
        c, half = r[:, :2] + a, r[:, 2:4] / 2
        face = np.concatenate([c - half, c + half], 1)
        kps = r[:, 4:12].reshape(-1, 4, 2) + a[:, None]
        boxes, rois, out_scores = [], [], []
        for _, kp, score in weighted_nms(face, kps, scores[m], self.nms_thr):
            pts = roi_to_image(kp[:2] * self.size, frame_roi, self.size)
            roi = alignment_roi(pts[0], pts[1])
            half_side = roi[2] / 2 / 1.25
            boxes.append([roi[0] - half_side, roi[1] - half_side, roi[0] + half_side, roi[1] + half_side])
            rois.append(roi)
            out_scores.append(score)
        self.last_rois = np.asarray(rois, np.float32).reshape(-1, 4)
        return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(out_scores, np.float32)


DETECTORS = {"rtmdet-nano-person": RTMDet, "yolox-nano": YOLOX, "blazepose-detector": BlazePoseDetector}
