"""Timeline PNG: one lane per person, one coloured bar per segment, a legend and a time axis."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from actionpose.data.atomic import atomic_path
from actionpose.render import class_color, text_color

if TYPE_CHECKING:
    from actionpose.inference.tagger import TagResult

MAX_EMPTY_LANES = 8  # above this many persons, lanes without any segment are left out


def plot_timeline(result: "TagResult", path: str | Path, truth: dict[int, list] | None = None) -> Path:
    """Draw ``result`` (and optionally ground-truth segments per track, as thin bars) to ``path`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    path = Path(path)
    tracks = sorted(result.persons)
    hidden = 0
    if len(tracks) > MAX_EMPTY_LANES:  # crowds: keep the picture readable, show people who did something
        busy = [t for t in tracks if result.persons[t] or (truth or {}).get(t)]
        hidden, tracks = len(tracks) - len(busy), busy
    lanes = max(1, len(tracks))
    fig, ax = plt.subplots(figsize=(11, 1.4 + 0.55 * lanes), dpi=110)
    labels = list(result.classes)
    for segs in list(result.persons.values()) + list((truth or {}).values()):
        labels += [s.label for s in segs if s.label not in labels]
    palette = {lab: class_color(i, len(labels)) for i, lab in enumerate(labels)}
    used: dict[str, tuple] = {}
    for lane, tid in enumerate(tracks):
        y = lanes - 1 - lane
        for s in result.persons[tid]:
            c = used[s.label] = palette[s.label]
            ax.broken_barh([(s.start_s, s.end_s - s.start_s)], (y - 0.35, 0.7 if truth is None else 0.5),
                           facecolors=c, edgecolor="black", linewidth=0.5)
            if s.end_s - s.start_s > 0.08 * max(result.duration_s, 1e-6):
                ax.text((s.start_s + s.end_s) / 2, y - 0.1 if truth is None else y - 0.1, f"{s.score:.2f}",
                        ha="center", va="center", fontsize=7, color=text_color(c))
        near = result.best.get(tid)
        if not result.persons[tid]:  # an empty lane says how close its best window came, or that none was scored
            ax.text(max(result.duration_s, 1e-3) / 2, y, f"no segment (best single window: {near[0]} {near[1]:.2f})"
                    if near else "no segment (no window showed enough of the person to be scored)",
                    ha="center", va="center", fontsize=8, color="gray")
        for s in (truth or {}).get(tid, []):
            used[s.label] = palette[s.label]
            ax.broken_barh([(s.start_s, s.end_s - s.start_s)], (y + 0.2, 0.15), facecolors=palette[s.label],
                           edgecolor="none")
    ax.set_yticks(range(lanes))
    ax.set_yticklabels([f"person {t}" for t in reversed(tracks)] if tracks else ["(no person)"])
    ax.set_ylim(-0.6, lanes - 0.4)
    ax.set_xlim(0, max(result.duration_s, 1e-3))
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", alpha=0.3)
    title = f"{result.video} — model {result.model}, threshold {result.config.threshold:g}"
    if truth is not None:
        title += " (thin bars: ground truth)"
    if hidden:
        title += f"; {hidden} more person(s) without an action not shown"
    ax.set_title(title, fontsize=10)
    if used:
        ax.legend(handles=[Patch(facecolor=c, edgecolor="black", label=lab) for lab, c in sorted(used.items())],
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    elif not any(result.best.get(t) for t in tracks):
        ax.text(0.5, 0.5, "no action above threshold" if tracks else result.nobody(),
                transform=ax.transAxes, ha="center", va="center", color="gray")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png")
    plt.close(fig)
    return path
