"""``actionpose bench gcn``: ST-GCN++ inference throughput/latency — our eager PyTorch, our ONNX Runtime,
and PYSKL's own ST-GCN++ code side by side in one process, same weights, same inputs.

PYSKL's model classes are extracted at benchmark time from a PYSKL checkout (``--pyskl``: a source
tree or a bare git directory) into ``benchmarks/_peer/`` (git-ignored, never committed); its mmcv
imports are replaced by two tiny shims (BatchNorm2d / ReLU builders) — nothing is reimplemented.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from actionpose.errors import ActionposeError

HELP = "ST-GCN++ inference: ours (PyTorch eager, ONNX Runtime) vs PYSKL eager"
PEER_DIR = Path("benchmarks/_peer")
PYSKL_FILES = ["pyskl/utils/graph.py", "pyskl/models/gcns/utils/init_func.py", "pyskl/models/gcns/utils/gcn.py",
               "pyskl/models/gcns/utils/tcn.py", "pyskl/models/gcns/stgcn.py"]
DEFAULT_PYSKL = ["../pyskl", "/work/.mirror/kennymckormick+pyskl/repo"]
SHIM = '''# Extracted from PYSKL (kennymckormick/pyskl, Apache-2.0) at benchmark time; not part of actionpose.
import copy as cp
import math
import numpy as np
import torch
import torch.nn as nn

def build_norm_layer(cfg, c):
    assert cfg.get("type", "BN") in ("BN", "BN2d"), cfg
    return "bn", nn.BatchNorm2d(c)

def build_activation_layer(cfg):
    assert cfg.get("type") == "ReLU", cfg
    return nn.ReLU()

class _Registry:
    def register_module(self, *a, **k):
        return lambda cls: cls

BACKBONES = _Registry()
load_checkpoint = cache_checkpoint = None
'''


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--persons", type=int, default=2)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--layout", default="ntu25", help="layout (ntu25 = 25 joints, PYSKL's nturgb+d graph)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10, help="timed runs per engine (after 2 warm-up runs)")
    p.add_argument("--model", default="stgcnpp", help="our model preset (stgcnpp = PYSKL's ST-GCN++ architecture)")
    p.add_argument("--pyskl", default=None, help="PYSKL checkout or bare git dir (default: ../pyskl or the mirror)")
    p.add_argument("--no-pyskl", action="store_true", help="skip the PYSKL column")


def _read_pyskl(src: Path) -> dict[str, str]:
    out = {}
    for f in PYSKL_FILES:
        if (src / f).exists():
            out[f] = (src / f).read_text()
        else:  # bare git directory
            r = subprocess.run(["git", "--git-dir", str(src), "show", f"HEAD:{f}"], capture_output=True, text=True)
            if r.returncode != 0:
                raise ActionposeError(f"{src}: cannot read {f} (not a PYSKL checkout?)")
            out[f] = r.stdout
    return out


def extract_pyskl(src: Path | None) -> Path:
    """Write ``benchmarks/_peer/pyskl_stgcn.py``: PYSKL's graph, gcn/tcn units and STGCN, mmcv shimmed."""
    candidates = [Path(src)] if src else [Path(c) for c in DEFAULT_PYSKL]
    found = next((c for c in candidates if c.exists()), None)
    if found is None:
        raise ActionposeError(f"PYSKL source not found (tried {', '.join(map(str, candidates))}); clone "
                              "https://github.com/kennymckormick/pyskl and pass --pyskl PATH, or use --no-pyskl")
    parts = [SHIM]
    for f, text in _read_pyskl(found).items():
        text = re.sub(r"^(from \.|from mmcv|import mmcv).*$", "", text, flags=re.M)
        parts.append(f"# ---- {f}\n{text}")
    PEER_DIR.mkdir(parents=True, exist_ok=True)
    out = PEER_DIR / "pyskl_stgcn.py"
    out.write_text("\n".join(parts))
    return out


