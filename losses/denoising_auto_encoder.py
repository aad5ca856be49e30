"""DenoisingAutoEncoderLoss (TSDAE): rebuild the original sentence from a damaged one's embedding.

Paper: Wang, Reimers and Gurevych, "TSDAE: Using Transformer-based Sequential Denoising
Auto-Encoder for Unsupervised Sentence Embedding Learning" (Findings of EMNLP 2021).

The encoder (your model) embeds a damaged sentence (most words deleted) into one vector e. A
transformer decoder must then write the ORIGINAL sentence token by token, seeing only e through
cross-attention (a memory of length 1) and the tokens it has written so far. For the original
sentence's tokens y_0 .. y_T (y_0 = [CLS], padding = PAD):

    L = mean over t = 1..T with y_t ≠ PAD of  -log p_decoder(y_t | y_0 .. y_{t-1}, e)

(teacher forcing: the decoder reads y_0..y_{T-1} and predicts y_1..y_T). The only way to write
the sentence back is to pack its meaning into e, which is what makes e a good sentence embedding.

Data: (damaged, original) pairs, no labels: the lab's "denoising" format (about 60% of the words
deleted, TSDAE's recommended noise).

The decoder: a causal-LM version (``AutoModelForCausalLM``, e.g. ``BertLMHeadModel``) of a
pretrained architecture, loaded with ``is_decoder=True`` and ``add_cross_attention=True``. Its
cross-attention and language-model head are new and randomly initialised from torch's global
generator (seed it for reproducible runs; seeded, the initial values equal the reference's).

Knobs:
- ``tie_encoder_decoder`` (default True): the decoder is built from the encoder's own saved files
  (the model's ``_name_or_path``, so the model must exist on disk, e.g. a saved folder, or be a
  loadable Hub id) and SHARES every encoder weight it has a counterpart for (embeddings,
  self-attention, feed-forward layers): the very same tensors, so half the memory, and one update
  trains both. Only cross-attention and the LM head are the decoder's own. The paper found tying
  better. ``decoder_name_or_path`` is ignored in this mode (with a warning).
- ``decoder_name_or_path``: with ``tie_encoder_decoder=False``, the model (name or folder) to
  load the decoder from; required then. If its tokenizer is of another type than the encoder's,
  the original sentences are decoded to text and re-tokenised for the decoder
  (``need_retokenization``).

Where ours differs from the reference, on purpose:
- Tying direction. The reference points the encoder's parameters at the freshly loaded decoder's,
  so the encoder silently falls back to the weights saved on disk (in-memory changes, e.g. an
  earlier fine-tuning or a dtype change, are lost, and a float64 model becomes partly float32).
  Ours points the decoder at the encoder's existing parameters (the decoder is first moved to the
  encoder's device and dtype). For a model freshly loaded from its folder both give the same
  values; the encoder's parameter objects never change, so optimizers and hooks on them survive.
- Clear ``LossInputError``s (ValueError) instead of asserts and deep loading errors: a model
  without files on disk, a StaticEmbedding model, ``tie_encoder_decoder=False`` without a decoder
  path, mismatched hidden sizes, original sentences with no token to predict (the reference
  returns NaN).
- ``model=None`` builds only the decoder (needs ``decoder_name_or_path`` and
  ``tie_encoder_decoder=False``), for ``compute_loss_from_embeddings``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.validation import LossInputError, check_embeddings, describe

CITATION = """
@inproceedings{wang-2021-TSDAE,
    title = "TSDAE: Using Transformer-based Sequential Denoising Auto-Encoderfor Unsupervised Sentence Embedding Learning",
    author = "Wang, Kexin and Reimers, Nils and Gurevych, Iryna",
    booktitle = "Findings of the Association for Computational Linguistics: EMNLP 2021",
    month = nov,
    year = "2021",
    address = "Punta Cana, Dominican Republic",
    publisher = "Association for Computational Linguistics",
    pages = "671--688",
    url = "https://arxiv.org/abs/2104.06979",
}
"""  # noqa: E501  (bibliographic data, kept verbatim)


def share_parameters(encoder: nn.Module, decoder: nn.Module) -> int:
    """Make ``decoder`` use ``encoder``'s parameter tensors wherever both have one.

    Parameters are matched by module path and name (``encoder.layer.0.attention.self.query`` /
    ``weight``) and shape; decoder-only ones (cross-attention) keep their own. Returns how many
    were shared. Afterwards ``decoder_param is encoder_param`` for every shared pair.
    """
    encoder_modules = dict(encoder.named_modules())
    shared = 0
    for path, module in decoder.named_modules():
        partner = encoder_modules.get(path)
        if partner is None:
            continue
        for name, own in list(module.named_parameters(recurse=False)):
            theirs = partner._parameters.get(name)
            if theirs is not None and theirs.shape == own.shape:
                setattr(module, name, theirs)  # same Parameter object: shared storage and grads
                shared += 1
    return shared


class DenoisingAutoEncoderLoss(EmbeddingLoss):
    """TSDAE: a decoder reconstructs the original sentence from the damaged sentence's embedding."""

    expected_inputs = "(damaged sentence, original sentence) pairs, no labels"
    column_range = (2, 2)

    def __init__(
        self, model: nn.Module | None, decoder_name_or_path: str | None = None,
        tie_encoder_decoder: bool = True,
    ) -> None:
        # Not EmbeddingLoss.__init__: the model is registered as ``encoder`` (the reference's
        # name), so parameter names and checkpoints are interchangeable with the reference's.
        nn.Module.__init__(self)
        name = type(self).__name__
        transformer = None if model is None else self._transformer_of(model)
        if model is None and (tie_encoder_decoder or not decoder_name_or_path):
            raise LossInputError(
                f"{name} without a model builds only a decoder: pass decoder_name_or_path and "
                "tie_encoder_decoder=False (there is no encoder to tie it to)")
        if not tie_encoder_decoder and not decoder_name_or_path:
            raise LossInputError(f"{name} needs decoder_name_or_path when "
                                 "tie_encoder_decoder=False (which model should decode?)")
        encoder_path = None if transformer is None else transformer.config._name_or_path
        if tie_encoder_decoder:
            if decoder_name_or_path:
                self.warn_once("decoder_path", f"decoder_name_or_path={decoder_name_or_path!r} "
                                               "is ignored: with tie_encoder_decoder=True the "
                                               "decoder is built from the encoder's own files")
            decoder_name_or_path = encoder_path

        self.encoder = model  # the model being trained and kept after training
        self.tokenizer_encoder = None if model is None else model.tokenizer
        self.tokenizer_decoder, self.decoder = self._load_decoder(decoder_name_or_path)
        decoder_config = self.decoder.config
        if transformer is not None and transformer.config.hidden_size != decoder_config.hidden_size:
            raise LossInputError(
                f"{name}: the encoder's hidden size ({transformer.config.hidden_size}) differs "
                f"from the decoder's ({decoder_config.hidden_size}); the decoder cross-attends "
                "to the sentence embedding, so they must match")
        self.need_retokenization = self.tokenizer_encoder is not None and not isinstance(
            self.tokenizer_encoder, type(self.tokenizer_decoder))
        if self.tokenizer_decoder.pad_token is None:  # e.g. GPT-2: pad with the end token
            if self.tokenizer_decoder.eos_token is None:
                raise LossInputError(f"{name}: the decoder's tokenizer has neither a padding "
                                     "nor an end-of-sequence token")
            self.tokenizer_decoder.pad_token = self.tokenizer_decoder.eos_token
            decoder_config.pad_token_id = decoder_config.eos_token_id
        if tie_encoder_decoder:
            self._tie(transformer)

    @staticmethod
    def _transformer_of(model: nn.Module) -> nn.Module:
        """The Hugging Face model inside a SentenceTransformer; clear error if there is none."""
        transformer = getattr(model, "transformers_model", None)
        if transformer is None or not hasattr(transformer, "config"):
            first = type(model[0]).__name__ if hasattr(model, "__getitem__") else type(model)
            raise LossInputError(
                f"DenoisingAutoEncoderLoss needs a transformer encoder (e.g. BERT) to tie a "
                f"decoder to; got a model whose first module is {first} (a StaticEmbedding "
                "model has no layers a decoder could share)")
        return transformer

    def _load_decoder(self, path: str | None) -> tuple[Any, nn.Module]:
        """Tokenizer and causal-LM decoder with cross-attention, loaded from ``path``."""
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        name = type(self).__name__
        advice = (f"{name} loads the decoder from the encoder's saved files, found through the "
                  "model's _name_or_path; save the model to a folder (model.save_pretrained) "
                  "and load it from there, or pass tie_encoder_decoder=False with a "
                  "decoder_name_or_path")
        if not path:
            raise LossInputError(f"{advice}; got a model with no _name_or_path ({path!r})")
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            config = AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as error:
            raise LossInputError(f"{advice}; could not load {path!r}: {error}") from error
        config.is_decoder = True  # causal self-attention: token t sees tokens < t only
        config.add_cross_attention = True  # ... and the sentence embedding
        try:
            decoder = AutoModelForCausalLM.from_pretrained(path, config=config)
        except ValueError as error:
            raise LossInputError(
                f"{name}: {path!r} cannot be loaded as a decoder (it needs a causal-LM head "
                f"class such as BertLMHeadModel): {error}") from error
        return tokenizer, decoder

    def _tie(self, transformer: nn.Module) -> None:
        """Share the encoder's weights with the decoder (see ``share_parameters``)."""
        if self.need_retokenization:
            raise LossInputError(f"{type(self).__name__}: tied encoder and decoder need the same "
                                 "tokenizer type")
        base = self.decoder.base_model  # e.g. BertModel inside BertLMHeadModel
        reference = next(transformer.parameters())
        self.decoder.to(device=reference.device, dtype=reference.dtype)
        rows = transformer.get_input_embeddings().weight.shape[0]
        if len(self.tokenizer_encoder) != len(self.tokenizer_decoder) or \
                base.get_input_embeddings().weight.shape[0] != rows:
            # The encoder's vocabulary grew after saving: decode into the same, bigger vocabulary.
            self.tokenizer_decoder = self.tokenizer_encoder
            self.decoder.resize_token_embeddings(rows)
        output = self.decoder.get_output_embeddings()
        head_tied = output is not None and output.weight is base.get_input_embeddings().weight
        if share_parameters(transformer, base) == 0:
            raise LossInputError(f"{type(self).__name__}: no encoder weight matches a decoder "
                                 "weight; tying needs the same architecture")
        if head_tied:  # the LM head reads the (now shared) input embeddings, as before tying
            output.weight = base.get_input_embeddings().weight

    @property
    def model(self) -> nn.Module | None:
        """The trained model (``encoder``)."""
        return self.encoder

    def retokenize(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        """Encoder token ids -> text -> the decoder tokenizer's features (on the same device)."""
        texts = self.tokenizer_encoder.batch_decode(
            features["input_ids"], skip_special_tokens=True, clean_up_tokenization_spaces=True)
        return self.tokenizer_decoder(texts, padding=True, truncation="longest_first",
                                      return_tensors="pt").to(features["input_ids"].device)

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> Tensor:
        """Embed the damaged sentences, then score the decoder on writing the originals."""
        features = list(sentence_features)
        if len(features) != 2:
            check_embeddings(type(self).__name__, self.expected_inputs, features, 2, 2)
        damaged, original = features
        if self.need_retokenization:
            original = self.retokenize(original)
        embeddings = self.encoder(damaged)["sentence_embedding"]  # (B, dim)
        mask = damaged.get("attention_mask")
        memory_mask = None if mask is None else mask[:, :1]  # (B, 1): the embedding is visible
        return self._reconstruction_loss(embeddings, original["input_ids"], memory_mask)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """Loss from the damaged sentences' (batch, dim) embeddings, ``[e]``, and the original
        sentences' token ids (batch, length) as ``labels`` (the decoder tokenizer's ids)."""
        batch_size, _ = check_embeddings(type(self).__name__, "the damaged sentences' "
                                         "embeddings: one (batch, dim) tensor", embeddings, 1, 1)
        if not isinstance(labels, Tensor) or labels.dim() != 2 or labels.shape[0] != batch_size \
                or labels.is_floating_point():
            raise LossInputError(
                f"{type(self).__name__} expects the original sentences' token ids as labels, an "
                f"integer tensor of shape ({batch_size}, length); got {describe(labels)}")
        return self._reconstruction_loss(embeddings[0], labels, None)

    def _reconstruction_loss(self, embeddings: Tensor, token_ids: Tensor,
                             memory_mask: Tensor | None) -> Tensor:
        name = type(self).__name__
        hidden = self.decoder.config.hidden_size
        if embeddings.shape[-1] != hidden:
            raise LossInputError(f"{name}: sentence embeddings of size {embeddings.shape[-1]} "
                                 f"cannot feed a decoder of hidden size {hidden}")
        inputs = token_ids[:, :-1]  # (B, T-1): y_0 .. y_{T-1}, what the decoder reads
        targets = token_ids[:, 1:]  # (B, T-1): y_1 .. y_T, what it must predict
        pad = self.tokenizer_decoder.pad_token_id
        if not bool((targets != pad).any()):
            raise LossInputError(f"{name} expects {self.expected_inputs}: the original sentences "
                                 "have no token to predict (empty texts?)")
        if memory_mask is None:
            memory_mask = torch.ones(embeddings.shape[0], 1, dtype=torch.long,
                                     device=embeddings.device)
        logits = self.decoder(
            input_ids=inputs,
            encoder_hidden_states=embeddings[:, None],  # (B, 1, dim): a memory of one vector
            encoder_attention_mask=memory_mask,
            use_cache=False,
        ).logits  # (B, T-1, vocab)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=pad)

    def get_config_dict(self) -> dict[str, Any]:
        """Where the decoder came from and whether targets are re-tokenised (reference keys)."""
        return {
            "decoder_name_or_path": self.decoder.config._name_or_path,
            "need_retokenization": self.need_retokenization,
        }

    @property
    def citation(self) -> str:
        """BibTeX of the TSDAE paper."""
        return CITATION
