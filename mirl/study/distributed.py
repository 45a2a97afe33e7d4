"""Several processes under ``torchrun``: this process's place in the run, joining the process
group, and one mask for every rank. Without ``torchrun`` everything here is a no-op.

Example:
    >>> dist = init_distributed()  # started without torchrun: one process
    >>> dist.rank, dist.world_size, dist.is_main
    (0, 1, True)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch

from mirl.errors import MirlError
from mirl.pruning.mask import Mask


@dataclass
class DistInfo:
    """This process's place in a (possibly single-process) run.

    Example:
        >>> DistInfo(rank=1, world_size=2).is_main
        False
    """

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in a single process)."""
        if self.enabled:
            torch.distributed.barrier()


def init_distributed() -> DistInfo:
    """Join the process group when started by ``torchrun`` (nccl on CUDA, gloo on CPU).

    Example:
        >>> init_distributed()  # without torchrun (WORLD_SIZE unset): one process
        DistInfo(rank=0, world_size=1)
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
    rank = torch.distributed.get_rank()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    return DistInfo(rank=rank, world_size=world)


def broadcast_mask(mask: Mask, dist: DistInfo, device: torch.device) -> Mask:
    """Every rank gets rank 0's mask (they compute the same one; this makes it a guarantee).

    Example:
        >>> broadcast_mask({"w": torch.ones(2, dtype=torch.bool)}, DistInfo(), torch.device("cpu"))["w"].tolist()
        [True, True]
    """
    if not dist.enabled:
        return mask
    out = {}
    for name in sorted(mask):
        t = mask[name].to(device=device, dtype=torch.uint8)
        torch.distributed.broadcast(t, src=0)
        out[name] = t.bool().cpu()
    _assert_same_across_ranks(out, device)
    return {n: out[n] for n in mask}


def _assert_same_across_ranks(mask: Mask, device: torch.device) -> None:
    """Fail loudly if any rank holds a different mask (a SHA-256 of every tensor, compared by min/max reduce)."""
    hasher = hashlib.sha256()
    for name, keep in sorted(mask.items()):
        hasher.update(name.encode())
        hasher.update(keep.detach().to("cpu", torch.uint8).contiguous().numpy().tobytes())
    digest = int.from_bytes(hasher.digest()[:7], "little")  # 56 bits: fits an int64 tensor
    lo = torch.tensor([digest], dtype=torch.int64, device=device)
    hi = lo.clone()
    torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
    torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
    if int(lo) != int(hi):
        raise MirlError("ranks hold different masks after the broadcast; this is a bug, please report it")
