"""FallDetector: window prediction, layout mapping, streaming debounce, real fall sequences, CLI."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actionpose.data.importers import convert
from actionpose.errors import ActionposeError
from actionpose.inference.fall import FallConfig, FallDetector, hip_drop_start
from actionpose.inference.fall_prep import PrepConfig, gap_scores, prepare_window, prepare_windows
from actionpose.skeleton import get_layout
from isolated_python import run_without_actionpose

MODEL = os.environ.get("ACTIONPOSE_FALL_MODEL", "fall")
FIX = Path(__file__).parent / "fixtures" / "fall"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SKEL = SHARED / "videos" / "fall_skeleton_1.npy"


@pytest.fixture(scope="module")
def det():
    return FallDetector.from_pretrained(MODEL, threads=1)


def fixture_seq(video: str):
    ds = convert("urfd_movenet", FIX / "urfd_movenet13_mini.tar.gz", frame_labels_csv=FIX / "urfd_falls13_mini.csv")
    a = next(a for a in ds.annotations if a["video"] == video)
    return a["keypoint"][0] * np.array([640, 480], np.float32), a["keypoint_score"][0], a


def embed(body13: np.ndarray, layout: str, fill: float = 0.0) -> np.ndarray:
    """Place body13 joints into a bigger layout by joint name (other joints get ``fill``)."""
    lay, b = get_layout(layout), get_layout("body13")
    out = np.full(body13.shape[:-2] + (lay.num_joints, body13.shape[-1]), fill, np.float32)
    for j, name in enumerate(b.joints):
        target = "nose" if name == "head" else name
        out[..., lay.index(target), :] = body13[..., j, :]
    return out


class Scripted:
    """Stand-in scorer returning scripted probabilities per call (tests the decision logic only)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, kp, sc):
        self.calls += 1
        return np.array([self.fn(self.calls) for _ in range(len(kp))])


def upright(t: int = 40) -> np.ndarray:
    kp, _, _ = fixture_seq("adl-01")
    return kp[:t]


def test_shipped_model_has_calibrated_sidecar():
    from actionpose.inference.fall import resolve_fall_model

    path = resolve_fall_model("fall")
    side = json.loads(path.with_suffix(".json").read_text())
    assert 0 < side["detector"]["threshold"] < 1 and "cv" in side
    assert path.with_name("fall_body13.md").exists()


def test_predict_window_and_layout_mapping(det):
    kp, sc, _ = fixture_seq("fall-01")
    win = kp[40:104]  # coco13 pixels around the fall
    r13 = det.predict(win, sc[40:104], layout="coco13")
    r17 = det.predict(embed(win, "coco17"), embed(sc[40:104, :, None], "coco17")[..., 0], layout="coco17")
    r33 = det.predict(embed(win, "blazepose33"), embed(sc[40:104, :, None], "blazepose33")[..., 0],
                      layout="blazepose33")
    with_score = det.predict(np.concatenate([win, sc[40:104, :, None]], -1), layout="coco13")
    assert r13.prob == pytest.approx(r17.prob, abs=1e-5) == pytest.approx(r33.prob, abs=1e-5)
    assert with_score.prob == pytest.approx(r13.prob, abs=1e-5)
    assert 0 <= r13.prob <= 1 and r13.is_fall == (r13.prob >= det.config.threshold) and r13.frames_used == 32  # 64 frames at 30 fps: the last 2.1 s at 15 fps


def test_fixture_fall_is_detected_once_and_adl_not(det):
    kp, sc, a = fixture_seq("fall-01")
    t = np.arange(len(kp)) / 30
    events = det.run_sequence(kp, t, sc, layout="coco13")
    falling = t[a["frame_labels"] == 1]
    assert len(events) == 1
    assert falling[0] - 1.0 <= events[0].detected_time <= falling[-1] + 4.0
    kp, sc, _ = fixture_seq("adl-01")
    assert det.run_sequence(kp, np.arange(len(kp)) / 30, sc, layout="coco13") == []


@pytest.mark.skipif(not SKEL.exists(), reason="../shared not present: fall_skeleton_1.npy")
def test_real_fall_video_skeleton_one_event_at_the_fall(det):
    kp = np.load(SKEL)  # 108 frames at 18 fps; the fall happens at about 2.6-3.4 s
    sc = (kp > 0).all(-1).astype(np.float32)
    events = det.run_sequence(kp, np.arange(len(kp)) / 18, sc, layout="coco17")
    assert len(events) == 1
    assert 2.0 <= events[0].start_time <= 3.6 and events[0].detected_time <= 5.0


@pytest.mark.skipif(not SKEL.exists(), reason="../shared not present: fall_skeleton_1.npy")
def test_a_person_lost_while_falling_is_alerted_only_with_hold_lost(det):
    """fall_skeleton_1 cut at 3.44 s (mid-fall), then 3 s of frames showing nobody: a track is scored only on
    frames that show it, so nothing is alerted; with the last pose held for 1 s (``hold_lost_s``, opt-in) the
    fall is (docs/fall.md, "A person lost right after reaching the floor")."""
    import dataclasses

    kp = np.load(SKEL)
    frames = [({1: kp[i]}, i / 18) for i in range(63)] + [({}, (62 + j) / 18) for j in range(1, 55)]
    got = {}
    for hold in (0.0, 1.0):
        d = FallDetector(det.scorer, dataclasses.replace(det.config, hold_lost_s=hold))
        got[hold] = [e for e in d.update_many(frames) if e.kind == "fall"]
    assert got[0.0] == [] and len(got[1.0]) == 1
    assert 2.0 <= got[1.0][0].start_time <= 3.6 and got[1.0][0].detected_time <= 62 / 18 + 1.0 + 1e-6


def test_gap_fill_scores_short_interior_gaps_only():
    """A joint lost for 1-2 ticks between seen ones takes the lower neighbouring score; longer gaps, gaps at
    the window's edges and joints never seen keep 0; positions are the same as without gap fill."""
    sc = np.full((9, 4), 0.9, np.float32)
    sc[3, 0] = 0.6
    sc[4, 0] = 0.0                       # 1 tick between 0.6 and 0.9 -> 0.6
    sc[2:5, 1] = 0.0                     # 3 ticks: a hidden stretch, stays 0
    sc[0, 2] = sc[8, 2] = 0.0            # edges: stay 0
    sc[5:7, 2] = 0.1                     # 2 ticks under score_min -> 0.9
    sc[:, 3] = 0.0                       # never seen
    got = gap_scores(sc, sc >= 0.2, 2)
    assert got[4, 0] == np.float32(0.6) and (got[2:5, 1] == 0).all()
    assert got[0, 2] == got[8, 2] == 0 and (got[5:7, 2] == np.float32(0.9)).all() and (got[:, 3] == 0).all()
    assert np.array_equal(np.delete(got, [4], 0)[:, 0], np.delete(sc, [4], 0)[:, 0])  # seen ticks unchanged
    # through the window preparation: a frontend's "not found" at (0, 0), score 0, for one frame
    rng = np.random.default_rng(0)
    kp = rng.normal(300, 40, (40, 13, 2)).astype(np.float32)
    s = np.full((40, 13), 0.8, np.float32)
    kp[10, 9], s[10, 9] = 0.0, 0.0
    on = prepare_window(kp, s, "body13", fps=15, cfg=PrepConfig(gap_fill=2))
    off = prepare_window(kp, s, "body13", fps=15)
    tick = 10 - (40 - 32)                # the window keeps the last 32 of 40 frames at 15 fps
    assert off[1][tick, 9] == 0 and on[1][tick, 9] == np.float32(0.8)
    assert np.array_equal(on[0], off[0])


