"""After a fall: is the person still down, or up again?

Why: an alert says someone fell. What a carer needs next is whether they got up. A person who stays on
the floor is the emergency (a "long lie"); one who got up by themselves can lower the alarm. After each
fall the detector watches that person's posture and raises at most two follow-up events: ``still_down``
when no recovery was seen ``long_lie_s`` after the alert, and ``recovered`` when the person has been seen
up for ``recover_s``.

The posture of one frame is judged on the body13 skeleton in image coordinates (y down). **Down** is
any one of three signs of a body on the floor:

* the torso (hip mid-point to shoulder mid-point) leans more than :data:`DOWN_ANGLE_DEG` from vertical;
* the box of the seen joints is wider than :data:`DOWN_ASPECT` times its height;
* the hips are lower than before the fall by more than :data:`DOWN_DROP` of the standing body height
  (the person's own reference, from the frames before the fall). This catches a person lying along the
  camera's line of sight, where the torso looks short and upright, and one sitting on the floor.

**Up** needs all the signs of standing: torso within :data:`UP_ANGLE_DEG` of vertical, box narrower than
:data:`UP_ASPECT`, and (with a reference) body height at least :data:`UP_HEIGHT` of the standing one. The
hips are not used for "up": a man walking towards an elevated camera is 0.35 of his height lower in the
image than a few steps before (``fall_video_1``, played backwards, was never "up" again). Frames that are neither (sitting up, kneeling, getting up) count
against a recovery. The asymmetry is deliberate: a missed recovery only delays the all-clear until a
carer looks (the still-down escalation), a false one would silence the alarm for someone on the floor.

The thresholds were read off the per-frame labels of URFD (30 fall videos: not fall / falling / lying)
before any stream-level test; docs/fall.md gives the measured numbers.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actionpose.inference.fall_prep import seen_joints

SHOULDERS, HIPS = [1, 2], [7, 8]  # body13: 0 nose, 1-2 shoulders, ..., 7-8 hips, ..., 11-12 ankles
DOWN_ANGLE_DEG = 50.0  # URFD frames: lying 76 % above it, not fall 1.7 %
DOWN_ASPECT = 1.2      # lying 77 %, not fall 1.7 %
DOWN_DROP = 0.35       # lying 54 %, not fall 1.8 % (the camera's height foreshortens the drop)
UP_ANGLE_DEG = 35.0    # URFD frames (AlphaPose / MoveNet), the three up-signs together: not fall 95.7 / 95.6 %
UP_ASPECT = 0.9        # judged up, lying 1.4 / 1.0 % (scattered: never 80 % of 3 s, benchmarks/fall_followup.py)
UP_HEIGHT = 0.7
UP_SHARE = 0.8         # of the frames in the last recover_s: up, for a recovery
RECOVER_NEAR = 0.75    # a recovery's first up frame: hips within this many body heights (sideways) of where the
                       # person was last seen down; else it is someone else under the same track id
MIN_UP_FRAMES = 5      # and at least this many frames judged up (a 3 s recovery at 15 fps has 45)
LONG_LIE_MAX_S = 3600.0  # the longest still-down escalation a detector takes
WATCH_MAX_S = 86400.0    # a watch that never resolves is dropped a day after its fall (a recovery after that is not said)


@dataclass(frozen=True)
class Upright:
    """Where a person's hips were and how tall they were while standing, before the fall."""

    hip_y: float
    height: float


def _seen(kp: np.ndarray, sc: np.ndarray, score_min: float) -> np.ndarray:
    """The detector's own "seen" (:func:`fall_prep.seen_joints`: a joint at exactly (0, 0) is padding for one not
    found, whatever its score), and finite."""
    return seen_joints(kp, sc, score_min) & np.isfinite(kp).all(-1)


def _mid(kp: np.ndarray, seen: np.ndarray, idx: list[int]) -> np.ndarray:
    """Mean of the seen joints of ``idx`` per frame; NaN where none is seen."""
    w = seen[:, idx].astype(np.float64)
    n = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (kp[:, idx] * w[..., None]).sum(1) / n[:, None]


