import json

import numpy as np
import pytest

from actionpose.cli import main
from actionpose.inference.fall_tagging import is_fall_model, tag_falls
from actionpose.inference.tagger import validate_result_dict
from conftest import shared_path


def test_fall_model_names_are_routed_to_the_detector():
    assert is_fall_model("fall") and is_fall_model("fall_body13") and not is_fall_model("penn")


def test_tag_with_fall_model_reports_the_one_fall_as_a_segment(tmp_path, capsys):
    skel = shared_path("videos", "fall_skeleton_1.npy")  # independent skeleton of fall_video_1.mp4 (18 fps)
    out = tmp_path / "fall.json"
    result = tag_falls(str(skel), "fall", json=str(out), timeline=str(tmp_path / "t.png"), fps=18.0)
    segs = [s for segs in result.persons.values() for s in segs]
    assert len(segs) == 1 and segs[0].label == "fall"
    assert 2.0 <= segs[0].start_s <= 3.4  # he falls at about 2.5-3.3 s (frames 46-62 at 18 fps)
    d = json.loads(out.read_text())
    validate_result_dict(d)
    # the source's rate and length, and the detector's own window (were 18.17 fps, 5.94 s and the tagger's 1.5 s)
    assert d["fps"] == 18.0 and result.duration_s == 6.0 and result.frames == 108
    assert result.config.window_s == pytest.approx(32 / 15, abs=1e-3)
    assert (tmp_path / "t.png").stat().st_size > 0
    assert main(["tag", str(skel), "--model", "fall", "--fps", "18"]) == 0
    assert "fall" in capsys.readouterr().out

def test_tag_model_fall_renders_a_skeleton_source_on_a_blank_canvas(tmp_path, capsys):
    """`--render` of a .npy/.pkl was refused with --model fall while the other models drew the pickle on a blank
    canvas; now the fall model draws it too, each frame, labelled `fall` from the frame the alert was raised."""
    import cv2

    from actionpose.inference import fall_sources

    skel = shared_path("videos", "fall_skeleton_1.npy")  # 108 frames at 18 fps, x up to 780, y up to 616
    labels: list = []
    original = fall_sources.FallOverlay.add

    def spy(self, index, image, persons, new_events):
        out = original(self, index, image, persons, new_events)
        labels.append([self.writer.label_of(p.track_id)[0] for p in persons])
        return out

    fall_sources.FallOverlay.add = spy
    try:
        assert main(["tag", str(skel), "--model", "fall", "--fps", "18", "--render", str(tmp_path / "o.mp4")]) == 0
    finally:
        fall_sources.FallOverlay.add = original
    assert "fall" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(labels) == 108
    assert 780 <= cap.get(cv2.CAP_PROP_FRAME_WIDTH) <= 800 and 616 <= cap.get(cv2.CAP_PROP_FRAME_HEIGHT) <= 632
    first = next(i for i, lab in enumerate(labels) if "fall" in lab)
    assert 4.0 <= first / 18 <= 5.0 and not any("fall" in lab for lab in labels[:first])


