"""TripletLoss: the negative must be at least a margin farther from the anchor than the positive.

Formula, for B given triplets (anchor a_i, positive p_i, negative n_i) and a distance d:

    L = (1/B) Σ_i [ d(a_i, p_i) - d(a_i, n_i) + margin ]₊        ([x]₊ = max(x, 0))

A triplet whose negative is already ``margin`` farther away than its positive gives no loss and
no gradient; the others pull the anchor towards the positive and push it from the negative.

Paper: the triplet hinge comes from Weinberger and Saul's large-margin nearest neighbours and
FaceNet (Schroff et al., 2015); the reference cites Hermans, Beyer and Leibe, "In Defense of the
Triplet Loss for Person Re-Identification" (2017).

Data: (anchor, positive, negative) text triplets, the lab's "triplet" format: exactly three
text columns. Labels are not used (the triplet structure is the supervision); any label column
is ignored, as in the reference.

Knobs:
- ``distance_metric``: a function (n, dim), (n, dim) -> (n,) comparing row i of one tensor with
  row i of the other. ``TripletDistanceMetric.EUCLIDEAN`` (default), ``.COSINE`` (1 - cosine
  similarity, in [0, 2]) or ``.MANHATTAN``; any such function works.
- ``triplet_margin``: how much farther the negative must be (default 5, suited to Euclidean
  distances of unnormalised embeddings; with COSINE, values below 1 make sense).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.mining import HERMANS_2017_BIBTEX
from losses.similarity import TripletDistanceMetric, metric_name


class TripletLoss(EmbeddingLoss):
    """Hinge on d(anchor, positive) - d(anchor, negative) + margin, averaged over the triplets."""

    expected_inputs = "(anchor, positive, negative) triplets, no labels"
    column_range = (3, 3)

    def __init__(
        self,
        model: nn.Module,
        distance_metric: Callable[[Tensor, Tensor], Tensor] = TripletDistanceMetric.EUCLIDEAN,
        triplet_margin: float = 5,
    ) -> None:
        super().__init__(model)
        self.distance_metric = distance_metric
        self.triplet_margin = triplet_margin

    def compute_loss_from_embeddings(self, embeddings: list[Tensor],
                                     labels: Tensor | None = None) -> Tensor:
        """Loss from the anchor, positive and negative (batch, dim) embeddings; labels unused."""
        self.check_embeddings(embeddings)
        anchor, positive, negative = embeddings
        to_positive = self.distance_metric(anchor, positive)  # (B,)
        to_negative = self.distance_metric(anchor, negative)  # (B,)
        return F.relu(to_positive - to_negative + self.triplet_margin).mean()

    def get_config_dict(self) -> dict[str, Any]:
        """The distance as ``TripletDistanceMetric.NAME`` (or its function name) and the margin."""
        return {"distance_metric": metric_name(self.distance_metric, TripletDistanceMetric),
                "triplet_margin": self.triplet_margin}

    @property
    def citation(self) -> str:
        """BibTeX of Hermans, Beyer and Leibe (2017), as the reference cites it."""
        return HERMANS_2017_BIBTEX
