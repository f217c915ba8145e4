"""``sslkit data shard``'s pipeline: shuffle the source, cut it into shard tasks, write them in parallel.

- **Shuffled on write** (default): a listed source is permuted as a whole with ``seed``; a streamed
  one (flat folder listings, Parquet/Arrow exports) is shuffled within a window of
  ``shuffle_window`` samples, so writing starts before the listing ends (a window of 100,000 paths
  mixes a listing that is in no particular order, as ``os.scandir`` gives it; a listing sorted by
  class needs ``shuffle_window`` above the dataset size). The seed and window go in the manifest.
- **Parallel**: the ``i``-th run of ``max_samples_per_shard`` samples is task ``i``; ``workers``
  processes read, validate and write tasks (:func:`sslkit.data.shard_parts.run_task`).
- **Several nodes**: node ``r`` of ``N`` writes tasks ``i`` with ``i % N == r``; each node lists and
  shuffles the same way (same source, same seed), and the last node to finish writes the manifest.
- **Resumable**: a re-run skips tasks already written and verified (see :mod:`sslkit.data.shard_parts`).
"""

from __future__ import annotations

import logging
import multiprocessing
import random
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sslkit.data.encoding import EncodeOptions
from sslkit.data.shard_parts import SKIPPED_NAME, ShardTask, TaskConfig, merge_parts, run_task
from sslkit.data.sources import ImageSource, Sample
from sslkit.errors import UserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestReport:
    """What one ``write_shards`` call did (on this node)."""

    manifest: dict[str, Any] | None  # None while other nodes' tasks are missing
    num_written: int
    num_skipped: int
    num_tasks: int
    num_resumed: int
    seconds: float

    def summary(self, out_dir: str | Path) -> str:
        rate = self.num_written / self.seconds if self.seconds > 0 else 0.0
        line = f"{self.num_written} samples written in {self.seconds:.1f} s ({rate:.0f} img/s)"
        if self.num_resumed:
            line += f", {self.num_resumed} shards kept from an earlier run"
        line += f", {self.num_skipped} skipped"
        if self.num_skipped:
            line += f" (listed in {Path(out_dir) / SKIPPED_NAME})"
        if self.manifest is None:
            return line + "; other nodes' shards are missing: the last node to finish writes manifest.json"
        megabytes = sum(s["num_bytes"] for s in self.manifest["shards"]) / 1e6
        return line + (
            f"; {self.manifest['num_samples']} samples in {len(self.manifest['shards'])} shards,"
            f" {megabytes:.1f} MB -> {out_dir}"
        )


def write_shards(
    source: ImageSource,
    out_dir: str | Path,
    *,
    prefix: str | None = None,
    image_format: str = "png",
    quality: int = 95,
    max_samples_per_shard: int = 1000,
    max_shard_bytes: int | None = None,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any] | None:
    """Write ``source`` to shards in ``out_dir``; returns the manifest (see :func:`ingest`)."""
    return ingest(
        source, out_dir, prefix=prefix, image_format=image_format, quality=quality,
        max_samples_per_shard=max_samples_per_shard, max_shard_bytes=max_shard_bytes, progress=progress,
        **options,
    ).manifest


