"""LightningDataModule over the canonical pickle: train / validation slice / test.

The validation slice is carved from the training split (stratified by label, fixed seed), so
model selection never looks at the test split.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from actionpose.data.format import ALL_SPLIT, SkeletonDataset, load_dataset
from actionpose.data.transforms import AugmentConfig, PreprocessConfig, prepare
from actionpose.errors import ActionposeError
from actionpose.skeleton import can_map, get_layout, map_keypoints


@dataclass
class Sample:
    name: str
    keypoint: np.ndarray          # [M, T, V, C], already in the model's layout
    score: np.ndarray | None      # [M, T, V]
    label: int


def samples_for(ds: SkeletonDataset, split: str, layout: str | None = None) -> list[Sample]:
    """The split's samples, mapped into ``layout`` (refused with both names if impossible)."""
    target = layout or ds.layout
    if target != ds.layout and not can_map(ds.layout, target):
        from actionpose.skeleton.registry import missing_joints, name_list

        raise ActionposeError(f"dataset layout {ds.layout!r} does not match model layout {target!r} and cannot be "
                              f"mapped to it by joint names (none for {name_list(missing_joints(ds.layout, target))})")
    out = []
    unlabelled = [a["frame_dir"] for a in ds.subset(split) if int(a["label"]) < 0]
    if unlabelled:  # label -1 (e.g. extracted videos) would be an out-of-range class index deep in torch
        raise ActionposeError(f"split {split!r}: {len(unlabelled)} sample(s) are unlabelled (label -1), e.g. "
                              f"{unlabelled[0]!r}; label them or leave them out of this split")
    for a in ds.subset(split):
        kp, sc = a["keypoint"], a.get("keypoint_score")
        if target != ds.layout:
            kp = map_keypoints(kp, ds.layout, target, axis=2)
            sc = None if sc is None else map_keypoints(sc, ds.layout, target, axis=2)
        out.append(Sample(a["frame_dir"], kp, sc, int(a["label"])))
    return out


