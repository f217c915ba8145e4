"""``ShardLoader``: the DataLoader that drives a :class:`~sslkit.data.stream.ShardStream`.

It tells the workers the epoch (and, through the stream, the phases already run in it), counts the
batches handed out for the resume state, and owns the worker processes' lifetime: workers ignore the
stop signals sent to the process group (the main process turns them into a checkpoint at the next
step boundary), so this module also makes sure they are shut down on a worker error and at exit.
"""

from __future__ import annotations

import atexit
import signal
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader

from sslkit.data.stream import ShardStream


class ShardLoader(DataLoader):
    """DataLoader for a :class:`ShardStream`: publishes the epoch, counts consumed batches.

    Args:
        stream: the dataset; it emits whole batches, so this loader does not batch.
        num_workers: DataLoader worker processes per rank.
        pin_memory: pin batches in the main process.
        persistent_workers: keep workers alive across epochs.
        prefetch_factor: batches prefetched per worker (``None`` for the default).
        epoch_fn: returns the epoch to run when iteration starts (the Lightning trainer's
            ``current_epoch``); by default the stream's own counter.
        state_fn: what :meth:`state_dict` returns; by default the stream's state, which counts the
            batches this loader handed out. Lightning prefetches a batch, so its DataModule passes
            its own count of batches actually trained on.
        length_fn: called with the number of batches of each epoch as it starts (it changes when an
            epoch is resumed under another allocation).

    ``state_dict``/``load_state_dict`` make the loader resumable in Lightning's sense (it stores them
    in the fit loop's checkpoint state) and in torchdata's ``StatefulDataLoader`` sense.
    """

    def __init__(
        self,
        stream: ShardStream,
        *,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        epoch_fn: Callable[[], int] | None = None,
        state_fn: Callable[[], dict[str, int]] | None = None,
        length_fn: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(
            stream,
            batch_size=None,
            collate_fn=_identity,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers and num_workers > 0,
            prefetch_factor=prefetch_factor if num_workers > 0 else None,
            worker_init_fn=_ignore_stop_signals,
        )
        stream.num_workers = max(num_workers, 1)
        self.epoch_fn = epoch_fn
        self.state_fn = state_fn
        self.length_fn = length_fn

    def state_dict(self) -> dict[str, int]:
        return self.state_fn() if self.state_fn is not None else self.dataset.state_dict()

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if state_dict:
            self.dataset.load_state_dict(state_dict)

    def __iter__(self) -> Iterator[Any]:
        stream: ShardStream = self.dataset  # type: ignore[assignment]
        stream.start_epoch(self.epoch_fn() if self.epoch_fn is not None else stream._next_epoch)
        if self.length_fn is not None:
            self.length_fn(len(stream))
        return self._counted(super().__iter__(), stream)

    @staticmethod
    def _counted(batches: Iterator[Any], stream: ShardStream) -> Iterator[Any]:
        if hasattr(batches, "_shutdown_workers"):
            _LIVE_ITERATORS.add(batches)
        try:
            for batch in batches:
                stream.batches_consumed += 1
                yield batch
        except Exception:
            # An error from a worker (or reading): stop the workers now. They ignore SIGTERM (see
            # _ignore_stop_signals), so if the failed iterator were left to the exit-time clean-up
            # (kept alive by the traceback) multiprocessing's terminate + join would wait forever.
            shutdown = getattr(batches, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            raise
        stream.set_epoch(stream.epoch + 1)


def _identity(batch: Any) -> Any:
    return batch


_LIVE_ITERATORS: weakref.WeakSet = weakref.WeakSet()  # multi-process iterators of ShardLoaders


@atexit.register
def _shutdown_live_workers() -> None:
    """At exit, stop the workers of iterators still alive (a traceback or a global can hold one).

    Registered after multiprocessing's own exit handler, so it runs before it (atexit is last in,
    first out): that handler terminates daemon processes and joins them, and ours ignore SIGTERM.
    """
    for iterator in list(_LIVE_ITERATORS):
        iterator._shutdown_workers()


def _ignore_stop_signals(worker_id: int) -> None:
    """Workers ignore Ctrl-C, SIGTERM and SIGUSR1 sent to the process group: the main process turns them
    into a checkpoint at the next step boundary and needs its workers until then (they exit with it)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)

