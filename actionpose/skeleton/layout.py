"""Skeleton layouts as first-class objects.

A layout is a list of joint *names* plus bones between names. Everything else — indices, mirror
pairs, the ST-GCN partitioned adjacency, the torch-geometric ``edge_index``, the mapping into
another layout — is derived from the names, so no index list is ever written twice.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np

from actionpose.errors import ActionposeError

_MIRROR = (("left_", "right_"), ("right_", "left_"))


class LayoutError(ActionposeError, ValueError):
    """A layout that cannot be built. An ``ActionposeError`` so the CLI shows it as one line (a rig defined in an
    ``ACTIONPOSE_PLUGINS`` module with a bone to an unknown joint printed a traceback), and still a ``ValueError``
    for code that caught the layout's checks as one."""


@dataclass(frozen=True)
class Layout:
    """A named skeleton: joints, bones, a centre joint and optional aliases into ``body13``.

    ``aliases`` maps a common joint name (as used by ``body13``) to this layout's own joint name
    where the two differ, e.g. COCO's ``nose`` stands in for body13's ``head``.
    """

    name: str
    joints: tuple[str, ...]
    bones: tuple[tuple[str, str], ...]
    center: str
    description: str = ""
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(set(self.joints)) != len(self.joints):
            raise LayoutError(f"layout {self.name}: duplicate joint names")
        if not self.name.strip() or any(c in self.name for c in "/\\") or self.name != self.name.strip():
            # the name goes into file and folder names (run folders, exports): 'my rig/1' made a subfolder
            raise LayoutError(f"layout name {self.name!r}: give a name without slashes or surrounding spaces")
        known = set(self.joints)
        pairs = [frozenset(b) for b in self.bones]
        twice = next((b for i, b in enumerate(self.bones) if pairs[i] in pairs[:i]), None)
        if twice is not None:  # (a, b) and (b, a) counted the edge twice in the adjacency, and two bone vectors
            raise LayoutError(f"layout {self.name}: bone ({twice[0]}, {twice[1]}) is listed twice (either way round)")
        for a, b in self.bones:
            if a not in known or b not in known:
                raise LayoutError(f"layout {self.name}: bone ({a}, {b}) names an unknown joint")
            if a == b:  # every joint is its own neighbour already; as a bone its bone vector is always zero
                raise LayoutError(f"layout {self.name}: bone ({a}, {b}) joins a joint to itself")
        if self.center not in known:
            raise LayoutError(f"layout {self.name}: centre {self.center} is not a joint")
        for common, own in self.aliases.items():
            if own not in known:
                raise LayoutError(f"layout {self.name}: alias {common} -> {own} is not a joint")

    # --- serialised form: a custom layout travels inside datasets, checkpoints and ONNX files ------
    def to_dict(self) -> dict:
        return {"name": self.name, "joints": list(self.joints), "bones": [list(b) for b in self.bones],
                "center": self.center, "description": self.description, "aliases": dict(self.aliases)}

    _KEYS = ("name", "joints", "bones", "center", "description", "aliases")
    _REQUIRED = ("name", "joints", "bones", "center")  # as README and docs/extending.md define a layout file

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "layout") -> "Layout":
        """A layout from its serialised form (a layout file, or the definition a pickle/checkpoint/ONNX carries).

        Checked field by field before anything is built: Python would otherwise iterate a string ``joints: head``
        into four joints h, e, a, d, and unpack a bone ``ab`` into the pair (a, b)."""
        if not isinstance(d, Mapping):
            raise ActionposeError(f"{where}: not a layout definition (a mapping of {', '.join(cls._REQUIRED)})")
        unknown = [k for k in d if k not in cls._KEYS]
        if unknown:  # a misspelt ``edges:`` or ``centre:`` would otherwise build a layout without it
            raise ActionposeError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a layout has "
                                  f"{', '.join(cls._KEYS)}")
        missing = [k for k in cls._REQUIRED if k not in d]
        if missing:  # a forgotten ``bones:`` left every joint isolated in the graph, without a word
            raise ActionposeError(f"{where}: missing key(s) {', '.join(map(repr, missing))}; a layout needs "
                                  f"{', '.join(cls._REQUIRED)} (bones: [] for a layout without bones)")
        joints = tuple(_joint_names(d["joints"], where))
        bones = tuple(_bone(b, i, where) for i, b in enumerate(_list_field(d["bones"], where, "bones",
                                                                             "a list of [a, b] joint-name pairs")))
        name, center = _name_field(d["name"], where, "name"), _name_field(d["center"], where, "center")
        description = d.get("description")
        if not isinstance(description, (str, type(None))):
            raise ActionposeError(f"{where}: 'description' must be text, got {type(description).__name__} {description!r}")
        try:
            return cls(name=name, joints=joints, bones=bones, center=center, description=description or "",
                       aliases=_aliases(d.get("aliases"), where))
        except ValueError as e:  # the layout's own checks (unknown joint, repeated bone, ...): their words
            raise ActionposeError(f"{where}: {e}") from None
        except TypeError as e:
            raise ActionposeError(f"{where}: not a layout definition ({type(e).__name__}: {e}); needs "
                                  f"{', '.join(cls._REQUIRED)}") from None

    # --- basic facts -------------------------------------------------------------------------
    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        try:
            return self.joints.index(self.aliases.get(joint, joint))
        except ValueError:
            raise ActionposeError(f"layout {self.name} has no joint named {joint!r}") from None

    def has(self, joint: str) -> bool:
        return self.aliases.get(joint, joint) in self.joints

    @cached_property
    def center_index(self) -> int:
        return self.joints.index(self.center)

    @cached_property
    def edges(self) -> np.ndarray:
        """Bones as an ``[E, 2]`` int array of joint indices (undirected, each bone once)."""
        return np.array([(self.joints.index(a), self.joints.index(b)) for a, b in self.bones],
                        dtype=np.int64).reshape(-1, 2)

    @cached_property
    def symmetric_pairs(self) -> tuple[tuple[int, int], ...]:
        """(left, right) index pairs, found by name (``left_x`` / ``right_x``, ``LShoulder`` / ``RShoulder``,
        ``l_knee`` / ``r_knee``, ``knee_l`` / ``knee_r``, ``leftKnee`` / ``rightKnee``, ...) and through the
        aliases (``left_wrist: LWr`` with ``right_wrist: RWr``). Why both: a rig named in another
        convention flipped its skeleton without swapping sides, an anatomically impossible body."""
        pairs: dict[int, int] = {}
        for i, name in enumerate(self.joints):
            other = mirrored_name(name)
            if other is not None and other[0] == "right" and other[1] in self.joints:
                pairs[i] = self.joints.index(other[1])
        for alias, target in self.aliases.items():
            other = mirrored_name(alias)
            if other is not None and other[0] == "right" and other[1] in self.aliases:
                left, right = target, self.aliases[other[1]]
                if left in self.joints and right in self.joints and left != right:
                    pairs.setdefault(self.joints.index(left), self.joints.index(right))
        return tuple(sorted(pairs.items()))

    @cached_property
    def flip_index(self) -> np.ndarray:
        """Permutation that swaps left and right joints (for horizontal flip augmentation)."""
        perm = np.arange(self.num_joints)
        for left, right in self.symmetric_pairs:
            perm[left], perm[right] = right, left
        return perm

    # --- graph -------------------------------------------------------------------------------
    @cached_property
    def hop_distance(self) -> np.ndarray:
        """Shortest path length (in bones) from every joint to every joint; inf if unreachable."""
        n = self.num_joints
        dist = np.full((n, n), np.inf)
        np.fill_diagonal(dist, 0)
        for a, b in self.edges:
            dist[a, b] = dist[b, a] = 1
        for k in range(n):  # Floyd–Warshall: layouts have at most a few dozen joints
            dist = np.minimum(dist, dist[:, k:k + 1] + dist[k:k + 1, :])
        return dist

    @property
    def is_connected(self) -> bool:
        return bool(np.isfinite(self.hop_distance).all())

    @cached_property
    def inward(self) -> np.ndarray:
        """Bones directed towards the centre joint: ``[E, 2]`` of (farther, nearer)."""
        d = self.hop_distance[self.center_index]
        out = [(a, b) if d[a] > d[b] else (b, a) for a, b in self.edges]
        return np.array(out, dtype=np.int64).reshape(-1, 2)

    @property
    def bone_pairs(self) -> np.ndarray:
        """(joint, parent) pairs used to build the bone stream: every joint but the centre once."""
        return self.inward

    def adjacency(self, mode: str = "spatial") -> np.ndarray:
        """The normalised adjacency ST-GCN uses, ``[K, V, V]``.

        ``spatial`` is the partition of Yan et al. (2018) as PYSKL builds it: identity,
        inward (centripetal) and outward (centrifugal) edges, each column-normalised.
        ``uniform`` is one normalised matrix of all edges plus self loops.
        """
        n = self.num_joints
        if mode == "spatial":
            eye = np.eye(n)
            inward = _edge2mat(self.inward, n)
            outward = _edge2mat(self.inward[:, ::-1], n)
            return np.stack([eye, _normalize_digraph(inward), _normalize_digraph(outward)]).astype(np.float32)
        if mode == "uniform":
            a = _edge2mat(self.inward, n) + _edge2mat(self.inward[:, ::-1], n) + np.eye(n)
            return _normalize_digraph(a)[None].astype(np.float32)
        raise ActionposeError(f"adjacency mode {mode!r}: allowed values are 'spatial', 'uniform'")

    @cached_property
    def edge_index(self):
        """Undirected ``edge_index`` ``[2, 2E]`` as torch-geometric expects it."""
        import torch
        from torch_geometric.utils import to_undirected

        return to_undirected(torch.as_tensor(self.edges.T.copy(), dtype=torch.long), num_nodes=self.num_joints)

    def __repr__(self) -> str:
        return f"Layout({self.name!r}, {self.num_joints} joints)"


