"""Run a :class:`FallDetector` over a whole source: a video (through the pose frontend), a canonical
skeleton pickle (``actionpose extract`` output), or a ``.npy`` keypoint array [T, V, 2|3]."""
from __future__ import annotations

import contextlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from actionpose.errors import ActionposeError, require_file, where
from actionpose.inference.fall import NORMALISED_WARNING, UPSIDE_DOWN_WARNING, FallDetector, FallEvent
from actionpose.inference.fall_prep import (LOW_RATE_ADVICE, MIN_STREAM_FPS, NORMALISED_ADVICE, NORMALISED_MAX,
                                            SIDEWAYS_ADVICE, UPSIDE_DOWN_ADVICE,
                                            looks_normalised, looks_sideways, looks_upside_down, person_frames,
                                            seen_joints, torso_counts, torso_legs)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def _in_pixels(kp: np.ndarray, img_shape: Any) -> np.ndarray:
    """Keypoints normalised to the image (:func:`looks_normalised`, as the URFD and MD4FD importers store
    them) back in pixels via the annotation's ``img_shape`` (h, w)."""
    try:
        h, w = (float(v) for v in img_shape)
    except (TypeError, ValueError):
        return kp
    if h > 0 and w > 0 and looks_normalised(kp[seen_joints(kp, None)]):
        return kp * np.asarray([w, h], np.float32)
    return kp


def frames_from_pickle(path: Path, fps: float | None, ds: Any = None,
                       sequence: int | None = None) -> tuple[str, Iterator[tuple[float, dict[Any, np.ndarray]]]]:
    """Every annotation of the pickle is streamed in turn (``track_id`` = ``frame_dir``/person index), or only
    the ``sequence``-th; ``ds``: the pickle, when the caller has read it already."""
    from actionpose.data.format import load_dataset

    ds = load_dataset(path) if ds is None else ds
    three_d = next((a["frame_dir"] for a in ds.annotations if np.shape(a["keypoint"])[-1] == 3), None)
    if three_d is not None:  # x, y, z in metres with y up: read as image x, y every person is upside down
        raise where(path, f"sample {three_d!r} holds 3D keypoints (x, y, z); the fall detector needs 2D image "
                          "keypoints, e.g. from `actionpose extract VIDEO -o poses.pkl`")

    anns = ds.annotations if sequence is None else [ds.annotations[sequence]]

    def gen():
        for ann in anns:
            kp = _in_pixels(np.asarray(ann["keypoint"][..., :2], np.float32), ann.get("img_shape"))
            sc = ann.get("keypoint_score")
            rate = float(fps or ann.get("fps") or 30.0)
            for t in range(kp.shape[1]):
                frame = {}
                for m in range(kp.shape[0]):
                    pts = kp[m, t]
                    if not np.abs(pts).sum():
                        continue  # person absent in this frame (PYSKL pads with zeros)
                    s = sc[m, t] if sc is not None else np.ones(len(pts), np.float32)
                    frame[f"{ann['frame_dir']}/{m}"] = np.concatenate([pts, s[:, None]], -1)
                yield t / rate, frame

    return ds.layout, gen()


def frames_from_npy(path: Path, fps: float | None) -> Iterator[tuple[float, dict[Any, np.ndarray]]]:
    with open(path, "rb") as f:  # numpy took a text file for "pickled (object) data" and suggested allow_pickle
        if f.read(6) != b"\x93NUMPY":
            raise where(path, "not a .npy file (no NumPy header); give an array saved with numpy.save")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise where(path, f"cannot read .npy ({e})") from None
    if arr.ndim != 3 or arr.shape[-1] not in (2, 3):
        raise where(path, f"shape {arr.shape}, expected [T, V, 2] or [T, V, 3] (one person)")
    arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    rate = float(fps or 30.0)
    for t in range(len(arr)):
        pts = arr[t]
        if pts.shape[-1] == 2:  # no scores: a coordinate <= 0 means missing (as in fall_skeleton_1.npy)
            pts = np.concatenate([pts, (pts > 0).all(-1, keepdims=True).astype(np.float32)], -1)
        yield t / rate, {0: pts}


