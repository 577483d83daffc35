"""Push-up form: the pushup_form importer (tiny archives + the real one) and the shipped form model."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from actionpose.data.importers import convert
from actionpose.errors import ActionposeError
from conftest import shared_path


def _clip(t: int = 20, joints: int = 17, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [{"keypoints": [{"x": float(x), "y": float(y), "score": 0.8} for x, y in rng.uniform(0, 300, (joints, 2))]}
            for _ in range(t)]


def _archive(path, files: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tf:
        for name, raw in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return path


def test_importer_on_small_archive(tmp_path):
    files = {f"json/movenet/{c}/{c}{i}.json": json.dumps(_clip(seed=i)).encode()
             for c in ("correct", "wrong") for i in range(1, 6)}
    ds = convert("pushup", _archive(tmp_path / "p.tar.gz", files), tmp_path / "p.pkl")
    assert (tmp_path / "p.pkl").exists()
    assert len(ds) == 10 and ds.layout == "coco17" and ds.classes == ["correct", "wrong"]
    assert ds.annotations[0]["keypoint"].shape == (1, 20, 17, 2)
    assert ds.annotations[0]["keypoint_score"].shape == (1, 20, 17)
    folds = [set(ds.split[f"fold{k}"]) for k in range(5)]
    assert sum(len(f) for f in folds) == 10 and all(len(f) == 2 for f in folds)
    folder = tmp_path / "pushup_form"  # the dataset folder as distributed, holding the archive
    folder.mkdir()
    _archive(folder / "pushup_form.tar.gz", files)
    assert [a["frame_dir"] for a in convert("pushup", folder).annotations] == [a["frame_dir"] for a in ds.annotations]
    for f in folds:   # stratified: one of each class per fold
        assert {n.split("/")[0] for n in f} == {"correct", "wrong"}
    assert set(ds.split["test"]) == folds[0] and not set(ds.split["train"]) & folds[0]


@pytest.mark.parametrize("raw,match", [(b"{not json", "invalid JSON"), (json.dumps(_clip(joints=16)).encode(), "17"),
                                       (b"[]", "non-empty"), (b'[{"kp": 1}]', "keypoints")])
def test_importer_bad_member_names_the_file(tmp_path, raw, match):
    path = _archive(tmp_path / "bad.tar.gz", {"json/movenet/wrong/wrong3.json": raw})
    with pytest.raises(ActionposeError, match=f"wrong3.json.*{match}|{match}"):
        convert("pushup", path)


def test_importer_empty_or_broken_archive(tmp_path):
    with pytest.raises(ActionposeError, match="no correct"):
        convert("pushup", _archive(tmp_path / "e.tar.gz", {"other/x.json": b"[]"}))
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(ActionposeError, match="cannot open archive"):
        convert("pushup", tmp_path / "junk.tar.gz")


def test_importer_on_real_archive():
    ds = convert("pushup", shared_path("datasets", "pushup_form", "pushup_form.tar.gz"))
    labels = np.array([a["label"] for a in ds.annotations])
    assert len(ds) == 265 and (labels == 0).sum() == 140 and (labels == 1).sum() == 125
    assert sorted(len(ds.split[f"fold{k}"]) for k in range(5)) == [53] * 5


def _form_model():
    pytest.importorskip("actionpose.inference.predictor", reason="ONNX predictor not part of this build")
    from actionpose.inference.form import FORM_MODEL

    if not FORM_MODEL.exists():
        pytest.skip("push-up form model not shipped in this build")
    return FORM_MODEL


def test_form_judge_per_rep_on_synthetic_pushups():
    from actionpose.inference.form import PushupFormJudge
    from test_reps import _phase, _pushup, to_image

    ph, _ = _phase(4, 1.5, 30.0)
    kp = to_image(_pushup(ph))
    res = PushupFormJudge(_form_model()).judge(kp, layout="body13")
    assert res.label in ("correct", "wrong") and 0 <= res.p_correct <= 1
    assert len(res.reps) == 4
    assert all(r.label in ("correct", "wrong") and r.start_s < r.end_s for r in res.reps)
    json.dumps(res.to_dict())


def test_reps_cli_judges_the_form_of_the_counted_reps(tmp_path, capsys):
    """`actionpose reps X --form`: the form of each rep the count reported (same times) and of the clip."""
    from actionpose.cli import main
    from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset
    from test_reps import _phase, _pushup, to_image

    _form_model()
    ph, _ = _phase(3, 1.5, 30.0)
    kp = to_image(_pushup(ph)).astype(np.float32)
    pkl = tmp_path / "p.pkl"
    save_dataset(SkeletonDataset([make_annotation("set1", 0, kp[None])], "body13", ["pushup"]), pkl)
    assert main(["reps", str(pkl), "--form", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["set1"]
    assert got["exercise"] == "push_up" and got["count"] == 3
    assert got["form"]["label"] in ("correct", "wrong") and 0 <= got["form"]["p_correct"] <= 1
    assert [(r["start_s"], r["end_s"]) for r in got["form"]["reps"]] == [(r["start_s"], r["end_s"]) for r in got["reps"]]
    assert main(["reps", str(pkl), "--form"]) == 0
    assert "set1: form " in capsys.readouterr().out
    assert main(["reps", str(pkl), "--form", "--exercise", "squat"]) == 2
    err = capsys.readouterr().err
    assert "--form judges push-ups only" in err and err.count("\n") == 1
    # no push-up counted (a person standing still): "form wrong (P(correct) 0.00)" judged nothing
    still = np.repeat(kp[:1], 90, axis=0)
    save_dataset(SkeletonDataset([make_annotation("still", 0, still[None])], "body13", ["pushup"]), tmp_path / "s.pkl")
    assert main(["reps", str(tmp_path / "s.pkl"), "--form"]) == 0
    assert "still: form not judged (no push-up counted)" in capsys.readouterr().out
    assert main(["reps", str(tmp_path / "s.pkl"), "--form", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["still"]
    assert got["count"] == 0 and got["form"] is None


def test_tag_refuses_the_form_model(capsys):
    """pushup_form judges push-up clips; as a `tag` model it labelled a person drinking water "wrong", score 1.00."""
    from actionpose.cli import main

    _form_model()
    assert main(["tag", "nothing.mp4", "--model", "pushup_form"]) == 2
    err = capsys.readouterr().err
    assert "actionpose reps" in err and "--form" in err and err.count("\n") == 1


def test_form_model_accuracy_on_held_out_fold(tmp_path):
    from actionpose.inference.form import evaluate

    model = _form_model()
    convert("pushup", shared_path("datasets", "pushup_form", "pushup_form.tar.gz"), tmp_path / "p.pkl")
    out = evaluate(tmp_path / "p.pkl", model, "fold0")
    assert out["clips"] == 53
    assert out["clip_accuracy"] >= 0.6   # chance is 0.53 (majority class); measured value in the model card
