"""The ``actionpose`` command: one entry point, one module per subcommand group.

Subcommand modules are thin: parse arguments, call the library, print. Each exposes
``register(subparsers)``; add a new one by listing its module name in ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from actionpose.errors import ActionposeError

# module name under actionpose.cli -> imported lazily so `actionpose --help` stays fast.
COMMANDS = ["datasets", "layouts", "demo", "train", "eval", "export", "bench", "extract", "tag", "fall", "reps"]


def build_parser() -> argparse.ArgumentParser:
    from actionpose import __version__

    parser = argparse.ArgumentParser(prog="actionpose", description="Skeleton-based action recognition: "
                                     "pose extraction, ST-GCN training, tagging and fall detection.")
    parser.add_argument("--version", action="version", version=f"actionpose {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"actionpose.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"actionpose.cli.{name}":
                continue  # subcommand not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # FFmpeg prints its own lines ("moov atom not found") before our one-line error for a bad video; the CLI
    # keeps stderr to that one line. OPENCV_FFMPEG_LOGLEVEL=16 in the environment brings FFmpeg's errors back.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # "[ WARN:0@0.551] global cap_v4l.cpp ..." for a missing camera
    try:
        parser = build_parser()
    except KeyboardInterrupt:  # Ctrl-C while the commands load: a 44-line traceback
        print("interrupted", file=sys.stderr)
        return 130
    args, extra = parser.parse_known_args(argv)
    if extra:  # `train -c C a=1 --no-mlflow b=2`: overrides on both sides of a flag are still overrides
        if getattr(args, "command", None) == "train" and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from actionpose.cli.stopping import sigterm_as_ctrl_c, stopped_by_sigterm

    try:
        with sigterm_as_ctrl_c():
            from actionpose.skeleton import load_plugins

            load_plugins()
            return int(args.func(args) or 0)
    except ActionposeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted" + (" (SIGTERM)" if stopped_by_sigterm() else ""), file=sys.stderr)
        return 143 if stopped_by_sigterm() else 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
