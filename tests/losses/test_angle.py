"""AnglELoss and pairwise_angle_sim against the reference: values, gradients, config, input."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from sentence_transformers import util
from sentence_transformers.sentence_transformer import losses as reference

from losses.angle import AnglELoss, pairwise_angle_sim
from losses.cosent import CoSENTLoss
from losses.validation import LossInputError, LossInputWarning
from tests.losses.parity import (
    ANCHORS,
    MORE_NEGATIVES,
    NEGATIVES,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    random_embeddings,
    tiny_model,
)

SCORES = torch.tensor([1.0, 0.5, 0.25, 0.0, 1.0, 0.75])  # dyadic (see REFERENCE-NOTES)

# (columns, labels, options): pairs with scores or 0/1 labels, unlabeled triplets and 4-tuples.
MODEL_CASES = {
    "pairs": ([ANCHORS, POSITIVES], SCORES, {}),
    "pairs-scale": ([ANCHORS, POSITIVES], SCORES, {"scale": 5.0}),
    "pairs-binary": ([ANCHORS, NEGATIVES], torch.tensor([1, 0, 1, 0, 1, 0]), {}),
    "triplets": ([ANCHORS, POSITIVES, NEGATIVES], None, {}),
    "4-tuples": ([ANCHORS, POSITIVES, NEGATIVES, MORE_NEGATIVES], None, {}),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_model_parity(case, dtype):
    columns, labels, options = MODEL_CASES[case]
    assert_model_parity(lambda model: AnglELoss(model, **options),
                        lambda model: reference.AnglELoss(model, **options),
                        columns, labels, dtype=dtype,
                        check_gradients=dtype == torch.float64)  # float32: values only


@pytest.mark.parametrize("dim", [16, 15, 2, 1])
def test_angle_similarity_matches_the_reference_and_complex_division(dim):
    x, y = random_embeddings(2, batch=6, dim=dim, seed=7)
    y[0] = x[0]  # identical
    y[1] = -2 * x[1]  # opposite direction
    ours = pairwise_angle_sim(x, y)
    torch.testing.assert_close(ours, util.pairwise_angle_sim(x, y))
    # The docstring's math in complex numbers: Σ_t ẑ_t·conj(ŵ_t) = Σ_t (ẑ_t / ŵ_t)·|ŵ_t|².
    unit_x, unit_y = (torch.nn.functional.pad(torch.nn.functional.normalize(v, dim=-1),
                                              (0, dim % 2)) for v in (x, y))
    half = unit_x.shape[1] // 2
    z = torch.complex(unit_x[:, :half], unit_x[:, half:])
    w = torch.complex(unit_y[:, :half], unit_y[:, half:])
    total = (z / w * w.abs() ** 2).sum(dim=-1)
    torch.testing.assert_close(ours, (total.real + total.imag).abs())
    assert bool((ours >= 0).all()) and bool((ours <= math.sqrt(2) + 1e-12).all())


def test_angle_similarity_computes_half_precision_in_float32():
    x, y = (column.half() for column in random_embeddings(2))
    ours = pairwise_angle_sim(x, y)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, util.pairwise_angle_sim(x, y))


EMBEDDING_CASES = {
    "pairs-scores": (2, torch.tensor([1.0, 0.5, 0.25, 0.0, 0.75, 0.125, 0.625, 0.375])),
    "pairs-ties": (2, torch.tensor([0.5, 0.5, 1.0, 0.0, 0.5, 1.0, 0.0, 0.25])),
    "pairs-binary": (2, torch.tensor([1, 0, 1, 0, 0, 1, 1, 0])),
    "triplets": (3, None),
    "triplets-labels": (3, torch.tensor([1.0, 0.75, 1.0, 0.5, 1.0, 1.0, 0.875, 1.0])),
    "5-tuples": (5, None),
}


@pytest.mark.parametrize("dim", [16, 15])
@pytest.mark.parametrize("case", list(EMBEDDING_CASES))
def test_embedding_parity_for_every_scale_and_format(case, dim):
    count, labels = EMBEDDING_CASES[case]
    columns = random_embeddings(count, dim=dim, seed=9)
    columns[1][:2] = columns[0][:2]  # identical (anchor, second column) rows
    for scale in (0.5, 1.0, 5.0, 20.0):
        for rows in (slice(None), slice(2, 4), slice(0, 1)):  # whole batch, 2 rows, 1 row
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LossInputWarning)  # 1-row pairs: nothing to rank
                assert_embedding_parity(
                    AnglELoss(None, scale), reference.AnglELoss(None, scale),
                    [column[rows] for column in columns],
                    None if labels is None else labels[rows])


def test_identical_embeddings_give_finite_gradients():
    embedding = torch.ones(4, 8, requires_grad=True)
    AnglELoss(None).compute_loss_from_embeddings(
        [embedding, embedding], torch.tensor([1.0, 0.0, 0.5, 0.25])).backward()
    assert torch.isfinite(embedding.grad).all()
    embedding.grad = None
    AnglELoss(None).compute_loss_from_embeddings([embedding] * 3, None).backward()
    assert torch.isfinite(embedding.grad).all()


def test_config_citation_and_family_match_the_reference():
    model = tiny_model()
    for scale in (20.0, 1.0, 7):
        assert (AnglELoss(model, scale).get_config_dict()
                == reference.AnglELoss(model, scale).get_config_dict())
    assert AnglELoss(model).get_config_dict()["similarity_fct"] == "pairwise_angle_sim"
    assert AnglELoss(model).citation == reference.AnglELoss(model).citation
    assert isinstance(AnglELoss(model), CoSENTLoss)  # as in the reference, a CoSENT variant


def test_bad_input_names_the_loss_and_the_format():
    loss = AnglELoss(None)
    columns = random_embeddings(3, batch=4)
    with pytest.raises(ValueError, match="requires labels"):
        reference.AnglELoss(None).compute_loss_from_embeddings(columns[:2], None)
    with pytest.raises(LossInputError, match=r"AnglELoss expects \(sentence1, sentence2\) pairs "
                                             r"with a float similarity score, or \(anchor, "
                                             r"positive, negative...\) tuples.*got no labels"):
        loss.compute_loss_from_embeddings(columns[:2], None)
    with pytest.raises(LossInputError, match=r"AnglELoss expects .*2 or more text column.*got 1"):
        loss.compute_loss_from_embeddings(columns[:1], torch.zeros(4))
    with pytest.raises(LossInputError, match=r"AnglELoss expects .*shape \(4,\); got .*\(5,\)"):
        loss.compute_loss_from_embeddings(columns, torch.ones(5))
    with pytest.raises(LossInputError, match=r"AnglELoss expects .*shape \(4,\); got .*\(2,\)"):
        loss.compute_loss_from_embeddings(columns[:2], torch.ones(2))
    with pytest.raises(LossInputError, match="AnglELoss got non-finite scores"):
        loss.compute_loss_from_embeddings(columns[:2], torch.tensor([0.0, float("inf"), 1, 0]))
    with pytest.raises(LossInputError, match="2 or more text column"):
        AnglELoss(tiny_model())([{}], None)
