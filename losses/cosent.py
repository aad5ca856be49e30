"""CoSENTLoss: rank the pairs of a batch by similarity in the order of their gold scores.

Formula, for pairs (u_i, v_i) with gold scores y_i, similarities s_i = λ · sim(u_i, v_i) and
scale λ:

    L = log( 1 + Σ_{(i, j) : y_i > y_j} exp(s_j - s_i) )

Every pair of pairs whose gold scores are ordered (y_i > y_j) adds a penalty that grows
smoothly as the lower-scored pair j comes close to, or overtakes, the higher-scored pair i. Only
the *order* of the scores matters, not their values, so a pair is never pulled to an exact
target similarity as in CosineSimilarityLoss. Pairs with equal scores are not compared.

Computed without the (B, B) matrix of differences: with the pairs sorted by decreasing score,
the pairs scored higher than pair j form a prefix, and

    Σ_{i : y_i > y_j} exp(s_j - s_i) = exp(s_j + log Σ_{i in that prefix} exp(-s_i)),

where the log-sums of all prefixes come from one cumulative log-sum-exp. Memory O(B), time
O(B log B) for the sort. (In float32 the log-sum-exp form loses a little accuracy when λ·sim
is large; the default λ = 20 with cosine similarities is well within range. Half-precision
embeddings are compared in float32, as sentence-transformers' pairwise functions do.)

Paper: Huang et al., "CoSENT: Consistent Sentence Embedding via Similarity Ranking" (IEEE/ACM
TASLP 2024), after Su Jianlin's 2022 blog post.

Data: (sentence1, sentence2) pairs with a float score (the lab's "pair-score" format); 0/1
labels ("pair-label") work too, then every positive pair is ranked above every negative one.
Any range of scores works, because only their order is used.

Knobs:
- ``scale``: λ, the inverse temperature (20). Larger values sharpen the penalty onto the worst
  mis-ordered pairs.
- ``similarity_fct``: a *pairwise* similarity (n, dim), (n, dim) -> (n,); ``pairwise_cos_sim``
  by default, or ``pairwise_dot_score``, ``pairwise_euclidean_sim``, ``pairwise_manhattan_sim``
  from ``losses.similarity`` (or the functions of the same names in sentence-transformers'
  util).

Bad input: labels None, of the wrong shape or with NaN raise ``LossInputError``; so do more than
two text columns (the reference silently ignores every column after the second). A batch whose
scores are all equal gives exactly 0 (nothing to rank, nothing learned) and warns once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.similarity import pairwise_cos_sim, pairwise_cos_sim_once
from losses.validation import LossInputError, check_finite, label_vector


def cosent_ranking_loss(scaled_similarities: Tensor, labels: Tensor) -> Tensor:
    """log(1 + Σ_{y_i > y_j} exp(s_j - s_i)) of (B,) scaled similarities s and (B,) labels y.

    Returns a scalar; 0 when no two labels differ.
    """
    # Sort by decreasing label: for pair j, the pairs with a strictly higher label are then the
    # first n_higher[j] positions, n_higher[j] being the number of labels above y_j (counted by
    # a binary search in the same labels in increasing order).
    sorted_labels, order = torch.sort(labels, descending=True)  # (B,)
    similarities = scaled_similarities[order]  # (B,)
    at_most = torch.searchsorted(sorted_labels.flip(0), sorted_labels, right=True)  # #{y <= y_j}
    n_higher = labels.numel() - at_most  # (B,)

    # After the shift by one, prefix[k] = log Σ_{i < k} exp(-s_i): the log-sum over the first k
    # sorted pairs, with prefix[0] = log 0 = -inf (nothing ranks above the top group).
    inclusive = torch.logcumsumexp(-similarities, dim=0)  # (B,), sums over i <= k
    prefix = torch.cat((similarities.new_full((1,), float("-inf")), inclusive))  # (B + 1,)
    # log Σ_{i : y_i > y_j} exp(s_j - s_i), one entry per pair j; -inf where none is higher.
    penalties = similarities + prefix[n_higher]  # (B,)
    # The "1 +" inside the log is a zero logit next to the penalties.
    return torch.logsumexp(torch.cat((similarities.new_zeros(1), penalties)), dim=0)


class CoSENTLoss(EmbeddingLoss):
    """Softly penalise every pair of pairs whose similarities are ordered against their scores."""

    expected_inputs = "(sentence1, sentence2) pairs with a float similarity score (or 0/1 label)"
    column_range = (2, 2)

    def __init__(
        self,
        model: nn.Module,
        scale: float = 20.0,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = pairwise_cos_sim,
    ) -> None:
        super().__init__(model)
        self.similarity_fct = similarity_fct
        self.scale = scale

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """Loss from the two columns' (batch, dim) embeddings and (batch,) scores."""
        name = type(self).__name__
        batch_size, _ = self.check_embeddings(embeddings)
        labels = label_vector(name, self.expected_inputs, labels, batch_size)
        if labels.is_complex():
            raise LossInputError(f"{name} expects {self.expected_inputs}; got complex labels")
        check_finite(name, "scores", labels)
        first, second = embeddings
        # The pairwise similarities of losses.similarity compute half precision in float32.
        # Each column enters the similarity once: the default may take the leaner backward.
        similarity = (pairwise_cos_sim_once if self.similarity_fct is pairwise_cos_sim
                      else self.similarity_fct)
        similarities = similarity(first, second)  # (B,)
        if not isinstance(similarities, Tensor) or tuple(similarities.shape) != (batch_size,):
            got = (tuple(similarities.shape) if isinstance(similarities, Tensor)
                   else type(similarities).__name__)
            raise LossInputError(
                f"{name}: similarity_fct must be a pairwise similarity returning one value per "
                f"pair, shape ({batch_size},); got {got}. Use e.g. pairwise_cos_sim, not cos_sim.")
        if similarities.dtype in (torch.float16, torch.bfloat16):
            similarities = similarities.float()  # exp and log-sums need float32's range
        if labels.dtype == torch.bool:
            labels = labels.to(torch.uint8)  # sortable
        labels = labels.to(similarities.device)
        if batch_size > 0 and bool((labels == labels[0]).all()):
            self.warn_once("tied", "every pair in a batch had the same score, so there was "
                                   "nothing to rank: the loss is 0 and nothing was learned from "
                                   "it. Shuffle the data or use larger batches.")
        return cosent_ranking_loss(similarities * self.scale, labels)

    def get_config_dict(self) -> dict[str, Any]:
        """The scale and the similarity function's name."""
        return {"scale": self.scale, "similarity_fct": self.similarity_fct.__name__}

    @property
    def citation(self) -> str:
        """BibTeX of Huang et al. (2024)."""
        return """
@article{10531646,
    author={Huang, Xiang and Peng, Hao and Zou, Dongcheng and Liu, Zhiwei and Li, Jianxin and Liu, Kay and Wu, Jia and Su, Jianlin and Yu, Philip S.},
    journal={IEEE/ACM Transactions on Audio, Speech, and Language Processing},
    title={CoSENT: Consistent Sentence Embedding via Similarity Ranking},
    year={2024},
    doi={10.1109/TASLP.2024.3402087}
}
"""  # noqa: E501 (bibliographic data, kept exactly as published)
