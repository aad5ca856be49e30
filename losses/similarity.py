"""Similarities and distances between embeddings, written once for every loss.

Two shapes, named the way sentence-transformers names them, so a ``similarity_fct`` or
``distance_metric`` from either library can be passed to either:

- matrix functions ``f(a, b)``: ``a`` (n, dim), ``b`` (m, dim) -> (n, m), entry [i, j] compares
  a[i] with b[j] (``cos_sim``, ``dot_score``, ``euclidean_sim``, ``manhattan_sim``);
- pairwise functions ``f(a, b)``: ``a``, ``b`` (n, dim) -> (n,), entry [i] compares a[i] with b[i]
  (``pairwise_cos_sim``, ``pairwise_dot_score``, ...).

And the three metric "enums" of the reference, as classes of static functions:
``SiameseDistanceMetric`` (contrastive losses), ``TripletDistanceMetric`` (TripletLoss) and
``BatchHardTripletLossDistanceFunction`` (the batch triplet losses, full distance matrices).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def _as_matrix(x: Tensor) -> Tensor:
    """Accept one vector (dim,) as a batch of one (1, dim)."""
    x = torch.as_tensor(x)
    return x.unsqueeze(0) if x.dim() == 1 else x


def normalize(x: Tensor) -> Tensor:
    """Scale every row to unit L2 norm (rows of zeros stay zero instead of becoming NaN)."""
    return F.normalize(x, p=2, dim=-1)


# ---------------------------------------------------------------------------- matrix similarities
def cos_sim(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of every row of ``a`` with every row of ``b``: (n, d), (m, d) -> (n, m)."""
    return normalize(_as_matrix(a)) @ normalize(_as_matrix(b)).T


def dot_score(a: Tensor, b: Tensor) -> Tensor:
    """Dot product of every row of ``a`` with every row of ``b``: (n, m)."""
    return _as_matrix(a) @ _as_matrix(b).T


def euclidean_sim(a: Tensor, b: Tensor) -> Tensor:
    """Negative Euclidean distance of every pair of rows: (n, m)."""
    return -torch.cdist(_as_matrix(a), _as_matrix(b), p=2.0)


def manhattan_sim(a: Tensor, b: Tensor) -> Tensor:
    """Negative Manhattan (L1) distance of every pair of rows: (n, m)."""
    return -torch.cdist(_as_matrix(a), _as_matrix(b), p=1.0)


# -------------------------------------------------------------------------- pairwise similarities
def pairwise_cos_sim(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of a[i] with b[i]: (n, dim), (n, dim) -> (n,)."""
    return (normalize(a) * normalize(b)).sum(dim=-1)


def pairwise_dot_score(a: Tensor, b: Tensor) -> Tensor:
    """Dot product of a[i] with b[i]: (n,)."""
    return (a * b).sum(dim=-1)


def pairwise_euclidean_sim(a: Tensor, b: Tensor) -> Tensor:
    """Negative Euclidean distance of a[i] and b[i]: (n,)."""
    return -torch.linalg.vector_norm(a - b, ord=2, dim=-1)


def pairwise_manhattan_sim(a: Tensor, b: Tensor) -> Tensor:
    """Negative Manhattan distance of a[i] and b[i]: (n,)."""
    return -(a - b).abs().sum(dim=-1)


# ------------------------------------------------------------------------------ distance matrices
def euclidean_distance_matrix(embeddings: Tensor, squared: bool = False) -> Tensor:
    """Euclidean distance between every pair of rows of one batch: (n, dim) -> (n, n).

    Computed as ||x||² - 2 x·y + ||y||² (one matrix product, no (n, n, dim) tensor), clamped at 0
    against rounding. The square root has an infinite derivative at 0, so where a distance is
    exactly 0 (the diagonal, duplicate embeddings) the root is taken of a tiny positive number and
    the result set back to 0: the value is exact and the gradient finite. Half-precision input
    is computed in float32, where the subtraction above does not cancel catastrophically.
    """
    if embeddings.dtype in (torch.float16, torch.bfloat16):
        embeddings = embeddings.float()
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        dot = embeddings @ embeddings.T  # (n, n)
    squared_norms = dot.diagonal()  # (n,)
    distances = (squared_norms.unsqueeze(0) - 2.0 * dot + squared_norms.unsqueeze(1)).clamp(min=0)
    if squared:
        return distances
    zero = (distances == 0.0).to(distances.dtype)
    return torch.sqrt(distances + zero * 1e-16) * (1.0 - zero)


def cosine_distance_matrix(embeddings: Tensor) -> Tensor:
    """1 - cosine similarity between every pair of rows of one batch: (n, n)."""
    return 1.0 - cos_sim(embeddings, embeddings)


# ------------------------------------------------------------------- the reference's metric enums
class SiameseDistanceMetric:
    """Distances between the two sides of a pair, for ContrastiveLoss and OnlineContrastiveLoss.

    Each member maps (n, dim), (n, dim) -> (n,). ``F.pairwise_distance`` adds 1e-6 to the
    difference before taking the norm, which keeps the gradient finite for identical pairs.
    """

    EUCLIDEAN: Callable[[Tensor, Tensor], Tensor] = staticmethod(
        lambda x, y: F.pairwise_distance(x, y, p=2))
    MANHATTAN: Callable[[Tensor, Tensor], Tensor] = staticmethod(
        lambda x, y: F.pairwise_distance(x, y, p=1))
    COSINE_DISTANCE: Callable[[Tensor, Tensor], Tensor] = staticmethod(
        lambda x, y: 1 - F.cosine_similarity(x, y))


class TripletDistanceMetric:
    """Distances between anchor and positive or negative, for TripletLoss: (n,) per pair."""

    COSINE: Callable[[Tensor, Tensor], Tensor] = staticmethod(
        lambda x, y: 1 - F.cosine_similarity(x, y))
    EUCLIDEAN: Callable[[Tensor, Tensor], Tensor] = staticmethod(
        lambda x, y: F.pairwise_distance(x, y, p=2))
    MANHATTAN: Callable[[Tensor, Tensor], Tensor] = staticmethod(
        lambda x, y: F.pairwise_distance(x, y, p=1))


class BatchHardTripletLossDistanceFunction:
    """Full (n, n) distance matrices of one batch, for the batch triplet losses."""

    @staticmethod
    def cosine_distance(embeddings: Tensor) -> Tensor:
        """1 - cosine similarity of every pair of rows."""
        return cosine_distance_matrix(embeddings)

    @staticmethod
    def euclidean_distance(embeddings: Tensor, squared: bool = False) -> Tensor:
        """Euclidean distance of every pair of rows, with a finite gradient at distance 0."""
        return euclidean_distance_matrix(embeddings, squared=squared)

    # The reference's historical misspelling, kept so old code runs; reports as euclidean.
    eucledian_distance = euclidean_distance


def metric_name(function: Callable, owner: type | None = None) -> str:
    """How ``get_config_dict`` names a distance or similarity function.

    ``"Owner.MEMBER"`` when ``function`` is a member of the metric class ``owner`` (the first
    member name wins, so an alias reports its canonical name), else the function's ``__name__``.
    """
    if owner is not None:
        for name, value in vars(owner).items():
            member = value.__func__ if isinstance(value, staticmethod) else value
            if member is function:
                return f"{owner.__name__}.{name}"
    return getattr(function, "__name__", str(function))
