"""MatryoshkaLoss: train the first d dimensions of an embedding to work on their own, for several d.

A loss *modifier*. Given an inner loss ℓ (MultipleNegativesRankingLoss, CoSENTLoss, ...), dims
d_1 > d_2 > ... > d_K and weights w_k:

    L = Σ_k w_k · ℓ( normalize(e[:, :d_k]) for every column e )

Every term sees the same embeddings, cut to their first d_k coordinates and L2-normalised (also
at the full dimension). The model runs once per step: the full embeddings are computed for the
first (largest) dimension and reused, truncated, for the others. Afterwards the user can keep
only the first 64 of 384 numbers and still get a useful embedding: the prefix is trained to be
an embedding itself, like the smallest doll in a set of Russian dolls.

Paper: Kusupati et al., "Matryoshka Representation Learning" (NeurIPS 2022, arXiv 2205.13147).

Data: whatever the inner loss takes (columns and labels pass through). Labels that look like
per-column embeddings, a (batch, dim) or (batch, columns, dim) tensor whose last size is the
model's embedding size (e.g. MSELoss's teacher embeddings), are cut to d_k too; they are not
normalised (as in the reference).

Knobs:
- ``matryoshka_dims``: the prefix sizes; any order (sorted largest first, weights follow), each in
  1..embedding size, no repeats. Include the full size, or the full embedding is not trained.
- ``matryoshka_weights``: one weight per dim (default 1 each).
- ``n_dims_per_step``: -1 (default) trains every dim each step; k > 0 trains a random sample of
  k dims per step (drawn with Python's ``random``, so seeded runs repeat).

How the wrapping works (and what it needs from the inner loss):
- An ordinary loss calls ``model(features)["sentence_embedding"]`` once per column. During our
  step the model's ``forward`` is swapped (losses/model_patching.py) for one that runs the real
  model on the first pass, remembers each output, and answers every later pass from memory with
  the embedding cut to the current dim. The swap is undone when the step ends, also on error.
- A gradient-cached loss (``uses_gradient_cache = True``: it embeds mini-batches without a graph
  and re-embeds them in a backward hook, after our step has ended) must instead compute its loss
  in ``self.calculate_loss(reps, *rest, with_backward=False)``, where ``reps`` holds per-column
  lists of mini-batch embeddings, and look that method up on ``self`` at call time. Only ``reps``
  is truncated; the other arguments pass through untouched (``labels`` for
  CachedMultipleNegativesRankingLoss and MegaBatchMarginLoss; the guide's embeddings for
  CachedGISTEmbedLoss: the guide is another model, with its own dimension, and is not trained).
  During our step that method is swapped, on the instance only, for one that calls the original
  once per dim on truncated copies and routes the gradients back to the full embeddings. All our
  cached losses get their mini-batches from losses/gradient_cache.py and call this method from
  there, so one mechanism serves them all (the protocol of sentence-transformers' cached losses
  too); the inner loss is left untouched outside our step (the reference decorates it for good).
- ``compute_loss_from_embeddings(embeddings, labels)`` works without a model if the inner loss
  has its own ``compute_loss_from_embeddings``.

Stricter than the reference: repeated dims, ``n_dims_per_step`` 0 or below -1, and non-integer
dims raise a ValueError (the reference trains repeated dims twice and treats 0 as "all").
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.model_patching import swapped_attribute, swapped_forward
from losses.validation import LossInputError

logger = logging.getLogger(__name__)

LossValue = Tensor | dict[str, Tensor]


def truncate_and_normalize(embeddings: Tensor, dim: int, loss_name: str = "MatryoshkaLoss"
                           ) -> Tensor:
    """The first ``dim`` coordinates of (..., full_dim) embeddings, L2-normalised."""
    if dim > embeddings.shape[-1]:
        raise LossInputError(f"{loss_name}: matryoshka dim {dim} is larger than the embeddings "
                             f"it got, of size {embeddings.shape[-1]}")
    return F.normalize(embeddings[..., :dim], p=2, dim=-1)


def add_weighted(total: LossValue | None, weight: float, value: LossValue) -> LossValue:
    """total + weight · value, for scalar losses and for dicts of named loss components."""
    if isinstance(value, dict):
        total = total or {}
        return {key: total.get(key, 0.0) + weight * part for key, part in value.items()}
    return weight * value if total is None else total + weight * value


class _TruncatingForward:
    """Stands in for ``model.forward`` during one MatryoshkaLoss step.

    Pass 1 runs the real model and remembers each call's output (one per column, in call order);
    every later pass replays them. Each call returns the output with the embedding cut to ``dim``.
    Passes go from the largest dim down, and each cut is taken from the previous pass's cut
    (normalising only rescales, so the prefix's direction is the same): the same arithmetic as
    the reference, which keeps float32 training runs step for step identical.
    """

    def __init__(self, forward: Callable, loss_name: str) -> None:
        self.forward = forward
        self.loss_name = loss_name
        self.outputs: list[dict[str, Any]] = []
        self.latest: list[Tensor] = []  # per call: the embedding as last cut
        self.passes = 0
        self.calls = 0
        self.dim = 0

    def start_pass(self, dim: int) -> None:
        self.dim = dim
        self.passes += 1
        self.calls = 0

    def __call__(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if self.passes == 1:  # the only pass that runs the model
            output = self.forward(features, **kwargs)
            self.outputs.append(output)
            self.latest.append(output["sentence_embedding"])
        elif self.calls >= len(self.outputs):
            raise RuntimeError(f"{self.loss_name}: the wrapped loss ran the model more often for "
                               f"dim {self.dim} than for the first dim; it must embed the same "
                               "columns, in the same order, on every call")
        index = self.calls
        self.calls += 1
        self.latest[index] = truncate_and_normalize(self.latest[index], self.dim, self.loss_name)
        # A new dict: the remembered output is not edited.
        return {**self.outputs[index], "sentence_embedding": self.latest[index]}


class MatryoshkaLoss(EmbeddingLoss):
    """Sum of an inner loss over truncated, re-normalised prefixes of the embeddings."""

    expected_inputs = "the columns and labels of the wrapped loss"

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        matryoshka_dims: Sequence[int],
        matryoshka_weights: Sequence[float] | Sequence[int] | None = None,
        n_dims_per_step: int = -1,
    ) -> None:
        super().__init__(model)
        name = type(self).__name__
        self.loss = loss
        dims = list(matryoshka_dims) if matryoshka_dims is not None else []
        if not dims:
            raise ValueError(f"{name}: matryoshka_dims must list at least one dimension, e.g. "
                             "[384, 256, 128, 64]")
        if any(isinstance(dim, bool) or not isinstance(dim, int) for dim in dims):
            raise ValueError(f"{name}: matryoshka_dims must be integers; got {dims}")
        if any(dim <= 0 for dim in dims):
            raise ValueError(f"{name}: every matryoshka dim must be > 0; got {dims}")
        if len(set(dims)) != len(dims):
            raise ValueError(f"{name}: matryoshka_dims repeats a dimension ({dims}); give each "
                             "once and use matryoshka_weights to weigh one more")
        weights = [1] * len(dims) if matryoshka_weights is None else list(matryoshka_weights)
        if len(weights) != len(dims):
            raise ValueError(f"{name}: matryoshka_weights needs one weight per dim: "
                             f"{len(dims)} dims {dims}, got {len(weights)} weights {weights}")
        if isinstance(n_dims_per_step, bool) or not isinstance(n_dims_per_step, int) or (
                n_dims_per_step == 0 or n_dims_per_step < -1):
            raise ValueError(f"{name}: n_dims_per_step must be -1 (every dim each step) or a "
                             f"positive number of dims to sample; got {n_dims_per_step!r}")
        full_dim = self._model_dimension()
        if full_dim is not None:
            too_big = [dim for dim in dims if dim > full_dim]
            if too_big:
                raise ValueError(f"{name}: matryoshka dims {too_big} exceed the model's "
                                 f"embedding dimension {full_dim}")
            if full_dim not in dims:
                logger.warning("%s: matryoshka_dims %s leave out the model's full dimension %d, "
                               "so the full embedding is never trained; add %d.", name, dims,
                               full_dim, full_dim)
        if getattr(loss, "uses_gradient_cache", False) and not callable(
                getattr(loss, "calculate_loss", None)):
            raise TypeError(f"{name}: {type(loss).__name__} uses gradient caching but has no "
                            "calculate_loss(reps, ..., *, with_backward) method, so its "
                            "embeddings cannot be truncated (see losses/matryoshka.py)")
        # Largest dim first; each weight stays with its dim.
        ordered = sorted(zip(dims, weights, strict=True), key=lambda pair: pair[0], reverse=True)
        self.matryoshka_dims: tuple[int, ...] = tuple(dim for dim, _ in ordered)
        self.matryoshka_weights: tuple[float, ...] = tuple(weight for _, weight in ordered)
        self.n_dims_per_step = n_dims_per_step

    # --------------------------------------------------------------------------- helpers
    @property
    def uses_gradient_cache(self) -> bool:
        """True when the inner loss back-propagates from a hook (read by AdaptiveLayerLoss)."""
        return bool(getattr(self.loss, "uses_gradient_cache", False))

    def _model_dimension(self) -> int | None:
        get = getattr(self.model, "get_embedding_dimension", None)
        return get() if callable(get) else None

    def sampled_dims(self, sort: bool = True) -> list[tuple[int, float]]:
        """(dim, weight) pairs for this step: all, or ``n_dims_per_step`` drawn at random."""
        indices: Sequence[int] = range(len(self.matryoshka_dims))
        if 0 < self.n_dims_per_step < len(indices):
            indices = random.sample(indices, self.n_dims_per_step)
            if sort:
                indices.sort()  # largest dim first, so the first pass computes the embeddings
        return [(self.matryoshka_dims[i], self.matryoshka_weights[i]) for i in indices]

    @staticmethod
    def labels_for_dim(labels: Tensor | None, dim: int, full_dim: int | None) -> Tensor | None:
        """Cut labels that are per-column embeddings ((B, full) or (B, C, full)) to ``dim``."""
        if (isinstance(labels, Tensor) and labels.dim() in (2, 3) and full_dim is not None
                and labels.shape[-1] == full_dim):
            return labels[..., :dim]
        return labels

    # ------------------------------------------------------------------------------ losses
    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
                ) -> LossValue:
        """One step: the inner loss once per (sampled) dim, on one run of the model."""
        if self.uses_gradient_cache:
            with self._truncating_calculate_loss():
                return self.loss(sentence_features, labels)
        features = list(sentence_features)
        full_dim = self._model_dimension()
        truncating = _TruncatingForward(self.model.forward, type(self).__name__)
        total = None
        with swapped_forward(self.model, truncating):
            for dim, weight in self.sampled_dims():
                truncating.start_pass(dim)
                value = self.loss(features, self.labels_for_dim(labels, dim, full_dim))
                total = add_weighted(total, weight, value)
        return total

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None
                                     ) -> LossValue:
        """The same sum from per-column (batch, dim) embeddings, with no model involved."""
        compute = getattr(self.loss, "compute_loss_from_embeddings", None)
        if compute is None:
            raise TypeError(f"{type(self).__name__}: the wrapped {type(self.loss).__name__} has "
                            "no compute_loss_from_embeddings; call the loss on features instead")
        full_dim = self.check_embeddings(embeddings)[1]
        total = None
        truncated = list(embeddings)
        for dim, weight in self.sampled_dims():  # largest first, each cut from the previous
            truncated = [truncate_and_normalize(column, dim, type(self).__name__)
                         for column in truncated]  # (B, dim) each
            value = compute(truncated, self.labels_for_dim(labels, dim, full_dim))
            total = add_weighted(total, weight, value)
        return total

    @contextmanager
    def _truncating_calculate_loss(self) -> Iterator[None]:
        """During one step, the inner cached loss's ``calculate_loss`` runs once per dim."""
        original = self.loss.calculate_loss
        name = type(self).__name__

        def calculate_loss_per_dim(reps: list[list[Tensor]], *rest: Any,
                                   with_backward: bool = False, **kwargs: Any) -> Tensor:
            # ``rest`` and ``kwargs``: labels, guide embeddings, ...: passed on as they are.
            total = None
            for dim, weight in self.sampled_dims(sort=False):
                # reps: columns x mini-batches of (b, full) -> same layout, (b, dim), normalised.
                truncated = [[truncate_and_normalize(piece, dim, name) for piece in column]
                             for column in reps]
                if not with_backward:
                    value = original(truncated, *rest, with_backward=False, **kwargs)
                else:
                    # The inner loss back-propagates into its inputs and frees its graph, so give
                    # it fresh leaves, then carry their (weighted) gradients through the
                    # truncation into ``reps``, where the gradient cache collects them.
                    leaves = [[piece.detach().requires_grad_() for piece in column]
                              for column in truncated]
                    value = original(leaves, *rest, with_backward=True, **kwargs)
                    pairs = [(piece, leaf.grad)
                             for column, leaf_column in zip(truncated, leaves, strict=True)
                             for piece, leaf in zip(column, leaf_column, strict=True)
                             if leaf.grad is not None]
                    if pairs:
                        torch.autograd.backward([piece for piece, _ in pairs],
                                                [weight * grad for _, grad in pairs])
                total = add_weighted(total, weight, value)
            return total

        with swapped_attribute(self.loss, "calculate_loss", calculate_loss_per_dim):
            yield

    def get_config_dict(self) -> dict[str, Any]:
        """Inner loss's class name, the dims and weights (largest first), dims per step."""
        return {
            "loss": type(self.loss).__name__,
            "matryoshka_dims": self.matryoshka_dims,
            "matryoshka_weights": self.matryoshka_weights,
            "n_dims_per_step": self.n_dims_per_step,
        }

    @property
    def citation(self) -> str:
        """Kusupati et al., Matryoshka Representation Learning."""
        return """
@misc{kusupati2024matryoshka,
    title={Matryoshka Representation Learning},
    author={Aditya Kusupati and Gantavya Bhatt and Aniket Rege and Matthew Wallingford and Aditya Sinha and Vivek Ramanujan and William Howard-Snyder and Kaifeng Chen and Sham Kakade and Prateek Jain and Ali Farhadi},
    year={2024},
    eprint={2205.13147},
    archivePrefix={arXiv},
    primaryClass={cs.LG}
}
"""  # noqa: E501 (bibliographic data, reproduced exactly)
