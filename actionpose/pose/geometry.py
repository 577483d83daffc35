"""Image <-> model-input geometry: letterbox for detectors, affine person crops for pose models.

Every crop is an affine map built from a box (centre + size), so keypoints found in the crop go back
to image pixels with the inverse map; one convention (OpenCV ``warpAffine``, pixel centres at
integer coordinates) is used everywhere so no model is off by half a pixel relative to another.
"""
from __future__ import annotations

import cv2
import numpy as np


def letterbox(image: np.ndarray, size: tuple[int, int], pad_value: int = 114) -> tuple[np.ndarray, float]:
    """Resize keeping aspect ratio into ``size`` (w, h), image at the top-left; returns (canvas, ratio)."""
    w, h = size
    ih, iw = image.shape[:2]
    r = min(w / iw, h / ih)
    nw, nh = max(1, int(round(iw * r))), max(1, int(round(ih * r)))
    canvas = np.full((h, w, 3), pad_value, dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, r


def box_to_center_scale(box: np.ndarray, aspect: float, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """(x1, y1, x2, y2) -> centre and (w, h) grown by ``padding`` and widened/heightened to ``aspect`` = w/h.

    This is mmpose's ``bbox_xyxy2cs`` + ``_fix_aspect_ratio``: the crop keeps the person's
    proportions instead of stretching them into the model's input shape.
    """
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    center = np.array([(x1 + x2) / 2, (y1 + y2) / 2], np.float32)
    w, h = max(x2 - x1, 1.0) * padding, max(y2 - y1, 1.0) * padding
    if w > h * aspect:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h], np.float32)


def crop_matrix(center: np.ndarray, scale: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """2x3 affine map from image pixels to crop pixels (no rotation): the box fills ``out_size``."""
    ow, oh = out_size
    sx, sy = ow / float(scale[0]), oh / float(scale[1])
    return np.array([[sx, 0.0, ow / 2 - sx * float(center[0])],
                     [0.0, sy, oh / 2 - sy * float(center[1])]], np.float64)


def crop(image: np.ndarray, center: np.ndarray, scale: np.ndarray, out_size: tuple[int, int],
         border: int = 0) -> np.ndarray:
    """Affine crop of the box (centre, scale) into an ``out_size`` (w, h) image."""
    return cv2.warpAffine(image, crop_matrix(center, scale, out_size), out_size, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(border, border, border))


def crop_to_image(points: np.ndarray, center: np.ndarray, scale: np.ndarray,
                  out_size: tuple[int, int]) -> np.ndarray:
    """Map [..., 2] points in crop pixels back to image pixels (inverse of :func:`crop_matrix`)."""
    ow, oh = out_size
    pts = np.asarray(points, np.float32)
    out = np.empty_like(pts)
    out[..., 0] = (pts[..., 0] - ow / 2) * (float(scale[0]) / ow) + float(center[0])
    out[..., 1] = (pts[..., 1] - oh / 2) * (float(scale[1]) / oh) + float(center[1])
    return out


def keypoints_to_box(kps: np.ndarray, scores: np.ndarray, thr: float = 0.2, grow: float = 1.15) -> np.ndarray | None:
    """Box around confident keypoints, grown a little (limbs stick out beyond joints); None if < 2 points."""
    ok = scores >= thr
    if ok.sum() < 2:
        return None
    x1, y1 = kps[ok].min(0)
    x2, y2 = kps[ok].max(0)
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * grow, (y2 - y1) * grow
    side = max(w, h, 8.0)
    w, h = max(w, side * 0.3), max(h, side * 0.3)  # a straight arm is no box: keep some thickness
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of [N,4] and [M,4] xyxy boxes -> [N,M]."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)

