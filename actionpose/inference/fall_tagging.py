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
              on_event: Callable[[Any], None] | None = None, render: str | None = None,
              sequence: int | None = None) -> TagResult:
    """``threshold`` replaces the calibrated alert threshold; ``on_event`` sees each fall as it is raised
    (live sources); ``sequence``: of a pickle, tag only that annotation (one result per sequence, as with the
    other models; its persons are numbered by their index in it)."""
    from actionpose.inference.fall import FallDetector
    from actionpose.inference.fall_sources import detect_falls, track_number

    det = FallDetector.from_pretrained(model, threads=threads,
                                       **({} if threshold is None else {"threshold": threshold}))
    events, info = detect_falls(det, source, fps=fps, frontend=frontend, on_event=on_event, render=render,
                                sequence=sequence)
    ids: dict[Any, int] = {}

    def person(track: Any) -> int:  # pickle people were dropped, and a fall got the next free number
        return track_number(track, ids)

    persons: dict[int, list[Segment]] = {}
    for t in info.get("tracks", []):
        persons.setdefault(person(t), [])
    for e in events:
        if e.kind != "fall":  # still down / recovered: said by `actionpose fall`, not segments of their own
            continue
        persons.setdefault(person(e.track_id), []).append(Segment("fall", float(e.start_time), float(e.detected_time),
                                                                  float(e.confidence)))
    persons = dict(sorted(persons.items()))
    frames = int(info["frames"])
    duration = float(info["duration_s"])
    interrupted = bool(info.get("interrupted"))
    prep = det.config.prep  # the detector's own window and scoring hop, not the tagger's defaults
    from actionpose.pose.sources import source_label

    name = source_label(source) if sequence is None else str(info.get("sequence_name") or source_label(source))
    result = TagResult(video=name, fps=float(info.get("fps") or fps or 30.0), model=str(model),
                       classes=["fall"], duration_s=duration, frames=frames, persons=persons,
                       config=SegmentConfig(threshold=det.config.threshold, window_s=round(prep.frames / prep.fps, 3),
                                            stride_s=round(det.config.hop_s, 4), min_duration_s=0.0),
                       complete=bool(info["complete"]),
                       interrupted=interrupted,
                       warnings=([INTERRUPTED] if interrupted else []) + list(info.get("warnings", [])))
    # partial only when stopped or truncated (what was read is kept); any warning marked it so, and a clip with a
    # person in view under 1 s was then reported as "stopped before the end (decode failed)"
    for t, peak in info.get("peaks", {}).items():  # how close each person without a fall came (was: "no window
        if person(t) in persons:  # showed enough of the person", for 42 scored windows)
            result.best[person(t)] = ("fall", float(peak))
    write_outputs(result, json=json, csv=csv, timeline=timeline)
    return result
