"""UR Fall Detection (URFD) skeletons: AlphaPose CSV with per-frame labels, and MoveNet per-frame ``.npy``.

Two importers, both in the ``coco13`` layout (COCO-17 without eyes and ears), one sequence per URFD video:

* ``urfd`` — ``pose_urfd_3classes.csv`` (``urfd_falls13``): 30 fall videos, per-frame labels
  0 not fall / 1 falling / 2 lying kept as ``frame_labels`` [T] (int8), plus ``frame_index`` [T]
  (URFD frame numbers, 1-based). Duplicate ``(video, frame)`` rows (a second track) keep the first row;
  frames the tracker lost are filled with the previous pose at score 0 so time stays uniform.
* ``urfd_movenet`` — ``urfd_movenet13_npy.tar.gz`` or its unpacked ``data/extracted_data`` folder: 30 falls
  and 40 ADL. ``1.npy`` (a duplicate of URFD frame 1) is dropped; joints MoveNet zeroed get score 0.
  When ``pose_urfd_3classes.csv`` is found (option ``frame_labels_csv``, or the sibling
  ``../urfd_falls13/`` folder), fall sequences get per-frame labels joined by URFD frame number;
  ADL sequences are all 0.

Leakage: both sets (and MD4FD) come from the same URFD videos, so every sample carries ``video``
(``fall-07`` / ``adl-12``) and :func:`urfd_fold` assigns folds by that id alone: mixing sources stays
sequence-disjoint as long as folds come from here. Splits: ``fold0``..``fold4`` (test members of each
fold) and ``train``/``test`` = fold 0 held out.
"""
from __future__ import annotations

import csv
import io
import re
import tarfile
from pathlib import Path

import numpy as np

from actionpose.data.format import SkeletonDataset, make_annotation, validate_annotation
from actionpose.data.importers import register_importer
from actionpose.data.importers.common import as_distributed
from actionpose.errors import where

URFD_CLASSES = ["not_fall", "fall"]
FRAME_CLASSES = ["not_fall", "falling", "lying"]
NUM_FOLDS = 5
FPS = 30.0
_CSV_NAME = "pose_urfd_3classes.csv"
_VIDEO = re.compile(r"(fall|adl)-(\d+)")
_NPY = re.compile(r"(?:^|/)(fall|not_fall)/(\d+)/(\d+)\.npy$")


def urfd_fold(video: str, num_folds: int = NUM_FOLDS) -> int:
    """Fold of a URFD video id (``fall-07``, ``adl-12``): round-robin within each class, so folds are
    class-balanced and identical for every source extracted from the same videos."""
    m = _VIDEO.fullmatch(video)
    if not m:
        raise where(video, "not a URFD video id (expected fall-NN or adl-NN)")
    return (int(m.group(2)) - 1) % num_folds


def _urfd_dataset(anns: list[dict], source: str, **meta: object) -> SkeletonDataset:
    """Both URFD sources: coco13 sequences with video-disjoint folds (every frame_dir is its URFD video id)."""
    return SkeletonDataset(anns, layout="coco13", classes=list(URFD_CLASSES),
                           split=fold_splits({a["frame_dir"]: a["video"] for a in anns}),
                           meta={"source": source, "coords": "normalised image [0,1]",
                                 "frame_classes": list(FRAME_CLASSES), "fps": FPS, **meta,
                                 "protocol": f"{NUM_FOLDS}-fold by URFD video id (urfd_fold)"})


def fold_splits(videos: dict[str, str], num_folds: int = NUM_FOLDS) -> dict[str, list[str]]:
    """``{frame_dir: video}`` -> fold splits plus train/test (fold 0 held out)."""
    split: dict[str, list[str]] = {f"fold{k}": [] for k in range(num_folds)}
    for name, video in videos.items():
        split[f"fold{urfd_fold(video, num_folds)}"].append(name)
    split["test"] = list(split["fold0"])
    split["train"] = [n for k in range(1, num_folds) for n in split[f"fold{k}"]]
    return split


