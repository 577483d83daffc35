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


DETECTORS = {"rtmdet-nano-person": RTMDet, "yolox-nano": YOLOX}
