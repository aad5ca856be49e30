"""ContrastiveLoss: pull matching pairs together, push non-matching pairs beyond a margin.

Formula, for pairs (u_i, v_i) with labels y_i ∈ {0, 1}, distance d_i = D(u_i, v_i) and margin m:

    l_i = ½ · ( y_i · d_i²  +  (1 - y_i) · max(0, m - d_i)² )
    L   = (1/B) Σ_i l_i          (size_average=True, the default)
    L   =       Σ_i l_i          (size_average=False)

A matching pair (y = 1) pays the square of its distance; a non-matching pair (y = 0) pays only
while it is closer than the margin, and is left alone once it is at least m apart.

Paper: Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an Invariant Mapping"
(CVPR 2006).

Data: (sentence1, sentence2) pairs with a 0/1 label (1 = same meaning), the lab's "pair-label"
format.

Knobs:
- ``distance_metric``: D, any function (n, dim), (n, dim) -> (n,). The members of
  ``SiameseDistanceMetric`` are COSINE_DISTANCE (1 - cos, the default; distances in [0, 2]),
  EUCLIDEAN and MANHATTAN (unbounded: pick the margin to suit the embeddings' scale).
- ``margin``: how far apart a non-matching pair must be before it stops contributing (0.5).
- ``size_average``: mean over the batch (True) or sum (False); the sum scales the gradient, and
  so the effective learning rate, with the batch size.

Labels other than 0 and 1 are refused with a ``LossInputError``. The reference only warns, on the
first batch an instance sees, and then uses a soft label y as a weight between the two terms
(0.7 means "70 % pull, 30 % push", which is not a contrastive objective and almost always means a
graded-score dataset was given to the wrong loss; CoSENTLoss, AnglELoss or CosineSimilarityLoss
fit those). Boolean labels are accepted (the reference fails on them with a torch error).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.similarity import SiameseDistanceMetric, metric_name
from losses.validation import LossInputError, binary_labels

__all__ = ["ContrastiveLoss", "SiameseDistanceMetric"]


def pair_distances(loss_name: str, distance_metric: Callable[[Tensor, Tensor], Tensor],
                   first: Tensor, second: Tensor) -> Tensor:
    """``distance_metric`` applied to two (batch, dim) columns -> (batch,) distances.

    Raises a ``LossInputError`` when a custom metric does not return one distance per pair (for
    example a matrix function such as ``cos_sim`` instead of a pairwise one).
    """
    distances = distance_metric(first, second)  # (B,)
    if not isinstance(distances, Tensor) or tuple(distances.shape) != (first.shape[0],):
        got = tuple(distances.shape) if isinstance(distances, Tensor) else type(distances).__name__
        raise LossInputError(
            f"{loss_name}: distance_metric must return one distance per pair, shape "
            f"({first.shape[0]},); got {got}. Use a pairwise function such as "
            f"SiameseDistanceMetric.COSINE_DISTANCE."
        )
    return distances


class ContrastiveLoss(EmbeddingLoss):
    """Squared distance for matching pairs, squared hinge below a margin for non-matching ones."""

    expected_inputs = "(sentence1, sentence2) pairs with a 0/1 label (1 = similar)"
    column_range = (2, 2)

    def __init__(
        self,
        model: nn.Module,
        distance_metric: Callable[[Tensor, Tensor], Tensor] = SiameseDistanceMetric.COSINE_DISTANCE,
        margin: float = 0.5,
        size_average: bool = True,
    ) -> None:
        super().__init__(model)
        self.distance_metric = distance_metric
        self.margin = margin
        self.size_average = size_average

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """Loss from the two columns' (batch, dim) embeddings and (batch,) 0/1 labels."""
        batch_size, _ = self.check_embeddings(embeddings)
        labels = binary_labels(type(self).__name__, self.expected_inputs, labels, batch_size)
        first, second = embeddings
        distances = pair_distances(type(self).__name__, self.distance_metric, first, second)  # (B,)
        # Labels become weights in at least float32 (float64 stays float64; half precision is
        # lifted, so the squares below do not underflow).
        similar = labels.to(device=distances.device,
                            dtype=torch.promote_types(distances.dtype, torch.float32))  # (B,)
        pull = similar * distances.pow(2)  # matching pairs: as close as possible
        push = (1 - similar) * F.relu(self.margin - distances).pow(2)  # others: at least m apart
        per_pair = 0.5 * (pull + push)  # (B,)
        return per_pair.mean() if self.size_average else per_pair.sum()

    def get_config_dict(self) -> dict[str, Any]:
        """The metric (by its SiameseDistanceMetric name), the margin and the reduction."""
        return {
            "distance_metric": metric_name(self.distance_metric, SiameseDistanceMetric),
            "margin": self.margin,
            "size_average": self.size_average,
        }

    @property
    def citation(self) -> str:
        """BibTeX of Hadsell, Chopra and LeCun (2006)."""
        return """
@inproceedings{hadsell2006dimensionality,
    author={Hadsell, R. and Chopra, S. and LeCun, Y.},
    booktitle={2006 IEEE Computer Society Conference on Computer Vision and Pattern Recognition (CVPR'06)},
    title={Dimensionality Reduction by Learning an Invariant Mapping},
    year={2006},
    volume={2},
    number={},
    pages={1735-1742},
    doi={10.1109/CVPR.2006.100}
}
"""  # noqa: E501 (bibliographic data, kept exactly as published)
