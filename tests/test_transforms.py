"""View augmentation and per-axis normalisation (the NW-UCLA cross-view recipe) on a real fixture."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actionpose.data.importers import convert
from actionpose.data.transforms import AugmentConfig, PreprocessConfig, normalize_axes, prepare, view_rotation
from actionpose.errors import ActionposeError
from actionpose.skeleton import get_layout

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"


@pytest.fixture(scope="module")
def ucla_seq(tmp_path_factory):
    out = tmp_path_factory.mktemp("ucla") / "ucla.pkl"
    ds = convert("nwucla", FIXTURES / "nwucla", out)
    return ds.annotations[0]["keypoint"].astype(np.float32)  # [1, T, 20, 3] metres


def test_normalize_axes_fills_the_box_per_axis(ucla_seq):
    kp = ucla_seq.copy()
    kp[0, 0, 5] = 0  # a missing joint stays missing
    out = normalize_axes(kp)
    present = np.abs(kp).sum(-1) > 0
    pts = out[present]
    np.testing.assert_allclose(pts.min(0), -1, atol=1e-5)
    np.testing.assert_allclose(pts.max(0), 1, atol=1e-5)
    assert np.all(out[0, 0, 5] == 0)
    # invariant to a per-axis affine change (e.g. depth measured in other units, camera moved)
    moved = kp * np.array([1.0, 2.0, 0.5], np.float32) + np.array([3.0, -1.0, 2.0], np.float32)
    moved[~present] = 0
    np.testing.assert_allclose(normalize_axes(moved)[present], pts, atol=1e-4)


def test_view_rotation_is_rigid_and_random(ucla_seq):
    rng = np.random.default_rng(0)
    a = view_rotation(ucla_seq, np.pi / 3, rng)
    b = view_rotation(ucla_seq, np.pi / 3, rng)
    assert not np.allclose(a, b)
    lay = get_layout("kinect20")
    child, parent = lay.bone_pairs[:, 0], lay.bone_pairs[:, 1]
    length = lambda x: np.linalg.norm(x[..., child, :] - x[..., parent, :], axis=-1)
    np.testing.assert_allclose(length(a), length(ucla_seq), rtol=1e-4, atol=1e-5)
    assert view_rotation(ucla_seq, 0.0, rng) is ucla_seq
    two_d = ucla_seq[..., :2].copy()
    assert view_rotation(two_d, 1.0, rng) is two_d


def test_prepare_axis_norm_is_deterministic_without_rng(ucla_seq):
    cfg = PreprocessConfig(layout="kinect20", clip_len=16, num_clips=2, norm="axis", max_persons=1)
    x1, x2 = prepare(ucla_seq, None, cfg), prepare(ucla_seq, None, cfg)
    assert x1.shape == (2, 1, 16, 20, 3)
    np.testing.assert_array_equal(x1, x2)
    assert np.abs(x1).max() <= 1 + 1e-5
    aug = AugmentConfig(view_rotate=1.0)
    t1 = prepare(ucla_seq, None, cfg, aug, np.random.default_rng(1))
    t2 = prepare(ucla_seq, None, cfg, aug, np.random.default_rng(2))
    assert not np.allclose(t1, t2) and np.abs(t1).max() <= 1 + 1e-5


def test_unknown_norm_names_allowed_values():
    with pytest.raises(ActionposeError, match="preprocess.norm.*sequence, axis, none"):
        PreprocessConfig(layout="kinect20", norm="minmax")
