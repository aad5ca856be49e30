"""OnlineContrastiveLoss against the reference: values, gradients, config, bad input, warnings."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

from losses.online_contrastive import OnlineContrastiveLoss
from losses.similarity import SiameseDistanceMetric
from losses.validation import LossInputError, LossInputWarning
from tests.losses.parity import (
    ANCHORS,
    NEGATIVES,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    random_embeddings,
    tiny_model,
)

METRICS = ["COSINE_DISTANCE", "EUCLIDEAN", "MANHATTAN"]
SECOND = [POSITIVES[0], NEGATIVES[1], POSITIVES[2], NEGATIVES[3], POSITIVES[4], NEGATIVES[5]]
LABELS = torch.tensor([1, 0, 1, 0, 1, 0])


def both(metric: str | None = None, **options) -> tuple[dict, dict]:
    """The same options for our loss and the reference's, with each side's metric member."""
    if metric is None:
        return options, options
    return ({**options, "distance_metric": getattr(SiameseDistanceMetric, metric)},
            {**options, "distance_metric": getattr(reference.SiameseDistanceMetric, metric)})


def pair(ours_options: dict, reference_options: dict):
    return (OnlineContrastiveLoss(None, **ours_options),
            reference.OnlineContrastiveLoss(None, **reference_options))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("metric", "options"), [(None, {}), ("EUCLIDEAN", {}),
                                                 ("MANHATTAN", {}), (None, {"margin": 2.0})],
                         ids=["defaults", "euclidean", "manhattan", "margin"])
def test_model_parity(metric, options, dtype):
    ours, theirs = both(metric, **options)
    assert_model_parity(lambda model: OnlineContrastiveLoss(model, **ours),
                        lambda model: reference.OnlineContrastiveLoss(model, **theirs),
                        [ANCHORS, SECOND], LABELS, dtype=dtype,
                        check_gradients=dtype == torch.float64)


BATCHES = {
    "mixed": torch.tensor([1, 0, 1, 0, 0, 1, 1, 0]),
    "one-positive": torch.tensor([0, 0, 1, 0, 0, 0, 0, 0]),
    "all-positive": torch.ones(8, dtype=torch.long),
    "all-negative": torch.zeros(8, dtype=torch.long),
}


@pytest.mark.parametrize("batch", list(BATCHES))
def test_embedding_parity_for_every_option_and_batch_composition(batch):
    labels = BATCHES[batch]
    first, second = random_embeddings(2, seed=1)
    second[:2] = first[:2]  # identical pairs
    for metric, margin in itertools.product(METRICS, [0.0, 0.5, 3.0, 20.0]):
        for rows in (slice(None), slice(0, 1), slice(2, 4)):  # whole batch, 1 row, 2 rows
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LossInputWarning)
                assert_embedding_parity(*pair(*both(metric, margin=margin)),
                                        [first[rows], second[rows]], labels[rows])


def test_perfectly_separated_batch_gives_zero_like_the_reference():
    first, second = random_embeddings(2, seed=2)
    second[:4] = first[:4] + 1e-3  # positives almost identical, negatives random: no hard pair
    labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])
    ours, theirs = pair({}, {})
    assert_embedding_parity(ours, theirs, [first, second], labels)
    assert ours.compute_loss_from_embeddings([first, second], labels).item() == 0.0


def test_single_class_batch_warns_once_and_says_when_nothing_is_learned():
    loss = OnlineContrastiveLoss(None)
    first, second = random_embeddings(2, seed=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss.compute_loss_from_embeddings([first, second], BATCHES["mixed"])
    assert not caught, "a batch with both classes must not warn"
    with pytest.warns(LossInputWarning, match=r"OnlineContrastiveLoss: a batch had only negative "
                                              r"\(label 0\) pairs.*only \d of 8 pairs were used"):
        loss.compute_loss_from_embeddings([first, second], BATCHES["all-negative"])
    with warnings.catch_warnings(record=True) as caught:  # the same case again: silent
        warnings.simplefilter("always")
        loss.compute_loss_from_embeddings([first, second], BATCHES["all-positive"])
    assert not caught
    with pytest.warns(LossInputWarning, match="only positive .*nothing was learned"):
        value = loss.compute_loss_from_embeddings([first[:1], second[:1]], torch.ones(1))
    assert value.item() == 0.0


def test_identical_embeddings_give_finite_gradients():
    for metric in METRICS:
        embedding = torch.ones(4, 8, requires_grad=True)
        loss = OnlineContrastiveLoss(None, getattr(SiameseDistanceMetric, metric), margin=1.0)
        loss.compute_loss_from_embeddings([embedding, embedding],
                                          torch.tensor([1, 0, 1, 0])).backward()
        assert torch.isfinite(embedding.grad).all()


def test_forward_accepts_the_references_unused_size_average_argument():
    model = tiny_model()
    loss = OnlineContrastiveLoss(model)
    features = [model.preprocess(ANCHORS), model.preprocess(SECOND)]
    assert torch.isfinite(loss(features, LABELS, size_average=True))


def test_config_and_citation_match_the_reference():
    model = tiny_model()
    for ours, theirs in [both(), both("EUCLIDEAN", margin=1.5), both("MANHATTAN")]:
        assert (OnlineContrastiveLoss(model, **ours).get_config_dict()
                == reference.OnlineContrastiveLoss(model, **theirs).get_config_dict())
    assert OnlineContrastiveLoss(model).citation is None
    assert getattr(reference.OnlineContrastiveLoss(model), "citation", None) is None


def test_soft_labels_raise_where_the_reference_silently_drops_the_pairs():
    first, second = random_embeddings(2, batch=4)
    soft = torch.tensor([0.75, 1.0, 0.0, 1.0])
    with pytest.warns(UserWarning, match="binary labels"):
        reference.OnlineContrastiveLoss(None).compute_loss_from_embeddings([first, second], soft)
    with pytest.raises(LossInputError, match=r"OnlineContrastiveLoss expects \(sentence1, "
                                             r"sentence2\) pairs with a 0/1 label.*got 0\.75"):
        OnlineContrastiveLoss(None).compute_loss_from_embeddings([first, second], soft)


def test_bad_input_names_the_loss_and_the_format():
    loss = OnlineContrastiveLoss(None)
    columns = random_embeddings(2, batch=4)
    with pytest.raises(LossInputError, match=r"OnlineContrastiveLoss expects .*exactly 2.*got 1"):
        loss.compute_loss_from_embeddings(columns[:1], torch.zeros(4))
    with pytest.raises(LossInputError, match=r"OnlineContrastiveLoss expects .*got no labels"):
        loss.compute_loss_from_embeddings(columns, None)
    with pytest.raises(LossInputError, match=r"OnlineContrastiveLoss expects .*shape \(4,\)"):
        loss.compute_loss_from_embeddings(columns, torch.zeros(2, 2))
    with pytest.raises(LossInputError, match="exactly 2 text column"):
        OnlineContrastiveLoss(tiny_model())([{}, {}, {}], torch.zeros(1))
