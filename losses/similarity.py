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

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def _as_float(x: Tensor) -> Tensor:
    """A tensor, with float16/bfloat16 (and smaller) computed in float32.

    Products of half-precision vectors round to half precision, which turns nearby similarity
    scores into ties; the reference's similarity functions upcast the same way.
    """
    x = torch.as_tensor(x)
    if x.is_floating_point() and torch.finfo(x.dtype).bits < 32:
        x = x.float()
    return x


def as_matrix(x: Tensor) -> Tensor:
    """Accept one vector (dim,) as a batch of one (1, dim); half precision computed in float32."""
    x = _as_float(x)
    return x.unsqueeze(0) if x.dim() == 1 else x


def normalize(x: Tensor) -> Tensor:
    """Scale every row to unit L2 norm (rows of zeros stay zero instead of becoming NaN)."""
    return F.normalize(x, p=2, dim=-1)


NORMALIZE_EPS = 1e-12  # F.normalize's floor for a row's norm


def unit_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """``normalize`` without a graph: (rows scaled to unit norm (n, dim), the clamped norms
    (n, 1)), for a loss that writes its gradient by hand (``unit_rows_backward_``) and should
    not keep autograd's copies and temporaries of a batch-sized normalisation."""
    with torch.no_grad():
        norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min_(NORMALIZE_EPS)
        return x / norms, norms


def unit_rows_backward_(grad: Tensor, unit: Tensor, norms: Tensor) -> Tensor:
    """Turn ∂L/∂x̂ (n, dim) into ∂L/∂x in place, for x̂ = x / max(|x|, eps) from ``unit_rows``:

        ∂L/∂x = (∂L/∂x̂ - x̂ (x̂ · ∂L/∂x̂)) / |x|,   or ∂L/∂x̂ / eps for a row clamped at eps.

    The row dots x̂ · ∂L/∂x̂ are batched (1 x dim)(dim x 1) products: no (n, dim) temporary.
    """
    with torch.no_grad():
        dots = torch.bmm(unit.unsqueeze(1), grad.unsqueeze(2)).view(-1, 1)  # (n, 1)
        dots.masked_fill_(norms <= NORMALIZE_EPS, 0.0)  # the clamp passes no gradient to |x|
        return grad.addcmul_(unit, dots, value=-1.0).div_(norms)


