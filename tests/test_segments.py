"""Smoothing, hysteresis and merging turn window scores into one segment per action."""
import numpy as np
import pytest

from actionpose.errors import ActionposeError
from actionpose.inference.segments import (OnlineSegmenter, Segment, SegmentConfig, labelled_fraction,
                                           match_segments, segment_iou, segment_windows, window_cells)

CLASSES = ["a", "b", "c"]


def onehot(seq, hi=0.9):
    """Window probabilities: class index -> `hi` on that class, -1 -> flat (background)."""
    out = []
    for k in seq:
        p = np.full(3, (1 - hi) / 2) if k >= 0 else np.full(3, 0.2)
        if k >= 0:
            p[k] = hi
        out.append(p)
    return np.array(out)


def windows(n, win=2.0, stride=0.5):
    starts = np.arange(n) * stride
    return starts, starts + win


def test_window_cells_tile_the_timeline():
    s, e = windows(5)
    cells = window_cells(s, e)
    assert cells[0][0] == 0.0 and cells[-1][1] == e[-1]
    for (a0, a1), (b0, b1) in zip(cells, cells[1:]):
        assert a1 == b0 and a0 < a1


def test_one_action_one_segment_with_boundaries():
    seq = [-1] * 4 + [0] * 12 + [-1] * 4 + [1] * 12 + [-1] * 4
    s, e = windows(len(seq))
    segs = segment_windows(s, e, onehot(seq), CLASSES, SegmentConfig(smooth=1))
    assert [x.label for x in segs] == ["a", "b"]
    # window i owns [0.5 i + 0.75, 0.5 i + 1.25): action a = windows 4..15 -> 2.75 .. 8.75 s
    assert segs[0].start_s == pytest.approx(2.75) and segs[0].end_s == pytest.approx(8.75)
    assert segs[0].score == pytest.approx(0.9)


def test_flicker_is_smoothed_and_hysteresis_holds():
    # one wrong window inside a long action: smoothing + hysteresis keep one segment
    seq = [0] * 8 + [1] + [0] * 8
    s, e = windows(len(seq))
    segs = segment_windows(s, e, onehot(seq), CLASSES, SegmentConfig(smooth=3))
    assert [x.label for x in segs] == ["a"]
    # without smoothing or hysteresis-merging, the same input would split
    raw = segment_windows(s, e, onehot(seq), CLASSES, SegmentConfig(smooth=1, exit_ratio=1.0, max_gap_s=0.0,
                                                                    min_duration_s=0.0))
    assert [x.label for x in raw] == ["a", "b", "a"]


def test_hysteresis_keeps_a_score_wobbling_around_threshold():
    p = np.array([[0.7, 0.2, 0.1], [0.45, 0.3, 0.25], [0.55, 0.3, 0.15], [0.42, 0.3, 0.28], [0.6, 0.2, 0.2]] * 3)
    s, e = windows(len(p))
    cfg = SegmentConfig(threshold=0.5, exit_ratio=0.6, smooth=1, max_gap_s=0.0)
    assert len(segment_windows(s, e, p, CLASSES, cfg)) == 1
    cfg_no_hyst = SegmentConfig(threshold=0.5, exit_ratio=1.0, smooth=1, max_gap_s=0.0, min_duration_s=0.0)
    assert len(segment_windows(s, e, p, CLASSES, cfg_no_hyst)) > 1


def test_background_below_threshold_is_not_forced():
    p = np.tile([0.4, 0.35, 0.25], (20, 1))
    s, e = windows(20)
    assert segment_windows(s, e, p, CLASSES, SegmentConfig(threshold=0.5)) == []
    assert [x.label for x in segment_windows(s, e, p, CLASSES, SegmentConfig(threshold=0.35))] == ["a"]


def test_short_segments_dropped_and_same_label_gap_merged():
    seq = [0] * 6 + [-1] * 2 + [0] * 6 + [-1] * 6 + [2] + [-1] * 4  # short 'c' at the end (0.5 s) is dropped
    s, e = windows(len(seq))
    segs = segment_windows(s, e, onehot(seq), CLASSES, SegmentConfig(smooth=1, max_gap_s=1.0, min_duration_s=1.0))
    assert [x.label for x in segs] == ["a"]
    assert segs[0].end_s == pytest.approx(0.5 * 13 + 1.25)


def test_online_matches_batch_and_emits_early():
    rng = np.random.default_rng(0)
    seq = [0] * 10 + [-1] * 6 + [1] * 10 + [-1] * 6 + [2] * 10
    probs = onehot(seq) + rng.uniform(0, 0.05, (len(seq), 3))
    s, e = windows(len(seq))
    cfg = SegmentConfig()
    batch = segment_windows(s, e, probs, CLASSES, cfg)
    online = OnlineSegmenter(CLASSES, cfg)
    got, first_emit = [], None
    for i, ((lo, hi), p) in enumerate(zip(window_cells(s, e), probs)):
        new = online.push(lo, hi, p)
        if new and first_emit is None:
            first_emit = i
        got += new
    got += online.flush()
    assert [(x.label, x.start_s, x.end_s) for x in got] == [(x.label, x.start_s, x.end_s) for x in batch]
    assert [x.label for x in got] == ["a", "b", "c"]
    assert first_emit is not None and first_emit < 25  # 'a' is reported while later windows still arrive
    assert len(online._raw) == 0


def test_online_memory_is_bounded():
    seg = OnlineSegmenter(CLASSES, SegmentConfig(smooth=5))
    for i in range(2000):
        seg.push(i * 0.5, i * 0.5 + 0.5, onehot([i // 100 % 3])[0])
        assert len(seg._raw) <= 5
    assert seg.flush()


def test_bad_config_and_bad_scores():
    with pytest.raises(ActionposeError, match="stride"):
        SegmentConfig(window_s=1, stride_s=2).validate()
    with pytest.raises(ActionposeError, match="threshold"):
        SegmentConfig(threshold=0).validate()
    with pytest.raises(ActionposeError, match="3 classes"):
        OnlineSegmenter(CLASSES).push(0, 1, [0.5, 0.5])


def test_metrics():
    t = [Segment("a", 0, 10, 1), Segment("b", 10, 20, 1)]
    p = [Segment("a", 1, 10, 0.9), Segment("b", 15, 30, 0.8), Segment("c", 0, 5, 0.7)]
    m = match_segments(p, t, 0.5)
    assert (m.tp, m.n_pred, m.n_true) == (1, 3, 2)
    assert m.precision == pytest.approx(1 / 3) and m.recall == 0.5
    assert m.mean_boundary_error_s == pytest.approx(0.5)
    assert segment_iou((0, 10), (5, 15)) == pytest.approx(1 / 3)
    assert labelled_fraction(p, "a", 0, 10) == pytest.approx(0.9)


def test_peak_shows_the_threshold_was_reached_when_the_mean_is_below_it():
    """Hysteresis keeps a segment open above threshold * exit_ratio, so its mean can be under the
    threshold; `peak` is the highest smoothed probability and is never under it."""
    p = [0.1, 0.9] + [0.35] * 10 + [0.1] * 4
    probs = np.array([[x, (1 - x) / 2, (1 - x) / 2] for x in p])
    s, e = windows(len(p))
    (seg,) = segment_windows(s, e, probs, CLASSES, SegmentConfig(smooth=1, threshold=0.5))
    assert seg.label == "a" and seg.score < 0.5 <= seg.peak
    assert seg.peak == pytest.approx(0.9) and seg.to_dict()["peak"] == 0.9
