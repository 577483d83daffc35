"""``actionpose bench tag``: tagging speed and memory, and (``--eval``) segment quality on the Penn concat set.

Speed: real-time factor (input seconds / wall seconds, decode + pose frontend + tagger) on 640x480 video
with 1 and 3 persons, built from a real shared NTU clip (one person; three side-by-side tiles for three).
Memory: one run over a long looped input, reporting peak RSS when 1 and 10 minutes of input are done.
Quality: ``--eval data/tag_eval/penn_concat.json --penn PENN.pkl`` rebuilds the concatenated Penn Action
test sequences, tags them, and prints segment precision/recall at IoU 0.5, boundary error and the
fraction of time with the right label (calibration and evaluation sequences separately).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from actionpose.errors import ActionposeError, where
from actionpose.inference.segments import (Segment, SegmentConfig, SegmentMatch, labelled_fraction,
                                           match_segments)

HELP = "tagging: real-time factor (1/3 persons, 640x480), peak RSS over long input; --eval: Penn concat P/R"
SHARED_VIDEO = Path(__file__).resolve().parents[3] / "shared" / "videos" / "S001C001P001R001A001_rgb.avi"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="penn", help="model name or .onnx (default penn)")
    p.add_argument("--video", default=str(SHARED_VIDEO), help="one-person source video (default: the shared "
                                                               "NTU clip S001C001P001R001A001_rgb.avi)")
    p.add_argument("--seconds", type=float, default=20.0, help="input seconds per real-time-factor case")
    p.add_argument("--persons", default="1,3", help="person counts to time (1 and/or 3)")
    p.add_argument("--memory-minutes", default="1,10", help="input minutes at which to report peak RSS "
                                                           "('' skips the memory run)")
    p.add_argument("--memory-fps", type=float, default=5.0, help="frame rate the long memory run samples the "
                                                                 "looped input at (keeps the run short)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval", metavar="DEF.json", help="evaluation-set definition (data/tag_eval/penn_concat.json)")
    p.add_argument("--penn", metavar="PENN.pkl", help="Penn Action converted with `actionpose datasets convert`")
    p.add_argument("--sweep", action="store_true", help="with --eval: choose window/threshold on the "
                                                        "calibration sequences")
    p.add_argument("--window", type=float, default=None)
    p.add_argument("--stride", type=float, default=None)
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--timelines", metavar="DIR", help="with --eval: timeline PNGs (with ground truth) of the "
                                                      "first evaluation sequences")
    p.add_argument("--videos", metavar="DIR", help="tag every video in DIR (e.g. ../shared/videos) and write "
                                                   "JSON, timeline and overlay per video to --out")
    p.add_argument("--out", metavar="DIR", default="runs/tag_videos", help="output folder for --videos")
    p.add_argument("--fps", type=float, default=None, help="resample videos to this frame rate")
    p.add_argument("--json", help="also write the numbers here")


def _config(args: argparse.Namespace) -> SegmentConfig:
    cfg = SegmentConfig()
    for k, a in (("window_s", "window"), ("stride_s", "stride"), ("threshold", "threshold")):
        if getattr(args, a, None) is not None:
            cfg = replace(cfg, **{k: getattr(args, a)})
    cfg.validate()
    return cfg


def run(args: argparse.Namespace) -> int:
    if args.eval:
        out = run_eval(args)
    elif args.videos:
        out = run_videos(args)
    else:
        out = run_speed(args)
    if args.json:
        from actionpose.data.atomic import write_text_atomic
        write_text_atomic(args.json, json.dumps(out, indent=2) + "\n")
    return 0


# -- synthetic 640x480 inputs from a real clip ---------------------------------------------------------------
def make_bench_video(src: str | Path, persons: int, out: Path, seconds: float = 4.0) -> Path:
    """640x480 video of ``persons`` people: the one-person NTU clip cropped (1) or as 3 time-shifted tiles."""
    import cv2

    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise where(src, "cannot open the benchmark source video")
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    if not frames:
        raise where(src, "no frames decoded")
    h, w = frames[0].shape[:2]
    sx, sy = w / 1920, h / 1080
    fps = 30.0
    n = int(round(seconds * fps))
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for i in range(n):
        # play forward then backward so the loop has no jump
        def at(k: int) -> np.ndarray:
            period = 2 * len(frames) - 2
            k %= period
            return frames[k if k < len(frames) else period - k]
        if persons == 1:
            crop = at(i)[int(150 * sy):int(750 * sy), int(640 * sx):int(1440 * sx)]
            img = cv2.resize(crop, (640, 480))
        else:
            tiles = []
            for t in range(persons):
                crop = at(i + t * 33)[int(150 * sy):int(870 * sy), int(880 * sx):int(1200 * sx)]
                tw = 640 // persons + (640 % persons if t == persons - 1 else 0)
                tiles.append(cv2.resize(crop, (tw, 480)))
            img = np.hstack(tiles)
        vw.write(img)
    vw.release()
    return out


class LoopReader:
    """Frames of a video file, looped until ``seconds`` of input, sampled at ``fps`` (FrameReader-like)."""

    def __init__(self, path: str | Path, seconds: float, fps: float | None = None):
        import cv2

        self.path, self.seconds = str(path), seconds
        cap = cv2.VideoCapture(self.path)
        self.src_fps = float(cap.get(cv2.CAP_PROP_FPS) or 30.0)
        cap.release()
        self.out_fps = fps or self.src_fps

    def __iter__(self) -> Iterator[Any]:
        import cv2

        from actionpose.pose.sources import Frame, RateSampler

        sampler = RateSampler(self.src_fps, self.out_fps)
        total = int(self.seconds * self.src_fps)
        src_i, out_i = 0, 0
        cap = cv2.VideoCapture(self.path)
        try:
            while src_i < total:
                ok, img = cap.read()
                if not ok:
                    cap.release()
                    cap = cv2.VideoCapture(self.path)
                    continue
                if sampler.keep(src_i):
                    yield Frame(out_i, src_i, out_i / self.out_fps, img)
                    out_i += 1
                src_i += 1
        finally:
            cap.release()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time_case(predictor: Any, video: Path, seconds: float, threads: int, cfg: SegmentConfig,
               checkpoints: list[float] | None = None, fps: float | None = None) -> dict[str, Any]:
    from actionpose.inference.tagger import PersonPose, StreamTagger
    from actionpose.pose import load_frontend

    fe = load_frontend("default", threads=threads, progress=False)
    reader = LoopReader(video, seconds, fps)
    tagger = StreamTagger(predictor, fe.layout, reader.out_fps, cfg)
    marks = sorted(checkpoints or [])
    rss_at: dict[str, float] = {}
    persons_seen, frames, segments = [], 0, 0
    t0, c0 = time.perf_counter(), time.process_time()
    for fr in fe.stream(None, reader=reader, keep_images=False):
        people = [PersonPose(p.track_id, p.keypoints, p.scores, p.box) for p in fr.persons]
        persons_seen.append(len(people))
        segments += len(tagger.push(fr.index, people))
        frames += 1
        t_in = (fr.index + 1) / reader.out_fps
        while marks and t_in >= marks[0] * 60 - 1e-6:
            rss_at[f"{marks.pop(0):g} min"] = round(_peak_rss_mb(), 1)
    segments += len(tagger.finish())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"input_s": round(frames / reader.out_fps, 2), "frames": frames, "wall_s": round(wall, 2),
            "rtf": round(frames / reader.out_fps / wall, 2), "cpu_s": round(cpu, 2),
            "rtf_cpu": round(frames / reader.out_fps / cpu, 2), "fps_processed": round(frames / wall, 1),
            "mean_persons": round(float(np.mean(persons_seen)) if persons_seen else 0.0, 2),
            "segments": segments, "peak_rss_mb": rss_at or round(_peak_rss_mb(), 1)}


def time_tagger_only(predictor: Any, persons: int, seconds: float, cfg: SegmentConfig,
                     fps: float = 30.0) -> dict[str, Any]:
    """Tagger + action model alone (keypoints in, segments out): the share of the budget this module owns."""
    from actionpose.inference.tagger import PersonPose, StreamTagger

    rng = np.random.default_rng(0)
    n = int(seconds * fps)
    base = rng.uniform(100, 400, (persons, 1, 17, 2)).astype(np.float32)
    tracks = base + np.cumsum(rng.normal(0, 2, (persons, n, 17, 2)), axis=1).astype(np.float32)
    ones = np.ones(17, np.float32)
    tagger = StreamTagger(predictor, "coco17", fps, cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        tagger.push(i, [PersonPose(p, tracks[p, i], ones) for p in range(persons)])
    tagger.finish()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"persons": persons, "input_s": seconds, "wall_s": round(wall, 2), "rtf": round(seconds / wall, 1),
            "cpu_s": round(cpu, 2), "ms_per_frame": round(wall / n * 1e3, 2)}


def run_speed(args: argparse.Namespace) -> dict[str, Any]:
    from actionpose.inference.tagger import load_predictor

    if not Path(args.video).exists():
        raise ActionposeError(f"{args.video}: benchmark video not found (pass --video; the default is "
                              f"../shared/videos/S001C001P001R001A001_rgb.avi)")
    import onnxruntime as ort

    predictor, name = load_predictor(args.model, args.threads)
    cfg = _config(args)
    out: dict[str, Any] = {"model": name, "threads": args.threads, "window_s": cfg.window_s,
                           "stride_s": cfg.stride_s, "onnxruntime": ort.__version__, "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        videos = {}
        for n in [int(x) for x in args.persons.split(",") if x.strip()]:
            videos[n] = make_bench_video(args.video, n, Path(tmp) / f"bench_{n}p.mp4")
        print(f"actionpose bench tag — model {name}, {args.threads} threads, window {cfg.window_s:g} s, "
              f"stride {cfg.stride_s:g} s")
        print("tagger + action model only (30 fps keypoints in, segments out):")
        print(f"{'persons':>7} {'input s':>8} {'wall s':>7} {'RTF':>7} {'ms/frame':>8}")
        out["tagger_only"] = []
        for n in [int(x) for x in args.persons.split(",") if x.strip()]:
            r = time_tagger_only(predictor, n, 60.0, cfg)
            out["tagger_only"].append(r)
            print(f"{n:>7} {r['input_s']:>8.0f} {r['wall_s']:>7.1f} {r['rtf']:>7.1f} {r['ms_per_frame']:>8.2f}")
        from actionpose.inference.tagger import VIDEO_FPS
        rate = args.fps or VIDEO_FPS
        print(f"full pipeline (decode + default pose frontend + tagger), 640x480 30 fps input processed at "
              f"{rate:g} fps:")
        print(f"{'persons':>7} {'input s':>8} {'wall s':>7} {'RTF':>6} {'fps':>6} {'CPU s':>6} {'RTF/CPU':>7} "
              f"{'persons/frame':>13}")
        for n, video in videos.items():
            r = _time_case(predictor, video, args.seconds, args.threads, cfg, fps=rate)
            r["persons"] = n
            out["cases"].append(r)
            print(f"{n:>7} {r['input_s']:>8.1f} {r['wall_s']:>7.1f} {r['rtf']:>6.2f} {r['fps_processed']:>6.1f} "
                  f"{r['cpu_s']:>6.1f} {r['rtf_cpu']:>7.2f} {r['mean_persons']:>13.2f}")
        print("RTF = input seconds / wall seconds; RTF/CPU = input seconds / CPU seconds of this process (all "
              "threads): what it would reach with its CPU time undisturbed by other load, on one core")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        minutes = [float(x) for x in args.memory_minutes.split(",") if x.strip()]
        if minutes:
            video = videos.get(1) or make_bench_video(args.video, 1, Path(tmp) / "bench_1p.mp4")
            r = _time_case(predictor, video, max(minutes) * 60, args.threads, cfg, checkpoints=minutes,
                           fps=args.memory_fps)
            out["memory"] = {**r, "sample_fps": args.memory_fps}
            print(f"memory: {max(minutes):g} min of looped 1-person input sampled at {args.memory_fps:g} fps "
                  f"({r['frames']} frames, {r['wall_s']:.0f} s wall): peak RSS "
                  + ", ".join(f"{k}: {v:.0f} MB" for k, v in r["peak_rss_mb"].items()))
    return out


# -- quality on the Penn concat set ------------------------------------------------------------------------
def _normalise_clip(kp: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Re-centre a [T, 13, 2] penn13 clip on a fixed point and re-scale it to a 100-px torso."""
    vis = score > 0
    centre_j = [1, 2, 7, 8]  # shoulders and hips
    pts = kp[:, centre_j][vis[:, centre_j]]
    centre = pts.mean(0) if len(pts) else kp.reshape(-1, 2).mean(0)
    sh, hp = kp[:, [1, 2]].mean(1), kp[:, [7, 8]].mean(1)
    torso = float(np.median(np.linalg.norm(sh - hp, axis=-1)))
    scale = 100.0 / torso if torso > 1 else 1.0
    return ((kp - centre) * scale + np.array([320.0, 240.0])).astype(np.float32)


