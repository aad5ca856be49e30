"""lab.models: every built-in model builds offline and behaves as documented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import StaticEmbedding
from tokenizers import Tokenizer

from lab.models import (
    BUILTIN_MODELS,
    TEACHING_CORPUS,
    TINY_BERT_CONFIG,
    TINY_CORE_VOCABULARY,
    corpus_texts,
    full_vocabulary_static_model,
    load_model,
    minilm_path,
    tiny_vocabulary,
    trim_vocabulary,
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test builds into its own cache, so the build path itself is exercised."""
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))


def cosine(model, first: str, second: str) -> float:
    embeddings = model.encode([first, second], convert_to_tensor=True)
    return torch.nn.functional.cosine_similarity(embeddings[0], embeddings[1], dim=0).item()


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def full():
    return full_vocabulary_static_model(device="cpu")


def test_tiny_is_static_embedding_over_a_trimmed_minilm_vocabulary(tiny, full):
    static = tiny[0]
    assert isinstance(static, StaticEmbedding)
    assert len(tiny) == 1
    assert tiny.get_embedding_dimension() == 384
    assert tiny.encode(["hello world"]).shape == (1, 384)
    # Far fewer rows than MiniLM's 30,522, but at least the corpus's tokens and the core.
    assert TINY_CORE_VOCABULARY < static.num_embeddings < 12_000
    assert full[0].num_embeddings == 30522


def test_kept_tokens_keep_minilm_vectors_exactly(tiny):
    with safe_open(str(minilm_path() / "model.safetensors"), framework="pt") as weights:
        minilm_tokens = weights.get_tensor("embeddings.word_embeddings.weight").float()
    minilm_ids = Tokenizer.from_file(str(minilm_path() / "tokenizer.json")).get_vocab()
    trimmed = tiny[0].tokenizer.get_vocab()  # token -> new id
    new_ids = torch.tensor(list(trimmed.values()))
    old_ids = torch.tensor([minilm_ids[token] for token in trimmed])
    assert torch.equal(tiny[0].embedding.weight.detach()[new_ids], minilm_tokens[old_ids])


def test_every_corpus_text_embeds_exactly_as_with_the_full_vocabulary(tiny, full):
    texts = corpus_texts()
    assert len(texts) > 1000
    trimmed = [encoding.tokens for encoding in
               tiny[0].tokenizer.encode_batch(texts, add_special_tokens=False)]
    whole = [encoding.tokens for encoding in
             full[0].tokenizer.encode_batch(texts, add_special_tokens=False)]
    assert trimmed == whole
    sample = texts[::50]
    assert torch.allclose(torch.tensor(tiny.encode(sample)), torch.tensor(full.encode(sample)),
                          atol=1e-6)


def test_unknown_words_still_embed(tiny):
    tokenizer = tiny[0].tokenizer
    pieces = tokenizer.encode("zyxwquibblefrotz", add_special_tokens=False).tokens
    assert len(pieces) > 1 and "[UNK]" not in pieces  # split into kept word pieces
    assert tokenizer.encode("☃", add_special_tokens=False).tokens == ["[UNK]"]
    embeddings = tiny.encode(["zyxwquibblefrotz", "☃", "", "A perfectly ordinary sentence."])
    assert embeddings.shape == (4, 384)
    assert np.isfinite(embeddings).all()
    assert np.abs(embeddings[:2]).sum(axis=1).min() > 0


def test_a_saved_tiny_model_reloads_and_encodes_anything(tiny, tmp_path):
    tiny.save(str(tmp_path / "tiny"))
    loaded = SentenceTransformer(str(tmp_path / "tiny"), device="cpu")
    texts = ["The rocket left the launch pad.", "zyxwquibblefrotz ☃ naïve café"]
    assert torch.allclose(torch.tensor(loaded.encode(texts)), torch.tensor(tiny.encode(texts)),
                          atol=1e-6)
    assert loaded[0].num_embeddings == tiny[0].num_embeddings


def test_trim_vocabulary_renumbers_the_special_tokens():
    source = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    vectors = torch.arange(30522, dtype=torch.float32).unsqueeze(1)  # row i holds i
    keep = tiny_vocabulary(source, core_size=0, texts=["cat"])
    trimmed, rows = trim_vocabulary(source, vectors, keep)
    assert rows.squeeze(1).tolist() == [float(index) for index in keep]
    vocabulary = trimmed.get_vocab()
    for token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cat", "a", "##a"):
        assert vocabulary[token] == keep.index(source.token_to_id(token)), token
    assert "paris" not in vocabulary  # neither in the texts nor in a core of size 0
    encoded = trimmed.encode("cat")  # the template's [CLS]/[SEP] and the padding: new ids
    assert encoded.ids[:3] == [vocabulary["[CLS]"], vocabulary["cat"], vocabulary["[SEP]"]]
    assert set(encoded.ids[3:]) == {vocabulary["[PAD]"]}


