"""Frontends: a person detector + a top-down pose model + a tracker, selected by name.

``load_frontend("default")`` needs no network and no ../shared: its two ONNX files are vendored in
``actionpose/assets/pose``. ``fe.stream(source)`` yields one :class:`FramePoses` per frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from actionpose.errors import ActionposeError
from actionpose.pose.detectors import DETECTORS
from actionpose.pose.estimators import POSE_MODELS
from actionpose.pose.geometry import box_iou, keypoints_to_box
from actionpose.pose.roi_tracking import RoiState
from actionpose.pose.sources import FrameReader
from actionpose.pose.tracker import COCO_SIGMAS, Tracker
from actionpose.pose.zoo import get_model, resolve
from actionpose.skeleton import can_map, map_keypoints


@dataclass
class Person:
    """One tracked person in one frame; keypoints in image pixels, in the frontend's layout."""

    track_id: int
    keypoints: np.ndarray  # [V, 2]
    scores: np.ndarray  # [V]
    box: np.ndarray  # [4] xyxy
    score: float = 1.0  # detection (or carried track) confidence
    roi: RoiState | None = None  # next frame's ROI (cx, cy, side, theta) + its smoother, from models that predict it

    def in_layout(self, src: str, dst: str = "body13") -> tuple[np.ndarray, np.ndarray]:
        """Keypoints and scores mapped from the frontend's layout ``src`` into ``dst`` by joint name."""
        return map_keypoints(self.keypoints, src, dst), map_keypoints(self.scores[:, None], src, dst)[:, 0]


@dataclass
class FramePoses:
    index: int
    time_s: float
    persons: list[Person]
    image: np.ndarray | None = None
    source_index: int | None = None
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage


def roi_square(roi: np.ndarray, scale: float = 1.25) -> np.ndarray:
    """Axis-aligned box of a (cx, cy, side, theta) ROI before its ``scale`` expansion."""
    cx, cy, side = float(roi[0]), float(roi[1]), float(roi[2]) / scale
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


@dataclass(frozen=True)
class FrontendSpec:
    name: str
    detector: str
    pose: str
    description: str


FRONTENDS: dict[str, FrontendSpec] = {}


DEFAULT = "rtmdet-nano+movenet"
ALIASES = {"default": DEFAULT, "movenet": DEFAULT, "blazepose": "rtmdet-nano+blazepose",
           "mediapipe": "blazepose-detector+blazepose"}


def register_frontend(spec: FrontendSpec, *, overwrite: bool = False) -> FrontendSpec:
    """Add a frontend under its name, checked now as layouts and models are: a second spec of one name replaced
    the first without a word (the default frontend included), a name that is an alias (``mediapipe``) could
    never be selected, and a detector or pose model the frontend cannot run (the two swapped) failed only at
    load time, with a bare ``KeyError``."""
    if spec.name in ALIASES:
        raise ActionposeError(f"frontend name {spec.name!r} is an alias of {ALIASES[spec.name]!r}; choose another name")
    if spec.name in FRONTENDS and not overwrite:
        raise ActionposeError(f"frontend {spec.name!r} is already registered (overwrite=True replaces it)")
    for what, name, known in (("detector", spec.detector, DETECTORS), ("pose", spec.pose, POSE_MODELS)):
        if name not in known:
            raise ActionposeError(f"frontend {spec.name}: {what} {name!r} is not a {what} model; known: "
                                  f"{', '.join(sorted(known))}")
    FRONTENDS[spec.name] = spec
    return spec


register_frontend(FrontendSpec(DEFAULT, "rtmdet-nano-person", "movenet-lightning",
                               "embedded default: RTMDet-nano person boxes + MoveNet Lightning int8 per person (COCO-17)"))
register_frontend(FrontendSpec("yolox-nano+movenet", "yolox-nano", "movenet-lightning",
                               "YOLOX-nano (COCO-80, person class) + MoveNet Lightning"))
