"""``actionpose tag --model fall``: fall events as tag segments.

The fall model is calibrated as an event detector (its own window preparation, threshold and
debounce live in :class:`FallDetector`), so tagging with it runs the detector and reports each
fall as a ``fall`` segment from the start of the hip drop to the moment the alert was raised,
in the same JSON/CSV/timeline outputs as every other model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from actionpose.inference.segments import Segment, SegmentConfig
from actionpose.inference.tagger import INTERRUPTED, TagResult, write_outputs

FALL_MODELS = {"fall", "fall_body13"}


def is_fall_model(model: str) -> bool:
    return str(model) in FALL_MODELS or Path(str(model)).with_suffix(".json").is_file() and \
        '"detector"' in Path(str(model)).with_suffix(".json").read_text()


def tag_falls(source: str, model: str = "fall", *, json: str | None = None, csv: str | None = None,
              timeline: str | None = None, frontend: str = "default", fps: float | None = None,
              threshold: float | None = None, threads: int | None = None,
              on_event: Callable[[Any], None] | None = None, render: str | None = None) -> TagResult:
    """``threshold`` replaces the calibrated alert threshold; ``on_event`` sees each fall as it is raised
    (live sources)."""
    from actionpose.inference.fall import FallDetector
    from actionpose.inference.fall_sources import detect_falls

    det = FallDetector.from_pretrained(model, threads=threads,
                                       **({} if threshold is None else {"threshold": threshold}))
    events, info = detect_falls(det, source, fps=fps, frontend=frontend, on_event=on_event, render=render)
    persons: dict[int, list[Segment]] = {}
    for e in events:
        if e.kind != "fall":  # still down / recovered: said by `actionpose fall`, not segments of their own
            continue
        tid = int(e.track_id) if str(e.track_id).lstrip("-").isdigit() else len(persons)
        persons.setdefault(tid, []).append(Segment("fall", float(e.start_time), float(e.detected_time),
                                                   float(e.confidence)))
    for t in info.get("tracks", []):
        if str(t).lstrip("-").isdigit():
            persons.setdefault(int(t), [])
    frames = int(info["frames"])
    duration = float(info["duration_s"])
    interrupted = bool(info.get("interrupted"))
    prep = det.config.prep  # the detector's own window and scoring hop, not the tagger's defaults
    result = TagResult(video=Path(source).name, fps=float(info.get("fps") or fps or 30.0), model=str(model),
                       classes=["fall"], duration_s=duration, frames=frames, persons=persons,
                       config=SegmentConfig(threshold=det.config.threshold, window_s=round(prep.frames / prep.fps, 3),
                                            stride_s=round(det.config.hop_s, 4), min_duration_s=0.0),
                       complete=bool(info["complete"]),
                       interrupted=interrupted,
                       warnings=([INTERRUPTED] if interrupted else []) + list(info.get("warnings", [])))
    # partial only when stopped or truncated (what was read is kept); any warning marked it so, and a clip with a
    # person in view under 1 s was then reported as "stopped before the end (decode failed)"
    for t, peak in info.get("peaks", {}).items():  # how close each person without a fall came (was: "no window
        if str(t).lstrip("-").isdigit() and int(t) in persons:  # showed enough of the person", for 42 scored windows)
            result.best[int(t)] = ("fall", float(peak))
    write_outputs(result, json=json, csv=csv, timeline=timeline)
    return result