def read_urfd_csv(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """CSV -> per video ``frame_index`` [T], ``xys`` [T, 13, 3], ``labels`` [T] on a gap-free frame grid."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise where(path, f"cannot read ({e})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or len(header) != 42 or header[0] != "video" or header[-1] != "label":
        raise where(path, "not a URFD pose CSV (expected 42 columns: video, frame, 13 x (x, y, s), label)")
    rows: dict[str, dict[int, tuple[np.ndarray, int]]] = {}
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != 42:
            raise where(path, f"line {line_no}: {len(row)} columns, expected 42")
        try:
            frame, values, label = int(row[1]), np.asarray(row[2:41], dtype=np.float32), int(row[41])
        except ValueError as e:
            raise where(path, f"line {line_no}: {e}") from None
        if label not in (0, 1, 2):
            raise where(path, f"line {line_no}: label {label} outside 0..2")
        if not np.isfinite(values).all():
            raise where(path, f"line {line_no}: NaN or infinite value")
        if not _VIDEO.fullmatch(row[0]):
            raise where(path, f"line {line_no}: video {row[0]!r} is not a URFD id")
        rows.setdefault(row[0], {}).setdefault(frame, (values.reshape(13, 3), label))  # first row wins
    if not rows:
        raise where(path, "no data rows")
    out = {}
    for video, frames in sorted(rows.items()):
        first, last = min(frames), max(frames)
        index = np.arange(first, last + 1)
        xys = np.zeros((len(index), 13, 3), np.float32)
        labels = np.zeros(len(index), np.int8)
        prev = None
        for i, f in enumerate(index):
            if f in frames:
                prev = frames[f]
                xys[i], labels[i] = prev
            else:  # tracker lost the person: hold the pose, mark it unseen
                xys[i, :, :2], xys[i, :, 2], labels[i] = prev[0][:, :2], 0.0, prev[1]
        out[video] = {"frame_index": index, "xys": xys, "labels": labels}
    return out


def _find_csv(src: Path) -> Path:
    if src.is_file():
        return src
    path = src / _CSV_NAME
    if not path.is_file():
        raise where(src, f"no {_CSV_NAME} in this folder")
    return path


@register_importer("urfd")
def import_urfd(src: Path) -> SkeletonDataset:
    path = _find_csv(src)
    anns = []
    for video, seq in read_urfd_csv(path).items():
        xys = seq["xys"]
        ann = make_annotation(video, 1, xys[None, :, :, :2], xys[None, :, :, 2], img_shape=(480, 640),
                              video=video, source="urfd_alphapose", frame_labels=seq["labels"],
                              frame_index=seq["frame_index"].astype(np.int32), fps=FPS)
        validate_annotation(ann, "coco13", len(URFD_CLASSES), path)
        anns.append(ann)
    return _urfd_dataset(anns, "urfd_falls13 (AlphaPose)")


def _read_npy_members(src: Path) -> dict[tuple[str, int], dict[int, np.ndarray]]:
    """(class dir, sequence number) -> {k: (52,) array} from the tar.gz or an unpacked folder."""
    seqs: dict[tuple[str, int], dict[int, np.ndarray]] = {}

    def add(name: str, data: bytes | Path) -> None:
        m = _NPY.search(name)
        if not m:
            return
        try:
            arr = np.load(io.BytesIO(data) if isinstance(data, bytes) else data, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise where(f"{src}:{name}", f"cannot read .npy ({e})") from None
        if arr.shape != (52,):
            raise where(f"{src}:{name}", f"shape {arr.shape}, expected (52,) = 13 joints x (x, y, x_c, y_c)")
        seqs.setdefault((m.group(1), int(m.group(2))), {})[int(m.group(3))] = arr

    if src.is_file():
        try:
            with tarfile.open(src, "r:*") as tar:
                for member in tar:
                    if member.isfile() and member.name.endswith(".npy"):
                        add(member.name, tar.extractfile(member).read())
        except tarfile.TarError as e:
            raise where(src, f"not a readable tar archive ({e})") from None
    else:
        for p in src.rglob("*.npy"):
            add(p.as_posix(), p)
    if not seqs:
        raise where(src, "no <fall|not_fall>/<n>/<k>.npy files found")
    return seqs


@register_importer("urfd_movenet")
def import_urfd_movenet(src: Path, frame_labels_csv: str | Path | None = None) -> SkeletonDataset:
    src = as_distributed(src, "urfd_movenet13_npy.tar.gz")
    labels_by_video: dict[str, dict[str, np.ndarray]] = {}
    csv_path = Path(frame_labels_csv) if frame_labels_csv else None
    if csv_path is None:
        sibling = (src if src.is_dir() else src.parent).parent / "urfd_falls13" / _CSV_NAME
        csv_path = sibling if sibling.is_file() else None
    if csv_path is not None:
        labels_by_video = read_urfd_csv(_find_csv(csv_path))
    anns = []
    for (kind, num), frames in sorted(_read_npy_members(src).items()):
        ks = sorted(frames)
        if ks != list(range(1, len(ks) + 1)):
            raise where(src, f"{kind}/{num}: frame files are not contiguous 1..{len(ks)}")
        if len(ks) < 3:
            raise where(src, f"{kind}/{num}: only {len(ks)} frames")
        x = np.stack([frames[k] for k in ks[1:]]).reshape(-1, 13, 4)[:, :, :2].astype(np.float32)
        score = (np.abs(x).sum(-1) > 0).astype(np.float32)  # MoveNet score < 0.2 was written as (0, 0)
        video = f"{'fall' if kind == 'fall' else 'adl'}-{num:02d}"
        frame_index = np.arange(1, len(x) + 1, dtype=np.int32)  # after dropping 1.npy, row i is URFD frame i+1
        extra = {}
        if kind == "not_fall":
            extra["frame_labels"] = np.zeros(len(x), np.int8)
        elif video in labels_by_video:
            ref = labels_by_video[video]
            pos = np.clip(np.searchsorted(ref["frame_index"], frame_index), 0, len(ref["labels"]) - 1)
            extra["frame_labels"] = ref["labels"][pos].astype(np.int8)  # nearest later labelled frame
            after = frame_index > ref["frame_index"][-1]
            extra["frame_labels"][after] = ref["labels"][-1]
        ann = make_annotation(video, int(kind == "fall"), x[None], score[None], img_shape=(480, 640),
                              video=video, source="urfd_movenet", frame_index=frame_index, fps=FPS, **extra)
        validate_annotation(ann, "coco13", len(URFD_CLASSES), src)
        anns.append(ann)
    return _urfd_dataset(anns, "urfd_movenet13 (MoveNet Thunder)",
                         frame_labels_from=str(csv_path) if csv_path else None)