def test_models_without_gap_fill_keep_their_preparation():
    """A sidecar written before gap fill existed has no such key: its model prepares windows as it was trained.
    A prep key this version does not know (a newer model) or a bad gap is refused naming it."""
    old = {"threshold": 0.94, "prep": {"fps": 15.0, "frames": 32, "score_min": 0.2}}
    assert FallConfig.from_dict(old).prep.gap_fill == 0
    assert FallConfig.from_dict({**old, "prep": {**old["prep"], "gap_fill": 2}}).prep.gap_fill == 2
    with pytest.raises(ActionposeError, match=r"prep\.gap_fill=-1: must be a whole number in \[0, 8\]"):
        FallConfig.from_dict({**old, "prep": {"gap_fill": -1}})
    with pytest.raises(ActionposeError, match=r"prep\.smooth: unknown"):
        FallConfig.from_dict({**old, "prep": {"smooth": 3}})


def test_batched_preparation_and_scoring_are_bit_identical(det):
    """The vectorised paths (service micro-batches, predict_batch) must give exactly the numbers of the
    one-window path: unseen joints, a degenerate torso, scores, several layouts, lengths and rates."""
    rng = np.random.default_rng(3)
    for layout, v in [("coco17", 17), ("body13", 13), ("blazepose33", 33)]:
        for t, fps in [(64, 30), (7, 18), (200, 60)]:
            kp = rng.normal(300, 60, (5, t, v, 2)).astype(np.float32)
            sc = rng.uniform(0, 1, (5, t, v)).astype(np.float32)
            kp[1, :, 3] = 0          # a joint never seen
            kp[2] = 5.0              # torso length 0 (shoulders and hips on one point) ...
            kp[2, :, 0, 0] = 9.0     # ... but the head elsewhere: still a body, so still scored
            for scores, cfg in [(None, PrepConfig()), (sc, PrepConfig()), (sc, PrepConfig(gap_fill=2))]:
                got_kp, got_sc = prepare_windows(kp, scores, layout, fps, cfg=cfg)
                for i in range(5):
                    want = prepare_window(kp[i], None if scores is None else scores[i], layout, fps=fps, cfg=cfg)
                    assert np.array_equal(got_kp[i], want[0]) and np.array_equal(got_sc[i], want[1])
            collapsed = np.full((2, t, v, 2), -1.0, np.float32)  # every joint at one point ("not found" = -1)
            with pytest.raises(ActionposeError, match="no body is visible"):
                prepare_windows(collapsed, None, layout, fps)
            with pytest.raises(ActionposeError, match="no body is visible"):
                prepare_window(collapsed[0], None, layout, fps=fps)
    # a joint arrangement held still with 2 px of jitter (windows of pure noise are refused: not one person)
    windows = [(rng.normal(300, 60, (1, 17, c)) + rng.normal(0, 2, (t, 17, c))).astype(np.float32)
               for t in (64, 64, 40, 64) for c in (2, 3)]
    for w in windows:
        if w.shape[-1] == 3:
            w[..., 2] = rng.uniform(0, 1, w.shape[:2])  # the third channel is a score
    batch = det.predict_batch(windows)
    assert [r.prob for r in batch] == [det.predict(w).prob for w in windows]
    kp, sc = det.prepare_batch(windows)
    assert det.scorer.direct  # the shipped model takes the direct (concatenation) input path ...
    assert np.array_equal(det.scorer(kp, sc), det.scorer._generic(kp, sc))  # ... with the generic path's numbers


def test_debounce_one_event_per_fall_and_rearm():
    cfg = FallConfig(threshold=0.5, min_hits=2, release=0.3, rearm_s=1.0, hop_s=0.0, min_window_s=0.0)
    probs = {**{i: 0.9 for i in range(10, 30)}, **{i: 0.95 for i in range(70, 75)}}
    det = FallDetector(Scripted(lambda n: probs.get(n, 0.1)), cfg, layout="coco13")
    frames = upright(40)
    events = []
    for i in range(100):
        events += det.update({"a": frames[i % 40]}, i / 10)
    falls = [e for e in events if e.kind == "fall"]
    assert len(falls) == 2  # one per high run, not one per frame
    assert falls[0].detected_time == pytest.approx(1.0) and falls[0].confidence == pytest.approx(0.9)
    assert falls[1].detected_time == pytest.approx(7.0)
    # the scripted "falls" of a person who stands all along: "up again" recover_s after the alert
    # (frames without scores: their joints at (0, 0) are not seen, so all 2.9 s after the second alert read as up)
    assert [e.kind for e in events] == ["fall", "recovered", "fall", "recovered"]
    assert events[1].detected_time == pytest.approx(1.0 + cfg.recover_s, abs=0.15)
    assert 7.0 + 0.9 * cfg.recover_s - 0.15 <= events[3].detected_time <= 7.0 + cfg.recover_s
    single = FallDetector(Scripted(lambda n: 0.9 if n == 5 else 0.1), cfg, layout="coco13")
    assert sum((single.update(frames[i], i / 10) for i in range(30)), []) == []  # one hit is not enough


def test_per_person_state_is_independent():
    cfg = FallConfig(threshold=0.5, min_hits=1, hop_s=0.0, min_window_s=0.0)

    class ByOrder:
        calls = 0

        def __call__(self, kp, sc):  # persons are scored in the order given: "a" stays low, "b" goes high
            self.calls += 1
            return np.array([0.1, 0.9 if self.calls > 10 else 0.1])[: len(kp)]

    det = FallDetector(ByOrder(), cfg, layout="coco13")
    a = upright(20)
    events = []
    for i in range(20):
        events += det.update({"a": a[i], "b": a[i] + 5}, i / 10)
    assert [e.track_id for e in events] == ["b"]


def test_pose_frontend_person_objects_and_bad_input():
    from dataclasses import dataclass

    @dataclass
    class P:
        track_id: int
        keypoints: np.ndarray
        scores: np.ndarray

    det = FallDetector(Scripted(lambda n: 0.0), FallConfig(hop_s=0.0, min_window_s=0.0), layout="coco13")
    kp = upright(3)
    assert det.update([P(4, kp[0], np.ones(13))], 0.0) == []
    assert 4 in det._tracks
    with pytest.raises(ActionposeError, match="not after"):
        det.update([P(4, kp[1], np.ones(13))], 0.0)
    with pytest.raises(ActionposeError, match="joints"):
        det.update({1: np.zeros((5, 2))}, 1.0)
    with pytest.raises(ActionposeError, match="no body is visible"):  # NaN joints are joints not found
        prepare_window(np.full((4, 13, 2), np.nan), None, "body13")
    with pytest.raises(ActionposeError, match="track_id 4 appears twice"):
        det.update([P(4, kp[1], np.ones(13)), P(4, kp[2], np.ones(13))], 1.0)
    with pytest.raises(ActionposeError, match="no track_id"):
        det.update([{"keypoints": kp[1]}, {"keypoints": kp[2]}], 1.0)
    with pytest.raises(ActionposeError, match="not a number or string"):
        det.update([{"track_id": [1], "keypoints": kp[1]}], 1.0)
    assert det.update([{"keypoints": kp[1]}], 1.0) == []  # one person without an id is track 0
    with pytest.raises(ActionposeError, match="cannot be mapped"):
        prepare_window(np.zeros((4, 11, 2)), None, "mediapipe11")


def test_hip_drop_start_finds_the_descent():
    t = np.arange(30) / 10
    kp = np.zeros((30, 13, 2), np.float32)
    kp[:, :3, 1] = np.where(t[:, None] < 1.5, 100, 100 + (t[:, None] - 1.5) * 200)
    assert 1.4 <= hip_drop_start(kp, t) <= 1.7