TRANSITION_FRAMES = 6  # linear blend between consecutive clips (0.2 s at 30 fps): a join, not a teleport


def build_sequence(by_name: dict[str, dict], seq: dict, fps: float) -> tuple[np.ndarray, np.ndarray, list[Segment]]:
    """Concatenate the clips of one definition entry -> keypoints [T, V, 2], scores [T, V], true segments.

    Between consecutive clips, TRANSITION_FRAMES frames blend the last pose into the next one; a true
    boundary between two actions lies in the middle of its transition.
    """
    kps: list[np.ndarray] = []
    scs: list[np.ndarray] = []
    bounds, t = [], 0
    for seg in seq["segments"]:
        for j, clip in enumerate(seg["clips"]):
            if clip not in by_name:
                raise ActionposeError(f"eval set: clip {clip!r} is not in the Penn pickle")
            ann = by_name[clip]
            kp, sc = _normalise_clip(ann["keypoint"][0, ..., :2], ann["keypoint_score"][0]), ann["keypoint_score"][0]
            if kps:
                w = np.linspace(0, 1, TRANSITION_FRAMES + 2)[1:-1, None, None]
                kps.append(((1 - w) * kps[-1][-1] + w * kp[0]).astype(np.float32))
                scs.append(np.minimum(scs[-1][-1], sc[0])[None].repeat(TRANSITION_FRAMES, 0))
                if j == 0:
                    bounds.append(t + TRANSITION_FRAMES / 2)
                t += TRANSITION_FRAMES
            kps.append(kp)
            scs.append(sc)
            t += kp.shape[0]
    edges = [0.0] + bounds + [float(t)]
    truth = [Segment(seg["label"], edges[i] / fps, edges[i + 1] / fps, 1.0) for i, seg in enumerate(seq["segments"])]
    return np.concatenate(kps), np.concatenate(scs), truth


