"""After a fall: still down (long lie) or up again, in process, in saved stream state, in the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actionpose.errors import ActionposeError
from actionpose.inference.fall import FallDetector
from actionpose.inference.fall_aftermath import Upright, posture, upright_reference

from test_fall import MODEL, SKEL, fixture_seq

FPS_URFD = 30.0


@pytest.fixture(scope="module")
def det():
    return FallDetector.from_pretrained(MODEL, threads=1, layout="body13")


def stream(det: FallDetector, kp: np.ndarray, sc: np.ndarray, fps: float, chunk: int = 30, t0: float = 0.0):
    """The sequence through ``update_many`` in chunks (as a service client sends it); all events in order."""
    det.reset()
    frames = [({1: np.concatenate([kp[i], sc[i][:, None]], -1)}, t0 + i / fps) for i in range(len(kp))]
    events = []
    for lo in range(0, len(frames), chunk):
        events += det.update_many(frames[lo:lo + chunk])
    return events


def pingpong(x: np.ndarray, seconds: float, fps: float) -> np.ndarray:
    """``x`` forwards then backwards, repeated to last ``seconds``: a person holding still, with real jitter."""
    loop = np.concatenate([x, x[::-1]])
    n = int(round(seconds * fps))
    return np.concatenate([loop] * (n // len(loop) + 1))[:n]


def fall_fixture():
    """URFD fall-01 (MoveNet fixture, body13 pixels) and its per-frame labels (0 up, 1 falling, 2 lying)."""
    kp, sc, a = fixture_seq("fall-01")
    return kp, sc, np.asarray(a["frame_labels"])


def test_posture_of_real_standing_and_lying_frames():
    kp, sc, labels = fall_fixture()
    before = labels == 0
    ref = upright_reference(kp[before], sc[before])
    assert ref is not None and 50 < ref.height < 480
    p = posture(kp, sc, ref)
    known = ~np.isnan(p)
    assert np.mean(p[known & (labels == 0)] == 0.0) > 0.9  # standing frames: up
    assert np.mean(p[known & (labels == 2)] == 1.0) > 0.9  # lying frames: down
    assert not np.any(p[labels == 2] == 0.0)               # never "up" while lying
    # nothing seen: unknown, not up
    assert np.isnan(posture(kp[:1], np.zeros_like(sc[:1]), ref)).all()
    # a body turned by 90 degrees is down even without a reference
    lying = kp[before][:5].copy()
    c = lying.mean(1, keepdims=True)
    lying = c + (lying - c)[..., ::-1]
    assert (posture(lying, sc[before][:5], None) == 1.0).all()


def test_a_person_who_stays_down_gets_one_still_down_event(det):
    kp, sc, labels = fall_fixture()
    lying = labels == 2
    hold_kp, hold_sc = pingpong(kp[lying][-30:], 70, FPS_URFD), pingpong(sc[lying][-30:], 70, FPS_URFD)
    events = stream(det, np.concatenate([kp, hold_kp]), np.concatenate([sc, hold_sc]), FPS_URFD)
    assert [e.kind for e in events] == ["fall", "still_down"], events
    fall, down = events
    assert down.start_time == fall.detected_time and down.track_id == fall.track_id
    assert abs(down.detected_time - (fall.detected_time + 60)) < 0.1
    assert down.confidence > 0.9  # seen down in nearly every frame since


def test_a_person_who_gets_up_gets_one_recovered_event(det):
    """The fall, 2 s lying, then the same clip backwards (getting up) and 4 s standing: recovered, once,
    within ~3 s of standing again; no still-down escalation."""
    kp, sc, labels = fall_fixture()
    lying, up = labels == 2, labels == 0
    seq = [kp, pingpong(kp[lying][-30:], 2, FPS_URFD), kp[::-1], pingpong(kp[up][:30], 4, FPS_URFD)]
    sco = [sc, pingpong(sc[lying][-30:], 2, FPS_URFD), sc[::-1], pingpong(sc[up][:30], 4, FPS_URFD)]
    events = stream(det, np.concatenate(seq), np.concatenate(sco), FPS_URFD)
    assert [e.kind for e in events] == ["fall", "recovered"], events
    # the reversed clip is standing again where its labels are 0 again
    back = np.concatenate([labels, np.full(len(seq[1]), 2), labels[::-1]])
    first_up = (len(kp) + len(seq[1]) + int(np.argmax(labels[::-1] == 0))) / FPS_URFD
    assert first_up - 1.0 <= events[1].start_time <= events[1].detected_time <= first_up + 3.5, (first_up, events[1])
    assert len(back) == len(kp) * 2 + len(seq[1])


@pytest.mark.skipif(not SKEL.exists(), reason="../shared not present: fall_skeleton_1.npy")
def test_real_video_skeleton_still_down_and_getting_up(det):
    """fall_video_1's independent skeleton (18 fps): the man walks, falls at ~2.6 s, lies. Held down: still
    down 60 s after the alert. Played backwards after 2 s on the floor: up again, and no escalation."""
    kp = np.load(SKEL)
    sc = ((kp[..., 0] > 0) & (kp[..., 1] > 0)).astype(np.float32)
    d = FallDetector.from_pretrained(MODEL, threads=1, layout="coco17")
    held = stream(d, np.concatenate([kp, pingpong(kp[-18:], 70, 18)]), np.concatenate([sc, pingpong(sc[-18:], 70, 18)]), 18)
    assert [e.kind for e in held] == ["fall", "still_down"]
    assert held[1].confidence == 1.0
    up_kp = np.concatenate([kp, pingpong(kp[-18:], 2, 18), kp[::-1], pingpong(kp[:18], 4, 18)])
    up_sc = np.concatenate([sc, pingpong(sc[-18:], 2, 18), sc[::-1], pingpong(sc[:18], 4, 18)])
    got_up = stream(d, up_kp, up_sc, 18)
    assert [e.kind for e in got_up] == ["fall", "recovered"]
    # backwards, the man is upright again from frame ~56 of the reversed clip: 6 + 2 + (108 - 56) / 18 s
    assert 10.0 <= got_up[1].start_time <= 12.0 and got_up[1].detected_time - got_up[1].start_time <= 3.5


@pytest.mark.skipif(not SKEL.exists(), reason="../shared not present: fall_skeleton_1.npy")
def test_someone_else_standing_under_the_fallen_persons_id_is_not_a_recovery():
    """A single-person frontend (MediaPipe) or index-based ids give a carer who walks in the fallen person's id
    0: their standing, 250 px away, cleared the alarm with `recovered` (found by probing). Standing up where
    he lay still recovers; a walk-in far away leaves the person down, and still_down follows."""
    kp = np.load(SKEL)
    sc = ((kp[..., 0] > 0) & (kp[..., 1] > 0)).astype(np.float32)
    d = FallDetector.from_pretrained(MODEL, threads=1, layout="coco17")
    standing = np.concatenate([kp[:1], sc[:1, :, None]], -1)[0]  # the man before his fall, at x ~ 660
    lay_x = kp[-1][[11, 12], 0].mean()  # his hips on the floor, x ~ 397

    def then_stands(shift_x: float, gap_s: float, seconds: float = 10.0) -> list[str]:
        events = stream(d, kp, sc, 18)
        t0 = len(kp) / 18 + gap_s
        for j in range(int(seconds * 18)):
            events += d.update({1: standing + [shift_x, 0, 0]}, t0 + j / 18)
        return [e.kind for e in events]

    to_lay = lay_x - standing[[11, 12], 0].mean()
    for gap in (0.0, 1.0, 5.0):
        assert then_stands(250, gap) == ["fall"]  # at x ~ 910: someone else
        assert then_stands(to_lay, gap) == ["fall", "recovered"]  # where he lay: him, getting up
    assert then_stands(250, 0.0, seconds=62) == ["fall", "still_down"]


def test_still_down_is_raised_when_the_person_is_no_longer_seen(det):
    """A person lying on the floor is often missed by the pose detector: frames without them still move the
    stream's clock, and the escalation comes all the same, its confidence the share of frames seen down."""
    kp, sc, labels = fall_fixture()
    alert = stream(det, kp, sc, FPS_URFD)[0].detected_time
    for cut, share in ((int(round(alert * FPS_URFD)) + 1, 0.0), (len(kp), 1.0)):  # gone at the alert / seen lying
        events = stream(det, kp[:cut], sc[:cut], FPS_URFD)
        assert [e.kind for e in events] == ["fall"]
        later = []
        for i in range(int(61 * 10)):  # 61 s of frames without anybody, at 10 fps
            later += det.update({}, cut / FPS_URFD + i / 10)
        assert [e.kind for e in later] == ["still_down"] and later[0].confidence == share, later