def ingest(
    source: ImageSource,
    out_dir: str | Path,
    *,
    prefix: str | None = None,
    image_format: str = "png",
    quality: int = 95,
    max_size: int | None = None,
    verify: str = "fast",
    passthrough: bool = True,
    max_samples_per_shard: int = 1000,
    max_shard_bytes: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    shuffle_window: int | None = None,
    workers: int = 1,
    num_nodes: int = 1,
    node_rank: int = 0,
    progress: bool = True,
) -> IngestReport:
    """Write every sample of ``source`` to shards in ``out_dir`` (see the module docstring).

    Args:
        source: the samples; ``prefix`` defaults to its split (``cifar10:train`` -> ``train``).
        image_format, quality, max_size, verify, passthrough: how samples are encoded
            (:class:`sslkit.data.encoding.EncodeOptions`).
        max_samples_per_shard: samples per task (one shard unless ``max_shard_bytes`` splits it).
        shuffle, seed, shuffle_window: the write order (``shuffle_window`` overrides the source's).
        workers: processes writing tasks (1: in this process).
        num_nodes, node_rank: this node's share of the tasks.
        progress: show a tqdm bar (img/s, ETA).

    Returns:
        The report; its ``manifest`` is None until every node's tasks are written.
    """
    if max_samples_per_shard < 1 or workers < 1:
        raise UserError("--max-samples-per-shard and --workers must be >= 1")
    if not 0 <= node_rank < num_nodes:
        raise UserError(f"--node-rank {node_rank} must be in [0, --num-nodes {num_nodes})")
    config = TaskConfig(
        Path(out_dir), prefix or source.name.rsplit(":", 1)[-1],
        EncodeOptions(image_format=image_format, quality=quality, max_size=max_size, verify=verify,
                      passthrough=passthrough),
        max_shard_bytes,
    )
    config.out_dir.mkdir(parents=True, exist_ok=True)
    window = shuffle_window if shuffle_window is not None else source.shuffle_window
    samples = shuffled(source, seed=seed, window=window) if shuffle else iter(source)
    planned = _Counted(plan_tasks(samples, max_samples_per_shard))
    mine = (t for t in planned if t.index % num_nodes == node_rank)
    total = -(-source.num_samples // num_nodes) if source.num_samples is not None else None
    start = time.perf_counter()
    with tqdm(total=total, desc=source.name, unit="img", disable=not progress, smoothing=0.05) as bar:
        records = [_progress(r, bar) for r in _run(mine, config, workers)]
    meta = {"source": source.name, "class_names": source.class_names,
            "shuffle": {"seed": seed, "window": window} if shuffle else None}
    manifest = merge_parts(config, planned.count, meta)
    return IngestReport(
        manifest,
        sum(s["num_samples"] for r in records for s in r["shards"]),
        sum(len(r["skipped"]) for r in records),
        len(records), sum(r["resumed"] for r in records), time.perf_counter() - start,
    )


def shuffled(source: ImageSource, *, seed: int, window: int | None) -> Iterator[Sample]:
    """The source's samples in a seeded order: one permutation, or shuffled within ``window``."""
    if window is None:
        samples = list(source)
        order = np.random.default_rng(seed).permutation(len(samples))
        return (samples[i] for i in order)
    return window_shuffle(iter(source), window, random.Random(seed))


def window_shuffle(samples: Iterator[Sample], window: int, rng: random.Random) -> Iterator[Sample]:
    """Emit a random one of the last ``window`` samples read, refilling its place (a streaming shuffle)."""
    held: list[Sample] = list(islice(samples, window))
    for sample in samples:
        i = rng.randrange(len(held))
        yield held[i]
        held[i] = sample
    rng.shuffle(held)
    yield from held


def plan_tasks(samples: Iterator[Sample], per_task: int) -> Iterator[ShardTask]:
    """Cut the sample sequence into tasks of ``per_task`` samples."""
    for index in range(1 << 62):
        chunk = list(islice(samples, per_task))
        if not chunk:
            return
        yield ShardTask.of(index, chunk)


class _Counted:
    """Iterate tasks, counting them: every node walks the whole plan, so this is the plan's size."""

    def __init__(self, tasks: Iterator[ShardTask]) -> None:
        self.tasks, self.count = tasks, 0

    def __iter__(self) -> Iterator[ShardTask]:
        for task in self.tasks:
            self.count = task.index + 1
            yield task


def _run(tasks: Iterator[ShardTask], config: TaskConfig, workers: int) -> Iterator[dict[str, Any]]:
    """Run tasks in this process (``workers == 1``) or a process pool, at most 2 per worker in flight."""
    if workers == 1:
        for task in tasks:
            yield run_task(task, config)
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: set[Future] = set()
        for task in tasks:
            pending.add(pool.submit(run_task, task, config))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        for future in pending:
            yield future.result()


def _progress(record: dict[str, Any], bar: tqdm) -> dict[str, Any]:
    """Advance the bar by the task's inputs; name each skipped input once in the log."""
    bar.update(record["num_inputs"])
    for item in record["skipped"]:
        logger.warning("skipped %s: %s", item["path"], item["reason"])
    return record
