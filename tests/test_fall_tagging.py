import json

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
    assert (tmp_path / "t.png").stat().st_size > 0
    assert main(["tag", str(skel), "--model", "fall", "--fps", "18"]) == 0
    assert "fall" in capsys.readouterr().out
