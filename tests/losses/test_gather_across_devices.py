"""gather_across_devices for real: two CPU processes (gloo) against one process on the whole batch.

Semantics checked (see losses/distributed.py): each rank's loss is the mean over its own rows;
the mean of the ranks' losses is the single-process loss on the concatenated batch; a rank's
embedding gradient is world_size times the single-process gradient of its rows (the gather's
backward sums every rank's gradient), so after DDP averages parameter gradients the model gets
exactly the single-process gradient. The reference, run the same way, gives the same numbers.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference
from torch import nn

from losses.distributed import gather_across_ranks
from losses.multiple_negatives_ranking import MultipleNegativesRankingLoss
from tests.losses.two_process import (
    MNRL_SETTINGS,
    WORLD_SIZE,
    close,
    global_batch,
    local_rows,
    run_on_two_ranks,
)

SETTINGS = MNRL_SETTINGS

def loss_and_gradients(loss: nn.Module, embeddings: list[torch.Tensor], weight: float = 1.0):
    leaves = [embedding.clone().requires_grad_(True) for embedding in embeddings]
    value = loss.compute_loss_from_embeddings(leaves, None)
    (weight * value).backward()
    return value.detach(), [leaf.grad for leaf in leaves]


def _worker(rank: int) -> dict:
    local = local_rows(rank)
    results = {}
    for name, (columns, options) in SETTINGS.items():
        embeddings = [column[local] for column in global_batch(columns)]
        for side, cls in (("ours", MultipleNegativesRankingLoss),
                          ("reference", reference.MultipleNegativesRankingLoss)):
            loss = cls(None, gather_across_devices=True, **options)
            results[name, side] = loss_and_gradients(loss, embeddings)

    # Uneven local batches (2 and 4 rows; the reference cannot gather these): weighting each
    # rank's loss by its share of the rows makes the sum the global mean exactly.
    rows = [2, 4]
    start = sum(rows[:rank])
    embeddings = [column[start:start + rows[rank]] for column in global_batch(3)]
    results["uneven"] = loss_and_gradients(
        MultipleNegativesRankingLoss(None, gather_across_devices=True), embeddings,
        weight=rows[rank] / sum(rows))
    gathered, own = gather_across_ranks(embeddings[0])
    results["uneven_gather"] = (gathered.detach(), (own.start, own.stop))

    # A real DDP model: a linear encoder over fixed inputs; DDP averages the gradients.
    torch.manual_seed(0)
    encoder = nn.parallel.DistributedDataParallel(nn.Linear(16, 8).double())
    inputs = [column[local] for column in global_batch(3)]
    loss = MultipleNegativesRankingLoss(None, gather_across_devices=True)
    value = loss.compute_loss_from_embeddings([encoder(x) for x in inputs], None)
    value.backward()
    results["ddp"] = (value.detach(), [p.grad.clone() for p in encoder.parameters()])
    return results


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    return run_on_two_ranks(_worker, tmp_path_factory.mktemp("gather"))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SETTINGS))
@pytest.mark.parametrize("single_process", ["ours", "reference"])
def test_two_processes_equal_one_process_on_the_concatenated_batch(distributed_results, name,
                                                                   single_process):
    columns, options = SETTINGS[name]
    cls = (MultipleNegativesRankingLoss if single_process == "ours"
           else reference.MultipleNegativesRankingLoss)
    value, gradients = loss_and_gradients(cls(None, **options), global_batch(columns))
    for side in ("ours", "reference"):
        rank_values = [result[name, side][0] for result in distributed_results]
        close(torch.stack(rank_values).mean(), value, f"{side}: mean of the ranks' losses")
        for rank, result in enumerate(distributed_results):
            rows = local_rows(rank)
            for column, gradient in enumerate(result[name, side][1]):
                # The gather's backward sums over ranks: world_size x the single-process share.
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
def test_uneven_local_batches_gather_in_rank_order(distributed_results):
    embeddings = global_batch(3)
    value, gradients = loss_and_gradients(MultipleNegativesRankingLoss(None), embeddings)
    rows = [2, 4]
    weighted = sum(result["uneven"][0] * size / sum(rows)
                   for result, size in zip(distributed_results, rows, strict=True))
    close(weighted, value, "row-weighted sum of the ranks' losses")
    start = 0
    for rank, (result, size) in enumerate(zip(distributed_results, rows, strict=True)):
        gathered, own = result["uneven_gather"]
        close(gathered, embeddings[0], f"rank {rank}: gathered rows")
        assert own == (start, start + size)
        for column, gradient in enumerate(result["uneven"][1]):
            close(gradient, gradients[column][start:start + size], f"rank {rank} column {column}")
        start += size


@pytest.mark.slow
def test_ddp_parameter_gradients_equal_the_single_process_ones(distributed_results):
    torch.manual_seed(0)
    encoder = nn.Linear(16, 8).double()
    loss = MultipleNegativesRankingLoss(None)
    value = loss.compute_loss_from_embeddings([encoder(x) for x in global_batch(3)], None)
    value.backward()
    rank_values = torch.stack([result["ddp"][0] for result in distributed_results])
    close(rank_values.mean(), value.detach(), "mean DDP loss")
    for result in distributed_results:
        for parameter, gradient in zip(encoder.parameters(), result["ddp"][1], strict=True):
            close(gradient, parameter.grad, "DDP-averaged parameter gradient")


def test_without_a_process_group_gathering_is_the_local_batch():
    embeddings = global_batch(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the notice goes to logging, not warnings
        gathered = MultipleNegativesRankingLoss(None, gather_across_devices=True)
        plain = MultipleNegativesRankingLoss(None)
        close(loss_and_gradients(gathered, embeddings)[0], loss_and_gradients(plain,
                                                                              embeddings)[0],
              "gather without a process group")
    tensor = torch.ones(3, 2)
    result, own = gather_across_ranks(tensor)
    assert result is tensor and own == slice(0, 3)
