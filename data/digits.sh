#!/usr/bin/env bash
# scikit-learn's bundled 8x8 digits, upsampled to 32x32 (nearest), stratified 80/20 split (seed 0):
# OUT/train (1,437) and OUT/test (360). Needs no download; handy for smoke tests.
# Usage: data/digits.sh [OUT]
set -euo pipefail
out=${1:-shards/digits}
for split in train test; do
  sslkit data shard --source digits --split "$split" --size 32 --out "$out/$split"
done
