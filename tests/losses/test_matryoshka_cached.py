"""Every gradient-cached loss inside MatryoshkaLoss: equal to its uncached twin and the reference.

MatryoshkaLoss runs a cached loss through the one hook all our cached losses share: the gradient
cache (losses/gradient_cache.py) calls the loss's ``calculate_loss``, which MatryoshkaLoss swaps
during its step for one that truncates the cached embeddings once per dimension. So the checks
here are the same for each cached loss:

- without dropout, for several mini-batch sizes (one row, uneven mini-batches, one mini-batch per
  column): our MatryoshkaLoss(cached loss) equals our MatryoshkaLoss(uncached twin), values and
  float64 gradients, to rounding;
- it equals the reference MatryoshkaLoss(reference cached loss), every dim or two sampled dims;
- with dropout on: equal to the reference at small mini-batches, where both draw the same masks
  in the same order and replay them in backward, with an incoming gradient factor that every
  mini-batch must receive; and equal to the uncached twin where masks can agree (one mini-batch
  per column: the uncached forward draws one set of masks per column).

The tiny BERT has hidden size 128, so the dims are 128, 64 and 32 with unequal weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference
from torch import nn

from losses.cached_gist_embed import CachedGISTEmbedLoss
from losses.cached_multiple_negatives_ranking import CachedMultipleNegativesRankingLoss
from losses.cached_multiple_negatives_symmetric_ranking import (
    CachedMultipleNegativesSymmetricRankingLoss,
)
from losses.gist_embed import GISTEmbedLoss
from losses.matryoshka import MatryoshkaLoss
from losses.multiple_negatives_ranking import MultipleNegativesRankingLoss
from tests.losses.gist_cases import same_tokenizer_guide
from tests.losses.parity import (
    ANCHORS,
    NEGATIVES,
    POSITIVES,
    assert_model_parity,
    assert_same_value_and_gradients,
    tiny_dropout_model,
    tiny_model,
    value_and_gradients,
)

DIMS = [128, 64, 32]
WEIGHTS = [1, 0.5, 0.25]
SYMMETRIC = {"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the tensors are tiny, and extra threads only spin on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def quietly(make: Callable[[], nn.Module]) -> nn.Module:
    """Build a deprecated loss without its expected DeprecationWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return make()


class Case(NamedTuple):
    """A cached loss, its uncached twin and the reference cached loss; model -> loss each."""

    ours: Callable[..., nn.Module]  # (model, mini_batch_size) -> our cached loss
    uncached: Callable[[nn.Module], nn.Module]
    theirs: Callable[..., nn.Module]  # (model, mini_batch_size) -> the reference cached loss
    columns: list[list[str]]


def _guide() -> nn.Module:
    return same_tokenizer_guide()


CASES = {
    "CachedMultipleNegativesRankingLoss": Case(
        lambda m, size: CachedMultipleNegativesRankingLoss(m, mini_batch_size=size),
        MultipleNegativesRankingLoss,
        lambda m, size: reference.CachedMultipleNegativesRankingLoss(m, mini_batch_size=size),
        [ANCHORS, POSITIVES, NEGATIVES]),
    "CachedMultipleNegativesSymmetricRankingLoss": Case(
        lambda m, size: quietly(lambda: CachedMultipleNegativesSymmetricRankingLoss(
            m, mini_batch_size=size)),
        lambda m: MultipleNegativesRankingLoss(m, **SYMMETRIC),
        lambda m, size: quietly(lambda: reference.CachedMultipleNegativesSymmetricRankingLoss(
            m, mini_batch_size=size)),
        [ANCHORS, POSITIVES]),
    "CachedGISTEmbedLoss": Case(
        lambda m, size: CachedGISTEmbedLoss(m, _guide(), mini_batch_size=size),
        lambda m: GISTEmbedLoss(m, _guide()),
        lambda m, size: reference.CachedGISTEmbedLoss(m, _guide(), mini_batch_size=size),
        [ANCHORS, POSITIVES, NEGATIVES]),
}


def ours_in_matryoshka(make: Callable[[nn.Module], nn.Module], n_dims_per_step: int = -1
                       ) -> Callable[[nn.Module], nn.Module]:
    return lambda model: MatryoshkaLoss(model, make(model), DIMS, WEIGHTS, n_dims_per_step)


def reference_in_matryoshka(make: Callable[[nn.Module], nn.Module], n_dims_per_step: int = -1
                            ) -> Callable[[nn.Module], nn.Module]:
    return lambda model: reference.MatryoshkaLoss(model, make(model), DIMS, WEIGHTS,
                                                  n_dims_per_step)


