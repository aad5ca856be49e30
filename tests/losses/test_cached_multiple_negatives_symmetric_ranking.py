"""CachedMultipleNegativesSymmetricRankingLoss: a deprecated alias, checked against the reference.

It must equal the reference's cached symmetric loss (values, float64 gradients), our
CachedMultipleNegativesRankingLoss with the symmetric settings, and our uncached
MultipleNegativesSymmetricRankingLoss. With dropout on, as for CachedMultipleNegativesRankingLoss:
the uncached forward draws one set of dropout masks per column, so the comparison with the
uncached loss is made where the masks can agree (one mini-batch per column), and the one with the
reference at smaller mini-batches (same seeds, same masks in the same order, replayed in backward).
"""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from sentence_transformers import util
from sentence_transformers.sentence_transformer import losses as reference

from losses import similarity
from losses.cached_multiple_negatives_ranking import CachedMultipleNegativesRankingLoss
from losses.cached_multiple_negatives_symmetric_ranking import (
    CachedMultipleNegativesSymmetricRankingLoss,
)
from losses.multiple_negatives_symmetric_ranking import MultipleNegativesSymmetricRankingLoss
from losses.validation import LossInputError
from tests.losses.parity import (
    ANCHORS,
    POSITIVES,
    assert_model_parity,
    assert_same_value_and_gradients,
    random_embeddings,
    seed_everything,
    tiny_dropout_model,
    tiny_model,
    tokenize,
    value_and_gradients,
)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these tensors are tiny, and on a shared 2-core machine extra threads
    only spin against other processes (8x slower here). Restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


OPTIONS = [  # (ours, reference)
    ({}, {}),
    ({"scale": 5.0}, {"scale": 5.0}),
    ({"similarity_fct": similarity.dot_score, "scale": 1.0},
     {"similarity_fct": util.dot_score, "scale": 1.0}),
    ({"mini_batch_size": 1}, {"mini_batch_size": 1}),
    ({"mini_batch_size": 4}, {"mini_batch_size": 4}),
    ({"mini_batch_num_tokens": 30}, {"mini_batch_num_tokens": 30}),
    ({"gather_across_devices": True}, {"gather_across_devices": True}),
    ({"show_progress_bar": True}, {"show_progress_bar": True}),
]
IDS = ["defaults", "scale", "dot_score", "mini_batch_size=1", "mini_batch_size=4",
       "mini_batch_num_tokens", "gather_across_devices", "show_progress_bar"]


