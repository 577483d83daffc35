"""After a fall: is "still down" raised for people who stay down, and "recovered" for people who get up?

Two scenarios per URFD fall clip with per-frame labels (0 up, 1 falling, 2 lying), streamed through
``FallDetector.update_many`` in 1 s chunks as a service client would send them:

* **held**: the clip, then its last second of *lying* frames played back and forth for 70 s (a person
  who stays down, with the pose estimator's real jitter). Expected: the fall, then ``still_down`` at the
  alert + ``long_lie_s`` (60 s), and never ``recovered``. Clips with fewer than 5 lying frames are skipped.
* **got up**: the clip, 2 s of its lying frames, the clip backwards (getting up), then 4 s of its
  pre-fall standing frames back and forth. Expected: ``recovered``, within a few seconds of the first
  frame labelled standing again, and no ``still_down``. Clips with fewer than 5 standing frames are skipped.

Also the per-frame posture of the lying-labelled frames (after the fall's alert's reference), and the
same two scenarios on ``fall_video_1``'s independent skeleton (18 fps).

Usage: python benchmarks/fall_followup.py [--shared ../shared] [--json]
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from actionpose.data.importers import convert
from actionpose.inference.fall import FallDetector
from actionpose.inference.fall_aftermath import posture, upright_reference
from actionpose.inference.fall_train import sequences_from


def pingpong(x: np.ndarray, seconds: float, fps: float) -> np.ndarray:
    loop = np.concatenate([x, x[::-1]])
    n = int(round(seconds * fps))
    return np.concatenate([loop] * (n // len(loop) + 1))[:n]


def stream(det: FallDetector, kp: np.ndarray, sc: np.ndarray, fps: float) -> list:
    det.reset()
    frames = [({0: np.concatenate([kp[i], sc[i][:, None]], -1)}, i / fps) for i in range(len(kp))]
    step = max(1, int(round(fps)))
    return [e for lo in range(0, len(frames), step) for e in det.update_many(frames[lo:lo + step])]


def scenarios(det: FallDetector, kp: np.ndarray, sc: np.ndarray, labels: np.ndarray, fps: float) -> dict:
    k = int(round(fps))
    lying, up = np.flatnonzero(labels == 2)[-k:], np.flatnonzero(labels == 0)[:k]
    out: dict = {}
    if len(lying) >= 5:
        ev = stream(det, np.concatenate([kp, pingpong(kp[lying], 70, fps)]),
                    np.concatenate([sc, pingpong(sc[lying], 70, fps)]), fps)
        falls = [e for e in ev if e.kind == "fall"]
        if falls:
            down = [e for e in ev if e.kind == "still_down"]
            out["held"] = {"still_down": len(down), "recovered": sum(e.kind == "recovered" for e in ev),
                           "delay_s": down[0].detected_time - falls[0].detected_time if down else None}
            before = np.arange(len(kp)) / fps < falls[0].start_time
            ref = upright_reference(kp[before], sc[before])
            p = posture(kp, sc, ref)
            ly = (labels == 2) & ~np.isnan(p)
            out["lying_frames"], out["lying_down"], out["lying_up"] = int(ly.sum()), int((p[ly] == 1).sum()), \
                int((p[ly] == 0).sum())
    if len(up) >= 5:
        hold = pingpong(kp[lying], 2, fps) if len(lying) else kp[-1:]
        holds = pingpong(sc[lying], 2, fps) if len(lying) else sc[-1:]
        seq = np.concatenate([kp, hold, kp[::-1], pingpong(kp[up], 4, fps)])
        seqs = np.concatenate([sc, holds, sc[::-1], pingpong(sc[up], 4, fps)])
        ev = stream(det, seq, seqs, fps)
        if any(e.kind == "fall" for e in ev):
            rec = [e for e in ev if e.kind == "recovered"]
            first_up = (len(kp) + len(hold) + int(np.argmax(labels[::-1] == 0))) / fps
            out["got_up"] = {"recovered": len(rec), "still_down": sum(e.kind == "still_down" for e in ev),
                             "after_first_up_s": rec[0].detected_time - first_up if rec else None}
    return out


def table(name: str, results: list[dict]) -> dict:
    held = [r["held"] for r in results if "held" in r]
    got = [r["got_up"] for r in results if "got_up" in r]
    delays = [g["after_first_up_s"] for g in got if g["after_first_up_s"] is not None]
    row = {"set": name, "clips": len(results),
           "held: falls": len(held), "held: still_down once": sum(h["still_down"] == 1 for h in held),
           "held: recovered (false)": sum(h["recovered"] > 0 for h in held),
           "got up: falls": len(got), "got up: recovered": sum(g["recovered"] == 1 for g in got),
           "got up: still_down (false)": sum(g["still_down"] > 0 for g in got),
           "recovered after first standing frame, s (median, max)":
               (round(float(np.median(delays)), 2), round(float(max(delays)), 2)) if delays else None,
           "lying frames judged down / up": (sum(r.get("lying_down", 0) for r in results),
                                             sum(r.get("lying_up", 0) for r in results),
                                             sum(r.get("lying_frames", 0) for r in results))}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # MoveNet clips with a hidden hip trigger input advice
    data = Path(args.shared) / "datasets"
    det = FallDetector.from_pretrained("fall", layout="body13", threads=1)
    rows = []
    for name, ds in (("URFD AlphaPose", convert("urfd", data / "urfd_falls13" / "pose_urfd_3classes.csv")),
                     ("URFD MoveNet", convert("urfd_movenet", data / "urfd_movenet13" / "urfd_movenet13_npy.tar.gz"))):
        seqs = [s for s in sequences_from(ds) if s.is_fall]
        rows.append(table(name, [scenarios(det, s.kp, s.sc, s.labels,
                                           1 / float(np.median(np.diff(s.times)))) for s in seqs]))
    skel = Path(args.shared) / "videos" / "fall_skeleton_1.npy"
    if skel.exists():
        kp = np.load(skel)
        sc = ((kp[..., 0] > 0) & (kp[..., 1] > 0)).astype(np.float32)
        labels = np.where(np.arange(len(kp)) < 46, 0, np.where(np.arange(len(kp)) < 62, 1, 2))  # its README
        v = FallDetector.from_pretrained("fall", layout="coco17", threads=1)
        rows.append(table("fall_video_1 skeleton", [scenarios(v, kp, sc, labels, 18.0)]))
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
