"""``actionpose layouts [NAME]``: list layouts or show one's joints and bones."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layouts", help="list skeleton layouts, or show one")
    p.add_argument("name", nargs="?", help="layout to show")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from actionpose.skeleton import can_map, get_layout, list_layouts

    if args.name is None:
        for name in list_layouts():
            lay = get_layout(name)
            body13 = "yes" if can_map(lay, "body13") else "no"
            print(f"{name:<14} {lay.num_joints:>3} joints  body13: {body13:<3}  {lay.description}")
        return 0
    lay = get_layout(args.name)
    print(f"{lay.name}: {lay.description}")
    print(f"centre: {lay.center}")
    for i, j in enumerate(lay.joints):
        print(f"  {i:>2} {j}")
    print("bones: " + ", ".join(f"{a}-{b}" for a, b in lay.bones))
    return 0
