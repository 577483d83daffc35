"""One exception type for everything a user can get wrong.

The CLI and the service catch :class:`ActionposeError` and show its message as a single line
(exit code 2 / HTTP 4xx); anything else is a bug in actionpose and is allowed to surface.
"""
from __future__ import annotations


class ActionposeError(Exception):
    """A user-facing error: the message names the file or field and the reason, on one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def where(path: object, detail: str) -> ActionposeError:
    """Build the canonical ``<path>: <reason>`` error."""
    return ActionposeError(f"{path}: {detail}")


def require_file(path: object, missing: str = "no such file") -> None:
    """Refuse a path that is not a regular file with one line. Why a separate check: a pipe or device
    (``/dev/stdin``, a FIFO) exists but cannot be read as a video or a pickle (no seeking, no size), and
    was reported as "no such file" or an unsupported type."""
    from pathlib import Path

    p = Path(str(path))
    if p.is_file():
        return
    if p.is_dir():
        raise where(path, "is a folder, not a file")
    if str(path) == "-" or p.exists():
        raise where(path, "not a regular file (a pipe, device or standard input cannot be read here); "
                          "save it to a file first")
    raise where(path, missing)


def file_kind(path: object) -> str | None:
    """What a file evidently is, from its name and first bytes ("an ONNX model", "a text file"), for
    refusals that would otherwise only quote a parser ("corrupt or truncated pickle" for a CSV file)."""
    from pathlib import Path

    p = Path(str(path))
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        return "an ONNX model"
    try:
        head = p.read_bytes()[:512] if p.stat().st_size < 4096 else p.open("rb").read(512)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a PyTorch checkpoint or .npz)"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy array"
    if head.startswith(b"\x80"):
        return None  # a pickle: its own error says what is wrong with it
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "a text file (CSV, JSON or YAML?)" if head.strip() else None
