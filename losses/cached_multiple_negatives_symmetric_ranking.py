"""CachedMultipleNegativesSymmetricRankingLoss (deprecated): the symmetric InfoNCE, gradient-cached.

Formula, for pairs (q_i, d_i) in a batch of B, similarity sim and scale s:

    L = (1/B) Σ_i [ -s·sim(q_i, d_i) + ½ log Σ_c exp(s·sim(q_i, c))
                                     + ½ log Σ_j exp(s·sim(q_j, d_i)) ]

every query must find its document among all documents, and every document its query among all
queries; the two cross-entropies are averaged. Computed with gradient caching (GradCache, see
losses/cached_multiple_negatives_ranking.py): the values and gradients of the whole batch with
the activation memory of one mini-batch, at the cost of a second forward pass.

Papers: Günther et al., "Jina Embeddings 2" (2023) for the symmetric loss; Gao et al., "Scaling
Deep Contrastive Learning Batch Size under Memory Limited Setup" (2021) for the caching.

Data: (anchor, positive) pairs, no labels (the lab's "pair" format). Extra negative columns are
accepted: they join the query -> documents softmax only.

Knobs: ``scale``, ``similarity_fct``, ``gather_across_devices`` as in
MultipleNegativesRankingLoss; ``mini_batch_size``, ``mini_batch_num_tokens`` and
``show_progress_bar`` as in CachedMultipleNegativesRankingLoss.

This class only exists for old code: it is exactly ``CachedMultipleNegativesRankingLoss(...,
directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction")`` and reports that
loss's config and citation. Like the reference, constructing it emits a ``DeprecationWarning``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from typing_extensions import deprecated

from losses.cached_multiple_negatives_ranking import CachedMultipleNegativesRankingLoss
from losses.similarity import cos_sim


@deprecated(
    "CachedMultipleNegativesSymmetricRankingLoss is deprecated: use "
    "CachedMultipleNegativesRankingLoss with directions=('query_to_doc', 'doc_to_query') and "
    "partition_mode='per_direction', which computes exactly the same loss."
)
class CachedMultipleNegativesSymmetricRankingLoss(CachedMultipleNegativesRankingLoss):
    """CachedMultipleNegativesRankingLoss with the symmetric (query <-> document) directions."""

    expected_inputs = "(anchor, positive) pairs without labels"

    def __init__(
        self,
        model: nn.Module,
        scale: float = 20.0,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim,
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        gather_across_devices: bool = False,
        show_progress_bar: bool = False,
    ) -> None:
        super().__init__(
            model,
            scale=scale,
            similarity_fct=similarity_fct,
            mini_batch_size=mini_batch_size,
            mini_batch_num_tokens=mini_batch_num_tokens,
            gather_across_devices=gather_across_devices,
            directions=("query_to_doc", "doc_to_query"),
            partition_mode="per_direction",
            show_progress_bar=show_progress_bar,
        )
