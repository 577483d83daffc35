"""View augmentation, per-axis normalisation and body-frame alignment (the NW-UCLA cross-view recipes)
on a real fixture."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actionpose.data.importers import convert
from actionpose.data.transforms import (AugmentConfig, PreprocessConfig, align_body, normalize_axes, prepare,
                                       view_rotation)
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


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return (q if np.linalg.det(q) > 0 else -q).astype(np.float32)


def test_align_body_undoes_any_camera(ucla_seq):
    """The same performance seen from any camera position gives the same aligned sequence."""
    lay = get_layout("kinect20")
    kp = ucla_seq.copy()
    kp[0, 3, 7] = 0  # a missing hand stays missing
    ref = align_body(kp, lay)
    rng = np.random.default_rng(0)
    for _ in range(5):
        cam = (kp @ _random_rotation(rng).T + rng.normal(size=3).astype(np.float32))
        cam[np.abs(kp).sum(-1) == 0] = 0
        np.testing.assert_allclose(align_body(cam, lay), ref, atol=1e-4)
    assert np.all(ref[0, 3, 7] == 0)
    # the spine runs along y; shoulders and hips along x (in the x-y plane: they need not be square to it)
    ls, rs, lh, rh = (lay.index(j) for j in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    across = (ref[0, :, rs] - ref[0, :, ls] + ref[0, :, rh] - ref[0, :, lh]).mean(0)
    up = ((ref[0, :, ls] + ref[0, :, rs]) - (ref[0, :, lh] + ref[0, :, rh])).mean(0)
    assert abs(across[2]) < 1e-5 and across[0] > 0
    assert abs(up[0]) < 1e-5 and abs(up[2]) < 1e-5 and up[1] > 0
    # bone lengths kept: a rotation, not a distortion
    child, parent = lay.bone_pairs[:, 0], lay.bone_pairs[:, 1]
    length = lambda x: np.linalg.norm(x[..., child, :] - x[..., parent, :], axis=-1)
    ok = (np.abs(kp[..., child, :]).sum(-1) > 0) & (np.abs(kp[..., parent, :]).sum(-1) > 0)
    np.testing.assert_allclose(length(ref)[ok], length(kp)[ok], rtol=1e-4, atol=1e-5)


def test_align_body_in_prepare_and_its_refusals(ucla_seq):
    cfg = PreprocessConfig(layout="kinect20", clip_len=16, norm="axis", max_persons=1, align="body")
    rot = ucla_seq @ _random_rotation(np.random.default_rng(3)).T
    np.testing.assert_allclose(prepare(rot, None, cfg), prepare(ucla_seq, None, cfg), atol=1e-4)
    assert not np.allclose(prepare(rot, None, cfg), prepare(rot, None, PreprocessConfig(
        layout="kinect20", clip_len=16, norm="axis", max_persons=1)), atol=1e-2)
    with pytest.raises(ActionposeError, match="align: 'body' needs 3D"):
        prepare(ucla_seq[..., :2], None, cfg)
    with pytest.raises(ActionposeError, match="layout hand21 lacks"):
        align_body(np.ones((1, 4, 21, 3), np.float32), get_layout("hand21"))
    with pytest.raises(ActionposeError, match="preprocess.align.*none, body"):
        PreprocessConfig(layout="kinect20", align="camera")
    empty = np.zeros((1, 4, 20, 3), np.float32)
    assert align_body(empty, get_layout("kinect20")) is empty  # nothing to align to: unchanged


def test_preprocess_config_from_meta_defaults_for_older_models():
    old = {"layout": "kinect20", "clip_len": 32, "classes": ["a"]}  # a model exported before num_clips/align
    cfg = PreprocessConfig.from_meta(old)
    assert (cfg.num_clips, cfg.stream, cfg.norm, cfg.max_persons, cfg.align) == (1, "joint", "sequence", 2, "none")
    new = PreprocessConfig.from_meta({**old, "align": "body", "norm": "axis", "num_clips": 5}, num_clips=2)
    assert (new.align, new.norm, new.num_clips) == ("body", "axis", 2)