def test_follow_up_survives_a_saved_and_restored_stream_state(det):
    """The service keeps each session's state in its database: a follow-up started before a save must finish
    after a restore exactly as without it."""
    kp, sc, labels = fall_fixture()
    lying = labels == 2
    hold_kp, hold_sc = pingpong(kp[lying][-30:], 65, FPS_URFD), pingpong(sc[lying][-30:], 65, FPS_URFD)
    allk, alls = np.concatenate([kp, hold_kp]), np.concatenate([sc, hold_sc])
    whole = stream(det, allk, alls, FPS_URFD)
    n = len(kp) + 30
    first = stream(det, allk[:n], alls[:n], FPS_URFD)
    saved = det.state_bytes()
    assert b'"watches"' in saved
    fresh = FallDetector.from_pretrained(MODEL, threads=1, layout="body13")
    fresh.load_state(saved)
    rest = []
    frames = [({1: np.concatenate([allk[i], alls[i][:, None]], -1)}, i / FPS_URFD) for i in range(n, len(allk))]
    for lo in range(0, len(frames), 30):
        rest += fresh.update_many(frames[lo:lo + 30])
    assert [(e.kind, e.detected_time) for e in first + rest] == [(e.kind, e.detected_time) for e in whole]


def test_a_damaged_follow_up_in_saved_state_is_refused(det):
    kp, sc, _ = fall_fixture()
    stream(det, kp, sc, FPS_URFD)
    data = det.state_bytes()
    magic = FallDetector._STATE_MAGIC
    size = int.from_bytes(data[len(magic):len(magic) + 4], "little")
    head = json.loads(data[len(magic) + 4:len(magic) + 4 + size])
    assert head["watches"] and head["watches"][0]["id"] == 1
    head["watches"][0]["recent"] = [["x", True]]
    raw = json.dumps(head).encode()
    bad = magic + len(raw).to_bytes(4, "little") + raw + data[len(magic) + 4 + size:]
    with pytest.raises(ActionposeError, match="track 1: a fall follow-up watch is malformed"):
        FallDetector.from_pretrained(MODEL, threads=1).load_state(bad)


