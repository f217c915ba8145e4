"""Mask samplers for masked objectives, run by collators inside dataloader workers.

Every collator seeds an explicit ``torch.Generator`` per batch (:mod:`sslkit.masking.seeding`) and
adds patch indices to the batch: ``masks_context`` (what the encoder sees, where it sees a subset)
and ``masks_target`` (what the loss scores).
"""

from sslkit.masking.block_masks import IBOTMaskCollator, beit_block_mask, ibot_masks
from sslkit.masking.multiblock import MultiBlockMaskCollator, sample_block_size, sample_multiblock_masks
from sslkit.masking.random_masks import RandomMaskCollator, SimMIMMaskCollator, random_patch_masks, simmim_patch_masks
from sslkit.masking.seeding import batch_generator, batch_seed, worker_id

__all__ = [
    "IBOTMaskCollator",
    "MultiBlockMaskCollator",
    "RandomMaskCollator",
    "SimMIMMaskCollator",
    "batch_generator",
    "batch_seed",
    "beit_block_mask",
    "ibot_masks",
    "random_patch_masks",
    "sample_block_size",
    "sample_multiblock_masks",
    "simmim_patch_masks",
    "worker_id",
]
