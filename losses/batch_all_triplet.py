"""BatchAllTripletLoss: the triplet hinge on every valid triplet of a labelled batch.

Formula, for a batch of B labelled sentences with distance matrix D (D[i, j] = d(row i, row j)):

    terms  t(a, p, n) = [ D[a, p] - D[a, n] + margin ]₊   for every valid triplet
                        (y_a = y_p, a ≠ p, y_n ≠ y_a)
    L = Σ t(a, p, n) / ( #{ t(a, p, n) > 1e-16 } + 1e-16 )

The sum is divided by the number of *active* triplets, not of all valid ones: as training
satisfies more triplets, the remaining ones keep a full-sized gradient instead of being diluted.

Paper: Hermans, Beyer and Leibe, "In Defense of the Triplet Loss for Person Re-Identification"
(2017), https://arxiv.org/abs/1703.07737 ("batch all").

Data: single sentences with integer class labels ("sentence-label" format), several labels per
batch with >= 2 examples each (a label-balanced sampler, e.g. ``BatchSamplers.GROUP_BY_LABEL``).

Knobs:
- ``distance_metric``: (B, dim) -> (B, B) distances: ``BatchHardTripletLossDistanceFunction
  .euclidean_distance`` (default), ``.cosine_distance``, or your own.
- ``margin``: how much farther each negative must be than each positive (default 5).

Cost: a batch has up to B³ triplets, but nothing here is cubic in memory. For each anchor a and
negative n, the triplets with a positive term are those with a's farthest positives, found by
sorting a's positives (its class's members) and bisecting, so the sum and the count come from
(B, B) tensors (``losses.mining.all_triplet_terms``, anchors in blocks): O(B²) memory,
O(B² log W) time for classes of at most W examples. The reference builds (anchor-positive pairs
x B) tensors plus int64 indices of every active triplet just to count them: at batch 1024 ours
is ~50x faster and ~50x leaner, and batch 4096 takes about a second where the reference would
need tens of GB (benchmarks/RESULTS.md).

Mining is visible: ``last_mined`` always has ``num_valid`` (valid triplets) and ``num_active``
(terms above 1e-16, the denominator above); the triplets themselves, with their terms, are listed
only when there are at most ``listing_limit`` (100 000) valid ones, else the lists are None.
``mine(embeddings, labels)`` gives the same without a model or gradient.

Bad input: more than one text column and fractional labels raise; a batch with no valid triplet
(one class, or every label once) returns 0 like the reference and warns once.

One deliberate difference: when no triplet is active, our gradient is 0. The reference keeps a
slope of 1 on terms of exactly 0 and divides it by (0 + 1e-16): with identical embeddings and
margin 0, that is rounding noise times 1e16 (seen: gradients of 1e9 in float32).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from losses.mining import (
    ACTIVE_THRESHOLD,
    LISTING_LIMIT,
    BatchTripletLoss,
    MinedTriplets,
    all_triplet_terms,
)
from losses.similarity import BatchHardTripletLossDistanceFunction, metric_name


class BatchAllTripletLoss(BatchTripletLoss):
    """Triplet hinge summed over all valid triplets, divided by the number of active ones."""

    listing_limit: int = LISTING_LIMIT

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
        total, self.last_mined = self.mined_terms(self.distance_matrix(anchors), labels)
        if self.last_mined.num_active == 0:
            # Nothing active: the value is the reference's (0, barring terms below 1e-16), but
            # the gradient is 0. The reference keeps slope 1 on terms of exactly 0 and divides it
            # by 1e-16: with identical embeddings and margin 0, rounding noise times 1e16.
            return total.detach() / ACTIVE_THRESHOLD + 0.0 * total
        return total / (self.last_mined.num_active + ACTIVE_THRESHOLD)

    def mined_terms(self, distances: Tensor, labels: Tensor) -> tuple[Tensor, MinedTriplets]:
        """The sum of all valid triplets' terms (a scalar) and the record."""
        return all_triplet_terms(distances, labels, self.triplet_margin, self.listing_limit)

    def get_config_dict(self) -> dict[str, Any]:
        """The distance function's name and the margin."""
        return {"distance_metric": metric_name(self.distance_metric),
                "margin": self.triplet_margin}
