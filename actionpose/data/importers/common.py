"""Helpers shared by importers: finding files, reading .mat/.json with one-line errors."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from actionpose.errors import where


def find_files(src: Path, pattern: str) -> list[Path]:
    """``src`` itself if it is a file, else every file matching ``pattern`` below it (sorted)."""
    if src.is_file():
        return [src]
    files = sorted(p for p in src.rglob(pattern) if p.is_file())
    if not files:
        raise where(src, f"no {pattern} files found (searched recursively)")
    return files


def as_distributed(src: Path, archive: str) -> Path:
    """The dataset's ``archive`` when ``src`` is the folder it is distributed in, else ``src``: users
    pass the dataset's folder (as for Penn Action or NW-UCLA), and "no files found" in a folder that
    holds the very archive the importer reads was a needless dead end."""
    return src / archive if src.is_dir() and (src / archive).is_file() else src


def read_mat(path: Path) -> dict[str, Any]:
    import scipy.io

    try:
        return scipy.io.loadmat(path)
    except Exception as e:  # scipy raises many types for corrupt files
        raise where(path, f"cannot read .mat file ({type(e).__name__}: {e})") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise where(path, f"invalid JSON ({e})") from None
    except OSError as e:
        raise where(path, f"cannot read ({e.strerror})") from None


def mat_key(m: dict[str, Any], key: str, path: Path) -> Any:
    if key not in m:
        raise where(path, f"missing field {key!r}")
    return m[key]
