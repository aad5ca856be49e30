"""CachedMultipleNegativesRankingLoss: MultipleNegativesRankingLoss for batches larger than memory.

The loss is exactly MultipleNegativesRankingLoss (losses/multiple_negatives_ranking.py), in every
setting: for queries q_1..q_B, positives d_1..d_B and optional hard negatives, scale s,

    L = (1/B) Σ_i [ -s·sim(q_i, d_i) + log Σ_c exp(s·sim(q_i, c)) ]

(plus the optional directions, per-direction partitions and hardness weighting of that loss).
In-batch negatives get better as the batch grows, but a batch of thousands of texts does not fit
in memory with its activations. Gradient caching (GradCache) removes that limit: the *values and
gradients* are those of the full batch, while only one mini-batch of activations is alive at once.

How (losses/gradient_cache.py, shared with MegaBatchMarginLoss):

1. embed every column ``mini_batch_size`` texts at a time, without a graph, remembering each
   mini-batch's random state (dropout);
2. compute the uncached loss on these cached embeddings and back-propagate it to them: the
   gradients ∂L/∂e are cached. This step is itself chunked: the rows of the B x B·C score matrix
   are scored ``mini_batch_size`` at a time (or more, up to about 1 M scores per chunk) and each
   chunk is back-propagated at once, so the score matrix never exists in one piece (each query
   row's loss only needs that row's scores);
3. in the trainer's ``loss.backward()``, re-embed each mini-batch with a graph under its saved
   random state (the very same dropout masks) and back-propagate the cached gradient into the
   model.

The price is a second forward pass (about 2x the compute). The data, the knobs and the result are
those of MultipleNegativesRankingLoss; ``compute_loss_from_embeddings`` (no model needed) is the
uncached loss itself.

Papers: Gao, Zhang, Han and Callan, "Scaling Deep Contrastive Learning Batch Size under Memory
Limited Setup" (RepL4NLP 2021, GradCache); the loss itself: van den Oord et al. 2018 (InfoNCE),
Henderson et al. 2017 (in-batch negatives).

Data: (anchor, positive) pairs, (anchor, positive, negative) triplets or (anchor, positive,
negative_1, ..., negative_k) n-tuples; no labels (the lab's "pair", "triplet", "n-tuple").

Knobs: those of MultipleNegativesRankingLoss (``scale``, ``similarity_fct``,
``gather_across_devices``, ``directions``, ``partition_mode``, ``hardness_mode``,
``hardness_strength``), plus:
- ``mini_batch_size``: texts per embedding mini-batch, and the least number of query rows per
  chunk of the score matrix. Smaller saves memory, larger runs faster; the result does not
  change.
- ``mini_batch_num_tokens``: instead pack embedding mini-batches up to this many non-padding
  tokens (at least one text each); useful with very uneven text lengths.
- ``show_progress_bar``: a progress bar over the mini-batches.

Differences from the reference: a model that cannot be split into mini-batches (a
StaticEmbedding, such as the lab's "tiny") is refused with a message naming the alternatives,
and a non-positive ``mini_batch_size`` is refused at construction (the reference fails later,
inside ``range``). With ``gather_across_devices``, the gathered embeddings are back-propagated
through the gather once per column, not once per chunk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from losses.base import joined
from losses.gradient_cache import (
    gradient_cached_loss,
    is_static_embedding_model,
    send_gradients_back,
)
from losses.multiple_negatives_ranking import (
    Direction,
    MultipleNegativesRankingLoss,
    _InfoNCEProducts,
    _InfoNCERows,
)
from losses.similarity import (
    as_matrix,
    cos_sim,
    dot_score,
    similarity_fct_name,
    unit_rows,
    unit_rows_backward_,
)

# Scores of one chunk of query rows (about 4 MB in float32): the loss is computed and
# back-propagated chunk by chunk, so the whole score matrix never exists at once.
SCORE_CHUNK_ENTRIES = 1 << 20
# The symmetric loss's chunks live in two buffers allocated once and reused by every chunk, so
# larger ones cost two buffers, not a graph per chunk: about 16 MB each, where the four products
# of a chunk run ~15% faster than at 4 MB (at batch 4096: 1024 rows instead of 256).
SYMMETRIC_CHUNK_ENTRIES = 1 << 22


def _bounded_shift_is_safe(scale: float, dtype: torch.dtype) -> bool:
    """Whether cosine logits s·cos may be shifted by s instead of their maxima: every shifted
    exponential exp(s·cos - s) lies in [exp(-2s), 1], which must stay a normal float of
    ``dtype`` (float32: s up to about 41; float16's range is far too small)."""
    if dtype not in (torch.float32, torch.float64) or scale <= 0:
        return False
    return 2 * scale < -math.log(torch.finfo(dtype).tiny) - 4  # 4: room for rounding and sums


class CachedMultipleNegativesRankingLoss(MultipleNegativesRankingLoss):
    """MultipleNegativesRankingLoss with gradient caching: full-batch result, mini-batch memory."""

    _copies_single_document_column = False  # see MultipleNegativesRankingLoss

    # Read by wrappers (e.g. MatryoshkaLoss): backward re-runs the model, outside their forward.
    uses_gradient_cache = True

    def __init__(
        self,
        model: nn.Module,
        scale: float = 20.0,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim,
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        gather_across_devices: bool = False,
        directions: tuple[Direction, ...] = ("query_to_doc",),
        partition_mode: Literal["joint", "per_direction"] = "joint",
        show_progress_bar: bool = False,
        hardness_mode: Literal["in_batch_negatives", "hard_negatives", "all_negatives"]
        | None = None,
        hardness_strength: float = 0.0,
    ) -> None:
        name = type(self).__name__
        if is_static_embedding_model(model):
            raise ValueError(
                f"{name}: gradient caching embeds each batch in mini-batches, but this model "
                "starts with a StaticEmbedding (such as the lab's 'tiny' model), whose inputs "
                "(one flat token list per batch) cannot be split into mini-batches. Use a "
                f"transformer model (e.g. the lab's 'tiny-bert'), or the uncached "
                f"{name.replace('Cached', '', 1)}, which computes the same loss.")
        if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, int) \
                or mini_batch_size < 1:
            raise ValueError(f"{name}: mini_batch_size must be a positive integer; got "
                             f"{mini_batch_size!r}")
        if mini_batch_num_tokens is not None and mini_batch_num_tokens <= 0:
            raise ValueError(f"{name}: mini_batch_num_tokens must be a positive integer or None; "
                             f"got {mini_batch_num_tokens}")
        super().__init__(
            model,
            scale=scale,
            similarity_fct=similarity_fct,
            gather_across_devices=gather_across_devices,
            directions=directions,
            partition_mode=partition_mode,
            hardness_mode=hardness_mode,
            hardness_strength=hardness_strength,
        )
        self.mini_batch_size = mini_batch_size
        self.mini_batch_num_tokens = mini_batch_num_tokens
        self.show_progress_bar = show_progress_bar

    def forward(self, sentence_features: Iterable[dict[str, Tensor]],
                labels: Tensor | None = None) -> Tensor:
        """The GradCache forward: a detached-graph loss whose ``backward()`` trains the model."""
        features = list(sentence_features)
        minimum, _ = self.column_range
        if len(features) < minimum:
            self.check_embeddings(features)  # the shared column-count message, before any forward
        return gradient_cached_loss(
            self.model, features, labels, self._loss_on_minibatches, self.mini_batch_size,
            self.mini_batch_num_tokens, self.show_progress_bar)

    def _loss_on_minibatches(self, reps: list[list[Tensor]], labels: Tensor | None,
                             with_backward: bool) -> Tensor:
        return self.calculate_loss(reps, labels, with_backward=with_backward)

    def calculate_loss(self, reps: list[list[Tensor]], labels: Tensor | None = None, *,
                       with_backward: bool = False) -> Tensor:
        """The uncached loss on per-column lists of mini-batch embeddings, chunk by chunk.

        Query rows are scored ``mini_batch_size`` at a time (MultipleNegativesRankingLoss's
        ``row_losses``). With ``with_backward``, each chunk is back-propagated at once into
        detached copies of the (gathered) embeddings, whose accumulated gradient is then sent
        back through the concatenation (and the gather) in one go; the detached total is returned.
        """
        embeddings = [joined(column) for column in reps]  # per column: (b, dim)
        local_batch, _ = self.check_embeddings(embeddings)
        self._warn_about_suspicious_input(labels, local_batch, len(embeddings))
        # queries (G, dim), documents (G·C, dim), local_rows (b,): see row_losses.
        queries, documents, local_rows = self.global_batch(embeddings)
        if with_backward and self._has_product_path():
            return self._chunked_products(queries, documents, local_rows, local_batch)
        if with_backward and self._is_symmetric_product() and queries.shape[0] == local_batch:
            return self._symmetric_products(queries, documents, local_batch)
        if with_backward:
            scored = [queries.detach().requires_grad_(), documents.detach().requires_grad_()]
        else:
            scored = [queries, documents]
        total = torch.zeros((), dtype=queries.dtype, device=queries.device)
        for rows in local_rows.split(self._rows_per_chunk(len(local_rows), documents)):
            chunk = self.row_losses(*scored, rows).sum() / local_batch  # its share of the mean
            if with_backward:
                chunk.backward()  # frees this chunk's (rows, G·C) scores right away
                chunk = chunk.detach()
            total = total + chunk
        if with_backward:
            torch.autograd.backward([queries, documents], [leaf.grad for leaf in scored])
        return total

    def _rows_per_chunk(self, rows: int, documents: Tensor,
                        entries: int = SCORE_CHUNK_ENTRIES) -> int:
        """Query rows scored at a time, out of ``rows``: ``mini_batch_size``, or more (fewer,
        larger matrix products run faster) while a chunk's scores stay under ``entries`` and a
        chunk is at most a quarter of the rows (a chunk as large as the whole score matrix would
        cost more memory than small ones, for little speed)."""
        largest = min(entries // max(1, documents.shape[0]), -(-rows // 4))
        return max(self.mini_batch_size, largest)

    def _has_product_path(self) -> bool:
        """Whether the default query-to-document setting (no hardness) is computed by
        ``_chunked_products``; the symmetric loss has ``_symmetric_products``."""
        return not self._weighs_hardness and tuple(self.directions) == ("query_to_doc",)

    def _is_symmetric_product(self) -> bool:
        """Query <-> document under per-direction partitions with a product similarity (the
        symmetric loss, e.g. CachedMultipleNegativesSymmetricRankingLoss), no hardness."""
        return (not self._weighs_hardness
                and set(self.directions) == {"query_to_doc", "doc_to_query"}
                and len(self.directions) == 2 and self.partition_mode == "per_direction"
                and self.similarity_fct in (cos_sim, dot_score))

    def _chunked_products(self, queries: Tensor, documents: Tensor, local_rows: Tensor,
                          local_batch: int) -> Tensor:
        """The query-to-document loss back-propagated chunk by chunk; the detached value.

        The same numbers as ``row_losses`` chunk by chunk, with less work per chunk: cosine
        similarity normalises the embeddings once (not once per chunk), and each chunk's own
        rows are leaves of their own, so a chunk's backward touches its rows and the candidate
        matrix, never a full-size zero gradient per chunk.
        """
        products = self.similarity_fct in (cos_sim, dot_score)  # q·dᵀ after normalising
        # Cosine: the rows are normalised once (not once per chunk), without a graph; the
        # normalisation's backward is applied by hand to the two accumulated gradients.
        query_values, query_norms = self._scored_rows(queries)
        document_values, document_norms = self._scored_rows(documents)
        document_leaf = document_values.requires_grad_()  # (G·C, dim): every row's candidates
        query_grad = torch.zeros_like(query_values)  # (G, dim), each chunk's rows filled in
        total = torch.zeros((), dtype=queries.dtype, device=queries.device)
        for rows in local_rows.split(self._rows_per_chunk(len(local_rows), documents)):
            row_queries = query_values[rows].requires_grad_()  # (r, dim), a leaf
            if products:
                losses = _InfoNCEProducts.apply(row_queries, document_leaf, self.scale, rows)
            else:
                scores = self.similarity_fct(row_queries, document_leaf)  # (r, G·C)
                losses = _InfoNCERows.apply(scores, self.scale, rows)
            chunk = losses.sum() / local_batch
            chunk.backward()  # frees this chunk's (r, G·C) scores right away
            query_grad[rows] = row_queries.grad
            total = total + chunk.detach()
        self._send_scored_gradients((queries, query_grad, query_values, query_norms),
                                    (documents, document_leaf.grad, document_values,
                                     document_norms))
        return total

    def _scored_rows(self, embeddings: Tensor) -> tuple[Tensor, Tensor | None]:
        """(the rows the product paths multiply, detached; their norms, for cosine only)."""
        if self.similarity_fct is cos_sim:
            return unit_rows(as_matrix(embeddings))
        return embeddings.detach(), None

    @staticmethod
    def _send_scored_gradients(*columns: tuple[Tensor, Tensor, Tensor, Tensor | None]) -> None:
        """Back-propagate each (embeddings, ∂L/∂scored rows, scored rows, norms or None):
        through the normalisation by hand where there are norms, then into the graph."""
        for _, grad, unit, norms in columns:
            if norms is not None:
                unit_rows_backward_(grad, unit, norms)
        send_gradients_back([(embeddings, grad.to(embeddings.dtype))  # float32 for half inputs
                             for embeddings, grad, _, _ in columns])

    def _symmetric_products(self, queries: Tensor, documents: Tensor, local_batch: int) -> Tensor:
        """The symmetric loss in two passes over chunks of query rows; the detached value.

        With logits L = s·Q·Dᵀ (B x N, N = B·C; column i < B holds the positive of row i):

            loss = (1/B) Σ_i ½ (r_i - L[i, i]) + ½ (c_i - L[i, i]),
            r_i = log Σ_j exp L[i, j]    (query i among all documents),
            c_i = log Σ_k exp L[k, i]    (document i among all queries, i < B),
            ∂loss/∂L[i, j] = (exp(L[i, j] - r_i) + [j < B] exp(L[i, j] - c_j) - 2 [i = j]) / 2B.

        The column sums c need every row, so pass 1 scores each chunk for r and for its share
        of c (one product per chunk) and pass 2 scores it again to send the gradient
        ∂L·D to the queries and ∂Lᵀ·Q to the documents (three). Four products of a chunk, where
        scoring both directions as separate row losses takes six; at most two (r, N) buffers.
        Only for a single batch (no rows gathered from other processes): c needs every query.
        """
        query_values, query_norms = self._scored_rows(queries)  # (B, dim), normalised for cosine
        document_values, document_norms = self._scored_rows(documents)  # (N, dim)
        chunks = torch.arange(local_batch, device=queries.device).split(
            self._rows_per_chunk(local_batch, documents, SYMMETRIC_CHUNK_ENTRIES))
        bounded = self.similarity_fct is cos_sim and _bounded_shift_is_safe(self.scale,
                                                                             query_values.dtype)
        method = (self._bounded_symmetric_products if bounded
                  else self._max_shifted_symmetric_products)
        total, query_grad, document_grad = method(query_values, document_values, local_batch,
                                                  chunks)
        self._send_scored_gradients((queries, query_grad, query_values, query_norms),
                                    (documents, document_grad, document_values, document_norms))
        return total

    def _max_shifted_symmetric_products(self, query_values: Tensor, document_values: Tensor,
                                        local_batch: int, chunks: tuple[Tensor, ...]
                                        ) -> tuple[Tensor, Tensor, Tensor]:
        """``_symmetric_products`` for any product similarity, each log-sum-exp shifted by its
        maximum. Takes the scored rows, queries (B, dim) and documents (N, dim), without a
        graph, and the chunks of query rows; returns (the loss, ∂loss/∂queries, ∂loss/∂documents).
        """
        # Two (r, N) buffers serve every chunk of both passes: the logits (then the gradient)
        # and the exponentials; nothing logit-sized is allocated per chunk.
        buffers = query_values.new_empty((2, len(chunks[0]), document_values.shape[0]))

        def logits_of(rows: Tensor) -> Tensor:  # (r, N), in the first buffer
            logits = buffers[0, :len(rows)]
            return torch.mm(query_values[rows], document_values.T, out=logits).mul_(self.scale)

        def log_sum_exp(logits: Tensor, dim: int, spare: Tensor) -> Tensor:
            top = logits.amax(dim=dim, keepdim=True)  # (r, 1) or (1, B); 0 where infinite
            top.masked_fill_(top.isinf(), 0.0)
            summed = torch.sub(logits, top, out=spare).exp_().sum(dim=dim, keepdim=True)
            return summed.log_().add_(top).squeeze(dim)

        row_lse, column_lse, positive = [], [], []  # per chunk: (r,), (B,), (r,)
        for rows in chunks:
            logits = logits_of(rows)
            spare = buffers[1, :len(rows)]
            row_lse.append(log_sum_exp(logits, 1, spare))
            column_lse.append(log_sum_exp(logits[:, :local_batch], 0, spare[:, :local_batch]))
            positive.append(logits[torch.arange(len(rows), device=rows.device), rows])
        row_lse_all = torch.cat(row_lse)  # (B,): r
        column_lse_all = torch.logsumexp(torch.stack(column_lse), dim=0)  # (B,): c
        total = (row_lse_all + column_lse_all - 2 * torch.cat(positive)).sum() / (2 * local_batch)

        query_grad = torch.empty_like(query_values)  # (B, dim)
        document_grad = torch.zeros_like(document_values)  # (N, dim)
        weight = self.scale / (2 * local_batch)  # ∂L/∂(Q·Dᵀ) = s · ∂loss/∂L
        for rows, lse in zip(chunks, row_lse, strict=True):
            grad = logits_of(rows)  # (r, N), turned into ∂loss/∂(Q_R·Dᵀ) in place
            head = buffers[1, :len(rows), :local_batch]
            torch.sub(grad[:, :local_batch], column_lse_all, out=head).exp_()  # exp(L - c)
            grad.sub_(lse.unsqueeze(1)).exp_()
            grad[:, :local_batch] += head
            grad[torch.arange(len(rows), device=rows.device), rows] -= 2.0
            grad.mul_(weight)
            query_grad[rows] = grad @ document_values
            document_grad.addmm_(grad.T, query_values[rows])
        return total, query_grad, document_grad

    def _bounded_symmetric_products(self, query_values: Tensor, document_values: Tensor,
                                    local_batch: int, chunks: tuple[Tensor, ...]
                                    ) -> tuple[Tensor, Tensor, Tensor]:
        """``_symmetric_products`` for cosine similarity: one exponential per logit and pass.

        Cosines are at most 1, so every logit is at most s, and s is a shift known before any
        logit exists (``_bounded_shift_is_safe`` checks that exp(-2s) does not underflow). With
        E = exp(L - s), computed as the product's own epilogue (``addmm_`` onto -s):

            r_i = s + log Σ_j E[i, j],   c_j = s + log Σ_k E[k, j],
            ∂loss/∂L[i, j] = E[i, j] (1/Σ_j E[i, j] + [j < B]/Σ_k E[k, j]) / 2B - [i = j] / B,

        so pass 1 sums one E chunk both ways, and pass 2 scales it by a row and a column factor:
        no maxima, one exponential per logit and pass (the general method takes maxima, and two
        exponentials per pass, one per direction). Arguments and result as for
        ``_max_shifted_symmetric_products``, with the rows normalised.
        """
        device = query_values.device
        # Two buffers serve every chunk of both passes: E, then the gradient (r, N), and the
        # (r, B) factors of pass 2.
        exponentials_buffer = query_values.new_empty((len(chunks[0]), document_values.shape[0]))
        factors_buffer = query_values.new_empty((len(chunks[0]), local_batch))
        scale = self.scale

        def shifted_exponentials(rows: Tensor) -> Tensor:  # (r, N): E = exp(s·q·dᵀ - s)
            exponentials = exponentials_buffer[:len(rows)].fill_(-scale)
            return exponentials.addmm_(query_values[rows], document_values.T, alpha=scale).exp_()

        row_sums = torch.empty(local_batch, dtype=query_values.dtype, device=device)
        column_sums = torch.zeros_like(row_sums)  # (B,): Σ_k E[k, j] for the positives' columns
        for rows in chunks:
            exponentials = shifted_exponentials(rows)
            row_sums[rows] = exponentials.sum(dim=1)
            column_sums += exponentials[:, :local_batch].sum(dim=0)
        # L[i, i] - s = s·(cos(q_i, d_i) - 1), as a row-wise dot, not read back from E.
        positive = (query_values * document_values[:local_batch]).sum(dim=1).sub_(1.0).mul_(scale)
        total = (row_sums.log() + column_sums.log() - 2 * positive).sum() / (2 * local_batch)

        weight = scale / (2 * local_batch)  # ∂L/∂(Q·Dᵀ) = s · ∂loss/∂L
        row_factors = (weight / row_sums).unsqueeze(1)  # (B, 1)
        column_factors = weight / column_sums  # (B,)
        query_grad = torch.empty_like(query_values)  # (B, dim)
        document_grad = torch.zeros_like(document_values)  # (N, dim)
        for rows in chunks:
            grad = shifted_exponentials(rows)  # (r, N), turned into ∂loss/∂(Q_R·Dᵀ) in place
            factors = torch.add(row_factors[rows], column_factors,
                                out=factors_buffer[:len(rows)])  # (r, B)
            grad[:, :local_batch].mul_(factors)
            grad[:, local_batch:].mul_(row_factors[rows])  # extra negatives: the row softmax only
            grad[torch.arange(len(rows), device=rows.device), rows] -= 2 * weight
            query_grad[rows] = grad @ document_values
            document_grad.addmm_(grad.T, query_values[rows])
        return total, query_grad, document_grad

    def get_config_dict(self) -> dict[str, Any]:
        """Settings as in the reference, mini-batch settings included."""
        return {
            "scale": self.scale,
            "similarity_fct": similarity_fct_name(self.similarity_fct),
            "mini_batch_size": self.mini_batch_size,
            "mini_batch_num_tokens": self.mini_batch_num_tokens,
            "gather_across_devices": self.gather_across_devices,
            "directions": self.directions,
            "partition_mode": self.partition_mode,
            "hardness_mode": self.hardness_mode,
            "hardness_strength": self.hardness_strength,
        }

    @property
    def citation(self) -> str:
        """Gao et al. 2021 (GradCache), whatever the directions."""
        return """
@misc{gao2021scaling,
    title={Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup},
    author={Luyu Gao and Yunyi Zhang and Jiawei Han and Jamie Callan},
    year={2021},
    eprint={2101.06983},
    archivePrefix={arXiv},
    primaryClass={cs.LG}
}
"""
