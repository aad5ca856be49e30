"""BatchHardSoftMarginTripletLoss: batch-hard mining with a soft margin instead of a fixed one.

Formula, for a batch of B labelled sentences with distance matrix D:

    L = (1/B) Σ_a softplus( max_{p: y_p = y_a, p ≠ a} D[a, p] - min_{n: y_n ≠ y_a} D[a, n] )

with softplus(x) = log(1 + eˣ). Instead of switching off once the negative is a margin farther
than the positive, the loss keeps pushing, ever more gently (softplus(x) ≈ eˣ for x ≪ 0), so
there is no margin to tune. The triplets are mined as in BatchHardTripletLoss (farthest positive,
nearest negative per anchor; see ``losses.mining.batch_hard_terms``).

Paper: Hermans, Beyer and Leibe, "In Defense of the Triplet Loss for Person Re-Identification"
(2017), section 2 ("soft-margin"), https://arxiv.org/abs/1703.07737.

Data: single sentences with integer class labels ("sentence-label" format), several labels per
batch with >= 2 examples each.

Knobs:
- ``distance_metric``: (B, dim) -> (B, B) distances, as for BatchHardTripletLoss (default
  Euclidean). Nothing else: that is the point of the soft margin.

Mining is visible: ``last_mined`` / ``mine(embeddings, labels)`` give one triplet per anchor that
has a positive and a negative. Since softplus is never 0, "active" is defined as a triplet still
in the wrong order: its hardest negative is nearer than its hardest positive (D[a, p] > D[a, n],
i.e. a term above log 2). Watching that count fall is watching the loss work.

Bad input: as for BatchHardTripletLoss (one text column, integer labels; a one-class batch gives
the reference's useless value and a warning, once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from losses.batch_hard_triplet import BatchHardTripletLoss
from losses.mining import MinedTriplets, batch_hard_terms
from losses.similarity import BatchHardTripletLossDistanceFunction, metric_name


class BatchHardSoftMarginTripletLoss(BatchHardTripletLoss):
    """softplus(farthest-positive distance - nearest-negative distance), averaged over anchors."""

    def __init__(
        self,
        model: nn.Module,
        distance_metric: Callable[[Tensor], Tensor] = BatchHardTripletLossDistanceFunction
        .euclidean_distance,
    ) -> None:
        # A subclass of BatchHardTripletLoss, as in the reference; its margin is not used.
        super().__init__(model, distance_metric)

    def mined_terms(self, distances: Tensor, labels: Tensor) -> tuple[Tensor, MinedTriplets]:
        """(B,) per-anchor softplus terms and the record of the triplets."""
        return batch_hard_terms(distances, labels, margin=None)

    def get_config_dict(self) -> dict[str, Any]:
        """The distance function's name (there is no margin)."""
        return {"distance_metric": metric_name(self.distance_metric)}