class CachedPredictor:
    """Memoise predictions by input bytes so a threshold sweep reuses the same window scores."""

    def __init__(self, inner: Any):
        self.inner, self.cache = inner, {}
        self.layout, self.classes, self.clip_len = inner.layout, inner.classes, inner.clip_len
        self.coords = getattr(inner, "coords", 2)

    def predict(self, kp: np.ndarray, sc: np.ndarray | None = None) -> np.ndarray:
        keys = [hashlib.sha1(kp[i].tobytes() + (sc[i].tobytes() if sc is not None else b"")).hexdigest()
                for i in range(len(kp))]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            probs = self.inner.predict(kp[todo], sc[todo] if sc is not None else None)
            for i, p in zip(todo, probs):
                self.cache[keys[i]] = p
        return np.stack([self.cache[k] for k in keys])


def evaluate(predictor: Any, sequences: list[tuple[str, np.ndarray, np.ndarray, list[Segment]]], fps: float,
             cfg: SegmentConfig, model_name: str = "model") -> dict[str, Any]:
    from actionpose.inference.tagger import PersonPose, tag_frames

    total = SegmentMatch(0, 0, 0, [])
    right, dur = 0.0, 0.0
    per_seq = []
    for name, kp, sc, truth in sequences:
        frames = ((i, [PersonPose(0, kp[i], sc[i])]) for i in range(len(kp)))
        res = tag_frames(frames, predictor, "penn13", fps, video=name, model_name=model_name, config=cfg)
        pred = res.persons.get(0, [])
        m = match_segments(pred, truth, 0.5)
        total = total + m
        for t in truth:
            right += labelled_fraction(pred, t.label, t.start_s, t.end_s) * t.duration_s
            dur += t.duration_s
        per_seq.append((name, res, truth))
    return {"precision": round(total.precision, 3), "recall": round(total.recall, 3), "f1": round(total.f1, 3),
            "tp": total.tp, "n_pred": total.n_pred, "n_true": total.n_true,
            "boundary_error_s": round(total.mean_boundary_error_s, 2), "right_label_time": round(right / dur, 3),
            "_results": per_seq}


