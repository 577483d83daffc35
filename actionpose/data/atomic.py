"""Write outputs atomically, so a crash or bad input never leaves a half-written file behind."""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from actionpose.errors import ActionposeError


def _target(path: Path) -> Path:
    """Where writing ``path`` lands: a symbolic link's target (renaming over the link replaced the link with a
    file and left its target stale)."""
    if _streamed(path):  # /dev/stdout -> /proc/self/fd/1 -> "pipe:[...]": no path to resolve to; open() follows it
        return path
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _streamed(path: Path) -> bool:
    """An existing character device or named pipe (``/dev/stdout``, ``/dev/null``, a FIFO): written straight
    through. Renaming a file over it replaced the device itself (``/dev/full`` became a 173-byte file)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds. A symbolic
    link is followed (its target is replaced); a character device or named pipe is yielded itself, to be
    written straight through (a stream has no half-written file to avoid)."""
    path = _target(Path(path))
    check_output_file(path, try_write=False)  # the mkstemp below is the write test
    if _streamed(path):
        try:
            yield path
        except OSError as e:  # /dev/full: ENOSPC; a pipe whose reader went away: EPIPE
            raise ActionposeError(f"{path}: cannot write ({e.strerror or e})") from None
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix + ".tmp",
                                   dir=path.parent)
    except OSError as e:  # the folder went away or became read-only since the up-front check
        raise ActionposeError(f"{path}: cannot write ({e.strerror or e})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes it 0600; the result gets the mode a plain open() would give
            os.chmod(tmp_path, _mode_for(path))
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def output_labels(names: list[str]) -> dict[str, str]:
    """Per-input labels for the output files of several inputs: the stem, or the whole name (dots as
    ``_``) when two inputs share a stem (``clip.mp4`` and ``clip.avi`` wrote one file, the second over
    the first). Path separators in such a name go too: a pickle's sequences ``cam1/clip`` and ``cam2/clip`` get
    ``cam1_clip`` and ``cam2_clip`` (``r.cam1/clip.mp4`` is no file name: a traceback after tagging)."""
    stems = [Path(n).stem for n in names]
    return {n: (_flat(n) if stems.count(Path(n).stem) > 1 else Path(n).stem) for n in names}


def _flat(name: str) -> str:
    """``name`` as one file-name part: dots and path separators as ``_``."""
    return name.replace(".", "_").replace("/", "_").replace("\\", "_")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it, which is not thread-safe later


def _mode_for(path: Path) -> int:
    """The permission bits a replaced file keeps, or a new file gets under the process umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def check_output_file(path: str | Path | None, option: str = "output", inputs: tuple = (),
                      try_write: bool = True) -> None:
    """Refuse an output path that can never be written (a folder, or under a file) before any work is
    done: a CLI run should not process a whole video and then fail at the rename. An output that *is*
    one of ``inputs`` is refused too: the atomic rename would replace the user's source data."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ActionposeError(f"{option} {p}: is a folder; give a file name")
    target = _target(p)
    if target.exists() and not target.is_file() and not _streamed(target):
        raise ActionposeError(f"{option} {p}: is not a regular file (a socket or block device); give a file name")
    for src in inputs:
        if src is not None and p.exists() and Path(src).exists() and os.path.samefile(p, src):
            raise ActionposeError(f"{option} {p}: is the input file; writing it would replace the source data")
    _check_folders(target.parent, option, p, try_write)


def check_output_dir(path: str | Path | None, option: str = "output folder") -> None:
    """The folder counterpart of :func:`check_output_file`: an existing file there cannot become a folder."""
    if path is not None:
        _check_folders(Path(path), option, Path(path))


def _check_folders(folder: Path, option: str, shown: Path, try_write: bool = True) -> None:
    """``folder`` can be a folder: its nearest existing ancestor (or itself) is not a file, and a file can
    be created there (tried, not guessed from mode bits: root, read-only mounts and immutable folders all
    answer differently)."""
    for d in (folder, *folder.parents):
        if d.exists():
            if not d.is_dir():
                raise ActionposeError(f"{option} {shown}: {d} is a file, not a folder")
            if not try_write:
                return
            try:
                with tempfile.TemporaryFile(dir=d, prefix=".actionpose-write-check-"):
                    pass
            except OSError as e:
                raise ActionposeError(f"{option} {shown}: cannot write in {d} ({e.strerror or e})") from None
            return


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
