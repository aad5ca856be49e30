"""Gather embeddings from every process of a data-parallel run, keeping the gradient path.

With data parallelism (DDP: one process, or "rank", per device) every rank embeds its own slice of
the global batch. A loss with in-batch negatives improves with more negatives, so it may gather
the embeddings of all ranks and score its *local* rows against the *global* batch.

``torch.distributed.all_gather`` returns plain copies, cut off from autograd;
``gather_across_ranks`` wraps it in an autograd function:

- forward: the rows of every rank, concatenated in rank order: (sum of local batches, ...);
- backward: every rank computed a gradient for *our* rows (they were candidates in every rank's
  loss), so those gradients are summed over ranks (one ``all_reduce``) and our slice of the sum
  flows back into our local tensor. Rows of other ranks get their gradient on their own rank.

How the loss scales across ranks (the sentence-transformers semantics, which ours matches): each
rank's loss is the mean over its own local rows, with no multiplication by the world size W. The
gradient that reaches rank r's embeddings is Σ_s ∂L_s/∂x_r (summed by the backward above), and DDP
then *averages* parameter gradients over ranks. The model therefore follows the gradient of
(1/W) Σ_s L_s, which for equal local batches is exactly the loss of one process on the concatenated
batch. Said per rank: a rank's embedding gradient is W times the single-process gradient of its
rows, and the mean of the ranks' loss values is the single-process loss value.

Unlike the reference (which needs equal local batches), ranks may hold different numbers of rows:
the sizes are exchanged first and the rows padded for the transfer. With unequal batches the
averaged objective weights each rank equally, not each row.

Outside a distributed run (no process group) gathering returns the local tensor unchanged, with a
one-time warning, as the reference does.
"""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

logger = logging.getLogger(__name__)
_warned_not_distributed = False


def is_distributed() -> bool:
    """True inside an initialised torch.distributed process group."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank, 0 outside a distributed run."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """The number of processes, 1 outside a distributed run."""
    return dist.get_world_size() if is_distributed() else 1


def _local_batch_sizes(tensor: Tensor) -> list[int]:
    """Number of rows on every rank (one tiny all_gather), checking the other dims agree."""
    shape = torch.tensor(tensor.shape, device=tensor.device)
    shapes = [torch.empty_like(shape) for _ in range(get_world_size())]
    dist.all_gather(shapes, shape)
    if any(not torch.equal(other[1:], shape[1:]) for other in shapes):
        raise ValueError(
            "gather_across_ranks: every rank must send rows of one shape; got shapes "
            f"{[tuple(other.tolist()) for other in shapes]}")
    return [int(other[0]) for other in shapes]


class _GatherWithGradient(torch.autograd.Function):
    """all_gather whose backward sums the gradients of our rows over ranks (see module doc)."""

    @staticmethod
    def forward(ctx, local: Tensor, sizes: list[int], rank: int) -> Tensor:
        ctx.rows = slice(sum(sizes[:rank]), sum(sizes[:rank + 1]))
        longest = max(sizes)
        # all_gather moves equal shapes only: pad our rows to the longest local batch.
        padded = F.pad(local, (0, 0) * (local.dim() - 1) + (0, longest - local.shape[0]))
        received = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(received, padded.contiguous())
        received[rank] = local  # our own rows exactly as they are (no transfer round trip)
        return torch.cat([rows[:size] for rows, size in zip(received, sizes, strict=True)], dim=0)

    @staticmethod
    def backward(ctx, gradient: Tensor) -> tuple[Tensor, None, None]:
        total = gradient.contiguous().clone()  # (global batch, ...) from this rank's loss
        dist.all_reduce(total, op=dist.ReduceOp.SUM)  # + the gradients from every other rank
        return total[ctx.rows], None, None


def gather_across_ranks(tensor: Tensor) -> tuple[Tensor, slice]:
    """Rows of every rank (rank order) and the slice where this rank's rows sit in them.

    ``tensor`` is this rank's (local batch, ...) tensor; the result is (global batch, ...). The
    gradient flows back to ``tensor`` from every rank's use of its rows. Every rank must call this
    (and later run backward) in the same order: these are collective operations.
    """
    if not is_distributed():
        global _warned_not_distributed
        if not _warned_not_distributed:
            _warned_not_distributed = True
            logger.warning("gather_across_devices is set but torch.distributed is not initialised: "
                           "using the local batch only (expected when training on one device).")
        return tensor, slice(0, tensor.shape[0])
    sizes = _local_batch_sizes(tensor)
    rank = get_rank()
    gathered = _GatherWithGradient.apply(tensor, sizes, rank)
    return gathered, slice(sum(sizes[:rank]), sum(sizes[:rank + 1]))