def _extent(kp: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Width and height of the box of each frame's seen joints (NaN with fewer than 4 seen)."""
    x = np.where(seen, kp[..., 0], np.nan)
    y = np.where(seen, kp[..., 1], np.nan)
    enough = seen.sum(1) >= 4
    w = np.full(len(kp), np.nan)
    h = np.full(len(kp), np.nan)
    if enough.any():
        w[enough] = np.nanmax(x[enough], 1) - np.nanmin(x[enough], 1)
        h[enough] = np.nanmax(y[enough], 1) - np.nanmin(y[enough], 1)
    return w, h


def posture(kp: np.ndarray, sc: np.ndarray, ref: Upright | None = None, score_min: float = 0.2) -> np.ndarray:
    """Per frame of a body13 track ``kp`` [N, 13, 2] (pixels, y down), ``sc`` [N, 13]: 1.0 down, 0.0 up,
    0.5 neither, NaN when too little of the body is seen to say (no shoulder or no hip seen)."""
    kp = np.asarray(kp, np.float64)
    seen = _seen(kp, np.asarray(sc), score_min)
    sh, hip = _mid(kp, seen, SHOULDERS), _mid(kp, seen, HIPS)
    v = sh - hip
    with np.errstate(invalid="ignore"):
        angle = np.degrees(np.arctan2(np.abs(v[:, 0]), -v[:, 1]))  # 0 upright, 90 lying, 180 upside down
    w, h = _extent(kp, seen)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.maximum(h, 1e-6)
        down = (angle > DOWN_ANGLE_DEG) | (w > DOWN_ASPECT * h)
        up = (angle < UP_ANGLE_DEG) & (w < UP_ASPECT * h)  # NaN box (< 4 joints seen): not up
        if ref is not None:
            drop = hip[:, 1] - ref.hip_y
            down |= drop > DOWN_DROP * ref.height
            up &= h >= UP_HEIGHT * ref.height
    known = np.isfinite(angle)
    return np.where(known, np.where(down, 1.0, np.where(up, 0.0, 0.5)), np.nan)


def where_lying(kp: np.ndarray, sc: np.ndarray, score_min: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of a body13 track: the hips' x (NaN when no hip is seen) and the body's length, the longer side
    of the seen joints' box (NaN with fewer than 4 seen): where a person lies, and how long they are."""
    kp = np.asarray(kp, np.float64)
    seen = _seen(kp, np.asarray(sc), score_min)
    w, h = _extent(kp, seen)
    return _mid(kp, seen, HIPS)[:, 0], np.fmax(w, h)


def upright_reference(kp: np.ndarray, sc: np.ndarray, score_min: float = 0.2) -> Upright | None:
    """The standing reference from frames before a fall: the median hip height and body height of the
    frames that look up by the torso and box alone; None with fewer than 3 such frames."""
    kp = np.asarray(kp, np.float64)
    if not len(kp):
        return None
    seen = _seen(kp, np.asarray(sc), score_min)
    up = posture(kp, sc, None, score_min) == 0.0
    _, h = _extent(kp, seen)
    hip = _mid(kp, seen, HIPS)[:, 1]
    ok = up & np.isfinite(h) & np.isfinite(hip) & (h > 0)
    if ok.sum() < 3:
        return None
    return Upright(float(np.median(hip[ok])), float(np.median(h[ok])))


@dataclass
class Watch:
    """One fallen person's follow-up state (kept in the detector's saved stream state)."""

    fall_start: float
    fall_time: float                      # when the fall alert was raised
    ref: Upright | None
    recent: deque = field(default_factory=deque)  # (time, up?) of the frames judged in the last recover_s
    seen: int = 0                         # frames judged since the fall
    down: int = 0                         # ... of them down
    still_down_sent: bool = False
    up_since: float | None = None         # first frame of the current run of frames judged up
    lay_x: float | None = None            # hips' x when last seen down (or at the alert)
    lay_len: float | None = None          # the body's length then (the scale where no standing reference is known)

    def add(self, t: float, flag: float, recover_s: float, hip_x: float = float("nan"),
            length: float = float("nan")) -> None:
        """One frame of the person: its :func:`posture` ``flag`` at stream time ``t``, with the hips' x and the
        body's length (:func:`where_lying`).

        An up frame that would start a recovery far from where the person lay is not theirs: a single-person
        frontend (MediaPipe) or index-based ids give a carer who walks in the fallen person's id, and their
        standing cleared the alarm of someone still on the floor (found by probing). Such frames are left
        out; the real person getting up where they lay starts the recovery. A person who got up unseen and
        walked off is then not seen to recover, and still_down follows: the safe side (module docstring)."""
        if t <= self.fall_time or flag != flag:  # before the alert, or unknown (NaN)
            return
        if flag == 1.0 and hip_x == hip_x:
            self.lay_x, self.lay_len = hip_x, (length if length == length else self.lay_len)
        if flag == 0.0 and self.up_since is None and not self.near_where_lying(hip_x):
            return
        self.seen += 1
        self.down += int(flag == 1.0)
        self.recent.append((t, flag == 0.0))
        self.up_since = (self.up_since if self.up_since is not None else t) if flag == 0.0 else None
        while self.recent and self.recent[0][0] < t - recover_s:
            self.recent.popleft()

    def near_where_lying(self, hip_x: float) -> bool:
        """Whether hips at ``hip_x`` are within :data:`RECOVER_NEAR` body heights of where the person lay
        (true when either is unknown: nothing to compare)."""
        scale = self.ref.height if self.ref is not None else self.lay_len
        if self.lay_x is None or scale is None or hip_x != hip_x:
            return True
        return abs(hip_x - self.lay_x) <= RECOVER_NEAR * scale

    def recovery(self, recover_s: float) -> tuple[float, float] | None:
        """``(first up time, share up)`` when the frames of the last ``recover_s`` cover it and are mostly
        up; the first up time is where the current run of up frames began."""
        r = self.recent
        if not r or r[-1][0] - r[0][0] < 0.9 * recover_s:
            return None
        ups = sum(1 for _, up in r if up)
        if ups < MIN_UP_FRAMES or ups < UP_SHARE * len(r):
            return None
        first = next(t for t, up in r if up)
        return first, ups / len(r)

    def getting_up(self, now: float, recover_s: float) -> bool:
        """The person has been seen up since less than ``recover_s`` + 1 s, up to this moment: a recovery under
        way, not yet confirmed. Why: after a camera gap longer than ``long_lie_s``, the first frame showing the
        person standing raised still_down, and a recovery 2.7 s later (found by probing). Bounded, so frames
        too sparse to ever confirm a recovery cannot hold an escalation back."""
        r = self.recent
        return (self.up_since is not None and bool(r) and now - r[-1][0] <= 1.0
                and now - self.up_since < recover_s + 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"fall_start": self.fall_start, "fall_time": self.fall_time,
                "ref": None if self.ref is None else [self.ref.hip_y, self.ref.height],
                "recent": [[t, bool(up)] for t, up in self.recent], "seen": self.seen, "down": self.down,
                "still_down_sent": self.still_down_sent, "up_since": self.up_since,
                "lay_x": self.lay_x, "lay_len": self.lay_len}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Watch":
        num = (int, float)
        ref = d.get("ref")
        ok = (isinstance(d.get("fall_start"), num) and isinstance(d.get("fall_time"), num)
              and (ref is None or (isinstance(ref, list) and len(ref) == 2 and all(isinstance(v, num) for v in ref)))
              and isinstance(d.get("recent"), list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], num)
                                                           and isinstance(p[1], bool) for p in d["recent"])
              and isinstance(d.get("seen"), int) and isinstance(d.get("down"), int)
              and isinstance(d.get("still_down_sent"), bool)
              and all(d.get(k) is None or isinstance(d.get(k), num) for k in ("up_since", "lay_x", "lay_len")))
        if not ok:
            raise ValueError("a fall follow-up watch is malformed")
        return cls(float(d["fall_start"]), float(d["fall_time"]), None if ref is None else Upright(*map(float, ref)),
                   deque((float(t), up) for t, up in d["recent"]), d["seen"], d["down"], d["still_down_sent"],
                   *(None if d.get(k) is None else float(d[k]) for k in ("up_since", "lay_x", "lay_len")))
