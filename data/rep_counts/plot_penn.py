"""Plot joint trajectories of the chosen Penn Action test clips, one PNG per class, for counting by eye.

    python data/rep_counts/plot_penn.py ../shared/datasets/penn_action data/rep_counts/plots

Clips: 8 per class drawn with random.Random(8) from the class's official test clips (train flag 0).
Each panel shows, per frame, joint heights (image-up, in torso lengths, relative to the hip centre),
the hip centre's absolute vertical bounce (x5, torso lengths)
and the exercise's joint angles rescaled to [0, 1]. The counter's output is deliberately not drawn.
"""
import random
import sys
from pathlib import Path

import matplotlib
import numpy as np
import scipy.io

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ACTIONS = ["pushup", "squat", "situp", "pullup", "jumping_jacks", "bench_press", "jump_rope"]
PER_CLASS = 8


def choose(root: Path) -> dict[str, list[str]]:
    by = {a: [] for a in ACTIONS}
    for f in sorted((root / "labels").glob("*.mat")):
        m = scipy.io.loadmat(f, variable_names=["action", "train"])
        a = str(m["action"][0])
        if a in by and int(m["train"].ravel()[0]) != 1:
            by[a].append(f.stem)
    rng = random.Random(8)
    return {a: sorted(rng.sample(v, PER_CLASS)) for a, v in by.items()}


def angle(a, b, c):
    u, v = a - b, c - b
    cos = (u * v).sum(-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-9)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def main(root: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for action, clips in choose(root).items():
        fig, axes = plt.subplots(PER_CLASS, 1, figsize=(10, 2.2 * PER_CLASS))
        for ax, clip in zip(axes, clips):
            m = scipy.io.loadmat(root / "labels" / f"{clip}.mat")
            p = np.stack([m["x"], m["y"]], -1).astype(float)   # penn13 = body13 order
            hip, sh = (p[:, 7] + p[:, 8]) / 2, (p[:, 1] + p[:, 2]) / 2
            torso = np.median(np.linalg.norm(sh - hip, axis=-1))
            for j, name in [(0, "head"), (5, "l_wrist"), (6, "r_wrist"), (11, "l_ankle")]:
                ax.plot((hip[:, 1] - p[:, j, 1]) / torso, lw=1, label=f"{name} height")
            ax.plot((np.median(hip[:, 1]) - hip[:, 1]) / torso * 5, lw=1.5, color="k", ls=":",
                    label="hip bounce x5 (absolute, vs median)")
            ang = {"elbow": (angle(p[:, 1], p[:, 3], p[:, 5]) + angle(p[:, 2], p[:, 4], p[:, 6])) / 2,
                   "knee": (angle(p[:, 7], p[:, 9], p[:, 11]) + angle(p[:, 8], p[:, 10], p[:, 12])) / 2,
                   "hip": (angle(p[:, 1], p[:, 7], p[:, 9]) + angle(p[:, 2], p[:, 8], p[:, 10])) / 2}
            ax2 = ax.twinx()
            for k, v in ang.items():
                ax2.plot(v, lw=1.5, ls="--", label=f"{k} angle (deg)")
            ax.set_title(f"{action} {clip} ({len(p)} frames)", fontsize=9)
            ax.grid(alpha=0.3)
            if clip == clips[0]:
                ax.legend(fontsize=6, loc="upper left")
                ax2.legend(fontsize=6, loc="upper right")
        fig.tight_layout()
        fig.savefig(out / f"{action}.png", dpi=60)
        plt.close(fig)
        print(action, " ".join(clips))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
