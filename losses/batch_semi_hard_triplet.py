"""BatchSemiHardTripletLoss: each anchor-positive pair meets its semi-hard negative.

Formula, for a batch of B labelled sentences with distance matrix D:

    for every positive pair (a, p) (y_a = y_p, a ≠ p):
        n*(a, p) = the nearest negative with D[a, n] > D[a, p]      (semi-hard: farther than the
                                                                      positive, but maybe within
                                                                      the margin)
                   or, if no negative is that far, the farthest negative of a
    L = (1/#pairs) Σ_(a,p) [ D[a, p] - D[a, n*(a, p)] + margin ]₊

Semi-hard negatives avoid the hardest ones (often mislabelled or outliers, which can collapse
training early) while still giving a gradient. The average runs over all positive pairs, active
or not. The mining lives in ``losses.mining`` (``semi_hard_negatives``, ``semi_hard_terms``).

Paper: Schroff, Kalenichenko and Philbin, "FaceNet: A Unified Embedding for Face Recognition and
Clustering" (CVPR 2015), https://arxiv.org/abs/1503.03832, as TensorFlow Addons implements it;
the reference cites Hermans, Beyer and Leibe (2017).

Data: single sentences with integer class labels ("sentence-label" format), several labels per
batch with >= 2 examples each.

Knobs:
- ``distance_metric``: (B, dim) -> (B, B) distances, default Euclidean
  (``BatchHardTripletLossDistanceFunction``), or cosine, or your own.
- ``margin``: how much farther than the positive a negative must be (default 5).

Cost: O(B²) memory and O(B² log B) time (each row's negatives are sorted once, then every pair
finds its negative by binary search).

Mining is visible: ``last_mined`` / ``mine(embeddings, labels)`` list one triplet per positive
pair whose anchor has a negative (``num_valid``); active = term > 0.

Bad input: as for the other batch triplet losses. In a one-class batch no anchor has a negative;
the reference then uses the row's smallest distance (D[a, a] = 0 for Euclidean) in its place,
giving mean([D[a, p] + margin]₊), a loss that only pulls each class together: we return that
same value and warn once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from losses.mining import BatchTripletLoss, MinedTriplets, semi_hard_terms
from losses.similarity import BatchHardTripletLossDistanceFunction, metric_name


class BatchSemiHardTripletLoss(BatchTripletLoss):
    """Triplet hinge on every positive pair with its semi-hard negative, averaged over pairs."""

    def __init__(
        self,
        model: nn.Module,
        distance_metric: Callable[[Tensor], Tensor] = BatchHardTripletLossDistanceFunction
        .euclidean_distance,
        margin: float = 5,
    ) -> None:
        super().__init__(model, distance_metric)
        self.margin = margin

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """Loss from one column's (batch, dim) embeddings and (batch,) class labels."""
        anchors, labels = self.checked_batch(embeddings, labels)
        terms, self.last_mined = self.mined_terms(self.distance_matrix(anchors), labels)
        # No positive pair at all: the reference divides 0 by 1e-16, giving 0.
        return terms.sum() / max(terms.numel(), 1e-16)

    def mined_terms(self, distances: Tensor, labels: Tensor) -> tuple[Tensor, MinedTriplets]:
        """(pairs,) hinge terms, one per positive pair, and the record."""
        return semi_hard_terms(distances, labels, self.margin)

    def get_config_dict(self) -> dict[str, Any]:
        """The distance function's name and the margin."""
        return {"distance_metric": metric_name(self.distance_metric), "margin": self.margin}
