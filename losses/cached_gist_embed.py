"""CachedGISTEmbedLoss: GISTEmbedLoss for batches too big for memory, via gradient caching.

The loss is exactly GISTEmbedLoss's (see losses/gist_embed.py for the formula, the guide's
false-negative rule and the knobs; the math lives there and is shared), computed with GradCache
(Gao et al., "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup", 2021;
the mechanism is losses/gradient_cache.py):

1. the model embeds every column mini-batch by mini-batch without a graph, and the guide (never
   trained) embeds the same mini-batches, re-tokenising them when its tokenizer differs;
2. the loss is computed ``mini_batch_size`` anchor rows at a time (or more, while a block's
   logits stay under about 1 M entries), each block back-propagated at once to the embeddings,
   whose gradients are cached (without gradients, e.g. when evaluating, the blocks are
   ``mini_batch_size`` rows);
3. during ``backward()`` each mini-batch is embedded again with a graph (same dropout) and the
   cached gradient flows into the model.

Same value and gradients as GISTEmbedLoss, with the activation memory of one mini-batch and one
(mini_batch_size x candidates) block of logits, for about one more forward pass.

Papers: Solatorio, "GISTEmbed" (2024, arXiv 2402.16829); Gao et al. 2021 (GradCache). Like the
reference, this loss has no citation of its own.

Data: (anchor, positive) pairs, (anchor, positive, negative) triplets or (anchor, positive,
negative_1, ..., negative_n) n-tuples, no labels (the lab's "pair", "triplet", "n-tuple" formats).

Knobs: those of GISTEmbedLoss, plus ``mini_batch_size`` (rows per mini-batch, and at least
per block of the loss), ``mini_batch_num_tokens`` (pack mini-batches by non-padding token count
instead) and ``show_progress_bar``. Static-embedding models are refused: their flat inputs
cannot be split.

Step 2 is ``calculate_loss(reps, guide_reps, labels, *, with_backward)``, the hook every cached
loss of this package shares (losses/gradient_cache.py calls it, looked up on the instance):
MatryoshkaLoss swaps it during its step to truncate ``reps`` (the model's embeddings, not the
guide's) once per dimension, so Matryoshka(CachedGISTEmbedLoss) needs no code of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from losses.gist_embed import (
    GuidedLoss,
    MarginStrategy,
    check_gist_settings,
    gist_loss,
    guide_embeddings_of,
    needs_retokenizing,
)
from losses.gradient_cache import (
    gradient_cached_loss,
    is_static_embedding_model,
    minibatch_ranges,
)

# Logits of one block of anchor rows (about 1 MB in float32) while the loss is back-propagated.
# A block's graph holds several logit-sized tensors; measured with tiny-bert at batch 4096 (two
# fresh processes each): 1 M entries peaked at 219-259 MB, 256 K at 171-195 MB (256: 117 MB),
# at the price of thinner matrix products (the stand-in model's 4096 step: 3.0-3.7 s -> 5.7-6.1 s;
# the reference needs over 300 s there).
SCORE_BLOCK_ENTRIES = 1 << 18


class CachedGISTEmbedLoss(GuidedLoss):
    """GISTEmbedLoss's value and gradients, computed mini-batch by mini-batch (GradCache).

    A sibling of GISTEmbedLoss, not a subclass (isinstance checks stay apart, as in the
    reference): both build on GuidedLoss and the functions of losses/gist_embed.py.
    """

    expected_inputs = ("(anchor, positive) pairs, (anchor, positive, negative) triplets or "
                       "(anchor, positive, negative_1, ..., negative_n) n-tuples, without labels")
    column_range = (2, None)
    uses_gradient_cache = True  # read by wrappers: backward re-runs the model

    def __init__(
        self,
        model: nn.Module,
        guide: nn.Module,
        temperature: float = 0.01,
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        show_progress_bar: bool = False,
        margin_strategy: MarginStrategy = "absolute",
        margin: float = 0.0,
        contrast_anchors: bool = True,
        contrast_positives: bool = True,
        gather_across_devices: bool = False,
    ) -> None:
        super().__init__(model)
        name = type(self).__name__
        if is_static_embedding_model(model):
            raise ValueError(
                f"{name} splits each batch into mini-batches, but a StaticEmbedding model's "
                "inputs (one flat token list per batch) cannot be split. Use GISTEmbedLoss.")
        self.guide = guide
        self.must_retokenize = needs_retokenizing(name, model, guide)
        if self.must_retokenize:
            self.tokenizer = model.tokenizer
        if mini_batch_num_tokens is not None and mini_batch_num_tokens <= 0:
            raise ValueError(f"{name}: mini_batch_num_tokens must be a positive integer or None; "
                             f"got {mini_batch_num_tokens}")
        if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, int) \
                or mini_batch_size < 1:
            raise ValueError(f"{name}: mini_batch_size must be a positive integer; got "
                             f"{mini_batch_size!r}")
        check_gist_settings(name, temperature, margin_strategy)
        self.temperature = temperature
        self.mini_batch_size = mini_batch_size
        self.mini_batch_num_tokens = mini_batch_num_tokens
        self.show_progress_bar = show_progress_bar
        self.margin_strategy = margin_strategy
        self.margin = margin
        self.contrast_anchors = contrast_anchors
        self.contrast_positives = contrast_positives
        self.gather_across_devices = gather_across_devices

    def forward(self, sentence_features: Iterable[dict[str, Tensor]],
                labels: Tensor | None = None) -> Tensor:
        """GradCache forward: the guide embeds each mini-batch, then the cached loss."""
        features = self._check_columns(sentence_features)
        guide_reps = [  # per column, one (batch, guide dim) piece
            [guide_embeddings_of(self.guide, dict(column), self._guide_tokenizer(),
                                 minibatch_ranges(column, self.mini_batch_size,
                                                  self.mini_batch_num_tokens))]
            for column in features]
        return gradient_cached_loss(
            self.model, features, labels, partial(self._loss_on_minibatches, guide_reps),
            self.mini_batch_size, self.mini_batch_num_tokens, self.show_progress_bar)

    def _loss_on_minibatches(self, guide_reps: list[list[Tensor]], reps: list[list[Tensor]],
                             labels: Tensor | None, with_backward: bool) -> Tensor:
        # Looked up on self at call time: a wrapper (MatryoshkaLoss) may have swapped it.
        return self.calculate_loss(reps, guide_reps, labels, with_backward=with_backward)

    def calculate_loss(self, reps: list[list[Tensor]],
                       guide_reps: list[list[Tensor]] | None = None,
                       labels: Tensor | None = None, *, with_backward: bool = False) -> Tensor:
        """The loss from per-column lists of mini-batch embeddings (GradCache's step 2).

        ``reps``: per column, the model's (rows, dim) embeddings in mini-batch pieces.
        ``guide_reps``: per column, the guide's (rows, guide dim) embeddings in one or more
        pieces; None: the detached embeddings guide themselves. With ``with_backward`` the loss
        is back-propagated ``mini_batch_size`` anchor rows at a time into ``reps``, and the
        detached value is returned.
        """
        embeddings = [torch.cat(column) for column in reps]  # (batch, dim) per column
        guide_embeddings = None if guide_reps is None else [
            torch.cat(list(column)) for column in guide_reps]  # (batch, guide dim) per column
        return self._blockwise(embeddings, labels, guide_embeddings, with_backward)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None,
                                     guide_embeddings: list[Tensor] | None = None) -> Tensor:
        """GISTEmbedLoss's loss on (batch, dim) embeddings; the guide's are optional (see there).

        With a graph the logits are built in one piece (blocks kept for backward would cost the
        same memory); without gradients, ``mini_batch_size`` rows at a time.
        """
        return self._blockwise(embeddings, labels, guide_embeddings, with_backward=False)

    def _blockwise(self, embeddings: list[Tensor], labels: Tensor | None,
                   guide_embeddings: list[Tensor] | None, with_backward: bool) -> Tensor:
        guide_embeddings = self._check(embeddings, labels, guide_embeddings)
        in_blocks = with_backward or not torch.is_grad_enabled()
        # Rows per block: mini_batch_size; when back-propagating block by block, more while a
        # block's logits stay under about 1 M entries (fewer, larger matrix products).
        candidates = sum(column.shape[0] for column in embeddings) + embeddings[0].shape[0]
        rows = self.mini_batch_size
        if with_backward:
            rows = max(rows, SCORE_BLOCK_ENTRIES // max(1, candidates))
        return gist_loss(self._batch(embeddings, guide_embeddings), *self._settings(),
                         block_size=rows if in_blocks else None, with_backward=with_backward)

    def get_config_dict(self) -> dict[str, Any]:
        """Settings as in the reference, the guide model itself included."""
        return {
            "guide": self.guide,
            "temperature": self.temperature,
            "mini_batch_size": self.mini_batch_size,
            "mini_batch_num_tokens": self.mini_batch_num_tokens,
            "margin_strategy": self.margin_strategy,
            "margin": self.margin,
            "contrast_anchors": self.contrast_anchors,
            "contrast_positives": self.contrast_positives,
            "gather_across_devices": self.gather_across_devices,
        }