@pytest.mark.parametrize("setting", [{"long_lie_s": 0}, {"long_lie_s": -5}, {"recover_s": float("nan")},
                                     {"long_lie_s": "60"}])
def test_bad_follow_up_settings_are_refused_by_name(setting):
    with pytest.raises(ActionposeError, match=next(iter(setting))):
        FallDetector.from_pretrained(MODEL, **setting)


def test_upright_reference_needs_standing_frames():
    kp, sc, labels = fall_fixture()
    assert upright_reference(kp[:2], sc[:2]) is None           # too few frames
    assert upright_reference(kp[labels == 2], sc[labels == 2]) is None  # nobody upright
    assert isinstance(upright_reference(kp[labels == 0], sc[labels == 0]), Upright)


def test_cli_prints_the_follow_up(tmp_path):
    kp, sc, labels = fall_fixture()
    lying = labels == 2
    arr = np.concatenate([np.concatenate([kp, sc[..., None]], -1),
                          np.concatenate([pingpong(kp[lying][-30:], 25, FPS_URFD),
                                          pingpong(sc[lying][-30:], 25, FPS_URFD)[..., None]], -1)])
    path = tmp_path / "fall_then_lying.npy"
    np.save(path, arr.astype(np.float32))
    r = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(path), "--layout", "body13", "--fps", "30",
                        "--long-lie", "20"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(("fall ", "still down", "up again"))]
    assert len(lines) == 2 and lines[0].startswith("fall 1: track 0") and lines[1].startswith("still down (fall 1): track 0")
    assert "20 s after the alert" in lines[1], lines
    r = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(path), "--layout", "body13", "--fps", "30",
                        "--long-lie", "0"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "--long-lie 0: must be more than 0" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "actionpose", "fall", str(path), "--layout", "body13",
                        "--hold-lost", "9"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "--hold-lost 9: must be from 0 to 5 seconds" in r.stderr
    assert Path(path).exists()


