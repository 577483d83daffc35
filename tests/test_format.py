import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actionpose.data.format import (SkeletonDataset, load_dataset, make_annotation, save_dataset,
                                    validate_dataset)
from actionpose.data.safe_pickle import safe_load, safe_loads
from actionpose.errors import ActionposeError


def _ds(n=3, layout="coco17", v=17):
    rng = np.random.default_rng(0)
    anns = [make_annotation(f"s{i}", i % 2, rng.random((1, 10 + i, v, 2)), rng.random((1, 10 + i, v)),
                            img_shape=(480, 640)) for i in range(n)]
    return SkeletonDataset(anns, layout, ["a", "b"], {"train": ["s0", "s1"], "test": ["s2"]})


def test_roundtrip_keeps_pyskl_keys_and_dtypes(tmp_path):
    path = save_dataset(_ds(), tmp_path / "d.pkl")
    raw = pickle.loads(path.read_bytes())  # what PYSKL's mmcv.load / pickle.load sees
    assert set(raw) >= {"split", "annotations"} and raw["layout"] == "coco17" and raw["classes"] == ["a", "b"]
    ann = raw["annotations"][0]
    assert {"frame_dir", "label", "total_frames", "img_shape", "original_shape", "keypoint", "keypoint_score"} <= set(ann)
    assert ann["keypoint"].dtype == np.float32 and ann["keypoint"].shape == (1, 10, 17, 2)
    assert ann["keypoint_score"].dtype == np.float32 and ann["keypoint_score"].shape == (1, 10, 17)
    back = load_dataset(path)
    assert back.layout == "coco17" and len(back) == 3 and [a["frame_dir"] for a in back.subset("test")] == ["s2"]


def test_plain_pyskl_pickle_without_layout_loads(tmp_path):
    raw = _ds().to_dict()
    del raw["layout"], raw["classes"]
    p = tmp_path / "pyskl.pkl"
    p.write_bytes(pickle.dumps(raw, protocol=5))
    ds = load_dataset(p)
    assert ds.layout == "coco17" and ds.classes == ["class_0", "class_1"]
    raw["annotations"][0]["label"] = 10**12  # built a list of 10**12 class names: the machine ran out of memory
    p.write_bytes(pickle.dumps(raw, protocol=5))
    with pytest.raises(ActionposeError, match="class ids must be below"):
        load_dataset(p)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_restricted_unpickler_refuses_code(tmp_path):
    payload = pickle.dumps({"annotations": [_Evil()]})
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|refused"):
        safe_loads(payload)
    p = tmp_path / "evil.pkl"
    p.write_bytes(payload)
    os.chdir(tmp_path)
    with pytest.raises(ActionposeError, match="evil.pkl: not a safe annotation pickle"):
        safe_load(p)
    assert not (tmp_path / "PWNED").exists()
    # numpy scalars and arrays are fine
    assert safe_loads(pickle.dumps({"x": np.float64(1.5), "a": np.arange(3)}))["x"] == 1.5


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_old_pickle_protocols_load(protocol):
    """Protocols 0-2 (older tools) store an array's bytes through ``_codecs.encode(..., "latin1")``; that global
    was refused, so such a dataset could not be read at all. Any other codec stays refused."""
    kp = np.arange(170, dtype=np.float32).reshape(1, 5, 17, 2)
    got = safe_loads(pickle.dumps({"annotations": [{"keypoint": kp, "label": 0}]}, protocol=protocol))
    assert np.array_equal(got["annotations"][0]["keypoint"], kp)
    import codecs

    class Zipped:  # a pickle that asks _codecs.encode for another codec
        def __reduce__(self):
            return codecs.encode, (b"x", "zlib_codec")

    with pytest.raises(pickle.UnpicklingError, match="zlib_codec"):
        safe_loads(pickle.dumps(Zipped(), protocol=2))


