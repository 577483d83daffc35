"""YAML as the project reads it everywhere: configs, layout files, ensemble files.

Why one loader: YAML 1.1 (PyYAML) reads ``1e-3`` as text, and a key written twice silently keeps the last
one. Training configs were read with the fix, ensemble files without it (``weights: [1, 1e10]`` was refused as
text). Kept apart from the training package so reading a layout or an ensemble file does not import torch.
"""
from __future__ import annotations

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-3`` and ``5e-4`` (no dot) as *strings*; every recipe writes rates that way.

    A key written twice in one mapping is refused: plain YAML keeps the last one silently, so a
    recipe edited by adding ``lr: 0.05`` below an existing ``lr`` trained with whichever came last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *base`` may be overridden key by key
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: SafeLoader words that error
                break
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (lines {first} and {key_node.start_mark.line + 1})",
                    key_node.start_mark)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def yaml_error_text(e: yaml.YAMLError) -> str:
    """PyYAML's error in one line with where it is: "line 4, column 3: expected <block end>, but found
    '-'" (the first line of its text alone, "while parsing a block mapping", named no place)."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem
