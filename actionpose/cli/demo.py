"""``actionpose demo``: the README's main job on the embedded default, offline.

Until the tagger lands this converts the bundled Penn Action samples to the canonical pickle and prints
the dataset summary.
"""
from __future__ import annotations

import argparse
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the bundled sample (offline)")
    p.add_argument("-o", "--output-dir", default="runs/demo", help="where outputs go (default runs/demo)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from actionpose.cli.datasets import print_info
    from actionpose.data.format import dataset_info
    from actionpose.data.importers import convert

    out = Path(args.output_dir) / "penn_samples.pkl"
    ds = convert("penn", ASSETS / "samples" / "penn", out)
    print_info(str(out), dataset_info(ds))
    return 0
