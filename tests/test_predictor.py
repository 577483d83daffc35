"""ActionPredictor / EnsemblePredictor / resolve_model: shipped models on real clips, bad inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actionpose.data.importers import convert
from actionpose.data.transforms import PreprocessConfig, normalize_sequence, prepare, sample_indices, to_stream
from actionpose.errors import ActionposeError
from actionpose.inference.predictor import ASSETS, ActionPredictor, EnsemblePredictor, load_predictor, resolve_model
from actionpose.skeleton import get_layout, map_keypoints

FIX = Path(__file__).resolve().parent / "fixtures" / "datasets"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _shipped(name: str) -> Path:
    path = ASSETS / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path.name} not shipped in this checkout")
    return path


def test_penn_model_on_real_fixture_clips():
    pred = ActionPredictor.from_path(resolve_model("penn"))
    assert pred.layout == "body13" and pred.stream == "joint" and len(pred.classes) == 15
    ds = convert("penn", FIX / "penn")
    seqs = [(map_keypoints(a["keypoint"], ds.layout, "body13", axis=2), None) for a in ds.annotations]
    probs = pred.predict_sequences(seqs)
    labels = [ds.classes[a["label"]] for a in ds.annotations]
    assert [pred.classes[i] for i in probs.argmax(1)] == labels
    # the batched [N, M, T, V, C] API gives the same answer for one clip
    one = pred.predict(seqs[0][0][None])
    np.testing.assert_allclose(one[0], probs[0], atol=1e-5)


def test_resolve_model_names_and_errors(tmp_path):
    assert resolve_model("exercise") == resolve_model("penn") == _shipped("penn_body13")
    with pytest.raises(ActionposeError, match="no such model file; shipped models: .*penn"):
        resolve_model(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ActionposeError, match="bad.onnx: not a loadable ONNX model"):
        ActionPredictor.from_path(bad)


def test_bad_inputs_are_one_line_errors():
    pred = ActionPredictor.from_path(_shipped("penn_body13"))
    with pytest.raises(ActionposeError, match=r"\[N, M, T, V, C\]"):
        pred.predict(np.zeros((1, 30, 13, 2)))
    with pytest.raises(ActionposeError, match="17 joints but layout body13 has 13"):
        pred.predict(np.zeros((1, 1, 30, 17, 2)))
    with pytest.raises(ActionposeError, match="3 coordinates per joint but model .* expects 2"):
        pred.predict(np.zeros((1, 1, 30, 13, 3)))
    assert pred.predict(np.zeros((0, 1, 30, 13, 2))).shape == (0, 15)
    # nobody seen (all zero or NaN) was given confident probabilities (0.99 for one class): refused, naming the sample
    seen = np.random.default_rng(0).uniform(50, 400, (1, 1, 30, 13, 2))
    for empty in (np.zeros((1, 1, 30, 13, 2)), np.full((1, 1, 30, 13, 2), np.nan)):
        with pytest.raises(ActionposeError, match=r"keypoint\[1\]: no joint seen in any frame"):
            pred.predict(np.concatenate([seen, empty]))
    half = seen.copy()
    half[0, 0, :, :6] = np.nan  # some joints not seen: scored, as missing joints
    assert np.isfinite(pred.predict(half)).all()


def test_a_checkpoint_in_an_ensemble_and_a_truncated_checkpoint_are_said(tmp_path):
    from actionpose.inference.predictor import load_predictor
    from actionpose.training.checkpoint import load_checkpoint

    ckpt = tmp_path / "best.ckpt"
    import zipfile

    with zipfile.ZipFile(ckpt, "w") as z:  # a PyTorch checkpoint is a zip archive
        z.writestr("archive/data.pkl", b"\x80\x04N.")
    (tmp_path / "ens.yaml").write_text(f"models: [{_shipped('penn_body13')}, {ckpt}]\n")
    with pytest.raises(ActionposeError, match="is a training checkpoint, not an ONNX model: `actionpose export"):
        load_predictor(tmp_path / "ens.yaml")
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[:40])
    with pytest.raises(ActionposeError) as err:
        load_checkpoint(cut)
    assert "truncated or corrupt" in str(err.value) and "If you are seeing" not in str(err.value)


def test_a_nested_ensemble_is_refused_naming_the_member(tmp_path):
    """An ensemble YAML listed under another's ``models`` was opened as ONNX: raw "INVALID_PROTOBUF"."""
    inner = tmp_path / "inner.yaml"
    inner.write_text(f"models: [{_shipped('penn_body13')}]\n")
    outer = tmp_path / "outer.yaml"
    for member in ("inner.yaml", "penn_ensemble"):  # a path beside it, or a shipped ensemble alias
        outer.write_text(f"models: [{_shipped('penn_body13')}, {member}]\nweights: [1, 1]\n")
        with pytest.raises(ActionposeError, match=rf"outer.yaml: member '{member}' is itself an ensemble; nested "
                                                  "ensembles are not supported"):
            load_predictor(outer)


