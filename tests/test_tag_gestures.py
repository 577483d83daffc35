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
        "error: model expects 2D keypoints but the input has 3D (x, y, z); use a model trained on 3D keypoints")


def test_gestures2d_model_tags_the_projected_swipe(utd_swipe, tmp_path):
    """The 2D body13 gestures model (for video frontends) on the same real swipe, projected to 2D."""
    from actionpose.data.format import load_dataset
    from actionpose.data.project import project_dataset

    flat = save_dataset(project_dataset(load_dataset(utd_swipe)), tmp_path / "swipe2d.pkl")
    result = tag_video(flat, "gestures2d")
    assert [s.label for segs in result.persons.values() for s in segs] == ["swipe_left"]
