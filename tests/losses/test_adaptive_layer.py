"""AdaptiveLayerLoss against the reference on the lab's 2-layer tiny BERT.

The tiny BERT has hidden states 0 (embedding layer), 1 and 2 (last): the prior layers are 0 and 1,
so the default n_layers_per_step=1 draws one of them at random; seeds 0 and 1 draw different ones.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sentence_transformers.sentence_transformer import losses as reference
from torch import nn

import losses as ours
from losses.adaptive_layer import AdaptiveLayerLoss
from tests.losses.parity import (
    ANCHORS,
    NEGATIVES,
    POSITIVES,
    _assert_gradients_close,
    _assert_values_close,
    _named_gradients,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    seed_everything,
    tiny_model,
    tokenize,
)

SCORES = torch.tensor([1.0, 0.5, 0.25, 0.0, 1.0, 0.75])


def weight_by_depth(layer: int) -> float:
    return 0.5 + layer


def assert_seeded_parity(make_ours, make_reference, columns, labels=None, seed: int = 12,
                         dtype: torch.dtype = torch.float64) -> None:
    """assert_model_parity with a chosen seed (it decides which layers/dims are drawn)."""
    results = []
    for make in (make_ours, make_reference):
        model = tiny_model(dtype)
        seed_everything(seed)
        loss = make(model)
        seed_everything(seed)
        value = loss(tokenize(model, columns), None if labels is None else labels.clone())
        value.backward()
        results.append((value, _named_gradients(loss)))
    (value, gradients), (reference_value, reference_gradients) = results
    _assert_values_close(value, reference_value, f"loss value (seed {seed})")
    _assert_gradients_close(gradients, reference_gradients, f"seed {seed}", 1e-4)


@pytest.mark.parametrize("seed", [0, 1])  # seed 0 trains layer 1, seed 1 layer 0
def test_default_random_layer_matches_the_reference(seed):
    assert_seeded_parity(
        lambda m: AdaptiveLayerLoss(m, ours.MultipleNegativesRankingLoss(m)),
        lambda m: reference.AdaptiveLayerLoss(m, reference.MultipleNegativesRankingLoss(m)),
        [ANCHORS, POSITIVES, NEGATIVES], seed=seed)


def test_default_values_match_in_float32():
    assert_model_parity(
        lambda m: AdaptiveLayerLoss(m, ours.MultipleNegativesRankingLoss(m)),
        lambda m: reference.AdaptiveLayerLoss(m, reference.MultipleNegativesRankingLoss(m)),
        [ANCHORS, POSITIVES], dtype=torch.float32, check_gradients=False)


OPTIONS = [  # every layer (deterministic) with each weighting and the KL knobs
    {"n_layers_per_step": -1, "layer_weighting": "log"},
    {"n_layers_per_step": -1, "layer_weighting": "linear", "kl_temperature": 0.0},
    {"n_layers_per_step": 2, "layer_weighting": weight_by_depth, "kl_temperature": 1.0,
     "kl_div_weight": 0.5, "last_layer_weight": 0.5, "prior_layers_weight": 2.0},
]


@pytest.mark.parametrize("options", OPTIONS, ids=["log", "linear-no-kl", "callable-kl-weights"])
def test_options_match_the_reference(options):
    assert_model_parity(
        lambda m: AdaptiveLayerLoss(m, ours.CoSENTLoss(m), **options),
        lambda m: reference.AdaptiveLayerLoss(m, reference.CoSENTLoss(m), **options),
        [ANCHORS, POSITIVES], SCORES)


def test_layer_weights():
    loss = AdaptiveLayerLoss(tiny_model(), ours.CoSENTLoss(None))
    assert [loss.get_layer_weight(i) for i in range(3)] == [1.0, 1.0, 1.0]
    loss.layer_weighting = "log"
    assert loss.get_layer_weight(2) == pytest.approx(1 / (1 + math.log(3)))
    loss.layer_weighting = "linear"
    assert loss.get_layer_weight(3) == 0.25
    loss.layer_weighting = weight_by_depth
    assert loss.get_layer_weight(2) == 2.5


def test_compute_loss_from_layer_embeddings_without_a_model():
    model = tiny_model()
    loss = AdaptiveLayerLoss(model, ours.CoSENTLoss(None), n_layers_per_step=-1,
                             layer_weighting="linear", kl_temperature=0.5, kl_div_weight=2.0)
    loss.model = None  # the pure function does not need it
    layers = [random_embeddings(2, seed=seed) for seed in range(3)]  # hidden states 0, 1, 2
    scores = torch.tensor([1.0, 0.5, 0.25, 0.0, 1.0, 0.75, 0.5, 0.25])
    value = loss.compute_loss_from_layer_embeddings(layers, scores)
    cosent = reference.CoSENTLoss(None)
    teacher = F.softmax(torch.cat(layers[2]) / 0.5, dim=-1)
    expected = cosent.compute_loss_from_embeddings(layers[2], scores)
    for layer in (0, 1):
        expected = expected + cosent.compute_loss_from_embeddings(layers[layer], scores) / (
            1 + layer) / 2
        kl = F.kl_div(F.log_softmax(torch.cat(layers[layer]) / 0.5, dim=-1), teacher,
                      reduction="batchmean")
        expected = expected + kl * 0.5 * 2.0
    torch.testing.assert_close(value, expected)
    with pytest.raises(TypeError, match="compute_loss_from_layer_embeddings"):
        loss.compute_loss_from_embeddings(layers[2], scores)


def test_identical_embeddings_give_finite_gradients():
    loss = AdaptiveLayerLoss(tiny_model(), ours.CoSENTLoss(None), n_layers_per_step=-1)
    embedding = torch.ones(4, 8, requires_grad=True)
    value = loss.compute_loss_from_layer_embeddings(
        [[embedding, embedding]] * 3, torch.tensor([1.0, 0.5, 0.0, 0.25]))
    value.backward()
    assert torch.isfinite(embedding.grad).all()


class Boom(RuntimeError):
    pass


class ExplodesOnCall(nn.Module):
    """Sums the embeddings; raises on call number ``explode_at`` (after running the model)."""

    def __init__(self, model, explode_at: int):
        super().__init__()
        self.model = model
        self.explode_at = explode_at
        self.calls = 0

    def forward(self, features, labels):
        self.calls += 1
        embeddings = [self.model(f)["sentence_embedding"] for f in features]
        if self.calls == self.explode_at:
            raise Boom("inner loss failed")
        return sum(e.sum() for e in embeddings)


def assert_model_untouched(model, before: torch.Tensor) -> None:
    assert "forward" not in model.__dict__ and "forward" not in model[0].__dict__
    assert model[0].auto_model.config.output_hidden_states is False
    after = model(tokenize(model, [ANCHORS])[0])
    assert "all_layer_embeddings" not in after
    torch.testing.assert_close(after["sentence_embedding"].detach(), before)


@pytest.mark.parametrize("explode_at", [1, 2])  # during the last layer, during a prior layer
def test_model_is_restored_when_the_inner_loss_raises(explode_at):
    model = tiny_model()
    before = model(tokenize(model, [ANCHORS])[0])["sentence_embedding"].detach()
    loss = AdaptiveLayerLoss(model, ExplodesOnCall(model, explode_at), n_layers_per_step=-1)
    with pytest.raises(Boom):
        loss(tokenize(model, [ANCHORS]), None)
    assert_model_untouched(model, before)
    loss.loss.explode_at = 0
    loss(tokenize(model, [ANCHORS]), None)  # and a normal step afterwards leaves it clean too
    assert_model_untouched(model, before)


def test_config_and_citation_match_the_reference():
    model = tiny_model()
    for options in ({}, {"n_layers_per_step": -1, "layer_weighting": "log"},
                    {"kl_temperature": 0.0, "kl_div_weight": 2.0, "last_layer_weight": 3.0},
                    {"layer_weighting": weight_by_depth},
                    {"layer_weighting": lambda layer: 1.0}):
        ours_loss = AdaptiveLayerLoss(model, ours.CoSENTLoss(model), **options)
        theirs = reference.AdaptiveLayerLoss(model, reference.CoSENTLoss(model), **options)
        assert ours_loss.get_config_dict() == theirs.get_config_dict()
        assert ours_loss.citation == theirs.citation


def test_a_model_without_transformer_layers_is_refused():
    from lab.models import load_model

    static = load_model("tiny", device="cpu")
    with pytest.raises(ValueError, match=r"AdaptiveLayerLoss .* needs a model whose first module "
                                         r"is a Hugging Face transformer.*got a model whose "
                                         r"first module is StaticEmbedding"):
        AdaptiveLayerLoss(static, ours.MultipleNegativesRankingLoss(static))
    with pytest.raises(ValueError, match=r"AdaptiveLayerLoss .*got no model"):
        AdaptiveLayerLoss(None, ours.MultipleNegativesRankingLoss(None))


@pytest.mark.parametrize(("options", "message"), [
    ({"layer_weighting": "quadratic"}, "layer_weighting must be one of"),
    ({"n_layers_per_step": 0}, "n_layers_per_step must be -1"),
    ({"n_layers_per_step": -3}, "n_layers_per_step must be -1"),
    ({"kl_temperature": -0.1}, "kl_temperature must be >= 0"),
])
def test_bad_settings_are_refused(options, message):
    model = tiny_model()
    with pytest.raises(ValueError, match=f"AdaptiveLayerLoss: {message}"):
        AdaptiveLayerLoss(model, ours.CoSENTLoss(model), **options)


def test_gradient_cached_inner_loss_is_refused():
    model = tiny_model()
    with pytest.raises(ValueError, match="AdaptiveLayerLoss cannot wrap MegaBatchMarginLoss: it "
                                         "uses gradient caching"):
        AdaptiveLayerLoss(model, ours.MegaBatchMarginLoss(model))
    AdaptiveLayerLoss(model, ours.MegaBatchMarginLoss(model, use_mini_batched_version=False))


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("pair")["train"].select(range(160))
    assert_trainer_equivalence(
        lambda m: AdaptiveLayerLoss(m, ours.MultipleNegativesRankingLoss(m)),
        lambda m: reference.AdaptiveLayerLoss(m, reference.MultipleNegativesRankingLoss(m)),
        data, tmp_path, model_name="tiny-bert")
