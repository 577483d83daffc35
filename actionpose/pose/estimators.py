"""Top-down pose models: (image BGR, boxes [N,4]) -> keypoints [N,K,2] image px, scores [N,K].

Each class owns its model's pre-processing (crop, colour order, normalisation) and decoder.
Models with a dynamic batch axis get all crops of a frame in one call.
"""
from __future__ import annotations

from pathlib import Path

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


class SimCCPose(_TopDown):
    """RTMPose: RGB ImageNet-normalised 192x256 crops (1.25 padding); SimCC split ratio 2.0."""

    split_ratio = 2.0

    def __init__(self, spec: ModelSpec, path: Path, threads: int = 2):
        super().__init__(spec, path, threads)
        self.layout = spec.extra.get("layout", "coco17")
        h, w = spec.input_shape[2], spec.input_shape[3]
        self.input_size = (int(w or 192), int(h or 256))

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(boxes) == 0:
            return self.empty()
        cs, imgs = [], []
        for c, s, im in self.crops(image, boxes):
            cs.append((c, s))
            imgs.append(im[:, :, ::-1])
        x = ((np.stack(imgs).astype(np.float32) - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB).transpose(0, 3, 1, 2)
        sx, sy = self.run(np.ascontiguousarray(x))[:2]
        locs, scores = simcc_decode(sx, sy, self.split_ratio)
        keep = self.spec.extra.get("keep_joints")
        if keep:  # wholebody: body joints come first, in COCO-17 order
            locs, scores = locs[:, :keep], scores[:, :keep]
        kps = np.stack([crop_to_image(locs[i], c, s, self.input_size) for i, (c, s) in enumerate(cs)])
        return kps, scores


class HeatmapPose(_TopDown):
    """ViTPose/SimpleBaseline: same crops as RTMPose; heatmap argmax + quarter-pixel refinement."""

    def __init__(self, spec: ModelSpec, path: Path, threads: int = 2, flip_test: bool = False):
        super().__init__(spec, path, threads)
        self.layout = spec.extra.get("layout", "coco17")
        h, w = spec.input_shape[2], spec.input_shape[3]
        self.input_size = (int(w or 192), int(h or 256))
        self.flip_test = flip_test

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(boxes) == 0:
            return self.empty()
        cs, imgs = [], []
        for c, s, im in self.crops(image, boxes):
            cs.append((c, s))
            imgs.append(im[:, :, ::-1])
        x = np.ascontiguousarray(
            ((np.stack(imgs).astype(np.float32) - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB).transpose(0, 3, 1, 2))
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


class BlazePoseLandmark(_TopDown):
    """BlazePose GHUM full landmark model: float RGB 0..1, 256x256 square crop; 33 landmarks.

    Scores are sigmoid(visibility) x the model's pose-presence probability, so a crop without a
    person gets low scores everywhere.
    """

    layout = "blazepose33"
    input_size = (256, 256)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(boxes) == 0:
            return self.empty()
        kps, scores = [], []
        for c, s, im in self.crops(image, boxes):
            x = np.ascontiguousarray(im[None, :, :, ::-1], dtype=np.float32) / 255.0
            lm, flag = self.session.run(["Identity", "Identity_1"], {self.input_name: x})
            lm = lm.reshape(39, 5)[:33]
            kps.append(crop_to_image(lm[:, :2], c, s, self.input_size))
            scores.append(_sigmoid(lm[:, 3]) * float(flag.reshape(-1)[0]))
        return np.stack(kps).astype(np.float32), np.stack(scores).astype(np.float32)


POSE_MODELS = {"movenet-lightning": MoveNet, "blazepose-landmark-full": BlazePoseLandmark,
               **{f"rtmpose-{s}": SimCCPose for s in "tsml"},
               "rtmpose-m-wholebody": SimCCPose, "rtmw-x-wholebody": SimCCPose,
               "vitpose-s": HeatmapPose, "vitpose-b": HeatmapPose}
