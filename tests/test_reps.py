"""RepCounter: synthetic periodic motion (known counts, speeds, noise, scale, rotation), live events,
layout mapping, bad inputs, the real repcount fixture, and the real evaluation sets in ../shared."""
from __future__ import annotations

import json

import numpy as np
import pytest

from actionpose.errors import ActionposeError
from actionpose.inference.reps import RepCounter, count_reps
from actionpose.skeleton import get_layout
from conftest import FIXTURES, shared_path

B13 = get_layout("body13")


def _phase(n_reps: int, period_s: float, fps: float, pause_s: float = 0.6, jitter: float = 0.0,
           seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """0 at rest, 1 at the deepest point; ``n_reps`` raised-cosine cycles separated by rests."""
    rng = np.random.default_rng(seed)
    parts, ends, t = [np.zeros(int(pause_s * fps))], [], pause_s
    for _ in range(n_reps):
        p = period_s * (1 + jitter * rng.uniform(-1, 1))
        k = int(round(p * fps))
        parts.append((1 - np.cos(2 * np.pi * np.arange(k) / k)) / 2)
        t += k / fps
        ends.append(t)
        rest = int(pause_s * fps * (1 + jitter * rng.uniform(-1, 1)))
        parts.append(np.zeros(rest))
        t += rest / fps
    return np.concatenate(parts), ends


def _pose(points: dict[str, tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    kp = np.zeros((n, 13, 2))
    for name, (x, y) in points.items():
        kp[:, B13.index(name), 0] = x
        kp[:, B13.index(name), 1] = y
    return kp


def _squat(ph: np.ndarray) -> np.ndarray:
    """Side view, y up: shank leans forward, thigh back; knee angle 175 -> 85 degrees."""
    a1, a2 = np.radians(2 + 40 * ph), np.radians(3 + 50 * ph)
    ank = (np.zeros_like(ph), np.zeros_like(ph))
    knee = (ank[0] + np.sin(a1), ank[1] + np.cos(a1))
    hip = (knee[0] - np.sin(a2), knee[1] + np.cos(a2))
    lean = np.radians(5 + 30 * ph)
    sh = (hip[0] + 1.1 * np.sin(lean), hip[1] + 1.1 * np.cos(lean))
    elb = (sh[0] + 0.3, sh[1] - 0.5)
    wr = (sh[0] + 0.7, sh[1] - 0.6)
    head = (sh[0] + 0.1, sh[1] + 0.4)
    pts = {"head": head}
    for s, dx in (("left", 0.0), ("right", 0.05)):
        for j, p in (("ankle", ank), ("knee", knee), ("hip", hip), ("shoulder", sh), ("elbow", elb), ("wrist", wr)):
            pts[f"{s}_{j}"] = (p[0] + dx, p[1])
    return _pose(pts, len(ph))


def _pushup(ph: np.ndarray) -> np.ndarray:
    """Side view, y up: wrists on the floor, elbow angle 170 -> 80 degrees, body a straight plank."""
    b = np.radians(5 + 45 * ph)
    wr = (np.zeros_like(ph), np.zeros_like(ph))
    elb = (wr[0] - 0.5 * np.sin(b), wr[1] + 0.5 * np.cos(b))
    sh = (wr[0], wr[1] + 2 * 0.5 * np.cos(b))
    hip = (sh[0] - 1.2, sh[1] * 0.7 + 0.1)
    knee = (hip[0] - 0.9, hip[1] * 0.5 + 0.05)
    ank = (knee[0] - 0.9, np.full_like(ph, 0.05))
    pts = {"head": (sh[0] + 0.35, sh[1] + 0.1)}
    for s, dx in (("left", 0.0), ("right", 0.03)):
        for j, p in (("ankle", ank), ("knee", knee), ("hip", hip), ("shoulder", sh), ("elbow", elb), ("wrist", wr)):
            pts[f"{s}_{j}"] = (p[0] + dx, p[1])
    return _pose(pts, len(ph))


def _jumping_jack(ph: np.ndarray) -> np.ndarray:
    """Front view, y up: arms swing from the sides to overhead, feet apart."""
    arm = np.radians(10 + 150 * ph)
    leg = np.radians(3 + 15 * ph)
    pts = {"head": (np.zeros_like(ph), np.full_like(ph, 1.5))}
    for s, side in (("left", 1), ("right", -1)):
        sh = (side * 0.25 + 0 * ph, 1.1 + 0 * ph)
        pts[f"{s}_shoulder"] = sh
        pts[f"{s}_elbow"] = (sh[0] + side * 0.35 * np.sin(arm), sh[1] - 0.35 * np.cos(arm))
        pts[f"{s}_wrist"] = (sh[0] + side * 0.7 * np.sin(arm), sh[1] - 0.7 * np.cos(arm))
        hip = (side * 0.15 + 0 * ph, 0 * ph)
        pts[f"{s}_hip"] = hip
        pts[f"{s}_knee"] = (hip[0] + side * 0.5 * np.sin(leg), hip[1] - 0.5 * np.cos(leg))
        pts[f"{s}_ankle"] = (hip[0] + side * np.sin(leg), hip[1] - np.cos(leg))
    return _pose(pts, len(ph))


MAKERS = {"squat": _squat, "push_up": _pushup, "jumping_jacks": _jumping_jack}


def to_image(kp: np.ndarray, scale: float = 100.0, rot_deg: float = 0.0, offset=(320.0, 400.0),
             noise: float = 0.0, seed: int = 1) -> np.ndarray:
    """y-up model units -> image pixels (y down), rotated, scaled, shifted, with pixel noise."""
    r = np.radians(rot_deg)
    rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    out = kp @ rot.T * scale
    out[..., 1] *= -1
    out += offset
    if noise:
        out += np.random.default_rng(seed).normal(0, noise * scale, out.shape)
    return out


@pytest.mark.parametrize("exercise", sorted(MAKERS))
@pytest.mark.parametrize("n_reps,period_s,fps", [(5, 1.0, 30.0), (8, 2.5, 30.0), (3, 4.0, 15.0), (12, 0.8, 60.0)])
def test_synthetic_known_counts(exercise, n_reps, period_s, fps):
    ph, ends = _phase(n_reps, period_s, fps)
    res = count_reps(to_image(MAKERS[exercise](ph)), exercise=exercise, fps=fps)
    assert res.count == n_reps
    # each rep ends near the true end of its cycle (zero-crossing back to rest: within ~1/3 period)
    got = np.array([r.end_s for r in res.reps])
    assert np.all(np.abs(got - np.array(ends)) < 0.4 * period_s + 2 / fps)
    assert all(r.start_s < r.end_s for r in res.reps)


@pytest.mark.parametrize("scale,rot,noise", [(20.0, 0.0, 0.0), (400.0, 0.0, 0.0), (100.0, 25.0, 0.0),
                                             (100.0, -15.0, 0.02), (35.0, 10.0, 0.03)])
def test_distance_rotation_noise_do_not_change_the_count(scale, rot, noise):
    ph, _ = _phase(7, 1.6, 30.0, jitter=0.3, seed=3)
    for ex, make in MAKERS.items():
        res = count_reps(to_image(make(ph), scale=scale, rot_deg=rot, noise=noise), exercise=ex)
        assert res.count == 7, (ex, scale, rot, noise, res)


def test_holding_still_counts_zero():
    ph = np.zeros(150)
    res = count_reps(to_image(_squat(ph), noise=0.005), exercise="squat")
    assert res.count == 0 and res.reps == []


def test_auto_selection_counts_and_records_the_signal():
    ph, _ = _phase(6, 1.5, 30.0)
    res = count_reps(to_image(_squat(ph)))
    assert res.count == 6
    assert res.signal and res.periodicity > 0


def test_live_update_emits_one_event_per_completed_rep():
    fps = 30.0
    ph, ends = _phase(6, 1.4, fps, jitter=0.2)
    kp = to_image(_pushup(ph), noise=0.005)
    counter = RepCounter("push_up", fps=fps)
    events = []
    for i, frame in enumerate(kp):
        t = i / fps
        for ev in counter.update(frame, t):
            assert ev.end_s <= t   # reported only after the rep completed
            events.append(ev)
    tail, result = counter.finish()
    events += tail
    assert [e.count for e in events] == list(range(1, 7))
    assert result.count == 6
    assert np.all(np.abs(np.array([e.end_s for e in events]) - ends) < 0.6)
    counter.reset()
    assert counter.update(kp[0], 0.0) == []


def test_live_stream_longer_than_the_window_counts_each_rep_once():
    """Past ``window_s`` the window's first frame falls mid-rep: the rest side must not flip (every rep was
    emitted again half a cycle later: 30 events for 25 reps), and finish() counts the whole stream, not the
    window alone (10 of 25)."""
    fps = 30.0
    ph, ends = _phase(25, 1.4, fps, jitter=0.2)
    kp = to_image(_squat(ph), noise=0.005)
    counter = RepCounter("squat", fps=fps, window_s=20.0)
    events = []
    for i, frame in enumerate(kp):
        events += counter.update(frame, i / fps)
    tail, result = counter.finish()
    events += tail
    assert len(kp) / fps > 2 * counter.window_s
    assert len(events) == 25
    assert result.count == 25 and result.live_count == 25
    assert np.all(np.abs(np.array([e.end_s for e in events]) - ends) < 0.6)


def test_live_frames_not_fed_for_a_while_keep_rep_times_and_count():
    """An app feeds no frame while the person is out of view: the frames were taken as evenly spaced, so after a
    20 s gap the later reps were reported about 10 s early and live events double-counted some of them."""
    fps = 30.0
    ph, ends = _phase(12, 1.4, fps, jitter=0.2)
    kp = to_image(_squat(ph), noise=0.005)
    t0, half = 1764300000.0, len(kp) // 2   # a phone clock in UNIX seconds
    times = t0 + np.arange(len(kp)) / fps + np.where(np.arange(len(kp)) >= half, 20.0, 0.0)
    ends = np.asarray(ends) + np.where(np.asarray(ends) * fps >= half, 20.0, 0.0)
    counter = RepCounter("squat", fps=fps)
    events = []
    for frame, t in zip(kp, times):
        events += counter.update(frame, t)
    tail, result = counter.finish()
    events += tail
    assert len(events) == 12 and result.count == 12
    assert np.all(np.abs(np.array([e.end_s for e in events]) - t0 - ends) < 0.6)
    assert np.all(np.abs(np.array([r.end_s for r in result.reps]) - t0 - ends) < 0.6)


def test_any_layout_mappable_to_body13():
    ph, _ = _phase(5, 1.2, 30.0)
    b13 = to_image(_squat(ph))
    coco = get_layout("coco17")
    kp = np.zeros((len(b13), 17, 2))
    sc = np.full((len(b13), 17), 0.9)
    for i, name in enumerate(B13.joints):
        kp[:, coco.index("nose" if name == "head" else name)] = b13[:, i]
    assert count_reps(kp, sc, exercise="squat", layout="coco17").count == 5
    # [M, T, V, C] input: the most confidently seen person is counted
    two = np.stack([kp, kp * 0]), np.stack([sc, sc * 0])
    assert RepCounter("squat", layout="coco17").count(*two).count == 5


def test_bad_inputs_have_clear_errors():
    ph, _ = _phase(4, 1.0, 30.0)
    kp = to_image(_squat(ph))
    with pytest.raises(ActionposeError, match="unknown exercise 'zumba'"):
        RepCounter("zumba")
    with pytest.raises(ActionposeError, match="too short"):
        count_reps(kp[:5], exercise="squat")
    with pytest.raises(ActionposeError, match="too short"):
        count_reps(kp[:10], exercise="squat", fps=30.0)
    legs_hidden = np.ones(kp.shape[:2])
    legs_hidden[:, [B13.index(j) for j in ("left_knee", "right_knee", "left_ankle", "right_ankle")]] = 0.05
    with pytest.raises(ActionposeError, match="missing joints needed for squat.*knee"):
        count_reps(kp, legs_hidden, exercise="squat")
    with pytest.raises(ActionposeError, match="any known exercise") as err:  # every signal of every exercise
        count_reps(kp, np.full(kp.shape[:2], 0.05))  # was listed: a 2.7-KB line per track; the best three now
    assert str(err.value).count(" seen in ") == 3 and "more signals, seen less" in str(err.value)
    with pytest.raises(ActionposeError, match="shape"):
        count_reps(kp[..., 0], exercise="squat")
    with pytest.raises(ActionposeError, match="joints but layout coco17"):
        count_reps(kp, exercise="squat", layout="coco17")
    with pytest.raises(ActionposeError, match="scores have shape"):
        count_reps(kp, np.ones((3, 3)), exercise="squat")
    for bad in (0, float("nan"), float("inf"), -1):  # NaN and inf failed inside scipy, -1 as "Radius must be ..."
        with pytest.raises(ActionposeError, match="fps must be a finite positive number"):
            RepCounter("squat", fps=bad)
        with pytest.raises(ActionposeError, match="fps must be a finite positive number"):
            RepCounter("squat").count(kp, fps=bad) if bad != 0 else RepCounter("squat", fps=bad)
    with pytest.raises(ActionposeError, match="window_s must be"):
        RepCounter("squat", window_s=0)
    with pytest.raises(ActionposeError, match="min_score must be between 0 and 1"):
        RepCounter("squat", min_score=float("nan"))
    with pytest.raises(ActionposeError, match="too short"):  # no frame at all: was numpy's "need at least one array"
        RepCounter("squat").finish()
    c = RepCounter("squat")
    c.update(kp[0], 1.0)
    with pytest.raises(ActionposeError, match="not after"):
        c.update(kp[1], 0.5)
    with pytest.raises(ActionposeError, match="finite number of seconds"):
        c.update(kp[1], float("nan"))
    # one bad frame is refused and not kept: it broke every later update and finish for 90 s (probe)
    with pytest.raises(ActionposeError, match=r"frame keypoints: shape \(5, 2\), but this stream's frames are"):
        c.update(kp[1, :5], 2.0)
    with pytest.raises(ActionposeError, match=r"frame scores: shape \(5,\)"):
        c.update(kp[1], 2.0, np.ones(5))
    c.update(kp[1], 2.0)
    with pytest.raises(ActionposeError, match="too short"):
        c.finish()


def test_live_frames_in_another_layout_are_refused_at_the_first_frame():
    """A live stream in the wrong layout (coco17 frames to a blazepose33 counter, or BlazePose's x, y, z, visibility)
    gave no event and no error for the whole stream: the analysis error was swallowed as "not enough frames yet"."""
    ph, _ = _phase(5, 1.2, 30.0)
    kp = to_image(_squat(ph))
    with pytest.raises(ActionposeError, match=r"frame keypoints: shape \(13, 2\), expected \(33, 2\|3\) for layout "
                                              "blazepose33"):
        RepCounter("squat", layout="blazepose33").update(kp[0], 0.0)
    with pytest.raises(ActionposeError, match=r"frame keypoints: shape \(13, 4\), expected \(13, 2\|3\)"):
        RepCounter("squat").update(np.concatenate([kp[0], np.ones((13, 2))], -1), 0.0)
    with pytest.raises(ActionposeError, match="unknown layout 'blaze'"):
        RepCounter("squat", layout="blaze")


def test_settings_of_other_python_types_are_accepted_or_refused_in_one_line():
    """numpy scalars are numbers (np.float32(0.3) was refused as 'got 0.30000001192092896'); an empty or non-text
    exercise name is an error (RepCounter("") silently counted in auto mode, RepCounter(5) raised AttributeError)."""
    assert RepCounter("squat", min_score=np.float32(0.3)).min_score == pytest.approx(0.3)
    assert RepCounter("squat", min_score=np.int64(0)).min_score == 0.0
    with pytest.raises(ActionposeError, match="min_score must be between 0 and 1"):
        RepCounter("squat", min_score=True)
    for bad in ("", "  ", 5):
        with pytest.raises(ActionposeError, match="unknown exercise"):
            RepCounter(bad)
    with pytest.raises(ActionposeError, match="frame keypoints must be numbers"):
        RepCounter("squat").update([["a", "b"]] * 13, 0.0)


def test_real_fixture_counts_close_to_human_labels():
    from actionpose.data.format import load_dataset

    ds = load_dataset(FIXTURES / "reps" / "repcount_body13.pkl")
    for ann in ds.annotations:
        ex = ds.classes[ann["label"]]
        res = RepCounter(ex, layout=ds.layout).count(ann["keypoint"][0], ann["keypoint_score"][0])
        assert abs(res.count - ann["count"]) <= 1, (ann["frame_dir"], res.count, ann["count"])


def test_cli_on_pickle(capsys):
    from actionpose.cli import main

    pkl = str(FIXTURES / "reps" / "repcount_body13.pkl")
    assert main(["reps", pkl, "--exercise", "jumping_jacks", "--sample", "stu10_25"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    events = [line for line in out if ": rep " in line]
    assert len(events) == 7 and events[0].startswith("stu10_25: rep 1 (jumping_jacks)")
    assert out[-1].startswith("stu10_25: total 7 jumping_jacks reps")
    assert main(["reps", pkl, "-e", "squat", "--sample", "stu6_65", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert abs(data["stu6_65"]["count"] - 19) <= 1 and len(data["stu6_65"]["reps"]) == data["stu6_65"]["count"]
    assert main(["reps", pkl, "-e", "", "--sample", "stu6_65"]) == 2  # counted in auto mode, "19 sit_up reps"
    assert "--exercise is empty" in capsys.readouterr().err


def test_cli_auto_mode_with_nothing_repeating_names_no_exercise(capsys, tmp_path):
    """Auto mode on a person holding still printed "total 0 push_up reps": an exercise nobody did."""
    from actionpose.cli import main
    from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset

    kp = to_image(_squat(np.zeros(150)), noise=0.005)
    save_dataset(SkeletonDataset([make_annotation("still", 0, kp[None].astype(np.float32))], layout="body13",
                                 classes=["x"]), tmp_path / "still.pkl")
    assert main(["reps", str(tmp_path / "still.pkl")]) == 0
    assert capsys.readouterr().out.strip() == ("still: no repetitions found (no known exercise repeats here; "
                                               "--exercise NAME counts that one)")
    assert main(["reps", str(tmp_path / "still.pkl"), "-e", "squat"]) == 0  # asked for: the count is 0 squats
    assert capsys.readouterr().out.strip().startswith("still: total 0 squat reps")


def test_cli_bad_input_exits_2(capsys, tmp_path):
    from actionpose.cli import main

    pkl = str(FIXTURES / "reps" / "repcount_body13.pkl")
    assert main(["reps", pkl, "-e", "zumba"]) == 2
    assert "unknown exercise" in capsys.readouterr().err
    assert main(["reps", str(tmp_path / "missing.pkl")]) == 2
    (tmp_path / "x.txt").write_text("hi")
    assert main(["reps", str(tmp_path / "x.txt")]) == 2
    assert "unsupported input" in capsys.readouterr().err
    assert main(["reps", pkl, "--sample", "nope"]) == 2
    capsys.readouterr()
    (tmp_path / "v.mp4").write_bytes(b"")  # pickle-only options on a video were silently ignored
    for flag, value in (("--fps", "10"), ("--sample", "x")):
        assert main(["reps", str(tmp_path / "v.mp4"), flag, value]) == 2
        err = capsys.readouterr().err
        assert f"{flag} is for a .pkl input" in err and err.count("\n") == 1


def test_cli_skips_a_sample_too_short_to_count_and_counts_the_rest(capsys, tmp_path):
    """A dataset pickle with one 5-frame clip: that clip is one warning line on stderr and every other
    sample is still counted (before, the whole run stopped there with exit 2). Only a pickle where nothing
    can be counted is an error."""
    from actionpose.cli import main
    from actionpose.data.format import load_dataset, save_dataset

    ds = load_dataset(FIXTURES / "reps" / "repcount_body13.pkl")
    keep = next(a for a in ds.annotations if a["frame_dir"] == "stu10_25")
    short = {**keep, "frame_dir": "blip", "keypoint": keep["keypoint"][:, :5],
             "keypoint_score": keep["keypoint_score"][:, :5], "total_frames": 5}
    for anns, name in (([short, keep], "mixed.pkl"), ([short, {**short, "frame_dir": "blip2"}], "short.pkl")):
        ds.annotations, ds.split = anns, {}
        save_dataset(ds, tmp_path / name)
    assert main(["reps", str(tmp_path / "mixed.pkl"), "-e", "jumping_jacks", "--json"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["stu10_25"]["count"] == 7 and "blip" not in json.loads(cap.out)
    assert "[blip]: skipped: sequence too short" in cap.err and "1 of 2 samples skipped" in cap.err
    assert main(["reps", str(tmp_path / "short.pkl"), "-e", "jumping_jacks"]) == 2
    assert "no sample could be counted (2 skipped: sequence too short" in capsys.readouterr().err
    many = [{**short, "frame_dir": f"blip{i}"} for i in range(40)]  # 40 identical reasons: 5 lines and a summary
    ds.annotations = [*many, keep]
    save_dataset(ds, tmp_path / "many.pkl")
    assert main(["reps", str(tmp_path / "many.pkl"), "-e", "jumping_jacks"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 6 and "40 of 41 samples skipped (35 not listed above): sequence too short" in err[-1]
    assert main(["reps", str(tmp_path / "mixed.pkl"), "--sample", "blip"]) == 2  # asked for: still an error


def test_repcount_dev_accuracy():
    from actionpose.inference.reps_eval import eval_repcount, metrics

    items = eval_repcount(shared_path("datasets", "repcount_dev"))
    mae, obo = metrics(items)
    assert len(items) == 50
    # measured 0.213 / 0.68 (docs/reps.md); guard against regressions, PoseRAC is 0.211 / 0.592
    assert mae < 0.26 and obo >= 0.6


def test_penn_count_set_accuracy():
    from actionpose.inference.reps_eval import eval_penn, metrics

    root = shared_path("datasets", "penn_action")
    items = eval_penn(root, FIXTURES.parents[1] / "data" / "rep_counts" / "penn_counts.csv")
    mae, obo = metrics(items)
    assert len(items) == 56
    assert mae < 0.2 and obo >= 0.9   # measured 0.123 / 0.982


def test_count_segments_for_tag_output():
    from actionpose.inference.reps_io import count_segments

    ph, _ = _phase(4, 1.2, 30.0)
    still = np.zeros(90)
    kp = to_image(_squat(np.concatenate([ph, still, ph[: int(len(ph) / 2)]])))
    t_end = len(ph) / 30.0
    counts = count_segments(kp, None, [("squat", 0.0, t_end), ("wave", 0.0, t_end), ("squat", t_end, t_end + 3.0),
                                       ("squat", 1.0, 1.05)], "body13", 30.0)
    assert counts == [4, None, 0, None]


def test_an_extracted_pickle_with_several_persons_counts_each(tmp_path):
    """`actionpose extract` keeps every tracked person (M > 1); `reps` on it counted only the most
    confident one, where the video route counts every track."""
    from actionpose.data.format import load_dataset, save_dataset
    from actionpose.inference.reps_io import count_pickle

    ds = load_dataset(FIXTURES / "reps" / "repcount_body13.pkl")
    keep = next(a for a in ds.annotations if a["frame_dir"] == "stu10_25")
    two = {**keep, "keypoint": np.concatenate([keep["keypoint"], keep["keypoint"] + 200]),
           "keypoint_score": np.concatenate([keep["keypoint_score"]] * 2)}
    ds.annotations, ds.split = [two], {}
    save_dataset(ds, tmp_path / "two.pkl")
    got = count_pickle(tmp_path / "two.pkl", "jumping_jacks")
    assert sorted(got) == ["stu10_25 person 0", "stu10_25 person 1"]
    assert [r.count for r in got.values()] == [7, 7]
