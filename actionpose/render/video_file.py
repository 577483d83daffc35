"""Writing a video file that a browser plays: H.264 through PyAV, OpenCV's MPEG-4 Part 2 only as a fallback.

Why: OpenCV's pip wheels carry no H.264 encoder, and their ``mp4v`` (MPEG-4 Part 2) plays in desktop
players but not in Chrome, Firefox or Safari, where a user opening an overlay in a notebook, a web app or a
ticket expects it to play. PyAV's wheels carry FFmpeg with libx264: ``yuv420p`` High-profile H.264 with its
index at the front (``+faststart``) plays everywhere, and at ~3 ms per 640x360 frame (``veryfast``, one
thread) it costs little next to pose estimation; the files are ~4x smaller than ``mp4v`` too. ``.avi``
stays Motion-JPEG through OpenCV (what that container is for).
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from actionpose.errors import where

H264_SUFFIXES = {".mp4", ".mov", ".mkv"}
VIDEO_SUFFIXES = H264_SUFFIXES | {".avi"}


def check_video_suffix(path: str | Path | None, option: str) -> None:
    """Refuse an overlay name this writer cannot make, before any work: found after a whole video had been
    tagged, the error cost the run's JSON and CSV with it."""
    if path is not None and Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise where(f"{option} {path}", f"a video file must end in {', '.join(sorted(VIDEO_SUFFIXES))}")


_noted = False  # the fallback note is said once per process


def _h264_available() -> bool:
    try:
        import av

        av.codec.Codec("libx264", "w")
        return True
    except Exception:  # noqa: BLE001 - PyAV missing, or built without libx264: fall back
        return False


class VideoFile:
    """``write(bgr)`` frames of one size, then ``close()``. The format follows ``path``'s suffix; ``target``
    names the file in messages (the frames go to ``path``, usually its temporary twin). ``codec`` says what
    was used: ``h264``, ``mpeg4`` (OpenCV's mp4v fallback) or ``mjpeg``. Odd sizes are padded by one black
    row/column (H.264's 4:2:0 needs even ones; the overlay makes its own sizes even, other callers may not)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], target: Path | None = None):
        self.path, self.target = Path(path), Path(target or path)
        w, h = size
        self.size = (w + w % 2, h + h % 2)
        self._pad = (self.size[0] - w, self.size[1] - h)
        suffix = self.path.suffix.lower()  # a temporary twin keeps its target's suffix
        if suffix not in VIDEO_SUFFIXES:  # OpenCV wrote its own FFmpeg complaint, then failed
            raise where(self.target, f"a video file must end in {', '.join(sorted(VIDEO_SUFFIXES))}")
        self._av = self._cv = None
        if suffix in H264_SUFFIXES and _h264_available():
            self._open_h264(fps)
        else:
            if suffix in H264_SUFFIXES:
                _note_fallback()
            self.codec = "mjpeg" if suffix == ".avi" else "mpeg4"
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.codec == "mjpeg" else "mp4v"))
            self._cv = cv2.VideoWriter(str(self.path), fourcc, float(fps), self.size)
            if not self._cv.isOpened():
                raise where(self.target, "OpenCV cannot write this video format here")

    def _open_h264(self, fps: float) -> None:
        from fractions import Fraction

        import av

        try:
            fmt = {".mkv": "matroska", ".mov": "mov"}.get(self.path.suffix.lower(), "mp4")
            self._av = av.open(str(self.path), "w", format=fmt,
                               options={"movflags": "+faststart"} if fmt != "matroska" else {})
            rate = Fraction(float(fps)).limit_denominator(1001)
            self._stream = self._av.add_stream("libx264", rate=rate, options={"preset": "veryfast", "crf": "23"})
            self._stream.width, self._stream.height = self.size
            self._stream.pix_fmt = "yuv420p"
            self._stream.thread_count = 1  # the tagger's other threads are busy with poses
        except (av.FFmpegError, OSError, ValueError) as e:
            if self._av is not None:
                self._av.close()
            raise where(self.target, f"cannot write video: {e}") from None
        self._av_frame = av.VideoFrame
        self.codec = "h264"

    def write(self, image: np.ndarray) -> None:
        if any(self._pad):
            image = cv2.copyMakeBorder(image, 0, self._pad[1], 0, self._pad[0], cv2.BORDER_CONSTANT, value=0)
        if self._cv is not None:
            self._cv.write(image)
            return
        frame = self._av_frame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        for packet in self._stream.encode(frame):
            self._av.mux(packet)

    def close(self) -> None:
        """Flush and close (idempotent)."""
        if self._cv is not None:
            self._cv.release()
            self._cv = None
        if self._av is not None:
            try:
                for packet in self._stream.encode():
                    self._av.mux(packet)
            finally:
                self._av.close()
                self._av = None


def _note_fallback() -> None:
    global _noted
    if not _noted:
        _noted = True
        print("note: PyAV with libx264 is not installed, so videos are written as MPEG-4 Part 2 (mp4v), which "
              "browsers do not play; pip install av for H.264", file=sys.stderr)
