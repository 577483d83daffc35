"""``actionpose export --model CKPT -o model.onnx``."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a training checkpoint to ONNX (dynamic batch/time, metadata)",
                       description="Exports with dynamic batch, person and time axes, stores layout, classes and "
                                   "preprocessing in the ONNX metadata and checks ONNX Runtime against PyTorch.")
    p.add_argument("--model", "-m", required=True, help="checkpoint (.ckpt) written by actionpose train")
    p.add_argument("-o", "--output", required=True, help="output .onnx (written atomically)")
    p.add_argument("--atol", type=float, default=1e-4, help="allowed |ORT - PyTorch| per logit, scaled by max(1, |logit|) "
                                                                "(default 1e-4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from actionpose.data.atomic import check_output_file
    from actionpose.errors import ActionposeError
    from actionpose.training.checkpoint import load_checkpoint
    from actionpose.training.export import export_onnx

    check_output_file(args.output, "--output", inputs=(args.model,))  # -o best.ckpt replaced the checkpoint
    if Path(args.output).suffix.lower() != ".onnx":  # -o model.pkl wrote an ONNX file under a pickle's name
        raise ActionposeError(f"--output {args.output}: name it .onnx (it is an ONNX model)")
    if not args.atol > 0 or args.atol == float("inf"):  # was found only after the whole export
        raise ActionposeError(f"--atol must be a positive number, got {args.atol}")
    model, meta, _ = load_checkpoint(args.model)
    res = export_onnx(model, meta, args.output, atol=args.atol)
    print(f"wrote {args.output}: layout {meta['layout']}, {len(meta['classes'])} classes, stream {meta['stream']}, "
          f"clip_len {meta['clip_len']}; ONNX Runtime vs PyTorch max |diff| {res['max_abs_diff']:.2e} "
          f"(largest |logit| {res['max_abs_logit']:.3g})")
    return 0
