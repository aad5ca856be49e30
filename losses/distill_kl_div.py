"""DistillKLDivLoss: match the student's ranking distribution over candidates to the teacher's.

Formula, for a query q_i with candidates d_i0 (the positive), d_i1..d_iN (negatives), teacher
scores t_ij, the student's similarity s (``similarity_fct``) and temperatures T_s, T_t:

    teacher:  p_ij = softmax_j( t_ij / T_t )
    student:  log q_ij = log_softmax_j( s(q_i, d_ij) / T_s )
    L = T_s² · (1/B) Σ_i Σ_j p_ij · (log p_ij - log q_ij)       (KL(p || q), mean over queries)

Terms with p_ij = 0 count as 0, so a teacher score of -inf removes a candidate from the target.
The factor T_s² (Hinton et al. 2015) keeps the gradients' size roughly independent of the
temperature when both temperatures are equal and at least 1.

Paper: Lin, Yang and Lin, "Distilling Dense Representations for Ranking using Tightly-Coupled
Teachers" (2020). Separate student and teacher temperatures follow the reference (DenseOn /
LateOn).

Data: (query, positive, negative_1, ..., negative_N) columns, N >= 1, and the teacher's scores
[t(q, p), t(q, n_1), ..., t(q, n_N)] as labels of shape (batch, 1 + N) (the lab's
"teacher-scores" format). Raw scores, not margins: for margins use MarginMSELoss.

Knobs:
- ``similarity_fct``: pairwise student similarity, ``pairwise_dot_score`` by default.
- ``temperature`` (default 1.0): both temperatures at once. Higher -> softer distributions, the
  teacher's ranking among the negatives matters more; lower -> closer to "only the top one".
- ``student_temperature`` / ``teacher_temperature``: override one side (None = ``temperature``).
  The loss is scaled by the *student* temperature squared.
Every temperature must be a positive finite number (ValueError otherwise, as in the reference).

Checks: a label width other than 1 + N, labels None, boolean labels, NaN or +inf teacher scores
and rows whose scores are all -inf raise ``LossInputError`` (the reference checks NaN on its
first batch only and lets +inf through to a NaN loss). The reference logs once, on the first
batch, when the teacher temperature is so low that softmax underflows some teacher
probabilities to exactly 0 (those candidates then carry no gradient); ours checks every batch
and warns once per loss instance (``LossInputWarning``) with the temperature to use instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.similarity import pairwise_dot_score, similarity_fct_name
from losses.validation import LossInputError, describe


class DistillKLDivLoss(EmbeddingLoss):
    """KL divergence between the teacher's and the student's softmax over the candidates."""

    expected_inputs = ("(query, positive, negative_1, ..., negative_n) columns with the teacher's "
                       "scores [t(q, p), t(q, n_1), ..., t(q, n_n)] as labels of shape "
                       "(batch, 1 + num_negatives)")
    column_range = (3, None)

    def __init__(
        self,
        model: nn.Module,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = pairwise_dot_score,
        temperature: float = 1.0,
        student_temperature: float | None = None,
        teacher_temperature: float | None = None,
    ) -> None:
        super().__init__(model)
        self.similarity_fct = similarity_fct
        self.temperature = temperature
        self.student_temperature = (temperature if student_temperature is None
                                    else student_temperature)
        self.teacher_temperature = (temperature if teacher_temperature is None
                                    else teacher_temperature)
        for knob in ("temperature", "student_temperature", "teacher_temperature"):
            value = getattr(self, knob)
            if not 0 < value < math.inf:  # also refuses NaN
                raise ValueError(f"{type(self).__name__}: {knob} must be a positive finite "
                                 f"number; got {value}")

    def teacher_scores(self, labels: Tensor | None, batch_size: int, candidates: int) -> Tensor:
        """The (batch, candidates) teacher scores, checked."""
        name = type(self).__name__
        if labels is None:
            raise LossInputError(f"{name} expects {self.expected_inputs}; got no labels "
                                 f"(labels=None)")
        labels = torch.as_tensor(labels)
        if labels.shape != (batch_size, candidates):
            hint = (" These look like margins: use MarginMSELoss for margins."
                    if labels.shape in ((batch_size,), (batch_size, candidates - 1)) else "")
            raise LossInputError(
                f"{name} expects {self.expected_inputs}: with {candidates - 1} negative "
                f"column(s) that is ({batch_size}, {candidates}); got {describe(labels)}.{hint}")
        if labels.dtype == torch.bool or labels.is_complex():
            raise LossInputError(f"{name} expects real-valued teacher scores; got "
                                 f"{describe(labels)}")
        return labels.detach()

    def _check_teacher(self, scores: Tensor, probabilities: Tensor) -> None:
        """Refuse NaN / +inf / all -inf rows; warn once if the softmax underflowed to 0."""
        # The usual batch in one test: every probability above 0 rules out NaN and +inf scores
        # (their rows' softmax is NaN), -inf ones and underflow (exact zeros).
        if bool((probabilities > 0).all()):
            return
        scores = scores.to(probabilities.dtype)  # integer scores too
        bad_values = (scores.isnan() | (scores == math.inf)).any()
        empty_rows = (scores == -math.inf).all(dim=1).any()
        finite = torch.isfinite(scores)
        underflows = ((probabilities == 0) & finite).sum()
        # One transfer to the host for all three checks.
        bad_values, empty_rows, underflows = torch.stack(
            [bad_values.long(), empty_rows.long(), underflows.long()]).tolist()
        name = type(self).__name__
        if bad_values:
            raise LossInputError(f"{name} got NaN or +inf teacher scores; the loss and every "
                                 f"gradient would be NaN. Check the label column")
        if empty_rows:
            raise LossInputError(f"{name} got a row whose teacher scores are all -inf: no "
                                 f"candidate is left to distil")
        if underflows:
            spread = (scores.masked_fill(~finite, 0).amax(dim=1)
                      - scores.masked_fill(~finite, 0).amin(dim=1)).max().item()
            self.warn_once(
                "underflow",
                f"teacher_temperature={self.teacher_temperature} makes the softmax of "
                f"{underflows} of {scores.numel()} teacher scores exactly 0, so those candidates "
                f"give no gradient (the widest row spans {spread:.3g}). Raise "
                f"teacher_temperature (in float32, above about {spread / 100:.3g})")

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """Loss from the (batch, dim) embeddings of query and candidates and the teacher scores."""
        batch_size, _ = self.check_embeddings(embeddings)
        query, *candidates = embeddings
        teacher = self.teacher_scores(labels, batch_size, len(candidates))  # (batch, 1 + N)

        # Teacher distribution, in the labels' own (floating) dtype.
        teacher_probabilities = torch.softmax(teacher / self.teacher_temperature, dim=1)
        self._check_teacher(teacher, teacher_probabilities)

        student = torch.stack(
            [self.similarity_fct(query, candidate) for candidate in candidates], dim=1
        )  # (batch, 1 + N)
        student_log_probabilities = torch.log_softmax(student / self.student_temperature, dim=1)

        # KL(p || q) per row; xlogy makes 0 · log 0 = 0 for candidates the teacher rules out.
        kl = (torch.xlogy(teacher_probabilities, teacher_probabilities)
              - teacher_probabilities * student_log_probabilities).sum(dim=1)  # (batch,)
        return kl.sum() / batch_size * self.student_temperature**2

    def get_config_dict(self) -> dict[str, Any]:
        """Similarity and temperature; a side's temperature only where it was set differently."""
        config: dict[str, Any] = {
            "similarity_fct": similarity_fct_name(self.similarity_fct),
            "temperature": self.temperature,
        }
        if self.student_temperature != self.temperature:
            config["student_temperature"] = self.student_temperature
        if self.teacher_temperature != self.temperature:
            config["teacher_temperature"] = self.teacher_temperature
        return config

    @property
    def citation(self) -> str:
        return """
@misc{lin2020distillingdenserepresentationsranking,
      title={Distilling Dense Representations for Ranking using Tightly-Coupled Teachers},
      author={Sheng-Chieh Lin and Jheng-Hong Yang and Jimmy Lin},
      year={2020},
      eprint={2010.11386},
      archivePrefix={arXiv},
      primaryClass={cs.IR},
      url={https://arxiv.org/abs/2010.11386},
}
"""
