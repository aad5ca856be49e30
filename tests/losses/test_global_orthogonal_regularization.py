"""GlobalOrthogonalRegularizationLoss against the reference: a dict of two weighted terms."""

from __future__ import annotations

import functools

import pytest
import torch
from sentence_transformers import util
from sentence_transformers.sentence_transformer import losses as reference

from losses import similarity
from losses.global_orthogonal_regularization import GlobalOrthogonalRegularizationLoss
from losses.validation import LossInputError
from tests.losses.parity import (
    ANCHORS,
    NEGATIVES,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    tiny_model,
)

OPTIONS = [  # (ours, reference): each single option away from the defaults
    ({}, {}),
    ({"similarity_fct": similarity.dot_score}, {"similarity_fct": util.dot_score}),
    ({"mean_weight": 0.0}, {"mean_weight": 0.0}),
    ({"second_moment_weight": None}, {"second_moment_weight": None}),
    ({"mean_weight": 0.5, "second_moment_weight": 2.0},
     {"mean_weight": 0.5, "second_moment_weight": 2.0}),
    ({"aggregation": "sum"}, {"aggregation": "sum"}),
]
IDS = ["defaults", "dot_score", "no_mean", "no_second_moment", "weights", "sum"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("ours", "theirs"), OPTIONS, ids=IDS)
def test_model_parity_on_triplets_with_duplicates(ours, theirs, dtype):
    # Gradients in float64 only (REFERENCE-NOTES): the attention key biases have a mathematically
    # zero gradient, and its float32 rounding noise differs between any two implementations.
    assert_model_parity(
        lambda model: GlobalOrthogonalRegularizationLoss(model, **ours),
        lambda model: reference.GlobalOrthogonalRegularizationLoss(model, **theirs),
        [ANCHORS, POSITIVES, NEGATIVES], dtype=dtype, check_gradients=dtype == torch.float64)


def sweep():
    """Every weight/aggregation/similarity combination."""
    for weights in [(1.0, 1.0), (0.0, 1.0), (1.0, None), (0.25, 4.0)]:
        for aggregation in ("mean", "sum"):
            for ours_fn, reference_fn in [(similarity.cos_sim, util.cos_sim),
                                          (similarity.dot_score, util.dot_score)]:
                options = {"mean_weight": weights[0], "second_moment_weight": weights[1],
                           "aggregation": aggregation}
                yield ({**options, "similarity_fct": ours_fn},
                       {**options, "similarity_fct": reference_fn})


def test_embedding_parity_for_every_combination_and_edge_case():
    for ours, theirs in sweep():
        for columns, batch in [(1, 8), (3, 8), (2, 2), (2, 1)]:
            embeddings = random_embeddings(columns, batch=batch, seed=batch)
            embeddings[0][-1] = embeddings[0][0]  # a duplicate row
            assert_embedding_parity(GlobalOrthogonalRegularizationLoss(None, **ours),
                                    reference.GlobalOrthogonalRegularizationLoss(None, **theirs),
                                    embeddings)
        identical = [torch.ones(4, 8, dtype=torch.float64)] * 2
        assert_embedding_parity(GlobalOrthogonalRegularizationLoss(None, **ours),
                                reference.GlobalOrthogonalRegularizationLoss(None, **theirs),
                                identical)


def test_returns_the_named_components():
    embeddings = random_embeddings(2)
    assert set(GlobalOrthogonalRegularizationLoss(None).compute_loss_from_embeddings(
        embeddings)) == {"gor_mean", "gor_second_moment"}
    assert set(GlobalOrthogonalRegularizationLoss(None, mean_weight=None)
               .compute_loss_from_embeddings(embeddings)) == {"gor_second_moment"}


def test_spread_out_embeddings_cost_nothing_and_a_collapsed_batch_costs_most():
    loss = GlobalOrthogonalRegularizationLoss(None)
    orthogonal = [torch.eye(4, dtype=torch.float64)]  # mean 0, second moment 0 < 1/4
    assert all(value.item() == 0.0 for value in loss.compute_loss_from_embeddings(
        orthogonal).values())
    collapsed = loss.compute_loss_from_embeddings([torch.ones(4, 8)])
    assert collapsed["gor_mean"].item() == pytest.approx(1.0)
    assert collapsed["gor_second_moment"].item() == pytest.approx(1 - 1 / 8)


def test_identical_embeddings_and_a_batch_of_one_give_finite_gradients():
    for batch in (4, 1):
        embedding = torch.ones(batch, 8, requires_grad=True)
        values = GlobalOrthogonalRegularizationLoss(None).compute_loss_from_embeddings(
            [embedding, embedding])
        sum(values.values()).backward()
        assert torch.isfinite(embedding.grad).all()


CONFIG_OPTIONS = [
    *OPTIONS,
    ({"similarity_fct": similarity.euclidean_sim, "aggregation": "sum", "mean_weight": None},
     {"similarity_fct": util.euclidean_sim, "aggregation": "sum", "mean_weight": None}),
]


@pytest.mark.parametrize(("ours", "theirs"), CONFIG_OPTIONS)
def test_config_and_citation_match_the_reference(ours, theirs):
    model = tiny_model()
    mine = GlobalOrthogonalRegularizationLoss(model, **ours)
    other = reference.GlobalOrthogonalRegularizationLoss(model, **theirs)
    assert mine.get_config_dict() == other.get_config_dict()
    assert mine.citation == other.citation


def test_config_of_a_partial_is_readable_where_the_reference_crashes():
    partial = functools.partial(util.cos_sim)
    with pytest.raises(AttributeError):
        reference.GlobalOrthogonalRegularizationLoss(None, similarity_fct=partial).get_config_dict()
    config = GlobalOrthogonalRegularizationLoss(None, similarity_fct=partial).get_config_dict()
    assert config["similarity_fct"] == "cos_sim"


@pytest.mark.parametrize(("options", "message"), [
    ({"mean_weight": 0.0, "second_moment_weight": None}, "at least one term"),
    ({"aggregation": "max"}, "aggregation must be 'mean' or 'sum'"),
])
def test_bad_settings_raise_like_the_reference(options, message):
    with pytest.raises(ValueError):
        reference.GlobalOrthogonalRegularizationLoss(None, **options)
    with pytest.raises(ValueError, match=f"GlobalOrthogonalRegularizationLoss: .*{message}"):
        GlobalOrthogonalRegularizationLoss(None, **options)


def test_bad_input_names_the_loss_and_the_format():
    loss = GlobalOrthogonalRegularizationLoss(None)
    with pytest.raises(LossInputError, match=r"GlobalOrthogonalRegularizationLoss expects any "
                                             r"text columns.*1 or more.*got 0"):
        loss.compute_loss_from_embeddings([])
    with pytest.raises(LossInputError, match="one shape; got shapes"):
        loss.compute_loss_from_embeddings([torch.zeros(4, 8), torch.zeros(4, 6)])


@pytest.mark.slow
def test_trainer_alone_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("pair")["train"].select(range(160))
    assert_trainer_equivalence(GlobalOrthogonalRegularizationLoss,
                               reference.GlobalOrthogonalRegularizationLoss, data, tmp_path)
