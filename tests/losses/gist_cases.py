"""Shared cases of the GISTEmbedLoss and CachedGISTEmbedLoss tests: guides and an adapter.

Guides (all offline, dropout 0):
- ``same_tokenizer_guide``: the lab's tiny BERT with another seed (same tokenizer as the model);
- ``short_guide``: the same, with ``max_seq_length`` 8: the guide must re-tokenise (and cuts);
- ``other_tokenizer_guide``: a tinier BERT with its own small WordPiece vocabulary, built in a
  temporary folder: texts are decoded from the model's ids and re-tokenised for it.

``other_tokenizer_bert_path``: that guide's bare BERT folder (hidden size 32), e.g. a decoder.
``reference_on_embeddings`` runs the reference GISTEmbedLoss (which has no embedding-level entry
point) on given embeddings, through stand-in models that return them.
"""

from __future__ import annotations

import copy
import re
import tempfile
from functools import cache
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

from tests.losses.parity import ANCHORS, MORE_NEGATIVES, NEGATIVES, POSITIVES, tiny_model


@cache
def _seed1_guide() -> SentenceTransformer:
    from lab.models import load_model

    return load_model("tiny-bert", device="cpu", seed=1, dropout=0.0)


def same_tokenizer_guide(dtype: torch.dtype = torch.float64) -> SentenceTransformer:
    return copy.deepcopy(_seed1_guide()).to(dtype)


def short_guide(dtype: torch.dtype = torch.float64) -> SentenceTransformer:
    guide = same_tokenizer_guide(dtype)
    guide.max_seq_length = 8
    return guide


@cache
def _other_tokenizer_folder() -> Path:
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(tempfile.mkdtemp(prefix="gist-guide-"))
    words = sorted({word for text in ANCHORS + POSITIVES + NEGATIVES + MORE_NEGATIVES
                    for word in re.findall(r"\w+|[^\w\s]", text.lower())})
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (folder / "vocab.txt").write_text("\n".join(special + words) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = BertConfig(vocab_size=len(special) + len(words), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        BertModel(config).save_pretrained(folder / "bert")
    tokenizer.save_pretrained(folder / "bert")
    transformer = Transformer(str(folder / "bert"), max_seq_length=64)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder / "model"))
    return folder / "model"


def other_tokenizer_guide(dtype: torch.dtype = torch.float64) -> SentenceTransformer:
    return SentenceTransformer(str(_other_tokenizer_folder()), device="cpu").to(dtype)


def other_tokenizer_bert_path() -> str:
    """The Hugging Face folder of that guide's BERT (hidden size 32), e.g. to load a decoder."""
    return str(_other_tokenizer_folder().parent / "bert")


@cache
def _tokenizer():
    return tiny_model().tokenizer


class StandIn(nn.Module):
    """A 'model' that returns the embeddings stored under ``key`` in its features."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.tokenizer = _tokenizer()
        self.max_seq_length = 128

    def forward(self, features: dict) -> dict:
        return {"sentence_embedding": features[self.key]}


def reference_on_embeddings(make_reference, embeddings: list[Tensor],
                            guide_embeddings: list[Tensor] | None) -> Tensor:
    """The reference loss's value on given embeddings (guide: the embeddings, if None)."""
    from sentence_transformers.base.losses.merged_forward import column_merging_disabled

    if guide_embeddings is None:
        guide_embeddings = [column.detach() for column in embeddings]
    loss = make_reference(StandIn("model"), StandIn("guide"))
    features = [{"model": column, "guide": guide}
                for column, guide in zip(embeddings, guide_embeddings, strict=True)]
    with column_merging_disabled():
        return loss(features, None)


class ReferenceOnEmbeddings(nn.Module):
    """Wraps a reference factory with ``compute_loss_from_embeddings`` for the parity helpers."""

    def __init__(self, make_reference, guide_embeddings: list[Tensor] | None = None) -> None:
        super().__init__()
        self.make_reference = make_reference
        self.guide_embeddings = guide_embeddings

    def compute_loss_from_embeddings(self, embeddings, labels=None):
        return reference_on_embeddings(self.make_reference, embeddings, self.guide_embeddings)


class OursWithGuide(nn.Module):
    """Our loss with fixed guide embeddings, for the parity helpers."""

    def __init__(self, loss: nn.Module, guide_embeddings: list[Tensor] | None = None) -> None:
        super().__init__()
        self.loss = loss
        self.guide_embeddings = guide_embeddings

    def compute_loss_from_embeddings(self, embeddings, labels=None):
        return self.loss.compute_loss_from_embeddings(embeddings, labels, self.guide_embeddings)
