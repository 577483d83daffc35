"""Fall-model input preparation shared by training, the in-process detector and the service.

One function decides what the model sees, so training windows and live windows cannot drift apart:
map any supported layout to body13, resample to the model rate (15 fps), fill unseen joints, and
normalise each window to a body-centred, body-size-scaled frame (camera distance and position drop
out; *vertical direction is kept* because falling is about gravity).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from actionpose.errors import ActionposeError
from actionpose.skeleton import get_layout, joint_map, map_keypoints

MODEL_LAYOUT = "body13"
MODEL_FPS = 15.0
MODEL_FRAMES = 32  # 2.13 s at 15 fps: long enough to hold a whole fall (about 1 s) plus context
SCORE_MIN = 0.2
_LS, _RS, _LH, _RH = 1, 2, 7, 8  # body13 shoulders and hips


@dataclass(frozen=True)
class PrepConfig:
    """What the shipped model was trained with (stored in its JSON sidecar)."""

    fps: float = MODEL_FPS
    frames: int = MODEL_FRAMES
    score_min: float = SCORE_MIN
    # A joint unseen for at most this many model ticks between two seen ones keeps the lower of their
    # scores, not 0 (:func:`gap_scores`); 0 = off, the preparation of models trained before it existed.
    gap_fill: int = 0


def to_body13(keypoints: np.ndarray, scores: np.ndarray | None, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """[T, V, 2] (+ [T, V]) in ``layout`` -> body13 [T, 13, 2], [T, 13] (score 1 where none given)."""
    kp = np.asarray(keypoints, dtype=np.float32)
    lay = get_layout(layout)
    if kp.ndim != 3 or kp.shape[-1] < 2:
        raise ActionposeError(f"keypoints: shape {kp.shape}, expected [T, V, 2] (frames, joints, x/y)")
    if kp.shape[1] != lay.num_joints:
        raise ActionposeError(f"keypoints: {kp.shape[1]} joints but layout {lay.name} has {lay.num_joints}")
    kp, sc = _xy_and_scores(kp, scores)
    return map_keypoints(kp, lay, MODEL_LAYOUT, axis=1), map_keypoints(sc, lay, MODEL_LAYOUT, axis=1)


def _xy_and_scores(kp: np.ndarray, scores: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """x/y of ``kp [..., V, C]`` and its scores ``[..., V]`` (1 where none given); shared by the one-window
    and the batched path so both treat the same inputs alike.

    A joint with a NaN or infinite coordinate or score is a joint not found (many pose tools write NaN
    for it): it becomes (0, 0) with score 0, like PYSKL's padding. Refusing it threw away the whole frame,
    every other person's pose included. (The service refuses NaN in its JSON before this point.)"""
    sc = np.ones(kp.shape[:-1], np.float32) if scores is None else np.asarray(scores, dtype=np.float32)
    if sc.shape != kp.shape[:-1]:
        raise ActionposeError(f"scores: shape {sc.shape}, expected {kp.shape[:-1]}")
    kp = kp[..., :2]
    bad = ~np.isfinite(kp).all(-1) | ~np.isfinite(sc)
    if bad.any():
        kp, sc = np.where(bad[..., None], 0, kp).astype(np.float32), np.where(bad, 0, sc).astype(np.float32)
    return kp, sc


def seen_joints(kp: np.ndarray, scores: np.ndarray | None, score_min: float = SCORE_MIN) -> np.ndarray:
    """[..., V] True where a joint was seen: score >= ``score_min`` (no scores: all count) and not at
    exactly (0, 0), the padding PYSKL and many frontends write for a joint or person they did not find."""
    kp = np.asarray(kp, dtype=np.float32)
    seen = (kp[..., 0] != 0) | (kp[..., 1] != 0)  # not |x|+|y| > 0: a sum over a size-2 axis is slow in numpy
    return seen if scores is None else seen & (np.asarray(scores, dtype=np.float32) >= score_min)


