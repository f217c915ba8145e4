#!/usr/bin/env bash
# CIFAR-10 (python batches) -> PNG shards: OUT/train (50,000) and OUT/test (10,000).
# Usage: data/cifar10.sh ROOT [OUT]   ROOT holds cifar-10-batches-py/ (e.g. ../shared/data/cifar10)
set -euo pipefail
root=${1:?usage: data/cifar10.sh ROOT [OUT]}
out=${2:-shards/cifar10}
for split in train test; do
  sslkit data shard --source cifar10 --root "$root" --split "$split" --out "$out/$split"
done