class FallOverlay:
    """The overlay video of a fall run: skeletons, track ids, and ``fall`` / ``still down`` with its confidence on
    a person from the frame it was raised until the person is seen up again. Drawn over the video's frames, or
    on a blank canvas for a skeleton source (a pickle or ``.npy``), so ``tag --model fall --render`` works on
    every source the other models render."""

    def __init__(self, path: str | Path, fps: float, layout: str, canvas: tuple[int, int] | None = None):
        from actionpose.render.overlay import OverlayWriter

        self.writer = OverlayWriter(path, fps, layout, ["fall", "still down"], canvas=canvas)
        self.raised: dict[int, tuple[str, float]] = {}
        self.ids: dict[Any, int] = {}  # ids that are not numbers -> the int the writer colours and labels by
        self.writer.label_of = lambda tid: self.raised.get(tid, ("", 0.0))

    def key(self, track_id: Any) -> int:
        return track_number(track_id, self.ids)

    def add(self, index: int, image: np.ndarray | None, persons: list, new_events: list[FallEvent]) -> None:
        """One frame: the events it raised first (the label shows from that frame on), then the drawing."""
        for e in new_events:
            if e.kind == "recovered":  # up again: the label goes
                self.raised.pop(self.key(e.track_id), None)
            else:
                self.raised[self.key(e.track_id)] = (e.kind.replace("_", " "), float(e.confidence))
        self.writer.add_frame(index, image, persons)

    def add_skeletons(self, index: int, persons: dict[Any, np.ndarray], new_events: list[FallEvent]) -> None:
        from actionpose.inference.tagger import PersonPose

        self.add(index, None, [PersonPose(self.key(t), p[:, :2], p[:, 2]) for t, p in persons.items()], new_events)

    def close(self, keep: bool = True) -> None:
        self.writer.close(keep=keep)


def track_number(track_id: Any, ids: dict[Any, int]) -> int:
    """A track id as the number `tag --model fall` reports and its overlay draws: a frontend's own number; a
    pickle's "<frame_dir>/<index>" as that index; any other id numbered in order of appearance (kept in ``ids``).
    One rule for both, so the JSON and the overlay name a person alike."""
    if isinstance(track_id, (int, np.integer)) and not isinstance(track_id, bool):
        return int(track_id)
    text = str(track_id).rsplit("/", 1)[-1]
    return int(text) if text.lstrip("-").isdigit() else ids.setdefault(track_id, len(ids))


def skeleton_canvas(img_shape: Any, extent: tuple[float, float] | None = None) -> tuple[int, int]:
    """(h, w) of the blank frame a skeleton source is drawn on: the annotation's image size, else one that holds
    the farthest keypoint (``extent``: the largest x and y, pixels) with a small margin, else 480 x 640."""
    try:
        h, w = (int(round(float(v))) for v in img_shape)
        if h > 0 and w > 0:
            return h, w
    except (TypeError, ValueError):
        pass
    if extent is not None and min(extent) > 1:
        return max(int(np.ceil(extent[1] * 1.02)), 240), max(int(np.ceil(extent[0] * 1.02)), 320)
    return 480, 640


def detect_falls(detector: FallDetector, source: str | Path, layout: str | None = None, fps: float | None = None,
                 frontend: str = "default", on_event: Callable[[FallEvent], None] | None = None,
                 render: str | Path | None = None, sequence: int | None = None) -> tuple[list[FallEvent], dict[str, Any]]:
    """:func:`_detect_falls`; the detector's Python warnings about its input (normalised, upside down, under 3 fps) are not
    shown, the run's own ``warnings`` say them (once, as a line of the report, not as a traceback-like
    UserWarning)."""
    import warnings as pywarnings

    with pywarnings.catch_warnings():
        for said in (NORMALISED_WARNING, UPSIDE_DOWN_WARNING):
            pywarnings.filterwarnings("ignore", message=re.escape(said), category=UserWarning)
        # the run's rate is said once as a report line below (LOW_RATE_ADVICE), not also per window
        pywarnings.filterwarnings("ignore", message=re.escape("fall detector: " + LOW_RATE_ADVICE.split("{")[0]),
                                  category=UserWarning)
        return _detect_falls(detector, source, layout, fps, frontend, on_event, render, sequence)


