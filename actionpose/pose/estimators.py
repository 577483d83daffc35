"""Top-down pose models: (image BGR, boxes [N,4]) -> keypoints [N,K,2] image px, scores [N,K].

Each class owns its model's pre-processing (crop, colour order, normalisation) and decoder.
Models with a dynamic batch axis get all crops of a frame in one call.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from actionpose.pose.decoders import flip_heatmaps, heatmap_decode, simcc_decode
from actionpose.pose.geometry import box_to_center_scale, crop, crop_to_image
from actionpose.pose.roi_tracking import PRESENCE_THRESHOLD, RoiState, alignment_roi
from actionpose.pose.session import open_session
from actionpose.pose.zoo import ModelSpec
from actionpose.skeleton import get_layout

IMAGENET_MEAN_RGB = np.array([123.675, 116.28, 103.53], np.float32)
IMAGENET_STD_RGB = np.array([58.395, 57.12, 57.375], np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


class _TopDown:
    layout = "coco17"
    input_size = (192, 256)  # (w, h)
    padding = 1.25

    def __init__(self, spec: ModelSpec, path: Path, threads: int = 2):
        self.spec = spec
        self.session = open_session(path, spec.input_shape, threads, f"pose model {spec.name}")
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.batched = not isinstance(inp.shape[0], int)

    def crops(self, image: np.ndarray, boxes: np.ndarray):
        aspect = self.input_size[0] / self.input_size[1]
        for b in boxes:
            c, s = box_to_center_scale(b, aspect, self.padding)
            yield c, s, crop(image, c, s, self.input_size)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        if self.batched or len(batch) == 1:
            return self.session.run(None, {self.input_name: batch})
        outs = [self.session.run(None, {self.input_name: batch[i:i + 1]}) for i in range(len(batch))]
        return [np.concatenate(o, 0) for o in zip(*outs)]

    def empty(self) -> tuple[np.ndarray, np.ndarray]:
        k = get_layout(self.layout).num_joints
        return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)


class _ImageNetTopDown(_TopDown):
    """OpenMMLab-style top-down models (RTMPose, ViTPose): NCHW RGB ImageNet-normalised crops, size from the ONNX."""

    def __init__(self, spec: ModelSpec, path: Path, threads: int = 2):
        super().__init__(spec, path, threads)
        self.layout = spec.extra.get("layout", "coco17")
        h, w = spec.input_shape[2], spec.input_shape[3]
        self.input_size = (int(w or 192), int(h or 256))

    def normalised_crops(self, image: np.ndarray, boxes: np.ndarray) -> tuple[list, np.ndarray]:
        """Affine crops of every box as one RGB ImageNet-normalised NCHW batch, plus (centre, scale) per crop."""
        cs, imgs = [], []
        for c, s, im in self.crops(image, boxes):
            cs.append((c, s))
            imgs.append(im[:, :, ::-1])
        x = ((np.stack(imgs).astype(np.float32) - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB).transpose(0, 3, 1, 2)
        return cs, np.ascontiguousarray(x)


class SimCCPose(_ImageNetTopDown):
    """RTMPose: RGB ImageNet-normalised 192x256 crops (1.25 padding); SimCC split ratio 2.0."""

    split_ratio = 2.0

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(boxes) == 0:
            return self.empty()
        cs, x = self.normalised_crops(image, boxes)
        sx, sy = self.run(x)[:2]
        locs, scores = simcc_decode(sx, sy, self.split_ratio)
        keep = self.spec.extra.get("keep_joints")
        if keep:  # wholebody: body joints come first, in COCO-17 order
            locs, scores = locs[:, :keep], scores[:, :keep]
        kps = np.stack([crop_to_image(locs[i], c, s, self.input_size) for i, (c, s) in enumerate(cs)])
        return kps, scores


class HeatmapPose(_ImageNetTopDown):
    """ViTPose/SimpleBaseline: same crops as RTMPose; heatmap argmax + quarter-pixel refinement."""

    def __init__(self, spec: ModelSpec, path: Path, threads: int = 2, flip_test: bool = False):
        super().__init__(spec, path, threads)
        self.flip_test = flip_test

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(boxes) == 0:
            return self.empty()
        cs, x = self.normalised_crops(image, boxes)
        hm = self.run(x)[0]
        if self.flip_test:
            hm_f = self.run(np.ascontiguousarray(x[..., ::-1]))[0]
            hm = 0.5 * (hm + flip_heatmaps(hm_f, np.asarray(get_layout(self.layout).flip_index)))
        locs, scores = heatmap_decode(hm, self.input_size)
        kps = np.stack([crop_to_image(locs[i], c, s, self.input_size) for i, (c, s) in enumerate(cs)])
        return kps, scores


class MoveNet(_TopDown):
    """MoveNet SinglePose Lightning int8: uint8 RGB 192x192 square crop of 1.25 x max(box w, h).

    Batch is fixed at 1, so people are run one by one (2.7 ms each on 2 threads).
    """

    input_size = (192, 192)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(boxes) == 0:
            return self.empty()
        kps, scores = [], []
        for c, s, im in self.crops(image, boxes):
            out = self.session.run(None, {self.input_name: np.ascontiguousarray(im[None, :, :, ::-1])})[0][0, 0]
            pts = out[:, [1, 0]] * np.array(self.input_size, np.float32)
            kps.append(crop_to_image(pts, c, s, self.input_size))
            scores.append(out[:, 2])
        return np.stack(kps).astype(np.float32), np.stack(scores).astype(np.float32)


def roi_matrix(cx: float, cy: float, side: float, theta: float, n: int) -> np.ndarray:
    """2x3 image -> crop map for a square ROI of ``side`` px centred at (cx, cy), rotated by ``theta``."""
    c, s = np.cos(theta), np.sin(theta)
    k = n / max(side, 1e-6)
    a = k * np.array([[c, s], [-s, c]])
    t = n / 2 - a @ np.array([cx, cy])
    return np.hstack([a, t[:, None]])


def roi_to_image(points: np.ndarray, roi: np.ndarray, n: int) -> np.ndarray:
    cx, cy, side, theta = (float(v) for v in roi)
    c, s = np.cos(theta), np.sin(theta)
    d = (np.asarray(points, np.float32) - n / 2) * (side / n)
    return np.stack([cx + c * d[:, 0] - s * d[:, 1], cy + s * d[:, 0] + c * d[:, 1]], 1).astype(np.float32)


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray, kernel: int = 7, min_conf: float = 0.5) -> np.ndarray:
    """MediaPipe's RefineLandmarksFromHeatmap (calculators/util/refine_landmarks_from_heatmap_calculator.cc):
    replace each normalised landmark by the sigmoid-weighted mean (col / width, row / height) of the
    ``kernel`` x ``kernel`` heatmap window around it, when the window's peak is at least ``min_conf``.
    Same arithmetic as MediaPipe (no half-cell offset, truncation toward zero), so the same model gives
    the same points."""
    hh, hw, k = heatmap.shape
    xy = np.asarray(xy, np.float32)
    out = xy.copy()
    col, row = np.trunc(xy[:, 0] * hw).astype(int), np.trunc(xy[:, 1] * hh).astype(int)
    inside = (col >= 0) & (col < hw) & (row >= 0) & (row < hh)
    off = np.arange(kernel) - kernel // 2
    rows, cols = row[:, None, None] + off[None, :, None], col[:, None, None] + off[None, None, :]  # [J,k,k]
    valid = (rows >= 0) & (rows < hh) & (cols >= 0) & (cols < hw)  # the window shrinks at the edges
    chan = np.arange(len(xy))[:, None, None]
    vals = heatmap[np.clip(rows, 0, hh - 1), np.clip(cols, 0, hw - 1), np.minimum(chan, k - 1)].astype(np.float64)
    conf = np.where(valid, _sigmoid(vals), 0.0)
    tot = conf.sum((1, 2))
    ok = inside & (conf.max((1, 2)) >= min_conf) & (tot > 0)
    safe = np.where(tot > 0, tot, 1.0)
    out[ok, 0] = ((cols * conf).sum((1, 2)) / safe / hw)[ok]
    out[ok, 1] = ((rows * conf).sum((1, 2)) / safe / hh)[ok]
    return out


class BlazePoseLandmark(_TopDown):
    """BlazePose GHUM full landmark model: float RGB 0..1, 256x256 square crop; 33 landmarks.

    Scores are sigmoid(visibility) x the model's pose-presence probability, so a crop without a
    person gets low scores everywhere. Like MediaPipe (``pose_landmark_by_roi_cpu.pbtxt``) the crop is
    a rotated square ROI with replicated borders, all 39 landmarks (33 body + 2 auxiliary + 4 unused)
    are refined from the heatmaps, and the next frame's ROI comes from the two auxiliary landmarks,
    one-euro smoothed (:class:`~actionpose.pose.roi_tracking.RoiState`); a frame whose presence is
    below 0.5 ends the ROI track so that the frontend re-seeds it from the detector.
    """

    layout = "blazepose33"
    input_size = (256, 256)
    supports_roi = True

    def __init__(self, spec: ModelSpec, path: Path, threads: int = 2, presence_threshold: float = PRESENCE_THRESHOLD,
                 seed_passes: int = 2):
        super().__init__(spec, path, threads)
        self.presence_threshold, self.seed_passes = presence_threshold, seed_passes
        self.last_rois: list[RoiState | None] = []

    def _run_roi(self, image: np.ndarray, roi: np.ndarray, n: int):
        """Landmarks in image px [33,2], scores [33], auxiliary points [2,2] and presence for one ROI."""
        im = cv2.warpAffine(image, roi_matrix(*roi, n), (n, n), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
        x = np.ascontiguousarray(im[None, :, :, ::-1], dtype=np.float32) / 255.0
        lm, flag, hm = self.session.run(["Identity", "Identity_1", "Identity_3"], {self.input_name: x})
        lm = lm.reshape(39, 5)
        presence = float(flag.reshape(-1)[0])
        xy = refine_from_heatmap(lm[:, :2] / n, hm[0]) * n
        pts = roi_to_image(xy[:35], roi, n)
        return pts[:33], _sigmoid(lm[:33, 3]) * presence, pts[33:35], presence

    def __call__(self, image: np.ndarray, boxes: np.ndarray, rois: list | None = None) -> tuple[np.ndarray, np.ndarray]:
        self.last_rois = []
        if len(boxes) == 0:
            return self.empty()
        kps, scores = [], []
        n = self.input_size[0]
        for i, b in enumerate(boxes):
            state = rois[i] if rois is not None else None
            if isinstance(state, RoiState):  # followed person: crop where the landmarks said, move the ROI on
                state = state.copy()
                pts, sc, aux, presence = self._run_roi(image, state.roi, n)
                state.update(aux)
            else:
                roi = state  # a detector that aligns ROIs itself (MediaPipe's pose detector) gives one
                if roi is None:  # a plain box: an axis-aligned square of 1.25 x its long side finds the hip
                    side = max(b[2] - b[0], b[3] - b[1]) * self.padding  # centre and scale point, and the
                    roi = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, side, 0.0], np.float32)  # ROI they
                    for _ in range(self.seed_passes):  # align is refined until it settles
                        _, _, aux, _ = self._run_roi(image, roi, n)
                        roi = alignment_roi(aux[0], aux[1])
                pts, sc, aux, presence = self._run_roi(image, np.asarray(roi, np.float32), n)
                state = RoiState.start(aux)
            kps.append(pts)
            scores.append(sc)
            self.last_rois.append(state if presence >= self.presence_threshold else None)
        return np.stack(kps).astype(np.float32), np.stack(scores).astype(np.float32)


POSE_MODELS = {"movenet-lightning": MoveNet, "blazepose-landmark-full": BlazePoseLandmark,
               **{f"rtmpose-{s}": SimCCPose for s in "tsml"},
               "rtmpose-m-wholebody": SimCCPose, "rtmw-x-wholebody": SimCCPose,
               "vitpose-s": HeatmapPose, "vitpose-b": HeatmapPose}
