"""CoSENTLoss against the reference: values, gradients, config, bad input."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from sentence_transformers import util
from sentence_transformers.sentence_transformer import losses as reference

from losses import similarity
from losses.cosent import CoSENTLoss, cosent_ranking_loss
from losses.validation import LossInputError, LossInputWarning
from tests.losses.parity import (
    ANCHORS,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    tiny_model,
)

SIMILARITIES = ["pairwise_cos_sim", "pairwise_dot_score", "pairwise_euclidean_sim",
                "pairwise_manhattan_sim"]
SCORES = torch.tensor([1.0, 0.5, 0.25, 0.0, 1.0, 0.75])  # dyadic; a tie (rows 0 and 4)


def both(similarity_name: str | None = None, **options) -> tuple[dict, dict]:
    """The same options for both losses, with each library's function of that name."""
    if similarity_name is None:
        return options, options
    return ({**options, "similarity_fct": getattr(similarity, similarity_name)},
            {**options, "similarity_fct": getattr(util, similarity_name)})


# Moderate scales for the unbounded similarities: the log-sum-exp form is exact only to float32
# rounding of the logits, so large logits make float32 comparisons meaningless.
MODEL_OPTIONS = {
    "defaults": both(),
    "scale": both(scale=5.0),
    "dot": both("pairwise_dot_score", scale=0.5),
    "euclidean": both("pairwise_euclidean_sim", scale=2.0),
    "manhattan": both("pairwise_manhattan_sim", scale=0.25),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("option", list(MODEL_OPTIONS))
def test_model_parity(option, dtype):
    ours, theirs = MODEL_OPTIONS[option]
    assert_model_parity(lambda model: CoSENTLoss(model, **ours),
                        lambda model: reference.CoSENTLoss(model, **theirs),
                        [ANCHORS, POSITIVES], SCORES, dtype=dtype,
                        check_gradients=dtype == torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_model_parity_with_binary_labels(dtype):
    assert_model_parity(lambda model: CoSENTLoss(model), lambda model: reference.CoSENTLoss(model),
                        [ANCHORS, POSITIVES], torch.tensor([1, 0, 1, 0, 1, 0]), dtype=dtype,
                        check_gradients=dtype == torch.float64)


LABELS = {
    "scores": torch.tensor([1.0, 0.5, 0.25, 0.0, 0.75, 0.125, 0.625, 0.375]),
    "ties": torch.tensor([0.5, 0.5, 1.0, 0.0, 0.5, 1.0, 0.0, 0.25]),
    "binary": torch.tensor([1, 0, 1, 0, 0, 1, 1, 0]),
    "boolean": torch.tensor([True, False, True, False, False, True, True, False]),
    "outside-0-1": torch.tensor([5.0, -2.0, 3.5, 0.0, 1.0, 4.0, -1.0, 2.5]),
    "float64": torch.tensor([1.0, 0.5, 0.25, 0.0, 0.75, 0.125, 0.625, 0.375],
                            dtype=torch.float64),
}


@pytest.mark.parametrize("labels", list(LABELS))
def test_embedding_parity_for_every_option_combination(labels):
    first, second = random_embeddings(2, seed=5)
    second[:2] = first[:2]  # identical pairs
    for name, scale in itertools.product(SIMILARITIES, [0.5, 1.0, 5.0, 20.0]):
        ours, theirs = both(name, scale=scale)
        for rows in (slice(None), slice(1, 3), slice(0, 1)):  # whole batch, 2 rows, 1 row
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LossInputWarning)  # the 1-row batch
                assert_embedding_parity(CoSENTLoss(None, **ours),
                                        reference.CoSENTLoss(None, **theirs),
                                        [first[rows], second[rows]], LABELS[labels][rows])


def test_ranking_loss_equals_the_quadratic_definition():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(40, generator=generator, dtype=torch.float64) * 3
    labels = torch.randint(0, 5, (40,), generator=generator).double()
    higher = labels.unsqueeze(1) > labels.unsqueeze(0)  # [i, j]: y_i > y_j
    differences = scores.unsqueeze(0) - scores.unsqueeze(1)  # [i, j]: s_j - s_i
    expected = torch.log1p(torch.exp(differences[higher]).sum())
    torch.testing.assert_close(cosent_ranking_loss(scores, labels), expected)


def test_all_tied_scores_give_zero_and_warn_once():
    loss = CoSENTLoss(None)
    columns = random_embeddings(2)
    with pytest.warns(LossInputWarning, match="CoSENTLoss: every pair in a batch had the same "
                                              "score.*nothing was learned"):
        value = loss.compute_loss_from_embeddings(columns, torch.full((8,), 0.5))
    assert value.item() == 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss.compute_loss_from_embeddings(columns, torch.ones(8))
    assert not caught
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossInputWarning)
        assert_embedding_parity(CoSENTLoss(None), reference.CoSENTLoss(None), columns,
                                torch.full((8,), 0.5))


