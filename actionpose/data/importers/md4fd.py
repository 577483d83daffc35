"""MD4FD UR-Fall part: ``URFD_normalized.zip`` (or the ``.json`` inside) — 201 windows x 90 frames.

Layout ``mediapipe11`` (11 MediaPipe points; no elbows, so it cannot become body13 — use it for an
11-joint model or as a separate check, never mixed with the other URFD sets across folds). The BAR
feature is kept per window as ``bar`` [T]. Windows overlap by 75 frames, so consecutive windows whose
frames coincide at a shift of 15..75 are grouped (``group``), and folds are group-disjoint:
``fold0``..``fold4`` plus ``train``/``test`` = fold 0 held out.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from actionpose.data.format import SkeletonDataset, make_annotation, validate_annotation
from actionpose.data.importers import register_importer
from actionpose.data.importers.common import as_distributed
from actionpose.errors import where

MD4FD_CLASSES = ["adl", "fall"]
NUM_FOLDS = 5


def _load_windows(src: Path) -> list:
    try:
        if src.suffix == ".zip":
            with zipfile.ZipFile(src) as z:
                names = [n for n in z.namelist() if n.endswith(".json")]
                if not names:
                    raise where(src, "zip holds no .json file")
                return json.loads(z.read(names[0]))
        return json.loads(src.read_text())
    except zipfile.BadZipFile as e:
        raise where(src, f"not a zip file ({e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise where(src, f"invalid JSON ({e})") from None


def overlap_groups(windows: list[np.ndarray]) -> list[int]:
    """Group index per window: windows that share any identical frame vector (the 75-frame overlap of
    the MD4FD cutter) are joined, transitively (union-find), wherever they sit in the file."""
    parent = list(range(len(windows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[bytes, int] = {}
    for i, w in enumerate(windows):
        for row in np.round(w[:, :22], 6):
            key = row.tobytes()
            if key in owner:
                parent[root(i)] = root(owner[key])
            else:
                owner[key] = i
    roots = [root(i) for i in range(len(windows))]
    ids = {r: k for k, r in enumerate(dict.fromkeys(roots))}
    return [ids[r] for r in roots]


@register_importer("md4fd")
def import_md4fd(src: Path) -> SkeletonDataset:
    path = as_distributed(src, "URFD_normalized.zip")
    if not path.is_file():
        raise where(src, "no URFD_normalized.zip in this folder")
    raw = _load_windows(path)
    if not isinstance(raw, list) or not raw:
        raise where(path, "expected a JSON list of windows")
    windows, labels = [], []
    for i, w in enumerate(raw):
        if not isinstance(w, list) or len(w) < 2 or w[-1] not in (0, 1):
            raise where(path, f"window {i}: expected [frame vectors..., label 0/1]")
        try:
            arr = np.asarray(w[:-1], dtype=np.float64)
        except (TypeError, ValueError):
            raise where(path, f"window {i}: frame vectors are not numeric") from None
        if arr.ndim != 2 or arr.shape[1] != 23:
            raise where(path, f"window {i}: shape {arr.shape}, expected (T, 23)")
        windows.append(arr)
        labels.append(int(w[-1]))
    groups = overlap_groups(windows)
    anns, split = [], {f"fold{k}": [] for k in range(NUM_FOLDS)}
    # round-robin folds over groups within each class keeps folds class-balanced and group-disjoint
    order: dict[int, list[int]] = {0: [], 1: []}
    for g, lab in sorted({(g, lab) for g, lab in zip(groups, labels)}):
        order[lab].append(g)
    fold_of = {g: k % NUM_FOLDS for lab in order for k, g in enumerate(order[lab])}
    for i, (arr, lab, g) in enumerate(zip(windows, labels, groups)):
        name = f"md4fd_{i:03d}"
        kp = arr[:, :22].reshape(-1, 11, 2).astype(np.float32)
        ann = make_annotation(name, lab, kp[None], np.ones(kp.shape[:2], np.float32)[None], img_shape=(480, 640),
                              group=int(g), bar=arr[:, 22].astype(np.float32), source="md4fd", fps=30.0)
        validate_annotation(ann, "mediapipe11", len(MD4FD_CLASSES), path)
        anns.append(ann)
        split[f"fold{fold_of[g]}"].append(name)
    split["test"] = list(split["fold0"])
    split["train"] = [n for k in range(1, NUM_FOLDS) for n in split[f"fold{k}"]]
    return SkeletonDataset(anns, layout="mediapipe11", classes=list(MD4FD_CLASSES), split=split,
                           meta={"source": "md4fd (UR-Fall part)", "groups": int(max(groups) + 1),
                                 "coords": "normalised image [0,1]",
                                 "protocol": f"{NUM_FOLDS}-fold by overlap group"})
