"""Exercise segments in the tag output carry a repetition count (RepCounter over the segment)."""
import json

import numpy as np
import pytest

from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset
from actionpose.data.importers import convert
from actionpose.inference.tagger import tag_video, validate_result_dict
from conftest import FIXTURES


def test_three_squats_give_one_squat_segment_with_three_reps(tmp_path):
    try:
        from actionpose.inference.predictor import resolve_model

        resolve_model("penn")
    except Exception as e:  # pragma: no cover - shipped model missing from a partial checkout
        pytest.skip(f"shipped penn model not available: {e}")
    squat = {a["frame_dir"]: a for a in convert("penn", FIXTURES / "datasets" / "penn").annotations}["1666"]
    kp = np.concatenate([squat["keypoint"]] * 3, axis=1)  # the same real squat, three times in a row
    sc = np.concatenate([squat["keypoint_score"]] * 3, axis=1)
    ds = SkeletonDataset([make_annotation("three_squats", 0, kp, sc, img_shape=squat["img_shape"], fps=30.0)],
                         "penn13", ["squat"], {})
    pkl = save_dataset(ds, tmp_path / "squats.pkl")
    out = tmp_path / "tags.json"
    result = tag_video(pkl, "penn", json=out, csv=tmp_path / "tags.csv")
    segs = [s for segs in result.persons.values() for s in segs]
    assert [s.label for s in segs] == ["squat"]
    assert segs[0].reps == 3
    d = json.loads(out.read_text())
    validate_result_dict(d)
    assert d["persons"][0]["segments"][0]["reps"] == 3
    assert (tmp_path / "tags.csv").read_text().splitlines()[0].endswith(",reps")
