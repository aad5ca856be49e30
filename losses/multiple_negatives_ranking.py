"""MultipleNegativesRankingLoss: pick your own positive out of the whole batch (InfoNCE).

Formula, default settings. Queries q_1..q_B (first column), their positives d_1..d_B (second
column) and optional hard negatives n_i^1..n_i^k (further columns). Every query is scored against
every document of the batch, all positives and all hard negatives (B·(1+k) candidates):

    L = (1/B) Σ_i [ -s·sim(q_i, d_i) + log Σ_c exp(s·sim(q_i, c)) ]

a cross-entropy whose "class" is the query's own positive, with scale s = 1/temperature. The other
rows' positives are the "in-batch negatives"; they come for free. A duplicate text elsewhere in the
batch is a false negative (the loss pushes the query away from it): sample batches without
duplicates (sentence-transformers' ``BatchSamplers.NO_DUPLICATES``).

Papers: van den Oord, Li and Vinyals, "Representation Learning with Contrastive Predictive
Coding" (2018, InfoNCE); Henderson et al. 2017 for in-batch negatives in sentence encoders;
symmetric variant: Günther et al., "Jina Embeddings 2" (2023); all four directions: Li et al.,
"Towards General Text Embeddings with Multi-stage Contrastive Learning" (GTE, 2023); hardness
weighting: Lan et al. 2025 (arXiv 2503.04812, Eq. 5) and Schechter Vera et al. 2025
(EmbeddingGemma, arXiv 2509.20354).

Data: (anchor, positive) pairs, (anchor, positive, negative) triplets or (anchor, positive,
negative_1, ..., negative_k) n-tuples; no labels (the lab's "pair", "triplet", "n-tuple" formats).
Labels, if a dataset has a label column, are ignored by the reference; ours warns once, because a
label usually means rows are not all true (anchor, positive) pairs, e.g. 0/1 pair labels.

Knobs:
- ``scale`` (s): multiplies the similarities; 20 means temperature 0.05. With ``dot_score`` use ~1.
- ``similarity_fct``: any matrix similarity f(a, b) -> (len(a), len(b)); ``cos_sim`` by default.
  The query side is always the first argument.
- ``directions``: which score blocks enter each query's softmax, besides ``query_to_doc`` (required,
  it holds the positive):
    ``query_to_query``  sim(q_i, q_j) for every other query j (q_i itself is masked out);
    ``doc_to_query``    sim(q_j, d_i) for every query j: the positive d_i "searching" its query;
    ``doc_to_doc``      sim(c, d_i) for every document c not belonging to row i (the positive and
                        the hard negatives of row i itself are masked out).
- ``partition_mode``: ``"joint"`` puts all blocks in one softmax (GTE's loss); ``"per_direction"``
  takes one log-sum-exp per block and averages them (the symmetric loss, with ``doc_to_query``).
  ``per_direction`` is refused with ``query_to_query``/``doc_to_doc``: those blocks do not contain
  the positive, so their terms would not be a ranking of the positive at all.
- ``hardness_mode`` / ``hardness_strength`` (α): add α·stop_grad(sim(q_i, c)) to the *scaled*
  query_to_doc logit of some negatives c, so harder negatives weigh more in the softmax:
  ``"in_batch_negatives"`` every candidate of other rows (their positives and hard negatives),
  ``"hard_negatives"`` only row i's own hard negatives, ``"all_negatives"`` both; the positive
  is never changed. α = 0 (the default) or ``hardness_mode=None`` turns this off.
- ``gather_across_devices``: in a multi-process run, score local queries against the documents
  of every process (see losses/distributed.py for the gradient and scaling semantics).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from losses.base import EmbeddingLoss, joined
from losses.distributed import gather_across_ranks
from losses.similarity import as_matrix, cos_sim, dot_score, normalize, similarity_fct_name

logger = logging.getLogger(__name__)

Direction = Literal["query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"]
DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
HARDNESS_MODES = (None, "in_batch_negatives", "hard_negatives", "all_negatives")

CITATION_INFONCE = """
@misc{oord2019representationlearningcontrastivepredictive,
      title={Representation Learning with Contrastive Predictive Coding},
      author={Aaron van den Oord and Yazhe Li and Oriol Vinyals},
      year={2019},
      eprint={1807.03748},
      archivePrefix={arXiv},
      primaryClass={cs.LG},
      url={https://arxiv.org/abs/1807.03748},
}
"""
CITATION_GTE = """
@misc{li2023generaltextembeddingsmultistage,
      title={Towards General Text Embeddings with Multi-stage Contrastive Learning},
      author={Zehan Li and Xin Zhang and Yanzhao Zhang and Dingkun Long and Pengjun Xie and Meishan Zhang},
      year={2023},
      eprint={2308.03281},
      archivePrefix={arXiv},
      primaryClass={cs.CL},
      url={https://arxiv.org/abs/2308.03281},
}
"""  # noqa: E501 (bibliographic data, reproduced exactly)
CITATION_JINA = """
@misc{günther2024jinaembeddings28192token,
      title={Jina Embeddings 2: 8192-Token General-Purpose Text Embeddings for Long Documents},
      author={Michael Günther and Jackmin Ong and Isabelle Mohr and Alaeddine Abdessalem and Tanguy Abel and Mohammad Kalim Akram and Susana Guzman and Georgios Mastrapas and Saba Sturua and Bo Wang and Maximilian Werk and Nan Wang and Han Xiao},
      year={2024},
      eprint={2310.19923},
      archivePrefix={arXiv},
      primaryClass={cs.CL},
      url={https://arxiv.org/abs/2310.19923},
}
"""  # noqa: E501 (bibliographic data, reproduced exactly)


# ------------------------------------------------------------------------------- score blocks
# Shapes: b local queries, G rows in the (possibly gathered) global batch, C document columns
# (the positive plus k hard negatives). Documents are laid out column by column: index
# j·G + r is column j of global row r, so the positive of global row r sits at index r.

def own_documents(local_rows: Tensor, global_batch: int, columns: int) -> Tensor:
    """(b, G·C) bool: True where a document belongs to the same row as the query."""
    same_row = torch.arange(global_batch, device=local_rows.device) == local_rows.unsqueeze(1)
    return same_row.repeat(1, columns)  # (b, G) -> (b, G·C), one copy per document column


def hardness_targets(mode: str, own: Tensor, global_batch: int) -> Tensor:
    """(b, G·C) bool: the query_to_doc entries whose logit gets the hardness bonus."""
    is_hard_negative_column = torch.zeros_like(own)
    is_hard_negative_column[:, global_batch:] = True  # every column after the positives
    own_positive = own & ~is_hard_negative_column
    if mode == "in_batch_negatives":
        return ~own  # other rows' positives and hard negatives
    if mode == "hard_negatives":
        return own & is_hard_negative_column  # this row's own hard negatives only
    return ~own_positive  # "all_negatives": everything except the positive


def query_to_query_scores(similarity: Callable, local_queries: Tensor, queries: Tensor,
                          local_rows: Tensor) -> Tensor:
    """(b, G) sim(q_i, q_j), with each query's similarity to itself removed (-inf)."""
    scores = similarity(local_queries, queries)
    self_match = torch.zeros_like(scores, dtype=torch.bool)
    self_match[torch.arange(len(local_rows), device=scores.device), local_rows] = True
    return scores.masked_fill(self_match, -torch.inf)


def doc_to_query_scores(similarity: Callable, queries: Tensor, local_positives: Tensor) -> Tensor:
    """(b, G) sim(q_j, d_i): row i scores its positive against every query of the batch."""
    return similarity(queries, local_positives).T


def doc_to_doc_scores(similarity: Callable, documents: Tensor, local_positives: Tensor,
                      own: Tensor) -> Tensor:
    """(b, G·C) sim(c, d_i) for every document c, with row i's own documents removed (-inf)."""
    return similarity(documents, local_positives).T.masked_fill(own, -torch.inf)


def log_partition(blocks: Sequence[Tensor], partition_mode: str) -> Tensor:
    """(b,) log of each row's softmax denominator: one over all blocks, or the mean of one each."""
    if partition_mode == "joint":
        logits = blocks[0] if len(blocks) == 1 else torch.cat(list(blocks), dim=1)
        return torch.logsumexp(logits, dim=1)
    return sum(torch.logsumexp(block, dim=1) for block in blocks) / len(blocks)


class _InfoNCERows(torch.autograd.Function):
    """Row losses log Σ_c exp(s·S[i, c]) - s·S[i, rows[i]] of a (b, N) similarity block S.

    The reference's arithmetic (scale, ``torch.logsumexp``, minus the positive logit), forward
    and backward, operation for operation, so values and gradients are bit for bit the same;
    but the backward works in one (b, N) buffer instead of the half-dozen autograd allocates,
    and only the scaled logits are kept for it.
    """

    @staticmethod
    def forward(ctx: Any, similarities: Tensor, scale: float, rows: Tensor) -> Tensor:
        logits = similarities * scale  # (b, N)
        log_partition = torch.logsumexp(logits, dim=1)  # (b,)
        index = torch.arange(len(rows), device=rows.device)
        ctx.save_for_backward(logits, log_partition, rows)
        ctx.scale = scale
        return log_partition - logits[index, rows]

    @staticmethod
    def backward(ctx: Any, gradient: Tensor) -> tuple[Tensor, None, None]:
        logits, log_partition, rows = ctx.saved_tensors
        index = torch.arange(len(rows), device=rows.device)
        # ∂/∂logits: g · exp(x - lse), then -g at each row's positive; then times the scale.
        grad = torch.sub(logits, log_partition.unsqueeze(1)).exp_().mul_(gradient.unsqueeze(1))
        grad[index, rows] += -gradient
        return grad.mul_(ctx.scale), None, None


class _InfoNCEProducts(torch.autograd.Function):
    """``_InfoNCERows`` of the similarities q·dᵀ, the matrix product included: (b,) row losses
    from (b, dim) query rows, (N, dim) documents, the scale and each row's positive column.

    For the similarities that are plain products (``dot_score``; ``cos_sim`` of normalised
    rows). Values and gradients are bit for bit those of autograd through ``q @ d.T``, the
    scale and ``torch.logsumexp`` (the same operations, in the same order, including the
    reduction ``torch.logsumexp`` performs), with three (b, N) buffers instead of six: the
    product is scaled in place, and the gradient is built in one buffer. Only the scaled
    logits are kept between forward and backward, as autograd keeps them (wrappers such as
    MatryoshkaLoss hold several of these graphs at once).
    """

    @staticmethod
    def forward(ctx: Any, queries: Tensor, documents: Tensor, scale: float,
                rows: Tensor) -> Tensor:
        logits = (queries @ documents.T).mul_(scale)  # (b, N)
        # torch.logsumexp's own steps: row max (0 where infinite), exp(x - max), sum, log, + max.
        top = torch.amax(logits, dim=1, keepdim=True)  # (b, 1)
        top.masked_fill_(top.abs() == math.inf, 0)
        log_partition = torch.sub(logits, top).exp_().sum(dim=1).log_().add_(top.squeeze(1))
        index = torch.arange(len(rows), device=rows.device)
        ctx.save_for_backward(queries, documents, logits, log_partition, rows)
        ctx.scale = scale
        return log_partition - logits[index, rows]

    @staticmethod
    def backward(ctx: Any, gradient: Tensor) -> tuple[Tensor, Tensor, None, None]:
        queries, documents, logits, log_partition, rows = ctx.saved_tensors
        # ∂/∂logits: g · exp(x - lse), then -g at each row's positive; then times the scale.
        grad = torch.sub(logits, log_partition.unsqueeze(1)).exp_().mul_(gradient.unsqueeze(1))
        grad[torch.arange(len(rows), device=rows.device), rows] += -gradient
        grad.mul_(ctx.scale)
        # The two products autograd forms for q @ d.T (d.T being a transposed view).
        return grad.mm(documents), grad.t().mm(queries), None, None


class _SymmetricInfoNCERows(torch.autograd.Function):
    """Row losses ½ (log Σ_j exp(s·S[i, j]) + log Σ_j exp(s·S[j, i])) - s·S[i, i] of a square
    (B, B) similarity matrix S: every query against every positive, both directions.

    Both log-partitions come from one exponential, E = exp(s·S - m) with m the largest logit:
    row sums and column sums of E. The backward needs only E (no further exponential):
    ∂/∂(s·S[i, j]) = E[i, j] (g_i / 2 / Σ_k E[i, k] + g_j / 2 / Σ_k E[k, j]) - g_i [i = j].
    The reference computes the document-to-query direction as a second matrix product and
    two separate log-sum-exps: the same numbers, rounded differently. Should a row or a column
    of E underflow to 0 (logits spread over more than ~80), it falls back to log-sum-exps.
    """

    @staticmethod
    def forward(ctx: Any, similarities: Tensor, scale: float) -> Tensor:
        logits = similarities * scale  # (B, B)
        positive = logits.diagonal().clone()  # (B,)
        top = logits.max()
        exponentials = logits.sub_(top).exp_()  # (B, B), in place of the logits: E
        by_row, by_column = exponentials.sum(dim=1), exponentials.sum(dim=0)  # (B,) each
        if not (bool((by_row > 0).all()) and bool((by_column > 0).all())):
            logits = exponentials.log_().add_(top)  # back to the logits (rare: huge spreads)
            by_row, by_column = (torch.logsumexp(logits, dim=1).sub_(top).exp_(),
                                 torch.logsumexp(logits, dim=0).sub_(top).exp_())
            exponentials = logits.sub_(top).exp_()
        ctx.save_for_backward(exponentials, by_row, by_column)
        ctx.scale = scale
        return (by_row.log() + by_column.log()) / 2 + top - positive

    @staticmethod
    def backward(ctx: Any, gradient: Tensor) -> tuple[Tensor, None]:
        exponentials, by_row, by_column = ctx.saved_tensors
        half = gradient / 2
        grad = exponentials * (half / by_row).unsqueeze(1)  # (B, B)
        grad.addcmul_(exponentials, (half / by_column).unsqueeze(0))
        grad.diagonal().sub_(gradient)
        return grad.mul_(ctx.scale), None


class MultipleNegativesRankingLoss(EmbeddingLoss):
    """In-batch negatives cross-entropy (InfoNCE) with optional extra directions and hardness."""

    # Even a single document column is copied (``torch.cat``), as the reference does: the copy's
    # node in autograd's graph sets the order in which a wrapper's gradient contributions
    # (MatryoshkaLoss's dimensions, AdaptiveLayerLoss's layers) are summed, and their training
    # runs must end at the reference's weights bit for bit (without the copy they drift by 1e-3
    # after 20 Adam steps). The cached loss, which back-propagates by hand, skips the copy.
    _copies_single_document_column = True

    expected_inputs = ("(anchor, positive) pairs, (anchor, positive, negative) triplets or "
                       "(anchor, positive, negative_1, ..., negative_n) n-tuples, without labels")
    column_range = (2, None)

    def __init__(
        self,
        model: nn.Module,
        scale: float = 20.0,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim,
        gather_across_devices: bool = False,
        directions: tuple[Direction, ...] = ("query_to_doc",),
        partition_mode: Literal["joint", "per_direction"] = "joint",
        hardness_mode: Literal["in_batch_negatives", "hard_negatives", "all_negatives"]
        | None = None,
        hardness_strength: float = 0.0,
    ) -> None:
        super().__init__(model)
        name = type(self).__name__
        if not scale > 0:
            raise ValueError(f"{name}: scale must be positive (it is 1/temperature); got {scale}")
        if not directions:
            raise ValueError(f"{name}: give at least one direction, e.g. ('query_to_doc',)")
        unknown = set(directions) - set(DIRECTIONS)
        if unknown:
            raise ValueError(f"{name}: unknown direction(s) {sorted(unknown)}; valid: {DIRECTIONS}")
        if "query_to_doc" not in directions:
            raise ValueError(f"{name}: directions must include 'query_to_doc', the block that "
                             f"holds the positive; got {tuple(directions)}")
        if partition_mode not in ("joint", "per_direction"):
            raise ValueError(f"{name}: partition_mode must be 'joint' or 'per_direction'; got "
                             f"{partition_mode!r}")
        same_type = set(directions) & {"query_to_query", "doc_to_doc"}
        if partition_mode == "per_direction" and same_type:
            raise ValueError(
                f"{name}: partition_mode='per_direction' needs the positive in every direction's "
                f"softmax, and {sorted(same_type)} never contain it (the loss could go negative "
                f"and stop ranking the positive). Use partition_mode='joint' with them.")
        if hardness_mode not in HARDNESS_MODES:
            raise ValueError(f"{name}: hardness_mode must be one of {HARDNESS_MODES}; got "
                             f"{hardness_mode!r}")
        if hardness_strength < 0.0:
            raise ValueError(f"{name}: hardness_strength must be non-negative; got "
                             f"{hardness_strength}")
        if hardness_mode is not None and hardness_strength == 0.0:
            logger.warning("%s: hardness_mode=%r does nothing with hardness_strength=0.0; give a "
                           "positive strength (e.g. 5 or 9) to weight hard negatives.", name,
                           hardness_mode)
        self.scale = scale
        self.similarity_fct = similarity_fct
        self.gather_across_devices = gather_across_devices
        self.directions = tuple(directions)
        self.partition_mode = partition_mode
        self.hardness_mode = hardness_mode
        self.hardness_strength = hardness_strength

    def compute_loss_from_embeddings(self, embeddings: list[Tensor],
                                     labels: Tensor | None = None) -> Tensor:
        """Loss from (batch, dim) embeddings: queries, positives, then any hard-negative columns."""
        local_batch, _ = self.check_embeddings(embeddings)
        self._warn_about_suspicious_input(labels, local_batch, len(embeddings))
        queries, documents, local_rows = self.global_batch(embeddings)
        return self.row_losses(queries, documents, local_rows).mean()

    @property
    def _weighs_hardness(self) -> bool:
        """Whether a hardness weighting is on (a mode, with a non-zero strength)."""
        return self.hardness_mode is not None and self.hardness_strength != 0.0

    def global_batch(self, embeddings: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """(queries (G, dim), documents (G·C, dim) column by column, local rows (b,)).

        Without ``gather_across_devices`` the global batch is the local one (G = b).
        """
        queries, *document_columns = embeddings
        local = slice(0, queries.shape[0])
        if self.gather_across_devices:
            queries, local = gather_across_ranks(queries)  # (G, dim)
            document_columns = [gather_across_ranks(column)[0] for column in document_columns]
        local_rows = torch.arange(local.start, local.stop, device=queries.device)  # (b,)
        if self._copies_single_document_column:
            return queries, torch.cat(document_columns, dim=0), local_rows
        return queries, joined(document_columns), local_rows

    def row_losses(self, queries: Tensor, documents: Tensor, rows: Tensor) -> Tensor:
        """(len(rows),) loss of the given global rows, against the whole (global) batch.

        Any subset of rows may be scored on its own (the cached loss scores a few at a time), so
        the B x B·C score matrix never has to exist in one piece.

        The arithmetic is the reference's, operation for operation (so float32 training runs
        end at the same weights), without work it does not need: no row-ownership mask unless
        a setting reads it, no concatenation of a single block, and, for the symmetric loss over
        a whole batch of pairs, the ``doc_to_query`` block read off the ``query_to_doc``
        similarities (sim(q_j, d_i) is entry (j, i) of the same matrix, computed the same way)
        instead of a second matrix product.
        """
        global_batch = queries.shape[0]
        columns = documents.shape[0] // global_batch
        # The positive of global row r is documents[r] (first document column).
        row_queries, row_positives = queries[rows], documents[rows]  # (b, dim)
        needs_own = "doc_to_doc" in self.directions or (
            self._weighs_hardness)
        own = own_documents(rows, global_batch, columns) if needs_own else None  # (b, G·C)

        directions = set(self.directions)
        if directions == {"query_to_doc"} and not needs_own:  # the default setting
            if self.similarity_fct in (cos_sim, dot_score):
                left, right = as_matrix(row_queries), as_matrix(documents)
                if self.similarity_fct is cos_sim:
                    left, right = normalize(left), normalize(right)
                return _InfoNCEProducts.apply(left, right, self.scale, rows)
            return _InfoNCERows.apply(self.similarity_fct(row_queries, documents), self.scale,
                                      rows)
        similarities = self.similarity_fct(row_queries, documents)  # (b, G·C)
        if (directions == {"query_to_doc", "doc_to_query"} and self.partition_mode ==
                "per_direction" and columns == 1 and len(rows) == global_batch
                and not needs_own):  # the symmetric loss on a whole batch of pairs
            return _SymmetricInfoNCERows.apply(similarities, self.scale)
        query_to_doc = self._query_to_doc_logits(similarities, own, global_batch)  # (b, G·C)
        # The positive of query i sits at column rows[i] (it never gets a bonus).
        positive = query_to_doc[torch.arange(len(rows), device=queries.device), rows]
        blocks = [query_to_doc]
        if "query_to_query" in self.directions:
            blocks.append(self.scale * query_to_query_scores(
                self.similarity_fct, row_queries, queries, rows))
        if "doc_to_query" in self.directions:
            if columns == 1 and len(rows) == global_batch and not needs_own:
                # Pairs, every row (rows are a range, so 0..G-1), no bonus: the same numbers.
                blocks.append(query_to_doc.T)
            else:
                blocks.append(self.scale * doc_to_query_scores(
                    self.similarity_fct, queries, row_positives))
        if "doc_to_doc" in self.directions:
            blocks.append(self.scale * doc_to_doc_scores(
                self.similarity_fct, documents, row_positives, own))
        return log_partition(blocks, self.partition_mode) - positive

    def _query_to_doc_logits(self, similarities: Tensor, own: Tensor, global_batch: int) -> Tensor:
        """(b, G·C) s·sim, plus the unscaled hardness bonus α·stop_grad(sim) on chosen negatives."""
        logits = similarities * self.scale
        if self.hardness_mode is None or self.hardness_strength == 0.0:
            return logits
        targets = hardness_targets(self.hardness_mode, own, global_batch)
        bonus = self.hardness_strength * similarities.detach()
        return logits + bonus.masked_fill(~targets, 0.0)

    def _warn_about_suspicious_input(self, labels: Tensor | None, batch: int,
                                     columns: int) -> None:
        if labels is not None:
            self.warn_once("labels", f"ignores labels (it expects {self.expected_inputs}); got "
                                     "labels, so every row is treated as a true (anchor, positive) "
                                     "pair. Drop the label column, or use a loss that reads it.")
        if batch == 1 and columns == 2 and not self.gather_across_devices:
            self.warn_once("batch1", "a batch of one pair has no negatives to rank against: the "
                                     "loss is a constant, with no gradient. Use larger batches.")
        if self.hardness_mode == "hard_negatives" and self.hardness_strength > 0 and columns == 2:
            self.warn_once("no_hard_negatives", "hardness_mode='hard_negatives' weights only the "
                                                "hard-negative columns, and these (anchor, "
                                                "positive) pairs have none: it has no effect.")

    def get_config_dict(self) -> dict[str, Any]:
        """Settings as in the reference; the similarity function by its readable name."""
        return {
            "scale": self.scale,
            "similarity_fct": similarity_fct_name(self.similarity_fct),
            "gather_across_devices": self.gather_across_devices,
            "directions": self.directions,
            "partition_mode": self.partition_mode,
            "hardness_mode": self.hardness_mode,
            "hardness_strength": self.hardness_strength,
        }

    @property
    def temperature(self) -> float:
        """1 / scale."""
        return 1.0 / self.scale

    @property
    def citation(self) -> str:
        """GTE for all four directions jointly, Jina for the symmetric loss, else InfoNCE."""
        chosen = set(self.directions)
        if chosen == set(DIRECTIONS) and self.partition_mode == "joint":
            return CITATION_GTE
        if chosen == {"query_to_doc", "doc_to_query"} and self.partition_mode == "per_direction":
            return CITATION_JINA
        return CITATION_INFONCE