def test_eval_on_a_missing_split_names_the_data_file(tmp_path):
    """``split 'test' not found`` did not say which of the files (model, data) it was about."""
    from actionpose.training.evaluate import evaluate

    convert("penn", FIX / "penn", tmp_path / "penn.pkl")
    with pytest.raises(ActionposeError, match=r"penn.pkl: split 'nosuch' not found; available splits: "):
        evaluate("penn", tmp_path / "penn.pkl", "nosuch")


def test_ensemble_averages(tmp_path):
    path = _shipped("penn_body13")
    single = ActionPredictor.from_path(path)
    ens = EnsemblePredictor.from_paths([path, path], weights=[1, 3])
    x = np.random.default_rng(1).uniform(0, 300, (2, 1, 40, 13, 2))
    np.testing.assert_allclose(ens.predict(x), single.predict(x), atol=1e-6)
    yaml_file = tmp_path / "ens.yaml"
    yaml_file.write_text(f"models: [{path}, penn]\n")
    assert isinstance(load_predictor(yaml_file), EnsemblePredictor)
    yaml_file.write_text("models: []\n")
    with pytest.raises(ActionposeError, match="non-empty 'models' list"):
        load_predictor(yaml_file)
    with pytest.raises(ActionposeError, match="weights"):
        EnsemblePredictor([single], weights=[-1])


def test_transforms_streams_and_sampling():
    lay = get_layout("body13")
    idx = sample_indices(10, 4, num_clips=2)
    assert idx.shape == (2, 4) and (np.diff(idx, axis=1) >= 0).all() and idx.max() < 10
    assert (sample_indices(3, 8) < 3).all()  # short sequences repeat frames
    x = np.random.default_rng(0).normal(size=(1, 5, 13, 2)).astype(np.float32)
    bone = to_stream(x, lay, "bone")
    c, p = lay.bone_pairs[0]
    np.testing.assert_allclose(bone[..., c, :], x[..., c, :] - x[..., p, :])
    np.testing.assert_allclose(to_stream(x, lay, "joint_motion")[:, :-1], x[:, 1:] - x[:, :-1])
    kp = np.random.default_rng(0).uniform(100, 600, (1, 20, 13, 2)).astype(np.float32)
    kp[0, 3, 5] = 0  # a missing joint stays missing
    n = normalize_sequence(kp)
    assert np.abs(n).max() <= 1 + 1e-6 and (n[0, 3, 5] == 0).all()
    cfg = PreprocessConfig(layout="body13", clip_len=16, num_clips=3, max_persons=2, with_score=True)
    out = prepare(kp, None, cfg)
    assert out.shape == (3, 2, 16, 13, 3) and (out[:, 1] == 0).all()
    with pytest.raises(ActionposeError, match="allowed values: joint, bone"):
        PreprocessConfig(layout="body13", stream="hand")


@pytest.mark.slow
def test_shipped_penn_reproduces_model_card(tmp_path):
    """The shipped Penn model on the full official test split (skips without ../shared)."""
    from actionpose.training.evaluate import evaluate

    src = SHARED / "datasets" / "penn_action"
    if not src.exists():
        pytest.skip("../shared not present: real-data check runs in CI")
    pkl = tmp_path / "penn.pkl"
    convert("penn", src, pkl)
    res = evaluate("penn", pkl, "test", threads=2)
    assert res["n"] == 1068 and res["top1"] >= 0.95


def test_shipped_penn_4stream_ensemble_beats_published_anchor(tmp_path):
    """Penn 4-stream ensemble on the full official test split: must beat UNIK's 97.9 % (skips without ../shared)."""
    from actionpose.training.evaluate import evaluate

    src = SHARED / "datasets" / "penn_action"
    if not src.exists():
        pytest.skip("../shared not present: real-data check runs in CI")
    ens = load_predictor("penn_ensemble")
    assert isinstance(ens, EnsemblePredictor) and len(ens.predictors) == 4
    assert {p.stream for p in ens.predictors} == {"joint", "bone", "joint_motion", "bone_motion"}
    pkl = tmp_path / "penn.pkl"
    convert("penn", src, pkl)
    res = evaluate("penn_ensemble", pkl, "test", threads=2)
    assert res["n"] == 1068 and res["top1"] > 0.979


