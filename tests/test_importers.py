import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actionpose.cli import main
from actionpose.data.format import load_dataset
from actionpose.data.importers import IMPORTERS, convert
from actionpose.errors import ActionposeError
from actionpose.skeleton import get_layout
from conftest import FIXTURES, shared_path

D = FIXTURES / "datasets"


def test_all_required_formats_registered():
    assert {"pyskl", "ntu", "penn", "nwucla", "utd", "coco", "csv"} <= set(IMPORTERS)


def test_penn_fixture_real_samples(tmp_path):
    ds = convert("penn", D / "penn", tmp_path / "p.pkl")
    assert ds.layout == "penn13" and len(ds.classes) == 15
    assert sorted(ds.split["train"]) == ["1354", "1666"] and sorted(ds.split["test"]) == ["1348", "1671"]
    a = {x["frame_dir"]: x for x in ds.annotations}["1666"]
    assert ds.classes[a["label"]] == "squat"
    assert a["keypoint"].shape[::2] == (1, 13) and a["keypoint"].shape[3] == 2
    assert a["keypoint_score"].shape == a["keypoint"].shape[:3] and set(np.unique(a["keypoint_score"])) <= {0.0, 0.5, 1.0}
    assert a["img_shape"][0] > 0 and 0 < a["keypoint"][..., 0].max() <= a["img_shape"][1] * 1.2
    # Penn's unannotated joints sit at the image corner (1, 1): stored as the canonical missing joint, (0, 0)
    # with score 0 (kept at (1, 1) they counted as present in the sequence's centring and scaling)
    gone = np.concatenate([x["keypoint"][x["keypoint_score"] == 0] for x in ds.annotations])
    assert len(gone) == 638 and not gone.any()  # the fixture's .mat files hold 638 at (1, 1)


def test_nwucla_fixture_cross_view(tmp_path):
    ds = convert("nwucla", D / "nwucla")
    assert ds.layout == "kinect20" and len(ds.classes) == 10
    assert ds.split == {"train": ["a01_s01_e00_v01", "a06_s02_e01_v02"], "test": ["a01_s01_e00_v03"],
                        "train_v1": ["a01_s01_e00_v01"], "train_v2": ["a06_s02_e01_v02"]}
    a = ds.annotations[0]
    assert a["keypoint"].shape[2:] == (20, 3) and "keypoint_score" not in a and a["label"] == 0
    assert ds.classes[ds.annotations[2]["label"]] == "stand_up"


def test_utd_fixture_cross_subject():
    ds = convert("utd", D / "utd")
    assert ds.layout == "kinect20_utd" and len(ds.classes) == 27
    assert ds.split == {"train": ["a1_s1_t1", "a27_s3_t2"], "test": ["a1_s2_t1"]}
    a = ds.annotations[0]
    assert a["keypoint"].shape[0] == 1 and a["keypoint"].shape[2:] == (20, 3)
    # head is above the hips (y up, metres)
    assert (a["keypoint"][0, :, 0, 1] > a["keypoint"][0, :, 3, 1]).all()


def test_ntu_skeleton_bodies_and_splits():
    ds = convert("ntu", D / "ntu")
    assert ds.layout == "ntu25" and len(ds.classes) == 60
    by = {a["frame_dir"]: a for a in ds.annotations}
    two = by["S001C002P001R001A043"]
    assert two["keypoint"].shape == (2, 6, 25, 3) and ds.classes[two["label"]] == "falling"
    assert np.abs(two["keypoint"][1, 0]).sum() == 0  # second body absent in frame 0
    assert two["keypoint"][0].std(0).sum() > two["keypoint"][1, 1:].std(0).sum()  # ranked by motion
    assert ds.split["train"] == ["S001C002P001R001A043"] and ds.split["test"] == ["S002C001P003R002A008"]
    assert ds.split["xview_train"] == ["S001C002P001R001A043"]


def test_coco_single_frame_samples():
    ds = convert("coco", D / "coco" / "test_coco.json")
    assert ds.layout == "coco17" and ds.classes == ["person"]
    assert len(ds) >= 4 and all(a["keypoint"].shape == (1, 1, 17, 2) for a in ds.annotations)


