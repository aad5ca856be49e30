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
   are scored ``mini_batch_size`` at a time and each chunk is back-propagated at once, so the
   score matrix never exists in one piece (each query row's loss only needs that row's scores);
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
- ``mini_batch_size``: texts per embedding mini-batch, and query rows per chunk of the score
  matrix. Smaller saves memory, larger runs faster; the result does not change.
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

from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from losses.gradient_cache import gradient_cached_loss, is_static_embedding_model
from losses.multiple_negatives_ranking import Direction, MultipleNegativesRankingLoss
from losses.similarity import cos_sim, similarity_fct_name


class CachedMultipleNegativesRankingLoss(MultipleNegativesRankingLoss):
    """MultipleNegativesRankingLoss with gradient caching: full-batch result, mini-batch memory."""

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
        embeddings = [torch.cat(column) for column in reps]  # per column: (b, dim)
        local_batch, _ = self.check_embeddings(embeddings)
        self._warn_about_suspicious_input(labels, local_batch, len(embeddings))
        # queries (G, dim), documents (G·C, dim), local_rows (b,): see row_losses.
        queries, documents, local_rows = self.global_batch(embeddings)
        if with_backward:
            scored = [queries.detach().requires_grad_(), documents.detach().requires_grad_()]
        else:
            scored = [queries, documents]
        total = torch.zeros((), dtype=queries.dtype, device=queries.device)
        for rows in local_rows.split(self.mini_batch_size):
            chunk = self.row_losses(*scored, rows).sum() / local_batch  # its share of the mean
            if with_backward:
                chunk.backward()  # frees this chunk's (rows, G·C) scores right away
                chunk = chunk.detach()
            total = total + chunk
        if with_backward:
            torch.autograd.backward([queries, documents], [leaf.grad for leaf in scored])
        return total

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
