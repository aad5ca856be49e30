"""CachedMultipleNegativesRankingLoss with gather_across_devices: two CPU processes (gloo).

The semantics are those of the uncached loss (losses/distributed.py, and
tests/losses/test_gather_across_devices.py): each rank's loss is the mean over its own rows, the
mean of the ranks' losses is the single-process loss on the concatenated batch, and a rank's
embedding gradient is world_size times the single-process gradient of its rows. Here the chunked
loss stage (several chunks per rank, the gather back-propagated once) must give exactly that,
the reference's cached loss must agree rank by rank, and a DDP-wrapped encoder trained through
the full GradCache path (mini-batches, replay, DDP's no_sync) must get the single-process
parameter gradients.
"""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference
from torch import nn

from losses.cached_multiple_negatives_ranking import CachedMultipleNegativesRankingLoss
from losses.multiple_negatives_ranking import MultipleNegativesRankingLoss
from tests.losses.two_process import (
    MNRL_SETTINGS,
    WORLD_SIZE,
    close,
    global_batch,
    local_rows,
    run_on_two_ranks,
)

CHUNK = 2  # rows per loss chunk and per embedding mini-batch: 2 chunks per rank
SETTINGS = MNRL_SETTINGS


def chunked_loss_and_gradients(loss, embeddings: list[torch.Tensor]):
    """The cached loss stage on mini-batch pieces: (value, gradient per column)."""
    reps = [[piece.clone().requires_grad_() for piece in column.split(CHUNK)]
            for column in embeddings]
    value = loss.calculate_loss(reps, None, with_backward=True)
    return value.detach(), [torch.cat([piece.grad for piece in column]) for column in reps]


class Encoder(nn.Module):
    """A linear "sentence encoder" over fixed input vectors, enough for the GradCache path."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(16, 8).double()

    def forward(self, features: dict) -> dict:
        return {"sentence_embedding": self.linear(features["vectors"])}


def _worker(rank: int) -> dict:
    local = local_rows(rank)
    reference_model = Encoder()  # the reference needs a model (its static-model check)
    results = {}
    for name, (columns, options) in SETTINGS.items():
        embeddings = [column[local] for column in global_batch(columns)]
        ours = CachedMultipleNegativesRankingLoss(None, gather_across_devices=True,
                                                  mini_batch_size=CHUNK, **options)
        theirs = reference.CachedMultipleNegativesRankingLoss(
            nn.Sequential(reference_model), gather_across_devices=True,
            mini_batch_size=CHUNK, **options)
        results[name, "ours"] = chunked_loss_and_gradients(ours, embeddings)
        results[name, "reference"] = chunked_loss_and_gradients(theirs, embeddings)

    # The whole path: mini-batched embedding, cached gradients, replay under DDP's no_sync.
    encoder = nn.parallel.DistributedDataParallel(Encoder())
    inputs = [{"vectors": column[local]} for column in global_batch(3)]
    loss = CachedMultipleNegativesRankingLoss(encoder, gather_across_devices=True,
                                              mini_batch_size=CHUNK)
    value = loss(inputs, None)
    value.backward()
    results["ddp"] = (value.detach(), [p.grad.clone() for p in encoder.parameters()])
    return results


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    return run_on_two_ranks(_worker, tmp_path_factory.mktemp("cached_gather"))


def single_process(columns: int, options: dict):
    """The uncached loss on the concatenated batch, in one process."""
    leaves = [column.clone().requires_grad_() for column in global_batch(columns)]
    value = MultipleNegativesRankingLoss(None, **options).compute_loss_from_embeddings(leaves,
                                                                                       None)
    value.backward()
    return value.detach(), [leaf.grad for leaf in leaves]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SETTINGS))
def test_two_processes_equal_one_uncached_process_on_the_concatenated_batch(
        distributed_results, name):
    value, gradients = single_process(*SETTINGS[name])
    for side in ("ours", "reference"):
        rank_values = [result[name, side][0] for result in distributed_results]
        close(torch.stack(rank_values).mean(), value, f"{side}: mean of the ranks' losses")
        for rank, result in enumerate(distributed_results):
            rows = local_rows(rank)
            for column, gradient in enumerate(result[name, side][1]):
                close(gradient / WORLD_SIZE, gradients[column][rows],
                      f"{side}: rank {rank} gradient of column {column}")


@pytest.mark.slow
def test_ours_and_the_reference_agree_rank_by_rank(distributed_results):
    for result in distributed_results:
        for name in SETTINGS:
            ours, theirs = result[name, "ours"], result[name, "reference"]
            close(ours[0], theirs[0], f"{name}: rank loss")
            for mine, reference_gradient in zip(ours[1], theirs[1], strict=True):
                close(mine, reference_gradient, f"{name}: rank gradient")


@pytest.mark.slow
def test_ddp_through_the_gradient_cache_gets_the_single_process_gradients(distributed_results):
    encoder = Encoder()
    loss = MultipleNegativesRankingLoss(None)
    value = loss.compute_loss_from_embeddings(
        [encoder({"vectors": x})["sentence_embedding"] for x in global_batch(3)], None)
    value.backward()
    rank_values = torch.stack([result["ddp"][0] for result in distributed_results])
    close(rank_values.mean(), value.detach(), "mean DDP loss")
    for result in distributed_results:
        for parameter, gradient in zip(encoder.parameters(), result["ddp"][1], strict=True):
            close(gradient, parameter.grad, "DDP-averaged parameter gradient")
