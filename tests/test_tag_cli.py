"""``actionpose tag`` end to end: outputs, schema, bad inputs (one line, exit 2, no traceback)."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from actionpose.cli import main
from conftest import REPO, shared_path

SAMPLES = REPO / "actionpose" / "assets" / "samples" / "penn"


def penn_model_or_skip() -> None:
    from actionpose.inference.predictor import ASSETS, MODEL_ALIASES

    if not (ASSETS / f"{MODEL_ALIASES['penn']}.onnx").exists():
        pytest.skip("shipped penn model not present yet")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
@pytest.mark.parametrize("command", [["tag"], ["fall"], ["reps"], ["tag", "--model", "fall"]])
def test_a_pipe_or_standard_input_is_refused_as_not_a_regular_file(tmp_path, capsys, command):
    """`cat clip.mp4 | actionpose tag /dev/stdin` used to say "no such file" (the path exists: it is a pipe)."""
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    for source in (str(fifo), "-"):
        assert main([command[0], source, *command[1:]]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {source}: not a regular file") and err.count("\n") == 1, err


def test_missing_source_is_one_line_exit_2(tmp_path, capsys):
    assert main(["tag", str(tmp_path / "nope.mp4"), "--json", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.mp4" in err and "no such file" in err and err.count("\n") == 1
    assert not (tmp_path / "o.json").exists()


def test_unwritable_output_paths_are_refused_before_any_work(tmp_path, capsys):
    """An output that names a folder, or sits under a file, is a one-line error up front in every command that
    writes one (before: `tag --json DIR` tagged the whole video, then died with IsADirectoryError)."""
    video = REPO / "actionpose" / "assets" / "videos" / "ntu_hug_640x360.mp4"
    (tmp_path / "afile").write_text("x")
    cases = [(["tag", str(video), "--json", str(tmp_path)], "--json", "is a folder"),
             (["tag", str(video), "--timeline", str(tmp_path / "afile" / "t.png")], "--timeline", "is a file, not a folder"),
             (["tag", str(video), "--csv", str(tmp_path)], "--csv", "is a folder"),
             (["tag", str(video), "--render", str(tmp_path)], "--render", "is a folder"),
             (["extract", str(video), "-o", str(tmp_path)], "--out", "is a folder"),
             (["datasets", "convert", "-f", "penn", str(SAMPLES), "-o", str(tmp_path)], "--output", "is a folder"),
             (["export", "--model", str(tmp_path / "m.ckpt"), "-o", str(tmp_path / "afile" / "m.onnx")], "--output",
              "is a file, not a folder")]
    for argv, option, reason in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"error: {option} ") and reason in err and err.count("\n") == 1, (argv, err)
    for argv, option in ((["eval", "--model", "penn", "--data", str(tmp_path / "d.pkl"), "--out", str(tmp_path / "afile")],
                          "--out"), (["demo", "-o", str(tmp_path / "afile" / "demo")], "--output-dir")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"error: {option} ") and "afile is a file, not a folder" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing half-written


def test_out_of_range_fps_and_min_score_exit_2(tmp_path, capsys):
    npy = tmp_path / "k.npy"
    import numpy as np

    np.save(npy, np.ones((10, 17, 3), np.float32))
    for fps in ("-1", "1e9"):  # 1e9 printed "0.00 s ... no falls detected"
        assert main(["fall", str(npy), "--fps", fps]) == 2
        assert "--fps must be in (0, 1000]" in capsys.readouterr().err
    assert main(["reps", str(npy), "--min-score", "2"]) == 2
    assert "--min-score must be between 0 and 1" in capsys.readouterr().err
    assert main(["reps", str(npy), "--fps", "0"]) == 2
    assert "--fps must be positive" in capsys.readouterr().err
    # 0.5 fps: "2.0 s, 1 frames" for a 1-s clip, then "visible for only 2.00 s (< 0.5 s)"
    assert main(["tag", str(REPO / "actionpose" / "assets" / "videos" / "ntu_hug_640x360.mp4"), "--fps", "0.5"]) == 2
    assert "--fps 0.5 is too low to see motion: give at least 3" in capsys.readouterr().err
    video = REPO / "actionpose" / "assets" / "videos" / "ntu_hug_640x360.mp4"
    for argv, needle in ((["extract", str(video), "-o", str(tmp_path / "e.pkl"), "--det-every", "-1"], "--det-every"),
                         (["extract", str(video), "-o", str(tmp_path / "e.pkl"), "--max-frames", "0"], "--max-frames"),
                         (["tag", str(video), "--min-duration", "-1"], "--min-duration")):
        assert main(argv) == 2, argv
        assert needle in capsys.readouterr().err
    assert not (tmp_path / "e.pkl").exists()


def test_bad_window_stride_exit_2(tmp_path, capsys):
    assert main(["tag", str(tmp_path), "--window", "1", "--stride", "2"]) == 2
    assert "--stride" in capsys.readouterr().err
    assert main(["tag", str(tmp_path), "--threshold", "1.5"]) == 2


def test_unknown_model_exit_2(tmp_path, capsys):
    (tmp_path / "a.pkl").write_bytes(b"x")
    assert main(["tag", str(tmp_path / "a.pkl"), "--model", str(tmp_path / "missing.onnx")]) == 2
    assert "missing.onnx" in capsys.readouterr().err


def test_tag_penn_samples_pickle_outputs(tmp_path, capsys):
    penn_model_or_skip()
    from actionpose.data.importers import convert
    from actionpose.inference.tagger import validate_result_dict

    pkl = tmp_path / "samples.pkl"
    ds = convert("penn", SAMPLES, pkl)
    rc = main(["tag", str(pkl), "--json", str(tmp_path / "o.json"), "--csv", str(tmp_path / "o.csv"),
               "--timeline", str(tmp_path / "t.png"), "--window", "1.5"])
    assert rc == 0
    doc = json.loads((tmp_path / "o.json").read_text())
    assert len(doc["results"]) == len(ds.annotations)
    for r in doc["results"]:
        validate_result_dict(r)
    rows = list(csv.DictReader((tmp_path / "o.csv").open()))
    assert len(rows) == sum(len(p["segments"]) for r in doc["results"] for p in r["persons"])
    # each sample is one labelled Penn clip: most of them should get their own label
    right = 0
    for r, ann in zip(doc["results"], ds.annotations):
        labels = [s["label"] for p in r["persons"] for s in p["segments"]]
        right += ds.classes[ann["label"]] in labels
    assert right >= len(ds.annotations) // 2, doc
    assert list(tmp_path.glob("t.*.png"))
    # one overlay per sequence, drawn on a blank canvas (was: none, with a note)
    assert main(["tag", str(pkl), "--render", str(tmp_path / "r.mp4"), "--window", "1.5", "-q"]) == 0
    import cv2

    for ann in ds.annotations:
        assert cv2.VideoCapture(str(tmp_path / f"r.{ann['frame_dir']}.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) > 0
    # Penn pickles name no frame rate: the 30 fps the times rest on is said in every result
    assert all(any("names no frame rate" in w for w in r["warnings"]) for r in doc["results"])
    assert main(["tag", str(pkl), "--fps", "30", "--json", str(tmp_path / "o2.json"), "--window", "1.5"]) == 0
    assert not any("names no frame rate" in w for r in json.loads((tmp_path / "o2.json").read_text())["results"]
                   for w in r["warnings"])
    # a pickle whose layout the model cannot use: one line up front (was a skip line per sample, then 15 KB)
    from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset
    import numpy as np

    hands = tmp_path / "hands.pkl"
    save_dataset(SkeletonDataset([make_annotation(f"h{i}", 0, np.ones((1, 20, 21, 2), np.float32)) for i in range(30)],
                                 "hand21", ["x"]), hands)
    capsys.readouterr()
    assert main(["tag", str(hands)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hands.pkl: its layout 'hand21' cannot be mapped" in err


def test_unreadable_video_exit_2(tmp_path, capsys):
    penn_model_or_skip()
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    assert main(["tag", str(bad), "--json", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "broken.mp4" in err and "Traceback" not in err
    assert not (tmp_path / "o.json").exists()


@pytest.mark.slow
def test_video_without_person_gives_empty_valid_result(tmp_path):
    penn_model_or_skip()
    import cv2
    import numpy as np

    vid = tmp_path / "empty_room.mp4"
    w = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 240))
    for i in range(30):
        w.write(np.full((240, 320, 3), 90 + i, np.uint8))
    w.release()
    assert main(["tag", str(vid), "--json", str(tmp_path / "o.json"), "--timeline", str(tmp_path / "t.png")]) == 0
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["persons"] == [] and doc["frames"] == 30 and doc["complete"] is True
    assert (tmp_path / "t.png").exists()


def test_a_video_that_stops_decoding_part_way_exits_2_with_its_outputs(tmp_path, capsys):
    """A cut video tagged its first frames, said "[partial]" and exited 0: a script took it for done."""
    penn_model_or_skip()
    import cv2

    src, cut = tmp_path / "full.avi", tmp_path / "cut.avi"
    cap = cv2.VideoCapture(str(REPO / "actionpose" / "assets" / "videos" / "ntu_hug_640x360.mp4"))
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 360))  # MJPG: a cut leaves frames
    while (r := cap.read())[0]:
        w.write(r[1])
    w.release()
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    assert main(["tag", str(cut), "-q", "--json", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cut.avi: stopped before the end") and "the outputs hold the part before it" in err
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["complete"] is False and 0 < doc["frames"] < 72  # of 72


def test_corrupt_video_is_one_stderr_line(tmp_path):
    """FFmpeg's own C-level complaint ("moov atom not found") must not precede our one-line error."""
    import os
    import subprocess
    import sys

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    res = subprocess.run([sys.executable, "-m", "actionpose", "tag", str(bad), "--json", str(tmp_path / "o.json")],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert res.returncode == 2
    assert res.stderr.splitlines() == [f"error: {bad}: cannot open video (unreadable or unsupported)"], res.stderr
    assert not (tmp_path / "o.json").exists()


def test_an_output_that_cannot_be_written_is_refused_before_any_work(capsys):
    """It was a PermissionError traceback after the whole video had been processed."""
    from actionpose.cli import main

    for option, value in (("--timeline", "/proc/x.png"), ("--window", "inf")):
        assert main(["tag", "no-such-video.mp4", option, value]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("cannot write in /proc" in err or "--window" in err), err


def test_a_failed_demo_leaves_no_empty_output_folder(tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_text("not a video")
    out = tmp_path / "runs" / "demo"
    assert main(["demo", "-o", str(out), "--video", str(bad)]) == 2
    assert "broken.mp4" in capsys.readouterr().err
    assert not out.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    assert main(["demo", "-o", str(kept), "--video", str(bad)]) == 2
    assert kept.is_dir()  # a folder the user made is left alone


def test_outputs_that_would_replace_the_input_or_fail_late_are_refused_up_front(tmp_path, capsys):
    """`tag clip.mp4 --json clip.mp4` replaced the video with JSON; an unknown --timeline picture type was a
    traceback after the whole video had been tagged (and the JSON/CSV were lost); a folder given to a
    file-only command was called a pipe."""
    import shutil

    video = tmp_path / "clip.mp4"
    shutil.copy(REPO / "actionpose" / "assets" / "videos" / "ntu_hug_640x360.mp4", video)
    before = video.read_bytes()
    for args, needle in [(["tag", str(video), "--json", str(video)], "is the input file"),
                         (["tag", str(video), "--render", str(video)], "is the input file"),
                         (["extract", str(video), "-o", str(video)], "is the input file"),
                         (["tag", str(video), "--json", str(tmp_path / "a.json"), "--timeline", str(tmp_path / "t.docx")],
                          "give a picture file"),
                         (["reps", str(tmp_path)], "is a folder, not a file"),
                         # found after the whole video had been tagged, costing the JSON with it (probe)
                         (["tag", str(video), "--json", str(tmp_path / "a.json"), "--render", str(tmp_path / "r.webm")],
                          "--render " + str(tmp_path / "r.webm") + ": a video file must end in"),
                         (["extract", str(video), "-o", str(tmp_path / "p.pkl"), "--render", str(tmp_path / "r.webm")],
                          "a video file must end in")]:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, (args, err)
    assert video.read_bytes() == before and not (tmp_path / "a.json").exists()


def test_fps_above_the_videos_own_rate_is_refused(tmp_path, capsys):
    """--fps 30 on an 18 fps video recorded 30 fps for frames that came at 18: every time shrank by 40 %."""
    video = shared_path("videos", "fall_video_1.mp4")
    assert main(["tag", str(video), "--fps", "30", "--json", str(tmp_path / "a.json")]) == 2
    assert "above fall_video_1's own 18 fps" in capsys.readouterr().err


def test_two_videos_with_one_stem_get_their_own_outputs(tmp_path, capsys):
    """clip.mp4 and clip.avi in one folder wrote one t.clip.png (the second over the first)."""
    import shutil

    folder = tmp_path / "coll"
    folder.mkdir()
    src = REPO / "actionpose" / "assets" / "videos" / "ntu_hug_640x360.mp4"
    shutil.copy(src, folder / "clip.mp4")
    shutil.copy(src, folder / "clip.mov")
    assert main(["tag", str(folder), "-q", "--json", str(tmp_path / "r.json"), "--timeline", str(tmp_path / "t.png")]) == 0
    assert sorted(p.name for p in tmp_path.glob("t.*.png")) == ["t.clip_mov.png", "t.clip_mp4.png"]


def test_the_commands_load_without_the_heavy_stack():
    """`actionpose --version` took 5-8 s: `eval` imported the training package (PyTorch Lightning) at load, for
    every command. Each command imports what it needs when it runs."""
    import subprocess
    import sys

    code = ("import sys; from actionpose.cli import build_parser; build_parser(); "
            "print(' '.join(m for m in ('torch', 'pytorch_lightning', 'mlflow', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


def test_one_file_for_two_outputs_and_stdout_dash_are_refused(tmp_path, capsys):
    """`--json out --csv out` let the CSV overwrite the JSON; `--json -` wrote a file named "-"."""
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"\0")
    assert main(["tag", str(src), "--json", str(tmp_path / "a.out"), "--csv", str(tmp_path / "a.out")]) == 2
    assert "--json and --csv name one file" in capsys.readouterr().err
    assert main(["tag", str(src), "--json", "-"]) == 2
    assert "--json -: standard output is not supported" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    import numpy as np

    np.save(tmp_path / "k.npy", np.ones((40, 17, 2), np.float32))  # was "cannot open video"
    assert main(["tag", str(tmp_path / "k.npy")]) == 2
    assert "k.npy: a .npy keypoint array is read by --model fall only" in capsys.readouterr().err


def test_a_stop_while_drawing_the_overlay_keeps_the_finished_tags(tmp_path, capsys, monkeypatch):
    """Ctrl-C in the overlay's second pass lost every output, the JSON/CSV/timeline of the finished tagging too."""
    penn_model_or_skip()
    from actionpose.data.importers import convert
    from actionpose.inference import tagger

    ds = convert("penn", SAMPLES)
    one = tmp_path / "one.pkl"
    from actionpose.data.format import SkeletonDataset, save_dataset

    save_dataset(SkeletonDataset(ds.annotations[:1], ds.layout, ds.classes), one)

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tagger, "render_final", stopped)
    rc = main(["tag", str(one), "--fps", "30", "--json", str(tmp_path / "o.json"), "--csv", str(tmp_path / "o.csv"),
               "--render", str(tmp_path / "o.mp4")])
    assert rc == 130
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["complete"] is True and any("interrupted while drawing the overlay" in w for w in doc["warnings"])
    assert (tmp_path / "o.csv").is_file() and not (tmp_path / "o.mp4").exists()
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.slow
def test_a_video_and_its_extracted_pickle_get_the_same_tags(tmp_path):
    video = shared_path("videos", "ntu_sample.avi")  # 72 frames at 30 fps, two people
    assert main(["tag", str(video), "--json", str(tmp_path / "v.json"), "-q"]) == 0
    assert main(["extract", str(video), "-o", str(tmp_path / "p.pkl"), "-q"]) == 0
    assert main(["tag", str(tmp_path / "p.pkl"), "--json", str(tmp_path / "p.json"), "-q"]) == 0
    v, p = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "vp")
    assert v["fps"] == p["fps"] == 15.0 and v["frames"] == p["frames"] == 36
    assert v["persons"] == p["persons"] and v["persons"][0]["segments"]


def test_folder_runs_refuse_live_overlays_inside_and_runaway_threads(tmp_path, capsys):
    """A folder with --live tagged its first video only (exit 0); overlays written into the folder were tagged
    as videos by the next run; --threads 100000 started ~15,400 threads and took the machine (probe)."""
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    src = REPO / "actionpose" / "assets" / "videos" / "ntu_hug_640x360.mp4"
    shutil.copy(src, folder / "a.mp4")
    shutil.copy(src, folder / "b.mp4")
    for args, needle in [(["tag", str(folder), "--live"], "--live reads one video or stream"),
                         (["tag", str(folder), "--model", "fall", "--live"], "--live reads one video or stream"),
                         (["tag", str(folder), "--render", str(folder / "r.mp4")], "inside the folder being tagged"),
                         (["tag", str(folder / "a.mp4"), "--threads", "100000", "--json", str(tmp_path / "x.json")],
                          "--threads 100000: give a whole number of CPU threads from 1 to 256"),
                         (["tag", str(folder / "a.mp4"), "--model", "fall", "--threads", "100000"],
                          "--threads 100000: give a whole number"),
                         (["tag", str(folder / "a.mp4"), "--model", "gestures"],  # said joints were missing
                          "a.mp4: a video gives 2D poses but model gestures reads 3D skeletons")]:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, (args, err)
    assert sorted(p.name for p in folder.iterdir()) == ["a.mp4", "b.mp4"] and not (tmp_path / "x.json").exists()


def test_a_video_too_slow_to_see_motion_gets_a_warning(tmp_path):
    """--fps 1 is refused, but a 1 fps video was tagged at 1 fps without a word (probe: jump_rope over 72 s)."""
    import cv2

    cap = cv2.VideoCapture(str(REPO / "actionpose" / "assets" / "videos" / "ntu_hug_640x360.mp4"))
    frames = [cap.read()[1] for _ in range(6)]
    out = cv2.VideoWriter(str(tmp_path / "slow.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 1, frames[0].shape[1::-1])
    for f in frames:
        out.write(f)
    out.release()
    assert main(["tag", str(tmp_path / "slow.avi"), "-q", "--json", str(tmp_path / "s.json")]) == 0
    warnings = json.loads((tmp_path / "s.json").read_text())["warnings"]
    assert any("runs at 1 fps: too few frames to see motion" in w for w in warnings), warnings


def test_videos_with_dots_in_their_names_get_their_own_outputs():
    """day1.cam1.mp4 and day1.cam2.mp4 in one folder both wrote r.day1.mp4 (the second over the first, exit 0):
    the per-video label (already a stem) was cut again at its last dot."""
    from actionpose.cli.tag import _suffixed
    from actionpose.data.atomic import output_labels

    names = ["day1.cam1.mp4", "day1.cam2.mp4", "clip.mp4", "clip.avi"]
    label = output_labels(names)
    outs = [_suffixed("out/r.mp4", label[n], True) for n in names]
    assert len(set(outs)) == len(outs), outs
    assert outs[:2] == [str(Path("out/r.day1.cam1.mp4")), str(Path("out/r.day1.cam2.mp4"))]
    assert _suffixed("out/t.png", label["clip.mp4"], True) == str(Path("out/t.clip_mp4.png"))


def test_a_files_duration_and_segments_end_where_its_frames_do(tmp_path):
    """Each kept frame counted 1/15 s: 103 frames at 30 fps (3.433 s) reported 3.467 s, and the last segment ended
    after the video (probe)."""
    import cv2

    video = shared_path("videos", "S001C001P001R001A001_rgb.avi")
    cap = cv2.VideoCapture(str(video))
    n, fps = 0, cap.get(cv2.CAP_PROP_FPS)
    while cap.read()[0]:
        n += 1
    assert main(["tag", str(video), "-q", "--json", str(tmp_path / "a.json")]) == 0
    d = json.loads((tmp_path / "a.json").read_text())
    assert d["duration_s"] == round(n / fps, 3) == 3.433
    ends = [s["end_s"] for p in d["persons"] for s in p["segments"]]
    assert ends and max(ends) <= d["duration_s"]


def test_sequences_named_like_paths_get_their_own_outputs(tmp_path, capsys):
    """A pickle whose sequences are cam1/clip and cam2/clip (frame_dir with a folder, one stem): --timeline and
    --render died with "ValueError: Invalid name 'r.cam1/clip.mp4'" after tagging, and no JSON was written."""
    penn_model_or_skip()
    import numpy as np

    from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset
    from tag_helpers import person_track

    anns = []
    for name in ("cam1/clip", "cam2/clip"):
        kp = person_track([(50, 1.0)], 30.0)[None]
        anns.append(make_annotation(name, 0, kp, np.ones(kp.shape[:-1], np.float32), img_shape=(240, 320), fps=30.0))
    save_dataset(SkeletonDataset(anns, "coco17", ["any"], split={"test": [a["frame_dir"] for a in anns]},
                                 meta={"fps": 30.0}), tmp_path / "cams.pkl")
    out = tmp_path / "out"
    assert main(["tag", str(tmp_path / "cams.pkl"), "-q", "--json", str(out / "a.json"),
                 "--timeline", str(out / "t.png"), "--render", str(out / "r.mp4")]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "r.cam1_clip.mp4", "r.cam2_clip.mp4",
                                                      "t.cam1_clip.png", "t.cam2_clip.png"]
    assert [r["video"] for r in json.loads((out / "a.json").read_text())["results"]] == ["cam1/clip", "cam2/clip"]


def test_live_lines_of_a_file_end_where_its_json_and_csv_do(tmp_path, capsys):
    """`tag clip.avi --live --json l.jsonl --csv c.csv`: the last segment's JSON line and printed line said 3.467 s,
    the CSV of the same run 3.433 s (the file's end; the line was written before the end was applied)."""
    penn_model_or_skip()
    video = shared_path("videos", "S001C001P001R001A001_rgb.avi")
    assert main(["tag", str(video), "--live", "--json", str(tmp_path / "l.jsonl"), "--csv", str(tmp_path / "c.csv")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "l.jsonl").read_text().splitlines()]
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert lines and [(x["track_id"], x["label"], x["end_s"]) for x in lines] == \
        [(int(r["track_id"]), r["label"], float(r["end_s"])) for r in rows]
    assert max(x["end_s"] for x in lines) <= 3.433
    assert "3.47 s" not in capsys.readouterr().out
