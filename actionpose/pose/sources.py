"""Video sources: files, folders of videos, webcam indices and stream URLs, decoded on a thread.

Decoding runs ahead of inference in a bounded queue (memory stays constant in video length);
a decode failure part-way is recorded (``stopped_at``) instead of losing what came before.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from actionpose.errors import ActionposeError, require_file, where

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}


@dataclass
class SourceInfo:
    name: str  # sample name (file stem, "webcam0", or the URL's last part)
    spec: str | int  # what OpenCV opens
    fps: float
    frame_count: int  # 0 when unknown (streams)
    width: int
    height: int
    is_file: bool


def expand_sources(source: str | int | Path) -> list[str | int]:
    """A folder becomes its videos (sorted); anything else is one source."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return [int(source)]
    s = str(source)
    if not s.strip():  # Path("") is the current folder: an unset $VIDEO extracted every video in it
        raise ActionposeError("empty source: give a video file, a folder, a stream URL or a webcam index")
    if "://" in s:
        return [s]
    p = Path(s)
    if p.is_dir():
        vids = sorted(str(f) for f in p.iterdir() if f.suffix.lower() in VIDEO_EXTS and f.is_file())
        if not vids:
            raise ActionposeError(f"{p}: folder holds no videos ({', '.join(sorted(VIDEO_EXTS))})")
        return vids
    require_file(p, "no such file or folder")
    return [s]


def redact_url(spec: str | int) -> str:
    """A camera URL fit to print or store: its user name, password and query values replaced by ``***``
    (``rtsp://admin:secret@10.0.0.5/live?token=abc`` -> ``rtsp://***@10.0.0.5/live?token=***``). IP
    cameras take their credentials in the URL, and it went into errors, console lines and JSON lines."""
    s = str(spec)
    if "://" not in s:
        return s
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        u = urlsplit(s)
        netloc = "***@" + u.netloc.rsplit("@", 1)[1] if "@" in u.netloc else u.netloc
        query = urlencode([(k, "***") for k, _ in parse_qsl(u.query, keep_blank_values=True)], safe="*")
        return urlunsplit((u.scheme, netloc, u.path, query, ""))
    except ValueError:  # not parseable: say nothing of it rather than leak it
        return s.split("://", 1)[0] + "://***"


def source_label(source: str | int | Path) -> str:
    """How a source is named in results (JSON ``video``, CSV, JSON lines): a file's name, a webcam's index,
    a stream's URL without its credentials. Why: ``Path(url).name`` of ``rtsp://cam/live?token=abc`` is
    ``live?token=abc``, the camera's token in every result file, and two cameras' ``/live`` looked alike."""
    s = str(source)
    if s.isdigit():
        return f"webcam{s}"
    return redact_url(s) if "://" in s else Path(s).name


def open_source(spec: str | int) -> tuple[cv2.VideoCapture, SourceInfo]:
    if isinstance(spec, int):
        name, is_file = f"webcam{spec}", False
    elif "://" in spec:
        name, is_file = redact_url(spec).rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "stream", False
    else:
        if not spec.strip():  # an unset $VIDEO in a script: tagged every video in the current folder
            raise ActionposeError("empty source: give a video file, a folder, a stream URL or a webcam index")
        name, is_file = Path(spec).stem, True
        require_file(spec)
        if Path(spec).suffix.lower() in IMAGE_EXTS:  # OpenCV reads a picture as a one-frame video
            raise where(spec, f"is an image ({Path(spec).suffix.lower()}), not a video; give a video file, a folder "
                              "of videos or a stream (a still image has no motion to classify)")
    cap = cv2.VideoCapture(spec)
    if not cap.isOpened():
        what = ("cannot open video (unreadable or unsupported)" if is_file else
                "cannot open camera (none with this index, or in use)" if isinstance(spec, int) else
                "cannot open stream (unreachable?)")
        raise ActionposeError(f"{redact_url(spec)}: {what}")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not np.isfinite(fps) or fps <= 0 or fps > 1000:
        fps = 30.0
    info = SourceInfo(name, spec, fps, max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0),
                      int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0), is_file)
    return cap, info


@dataclass
class Frame:
    index: int  # output frame index (after resampling)
    source_index: int  # decoded frame index in the source
    time_s: float
    image: np.ndarray


