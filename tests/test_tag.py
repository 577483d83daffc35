"""Tagging engine: windows per tracked person, batched scoring, JSON/CSV schema, bad inputs."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from actionpose.errors import ActionposeError
from actionpose.inference.segments import SegmentConfig
from actionpose.inference.tagger import (PersonPose, StreamTagger, TagResult, pickle_videos, tag_frames,
                                         validate_result_dict, write_csv, write_json)
from tag_helpers import StandInPredictor, person_track, two_person_pickle


def tag_pickle(path, **kw):
    pred = StandInPredictor()
    [(name, layout, fps, _, frames, cut)] = list(pickle_videos(path))
    return tag_frames(frames, pred, layout, fps, video=name, model_name="stand-in", **kw), pred


def test_two_people_segments_and_boundaries(tmp_path):
    two_person_pickle(tmp_path / "v.pkl")
    res, pred = tag_pickle(tmp_path / "v.pkl")
    got = {tid: [(s.label, s.start_s, s.end_s) for s in segs] for tid, segs in res.persons.items()}
    assert [x[0] for x in got[0]] == ["left", "right"]
    assert [x[0] for x in got[1]] == ["right"]
    (_, a0, a1), (_, b0, b1) = got[0]
    # the stand-in needs a window fully inside an action, so inner boundaries move by up to window/2
    assert a0 == pytest.approx(0.0, abs=0.1) and a1 == pytest.approx(3.0, abs=1.0)
    assert b0 == pytest.approx(5.0, abs=1.0) and b1 == pytest.approx(8.0, abs=0.1)
    (_, c0, c1), = got[1]
    assert c0 == pytest.approx(2.0, abs=0.1) and c1 == pytest.approx(6.0, abs=0.1)
    # windows of both persons that become ready in the same frame share one predictor call
    assert max(pred.calls) == 2
    assert res.duration_s == pytest.approx(8.0) and res.frames == 240 and res.complete


def test_json_and_csv_schema(tmp_path):
    two_person_pickle(tmp_path / "v.pkl")
    res, _ = tag_pickle(tmp_path / "v.pkl")
    write_json(res, tmp_path / "out.json")
    write_csv(res, tmp_path / "out.csv")
    d = json.loads((tmp_path / "out.json").read_text())
    validate_result_dict(d)
    assert d["video"] == "two_people" and d["fps"] == 30.0 and d["model"] == "stand-in"
    assert [p["track_id"] for p in d["persons"]] == [0, 1]
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    from_json = [(p["track_id"], s["label"], s["start_s"], s["end_s"]) for p in d["persons"] for s in p["segments"]]
    assert [(int(r["track_id"]), r["label"], float(r["start_s"]), float(r["end_s"])) for r in rows] == from_json
    # the validator rejects broken documents, naming the field
    bad = json.loads(json.dumps(d))
    bad["persons"][0]["segments"][0]["end_s"] = -1
    with pytest.raises(ActionposeError, match=r"persons\[0\].segments\[0\]"):
        validate_result_dict(bad)
    del bad["fps"]
    with pytest.raises(ActionposeError, match="fps"):
        validate_result_dict(bad)


def test_no_person_gives_empty_valid_result():
    res = tag_frames(((i, []) for i in range(90)), StandInPredictor(), "coco17", 30.0, video="empty",
                     model_name="m")
    assert res.persons == {} and res.frames == 90
    validate_result_dict(res.to_dict())
    assert "no person detected" in res.summary()
    res.warnings = [f"person {i} visible for only 0.20 s (< 0.5 s); not tagged" for i in (8, 2, 10)]
    summary = res.summary()  # seen, but never long enough; listed in person order
    assert "no person tagged: 3 track(s), each too short" in summary
    assert [line.split()[2] for line in summary.splitlines() if "warning:" in line] == ["2", "8", "10"]


def test_summary_lists_every_kind_of_person_warning_in_person_order():
    """Only "person N visible for only ..." was sorted: "person 6: 1 window(s) ..." and "... than person 5's
    track" stayed in the order tracks closed (probe: 6, 14, 11, 3, 17, ... on a 60-s crowd video)."""
    res = tag_frames(((i, []) for i in range(3)), StandInPredictor(), "coco17", 30.0, video="v", model_name="m")
    res.warnings = ["person 14: 1 window(s) showed under 50% of the body's joints; scored as background",
                    "window 1.5 s is longer than person 5's track (1.00 s); scored it as one shorter window",
                    "the file names no frame rate",
                    "person 3 visible for only 0.20 s (< 0.5 s); not tagged",
                    "person 5: 1 window(s) showed under 50% of the body's joints; scored as background"]
    lines = [line for line in res.summary().splitlines() if "warning:" in line]
    people = [int(line.split("person ")[1].split()[0].rstrip(":'s")) for line in lines if "person " in line]
    assert people == [3, 5, 5, 14], lines
    assert lines[1].endswith("than person 5's track (1.00 s); scored it as one shorter window")  # kept in its order
    assert lines[-1].endswith("the file names no frame rate")