def test_tag_model_fall_on_a_pickle_of_several_sequences_gives_one_result_and_overlay_each(tmp_path, capsys):
    """A pickle of several sequences gave one result for all of them, its people renumbered across clips, and
    people named "<clip>/<index>" were dropped (a two-person clip said "0 person(s)"; a fall of person 1 was
    "person 0" in the JSON and "#1" in the overlay). Now one result per sequence, as with the other models,
    each person by their index, and one overlay per sequence."""
    import cv2
    from pathlib import Path

    from actionpose.data.format import load_dataset, save_dataset
    from actionpose.data.importers import convert

    fix = Path(__file__).resolve().parent / "fixtures" / "fall"
    convert("urfd_movenet", fix / "urfd_movenet13_mini.tar.gz", tmp_path / "a.pkl",
            frame_labels_csv=fix / "urfd_falls13_mini.csv")
    names = [a["frame_dir"] for a in load_dataset(tmp_path / "a.pkl").annotations]
    assert main(["tag", str(tmp_path / "a.pkl"), "--model", "fall", "--json", str(tmp_path / "o.json"),
                 "--render", str(tmp_path / "o.mp4")]) == 0
    doc = json.loads((tmp_path / "o.json").read_text())
    assert [r["video"] for r in doc["results"]] == names and len(names) == 2
    assert all([p["track_id"] for p in r["persons"]] == [0] for r in doc["results"])
    for n in names:
        assert cv2.VideoCapture(str(tmp_path / f"o.{n}.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) > 0
    # two people in one clip, the second one falls: listed both, the fall under person 1
    ds = load_dataset(tmp_path / "a.pkl")
    ds.annotations = [a for a in ds.annotations if a["frame_dir"] == "fall-01"]
    ds.split = {}
    a = ds.annotations[0]
    still = np.repeat(a["keypoint"][:, :1], a["keypoint"].shape[1], 1) + np.float32(0.3)
    a["keypoint"] = np.concatenate([still, a["keypoint"]]).astype(np.float32)
    a["keypoint_score"] = np.concatenate([np.repeat(a["keypoint_score"][:, :1], a["keypoint"].shape[1], 1),
                                          a["keypoint_score"]]).astype(np.float32)
    save_dataset(ds, tmp_path / "two.pkl")
    capsys.readouterr()
    assert main(["tag", str(tmp_path / "two.pkl"), "--model", "fall", "--json", str(tmp_path / "t.json")]) == 0
    persons = json.loads((tmp_path / "t.json").read_text())["persons"]
    assert [p["track_id"] for p in persons] == [0, 1] and not persons[0]["segments"] and persons[1]["segments"]


@pytest.mark.slow
def test_tag_model_fall_renders_the_overlay_with_the_alert(tmp_path):
    """`tag VIDEO --model fall --render o.mp4` drew nothing (a note said so); now every frame is written,
    with `fall` and its confidence on the person from the frame the fall was raised (looked at: frame 95
    shows "#0 fall 0.97" on the man on the floor, frame 30 "#0 -" while he walks)."""
    import cv2

    from actionpose.render.overlay import OverlayWriter

    labels: list = []
    original = OverlayWriter.add_frame

    def spy(self, index, image, persons):  # what each frame is labelled with
        labels.append({p.track_id: self.label_of(p.track_id)[0] for p in persons})
        return original(self, index, image, persons)

    out = tmp_path / "o.mp4"
    OverlayWriter.add_frame = spy
    try:
        assert main(["tag", str(shared_path("videos", "fall_video_1.mp4")), "--model", "fall", "--render", str(out)]) == 0
    finally:
        OverlayWriter.add_frame = original
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(labels) == 108
    first = next(i for i, lab in enumerate(labels) if "fall" in lab.values())
    assert 4.0 <= first / 18 <= 5.0 and all("fall" in lab.values() for lab in labels[first:] if lab)


def test_tag_model_fall_on_a_folder_finds_the_falls_and_skips_an_unreadable_file(tmp_path, capsys):
    """A folder with --model fall used to go through the generic tagger (never a fall, 'not_fall' segments);
    one unreadable file threw away every other result."""
    from pathlib import Path

    from actionpose.data.importers import convert

    fix = Path(__file__).resolve().parent / "fixtures" / "fall"
    src = tmp_path / "in"
    src.mkdir()
    convert("urfd_movenet", fix / "urfd_movenet13_mini.tar.gz", src / "a.pkl",
            frame_labels_csv=fix / "urfd_falls13_mini.csv")
    (src / "b.pkl").write_text("not a pickle")
    out = tmp_path / "o.json"
    assert main(["tag", str(src), "--model", "fall", "--json", str(out)]) == 2
    cap = capsys.readouterr()
    # a.pkl's two sequences are tagged one by one (as with the other models), b.pkl is skipped
    assert "skipped b.pkl" in cap.err and "1 of 3 inputs could not be tagged" in cap.err
    doc = json.loads(out.read_text())
    assert sorted(r["video"] for r in doc["results"]) == ["adl-01", "fall-01"]
    labels = {s["label"] for r in doc["results"] for p in r["persons"] for s in p["segments"]}
    assert labels == {"fall"}  # only falls, never a 'not_fall' segment
    assert "FALL" not in cap.out  # not live: no per-event lines


def test_demo_with_the_fall_model_runs_the_calibrated_detector(tmp_path, capsys):
    """`actionpose demo --model fall` tagged the raw classes: "not_fall 0.00 - 2.40 s score 1.00" for everyone."""
    assert main(["demo", "--model", "fall", "-o", str(tmp_path / "d")]) == 0
    doc = json.loads((tmp_path / "d" / "tags.json").read_text())
    from actionpose.inference.fall import FallDetector

    calibrated = FallDetector.from_pretrained("fall").config.threshold  # not the tagger's 0.5 on raw classes
    assert doc["model"] == "fall" and doc["threshold"] == calibrated and not any(p["segments"] for p in doc["persons"])
    assert "not_fall" not in capsys.readouterr().out


def test_the_json_and_the_overlay_number_a_person_alike():
    """The overlay numbered a pickle's people by first appearance, the JSON by their index in the clip: a clip
    whose person 1 was seen before person 0 drew #0 on the person the JSON called 1."""
    from actionpose.inference.fall_sources import FallOverlay, track_number

    ids: dict = {}
    assert [track_number(t, ids) for t in ("clip/1", "clip/0", 7, np.int64(3), "cam-a", "cam-b", "cam-a")] == \
        [1, 0, 7, 3, 0, 1, 0]
    overlay = FallOverlay.__new__(FallOverlay)
    overlay.ids = {}
    assert [overlay.key(t) for t in ("clip/1", "clip/0")] == [1, 0]