def test_identical_embeddings_give_finite_gradients():
    for name in SIMILARITIES:
        embedding = torch.ones(4, 8, requires_grad=True)
        loss = CoSENTLoss(None, similarity_fct=getattr(similarity, name))
        loss.compute_loss_from_embeddings([embedding, embedding],
                                          torch.tensor([1.0, 0.0, 0.5, 0.25])).backward()
        assert torch.isfinite(embedding.grad).all(), name


def test_half_precision_similarities_are_ranked_in_float32():
    first, second = (column.half() for column in random_embeddings(2))
    labels = LABELS["scores"]
    ours = CoSENTLoss(None).compute_loss_from_embeddings([first, second], labels)
    theirs = reference.CoSENTLoss(None).compute_loss_from_embeddings([first, second], labels)
    assert ours.dtype == theirs.dtype == torch.float32
    torch.testing.assert_close(ours, theirs)


def test_config_and_citation_match_the_reference():
    model = tiny_model()
    for ours, theirs in [both(), both("pairwise_dot_score", scale=1.0),
                         both("pairwise_euclidean_sim"), both("pairwise_manhattan_sim", scale=3)]:
        assert (CoSENTLoss(model, **ours).get_config_dict()
                == reference.CoSENTLoss(model, **theirs).get_config_dict())
    assert CoSENTLoss(model).citation == reference.CoSENTLoss(model).citation


def test_three_columns_raise_where_the_reference_ignores_the_third():
    columns = random_embeddings(3)
    labels = LABELS["scores"]
    reference.CoSENTLoss(None).compute_loss_from_embeddings(columns, labels)  # silently accepted
    with pytest.raises(LossInputError, match=r"CoSENTLoss expects \(sentence1, sentence2\) pairs "
                                             r"with a float similarity score.*exactly 2.*got 3"):
        CoSENTLoss(None).compute_loss_from_embeddings(columns, labels)


def test_bad_input_names_the_loss_and_the_format():
    loss = CoSENTLoss(None)
    columns = random_embeddings(2, batch=4)
    with pytest.raises(LossInputError, match=r"CoSENTLoss expects .*got no labels"):
        loss.compute_loss_from_embeddings(columns, None)  # the reference: AttributeError
    with pytest.raises(LossInputError, match=r"CoSENTLoss expects .*shape \(4,\); got .*\(3,\)"):
        loss.compute_loss_from_embeddings(columns, torch.zeros(3))
    with pytest.raises(LossInputError, match="CoSENTLoss got non-finite scores"):
        loss.compute_loss_from_embeddings(columns, torch.tensor([0.0, float("nan"), 0.5, 1.0]))
    matrix = CoSENTLoss(None, similarity_fct=similarity.cos_sim)
    with pytest.raises(LossInputError, match=r"CoSENTLoss: similarity_fct must be a pairwise "
                                             r"similarity.*\(4,\); got \(4, 4\)"):
        matrix.compute_loss_from_embeddings(columns, torch.zeros(4))
    with pytest.raises(LossInputError, match="exactly 2 text column"):
        CoSENTLoss(tiny_model())([{}], torch.zeros(1))


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("pair-score")["train"].shuffle(seed=0).select(range(160))
    assert_trainer_equivalence(CoSENTLoss, reference.CoSENTLoss, data, tmp_path)