def test_window_longer_than_video_scores_one_window_with_warning():
    kp = person_track([(50, 1.2)], 30.0)
    frames = ((i, [PersonPose(7, kp[i], np.ones(17))]) for i in range(len(kp)))
    res = tag_frames(frames, StandInPredictor(), "coco17", 30.0, video="short", model_name="m",
                     config=SegmentConfig(window_s=3.0, min_duration_s=0.5))
    assert [s.label for s in res.persons[7]] == ["left"]
    assert any("longer than" in w for w in res.warnings)


def test_gaps_without_person_end_segments_and_memory_is_bounded():
    fps = 30.0
    kp = person_track([(50, 60)], fps)  # one minute
    pred = StandInPredictor()
    tagger = StreamTagger(pred, "coco17", fps, SegmentConfig())
    closed = []
    for i in range(len(kp)):
        visible = not (20 * fps <= i < 30 * fps)  # person leaves for 10 s
        closed += tagger.push(i, [PersonPose(1, kp[i], np.ones(17))] if visible else [])
        for tr in tagger.tracks.values():
            assert len(tr.frames) <= tagger.win_f and len(tr.segmenter._raw) <= tagger.cfg.smooth
    closed += tagger.finish()
    segs = [s for _, s in closed]
    assert [s.label for s in segs] == ["left", "left"]
    assert segs[0].end_s == pytest.approx(20.0, abs=1.0) and segs[1].start_s == pytest.approx(30.0, abs=1.0)


def test_unmappable_layout_is_a_clear_error():
    with pytest.raises(ActionposeError, match="cannot be mapped from the pose layout 'mediapipe11'"):
        StreamTagger(StandInPredictor(), "mediapipe11", 30.0)


def test_unmappable_layout_names_only_the_joints_really_missing():
    # coco17 has no 'head' joint but stands in for it with 'nose' (an alias): the refusal listed 'head' as
    # missing too, while every other mapping error (layouts, datasets, eval) honours aliases
    from actionpose.skeleton import Layout, register_layout
    register_layout(Layout("probe_tag_neck_rig", ("head", "neck", "left_hip", "right_hip"),
                           (("head", "neck"), ("neck", "left_hip"), ("neck", "right_hip")), "neck"), overwrite=True)
    pred = StandInPredictor()
    pred.layout = "probe_tag_neck_rig"
    with pytest.raises(ActionposeError, match=r"from the pose layout 'coco17': no joint for neck$"):
        StreamTagger(pred, "coco17", 30.0)


def test_bad_fps_and_source_errors(tmp_path):
    with pytest.raises(ActionposeError, match="frame rate"):
        StreamTagger(StandInPredictor(), "coco17", 0)
    from actionpose.inference.tagger import expand_source
    with pytest.raises(ActionposeError, match="no such file"):
        expand_source(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ActionposeError, match="folder has no videos"):
        expand_source(tmp_path / "empty")


def test_interrupted_stream_keeps_partial_result():
    kp = person_track([(50, 10)], 30.0)

    def frames():
        for i in range(len(kp)):
            if i == 150:
                raise KeyboardInterrupt
            yield i, [PersonPose(0, kp[i], np.ones(17))]

    got = []
    res = tag_frames(frames(), StandInPredictor(), "coco17", 30.0, video="live", model_name="m",
                     on_segment=lambda tid, s: got.append(s))
    assert not res.complete and [s.label for s in res.persons[0]] == ["left"]
    assert res.persons[0][0].end_s == pytest.approx(5.0, abs=0.1) and got == res.persons[0]


def test_a_window_showing_under_half_the_body_is_background():
    """A pair of feet (the rest of the person out of frame, scores near 0) was tagged situp at 0.9+; the
    same track with the whole body seen is still tagged."""
    kp = person_track([(50, 4.0)], 30.0)
    feet = np.zeros(17, np.float32)
    feet[11:] = 0.9  # hips, knees, ankles seen; head, shoulders and arms not
    for scores, tagged in ((np.ones(17, np.float32), True), (feet, False)):
        frames = ((i, [PersonPose(3, kp[i], scores)]) for i in range(len(kp)))
        res = tag_frames(frames, StandInPredictor(), "coco17", 30.0, video="v", model_name="m")
        assert bool(res.persons.get(3)) == tagged
        assert any("under 50% of the body" in w for w in res.warnings) != tagged