def _detect_falls(detector: FallDetector, source: str | Path, layout: str | None = None, fps: float | None = None,
                  frontend: str = "default", on_event: Callable[[FallEvent], None] | None = None,
                  render: str | Path | None = None, sequence: int | None = None) -> tuple[list[FallEvent], dict[str, Any]]:
    """Fall events of a whole source plus facts about the run (frames, duration, layout, interrupted).

    A live source (webcam index, rtsp/http URL) runs until it ends or Ctrl-C; ``on_event`` sees each
    fall the moment it is raised, which is what a live camera needs. ``render`` (videos and live sources)
    writes an overlay video: skeletons, track ids, and ``fall`` with its confidence on a person from the
    moment the fall was raised."""
    from actionpose.inference.tagger import is_live_source

    live = is_live_source(str(source))
    path = Path(source)
    if not live and not path.is_dir():
        require_file(path)
    events: list[FallEvent] = []
    warnings: list[str] = []
    truncated: str | None = None  # why a file stopped decoding before its end
    detector.reset()
    earlier = {"scored": 0, "peaks": {}}  # of a pickle's earlier sequences (each one resets the detector)
    extra: dict[str, Any] = {}  # facts only some sources have (a pickle's sequence name)
    interrupted = False
    seen: set = set()  # every track id streamed, fallen or not (a report lists the persons without a fall too)
    # with_person 0: nobody shown; standing / inverted: person-frames standing, of them upside down
    count = {"frames": 0, "with_person": 0, "last_t": 0.0, "max_coord": 0.0, "standing": 0, "inverted": 0,
             "sideways": 0}

    steps: list[float] = []  # frame intervals: the source's frame rate (a video's last stamp is 1 frame short)
    known_rate: float | None = None  # a file resampled by --fps: its kept frames are 2 or 3 source frames apart (18
    # -> 7 fps), so the median interval said 6 or 9 fps and the duration 7.0 s for a 6 s video; the rate asked is known

    def step(persons: dict, t: float, lay: str) -> None:
        """One frame through the detector, whatever the source."""
        new = detector.update(persons, t, layout=lay)
        events.extend(new)
        if on_event is not None:
            for e in new:
                on_event(e)
        seen.update(persons)
        shown = [p[seen_joints(p[:, :2], p[:, 2] if p.shape[1] == 3 else None), :2] for p in persons.values()]
        count["with_person"] += any(len(x) for x in shown)
        for x in shown:
            if len(x):
                count["max_coord"] = max(count["max_coord"], float(np.abs(x).max()))
        if persons:  # standing frames, those upside down (y pointing up?) and lying along x (swapped?), over the stream
            kp6, seen6 = torso_legs(*person_frames(list(persons.values())), lay, detector.config.prep.score_min)
            standing, inverted = torso_counts(kp6, seen6)
            count["standing"] += int(standing.sum())
            count["inverted"] += int(inverted.sum())
            count["sideways"] += int(torso_counts(kp6[..., ::-1], seen6)[0].sum())
        count["frames"] += 1
        if count["frames"] > 1 and t > count["last_t"] and len(steps) < 2000:
            steps.append(t - count["last_t"])
        count["last_t"] = t

    suffix = "" if live else path.suffix.lower()
    if live or suffix in VIDEO_SUFFIXES:
        from actionpose.pose import load_frontend

        from actionpose.pose.sources import FrameReader

        fe = load_frontend(frontend)
        lay = fe.layout
        reader = FrameReader(str(source), fps)
        if reader.info.is_file and reader.target_fps:
            known_rate = float(reader.out_fps)
        overlay = None if render is None else FallOverlay(render, reader.out_fps, lay)
        try:
            for fr in fe.stream(str(source), keep_images=overlay is not None, reader=reader):
                before = len(events)
                step({p.track_id: np.concatenate([p.keypoints, p.scores[:, None]], -1) for p in fr.persons},
                     fr.time_s, lay)
                if overlay is not None:
                    overlay.add(fr.index, fr.image, fr.persons, events[before:])
        except KeyboardInterrupt:
            interrupted = True
        except BaseException:
            if overlay is not None:
                overlay.close(keep=False)
            raise
        if overlay is not None:
            overlay.close(keep=True)  # what was seen, also after Ctrl-C
        early = reader.stopped_early()  # a truncated file: said, as `tag` says it (it was silent here)
        if early:
            warnings.append(early)
            truncated = early
        if reader.rate_note:
            warnings.append(reader.rate_note)
    elif suffix == ".pkl":
        ds = read_pickle(path)
        lay, gen = frames_from_pickle(path, fps, ds, sequence)
        if sequence is not None:
            extra["sequence_name"] = str(ds.annotations[sequence]["frame_dir"])
        overlay = None
        if render is not None:
            if len(ds.annotations) != 1 and sequence is None:  # one overlay video is one sequence (as other models)
                warnings.append(f"--render draws one sequence and {path.name} holds {len(ds.annotations)}: no overlay "
                                "written (give a pickle of one video, e.g. from `actionpose extract`)")
            else:
                ann = ds.annotations[sequence or 0]
                overlay = FallOverlay(render, float(fps or ann.get("fps") or 30.0), lay,
                                      canvas=skeleton_canvas(ann.get("img_shape")))
        with _closing_on_error(overlay):
            for index, (t, persons) in enumerate(gen):
                if t == 0 and count["frames"]:  # next annotation: a new, independent stream
                    earlier["scored"] += detector.windows_scored
                    earlier["peaks"].update(detector.peaks)
                    detector.reset()
                before = len(events)
                step(persons, t, lay)
                if overlay is not None:
                    overlay.add_skeletons(index, persons, events[before:])
    elif suffix == ".npy":
        lay = layout or "coco17"
        from actionpose.skeleton import get_layout

        try:
            shape, joints = np.load(path, mmap_mode="r", allow_pickle=False).shape, get_layout(lay).num_joints
        except (ValueError, OSError):
            shape, joints = (), 0  # unreadable: frames_from_npy below says why
        if len(shape) == 3 and shape[1] != joints:  # [V, T, 2] gave "108 joints but coco17 has 17", no file named
            hint = "; frames and joints swapped? (transpose to [T, V, C])" if shape[0] == joints else ""
            raise where(path, f"shape {tuple(shape)}: {shape[1]} joints per frame, but layout {lay} has {joints} "
                              f"(--layout names the file's layout){hint}")
        if fps is None:  # 18 fps data taken as 30 put the fall at 1.47 s instead of 2.44 s, silently
            warnings.append("no --fps given: the frames are taken as 30 fps; give the rate they were recorded at "
                            "(event times, and the motion the model sees, depend on it)")
        overlay = None
        if render is not None:
            try:
                xy = np.abs(np.load(path, mmap_mode="r", allow_pickle=False)[..., :2]).reshape(-1, 2)
                extent = tuple(float(v) for v in np.nan_to_num(xy, posinf=0.0).max(0))
            except (ValueError, OSError, IndexError):
                extent = None  # unreadable: frames_from_npy below says why
            overlay = FallOverlay(render, float(fps or 30.0), lay, canvas=skeleton_canvas(None, extent))
        with _closing_on_error(overlay):
            for index, (t, persons) in enumerate(frames_from_npy(path, fps)):
                before = len(events)
                step(persons, t, lay)
                if overlay is not None:
                    overlay.add_skeletons(index, persons, events[before:])
    else:
        if path.is_dir():
            raise where(path, "is a folder; give one video, .pkl or .npy (for a folder: actionpose tag DIR --model fall)")
        raise where(path, f"unsupported source type {suffix or '(none)'}; give a video, a .pkl or a .npy")
    if count["frames"] == 0 and not interrupted:
        from actionpose.pose.sources import redact_url

        raise where(redact_url(source), "no frames decoded" + (" (the stream gave none)" if live else ""))
    if count["with_person"] >= 3 and count["max_coord"] <= NORMALISED_MAX:  # looks_normalised, over the stream
        warnings.append(NORMALISED_ADVICE)
    if looks_upside_down(count["standing"], count["inverted"]):
        warnings.append(UPSIDE_DOWN_ADVICE)
    elif looks_sideways(count["standing"], count["sideways"]):  # MoveNet's [y, x] in pixels: a walk read as lying
        warnings.append(SIDEWAYS_ADVICE)
    scored, peaks = earlier["scored"] + detector.windows_scored, {**earlier["peaks"], **detector.peaks}
    if count["with_person"] and scored == 0 and not interrupted:
        warnings.append(f"nothing could be checked: no person was seen for the {detector.config.min_window_s:g} s "
                        "of frames the detector needs")
    rate = known_rate if known_rate and count["frames"] else 1 / float(np.median(steps)) if steps else None
    duration = count["frames"] / rate if rate else count["last_t"]  # 108 frames at 18 fps: 6.00 s, not 5.94
    if rate is not None and rate < MIN_STREAM_FPS:  # a 2 fps skeleton file was checked without a word
        warnings.append(LOW_RATE_ADVICE.format(rate=rate, need=MIN_STREAM_FPS))
    return events, {"frames": count["frames"], "duration_s": round(duration, 3), "layout": lay,
                    "fps": None if rate is None else round(rate, 3),
                    "interrupted": interrupted, "complete": not interrupted and truncated is None,
                    "truncated": truncated, "warnings": warnings, "tracks": sorted(seen, key=_track_order),
                    "frames_with_person": count["with_person"],
                    "windows_scored": scored,
                    "peaks": {t: round(p, 4) for t, p in peaks.items()},
                    "not_up_at_end": detector.open_follow_ups(), **extra}


@contextlib.contextmanager
def _closing_on_error(overlay: FallOverlay | None) -> Iterator[None]:
    """A skeleton source's overlay: kept when the source was read to its end, removed when reading failed
    (no half-written video left behind)."""
    try:
        yield
    except BaseException:
        if overlay is not None:
            overlay.close(keep=False)
        raise
    if overlay is not None:
        overlay.close(keep=True)


def read_pickle(path: Path) -> Any:
    """The dataset of a pickle, read once per version of the file: `tag PKL --model fall` tags a pickle one
    sequence at a time, and reading the whole file for each of N sequences was N times the work."""
    st = path.stat()
    return _read_pickle_version(str(path.resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=1)
def _read_pickle_version(path: str, mtime_ns: int, size: int) -> Any:
    from actionpose.data.format import load_dataset

    return load_dataset(path)


def _track_order(track_id: Any) -> tuple:
    """Numbers in numeric order (2 before 10: sorted as text they were not), then other ids as text."""
    number = isinstance(track_id, (int, np.integer)) and not isinstance(track_id, bool)
    return (not number, int(track_id) if number else 0, str(track_id))
