"""Shared pieces of the two-process (gloo, CPU) gather_across_devices tests.

Every test builds the same global batch in each process, gives rank r its rows ``local_rows(r)``
and compares what the ranks computed with one process on the whole batch. A worker is a function
``worker(rank) -> dict`` of results; ``run_on_two_ranks`` spawns it with a process group and
returns the dicts of both ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.losses.parity import random_embeddings

WORLD_SIZE = 2
BATCH = 6  # global rows; 3 per rank

# name: (number of columns, MultipleNegativesRankingLoss options) for the MNRL-family tests
MNRL_SETTINGS = {
    "pairs": (2, {}),
    "hard_negatives": (4, {}),
    "all_directions_hardness": (3, {"directions": ("query_to_doc", "query_to_query",
                                                   "doc_to_query", "doc_to_doc"),
                                    "hardness_mode": "all_negatives", "hardness_strength": 5.0}),
    "symmetric": (3, {"directions": ("query_to_doc", "doc_to_query"),
                      "partition_mode": "per_direction", "scale": 10.0}),
}


def global_batch(columns: int, dim: int = 16, seed: int | None = None) -> list[torch.Tensor]:
    """The whole batch, identical in every process; rows 0 and 3 duplicated across ranks."""
    embeddings = random_embeddings(columns, batch=BATCH, dim=dim,
                                   seed=columns if seed is None else seed)
    for column in embeddings:
        column[3] = column[0]
    return embeddings


def local_rows(rank: int) -> slice:
    """Rank ``rank``'s rows of the global batch."""
    return slice(rank * BATCH // WORLD_SIZE, (rank + 1) * BATCH // WORLD_SIZE)


def _spawned(rank: int, worker: Callable[[int], dict], folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                            world_size=WORLD_SIZE)
    try:
        torch.save(worker(rank), f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_on_two_ranks(worker: Callable[[int], dict], folder: Path) -> list[dict]:
    """Run ``worker`` (a module-level function) in two gloo processes; its results per rank."""
    mp.spawn(_spawned, args=(worker, str(folder)), nprocs=WORLD_SIZE, join=True)
    return [torch.load(folder / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


def close(actual, expected, what: str) -> None:
    """float64 agreement, with ``what`` in the failure message."""
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-12,
                               msg=lambda message: f"{what}: {message}")