def test_truncated_pickle_is_a_clear_error(tmp_path):
    p = save_dataset(_ds(), tmp_path / "d.pkl")
    bad = tmp_path / "trunc.pkl"
    bad.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(ActionposeError, match="trunc.pkl: corrupt or truncated pickle"):
        load_dataset(bad)


def test_a_list_pickle_of_non_annotations_is_a_clear_error(tmp_path):
    """MMAction2 writes a bare list of annotations; a list of anything else names the bad entry (it used to
    say "None joints is ambiguous; pass --layout", which sent users after the wrong option)."""
    p = tmp_path / "l.pkl"
    p.write_bytes(pickle.dumps([{"frame_dir": "a"}, 2]))
    with pytest.raises(ActionposeError, match="l.pkl: annotation 1 is a int, not a dict with 'keypoint' and 'label'"):
        load_dataset(p)
    # a keypoint stored as a nested list (no layout recorded) said "None joints matches no default layout"
    p.write_bytes(pickle.dumps([{"frame_dir": "a", "label": 0, "keypoint": np.zeros((1, 4, 17, 2)).tolist()}]))
    with pytest.raises(ActionposeError, match=r"l.pkl: annotation 0: 'keypoint' must be a numpy array \[M, T, V, C\], got list"):
        load_dataset(p)


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.__setitem__("keypoint", np.full((1, 5, 17, 2), np.nan, np.float32)), "NaN or infinite"),
    (lambda a: a.__setitem__("keypoint", np.zeros((1, 5, 13, 2), np.float32)), "13 joints but layout coco17 has 17"),
    (lambda a: a.__setitem__("keypoint", np.zeros((1, 0, 17, 2), np.float32)), "empty sequence"),
    (lambda a: a.__setitem__("label", 7), "label 7 outside 0..1"),
    (lambda a: a.__setitem__("keypoint", np.zeros((5, 17, 2), np.float32)), r"\[M, T, V, C\]"),
    # a pickle's own frame rate: NaN and text were tracebacks in reps, 0 was read as 30 fps without a word
    (lambda a: a.__setitem__("fps", float("nan")), "'fps' must be a positive number of frames per second"),
    (lambda a: a.__setitem__("fps", "thirty"), "'fps' must be a positive number"),
    (lambda a: a.__setitem__("fps", 0), "'fps' must be a positive number"),
    (lambda a: a.__setitem__("keypoint", np.zeros((1, 5, 17, 2), object)), "'keypoint' holds object values"),
])
def test_validation_errors_name_sample_and_reason(mutate, message):
    ds = _ds()
    mutate(ds.annotations[1])
    ds.annotations[1].pop("keypoint_score")
    ds.annotations[1]["total_frames"] = ds.annotations[1]["keypoint"].shape[1] if ds.annotations[1]["keypoint"].ndim == 4 else 0
    with pytest.raises(ActionposeError, match=message) as err:
        validate_dataset(ds, "src.pkl")
    assert "src.pkl: sample 's1'" in str(err.value) and "\n" not in str(err.value)


def test_mixed_2d_3d_duplicate_class_names_and_a_missing_frame_dir_are_refused():
    """2D and 3D samples in one dataset failed only at training's test, after every epoch; two labels under
    one class name merged their per-class results; a sample without frame_dir was 'sample ?'."""
    ds = _ds()
    ds.annotations[1]["keypoint"] = np.zeros((1, 11, 17, 3), np.float32)
    with pytest.raises(ActionposeError, match="src.pkl: sample 's1' has 3D keypoints but sample 's0' has 2D"):
        validate_dataset(ds, "src.pkl")
    ds = _ds()
    ds.classes = ["a", "a"]
    with pytest.raises(ActionposeError, match="class name 'a' names two labels"):
        validate_dataset(ds, "src.pkl")
    ds = _ds()
    del ds.annotations[1]["frame_dir"]
    with pytest.raises(ActionposeError, match=r"sample #1 \(no frame_dir\): missing key 'frame_dir'"):
        validate_dataset(ds, "src.pkl")