def test_cli_fall_on_npy_and_bad_source(tmp_path):
    kp, sc, _ = fixture_seq("fall-01")
    path = tmp_path / "fall.npy"
    np.save(path, np.concatenate([kp, sc[..., None]], -1))
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(path), "--layout", "coco13", "--fps", "30",
                          "--model", MODEL, "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert len(res["events"]) == 1 and res["frames"] == len(kp)
    bad = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(tmp_path / "missing.mp4")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "Traceback" not in bad.stderr
    folder = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert folder.returncode == 2 and "is a folder; give one video" in folder.stderr and "tag DIR --model fall" in folder.stderr
    (tmp_path / "notes.npy").write_text("hello")  # numpy said "pickled (object) data" and suggested allow_pickle
    text = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(tmp_path / "notes.npy")],
                          capture_output=True, text=True, timeout=60)
    assert text.returncode == 2 and "not a .npy file (no NumPy header)" in text.stderr and "pickle" not in text.stderr


def test_a_window_with_nobody_in_it_is_never_a_fall(det):
    """Zeros (PYSKL's padding for "nobody there") normalised to an all-zero body that the model scored 0.94,
    over the threshold: an alarm from an empty room. predict refuses such a window; streaming skips it, while a
    person seen in part of a window is still scored (a dropout during a real fall must not hide it)."""
    with pytest.raises(ActionposeError, match="no body is visible in any frame"):
        det.predict(np.zeros((64, 17, 2), np.float32))
    with pytest.raises(ActionposeError, match=r"no body is visible in any frame \(window 1\)"):
        det.prepare_batch([np.random.default_rng(0).normal(300, 60, (64, 17, 2)), np.zeros((64, 17, 2))])
    with pytest.raises(ActionposeError, match="no body is visible"):  # every joint on one point: collapsed, p = 0.94
        det.predict(np.full((48, 17, 2), 200.0, np.float32))
    det.reset()
    events = det.update_many([({7: np.zeros((17, 2), np.float32)}, i / 30) for i in range(150)])
    assert events == [] and det._tracks[7].last_eval > 0  # windows fell due and were skipped, not scored
    # seen only in the oldest half-second of the kept history, which the model's 2.1 s window no longer shows:
    # skipped too (judged on the frames the model would see), not an error from inside update
    det.reset()
    standing = np.array([[320, 100], [345, 150], [295, 150], [355, 210], [285, 210], [360, 260], [280, 260],
                         [335, 270], [305, 270], [338, 360], [302, 360], [340, 450], [300, 450]], np.float32)
    frames = [({7: standing}, i / 30) for i in range(10)] + [({7: np.zeros((13, 2), np.float32)}, i / 30)
                                                            for i in range(10, 78)]
    assert det.update_many(frames, layout="body13") == []
    kp, sc, a = fixture_seq("fall-01")
    kp, sc = kp.copy(), sc.copy()
    lost = np.flatnonzero(a["frame_labels"] == 1)[:10]
    kp[lost], sc[lost] = 0, 0  # the person is lost for the first 10 frames of the fall itself
    det.reset()
    found = det.update_many([({0: np.concatenate([kp[i], sc[i][:, None]], -1)}, i / 30) for i in range(len(kp))],
                            layout="coco13")
    assert len(found) == 1


def test_cli_fall_refuses_3d_skeletons(tmp_path, capsys):
    """NW-UCLA's Kinect skeletons are metres with y up: read as image x, y every person is upside down, and
    the detector raised hundreds of falls on a dataset without one. A 3D pickle is refused in one line."""
    from actionpose.cli import main

    pkl = tmp_path / "ucla.pkl"
    convert("nwucla", Path(__file__).parent / "fixtures" / "datasets" / "nwucla", pkl)
    assert main(["fall", str(pkl), "--model", MODEL]) == 2
    cap = capsys.readouterr()
    assert cap.err.count("\n") == 1 and "holds 3D keypoints" in cap.err and "ucla.pkl" in cap.err
    assert "fall 1:" not in cap.out


@pytest.mark.slow
def test_mlflow_pyfunc_flavour(tmp_path, det):
    mlflow = pytest.importorskip("mlflow")
    import pandas as pd

    from actionpose.inference.fall_pyfunc import save_fall_model

    model = mlflow.pyfunc.load_model(save_fall_model(str(tmp_path / "fall_pyfunc"), MODEL))
    kp, sc, _ = fixture_seq("fall-01")
    out = model.predict(pd.DataFrame({"keypoints": [kp[40:104].tolist()], "layout": ["coco13"], "fps": [30.0]}))
    assert out["prob"].iloc[0] == pytest.approx(det.predict(kp[40:104], layout="coco13").prob, abs=1e-5)


def test_predict_reads_a_long_window_whole(det):
    """The model reads 2.13 s. A longer window was scored on its last 2.13 s alone: URFD fall-01 (falling
    2.7-3.7 s, then lying to 5.3 s) as one 5.3-s window said "no fall" (0.81). It is read whole now, every
    2.13-s window in it one hop apart, with the streaming rule (2 in a row at the threshold)."""
    kp, sc, _ = fixture_seq("fall-01")
    last = det.predict(kp[-64:], sc[-64:], layout="coco13")
    assert not last.is_fall and last.windows == 1 and last.peak_time is None
    whole = det.predict(kp, sc, layout="coco13")
    assert whole.is_fall and whole.windows == len(range(len(kp), 63, -2)) and 3.0 <= whole.peak_time <= 5.3
    # where it began, as the stream dates its event (peak_time, the end of the best window, is 1-2 s later)
    det.reset()
    streamed = [e for e in det.run_sequence(kp, np.arange(len(kp)) / 30, sc, layout="coco13") if e.kind == "fall"]
    assert whole.fall_start == pytest.approx(streamed[0].start_time, abs=0.15) and 2.4 <= whole.fall_start <= 3.0
    assert last.fall_start is None
    ends = range(len(kp), 63, -2)  # hop 1/15 s = 2 frames at 30 fps
    parts = det.predict_batch([kp[e - 64:e] for e in ends], [sc[e - 64:e] for e in ends], layout="coco13")
    assert whole.prob == pytest.approx(max(r.prob for r in parts), abs=1e-6)
    standing = np.repeat(kp[:1], 300, 0) + np.random.default_rng(0).normal(0, 1, (300, 13, 2)).astype(np.float32)
    assert not det.predict(standing, layout="coco13").is_fall
    # nobody in the first 2 s (zeros): those parts are skipped, not the whole window refused
    hidden = kp.copy()
    hidden[:60] = 0
    assert det.predict(hidden, layout="coco13").is_fall
    with pytest.raises(ActionposeError, match="no body is visible"):
        det.predict(np.zeros_like(kp), layout="coco13")
    # the hop is 1/15 s of time: at 18 fps 1.2 frames, not one frame (twice the windows a stream scores; probe)
    assert det.predict(kp[::5][:30], sc[::5][:30], layout="coco13", fps=6).windows == 18  # every frame: 30 - 13 + 1
    at18 = det.predict(np.repeat(kp, 3, 0)[:300], layout="coco13", fps=18)
    assert at18.windows == len(det._ends(300, det.span_frames(18.0), 18.0)) and 215 <= at18.windows <= 218
    with pytest.raises(ActionposeError, match="below the 3 fps"):  # 1 fps was scored without a word (probe)
        det.predict(kp[:10], sc[:10], layout="coco13", fps=1)


ISOLATED_LOAD = """
import json, sys
import mlflow.pyfunc, numpy as np, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
kp = np.asarray(json.loads(sys.argv[2]), np.float32)
out = model.predict(pd.DataFrame({"keypoints": [kp.tolist()], "layout": ["coco13"], "fps": [30.0]}))
print(json.dumps({"prob": float(out["prob"].iloc[0]), "actionpose": sys.modules["actionpose"].__file__,
                  "heavy": sorted({"torch", "cv2", "pytorch_lightning", "torch_geometric"} & set(sys.modules))}))
"""