def test_coco_tracked_sequences(tmp_path):
    imgs = [{"id": i, "vid_id": 7, "frame_id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in range(3)]
    anns = [{"id": 10 * i + t, "image_id": i, "track_id": t, "num_keypoints": 17, "category_id": 1,
             "keypoints": [v for j in range(17) for v in (j + i, j + t, 2)]} for i in range(3) for t in range(2)]
    p = tmp_path / "track.json"
    p.write_text(json.dumps({"images": imgs, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}))
    ds = convert("coco", p)
    assert len(ds) == 2 and ds.annotations[0]["keypoint"].shape == (1, 3, 17, 2)
    np.testing.assert_array_equal(ds.annotations[1]["keypoint"][0, :, 0, 0], [0, 1, 2])
    assert ds.annotations[0]["keypoint_score"][0, :, 1:3].min() == 1  # no names: COCO's order, eyes seen
    # PoseTrack names its category's keypoints: head_bottom/head_top sit in COCO's eye slots, so those are
    # stored as not seen (they used to become "eyes"), every other joint as in COCO
    posetrack = ["nose", "head_bottom", "head_top", *get_layout("coco17").joints[3:]]
    p.write_text(json.dumps({"images": imgs, "annotations": anns,
                             "categories": [{"id": 1, "name": "person", "keypoints": posetrack}]}))
    pt = convert("coco", p).annotations[1]
    assert pt["keypoint_score"][0, :, 1:3].max() == 0 and np.abs(pt["keypoint"][0, :, 1:3]).max() == 0
    np.testing.assert_array_equal(pt["keypoint"][0, :, 5:], ds.annotations[1]["keypoint"][0, :, 5:])
    other = [*get_layout("coco17").joints[:15], "left_foot", "right_foot"]
    p.write_text(json.dumps({"images": imgs, "annotations": anns, "categories": [{"id": 1, "keypoints": other}]}))
    with pytest.raises(ActionposeError, match=r"track.json: keypoints are not in COCO's order \(15: 'left_foot'"):
        convert("coco", p)


def _csv_variant(tmp_path, name, edit):
    """The CSV fixture with ``edit(header, rows)`` applied (rows are lists of cells)."""
    import csv

    files = sorted((D / "csv").glob("*.csv"))
    out = tmp_path / name
    out.mkdir()
    for f in files:
        rows = list(csv.reader(f.open(newline="")))
        header, body = rows[0], rows[1:]
        header, body = edit(header, body)
        with (out / f.name).open("w", newline="") as fh:
            csv.writer(fh).writerows([header, *body])
    return out


def test_csv_frame_steps_blank_splits_label_spaces_and_partial_scores(tmp_path, capsys):
    """Found by an ML engineer's probe: frames numbered 0, 2, 4 became blank frames every other row (a
    trained model fell from 100 % to chance); an empty split cell dropped its sample from every split; "wave "
    became a class beside "wave"; a lone head_score column was dropped, every score stored as 1."""
    ref = convert("csv", D / "csv")

    def col(header, name):
        return header.index(name)

    def every_other(h, body):
        return h, [[str(int(c) * 2) if i == col(h, "frame") else c for i, c in enumerate(r)] for r in body]

    with pytest.raises(ActionposeError, match=r"sample '\w+': 'frame' goes up in steps of 2 \(0, 2, 4"):
        convert("csv", _csv_variant(tmp_path, "step2", every_other))

    def gap(h, body):  # frames 3..5 of the first sample missing: kept as not seen, and said so
        first = body[0][col(h, "sample")]
        return h, [r for r in body if not (r[col(h, "sample")] == first and 3 <= int(r[col(h, "frame")]) <= 5)]

    from actionpose.cli import main

    assert main(["datasets", "convert", "-f", "csv", str(_csv_variant(tmp_path, "gap", gap)),
                 "-o", str(tmp_path / "gap.pkl")]) == 0
    assert "note: 3 frame(s) missing inside samples" in capsys.readouterr().err

    def blank_split(h, body):
        first = body[0][col(h, "sample")]
        return h, [[("" if i == col(h, "split") and r[col(h, "sample")] == first else c) for i, c in enumerate(r)]
                   for r in body]

    with pytest.raises(ActionposeError, match="empty 'split' while other samples have one"):
        convert("csv", _csv_variant(tmp_path, "blank", blank_split))

    def spaced(h, body):
        return h, [[(c + " " if i == col(h, "label") and k % 2 else c) for i, c in enumerate(r)]
                   for k, r in enumerate(body)]

    assert convert("csv", _csv_variant(tmp_path, "spaced", spaced)).classes == ref.classes

    def partial(h, body):  # every score column gone but head_score
        keep = [i for i, c in enumerate(h) if not c.endswith("_score") or c == "head_score"]
        return [h[i] for i in keep], [[r[i] for i in keep] for r in body]

    with pytest.raises(ActionposeError, match=r"score columns for 1 of 13 joints; give one for every joint or none"):
        convert("csv", _csv_variant(tmp_path, "partial", partial))

    def partial_z(h, body):  # 3D with one z column misspelt: the whole dataset silently became 2D
        zs = [f"{c[:-2]}_z" for c in h if c.endswith("_x")]
        h2 = h + [("head_q" if z == "head_z" else z) for z in zs]
        return h2, [r + ["1.0"] * len(zs) for r in body]

    with pytest.raises(ActionposeError, match=r"z columns for 12 of 13 joints; give one for every joint or none "
                                              r"\(missing: head_z\)"):
        convert("csv", _csv_variant(tmp_path, "partial_z", partial_z))

    def extra(h, body):  # a column that is no joint of the layout: kept out, and said so
        return h + ["head_q"], [r + ["1"] for r in body]

    capsys.readouterr()
    assert main(["datasets", "convert", "-f", "csv", str(_csv_variant(tmp_path, "extra", extra)),
                 "-o", str(tmp_path / "extra.pkl")]) == 0
    assert "note: column(s) not used: head_q" in capsys.readouterr().err


def test_csv_without_splits_trains_on_every_sample_and_evaluates_with_split_all(tmp_path, capsys):
    """The docs call `split` optional, but such a file could be neither trained (split 'train' not in ...)
    nor evaluated."""
    from actionpose.cli import main
    from actionpose.data.format import save_dataset
    from actionpose.data.datamodule import SkeletonDataModule
    from actionpose.training import make_config

    def no_split(h, body):
        i = h.index("split")
        return [c for c in h if c != "split"], [r[:i] + r[i + 1:] for r in body]

    src = _csv_variant(tmp_path, "nosplit", no_split)
    assert main(["datasets", "convert", "-f", "csv", str(src), "-o", str(tmp_path / "n.pkl")]) == 0
    assert "splits none (train uses every sample" in capsys.readouterr().out
    ds = convert("csv", src)
    cfg = make_config({"data": {"path": str(tmp_path / "n.pkl"), "val_fraction": 0}})
    dm = SkeletonDataModule(cfg)
    assert len(dm.train_samples) == len(ds) and dm.test_samples == [] and cfg["data"]["train_split"] == "all"
    assert "has no splits: training on all" in capsys.readouterr().err
    assert len(ds.subset("all")) == len(ds)
    with pytest.raises(ActionposeError, match=r"split 'test' not found; available splits: none \(or 'all'"):
        ds.subset("test")
    save_dataset(ds, tmp_path / "n2.pkl")


def test_csv_roundtrip_matches_penn(tmp_path):
    ds = convert("csv", D / "csv")
    assert ds.layout == "body13" and ds.classes == ["pushup", "squat"]
    bom = tmp_path / "bom"  # saved by Excel as "CSV UTF-8": a BOM before the header gave "missing column sample"
    bom.mkdir()
    for f in (D / "csv").glob("*.csv"):
        (bom / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8-sig")
    assert len(convert("csv", bom)) == len(ds)
    assert sorted(ds.split["test"]) == ["1348", "1671"]
    penn = {a["frame_dir"]: a for a in convert("penn", D / "penn").annotations}
    a = {x["frame_dir"]: x for x in ds.annotations}["1666"]
    seen = penn["1666"]["keypoint_score"][0, 4] > 0  # the CSV was written before corner joints became (0, 0)
    assert seen.sum() >= 10
    np.testing.assert_allclose(a["keypoint"][0, 1][seen], penn["1666"]["keypoint"][0, 4][seen], atol=0.06)


def test_csv_empty_cells_are_missing_joints_and_mixed_splits_are_refused(tmp_path):
    """Tools that export CSV leave a joint they did not find empty: that joint is stored missing, at (0, 0)
    with score 0 (it was a "non-numeric value" error for the whole file). A written-out 'nan' is still an
    error, and a sample whose rows disagree on the split is refused rather than filed under its first row."""
    import csv

    rows = list(csv.reader(open(D / "csv" / "penn_body13.csv")))
    col = rows[0].index("left_wrist_x")
    sample, frame = rows[3][0], int(rows[3][1])
    edited = [list(r) for r in rows]
    edited[3][col] = ""
    (tmp_path / "a").mkdir()
    csv.writer(open(tmp_path / "a" / "x.csv", "w", newline="")).writerows(edited)
    ann = {a["frame_dir"]: a for a in convert("csv", tmp_path / "a").annotations}[sample]
    from actionpose.skeleton import get_layout

    j = get_layout("body13").index("left_wrist")
    f0 = min(int(r[1]) for r in rows[1:] if r[0] == sample)
    assert ann["keypoint"][0, frame - f0, j].tolist() == [0.0, 0.0] and ann["keypoint_score"][0, frame - f0, j] == 0
    assert ann["keypoint_score"][0, frame - f0].sum() > 0  # the rest of that frame is kept
    # only the x cell empty, y and the score written: dropped all the same, but said (probe: "without a word")
    r = _run_cli("datasets", "convert", "-f", "csv", str(tmp_path / "a"), "-o", str(tmp_path / "a.pkl"))
    assert r.returncode == 0 and "note: 1 joint(s) have some cells empty" in r.stderr, r.stderr
    for i, (value, message) in enumerate([("nan", "NaN or infinite"), (None, "more than one split: test, tset")]):
        bad = [list(r) for r in rows]
        if value is not None:
            bad[3][col] = value
        else:
            bad[3][rows[0].index("split")] = "tset"
        d = tmp_path / f"b{i}"
        d.mkdir()
        csv.writer(open(d / "x.csv", "w", newline="")).writerows(bad)
        with pytest.raises(ActionposeError, match=message):
            convert("csv", d)
    (tmp_path / "c").mkdir()
    csv.writer(open(tmp_path / "c" / "x.csv", "w", newline="")).writerows(rows[:1])
    with pytest.raises(ActionposeError, match="no data rows"):
        convert("csv", tmp_path / "c")


def test_pyskl_relabels_and_validates(tmp_path):
    src = convert("nwucla", D / "nwucla").to_dict()
    del src["layout"], src["classes"]
    for a in src["annotations"]:
        a["label"] = {0: 3, 5: 9}[a["label"]]
    p = tmp_path / "ucla_pyskl.pkl"
    p.write_bytes(pickle.dumps(src))
    with pytest.raises(ActionposeError, match="20 joints is ambiguous"):
        convert("pyskl", p)
    ds = convert("pyskl", p, tmp_path / "out.pkl", layout="kinect20")
    assert [a["label"] for a in ds.annotations] == [0, 0, 1] and ds.meta["original_labels"] == [3, 9]
    assert load_dataset(tmp_path / "out.pkl").layout == "kinect20"
    r = _run_cli("datasets", "convert", "-f", "pyskl", str(p), "--layout", "kinect20", "-o", str(tmp_path / "o2.pkl"))
    assert r.returncode == 0 and "note: the file names no classes (class_3, ...); --classes FILE" in r.stderr


def test_pyskl_canonical_types_and_the_inferred_layout_is_said(tmp_path, capsys):
    """int64 / float16 keypoints came through as they were (the canonical file holds float32), an int frame_dir
    made its split entry an "unknown sample '0'", and a layout taken from the joint count alone was silent."""
    rng = np.random.default_rng(0)
    anns = [{"frame_dir": i, "label": i % 2, "total_frames": 8, "img_shape": (480, 640),
             "keypoint": rng.integers(0, 400, (1, 8, 17, 2)).astype(np.int64),
             "keypoint_score": rng.uniform(0, 1, (1, 8, 17)).astype(np.float16)} for i in range(4)]
    p = tmp_path / "raw.pkl"
    p.write_bytes(pickle.dumps({"split": {"train": [0, 1], "test": [2, 3]}, "annotations": anns}))
    ds = convert("pyskl", p, tmp_path / "out.pkl")
    assert ds.layout == "coco17" and [a["frame_dir"] for a in ds.annotations] == ["0", "1", "2", "3"]
    assert {a["keypoint"].dtype for a in ds.annotations} == {a["keypoint_score"].dtype for a in ds.annotations} \
        == {np.dtype(np.float32)}
    assert "its 17 joints are read as coco17" in capsys.readouterr().err
    convert("pyskl", p, layout="coco17")  # named: nothing to say
    assert "read as" not in capsys.readouterr().err


# --- real datasets in ../shared (CI has them) ---------------------------------------------------------
@pytest.mark.parametrize("fmt, folder, n, k, train, test", [
    ("penn", "penn_action", 2326, 15, 1258, 1068),
    ("nwucla", "nw_ucla", 1484, 10, 1020, 464),
    ("utd", "utd_mhad", 861, 27, 431, 430),
])
def test_shared_datasets_convert_with_standard_protocol(tmp_path, fmt, folder, n, k, train, test):
    src = shared_path("datasets", folder)
    out = tmp_path / f"{fmt}.pkl"
    assert main(["datasets", "convert", "--format", fmt, str(src), "-o", str(out)]) == 0
    ds = load_dataset(out)
    assert (len(ds), len(ds.classes), len(ds.split["train"]), len(ds.split["test"])) == (n, k, train, test)
    if fmt == "nwucla":  # cross-view validation inside the training split: view 1 / view 2
        assert (len(ds.split["train_v1"]), len(ds.split["train_v2"])) == (516, 504)
        assert sorted(ds.split["train_v1"] + ds.split["train_v2"]) == sorted(ds.split["train"])
    assert all(a["keypoint"].dtype == np.float32 and a["keypoint"].ndim == 4 for a in ds.annotations)


def test_shared_coco_images():
    ds = convert("coco", shared_path("images", "coco", "test_coco.json"))
    assert len(ds) >= 4


# --- bad input ---------------------------------------------------------------------------------------
def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "actionpose", *args], capture_output=True, text=True)


def _assert_clean_failure(result, *fragments):
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err


def test_cli_missing_source(tmp_path):
    r = _run_cli("datasets", "convert", "--format", "penn", str(tmp_path / "nope"), "-o", str(tmp_path / "o.pkl"))
    _assert_clean_failure(r, "nope: no such file or directory")
    assert not (tmp_path / "o.pkl").exists()


@pytest.mark.parametrize("fmt, name, content, reason", [
    ("penn", "0001.mat", b"MATLAB 5.0 MAT-file" + b"\x00" * 20, "cannot read .mat file"),
    ("utd", "a1_s1_t1_skeleton.mat", b"\x00garbage", "cannot read .mat file"),
    ("nwucla", "a01_s01_e00_v01.json", b'{"skeletons": [[[0, 0', "invalid JSON"),
    ("nwucla", "a01_s01_e00_v01.json", b'{"skeletons": [[[NaN, 0, 0]' + b', [0,0,0]' * 19 + b']], "label": 1}',
     "NaN or infinite"),
    ("nwucla", "a01_s01_e00_v01.json", b'{"skeletons": [[[0, 0, 0]]], "label": 1}', "1 joints but NW-UCLA"),
    ("nwucla", "a01_s01_e00_v01.json", b'{"skeletons": [], "label": 1}', "shape (0,)"),
    ("ntu", "S001C001P001R001A001.skeleton", b"3\n1\n72057594037931101 0 1 1 1 1 0 0.1 0.2 2\n25\n0 0 0",
     "truncated .skeleton"),
    ("ntu", "S001C001P001R001A001.skeleton", b"0\n", "empty sequence"),
    ("pyskl", "x.pkl", b"\x80\x04\x95", "corrupt or truncated pickle"),
    ("pyskl", "x.csv", b"sample,frame,label\na,0,b\n", "is a text file (CSV, JSON or YAML?), not a dataset pickle"),
    ("csv", "x.csv", b"sample,frame,label,head_x\na,0,foo,1\n", "joint columns match no known layout"),
    ("csv", "x.csv", b"sample,label\n", "missing column(s) frame"),
])
def test_cli_bad_files_one_line_error_and_no_output(tmp_path, fmt, name, content, reason):
    src = tmp_path / "src"
    src.mkdir()
    (src / name).write_bytes(content)
    out = tmp_path / "out.pkl"
    r = _run_cli("datasets", "convert", "--format", fmt, str(src if fmt != "pyskl" else src / name), "-o", str(out))
    _assert_clean_failure(r, name, reason)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_wrong_joint_count_in_penn(tmp_path):
    import scipy.io

    src = tmp_path / "penn"
    src.mkdir()
    m = scipy.io.loadmat(D / "penn" / "1666.mat")
    m["x"], m["y"] = m["x"][:, :12], m["y"][:, :12]
    scipy.io.savemat(src / "0001.mat", {k: v for k, v in m.items() if not k.startswith("__")})
    with pytest.raises(ActionposeError, match="0001.mat: 12 joints but Penn Action"):
        convert("penn", src)


def test_info_json_and_text(tmp_path, capsys):
    out = tmp_path / "u.pkl"
    convert("utd", D / "utd", out)
    assert main(["datasets", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["samples"] == 3 and info["splits"] == {"train": 2, "test": 1} and info["layout"] == "kinect20_utd"
    assert set(info["frames"]) == {"min", "max", "mean", "median", "total"}
    assert main(["datasets", "info", str(out)]) == 0
    assert "kinect20_utd (20 joints, 3D)" in capsys.readouterr().out


def test_help_lists_subcommands():
    r = _run_cli("--help")
    assert r.returncode == 0 and "datasets" in r.stdout and "layouts" in r.stdout


def _csv_rows():
    import csv

    return [list(r) for r in csv.reader(open(D / "csv" / "penn_body13.csv"))]


def _write_csv(folder: Path, rows, name: str = "x.csv") -> Path:
    import csv

    folder.mkdir(exist_ok=True)
    csv.writer(open(folder / name, "w", newline="")).writerows(rows)
    return folder


def test_csv_mistakes_that_would_silently_corrupt_a_dataset_are_refused(tmp_path):
    """Each of these converted without a word before (a repeated row overwrote, two files merged one
    sample, an empty label became a class "", a frame typo allocated an 8 GB file)."""
    rows = _csv_rows()
    h = rows[0]
    cases = {"repeat": (rows + [rows[3]], "repeats"),
             "label": ([h] + [[*r[:h.index("label")], "", *r[h.index("label") + 1:]] if r[0] == rows[1][0] else r
                              for r in rows[1:]], "empty 'label'"),
             "span": (rows[:2] + [[*rows[1][:1], "100000000", *rows[1][2:]]], "span"),
             "score": ([h] + [[*r[:h.index("head_score")], "inf", *r[h.index("head_score") + 1:]] if i == 0 else r
                              for i, r in enumerate(rows[1:])], "NaN or infinite score"),
             # a repeated column: csv.DictReader kept the last one, head_x became 1.0 in every frame (probe)
             "twice": ([h + ["head_x"]] + [r + ["1.0"] for r in rows[1:]], "'head_x' appear more than once")}
    for name, (content, message) in cases.items():
        with pytest.raises(ActionposeError, match=message):
            convert("csv", _write_csv(tmp_path / name, content))
    two = _write_csv(tmp_path / "two", rows)
    _write_csv(two, rows[:1] + [r for r in rows[1:] if r[0] == rows[1][0]], "y.csv")
    with pytest.raises(ActionposeError, match="sample names must be unique"):
        convert("csv", two)
    mixed = _write_csv(tmp_path / "mixed", rows)
    _write_csv(mixed, [[c for c in r if True][:-1] for r in rows], "y.csv")
    with pytest.raises(ActionposeError, match="columns differ"):
        convert("csv", mixed)


def test_convert_never_overwrites_its_input_and_refuses_options_a_format_lacks(tmp_path, capsys):
    src = _write_csv(tmp_path / "c", _csv_rows()) / "x.csv"
    before = src.read_bytes()
    assert main(["datasets", "convert", "-f", "csv", str(src), "-o", str(src)]) == 2
    assert "is the input file" in capsys.readouterr().err and src.read_bytes() == before
    assert main(["datasets", "convert", "-f", "csv", str(src), "--classes", str(src), "-o",
                 str(tmp_path / "o.pkl")]) == 2
    err = capsys.readouterr().err
    assert "--classes: not an option of --format csv" in err and err.count("\n") == 1


def test_pyskl_unlabelled_samples_stay_unlabelled_and_odd_labels_are_refused(tmp_path):
    src = convert("nwucla", D / "nwucla").to_dict()
    src["annotations"][0]["label"] = -1  # PYSKL's "no label" (e.g. extracted, not yet annotated)
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps(src))
    ds = convert("pyskl", p)
    used = {a["label"] for a in src["annotations"][1:]}
    assert ds.annotations[0]["label"] == -1 and len(ds.classes) == len(used)  # -1 is not a class of its own
    assert ds.classes == [src["classes"][u] for u in sorted(used)]
    for bad in (True, 1.7, "wave"):
        src["annotations"][0]["label"] = bad
        p.write_bytes(pickle.dumps(src))
        with pytest.raises(ActionposeError, match="not an integer class index"):
            convert("pyskl", p)
    src["annotations"][0]["label"] = len(src["classes"]) + 2  # beyond its own class list: was named "class_12"
    p.write_bytes(pickle.dumps(src))
    with pytest.raises(ActionposeError, match=f"annotation 0 .*label {len(src['classes']) + 2} but the class list has "
                                              f"{len(src['classes'])} names"):
        convert("pyskl", p)


def test_csv_3d_keeps_score_columns_and_3d_without_them_has_none(tmp_path):
    """A 3D CSV with `<joint>_score` columns used to lose its scores (a low-confidence joint looked certain)."""
    from actionpose.skeleton import get_layout

    joints = get_layout("ntu25").joints
    for with_score in (True, False):
        d = tmp_path / str(with_score)
        d.mkdir()
        head = ["sample", "frame", "label"] + [f"{j}_{c}" for j in joints for c in ("x", "y", "z")
                                               + (("score",) if with_score else ())]
        rows = [head]
        for f in range(4):
            vals = []
            for k in range(len(joints)):
                vals += [k * 0.1, f * 0.1, 2.0] + ([0.25 if k == 3 else 0.9] if with_score else [])
            rows.append(["s1", f, "wave"] + vals)
        (d / "x.csv").write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
        (ann,) = convert("csv", d).annotations
        assert ann["keypoint"].shape == (1, 4, 25, 3)
        if with_score:
            assert ann["keypoint_score"][0, :, 3].tolist() == [0.25] * 4 and ann["keypoint_score"][0, 0, 0] == 0.9
        else:
            assert "keypoint_score" not in ann


def test_a_classes_file_with_a_header_line_is_noted(tmp_path, capsys):
    """`--classes` with one name too many (a header line left in) shifted every class name, silently."""
    import pickle

    from actionpose.cli import main

    anns = [{"frame_dir": f"s{i}", "label": i % 2, "total_frames": 5, "img_shape": (480, 640),
             "keypoint": np.random.default_rng(i).uniform(0, 300, (1, 5, 17, 2)).astype(np.float32)} for i in range(4)]
    (tmp_path / "p.pkl").write_bytes(pickle.dumps({"split": {"train": ["s0", "s1"], "test": ["s2", "s3"]},
                                                   "annotations": anns}))
    (tmp_path / "names.txt").write_text("name\nclap\nwave\n")
    assert main(["datasets", "convert", "-f", "pyskl", str(tmp_path / "p.pkl"), "--classes", str(tmp_path / "names.txt"),
                 "-o", str(tmp_path / "o.pkl")]) == 0
    err = capsys.readouterr().err
    assert "1 class name(s) have no sample ('wave' = label 2)" in err and "header line" in err
    (tmp_path / "twice.txt").write_text("clap\nclap\n")  # merged two labels' per-class results, silently
    assert main(["datasets", "convert", "-f", "pyskl", str(tmp_path / "p.pkl"), "--classes", str(tmp_path / "twice.txt"),
                 "-o", str(tmp_path / "t.pkl")]) == 2
    assert "twice.txt: class name 'clap' appears twice (lines 1 and 2" in capsys.readouterr().err
    assert not (tmp_path / "t.pkl").exists()


def test_csv_files_as_other_tools_write_them(tmp_path, capsys):
    """Found by probing as an ML engineer: pandas' 0.0 frames were refused in Python's words; an empty or a
    semicolon-separated file was "missing column(s)"; numeric labels 3, 7 made classes 0..7 without a note;
    a class only in the test split was not said."""
    import csv as csvmod

    rows = _csv_rows()
    h = rows[0]
    fi, li, si = h.index("frame"), h.index("label"), h.index("split") if "split" in h else None
    floats = [h] + [[*r[:fi], f"{int(r[fi])}.0", *r[fi + 1:]] for r in rows[1:]]
    ds = convert("csv", _write_csv(tmp_path / "floats", floats))
    assert len(ds.annotations) == len({r[0] for r in rows[1:]})
    half = [h] + [[*r[:fi], f"{int(r[fi])}.5", *r[fi + 1:]] for r in rows[1:]]
    with pytest.raises(ActionposeError, match="frame '0.5' is not a whole number|frame '[0-9]+.5' is not a whole"):
        convert("csv", _write_csv(tmp_path / "half", half))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.csv").write_text("")
    with pytest.raises(ActionposeError, match="empty file"):
        convert("csv", tmp_path / "empty")
    (tmp_path / "semi").mkdir()
    with open(tmp_path / "semi" / "x.csv", "w", newline="") as f:
        csvmod.writer(f, delimiter=";").writerows(rows)
    with pytest.raises(ActionposeError, match="not comma-separated"):
        convert("csv", tmp_path / "semi")
    samples = sorted({r[0] for r in rows[1:]})
    numeric = {s: str(3 + 4 * (i % 2)) for i, s in enumerate(samples)}  # labels 3 and 7 only
    num = [h] + [[*r[:li], numeric[r[0]], *r[li + 1:]] for r in rows[1:]]
    src = _write_csv(tmp_path / "numeric", num) / "x.csv"
    assert main(["datasets", "convert", "-f", "csv", str(src), "-o", str(tmp_path / "n.pkl")]) == 0
    err = capsys.readouterr().err
    assert "6 of 8 classes have no sample" in err and "numeric labels are class indices" in err
    # an importer with a fixed class list: the part of it a source holds, not advice about numeric labels
    assert main(["datasets", "convert", "-f", "penn", str(D / "penn"),
                 "-o", str(tmp_path / "p.pkl")]) == 0
    err = capsys.readouterr().err
    assert "13 of 15 classes have no sample" in err and "keeps the dataset's whole class list" in err
    assert "numeric labels" not in err
    if si is not None:
        test_only = samples[0]
        only = [h] + [[*r[:li], "rare" if r[0] == test_only else r[li], *r[li + 1:si], "test" if r[0] == test_only
                       else r[si], *r[si + 1:]] for r in rows[1:]]
        src = _write_csv(tmp_path / "only", only) / "x.csv"
        assert main(["datasets", "convert", "-f", "csv", str(src), "-o", str(tmp_path / "o.pkl")]) == 0
        assert "'rare' are in split 'test' but not in 'train'" in capsys.readouterr().err


def test_csv_errors_cite_the_line_at_fault(tmp_path):
    """A NaN, a label change, a non-numeric cell or a negative frame deep inside a sample was cited at the
    sample's first line (probe); a -1 frame was even accepted, moving its row to the sample's start and leaving
    a gap where it was."""
    rows = _csv_rows()
    h = rows[0]
    first = rows[1][0]
    target = [i for i, r in enumerate(rows) if r[0] == first][3]  # the 4th row of the first sample: line target + 1
    for column, value, needle in [("head_x", "nan", ": NaN or infinite coordinate"),
                                  ("label", "zzz", " has more than one label"),
                                  ("head_x", "abc", ": column 'head_x': non-numeric value"),
                                  ("frame", "-1", ": frame -1 is negative")]:
        c = h.index(column)
        changed = [r if i != target else [*r[:c], value, *r[c + 1:]] for i, r in enumerate(rows)]
        with pytest.raises(ActionposeError, match=rf"x\.csv:{target + 1}: sample '{first}'{needle}"):
            convert("csv", _write_csv(tmp_path / value, changed))
    # every column of one joint gone: named as the missing joint, not as "z columns for 14 of 15 joints"
    drop = {h.index(c) for c in h if c.startswith("head_")}
    cut = [[v for j, v in enumerate(r) if j not in drop] for r in rows]
    with pytest.raises(ActionposeError, match="needs column 'head_x'"):
        convert("csv", _write_csv(tmp_path / "cut", cut), layout="body13")