register_frontend(FrontendSpec("rtmdet-nano+blazepose", "rtmdet-nano-person", "blazepose-landmark-full",
                               "RTMDet-nano + BlazePose GHUM full landmarks (33 points)"))
register_frontend(FrontendSpec("blazepose-detector+blazepose", "blazepose-detector", "blazepose-landmark-full",
                               "MediaPipe Pose's own pipeline on onnxruntime: its pose detector + BlazePose GHUM "
                               "full (single-person oriented)"))
for _m in ("rtmpose-t", "rtmpose-s", "rtmpose-m", "rtmpose-l", "rtmpose-m-wholebody", "rtmw-x-wholebody",
           "vitpose-s", "vitpose-b"):
    register_frontend(FrontendSpec(_m, "rtmdet-nano-person", _m, f"RTMDet-nano + {_m}"))


def list_frontends() -> list[FrontendSpec]:
    return list(FRONTENDS.values())


def get_frontend_spec(name: str) -> FrontendSpec:
    key = ALIASES.get(name, name)
    if key not in FRONTENDS:
        raise ActionposeError(f"unknown frontend {name!r}; known: {', '.join(sorted(set(FRONTENDS) | set(ALIASES)))}")
    return FRONTENDS[key]


class Frontend:
    """Detector + pose model + tracker. Not thread-safe: one per stream."""

    def __init__(self, spec: FrontendSpec, det_model: str | Path | None = None, pose_model: str | Path | None = None,
                 threads: int = 2, det_size: int | None = None, det_every: int = 1, det_score: float = 0.3,
                 max_persons: int | None = None, min_pose_score: float = 0.1, max_boxes: int = 20,
                 carry: bool = True, carry_min_score: float = 0.2, tracker: Tracker | None = None,
                 progress: bool = True, **pose_kwargs):
        self.spec = spec
        dspec, pspec = get_model(spec.detector), get_model(spec.pose)
        if det_every < 0:
            raise ActionposeError(f"det_every must be >= 0 (0: only when nobody is followed), got {det_every}")
        if det_size is not None and not 32 <= det_size <= 2048:
            raise ActionposeError(f"det_size must be in 32..2048, got {det_size}")
        if threads < 1:
            raise ActionposeError(f"--threads (pose frontend threads) must be >= 1, got {threads}")
        self.detector = DETECTORS[dspec.name](dspec, resolve(dspec, det_model, "det", progress=progress), threads)
        self.det_score = det_score
        if det_size is not None:
            if not hasattr(self.detector, "size") or isinstance(self.detector, (DETECTORS["yolox-nano"], DETECTORS["blazepose-detector"])):
                raise ActionposeError(f"detector {dspec.name} has a fixed input size")
            self.detector.size = int(det_size)
        if not getattr(self.detector, "own_threshold", False):  # MediaPipe's detector keeps its 0.5
            self.detector.score_thr = min(det_score, 0.1)  # weak boxes may still continue a track (ByteTrack)
        self.pose = POSE_MODELS[pspec.name](pspec, resolve(pspec, pose_model, "pose", progress=progress), threads,
                                            **pose_kwargs)
        self.det_every, self.max_persons, self.min_pose_score = det_every, max_persons, min_pose_score
        self.carry, self.carry_min_score, self.max_boxes = carry, carry_min_score, max_boxes
        self.tracker = tracker or Tracker(sigmas=COCO_SIGMAS if self.layout == "coco17" else None)
        self._last: list[Person] = []
        self._held: dict[int, tuple[Person, int]] = {}  # just-lost persons: track id -> (last seen, frames since)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def layout(self) -> str:
        return self.pose.layout

    def can_map(self, dst: str = "body13") -> bool:
        return can_map(self.layout, dst)

    HOLD_FRAMES = 15  # a lost person's last box is still tried this many frames (carried boxes only)

    def reset(self) -> None:
        self.tracker.reset()
        self._last = []
        self._held = {}

    def _kp_boxes(self, persons: list[Person]) -> tuple[list[np.ndarray], list[float], list]:
        boxes, scores, rois = [], [], []
        for p in persons:
            b = keypoints_to_box(p.keypoints, p.scores)
            if b is not None:
                boxes.append(b)
                scores.append(p.score)
                rois.append(p.roi)
        return boxes, scores, rois

    def boxes_for(self, image: np.ndarray, index: int):
        """Where to run the pose model this frame.

        Detector boxes, plus, for people the detector lost, their box from the previous frame (a
        person lying on the floor is a weak detection, but the pose model still confirms them there).
        Between re-detections (``det_every``; 0 = only while nobody is followed, MediaPipe's rule for
        one person), boxes around the previous keypoints. Models that
        predict their next ROI (BlazePose) get it instead of a box wherever a person is followed; when
        such a model loses its ROI (presence below its threshold) the detector runs on the next frame,
        as in MediaPipe, whatever ``det_every`` says.
        Returns boxes, scores, rois (None per box or an ROI), a mask of carried boxes, detector-ran.
        """
        roi_lost = getattr(self.pose, "supports_roi", False) and any(p.roi is None for p in self._last)
        skip = self.det_every == 0 or (self.det_every > 1 and index % self.det_every)
        if skip and self._last and not roi_lost:
            kb, ks, kr = self._kp_boxes(self._last)
            if kb:
                return np.stack(kb), np.asarray(ks, np.float32), kr, np.ones(len(kb), bool), False
        boxes, scores = self.detector(image)
        seeds = getattr(self.detector, "last_rois", None)  # detectors that align a pose ROI themselves
        confident = scores >= self.det_score
        keep = confident | self.tracker.weak_candidates(index, boxes, confident)
        boxes, scores = boxes[keep], scores[keep]
        order = np.argsort(-scores)
        cap = self.max_boxes if not self.max_persons else min(self.max_boxes, max(self.max_persons * 2, self.max_persons + 2))
        order = order[:cap]  # bounded pose calls per frame; spare boxes for the tracker
        boxes, scores = boxes[order].reshape(-1, 4), scores[order]
        rois: list = [None] * len(boxes) if seeds is None else list(seeds[keep][order])
        carried = np.zeros(len(boxes), bool)
        if self._last:
            last = np.stack([p.box for p in self._last])
            iou = box_iou(boxes, last) if len(boxes) else np.zeros((0, len(last)), np.float32)
            if getattr(self.pose, "supports_roi", False) and len(boxes):
                # a followed person's ROI square (its side / 1.25) is what an aligning detector such as
                # MediaPipe's returns for the same body, so a detection matches either box
                sq = np.stack([roi_square(p.roi.roi) if p.roi is not None else p.box for p in self._last])
                iou = np.maximum(iou, box_iou(boxes, sq))
            if getattr(self.pose, "supports_roi", False):
                # each followed person's ROI goes to its best-overlapping detection only; other detections
                # on a followed person are duplicates (the ROI is where that person is), not new people
                drop = np.zeros(len(boxes), bool)
                claimed: set[int] = set()
                for j in np.argsort(-iou.max(1)) if len(boxes) else []:
                    i = int(iou[j].argmax())
                    if iou[j, i] < 0.3 or self._last[i].roi is None:
                        continue
                    if i in claimed:
                        drop[j] = True
                    else:
                        claimed.add(i)
                        rois[j] = self._last[i].roi
                if drop.any():
                    boxes, scores, iou = boxes[~drop], scores[~drop], iou[~drop]
                    rois = [r for r, d in zip(rois, drop) if not d]
                    carried = carried[~drop]
        if self.carry and (self._last or self._held):
            # followed persons the detector lost, and persons lost in the last HOLD_FRAMES frames: their last
            # box is tried again. A person lying on the floor is a weak detection (0.1-0.2); one frame whose
            # pose fell just under carry_min_score used to end the carry for good (JPEG-compressed frames of
            # fall_video_1: the person was lost from the moment he lay down, and the fall with him)
            held = [p for p, _ in self._held.values()]
            followed = self._last + held
            parts = []
            if self._last:  # the overlap above (for ROI models it counts the ROI square too)
                parts.append(iou.max(0) < 0.3 if len(boxes) else np.ones(len(self._last), bool))
            if held:
                hb = np.stack([p.box for p in held])
                parts.append(box_iou(boxes, hb).max(0) < 0.3 if len(boxes) else np.ones(len(held), bool))
            lost = np.concatenate(parts)
            last = np.stack([p.box for p in followed])
            if lost.any():
                # held boxes count as confident once the pose model confirms them (carry_min_score);
                # their keypoints bind them to their own track through the OKS term
                boxes = np.concatenate([boxes.reshape(-1, 4), last[lost]])
                scores = np.concatenate([scores, np.full(int(lost.sum()), self.tracker.high_thr, np.float32)])
                rois += [p.roi for p, l in zip(followed, lost) if l]
                carried = np.concatenate([carried, np.ones(int(lost.sum()), bool)])
        return boxes, scores, rois, carried, True

    def process(self, image: np.ndarray, index: int = 0, time_s: float = 0.0, keep_image: bool = False) -> FramePoses:
        t0 = time.perf_counter()
        boxes, det_scores, rois, carried, detected = self.boxes_for(image, index)
        t1 = time.perf_counter()
        if getattr(self.pose, "supports_roi", False):
            kps, kp_scores = self.pose(image, boxes, rois)
            next_rois = self.pose.last_rois
        else:
            kps, kp_scores = self.pose(image, boxes)
            next_rois = [None] * len(boxes)
        t2 = time.perf_counter()
        mean_kp = kp_scores.mean(1) if len(kp_scores) else np.zeros(0, np.float32)
        keep = mean_kp >= np.where(carried, self.carry_min_score, self.min_pose_score)
        idx = np.nonzero(keep)[0]
        boxes, det_scores, kps, kp_scores = boxes[idx], det_scores[idx], kps[idx], kp_scores[idx]
        next_rois = [next_rois[i] for i in idx]
        ids = self.tracker.update(index, boxes, det_scores, kps, kp_scores)
        persons = [Person(int(i), kps[j], kp_scores[j], boxes[j], float(det_scores[j]), next_rois[j])
                   for j, i in enumerate(ids) if i >= 0]
        seen = {p.track_id for p in persons}  # tracked this frame (a person cut by max_persons is not lost)
        if self.max_persons:
            persons = sorted(persons, key=lambda p: -p.score * float(p.scores.mean()))[: self.max_persons]
        persons.sort(key=lambda p: p.track_id)
        held = {tid: (p, n + 1) for tid, (p, n) in self._held.items() if tid not in seen and n + 1 < self.HOLD_FRAMES}
        held.update({p.track_id: (p, 0) for p in self._last if p.track_id not in seen})
        self._last, self._held = persons, held
        t3 = time.perf_counter()
        timings = {"detect" if detected else "boxes_from_kps": (t1 - t0) * 1e3, "pose": (t2 - t1) * 1e3,
                   "track": (t3 - t2) * 1e3}
        return FramePoses(index, time_s, persons, image if keep_image else None, timings=timings)

    def stream(self, source: str | int | Path, fps: float | None = None, keep_images: bool = True,
               max_frames: int | None = None, reader: FrameReader | None = None) -> Iterator[FramePoses]:
        """Frames of one video/stream with tracked persons; decoding runs on its own thread."""
        self.reset()
        reader = reader or FrameReader(source if isinstance(source, int) else str(source), fps, max_frames)
        last = time.perf_counter()
        for fr in reader:
            decode_ms = (time.perf_counter() - last) * 1e3  # time waiting for the decoder
            out = self.process(fr.image, fr.index, fr.time_s, keep_images)
            out.source_index = fr.source_index
            out.timings["decode_wait"] = decode_ms
            yield out
            last = time.perf_counter()


def load_frontend(name: str = "default", **kwargs) -> Frontend:
    """Build a frontend by registry name (``list_frontends()``); kwargs go to :class:`Frontend`."""
    return Frontend(get_frontend_spec(name), **kwargs)