class RateSampler:
    """Which frames of a source at ``rate`` fps to keep to process it at ``target`` fps (every frame when ``target``
    is None): the first, then each one at or past the next 1/target step. One rule for decoded videos, looped
    benchmark videos and pickles (:func:`actionpose.inference.tagger.resample_indices`), so each keeps the same
    frames of the same source."""

    def __init__(self, rate: float, target: float | None):
        self.step = rate / target if target else 1.0
        self.next_t = 0.0

    def keep(self, index: int) -> bool:
        """Whether source frame ``index`` (asked in increasing order) is kept."""
        if index + 1e-6 < self.next_t:
            return False
        self.next_t += self.step
        return True


# the lowest --fps the commands take; a file slower than this gets a note. One floor for the whole pipeline: the
# fall detector's (fall_prep is plain numpy, so importing it here costs nothing)
from actionpose.inference.fall_prep import MIN_STREAM_FPS as MIN_SOURCE_FPS  # noqa: E402


class FrameReader:
    """Iterate frames of one source, decoded on a background thread; optional resampling to ``fps``."""

    def __init__(self, spec: str | int, fps: float | None = None, max_frames: int | None = None, prefetch: int = 8):
        self.cap, self.info = open_source(spec)
        if fps is not None and fps <= 0:
            raise ActionposeError(f"--fps must be positive, got {fps}")
        if fps is not None and self.info.is_file and fps > self.info.fps * 1.001:
            # frames are not invented: the requested rate was recorded while the frames came at the video's
            # own rate, so every time and duration shrank (a 6 s clip at 18 fps became 3.6 s at "30 fps")
            self.cap.release()
            raise ActionposeError(f"--fps {fps:g} is above {self.info.name}'s own {self.info.fps:g} fps; give at most "
                                  f"{self.info.fps:g} (frames can be dropped, not made up)")
        rate_given = fps is not None
        if fps is not None and not self.info.is_file:
            # a live stream's own rate is often unknown (MJPEG over HTTP declares none; OpenCV then says 25):
            # --fps names the rate the frames arrive at, and times are frame / fps. Resampling a rate that
            # was never known made every time ~30 % short (18 fps frames counted at 25)
            self.info.fps, fps = float(fps), None
        self.target_fps = fps
        self.max_frames = max_frames
        self.decoded = 0
        self.error: str | None = None
        self._eof = False
        self._q: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        # a live stream without --fps is timed at the rate it reports, which an MJPEG stream does not know
        # (OpenCV then says 25): 18 fps frames counted at 25 put a fall at 1.76 s instead of 3.67 s, unsaid
        self.rate_note = None if rate_given or self.info.is_file else (  # (fps is None by now for a live --fps)
            f"no --fps given: frames are timed at the {self.info.fps:g} fps the stream reports (a stream that "
            "declares no rate reports 25); times and the motion the model sees depend on it: give the camera's rate")
        if self.info.is_file and self.info.fps < MIN_SOURCE_FPS:  # --fps 1 is refused, a 1 fps video was tagged unsaid
            self.rate_note = (f"{self.info.name} runs at {self.info.fps:g} fps: too few frames to see motion (the "
                              f"models need at least {MIN_SOURCE_FPS:g}); its results are not reliable")

    @property
    def out_fps(self) -> float:
        return self.target_fps or self.info.fps

    def _run(self) -> None:
        sampler, out = RateSampler(self.info.fps, self.target_fps), 0
        try:
            while not self._stop.is_set():
                ok, img = self.cap.read()
                if not ok or img is None:
                    self._eof = True
                    break
                i = self.decoded
                self.decoded += 1
                if not sampler.keep(i):
                    continue
                self._put(Frame(out, i, i / self.info.fps, img))
                out += 1
                if self.max_frames and out >= self.max_frames:
                    break
        except cv2.error as e:  # a corrupt stream can make OpenCV raise mid-way
            self.error = str(e).splitlines()[0][:120]
        finally:
            self.cap.release()
            self._put(None)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[Frame]:
        self._thread.start()
        try:
            while True:
                item = self._q.get()
                if item is None:
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def ended(self) -> bool:
        """The decoder has read the whole source (``decoded`` is final)."""
        return self._eof

    def stopped_early(self) -> str | None:
        """A reason if decoding ended before the container's frame count (a truncated/corrupt file)."""
        if self.error:
            return f"decode error at frame {self.decoded}: {self.error}"
        n = self.info.frame_count
        if self.info.is_file and n and self._eof and self.decoded < n:
            return f"video stopped at frame {self.decoded} of {n} (decode failed; frames before it were kept)"
        return None
