"""ContrastiveLoss against the reference: values, gradients, config, bad input."""

from __future__ import annotations

import itertools

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

from losses.contrastive import ContrastiveLoss, SiameseDistanceMetric
from losses.validation import LossInputError
from tests.losses.parity import (
    ANCHORS,
    NEGATIVES,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    tiny_model,
)

METRICS = ["COSINE_DISTANCE", "EUCLIDEAN", "MANHATTAN"]
# Row 0 and row 4 of ANCHORS are the same text, and so are their positives.
SECOND = [POSITIVES[0], NEGATIVES[1], POSITIVES[2], NEGATIVES[3], POSITIVES[4], NEGATIVES[5]]
LABELS = torch.tensor([1, 0, 1, 0, 1, 0])


def both(metric: str | None = None, **options) -> tuple[dict, dict]:
    """The same options for our loss and the reference's, with each side's metric member."""
    if metric is None:
        return options, options
    return ({**options, "distance_metric": getattr(SiameseDistanceMetric, metric)},
            {**options, "distance_metric": getattr(reference.SiameseDistanceMetric, metric)})


MODEL_OPTIONS = [
    (None, {}), ("EUCLIDEAN", {}), ("MANHATTAN", {}), (None, {"margin": 1.0}),
    (None, {"size_average": False}),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("metric", "options"), MODEL_OPTIONS,
                         ids=["defaults", "euclidean", "manhattan", "margin", "sum"])
def test_model_parity(metric, options, dtype):
    ours, theirs = both(metric, **options)
    assert_model_parity(lambda model: ContrastiveLoss(model, **ours),
                        lambda model: reference.ContrastiveLoss(model, **theirs),
                        [ANCHORS, SECOND], LABELS, dtype=dtype,
                        check_gradients=dtype == torch.float64)


def test_embedding_parity_for_every_option_combination():
    first, second = random_embeddings(2)
    second[:2] = first[:2]  # identical pairs: distance 0 (plus pairwise_distance's eps)
    labels = torch.tensor([1, 0, 1, 0, 0, 1, 1, 0])
    for metric, margin, size_average in itertools.product(METRICS, [0.0, 0.5, 2.0, 10.0],
                                                          [True, False]):
        ours, theirs = both(metric, margin=margin, size_average=size_average)
        for rows in (slice(None), slice(0, 1), slice(1, 3)):  # whole batch, 1 row, 2 rows
            assert_embedding_parity(ContrastiveLoss(None, **ours),
                                    reference.ContrastiveLoss(None, **theirs),
                                    [first[rows], second[rows]], labels[rows])


@pytest.mark.parametrize("labels", [torch.ones(8, dtype=torch.long), torch.zeros(8),
                                    torch.tensor([[1], [0], [1], [1], [0], [0], [1], [0]])],
                         ids=["all-positive", "all-negative-float", "column-vector"])
def test_embedding_parity_for_one_class_and_label_layouts(labels):
    for metric in METRICS:
        ours, theirs = both(metric)
        assert_embedding_parity(ContrastiveLoss(None, **ours),
                                reference.ContrastiveLoss(None, **theirs),
                                random_embeddings(2, seed=3), labels)


def test_boolean_labels_work_where_the_reference_fails():
    first, second = random_embeddings(2)
    labels = torch.tensor([1, 0, 1, 0, 0, 1, 1, 0])
    with pytest.raises(RuntimeError):  # the reference cannot compute 1 - labels for bools
        reference.ContrastiveLoss(None).compute_loss_from_embeddings([first, second],
                                                                     labels.bool())
    ours = ContrastiveLoss(None).compute_loss_from_embeddings([first, second], labels.bool())
    theirs = reference.ContrastiveLoss(None).compute_loss_from_embeddings([first, second], labels)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("metric", METRICS)
def test_identical_embeddings_give_finite_gradients(metric):
    embedding = torch.ones(4, 8, requires_grad=True)
    loss = ContrastiveLoss(None, getattr(SiameseDistanceMetric, metric), margin=1.0)
    loss.compute_loss_from_embeddings([embedding, embedding], torch.tensor([1, 0, 1, 0])).backward()
    assert torch.isfinite(embedding.grad).all()


def test_config_and_citation_match_the_reference():
    model = tiny_model()

    def custom_distance(x, y):
        return (x - y).abs().max(dim=-1).values

    settings = [both(), both("EUCLIDEAN", margin=2.0), both("MANHATTAN", size_average=False),
                ({"distance_metric": custom_distance}, {"distance_metric": custom_distance})]
    for ours, theirs in settings:
        assert (ContrastiveLoss(model, **ours).get_config_dict()
                == reference.ContrastiveLoss(model, **theirs).get_config_dict())
    assert ContrastiveLoss(model).citation == reference.ContrastiveLoss(model).citation


def test_soft_labels_raise_where_the_reference_only_warns():
    pair = random_embeddings(2, batch=4)
    soft = torch.tensor([0.75, 1.0, 0.0, 1.0])
    with pytest.warns(UserWarning, match="binary labels"):  # reference: warns, then trains on it
        reference.ContrastiveLoss(None).compute_loss_from_embeddings(pair, soft)
    with pytest.raises(LossInputError, match=r"ContrastiveLoss expects \(sentence1, sentence2\) "
                                             r"pairs with a 0/1 label.*labels 0 or 1; got 0\.75"):
        ContrastiveLoss(None).compute_loss_from_embeddings(pair, soft)
    with pytest.raises(LossInputError, match="labels 0 or 1; got 2"):
        ContrastiveLoss(None).compute_loss_from_embeddings(pair, torch.tensor([0, 1, 2, 1]))


def test_bad_input_names_the_loss_and_the_format():
    loss = ContrastiveLoss(None)
    pair = random_embeddings(2, batch=4)
    with pytest.raises(LossInputError, match=r"ContrastiveLoss expects \(sentence1, sentence2\) "
                                             r"pairs.*exactly 2.*got 3"):
        loss.compute_loss_from_embeddings(random_embeddings(3, batch=4), torch.zeros(4))
    with pytest.raises(LossInputError, match=r"ContrastiveLoss expects .*got no labels"):
        loss.compute_loss_from_embeddings(pair, None)
    with pytest.raises(LossInputError, match=r"ContrastiveLoss expects .*shape \(4,\); got .*"
                                             r"shape \(5,\)"):
        loss.compute_loss_from_embeddings(pair, torch.zeros(5))
    with pytest.raises(LossInputError, match=r"every column's embeddings .*\(4, 16\), \(3, 16\)"):
        loss.compute_loss_from_embeddings([pair[0], pair[1][:3]], torch.zeros(4))
    matrix = ContrastiveLoss(None, distance_metric=lambda x, y: x @ y.T)
    with pytest.raises(LossInputError, match=r"ContrastiveLoss: distance_metric must return one "
                                             r"distance per pair, shape \(4,\); got \(4, 4\)"):
        matrix.compute_loss_from_embeddings(pair, torch.zeros(4))


def test_forward_refuses_wrong_column_count_before_running_the_model():
    with pytest.raises(LossInputError, match="exactly 2 text column"):
        ContrastiveLoss(tiny_model())([{}], torch.zeros(1))


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("pair-label")["train"].shuffle(seed=0).select(range(160))
    assert_trainer_equivalence(ContrastiveLoss, reference.ContrastiveLoss, data, tmp_path)
