#!/usr/bin/env bash
# ImageNet-1k as distributed -> WebDataset shards, original JPEG bytes kept (passthrough), shuffled on
# write: OUT/train (1,281,167 samples, ~1,282 shards of 1,000) and OUT/val (50,000), then verified.
# ROOT holds train/<synset>/*.JPEG and val/ (flat, with LOC_val_solution.csv or val_labels.txt beside
# it, or already sorted into synset folders); the Kaggle download's ILSVRC/Data/CLS-LOC layout works too.
# Usage: data/imagenet.sh ROOT [OUT] [extra `sslkit data shard` options, e.g. --workers 16 --max-size 512]
# Several nodes: run it as a SLURM job array (sbatch --array=0-7 ...); each task writes its share of
# the shards (SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT) and the last one writes manifest.json.
# A killed run resumes: run the same command again; finished, verified shards are kept.
set -euo pipefail
root=${1:?usage: data/imagenet.sh ROOT [OUT] [options]}
out=${2:-shards/imagenet1k}
shift $(( $# >= 2 ? 2 : 1 ))
for split in train val; do
  sslkit data shard --source imagenet --root "$root" --split "$split" --out "$out/$split" "$@"
  if [[ -f "$out/$split/manifest.json" ]]; then
    sslkit data verify "$out/$split"
  fi
done
