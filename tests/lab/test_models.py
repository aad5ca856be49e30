"""lab.models: every built-in model builds offline and behaves as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from sentence_transformers.sentence_transformer.modules import StaticEmbedding

from lab.models import BUILTIN_MODELS, TINY_BERT_CONFIG, load_model, minilm_path


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test builds into its own cache, so the build path itself is exercised."""
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))


def cosine(model, first: str, second: str) -> float:
    embeddings = model.encode([first, second], convert_to_tensor=True)
    return torch.nn.functional.cosine_similarity(embeddings[0], embeddings[1], dim=0).item()


def test_tiny_is_static_embedding_initialised_from_minilm_vocabulary():
    model = load_model("tiny", device="cpu")
    static = model[0]
    assert isinstance(static, StaticEmbedding)
    assert len(model) == 1
    with safe_open(str(minilm_path() / "model.safetensors"), framework="pt") as weights:
        minilm_tokens = weights.get_tensor("embeddings.word_embeddings.weight")
    assert torch.equal(static.embedding.weight.detach(), minilm_tokens.float())
    assert model.encode(["hello world"]).shape == (1, 384)


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
