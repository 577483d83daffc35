"""``actionpose bench NAME``: benchmarks that print tables (never timed assertions in tests).

Each benchmark lives in ``actionpose/bench/<name>.py`` and exposes ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib

BENCHMARKS = ["gcn", "frontend", "tag", "service"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print its table")
    b = p.add_subparsers(dest="bench_command", metavar="NAME", required=True)
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(f"actionpose.bench.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"actionpose.bench.{name}":
                continue
            raise
        bp = b.add_parser(name, help=module.HELP)
        module.add_arguments(bp)
        bp.set_defaults(func=module.run)