@pytest.mark.slow
def test_mlflow_pyfunc_brings_its_own_code(tmp_path, det):
    """actionpose is not on PyPI: a pyfunc model asking pip for it could not be served anywhere else. The
    saved model carries the code and asks for numpy and onnxruntime only; it loads and predicts where
    actionpose is not importable, without torch or OpenCV."""
    pytest.importorskip("mlflow")
    import yaml

    from actionpose.inference.fall_pyfunc import save_fall_model

    path = save_fall_model(str(tmp_path / "fall_pyfunc"), MODEL)
    reqs = (Path(path) / "requirements.txt").read_text().split()
    assert not [r for r in reqs if r.startswith("actionpose")] and any(r.startswith("onnxruntime==") for r in reqs)
    assert (Path(path) / "code" / "actionpose" / "inference" / "fall.py").exists()
    assert not (Path(path) / "code" / "actionpose" / "assets").exists()
    assert yaml.safe_load((Path(path) / "MLmodel").read_text())["flavors"]["python_function"]["code"] == "code"
    kp, _, _ = fixture_seq("fall-01")
    got = run_without_actionpose(ISOLATED_LOAD, path, json.dumps(kp[40:104].tolist()), cwd=tmp_path)
    assert got["actionpose"].startswith(str(Path(path).resolve())) and got["heavy"] == []
    assert got["prob"] == pytest.approx(det.predict(kp[40:104], layout="coco13").prob, abs=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "videos" / "fall_video_1.mp4").exists(), reason="../shared not present")
def test_video_end_to_end_one_fall_at_the_right_time():
    """fall_video_1.mp4 (18 fps): upright until ~2.4 s, falls forward ~2.5-3.3 s, then lies (frames
    looked at). The pose frontend + shipped model must report exactly one fall starting there."""
    from actionpose.inference.fall_sources import detect_falls

    events, info = detect_falls(FallDetector.from_pretrained("fall"), SHARED / "videos" / "fall_video_1.mp4")
    assert info["frames"] == 108 and len(events) == 1
    assert 2.0 <= events[0].start_time <= 3.0 and 3.0 <= events[0].detected_time <= 5.0


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "videos" / "fall_video_1.mp4").exists(), reason="../shared not present")
def test_video_resampled_by_fps_keeps_its_rate_and_duration():
    """--fps 7 on the 18 fps, 6 s video reported fps 6.0 and 7.0 s (--fps 15: 18.0 fps and 5.0 s): the rate was
    read back from the median interval of the kept frames, which are 2 or 3 source frames apart."""
    from actionpose.inference.fall_sources import detect_falls

    _, info = detect_falls(FallDetector.from_pretrained("fall"), SHARED / "videos" / "fall_video_1.mp4", fps=7)
    assert info["frames"] == 42 and info["fps"] == pytest.approx(7.0) and info["duration_s"] == pytest.approx(6.0)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "videos" / "fall_video_1.mp4").exists(), reason="../shared not present")
def test_the_fall_survives_jpeg_frames_as_an_ip_camera_sends_them(tmp_path):
    """The same video with every frame JPEG-compressed at quality 85 (an MJPEG IP camera's stream): the
    frontend lost the man the moment he lay down (weak detections, one frame of pose just under the carry
    threshold ended the carry for good), so the fall was missed. Found by probing a live MJPEG stream."""
    import cv2

    from actionpose.inference.fall_sources import detect_falls

    cap = cv2.VideoCapture(str(SHARED / "videos" / "fall_video_1.mp4"))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1], cv2.IMREAD_COLOR))
    out = tmp_path / "jpeg85.avi"  # MJPG at the highest quality: the JPEG damage above is what is tested
    w = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, frames[0].shape[1::-1])
    w.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    for img in frames:
        w.write(img)
    w.release()
    events, info = detect_falls(FallDetector.from_pretrained("fall"), out)
    assert info["frames"] == 108 and len(events) == 1
    assert 2.0 <= events[0].start_time <= 3.0 and 3.0 <= events[0].detected_time <= 5.0


@pytest.mark.skipif(not (SHARED / "videos" / "ntu_sample.avi").exists(), reason="../shared not present")
def test_cli_fall_says_when_a_video_is_truncated(tmp_path):
    """`actionpose fall` on a cut AVI reported its 34 frames as if they were the whole video."""
    trunc = tmp_path / "trunc.avi"
    trunc.write_bytes((SHARED / "videos" / "ntu_sample.avi").read_bytes()[:700_000])
    out = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(trunc), "--json"], capture_output=True,
                         text=True, timeout=300)
    # exit 2: a monitoring script read exit 0 as "the whole video was checked, no fall"
    assert out.returncode == 2, out.stderr
    assert "warning: " in out.stderr and "video stopped at frame" in out.stderr
    assert "only the first" in out.stderr.strip().splitlines()[-1]
    doc = json.loads(out.stdout)
    assert doc["warnings"] and doc["complete"] is False and "video stopped at frame" in doc["truncated"]


def test_stream_state_round_trip_continues_exactly():
    """state_bytes/load_state: a detector restored mid-stream makes the same decisions as the one that
    kept running (the service keeps sessions in its database this way); garbage is a clear error."""
    from actionpose.inference.fall import FallDetector

    det = FallDetector.from_pretrained("fall", threads=1)
    rng = np.random.default_rng(3)
    frames = [{1: rng.normal(300, 20, (17, 2)), "b": np.concatenate([rng.normal(200, 20, (17, 2)),
                                                                     rng.uniform(0, 1, (17, 1))], -1)}
              for _ in range(90)]
    for i in range(45):
        det.update(frames[i], i / 30)
    copy = FallDetector(det.scorer, det.config)
    copy.load_state(det.state_bytes())
    assert copy.last_time == det.last_time and set(copy._tracks) == {1, "b"}
    for i in range(45, 90):
        assert det.update(frames[i], i / 30) == copy.update(frames[i], i / 30)
    for a, b in zip(det._tracks.values(), copy._tracks.values()):
        assert list(a.times) == list(b.times) and np.array_equal(np.stack(a.kps), np.stack(b.kps))
        assert (a.last_eval, a.hits, a.armed) == (b.last_eval, b.hits, b.armed)
    with pytest.raises(ActionposeError, match="stream state"):
        copy.load_state(b"not an npz")
    with pytest.raises(ActionposeError, match="stream state"):
        copy.load_state(det.state_bytes()[:-5])  # truncated


def test_stream_state_in_the_first_npz_format_still_loads():
    """States saved by the first format (an .npz) in existing databases keep working."""
    import io
    import json as _json

    from actionpose.inference.fall import FallDetector

    det = FallDetector.from_pretrained("fall", threads=1)
    rng = np.random.default_rng(4)
    for i in range(40):
        det.update({7: rng.normal(300, 20, (17, 2))}, i / 30)
    tr = det._tracks[7]
    buf = io.BytesIO()
    meta = {"id": 7, "last_eval": tr.last_eval, "hits": tr.hits, "run_max": tr.run_max, "run_start": tr.run_start,
            "armed": tr.armed, "below_since": tr.below_since}
    np.savez(buf, meta=np.array(_json.dumps({"version": 1, "last_time": det.last_time, "tracks": [meta]})),
             times0=np.asarray(tr.times), kps0=np.stack(tr.kps).astype(np.float32),
             scores0=np.stack(tr.scores).astype(np.float32))
    old = FallDetector(det.scorer, det.config)
    old.load_state(buf.getvalue())
    assert old.track_ids == [7] and old.last_time == det.last_time
    assert np.array_equal(np.stack(old._tracks[7].kps), np.stack(tr.kps))


