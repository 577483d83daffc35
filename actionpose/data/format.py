"""The one canonical sequence format: PYSKL/MMAction2's skeleton annotation pickle.

On disk it is exactly the dict PYSKL's ``PoseDataset`` reads::

    {"split": {name: [frame_dir, ...]},
     "annotations": [{"frame_dir", "label", "total_frames", "img_shape", "original_shape",
                      "keypoint": float32 [M, T, V, C], "keypoint_score": float32 [M, T, V] (2D; optional in 3D)}],
     "layout": "coco17", "classes": ["...", ...]}

``layout`` and ``classes`` are extra top-level keys that PYSKL ignores, so our files load there and
theirs load here (``layout`` is then given by the user or inferred from the joint count).
"""
from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from actionpose.data.atomic import atomic_path
from actionpose.data.safe_pickle import safe_load
from actionpose.errors import ActionposeError, where
from actionpose.skeleton import ensure_layout, get_layout, layout_definition

ALL_SPLIT = "all"  # every sample, for data without splits (see SkeletonDataset.subset)

# Joint count -> layout, for pickles that do not say (PYSKL's own files). 20 is ambiguous.
MAX_CLASSES = 100_000  # class ids a pickle without a class list may use
LAYOUT_BY_JOINTS = {17: "coco17", 25: "ntu25", 13: "body13", 33: "blazepose33", 21: "hand21"}
_JOINT_COUNTS_OF_SEVERAL = {20}  # kinect20 (NW-UCLA) and kinect20_utd order the same 20 joints differently