def _got_up_then_fell_again():
    kp, sc, labels = fall_fixture()
    lying, up = labels == 2, labels == 0
    parts = [(kp, sc), (pingpong(kp[lying][-30:], 2, FPS_URFD), pingpong(sc[lying][-30:], 2, FPS_URFD)),
             (kp[::-1], sc[::-1]), (pingpong(kp[up][:30], 3.2, FPS_URFD), pingpong(sc[up][:30], 3.2, FPS_URFD)),
             (kp, sc), (pingpong(kp[lying][-30:], 5, FPS_URFD), pingpong(sc[lying][-30:], 5, FPS_URFD))]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_a_second_fall_right_after_getting_up_is_alerted(det):
    """The re-arm rule (probability below `release` for `rearm_s`) blocked a fall a few seconds after the
    person had got up: "up again", then nothing while they lay on the floor (probe). A recovery re-arms."""
    kp, sc = _got_up_then_fell_again()
    events = stream(det, kp, sc, FPS_URFD)
    assert [e.kind for e in events] == ["fall", "recovered", "fall"], events
    assert events[2].detected_time - events[1].detected_time < det.config.rearm_s + 3


@pytest.mark.parametrize("chunk", [1, 7, 64, 256])
def test_follow_ups_do_not_depend_on_how_frames_are_batched(det, chunk):
    """update_many must give update's events: a 256-frame service request used to lose every frame after a fall
    but the last 2.6 s, so a person who got up got a false still_down (probe)."""
    kp, sc, labels = fall_fixture()
    lying, up = labels == 2, labels == 0
    seq = np.concatenate([kp, pingpong(kp[lying][-30:], 2, FPS_URFD), kp[::-1], pingpong(kp[up][:30], 6, FPS_URFD)])
    sco = np.concatenate([sc, pingpong(sc[lying][-30:], 2, FPS_URFD), sc[::-1], pingpong(sc[up][:30], 6, FPS_URFD)])
    one = [(e.kind, e.start_time, e.detected_time) for e in stream(det, seq, sco, FPS_URFD, chunk=1)]
    assert [k for k, _, _ in one] == ["fall", "recovered"]
    assert [(e.kind, e.start_time, e.detected_time) for e in stream(det, seq, sco, FPS_URFD, chunk=chunk)] == one
    again, agains = _got_up_then_fell_again()
    ref = [(e.kind, e.detected_time) for e in stream(det, again, agains, FPS_URFD, chunk=1)]
    assert [(e.kind, e.detected_time) for e in stream(det, again, agains, FPS_URFD, chunk=chunk)] == ref


def test_after_a_camera_gap_a_standing_person_is_not_first_escalated(det):
    """No frames for 65 s after a fall, then the person is seen standing: that is a recovery, not a still_down
    followed 2.7 s later by a recovery (probe). Seen lying after the same gap: still_down at once."""
    kp, sc, labels = fall_fixture()
    up, lying = labels == 0, labels == 2
    t_end = len(kp) / FPS_URFD
    for part, want in ((up, ["recovered"]), (lying, ["still_down"])):
        events = stream(det, kp, sc, FPS_URFD)
        assert [e.kind for e in events] == ["fall"]
        later = []
        hold_kp, hold_sc = pingpong(kp[part][:30], 4, FPS_URFD), pingpong(sc[part][:30], 4, FPS_URFD)
        for i in range(len(hold_kp)):
            later += det.update({1: np.concatenate([hold_kp[i], hold_sc[i][:, None]], -1)}, t_end + 65 + i / FPS_URFD)
        assert [e.kind for e in later] == want, later