def test_update_many_makes_the_same_decisions_as_frame_by_frame(det):
    """The service's path (several frames per call, one ONNX call for all due windows) against update()
    per frame: the fixture fall with a second, still person beside it, in chunks of 1-23 frames, and a
    refused frame mid-chunk (frames before it still count, their events ride on the error)."""
    kp, sc, _ = fixture_seq("fall-01")
    still = kp[:1].repeat(len(kp), 0) + np.array([150.0, 0.0], np.float32)
    frames = [({1: np.concatenate([kp[i], sc[i][:, None]], -1), "b": still[i]}, i / 30) for i in range(len(kp))]
    one = FallDetector(det.scorer, det.config)
    want = [e for f, t in frames for e in one.update(f, t, layout="coco13")]
    assert len(want) == 1
    many = FallDetector(det.scorer, det.config)
    got, i, sizes = [], 0, [1, 7, 23, 15, 2]
    while i < len(frames):
        n = sizes[i % len(sizes)]
        got += many.update_many(frames[i:i + n], layout="coco13")
        i += n
    assert [(e.track_id, e.start_time, e.detected_time) for e in got] == \
           [(e.track_id, e.start_time, e.detected_time) for e in want]
    assert got[0].confidence == pytest.approx(want[0].confidence, abs=1e-6)
    assert many.track_ids == one.track_ids and many.last_time == one.last_time

    bad = FallDetector(det.scorer, det.config)
    with pytest.raises(ActionposeError, match="not after") as err:
        bad.update_many(frames[:120] + [frames[10]] + frames[120:], layout="coco13")  # the fall: frame ~104
    assert [(e.start_time, e.detected_time) for e in err.value.events] == \
           [(e.start_time, e.detected_time) for e in want] and len(err.value.events) == 1
    assert bad.last_time == pytest.approx(119 / 30)


def test_fall_start_running_median_matches_scipy_medfilt():
    """The fall-start estimate smooths with running_median (numpy); it gives scipy.signal.medfilt's
    numbers on the same padding, so start times are what the medfilt version gave."""
    from scipy.signal import medfilt

    from actionpose.inference.fall import running_median

    rng = np.random.default_rng(5)
    for n in (5, 17, 40, 64, 80):
        for k in (1, 2, 3):
            y = np.cumsum(rng.normal(2, 6, n))  # a noisy drift, like the upper body's height in a fall
            assert np.array_equal(running_median(y, k), medfilt(np.pad(y, k, mode="edge"), 2 * k + 1)[k:-k])
            rows = np.stack([y, y[::-1], -y])  # a batch: row by row the same numbers
            assert np.array_equal(running_median(rows, k), np.stack([running_median(r, k) for r in rows]))


def test_fall_starts_of_a_batch_equal_one_window_at_a_time(det):
    """The service dates every alerting window of a micro-batch in one numpy pass (drop_start_index);
    each start must be what hip_drop_start gives for that window alone, split windows included."""
    from actionpose.inference.fall import ScanPlan, drop_start_index

    rng = np.random.default_rng(3)
    kp = rng.normal(200, 30, (6, 32, 13, 2)).astype(np.float32)
    kp[:3, :, :3, 1] = np.cumsum(rng.normal(4, 6, (3, 32)), 1)[..., None]  # three drops of different shapes
    kp[4] = 7.0  # a window that does not move: its first frame
    times = (np.arange(32) - 31) / 15
    one = [hip_drop_start(k, times) for k in kp]
    plans = [ScanPlan(slice(i, i + 1), (64,), 64, 30.0) for i in range(6)]
    many = det._fall_starts(kp, [(p, 0) for p in plans])
    assert many == [round(max(0.0, 63 / 30 + t), 4) for t in one]
    assert drop_start_index(kp[4:5, :, :3, 1].mean(2), 2).tolist() == [0]


def test_detector_input_is_checked_in_words(det):
    """What the service refuses with a 422 the in-process API refuses too, instead of scoring it."""
    rng = np.random.default_rng(1)
    w = (rng.normal(300, 60, (1, 17, 2)) + rng.normal(0, 2, (64, 17, 2))).astype(np.float32)
    for bad, needle in [(np.zeros((64, 17, 4), np.float32), "expected"),  # was read as a window (p = 0.83)
                        ([[1, 2], [3]], "not a numeric"), ("abc", "not a numeric")]:
        with pytest.raises(ActionposeError, match=needle):
            det.predict(bad)
    for fps in (0, -30, float("nan"), 1e9):
        with pytest.raises(ActionposeError, match="fps"):
            det.predict(w, fps=fps)
    with pytest.raises(ActionposeError, match="3D camera-space"):  # z would have been read as a score
        det.predict(np.zeros((64, 25, 3), np.float32), layout="ntu25")
    with pytest.raises(ActionposeError, match="2 windows"):  # zip() dropped the second window
        det.predict_batch([w, w], scores=[None])
    det.reset()
    for t in (float("nan"), float("inf"), "abc"):
        with pytest.raises(ActionposeError, match="timestamp"):
            det.update({1: w[0]}, t)
    assert det.last_time is None  # refused frames leave no trace
    with pytest.raises(ActionposeError, match="milliseconds"):  # a millisecond clock gave silent misses
        det.update({1: w[0]}, 1.764e12)
    assert det.last_time is None and det.track_ids == []
    for short, fps in [(w[:1], 30), (w[:30], 30), (w[:15], 15)]:  # one frame of a lying pose scored p = 0.99
        with pytest.raises(ActionposeError, match="needs at least 1 s"):
            det.predict(short, fps=fps)
    assert det.predict(w[:31], fps=30).frames_used > 0 and det.predict(w[:16], fps=15).frames_used > 0
    with pytest.raises(ActionposeError, match="window 1: keypoints: 5 frame"):
        det.predict_batch([w, w[:5]])
    with pytest.raises(ActionposeError, match="third channel is a score"):  # BlazePose's z read as a score
        det.predict(np.concatenate([w, np.full((64, 17, 1), -0.4, np.float32)], -1))
    # ... and streamed, where it was read as a score and the fall missed; one rule for windows and streams
    for z in (-0.3, 3.0):
        with pytest.raises(ActionposeError, match=r"track 7: keypoints: the third channel is a score"):
            det.update({7: np.concatenate([w[0], np.full((17, 1), z, np.float32)], -1)}, 100.0)
    # AlphaPose's scores overshoot 1 (URFD fall-16: 1.043): taken as 1, by predict as by streams
    sc = np.full((64, 17, 1), 1.043, np.float32)
    assert det.predict(np.concatenate([w, sc], -1)).prob == \
        det.predict(np.concatenate([w, np.ones_like(sc)], -1)).prob
    for bad, needle in [({"threshold": 2}, "threshold=2"), ({"threshold": float("nan")}, "threshold=nan"),
                        ({"threshold": -1}, "threshold=-1"), ({"threshold": "x"}, "threshold='x'"),
                        ({"thresh": 0.5}, "unknown setting"), ({"min_hits": 0}, "min_hits"),
                        ({"release": 0.99}, "release")]:
        with pytest.raises(ActionposeError, match=needle):
            FallDetector.from_pretrained(MODEL, **bad)


def test_a_nan_joint_is_a_missing_joint_and_other_people_still_count(det):
    """One NaN joint of one person used to refuse the whole frame, every other person's pose included
    (a fall beside that person was missed). NaN now means "not found", as many pose tools write it."""
    kp, sc, _ = fixture_seq("fall-01")
    frames = [np.concatenate([kp[i], sc[i][:, None]], -1) for i in range(len(kp))]
    times = np.arange(len(kp)) / 30
    det.reset()
    want = [e.track_id for i, t in enumerate(times) for e in det.update({"A": frames[i]}, float(t), layout="coco13")]
    det.reset()
    odd = frames[0].copy()
    odd[5] = np.nan
    got = [e.track_id for i, t in enumerate(times)
           for e in det.update({"A": frames[i], "B": odd}, float(t), layout="coco13")]
    assert want == ["A"] and got == ["A"]
    one = np.stack(frames[40:104])
    holed = one.copy()
    holed[:, 5, :2] = np.nan
    zeroed = one.copy()
    zeroed[:, 5] = 0
    assert det.predict(holed, layout="coco13").prob == det.predict(zeroed, layout="coco13").prob


