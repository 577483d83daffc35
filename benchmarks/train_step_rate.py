"""Training-step rate of the GCNs (forward + backward + SGD step, the trainer's precision) at NW-UCLA shapes.

Why: to size a time-boxed GPU run before spending the lease on it. On the lent H200 (2026-11-26) a
CTR-GCN step cost ~90 ms at batch 16, 64 and 128 alike - the cost is per kernel launched, not per
sample - which is what moved configs/nwucla/ctrgcn_joint_gpu.yaml to batch 64.

    python benchmarks/train_step_rate.py                         # CUDA if present, else CPU
    python benchmarks/train_step_rate.py --models ctrgcn:16 ctrgcn:64 stgcnpp:64 --steps 25
    python benchmarks/train_step_rate.py --models ctrgcn:64 --cuda-graphs   # eager vs graphed, same run
    python benchmarks/train_step_rate.py --models ctrgcn:1 --device cpu --count-ops   # ATen calls per step

``--cuda-graphs`` times each model eagerly and replayed from a CUDA graph (``trainer.cuda_graphs``,
:mod:`actionpose.training.cuda_graphs`) and checks them against each other: two copies of one model
take the same ``--parity-steps`` steps on the same batches, one eagerly and one graphed, and the largest
parameter difference is printed (autocast rounding, not a different computation, should be all
that separates them).
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from actionpose.models import build_model  # noqa: E402
from actionpose.training.cuda_graphs import GraphedTrainForward  # noqa: E402
from actionpose.training.train import default_precision  # noqa: E402


def _batch(model: torch.nn.Module, batch: int, frames: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    v = model.backbone.gcn[0].gcn.A.shape[-1]
    return (torch.randn(batch, 1, frames, v, 3, generator=g).to(device),
            torch.randint(0, 10, (batch,), generator=g).to(device))


def make_step(model: torch.nn.Module, device: str, graphs: bool):
    """One training step as the trainer takes it (on CUDA its default precision: autocast bf16, or float16 +
    GradScaler before Ampere), optionally
    through :class:`GraphedTrainForward`; returns ``(step(x, y), forward)``."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    cuda = device.startswith("cuda")
    bf16 = cuda and default_precision(True) == "bf16-mixed"  # the trainer's default: no GradScaler with bf16
    scaler = torch.amp.GradScaler(enabled=cuda and not bf16)
    fwd = GraphedTrainForward(model) if graphs else model

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16 if bf16 else torch.float16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(fwd(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step, fwd


def step_rate(name: str, batch: int, device: str, steps: int, frames: int = 52, joints_layout: str = "kinect20",
              warmup: int = 3, graphs: bool = False) -> tuple[float, float, str]:
    """Seconds per training step (mean of ``steps`` after ``warmup``), the warm-up's own seconds, and
    why graphs were not used (empty when they were or were not asked for)."""
    model = build_model(name, joints_layout, 10, 3).to(device)
    x, y = _batch(model, batch, frames, device)
    run, fwd = make_step(model, device, graphs)
    cuda = device.startswith("cuda")

    def step() -> None:
        run(x, y)

    def timed(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    warm = timed(warmup)
    sec = timed(steps) / steps
    return sec, warm, (getattr(fwd, "disabled", None) or "") if graphs else ""


def aten_calls(name: str, batch: int, frames: int = 4) -> int:
    """ATen calls (nested ones included) in one CPU training step: what a CUDA graph saves launching."""
    from torch.profiler import ProfilerActivity, profile

    model = build_model(name, "kinect20", 10, 3).train()
    x, y = _batch(model, batch, frames, "cpu")
    run, _ = make_step(model, "cpu", False)
    run(x, y)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(x, y)
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def graph_parity(name: str, batch: int, device: str, steps: int, frames: int = 52) -> float:
    """Largest |parameter| difference after ``steps`` identical steps taken eagerly and graphed."""
    torch.manual_seed(0)
    eager = build_model(name, "kinect20", 10, 3).to(device).train()
    graphed = copy.deepcopy(eager)
    step_e, _ = make_step(eager, device, False)
    step_g, _ = make_step(graphed, device, True)
    for i in range(steps):
        x, y = _batch(eager, batch, frames, device, seed=i)
        step_e(x, y)
        step_g(x, y)
    with torch.no_grad():
        return max(float((a - b).abs().max()) for a, b in zip(eager.parameters(), graphed.parameters()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["ctrgcn:16", "ctrgcn:64", "ctrgcn:128", "stgcnpp:16",
                                                    "stgcnpp:64", "ctrgcn_small:16"], help="NAME:BATCH ...")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--epoch-samples", type=int, default=4590, help="NW-UCLA: 918 clips x 5 repeats")
    ap.add_argument("--cuda-graphs", action="store_true", help="also time each model replayed from a CUDA graph")
    ap.add_argument("--parity-steps", type=int, default=5, help="--cuda-graphs: eager vs graphed steps compared")
    ap.add_argument("--count-ops", action="store_true", help="print the ATen calls of one CPU training step instead")
    a = ap.parse_args(argv)
    if a.count_ops:
        for spec in a.models:
            name, _, batch = spec.partition(":")
            print(f"{name} batch {int(batch or 16)}: {aten_calls(name, int(batch or 16))} ATen calls per training step")
        return 0
    torch.backends.cudnn.benchmark = True
    where = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"{where}, torch {torch.__version__}")
    if a.cuda_graphs and not a.device.startswith("cuda"):
        print("error: --cuda-graphs needs a CUDA device")
        return 2
    if a.cuda_graphs:
        print(f"| model | batch | eager ms/step | graphed ms/step | speed-up | s per epoch of {a.epoch_samples}: eager "
              f"/ graphed | max param diff after {a.parity_steps} steps |\n|---|---|---|---|---|---|---|")
    else:
        print(f"| model | batch | ms/step | samples/s | s per epoch of {a.epoch_samples} |\n|---|---|---|---|---|")
    for spec in a.models:
        name, _, batch = spec.partition(":")
        b = int(batch or 16)
        sec, _, _ = step_rate(name, b, a.device, a.steps)
        if not a.cuda_graphs:
            print(f"| {name} | {b} | {sec * 1e3:.1f} | {b / sec:.0f} | {a.epoch_samples * sec / b:.1f} |", flush=True)
            continue
        gsec, _, why = step_rate(name, b, a.device, a.steps, graphs=True)
        diff = graph_parity(name, b, a.device, a.parity_steps)
        graphed = f"{gsec * 1e3:.1f}" + (f" ({why})" if why else "")
        print(f"| {name} | {b} | {sec * 1e3:.1f} | {graphed} | {sec / gsec:.1f}x "
              f"| {a.epoch_samples * sec / b:.1f} / {a.epoch_samples * gsec / b:.1f} | {diff:.2e} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
