"""GlobalOrthogonalRegularizationLoss: spread the embeddings of unrelated texts over the sphere.

For one column's embeddings x_1..x_B of dimension d, let S_ij = sim(x_i, x_j) over the
B·(B-1) pairs i ≠ j (cosine by default). Two moments of these "unrelated" similarities:

    M1 = mean_{i≠j} S_ij          mean term:           M1²
    M2 = mean_{i≠j} S_ij²         second-moment term:  max(0, M2 - 1/d)

For directions drawn uniformly on the unit sphere, the mean cosine is 0 and its second moment is
1/d, so the two terms push the batch towards that spread-out state, without pulling any pair
together. Each column (anchors, positives, ...) is regularised on its own and the per-column terms
are combined by ``aggregation`` ("mean" or "sum"), then multiplied by their weights.

Returns a dict, as the reference does: ``{"gor_mean": mean_weight · agg(M1²), "gor_second_moment":
second_moment_weight · agg(max(0, M2 - 1/d))}``; a term whose weight is 0 or None is left out.
The trainer sums and logs the components.

Paper: Zhang, Yu, Kumar and Chang, "Learning Spread-out Local Feature Descriptors" (ICCV 2017);
EmbeddingGemma (Schechter Vera et al. 2025) uses the second-moment term alone with "sum".

Data: any text columns, labels ignored (it is a regulariser, usually added to a main loss such as
MultipleNegativesRankingLoss, e.g. in multi-task training). A batch of one row has no pairs: both
terms are 0 (with a zero gradient), like the reference.

Knobs: ``similarity_fct`` (matrix similarity, ``cos_sim`` by default), ``mean_weight``,
``second_moment_weight`` (0 or None drops the term; at least one must be non-zero) and
``aggregation`` over columns.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.similarity import cos_sim, similarity_fct_name


def spread_moments(similarity: Tensor) -> tuple[Tensor, Tensor]:
    """(M1, M2) of the off-diagonal entries of a (B, B) similarity matrix (0, 0 when B = 1).

    The diagonal is zeroed in place, as the reference does: no (B, B) mask or copy. (A
    similarity whose backward needs its own output then fails loudly in autograd, in both.)
    """
    batch = similarity.shape[0]
    off_diagonal = similarity.fill_diagonal_(0.0)  # (B, B)
    pairs = max(batch * (batch - 1), 1)  # a batch of one: 0 / 1, not 0 / 0
    return _Moments.apply(off_diagonal, pairs)


class _Moments(torch.autograd.Function):
    """(Σ S / n, Σ S² / n) of a (B, B) matrix S, n = ``pairs``.

    The reference's arithmetic, forward and backward, operation for operation (so values and
    gradients are bit for bit the same), with the backward in one (B, B) buffer:
    ∂/∂S = g1 / n + (2 S) · (g2 / n), where autograd's square would allocate four.
    """

    @staticmethod
    def forward(ctx: Any, matrix: Tensor, pairs: int) -> tuple[Tensor, Tensor]:
        ctx.save_for_backward(matrix)
        ctx.pairs = pairs
        return matrix.sum() / pairs, matrix.pow(2).sum() / pairs

    @staticmethod
    def backward(ctx: Any, first: Tensor | None, second: Tensor | None
                 ) -> tuple[Tensor | None, None]:
        (matrix,) = ctx.saved_tensors
        grad = None
        if second is not None:
            grad = matrix.mul(2.0).mul_(second / ctx.pairs)  # (B, B): (2 S) · g2 / n
        if first is not None:
            mean_part = first / ctx.pairs
            grad = mean_part.expand_as(matrix).clone() if grad is None else grad.add_(mean_part)
        return grad, None


class GlobalOrthogonalRegularizationLoss(EmbeddingLoss):
    """Penalise a high mean and a high second moment of the similarities within each column."""

    expected_inputs = "any text columns (labels are ignored)"
    column_range = (1, None)

    def __init__(
        self,
        model: nn.Module,
        similarity_fct=cos_sim,
        mean_weight: float | None = 1.0,
        second_moment_weight: float | None = 1.0,
        aggregation: Literal["mean", "sum"] = "mean",
    ) -> None:
        super().__init__(model)
        name = type(self).__name__
        if not mean_weight and not second_moment_weight:
            raise ValueError(f"{name}: mean_weight and second_moment_weight are both zero/None; "
                             "at least one term must be on")
        if aggregation not in ("mean", "sum"):
            raise ValueError(f"{name}: aggregation must be 'mean' or 'sum'; got {aggregation!r}")
        self.similarity_fct = similarity_fct
        self.mean_weight = mean_weight
        self.second_moment_weight = second_moment_weight
        self.aggregation = aggregation

    def compute_gor(self, embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """Unweighted (M1², max(0, M2 - 1/d)) of one column's (B, d) embeddings."""
        first, second = spread_moments(self.similarity_fct(embeddings, embeddings))
        return first.pow(2), torch.relu(second - 1.0 / embeddings.shape[1])

    def compute_loss_from_embeddings(self, embeddings: list[Tensor],
                                     labels: Tensor | None = None) -> dict[str, Tensor]:
        """``{"gor_mean": ..., "gor_second_moment": ...}`` from per-column (B, d) embeddings."""
        self.check_embeddings(embeddings)
        mean_terms, second_moment_terms = zip(*map(self.compute_gor, embeddings), strict=True)
        combine = torch.sum if self.aggregation == "sum" else torch.mean
        components = {}
        if self.mean_weight:
            components["gor_mean"] = self.mean_weight * combine(torch.stack(mean_terms))
        if self.second_moment_weight:
            components["gor_second_moment"] = self.second_moment_weight * combine(
                torch.stack(second_moment_terms))
        return components

    def get_config_dict(self) -> dict[str, Any]:
        """Settings as in the reference (the similarity function by its ``__name__``)."""
        return {
            # The reference writes similarity_fct.__name__; callables without one (a partial,
            # a module) crash there, here they get the readable name MNRL's config uses.
            "similarity_fct": getattr(self.similarity_fct, "__name__", None)
            or similarity_fct_name(self.similarity_fct),
            "mean_weight": self.mean_weight,
            "second_moment_weight": self.second_moment_weight,
            "aggregation": self.aggregation,
        }

    @property
    def citation(self) -> str:
        """Zhang et al. 2017, the spread-out regulariser."""
        return """
@misc{zhang2017learningspreadoutlocalfeature,
      title={Learning Spread-out Local Feature Descriptors},
      author={Xu Zhang and Felix X. Yu and Sanjiv Kumar and Shih-Fu Chang},
      year={2017},
      eprint={1708.06320},
      archivePrefix={arXiv},
      primaryClass={cs.CV},
      url={https://arxiv.org/abs/1708.06320},
}
"""