# ------------------------------------------------------------------------------- no dropout
@pytest.mark.parametrize("mini_batch_size", [1, 4, 8], ids=lambda size: f"mini_batch={size}")
@pytest.mark.parametrize("name", list(CASES))
def test_inside_matryoshka_equals_the_uncached_twin(name, mini_batch_size):
    # 6 rows per column: one row per mini-batch, an uneven split (4 + 2), one mini-batch.
    case = CASES[name]
    cached = value_and_gradients(
        ours_in_matryoshka(lambda m: case.ours(m, mini_batch_size)), tiny_model(), case.columns)
    uncached = value_and_gradients(ours_in_matryoshka(case.uncached), tiny_model(), case.columns)
    assert_same_value_and_gradients(cached, uncached, value_rtol=1e-9, gradient_rtol=1e-7,
                                    what=name)
    # Not a vacuous comparison: the truncated dims contribute (the full-dim loss alone differs).
    alone = value_and_gradients(case.uncached, tiny_model(), case.columns)
    assert not torch.allclose(alone[0], uncached[0])


@pytest.mark.parametrize("n_dims_per_step", [-1, 2], ids=lambda n: f"n_dims_per_step={n}")
@pytest.mark.parametrize("name", list(CASES))
def test_inside_matryoshka_matches_the_reference(name, n_dims_per_step):
    # n_dims_per_step=2 samples dims with Python's random: both sides are seeded alike.
    case = CASES[name]
    assert_model_parity(ours_in_matryoshka(lambda m: case.ours(m, 4), n_dims_per_step),
                        reference_in_matryoshka(lambda m: case.theirs(m, 4), n_dims_per_step),
                        case.columns)


def test_wraps_the_reference_cached_gist_loss_too():
    # The reference's calculate_loss(reps, reps_guided, *, with_backward) takes the guide's
    # embeddings as its second argument: our hook truncates reps only and passes the rest on.
    case = CASES["CachedGISTEmbedLoss"]
    assert_model_parity(ours_in_matryoshka(lambda m: case.theirs(m, 4)),
                        reference_in_matryoshka(lambda m: case.theirs(m, 4)), case.columns)


def test_cached_gist_inside_matryoshka_in_float32_and_without_gradients():
    case = CASES["CachedGISTEmbedLoss"]
    assert_model_parity(ours_in_matryoshka(lambda m: case.ours(m, 2)),
                        reference_in_matryoshka(lambda m: case.theirs(m, 2)),
                        case.columns, dtype=torch.float32, check_gradients=False)
    model = tiny_model()
    with torch.no_grad():  # evaluation: calculate_loss once per dim, no backward hook
        value = ours_in_matryoshka(lambda m: case.ours(m, 2))(model)(
            [model.preprocess(column) for column in case.columns], None)
    expected = value_and_gradients(ours_in_matryoshka(case.uncached), tiny_model(),
                                   case.columns)[0]
    assert not value.requires_grad
    torch.testing.assert_close(value, expected, rtol=1e-9, atol=0)


# ---------------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("name", list(CASES))
def test_with_dropout_inside_matryoshka_matches_the_reference_and_scales(name):
    # Mini-batches of 2: three per column, each with its own dropout masks, replayed in backward.
    # The factor 3 stands for gradient accumulation or fp16 loss scaling.
    case = CASES[name]
    ours = value_and_gradients(ours_in_matryoshka(lambda m: case.ours(m, 2)),
                               tiny_dropout_model(), case.columns, factor=3.0)
    theirs = value_and_gradients(reference_in_matryoshka(lambda m: case.theirs(m, 2)),
                                 tiny_dropout_model(), case.columns, factor=3.0)
    assert_same_value_and_gradients(ours, theirs, value_rtol=1e-9, gradient_rtol=1e-6, what=name)
    once = value_and_gradients(ours_in_matryoshka(lambda m: case.ours(m, 2)),
                               tiny_dropout_model(), case.columns)
    scaled = (once[0], {key: 3.0 * gradient for key, gradient in once[1].items()})
    assert_same_value_and_gradients(ours, scaled, value_rtol=0, gradient_rtol=1e-9, what=name)
    undropped = value_and_gradients(ours_in_matryoshka(lambda m: case.ours(m, 2)), tiny_model(),
                                    case.columns)
    assert not torch.allclose(ours[0], undropped[0]), "dropout was not active"


@pytest.mark.parametrize("name", list(CASES))
def test_with_dropout_inside_matryoshka_equals_the_uncached_twin_when_the_masks_agree(name):
    # One mini-batch per column (8 >= 6 rows): the cached first pass draws the uncached
    # forward's masks, column by column, and the backward replays them.
    case = CASES[name]
    cached = value_and_gradients(ours_in_matryoshka(lambda m: case.ours(m, 8)),
                                 tiny_dropout_model(), case.columns)
    uncached = value_and_gradients(ours_in_matryoshka(case.uncached), tiny_dropout_model(),
                                   case.columns)
    assert_same_value_and_gradients(cached, uncached, value_rtol=1e-9, gradient_rtol=1e-7,
                                    what=name)
    undropped = value_and_gradients(ours_in_matryoshka(case.uncached), tiny_model(), case.columns)
    assert not torch.allclose(uncached[0], undropped[0]), "dropout was not active"
