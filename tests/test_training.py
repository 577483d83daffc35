"""Training: a tiny real run (2 steps) tracked in a temporary MLflow store, eval CLI, bad configs, NaN stop."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from actionpose.cli import main
from actionpose.data.importers import convert
from actionpose.errors import ActionposeError
from actionpose.training import load_config, make_config, train

FIX = Path(__file__).resolve().parent / "fixtures" / "datasets"
REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = {"name": "stgcnpp_small", "base_channels": 8, "num_stages": 3, "inflate_stages": [3], "down_stages": [3]}


def _tiny_config(tmp: Path, data: Path, **extra) -> dict:
    cfg = {"name": "tiny", "data": {"path": str(data), "layout": "body13"},
           "preprocess": {"clip_len": 8, "test_clips": 2},
           "augment": {"rotate": 0.1, "flip": 0.5},
           "model": dict(TINY_MODEL), "optim": {"epochs": 1, "batch_size": 2},
           "trainer": {"max_steps": 2, "progress_bar": False, "num_threads": 1},
           "mlflow": {"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}", "experiment": "test"},
           "output": {"dir": str(tmp / "run")}}
    for section, values in extra.items():
        cfg.setdefault(section, {}).update(values)
    return make_config(cfg)


@pytest.fixture(scope="module")
def penn_pkl(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "penn.pkl"
    convert("penn", FIX / "penn", out)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, penn_pkl):
    tmp = tmp_path_factory.mktemp("train")
    res = train(_tiny_config(tmp, penn_pkl))
    return tmp, res


def test_tiny_training_run_is_tracked_in_mlflow(trained):
    from mlflow.tracking import MlflowClient

    tmp, res = trained
    assert res.checkpoint.exists() and res.onnx_path.exists()
    assert res.metrics["onnx_max_abs_diff"] <= 1e-4
    assert res.metrics["test_n"] == 2 and 0 <= res.metrics["test_top1"] <= 1
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    run = client.get_run(res.run_id)
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["optim.lr"] == "0.1" and p["model.name"] == "stgcnpp_small" and len(p["data.fingerprint"]) == 16
    assert p["data.dataset_layout"] and p["data.model_layout"]  # the layouts used (data.layout is None unless mapping)
    assert "train_loss" in run.data.metrics and "test_top1" in run.data.metrics
    assert [m.step for m in client.get_metric_history(res.run_id, "train_loss")] == [0]
    names = {a.path for a in client.list_artifacts(res.run_id)}
    assert {"config.yaml", "metrics.json", "confusion.png", "checkpoints", "onnx"} <= names
    assert [a.path for a in client.list_artifacts(res.run_id, "onnx")] == ["onnx/tiny.onnx"]
    versions = client.search_model_versions("name='tiny'")
    assert len(versions) == 1 and versions[0].run_id == res.run_id


def test_registered_pyfunc_runs_onnx(trained, monkeypatch):
    import mlflow.pyfunc

    tmp, res = trained
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/tiny/1")
    x = np.random.default_rng(0).uniform(0, 400, (3, 1, 20, 13, 2)).astype(np.float32)
    out = model.predict(x)
    assert out.shape == (3, 15) and "squat" in out.columns
    np.testing.assert_allclose(out.to_numpy().sum(1), 1, atol=1e-5)
    # samples of different lengths: zero-padded at the end, they score as each alone (the padding was scored as
    # empty frames: top-1 55.8 -> 40.0 % on UTD-MHAD); one sample per DataFrame row, any length, likewise
    import pandas as pd
    from mlflow.exceptions import MlflowException

    short = x[1, :, :12]
    padded = x.copy()
    padded[1, :, 12:] = 0
    alone = model.predict(short[None]).to_numpy()
    np.testing.assert_allclose(model.predict(padded).to_numpy()[1], alone[0], atol=1e-6)
    rows = model.predict(pd.DataFrame({"keypoint": [x[0].tolist(), short.tolist()]})).to_numpy()
    np.testing.assert_allclose(rows[1], alone[0], atol=1e-6)
    np.testing.assert_allclose(rows[0], out.to_numpy()[0], atol=1e-6)
    scored = model.predict(pd.DataFrame({"keypoint": [x[0].tolist()], "keypoint_score": [np.ones((1, 20, 13)).tolist()]}))
    assert scored.shape == (1, 15)
    with pytest.raises(MlflowException, match="keypoint has 12 joints but layout"):  # the reason, not a trace
        model.predict(x[:, :, :, :12])
    with pytest.raises(MlflowException, match="row 0 keypoint: 3 dimensions, expected 4"):
        model.predict(pd.DataFrame({"keypoint": [x[0, 0].tolist()]}))
    with pytest.raises(MlflowException, match="unknown column.*'keypoint_scores'"):  # a typo was dropped silently
        model.predict(pd.DataFrame({"keypoint": [x[0].tolist()], "keypoint_scores": [np.ones((1, 20, 13)).tolist()]}))
    with pytest.raises(MlflowException, match="unknown column.*'kp', 'score'"):  # 'kp' was scored as the keypoints
        model.predict(pd.DataFrame({"kp": [x[0].tolist()], "score": [0]}))
    one = model.predict(pd.DataFrame({0: [x[0].tolist()]})).to_numpy()  # one unnamed column: a plain list
    np.testing.assert_allclose(one[0], out.to_numpy()[0], atol=1e-6)
    assert model.predict(np.zeros((0, 1, 20, 13, 2), np.float32)).shape == (0, 15)
    # and where actionpose is not installed: the registered model brings its code, needs no torch
    from isolated_python import run_without_actionpose

    np.save(tmp / "x.npy", x)
    script = ("import json, sys; import mlflow.pyfunc, numpy as np\n"
              "m = mlflow.pyfunc.load_model('models:/tiny/1')\n"
              "out = m.predict(np.load(sys.argv[1]))\n"
              "print(json.dumps({'probs': out.to_numpy().tolist(), 'actionpose': sys.modules['actionpose'].__file__,"
              " 'heavy': sorted({'torch', 'cv2', 'pytorch_lightning'} & set(sys.modules))}))")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
    got = run_without_actionpose(script, str(tmp / "x.npy"), cwd=tmp)
    assert got["heavy"] == [] and "/code/actionpose/" in got["actionpose"]
    np.testing.assert_allclose(np.asarray(got["probs"]), out.to_numpy(), atol=1e-6)


def test_pyfunc_takes_scores_as_a_last_channel_for_score_trained_models():
    """The array form ({"inputs": ...}) had no place for scores: a model trained with scores scored every seen
    joint as 1 (a probe's clip: 'run' 0.61 with its scores, 'sit' 0.99 without). One channel more carries them."""
    from types import SimpleNamespace

    import pandas as pd
    from mlflow.exceptions import MlflowException

    from actionpose.inference.action_pyfunc import OnnxActionModel

    got = []
    model = OnnxActionModel()
    model.predictor = SimpleNamespace(config=SimpleNamespace(with_score=True), coords=2, num_classes=2,
                                      classes=["a", "b"],
                                      predict_sequences=lambda seqs: got.extend(seqs) or np.full((len(seqs), 2), .5))
    x = np.random.default_rng(0).uniform(1, 400, (2, 1, 20, 13, 3)).astype(np.float32)
    model.predict(None, x)
    assert [k.shape for k, _ in got] == [(1, 20, 13, 2)] * 2
    np.testing.assert_array_equal(got[0][1], x[0, ..., 2]) and np.testing.assert_array_equal(got[1][0], x[1, ..., :2])
    got.clear()
    model.predict(None, pd.DataFrame({"keypoint": [x[0].tolist()]}))
    np.testing.assert_allclose(got[0][1], x[0, ..., 2])
    with pytest.raises(MlflowException, match="scores given twice"):
        model.predict(None, pd.DataFrame({"keypoint": [x[0].tolist()], "keypoint_score": [x[0, ..., 2].tolist()]}))
    got.clear()
    model.predictor.config.with_score = False  # a model without scores: the channels pass through as they are
    model.predict(None, x)
    assert got[0][0].shape == (1, 20, 13, 3) and got[0][1] is None


def test_pyfunc_refuses_one_misspelt_named_column():
    """A DataFrame of one column named 'keypoints' or 'kp' was scored as the keypoints without a word (only an
    unnamed column, as a plain list arrives, may stand for them); with a second column it was already refused."""
    import pandas as pd

    from actionpose.inference.action_pyfunc import _sequences

    x = np.random.default_rng(0).uniform(1, 400, (1, 20, 13, 2)).tolist()
    for name in ("keypoints", "kp"):
        with pytest.raises(ActionposeError, match=f"unknown column.*'{name}'"):
            _sequences(pd.DataFrame({name: [x]}))
    with pytest.raises(ActionposeError, match="no 'keypoint' column"):
        _sequences(pd.DataFrame({"keypoint_score": [x]}))
    assert len(_sequences(pd.DataFrame({0: [x]}))) == 1  # unnamed: a plain list, as MLflow sends one
    assert len(_sequences(pd.DataFrame({"keypoint": [x]}))) == 1


def test_eval_cli_json_keys(trained, penn_pkl, tmp_path, capsys, monkeypatch):
    _, res = trained
    for model in (res.checkpoint, res.onnx_path):
        out = tmp_path / Path(model).suffix[1:]
        assert main(["eval", "--model", str(model), "--data", str(penn_pkl), "--json", "--out", str(out)]) == 0
        got = json.loads(capsys.readouterr().out)
        assert {"top1", "top5", "mean_class_acc", "n"} <= set(got) and got["n"] == 2
        assert (out / "confusion.png").stat().st_size > 1000
        per_class = json.loads((out / "per_class.json").read_text())
        acc = per_class["per_class_acc"]
        assert len(acc) == 15 and acc["squat"] is not None and acc["golf_swing"] is None  # no test sample
    if Path(res.checkpoint).parent.name == "checkpoints":  # the default --out names the run, not just "best"
        monkeypatch.chdir(tmp_path)
        assert main(["eval", "--model", str(res.checkpoint), "--data", str(penn_pkl), "--json"]) == 0
        capsys.readouterr()
        run = Path(res.checkpoint).parent.parent.name
        first = tmp_path / f"eval_{run}_{Path(res.checkpoint).stem}_{Path(penn_pkl).stem}_test"
        assert (first / "per_class.json").exists()
        assert main(["eval", "--model", str(res.checkpoint), "--data", str(penn_pkl), "--json"]) == 0
        capsys.readouterr()  # a second evaluation does not replace the first one's files
        assert (first.parent / f"{first.name}_2" / "per_class.json").exists()
    # checkpoint (PyTorch) and ONNX give the same numbers; an ensemble YAML of the two too
    ens = tmp_path / "ens.yaml"
    ens.write_text(f"models: [{res.onnx_path}, {res.onnx_path}]\n")
    assert main(["eval", "--model", str(ens), "--data", str(penn_pkl), "--json", "--out", str(tmp_path / "e")]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 2


def test_eval_val_split_is_the_slice_training_validated_on(trained, tmp_path, capsys):
    """``--split val`` scores exactly the clips a run chose its epoch on (the datamodule's slice)."""
    from actionpose.data.datamodule import SkeletonDataModule
    from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset
    from actionpose.training.evaluate import evaluate

    tmp, res = trained
    rng = np.random.default_rng(0)
    anns = [make_annotation(f"s{i}", i % 3, rng.uniform(0, 400, (1, 20, 13, 2)).astype(np.float32)) for i in range(15)]
    from actionpose.inference.predictor import ActionPredictor

    classes = ActionPredictor.from_path(res.onnx_path).classes  # eval matches classes by name
    ds = SkeletonDataset(anns, "penn13", classes,
                         split={"train": [f"s{i}" for i in range(12)], "test": ["s12", "s13", "s14"]})
    pkl = tmp_path / "d.pkl"
    save_dataset(ds, pkl)
    cfg = _tiny_config(tmp, pkl)
    cfg["data"]["val_fraction"] = 0.5
    val = SkeletonDataModule(cfg).val_samples
    got = evaluate(res.onnx_path, pkl, "val", val_fraction=0.5)
    assert got["n"] == len(val) == 6
    assert np.array_equal(got["confusion"].sum(1), np.bincount([s.label for s in val], minlength=15))
    assert main(["eval", "--model", str(res.onnx_path), "--data", str(pkl), "--split", "val", "--json",
                 "--out", str(tmp_path / "e")]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3  # the run's fraction (0.1): one clip of each class
    import shutil  # a run trained with data.val_fraction 0.5: its config.yaml beside the model gives the slice

    run5 = tmp_path / "run5"
    run5.mkdir()
    shutil.copy(res.onnx_path, run5 / "m.onnx")
    (run5 / "config.yaml").write_text("seed: 0\ndata:\n  val_fraction: 0.5\n")
    assert main(["eval", "--model", str(run5 / "m.onnx"), "--data", str(pkl), "--split", "val", "--json",
                 "--out", str(tmp_path / "e5")]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 6
    # an ensemble of that run's model twice (paths relative to the YAML): its members' slice, not the defaults
    (tmp_path / "ens.yaml").write_text("models: [run5/m.onnx, run5/m.onnx]\n")
    assert main(["eval", "--model", str(tmp_path / "ens.yaml"), "--data", str(pkl), "--split", "val", "--json",
                 "--out", str(tmp_path / "e7")]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 6
    # members validated on different slices: none is held out from all of them (the defaults were scored, with a
    # note saying no slice was recorded, and a member's training clips were in it)
    run_b = tmp_path / "runb"
    run_b.mkdir()
    shutil.copy(res.onnx_path, run_b / "m.onnx")
    (run_b / "config.yaml").write_text("seed: 1\ndata:\n  val_fraction: 0.4\n")
    (tmp_path / "mixed.yaml").write_text("models: [run5/m.onnx, runb/m.onnx]\n")
    assert main(["eval", "--model", str(tmp_path / "mixed.yaml"), "--data", str(pkl), "--split", "val"]) == 2
    err = capsys.readouterr().err
    assert "validated on different slices" in err and "seed 1" in err and err.count("\n") == 1
    assert main(["eval", "--model", str(tmp_path / "mixed.yaml"), "--data", str(pkl), "--split", "val", "--json",
                 "--val-fraction", "0.5", "--seed", "0", "--out", str(tmp_path / "e8")]) == 0  # said: scored
    assert json.loads(capsys.readouterr().out)["n"] == 6
    (run5 / "copies").mkdir()  # an ONNX file in some folder below a run is not that run's model
    shutil.copy(res.onnx_path, run5 / "copies" / "m.onnx")
    assert main(["eval", "--model", str(run5 / "copies" / "m.onnx"), "--data", str(pkl), "--split", "val", "--json",
                 "--out", str(tmp_path / "e6")]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3
    assert main(["eval", "--model", str(res.onnx_path), "--data", str(pkl), "--split", "val",
                 "--val-fraction", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "--val-fraction" in err and err.count("\n") == 1


def test_val_seed_keeps_one_validation_slice_across_seeds(tmp_path):
    """``data.val_seed`` fixes the slice, so runs with other seeds are compared on the same clips (none of
    which any of them trained on); without it the slice follows the run's seed, as before."""
    from actionpose.data.datamodule import SkeletonDataModule
    from actionpose.data.format import SkeletonDataset, make_annotation

    rng = np.random.default_rng(0)
    anns = [make_annotation(f"s{i}", i % 3, rng.uniform(0, 400, (1, 8, 13, 2)).astype(np.float32)) for i in range(60)]
    ds = SkeletonDataset(anns, "penn13", ["a", "b", "c"], split={"train": [f"s{i}" for i in range(60)]})

    def val_ids(**data):
        cfg = make_config({"data": {"val_fraction": 0.2, **data.pop("data", {})}, **data})
        dm = SkeletonDataModule(cfg, ds)
        assert not {s.name for s in dm.train_samples} & {s.name for s in dm.val_samples}
        return sorted(s.name for s in dm.val_samples)

    base = val_ids(seed=0)
    assert val_ids(seed=1, data={"val_seed": 0}) == base
    assert val_ids(seed=1) != base and val_ids(seed=0, data={"val_seed": 1}) == val_ids(seed=1)
    with pytest.raises(ActionposeError, match=r"data.val_seed.*integer in \[0, 4294967295\] or null"):
        make_config({"data": {"val_seed": "0"}})


def test_eval_refuses_other_layout(trained, tmp_path, capsys):
    from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset

    _, res = trained
    kp = np.random.default_rng(0).uniform(0, 1, (1, 10, 21, 2)).astype(np.float32)
    hands = SkeletonDataset([make_annotation("h0", 0, kp)], "hand21", [f"c{i}" for i in range(15)],
                            split={"test": ["h0"]})
    save_dataset(hands, tmp_path / "hands.pkl")
    assert main(["eval", "--model", str(res.onnx_path), "--data", str(tmp_path / "hands.pkl")]) == 2
    err = capsys.readouterr().err
    assert "hand21" in err and "body13" in err and err.count("\n") == 1
    # an exported model given to export (it said "a pickle that holds more than tensors"), and as --data
    assert main(["export", "--model", str(res.onnx_path), "-o", str(tmp_path / "again.onnx")]) == 2
    assert "is an ONNX model, not a training checkpoint (.ckpt)" in capsys.readouterr().err
    assert main(["eval", "--model", str(res.onnx_path), "--data", str(res.onnx_path)]) == 2
    assert "is an ONNX model, not a dataset pickle" in capsys.readouterr().err
    # a run folder given as the model: said as such (it was onnxruntime's "INVALID_PROTOBUF")
    assert main(["eval", "--model", str(tmp_path), "--data", str(tmp_path / "hands.pkl")]) == 2
    assert "is a folder; give a model file" in capsys.readouterr().err


def test_nan_loss_stops_training(tmp_path, penn_pkl):
    cfg = _tiny_config(tmp_path, penn_pkl, optim={"lr": 1e30, "epochs": 3}, trainer={"max_steps": 6},
                       mlflow={"enabled": False})
    with pytest.raises(ActionposeError, match="loss is (nan|inf)"):
        train(cfg)
    import torch

    for ckpt in (tmp_path / "run" / "checkpoints").glob("*.ckpt"):  # only states from before the NaN
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_nan_loss_deferred_check_stops_before_any_checkpoint(tmp_path, penn_pkl, monkeypatch):
    """The GPU path: the NaN is noted on the device and read at the epoch's end, before the checkpoints."""
    import torch

    from actionpose.training.module import ActionModule

    monkeypatch.setattr(ActionModule, "defer_nonfinite_check", True)
    cfg = _tiny_config(tmp_path, penn_pkl, optim={"lr": 1e30, "epochs": 3}, trainer={"max_steps": 6},
                       mlflow={"enabled": False})
    with pytest.raises(ActionposeError, match=r"loss is (nan|inf) at epoch \d+ step \d+;"):
        train(cfg)
    for ckpt in (tmp_path / "run" / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_deferred_nonfinite_check_names_the_first_bad_step():
    import torch

    from actionpose.training.module import ActionModule

    m = ActionModule.__new__(ActionModule)  # only the check's own state: no model needed
    m._first_nonfinite, m.defer_nonfinite_check = None, True
    steps = iter(range(10))
    type(m).global_step = property(lambda self: self._step)
    type(m).current_epoch = property(lambda self: 2)
    try:
        for value in (1.0, 2.0, float("inf"), float("nan"), 3.0):
            m._step = next(steps)
            m._note_nonfinite(torch.tensor(value))
        with pytest.raises(ActionposeError, match="loss is inf at epoch 2 step 2;"):
            m.raise_if_nonfinite()
        m._first_nonfinite = None
        for value in (1.0, 2.0):
            m._note_nonfinite(torch.tensor(value))
        m.raise_if_nonfinite()  # all finite: nothing raised
    finally:
        del type(m).global_step, type(m).current_epoch


def test_preprocessing_that_cannot_work_on_the_data_fails_before_training(tmp_path, penn_pkl):
    """Body alignment on 2D Penn data: refused when the data module is built, naming the file and reason."""
    from actionpose.data.datamodule import SkeletonDataModule

    cfg = _tiny_config(tmp_path, penn_pkl, preprocess={"align": "body"}, mlflow={"enabled": False})
    with pytest.raises(ActionposeError, match=r"penn.*\.pkl: preprocess.align: 'body' needs 3D keypoints"):
        SkeletonDataModule(cfg)
    with pytest.raises(ActionposeError, match="preprocess.align.*allowed values: none, body"):
        make_config(None, ["preprocess.align=camera"])


def test_config_errors_name_key_and_allowed_values(tmp_path):
    with pytest.raises(ActionposeError, match="'optim.lrr' is unknown; allowed keys in optim: .*lr"):
        make_config({"optim": {"lrr": 0.1}})
    with pytest.raises(ActionposeError, match="preprocess.stream.*allowed values: joint, bone, joint_motion"):
        make_config(None, ["preprocess.stream=hands"])
    with pytest.raises(ActionposeError, match="model.name.*allowed values: .*stgcnpp"):
        make_config({"model": {"name": "gru"}})
    with pytest.raises(ActionposeError, match="optim.epochs"):
        make_config(None, ["optim.epochs=0"])
    for override, expected in [("trainer.limit_val_batches=abc", "trainer.limit_val_batches.*number of batches"),
                               ("trainer.limit_train_batches=1.5", "trainer.limit_train_batches"),
                               ("trainer.num_threads=0", "trainer.num_threads.*integer >= 1"),
                               ("trainer.max_steps=ten", "trainer.max_steps"),
                               ("trainer.accelerator=gpuu", "trainer.accelerator.*allowed values: auto, cpu, gpu"),
                               ("trainer.devices=none", "trainer.devices"),
                               ("trainer.export_onnx=maybe", "trainer.export_onnx.*true or false"),
                               # true trained "epoch 1/True", 1-frame clips, or crashed in torch's DataLoader
                               ("optim.epochs=true", "optim.epochs"), ("preprocess.clip_len=true", "preprocess.clip_len"),
                               ("optim.batch_size=true", "optim.batch_size")]:
        with pytest.raises(ActionposeError, match=expected):
            make_config(None, [override])
    for ok in ("trainer.devices=2", "trainer.devices=[0,1]", "trainer.devices='0,1'", "trainer.limit_val_batches=0",
               "trainer.limit_train_batches=0.25", "trainer.max_steps=-1"):
        make_config(None, [ok])
    with pytest.raises(ActionposeError, match=r"^override 'optim.epochs': expected key=value"):
        make_config(None, ["optim.epochs"])  # said once (the prefix was repeated)
    good = tmp_path / "good.yaml"  # a bad value given on the command line is not blamed on the file
    good.write_text("optim:\n  epochs: 3\n")
    with pytest.raises(ActionposeError, match=r"^override 'optim.epochs=abc': config key 'optim.epochs'"):
        load_config(good, ["model.name=stgcn", "optim.epochs=abc"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(ActionposeError, match=r"bad.yaml: invalid YAML \(line 2, column 1: "):
        load_config(bad)  # where it is, not only "while parsing a flow sequence"
    twice = tmp_path / "twice.yaml"  # plain YAML keeps the last 'epochs' silently
    twice.write_text("optim:\n  epochs: 3\n  lr: 0.1\n  epochs: 30\n")
    with pytest.raises(ActionposeError, match=r"twice.yaml: invalid YAML \(line 4, column 3: key 'epochs' appears twice \(lines 2 and 4\)"):
        load_config(twice)
    merged = tmp_path / "merged.yaml"  # a YAML merge key may still be overridden key by key
    merged.write_text("base: &b {epochs: 3}\noptim:\n  <<: *b\n  epochs: 4\n")
    from actionpose.training.config import yaml_load

    assert yaml_load(merged.read_text())["optim"] == {"epochs": 4}


def test_a_named_split_that_is_not_there_and_bad_model_sizes_are_config_errors(penn_pkl):
    """data.test_split=nosuch used to train and silently skip the test; model.base_channels=-4 was torch's
    "negative dimension" RuntimeError mid-build."""
    from actionpose.data.datamodule import SkeletonDataModule
    from actionpose.models import build_model

    with pytest.raises(ActionposeError, match="'data.test_split': split 'nosuch' not in .*available splits: "):
        SkeletonDataModule(make_config({"data": {"path": str(penn_pkl), "test_split": "nosuch"}}))
    with pytest.raises(ActionposeError, match="'data.train_split': split 'tain' not in"):
        SkeletonDataModule(make_config({"data": {"path": str(penn_pkl), "train_split": "tain"}}))
    for option, message in [({"base_channels": -4}, "model.base_channels: must be an integer >= 1"),
                            ({"dropout": 1.5}, r"model.dropout: must be a number in \[0, 1\)"),
                            ({"num_stages": 4, "inflate_stages": [7]}, "model.inflate_stages: .* 1..num_stages \\(4\\)")]:
        with pytest.raises(ActionposeError, match=message):
            build_model("stgcnpp", "body13", 3, 2, **option)


def test_gpu_accelerator_without_a_gpu_is_one_line_error(tmp_path, capsys):
    """The NW-UCLA GPU config run as it is on a CPU machine: a CLI error naming the key, not Lightning's
    MisconfigurationException traceback."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    cfg = REPO / "configs" / "nwucla" / "ctrgcn_joint_gpu.yaml"
    assert main(["train", "--config", str(cfg), "mlflow.enabled=false", f"output.dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trainer.accelerator" in err and "no usable CUDA GPU" in err
    assert not (tmp_path / "run").exists()


def test_shipped_configs_load():
    for path in sorted((REPO / "configs").rglob("*.yaml")):
        cfg = load_config(path, ["optim.epochs=1"])
        assert cfg["optim"]["epochs"] == 1 and cfg["data"]["path"]


def test_train_cli_bad_override_exit_2(tmp_path, capsys):
    cfg = REPO / "configs" / "penn" / "stgcnpp_joint.yaml"
    assert main(["train", "--config", str(cfg), "optim.momentun=0.5"]) == 2
    err = capsys.readouterr().err
    assert "optim.momentun" in err and "momentum" in err


def test_max_time_stops_a_run_and_still_exports_its_best_checkpoint(tmp_path, penn_pkl):
    """trainer.max_time (minutes) cuts a 500-epoch run after ~1 s: Lightning stops at the limit and the
    run still ends with a tested, exported model (what a time-boxed GPU lease needs)."""
    cfg = _tiny_config(tmp_path, penn_pkl, optim={"epochs": 500}, trainer={"max_steps": -1, "max_time": 1 / 60},
                       mlflow={"enabled": False})
    res = train(cfg)
    assert res.onnx_path is not None and res.onnx_path.exists() and res.checkpoint.exists()
    assert "test_top1" in res.metrics
    import torch

    epochs = [torch.load(c, map_location="cpu", weights_only=False)["epoch"]
              for c in (tmp_path / "run" / "checkpoints").glob("*.ckpt")]
    assert epochs and max(epochs) < 499  # stopped by the clock, not by the epoch count
    with pytest.raises(ActionposeError, match="max_time"):
        train(_tiny_config(tmp_path, penn_pkl, trainer={"max_time": "8:30x"}, mlflow={"enabled": False}))


def _four_epochs_with_validation(tmp: Path, **trainer) -> dict:
    """A 4-epoch tiny run on data with a validation slice, so "best" and "last" can differ."""
    from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset

    rng = np.random.default_rng(0)
    anns = [make_annotation(f"s{i}", i % 3, rng.uniform(0, 400, (1, 20, 13, 2)).astype(np.float32)) for i in range(15)]
    save_dataset(SkeletonDataset(anns, "penn13", ["a", "b", "c"], split={"train": [f"s{i}" for i in range(12)],
                                                                          "test": ["s12", "s13", "s14"]}),
                 tmp / "d.pkl")
    cfg = _tiny_config(tmp, tmp / "d.pkl", optim={"epochs": 4},
                       trainer={"max_steps": -1, "limit_train_batches": 2, **trainer}, mlflow={"enabled": False})
    cfg["data"]["val_fraction"] = 0.5
    return cfg


def test_select_last_tests_and_exports_the_final_epoch(tmp_path):
    """trainer.select=last: the checkpoint tested and exported is the last epoch's, not the best-validation
    one; the exported ONNX computes that checkpoint's logits."""
    import onnxruntime as ort
    import torch

    from actionpose.training.checkpoint import load_checkpoint

    res = train(_four_epochs_with_validation(tmp_path, select="last"))
    assert res.checkpoint.name == "last.ckpt" and res.metrics["selected"] == "last"
    assert torch.load(res.checkpoint, map_location="cpu", weights_only=False)["epoch"] == 3
    assert 0 <= res.metrics["last_val_top1"] <= 1 and "test_top1" in res.metrics
    model, meta, _ = load_checkpoint(res.checkpoint)
    x = torch.randn(2, 1, meta["clip_len"], 13, meta["in_channels"])
    with torch.no_grad():
        want = model.eval()(x).numpy()
    got = ort.InferenceSession(str(res.onnx_path)).run(None, {"keypoints": x.numpy()})[0]
    assert abs(got - want).max() < 1e-4
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    if best["epoch"] != 3:  # best-validation epoch was an earlier one: its weights must not be what shipped
        bmodel, _, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt")
        with torch.no_grad():
            assert abs(bmodel.eval()(x).numpy() - got).max() > 1e-4
    with pytest.raises(ActionposeError, match="trainer.select.*allowed values: best, last"):
        make_config(None, ["trainer.select=final"])


def test_last_ckpt_is_the_newest_epoch_so_resume_goes_on_from_there(tmp_path):
    """last.ckpt holds the newest state even when validation never improves (Lightning 2.6's own save_last
    does not: it stayed at the first epoch), so trainer.resume=last.ckpt goes on from where a run stopped."""
    import torch

    cfg = _four_epochs_with_validation(tmp_path)
    cut = dict(cfg, trainer={**cfg["trainer"], "max_steps": 4}, output={"dir": str(tmp_path / "cut")})
    train(cut)
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 4
    # a resume without the run's name= (the documented form) kept the config's name: a second ONNX file beside
    # the stale one, and a newly registered model; the run keeps its own name now
    again = dict(cfg, name="another_name", trainer={**cfg["trainer"], "resume": str(last)},
                 output={"dir": str(tmp_path / "cut")})
    res = train(again)
    assert res.metrics["epochs"] == 4 and res.onnx_path.name == f"{cfg['name']}.onnx"
    assert sorted(p.name for p in (tmp_path / "cut").glob("*.onnx")) == [f"{cfg['name']}.onnx"]
    done = torch.load(last, map_location="cpu", weights_only=False)
    assert (done["epoch"], done["global_step"]) == (3, 8)


def test_without_a_validation_slice_every_training_clip_is_trained_on(tmp_path):
    """data.val_fraction=0 with trainer.limit_val_batches=0 (the NW-UCLA GPU recipe, which picks no epoch):
    all 12 training clips are fitted, 6 batches of 2 per epoch where a 0.5 slice would leave 3, no validation
    metric is reported, and the last epoch is tested and exported."""
    import torch

    cfg = _four_epochs_with_validation(tmp_path, select="last", limit_train_batches=None, limit_val_batches=0)
    cfg["data"]["val_fraction"] = 0
    cfg["optim"]["epochs"] = 2
    res = train(cfg)
    last = torch.load(res.checkpoint, map_location="cpu", weights_only=False)
    assert res.checkpoint.name == "last.ckpt" and (last["epoch"], last["global_step"]) == (1, 12)
    assert not {"best_val_top1", "last_val_top1"} & set(res.metrics)
    assert res.metrics["test_n"] == 3 and res.onnx_path.exists()


def test_select_best_is_the_default(trained, tmp_path):
    assert make_config({})["trainer"]["select"] == "best"
    _, res = trained  # too few clips per class for a validation slice: best.ckpt holds the last epoch, said so
    assert res.checkpoint.name == "best.ckpt" and res.metrics["selected"] == "last"
    cfg = _four_epochs_with_validation(tmp_path)  # with one: the best-validation epoch
    assert train(cfg).metrics["selected"] == "best"


def test_lr_schedule_warms_up_anneals_and_follows_the_clock_in_a_time_box():
    """Without a time box: linear warm-up, then cosine to min_lr at the last step. With one: a run the clock
    stops at a tenth of its steps has still annealed (the rate follows wall time when that is further on)."""
    import math

    from actionpose.training.module import lr_factor

    f = lr_factor(total=100, warm_frac=0.1, floor=0.01)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(100) == pytest.approx(0.01) and f(500) == pytest.approx(0.01)

    now = [0.0]
    g = lr_factor(total=100, warm_frac=0.1, floor=0.0, budget_s=10.0, clock=lambda: now[0])
    assert g(0) == pytest.approx(0.1)            # first call starts the clock
    now[0] = 5.0                                 # half the box gone at step 5: time leads
    assert g(5) == pytest.approx(0.5 * (1 + math.cos(math.pi * (0.5 - 0.1) / 0.9)))
    now[0] = 10.0
    assert g(10) == pytest.approx(0.0)           # annealed when the box ends, 90 steps early
    now[0] = 0.5                                 # (a clock behind the steps): the steps lead
    assert g(60) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5 / 0.9)))


def test_step_schedule_multiplies_by_gamma_at_each_milestone_and_follows_the_clock():
    """optim.schedule=step (CTR-GCN's MultiStepLR with warm-up): full rate until the first milestone, then
    gamma, gamma^2, ...; in a time box the milestones come by the clock when it is further on."""
    from actionpose.training.module import lr_factor

    # 65 epochs of 10 steps, 5 warm-up epochs, milestone at epoch 50 (CTR-GCN's NW-UCLA recipe)
    f = lr_factor(total=650, warm_frac=5 / 65, floor=0.0, milestones=[50 / 65], gamma=0.1)
    assert f(0) == pytest.approx(1 / 50) and f(49) == pytest.approx(1.0)
    assert f(499) == 1.0 and f(500) == pytest.approx(0.1) and f(649) == pytest.approx(0.1)
    two = lr_factor(total=100, warm_frac=0.0, floor=0.005, milestones=[0.5, 0.8], gamma=0.1)
    assert (two(49), two(50), two(80)) == pytest.approx((1.0, 0.1, 0.01))
    assert lr_factor(total=100, warm_frac=0.0, floor=0.05, milestones=[0.5, 0.8])(90) == pytest.approx(0.05)  # floor
    now = [0.0]
    g = lr_factor(total=650, warm_frac=0.0, floor=0.0, budget_s=10.0, clock=lambda: now[0], milestones=[50 / 65])
    assert g(0) == 1.0
    now[0] = 8.0                                 # 80 % of the box gone at step 100: past the milestone
    assert g(100) == pytest.approx(0.1)


def test_configure_optimizers_wires_the_step_schedule():
    """The module's LambdaLR gets the config's milestones as fractions of the run (epoch 50 of 65)."""
    from types import SimpleNamespace

    from actionpose.training.module import ActionModule

    cfg = make_config({"model": dict(TINY_MODEL), "optim": {"epochs": 65, "lr": 0.1, "warmup_epochs": 5,
                                                            "schedule": "step", "milestones": [50]}})
    mod = ActionModule(cfg, {"layout": "body13", "classes": ["a", "b"], "in_channels": 3})
    mod._trainer = SimpleNamespace(estimated_stepping_batches=650, max_epochs=65)
    sched = mod.configure_optimizers()["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(650):
        lrs.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1 / 50) and lrs[49] == pytest.approx(0.1)
    assert lrs[499] == pytest.approx(0.1) and lrs[500] == pytest.approx(0.01) and lrs[649] == pytest.approx(0.01)


def test_step_schedule_config_is_checked():
    assert make_config({"optim": {"schedule": "step", "milestones": [50], "epochs": 65}})["optim"]["gamma"] == 0.1
    with pytest.raises(ActionposeError, match="optim.schedule.*allowed values: cosine, step"):
        make_config({"optim": {"schedule": "poly"}})
    with pytest.raises(ActionposeError, match="optim.milestones.*needs at least one milestone"):
        make_config({"optim": {"schedule": "step"}})
    with pytest.raises(ActionposeError, match="optim.milestones.*> 0"):
        make_config({"optim": {"schedule": "step", "milestones": [0, 20]}})
    assert make_config({"optim": {"schedule": "step", "milestones": [50], "epochs": 1}})  # never reached: fine
    with pytest.raises(ActionposeError, match="optim.milestones.*increasing"):
        make_config({"optim": {"schedule": "step", "milestones": [10, 5]}})
    with pytest.raises(ActionposeError, match="optim.milestones.*increasing"):
        make_config({"optim": {"schedule": "step", "milestones": [5, 5]}})
    with pytest.raises(ActionposeError, match="optim.gamma"):
        make_config({"optim": {"gamma": 0}})


def test_train_step_rate_benchmark_runs_on_cpu(capsys):
    """benchmarks/train_step_rate.py (used to size GPU runs) prints one table row per model, here on CPU."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_step_rate", REPO / "benchmarks" / "train_step_rate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--models", "ctrgcn_small:2", "stgcnpp_small:2", "--steps", "1", "--device", "cpu"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ctrgcn_small") or
            r.startswith("| stgcnpp_small")]
    assert len(rows) == 2 and all(float(r.split("|")[3]) > 0 for r in rows)
    assert mod.main(["--models", "ctrgcn_small:1", "--count-ops"]) == 0
    calls = int(capsys.readouterr().out.split(": ")[1].split()[0])
    assert calls > 1000  # thousands of ATen calls per step: why the GPU config replays a CUDA graph
    assert mod.main(["--models", "ctrgcn_small:2", "--device", "cpu", "--cuda-graphs"]) == 2
    assert "needs a CUDA device" in capsys.readouterr().out


def test_checkpoint_selection_breaks_validation_ties_on_log_loss():
    """Top-1 decides; among epochs with equal top-1 (a saturated slice) the lower log-loss wins, so a later,
    better-fitted epoch replaces the first one that reached 100 %; the loss never outweighs one clip."""
    from actionpose.training.module import selection_score

    assert selection_score(1.0, 0.05) > selection_score(1.0, 0.40)        # tie on top-1: lower loss wins
    assert selection_score(1.0, 50.0) > selection_score(1 - 1 / 99_999, 0.0)  # one clip of 99,999 still decides
    assert selection_score(0.8235294, 0.7) == pytest.approx(0.8235294, abs=1e-5)


def test_eval_matches_classes_by_name_not_position(trained, penn_pkl, tmp_path):
    """A held-out set whose class list is ordered differently (or lacks classes) is scored against the
    right classes; matched by position it scored 0.17 instead of 0.50 without a word."""
    from actionpose.data.format import load_dataset, save_dataset
    from actionpose.training.evaluate import evaluate

    _, res = trained
    base = evaluate(res.onnx_path, penn_pkl)
    ds = load_dataset(penn_pkl)
    order = list(reversed(ds.classes))
    for a in ds.annotations:
        a["label"] = order.index(ds.classes[a["label"]])
    ds.classes = order
    save_dataset(ds, tmp_path / "reordered.pkl")
    got = evaluate(res.onnx_path, tmp_path / "reordered.pkl")
    assert (got["top1"], got["n"]) == (base["top1"], base["n"])
    assert np.array_equal(got["confusion"], base["confusion"])
    ds.classes = [f"x{i}" for i in range(len(order))]
    save_dataset(ds, tmp_path / "renamed.pkl")
    with pytest.raises(ActionposeError, match="are not among model .* classes are matched by name"):
        evaluate(res.onnx_path, tmp_path / "renamed.pkl")


@pytest.mark.parametrize("override, expected", [
    ("seed=abc", "'seed': must be an integer"), ("data.num_workers=-1", "data.num_workers"),
    ("trainer.precision=bad", "trainer.precision.*allowed values"), ("augment.flip=2", "augment.flip.*probability"),
    ("augment.flip=true", "augment.flip"), ("optim.momentum=5", r"optim.momentum.*\[0, 1\)"),
    ("mlflow.enabled=maybe", "mlflow.enabled.*true or false"), ("name=[1,2]", "'name'"),
    ("optim.lr=.inf", "optim.lr.*finite"), ("trainer.limit_train_batches=0", "would train nothing"),
    ("trainer.max_time=abc", "trainer.max_time"), ("name=team:v2", "'name': 'team:v2' cannot hold ':'"),
    ("name=exp/v1", "cannot hold '/'"), ("mlflow.registered_name=team/ntu", "'mlflow.registered_name'"),
    ("seed=-1", r"'seed': must be an integer in \[0, 4294967295\]"), ("seed=4294967296", "'seed'"),
    ("data.val_seed=-3", "'data.val_seed'")])
def test_bad_config_values_are_refused_before_training(override, expected):
    with pytest.raises(ActionposeError, match=expected):
        make_config(None, [override])


def test_yaml_exponents_are_numbers_and_numeric_names_are_text(tmp_path):
    """PyYAML 1.1 reads 1e-3 as the *string* '1e-3' (so weight_decay=5e-4, as every recipe writes it, was
    refused); a folder or run named 2024 is a name, not a number that crashed later."""
    cfg = make_config(None, ["optim.lr=1e-3", "optim.weight_decay=5e-4", "output.dir=2024", "name=5"])
    assert (cfg["optim"]["lr"], cfg["optim"]["weight_decay"], cfg["output"]["dir"], cfg["name"]) == \
        (0.001, 0.0005, "2024", "5")
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: 1e-2\n")
    assert load_config(f)["optim"]["lr"] == 0.01


def test_train_cli_takes_overrides_on_both_sides_of_a_flag(tmp_path, penn_pkl, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{path: {penn_pkl}}}\n")
    # a bad override after --no-mlflow must be read as an override (and refused as one), not as junk
    assert main(["train", "-c", str(cfg), "optim.epochs=1", "--no-mlflow", "optim.lr=abc"]) == 2
    err = capsys.readouterr().err
    assert "optim.lr" in err and "unrecognized" not in err and err.count("\n") == 1


def test_resume_from_another_model_or_past_its_epochs_is_one_line_and_makes_no_folder(tmp_path, capsys):
    cfg = _four_epochs_with_validation(tmp_path)
    cfg["optim"]["epochs"] = 2
    first = train(dict(cfg, output={"dir": str(tmp_path / "a")}))
    last = first.checkpoint.parent / "last.ckpt"
    other = dict(cfg, model={**cfg["model"], "base_channels": 16}, trainer={**cfg["trainer"], "resume": str(last)},
                 output={"dir": str(tmp_path / "b")})
    with pytest.raises(ActionposeError, match="cannot resume: its model differs from this run's in 'base_channels': 8 there, 16 here"):
        train(other)
    short = dict(cfg, optim={**cfg["optim"], "epochs": 1}, trainer={**cfg["trainer"], "resume": str(last)},
                 output={"dir": str(tmp_path / "c")})
    with pytest.raises(ActionposeError, match="trained 2 epochs, more than optim.epochs=1"):
        train(short)
    finished = dict(cfg, trainer={**cfg["trainer"], "resume": str(last)}, output={"dir": str(tmp_path / "e")})
    with pytest.raises(ActionposeError, match="finished all 2 epochs of optim.epochs=2; raise optim.epochs"):
        train(finished)  # used to "train" zero epochs and report the old run as a new one
    longer = dict(cfg, optim={**cfg["optim"], "epochs": 3}, preprocess={**cfg["preprocess"], "clip_len": 16},
                  trainer={**cfg["trainer"], "resume": str(last)}, output={"dir": str(tmp_path / "f")})
    with pytest.raises(ActionposeError, match="preprocess.clip_len is 16 here but the run trained with 8"):
        train(longer)  # resumed on other clips without a word
    missing = dict(cfg, trainer={**cfg["trainer"], "resume": str(tmp_path / "nope.ckpt")},
                   output={"dir": str(tmp_path / "d")})
    with pytest.raises(ActionposeError, match="no such checkpoint"):
        train(missing)
    assert not any((tmp_path / d).exists() for d in "bcdef")  # nothing half-made


def test_a_new_run_never_lands_on_an_earlier_runs_checkpoints(tmp_path, monkeypatch, capsys):
    """Lightning wrote best-v1.ckpt beside the old best.ckpt, so the documented runs/<name>/checkpoints/
    best.ckpt was the *old* model. The default folder moves on; a folder the user named is refused."""
    cfg = _four_epochs_with_validation(tmp_path)
    cfg["optim"]["epochs"] = 1
    monkeypatch.chdir(tmp_path)
    plain = dict(cfg, output={"dir": None})
    assert train(plain).out_dir == Path("runs/tiny")
    second = train(plain)
    assert second.out_dir == Path("runs/tiny_2") and second.checkpoint.name == "best.ckpt"
    assert "runs/tiny holds an earlier run" in capsys.readouterr().err
    with pytest.raises(ActionposeError, match="output.dir.*already holds an earlier run"):
        train(dict(cfg, output={"dir": "runs/tiny"}))
    # a resume continues in its checkpoint's own folder, never in the folder of the config's name (another
    # run: resuming runs/tiny_2's checkpoint with name tiny wrote best-v1.ckpt and a new ONNX into runs/tiny)
    before = {p: p.stat().st_mtime_ns for p in Path("runs/tiny").rglob("*") if p.is_file()}
    resumed = train(dict(plain, optim={**cfg["optim"], "epochs": 2},
                         trainer={**cfg["trainer"], "resume": "runs/tiny_2/checkpoints/last.ckpt"}))
    assert resumed.out_dir.resolve() == Path("runs/tiny_2").resolve() and resumed.metrics["epochs"] == 2
    assert {p: p.stat().st_mtime_ns for p in Path("runs/tiny").rglob("*") if p.is_file()} == before


def test_unlabelled_samples_and_train_test_overlap_are_refused(tmp_path):
    from actionpose.data.format import load_dataset, save_dataset

    cfg = _four_epochs_with_validation(tmp_path)
    ds = load_dataset(tmp_path / "d.pkl")
    ds.annotations[0]["label"] = -1
    save_dataset(ds, tmp_path / "u.pkl")
    with pytest.raises(ActionposeError, match="unlabelled"):
        train(dict(cfg, data={**cfg["data"], "path": str(tmp_path / "u.pkl")}))
    ds = load_dataset(tmp_path / "d.pkl")
    ds.split["test"].append("s0")
    save_dataset(ds, tmp_path / "o.pkl")
    with pytest.raises(ActionposeError, match="in both split 'train' and split 'test'"):
        train(dict(cfg, data={**cfg["data"], "path": str(tmp_path / "o.pkl")}))


def test_outputs_get_the_umask_mode_not_0600(tmp_path):
    import os

    from actionpose.data.atomic import write_text_atomic

    write_text_atomic(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask
    os.chmod(tmp_path / "a.txt", 0o640)
    write_text_atomic(tmp_path / "a.txt", "y")  # a replaced file keeps its mode
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


def test_a_custom_rig_travels_with_its_data_and_models(tmp_path):
    """The ML engineer's own skeleton: defined once in a YAML file at import, it is stored in the pickle,
    the checkpoint and the ONNX metadata, so a fresh process (nothing imported, no plugin) can inspect,
    evaluate and export it. Before, every later command said "unknown layout 'rig7'"."""
    import csv
    import subprocess
    import sys

    joints = ["head", "neck", "left_hand", "right_hand", "pelvis", "left_foot", "right_foot"]
    (tmp_path / "rig7.yaml").write_text(
        "name: rig7\njoints: [" + ", ".join(joints) + "]\ncenter: pelvis\n"
        "bones: [[head, neck], [neck, left_hand], [neck, right_hand], [neck, pelvis], [pelvis, left_foot], "
        "[pelvis, right_foot]]\n")
    rng = np.random.default_rng(0)
    header = ["sample", "frame", "label", "split"] + [f"{j}_{c}" for j in joints for c in "xy"]
    rows = [header]
    for s in range(12):
        label = ["wave", "squat"][s % 2]
        for f in range(12):
            rows.append([f"s{s}", f, label, "test" if s >= 10 else "train",
                         *np.round(rng.uniform(0, 300, 14) + (s % 2) * 50 * np.sin(f), 2).tolist()])
    with open(tmp_path / "rig.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    pkl = tmp_path / "rig.pkl"
    assert main(["datasets", "convert", "-f", "csv", str(tmp_path / "rig.csv"), "--layout",
                 str(tmp_path / "rig7.yaml"), "-o", str(pkl)]) == 0
    cfg = make_config({"name": "rig", "data": {"path": str(pkl), "val_fraction": 0},
                       "preprocess": {"clip_len": 8, "test_clips": 1}, "model": dict(TINY_MODEL),
                       "optim": {"epochs": 1, "batch_size": 4}, "mlflow": {"enabled": False},
                       "trainer": {"progress_bar": False, "num_threads": 1}, "output": {"dir": str(tmp_path / "run")}})
    res = train(cfg)

    def fresh(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "actionpose", *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)

    info = fresh("datasets", "info", str(pkl), "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["layout"] == "rig7"
    ev = fresh("eval", "--model", str(res.onnx_path), "--data", str(pkl), "--json", "--out", str(tmp_path / "e"))
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["n"] == 2
    ex = fresh("export", "--model", str(res.checkpoint), "-o", str(tmp_path / "again.onnx"))
    assert ex.returncode == 0, ex.stderr
    # the same rig name with head and neck swapped: a resume trained on permuted joints and was refused only
    # after training, with the run folder half rewritten; now refused before anything runs
    (tmp_path / "swapped").mkdir()
    (tmp_path / "swapped" / "rig7.yaml").write_text((tmp_path / "rig7.yaml").read_text().replace(
        "joints: [head, neck,", "joints: [neck, head,"))
    assert fresh("datasets", "convert", "-f", "csv", str(tmp_path / "rig.csv"), "--layout",
                 str(tmp_path / "swapped" / "rig7.yaml"), "-o", str(tmp_path / "swapped.pkl")).returncode == 0
    before = sorted((tmp_path / "run").rglob("*"))
    mtimes = [p.stat().st_mtime for p in before]
    (tmp_path / "c.yaml").write_text(json.dumps({**cfg, "data": {**cfg["data"], "path": str(tmp_path / "swapped.pkl")}}))
    tr = fresh("train", "-c", str(tmp_path / "c.yaml"), "optim.epochs=2", f"trainer.resume={res.checkpoint.parent / 'last.ckpt'}")
    assert tr.returncode == 2 and "cannot resume: its layout definition" in tr.stderr, tr.stderr[-1500:]
    assert sorted((tmp_path / "run").rglob("*")) == before and [p.stat().st_mtime for p in before] == mtimes


def test_a_resumed_run_continues_its_mlflow_run(tmp_path):
    """One run's curves cover the whole training: a resume used to start a second MLflow run."""
    from mlflow.tracking import MlflowClient

    cfg = _four_epochs_with_validation(tmp_path)
    cfg["mlflow"] = {**cfg["mlflow"], "enabled": True, "register": False}
    cut = dict(cfg, trainer={**cfg["trainer"], "max_steps": 4}, output={"dir": str(tmp_path / "cut")})
    first = train(cut)
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    # the same file spelt another way (a relative data.path, as config.yaml's absolute one resumes it) is no change
    import os

    again = train(dict(cfg, data={**cfg["data"], "path": os.path.relpath(cfg["data"]["path"])},
                       trainer={**cfg["trainer"], "resume": str(last)}, output={"dir": str(tmp_path / "cut")}))
    assert again.run_id == first.run_id
    client = MlflowClient(tracking_uri=cfg["mlflow"]["tracking_uri"])
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["actionpose.resumed_from"] == str(last)
    # what the resume changed is on the run too (the params alone said max_steps 4 and no resume)
    assert run.data.params["trainer.max_steps"] == "4" and run.data.tags["actionpose.resumed.trainer.max_steps"] == "-1"
    assert run.data.tags["actionpose.resumed.trainer.resume"] == str(last)
    assert "actionpose.resumed.data.path" not in run.data.tags
    assert sorted({m.step for m in client.get_metric_history(first.run_id, "train_loss")}) == [0, 1, 2, 3]
    for name in ("train_loss", "train_top1", "lr", "val_top1", "val_loss"):  # one point per epoch, at its own
        # step (validation numbers were logged twice, the second time at the next epoch's step)
        assert sorted(m.step for m in client.get_metric_history(first.run_id, name)) == [0, 1, 2, 3], name


def test_a_resume_with_more_epochs_steps_at_the_new_schedules_rate(tmp_path, penn_pkl):
    """Resumed with optim.epochs 3 -> 5, the first step ran at the old schedule's last rate (0.0) before the
    scheduler set the new one (probe): the epoch-4 rate is the new cosine's, not 0."""
    from mlflow.tracking import MlflowClient

    cfg = _tiny_config(tmp_path, penn_pkl, optim={"epochs": 3, "lr": 0.1, "warmup_epochs": 0},
                       trainer={"max_steps": -1, "limit_train_batches": 2})
    first = train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    train(dict(cfg, optim={**cfg["optim"], "epochs": 5}, trainer={**cfg["trainer"], "resume": str(last)}))
    lrs = [m.value for m in sorted(MlflowClient(tracking_uri=cfg["mlflow"]["tracking_uri"])
                                   .get_metric_history(first.run_id, "lr"), key=lambda m: m.step)]
    assert len(lrs) == 5 and lrs[2] > 0 and lrs[3] > 0.01 and lrs[4] < lrs[3], lrs


def test_eval_of_data_the_model_cannot_read_names_both_files(trained, tmp_path, capsys):
    """The layout refusal named two layouts but neither the data file nor the model."""
    from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset

    _, res = trained
    hands = tmp_path / "hands.pkl"
    save_dataset(SkeletonDataset([make_annotation("h0", 0, np.ones((1, 20, 21, 2), np.float32))], "hand21", ["x"],
                                 split={"test": ["h0"]}), hands)
    assert main(["eval", "--model", str(res.onnx_path), "--data", str(hands), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(hands) in err and str(res.onnx_path) in err and "'hand21'" in err


def test_sigterm_during_training_says_how_to_resume(tmp_path):
    """SIGTERM (docker stop, a cluster's time limit) or Ctrl-C ended training with exit 1 and no word; now it
    names the epoch and the checkpoint to resume from and exits 143 (a tracked MLflow run ends KILLED, not FAILED)."""
    import signal
    import subprocess
    import sys
    import time

    cfg = _four_epochs_with_validation(tmp_path)
    cfg["optim"]["epochs"] = 500
    cfg["trainer"]["limit_train_batches"] = None
    cfg["output"] = {"dir": str(tmp_path / "run")}
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "actionpose", "train", "-c", str(tmp_path / "c.yaml")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted in epoch" in err and f"trainer.resume={last}" in err and "Traceback" not in err, err[-2000:]
    # the printed command works as printed (plus a shorter schedule, so that the test ends)
    import re
    import shlex

    hint = shlex.split(re.search(r"continue with: (.*)", err).group(1))
    assert hint[:3] == ["actionpose", "train", "-c"] and Path(hint[3]).is_file()
    done = int(re.search(r"interrupted in epoch (\d+)", err).group(1))
    again = subprocess.run([sys.executable, "-m", "actionpose", *hint[1:], f"optim.epochs={done + 1}"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]


def test_a_stop_after_the_last_epoch_does_not_offer_a_resume_that_is_refused(tmp_path, capsys, monkeypatch):
    """SIGTERM or Ctrl-C after the last epoch had finished, before the test and export, printed "interrupted in
    epoch 5" of a 4-epoch run and a resume line that the resume then refused (the run had finished its epochs)."""
    import pytorch_lightning as pl

    from actionpose.training.train import EpochTimer

    def stop_at_the_end(self, trainer, pl_module):
        raise KeyboardInterrupt  # as SIGTERM (cli/stopping.py) or Ctrl-C arriving there

    monkeypatch.setattr(EpochTimer, "on_train_end", stop_at_the_end, raising=False)
    assert issubclass(EpochTimer, pl.Callback)
    with pytest.raises(KeyboardInterrupt):
        train(_four_epochs_with_validation(tmp_path))
    err = capsys.readouterr().err
    assert "epoch 5" not in err and "trainer.resume=" not in err, err
    assert "all 4 epochs had finished" in err and "actionpose export --model" in err, err


def test_an_ensemble_aligns_class_lists_in_another_order_by_name(trained):
    """Two models of one class list in another order were refused ("different classes"); eval matches
    classes by name, so the ensemble does too. Other class sets are still refused, naming the odd ones."""
    from actionpose.inference.predictor import ActionPredictor, EnsemblePredictor

    _, res = trained
    p = ActionPredictor.from_path(res.onnx_path)

    class Reversed:  # the same model with its class list (and outputs) in reverse order
        def __init__(self, base, classes=None):
            self.base, self.classes = base, classes or base.classes[::-1]
            self.layout, self.path, self.config, self.coords = base.layout, "reversed", base.config, base.coords

        def predict(self, kp, sc=None):
            return self.base.predict(kp, sc)[..., ::-1]

    x = np.random.default_rng(0).uniform(0, 400, (2, 1, 30, 13, 2)).astype(np.float32)
    ens = EnsemblePredictor([p, Reversed(p)])
    np.testing.assert_allclose(ens.predict(x), p.predict(x), atol=1e-6)
    with pytest.raises(ActionposeError, match="different classes than .*in only one of them"):
        EnsemblePredictor([p, Reversed(p, classes=[*p.classes[:-1], "somersault"])])


def test_a_large_validation_fraction_keeps_a_training_clip_of_every_class():
    """data.val_fraction=0.95 put every clip of a 2-clip class into validation (the model never saw that
    class) and trained on a handful of clips without a word."""
    from actionpose.data.datamodule import stratified_split

    labels = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2])
    tr, va = stratified_split(labels, 0.95, 0)
    assert set(labels[tr]) == {0, 1, 2} and len(va) == 10
    tr, va = stratified_split(labels, 0.2, 0)  # ordinary fractions: unchanged
    assert sorted(np.bincount(labels[va], minlength=3)) == [0, 1, 2]


def test_a_failure_after_training_ends_the_mlflow_run_failed(tmp_path, penn_pkl, monkeypatch):
    """A failure in export, test or registration (after every epoch had run) left the MLflow run RUNNING
    forever; it now ends FAILED, as a failure during training does."""
    from mlflow.tracking import MlflowClient

    import actionpose.training.export as export

    def broken(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise ActionposeError("export failed (test)")

    monkeypatch.setattr(export, "export_onnx", broken)
    cfg = _tiny_config(tmp_path, penn_pkl)
    with pytest.raises(ActionposeError, match="export failed"):
        train(cfg)
    client = MlflowClient(tracking_uri=cfg["mlflow"]["tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_a_pyskl_dataset_without_a_test_split_is_noted(tmp_path, penn_pkl, capsys):
    """PYSKL names its splits xsub_train / xsub_val: the default data.test_split=test trained untested without
    a word."""
    from actionpose.data.format import load_dataset, save_dataset

    ds = load_dataset(penn_pkl)
    ds.split = {"xsub_train": ds.split["train"], "xsub_val": ds.split["test"]}
    save_dataset(ds, tmp_path / "x.pkl")
    cfg = _tiny_config(tmp_path, tmp_path / "x.pkl", mlflow={"enabled": False})
    cfg["data"]["train_split"] = "xsub_train"
    res = train(cfg)
    err = capsys.readouterr().err
    assert "has no split 'test' (splits: xsub_train, xsub_val): the run is not tested; data.test_split=xsub_val" in err
    assert not any(k.startswith("test_") for k in res.metrics)


def test_data_layout_can_name_a_layout_file(tmp_path):
    """`convert --layout rig.yaml` took a file but a config's data.layout did not ("unknown layout
    'rig.yaml'"; probe): a YAML-only rig needed a Python plugin to be a training target."""
    from actionpose.training.train import train
    from actionpose.skeleton import get_layout

    b = get_layout("body13")
    rig = tmp_path / "rig.yaml"
    rig.write_text("name: probe_rig_yaml\njoints: [" + ", ".join(b.joints) + "]\nbones: ["
                   + ", ".join(f"[{b.joints[x]}, {b.joints[y]}]" for x, y in b.edges) + "]\ncenter: left_hip\n")
    cfg = _four_epochs_with_validation(tmp_path)
    cfg["optim"]["epochs"] = 1
    cfg["data"]["layout"] = str(rig)
    res = train(cfg)
    from actionpose.inference.predictor import ActionPredictor

    assert ActionPredictor.from_path(res.onnx_path).layout == "probe_rig_yaml"


def test_default_precision_avoids_the_gradscaler_where_bf16_exists(monkeypatch):
    """float16's GradScaler reads a flag on the host every step (a stall per step on a GPU); bf16 needs none."""
    import torch

    from actionpose.training.train import default_precision

    assert default_precision(False) == "32-true"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert default_precision(True) == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert default_precision(True) == "16-mixed"


def test_bf16_on_a_cpu_and_a_moved_model_keeps_its_validation_slice(tmp_path, capsys, monkeypatch):
    """trainer.precision=bf16-mixed trains on a CPU (validation's probabilities came out bf16, which numpy cannot
    hold: a traceback). The model records its validation slice, so `eval --split val` of a copy moved out of its
    run folder scores the run's own slice (it scored the default 0.1 slice without a word); the run folder's
    config.yaml names the data by its absolute path and holds no trainer.resume, so it works from any folder."""
    import shutil

    import yaml

    from actionpose.data.datamodule import SkeletonDataModule

    from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset

    rng = np.random.default_rng(0)
    anns = [make_annotation(f"s{i}", i % 3, rng.uniform(0, 400, (1, 20, 13, 2)).astype(np.float32)) for i in range(15)]
    data = tmp_path / "data" / "d.pkl"
    data.parent.mkdir()
    save_dataset(SkeletonDataset(anns, "penn13", ["a", "b", "c"], split={"train": [f"s{i}" for i in range(12)],
                                                                      "test": ["s12", "s13", "s14"]}), data)
    monkeypatch.chdir(data.parent)
    cfg = _tiny_config(tmp_path, Path(data.name), trainer={"precision": "bf16-mixed"}, mlflow={"enabled": False})
    cfg["data"]["val_fraction"] = 0.5
    res = train(cfg)
    assert 0 <= res.metrics["test_top1"] <= 1
    kept = yaml.safe_load((res.out_dir / "config.yaml").read_text())
    assert kept["data"]["path"] == str(data.resolve()) and kept["trainer"]["resume"] is None
    loose = tmp_path / "elsewhere" / "m.onnx"
    loose.parent.mkdir()
    shutil.copy(res.onnx_path, loose)
    want = len(SkeletonDataModule(cfg).val_samples)
    assert want == 6  # half of each class's 4 training clips (the default fraction 0.1 takes one of each: 3)
    capsys.readouterr()
    assert main(["eval", "--model", str(loose), "--data", str(data), "--split", "val", "--json",
                 "--out", str(tmp_path / "e")]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == want


def test_a_run_that_trains_nothing_says_so_and_leaves_no_folder(tmp_path, penn_pkl):
    """max_steps=0 said "is a folder, not a checkpoint file" (the empty best path read as the cwd), and a too small
    limit_train_batches fraction gave Lightning's traceback; both left a run folder holding only config.yaml."""
    cfg = _tiny_config(tmp_path, penn_pkl, trainer={"max_steps": 0}, mlflow={"enabled": False})
    with pytest.raises(ActionposeError, match="no training step was taken"):
        train(cfg)
    assert not (tmp_path / "run").exists()
    cfg = _tiny_config(tmp_path, penn_pkl, trainer={"limit_train_batches": 0.01}, mlflow={"enabled": False})
    with pytest.raises(ActionposeError, match="training could not start: .*limit_train_batches"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_a_folder_as_the_mlflow_store_is_one_line(tmp_path, penn_pkl):
    """MLflow 3 refuses a folder store ("filesystem tracking backend ... maintenance mode"): a traceback before."""
    for uri in (str(tmp_path / "mlruns"), (tmp_path / "mlruns").as_uri()):  # a path and a file:// URI alike
        cfg = _tiny_config(tmp_path, penn_pkl, mlflow={"tracking_uri": uri})
        with pytest.raises(ActionposeError, match="a local store is a SQLite file: sqlite:///") as e:
            train(cfg)
        # MLflow's two ways out survive (its message cut at 200 characters had lost them)
        assert "MLFLOW_ALLOW_FILE_STORE=true" in str(e.value) and "migrate-filestore" in str(e.value)
        assert f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}" in str(e.value)
        assert not (tmp_path / "run").exists()


def test_classes_and_clips_training_cannot_learn_are_noted(tmp_path, capsys):
    """A class with no training clip (only in test, or in no split) and a clip with no joint seen were trained
    without a word."""
    from actionpose.data.datamodule import SkeletonDataModule
    from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset

    rng = np.random.default_rng(0)
    anns = [make_annotation(f"s{i}", i % 2, rng.uniform(0, 400, (1, 20, 13, 2)).astype(np.float32)) for i in range(8)]
    anns.append(make_annotation("only_test", 2, rng.uniform(0, 400, (1, 20, 13, 2)).astype(np.float32)))
    anns.append(make_annotation("blank", 0, np.zeros((1, 20, 13, 2), np.float32)))
    data = tmp_path / "d.pkl"
    save_dataset(SkeletonDataset(anns, "penn13", ["a", "b", "c", "d"],
                                 split={"train": [f"s{i}" for i in range(6)] + ["blank"],
                                        "test": ["s6", "s7", "only_test"]}), data)
    SkeletonDataModule(_tiny_config(tmp_path, data))
    err = capsys.readouterr().err
    assert "2 of 4 classes have no clip in split 'train' (c, d): the model can never learn them" in err
    assert "1 training clip(s) have no joint seen in any frame, e.g. 'blank'" in err


def test_a_validation_slice_that_is_never_scored_is_noted_once(tmp_path, capsys, recwarn):
    """limit_val_batches=0 with a validation slice: Lightning warned every epoch that val_select was missing."""
    cfg = _four_epochs_with_validation(tmp_path, limit_val_batches=0)
    cfg["optim"]["epochs"] = 2
    res = train(cfg)
    assert res.checkpoint.is_file() and "best_val_top1" not in res.metrics
    assert "validation slice is held out of training but never scored" in capsys.readouterr().err
    assert not [w for w in recwarn if "val_select" in str(w.message)]


def test_flip_on_a_rig_without_left_right_names_is_noted_and_selection_is_named_honestly(tmp_path, capsys):
    """augment.flip on a rig whose names show no sides mirrored every flipped clip into an impossible body
    without a word (only `actionpose layouts` said it); and a run without a validation slice reported
    "selected": "best" for the last epoch it exported."""
    import csv

    joints = ["head", "lsho", "rsho", "lhip", "rhip"]
    (tmp_path / "abbr5.yaml").write_text("name: abbr5\njoints: [" + ", ".join(joints) + "]\ncenter: head\n"
                                         "bones: [[head, lsho], [head, rsho], [lsho, lhip], [rsho, rhip]]\n")
    rng = np.random.default_rng(0)
    rows = [["sample", "frame", "label", "split"] + [f"{j}_{c}" for j in joints for c in "xy"]]
    for s in range(8):
        for f in range(10):
            rows.append([f"s{s}", f, ["a", "b"][s % 2], "test" if s >= 6 else "train",
                         *np.round(rng.uniform(0, 300, 10), 2).tolist()])
    with open(tmp_path / "r.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    assert main(["datasets", "convert", "-f", "csv", str(tmp_path / "r.csv"), "--layout",
                 str(tmp_path / "abbr5.yaml"), "-o", str(tmp_path / "r.pkl")]) == 0
    capsys.readouterr()
    cfg = make_config({"name": "abbr", "data": {"path": str(tmp_path / "r.pkl"), "val_fraction": 0},
                       "augment": {"flip": 0.5}, "preprocess": {"clip_len": 8, "test_clips": 1},
                       "model": dict(TINY_MODEL), "optim": {"epochs": 1, "batch_size": 4}, "mlflow": {"enabled": False},
                       "trainer": {"progress_bar": False, "num_threads": 1}, "output": {"dir": str(tmp_path / "run")}})
    res = train(cfg)
    err = capsys.readouterr().err
    assert "augment.flip=0.5 but layout abbr5 has no left/right joint pairs" in err
    assert "the last epoch is tested and exported" in err and res.metrics["selected"] == "last"


def test_a_resume_from_an_earlier_checkpoint_says_it_rewinds(tmp_path, capsys):
    """best.ckpt of a run that went on: resuming restarted at its epoch without a word (a probe's run went back
    from epoch 82 to 77 and MLflow got two values at those steps)."""
    import torch

    from actionpose.training.checkpoint import _note_rewind

    torch.save({"epoch": 81}, tmp_path / "last.ckpt")
    _note_rewind(tmp_path / "best.ckpt", 76)
    err = capsys.readouterr().err
    assert "best.ckpt ends at epoch 76 but its run reached epoch 82" in err and "epochs 77-82 are trained again" in err
    _note_rewind(tmp_path / "last.ckpt", 82)  # continuing where it stopped: nothing to say
    _note_rewind(tmp_path / "best.ckpt", 82)
    assert capsys.readouterr().err == ""


def test_a_warm_up_as_long_as_the_run_is_noted(tmp_path, penn_pkl, capsys):
    """optim.warmup_epochs=100 with optim.epochs=1 trained at a fraction of the rate without a word (probe)."""
    cfg = _tiny_config(tmp_path, penn_pkl, optim={"warmup_epochs": 2}, mlflow={"enabled": False})
    train(cfg)
    assert "note: optim.warmup_epochs=2 is not below optim.epochs=1: the rate never reaches optim.lr" in capsys.readouterr().err


def test_a_model_that_returns_the_wrong_shape_is_a_one_line_error(tmp_path, penn_pkl, monkeypatch):
    """A new architecture wired into build_model (docs/extending.md) that keeps the person axis, [N, M, K]:
    cross-entropy failed with a torch traceback, and validation's softmax would have read M x K classes."""
    import torch

    import actionpose.training.module as module
    from actionpose.models import build_model

    class KeepsPersons(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)[:, None]  # [N, 1, K]: forgot the mean over persons

    monkeypatch.setattr(module, "build_model", lambda *a, **kw: KeepsPersons(build_model(*a, **kw)))
    cfg = _tiny_config(tmp_path, penn_pkl, mlflow={"enabled": False})
    with pytest.raises(ActionposeError, match=r"model stgcnpp_small: forward returned shape \[\d+, 1, 15\] .*"
                                              r"must return logits \[N, K\] = \[\d+, 15\]"):
        train(cfg)
    x = torch.zeros(2, 3, 1, 8, 13, 3)  # validation's [N, clips, M, T, V, C]
    with pytest.raises(ActionposeError, match=r"forward returned shape \[6, 1, 15\]"):
        module.clip_mean_probs(KeepsPersons(build_model("stgcnpp_small", "body13", 15)).eval(), x, 15, "m")
