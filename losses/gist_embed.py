"""GISTEmbedLoss: in-batch negatives ranking, with a guide model vetoing false negatives.

Formula. Queries (anchors) a_1..a_B, their positives p_1..p_B, optional hard negatives
n_1..n_B (one column here; CachedGISTEmbedLoss takes any number). Two models embed the texts: the
model being trained gives s(x, y) = cos(x, y), a frozen *guide* model gives g(x, y). For row i
the guide's similarity of the true pair, t_i = g(a_i, p_i), is the yardstick: a candidate c of
row i is a suspected false negative, and removed from row i's softmax, when

    absolute strategy:  g(a_i, c) > t_i - m
    relative strategy:  g(a_i, c) > t_i - |t_i|·m

(m = ``margin``; the positive p_i itself is never removed). The loss is the cross-entropy of
picking p_i among the surviving candidates, with temperature τ:

    L = (1/B) Σ_i [ -s(a_i, p_i)/τ + log Σ_c exp(s(q, c)/τ) ]

where the candidates c of row i are, in this order:
    every positive p_j                        (query a_i; always)
    every anchor a_j                          (query a_i; ``contrast_anchors``)
    every positive p_j                        (query p_i; ``contrast_positives``)
    every hard negative n_j of every column   (query a_i)
each filtered by the guide rule above with the guide similarity of the same pair (for the
positive-positive block that is g(p_i, p_j), still against row i's threshold t_i). A text's
similarity to itself (a_i with a_i, p_i with p_i) is 1 for the guide as well, so it is removed by
the same rule whenever t_i < 1 - m: the reference has no separate rule for it, nor has ours.

Paper: Solatorio, "GISTEmbed: Guided In-sample Selection of Training Negatives for Text Embedding
Fine-tuning" (2024, arXiv 2402.16829).

Data: (anchor, positive) pairs or (anchor, positive, negative) triplets, no labels (the lab's
"pair" and "triplet" formats). Labels, if a dataset has a label column, are ignored by the
reference; ours warns once, because a label usually means rows are not all true pairs.

Knobs:
- ``guide``: a SentenceTransformer with a Hugging Face tokenizer, run without gradients. When its
  vocabulary differs from the model's, or its ``max_seq_length`` is shorter, the model's token ids
  are decoded back to text (special tokens skipped) and re-tokenised for the guide
  (``must_retokenize``); otherwise the guide reads the model's features as they are.
- ``temperature`` (τ): divides the similarities; 0.01 means scale 100. Must be positive (ours
  refuses τ <= 0, which the reference turns into inf/NaN losses).
- ``margin_strategy`` / ``margin``: the false-negative rule above. With the default margin 0 and
  "absolute", only candidates the guide rates *strictly* above the true pair are removed, so an
  exact duplicate of the positive (a tie) stays in as a negative; a small margin removes it.
- ``contrast_anchors`` / ``contrast_positives``: add the anchor-anchor and positive-positive blocks
  (GIST's default) that push anchors, respectively positives, apart from each other.
- ``gather_across_devices``: in a multi-process run, positives and negatives (and their guide
  embeddings) of every process join the candidates of the local anchors (losses/distributed.py).

Memory: every similarity is a matrix product of row-normalised embeddings, so the extra memory is
a few (batch x batch) matrices; the reference broadcasts (batch x batch x dim) tensors instead.

``compute_loss_from_embeddings(embeddings, labels, guide_embeddings)`` works without models;
without ``guide_embeddings`` the (detached) embeddings guide themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.base import EmbeddingLoss, embed_columns
from losses.distributed import gather_across_ranks
from losses.gradient_cache import (
    is_static_embedding_model,
    send_gradients_back,
    slice_features,
)
from losses.similarity import normalize
from losses.validation import LossInputError, describe

MarginStrategy = Literal["absolute", "relative"]

CITATION_GIST = """
@misc{solatorio2024gistembed,
    title={GISTEmbed: Guided In-sample Selection of Training Negatives for Text Embedding Fine-tuning},
    author={Aivin V. Solatorio},
    year={2024},
    eprint={2402.16829},
    archivePrefix={arXiv},
    primaryClass={cs.LG}
}
"""  # noqa: E501 (bibliographic data, reproduced exactly)


# ------------------------------------------------------------------------- settings and guide
def check_gist_settings(loss_name: str, temperature: float, margin_strategy: str) -> None:
    """Refuse a temperature that is not positive and an unknown margin strategy."""
    if margin_strategy not in ("absolute", "relative"):
        raise ValueError(f"{loss_name}: margin_strategy must be 'absolute' or 'relative'; got "
                         f"{margin_strategy!r}")
    if not temperature > 0:
        raise ValueError(f"{loss_name}: temperature must be positive (the similarities are "
                         f"divided by it); got {temperature}")


def needs_retokenizing(loss_name: str, model: nn.Module | None, guide: nn.Module | None) -> bool:
    """Check model and guide; True when the guide must re-tokenise the texts itself.

    That is the case when the two tokenizers' vocabularies differ, or when the guide reads fewer
    tokens (``max_seq_length``) than the model. Without a model (embedding-level use) there is
    nothing to check and the guide may be None.
    """
    if model is None:
        if guide is not None and not isinstance(guide, nn.Module):
            raise ValueError(f"{loss_name}: guide must be a SentenceTransformer model or None; "
                             f"got {describe(guide)}")
        return False
    if not isinstance(guide, nn.Module) or not hasattr(guide, "tokenizer"):
        raise ValueError(
            f"{loss_name} needs a guide: a SentenceTransformer model with a tokenizer (e.g. "
            f"lab.models.load_model('minilm')) whose similarities veto false negatives; got "
            f"{describe(guide)}")
    if not hasattr(model, "tokenizer"):
        raise ValueError(f"{loss_name}: the trained model has no tokenizer attribute; it must be a "
                         "SentenceTransformer with a Hugging Face tokenizer")
    from transformers import PreTrainedTokenizerBase

    for role, which in (("trained model", model), ("guide", guide)):
        if not isinstance(which.tokenizer, PreTrainedTokenizerBase):
            raise ValueError(
                f"{loss_name}: the {role} must use a Hugging Face transformers tokenizer "
                f"(PreTrainedTokenizerBase), so texts can be decoded and re-tokenised; got "
                f"{type(which.tokenizer).__name__}")
    return (model.tokenizer.get_vocab() != guide.tokenizer.get_vocab()
            or guide.max_seq_length < model.max_seq_length)


def decoded_texts(tokenizer: Any, features: dict[str, Any]) -> list[str]:
    """The texts of one column, decoded from its token ids (padded or flattened features)."""
    ids = features["input_ids"]
    if "cu_seq_lens_q" in features:  # one packed row of tokens: cut it at the sequence offsets
        stream = ids[0].tolist()
        bounds = features["cu_seq_lens_q"].tolist()
        ids = [stream[begin:end] for begin, end in pairwise(bounds)]
    return tokenizer.batch_decode(ids, skip_special_tokens=True)


def guide_embeddings_of(guide: nn.Module, features: dict[str, Any], tokenizer: Any | None,
                        ranges: Sequence[tuple[int, int]] | None = None) -> Tensor:
    """(batch, guide dim) guide embeddings of one column, without gradients.

    ``tokenizer``: the model's tokenizer when the guide must re-tokenise (else None: the guide
    reads ``features`` as they are). ``ranges``: embed mini-batch by mini-batch (row ranges).
    """
    pieces = []
    with torch.no_grad():
        for begin, end in ranges or [(None, None)]:
            piece = dict(features) if begin is None else slice_features(features, begin, end)
            if tokenizer is not None:
                inputs = guide.preprocess(decoded_texts(tokenizer, piece))
                piece = {key: value.to(guide.device) if isinstance(value, Tensor) else value
                         for key, value in inputs.items()}
            pieces.append(guide(piece)["sentence_embedding"].detach())
    return torch.cat(pieces) if len(pieces) > 1 else pieces[0]


# ------------------------------------------------------------------------------------ the math
def false_negative_mask(guide_scores: Tensor, thresholds: Tensor, margin_strategy: str,
                        margin: float) -> Tensor:
    """(b, n) True where the guide rates a candidate above the row's true pair (minus a margin).

    ``guide_scores`` (b, n) guide similarities of row i's query with each candidate;
    ``thresholds`` (b, 1) the guide similarity t_i of row i's anchor with its positive.

    Ties are kept: a candidate the guide rates exactly as similar as the true pair is not
    removed (with margin 0, an exact duplicate of the positive stays a negative, as in the
    reference). "Exactly" means within rounding: a duplicate text's embedding and similarity may
    differ from the original's in the last bits, depending on padding and on how the products
    are ordered, so a candidate counts as tied within 8 machine epsilons of the limit. Without
    this, whether a duplicate is removed would depend on rounding noise.
    """
    if margin_strategy == "absolute":
        limit = thresholds - margin
    else:
        limit = thresholds - thresholds.abs() * margin
    rounding = 8 * torch.finfo(guide_scores.dtype).eps
    return guide_scores > limit + rounding


def _unit_rows(x: Tensor) -> Tensor:
    """Rows scaled to unit length (half precision computed in float32)."""
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return normalize(x)


class GistBatch:
    """One batch, normalised and (optionally) gathered, ready to be scored block by block.

    anchors (b, d) local; documents: columns of (G, d), positives first; guide_* alike with the
    guide's dim; ``offset``: where the local rows sit among the G gathered rows.
    """

    def __init__(self, anchors: Tensor, documents: list[Tensor], guide_anchors: Tensor,
                 guide_documents: list[Tensor], gather: bool) -> None:
        local = slice(0, anchors.shape[0])
        if gather:  # candidates of every process, not anchors (the reference's layout)
            gathered = [gather_across_ranks(column) for column in documents]
            documents = [column for column, _ in gathered]
            local = gathered[0][1]
            guide_documents = [gather_across_ranks(column)[0] for column in guide_documents]
        self.offset = local.start
        self.anchors = _unit_rows(anchors)  # (b, d)
        self.documents = [_unit_rows(column) for column in documents]  # C x (G, d)
        self.guide_anchors = _unit_rows(guide_anchors)  # (b, d_guide)
        self.guide_documents = [_unit_rows(column) for column in guide_documents]

    def differentiable(self) -> list[Tensor]:
        """The normalised tensors the logits are computed from (anchors, then documents)."""
        return [self.anchors, *self.documents]

    def detached_copy(self) -> GistBatch:
        """The same batch whose normalised tensors are fresh leaves collecting gradients."""
        copy = object.__new__(GistBatch)
        copy.__dict__.update(self.__dict__)
        copy.anchors = self.anchors.detach().requires_grad_()
        copy.documents = [column.detach().requires_grad_() for column in self.documents]
        return copy


def gist_block_loss(batch: GistBatch, rows: slice, temperature: float, margin_strategy: str,
                    margin: float, contrast_anchors: bool, contrast_positives: bool,
                    queries: Tensor | None = None, row_positives: Tensor | None = None) -> Tensor:
    """Summed cross-entropy of the local anchor rows ``rows`` (not yet divided by the batch).

    ``queries`` / ``row_positives``: the block's anchor rows and its rows' positives, when the
    caller passes them as leaves of their own (default: slices of the batch's tensors).
    """
    count = rows.stop - rows.start
    index = torch.arange(count, device=batch.anchors.device)
    targets = batch.offset + rows.start + index  # (b,) column of each row's own positive
    global_rows = slice(batch.offset + rows.start, batch.offset + rows.stop)
    if queries is None:
        queries = batch.anchors[rows]  # (b, d)
    guide_queries = batch.guide_anchors[rows]  # (b, d_guide)

    guide_positive = guide_queries @ batch.guide_documents[0].T  # (b, G)
    thresholds = guide_positive[index, targets].unsqueeze(1)  # (b, 1): t_i = g(a_i, p_i)

    def vetted(scores: Tensor, guide_scores: Tensor, keep_positive: bool = False) -> Tensor:
        removed = false_negative_mask(guide_scores, thresholds, margin_strategy, margin)
        if keep_positive:
            removed[index, targets] = False  # the true pair always stays
        return scores.masked_fill(removed, -torch.inf)

    blocks = [vetted(queries @ batch.documents[0].T, guide_positive, keep_positive=True)]
    if contrast_anchors:  # (b, b_local)
        blocks.append(vetted(queries @ batch.anchors.T, guide_queries @ batch.guide_anchors.T))
    if contrast_positives:  # (b, G): row i's positive against every positive
        positives, guide_positives = batch.documents[0], batch.guide_documents[0]
        if row_positives is None:
            row_positives = positives[global_rows]  # (b, d)
        blocks.append(vetted(row_positives @ positives.T,
                             guide_positives[global_rows] @ guide_positives.T))
    for negatives, guide_negatives in zip(batch.documents[1:], batch.guide_documents[1:],
                                          strict=True):  # (b, G) per negative column
        blocks.append(vetted(queries @ negatives.T, guide_queries @ guide_negatives.T))
    logits = torch.cat(blocks, dim=1) / temperature  # (b, G·(1 + pp + k) + b_local·aa)
    return F.cross_entropy(logits, targets, reduction="sum")


def gist_loss(batch: GistBatch, temperature: float, margin_strategy: str, margin: float,
              contrast_anchors: bool, contrast_positives: bool, block_size: int | None = None,
              with_backward: bool = False) -> Tensor:
    """Mean cross-entropy over the local anchors, ``block_size`` anchor rows at a time.

    ``with_backward``: back-propagate as we go and return the detached value. Each block's graph
    ends at detached copies of the normalised embeddings, whose gradients are pushed through the
    normalisation (and the gather across processes) once at the end, so memory holds one block
    of logits and every process runs the gather's collective exactly once.
    """
    settings = (temperature, margin_strategy, margin, contrast_anchors, contrast_positives)
    rows_total = batch.anchors.shape[0]
    step = block_size or rows_total
    if not with_backward:
        total = [gist_block_loss(batch, slice(begin, min(begin + step, rows_total)), *settings)
                 / rows_total for begin in range(0, rows_total, step)]
        return sum(total[1:], total[0])
    # Each block's own rows (its anchors, and its positives when they are contrasted) are leaves
    # of their own, added into these buffers after its backward: a slice of a full-size leaf
    # would make every block's backward build and add a full-size, mostly zero gradient.
    work = batch.detached_copy()
    anchors, positives = work.anchors.detach(), work.documents[0].detach()
    row_grads = [torch.zeros_like(anchors), torch.zeros_like(positives)]
    total = []
    for begin in range(0, rows_total, step):
        rows = slice(begin, min(begin + step, rows_total))
        global_rows = slice(batch.offset + rows.start, batch.offset + rows.stop)
        queries = anchors[rows].requires_grad_()  # (b, d), a leaf
        row_positives = positives[global_rows].requires_grad_() if contrast_positives else None
        block = gist_block_loss(work, rows, *settings, queries=queries,
                                row_positives=row_positives) / rows_total
        block.backward()
        row_grads[0][rows] += queries.grad
        if row_positives is not None:
            row_grads[1][global_rows] += row_positives.grad
        total.append(block.detach())
    leaves = work.differentiable()
    gradients = [row_grads[0] if leaves[0].grad is None else leaves[0].grad + row_grads[0],
                 row_grads[1] if leaves[1].grad is None else leaves[1].grad + row_grads[1],
                 *(leaf.grad for leaf in leaves[2:])]
    send_gradients_back(list(zip(batch.differentiable(), gradients, strict=True)))
    return sum(total[1:], total[0])


# --------------------------------------------------------------------------------- the loss
class GuidedLoss(EmbeddingLoss):
    """What GISTEmbedLoss and CachedGISTEmbedLoss share: input checks and batch preparation.

    Subclasses set the settings attributes (temperature, margin_strategy, margin,
    contrast_anchors, contrast_positives, gather_across_devices, guide, must_retokenize).
    """

    def _settings(self) -> tuple:
        return (self.temperature, self.margin_strategy, self.margin, self.contrast_anchors,
                self.contrast_positives)

    def _batch(self, embeddings: list[Tensor], guide_embeddings: list[Tensor]) -> GistBatch:
        anchors, *documents = embeddings
        guide_anchors, *guide_documents = guide_embeddings
        return GistBatch(anchors, documents, guide_anchors, guide_documents,
                         self.gather_across_devices)

    def _guide_tokenizer(self) -> Any | None:
        return self.tokenizer if self.must_retokenize else None

    def _check_columns(self, sentence_features: Iterable[dict[str, Tensor]]) -> list[dict]:
        """Refuse a wrong number of columns before running any model."""
        features = list(sentence_features)
        minimum, maximum = self.column_range
        if len(features) < minimum or (maximum is not None and len(features) > maximum):
            self.check_embeddings(features)  # raises the shared column-count message
        return features

    def _check(self, embeddings: list[Tensor], labels: Tensor | None,
               guide_embeddings: list[Tensor] | None) -> list[Tensor]:
        """Check both sets of embeddings; return the guide's (the embeddings if None)."""
        name = type(self).__name__
        batch, _ = self.check_embeddings(embeddings)
        if guide_embeddings is None:
            guide_embeddings = [column.detach() for column in embeddings]
        if isinstance(guide_embeddings, Tensor) or len(guide_embeddings) != len(embeddings):
            raise LossInputError(
                f"{name} expects one guide embedding tensor per column ({len(embeddings)}); got "
                f"{describe(guide_embeddings) if isinstance(guide_embeddings, Tensor) else len(guide_embeddings)}")  # noqa: E501
        shapes = [tuple(column.shape) for column in guide_embeddings]
        if any(len(shape) != 2 or shape[0] != batch for shape in shapes):
            raise LossInputError(f"{name} expects the guide's embeddings as (batch={batch}, dim) "
                                 f"tensors, one per column; got shapes {shapes}")
        if labels is not None:
            self.warn_once("labels", f"ignores labels (it expects {self.expected_inputs}); got "
                                     "labels, so every row is treated as a true (anchor, positive) "
                                     "pair. Drop the label column, or use a loss that reads it.")
        if batch == 1 and not self.gather_across_devices:
            self.warn_once("batch1", "a batch of one row has no in-batch negatives: the loss only "
                                     "sees its own hard negatives, if any. Use larger batches.")
        return guide_embeddings


class GISTEmbedLoss(GuidedLoss):
    """In-batch negatives cross-entropy whose false negatives are removed by a guide model."""

    expected_inputs = ("(anchor, positive) pairs or (anchor, positive, negative) triplets, "
                       "without labels")
    column_range = (2, 3)

    def __init__(
        self,
        model: nn.Module,
        guide: nn.Module,
        temperature: float = 0.01,
        margin_strategy: MarginStrategy = "absolute",
        margin: float = 0.0,
        contrast_anchors: bool = True,
        contrast_positives: bool = True,
        gather_across_devices: bool = False,
    ) -> None:
        super().__init__(model)
        name = type(self).__name__
        self.guide = guide
        self.must_retokenize = needs_retokenizing(name, model, guide)
        if self.must_retokenize:
            self.tokenizer = model.tokenizer
            if is_static_embedding_model(model):
                raise ValueError(
                    f"{name}: the guide has a different tokenizer (or a shorter max_seq_length), "
                    "so texts are decoded from the model's token ids, which a StaticEmbedding "
                    "model's flat inputs do not allow. Use a guide with the model's tokenizer.")
        check_gist_settings(name, temperature, margin_strategy)
        self.temperature = temperature
        self.margin_strategy = margin_strategy
        self.margin = margin
        self.contrast_anchors = contrast_anchors
        self.contrast_positives = contrast_positives
        self.gather_across_devices = gather_across_devices

    # ------------------------------------------------------------------------------ forward
    def forward(self, sentence_features: Iterable[dict[str, Tensor]],
                labels: Tensor | None = None) -> Tensor:
        """Embed every column with the model (with a graph) and with the guide (without)."""
        features = self._check_columns(sentence_features)
        # The model writes its outputs into the dicts it gets: the guide reads untouched copies.
        guide_inputs = [dict(column) for column in features]
        embeddings = embed_columns(self.model, features)
        guide_embeddings = [guide_embeddings_of(self.guide, column, self._guide_tokenizer())
                            for column in guide_inputs]
        return self.compute_loss_from_embeddings(embeddings, labels, guide_embeddings)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None,
                                     guide_embeddings: list[Tensor] | None = None) -> Tensor:
        """Loss from per-column (batch, dim) embeddings and the guide's (batch, dim') ones.

        Without ``guide_embeddings`` the embeddings, detached, are their own guide.
        """
        guide_embeddings = self._check(embeddings, labels, guide_embeddings)
        return gist_loss(self._batch(embeddings, guide_embeddings), *self._settings())

    def get_config_dict(self) -> dict[str, Any]:
        """Settings as in the reference, the guide model itself included."""
        return {
            "guide": self.guide,
            "temperature": self.temperature,
            "margin_strategy": self.margin_strategy,
            "margin": self.margin,
            "contrast_anchors": self.contrast_anchors,
            "contrast_positives": self.contrast_positives,
            "gather_across_devices": self.gather_across_devices,
        }

    @property
    def citation(self) -> str:
        """Solatorio 2024 (GISTEmbed)."""
        return CITATION_GIST