@dataclass
class SkeletonDataset:
    """Annotations plus the facts PYSKL keeps implicit: the layout and the class names."""

    annotations: list[dict[str, Any]]
    layout: str
    classes: list[str]
    split: dict[str, list[str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.annotations)

    def to_dict(self) -> dict[str, Any]:
        out = {"split": self.split, "annotations": self.annotations, "layout": self.layout,
               "classes": list(self.classes)}
        definition = layout_definition(self.layout)
        if definition is not None:  # a custom rig: the file alone is enough to use it elsewhere
            out["layout_def"] = definition
        if self.meta:
            out["meta"] = self.meta
        return out

    def subset(self, split: str) -> list[dict[str, Any]]:
        """Annotations of one split, in the split's order; ``all`` (unless the file defines a split of that
        name) is every sample, so a dataset without splits (a CSV without a ``split`` column) is usable."""
        if split == ALL_SPLIT and split not in self.split:
            return list(self.annotations)
        self.require_split(split)
        by_name = {a["frame_dir"]: a for a in self.annotations}
        missing = [n for n in self.split[split] if n not in by_name]
        if missing:
            raise ActionposeError(f"split {split!r} names {len(missing)} unknown samples, e.g. {missing[0]!r}")
        return [by_name[n] for n in self.split[split]]

    def require_split(self, split: str, source: object = None) -> None:
        """Refuse a split the data does not define, naming ``source`` (the data file) when given: a command
        that names several files (``eval --model M --data D``) must say which one lacks the split."""
        if split in self.split or split == ALL_SPLIT:
            return
        prefix = f"{source}: " if source is not None else ""
        raise ActionposeError(f"{prefix}split {split!r} not found; available splits: "
                              f"{', '.join(self.split) or 'none'} (or {ALL_SPLIT!r}: every sample)")

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def as_label(value: Any, ctx: str) -> int:
    """A class index, refusing what ``int()`` would quietly bend into one (``True``, ``1.7``, ``"2"``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)) \
            or (isinstance(value, (float, np.floating)) and not float(value).is_integer()):
        raise ActionposeError(f"{ctx}: label {value!r} is not an integer class index")
    return int(value)


def make_annotation(frame_dir: str, label: int, keypoint: np.ndarray, keypoint_score: np.ndarray | None = None,
                    img_shape: tuple[int, int] | None = None, **extra: Any) -> dict[str, Any]:
    """Build one annotation dict with the dtypes and keys PYSKL expects."""
    kp = np.ascontiguousarray(keypoint, dtype=np.float32)
    ann: dict[str, Any] = {"frame_dir": str(frame_dir), "label": int(label), "total_frames": int(kp.shape[1]),
                           "keypoint": kp}
    if img_shape is not None:
        ann["img_shape"] = ann["original_shape"] = (int(img_shape[0]), int(img_shape[1]))
    if keypoint_score is not None:
        ann["keypoint_score"] = np.ascontiguousarray(keypoint_score, dtype=np.float32)
    ann.update(extra)
    return ann


def validate_annotation(ann: dict[str, Any], layout: str, num_classes: int | None, source: object,
                        index: int | None = None) -> None:
    """Raise a one-line error naming the sample and the problem; PYSKL would fail later and vaguely."""
    name = ann.get("frame_dir") if isinstance(ann, dict) else None
    ctx = f"{source}: sample {name!r}" if name is not None else \
        f"{source}: sample {'?' if index is None else f'#{index}'} (no frame_dir)"
    if not isinstance(ann, dict):
        raise ActionposeError(f"{source}: annotation is a {type(ann).__name__}, expected a dict")
    for key in ("frame_dir", "label", "keypoint"):
        if key not in ann:
            raise ActionposeError(f"{ctx}: missing key {key!r}")
    kp = ann["keypoint"]
    if not isinstance(kp, np.ndarray) or kp.ndim != 4:
        raise ActionposeError(f"{ctx}: 'keypoint' must be an array [M, T, V, C], got "
                              f"{getattr(kp, 'shape', type(kp).__name__)}")
    m, t, v, c = kp.shape
    lay = get_layout(layout)
    if t == 0:
        raise ActionposeError(f"{ctx}: empty sequence (0 frames)")
    if v != lay.num_joints:
        raise ActionposeError(f"{ctx}: {v} joints but layout {lay.name} has {lay.num_joints}")
    if c not in (2, 3):
        raise ActionposeError(f"{ctx}: keypoint has {c} channels, expected 2 (x, y) or 3 (x, y, z)")
    for key in ("keypoint", "keypoint_score"):  # an object array failed inside np.isfinite, as a traceback
        arr = ann.get(key)
        if isinstance(arr, np.ndarray) and arr.dtype.kind not in "iuf":
            raise ActionposeError(f"{ctx}: {key!r} holds {arr.dtype} values; numbers are needed (float32)")
    if ann.get("fps") is not None:  # NaN or text failed deep in the counters, 0 was read as unknown (30 fps), unsaid
        fps = ann["fps"]
        ok = isinstance(fps, (int, float, np.integer, np.floating)) and not isinstance(fps, bool) and \
            np.isfinite(fps) and fps > 0
        if not ok:
            raise ActionposeError(f"{ctx}: 'fps' must be a positive number of frames per second, got {fps!r}")
    if not np.isfinite(kp).all():
        bad = int((~np.isfinite(kp)).any(axis=(0, 2, 3)).nonzero()[0][0])
        raise ActionposeError(f"{ctx}: NaN or infinite coordinates (first at frame {bad})")
    if "keypoint_score" in ann:
        sc = ann["keypoint_score"]
        if not isinstance(sc, np.ndarray) or sc.shape != (m, t, v):
            raise ActionposeError(f"{ctx}: 'keypoint_score' shape {getattr(sc, 'shape', None)} != {(m, t, v)}")
        if not np.isfinite(sc).all():
            raise ActionposeError(f"{ctx}: NaN or infinite keypoint scores")
    label = as_label(ann["label"], ctx)
    if num_classes is not None and not 0 <= label < num_classes and label != -1:
        raise ActionposeError(f"{ctx}: label {label} outside 0..{num_classes - 1}")
    tf = ann.get("total_frames", t)
    if int(tf) != t:
        raise ActionposeError(f"{ctx}: total_frames={tf} but keypoint has {t} frames")


def validate_dataset(ds: SkeletonDataset, source: object = "dataset") -> SkeletonDataset:
    get_layout(ds.layout)
    if not ds.annotations:
        raise ActionposeError(f"{source}: no samples")
    twice = next((c for i, c in enumerate(ds.classes) if c in ds.classes[:i]), None)
    if twice is not None:
        raise ActionposeError(f"{source}: class name {twice!r} names two labels ({ds.classes.index(twice)} and "
                              f"{ds.classes.index(twice, ds.classes.index(twice) + 1)}); each label needs its own")
    names = set()
    dims: tuple[int, str] | None = None  # the first sample's coordinates per joint, and its name
    for i, ann in enumerate(ds.annotations):
        validate_annotation(ann, ds.layout, ds.num_classes or None, source, index=i)
        c = int(ann["keypoint"].shape[-1])
        if dims is None:
            dims = (c, ann["frame_dir"])
        elif c != dims[0]:  # 2D and 3D in one dataset failed later, in training or only at its test
            raise ActionposeError(f"{source}: sample {ann['frame_dir']!r} has {c}D keypoints but sample "
                                  f"{dims[1]!r} has {dims[0]}D; one dataset holds one kind")
        if ann["frame_dir"] in names:
            raise ActionposeError(f"{source}: duplicate sample name {ann['frame_dir']!r}")
        names.add(ann["frame_dir"])
    for split, members in ds.split.items():
        unknown = [n for n in members if n not in names]
        if unknown:
            raise ActionposeError(f"{source}: split {split!r} names unknown sample {unknown[0]!r}")
        seen: set = set()
        twice = next((n for n in members if n in seen or seen.add(n)), None)
        if twice is not None:  # counted twice by eval, and the validation slice could take one copy while
            # training kept the other: validation scored clips the model trained on
            raise ActionposeError(f"{source}: split {split!r} names sample {twice!r} twice; list each sample once "
                                  "(data.repeat repeats the training split)")
    return ds


def save_dataset(ds: SkeletonDataset, path: str | Path, validate: bool = True) -> Path:
    """Validate, then write the pickle atomically (temporary file + rename)."""
    path = Path(path)
    if validate:
        validate_dataset(ds, path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(ds.to_dict(), f, protocol=4)
    return path


_NOTED_LAYOUTS: set[str] = set()


def _note_inferred_layout(source: object, joints: int, layout: str) -> None:
    """Once per file and process: the layout was taken from the joint count alone. Why: another skeleton with
    as many joints (Human3.6M's 17 are not COCO's) trained on COCO's graph, with COCO's left/right pairs
    swapped by ``augment.flip``, without a word."""
    key = f"{source}"
    if key in _NOTED_LAYOUTS:
        return
    _NOTED_LAYOUTS.add(key)
    print(f"note: {source}: no 'layout' recorded; its {joints} joints are read as {layout} (PYSKL's order for "
          f"{joints}); if they are in another order, give --layout (`actionpose datasets convert -f pyskl ... "
          "--layout NAME` records it)", file=sys.stderr)


def from_dict(data: Any, source: object = "dataset", layout: str | None = None,
              classes: Iterable[str] | None = None) -> SkeletonDataset:
    """Wrap a PYSKL-style dict (or a bare annotation list, as MMAction2 writes) into a dataset."""
    if isinstance(data, list):
        data = {"annotations": data, "split": {}}
    if not isinstance(data, dict) or "annotations" not in data:
        raise where(source, "not a skeleton annotation file (expected a dict with 'annotations')")
    anns = data["annotations"]
    if not isinstance(anns, list):
        raise where(source, "'annotations' must be a list")
    if not anns:
        raise where(source, "no samples in 'annotations'")
    bad = next((i for i, a in enumerate(anns) if not isinstance(a, dict)), None)
    if bad is not None:
        raise where(source, f"annotation {bad} is a {type(anns[bad]).__name__}, not a dict with 'keypoint' and 'label'")
    if isinstance(data.get("layout_def"), dict):
        ensure_layout(data["layout_def"], str(source))
    layout = layout or data.get("layout")
    if layout is None:
        kp = anns[0].get("keypoint") if isinstance(anns[0], dict) else None
        if not isinstance(kp, np.ndarray) or kp.ndim != 4:  # was "None joints matches no default layout"
            raise where(source, f"annotation 0: 'keypoint' must be a numpy array [M, T, V, C], got "
                                + (f"shape {kp.shape}" if isinstance(kp, np.ndarray) else type(kp).__name__))
        v = kp.shape[2]
        layout = LAYOUT_BY_JOINTS.get(v)
        if layout is None:
            why = "is ambiguous" if v in _JOINT_COUNTS_OF_SEVERAL else "matches no default layout"
            raise where(source, f"no 'layout' recorded and {v} joints {why}; `actionpose datasets convert -f pyskl "
                                f"{source} --layout NAME -o OUT.pkl` records it (or --layout, where a command has it)")
        _note_inferred_layout(source, v, layout)
    if classes is not None:
        classes = list(classes)
    elif data.get("classes") is not None:
        if not isinstance(data["classes"], (list, tuple, np.ndarray)):  # a str became one class per letter, a
            # {label: name} dict a list of its keys ('0', '1', ...), a {name: label} dict its names in key order
            raise where(source, f"'classes' must be a list of class names in label order, got "
                                f"{type(data['classes']).__name__}")
        classes = [str(c) for c in data["classes"]]
    else:
        n = max(as_label(a.get("label", 0), f"{source}: annotation {i}") for i, a in enumerate(anns)) + 1
        if n > MAX_CLASSES:  # label 10**12 built a list of 10**12 names: the machine ran out of memory
            raise where(source, f"label {n - 1} but no 'classes' list: class ids must be below {MAX_CLASSES}; "
                                "number the classes 0..K-1 or store a 'classes' list")
        classes = [f"class_{i}" for i in range(n)]
    raw_split = data.get("split") or {}
    if not isinstance(raw_split, dict):
        raise where(source, f"'split' must be a dict of split name -> list of frame_dir names, got "
                            f"{type(raw_split).__name__}")
    bad = next((k for k, v in raw_split.items() if not isinstance(v, (list, tuple, np.ndarray))), None)
    if bad is not None:  # a str was read one letter per sample name; None or a number raised a TypeError
        raise where(source, f"split {str(bad)!r} must be a list of frame_dir names, got "
                            f"{type(raw_split[bad]).__name__}")
    split = {str(k): [str(x) for x in v] for k, v in raw_split.items()}
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise where(source, f"'meta' must be a dict, got {type(meta).__name__}")
    return SkeletonDataset(annotations=anns, layout=layout, classes=classes, split=split, meta=dict(meta))


def load_dataset(path: str | Path, layout: str | None = None, validate: bool = True) -> SkeletonDataset:
    """Load a canonical (or PYSKL/MMAction2) pickle safely and check it."""
    ds = from_dict(safe_load(path), source=path, layout=layout)
    return validate_dataset(ds, path) if validate else ds


def dataset_info(ds: SkeletonDataset) -> dict[str, Any]:
    """Summary numbers for ``actionpose datasets info``."""
    lengths = np.array([a["keypoint"].shape[1] for a in ds.annotations])
    persons = np.array([a["keypoint"].shape[0] for a in ds.annotations])
    counts = np.bincount([int(a["label"]) for a in ds.annotations if int(a["label"]) >= 0],
                         minlength=ds.num_classes)
    dims = sorted({int(a["keypoint"].shape[3]) for a in ds.annotations})
    return {
        "samples": len(ds), "layout": ds.layout, "num_joints": get_layout(ds.layout).num_joints,
        "coords": dims[0] if len(dims) == 1 else dims, "num_classes": ds.num_classes,
        "classes": {c: int(n) for c, n in zip(ds.classes, counts)},
        "splits": {k: len(v) for k, v in ds.split.items()},
        "frames": {"min": int(lengths.min()), "max": int(lengths.max()), "mean": round(float(lengths.mean()), 1),
                   "median": float(np.median(lengths)), "total": int(lengths.sum())},
        "persons_max": int(persons.max()),
    }
