"""A custom layout named by its file (``rig.yaml`` / ``rig.json``) wherever a layout name is taken."""
from __future__ import annotations

import sys
from pathlib import Path


def layout_from_option(value: str) -> str:
    """``--layout NAME`` or ``--layout rig.yaml``: a file defining a custom layout is registered (and then
    travels inside the converted pickle, checkpoint and ONNX file, so later commands need nothing else).
    Used by ``datasets convert --layout``, ``layouts FILE`` and a training config's ``data.layout``."""
    if not value.lower().endswith((".yaml", ".yml", ".json")):
        return value
    import yaml

    import numpy as np

    from actionpose.errors import where
    from actionpose.skeleton import ensure_layout
    from actionpose.yaml_io import yaml_error_text, yaml_load

    path = Path(value)
    if not path.is_file():
        raise where(path, "no such layout file")
    try:
        definition = yaml_load(path.read_text())  # a key written twice is an error, not the last one wins
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise where(path, f"not readable YAML/JSON ({yaml_error_text(e) if isinstance(e, yaml.YAMLError) else e})") from None
    if not isinstance(definition, dict):
        raise where(path, "a layout file holds a mapping: name, joints, bones, center")
    if "models" in definition and "joints" not in definition:
        # an ensemble config (models, weights) was refused as a layout with "unknown key(s) 'models', 'weights'",
        # which reads as if the file were a broken layout
        raise where(path, "looks like an ensemble config (it has 'models'), not a layout file; a layout file has "
                          "name, joints, bones, center (an ensemble's layout is that of its models: "
                          "`actionpose layouts MEMBER.onnx` shows it)")
    lay = ensure_layout(definition, str(path))
    unreached = [j for j, d in zip(lay.joints, lay.hop_distance[lay.center_index]) if not np.isfinite(d)]
    if unreached:  # allowed (a tracker's extra point), but a forgotten bone leaves a joint out of every graph hop
        print(f"note: {path}: no bone path from {lay.center} to {', '.join(unreached[:5])}"
              f"{' ...' if len(unreached) > 5 else ''}; the graph convolutions see {'it' if len(unreached) == 1 else 'them'} "
              "alone (add bones if that was not meant)", file=sys.stderr)
    return lay.name