def _list_field(value: object, where: str, key: str, what: str) -> list:
    """A list field (``joints``, ``bones``); a string is refused, not iterated letter by letter."""
    if not isinstance(value, (list, tuple)):
        raise ActionposeError(f"{where}: '{key}' must be {what}, got {type(value).__name__} {value!r}")
    return list(value)


def _joint_names(value: object, where: str) -> list[str]:
    """``joints``: a list of names (``joints: head`` became the four joints h, e, a, d)."""
    names = _list_field(value, where, "joints", "a list of joint names")
    bad = [v for v in names if not _is_name(v)]
    if bad:  # a nested list or a mapping as a joint name is a mistake, not a name
        raise ActionposeError(f"{where}: 'joints' must be a list of joint names; {bad[0]!r} is not a name")
    return [str(v) for v in names]


def _is_name(value: object) -> bool:
    """A joint name as YAML may give it: a string, or a number (``joints: [0, 1, 2]``, read as "0", "1", "2"
    as before); not ``true``/``no`` (YAML booleans), a list or a mapping."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _name_field(value: object, where: str, key: str) -> str:
    """``name`` or ``center``: one name. An empty ``name:`` (YAML null) registered a layout called "None", and
    ``name: yes`` one called "True"."""
    if not _is_name(value):
        raise ActionposeError(f"{where}: '{key}' must be a name, got {type(value).__name__} {value!r}")
    return str(value)


def _aliases(value: object, where: str) -> dict[str, str]:
    """``aliases``: a mapping of common (body13) joint name -> this layout's joint name. A list was passed to
    ``dict()``: ``[head]`` failed as "dictionary update sequence element #0 has length 4", and ``[hn]`` became
    the alias h -> n."""
    if value is None:
        return {}
    if not (isinstance(value, Mapping) and all(_is_name(k) and _is_name(v) for k, v in value.items())):
        raise ActionposeError(f"{where}: 'aliases' must be a mapping of common joint name -> this layout's joint "
                              f"name (e.g. {{head: nose}}), got {type(value).__name__} {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def _bone(value: object, i: int, where: str) -> tuple[str, str]:
    """One bone: a pair [a, b] of joint names. A string ``ab`` unpacked into (a, b) and ``[a, b, c]`` failed
    with a bare "too many values to unpack"."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_name(j) for j in value)):
        raise ActionposeError(f"{where}: bone {i + 1} {value!r} is not a pair of joint names; a bone is a pair [a, b]")
    return str(value[0]), str(value[1])


