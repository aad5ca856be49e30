"""OnlineContrastiveLoss: ContrastiveLoss on the hard pairs of each batch only.

With distances d_i = D(u_i, v_i), labels y_i ∈ {0, 1} and margin m, a batch is split into
positive pairs P (y = 1) and negative pairs N (y = 0). A pair is *hard* when it is on the wrong
side of the other class:

    hard positives  P* = { i ∈ P : d_i > min_{j ∈ N} d_j }   (farther than the closest negative)
    hard negatives  N* = { i ∈ N : d_i < max_{j ∈ P} d_j }   (closer than the farthest positive)

    L = Σ_{i ∈ P*} d_i²  +  Σ_{i ∈ N*} max(0, m - d_i)²

A sum, not a mean, and without ContrastiveLoss's factor ½. Easy pairs (already correctly
separated from the other class) are ignored, so the batch's gradient goes where the ranking is
still wrong. When one class is missing from a batch, the missing threshold is replaced by the
mean distance of the class that is there (P* = pairs farther than the mean positive, N* = pairs
closer than the mean negative), as the reference does.

Paper: none of its own; the hard-pair mining of Hadsell et al. (2006)'s contrastive loss, used
by sentence-transformers for the Quora duplicate-questions example.

Data: (sentence1, sentence2) pairs with a 0/1 label (1 = similar), the lab's "pair-label"
format. Mix positives and negatives in every batch: mining needs both.

Knobs: ``distance_metric`` (a ``SiameseDistanceMetric`` member or any pairwise distance,
COSINE_DISTANCE by default) and ``margin`` (0.5), as in ContrastiveLoss. ``forward`` keeps the
reference's unused ``size_average`` argument, so calls that pass it still work.

Bad input: labels other than 0 and 1 raise a ``LossInputError`` (the reference warns on the first
batch and then silently drops such pairs). A batch with only positives or only negatives warns
once (``LossInputWarning``): the hard-pair rule needs both classes, the value then comes from the
fallback above, and a batch of one pair (or of equal distances) selects nothing, so nothing is
learned from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.contrastive import pair_distances
from losses.similarity import SiameseDistanceMetric, metric_name
from losses.validation import binary_labels


class OnlineContrastiveLoss(EmbeddingLoss):
    """Contrastive loss over the hard positive and hard negative pairs of the batch."""

    expected_inputs = "(sentence1, sentence2) pairs with a 0/1 label (1 = similar)"
    column_range = (2, 2)

    def __init__(
        self,
        model: nn.Module,
        distance_metric: Callable[[Tensor, Tensor], Tensor] = SiameseDistanceMetric.COSINE_DISTANCE,
        margin: float = 0.5,
    ) -> None:
        super().__init__(model)
        self.margin = margin
        self.distance_metric = distance_metric

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor,
                size_average: bool = False) -> Tensor:
        """Embed both columns and compute the loss (``size_average`` is accepted and ignored)."""
        return super().forward(sentence_features, labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """Loss from the two columns' (batch, dim) embeddings and (batch,) 0/1 labels."""
        name = type(self).__name__
        batch_size, _ = self.check_embeddings(embeddings)
        labels = binary_labels(name, self.expected_inputs, labels, batch_size)
        first, second = embeddings
        distances = pair_distances(name, self.distance_metric, first, second)  # (B,)
        positive = (labels == 1).to(distances.device)  # (B,) bool
        negative = ~positive
        has_positive, has_negative = bool(positive.any()), bool(negative.any())
        # A positive is hard when it is farther than the closest negative, a negative when it is
        # closer than the farthest positive. Without the other class, the mean distance of the
        # class itself stands in. The thresholds only select pairs: no gradient flows through them.
        with torch.no_grad():
            positive_bar = distances[negative].min() if has_negative else distances[positive].mean()
            negative_bar = distances[positive].max() if has_positive else distances[negative].mean()
        hard_positive = positive & (distances > positive_bar)  # (B,) bool
        hard_negative = negative & (distances < negative_bar)  # (B,) bool
        if has_positive != has_negative:
            self._warn_single_class(has_positive, int(positive.numel()),
                                    int((hard_positive | hard_negative).sum()))
        # Masks instead of indexing: unselected pairs contribute an exact 0 and a zero gradient.
        pull = torch.where(hard_positive, distances.pow(2), 0.0).sum()
        push = torch.where(hard_negative, F.relu(self.margin - distances).pow(2), 0.0).sum()
        return pull + push

    def _warn_single_class(self, positives_only: bool, pairs: int, selected: int) -> None:
        """Say (once per instance and case) that a batch lacked one of the two classes."""
        present = "positive (label 1)" if positives_only else "negative (label 0)"
        consequence = (f"only {selected} of {pairs} pairs were used" if selected else
                       "no pair was selected, so nothing was learned from this batch")
        self.warn_once(
            "single-class" if selected else "single-class-nothing-learned",
            f"a batch had only {present} pairs. Hard-pair mining needs both classes; each pair "
            f"was instead compared with its class's mean distance and {consequence}. Shuffle the "
            f"data (or use larger batches) so that every batch mixes positives and negatives.",
        )

    def get_config_dict(self) -> dict[str, Any]:
        """The metric (by its SiameseDistanceMetric name) and the margin."""
        return {
            "distance_metric": metric_name(self.distance_metric, SiameseDistanceMetric),
            "margin": self.margin,
        }