def test_the_corpus_file_is_the_one_lab_data_reads():
    from lab.data.corpus import CORPUS_PATH

    assert TEACHING_CORPUS.resolve() == Path(CORPUS_PATH).resolve()


def test_tiny_trains_a_gradient_step_moves_paraphrases_together():
    model = load_model("tiny", device="cpu")
    first, second = "The cat sleeps on the warm sofa.", "A kitten naps on the heated couch."
    before = cosine(model, first, second)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        features = [model.preprocess([text]) for text in (first, second)]
        a, b = (model(feature)["sentence_embedding"] for feature in features)
        loss = 1 - torch.nn.functional.cosine_similarity(a, b).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert cosine(model, first, second) > before + 0.01


def test_minilm_is_the_packaged_sentence_model():
    model = load_model("minilm", device="cpu")
    embeddings = model.encode(["A man is playing a guitar.", "Someone strums a guitar."])
    assert embeddings.shape == (2, 384)
    assert torch.allclose(torch.linalg.norm(torch.tensor(embeddings), dim=1), torch.ones(2),
                          atol=1e-4)  # the model ends with Normalize
    related = cosine(model, "A man is playing a guitar.", "Someone strums a guitar.")
    unrelated = cosine(model, "A man is playing a guitar.", "The stock market fell today.")
    assert related > unrelated + 0.3


def test_tiny_bert_has_layers_is_seeded_and_lives_on_disk(tmp_path):
    model = load_model("tiny-bert", device="cpu")
    bert = model[0].auto_model
    assert bert.config.num_hidden_layers == TINY_BERT_CONFIG["num_hidden_layers"] == 2
    assert model.get_embedding_dimension() == TINY_BERT_CONFIG["hidden_size"]
    # A real folder on disk, as the DenoisingAutoEncoderLoss needs to reload its config.
    assert (tmp_path / "cache").resolve() in Path(bert.config._name_or_path).resolve().parents

    same = load_model("tiny-bert", device="cpu")
    other = load_model("tiny-bert", device="cpu", seed=1)
    weights = dict(model.named_parameters())
    for name, parameter in same.named_parameters():
        assert torch.equal(parameter, weights[name]), name
    assert not torch.equal(other[0].auto_model.embeddings.word_embeddings.weight,
                           bert.embeddings.word_embeddings.weight)


def test_tiny_bert_dropout_option_is_applied():
    assert load_model("tiny-bert", dropout=0.0)[0].auto_model.config.hidden_dropout_prob == 0.0
    assert load_model("tiny-bert")[0].auto_model.config.hidden_dropout_prob == 0.1


def test_local_folder_loads_the_saved_model(tmp_path):
    model = load_model("tiny-bert", device="cpu", dropout=0.0)
    folder = tmp_path / "saved"
    model.save(str(folder))
    loaded = load_model(str(folder), device="cpu")
    texts = ["Water the tomatoes every evening.", "The rocket left the launch pad."]
    assert torch.allclose(torch.tensor(loaded.encode(texts)), torch.tensor(model.encode(texts)),
                          atol=1e-6)


def test_unknown_name_lists_builtins_and_suggests_the_closest():
    with pytest.raises(ValueError) as error:
        load_model("tiny-brt")
    message = str(error.value)
    assert all(name in message for name in BUILTIN_MODELS)
    assert "Did you mean 'tiny-bert'?" in message


@pytest.mark.parametrize("path", ["./no/such/model", "/no/such/model", "a/b/c"])
def test_missing_path_names_the_path_and_the_builtins(path):
    with pytest.raises(FileNotFoundError) as error:
        load_model(path)
    assert path in str(error.value)
    assert all(name in str(error.value) for name in BUILTIN_MODELS)


def test_a_file_instead_of_a_folder_is_refused(tmp_path):
    file = tmp_path / "model.bin"
    file.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="is a file"):
        load_model(str(file))


@pytest.mark.parametrize("bad", [None, "", 3])
def test_non_string_name_is_a_type_error(bad):
    with pytest.raises(TypeError, match="tiny"):
        load_model(bad)
