#!/usr/bin/env bash
# CIFAR-10 frozen-feature evaluation of one checkpoint: the standard kNN (k=20, T=0.07 as in
# InstDisc/DINO and k=200, T=0.1 as in solo-learn, the whole sweep from one search) and a linear-probe
# grid (10 LRs x 3 WDs, one pass over cached features), then the report PNG.
#
#   CKPT=runs/simclr/vit_tiny_cifar10/<run>/checkpoints/last.ckpt bash eval/cifar10.sh
#
# Shards: `sslkit data shard --source cifar10 ...` into shards/cifar10/{train,test} (README, "Write
# shards"); override with TRAIN_SHARDS / TEST_SHARDS. Preprocessing (32 px, CIFAR-10 mean/std) comes
# from the checkpoint's run record, as in `sslkit publish`. Results go next to the run, one folder per
# checkpoint file and hash: <run>/eval/<ckpt name>-<sha256[:8]>/ (override with OUT).
set -euo pipefail
SSLKIT=${SSLKIT:-sslkit}
EVAL="$SSLKIT eval ${THREADS:+--threads $THREADS}"  # THREADS=1 helps on a busy shared CPU
: "${CKPT:?set CKPT to an sslkit checkpoint}"
RUN=$(dirname "$(dirname "$CKPT")")
OUT=${OUT:-$RUN/eval/$(basename "${CKPT%.*}")-$(sha256sum "$CKPT" | cut -c1-8)}
TRAIN_SHARDS=${TRAIN_SHARDS:-shards/cifar10/train}
TEST_SHARDS=${TEST_SHARDS:-shards/cifar10/test}
POOL=${POOL:-pooled}
REPORT=${REPORT:-$OUT/report.png}

SOURCE=(--ckpt "$CKPT" --train-shards "$TRAIN_SHARDS" --val-shards "$TEST_SHARDS"
        --features "$OUT/features" --pool "$POOL"
        --batch-size 500 --num-workers "${NUM_WORKERS:-2}")

$EVAL extract "${SOURCE[@]}"
$EVAL knn "${SOURCE[@]}" --k 10 20 100 200 --t 0.07 0.1 --out "$OUT/knn.json"
$EVAL probe "${SOURCE[@]}" --epochs "${PROBE_EPOCHS:-50}" --out "$OUT/probe.json"
LOGS=()
LOGS_CSV=${LOGS_CSV:-$RUN/metrics.csv}
[[ -f "$LOGS_CSV" ]] && LOGS=(--logs "$LOGS_CSV")
$EVAL report --results "$OUT/knn.json" "$OUT/probe.json" "${LOGS[@]}" --out "$REPORT"