def test_no_segment_starts_after_its_person_left_or_is_shorter_than_min_duration():
    """A person who leaves the view: windows after their last frame (filled from the frames before) made a
    0.033 s 'right' segment starting 0.75 s after the person was last seen, past --min-duration's filter."""
    bad = []
    for tail in (0.1, 0.3, 0.5, 0.8):
        for window, stride in ((1.0, 0.25), (2.0, 0.5), (1.0, 0.5)):
            kp = person_track([(50, 3), (150, tail)], 30.0)
            frames = ((i, [PersonPose(1, kp[i], np.ones(17))] if i < len(kp) else []) for i in range(len(kp) + 90))
            res = tag_frames(frames, StandInPredictor(), "coco17", 30.0, video="v", model_name="m",
                             config=SegmentConfig(window_s=window, stride_s=stride, min_duration_s=0.3, threshold=0.2))
            last = len(kp) / 30.0
            assert res.persons[1] and res.persons[1][0].label == "left"
            bad += [(tail, window, stride, s.label, s.start_s, s.end_s) for s in res.persons[1]
                    if s.end_s - s.start_s < 0.3 - 1e-9 or s.end_s > last + 1e-9]
    assert bad == []


def test_a_person_without_segments_is_printed_with_their_best_window():
    """The demo printed "no action above threshold 0.5" twice and nothing else: how close the nearest call
    came is now said (a single window over the threshold is not yet a segment)."""
    kp = person_track([(250, 3)], 30.0)  # the head at x 250: the stand-in scores every class 0.1
    frames = ((i, [PersonPose(4, kp[i], np.ones(17))]) for i in range(len(kp)))
    res = tag_frames(frames, StandInPredictor(), "coco17", 30.0, video="v", model_name="m")
    assert res.persons[4] == [] and res.best[4] == ("left", pytest.approx(0.1))
    assert "person 4: no action above threshold 0.5 for 1 s or more (best single window: left 0.10)" in res.summary()


def test_a_person_no_window_could_score_gets_no_made_up_best_guess():
    """Only feet seen (every window unscorable): the summary named class 0 at 0.00 ("best single window:
    baseball_pitch 0.00") from the all-zero stand-in probabilities; it says no window could be scored now."""
    kp = person_track([(50, 3)], 30.0)
    feet = np.zeros(17, np.float32)
    feet[11:] = 0.9
    frames = ((i, [PersonPose(2, kp[i], feet)]) for i in range(len(kp)))
    res = tag_frames(frames, StandInPredictor(), "coco17", 30.0, video="v", model_name="m")
    assert res.persons[2] == [] and 2 not in res.best
    assert "person 2: no action above threshold 0.5 for 1 s or more (no window showed enough of the person to be " \
           "scored)" in res.summary()


def test_a_pickle_recorded_faster_than_15_fps_is_processed_from_the_frames_a_video_would_be():
    """`tag poses.pkl` processed a 30 fps extraction at 30 fps where `tag VIDEO` processes 15: the same clip got
    different scores (0.86/0.87 against 0.81/0.91). The pickle now keeps the frames FrameReader keeps."""
    from actionpose.inference.tagger import resample_indices

    assert resample_indices(8, 30.0, 15.0) == [0, 2, 4, 6]
    assert resample_indices(10, 25.0, 15.0) == [0, 2, 4, 5, 7, 9]  # every 5/3 frames, as the video reader
    assert resample_indices(4, 15.0, 15.0) == [0, 1, 2, 3]


def test_tag_of_a_fast_pickle_reports_the_processed_rate_and_frames(tmp_path):
    from actionpose.inference.tagger import VIDEO_FPS

    two_person_pickle(tmp_path / "v.pkl")  # 8 s at 30 fps
    [(_, _, fps, _, frames, _)] = list(pickle_videos(tmp_path / "v.pkl", process_fps=VIDEO_FPS))
    assert fps == 15.0 and len(list(frames)) == 120
    [(_, _, fps, _, frames, _)] = list(pickle_videos(tmp_path / "v.pkl"))  # the engine's own call: untouched
    assert fps == 30.0 and len(list(frames)) == 240
