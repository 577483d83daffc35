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
    """MediaPipe's RefineLandmarksFromHeatmap: replace each normalised landmark by the
    sigmoid-weighted mean position of the ``kernel`` x ``kernel`` heatmap window around it."""
    hh, hw, _ = heatmap.shape
    out = np.array(xy, np.float32)
    off = kernel // 2
    for j in range(len(xy)):
        c, r = int(xy[j, 0] * hw), int(xy[j, 1] * hh)
        if not (0 <= c < hw and 0 <= r < hh):
            continue
        r0, r1, c0, c1 = max(0, r - off), min(hh, r + off + 1), max(0, c - off), min(hw, c + off + 1)
        conf = _sigmoid(heatmap[r0:r1, c0:c1, j].astype(np.float64))
        tot = conf.sum()
        if conf.max() >= min_conf and tot > 0:
            rows, cols = np.mgrid[r0:r1, c0:c1]
            out[j] = [((cols * conf).sum() / tot + 0.5) / hw, ((rows * conf).sum() / tot + 0.5) / hh]
    return out


class BlazePoseLandmark(_TopDown):
    """BlazePose GHUM full landmark model: float RGB 0..1, 256x256 square crop; 33 landmarks.

    Scores are sigmoid(visibility) x the model's pose-presence probability, so a crop without a
    person gets low scores everywhere. Like MediaPipe, it also returns the next frame's rotated ROI
    from its two auxiliary landmarks (33: hip centre, 34: scale/rotation point; side = 2 x their
    distance x 1.25), which the frontend uses instead of a box while it follows the person.
    """

    layout = "blazepose33"
    input_size = (256, 256)
    supports_roi = True

    def __init__(self, spec: ModelSpec, path: Path, threads: int = 2):
        super().__init__(spec, path, threads)
        self.last_rois: list[np.ndarray] = []

    def _run_roi(self, image: np.ndarray, roi: np.ndarray, n: int):
        im = cv2.warpAffine(image, roi_matrix(*roi, n), (n, n), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        x = np.ascontiguousarray(im[None, :, :, ::-1], dtype=np.float32) / 255.0
        lm, flag, hm = self.session.run(["Identity", "Identity_1", "Identity_3"], {self.input_name: x})
        lm = lm.reshape(39, 5)
        xy = refine_from_heatmap(lm[:33, :2] / n, hm[0]) * n
        pts = roi_to_image(np.concatenate([xy, lm[33:35, :2]]), roi, n)
        c, e = pts[33], pts[34]
        theta = np.pi / 2 - np.arctan2(-(e[1] - c[1]), e[0] - c[0])
        theta = (theta + np.pi) % (2 * np.pi) - np.pi
        nxt = np.array([c[0], c[1], 2 * np.hypot(*(e - c)) * 1.25, theta], np.float32)
        return pts[:33], _sigmoid(lm[:33, 3]) * float(flag.reshape(-1)[0]), nxt

    def __call__(self, image: np.ndarray, boxes: np.ndarray, rois: list | None = None) -> tuple[np.ndarray, np.ndarray]:
        self.last_rois = []
        if len(boxes) == 0:
            return self.empty()
        kps, scores = [], []
        n = self.input_size[0]
        for i, b in enumerate(boxes):
            roi = rois[i] if rois is not None else None
            passes = 1
            if roi is None:  # a new person: axis-aligned square of 1.25 x the box's long side, then
                side = max(b[2] - b[0], b[3] - b[1]) * self.padding  # once more in the model's own ROI
                roi = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, side, 0.0], np.float32)
                passes = 2
            for _ in range(passes):
                pts, sc, roi_next = self._run_roi(image, roi, n)
                roi = roi_next
            kps.append(pts)
            scores.append(sc)
            self.last_rois.append(roi_next)
        return np.stack(kps).astype(np.float32), np.stack(scores).astype(np.float32)


POSE_MODELS = {"movenet-lightning": MoveNet, "blazepose-landmark-full": BlazePoseLandmark,
               **{f"rtmpose-{s}": SimCCPose for s in "tsml"},
               "rtmpose-m-wholebody": SimCCPose, "rtmw-x-wholebody": SimCCPose,
               "vitpose-s": HeatmapPose, "vitpose-b": HeatmapPose}
