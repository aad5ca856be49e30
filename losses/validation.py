"""Input checks shared by every loss: say what was expected and what arrived.

A loss that receives the wrong data should stop with one sentence a student can act on, naming
the loss, the data format it expects and what it got, instead of a shape error deep inside torch
or, worse, a silent NaN. Every check here raises ``LossInputError`` (a ``ValueError``) or, for
data that is legal but probably a mistake, warns once per loss instance with ``LossInputWarning``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor


class LossInputError(ValueError):
    """A loss received input it cannot use."""


class LossInputWarning(UserWarning):
    """A loss received input it can use, but that is probably not what the user meant."""


def describe(value: object) -> str:
    """Short description of a value for an error message: type, shape and dtype of tensors."""
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if value is None:
        return "None"
    return f"{type(value).__name__} {value!r}"[:120]


def check_embeddings(
    loss_name: str, expected: str, embeddings: Sequence[Tensor], minimum: int, maximum: int | None
) -> tuple[int, int]:
    """Check the column count and that every column is a (batch, dim) tensor of one shape.

    Returns ``(batch_size, dim)``.
    """
    if isinstance(embeddings, Tensor):
        raise LossInputError(
            f"{loss_name} expects a list of (batch, dim) embedding tensors, one per column "
            f"({expected}); got a single tensor of shape {tuple(embeddings.shape)}")
    count = len(embeddings)
    if count < minimum or (maximum is not None and count > maximum):
        wanted = (f"exactly {minimum}" if minimum == maximum
                  else f"{minimum} or more" if maximum is None else f"{minimum} to {maximum}")
        raise LossInputError(
            f"{loss_name} expects {expected}: {wanted} text column(s); got {count}. Check the "
            f"dataset's columns: every column except the label is fed to the loss, in order."
        )
    shapes = [tuple(column.shape) if isinstance(column, Tensor) else None for column in embeddings]
    if any(shape is None or len(shape) != 2 for shape in shapes) or len(set(shapes)) != 1:
        raise LossInputError(
            f"{loss_name} expects every column's embeddings as (batch, dim) tensors of one shape; "
            f"got shapes {shapes}"
        )
    return shapes[0]


def label_vector(
    loss_name: str, expected: str, labels: Tensor | None, batch_size: int
) -> Tensor:
    """Labels as a (batch,) tensor; (batch, 1) is flattened. Raises for None or another shape."""
    if labels is None:
        raise LossInputError(f"{loss_name} expects {expected}; got no labels (labels=None)")
    labels = torch.as_tensor(labels)
    if labels.dim() == 2 and labels.shape[1] == 1:
        labels = labels.view(-1)
    if labels.dim() != 1 or labels.shape[0] != batch_size:
        raise LossInputError(
            f"{loss_name} expects {expected}: one label per row, shape ({batch_size},); got "
            f"{describe(labels)}"
        )
    return labels


def class_labels(loss_name: str, expected: str, labels: Tensor | None, batch_size: int) -> Tensor:
    """Integer class ids of shape (batch,). Floats are accepted only when they are whole numbers."""
    labels = label_vector(loss_name, expected, labels, batch_size)
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise LossInputError(
            f"{loss_name} expects {expected}: integer class labels; got fractional values such as "
            f"{labels[labels != labels.round()][0].item()}"
        )
    if labels.is_complex():
        raise LossInputError(f"{loss_name} expects {expected}; got {describe(labels)}")
    return labels


def binary_labels(loss_name: str, expected: str, labels: Tensor | None, batch_size: int) -> Tensor:
    """0/1 labels of shape (batch,). Soft labels (e.g. 0.7) are refused: they need another loss."""
    labels = label_vector(loss_name, expected, labels, batch_size)
    if not bool(((labels == 0) | (labels == 1)).all()):
        other = labels[(labels != 0) & (labels != 1)][0].item()
        raise LossInputError(
            f"{loss_name} expects {expected}: labels 0 or 1; got {other}. For graded similarity "
            f"scores use CoSENTLoss, AnglELoss or CosineSimilarityLoss."
        )
    return labels


def score_matrix(
    loss_name: str, expected: str, labels: Tensor | None, batch_size: int, width: int | None
) -> Tensor:
    """Float labels of shape (batch, width), e.g. teacher scores for ``width`` candidates."""
    if labels is None:
        raise LossInputError(f"{loss_name} expects {expected}; got no labels (labels=None)")
    labels = torch.as_tensor(labels)
    if labels.dim() != 2 or labels.shape[0] != batch_size or (
            width is not None and labels.shape[1] != width):
        wanted = f"({batch_size}, {width})" if width is not None else f"({batch_size}, n)"
        raise LossInputError(f"{loss_name} expects {expected}: labels of shape {wanted}; got "
                             f"{describe(labels)}")
    return labels


def check_finite(loss_name: str, name: str, values: Tensor) -> None:
    """Raise if ``values`` holds NaN or infinity, which would silently poison training."""
    if not bool(torch.isfinite(values).all()):
        raise LossInputError(f"{loss_name} got non-finite {name} (NaN or infinity)")


def warn_once(owner: object, key: str, message: str) -> None:
    """Warn with ``LossInputWarning`` once per (loss instance, key)."""
    seen = owner.__dict__.setdefault("_warned", set())
    if key not in seen:
        seen.add(key)
        warnings.warn(message, LossInputWarning, stacklevel=3)