def test_sparse_standing_frames_cannot_hold_an_escalation_back(det):
    """Frames too sparse to confirm a recovery (1 per second): the deferral ends after recover_s + 1 s."""
    kp, sc, labels = fall_fixture()
    up = labels == 0
    stream(det, kp, sc, FPS_URFD)
    t0 = len(kp) / FPS_URFD + 65
    later = []
    for i in range(8):
        f = np.flatnonzero(up)[i % int(up.sum())]
        later += det.update({1: np.concatenate([kp[f], sc[f][:, None]], -1)}, t0 + i * 0.99)
    # at most recover_s + 1 s, plus the one frame interval (0.99 s) until the next frame says it
    assert [e.kind for e in later] == ["still_down"] and later[0].detected_time - t0 <= det.config.recover_s + 2.0


def test_a_joint_at_the_origin_is_not_seen_by_the_posture_whatever_its_score():
    """Keypoints given without scores get score 1, so a missing joint written as (0, 0) counted as seen: the
    body's box reached the image origin and a standing person read as 'neither' or 'down' (found in review)."""
    kp, sc, labels = fall_fixture()
    up = labels == 0
    ref = upright_reference(kp[up], sc[up])
    frames = kp[up][:20].copy()
    frames[:, 11:13] = 0.0  # ankles not found, written as (0, 0), as PYSKL and many frontends pad
    ones = np.ones(frames.shape[:2], np.float32)  # no scores given
    zeroed = np.where((frames == 0).all(-1), 0.0, ones)
    assert np.array_equal(posture(frames, ones, ref), posture(frames, zeroed, ref))
    assert (upright_reference(frames, ones) == upright_reference(frames, zeroed))


def test_a_camera_silent_after_a_fall_still_escalates_on_tick(det):
    """Follow-ups were judged only at frames: a camera that stopped after the fall never raised still_down.
    ``tick(t)`` moves the clock on without frames; later frames are taken as before, with no second still_down."""
    kp, sc, _ = fall_fixture()
    events = stream(det, kp, sc, FPS_URFD)
    assert [e.kind for e in events] == ["fall"]
    fall, last = events[0], det.last_time
    due = det.silent_due()
    assert due == pytest.approx(fall.detected_time + det.config.long_lie_s)
    assert det.tick(last - 1.0) == [] and det.tick(due - 0.5) == []  # not yet due
    down = det.tick(due + 3.0)
    assert [(e.kind, e.track_id, e.start_time, e.detected_time) for e in down] == \
        [("still_down", 1, fall.detected_time, due + 3.0)]
    assert det.silent_due() is None and det.tick(due + 10) == [] and det.last_time == last
    again = det.update_many([({1: np.concatenate([kp[-1], sc[-1][:, None]], -1)}, last + (i + 1) / FPS_URFD)
                             for i in range(60)])
    assert [e.kind for e in again] == []  # the escalation is not repeated when frames come back
    with pytest.raises(ActionposeError, match="timestamp"):
        det.tick(float("nan"))


def test_a_lost_persons_last_pose_is_held_only_while_frames_come_and_only_for_hold_lost_s():
    """FallConfig.hold_lost_s: frames without the person carry their last pose for that long (the fall windows
    see it); off by default; carried through saved stream state; bad values refused by name."""
    import dataclasses

    base = FallDetector.from_pretrained(MODEL, threads=1, layout="body13")
    kp, sc, _ = fall_fixture()
    person = {1: np.concatenate([kp[0], sc[0][:, None]], -1)}
    for hold, held in ((0.0, 0), (1.0, 30)):
        det = FallDetector(base.scorer, dataclasses.replace(base.config, hold_lost_s=hold), layout="body13")
        det.update_many([(person, i / 30) for i in range(30)])
        det.update_many([({}, 1 + i / 30) for i in range(15)])
        restored = FallDetector(base.scorer, det.config, layout="body13")
        restored.load_state(det.state_bytes())  # a service restores every request: the hold must carry over
        restored.update_many([({}, 1.5 + i / 30) for i in range(60)])
        tr = restored._tracks[1]
        assert len(tr.times) - 30 == held and tr.seen_at == pytest.approx(29 / 30)
        if held:
            assert tr.times[-1] == pytest.approx(29 / 30 + 1.0, abs=0.02)  # held up to 1 s after last seen
            assert np.array_equal(tr.kps[-1], tr.kps[29])
    with pytest.raises(ActionposeError, match="hold_lost_s=-1"):
        FallDetector.from_pretrained(MODEL, hold_lost_s=-1)
