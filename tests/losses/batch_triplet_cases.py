"""Cases and checks shared by the tests of the four batch triplet losses.

Each test file (test_batch_all_triplet.py, ...) runs the same battery against its loss: model-
and embedding-level parity with the reference for every distance function, margin and hard
batch, the label checks and warnings, the mining record, the memory bound.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from losses.mining import MinedTriplets
from losses.similarity import BatchHardTripletLossDistanceFunction as Ours
from losses.similarity import TripletDistanceMetric
from losses.validation import LossInputError, LossInputWarning
from tests.losses.parity import (
    ANCHORS,
    NEGATIVES,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    tiny_model,
)

Theirs = reference.BatchHardTripletLossDistanceFunction

# Distance functions, ours and the reference's, by name.
DISTANCES = {
    "euclidean": (Ours.euclidean_distance, Theirs.euclidean_distance),
    "cosine": (Ours.cosine_distance, Theirs.cosine_distance),
    "eucledian-alias": (Ours.eucledian_distance, Theirs.eucledian_distance),
    "squared-partial": (functools.partial(Ours.euclidean_distance, squared=True),
                        functools.partial(Theirs.euclidean_distance, squared=True)),
    "squared-lambda": (lambda x: Ours.euclidean_distance(x, squared=True),
                       lambda x: Theirs.euclidean_distance(x, squared=True)),
}
MARGINS = [5, 1, 0.25, 0]

# 18 texts: anchors, their paraphrases, near-miss negatives. ANCHORS[0] == ANCHORS[4] and
# POSITIVES[0] == POSITIVES[4]: identical embeddings, under one label or under two.
TEXTS = ANCHORS + POSITIVES + NEGATIVES
LABEL_SETS = {
    "topics": torch.tensor([0, 1, 2, 3, 0, 4] * 2 + [5, 5, 6, 6, 7, 7]),
    "duplicates-across-labels": torch.tensor(list(range(6)) * 2 + [6, 6, 7, 7, 8, 8]),
    "one-class": torch.zeros(18, dtype=torch.long),
    "all-distinct": torch.arange(18),
}
NO_TRIPLET = "needs several labels per batch with >= 2 examples each"


def loss_options(loss_name: str, distance: str | None, margin: float | None, side: int) -> dict:
    """Constructor keyword arguments for ours (side 0) or the reference (side 1)."""
    options = {}
    if distance is not None:
        options["distance_metric"] = DISTANCES[distance][side]
    if margin is not None and loss_name != "BatchHardSoftMarginTripletLoss":
        options["margin"] = margin
    return options


def _expect_label_warning(labels: Tensor):
    """pytest.warns for batches without any valid triplet, else a no-op context."""
    values, counts = torch.unique(labels, return_counts=True)
    if values.numel() == 1 or bool((counts < 2).all()):
        return pytest.warns(LossInputWarning, match=NO_TRIPLET)
    return contextlib.nullcontext()


def model_parity(ours: type, labels_name: str, dtype: torch.dtype, distance: str | None = None,
                 margin: float | None = None) -> None:
    """Model-level parity on TEXTS; float32 compares values only (see REFERENCE-NOTES)."""
    theirs = getattr(reference, ours.__name__)
    labels = LABEL_SETS[labels_name]
    with _expect_label_warning(labels):
        assert_model_parity(
            lambda model: ours(model, **loss_options(ours.__name__, distance, margin, 0)),
            lambda model: theirs(model, **loss_options(ours.__name__, distance, margin, 1)),
            [TEXTS], labels, dtype=dtype, check_gradients=dtype == torch.float64)


def embedding_cases() -> dict[str, tuple[Tensor, Tensor]]:
    """Named (embeddings (B, dim) float64, labels (B,)) batches with the hard cases."""
    generator = torch.Generator().manual_seed(3)

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    random = randn(12, 8)
    duplicates = randn(12, 8)
    duplicates[1:4] = duplicates[0]  # identical rows, under labels 0, 1, 0, 1
    identical = randn(1, 8).expand(10, 8).clone()
    # Small integer coordinates: many exactly equal distances, so tie-breaking is exercised.
    ties = torch.randint(-1, 2, (16, 3), generator=generator).double()
    return {
        "random": (random, torch.randint(0, 3, (12,), generator=generator)),
        "duplicates": (duplicates, torch.tensor([0, 1, 0, 1, 2, 2, 0, 1, 2, 3, 3, 0])),
        "identical": (identical, torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 0])),
        "ties": (ties, torch.randint(0, 3, (16,), generator=generator)),
        "singleton-labels-mixed": (random, torch.tensor([0, 0, 1, 2, 3, 3, 4, 5, 5, 5, 6, 7])),
        "one-class": (random, torch.zeros(12, dtype=torch.long)),
        "all-distinct": (random, torch.arange(12)),
        "one-row": (randn(1, 8), torch.tensor([4])),
        "two-rows-one-label": (randn(2, 8), torch.tensor([1, 1])),
        "two-rows-two-labels": (randn(2, 8), torch.tensor([1, 2])),
        "larger": (randn(48, 16), torch.randint(0, 5, (48,), generator=generator)),
        "column-labels-as-floats": (random, torch.tensor([[0.0], [1.0], [2.0]] * 4)),
    }


def embedding_parity(ours: type, embeddings: Tensor, labels: Tensor, distance: str,
                     margin: float) -> None:
    """Embedding-level parity for one case, warnings about label problems silenced."""
    theirs = getattr(reference, ours.__name__)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossInputWarning)
        assert_embedding_parity(ours(None, **loss_options(ours.__name__, distance, margin, 0)),
                                theirs(None, **loss_options(ours.__name__, distance, margin, 1)),
                                [embeddings], labels)


def assert_finite_gradients_for_identical_embeddings(ours: type) -> None:
    """Every distance and margin: identical embeddings give a finite (here: zero) gradient."""
    for distance in DISTANCES:
        for margin in MARGINS:
            embeddings = torch.ones(6, 4, requires_grad=True)
            loss = ours(None, **loss_options(ours.__name__, distance, margin, 0))
            value = loss.compute_loss_from_embeddings([embeddings], torch.tensor([0, 0, 1, 1, 2,
                                                                                  2]))
            value.backward()
            assert torch.isfinite(value), (distance, margin)
            assert torch.isfinite(embeddings.grad).all(), (distance, margin)


def assert_config_and_citation_match(ours: type) -> None:
    """get_config_dict for several settings (same function objects where names hold addresses)
    and the citation equal the reference's."""
    theirs = getattr(reference, ours.__name__)
    model = tiny_model()
    shared = functools.partial(Ours.euclidean_distance, squared=True)
    settings = [{}, {"distance_metric": "cosine"}, {"distance_metric": "eucledian"},
                {"distance_metric": "lambda"}, {"distance_metric": "partial"}, {"margin": 0.5},
                {"distance_metric": "cosine", "margin": 1}]
    for setting in settings:
        ours_options, their_options = {}, {}
        choice = setting.get("distance_metric")
        if choice in ("cosine", "eucledian"):
            name = "cosine_distance" if choice == "cosine" else "eucledian_distance"
            ours_options["distance_metric"] = getattr(Ours, name)
            their_options["distance_metric"] = getattr(Theirs, name)
        elif choice == "lambda":
            ours_options["distance_metric"] = their_options["distance_metric"] = DISTANCES[
                "squared-lambda"][0]
        elif choice == "partial":
            ours_options["distance_metric"] = their_options["distance_metric"] = shared
        if "margin" in setting and ours.__name__ != "BatchHardSoftMarginTripletLoss":
            ours_options["margin"] = their_options["margin"] = setting["margin"]
        mine, theirs_loss = ours(model, **ours_options), theirs(model, **their_options)
        assert mine.get_config_dict() == theirs_loss.get_config_dict(), setting
    assert mine.citation == theirs_loss.citation