def body_seen(windows: np.ndarray, scores: np.ndarray | None, score_min: float = SCORE_MIN,
              seen: np.ndarray | None = None) -> np.ndarray:
    """[N] (for a stack [N, T, V, 2]) or [] (one window [T, V, 2]): True where some frame shows a body,
    i.e. at least two seen joints at different places. A window of zeros, or of every joint at one point
    (-1, -1 is another common "not found"), holds no body: it normalises to a collapsed skeleton that
    the model scores as a fall. ``seen``: :func:`seen_joints` if the caller has it already.

    On the service's hot path (every micro-batch), so the usual case is cheap: when every joint is seen, a
    body is there iff some joint differs from joint 0 in some frame (one comparison); only windows with
    unseen joints take the masked per-frame extent."""
    kp = np.asarray(windows, dtype=np.float32)[..., :2]
    if seen is None:
        seen = seen_joints(kp, scores, score_min)
    lead = kp.shape[:-3]
    flat = seen.reshape(lead + (-1,))
    all_seen = flat.all(-1)
    out = all_seen & (kp != kp[..., :1, :]).reshape(lead + (-1,)).any(-1)
    rest = ~all_seen & flat.any(-1)
    if rest.any():
        k, m = (kp, seen) if not lead else (kp[rest], seen[rest])
        lo = np.where(m[..., None], k, np.inf).min(-2)
        hi = np.where(m[..., None], k, -np.inf).max(-2)
        extent = np.where(np.isfinite(hi - lo), hi - lo, 0).max(-1)
        got = (extent > 1e-6).any(-1)
        if lead:
            out[rest] = got
        else:
            out = np.asarray(got)
    return out


NORMALISED_MAX = 2.0  # seen coordinates all within this: normalised to the image (a little out of frame too)
NORMALISED_MIN_POINTS = 3  # seen joints needed before a verdict
NORMALISED_ADVICE = ("every keypoint coordinate is within about [0, 1]: normalised coordinates? The model needs pixels "
                     "(or x and y scaled by one same factor): multiply x by the image width and y by its height "
                     "(MoveNet gives [y, x]: swap them too)")


def looks_normalised(points: np.ndarray) -> bool:
    """``points`` [..., 2], seen joints' coordinates: True when 3 or more are finite and all lie within about
    [0, 1]. Why: MediaPipe-style x / width, y / height squash the body, and the fall model, trained on pixels,
    missed the real fall in fall_skeleton_1.npy (0.90 < 0.94) without a word."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(-1)]
    return len(pts) >= NORMALISED_MIN_POINTS and float(np.abs(pts).max()) <= NORMALISED_MAX


UPSIDE_DOWN_ADVICE = ("the body is upside down (shoulders below the hips) whenever it stands: does y point up, or is "
                      "the camera mounted upside down? The model needs image coordinates, x to the right and y down, "
                      "from an upright view")
UPSIDE_DOWN_SHARE = 0.8  # of the standing frames (:func:`torso_counts`); a fall passes through horizontal
UPSIDE_DOWN_MIN_FRAMES = 10
SIDEWAYS_ADVICE = ("most straight bodies lie along x and few stand upright: if people in view were standing, "
                   "x and y are swapped ([y, x] keypoints, as MoveNet "
                   "gives them) or the camera is on its side. The model needs x to the right and y down, from an "
                   "upright view")
SIDEWAYS_SHARE = 0.75  # of the frames straight either way: URFD (100 clips, 2 pose estimators) and fall_video_1
SIDEWAYS_MIN_FRAMES = 10  # flag none as given, and 84 of 101 with x and y swapped; floor exercise too (docs/fall.md)


MIN_STREAM_FPS = 3.0  # fall.MIN_FPS: windows below it are refused; a stream below it gets LOW_RATE_ADVICE
TIME_SLACK_S = 1e-4  # stream times are compared with this slack (fall._TIME_EPS is this one)
BURST_GAP_S = 0.002  # frames closer than this were stamped on arrival, not at capture
LOW_RATE_ADVICE = ("frames arrive at {rate:.2g} fps: the fall detector needs {need:g} fps or more and misses falls "
                   "below it (real falls found, 2026-11-28: 62 of 62 at 5 fps, 48 at 2 fps, 23 at 1.1 fps)")
BURST_ADVICE = ("{share:.0%} of the frames are stamped under 2 ms apart, in bursts: stamp each frame with the time it "
                "was captured, not when it arrived (a real fall stamped so was missed)")


def timing_advice(times: np.ndarray) -> list[str]:
    """What looks wrong with a person's frame times (seconds, increasing): a rate under 3 fps, or frames
    stamped in bursts. Why: windows below 3 fps are refused by ``predict``, but a stream at 2 fps was
    scored without a word and lost 14 of 62 real falls; bursts of frames 1 ms apart (stamped on arrival
    from a batching network) hid a real fall (probe, 2026-11-28)."""
    t = np.asarray(times, dtype=np.float64)
    if len(t) < 3:
        return []
    gaps = np.diff(t)
    out = []
    median = float(np.median(gaps))
    # with the detector's 0.1 ms slack on times: a 3 fps stream's gaps are 1/3 s give or take float rounding
    # (0.33333333333333337 from i / 3; UNIX stamps carry ~2.4e-7 s), and it was told it "needs 3 fps or more"
    if median > 0 and median > 1.0 / MIN_STREAM_FPS + TIME_SLACK_S:
        out.append(LOW_RATE_ADVICE.format(rate=1.0 / median, need=MIN_STREAM_FPS))
    burst = float(np.mean(gaps < BURST_GAP_S))
    if burst >= 0.5 and (t[-1] - t[0]) / (len(t) - 1) >= BURST_GAP_S * 5:  # tight gaps, yet a normal rate overall
        out.append(BURST_ADVICE.format(share=burst))
    return out


def looks_sideways(standing: int, sideways: int) -> bool:
    """True when enough straight-body frames were seen and most lie along x (:func:`torso_counts` of the
    swapped coordinates): whole-stream only, since a window after a real fall is all lying."""
    return sideways >= SIDEWAYS_MIN_FRAMES and sideways >= SIDEWAYS_SHARE * (standing + sideways)


def torso_counts(kp6: np.ndarray, seen6: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`torso_masks` counted per window: ``(frames standing, those of them upside down)``, two [N] arrays."""
    standing, inverted = torso_masks(kp6, seen6)
    return standing.sum(-1), inverted.sum(-1)


