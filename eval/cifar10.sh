#!/usr/bin/env bash
# CIFAR-10 frozen-feature evaluation of one checkpoint: the standard kNN (k=20, T=0.07 as in
# InstDisc/DINO and k=200, T=0.1 as in solo-learn, the whole sweep from one search) and a linear-probe
# grid (10 LRs x 3 WDs, one pass over cached features), then the report PNG.
#
#   CKPT=runs/simclr_cifar10/last.ckpt OUT=runs/eval/simclr_cifar10 PYTHONPATH=. bash eval/cifar10.sh
#
# Shards: `sslkit data shard --source cifar10 ...` (see docs/benchmarks.md, "Data"); override with
# TRAIN_SHARDS / TEST_SHARDS. Normalisation: CIFAR-10 channel statistics, as the pretraining views use.
set -euo pipefail
SSLKIT=${SSLKIT:-python -m sslkit.cli}  # or `sslkit` once the package is installed
EVAL="$SSLKIT eval ${THREADS:+--threads $THREADS}"  # THREADS=1 helps on a busy shared CPU
: "${CKPT:?set CKPT to an sslkit checkpoint}"
OUT=${OUT:-runs/eval/$(basename "${CKPT%.*}")}
TRAIN_SHARDS=${TRAIN_SHARDS:-/tmp/shards/cifar10-train}
TEST_SHARDS=${TEST_SHARDS:-/tmp/shards/cifar10-test}
POOL=${POOL:-pooled}
REPORT=${REPORT:-$OUT/report.png}

SOURCE=(--ckpt "$CKPT" --train-shards "$TRAIN_SHARDS" --val-shards "$TEST_SHARDS"
        --features "$OUT/features" --pool "$POOL" --input-size 32
        --mean 0.4914 0.4822 0.4465 --std 0.2470 0.2435 0.2616
        --batch-size 500 --num-workers "${NUM_WORKERS:-2}")

$EVAL extract "${SOURCE[@]}"
$EVAL knn "${SOURCE[@]}" --k 10 20 100 200 --t 0.07 0.1 --out "$OUT/knn.json"
$EVAL probe "${SOURCE[@]}" --epochs "${PROBE_EPOCHS:-50}" --out "$OUT/probe.json"
LOGS=()
[[ -n "${LOGS_CSV:-}" ]] && LOGS=(--logs "$LOGS_CSV")
$EVAL report --results "$OUT/knn.json" "$OUT/probe.json" "${LOGS[@]}" --out "$REPORT"
