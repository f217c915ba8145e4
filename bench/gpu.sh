#!/usr/bin/env bash
# The one prepared GPU check (issue #17), <= 8 minutes on one GPU; writes OUT/gpu.json and prints a table.
#
#   bench/gpu.sh [--dry-run] [--out DIR]     (OUT defaults to $OUT, else bench-gpu-out/)
#
# Stages, each under its own time limit (a stage that fails or times out is recorded, the rest still run):
#   env       torch/CUDA/device, and that flash SDPA runs for ViT-S/16 shapes in bf16
#   step      bf16 training-step img/s and MFU, ViT-S/16 and ViT-B/16 at 224 px, eager and compiled
#             (bench/backbone.py: timm SDPA attention, i.e. flash on this GPU)
#   data      device (BatchViews) vs worker (lightly) augmentation at 224 px, end to end (bench/data.py;
#             stable-pretraining reports 2.55x with kornia on an H200)
#   zero2 / zero3  20 DeepSpeed steps of an EMA objective (MoCo v3 ViT-S/16 ImageNet recipe, one GPU)
#             on synthetic JPEG shards, then the ZeRO checkpoint converted to a plain fp32 one
#   pytest    pytest -m gpu
# --dry-run runs every stage in a CPU-sized form (seconds): imports, recipe composition, test collection.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
OUT_DIR="${OUT:-bench-gpu-out}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT_DIR="$2"; shift ;;
    *) echo "bench/gpu.sh: unknown argument $1 (use --dry-run, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
PY="${PYTHON:-python}"
GPU_TESTS=$(grep -rl "mark.gpu" tests --include="test_*.py" | sort)  # collect only the files with GPU tests
: > "$OUT_DIR/stages.tsv"

stage() {  # stage NAME LIMIT_SECONDS COMMAND...: run, log, record "name rc seconds"
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
  local rc=$?
  echo -e "$name\t$rc\t$((SECONDS - t0))" >> "$OUT_DIR/stages.tsv"
  tail -n 3 "$OUT_DIR/$name.log"
}

ZERO_RECIPE=recipes/mocov3/vit_small_imagenet1k.yaml
zero_args() {  # zero_args STAGE SHARDS: sslkit pretrain arguments of the 20-step ZeRO run
  echo -c "$ZERO_RECIPE" -c "recipes/_base/trainer/deepspeed_zero$1.yaml" --resume never \
    --trainer.devices=1 --trainer.num_nodes=1 --trainer.max_steps=20 --trainer.log_every_n_steps=5 \
    --data.init_args.train_shards="$2" --data.init_args.val_shards=null \
    --data.init_args.batch_size_per_device=64 --data.init_args.num_workers=8
}

if [ "$DRY" = 1 ]; then
  stage env 60 "$PY" bench/gpu_report.py --env --dry-run
  stage step 60 "$PY" bench/backbone.py --help
  stage data 60 "$PY" bench/data.py --help
  for z in 2 3; do
    # LightningCLI validates the composed recipe (every key typed) and prints it; nothing is instantiated.
    stage "zero$z" 120 env SSLKIT_RUN_DIR="$OUT_DIR/zero$z" "$PY" -m sslkit.cli pretrain \
      $(zero_args "$z" "$OUT_DIR/shards") --print_config
  done
  stage pytest 120 "$PY" -m pytest -m gpu --collect-only -q -p no:cacheprovider $GPU_TESTS
else
  SHARDS="$OUT_DIR/shards"
  "$PY" -c "import sys; sys.path.insert(0, 'bench'); from pathlib import Path; from data import synthetic_jpeg_shards; \
synthetic_jpeg_shards(Path(sys.argv[1]), 4096, (500, 375))" "$SHARDS" > "$OUT_DIR/shards.log" 2>&1
  stage env 15 "$PY" bench/gpu_report.py --env
  stage step 150 "$PY" bench/backbone.py --device cuda --repeats 3 --compile --skip varlen ijepa
  stage data 90 "$PY" bench/data.py --device cuda --shards "$SHARDS" --repeats 2 --json "$OUT_DIR/data.json"
  for z in 2 3; do
    stage "zero$z" 60 env SSLKIT_RUN_DIR="$OUT_DIR/zero$z" "$PY" -m sslkit.cli pretrain $(zero_args "$z" "$SHARDS")
    stage "zero${z}_convert" 10 "$PY" -m sslkit.distributed.zero "$OUT_DIR/zero$z/checkpoints/last.ckpt" \
      "$OUT_DIR/zero$z/fp32.ckpt"
  done
  stage pytest 60 "$PY" -m pytest -m gpu -q -p no:cacheprovider $GPU_TESTS
fi
"$PY" bench/gpu_report.py --out "$OUT_DIR" $([ "$DRY" = 1 ] && echo --dry-run)
