"""``actionpose layouts [NAME|FILE]``: list layouts or show one's joints and bones.

FILE shows the layout a file defines or carries: a layout ``.yaml``/``.json``, a dataset ``.pkl``, an
exported ``.onnx`` or a training ``.ckpt`` (a custom layout travels inside them, and there was no way to
look at it)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layouts", help="list skeleton layouts, or show one")
    p.add_argument("name", nargs="?", help="layout to show: a name, or a layout .yaml/.json, dataset .pkl, .onnx "
                                           "model or .ckpt that carries one")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from actionpose.skeleton import can_map, get_layout, list_layouts

    if args.name is None:
        for name in list_layouts():
            lay = get_layout(name)
            body13 = "yes" if can_map(lay, "body13") else "no"
            print(f"{name:<14} {lay.num_joints:>3} joints  body13: {body13:<3}  {lay.description}")
        return 0
    from actionpose.skeleton.registry import missing_joints

    lay = get_layout(_layout_of(args.name))
    print(f"{lay.name}: {lay.description}")
    print(f"centre: {lay.center}")
    for i, j in enumerate(lay.joints):
        print(f"  {i:>2} {j}")
    print("bones: " + ", ".join(f"{a}-{b}" for a, b in lay.bones))
    if lay.aliases:
        print("aliases: " + ", ".join(f"{a} -> {j}" for a, j in lay.aliases.items()))
    # what the cross-layout models (fall, penn, the tagger on a frontend) need, and what flip augmentation swaps
    lacking = missing_joints(lay, "body13")
    print("maps to body13: " + ("yes" if not lacking else f"no (none for {', '.join(lacking)})"))
    pairs = lay.symmetric_pairs
    print("left/right pairs (flip): " + (", ".join(f"{lay.joints[a]}<->{lay.joints[b]}" for a, b in pairs)
                                         if pairs else "none found (augment.flip would mirror without swapping sides)"))
    return 0


def _layout_of(name: str) -> str:
    """The layout name for NAME, registering the custom layout a file carries."""
    from pathlib import Path

    suffix = Path(name).suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        from actionpose.skeleton.layout_file import layout_from_option

        return layout_from_option(name)
    if suffix == ".pkl":
        from actionpose.data.format import load_dataset

        return load_dataset(name).layout
    if suffix == ".onnx":
        from actionpose.inference.predictor import ActionPredictor

        return ActionPredictor.from_path(name).layout
    if suffix == ".ckpt":
        from actionpose.training.checkpoint import load_checkpoint

        return load_checkpoint(name)[1]["layout"]
    return name
