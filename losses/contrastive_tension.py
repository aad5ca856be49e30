"""Contrastive Tension (CT): two copies of one encoder learn to agree on a sentence, and only on it.

Paper: Carlsson, Gyllensten, Gogoulou, Hellqvist and Sahlgren, "Semantic Re-tuning with
Contrastive Tension" (ICLR 2021). Unsupervised: no labelled pairs are needed.

CT keeps two encoders that start as identical copies: ``model2`` is the model you passed in (the
one that is trained and kept), ``model1`` a deep copy made when the loss is built. Both are
trained; only ``model2`` is used afterwards. Both are submodules of the loss, so an optimizer
built from ``loss.parameters()`` (as SentenceTransformerTrainer does) trains both, and
``loss.state_dict()`` holds both.

ContrastiveTensionLoss, for pairs (x_i, y_i) with target t_i = 1 when the two texts are the same
sentence and 0 otherwise, u_i = model1(x_i), v_i = model2(y_i):

    L = Σ_i BCE(σ(u_i · v_i), t_i) = Σ_i [ softplus(u_i · v_i) - t_i · (u_i · v_i) ]

a plain dot product (no scale) and a SUM over the batch, as in the reference (the loss grows
with the batch size). Data: two text columns. Without a label column the targets are derived
from the tokens: a pair is positive exactly when both texts tokenise to the same tokens
(padding ignored). With a label column, its 0/1 values are used. The paper (and
``ContrastiveTensionDataLoader``) makes one positive pair per ``pos_neg_ratio`` pairs, the rest
pairs two random sentences.

ContrastiveTensionLossInBatchNegatives, for one column of sentences x_1..x_B,
u_i = model1(x_i), v_j = model2(x_j), S = s · sim(u, v) (B, B):

    L = ½ [ CE(S, diag) + CE(Sᵀ, diag) ],   CE(S, diag) = (1/B) Σ_i [ -S_ii + log Σ_j e^(S_ij) ]

every sentence's own embedding by the other copy is its positive, every other sentence of the
batch a negative, in both directions. Data: ONE text column of sentences (the lab's "sentence"
format), no labels.

Knobs (in-batch variant):
- ``scale`` (s): multiplies the similarities (20 = temperature 0.05). It is stored as a
  *trainable* log-scale parameter ``logit_scale`` initialised to log(scale), as in the
  reference, so the optimizer learns it; ``get_config_dict()["scale"]`` reports its current
  value. With ``dot_score`` use a scale of about 1.
- ``similarity_fct``: matrix similarity f(a, b) -> (len(a), len(b)), ``cos_sim`` by default.

Where ours differs from the reference, on purpose:
- ContrastiveTensionLoss: labels other than 0/1 are refused (a CT target says "same sentence or
  not"); the reference feeds anything to the BCE. Derived targets also work for models whose
  features have no attention mask, such as StaticEmbedding's flat ``input_ids`` + ``offsets``
  (the reference fails there).
- ContrastiveTensionLossInBatchNegatives: the reference silently uses only the first of several
  text columns; ours refuses more than one column (a second column, e.g. paraphrases, would be
  thrown away unseen). A label column is ignored by both; ours warns once. A duplicate sentence
  in a batch is a false negative (its row cannot win the softmax): avoid duplicates in batches.
- ContrastiveTensionDataLoader copies ``sentences`` instead of shuffling the caller's list in
  place, refuses a corpus too small for one batch (the reference yields nothing, silently) and
  warns once when a negative pair happens to hold the same sentence twice (a duplicate in the
  corpus): that pair is labelled 0 but is identical.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.similarity import batched_row_dots, cos_sim, similarity_fct_name
from losses.validation import LossInputError, binary_labels, warn_once

CITATION = """
@inproceedings{carlsson2021semantic,
    title={Semantic Re-tuning with Contrastive Tension},
    author={Fredrik Carlsson and Amaru Cuba Gyllensten and Evangelia Gogoulou and Erik Ylip{"a}{"a} Hellqvist and Magnus Sahlgren},
    booktitle={International Conference on Learning Representations},
    year={2021},
    url={https://openreview.net/forum?id=Ov_sMNau-PF}
}
"""  # noqa: E501  (bibliographic data, kept verbatim)


def _token_sequences(features: dict[str, Tensor]) -> list[Tensor]:
    """Each row's tokens without padding: a list of 1-D id tensors, one per text."""
    input_ids = features["input_ids"]
    if "attention_mask" in features:  # (batch, length) ids and 0/1 mask, padded on either side
        mask = features["attention_mask"].bool()
        return [ids[keep] for ids, keep in zip(input_ids.cpu(), mask.cpu(), strict=True)]
    if "offsets" in features:  # StaticEmbedding: all texts' ids in one row, each text's start
        starts = features["offsets"].tolist()
        ends = [*starts[1:], input_ids.shape[0]]
        return [input_ids[start:end].cpu() for start, end in zip(starts, ends, strict=True)]
    return list(input_ids.cpu())  # no padding information: compare whole rows


class _TwoEncoderLoss(EmbeddingLoss):
    """Shared set-up of the CT losses: ``model2`` (trained, kept) and its copy ``model1``.

    The names ``model1``/``model2`` are the reference's, so parameter names, state dicts and
    checkpoints are interchangeable. ``model`` is kept as a read-only alias of ``model2``.
    """

    def __init__(self, model: nn.Module | None) -> None:
        # Deliberately not EmbeddingLoss.__init__: it would register the model as ``model``,
        # and the first registered name is the one named_parameters() and state_dict() use.
        nn.Module.__init__(self)
        self.model2 = model  # the model being trained and kept after training
        self.model1 = copy.deepcopy(model)  # an independent copy, trained alongside, then dropped

    @property
    def model(self) -> nn.Module | None:
        """The trained model (``model2``)."""
        return self.model2

    @property
    def citation(self) -> str:
        """BibTeX of the Contrastive Tension paper."""
        return CITATION


class ContrastiveTensionLoss(_TwoEncoderLoss):
    """Binary cross-entropy on u·v: identical sentences (by two model copies) agree, others not."""

    expected_inputs = ("(sentence_A, sentence_B) pairs, identical for positives and different "
                       "for negatives, with optional 0/1 labels (1 = identical)")
    column_range = (2, 2)

    def __init__(self, model: nn.Module | None) -> None:
        super().__init__(model)
        self.criterion = nn.BCEWithLogitsLoss(reduction="sum")

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> Tensor:
        """Embed column 1 with ``model1`` and column 2 with ``model2``; targets from the tokens
        when ``labels`` is None."""
        features = list(sentence_features)
        if len(features) != 2:
            self.check_embeddings(features)  # raises the shared wrong-column-count message
        first, second = features
        embeddings = [self.model1(first)["sentence_embedding"],  # (B, dim)
                      self.model2(second)["sentence_embedding"]]  # (B, dim)
        if labels is None:
            labels = self.identical_pairs(first, second)
        return self.compute_loss_from_embeddings(embeddings, labels)

    def identical_pairs(self, first: dict[str, Tensor], second: dict[str, Tensor]) -> Tensor:
        """1.0 where row i of both columns holds the same tokens (padding ignored), else 0.0."""
        left, right = _token_sequences(first), _token_sequences(second)
        if len(left) != len(right):
            raise LossInputError(
                f"{type(self).__name__} expects {self.expected_inputs}: both columns with the "
                f"same number of rows; got {len(left)} and {len(right)}")
        same = [a.shape == b.shape and torch.equal(a, b) for a, b in zip(left, right, strict=True)]
        return torch.tensor(same, dtype=torch.float32, device=first["input_ids"].device)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """Loss from model1's and model2's (batch, dim) embeddings and 0/1 targets (batch,)."""
        batch_size, _ = self.check_embeddings(embeddings)
        targets = binary_labels(type(self).__name__, self.expected_inputs, labels, batch_size)
        first, second = embeddings
        logits = batched_row_dots(first, second)  # (B,) dot products u_i · v_i
        return self.criterion(logits, targets.to(logits.dtype))

    def get_config_dict(self) -> dict[str, Any]:
        """No settings (same as the reference)."""
        return {}


class ContrastiveTensionLossInBatchNegatives(_TwoEncoderLoss):
    """CT with in-batch negatives: model1(x_i) must pick model2(x_i) out of the whole batch."""

    expected_inputs = "single sentences (one text column), no labels"
    column_range = (1, 1)

    def __init__(
        self, model: nn.Module | None, scale: float = 20.0,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim,
    ) -> None:
        super().__init__(model)
        self.similarity_fct = similarity_fct
        # Trainable log of the scale (CLIP's parametrisation): exp keeps the scale positive.
        self.logit_scale = nn.Parameter(torch.tensor(math.log(scale)))

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> Tensor:
        """Embed the one column with both ``model1`` and ``model2``, then score all pairs."""
        features = list(sentence_features)
        if len(features) != 1:
            self.check_embeddings(features)  # raises the shared wrong-column-count message
        (sentences,) = features
        embeddings = [self.model1(sentences)["sentence_embedding"],  # (B, dim)
                      self.model2(sentences)["sentence_embedding"]]  # (B, dim)
        return self.compute_loss_from_embeddings(embeddings, labels)

    def compute_loss_from_embeddings(
        self, embeddings: list[Tensor], labels: Tensor | None = None
    ) -> Tensor:
        """Loss from model1's and model2's (batch, dim) embeddings of the same sentences."""
        name = type(self).__name__
        if isinstance(embeddings, Tensor) or len(embeddings) != 2:
            got = "a single tensor" if isinstance(embeddings, Tensor) else f"{len(embeddings)}"
            raise LossInputError(
                f"{name} expects two (batch, dim) embeddings of the same sentences, from model1 "
                f"and from model2; got {got}")
        first, second = embeddings
        if first.dim() != 2 or first.shape != second.shape:
            raise LossInputError(f"{name} expects two (batch, dim) embeddings of one shape; got "
                                 f"{tuple(first.shape)} and {tuple(second.shape)}")
        if labels is not None:
            warn_once(self, "labels", f"{name}: ignoring the label column; this loss needs "
                                      "single sentences only")
        scores = self.similarity_fct(first, second) * self.logit_scale.exp()  # (B, B)
        targets = torch.arange(scores.shape[0], device=scores.device)  # row i's positive: i
        # Both directions: model1's view picks model2's, and model2's view picks model1's.
        return (F.cross_entropy(scores, targets) + F.cross_entropy(scores.T, targets)) / 2

    def get_config_dict(self) -> dict[str, Any]:
        """Current scale (it is trained) and the similarity function's name."""
        return {
            "scale": self.logit_scale.exp().item(),
            "similarity_fct": similarity_fct_name(self.similarity_fct),
        }


class ContrastiveTensionDataLoader:
    """Batches of CT pairs for the old ``model.fit`` API: lists of ``InputExample``.

    Every batch holds ``batch_size`` pairs; pair k is positive, (s, s) with label 1, when
    k % pos_neg_ratio == 0, else negative, (s, s') with label 0, from the next two sentences.
    So ``pos_neg_ratio=8`` means 1 positive for 7 negatives (not 8 for 1). Each epoch starts by
    shuffling the sentences with Python's ``random`` (one ``random.shuffle`` of the whole list,
    carried over between epochs, as the reference does), then uses every sentence at most once.
    """

    def __init__(self, sentences: Sequence[str], batch_size: int, pos_neg_ratio: int = 8) -> None:
        self.sentences = list(sentences)  # our own copy: shuffling must not touch the caller's
        self.batch_size = batch_size
        self.pos_neg_ratio = pos_neg_ratio
        self.collate_fn: Callable | None = None  # set by model.fit
        name = type(self).__name__
        for label, value in (("batch_size", batch_size), ("pos_neg_ratio", pos_neg_ratio)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {label} must be a positive integer; got {value!r}")
        if batch_size % pos_neg_ratio != 0:
            raise ValueError(
                f"{name} was given pos_neg_ratio={pos_neg_ratio} and batch_size={batch_size}: "
                "the batch size must be divisible by pos_neg_ratio")
        if len(self) == 0:
            raise ValueError(
                f"{name} needs at least {self.sentences_per_batch} sentences for one batch of "
                f"{batch_size} pairs; got {len(self.sentences)}")

    @property
    def sentences_per_batch(self) -> int:
        """Sentences one batch consumes: one per positive pair, two per negative pair."""
        positives = self.batch_size // self.pos_neg_ratio
        return 2 * self.batch_size - positives

    def __len__(self) -> int:
        """Full batches per epoch (the leftover sentences are not used that epoch)."""
        return len(self.sentences) // self.sentences_per_batch

    def __iter__(self) -> Iterator[Any]:
        from sentence_transformers.sentence_transformer.readers import InputExample

        random.shuffle(self.sentences)
        stream = iter(self.sentences)
        for _ in range(len(self)):
            batch = []
            for index in range(self.batch_size):
                first = next(stream)
                positive = index % self.pos_neg_ratio == 0
                second = first if positive else next(stream)
                if not positive and first == second:
                    warn_once(self, "duplicate", f"{type(self).__name__}: a negative pair holds "
                                                 f"the same sentence twice ({first!r}); remove "
                                                 "duplicates from the sentences")
                batch.append(InputExample(texts=[first, second], label=int(positive)))
            yield batch if self.collate_fn is None else self.collate_fn(batch)