def test_shipped_nwucla_reproduces_model_card(tmp_path):
    """`nwucla` (bone stream, view augmentation), `nwucla_joint` and the ensemble on the cross-view test split
    (skips without ../shared)."""
    from actionpose.training.evaluate import evaluate

    src = SHARED / "datasets" / "nw_ucla"
    if not src.exists():
        pytest.skip("../shared not present: real-data check runs in CI")
    assert resolve_model("nwucla").name == "nwucla_bone.onnx"
    pkl = tmp_path / "nwucla.pkl"
    convert("nwucla", src, pkl)
    res = evaluate("nwucla", pkl, "test", threads=2)
    assert res["n"] == 464 and abs(res["top1"] - 424 / 464) < 1e-9  # 91.38 %, the model card's number
    assert resolve_model("nwucla_joint").name == "nwucla_ctr_joint.onnx"
    joint = evaluate("nwucla_joint", pkl, "test", threads=2)  # CTR-GCN small, published schedule (56/65 epochs)
    assert joint["n"] == 464 and abs(joint["top1"] - 408 / 464) < 1e-9  # 87.93 %
    ens = evaluate("nwucla_ensemble", pkl, "test", threads=2)  # 4 streams (CTR-GCN bone), equal weights
    assert ens["n"] == 464 and abs(ens["top1"] - 437 / 464) < 1e-9  # 94.18 %


def test_shipped_ensemble_alias():
    path = _shipped("utd_gestures_bone")
    ens = load_predictor("gestures_ensemble")
    assert isinstance(ens, EnsemblePredictor) and ens.stream == "joint+bone"
    assert ens.layout == "kinect20_utd" and len(ens.classes) == 27 and path.exists()
    ds = convert("utd", FIX / "utd")
    probs = ens.predict_sequences([(a["keypoint"], None) for a in ds.annotations])
    assert probs.shape == (3, 27)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_predict_sequences_refuses_an_empty_sequence_and_a_bare_array():
    """predict refused a clip with no joint seen; predict_sequences gave it 0.99 for one class (probe)."""
    pred = ActionPredictor.from_path(resolve_model("penn"))
    ds = convert("penn", FIX / "penn")
    real = (map_keypoints(ds.annotations[0]["keypoint"], ds.layout, "body13", axis=2), None)
    empty = (np.zeros_like(real[0]), None)
    nan = (np.full_like(real[0], np.nan), None)
    for bad in (empty, nan):
        with pytest.raises(ActionposeError, match=r"sequence 1: no joint seen in any frame"):
            pred.predict_sequences([real, bad])
    scored = pred.predict_sequences([real, empty], empty="score")  # evaluation keeps every test sample
    assert scored.shape == (2, len(pred.classes))
    with pytest.raises(ActionposeError, match="list of \\(keypoint"):
        pred.predict_sequences(real[0][None])  # a bare [N, M, T, V, C] array


def test_eval_scores_an_empty_sample_and_says_so(tmp_path):
    """An evaluation keeps every test sample (the protocol), but a sample with nothing in it is said."""
    from actionpose.data.format import save_dataset
    from actionpose.training.evaluate import evaluate

    ds = convert("penn", FIX / "penn")
    ds.annotations[0]["keypoint"][:] = 0
    path = save_dataset(ds, tmp_path / "penn_empty.pkl", validate=False)
    split = next(k for k, v in ds.split.items() if ds.annotations[0]["frame_dir"] in v)
    res = evaluate("penn", path, split)
    assert res["n"] == len(ds.split[split]) and res["notes"] and "no joint seen" in res["notes"][0]
    assert ds.annotations[0]["frame_dir"] in res["notes"][0]


def test_eval_on_split_all_says_it_includes_training_samples(tmp_path):
    from actionpose.training.evaluate import evaluate

    convert("penn", FIX / "penn", tmp_path / "penn.pkl")
    res = evaluate("penn", tmp_path / "penn.pkl", "all")
    assert res["n"] == 4 and any("includes the 2 'train' samples" in n for n in res["notes"]), res["notes"]


def test_ensemble_weights_in_exponent_form_and_a_repeated_key(tmp_path):
    """Ensemble files were read with plain YAML 1.1: ``1e-3`` is text there, so ``weights: [1, 1e-3]`` was refused
    as "not numbers" where a training config takes it (probe); a key written twice kept the last one silently."""
    m = _shipped("penn_body13")
    (tmp_path / "ens.yaml").write_text(f"models: [{m}, {m}]\nweights: [1, 1e-3]\n")
    ens = load_predictor(tmp_path / "ens.yaml")
    assert list(ens.weights) == pytest.approx([1 / 1.001, 0.001 / 1.001])  # normalised to sum 1
    (tmp_path / "twice.yaml").write_text(f"models: [{m}]\nmodels: [{m}, {m}]\n")
    with pytest.raises(ActionposeError, match="twice.yaml: invalid YAML .*'models' appears twice"):
        load_predictor(tmp_path / "twice.yaml")
