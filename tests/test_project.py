import numpy as np
import pytest

from actionpose.cli import main
from actionpose.data.format import load_dataset
from actionpose.data.importers import convert
from actionpose.data.project import project_dataset
from actionpose.errors import ActionposeError
from conftest import FIXTURES


def test_utd_projection_to_body13_keeps_image_orientation(tmp_path):
    ds = convert("utd", FIXTURES / "datasets" / "utd")
    out = project_dataset(ds, "body13")
    assert out.layout == "body13" and out.split == ds.split and out.classes == ds.classes
    a = out.annotations[0]
    assert a["keypoint"].shape[-2:] == (13, 2) and a["keypoint_score"].shape == a["keypoint"].shape[:3]
    # image orientation: y grows downwards, so the head is above (smaller y than) the ankles
    assert (a["keypoint"][0, :, 0, 1] < a["keypoint"][0, :, 11, 1]).all()
    # pinhole: x/z of the original left shoulder
    src = ds.annotations[0]["keypoint"][0, 0, 4]
    np.testing.assert_allclose(a["keypoint"][0, 0, 1], [src[0] / src[2], -src[1] / src[2]], rtol=1e-5)
    assert main(["datasets", "project", str(convert("utd", FIXTURES / "datasets" / "utd", tmp_path / "u.pkl")
                                             and tmp_path / "u.pkl"), "-o", str(tmp_path / "u2d.pkl")]) == 0
    assert load_dataset(tmp_path / "u2d.pkl").layout == "body13"


def test_projection_refuses_2d_input():
    with pytest.raises(ActionposeError, match="projection needs 3D"):
        project_dataset(convert("penn", FIXTURES / "datasets" / "penn"))
