"""Training-step rate of the GCNs (forward + backward + SGD step, mixed precision on CUDA) at NW-UCLA shapes.

Why: to size a time-boxed GPU run before spending the lease on it. On the lent H200 (2026-11-26) a
CTR-GCN step cost ~90 ms at batch 16, 64 and 128 alike - the cost is per kernel launched, not per
sample - which is what moved configs/nwucla/ctrgcn_joint_gpu.yaml to batch 64.

    python benchmarks/train_step_rate.py                         # CUDA if present, else CPU
    python benchmarks/train_step_rate.py --models ctrgcn:16 ctrgcn:64 stgcnpp:64 --steps 25
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from actionpose.models import build_model  # noqa: E402


def step_rate(name: str, batch: int, device: str, steps: int, frames: int = 52, joints_layout: str = "kinect20",
              warmup: int = 3) -> tuple[float, float]:
    """Seconds per training step (mean of ``steps`` after ``warmup``) and the warm-up's own seconds."""
    model = build_model(name, joints_layout, 10, 3).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    cuda = device.startswith("cuda")
    scaler = torch.amp.GradScaler(enabled=cuda)
    v = model.backbone.gcn[0].gcn.A.shape[-1]
    x = torch.randn(batch, 1, frames, v, 3, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def timed(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    warm = timed(warmup)
    return timed(steps) / steps, warm


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["ctrgcn:16", "ctrgcn:64", "ctrgcn:128", "stgcnpp:16",
                                                    "stgcnpp:64", "ctrgcn_small:16"], help="NAME:BATCH ...")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--epoch-samples", type=int, default=4590, help="NW-UCLA: 918 clips x 5 repeats")
    a = ap.parse_args(argv)
    torch.backends.cudnn.benchmark = True
    where = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"{where}, torch {torch.__version__}")
    print(f"| model | batch | ms/step | samples/s | s per epoch of {a.epoch_samples} |\n|---|---|---|---|---|")
    for spec in a.models:
        name, _, batch = spec.partition(":")
        sec, _ = step_rate(name, int(batch or 16), a.device, a.steps)
        rate = int(batch or 16) / sec
        print(f"| {name} | {batch or 16} | {sec * 1e3:.1f} | {rate:.0f} | {a.epoch_samples / rate:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