def test_the_sparse_frame_refusal_names_a_unix_timestamp_in_full(det):
    """The refusal printed its frame's time with %g: a UNIX-time stream read "timestamp 1.79583e+09", which names
    no frame an app can find in its log."""
    kp, sc, _ = fixture_seq("fall-01")
    det.reset()
    t0 = 1795834585.25
    det.update({0: kp[0]}, t0, layout="coco13")
    for i in range(1, 5):
        det.update({0: kp[i]}, t0 + 2 * i, layout="coco13")
    with pytest.raises(ActionposeError, match=r"^timestamp 1795834595\.25: 5 frames in a row"):
        det.update({0: kp[5]}, t0 + 10, layout="coco13")
    det.reset()


def test_a_millisecond_clock_is_refused_not_silently_unscored(det):
    """Frames stamped in milliseconds came ~33 "s" apart: no window held two frames, nothing was scored, and
    the fall in URFD fall-01 was missed without a word. Five such gaps in a row are refused; one long gap (a
    reconnect) is not, and the state keeps the count."""
    kp, sc, _ = fixture_seq("fall-01")
    frames = [np.concatenate([kp[i], sc[i][:, None]], -1) for i in range(len(kp))]
    det.reset()
    with pytest.raises(ActionposeError, match="5 frames in a row came more than 1 s apart.*millisecond"):
        det.update_many([({0: f}, i * 1000 / 30) for i, f in enumerate(frames)], layout="coco13")
    det.reset()
    det.update_many([({0: f}, i / 30 + (60 if i >= 10 else 0)) for i, f in enumerate(frames[:20])], layout="coco13")
    for i in range(4):  # four sparse frames: still fine, and the count survives a save/load
        det.update({0: frames[20 + i]}, 100.0 + 10 * i, layout="coco13")
    restored = FallDetector(det.scorer, det.config)
    restored.load_state(det.state_bytes())
    with pytest.raises(ActionposeError, match="millisecond"):
        restored.update({0: frames[30]}, 200.0, layout="coco13")
    with pytest.raises(ActionposeError, match="run_sequence: 50 keypoint frames but 40 times"):
        det.run_sequence(kp[:50], np.arange(40) / 30, layout="coco13")


def test_decisions_do_not_depend_on_the_clock_origin(det):
    """UNIX-time stamps (~1.7e9 s) have ~2.4e-7 s of float64 resolution; a 1e-9 slack in the scoring hop
    made a person scored at a different rate (34 vs 63 windows on URFD fall-01) than with stamps from 0."""
    kp, sc, _ = fixture_seq("fall-01")
    frames = [np.concatenate([kp[i], sc[i][:, None]], -1) for i in range(len(kp))]
    calls, inner = [], det.scorer
    try:
        for origin in (0.0, 1_764_000_000.0):
            scored = []
            det.scorer = lambda kp, sc: scored.append(len(kp)) or inner(kp, sc)
            det.reset()
            events = det.update_many([({0: f}, origin + i / 30) for i, f in enumerate(frames)], layout="coco13")
            calls.append((sum(scored), len(events), [round(e.start_time - origin, 3) for e in events]))
    finally:
        det.scorer = inner
    assert calls[0] == calls[1] and calls[0][1] == 1 and calls[0][0] > 20


def test_a_damaged_stream_state_is_refused_at_load_not_at_the_next_frame(det):
    """The service keeps each session's state in its database; a damaged one must be a clear error when
    loaded (a 4xx/5xx with words), not a TypeError from deep inside the next update."""
    w = np.random.default_rng(0).normal(300, 60, (40, 17, 2)).astype(np.float32)
    det.reset()
    for i in range(40):
        det.update({1: w[i]}, i / 30)
    good = det.state_bytes()
    magic = FallDetector._STATE_MAGIC
    size = int.from_bytes(good[len(magic):len(magic) + 4], "little")
    head = json.loads(good[len(magic) + 4:len(magic) + 4 + size])
    rest = good[len(magic) + 4 + size:]

    def with_head(h: dict) -> bytes:
        raw = json.dumps(h).encode()
        return magic + len(raw).to_bytes(4, "little") + raw + rest

    assert with_head(head) == good or det.load_state(with_head(head)) is None  # re-encoding loads
    bad_hits = json.loads(json.dumps(head))
    bad_hits["tracks"][0]["hits"] = "x"
    bad_time = dict(head, last_time="soon")
    for bad in (b"", good[:-10], with_head(bad_hits), with_head(bad_time)):
        with pytest.raises(ActionposeError, match="stream state"):
            det.load_state(bad)
    det.reset()


def test_cli_says_when_nobody_was_seen(tmp_path):
    """An all-NaN (or all-missing) keypoint file printed a plain "no falls detected", as if a person had
    been watched and had not fallen."""
    np.save(tmp_path / "nan.npy", np.full((60, 17, 2), np.nan, np.float32))
    out = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(tmp_path / "nan.npy")],
                         capture_output=True, text=True, timeout=120)
    # a skeleton file with no joint anywhere is a failed extraction, not "checked, no fall": exit 2 (probe)
    assert out.returncode == 2 and "no person was seen in any frame" in out.stdout, out.stdout + out.stderr
    assert out.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'nan.npy'}: no joint seen in any frame: nothing could be checked"
    kp, _, _ = fixture_seq("adl-01")
    np.save(tmp_path / "short.npy", kp[:4])  # 0.1 s of a person: too short for any window
    out = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(tmp_path / "short.npy"), "--layout", "coco13"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "nothing could be checked" in out.stdout, out.stdout + out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: ") and "needs 1 s" in out.stderr
    out = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(tmp_path / "short.npy"), "--layout", "coco13",
                          "--fps", "30", "--json"], capture_output=True, text=True, timeout=120)
    assert any("nothing could be checked" in w for w in json.loads(out.stdout)["warnings"])  # JSON said nothing


def test_a_stream_below_3_fps_or_stamped_in_bursts_is_said(det, tmp_path, capsys):
    """predict refuses windows under 3 fps, but a 2 fps stream was scored without a word and lost 14 of 62
    real falls; frames stamped 1 ms apart in bursts hid the real fall (probe). In process: a UserWarning;
    the CLI refuses --fps under 3."""
    import warnings

    from actionpose.cli import main

    kp, sc, _ = fixture_seq("fall-01")
    for times, needle in ((np.arange(len(kp)) / 2.0, "frames arrive at 2 fps"),
                          (np.arange(len(kp)) // 30 + (np.arange(len(kp)) % 30) * 0.001, "stamped under 2 ms apart"),
                          (np.arange(len(kp)) / 30.0, None)):
        det.reset()
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            det.run_sequence(kp, times, sc, layout="coco13")
        said = [str(w.message) for w in got if "fall detector" in str(w.message)]
        assert any(needle in m for m in said) if needle else not any("fps" in m or "stamped" in m for m in said), said
    np.save(tmp_path / "k.npy", kp)
    assert main(["fall", str(tmp_path / "k.npy"), "--layout", "coco13", "--fps", "2"]) == 2
    assert "--fps 2 is below the 3 fps the fall detector needs" in capsys.readouterr().err
    # a pickle recorded at 2 fps: said once, as the report's warning line (not also as a UserWarning per window)
    from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset

    ann = make_annotation("slow", -1, kp[::15][None], sc[::15][None], img_shape=(480, 640), fps=2.0)
    save_dataset(SkeletonDataset([ann], "coco13", ["x"]), tmp_path / "slow.pkl")
    err = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(tmp_path / "slow.pkl")],
                         capture_output=True, text=True, timeout=120).stderr  # pytest would catch the UserWarning
    assert err.count("frames arrive at 2 fps") == 1 and "UserWarning" not in err, err