def quietly(make):
    """Build a deprecated loss without the expected DeprecationWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return make()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("ours", "theirs"), OPTIONS, ids=IDS)
def test_model_parity_with_duplicates(ours, theirs, dtype):
    assert_model_parity(
        lambda model: quietly(lambda: CachedMultipleNegativesSymmetricRankingLoss(model, **ours)),
        lambda model: quietly(lambda: reference.CachedMultipleNegativesSymmetricRankingLoss(
            model, **theirs)),
        [ANCHORS, POSITIVES], dtype=dtype, check_gradients=dtype == torch.float64)


def gradients_of(loss, columns):
    seed_everything()
    value = loss(tokenize(loss.model, columns), None)
    value.backward()
    return value.detach(), {name: parameter.grad.clone()
                            for name, parameter in loss.model.named_parameters()
                            if parameter.grad is not None}


@pytest.mark.parametrize("mini_batch_size", [1, 3, 6, 32])
def test_is_the_cached_loss_with_symmetric_directions_and_the_uncached_symmetric_loss(
        mini_batch_size):
    symmetric = gradients_of(quietly(lambda: CachedMultipleNegativesSymmetricRankingLoss(
        tiny_model(), scale=7.0, mini_batch_size=mini_batch_size)), [ANCHORS, POSITIVES])
    general = gradients_of(CachedMultipleNegativesRankingLoss(
        tiny_model(), scale=7.0, mini_batch_size=mini_batch_size,
        directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction"),
        [ANCHORS, POSITIVES])
    uncached = gradients_of(quietly(lambda: MultipleNegativesSymmetricRankingLoss(
        tiny_model(), scale=7.0)), [ANCHORS, POSITIVES])
    assert torch.equal(symmetric[0], general[0])
    for name, gradient in general[1].items():
        assert torch.equal(symmetric[1][name], gradient)
    torch.testing.assert_close(symmetric[0], uncached[0], rtol=1e-10, atol=0)
    for name, gradient in uncached[1].items():
        torch.testing.assert_close(symmetric[1][name], gradient, rtol=1e-9,
                                   atol=1e-9 * gradient.abs().max().item() + 1e-15)


@pytest.mark.parametrize("mini_batch_size", [6, 100])
def test_with_dropout_equals_the_uncached_loss_when_the_masks_agree(mini_batch_size):
    # One mini-batch per column: the first pass draws exactly the uncached forward's masks, and
    # the backward replays them.
    cached = value_and_gradients(
        lambda m: quietly(lambda: CachedMultipleNegativesSymmetricRankingLoss(
            m, mini_batch_size=mini_batch_size)), tiny_dropout_model(), [ANCHORS, POSITIVES])
    uncached = value_and_gradients(
        lambda m: quietly(lambda: MultipleNegativesSymmetricRankingLoss(m)),
        tiny_dropout_model(), [ANCHORS, POSITIVES])
    assert_same_value_and_gradients(cached, uncached, value_rtol=1e-9, gradient_rtol=1e-9)
    undropped = value_and_gradients(
        lambda m: quietly(lambda: MultipleNegativesSymmetricRankingLoss(m)), tiny_model(),
        [ANCHORS, POSITIVES])
    assert not torch.allclose(uncached[0], undropped[0]), "dropout was not active"


@pytest.mark.parametrize("splitting", [{"mini_batch_size": 2}, {"mini_batch_num_tokens": 30}],
                         ids=["mini_batch_size=2", "mini_batch_num_tokens=30"])
def test_with_dropout_matches_the_reference_and_scales_with_the_incoming_gradient(splitting):
    # Same seeds, same mini-batches: both draw the same masks in the same order. The factor 3
    # stands for gradient accumulation or fp16 loss scaling: every mini-batch must get it.
    def ours(model):
        return quietly(lambda: CachedMultipleNegativesSymmetricRankingLoss(model, **splitting))

    def theirs(model):
        return quietly(lambda: reference.CachedMultipleNegativesSymmetricRankingLoss(
            model, **splitting))

    mine = value_and_gradients(ours, tiny_dropout_model(), [ANCHORS, POSITIVES], factor=3.0)
    other = value_and_gradients(theirs, tiny_dropout_model(), [ANCHORS, POSITIVES], factor=3.0)
    assert_same_value_and_gradients(mine, other, value_rtol=1e-9, gradient_rtol=1e-6)
    once = value_and_gradients(ours, tiny_dropout_model(), [ANCHORS, POSITIVES])
    scaled = (once[0], {name: 3.0 * gradient for name, gradient in once[1].items()})
    assert_same_value_and_gradients(mine, scaled, value_rtol=0, gradient_rtol=1e-9)
    undropped = value_and_gradients(ours, tiny_model(), [ANCHORS, POSITIVES])
    assert not torch.allclose(mine[0], undropped[0]), "dropout was not active"


def test_construction_warns_with_the_reference_category():
    model = tiny_model()
    with pytest.warns(DeprecationWarning) as ours:
        CachedMultipleNegativesSymmetricRankingLoss(model)
    with pytest.warns(DeprecationWarning) as theirs:
        reference.CachedMultipleNegativesSymmetricRankingLoss(model)
    assert [w.category for w in ours] == [w.category for w in theirs]
    assert "directions=('query_to_doc', 'doc_to_query')" in str(ours[0].message)
    assert "partition_mode='per_direction'" in str(ours[0].message)
    assert CachedMultipleNegativesSymmetricRankingLoss.__deprecated__


def test_signature_matches_the_reference():
    ours = inspect.signature(CachedMultipleNegativesSymmetricRankingLoss.__init__).parameters
    theirs = inspect.signature(
        reference.CachedMultipleNegativesSymmetricRankingLoss.__init__).parameters
    assert list(ours) == list(theirs)
    assert [p.default for p in ours.values() if p.name != "similarity_fct"] == \
           [p.default for p in theirs.values() if p.name != "similarity_fct"]


MIXED = {"mini_batch_size": 8, "mini_batch_num_tokens": 64, "scale": 3.0}


@pytest.mark.parametrize(("ours", "theirs"), [*OPTIONS, (MIXED, MIXED)], ids=[*IDS, "mixed"])
def test_config_and_citation_match_the_reference(ours, theirs):
    model = tiny_model()
    mine = quietly(lambda: CachedMultipleNegativesSymmetricRankingLoss(model, **ours))
    other = quietly(lambda: reference.CachedMultipleNegativesSymmetricRankingLoss(model,
                                                                                  **theirs))
    assert mine.get_config_dict() == other.get_config_dict()
    assert mine.citation == other.citation


def test_identical_embeddings_give_finite_gradients():
    loss = quietly(lambda: CachedMultipleNegativesSymmetricRankingLoss(None, mini_batch_size=3))
    leaves = [torch.ones(4, 8, dtype=torch.float64).requires_grad_() for _ in range(2)]
    value = loss.calculate_loss([[leaf] for leaf in leaves], with_backward=True)
    assert torch.isfinite(value) and all(torch.isfinite(leaf.grad).all() for leaf in leaves)


def test_static_embedding_models_are_refused_with_the_alternatives():
    from lab.models import load_model

    static = load_model("tiny", device="cpu")
    with pytest.raises(ValueError, match=r"CachedMultipleNegativesSymmetricRankingLoss: .*"
                                         r"'tiny-bert'.*uncached "
                                         r"MultipleNegativesSymmetricRankingLoss"):
        quietly(lambda: CachedMultipleNegativesSymmetricRankingLoss(static))


def test_bad_input_names_the_loss_and_the_format():
    loss = quietly(lambda: CachedMultipleNegativesSymmetricRankingLoss(None))
    with pytest.raises(LossInputError, match=r"CachedMultipleNegativesSymmetricRankingLoss "
                                             r"expects \(anchor, positive\) pairs.*got 1"):
        loss.compute_loss_from_embeddings(random_embeddings(1), None)
    with pytest.raises(ValueError, match="CachedMultipleNegativesSymmetricRankingLoss: "
                                         "mini_batch_size must be"):
        quietly(lambda: CachedMultipleNegativesSymmetricRankingLoss(None, mini_batch_size=0))


def cached_symmetric_value_and_gradients(scale, queries, documents):
    """The cached symmetric loss on given float embeddings (its ``calculate_loss``)."""
    loss = quietly(lambda: CachedMultipleNegativesSymmetricRankingLoss(
        tiny_model(), scale=scale, mini_batch_size=8))
    leaves = [queries.clone().requires_grad_(), documents.clone().requires_grad_()]
    value = loss.calculate_loss([[leaves[0]], [leaves[1]]], with_backward=True)
    return value, [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("scale", [20.0, 100.0])
def test_cosine_logits_far_below_their_bound_stay_finite_in_float32(scale):
    # Every cosine is negative: with s = 100, exp(s·cos - s) < exp(-100) underflows in float32,
    # so the cosine shortcut (shift by s, not by the maxima) must give way to the general method.
    generator = torch.Generator().manual_seed(0)
    documents = torch.randn(24, 16, generator=generator).abs()
    queries = -torch.randn(24, 16, generator=generator).abs()
    value, gradients = cached_symmetric_value_and_gradients(scale, queries, documents)
    leaves = [queries.clone().requires_grad_(), documents.clone().requires_grad_()]
    expected = quietly(lambda: MultipleNegativesSymmetricRankingLoss(
        tiny_model(), scale=scale)).compute_loss_from_embeddings(leaves, None)
    expected.backward()
    assert torch.isfinite(value)
    torch.testing.assert_close(value, expected.detach(), rtol=1e-5, atol=0)
    for gradient, leaf in zip(gradients, leaves, strict=True):
        torch.testing.assert_close(gradient, leaf.grad, rtol=1e-4, atol=1e-6)
