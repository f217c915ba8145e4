#!/usr/bin/env bash
# MNIST (idx .gz files) -> PNG shards (grayscale; the reader converts to RGB): OUT/train, OUT/test.
# Usage: data/mnist.sh ROOT [OUT]   ROOT holds the four *-idx?-ubyte.gz files (e.g. ../shared/data/mnist)
set -euo pipefail
root=${1:?usage: data/mnist.sh ROOT [OUT]}
out=${2:-shards/mnist}
for split in train test; do
  sslkit data shard --source mnist --root "$root" --split "$split" --out "$out/$split"
done
