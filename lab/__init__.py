"""The embedding-loss lab: train, measure and draw what sentence-embedding losses do.

``lab.train(loss=..., model=..., ...)`` is the one entry point for training (see
:mod:`lab.training`); it is imported lazily so that ``import lab`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["train"]


def train(loss: str, model: Any = None, dataset: Any = None, **options: Any) -> Any:
    """Train a catalog loss and return a :class:`lab.training.TrainResult` (see there)."""
    from lab.training import train as _train

    return _train(loss, model, dataset, **options)
