"""Signal processing for counting: gap filling, period estimation, normalisation, hysteresis.

Why this shape: a repetition is one cycle of a quasi-periodic signal. The autocorrelation gives the
typical cycle length (robust to noise and to the signal's shape), which sets the smoothing and the
window of a local min/max normalisation; a two-threshold (hysteresis) state machine on the
normalised signal then finds each cycle, so jitter around one level cannot produce extra counts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d, minimum_filter1d
from scipy.signal import find_peaks

# Hysteresis levels on the signal normalised to [-0.5, 0.5] by its local range.
ENTER = 0.2   # |z| above this = firmly in the rest / active half of the motion
AMPLITUDE_FRACTION = 0.4   # local range below this fraction of the sequence's range is not a repetition
PEAK_FRACTION = 0.7   # first autocorrelation peak this close to the best one is the cycle (not its multiples)


@dataclass(frozen=True)
class Periodicity:
    period: float   # frames per cycle (nan when no period was found)
    score: float    # autocorrelation at that lag, in [-1, 1]; higher = more periodic


def despike(x: np.ndarray, size: int = 5, clip: float = 3.0) -> np.ndarray:
    """Median-filter single-frame pose glitches and clip the outer ``clip`` % at each end.

    Pose estimators sometimes flip a limb for a few frames; one such glitch would otherwise set the
    sequence's range and shrink every real repetition below the hysteresis levels.
    """
    from scipy.ndimage import median_filter

    y = median_filter(x, size=size, mode="nearest") if len(x) > size else x
    lo, hi = np.percentile(y, [clip, 100 - clip])
    return np.clip(y, lo, hi)


def fill_gaps(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN frames (edges take the nearest valid value)."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    if ok.all() or not ok.any():
        return x.copy()
    t = np.arange(len(x))
    return np.interp(t, t[ok], x[ok])


def _autocorr(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    n = len(x)
    f = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(f * np.conj(f))[:n]
    if ac[0] <= 0:
        return np.zeros(n)
    # unbiased: divide by the number of overlapping samples, then by lag-0
    ac = ac / np.arange(n, 0, -1)
    return ac / ac[0]


def estimate_period(x: np.ndarray, min_lag: float, max_lag: float) -> Periodicity:
    """Dominant cycle length of ``x`` (frames) from autocorrelation peaks within [min_lag, max_lag].

    Takes the first peak reaching ``PEAK_FRACTION`` of the best peak, so a cycle is not mistaken for two (a
    signal repeating every P also correlates at 2P, 3P ...).
    """
    n = len(x)
    max_lag = int(min(max_lag, n * 2 // 3))
    min_lag = max(2, int(min_lag))
    if n < 8 or max_lag <= min_lag:
        return Periodicity(float("nan"), 0.0)
    smooth = gaussian_filter1d(x, max(1.0, min_lag / 6))
    # remove slow drift (camera motion, fatigue) longer than the longest plausible cycle
    trend = gaussian_filter1d(smooth, max_lag)
    ac = _autocorr(smooth - trend)
    peaks, _ = find_peaks(ac[: max_lag + 1])
    peaks = peaks[peaks >= min_lag]
    if len(peaks) == 0:
        return Periodicity(float("nan"), 0.0)
    best = ac[peaks].max()
    first = peaks[np.argmax(ac[peaks] >= PEAK_FRACTION * best)]
    # parabolic refinement of the peak position
    lag = float(first)
    if 0 < first < n - 1:
        a, b, c = ac[first - 1], ac[first], ac[first + 1]
        den = a - 2 * b + c
        if den < 0:
            lag += 0.5 * (a - c) / den
    return Periodicity(lag, float(ac[first]))


def normalise(x: np.ndarray, period: float, floor: float) -> np.ndarray:
    """Map ``x`` to about [-0.5, 0.5] by its min/max over a window of ~1.5 cycles.

    The local range is floored at ``floor`` (a fraction of the whole sequence's range, and the
    exercise's minimum movement) so still or idle stretches are not blown up into fake cycles.
    """
    w = max(3, int(round(1.5 * period)) | 1)
    hi, lo = maximum_filter1d(x, w, mode="nearest"), minimum_filter1d(x, w, mode="nearest")
    hi, lo = gaussian_filter1d(hi, period / 2), gaussian_filter1d(lo, period / 2)
    rng = np.maximum(hi - lo, floor)
    return (x - (hi + lo) / 2) / rng


@dataclass(frozen=True)
class Cycle:
    start: int   # frame where the signal left the rest level
    end: int     # frame where it came back to the rest level
    depth: float  # deepest normalised excursion into the active half (0..~1)


def hysteresis_cycles(z: np.ndarray, rest_sign: float | None = None, enter: float = ENTER) -> tuple[list[Cycle], float]:
    """Rest -> active -> rest cycles of the normalised signal ``z``.

    ``rest_sign`` (+1 / -1) says which half is the rest position; ``None`` takes the side the
    sequence starts in (people start an exercise set at rest). Returns the cycles and the sign used.
    """
    s = np.sign(z) * (np.abs(z) > enter)
    nz = np.flatnonzero(s)
    if len(nz) == 0:
        return [], rest_sign or 1.0
    if rest_sign is None:
        rest_sign = float(s[nz[0]])
    y = z * rest_sign
    cycles: list[Cycle] = []
    state = "rest" if y[nz[0]] > 0 else "unknown"
    leave = None
    depth = 0.0
    for t in range(len(y)):
        v = y[t]
        if state in ("rest", "unknown"):
            if v > 0:
                leave = None
                state = "rest"
            elif leave is None:
                leave = t
            if v < -enter:
                state = "active" if state == "rest" else "active_unknown"
                depth = -v
        else:
            depth = max(depth, -v)
            if v > enter:
                if state == "active" and leave is not None:
                    # end at the zero crossing back towards rest
                    back = t
                    while back > leave and y[back - 1] > 0:
                        back -= 1
                    cycles.append(Cycle(int(leave), int(back), float(depth)))
                state, leave, depth = "rest", None, 0.0
    return cycles, rest_sign
