"""Keypoint decoders for top-down pose heads: SimCC (RTMPose) and heatmaps (ViTPose/SimpleBaseline).

Pure numpy on the raw model outputs, so they are tested with tiny ONNX models whose outputs are
known, independent of any real checkpoint.
"""
from __future__ import annotations

import numpy as np


def simcc_decode(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """[N,K,Wx], [N,K,Hy] 1-D distributions -> (locations [N,K,2] in input px, scores [N,K]).

    As mmpose's ``get_simcc_maximum``: argmax per axis, score = the smaller of the two maxima,
    location -1 where the score is not positive; bins are ``split_ratio`` per input pixel.
    """
    sx = np.asarray(simcc_x, np.float32)
    sy = np.asarray(simcc_y, np.float32)
    if sx.ndim == 2:
        sx, sy = sx[None], sy[None]
    x = sx.argmax(-1)
    y = sy.argmax(-1)
    vx = np.take_along_axis(sx, x[..., None], -1)[..., 0]
    vy = np.take_along_axis(sy, y[..., None], -1)[..., 0]
    scores = np.minimum(vx, vy)
    locs = np.stack([x, y], -1).astype(np.float32) / float(split_ratio)
    locs[scores <= 0] = -1
    return locs, scores


def heatmap_decode(heatmaps: np.ndarray, input_size: tuple[int, int] | None = None,
                   refine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """[N,K,H,W] heatmaps -> (locations [N,K,2] in input px (or heatmap px), scores [N,K]).

    Argmax, then the classic quarter-pixel shift towards the higher neighbour (mmpose
    ``refine_keypoints``), then scaled by input/heatmap size.
    """
    hm = np.asarray(heatmaps, np.float32)
    if hm.ndim == 3:
        hm = hm[None]
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, -1)
    idx = flat.argmax(-1)
    scores = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    xs = (idx % w).astype(np.float32)
    ys = (idx // w).astype(np.float32)
    if refine:
        xi, yi = xs.astype(np.int64), ys.astype(np.int64)
        nn, kk = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
        inner_x = (xi > 0) & (xi < w - 1)
        inner_y = (yi > 0) & (yi < h - 1)
        dx = np.where(inner_x, hm[nn, kk, yi, np.clip(xi + 1, 0, w - 1)] - hm[nn, kk, yi, np.clip(xi - 1, 0, w - 1)], 0)
        dy = np.where(inner_y, hm[nn, kk, np.clip(yi + 1, 0, h - 1), xi] - hm[nn, kk, np.clip(yi - 1, 0, h - 1), xi], 0)
        xs = xs + 0.25 * np.sign(dx)
        ys = ys + 0.25 * np.sign(dy)
    locs = np.stack([xs, ys], -1)
    if input_size is not None:
        locs[..., 0] *= input_size[0] / w
        locs[..., 1] *= input_size[1] / h
    locs[scores <= 0] = -1
    return locs.astype(np.float32), scores.astype(np.float32)


def flip_heatmaps(heatmaps: np.ndarray, flip_index: np.ndarray) -> np.ndarray:
    """Heatmaps of a horizontally flipped crop -> heatmaps in the original orientation."""
    return np.asarray(heatmaps)[:, flip_index, :, ::-1]
