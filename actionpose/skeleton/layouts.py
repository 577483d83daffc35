"""The built-in skeleton layouts, defined by joint names and bones between names.

Sources of joint orders: COCO keypoints; Kinect v2 / NTU RGB+D; Kinect v1 in NW-UCLA order and in
UTD-MHAD order; Penn Action's 13 joints; MediaPipe BlazePose 33; MediaPipe hand 21. ``body13`` is the
common body subset every body layout maps into, so data from different sources can share a model.
"""
from __future__ import annotations

from actionpose.skeleton.layout import Layout, bones, chain

_ARMS_LEGS_13 = bones(
    chain("left_wrist", "left_elbow", "left_shoulder", "right_shoulder", "right_elbow", "right_wrist"),
    chain("left_ankle", "left_knee", "left_hip", "right_hip", "right_knee", "right_ankle"),
    (("left_shoulder", "left_hip"), ("right_shoulder", "right_hip")),
)

BODY13_JOINTS = (
    "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

BODY13 = Layout(
    name="body13",
    joints=BODY13_JOINTS,
    bones=_ARMS_LEGS_13 + (("head", "left_shoulder"), ("head", "right_shoulder")),
    center="head",
    description="Common body subset (head/nose, shoulders, elbows, wrists, hips, knees, ankles); "
                "every body layout maps into it by joint name.",
)

PENN13 = Layout(
    name="penn13",
    joints=BODY13_JOINTS,
    bones=BODY13.bones,
    center="head",
    description="Penn Action 13 joints (same order as body13).",
)

COCO17 = Layout(
    name="coco17",
    joints=("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
            "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
            "left_knee", "right_knee", "left_ankle", "right_ankle"),
    bones=bones(
        chain("left_ankle", "left_knee", "left_hip", "left_shoulder", "nose"),
        chain("right_ankle", "right_knee", "right_hip", "right_shoulder", "nose"),
        chain("left_wrist", "left_elbow", "left_shoulder"),
        chain("right_wrist", "right_elbow", "right_shoulder"),
        chain("left_ear", "left_eye", "nose", "right_eye", "right_ear"),
    ),
    center="nose",
    description="COCO-17 keypoints (RTMPose, ViTPose, MoveNet, COCO annotations).",
    aliases={"head": "nose"},
)

COCO13 = Layout(
    name="coco13",
    joints=("nose",) + BODY13_JOINTS[1:],
    bones=tuple((("nose" if a == "head" else a), ("nose" if b == "head" else b)) for a, b in BODY13.bones),
    center="nose",
    description="COCO-17 without eyes and ears (URFD fall skeletons).",
    aliases={"head": "nose"},
)

NTU25 = Layout(
    name="ntu25",
    joints=("spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
            "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip",
            "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot",
            "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb"),
    bones=bones(
        chain("head", "neck", "spine_shoulder", "spine_mid", "spine_base"),
        chain("spine_shoulder", "left_shoulder", "left_elbow", "left_wrist", "left_hand", "left_hand_tip"),
        chain("left_hand", "left_thumb"),
        chain("spine_shoulder", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "right_hand_tip"),
        chain("right_hand", "right_thumb"),
        chain("spine_base", "left_hip", "left_knee", "left_ankle", "left_foot"),
        chain("spine_base", "right_hip", "right_knee", "right_ankle", "right_foot"),
    ),
    center="spine_shoulder",
    description="Kinect v2 25 joints (NTU RGB+D 60/120).",
)

_KINECT20_BONES = bones(
    chain("head", "shoulder_center", "spine", "hip_center"),
    chain("shoulder_center", "left_shoulder", "left_elbow", "left_wrist", "left_hand"),
    chain("shoulder_center", "right_shoulder", "right_elbow", "right_wrist", "right_hand"),
    chain("hip_center", "left_hip", "left_knee", "left_ankle", "left_foot"),
    chain("hip_center", "right_hip", "right_knee", "right_ankle", "right_foot"),
)
_LIMBS20 = ("left_shoulder", "left_elbow", "left_wrist", "left_hand", "right_shoulder", "right_elbow",
            "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle", "left_foot", "right_hip",
            "right_knee", "right_ankle", "right_foot")

KINECT20 = Layout(
    name="kinect20",
    joints=("hip_center", "spine", "shoulder_center", "head") + _LIMBS20,
    bones=_KINECT20_BONES,
    center="spine",
    description="Kinect v1 20 joints in NW-UCLA order (starts at hip_center).",
)

KINECT20_UTD = Layout(
    name="kinect20_utd",
    joints=("head", "shoulder_center", "spine", "hip_center") + _LIMBS20,
    bones=_KINECT20_BONES,
    center="spine",
    description="Kinect v1 20 joints in UTD-MHAD order (starts at head).",
)

_BP_SIDE = ("eye_inner", "eye", "eye_outer")
BLAZEPOSE33 = Layout(
    name="blazepose33",
    joints=("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
            "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
            "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
            "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
            "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
            "left_foot_index", "right_foot_index"),
    bones=bones(
        chain("left_ear", "left_eye_outer", "left_eye", "left_eye_inner", "nose", "right_eye_inner",
              "right_eye", "right_eye_outer", "right_ear"),
        chain("mouth_left", "mouth_right"), (("nose", "mouth_left"), ("nose", "mouth_right")),
        (("nose", "left_shoulder"), ("nose", "right_shoulder")),
        chain("left_shoulder", "right_shoulder"),
        chain("left_shoulder", "left_elbow", "left_wrist", "left_pinky", "left_index", "left_wrist"),
        chain("left_wrist", "left_thumb"),
        chain("right_shoulder", "right_elbow", "right_wrist", "right_pinky", "right_index", "right_wrist"),
        chain("right_wrist", "right_thumb"),
        chain("left_shoulder", "left_hip", "right_hip", "right_shoulder"),
        chain("left_hip", "left_knee", "left_ankle", "left_heel", "left_foot_index", "left_ankle"),
        chain("right_hip", "right_knee", "right_ankle", "right_heel", "right_foot_index", "right_ankle"),
    ),
    center="nose",
    description="MediaPipe BlazePose 33 landmarks.",
    aliases={"head": "nose"},
)

_FINGERS = ("thumb", "index_finger", "middle_finger", "ring_finger", "pinky")
_FINGER_PARTS = {"thumb": ("cmc", "mcp", "ip", "tip")}
HAND21 = Layout(
    name="hand21",
    joints=("wrist",) + tuple(f"{f}_{p}" for f in _FINGERS for p in _FINGER_PARTS.get(f, ("mcp", "pip", "dip", "tip"))),
    bones=bones(*(chain("wrist", *(f"{f}_{p}" for p in _FINGER_PARTS.get(f, ("mcp", "pip", "dip", "tip"))))
                  for f in _FINGERS),
                chain("index_finger_mcp", "middle_finger_mcp", "ring_finger_mcp", "pinky_mcp")),
    center="wrist",
    description="Hand 21 keypoints (MediaPipe hands / COCO-WholeBody hand order).",
)

MEDIAPIPE11 = Layout(
    name="mediapipe11",
    joints=("nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
            "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee"),
    bones=bones(chain("left_wrist", "left_elbow", "left_shoulder", "right_shoulder", "right_elbow", "right_wrist"),
                chain("left_knee", "left_hip", "right_hip", "right_knee"),
                (("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
                 ("nose", "left_shoulder"), ("nose", "right_shoulder"))),
    center="nose",
    description="MediaPipe body subset without ankles (MD4FD fall windows); cannot fill body13's ankles.",
    aliases={"head": "nose"},
)

BUILTIN_LAYOUTS = (BODY13, PENN13, COCO17, COCO13, NTU25, KINECT20, KINECT20_UTD, BLAZEPOSE33, HAND21,
                   MEDIAPIPE11)
