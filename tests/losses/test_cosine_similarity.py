"""CosineSimilarityLoss against the reference: values, gradients, config, bad input."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference
from torch import nn

import losses
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

SCORES = torch.tensor([1.0, 0.5, 0.25, 0.0, 1.0, 0.75])  # dyadic: exact in every dtype
OPTIONS = [
    {},
    {"loss_fct": nn.L1Loss()},
    {"cos_score_transformation": nn.ReLU()},
    {"loss_fct": nn.L1Loss(), "cos_score_transformation": nn.Tanh()},
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_model_parity(options, dtype):
    assert_model_parity(
        lambda model: losses.CosineSimilarityLoss(model, **options),
        lambda model: reference.CosineSimilarityLoss(model, **options),
        [ANCHORS, POSITIVES], SCORES, dtype=dtype,
    )


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_embedding_parity_including_identical_pairs(options):
    first, second = random_embeddings(2)
    second[:3] = first[:3]  # identical embeddings: cosine exactly 1
    labels = torch.linspace(0, 1, 8, dtype=torch.float64)
    assert_embedding_parity(losses.CosineSimilarityLoss(None, **options),
                            reference.CosineSimilarityLoss(None, **options), [first, second],
                            labels)


def test_identical_embeddings_give_finite_gradients():
    embedding = torch.ones(4, 8, requires_grad=True)
    loss = losses.CosineSimilarityLoss(None).compute_loss_from_embeddings(
        [embedding, embedding], torch.zeros(4))
    loss.backward()
    assert torch.isfinite(embedding.grad).all()


def test_config_and_citation_match_the_reference():
    model = tiny_model()
    for options in OPTIONS:
        ours = losses.CosineSimilarityLoss(model, **options)
        theirs = reference.CosineSimilarityLoss(model, **options)
        assert ours.get_config_dict() == theirs.get_config_dict()
    assert ours.citation == getattr(theirs, "citation", None)


def test_bad_input_names_the_loss_and_the_format():
    loss = losses.CosineSimilarityLoss(None)
    pair = random_embeddings(2, batch=4)
    with pytest.raises(LossInputError, match=r"CosineSimilarityLoss expects \(sentence1, "
                                             r"sentence2\) pairs.*exactly 2.*got 3"):
        loss.compute_loss_from_embeddings(random_embeddings(3, batch=4), torch.zeros(4))
    with pytest.raises(LossInputError, match="got no labels"):
        loss.compute_loss_from_embeddings(pair, None)
    with pytest.raises(LossInputError, match=r"shape \(4,\)"):
        loss.compute_loss_from_embeddings(pair, torch.zeros(5))
    with pytest.raises(LossInputError, match="non-finite scores"):
        loss.compute_loss_from_embeddings(pair, torch.tensor([0.0, float("nan"), 0.5, 1.0]))
    with pytest.warns(LossInputWarning, match=r"outside \[-1, 1\]"):
        loss.compute_loss_from_embeddings(pair, torch.tensor([0.0, 5.0, 2.5, 1.0]))


def test_forward_refuses_wrong_column_count_before_running_the_model():
    loss = losses.CosineSimilarityLoss(tiny_model())
    with pytest.raises(LossInputError, match="exactly 2 text column"):
        loss([{}], torch.zeros(1))


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("pair-score")["train"].select(range(160))
    assert_trainer_equivalence(losses.CosineSimilarityLoss, reference.CosineSimilarityLoss,
                               data, tmp_path)
