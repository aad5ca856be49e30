"""DistillKLDivLoss against the reference: values, gradients, temperatures, config, bad input."""

from __future__ import annotations

import itertools
import logging
import math
import warnings

import pytest
import torch
from sentence_transformers import util
from sentence_transformers.sentence_transformer import losses as reference

from losses.distill_kl_div import DistillKLDivLoss
from losses.similarity import pairwise_cos_sim, pairwise_dot_score
from losses.validation import LossInputError, LossInputWarning
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

SIMILARITIES = {
    "dot": (pairwise_dot_score, util.pairwise_dot_score),
    "cos": (pairwise_cos_sim, util.pairwise_cos_sim),
}
TEMPERATURES = [
    {},
    {"temperature": 2.0},
    {"temperature": 0.5},
    {"student_temperature": 2.0},
    {"teacher_temperature": 0.25},
    {"student_temperature": 0.5, "teacher_temperature": 4.0},
    {"temperature": 3.0, "student_temperature": 1.0},
]
NEGATIVE_COLUMNS = [NEGATIVES, MORE_NEGATIVES, ANCHORS]  # the last equals the query


def teacher_scores(batch: int, candidates: int, seed: int = 0) -> torch.Tensor:
    """Dyadic teacher scores in [-2, 2]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 9, (batch, candidates), generator=generator).to(torch.float32) / 4


def name(options: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in options.items()) or "defaults"


# Model level: defaults, each temperature setting, each negatives count, the cosine.
MODEL_CASES = ([("dot", 1, options) for options in TEMPERATURES]
               + [("dot", 2, {}), ("dot", 3, {}), ("cos", 3, {"temperature": 0.5})])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("similarity", "negatives", "options"), MODEL_CASES,
                         ids=[f"{s}-{n}-{name(o)}" for s, n, o in MODEL_CASES])
def test_model_parity(similarity, negatives, options, dtype):
    ours_fct, their_fct = SIMILARITIES[similarity]
    assert_model_parity(
        lambda model: DistillKLDivLoss(model, similarity_fct=ours_fct, **options),
        lambda model: reference.DistillKLDivLoss(model, similarity_fct=their_fct, **options),
        [ANCHORS, POSITIVES, *NEGATIVE_COLUMNS[:negatives]], teacher_scores(6, 1 + negatives),
        # float32 gradients differ by rounding only (REFERENCE-NOTES): values there, gradients
        # in float64.
        dtype=dtype, check_gradients=dtype == torch.float64,
    )


EMBEDDING_CASES = list(itertools.product(SIMILARITIES, [1, 2, 3], [1, 2, 8],
                                        range(len(TEMPERATURES))))


@pytest.mark.parametrize(("similarity", "negatives", "batch", "which"), EMBEDDING_CASES)
def test_embedding_parity(similarity, negatives, batch, which):
    ours_fct, their_fct = SIMILARITIES[similarity]
    options = TEMPERATURES[which]
    embeddings = random_embeddings(2 + negatives, batch=batch)
    embeddings[1][0] = embeddings[0][0]  # query equals its positive
    embeddings[-1][-1] = embeddings[1][-1]  # a negative equals the positive
    labels = teacher_scores(batch, 1 + negatives, seed=which).double()
    labels[-1] = 0.5  # a teacher without preference: uniform target
    assert_embedding_parity(DistillKLDivLoss(None, ours_fct, **options),
                            reference.DistillKLDivLoss(None, their_fct, **options), embeddings,
                            labels)


def test_minus_infinity_removes_a_candidate_like_in_the_reference():
    embeddings = random_embeddings(4)
    labels = torch.randn(8, 3, dtype=torch.float64)
    labels[0, 2] = labels[5, 1] = -math.inf
    assert_embedding_parity(DistillKLDivLoss(None), reference.DistillKLDivLoss(None), embeddings,
                            labels)


def test_float32_teacher_scores_with_a_float64_student():
    embeddings = random_embeddings(3)
    assert_embedding_parity(DistillKLDivLoss(None, temperature=2.0),
                            reference.DistillKLDivLoss(None, temperature=2.0), embeddings,
                            torch.randn(8, 2))


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_identical_embeddings_give_finite_gradients(similarity):
    embedding = torch.ones(4, 8, requires_grad=True)
    loss = DistillKLDivLoss(None, SIMILARITIES[similarity][0]).compute_loss_from_embeddings(
        [embedding, embedding, embedding], torch.tensor([[1.0, 0.0]] * 4))
    loss.backward()
    assert torch.isfinite(embedding.grad).all()


def test_student_temperature_scales_the_loss_by_its_square():
    """With a teacher as sharp as the student, only the T_s² factor differs between settings."""
    embeddings = random_embeddings(3)
    labels = torch.randn(8, 2, dtype=torch.float64)
    plain = DistillKLDivLoss(None).compute_loss_from_embeddings(embeddings, labels)
    assert plain.item() > 0
    # Student scores and teacher scores both divided by 2, the result multiplied by 2² = 4.
    halved = DistillKLDivLoss(None, temperature=2.0).compute_loss_from_embeddings(
        [e * math.sqrt(2) for e in embeddings], labels * 2)
    torch.testing.assert_close(halved, plain * 4)


@pytest.mark.parametrize("bad", [{"temperature": 0.0}, {"temperature": -1.0},
                                 {"student_temperature": math.inf},
                                 {"teacher_temperature": math.nan},
                                 {"temperature": 0.0, "student_temperature": 1.0,
                                  "teacher_temperature": 1.0}])
def test_invalid_temperatures_are_refused_like_the_reference(bad):
    with pytest.raises(ValueError, match="must be a positive finite number"):
        reference.DistillKLDivLoss(None, **bad)
    knob = next(iter(bad))
    with pytest.raises(ValueError, match=rf"DistillKLDivLoss: {knob} must be a positive finite"):
        DistillKLDivLoss(None, **bad)


def test_config_and_citation_match_the_reference():
    model = tiny_model()
    settings = [*TEMPERATURES, {"temperature": 2.0, "student_temperature": 2.0},
                {"similarity_fct": pairwise_cos_sim},
                {"similarity_fct": model.similarity_pairwise}]
    for options in settings:
        ours = DistillKLDivLoss(model, **options)
        theirs = reference.DistillKLDivLoss(model, **options)
        assert ours.get_config_dict() == theirs.get_config_dict(), options
    assert ours.citation == theirs.citation


def test_teacher_underflow_warns_once_per_instance(caplog):
    """The reference logs once per instance when a float32 softmax rounds teacher
    probabilities to exactly 0; ours warns once (checking every batch, not only the first)."""
    embeddings = random_embeddings(4, dtype=torch.float32)
    labels = torch.tensor([[200.0, 0.0, 1.0]] * 8)  # exp(-200) underflows in float32
    with caplog.at_level(logging.WARNING):
        reference.DistillKLDivLoss(None).compute_loss_from_embeddings(embeddings, labels)
    assert "underflows" in caplog.text
    loss = DistillKLDivLoss(None)
    with pytest.warns(LossInputWarning, match=r"DistillKLDivLoss: teacher_temperature=1.0 makes "
                                              r"the softmax of 16 of 24 teacher scores exactly "
                                              r"0.*about 2"):
        loss.compute_loss_from_embeddings(embeddings, torch.tensor([[0.0, 1.0, 1.0]] * 8))
        loss.compute_loss_from_embeddings(embeddings, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss.compute_loss_from_embeddings(embeddings, labels)  # already warned: silent
        DistillKLDivLoss(None, teacher_temperature=4.0).compute_loss_from_embeddings(
            embeddings, labels)  # a warmer teacher does not underflow


def test_bad_input_names_the_loss_and_the_format():
    loss = DistillKLDivLoss(None)
    triplet = random_embeddings(3, batch=4)
    four = random_embeddings(4, batch=4)
    with pytest.raises(LossInputError, match=r"DistillKLDivLoss expects \(query, positive, "
                                             r"negative_1, .*3 or more text column.*got 2"):
        loss.compute_loss_from_embeddings(random_embeddings(2, batch=4), torch.zeros(4, 1))
    with pytest.raises(LossInputError, match="got no labels"):
        loss.compute_loss_from_embeddings(triplet, None)
    with pytest.raises(LossInputError, match=r"DistillKLDivLoss expects .*labels of shape "
                                             r"\(batch, 1 \+ num_negatives\): with 2 negative "
                                             r"column\(s\) that is \(4, 3\); got a "
                                             r"torch.float32 tensor of shape \(4, 2\)\. These "
                                             r"look like margins"):
        loss.compute_loss_from_embeddings(four, torch.zeros(4, 2))
    with pytest.raises(LossInputError, match=r"\(4, 2\); got .*shape \(4, 3\)\.$"):
        loss.compute_loss_from_embeddings(triplet, torch.zeros(4, 3))
    with pytest.raises(LossInputError, match=r"\(4, 2\); got .*shape \(5, 2\)"):
        loss.compute_loss_from_embeddings(triplet, torch.zeros(5, 2))
    with pytest.raises(LossInputError, match="real-valued"):
        loss.compute_loss_from_embeddings(triplet, torch.ones(4, 2, dtype=torch.bool))
    for bad in (math.nan, math.inf):
        with pytest.raises(LossInputError, match="DistillKLDivLoss got NaN or \\+inf teacher"):
            loss.compute_loss_from_embeddings(triplet, torch.tensor([[0.0, bad]] * 4))
    with pytest.raises(LossInputError, match="all -inf"):
        loss.compute_loss_from_embeddings(triplet, torch.tensor([[-math.inf, -math.inf]] * 4))


def test_forward_refuses_wrong_column_count_before_running_the_model():
    with pytest.raises(LossInputError, match="3 or more text column"):
        DistillKLDivLoss(tiny_model())([{}, {}], torch.zeros(1, 1))


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("teacher-scores")["train"].select(range(160))  # 3 negatives
    assert_trainer_equivalence(
        lambda model: DistillKLDivLoss(model, temperature=0.5, teacher_temperature=0.25),
        lambda model: reference.DistillKLDivLoss(model, temperature=0.5,
                                                 teacher_temperature=0.25),
        data, tmp_path)
