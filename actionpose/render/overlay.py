"""Overlay video: skeletons, track IDs and each person's current label + score, drawn frame by frame.

Written in one pass while tagging (constant memory, works for live streams too) into a temporary
file that is renamed over the target only when the video is closed successfully; H.264 that browsers
play (``render.video_file``).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from actionpose.errors import ActionposeError, where
from actionpose.render import class_color
from actionpose.render.video_file import VideoFile, check_video_suffix
from actionpose.skeleton import get_layout

MAX_WIDTH = 960  # overlays of full-HD input are downscaled: readable and small


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable BGR colour per track id."""
    rng = np.random.default_rng(track_id * 7919 + 13)
    return tuple(int(v) for v in rng.integers(60, 255, 3))


class OverlayWriter:
    """``add_frame(index, image | None, persons)`` then ``close()``; ``label_of(track_id) -> (label, score)``."""

    def __init__(self, path: str | Path, fps: float, layout: str, classes: Sequence[str],
                 canvas: tuple[int, int] | None = None):
        self.path = Path(path)
        check_video_suffix(self.path, "overlay")
        self.fps = float(fps)
        self.edges = get_layout(layout).edges
        self.classes = list(classes)
        self.canvas = canvas
        self.label_of: Callable[[int], tuple[str, float]] = lambda tid: ("", 0.0)
        self._writer: VideoFile | None = None
        self._tmp: Path | None = None
        self._atomic = contextlib.ExitStack()  # the temporary file beside the target (data.atomic.atomic_path)
        self._scale = 1.0
        self.frames = 0

    def _open(self, h: int, w: int) -> None:
        self._scale = min(1.0, MAX_WIDTH / w)
        size = (int(round(w * self._scale)) // 2 * 2, int(round(h * self._scale)) // 2 * 2)
        from actionpose.data.atomic import atomic_path

        # the temporary name keeps the container's suffix: OpenCV picks the format from it
        self._tmp = self._atomic.enter_context(atomic_path(self.path, suffix=self.path.suffix))
        try:
            self._writer = VideoFile(self._tmp, self.fps, size, target=self.path)
        except ActionposeError:
            self._discard()
            raise
        self._size = size

    def add_frame(self, index: int, image: np.ndarray | None, persons: Sequence) -> None:
        if image is None:
            h, w = self.canvas or (480, 640)
            image = np.full((int(h), int(w), 3), 40, np.uint8)
        if self._writer is None:
            self._open(*image.shape[:2])
        img = cv2.resize(image, self._size) if self._scale != 1.0 or image.shape[1::-1] != self._size else image.copy()
        s = self._scale
        placed: list[tuple[int, int, int, int]] = []  # this frame's label boxes (x0, y0, x1, y1)
        drawn = []
        for p in persons:  # every skeleton first, then every label: a later skeleton drew over earlier labels
            kp = np.asarray(p.keypoints, dtype=np.float32) * s
            sc = np.asarray(p.scores if p.scores is not None else np.ones(len(kp)), dtype=np.float32)
            col = track_color(int(p.track_id))
            ok = sc > 0.2
            for a, b in self.edges:
                if ok[a] and ok[b]:
                    cv2.line(img, tuple(int(v) for v in kp[a]), tuple(int(v) for v in kp[b]), col, 2, cv2.LINE_AA)
            for j in np.flatnonzero(ok):
                cv2.circle(img, tuple(int(v) for v in kp[j]), 3, col, -1, cv2.LINE_AA)
            drawn.append((p, kp, ok, col))
        for p, kp, ok, col in drawn:
            label, score = self.label_of(int(p.track_id))
            vis = kp[ok] if ok.any() else kp
            x, y = int(vis[:, 0].min()), int(max(14, vis[:, 1].min() - 8))
            text = f"#{p.track_id} {label} {score:.2f}" if label and label != "background" else f"#{p.track_id} -"
            lcol = col
            if label in self.classes:
                r, g, b = class_color(self.classes.index(label), len(self.classes))
                lcol = (int(b * 255), int(g * 255), int(r * 255))
            font = 0.5 if self._size[0] >= 480 else 0.4  # small videos: labels were wider than the people
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
            x = max(0, min(x, self._size[0] - tw - 4))  # never cut off at the right edge ("#7 te")
            y = max(y, th + 4)  # nor at the top ("#7 tennis_forehand" above a head at the frame's edge)
            for _ in range(len(placed)):  # a label over another one ("#1 golf_swing" hid #0's): move it down
                hit = [b for b in placed if x < b[2] and b[0] < x + tw + 4 and y - th - 4 < b[3] and b[1] < y + 3]
                if not hit:
                    break
                y = max(b[3] for b in hit) + th + 5
            placed.append((x, y - th - 4, x + tw + 4, y + 3))
            cv2.rectangle(img, (x, y - th - 4), (x + tw + 4, y + 3), (0, 0, 0), -1)
            cv2.putText(img, text, (x + 2, y), cv2.FONT_HERSHEY_SIMPLEX, font, lcol, 1, cv2.LINE_AA)
        cv2.putText(img, f"{index / self.fps:6.2f} s", (8, self._size[1] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1, cv2.LINE_AA)
        self._writer.write(img)
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file and move it into place (``keep=False`` discards it)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._tmp is not None:
            if keep and self.frames:
                self._atomic.close()  # renamed over the target, with the mode a plain write would give
            else:
                self._discard()
            self._tmp = None

    def _discard(self) -> None:
        """Leave the atomic write as if its block had failed: the temporary file is removed, the target kept."""
        self._atomic.__exit__(_Discarded, _Discarded(), None)
        self._atomic = contextlib.ExitStack()


class _Discarded(Exception):
    """Thrown into :func:`~actionpose.data.atomic.atomic_path` to make it drop its temporary file."""