def torso_masks(kp6: np.ndarray, seen6: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of windows of shoulders, hips and ankles (:data:`TORSO_LEGS`, [N, T, 6, 2], unseen joints at 0,
    ``seen6`` [N, T, 6]): ``(standing, upside down)``, two [N, T] masks.

    Standing means torso (hips' to shoulders' midpoint, both sides seen) and legs (hips to the seen ankles)
    both vertical, pointing opposite ways, and not foreshortened; upside down means the torso points down
    in image coordinates (y down). Why: y pointing up, or a camera mounted upside down, shows the model a
    body it never saw in training, and a walk was read as a fall at 0.98 without a word. Lying frames count
    for neither side, so a fall, which ends lying, does not dilute the share; a push-up seen head-on (its
    shoulders below its hips) is foreshortened: its torso is shorter than the shoulders are wide."""
    # per component, not reductions over the size-2 axis: on such small arrays numpy's sum(-1) costs ~14 us
    x, y, seen = kp6[..., 0], kp6[..., 1], seen6
    ok = seen[..., 0] & seen[..., 1] & seen[..., 2] & seen[..., 3] & (seen[..., 4] | seen[..., 5])
    feet = np.maximum(seen[..., 4].astype(np.float32) + seen[..., 5], 1)
    hx, hy = (x[..., 2] + x[..., 3]) / 2, (y[..., 2] + y[..., 3]) / 2
    tx, ty = (x[..., 0] + x[..., 1]) / 2 - hx, (y[..., 0] + y[..., 1]) / 2 - hy  # hips -> shoulders
    lx, ly = (x[..., 4] + x[..., 5]) / feet - hx, (y[..., 4] + y[..., 5]) / feet - hy  # hips -> ankles
    t2, l2 = tx * tx + ty * ty, lx * lx + ly * ly
    wx, wy = x[..., 0] - x[..., 1], y[..., 0] - y[..., 1]
    standing = ok & (ty * ly < 0) & (ty * ty > tx * tx) & (ly * ly > lx * lx) & (l2 >= 0.49 * t2) \
        & (t2 >= 0.81 * (wx * wx + wy * wy))
    return standing, standing & (ty > 0)


# the joints torso_counts reads, in its order
TORSO_LEGS = ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_ankle", "right_ankle")


def looks_upside_down(standing: int, inverted: int) -> bool:
    """True when enough standing frames were seen and most of them upside down (:func:`torso_counts`)."""
    return standing >= UPSIDE_DOWN_MIN_FRAMES and inverted >= UPSIDE_DOWN_SHARE * standing


def input_advice(kp: np.ndarray, sc: np.ndarray | None, layout: str, score_min: float = SCORE_MIN) -> list[list[str]]:
    """What looks wrong with each window [N, T, V, 2] of ``layout``: :data:`NORMALISED_ADVICE`,
    :data:`UPSIDE_DOWN_ADVICE`, or nothing. Shared by the in-process warnings and the service's
    ``warnings``, so both say the same. Judged on the shoulders, hips and ankles only, in one vectorised
    pass over the windows."""
    kp6, seen = torso_legs(kp, sc, layout, score_min)
    n = len(kp6)
    normalised = (seen.reshape(n, -1).sum(1) >= NORMALISED_MIN_POINTS) \
        & (np.abs(kp6).reshape(n, -1).max(1) <= NORMALISED_MAX)
    standing, inverted = torso_counts(kp6, seen)
    return [[a for a, on in ((NORMALISED_ADVICE, n), (UPSIDE_DOWN_ADVICE, looks_upside_down(s, i))) if on]
            for n, s, i in zip(normalised.tolist(), standing.tolist(), inverted.tolist())]  # numpy scalars: slow


def person_frames(people: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Person arrays [V, 2|3] (x, y[, score]) as one window [1, N, V, 2] and its scores [1, N, V] (1 where
    none were given), for :func:`input_advice` / :func:`torso_legs` over a frame's or a request's people."""
    kp = np.stack([p[:, :2] for p in people])[None]
    sc = np.stack([p[:, 2] if p.shape[1] == 3 else np.ones(len(p), np.float32) for p in people])[None]
    return kp, sc


def torso_legs(kp: np.ndarray, sc: np.ndarray | None, layout: str, score_min: float = SCORE_MIN
               ) -> tuple[np.ndarray, np.ndarray]:
    """Windows [N, T, V, 2] of ``layout`` -> their :data:`TORSO_LEGS` joints [N, T, 6, 2] (float32, unseen
    ones at 0) and which were seen [N, T, 6], as :func:`torso_counts` takes them."""
    idx = _torso_legs_index(layout)
    kp6 = np.asarray(kp)[:, :, idx].astype(np.float32)
    x, y = kp6[..., 0], kp6[..., 1]
    seen = ((x != 0) | (y != 0)) & np.isfinite(x) & np.isfinite(y)
    if sc is not None:
        seen &= np.asarray(sc)[:, :, idx] >= score_min
    return np.where(seen[..., None], kp6, np.float32(0)), seen


@lru_cache(maxsize=None)
def _torso_legs_index(layout: str) -> np.ndarray:
    return _body13_index(layout)[list(_TORSO_LEGS_13)]


_TORSO_LEGS_13 = (1, 2, 7, 8, 11, 12)  # TORSO_LEGS in body13


def has_body(window: np.ndarray, scores: np.ndarray | None, score_min: float = SCORE_MIN) -> bool:
    return bool(body_seen(window, scores, score_min))


def require_visible(windows: np.ndarray, scores: np.ndarray | None, score_min: float = SCORE_MIN) -> None:
    """Refuse a window [T, V, 2] (or a stack [N, T, V, 2]) that shows no body in any frame (:func:`body_seen`).

    Why: such a window carries no evidence, yet normalises to an all-zero body that the model scores as
    a fall (p = 0.94 for a window of zeros): a client sending zeros for "nobody there" got an alarm."""
    ok = np.atleast_1d(body_seen(windows, scores, score_min))
    if not ok.all():
        which = f" (window {int(np.flatnonzero(~ok)[0])})" if np.ndim(windows) == 4 else ""
        raise ActionposeError(f"keypoints: no body is visible in any frame{which}: every joint is at (0, 0), "
                              f"scored below {score_min}, or all seen joints are at one point; a window needs "
                              "a person in it")


MAX_JITTER = 0.5  # torso-scaled units per 15 fps frame; URFD: median 0.047, every fall window <= 0.183
MIN_JITTER_PAIRS = 5  # frame pairs a window needs before it is judged (a 1 s window at 15 fps has 15)


def jitter(kp: np.ndarray, sc: np.ndarray, score_min: float = SCORE_MIN) -> np.ndarray:
    """Model-ready windows [N, T, 13, 2] (+ scores [N, T, 13]) -> [N]: the median over frames of the median
    displacement of the joints seen in both frames. Why: keypoints that jump about between frames are
    not one tracked person (noise, a detector flickering between people), yet the model read such
    windows as falls (82 % of uniform-noise windows at the threshold). Frame pairs with under 3 joints
    seen in both are left out, and so are repeated frames (a short window is padded with its first
    frame, a slower source is resampled up to 15 fps): they pulled the median to 0 and let noise
    through. A window without any such pair gets 0."""
    step = kp[:, 1:] - kp[:, :-1]
    d = np.sqrt(step[..., 0] * step[..., 0] + step[..., 1] * step[..., 1])  # [N, T-1, 13]
    both = (sc[:, 1:] >= score_min) & (sc[:, :-1] >= score_min)
    enough = (both.sum(-1) >= 3) & (d > 0).any(-1)                  # [N, T-1]
    per_frame = _masked_median(d, both)                             # [N, T-1]
    out = _masked_median(per_frame, enough)                         # [N]
    out[enough.sum(-1) < MIN_JITTER_PAIRS] = 0.0  # too few moving frames to tell: not judged
    return out


def _masked_median(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median over the last axis of the entries where ``mask`` is True (0 where none is): np.nanmedian's
    numbers at a fraction of its cost (it made one window's predict 3x slower on the service's hot path)."""
    n = mask.sum(-1)
    s = np.sort(np.where(mask, x, np.inf), axis=-1)
    lo = np.take_along_axis(s, np.maximum(n - 1, 0)[..., None] // 2, -1)[..., 0]
    hi = np.take_along_axis(s, (n // 2)[..., None], -1)[..., 0] if s.shape[-1] else lo
    hi = np.where(n % 2 == 1, lo, hi)
    return np.where(n > 0, (lo + hi) / 2, 0.0)


def require_steady(kp: np.ndarray, sc: np.ndarray, score_min: float = SCORE_MIN) -> None:
    """Refuse model-ready windows whose :func:`jitter` is above :data:`MAX_JITTER` (one line, names the window)."""
    j = jitter(kp, sc, score_min)
    bad = np.flatnonzero(j > MAX_JITTER)
    if bad.size:
        which = f" (window {int(bad[0])})" if len(j) > 1 else ""
        raise ActionposeError(f"keypoints{which}: the joints jump by {j[bad[0]]:.2f} torso lengths per frame (at most "
                              f"{MAX_JITTER:g}): not one tracked person (noise, or a tracker switching people)")


@lru_cache(maxsize=None)
def _body13_index(layout: str) -> np.ndarray:
    """Joint indices of body13 in ``layout`` (cached: the name lookups cost more than the gather)."""
    return joint_map(layout, MODEL_LAYOUT)


@lru_cache(maxsize=64)
def _grid_index(n_frames: int, fps: float, model_fps: float, model_frames: int) -> np.ndarray:
    """:func:`resample` indices for an evenly spaced window (the same for every window of that length)."""
    idx = resample(np.arange(n_frames) / float(fps), model_fps, frames=model_frames)
    idx.setflags(write=False)
    return idx


def resample(times: np.ndarray, fps: float, end: float | None = None, frames: int | None = None) -> np.ndarray:
    """Indices into ``times`` (seconds, increasing) of the frames nearest a ``fps`` grid.

    With ``frames``, the grid is the last ``frames`` ticks ending at ``end`` (default: the last time);
    ticks before the first frame repeat it (edge padding)."""
    times = np.asarray(times, dtype=np.float64)
    end = times[-1] if end is None else end
    n = frames if frames is not None else int(np.floor((end - times[0]) * fps + 1e-6)) + 1
    grid = end - np.arange(n)[::-1] / fps
    idx = np.clip(np.searchsorted(times, grid), 0, len(times) - 1)
    prev = np.clip(idx - 1, 0, len(times) - 1)
    closer = np.abs(times[prev] - grid) < np.abs(times[idx] - grid)
    return np.where(closer, prev, idx)


def fill_missing(kp: np.ndarray, sc: np.ndarray, score_min: float = SCORE_MIN) -> np.ndarray:
    """Unseen joints (score < ``score_min`` or exactly (0, 0)) -> linear interpolation over time;
    joints never seen in the window -> laid out from the torso (:func:`_fill_from_torso`), or, when no
    shoulder or no hip was ever seen, the visible-body centre of their frame (or the window's)."""
    kp = kp.copy()
    seen = seen_joints(kp, sc, score_min)
    t = np.arange(len(kp))
    for v in range(kp.shape[1]):
        ok = seen[:, v]
        if ok.all() or not ok.any():
            continue
        for c in range(2):
            kp[~ok, v, c] = np.interp(t[~ok], t[ok], kp[ok, v, c])
    never = ~seen.any(0)
    if never.any() and _fill_from_torso(kp, never):
        return kp
    if never.any():
        if seen.any():
            frame_centre = np.array([kp[i][seen[i]].mean(0) if seen[i].any() else [np.nan, np.nan]
                                     for i in range(len(kp))], dtype=np.float32)
            window_centre = np.nanmean(frame_centre, axis=0)
            frame_centre = np.where(np.isnan(frame_centre), window_centre, frame_centre)
        else:
            frame_centre = np.zeros((len(kp), 2), np.float32)
        kp[:, never] = frame_centre[:, None]
    return kp


# A joint never seen in a window -> its anchor joint + this multiple of the hip->shoulder vector: a
# person's usual build, laid along the torso. Upright, the head lands above the shoulders and the legs
# below the hips; lying, along the floor. (Filling it at the body centre instead made a hidden head
# look like a collapsed posture: a hooded or turned-away person raised fall alarms.)
_TORSO_PRIOR = {0: ("shoulders", 0.55), 3: (1, -0.45), 4: (2, -0.45), 5: (1, -0.85), 6: (2, -0.85),
                9: (7, -0.95), 10: (8, -0.95), 11: (7, -1.9), 12: (8, -1.9)}


def _fill_from_torso(kp: np.ndarray, never: np.ndarray) -> bool:
    """Fill never-seen body13 joints in place from the torso (see ``_TORSO_PRIOR``); False (nothing
    done) when the window has no shoulder or no hip to build the torso from."""
    if kp.shape[1] != 13 or (never[_LS] and never[_RS]) or (never[_LH] and never[_RH]):
        return False
    for a, b in ((_LS, _RS), (_LH, _RH)):  # one side never seen: the other side's joint stands in
        if never[a]:
            kp[:, a] = kp[:, b]
        elif never[b]:
            kp[:, b] = kp[:, a]
    sho = (kp[:, _LS] + kp[:, _RS]) / 2
    up = sho - (kp[:, _LH] + kp[:, _RH]) / 2
    for j, (anchor, k) in _TORSO_PRIOR.items():
        if never[j]:
            base = sho if anchor == "shoulders" else kp[:, anchor]
            kp[:, j] = base + k * up
    return True


def gap_scores(sc: np.ndarray, seen: np.ndarray, max_gap: int) -> np.ndarray:
    """Scores [T, V] where a joint unseen for at most ``max_gap`` frames between two seen frames takes the
    lower of those two frames' scores.

    Why: a pose estimator drops a wrist or an ankle for a frame or two all the time; the position is
    interpolated (:func:`fill_missing`) but a score of 0 told the model the joint was hidden, and a body
    with flickering joints read like one behind furniture. Longer gaps and gaps at the window's edges
    keep score 0: there the position is a guess."""
    if max_gap <= 0 or seen.all():
        return sc
    sc = sc.copy()
    for v in np.flatnonzero(~seen.all(0)):
        idx = np.flatnonzero(seen[:, v])
        if len(idx) < 2:
            continue
        gaps = np.diff(idx) - 1
        for j in np.flatnonzero((gaps >= 1) & (gaps <= max_gap)):
            a, b = idx[j], idx[j + 1]
            sc[a + 1:b, v] = min(sc[a, v], sc[b, v])
    return sc


def normalise_window(kp: np.ndarray, sc: np.ndarray, score_min: float = SCORE_MIN,
                     gap_fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[T, 13, 2] pixels -> centred on the window's mean hip mid-point, scaled by the window's 90th
    percentile torso length (robust to foreshortening while lying). Returns (keypoints, scores)."""
    seen = seen_joints(kp, sc, score_min)  # as reported: positions are interpolated over these, scores filled
    kp = fill_missing(kp, sc, score_min)
    if gap_fill:
        sc = gap_scores(sc, seen, gap_fill)
    hip = (kp[:, _LH] + kp[:, _RH]) / 2
    sho = (kp[:, _LS] + kp[:, _RS]) / 2
    torso = np.linalg.norm(sho - hip, axis=-1)
    scale = float(np.percentile(torso, 90)) if len(torso) else 0.0
    if not np.isfinite(scale) or scale < 1e-6:
        span = kp.reshape(-1, 2).max(0) - kp.reshape(-1, 2).min(0)
        scale = float(max(span.max() / 3, 1e-6))
    out = (kp - hip.mean(0)) / scale
    return np.clip(out, -20, 20).astype(np.float32), np.clip(sc, 0, 1).astype(np.float32)


def prepare_window(keypoints: np.ndarray, scores: np.ndarray | None, layout: str, times: np.ndarray | None = None,
                   fps: float | None = None, cfg: PrepConfig = PrepConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Any-layout window [T, V, 2] in pixels (isotropic units) -> model input [T', 13, 2], [T', 13].

    ``times`` (seconds) or ``fps`` place the frames in time; the last ``cfg.frames`` ticks at
    ``cfg.fps`` are taken (a short window is padded with its first frame)."""
    kp, sc = to_body13(keypoints, scores, layout)
    if len(kp) == 0:
        raise ActionposeError("keypoints: empty window (0 frames)")
    if times is None:
        times = np.arange(len(kp)) / float(fps or cfg.fps)
    idx = resample(np.asarray(times), cfg.fps, frames=cfg.frames)
    require_visible(kp[idx], sc[idx], cfg.score_min)  # judged on the frames the model sees
    return normalise_window(kp[idx], sc[idx], cfg.score_min, cfg.gap_fill)


def prepare_windows(keypoints: np.ndarray, scores: np.ndarray | None, layout: str, fps: float,
                    cfg: PrepConfig = PrepConfig()) -> tuple[np.ndarray, np.ndarray]:
    """:func:`prepare_window` for N evenly spaced windows of one length, layout and frame rate at once
    ([N, T, V, 2] (+ [N, T, V]) -> [N, T', 13, 2], [N, T']): the same numbers, bit for bit, without a
    Python loop per window (the service's micro-batches land here). Windows with unseen joints or a
    degenerate torso take the per-window path for those steps."""
    kp = np.asarray(keypoints, dtype=np.float32)
    lay = get_layout(layout)
    if kp.ndim != 4 or kp.shape[-1] < 2 or kp.shape[2] != lay.num_joints:
        raise ActionposeError(f"keypoints: shape {kp.shape}, expected [N, T, {lay.num_joints}, 2] for layout {lay.name}")
    n, t = kp.shape[:2]
    if t == 0:
        raise ActionposeError("keypoints: empty window (0 frames)")
    kp, sc = _xy_and_scores(kp, scores)
    idx = _grid_index(t, float(fps or cfg.fps), cfg.fps, cfg.frames)
    joints = _body13_index(lay.name)
    kp = kp[:, idx][:, :, joints]                                   # [N, T', 13, 2]
    sc = sc[:, idx][:, :, joints]                                   # [N, T', 13]
    seen = seen_joints(kp, sc, cfg.score_min)
    ok = body_seen(kp, sc, cfg.score_min, seen=seen)  # judged on the resampled frames, as the model sees them
    if not ok.all():
        require_visible(kp, sc, cfg.score_min)
    partial = ~seen.reshape(n, -1).all(1)
    for i in np.flatnonzero(partial):                               # rare: interpolate unseen joints
        kp[i] = fill_missing(kp[i], sc[i], cfg.score_min)
        if cfg.gap_fill:
            sc[i] = gap_scores(sc[i], seen[i], cfg.gap_fill)
    hip = (kp[:, :, _LH] + kp[:, :, _RH]) / 2
    sho = (kp[:, :, _LS] + kp[:, :, _RS]) / 2
    torso = np.linalg.norm(sho - hip, axis=-1)                      # [N, T']
    scale = np.percentile(torso, 90, axis=1)
    bad = ~np.isfinite(scale) | (scale < 1e-6)
    for i in np.flatnonzero(bad):                                   # degenerate torso: the window's own rule
        span = kp[i].reshape(-1, 2).max(0) - kp[i].reshape(-1, 2).min(0)
        scale[i] = float(max(span.max() / 3, 1e-6))
    centre = hip.mean(1)                                            # per window (bit-identical: tested)
    out = (kp - centre[:, None, None]) / scale.astype(np.float32)[:, None, None, None]
    return np.clip(out, -20, 20).astype(np.float32), np.clip(sc, 0, 1).astype(np.float32)
