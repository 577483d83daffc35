"""COCO keypoint JSON (17 keypoints per person annotation).

Still images become one-frame samples (one per annotated person). Video-style files — PoseTrack,
where images carry ``vid_id``/``frame_id`` and annotations a ``track_id`` — become one sequence per
(video, track). COCO has no action labels, so every sample is labelled with its category (``person``).

The joint order is taken from the file's person category (``keypoints`` names) when it has one: a
PoseTrack file keeps COCO's 17 slots but puts ``head_bottom``/``head_top`` where COCO has the eyes,
so read blindly as COCO its head points became eyes. Those two slots are stored as not seen (score
0); every other joint is COCO's. Any other naming is refused, naming the joints that differ.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from actionpose.data.format import SkeletonDataset, make_annotation, validate_annotation
from actionpose.data.importers import register_importer
from actionpose.data.importers.common import find_files, read_json
from actionpose.errors import where
from actionpose.skeleton import get_layout

# PoseTrack 2017/2018: COCO's order, with the eye slots holding the head's bottom and top
_POSETRACK = ("nose", "head_bottom", "head_top", *get_layout("coco17").joints[3:])


def _unseen_slots(js: dict, path: Path) -> list[int]:
    """Slots to store as not seen, from the person category's keypoint names (none named: COCO's order)."""
    cats = [c for c in js.get("categories") or [] if isinstance(c, dict) and c.get("keypoints")]
    if not cats:
        return []
    names = tuple(str(n) for n in cats[0]["keypoints"])
    coco = get_layout("coco17").joints
    if names == coco:
        return []
    if names == _POSETRACK:
        return [1, 2]
    if len(names) != len(coco):
        raise where(path, f"its category names {len(names)} keypoints; the coco importer reads COCO's 17")
    diff = [f"{i}: {n!r} (COCO: {c!r})" for i, (n, c) in enumerate(zip(names, coco)) if n != c]
    raise where(path, f"keypoints are not in COCO's order ({'; '.join(diff[:3])}"
                      f"{f'; {len(diff) - 3} more' if len(diff) > 3 else ''}); convert them to COCO-17 or use the csv "
                      "importer with a layout file")


def _keypoints(ann: dict, path: Path, unseen: list[int]) -> tuple[np.ndarray, np.ndarray]:
    kps = np.asarray(ann.get("keypoints", []), dtype=np.float32)
    if kps.size != 51:
        raise where(path, f"annotation {ann.get('id')}: {kps.size // 3} keypoints but COCO (coco17) has 17")
    kps = kps.reshape(17, 3).copy()
    kps[unseen] = 0.0  # another joint in that slot (PoseTrack's head points): not a COCO joint seen
    return kps[:, :2], (kps[:, 2] > 0).astype(np.float32)


@register_importer("coco")
def import_coco(src: Path, min_keypoints: int = 1) -> SkeletonDataset:
    anns, split = [], {}
    for path in find_files(src, "*.json"):
        js = read_json(path)
        if not isinstance(js, dict) or "annotations" not in js or "images" not in js:
            raise where(path, "not a COCO keypoint file (needs 'images' and 'annotations')")
        images = {img["id"]: img for img in js["images"]}
        unseen = _unseen_slots(js, path)
        people = [a for a in js["annotations"] if a.get("num_keypoints", 1) >= min_keypoints and "keypoints" in a]
        tracked = all("track_id" in a for a in people) and all("vid_id" in images.get(a["image_id"], {})
                                                               for a in people) and people
        names = []
        if tracked:
            tracks: dict[tuple, list] = defaultdict(list)
            for a in people:
                img = images[a["image_id"]]
                tracks[(img["vid_id"], a["track_id"])].append((img.get("frame_id", img["id"]), a, img))
            for (vid, tid), items in sorted(tracks.items(), key=lambda kv: str(kv[0])):
                items.sort(key=lambda x: x[0])
                xy, sc = zip(*(_keypoints(a, path, unseen) for _, a, _ in items))
                img = items[0][2]
                name = f"{path.stem}/{vid}_{tid}"
                anns.append(make_annotation(name, 0, np.stack(xy)[None], np.stack(sc)[None],
                                            img_shape=(img.get("height", 0), img.get("width", 0)), track_id=tid))
                names.append(name)
        else:
            for a in people:
                if a["image_id"] not in images:
                    raise where(path, f"annotation {a.get('id')} refers to unknown image {a['image_id']}")
                img = images[a["image_id"]]
                xy, sc = _keypoints(a, path, unseen)
                name = f"{path.stem}/{a['image_id']}_{a.get('id', len(anns))}"
                anns.append(make_annotation(name, 0, xy[None, None], sc[None, None],
                                            img_shape=(img.get("height", 0), img.get("width", 0)),
                                            bbox=[float(v) for v in a.get("bbox", [])]))
                names.append(name)
        for ann in anns[-len(names):] if names else []:
            validate_annotation(ann, "coco17", 1, path)
        split[path.stem] = names
    if not anns:
        raise where(src, "no person annotations with keypoints")
    return SkeletonDataset(anns, layout="coco17", classes=["person"], split=split,
                           meta={"source": "coco", "coords": "pixels"})