def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    from actionpose.data.format import load_dataset
    from actionpose.inference.tagger import load_predictor

    if not args.penn:
        raise ActionposeError("--eval needs --penn PENN.pkl (from `actionpose datasets convert --format penn`)")
    path = Path(args.eval)
    if not path.exists():
        raise where(path, "no such evaluation-set definition")
    doc = json.loads(path.read_text())
    fps = float(doc.get("fps", 30.0))
    ds = load_dataset(args.penn)
    by_name = {a["frame_dir"]: a for a in ds.annotations}
    inner, name = load_predictor(args.model, args.threads)
    predictor = CachedPredictor(inner)
    groups: dict[str, list] = {"calibration": [], "evaluation": []}
    step = 1
    if args.fps:  # evaluate at a lower frame rate, as the tagger sees video resampled with --fps
        step = max(1, int(round(fps / args.fps)))
    for seq in doc["sequences"]:
        kp, sc, truth = build_sequence(by_name, seq, fps)
        groups[seq.get("role", "evaluation")].append((seq["name"], kp[::step], sc[::step], truth))
    fps = fps / step
    cfg = _config(args)
    out: dict[str, Any] = {"model": name, "definition": str(path), "sweep": []}
    if args.sweep:
        print(f"sweep on {len(groups['calibration'])} calibration sequences (stride {cfg.stride_s:g} s)")
        print(f"{'window':>6} {'thresh':>6} {'smooth':>6} {'gap':>4} {'P':>6} {'R':>6} {'F1':>6} {'bound s':>7} "
              f"{'right t':>7}")
        best = None
        import itertools
        for win, thr, sm, gap in itertools.product((1.0, 1.5, 2.0, 3.0), (0.3, 0.4, 0.5, 0.6, 0.7), (3, 5),
                                                   (1.0, 2.0)):
                c = replace(cfg, window_s=win, threshold=thr, smooth=sm, max_gap_s=gap)
                m = evaluate(predictor, groups["calibration"], fps, c)
                out["sweep"].append({"window_s": win, "threshold": thr, "smooth": sm, "max_gap_s": gap,
                                     **{k: v for k, v in m.items() if not k.startswith("_")}})
                print(f"{win:>6g} {thr:>6g} {sm:>6d} {gap:>4g} {m['precision']:>6.3f} {m['recall']:>6.3f} "
                      f"{m['f1']:>6.3f} {m['boundary_error_s']:>7.2f} {m['right_label_time']:>7.3f}")
                if best is None or (m["f1"], m["right_label_time"]) > (best[0]["f1"], best[0]["right_label_time"]):
                    best = (m, c)
        cfg = best[1]
        print(f"chosen on calibration: window {cfg.window_s:g} s, threshold {cfg.threshold:g}, smooth "
              f"{cfg.smooth}, max gap {cfg.max_gap_s:g} s")
    out["config"] = {"window_s": cfg.window_s, "stride_s": cfg.stride_s, "threshold": cfg.threshold,
                     "smooth": cfg.smooth, "max_gap_s": cfg.max_gap_s, "min_duration_s": cfg.min_duration_s}
    print(f"{'set':<12} {'seqs':>4} {'P@0.5':>6} {'R@0.5':>6} {'F1':>6} {'bound s':>7} {'right-label time':>16}")
    for role, seqs in groups.items():
        if not seqs:
            continue
        m = evaluate(predictor, seqs, fps, cfg, name)
        out[role] = {k: v for k, v in m.items() if not k.startswith("_")}
        print(f"{role:<12} {len(seqs):>4} {m['precision']:>6.3f} {m['recall']:>6.3f} {m['f1']:>6.3f} "
              f"{m['boundary_error_s']:>7.2f} {m['right_label_time']:>16.3f}")
        out[f"_{role}_results"] = m["_results"]
    timeline_dir = getattr(args, "timelines", None)
    if timeline_dir:
        from actionpose.render.timeline import plot_timeline
        for name_, res, truth in out.get("_evaluation_results", [])[:4]:
            plot_timeline(res, Path(timeline_dir) / f"{name_}.png", truth={0: truth})
    return {k: v for k, v in out.items() if not k.startswith("_")}


