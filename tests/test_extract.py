"""`actionpose extract` and the default frontend on a real (tiny) video; bad inputs; truncated video."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from actionpose.cli import main
from actionpose.data.format import load_dataset
from actionpose.errors import ActionposeError
from actionpose.pose import extract, load_frontend

FIX = Path(__file__).parent / "fixtures" / "pose"
VIDEO = FIX / "skier_8f.mp4"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="module")
def fe():
    return load_frontend("default", progress=False)


def test_stream_finds_the_skier(fe):
    gt = np.load(FIX / "skier_8f_gt.npy")
    frames = list(fe.stream(VIDEO))
    assert [f.index for f in frames] == list(range(8))
    assert fe.layout == "coco17"
    correct = total = 0
    for f in frames:
        assert len(f.persons) == 1 and f.persons[0].track_id == frames[0].persons[0].track_id
        p = f.persons[0]
        assert p.keypoints.shape == (17, 2) and p.scores.shape == (17,) and p.box.shape == (4,)
        g = gt[f.index]
        vis = g[:, 2] > 0
        size = max(np.ptp(g[vis, 0]), np.ptp(g[vis, 1]))
        d = np.hypot(*(p.keypoints[vis] - g[vis, :2]).T)
        correct += int((d <= 0.1 * size).sum())
        total += int(vis.sum())
    assert correct / total >= 0.8  # PCK@0.1 on the 17 labelled COCO joints


def test_extract_writes_canonical_pickle_and_render(tmp_path, fe):
    out, vid = tmp_path / "o.pkl", tmp_path / "o.mp4"
    ds = extract(VIDEO, out, frontend=fe, render=vid, progress=False)
    back = load_dataset(out)
    a = back.annotations[0]
    assert back.layout == "coco17" and a["frame_dir"] == "skier_8f"
    assert a["keypoint"].shape == (1, 8, 17, 2) and a["keypoint_score"].shape == (1, 8, 17)
    assert a["track_ids"] == ds.annotations[0]["track_ids"] and len(a["track_ids"]) == 1
    assert a["img_shape"] == (212, 320) and a["fps"] == pytest.approx(10.0) and "stopped_at" not in a
    cap = cv2.VideoCapture(str(vid))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    # body13 mapping and fps resampling (10 -> 5 fps keeps every other frame)
    ds13 = extract(VIDEO, None, frontend=fe, layout="body13", fps=5, progress=False)
    k13 = ds13.annotations[0]["keypoint"]
    assert ds13.layout == "body13" and k13.shape == (1, 4, 13, 2)
    np.testing.assert_allclose(k13[0, 1, 1], a["keypoint"][0, 2, 5], atol=3)  # left shoulder of frame 2


def test_folder_source_one_annotation_per_video(tmp_path, fe):
    d = tmp_path / "vids"
    d.mkdir()
    shutil.copy(VIDEO, d / "a.mp4")
    shutil.copy(VIDEO, d / "b.mp4")
    (d / "notes.txt").write_text("not a video")
    ds = extract(d, tmp_path / "o.pkl", frontend=fe, progress=False)
    assert [a["frame_dir"] for a in ds.annotations] == ["a", "b"]


def cut_video(tmp_path: Path) -> Path:
    """An AVI with raw MJPG frames cut at 60 % of its bytes: the first frames still decode."""
    src = tmp_path / "full.avi"
    cap = cv2.VideoCapture(str(VIDEO))
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 212))
    while (r := cap.read())[0]:
        w.write(r[1])
    w.release()
    data = src.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 6 // 10])
    return cut


def test_reps_on_a_truncated_video_exits_2(tmp_path, capsys):
    """reps said "no repetitions found" with exit 0 for a file that stopped decoding part-way (tag and fall: 2)."""
    assert main(["reps", str(cut_video(tmp_path))]) == 2
    assert "stopped at frame" in capsys.readouterr().err


def test_truncated_video_keeps_frames_and_says_where(tmp_path, fe):
    cut = cut_video(tmp_path)
    out = tmp_path / "cut.pkl"
    ds = extract(cut, out, frontend=fe, progress=False)
    a = load_dataset(out).annotations[0]
    t = a["keypoint"].shape[1]
    assert 0 < t < 8 and a["stopped_at"] == t
    assert ds.annotations[0]["stopped_at"] == t
    # tagging that pickle says the result is partial (it was "complete": true), and exits 2 as tag on the video does
    from actionpose.inference.tagger import pickle_videos

    [(_, _, _, _, _, why)] = list(pickle_videos(out))
    assert why == f"the video was cut short: `actionpose extract` stopped decoding it at frame {t}"


def test_empty_source_and_an_image_are_refused(tmp_path, capsys, monkeypatch):
    """An empty source string was the current folder (an unset $VIDEO tagged or extracted every video in it);
    an image was read as a one-frame video."""
    monkeypatch.chdir(tmp_path)
    cv2.imwrite(str(tmp_path / "img.png"), np.zeros((64, 64, 3), np.uint8))
    for argv, needle in [(["tag", ""], "empty source"), (["extract", "", "-o", "e.pkl"], "empty source"),
                         (["tag", "img.png"], "is an image (.png), not a video"),
                         (["extract", "img.png", "-o", "e.pkl"], "is an image (.png), not a video")]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "e.pkl").exists()


def test_bad_inputs_one_line_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 100)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"nope")
    cases = [
        ([str(tmp_path / "missing.mp4")], "no such file"),
        ([str(empty)], "empty.mp4"),
        ([str(junk)], "junk.mp4"),
        (["rtsp://127.0.0.1:9/none"], "cannot open stream"),
        ([str(VIDEO), "--pose-model", str(corrupt)], "cannot load"),
        ([str(VIDEO), "--frontend", "nope"], "unknown frontend"),
        ([str(VIDEO), "--fps", "0"], "--fps must be positive"),
    ]
    for extra, msg in cases:
        out = tmp_path / "o.pkl"
        rc = main(["extract", *extra, "-o", str(out), "--quiet"])
        err = capsys.readouterr().err.strip()
        assert rc == 2, (extra, err)
        assert err.startswith("error: ") and msg in err and "\n" not in err, err
        assert not out.exists()


def test_wrong_hash_vendored_model_refused(tmp_path, monkeypatch):
    from actionpose.pose import zoo

    d = tmp_path / "models"
    d.mkdir()
    (d / "movenet_singlepose_lightning.onnx").write_bytes(b"tampered")
    monkeypatch.setenv("ACTIONPOSE_MODEL_DIR", str(d))
    with pytest.raises(ActionposeError, match="sha256 mismatch"):
        zoo.resolve(zoo.get_model("movenet-lightning"))


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "o.pkl"
    rc = main(["extract", str(VIDEO), "-o", str(out), "--quiet", "--max-persons", "1", "--det-every", "3"])
    assert rc == 0
    assert "skier_8f: 8 frames, 1 persons" in capsys.readouterr().out
    assert load_dataset(out).annotations[0]["keypoint"].shape == (1, 8, 17, 2)
    # --det-every 0 (detect only while nobody is followed), as docs/frontend.md shows it: was refused
    assert main(["extract", str(VIDEO), "-o", str(tmp_path / "z.pkl"), "--quiet", "--det-every", "0"]) == 0
    assert load_dataset(tmp_path / "z.pkl").annotations[0]["keypoint"].shape[1] == 8


@pytest.mark.slow
def test_shared_fall_video_matches_reference_skeleton(fe):
    if not (SHARED / "videos" / "fall_video_1.mp4").exists():
        pytest.skip("../shared not present: fall_video_1.mp4")
    from actionpose.pose.evaluate import pck_vs_reference

    ref = np.load(SHARED / "videos" / "fall_skeleton_1.npy")
    r = pck_vs_reference(fe, SHARED / "videos" / "fall_video_1.mp4", ref, fps=9)  # every 2nd of 108 frames
    assert r["frames"] == 54 and r["frames_with_person"] >= 50  # the man is kept while lying on the mats
    assert r["pck"] >= 0.6


@pytest.mark.slow
def test_shared_two_person_video_keeps_two_ids(fe):
    if not (SHARED / "videos" / "ntu_sample.avi").exists():
        pytest.skip("../shared not present: ntu_sample.avi")
    ds = extract(SHARED / "videos" / "ntu_sample.avi", None, frontend=fe, progress=False, fps=15)
    a = ds.annotations[0]
    # two men, one walks over and hugs the other: exactly two tracks, each present almost throughout
    assert len(a["track_ids"]) == 2
    present = (a["keypoint_score"].sum(-1) > 0).mean(1)
    assert (present >= 0.9).all(), present


def test_one_unreadable_video_in_a_folder_is_skipped_not_fatal(tmp_path, capsys):
    """A folder with one text file named .mp4 lost every finished video (no pickle was written)."""
    import shutil

    from actionpose.cli import main
    from actionpose.data.format import load_dataset

    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "actionpose" / "assets" / "videos" / "ntu_hug_640x360.mp4",
                folder / "aa.mp4")
    (folder / "zz.mp4").write_text("not a video")
    out = tmp_path / "m.pkl"
    assert main(["extract", str(folder), "-o", str(out), "--quiet", "--max-frames", "5"]) == 2
    err = capsys.readouterr().err
    assert "skipped" in err and "zz.mp4" in err
    ds = load_dataset(out)
    assert [a["frame_dir"] for a in ds.annotations] == ["aa"] and ds.meta["skipped"][0].endswith("zz.mp4")


def test_register_frontend_refuses_a_taken_name_an_alias_and_models_it_cannot_run():
    """docs/extending.md's frontend registry replaced an entry of the same name without a word (the default
    frontend included), took a name that is an alias (never selectable) and a detector/pose pair it could not
    run, which failed only when loaded, with a bare KeyError."""
    import re

    from actionpose.pose.frontend import DEFAULT, FrontendSpec, get_frontend_spec, register_frontend

    before = get_frontend_spec("default")
    with pytest.raises(ActionposeError, match=re.escape(f"frontend '{DEFAULT}' is already registered")):
        register_frontend(FrontendSpec(DEFAULT, "yolox-nano", "movenet-lightning", "mine"))
    assert get_frontend_spec("default") is before
    with pytest.raises(ActionposeError, match="frontend name 'mediapipe' is an alias of 'blazepose-detector\\+blazepose'"):
        register_frontend(FrontendSpec("mediapipe", "rtmdet-nano-person", "movenet-lightning", "mine"))
    with pytest.raises(ActionposeError, match="frontend probe-swapped: detector 'movenet-lightning' is not a detector "
                                              "model; known: blazepose-detector, rtmdet-nano-person, yolox-nano"):
        register_frontend(FrontendSpec("probe-swapped", "movenet-lightning", "rtmdet-nano-person", "swapped"))
    with pytest.raises(ActionposeError, match="frontend probe-typo: pose 'rtmpose-xs' is not a pose model; known: "):
        register_frontend(FrontendSpec("probe-typo", "rtmdet-nano-person", "rtmpose-xs", "typo"))
    with pytest.raises(ActionposeError, match="unknown frontend 'probe-swapped'"):
        get_frontend_spec("probe-swapped")