def test_a_stream_at_exactly_3_fps_is_not_told_it_is_below_3_fps():
    """A 3 fps stream, which the docs accept, was told "frames arrive at 3 fps: the fall detector needs 3 fps or
    more" whenever float rounding put its median gap a hair over 1/3 s (i / 3 from 0 or 1000; UNIX stamps)."""
    from actionpose.inference.fall_prep import timing_advice

    for t0 in (0.0, 1000.0, 1.7e9, 1795834585.93):
        for phase in range(3):
            assert timing_advice(t0 + (np.arange(8) + phase) / 3) == [], (t0, phase)
    assert "frames arrive at 2.9 fps" in timing_advice(np.arange(8) * 0.345)[0]  # just under 3 fps: still said


def test_cli_warns_of_normalised_coordinates_and_an_assumed_frame_rate(tmp_path):
    """MediaPipe-style x / width, y / height missed the real fall with a plain "no falls detected"; a .npy
    without --fps was silently read at 30 fps (18 fps data: the fall at 1.47 s instead of 2.44 s). A URFD
    pickle (stored normalised, with its img_shape) is put back in pixels instead of warned about."""
    from actionpose.data.importers import convert

    kp, sc, _ = fixture_seq("fall-01")
    np.save(tmp_path / "norm.npy", np.concatenate([kp / [640, 480], sc[..., None]], -1).astype(np.float32))
    out = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(tmp_path / "norm.npy"), "--layout", "coco13",
                          "--json"], capture_output=True, text=True, timeout=120)
    warnings = json.loads(out.stdout)["warnings"]
    assert any("normalised coordinates" in w for w in warnings) and any("no --fps given" in w for w in warnings)
    fix = Path(__file__).resolve().parent / "fixtures" / "fall"
    convert("urfd_movenet", fix / "urfd_movenet13_mini.tar.gz", tmp_path / "u.pkl",
            frame_labels_csv=fix / "urfd_falls13_mini.csv")
    out = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(tmp_path / "u.pkl"), "--json"],
                         capture_output=True, text=True, timeout=120)
    doc = json.loads(out.stdout)
    assert doc["warnings"] == [] and len(doc["events"]) == 1
    # printed as `tag` writes them (were 17 digits: "detected_time": 4.111111111111111)
    e = doc["events"][0]
    assert e["detected_time"] == round(e["detected_time"], 3) and e["confidence"] == round(e["confidence"], 4)
    assert re.search(r"\d\.\d{5,}", out.stdout) is None, out.stdout  # no float with more than 4 decimals
    with pytest.warns(UserWarning, match="normalised coordinates"):
        FallDetector.from_pretrained("fall").predict(kp[:40] / [640, 480], layout="coco13")
    np.save(tmp_path / "tvc.npy", np.transpose(kp, (1, 0, 2)).astype(np.float32))  # [V, T, 2]: said with the file
    out = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(tmp_path / "tvc.npy"), "--layout", "coco13"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "tvc.npy" in out.stderr and "frames and joints swapped" in out.stderr
    for extra, said in ((["--layout", "body13"], "--layout is for .npy sources"),
                        (["--frontend", "mediapipe"], "--frontend is for videos")):  # were silently ignored
        out = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(tmp_path / "u.pkl"), *extra],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and said in out.stderr and out.stderr.count("\n") == 1


def test_keypoints_that_jump_about_are_not_one_person(det):
    """Random keypoints scored as falls (82 % of uniform-noise windows at the threshold; a noise "person"
    streamed at 30 fps raised an alarm). Windows whose joints jump between frames are refused by predict
    and not scored in a stream; a real fall (URFD fixture) is still found."""
    from actionpose.inference.fall_prep import MAX_JITTER, jitter

    rng = np.random.default_rng(7)
    noise = rng.uniform([0, 0], [640, 480], (64, 17, 2)).astype(np.float32)
    with pytest.raises(ActionposeError, match="not one tracked person"):
        det.predict(noise)
    with pytest.raises(ActionposeError, match=r"\(window 1\).*not one tracked person"):
        det.predict_batch([noise[:1] + rng.normal(0, 2, (64, 17, 2)).astype(np.float32), noise])
    det.reset()
    before = det.windows_scored
    events = [e for i in range(300) for e in det.update({1: rng.uniform([0, 0], [640, 480], (17, 2))}, i / 30)]
    assert events == [] and det.windows_scored == before  # nothing scored, nothing raised
    kp, sc, _ = fixture_seq("fall-01")
    prepped = det.prepare(kp[40:104], sc[40:104], layout="coco13")
    assert jitter(prepped[0][None], prepped[1][None])[0] < MAX_JITTER / 2  # a real fall moves far less
    det.reset()
    assert len(det.run_sequence(kp, np.arange(len(kp)) / 30, sc, layout="coco13")) == 1


def test_masked_median_matches_numpy_nanmedian():
    """The jitter gate's median (on the service's hot path) gives numpy's nanmedian numbers."""
    import warnings

    from actionpose.inference.fall_prep import _masked_median

    rng = np.random.default_rng(0)
    for _ in range(500):
        shape = (int(rng.integers(1, 5)), int(rng.integers(1, 9)), int(rng.integers(1, 14)))
        x, m = rng.normal(size=shape), rng.random(shape) < 0.6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.nan_to_num(np.nanmedian(np.where(m, x, np.nan), axis=-1), nan=0.0)
        np.testing.assert_allclose(_masked_median(x, m), want)


def test_person_dict_mistakes_and_the_bad_frame_are_named(det):
    """{"kpts": ...} said "shape ()", {"id": 3, ...} silently became track 0, and update_many did not say
    which frame was bad."""
    det.reset()
    with pytest.raises(ActionposeError, match=r"got keys \['kpts'\]"):
        det.update([{"kpts": np.zeros((17, 2))}], 1.0)
    with pytest.raises(ActionposeError, match=r"got keys \['id', 'keypoints'\]"):
        det.update([{"id": 3, "keypoints": np.ones((17, 2))}], 1.0)
    ok = [({0: np.full((17, 2), 100.0)}, i / 30) for i in range(5)]
    with pytest.raises(ActionposeError, match="^frame 5: keypoints: 16 joints"):
        det.update_many(ok + [({0: np.ones((16, 2))}, 1.0)])


def flip_y(kp: np.ndarray, height: float = 480.0) -> np.ndarray:
    """y pointing up (image height - y); unseen (0, 0) joints stay unseen."""
    seen = (kp != 0).any(-1, keepdims=True)
    return np.where(seen, kp * [1, -1] + [0, height], 0).astype(np.float32)