# -- every video of a folder -------------------------------------------------------------------------------
def run_videos(args: argparse.Namespace) -> dict[str, Any]:
    """Tag each video, write JSON + timeline + overlay, print persons, segments and background share."""
    from actionpose.inference.tagger import BACKGROUND, expand_source, load_predictor, tag_video

    predictor, name = load_predictor(args.model, args.threads)
    cfg = _config(args)
    out_dir = Path(args.out)
    rows = []
    print(f"{'video':<44} {'s':>5} {'pers':>4} {'segs':>4} {'tagged':>6}  labels (seconds)")
    for item in expand_source(args.videos):
        if Path(item).suffix.lower() in {".pkl", ".pickle"}:
            continue
        stem = Path(item).stem
        t0 = time.perf_counter()
        res = tag_video(item, predictor, json=out_dir / f"{stem}.json", timeline=out_dir / f"{stem}.png",
                        render=out_dir / f"{stem}.mp4", config=cfg, fps=args.fps, threads=args.threads,
                        model_name=name)
        wall = time.perf_counter() - t0
        per_label: dict[str, float] = {}
        for segs in res.persons.values():
            for sgm in segs:
                per_label[sgm.label] = per_label.get(sgm.label, 0.0) + sgm.duration_s
        tagged = sum(per_label.values())
        rows.append({"video": Path(item).name, "duration_s": round(res.duration_s, 2), "persons": len(res.persons),
                     "segments": sum(len(x) for x in res.persons.values()), "tagged_s": round(tagged, 2),
                     "labels_s": {k: round(v, 2) for k, v in per_label.items()}, "wall_s": round(wall, 1),
                     "warnings": res.warnings})
        labels = ", ".join(f"{k} {v:.1f}" for k, v in sorted(per_label.items(), key=lambda kv: -kv[1])) or BACKGROUND
        print(f"{Path(item).name[:44]:<44} {res.duration_s:>5.1f} {len(res.persons):>4} {rows[-1]['segments']:>4} "
              f"{tagged:>6.1f}  {labels}")
    return {"model": name, "config": {"window_s": cfg.window_s, "stride_s": cfg.stride_s,
                                      "threshold": cfg.threshold}, "videos": rows}
