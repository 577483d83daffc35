"""The 3D gestures model tags 3D skeleton pickles; a 2D model refuses them with one clear line."""
import subprocess
import sys

import pytest

from actionpose.data.importers import convert
from actionpose.data.format import SkeletonDataset, save_dataset
from actionpose.inference.tagger import tag_video
from conftest import FIXTURES


@pytest.fixture
def utd_swipe(tmp_path):
    try:
        from actionpose.inference.predictor import resolve_model

        resolve_model("gestures")
    except Exception as e:  # pragma: no cover - shipped model missing
        pytest.skip(f"shipped gestures model not available: {e}")
    ds = convert("utd", FIXTURES / "datasets" / "utd")
    ann = {a["frame_dir"]: a for a in ds.annotations}["a1_s1_t1"]  # right arm swipe to the left, real Kinect data
    return save_dataset(SkeletonDataset([ann], ds.layout, ds.classes, {}), tmp_path / "swipe.pkl")


def test_gestures_model_tags_a_real_3d_swipe(utd_swipe, tmp_path):
    result = tag_video(utd_swipe, "gestures", json=tmp_path / "t.json")
    segs = [s for segs in result.persons.values() for s in segs]
    assert [s.label for s in segs] == ["swipe_left"] and segs[0].score > 0.5


def test_2d_model_refuses_3d_input(utd_swipe):
    r = subprocess.run([sys.executable, "-m", "actionpose", "tag", str(utd_swipe), "--model", "penn"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == (
        f"error: {utd_swipe}: holds 3D skeletons (x, y, z) but the model reads 2D keypoints (x, y); use a model "
        "trained on 3D keypoints")


def test_a_2d_model_refuses_a_3d_pickle_of_many_sequences_in_one_line(utd_swipe, tmp_path, capsys):
    """Each sequence was skipped in a line of its own ("warning: skipped a1_s1_t1: model expects 2D ..."), then
    "error: 3 of 3 inputs could not be tagged": one line per sample of a whole UTD pickle. And the other way
    round: a 2D pickle under the 3D gestures model."""
    from actionpose.cli import main

    many = convert("utd", FIXTURES / "datasets" / "utd", tmp_path / "utd.pkl")
    assert len(many.annotations) == 3
    assert main(["tag", str(tmp_path / "utd.pkl"), "--model", "penn", "--json", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path / 'utd.pkl'}: holds 3D skeletons (x, y, z) but the model reads 2D keypoints "
                   "(x, y); use a model trained on 3D keypoints\n")
    assert not (tmp_path / "o.json").exists()
    convert("penn", FIXTURES / "datasets" / "penn", tmp_path / "penn.pkl")
    assert main(["tag", str(tmp_path / "penn.pkl"), "--model", "gestures"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "penn.pkl: holds 2D skeletons (x, y) but the model reads 3D keypoints" in err


def test_gestures2d_model_tags_the_projected_swipe(utd_swipe, tmp_path):
    """The 2D body13 gestures model (for video frontends) on the same real swipe, projected to 2D."""
    from actionpose.data.format import load_dataset
    from actionpose.data.project import project_dataset

    flat = save_dataset(project_dataset(load_dataset(utd_swipe)), tmp_path / "swipe2d.pkl")
    result = tag_video(flat, "gestures2d")
    assert [s.label for segs in result.persons.values() for s in segs] == ["swipe_left"]


def test_render_of_a_3d_pickle_is_refused_up_front(utd_swipe, tmp_path, capsys):
    """--render with a 3D model died after tagging with cv2's "Can't parse 'pt1'. Expected sequence length 2, got 3"
    (a traceback, exit 1, no JSON): 3D skeletons are in metres and have no image to be drawn on."""
    from actionpose.cli import main
    from actionpose.errors import ActionposeError

    out = tmp_path / "out"
    assert main(["tag", str(utd_swipe), "--model", "gestures", "--json", str(out / "t.json"),
                 "--render", str(out / "r.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --render {out / 'r.mp4'}: an overlay draws 2D image keypoints") and err.count("\n") == 1
    assert not out.exists()
    with pytest.raises(ActionposeError, match="3D skeletons"):  # the library refuses it too, before tagging
        tag_video(utd_swipe, "gestures", render=tmp_path / "r.mp4")
