"""PYSKL / MMAction2 skeleton pickles: load safely, validate, relabel to contiguous class ids."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from actionpose.data.format import SkeletonDataset, as_label, from_dict, validate_dataset
from actionpose.data.importers import register_importer
from actionpose.data.safe_pickle import safe_load
from actionpose.errors import where


@register_importer("pyskl")
def import_pyskl(src: Path, layout: str | None = None, classes: str | Path | None = None) -> SkeletonDataset:
    """``classes`` is a text file with one class name per line (in label order), if the pickle has none."""
    if src.is_dir():
        raise where(src, "expected one .pkl file, got a directory")
    names = None
    if classes is not None:
        try:
            names = [line.strip() for line in Path(classes).read_text().splitlines() if line.strip()]
        except OSError as e:
            raise where(classes, f"cannot read class list ({e.strerror})") from None
        twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if twice is not None:  # two labels under one name merged them in per-class results, silently
            raise where(classes, f"class name {twice!r} appears twice (lines {names.index(twice) + 1} and "
                                 f"{names.index(twice, names.index(twice) + 1) + 1} of the names); each label needs its own")
    raw = safe_load(src)
    named = names is not None or (isinstance(raw, dict) and raw.get("classes") is not None)  # a class list to obey
    ds = from_dict(raw, source=src, layout=layout, classes=names)
    for i, ann in enumerate(ds.annotations):
        if not isinstance(ann, dict) or "label" not in ann:
            raise where(src, "every annotation needs a 'label'")
        ann["label"] = as_label(ann["label"], f"{src}: annotation {i} ({ann.get('frame_dir', '?')})")
        if ann["label"] < -1:
            raise where(src, f"annotation {i} ({ann.get('frame_dir', '?')}): label {ann['label']} "
                             "(-1 marks unlabelled; class indices start at 0)")
        if named and ann["label"] >= len(ds.classes):  # was given an invented name, class_<label>, without a word
            raise where(classes if names is not None else src,
                        f"annotation {i} ({ann.get('frame_dir', '?')}): label {ann['label']} but the class list has "
                        f"{len(ds.classes)} names (labels 0..{len(ds.classes) - 1})")
    used = sorted({a["label"] for a in ds.annotations if a["label"] >= 0})  # -1 stays unlabelled
    if used != list(range(len(used))) and names is None:
        # Sparse ids (a subset of a larger label space): relabel to 0..K-1, keeping the original id.
        remap = {old: new for new, old in enumerate(used)}
        remap[-1] = -1
        old_classes = ds.classes
        for a in ds.annotations:
            a["label"] = remap[a["label"]]
        ds.classes = [old_classes[o] if o < len(old_classes) else f"class_{o}" for o in used]
        ds.meta["original_labels"] = used
    for a in ds.annotations:
        a.setdefault("total_frames", int(a["keypoint"].shape[1]) if hasattr(a.get("keypoint"), "shape") else 0)
        if isinstance(a.get("frame_dir"), (int, np.integer)) and not isinstance(a["frame_dir"], bool):
            a["frame_dir"] = str(a["frame_dir"])  # splits name samples as text: 0 was an "unknown sample '0'"
        for key in ("keypoint", "keypoint_score"):  # the canonical file holds float32 (int64, float16 came through)
            if isinstance(a.get(key), np.ndarray) and a[key].dtype.kind in "iuf" and a[key].dtype != np.float32:
                a[key] = a[key].astype(np.float32)
    ds.meta.setdefault("source", f"pyskl:{src.name}")
    return validate_dataset(ds, src)