def _load_module(path: Path):
    spec = importlib.util.spec_from_file_location("pyskl_stgcn_peer", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _time_interleaved(engines: list[tuple[str, object, object]], repeats: int) -> dict[str, list[float]]:
    """Round-robin timing (one run of each engine per round) so load changes on a shared machine hit
    every engine alike and the ratios stay fair."""
    for _, fn, x in engines:
        for _ in range(2):
            fn(x)
    times: dict[str, list[float]] = {name: [] for name, _, _ in engines}
    for _ in range(repeats):
        for name, fn, x in engines:
            t0 = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - t0)
    return times


def run(args: argparse.Namespace) -> int:
    import tempfile

    import onnxruntime as ort
    import torch

    from actionpose.models import build_model
    from actionpose.skeleton import get_layout
    from actionpose.training.export import export_onnx

    torch.set_num_threads(args.threads)
    lay = get_layout(args.layout)
    n, m, t, v, c = args.batch, args.persons, args.frames, lay.num_joints, 3
    torch.manual_seed(0)
    ours = build_model(args.model, lay, 60, c).eval()
    with torch.no_grad():  # non-trivial BN statistics so the comparison is not on identity BNs
        for mod in ours.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    x = torch.randn(n, m, t, v, c)
    with torch.inference_mode():
        ref = ours(x).numpy()

    tmp = Path(tempfile.mkdtemp()) / "bench.onnx"
    meta = {"layout": lay.name, "classes": [str(i) for i in range(60)], "clip_len": t, "max_persons": m,
            "in_channels": c, "coords": c}
    export_onnx(ours, meta, tmp)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
    sess = ort.InferenceSession(str(tmp), so, providers=["CPUExecutionProvider"])
    xn = x.numpy()
    ort_fn = lambda a: sess.run(None, {"keypoints": a})[0]  # noqa: E731

    def eager_fn(a):
        with torch.inference_mode():
            return ours(a)
    engines = [("actionpose PyTorch eager", eager_fn, x), ("actionpose ONNX Runtime", ort_fn, xn)]
    diffs = {"actionpose PyTorch eager": 0.0, "actionpose ONNX Runtime": float(np.abs(ort_fn(xn) - ref).max())}

    if not args.no_pyskl and args.model == "stgcnpp":
        peer = _load_module(extract_pyskl(args.pyskl))
        graph_layout = {"ntu25": "nturgb+d", "coco17": "coco"}.get(lay.name)
        if graph_layout is None:
            raise ActionposeError(f"--layout {lay.name}: PYSKL comparison needs ntu25 or coco17")
        backbone = peer.STGCN(graph_cfg=dict(layout=graph_layout, mode="spatial"), gcn_adaptive="init",
                              gcn_with_res=True, tcn_type="mstcn").eval()
        backbone.load_state_dict({k[len("backbone."):]: w for k, w in ours.state_dict().items()
                                  if k.startswith("backbone.")}, strict=True)
        head = ours.cls_head  # PYSKL's GCNHead is pool + mean over persons + linear, same as ours

        def pyskl_fn(a):
            with torch.inference_mode():
                return head(backbone(a))
        engines.insert(0, ("PYSKL ST-GCN++ eager", pyskl_fn, x))
        diffs["PYSKL ST-GCN++ eager"] = float(np.abs(pyskl_fn(x).numpy() - ref).max())

    times = _time_interleaved(engines, args.repeats)
    rows = [(name, times[name], diffs[name]) for name, _, _ in engines]

    base = np.median(rows[0][1])
    print(f"ST-GCN++ ({args.model}) inference, batch {n}, {m} persons, {t} frames, {v} joints, "
          f"{args.threads} threads, torch {torch.__version__}, onnxruntime {ort.__version__}; "
          f"median of {args.repeats} interleaved runs")
    print(f"| engine | latency ms/batch (median) | p90 ms | clips/s | ratio vs {rows[0][0]} | max |diff| vs ours |")
    print("|---|---|---|---|---|---|")
    for name, times, diff in rows:
        med = float(np.median(times))
        print(f"| {name} | {med * 1e3:.1f} | {np.percentile(times, 90) * 1e3:.1f} | {n / med:.1f} | "
              f"{base / med:.2f}x | {diff:.1e} |")
    return 0
