"""Timeline PNG and overlay video: they are written atomically and show what the result says."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from actionpose.errors import ActionposeError
from actionpose.inference.segments import Segment
from actionpose.inference.tagger import PersonPose, TagResult
from actionpose.render import class_color
from actionpose.render.overlay import OverlayWriter, track_color
from actionpose.render.timeline import plot_timeline

CLASSES = ["squat", "pushup", "situp"]


def result() -> TagResult:
    return TagResult("v.mp4", 30.0, "m", CLASSES, duration_s=20.0, frames=600,
                     persons={0: [Segment("squat", 1, 9, 0.9), Segment("pushup", 11, 19, 0.8)],
                              5: [Segment("situp", 4, 16, 0.7)]})


def has_colour(img_bgr: np.ndarray, rgb01: tuple, tol: int = 6) -> bool:
    want = np.array([rgb01[2], rgb01[1], rgb01[0]]) * 255
    return bool((np.abs(img_bgr.astype(int) - want).max(-1) <= tol).sum() > 200)


def test_timeline_draws_one_lane_per_person_with_class_colours(tmp_path):
    out = plot_timeline(result(), tmp_path / "t.png")
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] > 800
    for k in range(3):  # every class that has a segment shows up in its colour
        assert has_colour(img, class_color(k, 3)), CLASSES[k]
    # an empty result still gives a valid picture
    empty = TagResult("e.mp4", 30.0, "m", CLASSES, duration_s=5.0)
    assert cv2.imread(str(plot_timeline(empty, tmp_path / "e.png"))) is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_timeline_unused_class_colour_absent(tmp_path):
    r = result()
    r.persons = {0: [Segment("squat", 1, 9, 0.9)]}
    img = cv2.imread(str(plot_timeline(r, tmp_path / "t.png")))
    assert has_colour(img, class_color(0, 3)) and not has_colour(img, class_color(2, 3))


def test_overlay_video_frames_and_labels(tmp_path):
    w = OverlayWriter(tmp_path / "o.mp4", 10.0, "body13", CLASSES, canvas=(240, 320))
    w.label_of = lambda tid: ("squat", 0.9)
    kp = np.stack([np.linspace(100, 200, 13), np.linspace(40, 200, 13)], -1)
    for i in range(12):
        w.add_frame(i, None, [PersonPose(3, kp, np.ones(13))])
        assert not (tmp_path / "o.mp4").exists()  # only appears when complete
    w.close()
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    n, frame = 0, None
    while True:
        ok, f = cap.read()
        if not ok:
            break
        n, frame = n + 1, f
    assert n == 12 and frame.shape[:2] == (240, 320)
    col = np.array(track_color(3))  # the skeleton is drawn in the track's colour (BGR)
    assert (np.abs(frame.astype(int) - col).max(-1) <= 40).sum() > 100
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    plain = tmp_path / "plain.txt"  # the mode a plain write gives (the temporary file was 0600)
    plain.write_text("")
    assert (tmp_path / "o.mp4").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_overlay_discarded_on_failure_and_bad_suffix(tmp_path):
    w = OverlayWriter(tmp_path / "o.mp4", 10.0, "body13", CLASSES)
    w.add_frame(0, np.zeros((100, 100, 3), np.uint8), [])
    w.close(keep=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ActionposeError, match="must end in"):
        OverlayWriter(tmp_path / "o.txt", 10.0, "body13", CLASSES)


def test_final_overlay_labels_are_the_results_segments():
    """Drawn while tagging, a label showed only once its window was scored: a short clip's overlay said '-'
    throughout while its JSON tagged a segment. A finished input is drawn again with the final segments."""
    from actionpose.inference.tagger import render_final, segment_label

    r = result()
    assert segment_label(r, 0, 0.5) == ("background", 0.0) and segment_label(r, 0, 1.0) == ("squat", 0.9)
    assert segment_label(r, 0, 9.0) == ("background", 0.0) and segment_label(r, 5, 15.99) == ("situp", 0.7)

    class Seen:  # an overlay that records the label of every person at every frame
        def __init__(self):
            self.frames, self.closed = [], None

        def add_frame(self, index, image, persons):
            self.frames.append((index, [(p.track_id, self.label_of(p.track_id)) for p in persons]))

        def close(self, keep=True):
            self.closed = keep

    kp = np.zeros((13, 2))
    poses = {i: [PersonPose(0, kp, None), PersonPose(5, kp, None)] for i in range(0, 600, 30)}
    ov = Seen()
    render_final(ov, ((i, None) for i in range(600)), poses, r)
    assert ov.closed is True and len(ov.frames) == 571  # up to the last frame tagged, not the rest
    for index, labels in ov.frames:
        for tid, lab in labels:
            assert lab == segment_label(r, tid, index / 30.0)
    assert dict(ov.frames[60][1]) == {0: ("squat", 0.9), 5: ("background", 0.0)}  # frame 60: 2 s


def test_tagging_a_file_draws_the_final_labels_from_its_first_frame(tmp_path):
    from actionpose.inference.tagger import tag_video

    video = __import__("pathlib").Path(__file__).resolve().parents[1] / "actionpose" / "assets" / "videos" / "ntu_hug_640x360.mp4"
    res = tag_video(video, "penn", render=tmp_path / "o.mp4", json=tmp_path / "t.json")
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == res.frames


def test_overlay_mp4_is_h264_that_browsers_play(tmp_path):
    """OpenCV's mp4v (MPEG-4 Part 2) did not play in browsers; the overlay is yuv420p H.264 now, with its
    index at the front, and an odd-sized input is padded to the even size H.264 needs."""
    av = pytest.importorskip("av", reason="PyAV is a dependency; without it overlays fall back to mp4v")
    from actionpose.render.video_file import VideoFile

    w = OverlayWriter(tmp_path / "o.mp4", 25.0, "body13", CLASSES)
    for i in range(30):
        w.add_frame(i, np.full((241, 321, 3), i * 8, np.uint8), [])
    w.close()
    with av.open(str(tmp_path / "o.mp4")) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (s.codec_context.width, s.codec_context.height) == (320, 240)  # the overlay's own even size
        assert sum(1 for _ in c.decode(video=0)) == 30
    data = (tmp_path / "o.mp4").read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # +faststart: the index first, so a browser streams it
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))  # and our own reader still reads it
    assert cap.isOpened() and cap.read()[0]

    odd = VideoFile(tmp_path / "odd.mkv", 10.0, (33, 21))
    assert odd.codec == "h264" and odd.size == (34, 22)
    for _ in range(3):
        odd.write(np.zeros((21, 33, 3), np.uint8))
    odd.close()
    with av.open(str(tmp_path / "odd.mkv")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 3


def test_video_without_pyav_falls_back_to_mp4v_with_a_note(tmp_path, monkeypatch, capsys):
    from actionpose.render import video_file

    monkeypatch.setattr(video_file, "_h264_available", lambda: False)
    monkeypatch.setattr(video_file, "_noted", False)
    v = video_file.VideoFile(tmp_path / "f.mp4", 10.0, (64, 48))
    assert v.codec == "mpeg4"
    v.write(np.zeros((48, 64, 3), np.uint8))
    v.close()
    assert "pip install av" in capsys.readouterr().err
    assert video_file.VideoFile(tmp_path / "f.avi", 10.0, (64, 48)).codec == "mjpeg"
