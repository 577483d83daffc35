"""``actionpose bench frontend VIDEO``: frames/s and per-stage ms of a pose frontend on 2 threads,
and, side by side in the same run, MediaPipe's own Pose solution vs our onnxruntime BlazePose path
(the same BlazePose GHUM full landmark model) on the same frames: fps ratio and PCK@0.05 agreement.

MediaPipe is optional (``mediapipe==0.10.14`` still ships ``solutions.pose`` and its models; it
needs ``protobuf<5``, so install it into its own folder and put that on ``--mediapipe-path``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import cv2
import numpy as np

from actionpose.errors import ActionposeError

HELP = "pose frontend fps and per-stage ms; MediaPipe Pose vs our ONNX BlazePose path"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file")
    p.add_argument("--frontend", default="default")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    p.add_argument("--resize", help="resize frames to WxH first, e.g. 640x480 (also for --reference PCK)")
    p.add_argument("--frames", type=int, default=300, help="at most this many frames (default 300)")
    p.add_argument("--det-every", type=int, default=1)
    p.add_argument("--mediapipe", action="store_true", help="also compare with MediaPipe Pose (BlazePose full)")
    p.add_argument("--mediapipe-path", help="folder to prepend to sys.path for `import mediapipe`")
    p.add_argument("--coco", help="accuracy: COCO keypoint json (images beside it) -> OKS AP per frontend")
    p.add_argument("--reference", help="accuracy: [T,17,2] COCO-17 reference skeleton of VIDEO -> PCK@0.1 per frontend")
    p.add_argument("--accuracy-frontends", default="default,yolox-nano+movenet,blazepose,mediapipe",
                   help="frontends for the accuracy table (comma-separated)")
    p.add_argument("--accuracy-only", action="store_true", help="skip the speed tables")
    p.add_argument("--blaze-det-every", type=int, default=10, help="rtmdet-nano+blazepose: re-detect every N frames "
                   "(MediaPipe re-detects only when it loses the person; blazepose-detector+blazepose does the same)")
    p.add_argument("--mediapipe-roi-check", action="store_true", help="also run our landmark stage on MediaPipe's "
                   "own ROIs (untimed): agreement there, and our sensitivity to a 1-px ROI change")
    p.add_argument("--segments", help="agreement per frame range too, e.g. 0-4,5-45,46-62,63- (end exclusive of "
                   "nothing: both ends inclusive)")


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ActionposeError(f"--resize: expected WxH, got {text!r}") from None
    if w < 16 or h < 16:
        raise ActionposeError(f"--resize: at least 16x16, got {text!r}")
    return w, h


def _load_frames(path: str, n: int, resize: str | None) -> tuple[list[np.ndarray], float, float]:
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise ActionposeError(f"{path}: cannot open video")
    size = _parse_size(resize) if resize else None
    frames, times = [], []
    while len(frames) < n:
        t = time.perf_counter()
        ok, img = cap.read()
        if not ok:
            break
        if size:
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        times.append((time.perf_counter() - t) * 1e3)
        frames.append(img)
    if not frames:
        raise ActionposeError(f"{path}: no frames decoded")
    return frames, float(np.median(times)), cap.get(cv2.CAP_PROP_FPS) or 30.0


def _run_frontend(fe, frames) -> tuple[dict[str, float], float, list]:
    fe.reset()
    for i in range(3):  # warm-up
        fe.process(frames[i % len(frames)], i)
    fe.reset()
    stages: dict[str, list[float]] = {}
    out = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i, img in enumerate(frames):
        r = fe.process(img, i)
        for k, v in r.timings.items():
            stages.setdefault(k, []).append(v)
        out.append(r)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    res = {k: float(np.mean(v)) for k, v in stages.items()}
    res["cpu_ms"] = cpu * 1e3 / len(frames)
    return res, len(frames) / wall, out


def _end_to_end_fps(fe, video: str, n: int) -> float:
    """Decode on its own thread while inference runs (what `actionpose extract` does)."""
    t0 = time.perf_counter()
    k = sum(1 for _ in fe.stream(video, keep_images=False, max_frames=n))
    return k / (time.perf_counter() - t0)


def _mediapipe(frames, path: str | None):
    if path:
        sys.path.insert(0, path)
    try:
        import mediapipe as mp
        pose_mod = mp.solutions.pose
    except Exception as e:  # ImportError, or a protobuf mismatch inside mediapipe
        raise ActionposeError(f"mediapipe not usable ({type(e).__name__}: {str(e)[:80]}); install mediapipe==0.10.14 "
                              "with protobuf<5 into a folder and pass --mediapipe-path") from None
    pose = pose_mod.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=False,
                         enable_segmentation=False)
    for i in range(3):
        pose.process(frames[i][:, :, ::-1])
    pose.close()
    pose = pose_mod.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=False,
                         enable_segmentation=False)
    out = []
    t0, c0 = time.perf_counter(), time.process_time()
    for img in frames:
        r = pose.process(np.ascontiguousarray(img[:, :, ::-1]))
        if r.pose_landmarks is None:
            out.append(None)
            continue
        h, w = img.shape[:2]
        lm = r.pose_landmarks.landmark
        out.append(np.array([[p.x * w, p.y * h, p.visibility] for p in lm], np.float32))
    fps = len(frames) / (time.perf_counter() - t0)
    cpu_ms = (time.process_time() - c0) * 1e3 / len(frames)
    pose.close()
    return mp.__version__, fps, cpu_ms, out


def _mediapipe_rois(frames) -> list:
    """MediaPipe's own next-frame ROI per frame (its graph's ``pose_rect_from_landmarks`` stream), untimed:
    (cx px, cy px, side px, rotation) or None. Same graph and options as the timed run."""
    from mediapipe.python.solution_base import SolutionBase
    from mediapipe.python.solutions import pose as mp_pose

    sb = SolutionBase(binary_graph_path=mp_pose._BINARYPB_FILE_PATH,
                      side_inputs={"model_complexity": 1, "smooth_landmarks": False, "enable_segmentation": False,
                                   "smooth_segmentation": False, "use_prev_landmarks": True},
                      outputs=["pose_landmarks", "pose_rect_from_landmarks"])
    out = []
    for img in frames:
        r = sb.process({"image": np.ascontiguousarray(img[:, :, ::-1])}).pose_rect_from_landmarks
        h, w = img.shape[:2]
        out.append(None if r is None else np.array([r.x_center * w, r.y_center * h, r.width * w, r.rotation],
                                                   np.float32))
    sb.close()
    return out


def landmark_stage_check(frames, mp_out: list, mp_rois: list, threads: int = 2) -> tuple[float, float, int]:
    """Our BlazePose landmark stage run on MediaPipe's own ROIs (its previous frame's ROI for each frame):
    PCK@0.05 agreement with MediaPipe's landmarks, and agreement of our output with itself when that ROI is
    moved by 1 px / 2 px / 0.01 rad -- how much of the end-to-end gap is the ROI loop, and how sensitive the
    model is to it on this video."""
    from actionpose.pose import load_frontend

    model = load_frontend("blazepose", threads=threads, progress=False).pose
    n = model.input_size[0]
    ok_mp = ok_self = total = 0
    for i in range(1, len(frames)):
        roi, ref = mp_rois[i - 1], mp_out[i]
        if roi is None or ref is None or not (ref[:, 2] >= 0.5).any():
            continue
        vis = ref[:, 2] >= 0.5
        size = max(np.ptp(ref[vis, 0]), np.ptp(ref[vis, 1]), 1.0)
        a = model._run_roi(frames[i], roi, n)[0]
        b = model._run_roi(frames[i], roi + np.array([1, 1, 2, 0.01], np.float32), n)[0]
        total += int(vis.sum())
        ok_mp += int((np.hypot(*(a[vis] - ref[vis, :2]).T) <= 0.05 * size).sum())
        ok_self += int((np.hypot(*(a[vis] - b[vis]).T) <= 0.05 * size).sum())
    return ok_mp / max(total, 1), ok_self / max(total, 1), total


def frame_agreement(fr, mp_lm, alpha: float = 0.05, vis_thr: float = 0.5) -> tuple[int, int]:
    """(correct, counted) landmarks of one frame: PCK@alpha of our 33 landmarks against MediaPipe's,
    over landmarks MediaPipe calls visible, relative to MediaPipe's landmark box. A frame where we found
    nobody counts its landmarks as misses; a frame where MediaPipe found nobody is not counted."""
    if mp_lm is None:
        return 0, 0
    vis = mp_lm[:, 2] >= vis_thr
    if not vis.any():
        return 0, 0
    ref = mp_lm[:, :2]
    size = max(np.ptp(ref[vis, 0]), np.ptp(ref[vis, 1]), 1.0)
    if not fr.persons:
        return 0, int(vis.sum())
    c = ref[vis].mean(0)
    p = min(fr.persons, key=lambda q: np.hypot(*(q.keypoints[vis].mean(0) - c)))
    d = np.hypot(*(p.keypoints[vis] - ref[vis]).T)
    return int((d <= alpha * size).sum()), int(vis.sum())


def agreement(ours: list, theirs: list, alpha: float = 0.05, vis_thr: float = 0.5,
              frames: range | None = None) -> tuple[float, int]:
    """PCK@alpha agreement summed over ``frames`` (all by default): (fraction, landmarks counted)."""
    idx = frames if frames is not None else range(len(ours))
    pairs = [frame_agreement(ours[i], theirs[i], alpha, vis_thr) for i in idx if i < min(len(ours), len(theirs))]
    ok, total = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    return ok / max(total, 1), total


def parse_segments(text: str | None, n: int) -> list[tuple[str, range]]:
    """``"0-4,5-45,63-"`` -> [("0-4", range(0, 5)), ...]; both ends inclusive, an open end runs to the last frame."""
    if not text:
        return []
    out = []
    for part in text.split(","):
        try:
            a, _, b = part.strip().partition("-")
            lo, hi = int(a), (int(b) if b.strip() else n - 1)
        except ValueError:
            raise ActionposeError(f"--segments: expected ranges like 0-4,5-45,63-, got {part!r}") from None
        if lo < 0 or hi < lo:
            raise ActionposeError(f"--segments: empty or negative range {part!r}")
        out.append((f"{lo}-{min(hi, n - 1)}", range(lo, min(hi, n - 1) + 1)))
    return out


def resized_copy(video: str, size: tuple[int, int], reference: np.ndarray, out_dir: str) -> tuple[str, np.ndarray]:
    """``video`` resized to ``size`` (INTER_AREA, mp4v) in ``out_dir`` and the [T,17,2] reference scaled to match
    (points <= 0 stay missing), so PCK can be measured at another resolution with the same frames."""
    cap = cv2.VideoCapture(video)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    path = os.path.join(out_dir, "resized.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    src_size = None
    while True:
        ok, img = cap.read()
        if not ok:
            break
        src_size = src_size or (img.shape[1], img.shape[0])
        writer.write(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    writer.release()
    if src_size is None:
        raise ActionposeError(f"{video}: no frames decoded")
    scaled = reference * np.array([size[0] / src_size[0], size[1] / src_size[1]], np.float32)
    return path, np.where(reference > 0, scaled, reference)


def accuracy(args: argparse.Namespace) -> None:
    import tempfile

    from actionpose.pose import load_frontend
    from actionpose.pose.evaluate import coco_ap, pck_vs_reference

    video, reference = args.video, np.load(args.reference) if args.reference else None
    tmp = tempfile.TemporaryDirectory()
    if args.reference and args.resize:
        video, reference = resized_copy(args.video, _parse_size(args.resize), reference, tmp.name)
        print(f"reference PCK on {args.video} resized to {args.resize} (reference scaled to match)")
    print("\n## Accuracy")
    print("| frontend | COCO OKS AP | AP50 | AP75 | AR | PCK@0.1 vs reference | frames with the person |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.accuracy_frontends.split(","):
        fe = load_frontend(name.strip(), threads=args.threads, progress=False)
        ap = coco_ap(fe, args.coco) if args.coco else None
        r = pck_vs_reference(fe, video, reference) if args.reference else None
        cells = [f"{ap[k]:.3f}" for k in ("AP", "AP50", "AP75", "AR")] if ap else ["-"] * 4
        cells += [f"{r['pck']:.3f} ({r['correct']}/{r['total']})", f"{r['frames_with_person']}/{r['frames']}"] \
            if r else ["-", "-"]
        print(f"| {fe.name} | " + " | ".join(cells) + " |", flush=True)


def run(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from actionpose.pose import load_frontend

    if args.coco or args.reference:
        accuracy(args)
        if args.accuracy_only:
            return 0

    frames, decode_ms, src_fps = _load_frames(args.video, args.frames, args.resize)
    h, w = frames[0].shape[:2]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"video {args.video}: {len(frames)} frames {w}x{h}; onnxruntime {ort.__version__}, {args.threads} threads, "
          f"{os.cpu_count()} CPUs, load average {load:.1f}")
    fe = load_frontend(args.frontend, threads=args.threads, det_every=args.det_every, progress=False)
    stages, fps, out = _run_frontend(fe, frames)
    e2e = _end_to_end_fps(fe, args.video, args.frames) if not args.resize else float("nan")
    persons = np.mean([len(r.persons) for r in out])
    print(f"\n## {fe.name} (det every {args.det_every}), mean {persons:.2f} persons/frame")
    print("| stage | ms/frame |\n| --- | ---: |")
    print(f"| decode (+resize) | {decode_ms:.2f} |")
    for k, v in stages.items():
        if k not in ("decode_wait", "cpu_ms"):
            print(f"| {k} | {v:.2f} |")
    print(f"| **inference fps** (frames in memory, wall clock) | **{fps:.1f}** |")
    print(f"| CPU time per frame, all threads (ms) | {stages['cpu_ms']:.2f} |")
    print(f"| fps bound from CPU time (1000 / CPU ms; an idle machine is at least this fast) | "
          f"{1000 / stages['cpu_ms']:.1f} |")
    print(f"| serial fps incl. decode | {1000 / (1000 / fps + decode_ms):.1f} |")
    if not np.isnan(e2e):
        print(f"| end-to-end fps, threaded decode (`extract` pipeline) | {e2e:.1f} |")
    if args.mediapipe:
        version, mp_fps, mp_cpu, mp_out = _mediapipe(frames, args.mediapipe_path)
        found = sum(m is not None for m in mp_out)
        segments = parse_segments(args.segments, len(frames))
        print(f"\n## BlazePose GHUM full: MediaPipe {version} Pose (model_complexity=1, smooth_landmarks=False, its own "
              f"threads) vs ours (onnxruntime, {args.threads} threads)")
        print("| pipeline | fps (wall) | CPU ms/frame | fps from CPU time | frames with a pose | ratio wall / CPU | "
              "agreement PCK@0.05 | " + " | ".join(f"frames {name}" for name, _ in segments) + (" |" if segments else ""))
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(segments))
        print(f"| MediaPipe solutions.pose | {mp_fps:.1f} | {mp_cpu:.2f} | {1000 / mp_cpu:.1f} | {found}/{len(frames)} "
              "| 1 | reference |" + " |" * len(segments))
        for name, det_every, rule in (("blazepose", args.blaze_det_every, f"RTMDet-nano every {args.blaze_det_every}"),
                                      ("blazepose-detector+blazepose", 0, "MediaPipe's detector when nobody is followed")):
            try:
                bp = load_frontend(name, threads=args.threads, det_every=det_every, progress=False, max_persons=1)
            except ActionposeError as e:
                print(f"| ours {name} | not run: {e} |")
                continue
            bstages, b_fps, b_out = _run_frontend(bp, frames)
            agree, n = agreement(b_out, mp_out)
            cells = [f"{agreement(b_out, mp_out, frames=r)[0]:.3f} ({agreement(b_out, mp_out, frames=r)[1]})"
                     for _, r in segments]
            print(f"| ours {bp.name} ({rule}) | {b_fps:.1f} | {bstages['cpu_ms']:.2f} | {1000 / bstages['cpu_ms']:.1f} | "
                  f"{sum(bool(r.persons) for r in b_out)}/{len(frames)} | {b_fps / mp_fps:.2f}x / "
                  f"{mp_cpu / bstages['cpu_ms']:.2f}x | {agree:.3f} ({n}) | " + " | ".join(cells) + (" |" if cells else ""))
            print("  per stage (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in bstages.items() if k != "cpu_ms"))
        if args.mediapipe_roi_check:
            on_roi, self_agree, n = landmark_stage_check(frames, mp_out, _mediapipe_rois(frames), args.threads)
            print(f"\nlandmark stage on MediaPipe's own ROIs ({n} landmarks): agreement with MediaPipe {on_roi:.3f}; "
                  f"our output vs itself with the ROI moved 1 px / 2 px / 0.01 rad: {self_agree:.3f}")
    return 0
