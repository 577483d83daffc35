"""Write NTU RGB+D ``.skeleton`` text in the official layout (for fixtures and bad-input tests).

Per frame: body count; per body a 10-value info line (bodyID, clippedEdges, hand states, isRestricted,
leanX, leanY, trackingState), the joint count (25), and 25 lines of 12 values
(x y z depthX depthY colorX colorY orientationW..Z trackingState).
"""
from __future__ import annotations

import numpy as np


def ntu_skeleton_text(bodies: list[np.ndarray]) -> str:
    """``bodies``: list of [T, 25, 3] arrays (NaN rows = body absent in that frame)."""
    t = bodies[0].shape[0]
    lines = [str(t)]
    for f in range(t):
        present = [(i, b[f]) for i, b in enumerate(bodies) if np.isfinite(b[f]).all()]
        lines.append(str(len(present)))
        for i, xyz in present:
            lines.append(f"7205759403792{i:05d} 0 1 1 1 1 0 0.1 0.2 2")
            lines.append("25")
            for x, y, z in xyz:
                lines.append(f"{x:.6f} {y:.6f} {z:.6f} 250.1 200.2 1000.3 500.4 0.1 0.2 0.3 0.4 2")
    return "\n".join(lines) + "\n"