# ---------------------------------------------------------------------------- matrix similarities
def cos_sim(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of every row of ``a`` with every row of ``b``: (n, d), (m, d) -> (n, m)."""
    return normalize(as_matrix(a)) @ normalize(as_matrix(b)).T


def dot_score(a: Tensor, b: Tensor) -> Tensor:
    """Dot product of every row of ``a`` with every row of ``b``: (n, m)."""
    return as_matrix(a) @ as_matrix(b).T


def euclidean_sim(a: Tensor, b: Tensor) -> Tensor:
    """Negative Euclidean distance of every pair of rows: (n, m)."""
    return -torch.cdist(as_matrix(a), as_matrix(b), p=2.0)


def manhattan_sim(a: Tensor, b: Tensor) -> Tensor:
    """Negative Manhattan (L1) distance of every pair of rows: (n, m)."""
    return -torch.cdist(as_matrix(a), as_matrix(b), p=1.0)


# -------------------------------------------------------------------------- pairwise similarities
class _PairedCosine(torch.autograd.Function):
    """cos_i = (a_i / max(|a_i|, eps)) · (b_i / max(|b_i|, eps)) for (n, dim) rows, the library's
    arithmetic (``F.cosine_similarity``, or ``F.normalize`` twice, multiplied and summed),
    forward and backward, operation for operation: values and gradients are bit for bit those
    of its autograd graph, in fewer passes over memory.

    Why: that graph allocates about eight (n, dim) tensors per input in its backward (the product
    rule, the quotient rule's two terms, a negation, the norm's gradient, their sum). Written out
    for â = a / s (s the clamped norm, r the true norm):

        ∂/∂â = g b̂,   ∂/∂a = g b̂ / s  +  (-Σ_d g b̂ · â / s) · a / r

    here in three buffers per input, in place: (4096, 384) forward + backward in ~10 ms instead
    of ~24 ms on a 2-core CPU. (-x)·y = -(x·y), and a sum of negated numbers is the negated sum,
    exactly, so the rounding is the graph's. ``clamp_in_graph`` says where the norm is clamped
    at eps: ``F.normalize`` clamps through autograd (a clamped norm is a constant, its radial
    term is 0), ``F.cosine_similarity`` outside it (the radial term keeps the true norm). A zero
    row gets a zero radial term, not 0/0 = NaN. Bit for bit holds when each input enters one
    cosine: an input shared by several calls gets its terms summed in another order than the
    graph's (see ``pairwise_cos_sim``). Once differentiable: a second derivative would need the
    saved norms as functions of a and b.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, eps: float, clamp_in_graph: bool) -> Tensor:
        a_norm = torch.linalg.vector_norm(a, dim=-1, keepdim=True)  # (n, 1)
        b_norm = torch.linalg.vector_norm(b, dim=-1, keepdim=True)
        a_scale, b_scale = a_norm.clamp_min(eps), b_norm.clamp_min(eps)  # (n, 1) each
        a_unit, b_unit = a / a_scale, b / b_scale  # (n, dim) each
        ctx.save_for_backward(a, b, a_norm, b_norm, a_scale, b_scale, a_unit, b_unit)
        ctx.eps, ctx.clamp_in_graph = eps, clamp_in_graph
        return (a_unit * b_unit).sum(dim=-1)  # (n,)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, gradient: Tensor) -> tuple[Tensor | None, ...]:
        a, b, a_norm, b_norm, a_scale, b_scale, a_unit, b_unit = ctx.saved_tensors
        upstream = gradient.unsqueeze(-1)  # (n, 1), broadcast over dim as the sum's backward

        def side(x: Tensor, unit: Tensor, norm: Tensor, scale: Tensor, other_unit: Tensor
                 ) -> Tensor:
            grad_unit = upstream * other_unit  # (n, dim): ∂/∂x̂
            radial = (unit / scale).mul_(grad_unit)  # (n, dim): g b̂ · x̂ / s
            through_norm = radial.sum(dim=-1, keepdim=True).neg_()  # (n, 1): ∂/∂s
            if ctx.clamp_in_graph:  # the clamp's own gradient: 0 where it clamped
                through_norm.masked_fill_(norm < ctx.eps, 0.0)
            # The norm's gradient, ∂/∂s · x / r; a zero row divides by 1 (0, not 0/0 = NaN).
            torch.div(x, norm.masked_fill(norm == 0, 1.0), out=radial).mul_(through_norm)
            return grad_unit.div_(scale).add_(radial)

        return (side(a, a_unit, a_norm, a_scale, b_unit) if ctx.needs_input_grad[0] else None,
                side(b, b_unit, b_norm, b_scale, a_unit) if ctx.needs_input_grad[1] else None,
                None, None)


def _fits_paired_cosine(a: Tensor, b: Tensor) -> bool:
    """Two (n, dim) tensors of one dtype, outside autocast (which has its own precision rules
    for the library's functions): what ``_PairedCosine`` takes."""
    return (a.dim() == 2 and a.shape == b.shape and a.dtype == b.dtype
            and not torch.is_autocast_enabled(a.device.type))


