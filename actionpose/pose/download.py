"""Fetch model files once into a cache, with a progress bar and a sha256 check.

The cache is ``$ACTIONPOSE_CACHE`` or ``~/.cache/actionpose``. A file is only moved into place after
its hash matched, so an interrupted or tampered download never poisons the cache.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from actionpose.data.atomic import atomic_path
from actionpose.errors import ActionposeError


def cache_dir() -> Path:
    return Path(os.environ.get("ACTIONPOSE_CACHE") or Path.home() / ".cache" / "actionpose")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, sha256: str | None, progress: bool = True, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` (atomically), verifying ``sha256`` before the file appears."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, atomic_path(dest) as tmp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            h = hashlib.sha256()
            with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                                            disable=not progress, leave=False) as bar:
                while True:
                    block = resp.read(1 << 16)
                    if not block:
                        break
                    f.write(block)
                    h.update(block)
                    bar.update(len(block))
            got = h.hexdigest()
            if sha256 and got != sha256.lower():
                raise ActionposeError(f"{url}: sha256 mismatch (expected {sha256[:12]}..., got {got[:12]}...); "
                                      "the download is corrupt or the file changed upstream")
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise ActionposeError(f"{url}: download failed ({reason}); on a machine without internet pass the file "
                              "with ACTIONPOSE_POSE_MODEL/ACTIONPOSE_DET_MODEL (extract also takes --pose-model/--det-model)") from None
    return dest


def extract_member(archive: Path, member_suffix: str, dest: Path) -> Path:
    """Pull the one file ending in ``member_suffix`` out of a zip (OpenMMLab ships ONNX inside SDK zips)."""
    try:
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.endswith(member_suffix)]
            if not names:
                raise ActionposeError(f"{archive}: no member ending in {member_suffix!r}")
            with z.open(names[0]) as src, atomic_path(dest) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
    except zipfile.BadZipFile:
        raise ActionposeError(f"{archive}: not a valid zip file") from None
    return dest