def test_failed_save_leaves_no_file(tmp_path):
    ds = _ds()
    ds.annotations[0]["keypoint"][0, 0, 0, 0] = np.inf
    with pytest.raises(ActionposeError):
        save_dataset(ds, tmp_path / "out.pkl")
    assert list(tmp_path.iterdir()) == []


def test_pickle_loads_in_plain_python_without_actionpose(tmp_path):
    """A consumer with only numpy (PYSKL's loader) can read our files."""
    path = save_dataset(_ds(), tmp_path / "d.pkl")
    code = ("import pickle,sys; d=pickle.load(open(sys.argv[1],'rb')); a=d['annotations'][0]; "
            "print(a['keypoint'].shape, a['keypoint'].dtype, sorted(d['split']))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": ""}, cwd=tmp_path)
    assert out.stdout.strip() == "(1, 10, 17, 2) float32 ['test', 'train']"


def test_outputs_follow_links_and_write_through_devices_and_pipes(tmp_path):
    """Renaming the finished file over the output replaced a symlink with a file (its target stale) and, as
    root, /dev/full or /dev/stdout with a regular file. Links are followed, devices and pipes written through."""
    import os
    import threading

    from actionpose.data.atomic import check_output_file, write_text_atomic
    from actionpose.errors import ActionposeError

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "t.json").write_text("old")
    os.symlink(tmp_path / "real" / "t.json", tmp_path / "link.json")
    write_text_atomic(tmp_path / "link.json", "new")
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "real" / "t.json").read_text() == "new"
    os.mkfifo(tmp_path / "pipe.json")
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append((tmp_path / "pipe.json").read_text()))
    reader.start()
    write_text_atomic(tmp_path / "pipe.json", "through")
    reader.join(10)
    assert got == ["through"] and (tmp_path / "pipe.json").is_fifo()
    write_text_atomic("/dev/null", "x")
    assert Path("/dev/null").is_char_device()
    if Path("/dev/full").exists():
        with pytest.raises(ActionposeError, match="/dev/full: cannot write"):
            write_text_atomic("/dev/full", "x")
        assert Path("/dev/full").is_char_device()
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s.json"))
    with pytest.raises(ActionposeError, match="not a regular file"):
        check_output_file(tmp_path / "s.json", "--json")
    sock.close()


@pytest.mark.parametrize("key,value,reason", [
    ("split", ["s0", "s1"], "'split' must be a dict"),          # a traceback (AttributeError) before
    ("split", {"train": None}, "split 'train' must be a list"),  # a traceback (TypeError) before
    ("split", {"train": 3}, "split 'train' must be a list"),
    ("split", {"train": "s0"}, "split 'train' must be a list"),  # was read letter by letter: unknown sample 's'
    ("meta", "notes", "'meta' must be a dict"),                  # a traceback (ValueError) before
    ("classes", {0: "a", 1: "b"}, "'classes' must be a list"),   # silently named the classes '0', '1'
    ("classes", {"b": 1, "a": 0}, "'classes' must be a list"),   # silently swapped the two names
    ("classes", "ab", "'classes' must be a list"),               # silently one class per letter
])
def test_malformed_top_level_keys_are_refused_in_one_line(tmp_path, key, value, reason):
    raw = _ds().to_dict()
    raw[key] = value
    p = tmp_path / "odd.pkl"
    p.write_bytes(pickle.dumps(raw, protocol=5))
    with pytest.raises(ActionposeError, match=reason):
        load_dataset(p)


def test_a_sample_named_twice_in_one_split_is_refused(tmp_path):
    raw = _ds().to_dict()
    raw["split"]["train"] = raw["split"]["train"] * 2  # two split lists concatenated
    p = tmp_path / "twice.pkl"
    p.write_bytes(pickle.dumps(raw, protocol=5))
    # before: accepted; eval counted each clip twice and the validation slice took copies of clips it also trained on
    with pytest.raises(ActionposeError, match="split 'train' names sample 's0' twice"):
        load_dataset(p)
