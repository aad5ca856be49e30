"""What every loss of this package shares: embed the columns, check the input, do the math.

sentence-transformers calls a loss as ``loss(sentence_features, labels)``: one tokenised feature
dict per text column of the dataset, and the label column as a tensor (or None). Every loss here
does three things, and only the last differs between losses:

1. ``embed_columns``: run the model once per column -> a list of (batch, dim) tensors;
2. ``check_embeddings``: the right number of columns, one shape (clear error otherwise);
3. ``compute_loss_from_embeddings(embeddings, labels)``: the loss's math, usable on its own with
   embeddings from anywhere (the lab's 2-D playground, precomputed vectors, exercises).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from losses.validation import check_embeddings, warn_once


def fullname(obj: object) -> str:
    """``module.ClassName`` of a class or of an object's class, the way model cards name them."""
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"


def embed_columns(model: nn.Module, sentence_features: Iterable[dict[str, Tensor]]) -> list[Tensor]:
    """One forward pass of ``model`` per column: a list of (batch, dim) sentence embeddings."""
    return [model(features)["sentence_embedding"] for features in sentence_features]


def joined(tensors: Sequence[Tensor]) -> Tensor:
    """``torch.cat`` along rows, except that one contiguous tensor is returned as it is, not
    copied; for losses that back-propagate by hand (the cached ones), where the copy's node in
    autograd's graph buys nothing. Elsewhere keep ``torch.cat``: that node sets the order in
    which a wrapper's gradient contributions are summed (see ``MultipleNegativesRankingLoss``)."""
    if len(tensors) == 1:
        return tensors[0].contiguous()
    return torch.cat(list(tensors), dim=0)


class EmbeddingLoss(nn.Module):
    """Base class: a loss computed from the sentence embeddings of its input columns.

    Subclasses set ``expected_inputs`` (the data format in words, for error messages) and
    ``column_range`` (the allowed number of text columns), and implement
    ``compute_loss_from_embeddings``.
    """

    expected_inputs: ClassVar[str] = "text columns"
    column_range: ClassVar[tuple[int, int | None]] = (1, None)

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> Tensor | dict[str, Tensor]:
        """Embed every column with the model, then compute the loss from the embeddings."""
        features = list(sentence_features)
        minimum, maximum = self.column_range
        if len(features) < minimum or (maximum is not None and len(features) > maximum):
            # Fail before spending a forward pass; the message comes from the shared check.
            check_embeddings(type(self).__name__, self.expected_inputs, features, minimum, maximum)
        return self.compute_loss_from_embeddings(embed_columns(self.model, features), labels)

    def compute_loss_from_embeddings(
        self, embeddings: list[Tensor], labels: Tensor | None
    ) -> Tensor | dict[str, Tensor]:
        """The loss from per-column (batch, dim) embeddings and the labels (or None)."""
        raise NotImplementedError

    def check_embeddings(self, embeddings: list[Tensor]) -> tuple[int, int]:
        """Raise a clear error unless ``embeddings`` fits this loss; return (batch, dim)."""
        minimum, maximum = self.column_range
        return check_embeddings(type(self).__name__, self.expected_inputs, embeddings, minimum,
                                maximum)

    def warn_once(self, key: str, message: str) -> None:
        """Warn about suspicious input once per loss instance."""
        warn_once(self, key, f"{type(self).__name__}: {message}")

    def get_config_dict(self) -> dict[str, Any]:
        """The loss's settings, as written into model cards (same keys as the reference)."""
        return {}

    @property
    def citation(self) -> str | None:
        """BibTeX of the paper behind the loss, or None."""
        return None