def _edge2mat(edges: np.ndarray, n: int) -> np.ndarray:
    a = np.zeros((n, n))
    for i, j in edges:
        a[j, i] = 1
    return a


def _normalize_digraph(a: np.ndarray) -> np.ndarray:
    deg = a.sum(0)
    inv = np.where(deg > 0, 1.0 / np.maximum(deg, 1e-12), 0.0)
    return a @ np.diag(inv)


def chain(*names: str) -> tuple[tuple[str, str], ...]:
    """Bones along a chain of joints: ``chain(a, b, c)`` -> ``((a, b), (b, c))``."""
    return tuple(zip(names[:-1], names[1:]))


def bones(*chains: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(b for c in chains for b in c)


_SIDE_AFFIXES = (("left_", "right_", "prefix"), ("Left_", "Right_", "prefix"), ("l_", "r_", "prefix"),
                 ("L_", "R_", "prefix"), ("_left", "_right", "suffix"), ("_l", "_r", "suffix"),
                 ("_L", "_R", "suffix"), ("left", "right", "camel"), ("Left", "Right", "camel"),
                 ("L", "R", "camel"))


def mirrored_name(name: str) -> tuple[str, str] | None:
    """``("right", other)`` for a left joint's name, ``("left", other)`` for a right one's, else None.
    Camel-case prefixes (``LShoulder``, ``leftKnee``) need an upper-case letter after them, so ``Lumbar``
    or ``lower_back`` are not sides."""
    for left, right, how in _SIDE_AFFIXES:
        for mine, theirs, side in ((left, right, "right"), (right, left, "left")):
            if how == "suffix":
                if name.endswith(mine) and len(name) > len(mine):
                    return side, name[: -len(mine)] + theirs
            elif name.startswith(mine) and len(name) > len(mine) and (how == "prefix" or name[len(mine)].isupper()):
                return side, theirs + name[len(mine):]
    return None
