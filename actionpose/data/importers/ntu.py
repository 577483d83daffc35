"""NTU RGB+D 60/120 ``.skeleton`` text files (Kinect v2, 25 joints, 3D metres).

Splits follow the papers: cross-subject (also exported as ``train``/``test``), cross-view (cameras 2+3
train) and, for NTU-120, cross-setup (even setups train), under PYSKL's split names.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from actionpose.data.format import SkeletonDataset, make_annotation, validate_annotation
from actionpose.data.importers import register_importer
from actionpose.data.importers.common import find_files
from actionpose.errors import where

_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
XSUB_TRAIN = {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50, 52,
              53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98,
              100, 103}
NTU_CLASSES = [
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw", "sitting down",
    "standing up", "clapping", "reading", "writing", "tear up paper", "wear jacket", "take off jacket",
    "wear a shoe", "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something", "reach into pocket", "hopping",
    "jump up", "make a phone call", "playing with phone/tablet", "typing on a keyboard",
    "pointing to something with finger", "taking a selfie", "check time (from watch)", "rub two hands together",
    "nod head/bow", "shake head", "wipe face", "salute", "put the palms together", "cross hands in front",
    "sneeze/cough", "staggering", "falling", "touch head (headache)", "touch chest (stomachache/heart pain)",
    "touch back (backache)", "touch neck (neckache)", "nausea or vomiting condition", "use a fan/feeling warm",
    "punching/slapping other person", "kicking other person", "pushing other person",
    "pat on back of other person", "point finger at the other person", "hugging other person",
    "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball", "tennis bat swing",
    "juggling table tennis balls", "hush (quite)", "flick hair", "thumb up", "thumb down", "make ok sign",
    "make victory sign", "staple book", "counting money", "cutting nails", "cutting paper (using scissors)",
    "snapping fingers", "open bottle", "sniff (smell)", "squat down", "toss a coin", "fold paper",
    "ball up paper", "play magic cube", "apply cream on face", "apply cream on hand back", "put on bag",
    "take off bag", "put something into a bag", "take something out of a bag", "open a box",
    "move heavy objects", "shake fist", "throw up cap/hat", "hands up (both hands)", "cross arms",
    "arm circles", "arm swings", "running on the spot", "butt kicks (kick backward)", "cross toe touch",
    "side kick", "yawn", "stretch oneself", "blow nose", "hit other person with something",
    "wield knife towards other person", "knock over other person (hit with body)", "grab other person's stuff",
    "shoot at other person with a gun", "step on foot", "high-five", "cheers and drink",
    "carry something with other person", "take a photo of other person", "follow other person",
    "whisper in other person's ear", "exchange things with other person", "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",
]


def read_skeleton(path: Path, max_bodies: int = 2) -> np.ndarray:
    """Parse one ``.skeleton`` file into ``[M, T, 25, 3]``; bodies ranked by motion, at most ``max_bodies``."""
    try:
        tokens = path.read_text().split()
    except (OSError, UnicodeDecodeError) as e:
        raise where(path, f"cannot read ({e})") from None
    pos = 0

    def take(n: int) -> list[str]:
        nonlocal pos
        if pos + n > len(tokens):
            raise where(path, "truncated .skeleton file (ended in the middle of a frame)")
        out = tokens[pos:pos + n]
        pos += n
        return out

    try:
        num_frames = int(take(1)[0])
        bodies: dict[str, np.ndarray] = {}
        for t in range(num_frames):
            for _ in range(int(take(1)[0])):
                body_id = take(10)[0]
                num_joints = int(take(1)[0])
                if num_joints != 25:
                    raise where(path, f"frame {t}: {num_joints} joints but Kinect v2 (ntu25) has 25")
                xyz = np.array([take(12)[:3] for _ in range(num_joints)], dtype=np.float32)
                bodies.setdefault(body_id, np.zeros((num_frames, 25, 3), np.float32))[t] = xyz
    except ValueError as e:
        raise where(path, f"not a .skeleton file ({e})") from None
    if num_frames == 0:
        raise where(path, "empty sequence (0 frames)")
    if not bodies:
        return np.zeros((1, num_frames, 25, 3), np.float32)

    def motion(seq: np.ndarray) -> float:
        present = np.abs(seq).sum(axis=(1, 2)) > 0
        return float(seq[present].std(axis=0).sum()) if present.sum() > 1 else 0.0

    ranked = sorted(bodies.values(), key=motion, reverse=True)[:max_bodies]
    return np.stack(ranked)


@register_importer("ntu")
def import_ntu(src: Path, max_persons: int = 2) -> SkeletonDataset:
    anns = []
    split: dict[str, list[str]] = {k: [] for k in ("train", "test", "xsub_train", "xsub_val", "xview_train",
                                                   "xview_val", "xset_train", "xset_val")}
    max_action = 0
    for path in find_files(src, "*.skeleton"):
        match = _NAME.search(path.stem)
        if not match:
            raise where(path, "file name does not contain the NTU SsssCcccPpppRrrrAaaa code")
        setup, camera, subject, _, action = (int(g) for g in match.groups())
        if not 1 <= action <= 120:
            raise where(path, f"action {action} outside 1..120")
        max_action = max(max_action, action)
        name = match.group(0)
        ann = make_annotation(name, action - 1, read_skeleton(path, max_persons), subject=subject, camera=camera,
                              setup=setup)
        validate_annotation(ann, "ntu25", 120, path)
        anns.append(ann)
        xsub = subject in XSUB_TRAIN
        split["train" if xsub else "test"].append(name)
        split["xsub_train" if xsub else "xsub_val"].append(name)
        split["xview_train" if camera in (2, 3) else "xview_val"].append(name)
        split["xset_train" if setup % 2 == 0 else "xset_val"].append(name)
    classes = NTU_CLASSES[:60] if max_action <= 60 else NTU_CLASSES
    if max_action <= 60:
        del split["xset_train"], split["xset_val"]
    return SkeletonDataset(anns, layout="ntu25", classes=classes, split=split,
                           meta={"source": "ntu_rgbd", "protocol": "cross-subject (train/test)", "coords": "metres"})
