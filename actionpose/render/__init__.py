"""Pictures of tagging results: the overlay video (skeletons, IDs, labels) and the timeline PNG."""
from __future__ import annotations

import colorsys


def class_color(index: int, n: int) -> tuple[float, float, float]:
    """One distinct, stable RGB colour (0..1) per class index, shared by the overlay and the timeline."""
    h = (index * 0.61803398875) % 1.0 if n > 10 else index / max(n, 1)
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.9)
    return r, g, b