def test_upside_down_input_is_said_in_process_and_in_the_cli(det, tmp_path):
    """y pointing up (or a camera mounted upside down) shows the model a body it never saw: a walk was
    read as a fall at 0.98 without a word. The real URFD clips (a fall and a daily activity) get no advice;
    the same clips with y flipped get the upside-down advice from predict, predict_batch, update and the CLI."""
    import warnings as pywarnings

    from actionpose.inference.fall_prep import UPSIDE_DOWN_ADVICE

    fall, fall_sc, _ = fixture_seq("fall-01")
    adl, adl_sc, _ = fixture_seq("adl-01")
    real = [fall[:64], fall[-64:], adl[:64], adl[-64:]]
    scores = [fall_sc[:64], fall_sc[-64:], adl_sc[:64], adl_sc[-64:]]
    assert det.input_advice(real, scores, layout="coco13") == [[]] * 4
    flipped = det.input_advice([flip_y(w) for w in real], scores, layout="coco13")
    assert flipped[0] == flipped[2] == flipped[3] == [UPSIDE_DOWN_ADVICE]  # the fall's last 2 s: lying, not judged
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("error")  # nothing said about real input
        det.predict(fall[:64], fall_sc[:64], layout="coco13")
        det.run_sequence(adl, np.arange(len(adl)) / 30, adl_sc, layout="coco13")
    with pytest.warns(UserWarning, match="upside down"):
        det.predict(flip_y(fall[:64]), fall_sc[:64], layout="coco13")
    with pytest.warns(UserWarning, match="upside down"):
        det.predict_batch([flip_y(adl[:64])], [adl_sc[:64]], layout="coco13")
    stream = FallDetector.from_pretrained(MODEL, threads=1)
    with pytest.warns(UserWarning, match="upside down"):
        for i, (k, s) in enumerate(zip(flip_y(adl), adl_sc)):
            stream.update({0: np.concatenate([k, s[:, None]], -1)}, i / 30, layout="coco13")
    for name, kp in (("real", fall), ("flipped", flip_y(fall))):
        np.save(tmp_path / f"{name}.npy", np.concatenate([kp, fall_sc[..., None]], -1).astype(np.float32))
        out = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(tmp_path / f"{name}.npy"), "--layout",
                              "coco13", "--fps", "30", "--json"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "Warning" not in out.stderr, out.stderr
        assert json.loads(out.stdout)["warnings"] == ([UPSIDE_DOWN_ADVICE] if name == "flipped" else []), name



def test_swapped_x_and_y_are_said_for_a_whole_source(tmp_path):
    """[y, x] keypoints in pixels (MoveNet's order, scaled to the image) turn a walk into a body lying along x:
    fall_video_1's skeleton swapped raised a fall at 0.17 s and "up again" at the real fall, without a word.
    The real clips (a fall, a daily activity) get no advice; swapped, they do (whole sources only: a window
    after a real fall is all lying)."""
    from actionpose.inference.fall_prep import SIDEWAYS_ADVICE

    for clip in ("fall-01", "adl-01"):
        kp, sc, _ = fixture_seq(clip)
        for name, k in (("real", kp), ("swapped", kp[..., ::-1])):
            path = tmp_path / f"{clip}_{name}.npy"
            np.save(path, np.concatenate([k, sc[..., None]], -1).astype(np.float32))
            out = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(path), "--layout", "coco13",
                                  "--fps", "30", "--json"], capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["warnings"] == ([SIDEWAYS_ADVICE] if name == "swapped" else []), (clip, name)


@pytest.mark.skipif(not (SHARED / "datasets" / "penn_action").exists(), reason="../shared not present: datasets")
def test_upside_down_check_on_real_clips():
    """No advice on any real clip of Penn Action (2,326), URFD MoveNet (70) or the push-up set (265; push-ups
    seen head-on have their shoulders below the hips, but foreshortened), and advice on every clip with
    enough standing frames once y is flipped (docs/fall.md quotes these counts)."""
    from actionpose.data.importers import convert
    from actionpose.inference.fall_prep import UPSIDE_DOWN_ADVICE, input_advice, looks_upside_down, torso_counts, torso_legs

    data = SHARED / "datasets"
    counts = {}
    for name, ds in (("penn", convert("penn", data / "penn_action")),
                     ("urfd_movenet", convert("urfd_movenet", data / "urfd_movenet13" / "urfd_movenet13_npy.tar.gz")),
                     ("pushup", convert("pushup", data / "pushup_form" / "pushup_form.tar.gz"))):
        said = flipped = standing_clips = 0
        for a in ds.annotations:
            kp = a["keypoint"][:1, :, :, :2]
            sc = None if a.get("keypoint_score") is None else a["keypoint_score"][:1]
            said += UPSIDE_DOWN_ADVICE in input_advice(kp, sc, ds.layout)[0]
            standing, inverted = torso_counts(*torso_legs(flip_y(kp, 2000.0), sc, ds.layout))
            standing_clips += int(standing[0]) >= 10
            flipped += looks_upside_down(int(standing[0]), int(inverted[0]))
        counts[name] = (len(ds), said, standing_clips, flipped)
    assert counts == {"penn": (2326, 0, 1547, 1547), "urfd_movenet": (70, 0, 70, 70), "pushup": (265, 0, 0, 0)}, counts


def test_a_file_stopped_part_way_is_said_and_not_exit_0(tmp_path, monkeypatch, capsys):
    """Ctrl-C 1.5 s into a 10 s video printed "no falls detected" and exit 0: as if the whole file were checked."""
    import actionpose.inference.fall_sources as sources
    from actionpose.cli import main

    info = {"frames": 27, "duration_s": 1.5, "layout": "coco17", "fps": 18.0, "interrupted": True, "warnings": [],
            "tracks": [0], "frames_with_person": 27, "windows_scored": 3}
    monkeypatch.setattr(sources, "detect_falls", lambda *a, **k: ([], dict(info)))
    (tmp_path / "v.mp4").write_bytes(b"\0" * 16)
    assert main(["fall", str(tmp_path / "v.mp4")]) == 130
    out, err = capsys.readouterr()
    assert "(stopped part-way)" in out and "no falls detected in the part checked" in out
    assert "interrupted (Ctrl-C): only the first 1.50 s of" in err
    assert main(["fall", str(tmp_path / "v.mp4"), "--json"]) == 130
    assert json.loads(capsys.readouterr().out)["interrupted"] is True


def test_model_cards_hold_no_template_placeholders():
    """The fall card printed a literal "{lines}" where its hidden-joints table belonged."""
    import re

    from actionpose.inference.fall_train import occlusion_card_section

    cards = sorted((Path(__file__).resolve().parents[1] / "actionpose" / "assets" / "models").glob("*.md"))
    assert cards and not [c.name for c in cards if re.search(r"\{[a-z_]+\}", c.read_text())]
    section = occlusion_card_section({"conditions": {"head": {"found": 55, "falls": 60, "false_alarms": 1,
                                                              "recall": 0.917, "precision": 0.982}}}, 0.94)
    assert "| head | 55/60 | 1 | 0.917 | 0.982 |" in section and "{" not in section


@pytest.mark.skipif(not SKEL.exists(), reason="../shared not present: fall_skeleton_1.npy")
def test_counters_are_per_input_and_bounded(tmp_path):
    """reset() left windows_scored counting across inputs (45, 90, 135 for one clip run three times); a pickle
    of several sequences reported the last one's peaks only; peaks grew by one entry per track id for ever."""
    from actionpose.data.importers import convert
    from actionpose.inference import fall as fall_mod
    from actionpose.inference.fall_sources import detect_falls

    det = FallDetector.from_pretrained("fall", threads=1)
    skel = np.load(SKEL)
    runs = []
    for _ in range(2):
        for i, f in enumerate(skel):
            det.update(f, i / 18)
        runs.append(det.windows_scored)
        det.reset()
    assert runs[0] == runs[1] > 0 and det.windows_scored == 0
    fix = Path(__file__).resolve().parent / "fixtures" / "fall"
    convert("urfd_movenet", fix / "urfd_movenet13_mini.tar.gz", tmp_path / "u.pkl",
            frame_labels_csv=fix / "urfd_falls13_mini.csv")
    _, info = detect_falls(det, tmp_path / "u.pkl")
    assert len({str(t).split("/")[0] for t in info["peaks"]}) == 2  # both sequences' persons
    old, fall_mod.MAX_PEAKS = fall_mod.MAX_PEAKS, 3
    try:
        det.reset()
        t = 0.0
        for k in range(5):  # a tracker handing out a new id every few seconds: only the newest 3 are kept
            det.update_many([({f"id{k}": f}, (t := t + 1 / 18)) for f in skel[:54]])
        assert list(det.peaks) == ["id2", "id3", "id4"]
    finally:
        fall_mod.MAX_PEAKS = old
