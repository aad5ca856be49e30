"""MultipleNegativesSymmetricRankingLoss (deprecated): InfoNCE in both directions, averaged.

Formula, for pairs (q_i, d_i) in a batch of B, similarity sim and scale s:

    L = (1/B) Σ_i [ -s·sim(q_i, d_i) + ½ log Σ_c exp(s·sim(q_i, c))
                                     + ½ log Σ_j exp(s·sim(q_j, d_i)) ]

the average of the usual query -> documents cross-entropy and the document -> queries one: every
query must find its document, and every document its query.

Paper: Günther et al., "Jina Embeddings 2: 8192-Token General-Purpose Text Embeddings for Long
Documents" (2023).

Data: (anchor, positive) pairs, no labels (the lab's "pair" format). Extra negative columns are
accepted: they join the query -> documents softmax only.

This class only exists for old code: it is exactly
``MultipleNegativesRankingLoss(model, scale, similarity_fct, gather_across_devices,
directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction")`` and reports that
loss's config and citation. Like the reference, constructing it emits a ``DeprecationWarning``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from typing_extensions import deprecated

from losses.multiple_negatives_ranking import MultipleNegativesRankingLoss
from losses.similarity import cos_sim


@deprecated(
    "MultipleNegativesSymmetricRankingLoss is deprecated: use MultipleNegativesRankingLoss with "
    "directions=('query_to_doc', 'doc_to_query') and partition_mode='per_direction', which "
    "computes exactly the same loss."
)
class MultipleNegativesSymmetricRankingLoss(MultipleNegativesRankingLoss):
    """MultipleNegativesRankingLoss with the symmetric (query <-> document) directions."""

    expected_inputs = "(anchor, positive) pairs without labels"

    def __init__(
        self,
        model: nn.Module,
        scale: float = 20.0,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim,
        gather_across_devices: bool = False,
    ) -> None:
        super().__init__(
            model,
            scale=scale,
            similarity_fct=similarity_fct,
            gather_across_devices=gather_across_devices,
            directions=("query_to_doc", "doc_to_query"),
            partition_mode="per_direction",
        )
