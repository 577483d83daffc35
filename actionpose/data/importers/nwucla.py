"""NW-UCLA ``all_sqe/*.json`` (Kinect v1 20 joints, 3D metres). Cross-view: views 1+2 train, 3 test.

Also ``train_v1`` / ``train_v2``: the training split by view. A random slice of the training views cannot
tell which recipe generalises to an unseen camera (it holds the same cameras as training); training on
view 1 and validating on view 2 can, without touching the test view.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from actionpose.data.format import SkeletonDataset, make_annotation, validate_annotation
from actionpose.data.importers import register_importer
from actionpose.data.importers.common import find_files, read_json
from actionpose.errors import where

NWUCLA_CLASSES = ["pick_up_with_one_hand", "pick_up_with_two_hands", "drop_trash", "walk_around", "sit_down",
                  "stand_up", "donning", "doffing", "throw", "carry"]
_NAME = re.compile(r"a(\d+)_s(\d+)_e(\d+)_v(\d+)")


@register_importer("nwucla")
def import_nwucla(src: Path) -> SkeletonDataset:
    anns, split = [], {"train": [], "test": [], "train_v1": [], "train_v2": []}
    for path in find_files(src, "*.json"):
        match = _NAME.fullmatch(path.stem)
        if not match:
            raise where(path, "file name is not of the NW-UCLA form aAA_sSS_eEE_vVV.json")
        js = read_json(path)
        if not isinstance(js, dict) or "skeletons" not in js or "label" not in js:
            raise where(path, "missing field 'skeletons' or 'label'")
        try:
            kp = np.asarray(js["skeletons"], dtype=np.float32)
        except (ValueError, TypeError):
            raise where(path, "'skeletons' is not a [T, 20, 3] number array") from None
        if kp.ndim != 3 or kp.shape[2] != 3:
            raise where(path, f"'skeletons' has shape {kp.shape}, expected [T, 20, 3]")
        if kp.shape[1] != 20:
            raise where(path, f"{kp.shape[1]} joints but NW-UCLA (kinect20) has 20")
        label = int(js["label"]) - 1
        view = int(match.group(4))
        ann = make_annotation(path.stem, label, kp[None], subject=int(match.group(2)), view=view)
        validate_annotation(ann, "kinect20", len(NWUCLA_CLASSES), path)
        anns.append(ann)
        split["test" if view == 3 else "train"].append(path.stem)
        if view in (1, 2):
            split[f"train_v{view}"].append(path.stem)
    return SkeletonDataset(anns, layout="kinect20", classes=list(NWUCLA_CLASSES), split=split,
                           meta={"source": "nw_ucla", "protocol": "cross-view (v1+v2 train, v3 test)",
                                 "coords": "metres"})
