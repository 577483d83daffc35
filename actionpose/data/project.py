"""3D camera-space skeletons -> 2D image-like skeletons, so 3D datasets can train models for 2D frontends.

Kinect data (NW-UCLA, UTD-MHAD, NTU) is in metres with y up and z the distance from the sensor. A pinhole
projection (x/z, -y/z) gives what a camera at the sensor's place would see, in image orientation (y down);
per-sequence normalisation later removes the unknown focal length. Joints at z <= 0 (untracked) become
missing (score 0).
"""
from __future__ import annotations

import numpy as np

from actionpose.data.format import SkeletonDataset, make_annotation
from actionpose.errors import ActionposeError
from actionpose.skeleton import get_layout, map_keypoints


def project_dataset(ds: SkeletonDataset, layout: str | None = "body13") -> SkeletonDataset:
    """Project every 3D annotation to 2D (and map into ``layout`` by joint name, if given)."""
    anns = []
    for a in ds.annotations:
        kp = np.asarray(a["keypoint"], np.float32)
        if kp.shape[-1] != 3:
            raise ActionposeError(f"sample {a['frame_dir']!r}: has {kp.shape[-1]} coordinates; projection needs 3D")
        z = kp[..., 2]
        seen = z > 1e-3
        safe_z = np.where(seen, z, 1.0)
        xy = np.stack([kp[..., 0] / safe_z, -kp[..., 1] / safe_z], -1) * seen[..., None]
        score = seen.astype(np.float32)
        if layout is not None:
            xy, score = map_keypoints(xy, ds.layout, layout), map_keypoints(score[..., None], ds.layout, layout)[..., 0]
        extra = {k: v for k, v in a.items() if k not in {"frame_dir", "label", "keypoint", "keypoint_score",
                                                         "total_frames", "img_shape", "original_shape"}}
        anns.append(make_annotation(a["frame_dir"], a["label"], xy, score, **extra))
    out_layout = get_layout(layout).name if layout is not None else ds.layout
    meta = {**ds.meta, "projected_from": ds.layout, "coords": "pinhole (x/z, -y/z)"}
    return SkeletonDataset(anns, out_layout, list(ds.classes), dict(ds.split), meta)
