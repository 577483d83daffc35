#!/usr/bin/env bash
# NW-UCLA cross-view: the four CTR-GCN streams (joint, bone, joint motion, bone motion) of
# ctrgcn_joint_gpu.yaml - CTR-GCN's published recipe, fixed before any run, not tuned on test - trained
# side by side on ONE GPU inside a time box, then each stream and their ensemble (CTR-GCN's ensemble.py weights:
# 0.6 joint and bone, 0.4 the motions) evaluated on the test view (view 3) with `actionpose eval`.
#
# Made for a lent GPU machine whose image has torch, lightning, onnxruntime and torch-geometric but no
# internet and no MLflow: it runs from the repository root with PYTHONPATH=. (no install) and MLflow off.
#   OUT=results RUNS=runs MINUTES=7 [EVAL=0] bash configs/nwucla/gpu_4streams.sh data/nwucla.pkl [override ...]
# MINUTES caps each run's training (trainer.max_time; the cosine schedule then anneals by the clock, so a
# capped run ends at a low rate); a capped run still tests and exports its selected checkpoint (the config's
# trainer.select: last, the end of the schedule). OUT receives only what is worth bringing back (at most 8
# files): the four .onnx models, train.log (all four runs' lines, prefixed, written as they come, so a lease
# that ends early still returns it), results.json (every eval, each run's metrics.json and the device),
# logs.tar.gz (confusion matrices) and step_rate.txt.
# STREAMS picks the streams (default all four). SPLIT=v1 trains each stream's cross-view twin instead: view 1
# only (data.train_split=train_v1), tested on view 2 (train_v2, 504 clips), view 3 untouched - the score NW-UCLA
# models are chosen by (docs/training.md, "Choosing NW-UCLA models by cross-view validation"); runs and files
# are then named nwucla_ctrgcn_<stream>_v1. STEP_RATE=1 (the default) first times one CTR-GCN training
# step at batch 16 eagerly and replayed from a CUDA graph,
# with an eager/graphed parity check, into step_rate.txt (~30 s). EVAL=0 skips the `actionpose eval` runs
# there, for when the models are to be evaluated elsewhere. Extra arguments are config overrides for all
# four runs (a CPU dry run: STEP_RATE=0 MINUTES=0.3 EVAL=0 ... trainer.accelerator=cpu trainer.cuda_graphs=false
# model.name=ctrgcn_small optim.epochs=50 data.repeat=1 trainer.limit_train_batches=3 data.num_workers=0).
set -euo pipefail
DATA=${1:?usage: gpu_4streams.sh DATA.pkl [override ...]}
shift
OUT=${OUT:-runs/gpu_nwucla_out}
RUNS=${RUNS:-runs/gpu_nwucla}
MINUTES=${MINUTES:-7}
EVAL=${EVAL:-1}
STEP_RATE=${STEP_RATE:-1}
STREAMS=${STREAMS:-joint bone joint_motion bone_motion}
SPLIT=${SPLIT:-full}
case "$SPLIT" in
  full) split_args=(); suffix=""; eval_split=test ;;
  v1) split_args=(data.train_split=train_v1 data.test_split=train_v2); suffix=_v1; eval_split=train_v2 ;;
  *) echo "error: SPLIT=$SPLIT: allowed values: full, v1" >&2; exit 2 ;;
esac
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$RUNS"
(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi") > "$RUNS/device.txt"

if [ "$STEP_RATE" = 1 ]; then
  python3 benchmarks/train_step_rate.py --models ctrgcn:16 --cuda-graphs --steps 20 > "$OUT/step_rate.txt" 2>&1 || true
fi

(while sleep 60; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null \
   | sed "s/^/[gpu] /" >> "$OUT/train.log"; done) &
monitor=$!
pids=""
for s in $STREAMS; do
  python3 -m actionpose train --config configs/nwucla/ctrgcn_joint_gpu.yaml "data.path=$DATA" \
    "preprocess.stream=$s" "name=nwucla_ctrgcn_$s$suffix" "output.dir=$RUNS/nwucla_ctrgcn_$s$suffix" \
    "trainer.max_time=$MINUTES" trainer.progress_bar=false mlflow.enabled=false ${split_args[@]+"${split_args[@]}"} \
    "$@" 2>&1 | sed -u "s/^/[$s$suffix] /" >> "$OUT/train.log" &
  pids="$pids $!"
done
failed=0
for p in $pids; do wait "$p" || failed=$((failed + 1)); done
kill "$monitor" 2>/dev/null || true

models=""
weights=""
for s in $STREAMS; do
  onnx="$RUNS/nwucla_ctrgcn_$s$suffix/nwucla_ctrgcn_$s$suffix.onnx"
  if [ -f "$onnx" ] && [ "$EVAL" = 1 ]; then
    python3 -m actionpose eval --model "$onnx" --data "$DATA" --split "$eval_split" --json --out "$RUNS/eval_$s" \
      > "$RUNS/eval_$s.json" 2> "$RUNS/eval_$s.err" || true
  fi
  if [ -f "$onnx" ]; then
    cp "$onnx" "$OUT/"
    models="$models, $(basename "$onnx")"
    case "$s" in joint|bone) w=0.6 ;; *) w=0.4 ;; esac  # CTR-GCN's ensemble.py weights for its four streams
    weights="$weights, $w"
  fi
done
if [ -n "$models" ] && [ "$EVAL" = 1 ]; then
  printf 'models: [%s]\nweights: [%s]\n' "${models#, }" "${weights#, }" > "$RUNS/ensemble.yaml"
  cp "$RUNS"/nwucla_ctrgcn_*/nwucla_ctrgcn_*.onnx "$RUNS/" 2>/dev/null || true
  python3 -m actionpose eval --model "$RUNS/ensemble.yaml" --data "$DATA" --split "$eval_split" --json --out "$RUNS/eval_ensemble" \
    > "$RUNS/eval_ensemble.json" 2> "$RUNS/eval_ensemble.err" || true
fi

python3 - "$RUNS" "$OUT/results.json" "$failed" <<'PY'
import json, sys
from pathlib import Path
runs, out, failed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
res = {"device": (runs / "device.txt").read_text().strip(), "failed_runs": failed, "eval": {}, "metrics": {}}
for f in sorted(runs.glob("eval_*.json")):
    try:
        res["eval"][f.stem[5:]] = json.loads(f.read_text())
    except ValueError:
        res["eval"][f.stem[5:]] = {"error": (runs / f"{f.stem}.err").read_text()[-500:]}
for f in sorted(runs.glob("nwucla_ctrgcn_*/metrics.json")):
    res["metrics"][f.parent.name] = json.loads(f.read_text())
Path(out).write_text(json.dumps(res, indent=1))
print(json.dumps(res["eval"], indent=1))
PY
tar czf "$OUT/logs.tar.gz" -C "$RUNS" $(cd "$RUNS" && ls -d eval_*.err device.txt eval_*/confusion.png nwucla_ctrgcn_*/confusion.png 2>/dev/null)
exit "$failed"