def paired_cosine(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Cosine similarity of a[i] with b[i], each norm clamped at ``eps``: (n, dim) x 2 -> (n,).

    ``F.cosine_similarity(a, b, dim=-1, eps=eps)``'s values and gradients, bit for bit, with a
    leaner backward (``_PairedCosine``). Other inputs (broadcasting, 1-D rows, mixed dtypes, and
    autocast, which has its own precision rules for the library's function) go to
    ``F.cosine_similarity`` itself.
    """
    if not _fits_paired_cosine(a, b):
        return F.cosine_similarity(a, b, dim=-1, eps=eps)
    return _PairedCosine.apply(a, b, eps, False)


class _BatchedRowDots(torch.autograd.Function):
    """d_i = a_i · b_i for (n, dim) rows as n (1, dim) x (dim, 1) matrix products, the way
    ContrastiveTension scores its pairs, without the (n, dim) product that ``(a * b).sum(-1)``
    allocates. Backward: ∂d_i/∂a_i = b_i, one multiplication per entry, the same numbers the
    batched product's own backward computes (a 1 x 1 by 1 x dim product sums nothing), without
    its per-row matrix-product overhead.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(a, b)
        return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)  # (n, 1, 1) -> (n,)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, gradient: Tensor) -> tuple[Tensor | None, Tensor | None]:
        a, b = ctx.saved_tensors
        upstream = gradient.unsqueeze(-1)  # (n, 1)
        return (upstream * b if ctx.needs_input_grad[0] else None,
                upstream * a if ctx.needs_input_grad[1] else None)


def batched_row_dots(a: Tensor, b: Tensor) -> Tensor:
    """a[i] · b[i] for two (n, dim) tensors of one dtype, as batched (1 x dim)(dim x 1)
    products (``_BatchedRowDots``); anything else through ``torch.bmm``'s own graph."""
    if a.dim() == 2 and a.shape == b.shape and a.dtype == b.dtype:
        return _BatchedRowDots.apply(a, b)
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


def pairwise_cos_sim(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of a[i] with b[i]: (n, dim), (n, dim) -> (n,).

    On autograd's graph, not ``_PairedCosine``: MarginMSE, DistillKLDiv and TripletLoss pass
    the same column to it several times, and the graph's order of summing the gradient's terms
    across those calls is what keeps their training runs bit for bit the reference's.
    """
    a, b = _as_float(a), _as_float(b)
    return (normalize(a) * normalize(b)).sum(dim=-1)


def pairwise_cos_sim_once(a: Tensor, b: Tensor) -> Tensor:
    """``pairwise_cos_sim`` for a caller that passes each tensor to it once (CoSENT): the same
    values and gradients, bit for bit, through ``_PairedCosine``'s leaner backward."""
    a, b = _as_float(a), _as_float(b)
    if not _fits_paired_cosine(a, b):
        return (normalize(a) * normalize(b)).sum(dim=-1)
    return _PairedCosine.apply(a, b, 1e-12, True)  # F.normalize's eps, clamped in its graph


def pairwise_dot_score(a: Tensor, b: Tensor) -> Tensor:
    """Dot product of a[i] with b[i]: (n,)."""
    a, b = _as_float(a), _as_float(b)
    return (a * b).sum(dim=-1)


def pairwise_euclidean_sim(a: Tensor, b: Tensor) -> Tensor:
    """Negative Euclidean distance of a[i] and b[i]: (n,)."""
    a, b = _as_float(a), _as_float(b)
    return -torch.linalg.vector_norm(a - b, ord=2, dim=-1)


def pairwise_manhattan_sim(a: Tensor, b: Tensor) -> Tensor:
    """Negative Manhattan distance of a[i] and b[i]: (n,)."""
    a, b = _as_float(a), _as_float(b)
    return -(a - b).abs().sum(dim=-1)


# ------------------------------------------------------------------------------ distance matrices
def euclidean_distance_matrix(embeddings: Tensor, squared: bool = False) -> Tensor:
    """Euclidean distance between every pair of rows of one batch: (n, dim) -> (n, n).

    Computed as ||x||² - 2 x·y + ||y||² (one matrix product, no (n, n, dim) tensor), clamped at 0
    against rounding. The square root has an infinite derivative at 0, so where a distance is
    exactly 0 (the diagonal, duplicate embeddings) the root is taken of a tiny positive number and
    the result set back to 0: the value is exact and the gradient finite (0 there). Half-precision
    input is computed in float32, where the subtraction above does not cancel catastrophically.

    The (non-squared) distances go through ``_EuclideanDistances``: the same values and
    gradients with fewer passes over the (n, n) matrix and a fraction of its memory.
    """
    if embeddings.dtype in (torch.float16, torch.bfloat16):
        embeddings = embeddings.float()
    if not squared:
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            return _EuclideanDistances.apply(embeddings)
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        dot = embeddings @ embeddings.T  # (n, n)
    squared_norms = dot.diagonal()  # (n,)
    return (squared_norms.unsqueeze(0) - 2.0 * dot + squared_norms.unsqueeze(1)).clamp(min=0)


class _EuclideanDistances(torch.autograd.Function):
    """D[i, j] = sqrt(max(0, ||x_i||² - 2 x_i·x_j + ||x_j||²)), 0 where that is 0.

    The reference's arithmetic, forward and backward, operation for operation, so values and
    gradients are bit for bit those of its autograd graph, but in place and without the graph's
    (n, n) intermediates (a 0/1 mask, the shifted root, the pre-clamp values).

    Backward, for G = ∂L/∂D: S = G / (2 D) where D > 0, else 0 (the masked root's slope); the
    squared norms collect Σ_j S[i, j] + Σ_j S[j, i]; the dot products get -2 S plus those on the
    diagonal; ∂L/∂x = ∂L/∂dot · x + ∂L/∂dotᵀ · x, the two matrix products of a product x·xᵀ.
    """

    @staticmethod
    def forward(ctx: Any, embeddings: Tensor) -> Tensor:
        distances = embeddings @ embeddings.T  # (n, n), the dot products for now
        squared_norms = distances.diagonal().clone()  # (n,)
        # (||x_j||² - 2 x_i·x_j) + ||x_i||², as the reference adds them, then clamp and root.
        distances.mul_(-2.0).add_(squared_norms.unsqueeze(0)).add_(squared_norms.unsqueeze(1))
        distances.clamp_(min=0).sqrt_()
        ctx.save_for_backward(embeddings, distances)
        return distances

    @staticmethod
    def backward(ctx: Any, gradient: Tensor) -> Tensor:
        embeddings, distances = ctx.saved_tensors
        positive = distances > 0
        scaled = gradient.masked_fill(~positive, 0.0).div_(2 * distances)  # (n, n): S
        scaled.masked_fill_(~positive, 0.0)  # 0 / 0 at the zeros
        squared_norms = scaled.sum(dim=1) + scaled.sum(dim=0)  # (n,)
        dot = scaled.neg_().mul_(2.0)  # (n, n): -2 S, in place of S
        dot.diagonal().add_(squared_norms)
        return dot.mm(embeddings) + dot.t().mm(embeddings)


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
        lambda x, y: 1 - paired_cosine(x, y))


class TripletDistanceMetric:
    """Distances between anchor and positive or negative, for TripletLoss: (n,) per pair.

    Exact norms (no epsilon): the norm's gradient at distance 0 is taken as 0, not NaN.
    """

    COSINE: Callable[[Tensor, Tensor], Tensor] = staticmethod(
        lambda x, y: 1 - pairwise_cos_sim(x, y))
    EUCLIDEAN: Callable[[Tensor, Tensor], Tensor] = staticmethod(
        lambda x, y: -pairwise_euclidean_sim(x, y))
    MANHATTAN: Callable[[Tensor, Tensor], Tensor] = staticmethod(
        lambda x, y: -pairwise_manhattan_sim(x, y))


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


# similarity_fn_name of a model -> (name of its matrix function, name of its pairwise function)
_MODEL_SIMILARITIES: dict[str, tuple[str, str]] = {
    "cosine": ("cos_sim", "pairwise_cos_sim"),
    "dot": ("dot_score", "pairwise_dot_score"),
    "dot_product": ("dot_score", "pairwise_dot_score"),
    "euclidean": ("euclidean_sim", "pairwise_euclidean_sim"),
    "manhattan": ("manhattan_sim", "pairwise_manhattan_sim"),
    "maxsim": ("maxsim", "maxsim_pairwise"),
    "meanmaxsim": ("mean_maxsim", "mean_maxsim_pairwise"),
}


def similarity_fct_name(function: Callable) -> str:
    """How ``get_config_dict`` names a ``similarity_fct``, in the reference's format.

    - a plain function or class: its ``__name__`` (``"cos_sim"``); another object: its class
      name;
    - ``functools.partial(f, key=value)``: ``"f(key=value)"`` (positional arguments not shown);
    - a model's bound ``similarity`` / ``similarity_pairwise``: they dispatch on the model's
      ``similarity_fn_name``, so they are named after the function they resolve to;
    - an object with ``get_config_dict()``: ``"name(key=value, ...)"``.
    """
    if isinstance(function, functools.partial):
        inner = getattr(function.func, "__name__", type(function.func).__name__)
        settings = _settings(function.keywords)
        return f"{inner}({settings})" if settings else inner
    name = getattr(function, "__name__", type(function).__name__)
    owner = getattr(function, "__self__", None)
    if name in ("similarity", "similarity_pairwise") and hasattr(owner, "similarity_fn_name"):
        kind = owner.similarity_fn_name
        kind = getattr(kind, "value", kind)  # an enum member or its string value
        matrix_name, pairwise_name = _MODEL_SIMILARITIES.get(str(kind), (name, name))
        return matrix_name if name == "similarity" else pairwise_name
    config = getattr(function, "get_config_dict", None)
    if callable(config):
        return f"{name}({_settings(config())})"
    return name


def _settings(values: dict) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in values.items())
