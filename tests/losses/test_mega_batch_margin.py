"""MegaBatchMarginLoss against the reference, in both modes: plain and gradient-cached."""

from __future__ import annotations

import warnings

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference
from torch import nn

from losses.mega_batch_margin import MegaBatchMarginLoss
from losses.validation import LossInputError, LossInputWarning
from tests.losses.parity import (
    ANCHORS,
    NEGATIVES,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    seed_everything,
    tiny_model,
    tokenize,
)

OPTIONS = [  # each single option away from the defaults (the default is mini-batched)
    {},
    {"use_mini_batched_version": False},
    {"positive_margin": 0.9, "negative_margin": 0.0},
    {"mini_batch_size": 2},  # three mini-batches per column, three similarity blocks
    {"mini_batch_size": 4},  # an uneven last mini-batch
    {"mini_batch_num_tokens": 20},  # mini-batches packed by token count
    {"show_progress_bar": True},
]


def option_id(options: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in options.items()) or "defaults"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_model_parity_with_duplicates(options, dtype):
    # Rows 0 and 4 are the same pair: row 0's hardest negative is row 4's positive, cosine 1.
    # Gradients in float64 only (REFERENCE-NOTES: float32 rounding noise on zero gradients).
    assert_model_parity(lambda model: MegaBatchMarginLoss(model, **options),
                        lambda model: reference.MegaBatchMarginLoss(model, **options),
                        [ANCHORS, POSITIVES], dtype=dtype, check_gradients=dtype == torch.float64)


def model_gradients(make_loss, model, columns, scale=1.0):
    seed_everything()
    loss = make_loss(model)
    value = loss(tokenize(model, columns), None)
    (scale * value).backward()
    return value.detach(), {name: p.grad.clone() for name, p in model.named_parameters()
                            if p.grad is not None}


def test_cached_backward_replays_dropout_and_scales_by_the_incoming_gradient():
    from lab.models import load_model

    results = []
    for make in (MegaBatchMarginLoss, reference.MegaBatchMarginLoss):
        torch.manual_seed(0)
        model = load_model("tiny-bert", device="cpu", dropout=0.1).double()
        model.train()
        results.append(model_gradients(lambda m, make=make: make(m, mini_batch_size=2), model,
                                       [ANCHORS, POSITIVES], scale=3.0))
    (value, gradients), (reference_value, reference_gradients) = results
    torch.testing.assert_close(value, reference_value, rtol=1e-9, atol=0)
    for name, gradient in reference_gradients.items():
        torch.testing.assert_close(gradients[name], gradient, rtol=1e-6,
                                   atol=1e-6 * gradient.abs().max().item() + 1e-15)


def test_cached_and_plain_forward_give_the_same_gradients():
    plain = model_gradients(lambda m: MegaBatchMarginLoss(m, use_mini_batched_version=False),
                            tiny_model(), [ANCHORS, POSITIVES])
    cached = model_gradients(lambda m: MegaBatchMarginLoss(m, mini_batch_size=4), tiny_model(),
                             [ANCHORS, POSITIVES])
    torch.testing.assert_close(cached[0], plain[0])
    for name, gradient in plain[1].items():
        torch.testing.assert_close(cached[1][name], gradient, rtol=1e-6,
                                   atol=1e-6 * gradient.abs().max().item() + 1e-15)


def test_without_gradients_both_modes_only_compute_the_value():
    model = tiny_model()
    with torch.no_grad():
        values = [MegaBatchMarginLoss(model, **options)(tokenize(model, [ANCHORS, POSITIVES]))
                  for options in ({"mini_batch_size": 2},
                                  {"use_mini_batched_version": False, "mini_batch_size": 2})]
        expected = reference.MegaBatchMarginLoss(model, mini_batch_size=2)(
            tokenize(model, [ANCHORS, POSITIVES]), None)
    for value in values:
        assert not value.requires_grad
        torch.testing.assert_close(value, expected)


class ReferenceOnEmbeddings(nn.Module):
    """The reference has no compute_loss_from_embeddings; its calculate_loss takes embeddings."""

    def __init__(self, **options) -> None:
        super().__init__()
        self.loss = reference.MegaBatchMarginLoss(tiny_model(), **options)

    def compute_loss_from_embeddings(self, embeddings, labels):
        return self.loss.calculate_loss([[embedding] for embedding in embeddings], labels)


@pytest.mark.parametrize("options", [{}, {"positive_margin": 0.5, "negative_margin": -0.2},
                                     {"mini_batch_size": 3}], ids=option_id)
