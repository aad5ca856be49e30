"""Temporarily replace a module's ``forward`` for one loss step, and always put it back.

MatryoshkaLoss, AdaptiveLayerLoss and Matryoshka2dLoss are *wrappers*: they call another loss
several times per step and change what the model returns between calls (a truncated embedding, an
earlier layer's output). They do so by swapping the ``forward`` of the model (and of its
transformer module) for the duration of one step. ``swapped_forward`` restores the module exactly
as it was, even when the wrapped loss raises: the instance attribute is deleted again when there
was none before, so the class's own ``forward`` is used afterwards, as if nothing happened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn

_MISSING = object()


@contextmanager
def swapped_attribute(owner: object, name: str, replacement: object) -> Iterator[None]:
    """Within the block, ``owner.<name>`` is ``replacement``; afterwards exactly what it was.

    Only the instance's own attribute is touched: if the name came from the class (a method),
    the instance attribute is deleted again on exit and the class's method shows through.
    """
    previous = owner.__dict__.get(name, _MISSING)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        if previous is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, previous)


def swapped_forward(module: nn.Module, replacement: Callable):
    """Within the block, ``module(...)`` runs ``replacement`` instead of its own ``forward``."""
    return swapped_attribute(module, "forward", replacement)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside torch.compile (``_orig_mod``) and DistributedDataParallel (``module``)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model
