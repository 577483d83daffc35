"""Generic CSV: one row per frame per person; the simplest way to bring your own skeletons.

Columns (header required, any order):

* ``sample`` — sequence name (all rows of one sequence share it)
* ``frame`` — integer frame index within the sequence
* ``person`` — optional integer person index (default 0)
* ``label`` — class name (or integer id); constant within a sample
* ``split`` — optional split name (e.g. ``train``/``test``)
* ``<joint>_x``, ``<joint>_y`` and optionally ``<joint>_z`` and ``<joint>_score`` for every joint of the
  layout, joints named as in the layout (``actionpose layouts`` lists them). The layout is taken from
  ``--layout`` or inferred from the joint names. Score columns are kept for 3D data too (3D without
  them gets no ``keypoint_score``, as in PYSKL's NTU pickles).
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from actionpose.data.format import SkeletonDataset, make_annotation, validate_annotation
from actionpose.data.importers import register_importer
from actionpose.data.importers.common import find_files
from actionpose.errors import ActionposeError, where
from actionpose.skeleton import get_layout, list_layouts

_META = {"sample", "frame", "person", "label", "split"}
MAX_FRAMES = 100_000  # frames one sample may span: a typo like frame 100000000 would allocate gigabytes


def _infer_layout(joints: set[str], path: Path) -> str:
    for name in list_layouts():
        if set(get_layout(name).joints) == joints:
            return name
    raise where(path, f"joint columns match no known layout ({len(joints)} joints); pass --layout (in Python: layout=layout_from_option(NAME_OR_YAML))")


@register_importer("csv")
def import_csv(src: Path, layout: str | None = None) -> SkeletonDataset:
    rows_by_sample: dict[str, list[dict[str, str]]] = defaultdict(list)
    header: list[str] = []
    files = find_files(src, "*.csv")
    first_file: dict[str, Path] = {}  # sample -> the file it came from: one sample, one file
    for path in files:
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:  # Excel writes a BOM before the header
                reader = csv.DictReader(f)
                this = reader.fieldnames or []
                if not this:
                    raise where(path, "empty file (no header line)")
                if len(this) == 1 and any(d in this[0] for d in ";\t|"):  # Excel in many locales writes ';'
                    raise where(path, f"one column {this[0][:60]!r}: the file is not comma-separated (';' or tab?); "
                                      "save it as CSV with commas")
                twice = sorted({c for c in this if this.count(c) > 1})
                if twice:  # csv.DictReader keeps the last of two same-named columns: the other was lost unsaid
                    raise where(path, f"column(s) {', '.join(map(repr, twice))} appear more than once in the header; "
                                      "every column needs its own name")
                missing = {"sample", "frame", "label"} - set(this)
                if missing:
                    raise where(path, f"missing column(s) {', '.join(sorted(missing))}")
                if header and set(this) != set(header):
                    diff = sorted(set(this) ^ set(header))
                    raise where(path, f"its columns differ from {files[0].name}'s ({', '.join(diff[:4])}"
                                      f"{' ...' if len(diff) > 4 else ''}); every CSV of a dataset needs the same "
                                      "columns")
                header = this
                for i, row in enumerate(reader, start=2):
                    if None in row or any(v is None for v in row.values()):
                        raise where(path, f"line {i}: wrong number of fields")
                    row["__where"] = f"{path}:{i}"
                    for meta in ("sample", "label", "split"):  # "wave " was a class of its own beside "wave"
                        if row.get(meta):
                            row[meta] = row[meta].strip()
                    if first_file.setdefault(row["sample"], path) != path:
                        raise where(path, f"line {i}: sample {row['sample']!r} is also in "
                                          f"{first_file[row['sample']]}; sample names must be unique")
                    rows_by_sample[row["sample"]].append(row)
        except (UnicodeDecodeError, csv.Error) as e:
            raise where(path, f"not a readable CSV ({e})") from None
    if not rows_by_sample:
        raise where(files[0], "no data rows (only a header)")
    coord_cols = [c for c in header if c not in _META]
    joints_in_file = {c.rsplit("_", 1)[0] for c in coord_cols if c.rsplit("_", 1)[-1] in ("x", "y", "z", "score")}
    layout = layout or _infer_layout(joints_in_file, files[0])
    lay = get_layout(layout)
    dims = ("x", "y", "z") if all(f"{j}_z" in header for j in lay.joints) else ("x", "y")
    absent_xy = [f"{j}_{d}" for j in lay.joints for d in ("x", "y") if f"{j}_{d}" not in header]
    if absent_xy:  # said before the z check: a joint missing all its columns was called a missing z column
        raise where(files[0], f"layout {lay.name} needs column {absent_xy[0]!r} ({len(absent_xy)} missing)")
    some_z = [j for j in lay.joints if f"{j}_z" in header]
    if some_z and len(dims) == 2:  # one misspelt head_z turned a whole 3D dataset into 2D without a word
        lacking = [f"{j}_z" for j in lay.joints if f"{j}_z" not in header]
        raise where(files[0], f"z columns for {len(some_z)} of {lay.num_joints} joints; give one for every joint "
                              f"or none (missing: {', '.join(lacking[:3])}{' ...' if len(lacking) > 3 else ''})")
    need = [f"{j}_{d}" for j in lay.joints for d in dims]
    absent = [c for c in need if c not in header]
    if absent:
        raise where(files[0], f"layout {lay.name} needs column {absent[0]!r} ({len(absent)} missing)")
    has_score = all(f"{j}_score" in header for j in lay.joints)
    some = [j for j in lay.joints if f"{j}_score" in header]
    if some and not has_score:  # a lone head_score column was dropped and every score stored as 1
        lacking = [j for j in lay.joints if f"{j}_score" not in header]
        raise where(files[0], f"score columns for {len(some)} of {lay.num_joints} joints; give one for every "
                              f"joint or none (missing: {', '.join(f'{j}_score' for j in lacking[:3])}"
                              f"{' ...' if len(lacking) > 3 else ''})")

    for rows in rows_by_sample.values():
        if not rows[0]["label"].strip():
            raise ActionposeError(f"{rows[0]['__where']}: sample {rows[0]['sample']!r}: empty 'label'")
    labels = {rows[0]["label"] for rows in rows_by_sample.values()}
    if all(lbl.lstrip("-").isdigit() for lbl in labels):
        classes = [str(i) for i in range(max(int(x) for x in labels) + 1)]
    else:
        classes = sorted(labels)
    anns, split = [], defaultdict(list)
    gaps = 0  # frames missing inside samples (stored as not seen, as PYSKL pads a person who is not there)
    partly = 0  # joints with some of their cells empty (x and y written, no score): stored as not found
    named_split = any(r.get("split") for rows in rows_by_sample.values() for r in rows)
    for name, rows in rows_by_sample.items():
        ctx = rows[0]["__where"]
        try:
            frames = np.array([_whole(r["frame"], "frame") for r in rows])
            persons = np.array([_whole(r.get("person") or "0", "person") for r in rows])
            # an empty cell is a joint the tool did not find: stored at (0, 0) with score 0, as PYSKL pads;
            # a written 'nan' stays an error below (a broken value, not an absent one)
            xyz = [[r[c].strip() for c in need] for r in rows]
            coords = np.array([[float(c or 0) for c in row] for row in xyz], np.float32).reshape(len(rows), lay.num_joints, len(dims))
            blank = (np.array(xyz) == "").reshape(coords.shape)
            empty, whole = blank.any(-1), blank.all(-1)
            if has_score:
                cells = [[r[f"{j}_score"].strip() for j in lay.joints] for r in rows]
                scores = np.array([[float(c or 0) for c in row] for row in cells], np.float32)
                empty |= np.array(cells) == ""
                whole &= np.array(cells) == ""
            else:
                scores = np.ones((len(rows), lay.num_joints), np.float32)
            partly += int((empty & ~whole).sum())  # some cells written, some not: dropped, and said so
        except ValueError as e:  # said at its own line, not the sample's first
            line, column = _bad_line(rows, need, has_score, lay.joints) or (ctx, None)
            raise ActionposeError(f"{line}: sample {name!r}: " + (f"column {column!r}: " if column else "")
                                  + f"non-numeric value ({e})") from None
        if (frames < 0).any():  # -1 moved that row to the sample's start and left a gap where it was
            bad = rows[int(np.flatnonzero(frames < 0)[0])]
            raise ActionposeError(f"{bad['__where']}: sample {name!r}: frame {bad['frame'].strip()} is negative; "
                                  "number the rows 0, 1, 2, ... in time order")
        coords[empty], scores[empty] = 0.0, 0.0
        if not np.isfinite(scores).all():
            bad = rows[int(np.flatnonzero(~np.isfinite(scores).all(1))[0])]["__where"]
            raise ActionposeError(f"{bad}: sample {name!r}: NaN or infinite score")
        if len({r["label"] for r in rows}) != 1:  # the line where it changes, not the sample's first
            odd = next(r for r in rows if r["label"] != rows[0]["label"])
            raise ActionposeError(f"{odd['__where']}: sample {name!r} has more than one label ({rows[0]['label']!r} "
                                  f"on {ctx}, {odd['label']!r} here)")
        if not np.isfinite(coords).all():  # said here with its line; validate_annotation knows only the frame
            bad = rows[int(np.flatnonzero(~np.isfinite(coords).reshape(len(rows), -1).all(1))[0])]["__where"]
            raise ActionposeError(f"{bad}: sample {name!r}: NaN or infinite coordinate")
        if named_split and not rows[0].get("split"):  # it would be in no split: never trained or tested on
            raise ActionposeError(f"{ctx}: sample {name!r}: empty 'split' while other samples have one")
        if len({r.get("split") or "" for r in rows}) != 1:
            raise ActionposeError(f"{ctx}: sample {name!r} has more than one split: "
                                  f"{', '.join(sorted({r.get('split') or '(empty)' for r in rows}))}")
        f0, m_ids = frames.min(), sorted(set(persons))
        t = int(frames.max() - f0 + 1)
        steps = np.diff(np.unique(frames))
        if len(steps) and int(np.gcd.reduce(steps)) > 1:  # 0, 2, 4, ...: every other frame exported
            k = int(np.gcd.reduce(steps))
            raise ActionposeError(f"{ctx}: sample {name!r}: 'frame' goes up in steps of {k} ({', '.join(map(str, np.unique(frames)[:3]))}, "
                                  f"...); the frames between would become blank frames (a skeleton of zeros "
                                  f"every {k - 1} of {k} frames). Number the rows 0, 1, 2, ... in time order")
        gaps += int(t - len(np.unique(frames)))
        if t > MAX_FRAMES:
            far = rows[int(np.argmax(frames))]["__where"]  # the row with the frame number that stretches it
            raise ActionposeError(f"{far}: sample {name!r}: frames {f0}..{frames.max()} span {t} frames (limit "
                                  f"{MAX_FRAMES}, ~55 min at 30 fps); a typo in 'frame'? split long recordings "
                                  "into samples")
        seen: dict[tuple[int, int], int] = {}
        for k, (fr, pe) in enumerate(zip(frames.tolist(), persons.tolist())):
            if seen.setdefault((fr, pe), k) != k:
                raise ActionposeError(f"{rows[k]['__where']}: sample {name!r}: frame {fr} person {pe} repeats "
                                      f"{rows[seen[(fr, pe)]]['__where']}")
        kp = np.zeros((len(m_ids), t, lay.num_joints, len(dims)), np.float32)
        sc = np.zeros((len(m_ids), t, lay.num_joints), np.float32)
        mi = np.searchsorted(m_ids, persons)
        kp[mi, frames - f0], sc[mi, frames - f0] = coords, scores
        label = classes.index(rows[0]["label"]) if rows[0]["label"] in classes else int(rows[0]["label"])
        # 3D without score columns follows PYSKL (no keypoint_score); with them, the file's scores are kept
        ann = make_annotation(name, label, kp, sc if len(dims) == 2 or has_score else None)
        validate_annotation(ann, lay.name, len(classes), ctx)
        anns.append(ann)
        if rows[0].get("split"):
            split[rows[0]["split"]].append(name)
    used = set(_META) | {f"{j}_{d}" for j in lay.joints for d in ("x", "y", "z", "score")}
    ignored = [c for c in header if c not in used and not c.startswith("__")]  # head_q: a typo, said not dropped
    return SkeletonDataset(anns, layout=lay.name, classes=classes, split=dict(split),
                           meta={"source": "csv", "missing_frames": gaps, **({"ignored_columns": ignored} if ignored else {}),
                                 **({"partly_empty_joints": partly} if partly else {})})


def _bad_line(rows: list[dict], need: list[str], has_score: bool, joints: list[str]) -> tuple[str, str] | None:
    """``(file:line, column)`` of the first cell that is not a number (empty cells are allowed)."""
    cols = need + ([f"{j}_score" for j in joints] if has_score else [])
    for r in rows:
        for c, whole in [("frame", True), ("person", True)] + [(c, False) for c in cols]:
            cell = r.get(c) or ("0" if c == "person" else "")
            try:
                _whole(cell, c) if whole else float(cell.strip() or 0)
            except ValueError:
                return r["__where"], c
    return None


def _whole(cell: str, column: str) -> int:
    """A frame or person number; ``12.0`` is accepted (pandas writes whole numbers that way once a column
    has an empty cell), ``12.5`` or ``x`` is refused naming the column."""
    try:
        return int(cell)
    except ValueError:
        try:
            f = float(cell)
        except ValueError:
            f = float("nan")
        if not np.isfinite(f) or f != int(f):
            raise ValueError(f"{column} {cell!r} is not a whole number") from None
        return int(f)
