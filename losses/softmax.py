"""SoftmaxLoss: classify each pair from its two embeddings with a linear layer + cross-entropy.

For a pair (u, v) of embeddings of dimension d, the features are the concatenation of

    [u, v]      if concatenation_sent_rep              (2·d values, on by default)
    |u - v|     if concatenation_sent_difference       (d values, on by default)
    u * v       if concatenation_sent_multiplication   (d values, off by default)

and the loss is

    logits = W · features + b          W: (num_labels, parts·d), the "classifier"
    L      = loss_fct(logits, labels)  cross-entropy averaged over the batch by default

The classifier is trained together with the encoder (its parameters belong to the loss, and
SentenceTransformerTrainer optimises them) and is thrown away afterwards: only the embeddings,
shaped by having to make these classes separable, are kept.

Paper: Reimers and Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks"
(EMNLP 2019), which trained SBERT this way on SNLI + MultiNLI (the default [u, v, |u - v|]).

Data: (sentence1, sentence2) pairs with an integer class label in [0, num_labels), the lab's
"nli" format (entailment / neutral / contradiction); or, with cross-entropy, one row of class
probabilities per pair, labels of shape (batch, num_labels) that are non-negative and sum to 1.

Knobs:
- ``embedding_dimension``: d, the model's embedding size (``model.get_embedding_dimension()``).
  ``sentence_embedding_dimension`` is its old name, still accepted with a ``FutureWarning``
  (the reference logs a one-time deprecation warning); if both are given and differ, ours raises
  a ``TypeError`` where the reference silently keeps the new one.
- ``num_labels``: the number of classes.
- the three ``concatenation_*`` flags above (at least one must be on).
- ``loss_fct``: the criterion on (logits, labels), ``nn.CrossEntropyLoss()`` by default.

The classifier ``nn.Linear(parts·d, num_labels)`` is created in the default dtype (float32, even
for a float64 model) on the model's device, and the features are cast to its dtype, as in the
reference; seeded construction gives the reference's initial weights.

Without labels (``labels=None``) the loss returns ``(embeddings, logits)`` instead of a loss,
for prediction, as the reference does.

Bad input, with cross-entropy: class ids outside [0, num_labels) (other than the criterion's
``ignore_index``), fractional or float class ids, and probability rows that are negative or do
not sum to 1 raise ``LossInputError``. ``num_labels=1`` with cross-entropy is refused at
construction: a softmax over one class is always 1, so the loss would be 0 and nothing would be
learned (the reference accepts it silently).
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.validation import LossInputError, check_finite, describe

_Init = TypeVar("_Init", bound=Callable[..., None])


def _renamed_keyword(old: str, new: str) -> Callable[[_Init], _Init]:
    """Let ``__init__`` still accept keyword ``old`` for its parameter ``new``, with a warning.

    The wrapped signature stays the one of ``__init__`` (so ``inspect.signature`` shows only
    ``new``). Giving both names with different values is an error.
    """

    def decorate(init: _Init) -> _Init:
        signature = inspect.signature(init)

        @functools.wraps(init)
        def wrapper(self: nn.Module, *args: Any, **kwargs: Any) -> None:
            if old in kwargs:
                value = kwargs.pop(old)
                owner = type(self).__name__
                warnings.warn(f"{owner}: the `{old}` argument is deprecated; use `{new}` instead.",
                              FutureWarning, stacklevel=2)
                given = signature.bind_partial(self, *args, **kwargs).arguments
                if new not in given:
                    kwargs[new] = value
                elif given[new] != value:
                    raise TypeError(f"{owner} got both `{new}`={given[new]!r} and its deprecated "
                                    f"alias `{old}`={value!r}; pass only `{new}`.")
            init(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _device_of(model: nn.Module | None) -> torch.device | None:
    """Where the model lives: its ``device`` attribute, else its first parameter's device."""
    if model is None:
        return None
    device = getattr(model, "device", None)
    if device is not None:
        return device
    first = next(iter(model.parameters()), None)
    return None if first is None else first.device


