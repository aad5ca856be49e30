"""TripletLoss against the reference: values, gradients, config, bad input."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

from losses.similarity import TripletDistanceMetric
from losses.triplet import TripletLoss
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

METRICS = ["EUCLIDEAN", "COSINE", "MANHATTAN"]
MARGINS = [5, 1, 0.25, 0]
DTYPES = [torch.float32, torch.float64]
BATCHES = {"near-miss-negatives": [ANCHORS, POSITIVES, NEGATIVES],
           "easy-negatives": [ANCHORS, POSITIVES, MORE_NEGATIVES]}
# Each option on its own at the model level (the combinations run at the embedding level).
SINGLE_OPTIONS = [{}, *({"distance_metric": metric} for metric in METRICS),
                  *({"triplet_margin": margin} for margin in MARGINS[1:])]


def _pair(options: dict) -> tuple[dict, dict]:
    """Constructor arguments for ours and for the reference (metric names -> their members)."""
    ours, theirs = dict(options), dict(options)
    if "distance_metric" in options:
        ours["distance_metric"] = getattr(TripletDistanceMetric, options["distance_metric"])
        theirs["distance_metric"] = getattr(reference.TripletDistanceMetric,
                                            options["distance_metric"])
    return ours, theirs


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("batch", list(BATCHES))
@pytest.mark.parametrize("options", SINGLE_OPTIONS, ids=lambda o: str(o) or "defaults")
def test_model_parity(options, batch, dtype):
    ours, theirs = _pair(options)
    # float32: values only; gradients are compared in float64 (see REFERENCE-NOTES).
    assert_model_parity(lambda model: TripletLoss(model, **ours),
                        lambda model: reference.TripletLoss(model, **theirs),
                        BATCHES[batch], dtype=dtype, check_gradients=dtype == torch.float64)


def _cases() -> dict[str, list[torch.Tensor]]:
    anchor, positive, negative = random_embeddings(3, batch=8, dim=16, seed=4)
    near = [anchor, positive, anchor + 0.05 * negative]  # hard negatives: hinge active
    return {"random": [anchor, positive, negative], "hard-negatives": near,
            "one-row": [anchor[:1], positive[:1], negative[:1]]}


CASES = _cases()
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("margin", MARGINS)
@pytest.mark.parametrize("metric", METRICS)
def test_embedding_parity_every_combination(metric, margin, case):
    ours, theirs = _pair({"distance_metric": metric, "triplet_margin": margin})
    assert_embedding_parity(TripletLoss(None, **ours), reference.TripletLoss(None, **theirs),
                            CASES[case])


@pytest.mark.parametrize("identical", ["positive", "negative", "all"])
@pytest.mark.parametrize("metric", METRICS)
def test_embedding_parity_with_identical_rows(metric, identical):
    anchor, positive, negative = random_embeddings(3, batch=8, dim=16, seed=5)
    negative = anchor + 0.3 * negative  # near the anchor: the hinge is active
    if identical in ("positive", "all"):
        positive = torch.cat([anchor[:4], positive[4:]])  # half the pairs identical
    if identical in ("negative", "all"):
        negative = torch.cat([anchor[:4], negative[4:]])
    ours, theirs = _pair({"distance_metric": metric})
    assert_embedding_parity(TripletLoss(None, **ours), reference.TripletLoss(None, **theirs),
                            [anchor, positive, negative])


@pytest.mark.parametrize("metric", METRICS)
def test_identical_embeddings_give_finite_gradients(metric):
    embedding = torch.ones(4, 8, requires_grad=True)
    loss = TripletLoss(None, getattr(TripletDistanceMetric, metric))
    loss.compute_loss_from_embeddings([embedding, embedding, embedding], None).backward()
    assert torch.isfinite(embedding.grad).all()


def test_config_and_citation_match_the_reference():
    model = tiny_model()
    custom = lambda x, y: (x - y).abs().max(dim=-1).values  # noqa: E731
    settings = [*SINGLE_OPTIONS, {"distance_metric": "COSINE", "triplet_margin": 0.5}]
    for options in settings:
        ours_options, their_options = _pair(options)
        ours = TripletLoss(model, **ours_options)
        theirs = reference.TripletLoss(model, **their_options)
        assert ours.get_config_dict() == theirs.get_config_dict(), options
    assert (TripletLoss(model, custom).get_config_dict()
            == reference.TripletLoss(model, custom).get_config_dict())
    assert ours.citation == theirs.citation


def test_labels_are_ignored_as_in_the_reference():
    triplet = random_embeddings(3, batch=4)
    loss = TripletLoss(None)
    assert torch.equal(loss.compute_loss_from_embeddings(triplet, None),
                       loss.compute_loss_from_embeddings(triplet, torch.arange(4)))


def test_bad_input_names_the_loss_and_the_format():
    loss = TripletLoss(None)
    expected = r"TripletLoss expects \(anchor, positive, negative\) triplets, no labels: exactly 3"
    with pytest.raises(LossInputError, match=rf"{expected} text column\(s\); got 2"):
        loss.compute_loss_from_embeddings(random_embeddings(2, batch=4), None)
    with pytest.raises(LossInputError, match=rf"{expected} text column\(s\); got 4"):
        loss.compute_loss_from_embeddings(random_embeddings(4, batch=4), None)
    anchor, positive, negative = random_embeddings(3, batch=4)
    with pytest.raises(LossInputError, match=r"TripletLoss expects every column's embeddings as "
                                             r"\(batch, dim\) tensors of one shape"):
        loss.compute_loss_from_embeddings([anchor, positive, negative[:3]], None)


def test_forward_refuses_wrong_column_count_before_running_the_model():
    loss = TripletLoss(tiny_model())
    with pytest.raises(LossInputError, match="exactly 3 text column"):
        loss([{}, {}], None)


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("triplet")["train"].select(range(160))
    assert_trainer_equivalence(TripletLoss, reference.TripletLoss, data, tmp_path)


@pytest.mark.slow
def test_trainer_with_cosine_distance_ends_with_the_same_weights(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("triplet")["train"].select(range(160))
    assert_trainer_equivalence(
        lambda model: TripletLoss(model, TripletDistanceMetric.COSINE, triplet_margin=0.5),
        lambda model: reference.TripletLoss(model, reference.TripletDistanceMetric.COSINE,
                                            triplet_margin=0.5),
        data, tmp_path)
