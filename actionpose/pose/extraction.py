"""Videos -> canonical skeleton pickle: one annotation per video, tracked persons as M.

Decoding (reader thread), inference (caller's thread) and rendering/encoding (writer thread) overlap;
only per-frame keypoints are kept, so memory grows with T x persons, never with the frames themselves.
The pickle is written atomically at the end; if a video breaks part-way, what was extracted is kept
and the annotation says where it stopped.
"""
from __future__ import annotations

import queue
import sys
import threading
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from actionpose.data.atomic import atomic_path, output_labels
from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset
from actionpose.errors import ActionposeError
from actionpose.pose.frontend import Frontend, load_frontend
from actionpose.pose.render import draw_persons
from actionpose.pose.sources import FrameReader, expand_sources, redact_url
from actionpose.render.video_file import VideoFile
from actionpose.skeleton import map_keypoints


class _Renderer:
    """Encodes overlay frames on a thread; the file appears (atomically) only when closed cleanly."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], layout: str):
        self.path, self.layout = path, layout
        self._ctx = atomic_path(path, suffix=path.suffix or ".mp4")  # the container is picked by suffix
        self._tmp = self._ctx.__enter__()
        try:
            self.writer = VideoFile(self._tmp, fps, size, target=path)
        except ActionposeError as err:
            self._ctx.__exit__(ActionposeError, err, None)  # abort: committing the empty temp file emptied `path`
            raise
        self.q: queue.Queue = queue.Queue(maxsize=16)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.q.get()) is not None:
            image, persons = item
            self.writer.write(draw_persons(image, persons, self.layout))

    def put(self, image: np.ndarray, persons) -> None:
        self.q.put((image, persons))

    def close(self, ok: bool = True) -> None:
        self.q.put(None)
        self.thread.join()
        self.writer.close()
        if ok:
            self._ctx.__exit__(None, None, None)
        else:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)


def extract_video(fe: Frontend, source: str | int, fps: float | None = None, max_persons: int | None = None,
                  render: str | Path | None = None, progress: bool = True, layout: str | None = None,
                  max_frames: int | None = None, on_frame: Callable | None = None) -> dict:
    """One source -> one annotation dict (keypoint [M,T,V,2], keypoint_score [M,T,V], track_ids...)."""
    reader = FrameReader(source, fps, max_frames)
    info = reader.info
    renderer = None
    if render is not None:
        renderer = _Renderer(Path(render), reader.out_fps, (info.width, info.height), fe.layout)
    tracks: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    t = 0
    total = info.frame_count if not fps else int(info.frame_count * fps / info.fps) if info.frame_count else None
    bar = tqdm(total=total or None, unit="frame", desc=str(info.name), disable=not progress, leave=False)
    ok = False
    try:
        for fr in fe.stream(source, fps, keep_images=renderer is not None, reader=reader):
            for p in fr.persons:
                tracks.setdefault(p.track_id, {})[fr.index] = (p.keypoints, p.scores)
            if renderer is not None:
                renderer.put(fr.image, fr.persons)
            if on_frame is not None:
                on_frame(fr)
            t = fr.index + 1
            bar.update(1)
        ok = True
    finally:
        bar.close()
        if renderer is not None:
            renderer.close(ok and t > 0)
    if t == 0:
        raise ActionposeError(f"{source}: no frames decoded (empty or unreadable video)")
    src_layout = fe.layout
    out_layout = layout or src_layout
    ids = sorted(tracks, key=lambda i: -sum(float(s.mean()) for _, s in tracks[i].values()))
    if max_persons:
        ids = ids[:max_persons]
    ids.sort()
    nj = len(map_keypoints(np.zeros((_num_joints(src_layout), 2)), src_layout, out_layout))
    kp = np.zeros((max(len(ids), 1), t, nj, 2), np.float32)
    sc = np.zeros((max(len(ids), 1), t, nj), np.float32)
    for m, tid in enumerate(ids):
        for f, (k, s) in tracks[tid].items():
            kp[m, f] = map_keypoints(k, src_layout, out_layout)
            sc[m, f] = map_keypoints(s[:, None], src_layout, out_layout)[:, 0]
    extra = {"track_ids": [int(i) for i in ids], "fps": float(reader.out_fps), "source": redact_url(source),
             "frontend": fe.name, "pose_layout": src_layout}
    stopped = reader.stopped_early()
    if stopped:
        extra["stopped_at"] = int(reader.decoded)
        print(f"warning: {redact_url(source)}: {stopped}", file=sys.stderr)
    h, w = info.height, info.width
    return make_annotation(info.name, -1, kp, sc, (h, w), **extra)


def _num_joints(layout: str) -> int:
    from actionpose.skeleton import get_layout

    return get_layout(layout).num_joints


def extract(source: str | int | Path, out: str | Path | None = None, frontend: str | Frontend = "default",
            fps: float | None = None, max_persons: int | None = None, render: str | Path | None = None,
            progress: bool = True, layout: str | None = None, max_frames: int | None = None,
            **frontend_kwargs) -> SkeletonDataset:
    """Extract every video of ``source`` (file, folder, URL, webcam index) into one dataset.

    ``layout`` maps the keypoints (e.g. ``"body13"``); default: the frontend's own layout.
    With ``render`` and several videos, one overlay per video is written beside ``render``.
    """
    sources = expand_sources(source)  # bad paths fail before any model is loaded
    if fps is not None and fps <= 0:
        raise ActionposeError(f"--fps must be positive, got {fps}")
    fe = frontend if isinstance(frontend, Frontend) else load_frontend(frontend, progress=progress, **frontend_kwargs)
    anns, names, skipped = [], set(), []
    label = output_labels([Path(str(s)).name for s in sources])
    for src in sources:
        r = render
        if render is not None and len(sources) > 1:
            rp = Path(render)
            # <stem>.<video>: the name `tag` gives a folder's overlays (this wrote <stem>_<video>)
            r = rp.with_name(f"{rp.stem}.{label[Path(str(src)).name]}{rp.suffix or '.mp4'}")
        try:
            ann = extract_video(fe, src, fps, max_persons, r, progress, layout, max_frames)
        except ActionposeError as e:
            if len(sources) == 1:
                raise
            # one unreadable video in a folder threw away every finished one; now it is skipped and named
            print(f"warning: skipped {src}: {e}", file=sys.stderr)
            skipped.append(str(src))
            continue
        base, k = ann["frame_dir"], 1
        while ann["frame_dir"] in names:
            k += 1
            ann["frame_dir"] = f"{base}_{k}"
        names.add(ann["frame_dir"])
        anns.append(ann)
    if not anns:
        raise ActionposeError(f"{source}: no video could be read ({len(skipped)} skipped)")
    meta = {"frontend": fe.name, "pose_layout": fe.layout} | ({"skipped": skipped} if skipped else {})
    ds = SkeletonDataset(anns, layout or fe.layout, [], meta=meta)
    if out is not None:
        save_dataset(ds, out)
    return ds
