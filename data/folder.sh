#!/usr/bin/env bash
# Your own images -> WebDataset shards: FOLDER/<class>/... (labelled) or a flat folder of any size
# (unlabeled; the listing streams, writing starts at once). Original JPEG/PNG/WebP bytes are kept,
# the write order is shuffled (seeded), bad files are skipped and listed in OUT/skipped.jsonl.
# Usage: data/folder.sh FOLDER OUT [extra `sslkit data shard` options, e.g. --max-size 512]
set -euo pipefail
folder=${1:?usage: data/folder.sh FOLDER OUT [options]}
out=${2:?usage: data/folder.sh FOLDER OUT [options]}
shift 2
sslkit data shard --source folder --root "$folder" --split "" --out "$out" "$@"
sslkit data verify "$out"
sslkit data inspect "$out"
