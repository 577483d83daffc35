"""URFD / MD4FD importers: per-frame labels kept, duplicates dropped, folds disjoint by URFD video."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actionpose.data.importers import convert
from actionpose.data.importers.urfd import urfd_fold
from actionpose.errors import ActionposeError

FIX = Path(__file__).parent / "fixtures" / "fall"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def test_urfd_csv_fixture_dedups_and_keeps_frame_labels(tmp_path):
    ds = convert("urfd", FIX / "urfd_falls13_mini.csv", tmp_path / "u.pkl")
    by = {a["frame_dir"]: a for a in ds.annotations}
    assert set(by) == {"fall-01", "fall-13"}
    a13 = by["fall-13"]
    # fall-13 has duplicate (video, frame) rows from a ghost track: one row per frame survives
    assert len(np.unique(a13["frame_index"])) == len(a13["frame_index"]) == a13["total_frames"]
    labels = a13["frame_labels"]
    assert set(np.unique(labels)) <= {0, 1, 2}
    assert (np.diff(labels.astype(int)) >= 0).all(), "deduplicated labels must not zig-zag"
    assert ds.layout == "coco13" and a13["keypoint"].shape[2] == 13
    assert (tmp_path / "u.pkl").exists()


def test_urfd_movenet_fixture_drops_duplicate_first_frame_and_scores_zero_joints():
    ds = convert("urfd_movenet", FIX / "urfd_movenet13_mini.tar.gz", frame_labels_csv=FIX / "urfd_falls13_mini.csv")
    by = {a["frame_dir"]: a for a in ds.annotations}
    assert set(by) == {"fall-01", "adl-01"}
    fall = by["fall-01"]
    zero = np.abs(fall["keypoint"][0]).sum(-1) == 0
    assert (fall["keypoint_score"][0][zero] == 0).all() and (fall["keypoint_score"][0][~zero] == 1).all()
    assert fall["frame_labels"].max() == 2 and fall["frame_labels"][0] == 0
    assert (by["adl-01"]["frame_labels"] == 0).all()


def test_a_dataset_folder_as_distributed_is_read_through_its_archive(tmp_path):
    """``convert -f urfd_movenet DATASET_FOLDER`` (the folder holding the archive, as users pass Penn
    Action's) said "no .npy files found"; the same for pushup."""
    import shutil

    folder = tmp_path / "urfd_movenet13"
    folder.mkdir()
    shutil.copy(FIX / "urfd_movenet13_mini.tar.gz", folder / "urfd_movenet13_npy.tar.gz")
    ds = convert("urfd_movenet", folder, frame_labels_csv=FIX / "urfd_falls13_mini.csv")
    ref = convert("urfd_movenet", FIX / "urfd_movenet13_mini.tar.gz", frame_labels_csv=FIX / "urfd_falls13_mini.csv")
    assert [a["frame_dir"] for a in ds.annotations] == [a["frame_dir"] for a in ref.annotations]
    np.testing.assert_array_equal(ds.annotations[0]["keypoint"], ref.annotations[0]["keypoint"])


def test_folds_are_by_video_and_class_balanced():
    assert urfd_fold("fall-01") == urfd_fold("adl-01") == 0
    assert urfd_fold("fall-07") == 1
    with pytest.raises(ActionposeError):
        urfd_fold("video-7")


def test_bad_csv_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ActionposeError, match="not a URFD pose CSV"):
        convert("urfd", bad)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared not present: real URFD data")
def test_real_urfd_sets_share_folds_per_video():
    a = convert("urfd", SHARED / "urfd_falls13")
    b = convert("urfd_movenet", SHARED / "urfd_movenet13" / "urfd_movenet13_npy.tar.gz")
    assert len(a) == 30 and len(b) == 70
    assert sum(x["label"] for x in b.annotations) == 30
    for k in range(5):
        fa = {n for n in a.split[f"fold{k}"]}
        fb = {n for n in b.split[f"fold{k}"] if n.startswith("fall")}
        assert fa == fb  # the same URFD video is in the same fold in both sources
    # movenet fall sequences get per-frame labels joined from the AlphaPose CSV, with a falling phase
    assert all((x["frame_labels"] == 1).any() for x in b.annotations if x["label"] == 1)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared not present: real MD4FD data")
def test_real_md4fd_groups_do_not_cross_folds():
    ds = convert("md4fd", SHARED / "md4fd")
    assert len(ds) == 201 and sum(a["label"] for a in ds.annotations) == 35
    fold_of = {n: k for k in range(5) for n in ds.split[f"fold{k}"]}
    groups: dict[int, set[int]] = {}
    for a in ds.annotations:
        groups.setdefault(a["group"], set()).add(fold_of[a["frame_dir"]])
    assert all(len(f) == 1 for f in groups.values())


def test_training_windows_follow_the_model_preparation():
    """fall_train's windows are prepared by the model's own PrepConfig, so a model trained with gap fill
    sees its gaps scored in training as it will live: same positions, short gaps scored, splits by fold."""
    from actionpose.inference.fall_prep import PrepConfig
    from actionpose.inference.fall_train import build_window_dataset, sequences_from

    seqs = sequences_from(convert("urfd_movenet", FIX / "urfd_movenet13_mini.tar.gz",
                                  frame_labels_csv=FIX / "urfd_falls13_mini.csv"))
    assert seqs and any(s.is_fall for s in seqs)
    off = build_window_dataset(seqs, stride_ticks=4, augment_copies=0)
    on = build_window_dataset(seqs, cfg=PrepConfig(gap_fill=2), stride_ticks=4, augment_copies=0)
    assert [a["frame_dir"] for a in on.annotations] == [a["frame_dir"] for a in off.annotations]
    kp_on, kp_off = (np.stack([a["keypoint"] for a in d.annotations]) for d in (on, off))
    sc_on, sc_off = (np.stack([a["keypoint_score"] for a in d.annotations]) for d in (on, off))
    assert np.array_equal(kp_on, kp_off)
    assert (sc_on >= sc_off).all() and (sc_on > sc_off).any()  # the MoveNet clips drop joints for a frame
    assert {a["label"] for a in on.annotations} == {0, 1}
    folds = {s.fold for s in seqs}
    for k in folds:  # a sequence's windows are held out together, never trained on in their own fold
        held = set(on.split[f"fold{k}"])
        assert held and not held & set(on.split[f"cv{k}_train"])
