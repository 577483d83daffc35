"""``actionpose reps VIDEO|PKL [--exercise NAME] [--json]``: count exercise repetitions."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from actionpose.inference.reps_signals import exercise_names

    p = sub.add_parser("reps", help="count exercise repetitions in a video or keypoint pickle",
                       description="Count repetitions (one event per completed rep, then the total). "
                                   f"Exercises: {', '.join(exercise_names())}.")
    p.add_argument("input", help="video file (runs the pose frontend) or canonical/PYSKL keypoint .pkl")
    p.add_argument("--exercise", "-e", help="exercise name; default: pick the most periodic known exercise")
    p.add_argument("--sample", help=".pkl: only the annotation with this frame_dir")
    p.add_argument("--fps", type=float, help=".pkl: frame rate (default: the annotation's fps, else 30)")
    p.add_argument("--min-score", type=float, default=0.3, help="ignore joints below this keypoint score")
    p.add_argument("--form", action="store_true",
                   help="push-ups: also judge the form (correct / wrong) of each counted rep and of the whole clip "
                        "with the shipped pushup_form model (implies --exercise push_up; ~79 %% clip accuracy, "
                        "docs/reps.md)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from actionpose.errors import ActionposeError
    from actionpose.inference.reps_io import count_file

    if args.exercise is not None and not args.exercise.strip():  # -e "" counted in auto mode without a word
        raise ActionposeError("--exercise is empty; give an exercise name (actionpose reps --help lists them) or "
                              "leave it out to pick the most periodic one")
    if args.fps is not None and not 0 < args.fps < float("inf"):
        raise ActionposeError(f"--fps must be positive, got {args.fps}")
    skeleton = Path(args.input).suffix.lower() in {".pkl", ".pickle"}
    for flag, value, why in (("--fps", args.fps, "is read at the video's own frame rate"),
                             ("--sample", args.sample, "holds one clip")):  # a video's were silently ignored
        if value is not None and not skeleton:
            raise ActionposeError(f"{flag} is for a .pkl input; {args.input} {why}")
    if not 0 <= args.min_score <= 1:  # keypoint scores are probabilities: above 1 no joint is ever seen
        raise ActionposeError(f"--min-score must be between 0 and 1, got {args.min_score}")
    judge = None
    if args.form:
        from actionpose.inference.form import PushupFormJudge
        from actionpose.inference.reps_signals import find_exercise

        if args.exercise is not None and getattr(find_exercise(args.exercise), "name", None) != "push_up":
            raise ActionposeError(f"--form judges push-ups only; --exercise {args.exercise} is another exercise")
        args.exercise = "push_up"
        judge = PushupFormJudge()  # loaded before the video is read: a missing model fails at once

    def show(name, ev):
        print(f"{name}: rep {ev.count} ({ev.exercise}) {ev.start_s:.2f}-{ev.end_s:.2f} s", flush=True)

    skipped: list[tuple[str, str]] = []
    shown = 5  # a pickle of 861 3D samples printed 861 identical lines: the first few, then a summary by reason

    def skip(name, reason):  # a several-sample pickle: a sample that cannot be counted is a warning
        skipped.append((name, reason))
        if len(skipped) <= shown:
            print(f"warning: {args.input} [{name}]: skipped: {reason}", file=sys.stderr, flush=True)

    kept: dict = {}
    cuts: list[str] = []
    results = count_file(args.input, args.exercise, args.fps, args.sample, args.min_score,
                         on_event=None if args.json else show, on_skip=skip, keep=kept if judge else None,
                         on_cut=cuts.append)
    forms = {}
    if judge is not None:
        for name, r in results.items():
            if r.count == 0:  # "form wrong (P(correct) 0.00)" for two people hugging: no push-up to judge
                continue
            kp, sc, rate, layout, t0 = kept[name]
            f = judge.judge(kp, sc, rate, layout, reps=[(x.start_s - t0, x.end_s - t0) for x in r.reps])
            # rep times from the start of the input, as the counted reps are printed
            f.reps = [replace(x, start_s=round(x.start_s + t0, 3), end_s=round(x.end_s + t0, 3)) for x in f.reps]
            forms[name] = f
    if skipped:
        from collections import Counter

        # by the reason's kind ("missing joints needed for push_up"): the details differ per sample
        reasons = Counter(reason.split(":")[0] for _, reason in skipped).most_common()
        why = "; ".join(f"{n} x {reason}" if len(reasons) > 1 else reason for reason, n in reasons[:3])
        why += f"; {len(reasons) - 3} other reasons" if len(reasons) > 3 else ""
        if not results:
            print(f"error: {args.input}: no sample could be counted ({len(skipped)} skipped: {why})", file=sys.stderr)
            return 2
        more = f" ({len(skipped) - shown} not listed above)" if len(skipped) > shown else ""
        print(f"warning: {args.input}: {len(skipped)} of {len(skipped) + len(results)} samples skipped{more}: {why}",
              file=sys.stderr)
    if args.json:
        print(json.dumps({name: {**r.to_dict(), **({"form": forms[name].to_dict() if name in forms else None}
                                                    if judge is not None else {})}
                          for name, r in results.items()}, indent=2))
        return _cut_exit(args.input, cuts)
    for name, r in results.items():
        if args.exercise is None and r.count == 0:  # "total 0 push_up reps" named an exercise nobody did
            print(f"{name}: no repetitions found (no known exercise repeats here; --exercise NAME counts that one)")
            continue
        period = f", period {r.period_s:.2f} s" if r.period_s == r.period_s else ""
        live = f"; live events {r.live_count}" if r.live_count is not None and r.live_count != r.count else ""
        print(f"{name}: total {r.count} {r.exercise} reps (signal {r.signal}{period}{live})")
        if judge is not None and name not in forms:
            print(f"{name}: form not judged (no push-up counted)")
        elif name in forms:
            f = forms[name]
            per_rep = ", ".join(f"rep {i} {x.label} ({x.p_correct:.2f})" for i, x in enumerate(f.reps, 1))
            print(f"{name}: form {f.label} (P(correct) {f.p_correct:.2f})" + (f"; {per_rep}" if per_rep else ""))
    return _cut_exit(args.input, cuts)


def _cut_exit(source: str, cuts: list[str]) -> int:
    """2 for a video that stopped decoding part-way (as `tag` and `fall`): exit 0 read as "all of it counted"."""
    if cuts:
        print(f"error: {source}: {cuts[0]}; the counts cover the part before it", file=sys.stderr)
        return 2
    return 0
