"""AnglELoss: CoSENT with AnglE's angle similarity, measured in complex space.

AnglE reads each embedding of even dimension 2k as a vector of k complex numbers: coordinate t
of the first half is the real part and coordinate t of the second half the imaginary part,
z_t = x_t + i·x_{t+k}. (An odd dimension gets a zero imaginary part for its last number.)
Comparing two embeddings then means *dividing* them number by number, z_t / w_t, whose argument
is the angle between z_t and w_t. With w_t = c + i·d,

    z_t / w_t = z_t · conj(w_t) / |w_t|²,     z_t · conj(w_t) = (a·c + b·d) + i·(b·c - a·d)

for z_t = a + i·b. On the L2-normalised embeddings x̂ and ŷ, the similarity used here sums the
numerators (each division rescaled by |w_t|²) over the k numbers and adds the real and imaginary
totals:

    angle_sim(x, y) = | Σ_t Re(ẑ_t · conj(ŵ_t)) + Σ_t Im(ẑ_t · conj(ŵ_t)) |
                    = | cos(x, y) + Σ_t (b_t·c_t - a_t·d_t) |

The real part alone is the cosine similarity; the imaginary part measures how far the second
embedding's complex numbers are rotated against the first's. Unlike cos near ±1, this score
keeps a useful gradient where the cosine saturates, which is the paper's point. (It follows the
AnglE authors' code, which differs in sign from equation 3 of the paper; it is a score, not a
geometric angle.)

The loss is CoSENT (see losses/cosent.py) with this similarity:

    L = log( 1 + Σ_{(i, j) : y_i > y_j} exp(λ·(angle_sim_j - angle_sim_i)) )

Paper: Li and Li, "AoE: Angle-optimized Embeddings for Semantic Textual Similarity" (ACL 2024;
arXiv 2309.12871 "AnglE-optimized Text Embeddings").

Data:
- (sentence1, sentence2) pairs with a float score (the lab's "pair-score") or 0/1 label
  ("pair-label"); labels are required.
- (anchor, positive, negative_1, ..., negative_n) tuples ("triplet", "n-tuple"), usually without
  labels: they become the pairs (anchor, positive) with score 1 and (anchor, negative_k) with
  score 0, all ranked in one CoSENT batch. With a label y per row, positives get y and negatives
  1 - y.

Knob: ``scale`` λ (20), the inverse temperature, as in CoSENTLoss. The similarity is fixed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.cosent import CoSENTLoss
from losses.validation import LossInputError, label_vector


def pairwise_angle_sim(x: Tensor, y: Tensor) -> Tensor:
    """AnglE's angle similarity of x[i] and y[i]: (n, dim), (n, dim) -> (n,), in [0, √2].

    See the module docstring: |Re + Im| of Σ_t ẑ_t · conj(ŵ_t), the complex numbers made from
    the two halves of the L2-normalised vectors.
    """
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    # Integers and half precision are computed in float32 (as sentence-transformers does).
    if not x.is_floating_point() or torch.finfo(x.dtype).bits < 32:
        x = x.float()
    if not y.is_floating_point() or torch.finfo(y.dtype).bits < 32:
        y = y.float()
    x_unit, y_unit = F.normalize(x, p=2, dim=-1), F.normalize(y, p=2, dim=-1)
    if x_unit.shape[-1] % 2:
        # Odd dimension: the last complex number gets imaginary part 0.
        x_unit, y_unit = F.pad(x_unit, (0, 1)), F.pad(y_unit, (0, 1))
    x_real, x_imag = x_unit.chunk(2, dim=-1)  # (n, k) each: z = x_real + i·x_imag
    y_real, y_imag = y_unit.chunk(2, dim=-1)  # (n, k) each: w = y_real + i·y_imag
    # z · conj(w) = (x_real·y_real + x_imag·y_imag) + i·(x_imag·y_real - x_real·y_imag)
    real = (x_real * y_real + x_imag * y_imag).sum(dim=-1)  # (n,), equals cos(x, y)
    imaginary = (x_imag * y_real - x_real * y_imag).sum(dim=-1)  # (n,)
    return (real + imaginary).abs()


class AnglELoss(CoSENTLoss):
    """CoSENT ranking loss on AnglE's angle similarity; also takes unlabeled n-tuples."""

    expected_inputs = ("(sentence1, sentence2) pairs with a float similarity score, or "
                       "(anchor, positive, negative...) tuples without labels")
    column_range = (2, None)

    def __init__(self, model: nn.Module, scale: float = 20.0) -> None:
        super().__init__(model, scale, similarity_fct=pairwise_angle_sim)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor],
                                     labels: Tensor | None) -> Tensor:
        """Loss from 2 or more columns' (batch, dim) embeddings and (batch,) scores (or None)."""
        name = type(self).__name__
        batch_size, _ = self.check_embeddings(embeddings)
        if len(embeddings) == 2:
            if labels is None:
                raise LossInputError(
                    f"{name} expects {self.expected_inputs}: pairs need a score per row; got no "
                    f"labels (labels=None). Unlabeled data needs 3 or more columns (anchor, "
                    f"positive, negative...).")
            return super().compute_loss_from_embeddings(embeddings, labels)

        # n-tuples: every later column is paired with the anchor column.
        anchor, *others = embeddings
        if labels is None:
            labels = torch.ones(batch_size, device=anchor.device)
        labels = label_vector(name, self.expected_inputs, labels, batch_size)
        if labels.dtype == torch.bool:
            labels = labels.float()
        pairs = [anchor.repeat(len(others), 1), torch.cat(others, dim=0)]  # 2 x (B·(n-1), dim)
        # (anchor, positive) rows keep y; every (anchor, negative_k) block gets 1 - y.
        pair_labels = torch.cat([labels, (1 - labels).repeat(len(others) - 1)])  # (B·(n-1),)
        return super().compute_loss_from_embeddings(pairs, pair_labels)

    @property
    def citation(self) -> str:
        """BibTeX of Li and Li (2024)."""
        return """
@inproceedings{li-li-2024-aoe,
    title = "{A}o{E}: Angle-optimized Embeddings for Semantic Textual Similarity",
    author = "Li, Xianming and Li, Jing",
    year = "2024",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2024.acl-long.101/",
    doi = "10.18653/v1/2024.acl-long.101"
}
"""
