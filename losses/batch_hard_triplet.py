"""BatchHardTripletLoss: per anchor, only the hardest positive and the hardest negative count.

Formula, for a batch of B labelled sentences with distance matrix D (D[i, j] = d(row i, row j)):

    L = (1/B) Σ_a [ max_{p: y_p = y_a, p ≠ a} D[a, p] - min_{n: y_n ≠ y_a} D[a, n] + margin ]₊

The farthest sentence of the anchor's class and the nearest sentence of another class form one
triplet per anchor; the loss asks the second to be ``margin`` farther than the first. An anchor
whose label occurs once uses 0 as its positive distance (it still pushes its nearest negative
beyond the margin). The mining itself lives in ``losses.mining`` (``batch_hard_terms``).

Paper: Hermans, Beyer and Leibe, "In Defense of the Triplet Loss for Person Re-Identification"
(2017), https://arxiv.org/abs/1703.07737.

Data: single sentences with integer class labels, the lab's "sentence-label" format: one text
column and a label column. Every batch needs several labels with >= 2 examples each; the lab's
trainer uses a label-balanced sampler (sentence-transformers: ``BatchSamplers.GROUP_BY_LABEL``).

Knobs:
- ``distance_metric``: a function (B, dim) -> (B, B) distance matrix:
  ``BatchHardTripletLossDistanceFunction.euclidean_distance`` (default), ``.cosine_distance``, or
  your own (e.g. ``functools.partial(euclidean_distance, squared=True)``).
- ``margin``: how much farther the hardest negative must be than the hardest positive (default
  5, suited to Euclidean distances of unnormalised embeddings; with cosine, below 1).

Mining is visible: after each call ``last_mined`` holds the ``MinedTriplets`` used (one per
anchor that has a positive and a negative; active = term > 0); ``mine(embeddings, labels)`` gives
the same without a model or gradient.

Bad input (see ``BatchTripletLoss``): more than one text column and fractional labels raise; a
batch of a single class (no negatives) returns the reference's value, the margin for Euclidean
distances, which trains nothing, and warns once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from losses.mining import (
    BatchTripletLoss,
    MinedTriplets,
    anchor_negative_mask,
    anchor_positive_mask,
    batch_hard_terms,
    valid_triplet_mask,
)
from losses.similarity import BatchHardTripletLossDistanceFunction, metric_name


class BatchHardTripletLoss(BatchTripletLoss):
    """Triplet hinge on each anchor's farthest positive and nearest negative, averaged."""

    def __init__(
        self,
        model: nn.Module,
        distance_metric: Callable[[Tensor], Tensor] = BatchHardTripletLossDistanceFunction
        .euclidean_distance,
        margin: float = 5,
    ) -> None:
        super().__init__(model, distance_metric)
        self.triplet_margin = margin

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """Loss from one column's (batch, dim) embeddings and (batch,) class labels."""
        anchors, labels = self.checked_batch(embeddings, labels)
        terms, self.last_mined = self.mined_terms(self.distance_matrix(anchors), labels)
        return terms.mean()

    def mined_terms(self, distances: Tensor, labels: Tensor) -> tuple[Tensor, MinedTriplets]:
        """(B,) per-anchor hinge terms and the record of the triplets."""
        return batch_hard_terms(distances, labels, self.triplet_margin)

    # The reference exposes its label masks as static methods; same meaning here (the (B, B, B)
    # one is for small batches only: no loss uses it).
    get_triplet_mask = staticmethod(valid_triplet_mask)
    get_anchor_positive_triplet_mask = staticmethod(anchor_positive_mask)
    get_anchor_negative_triplet_mask = staticmethod(anchor_negative_mask)

    def get_config_dict(self) -> dict[str, Any]:
        """The distance function's name and the margin."""
        return {"distance_metric": metric_name(self.distance_metric),
                "margin": self.triplet_margin}
