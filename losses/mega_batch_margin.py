"""MegaBatchMarginLoss: a margin loss against the hardest negative mined from a very large batch.

Formula, for pairs (a_i, p_i) in a batch of B, cosine similarity cos, margins m+ and m-:

    n(i) = argmax_{j ≠ i} cos(a_i, p_j)          (the hardest negative: another row's positive)
    L = (1/B) Σ_i [ max(0, m+ - cos(a_i, p_i)) + max(0, cos(a_i, p_n(i)) - m-) ]

Each anchor should be closer than m+ to its positive and further than m- from every other
positive of the batch; only the worst offender counts. The bigger the batch, the harder the mined
negative, hence "mega batch". A batch of one pair has no candidate negative: only the first term
remains (ours warns once). Duplicate texts in a batch are mined as (false) negatives.

Paper: Wieting and Gimpel, "ParaNMT-50M: Pushing the Limits of Paraphrastic Sentence Embeddings
with Millions of Machine Translations" (ACL 2018).

Data: (anchor, positive) pairs, no labels (the lab's "pair" format); exactly two columns.

Knobs: ``positive_margin`` (m+), ``negative_margin`` (m-);
``use_mini_batched_version`` (default True) computes the same value and gradients with gradient
caching (losses/gradient_cache.py): embeddings are taken in mini-batches without activations,
then each mini-batch is re-embedded during backward. Memory stays at one mini-batch for a ~2x
compute cost. Static-embedding models cannot be split into mini-batches and are refused.
``mini_batch_size`` bounds the rows per embedding mini-batch (and, at least, per block of the
B x B similarity matrix, which is only searched for the hardest negatives, without a graph);
``mini_batch_num_tokens`` instead packs mini-batches up to that many non-padding tokens;
``show_progress_bar`` shows the mini-batch progress.

As in the reference, the instance's ``forward`` is chosen at construction:
``forward_mini_batched`` or ``forward_non_mini_batched``. ``last_hardest_negatives`` holds, after
each call, the row index n(i) mined for every anchor (-1 where there was none), for the lab.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.base import EmbeddingLoss, embed_columns
from losses.gradient_cache import gradient_cached_loss, is_static_embedding_model
from losses.similarity import normalize

# Entries of one block of the similarity matrix while mining (about 16 MB in float32).
BLOCK_ENTRIES = 1 << 22


class MegaBatchMarginLoss(EmbeddingLoss):
    """Margins on the positive and on the hardest in-batch negative, optionally GradCache'd."""

    expected_inputs = "(anchor, positive) pairs without labels"
    column_range = (2, 2)

    def __init__(
        self,
        model: nn.Module,
        positive_margin: float = 0.8,
        negative_margin: float = 0.3,
        use_mini_batched_version: bool = True,
        mini_batch_size: int = 50,
        mini_batch_num_tokens: int | None = None,
        show_progress_bar: bool = False,
    ) -> None:
        super().__init__(model)
        name = type(self).__name__
        if use_mini_batched_version and is_static_embedding_model(model):
            raise ValueError(
                f"{name}: the mini-batched version splits each batch into mini-batches, but a "
                "StaticEmbedding model's inputs (one flat token list per batch) cannot be split. "
                "Pass use_mini_batched_version=False.")
        if mini_batch_num_tokens is not None and mini_batch_num_tokens <= 0:
            raise ValueError(f"{name}: mini_batch_num_tokens must be a positive integer or None; "
                             f"got {mini_batch_num_tokens}")
        self.positive_margin = positive_margin
        self.negative_margin = negative_margin
        self.mini_batch_size = mini_batch_size
        self.mini_batch_num_tokens = mini_batch_num_tokens
        self.show_progress_bar = show_progress_bar
        # Read by wrappers (e.g. MatryoshkaLoss): True when backward re-runs the model.
        self.uses_gradient_cache = use_mini_batched_version
        self.last_hardest_negatives: Tensor | None = None
        # Like the reference, the forward is fixed per instance at construction.
        self.forward = (self.forward_mini_batched if use_mini_batched_version
                        else self.forward_non_mini_batched)

    # ---------------------------------------------------------------------------- the math
    def calculate_loss(self, reps: list[list[Tensor]], labels: Tensor | None = None, *,
                       with_backward: bool = False) -> Tensor:
        """Loss from per-column lists of mini-batch embeddings ([anchor pieces], [positive pieces]).

        Only two similarities per anchor carry a gradient: with its own positive and with its
        hardest negative. So the B x B similarity matrix is needed only to *find* the hardest
        negatives: it is computed without a graph, block by block (``mini_batch_size`` anchor
        rows, or more when a block of about 4 M entries holds more), and the two similarities
        are then recomputed as dot products of the normalised rows, with a graph of O(B·dim).
        ``with_backward``: back-propagate at once and return the detached value.
        """
        anchors, positives = torch.cat(reps[0]), torch.cat(reps[1])  # (B, dim) each
        batch = anchors.shape[0]
        anchors, positives = normalize(anchors), normalize(positives)  # cos = dot of these
        hardest = self._hardest_negatives(anchors.detach(), positives.detach())  # (B,)
        self.last_hardest_negatives = hardest
        positive = (anchors * positives).sum(dim=1)  # (B,) cos(a_i, p_i)
        has_negative = hardest >= 0
        negative = (anchors * positives[hardest.clamp(min=0)]).sum(dim=1)  # (B,) cos(a_i, p_n(i))
        negative_term = F.relu(negative - self.negative_margin).masked_fill(~has_negative, 0.0)
        loss = (F.relu(self.positive_margin - positive) + negative_term).sum() / batch
        if with_backward:
            loss.backward()
            loss = loss.detach()
        return loss

    def _hardest_negatives(self, anchors: Tensor, positives: Tensor) -> Tensor:
        """(B,) row index n(i) of each anchor's hardest negative, -1 when it has none (B = 1).

        ``anchors``, ``positives``: normalised (B, dim) rows, without a graph.
        """
        batch = anchors.shape[0]
        step = max(self.mini_batch_size, BLOCK_ENTRIES // max(1, batch))
        found = []
        for begin in range(0, batch, step):
            block = anchors[begin:begin + step]
            rows = torch.arange(block.shape[0], device=block.device)
            similarity = block @ positives.T  # (b, B)
            similarity[rows, rows + begin] = -torch.inf  # an anchor's own positive is no negative
            value, index = similarity.max(dim=1)  # (b,): -inf (no negative) when B = 1
            found.append(index.masked_fill(torch.isinf(value), -1))
        return torch.cat(found)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor],
                                     labels: Tensor | None = None) -> Tensor:
        """The loss from (anchor, positive) (B, dim) embeddings, in one piece."""
        self._check(embeddings, labels)
        return self.calculate_loss([[embeddings[0]], [embeddings[1]]], labels)

    # --------------------------------------------------------------------------- forwards
    def forward_mini_batched(self, sentence_features: Iterable[dict[str, Tensor]],
                             labels: Tensor | None = None) -> Tensor:
        """GradCache forward: same value and gradients, one mini-batch of activations."""
        features = self._check_columns(sentence_features)
        return gradient_cached_loss(
            self.model, features, labels, self._loss_on_minibatches, self.mini_batch_size,
            self.mini_batch_num_tokens, self.show_progress_bar)

    def forward_non_mini_batched(self, sentence_features: Iterable[dict[str, Tensor]],
                                 labels: Tensor | None = None) -> Tensor:
        """Plain forward: embed both columns with a graph, then the loss."""
        features = self._check_columns(sentence_features)
        return self.compute_loss_from_embeddings(embed_columns(self.model, features), labels)

    def _loss_on_minibatches(self, reps: list[list[Tensor]], labels: Tensor | None,
                             with_backward: bool) -> Tensor:
        self._check([torch.cat(column) for column in reps], labels)
        return self.calculate_loss(reps, labels, with_backward=with_backward)

    # ------------------------------------------------------------------------------ checks
    def _check_columns(self, sentence_features: Iterable[dict[str, Tensor]]) -> list[dict]:
        """Refuse anything but two columns before running the model."""
        features = list(sentence_features)
        if len(features) != 2:
            self.check_embeddings(features)  # raises the shared column-count message
        return features

    def _check(self, embeddings: list[Tensor], labels: Tensor | None) -> None:
        batch, _ = self.check_embeddings(embeddings)
        if labels is not None:
            self.warn_once("labels", f"ignores labels (it expects {self.expected_inputs}): the "
                                     "negatives are mined from the batch. Got labels; every row "
                                     "is treated as a true (anchor, positive) pair.")
        if batch == 1:
            self.warn_once("batch1", "a batch of one pair has no other positive to mine a "
                                     "negative from: only the positive margin is trained. Use "
                                     "large batches (hundreds of pairs).")

    def get_config_dict(self) -> dict[str, Any]:
        """Margins and mini-batch settings, as in the reference."""
        return {
            "positive_margin": self.positive_margin,
            "negative_margin": self.negative_margin,
            "mini_batch_size": self.mini_batch_size,
            "mini_batch_num_tokens": self.mini_batch_num_tokens,
        }

    @property
    def citation(self) -> str:
        """Wieting and Gimpel 2018 (ParaNMT-50M)."""
        return """
@inproceedings{wieting-gimpel-2018-paranmt,
    title = "{P}ara{NMT}-50{M}: Pushing the Limits of Paraphrastic Sentence Embeddings with Millions of Machine Translations",
    author = "Wieting, John and Gimpel, Kevin",
    editor = "Gurevych, Iryna and Miyao, Yusuke",
    booktitle = "Proceedings of the 56th Annual Meeting of the Association for Computational Linguistics (Volume 1: Long Papers)",
    month = jul,
    year = "2018",
    address = "Melbourne, Australia",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/P18-1042",
    doi = "10.18653/v1/P18-1042",
    pages = "451--462",
}
"""  # noqa: E501 (bibliographic data, reproduced exactly)