def test_embedding_parity_with_duplicates_identical_pairs_and_tiny_batches(options):
    for batch in (8, 2, 1):
        anchors, positives = random_embeddings(2, batch=batch, seed=batch)
        anchors[-1], positives[-1] = anchors[0], positives[0]  # a duplicated pair
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LossInputWarning)  # the batch of one
            assert_embedding_parity(MegaBatchMarginLoss(None, **options),
                                    ReferenceOnEmbeddings(**options), [anchors, positives])
    identical = [torch.ones(4, 8, dtype=torch.float64)] * 2
    assert_embedding_parity(MegaBatchMarginLoss(None, **options),
                            ReferenceOnEmbeddings(**options), identical)


def test_identical_embeddings_give_finite_gradients():
    embedding = torch.ones(4, 8, requires_grad=True)
    MegaBatchMarginLoss(None).compute_loss_from_embeddings([embedding, embedding]).backward()
    assert torch.isfinite(embedding.grad).all()


def test_the_mined_negatives_are_visible():
    anchors, positives = random_embeddings(2, batch=6)
    positives[4] = anchors[0]  # the best possible negative for anchor 0
    loss = MegaBatchMarginLoss(None)
    loss.compute_loss_from_embeddings([anchors, positives])
    mined = loss.last_hardest_negatives
    assert mined.shape == (6,) and mined[0] == 4
    assert (mined != torch.arange(6)).all()  # never an anchor's own positive
    with pytest.warns(LossInputWarning, match="batch of one pair"):
        loss.compute_loss_from_embeddings([anchors[:1], positives[:1]])
    assert loss.last_hardest_negatives.tolist() == [-1]


def test_forward_is_chosen_per_instance_like_the_reference():
    model = tiny_model()
    for cached in (True, False):
        ours = MegaBatchMarginLoss(model, use_mini_batched_version=cached)
        theirs = reference.MegaBatchMarginLoss(model, use_mini_batched_version=cached)
        chosen = ours.forward_mini_batched if cached else ours.forward_non_mini_batched
        assert ours.forward == chosen
        assert ours.uses_gradient_cache == theirs.uses_gradient_cache == cached


@pytest.mark.parametrize("options", [{}, {"mini_batch_size": 8, "mini_batch_num_tokens": 100},
                                     {"positive_margin": 1.0, "negative_margin": 0.5,
                                      "use_mini_batched_version": False}], ids=option_id)
def test_config_and_citation_match_the_reference(options):
    model = tiny_model()
    ours = MegaBatchMarginLoss(model, **options)
    theirs = reference.MegaBatchMarginLoss(model, **options)
    assert ours.get_config_dict() == theirs.get_config_dict()
    assert ours.citation == theirs.citation


def test_static_embedding_models_are_refused_in_mini_batched_mode_only():
    from lab.models import load_model

    static = load_model("tiny", device="cpu")
    with pytest.raises(ValueError):
        reference.MegaBatchMarginLoss(static)
    with pytest.raises(ValueError, match=r"MegaBatchMarginLoss: .*StaticEmbedding.*"
                                         "use_mini_batched_version=False"):
        MegaBatchMarginLoss(static)
    MegaBatchMarginLoss(static, use_mini_batched_version=False)


def test_bad_input_names_the_loss_and_the_format():
    loss = MegaBatchMarginLoss(None)
    with pytest.raises(LossInputError, match=r"MegaBatchMarginLoss expects \(anchor, positive\) "
                                             r"pairs.*exactly 2.*got 3"):
        loss.compute_loss_from_embeddings(random_embeddings(3), None)
    with pytest.raises(LossInputError, match="one shape; got shapes"):
        loss.compute_loss_from_embeddings([torch.zeros(4, 8), torch.zeros(5, 8)], None)
    with pytest.warns(LossInputWarning, match="ignores labels"):
        loss.compute_loss_from_embeddings(random_embeddings(2), torch.ones(8))
    with pytest.raises(ValueError):
        reference.MegaBatchMarginLoss(None, use_mini_batched_version=False,
                                      mini_batch_num_tokens=0)
    with pytest.raises(ValueError, match="mini_batch_num_tokens must be a positive"):
        MegaBatchMarginLoss(None, mini_batch_num_tokens=0)


@pytest.mark.parametrize("cached", [True, False])
def test_forward_refuses_wrong_column_count_before_running_the_model(cached):
    loss = MegaBatchMarginLoss(tiny_model(), use_mini_batched_version=cached)
    with pytest.raises(LossInputError, match="exactly 2 text column"):
        loss(tokenize(loss.model, [ANCHORS, POSITIVES, NEGATIVES]), None)


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("pair")["train"].select(range(160))
    # The lab's fast model is a StaticEmbedding: only the plain mode accepts it.
    assert_trainer_equivalence(
        lambda model: MegaBatchMarginLoss(model, use_mini_batched_version=False),
        lambda model: reference.MegaBatchMarginLoss(model, use_mini_batched_version=False),
        data, tmp_path)
