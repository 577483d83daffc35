"""Load pickles from untrusted sources without executing code.

PYSKL/MMAction2 annotation files are pickles, and a pickle can run arbitrary code on load. This
unpickler admits only plain containers, numpy arrays/scalars/dtypes — everything an annotation file
legitimately holds — and refuses any other global with a clear error.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from actionpose.errors import file_kind, require_file, where


def _latin1_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as pickle protocols 0-2 use it: a numpy array's raw bytes are stored as a latin-1
    string and turned back into bytes on load. Only that use is admitted, not codecs in general."""
    if not (isinstance(text, str) and isinstance(encoding, str)
            and encoding.replace("-", "").replace("_", "").lower() in ("latin1", "iso88591")):
        raise RefusedGlobal(f"refused _codecs.encode with encoding {encoding!r} (only latin-1 is used by pickles)")
    return text.encode("latin-1")


_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("collections", "defaultdict"): __import__("collections").defaultdict,
    ("__builtin__", "set"): set,
    ("_codecs", "encode"): _latin1_bytes,  # protocol 0-2 pickles (old tools, Python 2 era files)
}


def _numpy_core(name: str) -> Any:
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric
    return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar,
            "_frombuffer": numeric._frombuffer}.get(name)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asked for a class or function outside the allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in _NUMPY_CORE and _numpy_core(name) is not None:
            return _numpy_core(name)
        if module == "numpy" and name in {"float16", "float32", "float64", "int8", "int16", "int32", "int64",
                                          "uint8", "uint16", "uint32", "uint64", "bool_"}:
            return getattr(np, name)
        if module.startswith("numpy.dtypes") and name.endswith("DType"):
            return getattr(__import__("numpy.dtypes", fromlist=[name]), name)
        raise RefusedGlobal(f"refused to load global {module}.{name} (only plain data and numpy arrays are allowed)")


def safe_loads(data: bytes) -> Any:
    return RestrictedUnpickler(io.BytesIO(data)).load()


def safe_load(path: str | Path) -> Any:
    """Unpickle ``path`` with the restricted unpickler; errors name the file and the reason."""
    path = Path(path)
    require_file(path)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except RefusedGlobal as e:
        raise where(path, f"not a safe annotation pickle: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError, OSError) as e:
        kind = file_kind(path)
        if kind is not None:  # a CSV or an ONNX file given where a dataset pickle goes
            raise where(path, f"is {kind}, not a dataset pickle (make one with actionpose datasets convert)") from None
        raise where(path, f"corrupt or truncated pickle ({type(e).__name__}: {e})") from None