class SoftmaxLoss(EmbeddingLoss):
    """A linear classifier on (u, v, |u - v|, u * v) features, trained with cross-entropy."""

    expected_inputs = ("(sentence1, sentence2) pairs with an integer class label "
                       "(or a row of class probabilities)")
    column_range = (2, 2)

    @_renamed_keyword("sentence_embedding_dimension", "embedding_dimension")
    def __init__(
        self,
        model: nn.Module,
        embedding_dimension: int,
        num_labels: int,
        concatenation_sent_rep: bool = True,
        concatenation_sent_difference: bool = True,
        concatenation_sent_multiplication: bool = False,
        loss_fct: Callable = nn.CrossEntropyLoss(),
    ) -> None:
        super().__init__(model)
        self.num_labels = num_labels
        self.concatenation_sent_rep = concatenation_sent_rep
        self.concatenation_sent_difference = concatenation_sent_difference
        self.concatenation_sent_multiplication = concatenation_sent_multiplication
        # How many d-sized blocks the features have: u and v count as two.
        parts = (2 * bool(concatenation_sent_rep) + bool(concatenation_sent_difference)
                 + bool(concatenation_sent_multiplication))
        if parts == 0:
            raise ValueError(
                "SoftmaxLoss needs at least one feature block: set concatenation_sent_rep, "
                "concatenation_sent_difference or concatenation_sent_multiplication to True.")
        if isinstance(loss_fct, nn.CrossEntropyLoss) and num_labels < 2:
            raise ValueError(
                f"SoftmaxLoss with cross-entropy needs num_labels >= 2; got {num_labels}. A "
                f"softmax over one class is always 1, so the loss would be 0 and nothing learned. "
                f"For a single regression output pass a loss_fct such as nn.MSELoss().")
        # The only random draw of the constructor (weight, then bias), on the model's device.
        self.classifier = nn.Linear(parts * embedding_dimension, num_labels,
                                    device=_device_of(model))
        self.loss_fct = loss_fct

    def features(self, first: Tensor, second: Tensor) -> Tensor:
        """The classifier's input for (batch, d) u and v: (batch, parts·d), in its dtype."""
        blocks = []
        if self.concatenation_sent_rep:
            blocks += [first, second]
        if self.concatenation_sent_difference:
            blocks.append((first - second).abs())
        if self.concatenation_sent_multiplication:
            blocks.append(first * second)
        return torch.cat(blocks, dim=1).to(self.classifier.weight.dtype)

    def compute_loss_from_embeddings(
        self, embeddings: list[Tensor], labels: Tensor | None
    ) -> Tensor | tuple[list[Tensor], Tensor]:
        """Loss from the two columns' (batch, d) embeddings and the labels.

        With ``labels=None``: ``(embeddings, logits)``, logits of shape (batch, num_labels).
        """
        batch_size, dim = self.check_embeddings(embeddings)
        width = self.classifier.in_features
        if self._parts() * dim != width:
            raise LossInputError(
                f"{type(self).__name__} was built for embeddings of dimension "
                f"{width // self._parts()} (embedding_dimension); got embeddings of dimension "
                f"{dim}. Pass embedding_dimension=model.get_embedding_dimension().")
        logits = self.classifier(self.features(*embeddings))  # (B, num_labels)
        if labels is None:
            return embeddings, logits
        return self.loss_fct(logits, self._targets(labels, logits, batch_size))

    def _parts(self) -> int:
        return (2 * bool(self.concatenation_sent_rep) + bool(self.concatenation_sent_difference)
                + bool(self.concatenation_sent_multiplication))

    def _targets(self, labels: Tensor, logits: Tensor, batch_size: int) -> Tensor:
        """Labels as the criterion wants them: (B, C) probabilities stay, anything else (B,)."""
        name = type(self).__name__
        labels = torch.as_tensor(labels, device=logits.device)
        if self.num_labels != 1 and labels.shape == logits.shape:
            if isinstance(self.loss_fct, nn.CrossEntropyLoss):
                self._check_probabilities(labels)
            return labels
        if labels.numel() != batch_size:
            raise LossInputError(
                f"{name} expects {self.expected_inputs}: one class id per row, shape "
                f"({batch_size},), or probabilities of shape ({batch_size}, {self.num_labels}); "
                f"got {describe(labels)}")
        labels = labels.reshape(-1)
        if isinstance(self.loss_fct, nn.CrossEntropyLoss):
            self._check_class_ids(labels)
        return labels

    def _check_class_ids(self, labels: Tensor) -> None:
        """Integer class ids in [0, num_labels), or the criterion's ignore_index."""
        name = type(self).__name__
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise LossInputError(
                f"{name} expects {self.expected_inputs}: integer class ids (e.g. int64); got "
                f"{describe(labels)}. Cast the labels to integers, or give one row of "
                f"{self.num_labels} class probabilities per pair.")
        ignored = labels == self.loss_fct.ignore_index
        wrong = ~ignored & ((labels < 0) | (labels >= self.num_labels))
        if bool(wrong.any()):
            raise LossInputError(
                f"{name} expects {self.expected_inputs}: class ids in [0, {self.num_labels}) "
                f"(num_labels={self.num_labels}); got {labels[wrong][0].item()}")

    def _check_probabilities(self, labels: Tensor) -> None:
        """Rows of class probabilities: finite, non-negative, summing to 1."""
        name = type(self).__name__
        if not labels.is_floating_point():
            raise LossInputError(
                f"{name} expects {self.expected_inputs}: probabilities of shape "
                f"{tuple(labels.shape)} must be floats; got {describe(labels)}")
        check_finite(name, "class probabilities", labels)
        sums = labels.sum(dim=1)  # (B,)
        bad_rows = (labels < 0).any(dim=1) | ((sums - 1).abs() > 1e-3)  # (B,)
        if bool(bad_rows.any()):
            row = int(bad_rows.nonzero()[0, 0])
            raise LossInputError(
                f"{name} expects {self.expected_inputs}: each row of class probabilities must be "
                f"non-negative and sum to 1; got row {row} = {labels[row].tolist()}")

    def get_config_dict(self) -> dict[str, Any]:
        """The number of classes and the three feature flags."""
        return {
            "num_labels": self.num_labels,
            "concatenation_sent_rep": self.concatenation_sent_rep,
            "concatenation_sent_difference": self.concatenation_sent_difference,
            "concatenation_sent_multiplication": self.concatenation_sent_multiplication,
        }

    @property
    def citation(self) -> str:
        """BibTeX of Reimers and Gurevych (2019)."""
        return """
@inproceedings{reimers-2019-sentence-bert,
    title = "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
    author = "Reimers, Nils and Gurevych, Iryna",
    booktitle = "Proceedings of the 2019 Conference on Empirical Methods in Natural Language Processing",
    month = "11",
    year = "2019",
    publisher = "Association for Computational Linguistics",
    url = "https://arxiv.org/abs/1908.10084",
}
"""  # noqa: E501 (bibliographic data, kept exactly as published)