def assert_bad_input_is_explained(ours: type) -> None:
    """Wrong columns, labels and distance functions: clear errors naming the loss and format."""
    name = ours.__name__
    loss = ours(None)
    one = [torch.randn(4, 3)]
    labels = torch.tensor([0, 0, 1, 1])
    with pytest.raises(LossInputError, match=rf"{name} expects single sentences \(one text "
                                             r"column\) with integer class labels.*exactly 1.*"
                                             r"got 2"):
        loss.compute_loss_from_embeddings(one * 2, labels)
    with pytest.raises(LossInputError, match=rf"{name} expects .*got no labels"):
        loss.compute_loss_from_embeddings(one, None)
    with pytest.raises(LossInputError, match=rf"{name} expects .*shape \(4,\); got .*\(5,\)"):
        loss.compute_loss_from_embeddings(one, torch.zeros(5, dtype=torch.long))
    with pytest.raises(LossInputError, match=rf"{name} expects .*shape \(4,\); got .*\(2, 2\)"):
        loss.compute_loss_from_embeddings(one, labels.view(2, 2))
    with pytest.raises(LossInputError, match=rf"{name} expects .*integer class labels; got "
                                             r"fractional values such as 0.5"):
        loss.compute_loss_from_embeddings(one, torch.tensor([0.0, 0.5, 1.0, 1.0]))
    with pytest.raises(LossInputError, match=rf"{name} expects .*got an empty batch"):
        loss.compute_loss_from_embeddings([torch.zeros(0, 3)], torch.zeros(0))
    # A pairwise metric (two arguments) where a matrix function (one argument) is needed.
    with pytest.raises(TypeError, match=rf"{name}: distance_metric must take one \(batch, dim\) "
                                        r"tensor.*calling it failed"):
        ours(None, distance_metric=TripletDistanceMetric.EUCLIDEAN).compute_loss_from_embeddings(
            one, labels)
    with pytest.raises(LossInputError, match=rf"{name}: distance_metric must return a \(4, 4\) "
                                             r"distance matrix; got shape \(4,\)"):
        ours(None, distance_metric=lambda x: x.norm(dim=1)).compute_loss_from_embeddings(
            one, labels)
    # Batches without any valid triplet: the value is computed, with one warning per instance.
    with pytest.warns(LossInputWarning, match=rf"{name}: all 4 examples of the batch have the "
                                              rf"same label \(3\).*{NO_TRIPLET}"):
        loss.compute_loss_from_embeddings(one, torch.full((4,), 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss.compute_loss_from_embeddings(one, torch.full((4,), 3))  # warned once already
    with pytest.warns(LossInputWarning, match=rf"{name}: the 4 examples of the batch all have "
                                              rf"different labels.*{NO_TRIPLET}"):
        loss.compute_loss_from_embeddings(one, torch.arange(4))


def assert_forward_refuses_wrong_column_count(ours: type) -> None:
    """forward stops before running the model (the reference would embed column 0 only)."""
    loss = ours(tiny_model())
    with pytest.raises(LossInputError, match="exactly 1 text column"):
        loss([{}, {}], torch.zeros(2))


def assert_records_its_triplets(ours: type, distance: str = "euclidean",
                                margin: float = 1.0) -> MinedTriplets:
    """``last_mined`` after a call: detached, label-valid triplets, equal to ``mine``'s."""
    embeddings, labels = embedding_cases()["random"]
    loss = ours(None, **loss_options(ours.__name__, distance, margin, 0))
    assert loss.last_mined is None
    leaf = embeddings.clone().requires_grad_(True)
    loss.compute_loss_from_embeddings([leaf], labels)
    record = loss.last_mined
    assert isinstance(record, MinedTriplets) and record.is_listed
    for tensor in (record.anchor, record.positive, record.negative, record.losses, record.active):
        assert not tensor.requires_grad and tensor.grad_fn is None
    assert record.anchor.dtype == torch.long and len(record) == record.num_valid > 0
    for a, p, n in record.as_tuples():
        assert labels[a] == labels[p] and a != p and labels[n] != labels[a]
    assert int(record.active.sum()) == record.num_active
    again = loss.mine(embeddings, labels)
    assert again.as_tuples() == record.as_tuples()
    assert (again.num_valid, again.num_active) == (record.num_valid, record.num_active)
    torch.testing.assert_close(again.losses, record.losses)
    assert loss.last_mined is record  # mine() leaves the record alone
    return record


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operation produces."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(result):
            if isinstance(leaf, Tensor):
                self.largest = max(self.largest, leaf.numel())
        return result


def largest_intermediate(loss: torch.nn.Module, batch: int = 64, classes: int = 4) -> int:
    """Largest tensor (elements) in one forward and backward pass of ``loss`` on embeddings."""
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(batch, 8, generator=generator, requires_grad=True)
    labels = torch.randint(0, classes, (batch,), generator=generator)
    with LargestTensor() as monitor:
        loss.compute_loss_from_embeddings([embeddings], labels).backward()
    return monitor.largest
