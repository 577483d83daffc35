"""PushFit push-up form (``pushup_form.tar.gz`` of MoveNet COCO-17 JSON): correct vs wrong form.

Read straight from the archive (or an unpacked folder holding ``correct/`` and ``wrong/``). There is
no official split, so this importer makes a stratified 5-fold assignment with a fixed seed (the
authors used stratified 80/20 and 5-fold CV): splits ``fold0``..``fold4`` hold each fold's clips,
``train``/``test`` are folds 1-4 / fold 0. Coordinates are the dataset's letterbox-distorted pixels
(consistent within a clip; the classifier normalises per sequence).
"""
from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np

from actionpose.data.format import SkeletonDataset, make_annotation, validate_annotation
from actionpose.data.importers import register_importer
from actionpose.data.importers.common import as_distributed
from actionpose.errors import where

CLASSES = ["correct", "wrong"]
FOLDS = 5
SEED = 0
_NAME = re.compile(r"(?:^|/)(correct|wrong)/([^/]+)\.json$")


def _frames_to_array(data: object, source: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, list) or not data:
        raise where(source, "expected a non-empty JSON list of frames")
    try:
        arr = np.array([[[k["x"], k["y"], k["score"]] for k in f["keypoints"]] for f in data], dtype=np.float32)
    except (KeyError, TypeError) as e:
        raise where(source, f"frame entries need keypoints[{{x, y, score}}] ({type(e).__name__}: {e})") from None
    if arr.ndim != 3 or arr.shape[1:] != (17, 3):
        raise where(source, f"keypoints per frame must be 17 (MoveNet COCO-17), got array shape {arr.shape}")
    return arr[..., :2], arr[..., 2]


def _members(src: Path):
    """(label, stem, parsed JSON) for every clip in the archive or folder."""
    if src.is_file():
        try:
            tf = tarfile.open(src, "r:*")
        except (tarfile.TarError, OSError) as e:
            raise where(src, f"cannot open archive ({e})") from None
        with tf:
            for m in tf.getmembers():
                hit = _NAME.search(m.name)
                if m.isfile() and hit:
                    raw = tf.extractfile(m).read()
                    yield hit.group(1), hit.group(2), _load(raw, f"{src}:{m.name}")
    else:
        for p in sorted(src.rglob("*.json")):
            hit = _NAME.search(p.as_posix())
            if hit:
                yield hit.group(1), hit.group(2), _load(p.read_bytes(), p)


def _load(raw: bytes, source: object) -> object:
    try:
        return json.load(io.BytesIO(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise where(source, f"invalid JSON ({e})") from None


def stratified_folds(labels: list[int], folds: int = FOLDS, seed: int = SEED) -> list[int]:
    """Fold index per sample: each class shuffled with ``seed`` and dealt round-robin."""
    rng = np.random.default_rng(seed)
    out = [0] * len(labels)
    for c in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == c]
        for k, i in enumerate(rng.permutation(idx)):
            out[int(i)] = k % folds
    return out


@register_importer("pushup")
def import_pushup(src: Path) -> SkeletonDataset:
    src = as_distributed(src, "pushup_form.tar.gz")
    anns = []
    for label, stem, data in _members(src):
        kp, sc = _frames_to_array(data, f"{src}:{label}/{stem}.json")
        ann = make_annotation(f"{label}/{stem}", CLASSES.index(label), kp[None], sc[None])
        validate_annotation(ann, "coco17", len(CLASSES), f"{src}:{label}/{stem}.json")
        anns.append(ann)
    if not anns:
        raise where(src, "no correct/*.json or wrong/*.json clips found (expected the pushup_form archive)")
    # deterministic order regardless of archive order: class, then clip number
    anns.sort(key=lambda a: (a["label"], int(re.sub(r"\D", "", a["frame_dir"]) or 0), a["frame_dir"]))
    fold = stratified_folds([a["label"] for a in anns])
    split = {f"fold{k}": [a["frame_dir"] for a, f in zip(anns, fold) if f == k] for k in range(FOLDS)}
    split["train"] = [a["frame_dir"] for a, f in zip(anns, fold) if f != 0]
    split["test"] = list(split["fold0"])
    return SkeletonDataset(anns, layout="coco17", classes=list(CLASSES), split=split,
                           meta={"source": "pushup_form (PushFit, riyer8/cs231n-pushfit)",
                                 "protocol": f"stratified {FOLDS}-fold, seed {SEED}; train/test = folds 1-4 / 0",
                                 "coords": "letterbox-distorted pixels"})
