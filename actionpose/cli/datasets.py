"""``actionpose datasets convert|info``."""
from __future__ import annotations

import argparse
import json
import sys

from actionpose.skeleton.layout_file import layout_from_option  # `--layout NAME` or `--layout rig.yaml`


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="import datasets into the canonical pickle; inspect them")
    ds = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)

    from actionpose.data.importers import IMPORTERS

    c = ds.add_parser("convert", help="convert a dataset (file or folder as distributed) to the canonical pickle")
    c.add_argument("src", help="dataset file or folder (searched recursively)")
    c.add_argument("--format", "-f", required=True, choices=sorted(IMPORTERS), help="source format")
    c.add_argument("-o", "--output", required=True, help="output .pkl (written atomically)")
    c.add_argument("--layout", help="layout name, or a YAML/JSON file defining a custom one (name, joints, bones, "
                                    "center); csv/pyskl: when it cannot be inferred")
    c.add_argument("--classes", help="pyskl: text file with one class name per line")
    c.set_defaults(func=_convert)

    pr = ds.add_parser("project", help="project a 3D (Kinect camera-space) dataset to 2D for 2D-frontend models")
    pr.add_argument("file", help="canonical pickle with 3D keypoints")
    pr.add_argument("-o", "--output", required=True, help="output .pkl (written atomically)")
    pr.add_argument("--layout", default="body13", help="map into this layout by joint name (default body13)")
    pr.set_defaults(func=_project)

    i = ds.add_parser("info", help="print samples, classes, splits, layout and frame-length stats")
    i.add_argument("file", help="canonical or PYSKL pickle")
    i.add_argument("--layout", help="layout, for PYSKL pickles that do not record one")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=_info)


def _convert(args: argparse.Namespace) -> int:
    from actionpose.data.format import dataset_info
    from actionpose.data.atomic import check_output_file
    from actionpose.data.importers import convert

    check_output_file(args.output, "--output", inputs=(args.src,))
    options = {}
    if args.layout:
        options["layout"] = layout_from_option(args.layout)
    if args.classes:
        options["classes"] = args.classes
    ds = convert(args.format, args.src, args.output, **options)
    info = dataset_info(ds)
    splits = (", ".join(f"{k}={v}" for k, v in info["splits"].items())
              or "none (train uses every sample; eval --split all scores every sample)")
    print(f"wrote {args.output}: {info['samples']} samples, {info['num_classes']} classes, "
          f"layout {info['layout']}, splits {splits}")
    if ds.classes and all(c.startswith("class_") for c in ds.classes) and not args.classes:
        # a PYSKL pickle carries label ids only
        print(f"note: the file names no classes ({ds.classes[0]}, ...); --classes FILE (one name per line) "
              "gives them names", file=sys.stderr)
    empty = [(i, c) for i, c in enumerate(ds.classes) if not info["classes"].get(c)]
    if empty and args.classes:  # a header line in the names file shifted every name by one, silently
        print(f"note: {len(empty)} class name(s) have no sample ({', '.join(f'{c!r} = label {i}' for i, c in empty[:3])}); "
              f"if --classes {args.classes} has a header line, every name is shifted by one", file=sys.stderr)
    elif empty:  # numeric labels 3, 7 made classes 0..7: a model would train with empty outputs, unsaid
        shown = f"{', '.join(repr(c) for _, c in empty[:5])}{' ...' if len(empty) > 5 else ''}"
        why = ("numeric labels are class indices, so every index up to the largest is a class; give the labels as "
               "names to have only the classes you use") if args.format in ("csv", "pyskl") else (
               f"the {args.format} importer keeps the dataset's whole class list, and this source holds part of it")
        print(f"note: {len(empty)} of {len(ds.classes)} classes have no sample ({shown}): {why}", file=sys.stderr)
    if "train" in (ds.split or {}):  # a class that only the test split holds cannot be learnt
        by_split = {k: {a["label"] for a in ds.subset(k)} for k in ds.split}
        for k, labels in by_split.items():
            lonely = sorted(labels - by_split["train"])
            if k != "train" and lonely:
                print(f"note: class(es) {', '.join(repr(ds.classes[c]) for c in lonely[:5])} are in split {k!r} but "
                      "not in 'train': a model cannot learn them", file=sys.stderr)
    if ds.meta.get("ignored_columns"):
        print(f"note: column(s) not used: {', '.join(ds.meta['ignored_columns'])} (not a joint of layout "
              f"{info['layout']})", file=sys.stderr)
    if ds.meta.get("partly_empty_joints"):  # x and y written but the score cell empty: dropped without a word
        print(f"note: {ds.meta['partly_empty_joints']} joint(s) have some cells empty (e.g. x and y but no score): "
              "stored as not found (zeros, score 0); an empty cell means the joint was not found", file=sys.stderr)
    if ds.meta.get("missing_frames"):
        print(f"note: {ds.meta['missing_frames']} frame(s) missing inside samples (gaps in 'frame') are stored "
              "as not seen (zeros, score 0)", file=sys.stderr)
    return 0


def _project(args: argparse.Namespace) -> int:
    from actionpose.data.format import load_dataset, save_dataset
    from actionpose.data.atomic import check_output_file
    from actionpose.data.project import project_dataset

    check_output_file(args.output, "--output", inputs=(args.file,))
    ds = project_dataset(load_dataset(args.file), args.layout)
    save_dataset(ds, args.output)
    print(f"wrote {args.output}: {len(ds)} samples, 2D, layout {ds.layout}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from actionpose.data.format import dataset_info, load_dataset

    info = dataset_info(load_dataset(args.file, layout=args.layout))
    if args.json:
        print(json.dumps(info))
        return 0
    print_info(args.file, info)
    return 0


def print_info(name: str, info: dict) -> None:
    f = info["frames"]
    print(f"{name}")
    print(f"  samples   {info['samples']}")
    print(f"  layout    {info['layout']} ({info['num_joints']} joints, {info['coords']}D)")
    print(f"  splits    " + (", ".join(f"{k}: {v}" for k, v in info["splits"].items()) or "none"))
    print(f"  frames    min {f['min']}, median {f['median']:g}, mean {f['mean']}, max {f['max']}, total {f['total']}")
    print(f"  persons   up to {info['persons_max']} per sample")
    print(f"  classes   {info['num_classes']}")
    width = max(len(c) for c in info["classes"]) if info["classes"] else 0
    for c, n in info["classes"].items():
        print(f"    {c:<{width}}  {n}")
