"""Matryoshka2dLoss against the reference on the lab's 2-layer tiny BERT (hidden size 128)."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

import losses as ours
from losses.adaptive_layer import AdaptiveLayerLoss
from losses.matryoshka import MatryoshkaLoss
from losses.matryoshka_2d import Matryoshka2dLoss
from tests.losses.parity import (
    ANCHORS,
    NEGATIVES,
    POSITIVES,
    assert_model_parity,
    assert_trainer_equivalence,
    tiny_model,
    tokenize,
)
from tests.losses.test_adaptive_layer import (
    Boom,
    ExplodesOnCall,
    assert_model_untouched,
    assert_seeded_parity,
    weight_by_depth,
)

DIMS = [128, 64, 32]
SCORES = torch.tensor([1.0, 0.5, 0.25, 0.0, 1.0, 0.75])


@pytest.mark.parametrize("seed", [0, 1, 3])  # different layers and dims drawn
def test_default_random_layer_and_dims_match_the_reference(seed):
    assert_seeded_parity(
        lambda m: Matryoshka2dLoss(m, ours.MultipleNegativesRankingLoss(m), DIMS),
        lambda m: reference.Matryoshka2dLoss(m, reference.MultipleNegativesRankingLoss(m), DIMS),
        [ANCHORS, POSITIVES, NEGATIVES], seed=seed)


def test_default_values_match_in_float32():
    assert_model_parity(
        lambda m: Matryoshka2dLoss(m, ours.CoSENTLoss(m), DIMS),
        lambda m: reference.Matryoshka2dLoss(m, reference.CoSENTLoss(m), DIMS),
        [ANCHORS, POSITIVES], SCORES, dtype=torch.float32, check_gradients=False)


@pytest.mark.parametrize("options", [
    {"n_layers_per_step": -1, "n_dims_per_step": -1, "matryoshka_weights": [1, 0.5, 0.25],
     "layer_weighting": "log"},
    {"n_layers_per_step": -1, "n_dims_per_step": 2, "kl_temperature": 0.0,
     "layer_weighting": weight_by_depth, "last_layer_weight": 2.0, "prior_layers_weight": 0.5},
], ids=["all-deterministic", "random-dims-no-kl"])
def test_options_match_the_reference(options):
    assert_model_parity(
        lambda m: Matryoshka2dLoss(m, ours.CoSENTLoss(m), [32, 128, 64], **options),
        lambda m: reference.Matryoshka2dLoss(m, reference.CoSENTLoss(m), [32, 128, 64],
                                             **options),
        [ANCHORS, POSITIVES], SCORES)


def test_is_adaptive_layers_around_matryoshka():
    model = tiny_model()
    loss = Matryoshka2dLoss(model, ours.CoSENTLoss(model), DIMS, n_dims_per_step=2)
    assert isinstance(loss, AdaptiveLayerLoss) and isinstance(loss.loss, MatryoshkaLoss)
    assert loss.loss.n_dims_per_step == 2 and loss.n_layers_per_step == 1


def test_model_is_restored_when_the_inner_loss_raises():
    model = tiny_model()
    before = model(tokenize(model, [ANCHORS])[0])["sentence_embedding"].detach()
    # Calls: 3 dims on the last layer, then 3 dims on each prior layer; fail inside a prior one.
    loss = Matryoshka2dLoss(model, ExplodesOnCall(model, explode_at=5), DIMS,
                            n_layers_per_step=-1, n_dims_per_step=-1)
    with pytest.raises(Boom):
        loss(tokenize(model, [ANCHORS]), None)
    assert_model_untouched(model, before)


def test_config_and_citation_match_the_reference():
    model = tiny_model()
    for options in ({}, {"matryoshka_weights": [1, 2, 3], "n_layers_per_step": -1,
                         "n_dims_per_step": 2, "kl_temperature": 0.5},
                    {"layer_weighting": "linear", "prior_layers_weight": 0.25}):
        ours_loss = Matryoshka2dLoss(model, ours.CoSENTLoss(model), [64, 128, 32], **options)
        theirs = reference.Matryoshka2dLoss(model, reference.CoSENTLoss(model), [64, 128, 32],
                                            **options)
        assert ours_loss.get_config_dict() == theirs.get_config_dict()
        assert ours_loss.citation == theirs.citation


def test_bad_input_names_the_loss():
    from lab.models import load_model

    static = load_model("tiny", device="cpu")
    with pytest.raises(ValueError, match=r"Matryoshka2dLoss .* got a model whose first module is "
                                         "StaticEmbedding"):
        Matryoshka2dLoss(static, ours.CoSENTLoss(static), [384, 64])
    model = tiny_model()
    with pytest.raises(ValueError, match=r"MatryoshkaLoss: matryoshka dims \[256\] exceed"):
        Matryoshka2dLoss(model, ours.CoSENTLoss(model), [256, 64])
    with pytest.raises(ValueError, match="one weight per dim"):
        Matryoshka2dLoss(model, ours.CoSENTLoss(model), [128, 64], [1, 2, 3])
    with pytest.raises(ValueError, match=r"Matryoshka2dLoss cannot wrap MatryoshkaLoss\(MegaBatch"
                                         r"MarginLoss\): it uses gradient caching"):
        Matryoshka2dLoss(model, ours.MegaBatchMarginLoss(model), [128, 64])


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("pair")["train"].select(range(160))
    dims = [128, 64, 32]
    assert_trainer_equivalence(
        lambda m: Matryoshka2dLoss(m, ours.MultipleNegativesRankingLoss(m), dims),
        lambda m: reference.Matryoshka2dLoss(m, reference.MultipleNegativesRankingLoss(m), dims),
        data, tmp_path, model_name="tiny-bert")