def _note_unlearnable(samples: list[Sample], classes: list[str], split: str, source: object) -> None:
    """Say what training cannot learn: classes without a training clip (a class only in test, or none at all,
    still got an output the model can never learn), and clips with no joint seen in any frame (trained on as
    all zeros, where every inference path refuses them)."""
    counts = np.bincount([s.label for s in samples], minlength=len(classes))
    missing = [classes[k] for k in np.flatnonzero(counts == 0)]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        print(f"note: {source}: {len(missing)} of {len(classes)} classes have no clip in split {split!r} ({shown}): "
              "the model can never learn them", file=sys.stderr)
    blank = [s.name for s in samples if not (np.isfinite(s.keypoint) & (s.keypoint != 0)).any()]
    if blank:
        print(f"note: {source}: {len(blank)} training clip(s) have no joint seen in any frame, e.g. {blank[0]!r}: "
              "they teach the model nothing (inference refuses such input)", file=sys.stderr)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): ``fraction`` of every class (at least one when the class has >= 2, and never
    the class's last training sample: val_fraction 0.95 put every clip of a 2-clip class into validation)."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * fraction))
        if fraction > 0 and len(idx) >= 2:
            k = max(k, 1)
        k = min(k, len(idx) - 1)
        val.extend(idx[:k].tolist())
    val_idx = np.array(sorted(val), dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


def validation_slice(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(fit, val) samples of a training split: the slice training validates on, so that ``actionpose eval
    --split val`` can score any model or ensemble on exactly the clips its runs chose epochs by."""
    tr, va = stratified_split(np.array([s.label for s in samples]), fraction, seed)
    return [samples[i] for i in tr], [samples[i] for i in va]


class ClipDataset(Dataset):
    """Samples -> ``(clips [num_clips, M, L, V, C'], label)``; random sampling/augmentation when training."""

    def __init__(self, samples: list[Sample], cfg: PreprocessConfig, aug: AugmentConfig | None = None,
                 train: bool = False, seed: int = 0, repeat: int = 1):
        self.samples, self.cfg, self.aug, self.train = samples, cfg, aug, train
        self.seed, self.repeat = seed, repeat
        self._rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.samples) * self.repeat

    def rng(self) -> np.random.Generator:
        if self._rng is None:  # one stream per worker process
            info = torch.utils.data.get_worker_info()
            self._rng = np.random.default_rng([self.seed, info.id if info else 0, torch.initial_seed() % 2**31])
        return self._rng

    def __getitem__(self, i: int):
        s = self.samples[i % len(self.samples)]
        x = prepare(s.keypoint, s.score, self.cfg, self.aug, self.rng() if self.train else None)
        return torch.from_numpy(x), s.label


class SkeletonDataModule(pl.LightningDataModule):
    """Reads the canonical pickle named in ``config['data']['path']`` (or a given dataset)."""

    def __init__(self, config: dict[str, Any], dataset: SkeletonDataset | None = None):
        super().__init__()
        self.config = config
        d = config["data"]
        if dataset is None:
            if not d["path"]:
                raise ActionposeError("config key 'data.path' is required (a pickle from `actionpose datasets convert`)")
            dataset = load_dataset(d["path"])
        self.dataset = dataset
        # pinned batches, set by train() when it trains on a GPU: a copy from pageable memory waits for the GPU's
        # queue to drain first, so the host could not queue the next step while the GPU runs this one
        self.pin_memory = False
        self.layout = d["layout"] or dataset.layout
        if self.layout.lower().endswith((".yaml", ".yml", ".json")):  # a custom rig's file, as `convert --layout` takes
            from actionpose.skeleton.layout_file import layout_from_option

            self.layout = layout_from_option(self.layout)
        get_layout(self.layout)
        self.classes = list(dataset.classes)
        if not dataset.split and d["train_split"] == "train":  # a CSV without a split column: every sample
            d["train_split"] = ALL_SPLIT  # in the run's config too, so `eval --split val` finds the same slice
            print(f"note: {d['path'] or 'the dataset'} has no splits: training on all {len(dataset.annotations)} "
                  f"samples (data.train_split={ALL_SPLIT}); no test split, so the run is not tested", file=sys.stderr)
        for key in ("train_split", "test_split"):
            if key == "test_split" and d[key] is None:
                continue  # null: train without a test split (e.g. a final model trained on every fold)
            if d[key] not in dataset.split and d[key] != ALL_SPLIT and (key == "train_split" or d[key] != "test"):
                raise ActionposeError(f"config key 'data.{key}': split {d[key]!r} not in {d['path'] or 'the dataset'}; "
                                      f"available splits: {', '.join(dataset.split) or '(none)'}")
        if dataset.split and d["test_split"] == "test" and "test" not in dataset.split:  # PYSKL: xsub_val, ...
            others = [k for k in dataset.split if k != d["train_split"]]
            print(f"note: {d['path'] or 'the dataset'} has no split 'test' (splits: {', '.join(dataset.split)}): the "
                  "run is not tested" + (f"; data.test_split={others[0]} tests on {others[0]}" if others else ""),
                  file=sys.stderr)
        if d["test_split"] is not None and d["test_split"] in dataset.split:
            both = {a["frame_dir"] for a in dataset.subset(d["train_split"])} & set(dataset.split[d["test_split"]])
            if both:  # a test score on clips the model trained on means nothing
                raise ActionposeError(f"{d['path'] or 'dataset'}: {len(both)} sample(s) are in both split "
                                      f"{d['train_split']!r} and split {d['test_split']!r}, e.g. {sorted(both)[0]!r}")
        train_all = samples_for(dataset, d["train_split"], self.layout)
        _note_unlearnable(train_all, self.classes, d["train_split"], d["path"] or "the dataset")
        val_seed = config["seed"] if d.get("val_seed") is None else d["val_seed"]
        self.train_samples, self.val_samples = validation_slice(train_all, float(d["val_fraction"]), int(val_seed))
        if float(d["val_fraction"]) > 0.5:  # trains on few clips: said, not silent
            print(f"note: data.val_fraction={d['val_fraction']} trains on {len(self.train_samples)} of {len(train_all)} "
                  f"clips ({len(self.val_samples)} validate)", file=sys.stderr)
        # a dataset without a "test" split trains untested (a test split named on purpose was checked above)
        self.test_samples = (samples_for(dataset, d["test_split"], self.layout)
                             if d["test_split"] is not None and d["test_split"] in dataset.split else [])
        coords = {int(s.keypoint.shape[-1]) for s in train_all}
        if len(coords) != 1:
            raise ActionposeError(f"{d['path']}: mixed 2D/3D samples in split {d['train_split']!r}")
        self.coords = coords.pop()
        p = config["preprocess"]
        self.train_cfg = PreprocessConfig.from_meta(p, layout=self.layout, num_clips=p["num_clips"])
        self.test_cfg = PreprocessConfig.from_meta(p, layout=self.layout, num_clips=p["test_clips"])
        try:  # preprocess one sample now: a config that cannot work on this data fails before training starts
            prepare(train_all[0].keypoint, train_all[0].score, self.test_cfg)
        except ActionposeError as e:
            raise ActionposeError(f"{d['path'] or 'dataset'}: {e}") from None
        self.aug = AugmentConfig(**config["augment"])
        self.in_channels = self.train_cfg.in_channels(self.coords)

    def _loader(self, ds: Dataset, shuffle: bool) -> DataLoader:
        o, d = self.config["optim"], self.config["data"]
        return DataLoader(ds, batch_size=o["batch_size"], shuffle=shuffle, num_workers=d["num_workers"],
                          drop_last=shuffle and len(ds) > o["batch_size"], persistent_workers=d["num_workers"] > 0,
                          pin_memory=self.pin_memory)

    def train_dataloader(self) -> DataLoader:
        return self._loader(ClipDataset(self.train_samples, self.train_cfg, self.aug, train=True,
                                        seed=int(self.config["seed"]), repeat=int(self.config["data"]["repeat"])),
                            shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(ClipDataset(self.val_samples or self.train_samples, self.test_cfg), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        if not self.test_samples:
            raise ActionposeError(f"split {self.config['data']['test_split']!r} not found in the dataset")
        return self._loader(ClipDataset(self.test_samples, self.test_cfg), shuffle=False)
