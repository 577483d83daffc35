"""Importers: public dataset formats -> the canonical :class:`SkeletonDataset`.

Each importer is a function ``(src: Path, **options) -> SkeletonDataset`` registered by format name;
it applies the dataset's standard split protocol under the split names ``train`` and ``test``.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

from actionpose.data.format import SkeletonDataset, save_dataset
from actionpose.errors import ActionposeError, where

Importer = Callable[..., SkeletonDataset]
IMPORTERS: dict[str, Importer] = {}


def register_importer(name: str) -> Callable[[Importer], Importer]:
    def deco(fn: Importer) -> Importer:
        IMPORTERS[name] = fn
        return fn
    return deco


def convert(fmt: str, src: str | Path, out: str | Path | None = None, **options: Any) -> SkeletonDataset:
    """Import ``src`` in format ``fmt``; if ``out`` is given, write the pickle atomically."""
    if fmt not in IMPORTERS:
        raise ActionposeError(f"--format {fmt!r}: allowed values are {', '.join(sorted(IMPORTERS))}")
    src = Path(src)
    if not src.exists():
        raise where(src, "no such file or directory")
    options = {k: v for k, v in options.items() if v is not None}
    accepted = inspect.signature(IMPORTERS[fmt]).parameters
    for k in options:
        if k not in accepted:
            takes = [n for n in ("layout", "classes") if n in accepted]  # the options the CLI exposes
            raise ActionposeError(f"--{k}: not an option of --format {fmt} (it takes: "
                                  f"{', '.join('--' + n for n in takes) or 'no options'})")
    ds = IMPORTERS[fmt](src, **options)
    if out is not None:
        save_dataset(ds, out)
    return ds


# Register the built-in importers (import for side effects).
from actionpose.data.importers import coco, csv_table, ntu, nwucla, penn, pyskl, utd  # noqa: E402,F401
from actionpose.data.importers import pushup  # noqa: E402,F401
from actionpose.data.importers import md4fd, urfd  # noqa: E402,F401

__all__ = ["IMPORTERS", "convert", "register_importer"]
