"""Draw skeletons with track IDs over frames (the ``--render`` overlay video)."""
from __future__ import annotations

import cv2
import numpy as np

from actionpose.skeleton import get_layout

_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def color(track_id: int) -> tuple[int, int, int]:
    r, g, b = _PALETTE[track_id % len(_PALETTE)]
    return (b, g, r)


def draw_persons(image: np.ndarray, persons, layout: str, thr: float = 0.2) -> np.ndarray:
    """Return a copy of ``image`` with each person's bones, joints, box and ID drawn."""
    out = image.copy()
    lay = get_layout(layout)
    bones = [(lay.index(a), lay.index(b)) for a, b in lay.bones]
    scale = max(1, round(max(image.shape[:2]) / 640))
    for p in persons:
        c = color(p.track_id)
        k, s = p.keypoints, p.scores
        for a, b in bones:
            if s[a] >= thr and s[b] >= thr:
                cv2.line(out, tuple(int(v) for v in k[a]), tuple(int(v) for v in k[b]), c, 2 * scale, cv2.LINE_AA)
        for j in range(len(k)):
            if s[j] >= thr:
                cv2.circle(out, (int(k[j, 0]), int(k[j, 1])), 2 * scale + 1, (255, 255, 255), -1, cv2.LINE_AA)
        x1, y1, x2, y2 = (int(v) for v in p.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), c, scale)
        cv2.putText(out, f"id {p.track_id}", (x1, max(12 * scale, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, c,
                    scale, cv2.LINE_AA)
    return out
