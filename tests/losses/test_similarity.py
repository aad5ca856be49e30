"""The hand-written row similarities against the autograd graphs they replace, bit for bit
(the graph-free normalisation, used where a loss writes its gradient by hand, to rounding)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from losses.similarity import (
    SiameseDistanceMetric,
    batched_row_dots,
    paired_cosine,
    pairwise_cos_sim,
    pairwise_cos_sim_once,
    unit_rows,
    unit_rows_backward_,
)

# Row scales around the clamps of the norm: exact zeros, below F.normalize's eps (1e-12), between
# it and F.cosine_similarity's (1e-8), and ordinary rows.
SCALES = [0.0, 1e-14, 1e-10, 1e-6, 1.0, 300.0]


def _value_and_gradients(function, a, b, upstream):
    a, b = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    value = function(a, b)
    value.backward(upstream)
    return value.detach(), a.grad, b.grad


def _rows(scale: float, dtype: torch.dtype, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(6, 16, generator=generator, dtype=dtype)
    a[::2] *= scale  # every other row at the scale under test, the rest ordinary
    b = torch.randn(6, 16, generator=generator, dtype=dtype)
    b[1] = 0.0  # one zero row on the other side too
    upstream = torch.randn(6, generator=generator, dtype=dtype)
    return a, b, upstream


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("ours, library", [
    (paired_cosine, lambda a, b: F.cosine_similarity(a, b, dim=-1)),
    (pairwise_cos_sim_once, pairwise_cos_sim),
], ids=["cosine_similarity", "normalize"])
def test_bit_for_bit_the_library_graph_at_every_scale(ours, library, scale, dtype):
    a, b, upstream = _rows(scale, dtype)
    expected = _value_and_gradients(library, a, b, upstream)
    for mine, theirs in zip(_value_and_gradients(ours, a, b, upstream), expected, strict=True):
        assert torch.isfinite(mine).all()
        assert torch.equal(mine, theirs)


def test_one_sided_gradient():
    a, b, upstream = _rows(1.0, torch.float32, seed=3)
    _, grad_a, _ = _value_and_gradients(lambda x, y: F.cosine_similarity(x, y), a, b, upstream)
    frozen = b.clone()  # no gradient wanted on this side
    moving = a.clone().requires_grad_(True)
    paired_cosine(moving, frozen).backward(upstream)
    assert frozen.grad is None
    assert torch.equal(moving.grad, grad_a)


def test_gradcheck_and_distance_member():
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(5, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(paired_cosine, (a, b))
    torch.testing.assert_close(SiameseDistanceMetric.COSINE_DISTANCE(a, b),
                               1 - F.cosine_similarity(a, b))


def test_other_shapes_fall_back_to_the_library():
    generator = torch.Generator().manual_seed(2)
    single = torch.randn(1, 8, generator=generator)
    many = torch.randn(4, 8, generator=generator)
    torch.testing.assert_close(paired_cosine(single, many), F.cosine_similarity(single, many))
    torch.testing.assert_close(paired_cosine(many[0], many[1]),
                               F.cosine_similarity(many[0], many[1], dim=0))
    moving = many.clone().requires_grad_(True)
    assert type(paired_cosine(moving, many).grad_fn).__name__ == "_PairedCosineBackward"
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the library's own precision rules
        assert type(paired_cosine(moving, many).grad_fn).__name__ != "_PairedCosineBackward"


def test_second_derivative_is_refused_not_wrong():
    a = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(paired_cosine(a, b).sum(), a, create_graph=True)
    with pytest.raises(RuntimeError):
        gradient.sum().backward()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_row_dots_are_bit_for_bit_the_batched_product(dtype):
    a, b, upstream = _rows(1.0, dtype, seed=4)
    library = _value_and_gradients(
        lambda x, y: torch.bmm(x.unsqueeze(1), y.unsqueeze(2)).view(-1), a, b, upstream)
    ours = _value_and_gradients(batched_row_dots, a, b, upstream)
    for mine, theirs in zip(ours, library, strict=True):
        assert torch.equal(mine, theirs)
    assert type(batched_row_dots(a.requires_grad_(True), b).grad_fn).__name__ == (
        "_BatchedRowDotsBackward")


@pytest.mark.parametrize("scale", SCALES)
def test_graph_free_normalisation_and_its_backward_match_f_normalize(scale):
    a, _, _ = _rows(scale, torch.float64)
    upstream = torch.randn(a.shape, generator=torch.Generator().manual_seed(1),
                           dtype=torch.float64)
    leaf = a.clone().requires_grad_(True)
    expected = F.normalize(leaf, p=2, dim=-1)
    expected.backward(upstream)
    unit, norms = unit_rows(a)
    assert not unit.requires_grad
    torch.testing.assert_close(unit, expected.detach(), rtol=1e-12, atol=0)
    grad = upstream.clone()
    assert unit_rows_backward_(grad, unit, norms) is grad  # in place
    torch.testing.assert_close(grad, leaf.grad, rtol=1e-9, atol=1e-12 * leaf.grad.abs().max())
