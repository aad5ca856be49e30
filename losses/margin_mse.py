"""MarginMSELoss: copy the teacher's score *margins* between a positive and each negative.

Formula, for a query q_i, a positive p_i and negatives n_i1..n_iN, the student's similarity s
(``similarity_fct``) and the teacher's margins m_ij:

    L = (1/(B·N)) Σ_i Σ_j ( (s(q_i, p_i) - s(q_i, n_ij)) - m_ij )²

Only differences of scores are matched, never the scores themselves, so the student may use a
different scale or offset than the teacher (e.g. a cross-encoder teacher with unbounded logits).

Paper: Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture
Knowledge Distillation" (2020).

Data: (query, positive, negative_1, ..., negative_N) columns, N >= 1 (the lab's "teacher-margin"
format for N = 1). The labels may be either

- margins m_ij = t(q, p) - t(q, n_j): shape (batch,) or (batch, 1) for one negative, (batch, N)
  for N negatives;
- the teacher's raw scores [t(q, p), t(q, n_1), ..., t(q, n_N)]: shape (batch, 1 + N); the
  margins are then taken from them.

The width decides which one is meant (N margins versus 1 + N scores), as in the reference. Any
other shape, NaN or infinite labels, and boolean labels raise ``LossInputError`` (the reference
silently returns a NaN loss for NaN labels). Integer labels are used as numbers.

``similarity_fct``: a pairwise similarity (n, dim), (n, dim) -> (n,): ``pairwise_dot_score``
(default, as in the paper: margins of dot products are unbounded like the teacher's) or e.g.
``pairwise_cos_sim`` (then the margins lie in [-2, 2]; scale the teacher's accordingly).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.similarity import pairwise_dot_score, similarity_fct_name
from losses.validation import LossInputError, check_finite, describe


class MarginMSELoss(EmbeddingLoss):
    """Squared error between the student's and the teacher's positive-minus-negative margins."""

    expected_inputs = ("(query, positive, negative_1, ..., negative_n) columns with the teacher's "
                       "margins t(q, p) - t(q, n_i), shape (batch,) or (batch, n), or its raw "
                       "scores [t(q, p), t(q, n_1), ..., t(q, n_n)], shape (batch, 1 + n)")
    column_range = (3, None)

    def __init__(
        self,
        model: nn.Module,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = pairwise_dot_score,
    ) -> None:
        super().__init__(model)
        self.similarity_fct = similarity_fct

    def teacher_margins(self, labels: Tensor | None, batch_size: int, negatives: int) -> Tensor:
        """The teacher's margins as a (batch, negatives) tensor, from either label form."""
        name = type(self).__name__
        if labels is None:
            raise LossInputError(f"{name} expects {self.expected_inputs}; got no labels "
                                 f"(labels=None)")
        labels = torch.as_tensor(labels)
        if labels.dtype == torch.bool or labels.is_complex():
            raise LossInputError(f"{name} expects {self.expected_inputs}: real-valued scores; "
                                 f"got {describe(labels)}")
        if labels.shape == (batch_size, negatives + 1):  # raw scores: positive first
            margins = labels[:, :1] - labels[:, 1:]
        elif labels.shape == (batch_size,):  # one margin per row
            margins = labels.unsqueeze(1)
        else:
            margins = labels
        if margins.shape != (batch_size, negatives):
            raise LossInputError(
                f"{name} expects {self.expected_inputs}; with {negatives} negative column(s) "
                f"that is margins of shape ({batch_size}, {negatives})"
                + (f" or ({batch_size},)" if negatives == 1 else "")
                + f" or scores of shape ({batch_size}, {negatives + 1}); got {describe(labels)}")
        check_finite(name, "teacher scores", margins)
        return margins.detach()

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """Loss from the (batch, dim) embeddings of query, positive and negatives."""
        batch_size, _ = self.check_embeddings(embeddings)
        query, positive, *negatives = embeddings
        target = self.teacher_margins(labels, batch_size, len(negatives))  # (batch, N)

        positive_score = self.similarity_fct(query, positive)  # (batch,)
        margins = torch.stack(
            [positive_score - self.similarity_fct(query, negative) for negative in negatives],
            dim=1,
        )  # (batch, N)
        # No cast of the target: torch's type promotion gives the reference's result dtype.
        return ((margins - target) ** 2).mean()

    def get_config_dict(self) -> dict[str, Any]:
        """The similarity function's name."""
        return {"similarity_fct": similarity_fct_name(self.similarity_fct)}

    @property
    def citation(self) -> str:
        return """
@misc{hofstätter2021improving,
    title={Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge Distillation},
    author={Sebastian Hofstätter and Sophia Althammer and Michael Schröder and Mete Sertkan and Allan Hanbury},
    year={2021},
    eprint={2010.02666},
    archivePrefix={arXiv},
    primaryClass={cs.IR}
}
"""  # noqa: E501
