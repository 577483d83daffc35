"""One registry of layouts by name, and joint mapping between layouts by joint name."""
from __future__ import annotations

import numpy as np

from actionpose.errors import ActionposeError
from actionpose.skeleton.layout import Layout
from actionpose.skeleton.layouts import BUILTIN_LAYOUTS

_LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout, *, overwrite: bool = False) -> Layout:
    """Add a layout so every command can name it (e.g. a custom rig for your own data)."""
    if layout.name in _LAYOUTS and not overwrite:
        raise ActionposeError(f"layout {layout.name!r} is already registered")
    _LAYOUTS[layout.name] = layout
    return layout


def ensure_layout(definition: dict, where: str = "layout") -> Layout:
    """Register a layout carried by a file (dataset pickle, checkpoint, ONNX metadata) unless a layout of
    that name is already known; one of that name that *differs* is refused, naming both. Why: a model
    trained on a custom rig must evaluate, export, tag and serve in a fresh process with nothing imported."""
    layout = Layout.from_dict(definition, where)
    known = _LAYOUTS.get(layout.name)
    if known is None:
        return register_layout(layout)
    differ = layout_differences(known, layout)
    if differ:  # the centre and the aliases change the features (bones, centring) and the mapping too
        raise ActionposeError(f"{where}: its layout {layout.name!r} differs from the registered layout of that "
                              f"name in its {' and '.join(differ)}")
    return known


def layout_differences(a: Layout, b: Layout) -> list[str]:
    """What two layouts of one name define differently (the description does not count)."""
    out = []
    if a.joints != b.joints:
        out.append("joints")
    if tuple(map(tuple, a.bones)) != tuple(map(tuple, b.bones)):
        out.append("bones")
    if a.center != b.center:
        out.append(f"center ({a.center!r} vs {b.center!r})")
    if dict(a.aliases) != dict(b.aliases):
        out.append("aliases")
    return out


def layout_definition(name: str) -> dict | None:
    """The definition to store beside data or a model, for layouts that are not built in."""
    layout = get_layout(name)
    return None if any(layout is b for b in BUILTIN_LAYOUTS) else layout.to_dict()


def load_plugins() -> None:
    """Import the modules named in ``ACTIONPOSE_PLUGINS`` (comma-separated), e.g. one that calls
    :func:`register_layout` for a custom rig, so every CLI command knows it before any file names it."""
    import importlib
    import os

    for name in filter(None, (m.strip() for m in os.environ.get("ACTIONPOSE_PLUGINS", "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ActionposeError(f"ACTIONPOSE_PLUGINS: cannot import {name!r} ({e})") from None


def get_layout(name: str | Layout) -> Layout:
    if isinstance(name, Layout):
        return name
    try:
        return _LAYOUTS[name]
    except KeyError:
        raise ActionposeError(f"unknown layout {name!r}; known layouts: {', '.join(sorted(_LAYOUTS))}") from None


def list_layouts() -> list[str]:
    return sorted(_LAYOUTS)


def joint_map(src: str | Layout, dst: str | Layout) -> np.ndarray:
    """For each joint of ``dst``, the index of the joint with that name (or alias) in ``src``.

    Raises with the missing joint names when ``src`` cannot fill ``dst`` — e.g. MD4FD's 11
    MediaPipe joints have no ankles, so they cannot become body13.
    """
    src, dst = get_layout(src), get_layout(dst)
    hit = _JOINT_MAPS.get((id(src), id(dst)))
    if hit is not None and hit[0] is src and hit[1] is dst:  # same layout objects (a re-registered name misses)
        return hit[2]
    index, missing = _match(src, dst)
    if missing:
        raise ActionposeError(f"layout {src.name} cannot be mapped to {dst.name}: "
                              f"no joint for {name_list(missing)}")  # a 21-joint hand listed every name
    out = np.asarray(index, dtype=np.int64)
    out.flags.writeable = False  # shared by every caller
    _JOINT_MAPS[(id(src), id(dst))] = (src, dst, out)
    return out


# joint_map is on the per-window hot path of the fall predictor and the tagger (26 name lookups per call)
_JOINT_MAPS: dict[tuple[int, int], tuple[Layout, Layout, np.ndarray]] = {}


def _match(src: Layout, dst: Layout) -> tuple[list[int], list[str]]:
    """For each joint of ``dst``, the index of its joint in ``src``; and the joints ``src`` has none for."""
    index, missing = [], []
    for joint in dst.joints:
        # the joint's own name, or a name that the target's aliases give it (a custom rig's ``head: Head``
        # maps into the rig too, not only out of it)
        names = [joint, *(a for a, j in dst.aliases.items() if j == joint)]
        found = next((n for n in names if src.has(n)), None)
        if found is not None:
            index.append(src.index(found))
        else:
            missing.append(joint)
    return index, missing


def missing_joints(src: str | Layout, dst: str | Layout) -> list[str]:
    """The joints of ``dst`` that ``src`` has no joint for (empty when it maps)."""
    return _match(get_layout(src), get_layout(dst))[1]


def name_list(names: list[str], most: int = 6) -> str:
    """``a, b, c and 4 more``: joint names in a one-line error."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def can_map(src: str | Layout, dst: str | Layout) -> bool:
    try:
        joint_map(src, dst)
        return True
    except ActionposeError:
        return False


def map_keypoints(keypoints: np.ndarray, src: str | Layout, dst: str | Layout, axis: int = -2) -> np.ndarray:
    """Reorder/select joints of ``keypoints`` (joints on ``axis``) from ``src`` into ``dst``."""
    src_l = get_layout(src)
    if keypoints.shape[axis] != src_l.num_joints:
        raise ActionposeError(f"keypoints have {keypoints.shape[axis]} joints but layout {src_l.name} "
                              f"has {src_l.num_joints}")
    return np.take(keypoints, joint_map(src_l, dst), axis=axis)


for _layout in BUILTIN_LAYOUTS:
    register_layout(_layout)
