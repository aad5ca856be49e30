"""MarginMSELoss against the reference: values, gradients, label forms, config, bad input."""

from __future__ import annotations

import itertools

import pytest
import torch
from sentence_transformers import util
from sentence_transformers.sentence_transformer import losses as reference

from losses.margin_mse import MarginMSELoss
from losses.similarity import pairwise_cos_sim, pairwise_dot_score
from losses.validation import LossInputError
from tests.losses.parity import (
    ANCHORS,
    MORE_NEGATIVES,
    NEGATIVES,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    tiny_model,
)

# Ours gets our similarity functions, the reference its own: a drop-in must accept either.
SIMILARITIES = {
    "dot": (pairwise_dot_score, util.pairwise_dot_score),
    "cos": (pairwise_cos_sim, util.pairwise_cos_sim),
}
# Negative columns; the third is the query itself (identical embeddings: cos exactly 1).
NEGATIVE_COLUMNS = [NEGATIVES, MORE_NEGATIVES, ANCHORS]


def dyadic(*shape: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 9, shape, generator=generator).to(torch.float32) / 4


def label_forms(negatives: int, batch: int = 6) -> dict[str, torch.Tensor]:
    """Every label shape the reference accepts for ``negatives`` negative columns."""
    forms = {"margins": dyadic(batch, negatives), "scores": dyadic(batch, negatives + 1)}
    if negatives == 1:
        forms["flat-margins"] = dyadic(batch)
    return forms


# Model level: the defaults, then one change at a time (every label form, more negatives, the
# cosine); the full sweep of combinations runs on embeddings below.
MODEL_CASES = [("dot", 1, "margins"), ("dot", 1, "flat-margins"), ("dot", 1, "scores"),
               ("dot", 2, "margins"), ("dot", 3, "scores"), ("cos", 1, "flat-margins"),
               ("cos", 3, "margins")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("similarity", "negatives", "form"), MODEL_CASES)
def test_model_parity(similarity, negatives, form, dtype):
    ours_fct, their_fct = SIMILARITIES[similarity]
    assert_model_parity(
        lambda model: MarginMSELoss(model, similarity_fct=ours_fct),
        lambda model: reference.MarginMSELoss(model, similarity_fct=their_fct),
        [ANCHORS, POSITIVES, *NEGATIVE_COLUMNS[:negatives]], label_forms(negatives)[form],
        # float32 gradients differ by rounding only (REFERENCE-NOTES): values there, gradients
        # in float64.
        dtype=dtype, check_gradients=dtype == torch.float64,
    )


@pytest.mark.parametrize(("similarity", "negatives", "batch"),
                         list(itertools.product(SIMILARITIES, [1, 2, 3, 5], [1, 2, 8])))
def test_embedding_parity(similarity, negatives, batch):
    ours_fct, their_fct = SIMILARITIES[similarity]
    embeddings = random_embeddings(2 + negatives, batch=batch)
    embeddings[1][0] = embeddings[0][0]  # identical query and positive
    embeddings[2][-1] = embeddings[1][-1]  # identical positive and negative: margin 0
    for labels in label_forms(negatives, batch).values():
        assert_embedding_parity(MarginMSELoss(None, ours_fct),
                                reference.MarginMSELoss(None, their_fct), embeddings,
                                labels.double())
        # Our loss with the reference's similarity function: the same numbers.
        assert_embedding_parity(MarginMSELoss(None, their_fct),
                                reference.MarginMSELoss(None, their_fct), embeddings, labels)


def test_scores_and_their_margins_give_the_same_loss():
    embeddings = random_embeddings(4)
    scores = torch.randn(8, 3, dtype=torch.float64)
    loss = MarginMSELoss(None)
    from_scores = loss.compute_loss_from_embeddings(embeddings, scores)
    from_margins = loss.compute_loss_from_embeddings(embeddings, scores[:, :1] - scores[:, 1:])
    torch.testing.assert_close(from_scores, from_margins)


def test_integer_labels_are_numbers():
    embeddings = random_embeddings(3, batch=4)
    labels = torch.tensor([1, -2, 0, 3])
    assert_embedding_parity(MarginMSELoss(None), reference.MarginMSELoss(None), embeddings,
                            labels)


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_identical_embeddings_give_finite_gradients(similarity):
    embedding = torch.ones(4, 8, requires_grad=True)
    loss = MarginMSELoss(None, SIMILARITIES[similarity][0]).compute_loss_from_embeddings(
        [embedding, embedding, embedding], torch.zeros(4))
    loss.backward()
    assert torch.isfinite(embedding.grad).all()


def test_config_and_citation_match_the_reference():
    model = tiny_model()
    for ours_fct, their_fct in [*SIMILARITIES.values(), (model.similarity_pairwise,) * 2]:
        ours = MarginMSELoss(model, similarity_fct=ours_fct)
        theirs = reference.MarginMSELoss(model, similarity_fct=their_fct)
        assert ours.get_config_dict() == theirs.get_config_dict()
    defaults = MarginMSELoss(model).get_config_dict()
    assert defaults == reference.MarginMSELoss(model).get_config_dict()
    assert ours.citation == theirs.citation


def test_bad_input_names_the_loss_and_the_format():
    loss = MarginMSELoss(None)
    triplet = random_embeddings(3, batch=4)
    four = random_embeddings(4, batch=4)
    with pytest.raises(LossInputError, match=r"MarginMSELoss expects \(query, positive, "
                                             r"negative_1, .*3 or more text column.*got 2"):
        loss.compute_loss_from_embeddings(random_embeddings(2, batch=4), torch.zeros(4))
    with pytest.raises(LossInputError, match="got no labels"):
        loss.compute_loss_from_embeddings(triplet, None)
    with pytest.raises(LossInputError, match=r"margins of shape \(4, 1\) or \(4,\) or scores of "
                                             r"shape \(4, 2\); got .*shape \(4, 3\)"):
        loss.compute_loss_from_embeddings(triplet, torch.zeros(4, 3))
    with pytest.raises(LossInputError, match=r"margins of shape \(4, 2\) or scores of shape "
                                             r"\(4, 3\); got .*shape \(4,\)$"):
        loss.compute_loss_from_embeddings(four, torch.zeros(4))  # one margin, two negatives
    with pytest.raises(LossInputError, match=r"got .*shape \(5,\)"):
        loss.compute_loss_from_embeddings(triplet, torch.zeros(5))
    with pytest.raises(LossInputError, match="real-valued"):
        loss.compute_loss_from_embeddings(triplet, torch.ones(4, dtype=torch.bool))
    with pytest.raises(LossInputError, match="MarginMSELoss got non-finite teacher scores"):
        loss.compute_loss_from_embeddings(triplet, torch.tensor([0.0, float("nan"), 1.0, 2.0]))


def test_forward_refuses_wrong_column_count_before_running_the_model():
    with pytest.raises(LossInputError, match="3 or more text column"):
        MarginMSELoss(tiny_model())([{}, {}], torch.zeros(1))


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("teacher-margin")["train"].select(range(160))
    assert_trainer_equivalence(MarginMSELoss, reference.MarginMSELoss, data, tmp_path)
