"""The layout of a training run's folder, in one place: ``<run>/config.yaml``, ``<run>/<name>.onnx`` and
``<run>/checkpoints/{best,last}.ckpt`` (``runs/<name>`` unless ``output.dir`` says otherwise).

Why its own module: ``train`` writes this layout while ``eval`` and ``train trainer.resume=...`` find their
way back from a model file to its run; each had its own copy of the convention, and one of them also
looked for ``config.yaml`` two folders above any ``.onnx`` file. Kept free of heavy imports (the CLI uses it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

CHECKPOINTS = "checkpoints"


def checkpoint_dir(run: Path) -> Path:
    return run / CHECKPOINTS


def run_of(model: str | Path) -> Optional[Path]:
    """The run folder a model file belongs to: above ``checkpoints/`` for a checkpoint, the ONNX file's own
    folder when a ``config.yaml`` is beside it; None for anything else."""
    p = Path(model)
    if p.suffix == ".ckpt" and p.parent.name == CHECKPOINTS:
        return p.parent.parent
    if p.suffix == ".onnx" and (p.parent / "config.yaml").is_file():
        return p.parent
    return None
