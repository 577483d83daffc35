"""Write penn_concat.json: long sequences made of Penn Action *test* clips with known action boundaries.

The definition (which clips, in which order) is committed; the data is rebuilt from Penn Action by
``actionpose bench tag --eval`` (see docs/tagging.md). Each sequence has 5 segments of 5 different
classes; each segment is 3 consecutive clips of the same class (about 7 s), because one Penn clip is only
~2.3 s long and a tagged action should last several windows. Clips are never reused. The first
CALIBRATION sequences choose the threshold/window; the rest are only used to report numbers.

    python data/tag_eval/make_penn_concat.py /path/to/penn.pkl   # from `actionpose datasets convert --format penn`
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from actionpose.data.format import load_dataset

SEED = 0
SEQUENCES = 24
CALIBRATION = 8
SEGMENTS_PER_SEQUENCE = 5
CLIPS_PER_SEGMENT = 3


def main(penn_pkl: str) -> None:
    ds = load_dataset(penn_pkl)
    test = ds.subset("test")
    rng = np.random.default_rng(SEED)
    pools = {c: [a["frame_dir"] for a in test if a["label"] == k] for k, c in enumerate(ds.classes)}
    for c in pools:
        rng.shuffle(pools[c])
    seqs = []
    for i in range(SEQUENCES):
        avail = [c for c in ds.classes if len(pools[c]) >= CLIPS_PER_SEGMENT]
        classes = rng.choice(avail, size=SEGMENTS_PER_SEQUENCE, replace=False)
        segs = [{"label": str(c), "clips": [pools[c].pop() for _ in range(CLIPS_PER_SEGMENT)]} for c in classes]
        seqs.append({"name": f"penn_concat_{i:02d}", "role": "calibration" if i < CALIBRATION else "evaluation",
                     "segments": segs})
    doc = {"description": "Penn Action official test split clips concatenated into long sequences with known "
                          "boundaries; each clip is re-centred and re-scaled to a common body size so the joins "
                          "look like one person.",
           "source": "Penn Action labels/*.mat via `actionpose datasets convert --format penn`, split 'test'",
           "fps": 30.0, "layout": "penn13", "seed": SEED, "clips_per_segment": CLIPS_PER_SEGMENT,
           "generator": "python data/tag_eval/make_penn_concat.py PENN.pkl", "sequences": seqs}
    out = Path(__file__).with_name("penn_concat.json")
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}: {len(seqs)} sequences ({CALIBRATION} calibration)")


if __name__ == "__main__":
    main(sys.argv[1])
