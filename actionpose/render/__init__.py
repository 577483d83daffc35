"""Pictures of tagging results: the overlay video (skeletons, IDs, labels) and the timeline PNG."""
from __future__ import annotations

import colorsys
from functools import lru_cache


@lru_cache(maxsize=1024)  # the overlay asks per person per frame; a colormap lookup copies it
def class_color(index: int, n: int) -> tuple[float, float, float]:
    """One distinct, stable RGB colour (0..1) per class index, shared by the overlay and the timeline.

    matplotlib's qualitative tab10 / tab20 palettes up to 20 classes (tab20's dark shades first, then its
    light ones): golden-ratio hues gave Penn's baseball_pitch and tennis_forehand two near-identical reds.
    Beyond 20, golden-ratio hues in two brightnesses."""
    from matplotlib import colormaps

    if n <= 10:
        return tuple(colormaps["tab10"](index % 10)[:3])
    if n <= 20:
        return tuple(colormaps["tab20"]((2 * index) % 20 + (index >= 10))[:3])
    h = (index * 0.61803398875) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.9 if index % 2 == 0 else 0.6)
    return r, g, b


def text_color(rgb: tuple[float, float, float]) -> str:
    """Black or white, whichever reads on ``rgb`` (0..1): black score text on dark purple bars did not."""
    r, g, b = rgb[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
