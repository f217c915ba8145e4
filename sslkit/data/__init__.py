"""WebDataset shards: sources and writer (``sslkit data shard``), the streaming reader, DataModules.

Contracts (sample, manifest, batch formats) are in ``docs/design.md``.
"""

from sslkit.data.collate import collate_samples, pil_to_tensor, single_view
from sslkit.data.datamodule import ShardDataModule, build_eval_loader
from sslkit.data.ingest import write_shards
from sslkit.data.loader import ShardLoader
from sslkit.data.manifest import ShardInfo, ShardSet, read_manifest, resolve_shards
from sslkit.data.sources import ImageSource, open_source
from sslkit.data.stream import COUNTER_NAMES, ShardStream
from sslkit.data.writer import ShardWriter

__all__ = [
    "COUNTER_NAMES",
    "ImageSource",
    "ShardDataModule",
    "ShardInfo",
    "ShardLoader",
    "ShardSet",
    "ShardStream",
    "ShardWriter",
    "build_eval_loader",
    "collate_samples",
    "open_source",
    "pil_to_tensor",
    "read_manifest",
    "resolve_shards",
    "single_view",
    "write_shards",
]
