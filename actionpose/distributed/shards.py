"""Shard store for distributed extraction: one small pickle per finished video, merged into one dataset.

Why shards: a run over thousands of videos must survive a crash or Ctrl-C without redoing finished
work, and a bad video must not cost the others. Each finished video is written atomically to
``<out>.shards/<key>.pkl`` the moment its result arrives; a failed video leaves ``<key>.failed.json``.
A re-run with the same options skips every video that has a ``.pkl`` (failed ones are retried), and
the final pickle is always a merge of the shards, in source order.
"""
from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actionpose.data.atomic import atomic_path, write_text_atomic
from actionpose.data.format import SkeletonDataset, save_dataset
from actionpose.data.safe_pickle import safe_load
from actionpose.errors import ActionposeError, where

MANIFEST = "manifest.json"


def shard_dir_for(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".shards")


def video_key(source: str) -> str:
    """Stable shard name for a source: its stem plus a hash of the resolved path (stems may repeat)."""
    p = Path(source)
    digest = hashlib.sha1(str(p.resolve() if p.exists() else source).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in p.stem)[:60] or "video"
    return f"{stem}-{digest}"


@dataclass
class ShardStore:
    """The ``<out>.shards/`` folder: options manifest, finished shards and failure records."""

    root: Path
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, out: str | Path, options: dict[str, Any]) -> "ShardStore":
        """Create the folder, or reopen it if it was made with the same extraction options."""
        root = shard_dir_for(out)
        manifest = root / MANIFEST
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text())
            except json.JSONDecodeError:
                raise where(manifest, "corrupt shard manifest; delete the folder to start over") from None
            if old != json.loads(json.dumps(options)):
                diff = sorted(k for k in set(old) | set(options) if old.get(k) != options.get(k))
                raise where(root, f"holds shards made with other options ({', '.join(diff)}); use the same "
                                  f"options to resume, or delete the folder to start over")
        else:
            root.mkdir(parents=True, exist_ok=True)
            write_text_atomic(manifest, json.dumps(options, indent=1, sort_keys=True))
        return cls(root, options)

    def shard(self, key: str) -> Path:
        return self.root / f"{key}.pkl"

    def failure(self, key: str) -> Path:
        return self.root / f"{key}.failed.json"

    def done(self, key: str) -> bool:
        return self.shard(key).exists()

    def write(self, key: str, annotation: dict[str, Any]) -> None:
        with atomic_path(self.shard(key)) as tmp:
            with open(tmp, "wb") as f:
                pickle.dump(annotation, f, protocol=pickle.HIGHEST_PROTOCOL)
        self.failure(key).unlink(missing_ok=True)

    def record_failure(self, key: str, source: str, error: str) -> None:
        write_text_atomic(self.failure(key), json.dumps({"source": source, "error": error}))

    def read(self, key: str) -> dict[str, Any]:
        path = self.shard(key)
        try:
            ann = safe_load(path)
        except ActionposeError as e:  # a truncated/foreign file: say which one and what to do
            raise ActionposeError(f"{e}; delete it to re-extract that video") from None
        if not isinstance(ann, dict) or "keypoint" not in ann:
            raise where(path, "not an annotation shard; delete it to re-extract that video")
        return ann

    def failures(self, keys: list[str]) -> list[dict[str, str]]:
        out = []
        for k in keys:
            f = self.failure(k)
            if f.exists() and not self.done(k):
                out.append(json.loads(f.read_text()))
        return out


def merge(store: ShardStore, sources: list[str], out: str | Path, layout: str | None,
          meta: dict[str, Any]) -> SkeletonDataset:
    """Finished shards of ``sources`` (in that order) -> one canonical pickle, written atomically.

    ``layout``: the layout the keypoints were mapped to, or None for the frontend's own.

    Failed videos are listed in ``meta['failures']`` so the dataset says what it is missing.
    """
    keys = [video_key(s) for s in sources]
    anns, names = [], set()
    for k in keys:
        if not store.done(k):
            continue
        ann = store.read(k)
        base, n = ann["frame_dir"], 1
        while ann["frame_dir"] in names:  # same stem in different folders
            n += 1
            ann["frame_dir"] = f"{base}_{n}"
        names.add(ann["frame_dir"])
        anns.append(ann)
    if not anns:
        failed = store.failures(keys)
        first = f"; first failure: {failed[0]['source']}: {failed[0]['error']}" if failed else ""
        raise ActionposeError(f"{out}: no video was extracted ({len(failed)} failed{first})")
    pose_layout = anns[0].get("pose_layout")
    ds = SkeletonDataset(anns, layout or pose_layout, [],
                         meta={**meta, "pose_layout": pose_layout, "failures": store.failures(keys)})
    save_dataset(ds, out)
    return ds
