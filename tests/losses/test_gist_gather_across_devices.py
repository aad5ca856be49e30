"""GISTEmbedLoss (and CachedGISTEmbedLoss's chunked stage) with gather_across_devices.

Two CPU processes (gloo), each with half of a global batch, against the reference run the same
way and against one process on the whole batch. Positives and negatives (and the guide's
embeddings of them) are gathered; anchors stay local, as in the reference. So, without the
anchor-anchor block, the mean of the ranks' losses is the single-process loss and a rank's
gradient is world_size times the single-process gradient of its rows; with that block, the
ranks must still agree with the reference rank by rank. Rows 0 and 3 are duplicates that sit on
different ranks: the guide can only mask that false negative after the gather.
"""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

from losses.cached_gist_embed import CachedGISTEmbedLoss
from losses.gist_embed import GISTEmbedLoss, false_negative_mask
from tests.losses.gist_cases import reference_on_embeddings
from tests.losses.two_process import (
    WORLD_SIZE,
    close,
    global_batch,
    local_rows,
    run_on_two_ranks,
)

CHUNK = 2  # rows per chunk in the cached loss stage
GUIDE_DIM = 12
SETTINGS = {  # name: (number of columns, options)
    "absolute_pairs": (2, {"margin_strategy": "absolute", "margin": 0.1,
                           "contrast_anchors": False, "contrast_positives": False}),
    "relative_negatives": (3, {"margin_strategy": "relative", "margin": 0.05,
                               "contrast_anchors": False}),
    "absolute_negative_warm": (3, {"margin": 0.2, "contrast_anchors": False,
                                   "temperature": 0.05}),
    "all_blocks": (3, {}),  # anchor-anchor block on: local anchors only, like the reference
}
SINGLE_PROCESS_EQUAL = [name for name, (_, options) in SETTINGS.items()
                        if options.get("contrast_anchors", True) is False]


def guide_batch(columns: int) -> list[torch.Tensor]:
    """The guide's embeddings of the global batch (another dim), duplicates kept."""
    return global_batch(columns, dim=GUIDE_DIM, seed=100 + columns)


def ours_with_gradients(loss, embeddings, guide):
    leaves = [column.clone().requires_grad_() for column in embeddings]
    value = loss.compute_loss_from_embeddings(leaves, None, guide)
    value.backward()
    return value.detach(), [leaf.grad for leaf in leaves]


def reference_with_gradients(options, embeddings, guide):
    leaves = [column.clone().requires_grad_() for column in embeddings]
    value = reference_on_embeddings(lambda m, g: reference.GISTEmbedLoss(m, g, **options),
                                    leaves, guide)
    value.backward()
    return value.detach(), [leaf.grad for leaf in leaves]


def cached_chunks_with_gradients(options, embeddings, guide):
    """CachedGISTEmbedLoss's loss stage on mini-batch pieces, back-propagating chunk by chunk."""
    loss = CachedGISTEmbedLoss(None, None, mini_batch_size=CHUNK, **options)
    reps = [[piece.clone().requires_grad_() for piece in column.split(CHUNK)]
            for column in embeddings]
    value = loss.calculate_loss(reps, [[column] for column in guide], with_backward=True)
    return value.detach(), [torch.cat([piece.grad for piece in column]) for column in reps]


def _worker(rank: int) -> dict:
    local = local_rows(rank)
    results = {}
    for name, (columns, options) in SETTINGS.items():
        embeddings = [column[local] for column in global_batch(columns)]
        guide = [column[local] for column in guide_batch(columns)]
        ours = GISTEmbedLoss(None, None, gather_across_devices=True, **options)
        results[name, "ours"] = ours_with_gradients(ours, embeddings, guide)
        gathered = {**options, "gather_across_devices": True}
        results[name, "reference"] = reference_with_gradients(gathered, embeddings, guide)
        results[name, "cached"] = cached_chunks_with_gradients(gathered, embeddings, guide)
    return results


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    return run_on_two_ranks(_worker, tmp_path_factory.mktemp("gist_gather"))


@pytest.mark.slow
@pytest.mark.parametrize("name", SINGLE_PROCESS_EQUAL)
def test_two_processes_equal_one_process_on_the_concatenated_batch(distributed_results, name):
    columns, options = SETTINGS[name]
    value, gradients = ours_with_gradients(GISTEmbedLoss(None, None, **options),
                                           global_batch(columns), guide_batch(columns))
    for side in ("ours", "reference", "cached"):
        rank_values = torch.stack([result[name, side][0] for result in distributed_results])
        close(rank_values.mean(), value, f"{side}: mean of the ranks' losses")
        for rank, result in enumerate(distributed_results):
            for column, gradient in enumerate(result[name, side][1]):
                close(gradient / WORLD_SIZE, gradients[column][local_rows(rank)],
                      f"{side}: rank {rank} gradient of column {column}")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SETTINGS))
def test_ours_and_the_reference_agree_rank_by_rank(distributed_results, name):
    for rank, result in enumerate(distributed_results):
        for side in ("ours", "cached"):
            mine, theirs = result[name, side], result[name, "reference"]
            close(mine[0], theirs[0], f"{side}, rank {rank}: loss")
            for column, (gradient, expected) in enumerate(zip(mine[1], theirs[1], strict=True)):
                close(gradient, expected, f"{side}, rank {rank}: gradient of column {column}")


@pytest.mark.slow
def test_the_gathered_guide_masks_a_duplicate_that_lives_on_the_other_rank(distributed_results):
    """Row 3 (rank 1) duplicates row 0 (rank 0): only a gathered guide can remove it."""
    columns, options = SETTINGS["absolute_pairs"]
    guide_anchors, guide_positives = guide_batch(columns)
    scores = torch.nn.functional.normalize(guide_anchors[:1]) @ torch.nn.functional.normalize(
        guide_positives).T  # (1, 6): anchor 0 against every positive
    masked = false_negative_mask(scores, scores[:, :1], options["margin_strategy"],
                                 options["margin"])
    assert masked[0, 3], "the duplicate positive on rank 1 must be a masked false negative"
    # Had rank 0 not seen it, its loss would differ: compare with a local-only loss.
    local = local_rows(0)
    ungathered = GISTEmbedLoss(None, None, **options).compute_loss_from_embeddings(
        [column[local] for column in global_batch(columns)],
        None, [column[local] for column in guide_batch(columns)])
    assert not torch.isclose(distributed_results[0]["absolute_pairs", "ours"][0], ungathered)
