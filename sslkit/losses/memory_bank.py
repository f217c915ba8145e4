"""A feature queue shared by every method that remembers past batches (NNCLR's support set, SwAV's queue).

Built on lightly's ``MemoryBankModule`` (its ring buffer and cross-rank gather), with three changes
that each method here needs:

- the bank and its pointer are **persistent buffers**: lightly registers them with
  ``persistent=False``, so a resumed run would restart from a random bank;
- it counts how many slots hold real features (:meth:`FeatureQueue.features` returns only those):
  lightly's bank starts as random unit vectors, which become NNCLR neighbours and SwAV Sinkhorn
  columns until the queue has cycled once (SwAV's official code keeps an all-zero queue and uses it
  only once full, see :meth:`FeatureQueue.is_full`);
- a batch that wraps around the end is written whole (lightly drops the tail past the end).

Features are gathered from every rank before they are enqueued (``gather_distributed=True``, the
default), so every rank holds the same queue and its content does not depend on the world size.
"""

from __future__ import annotations

import torch
from lightly.models.modules.memory_bank import MemoryBankModule
from torch import Tensor

from sslkit.distributed.gather import gather_cat


class FeatureQueue(MemoryBankModule):
    """FIFO of the last ``size`` feature vectors (``(size, dim)``), checkpointed with the module.

    Args:
        size: Number of features kept.
        dim: Feature width.
        gather_distributed: Enqueue every rank's features (keeps the queues identical across ranks).
    """

    def __init__(self, size: int, dim: int, gather_distributed: bool = True) -> None:
        if size < 1 or dim < 1:
            raise ValueError(f"FeatureQueue needs size >= 1 and dim >= 1, got size={size}, dim={dim}")
        super().__init__(size=(size, dim), gather_distributed=gather_distributed, feature_dim_first=False)
        # Re-registered as persistent so checkpoints (and resumed runs) carry the queue.
        bank, ptr = self.bank, self.bank_ptr
        del self.bank, self.bank_ptr
        self.register_buffer("bank", torch.zeros_like(bank))
        self.register_buffer("bank_ptr", torch.zeros_like(ptr))
        self.register_buffer("num_filled", torch.zeros(1, dtype=torch.long))

    def is_full(self) -> bool:
        """Whether every slot holds an enqueued feature."""
        return int(self.num_filled) >= self.size[0]

    def features(self) -> Tensor:
        """The enqueued features, ``(num_filled, dim)``, detached (oldest slots first once full)."""
        return self.bank[: int(self.num_filled)].detach().clone()

    @torch.no_grad()
    def enqueue(self, batch: Tensor) -> None:
        """Append ``batch`` ``(B, dim)`` (this rank's; all ranks' when gathering), evicting the oldest."""
        if batch.ndim != 2 or batch.shape[1] != self.size[1]:
            raise ValueError(f"FeatureQueue(dim={self.size[1]}): expected (B, {self.size[1]}), got {tuple(batch.shape)}")
        self._dequeue_and_enqueue(batch)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, batch: Tensor) -> None:
        if self.gather_distributed:
            batch = gather_cat(batch.detach())
        batch = batch.detach()[-self.size[0]:].to(self.bank.dtype)  # a batch larger than the queue keeps its last rows
        n, ptr = batch.shape[0], int(self.bank_ptr)
        idx = (torch.arange(n, device=self.bank.device) + ptr) % self.size[0]
        self.bank[idx] = batch.to(self.bank.device)
        self.bank_ptr[0] = (ptr + n) % self.size[0]
        self.num_filled[0] = min(int(self.num_filled) + n, self.size[0])


def nearest_neighbours(z: Tensor, support: Tensor) -> Tensor:
    """NNCLR's support-set lookup: for each row of ``z`` the ``support`` row of highest cosine similarity.

    The same lookup as lightly's ``NNMemoryBankModule`` (Dwibedi et al., 2021, Eq. 2), as a function
    of an explicit support set.

    Args:
        z: Queries ``(B, D)``.
        support: Candidates ``(M, D)``, ``M >= 1``.

    Returns:
        ``(B, D)`` rows of ``support`` (no gradient flows into them).
    """
    if z.ndim != 2 or support.ndim != 2 or z.shape[1] != support.shape[1] or support.shape[0] == 0:
        raise ValueError(f"nearest_neighbours: expected z (B, D) and support (M >= 1, D), got {tuple(z.shape)} "
                         f"and {tuple(support.shape)}")
    sim = torch.nn.functional.normalize(z.detach(), dim=1) @ torch.nn.functional.normalize(support, dim=1).T
    return support.detach().index_select(0, sim.argmax(dim=1)).to(z.dtype)
