"""DenoisingAutoEncoderLoss against the reference: values, float64 gradients on encoder and
decoder, seeded decoder initialisation, tied weights sharing storage, config, bad input."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference
from transformers import logging as transformers_logging

from losses.denoising_auto_encoder import DenoisingAutoEncoderLoss
from losses.validation import LossInputError, LossInputWarning
from tests.losses.gist_cases import other_tokenizer_bert_path
from tests.losses.parity import (
    ANCHORS,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    seed_everything,
    tiny_model,
    tokenize,
)

transformers_logging.set_verbosity_error()  # the "newly initialised weights" report is expected

# Damaged versions of ANCHORS: about half the words deleted, like the lab's "denoising" data.
DAMAGED = ["Boil pasta sauce.", "concert cancelled rain.", "runs kilometres morning.",
           "Water tomatoes.", "pasta before the sauce.", "rocket orbit minutes."]


def model_path() -> str:
    return tiny_model().transformers_model.config._name_or_path


def in_float32_then(dtype, make):
    """Build the loss on the float32 model (the reference re-reads float32 weights from disk
    and ties them into the encoder), then convert the whole loss, decoder included."""
    return lambda model: make(model.float()).to(dtype)


OPTIONS = {
    "tied": lambda cls: (lambda model: cls(model)),
    "untied": lambda cls: (lambda model: cls(model, model_path(), tie_encoder_decoder=False)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_model_parity(option, dtype):
    assert_model_parity(in_float32_then(dtype, OPTIONS[option](DenoisingAutoEncoderLoss)),
                        in_float32_then(dtype, OPTIONS[option](reference.DenoisingAutoEncoderLoss)),
                        [DAMAGED, ANCHORS], dtype=dtype)


def test_model_parity_with_retokenization():
    def forced(cls):
        def make(model):
            loss = cls(model, model_path(), tie_encoder_decoder=False)
            loss.need_retokenization = True  # same tokenizer: re-tokenising must change nothing
            return loss
        return make

    assert_model_parity(forced(DenoisingAutoEncoderLoss),
                        forced(reference.DenoisingAutoEncoderLoss), [DAMAGED, ANCHORS],
                        dtype=torch.float32)


def test_seeded_construction_gives_the_reference_initial_decoder():
    states = []
    for cls in (DenoisingAutoEncoderLoss, reference.DenoisingAutoEncoderLoss):
        model = tiny_model(torch.float32)
        seed_everything(5)
        states.append(cls(model).state_dict())
    ours, theirs = states
    assert list(ours) == list(theirs)
    for name in theirs:
        assert torch.equal(ours[name], theirs[name]), name


def test_tied_weights_share_storage_and_train_together():
    model = tiny_model(torch.float32)
    encoder = model.transformers_model
    loss = DenoisingAutoEncoderLoss(model)
    decoder_base = loss.decoder.bert
    shared = 0
    for name, parameter in decoder_base.named_parameters():
        if "crossattention" in name:
            continue
        counterpart = encoder.get_parameter(name)
        assert parameter is counterpart and parameter.data_ptr() == counterpart.data_ptr(), name
        shared += 1
    assert shared > 20
    head = loss.decoder.get_output_embeddings().weight
    assert head is encoder.embeddings.word_embeddings.weight  # LM head reads the shared table
    # Decoder-only weights are in the loss (so the optimizer sees them), not in the model.
    names = {name for name, _ in loss.named_parameters()}
    assert "decoder.bert.encoder.layer.0.crossattention.self.query.weight" in names
    assert "decoder.cls.predictions.transform.dense.weight" in names
    assert not any(name.startswith("decoder.bert.embeddings") for name in names)
    # One optimizer step moves the shared weight seen from both sides.
    before = encoder.encoder.layer[1].output.dense.weight.detach().clone()
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.5)
    loss(tokenize(model, [DAMAGED, ANCHORS]), None).backward()
    optimizer.step()
    after = decoder_base.encoder.layer[1].output.dense.weight
    assert not torch.equal(before, after)
    assert torch.equal(after, encoder.encoder.layer[1].output.dense.weight)


def test_state_dict_round_trip(tmp_path):
    model = tiny_model(torch.float32)
    loss = DenoisingAutoEncoderLoss(model, model_path(), tie_encoder_decoder=False)
    with torch.no_grad():
        loss.decoder.cls.predictions.transform.dense.weight.add_(1.0)
    torch.save(loss.state_dict(), tmp_path / "loss.pt")
    restored = DenoisingAutoEncoderLoss(tiny_model(torch.float32), model_path(),
                                        tie_encoder_decoder=False)
    restored.load_state_dict(torch.load(tmp_path / "loss.pt"))
    for (name, saved), (_, loaded) in zip(loss.state_dict().items(),
                                          restored.state_dict().items(), strict=True):
        assert torch.equal(saved, loaded), name
    assert set(loss.state_dict()) == set(reference.DenoisingAutoEncoderLoss(
        tiny_model(torch.float32), model_path(), tie_encoder_decoder=False).state_dict())


def test_tied_mode_ignores_the_decoder_path_with_a_warning():
    model = tiny_model(torch.float32)
    with pytest.warns(LossInputWarning, match="DenoisingAutoEncoderLoss: decoder_name_or_path="
                                              "'elsewhere' is ignored"):
        loss = DenoisingAutoEncoderLoss(model, decoder_name_or_path="elsewhere")
    assert loss.get_config_dict()["decoder_name_or_path"] == model_path()


def test_config_and_citation_match_the_reference():
    for make in OPTIONS.values():
        ours = make(DenoisingAutoEncoderLoss)(tiny_model(torch.float32))
        theirs = make(reference.DenoisingAutoEncoderLoss)(tiny_model(torch.float32))
        assert ours.get_config_dict() == theirs.get_config_dict()
        assert ours.citation == theirs.citation


def test_keeps_the_encoders_in_memory_weights_and_dtype():
    model = tiny_model(torch.float64)
    with torch.no_grad():
        model.transformers_model.encoder.layer[0].output.dense.bias.fill_(0.125)
    loss = DenoisingAutoEncoderLoss(model)  # the reference would reload float32 disk weights
    bias = model.transformers_model.encoder.layer[0].output.dense.bias
    assert bias.dtype == torch.float64 and bool((bias == 0.125).all())
    assert all(p.dtype == torch.float64 for p in loss.parameters())
    assert torch.isfinite(loss(tokenize(model, [DAMAGED, ANCHORS]), None))


def test_embeddings_entry_point_matches_forward_and_works_without_a_model():
    model = tiny_model(torch.float32)
    loss = DenoisingAutoEncoderLoss(model)
    damaged, original = tokenize(model, [DAMAGED, ANCHORS])
    value = loss([dict(damaged), original], None)
    embeddings = model(damaged)["sentence_embedding"]
    same = loss.compute_loss_from_embeddings([embeddings], original["input_ids"])
    torch.testing.assert_close(same, value)
    decoder_only = DenoisingAutoEncoderLoss(None, model_path(), tie_encoder_decoder=False)
    assert decoder_only.model is None
    leaf = random_embeddings(1, batch=6, dim=128, dtype=torch.float32)[0].requires_grad_()
    decoder_only.compute_loss_from_embeddings([leaf], original["input_ids"]).backward()
    assert torch.isfinite(leaf.grad).all()


def test_identical_embeddings_give_finite_gradients():
    loss = DenoisingAutoEncoderLoss(None, model_path(), tie_encoder_decoder=False)
    ids = tokenize(tiny_model(), [ANCHORS])[0]["input_ids"]
    for fill in (0.0, 1.0):
        leaf = torch.full((6, 128), fill, requires_grad=True)
        loss.compute_loss_from_embeddings([leaf], ids).backward()
        assert torch.isfinite(leaf.grad).all()


def test_bad_input_names_the_loss_and_the_format():
    from lab.models import load_model

    with pytest.raises(LossInputError, match=r"DenoisingAutoEncoderLoss needs a transformer "
                                             r"encoder.*StaticEmbedding"):
        DenoisingAutoEncoderLoss(load_model("tiny", device="cpu"))
    for path in ("", "/no/such/folder/model"):
        model = tiny_model(torch.float32)
        model.transformers_model.config._name_or_path = path
        with pytest.raises(LossInputError, match=r"DenoisingAutoEncoderLoss loads the decoder "
                                                 r"from the encoder's saved files.*_name_or_path"):
            DenoisingAutoEncoderLoss(model)
    with pytest.raises(LossInputError, match="needs decoder_name_or_path when "
                                             "tie_encoder_decoder=False"):
        DenoisingAutoEncoderLoss(tiny_model(torch.float32), tie_encoder_decoder=False)
    with pytest.raises(LossInputError, match="without a model builds only a decoder"):
        DenoisingAutoEncoderLoss(None)
    model = tiny_model(torch.float32)
    loss = DenoisingAutoEncoderLoss(model)
    with pytest.raises(LossInputError, match=r"expects \(damaged sentence, original sentence\) "
                                             r"pairs.*exactly 2.*got 3"):
        loss([{}, {}, {}], None)  # before running the model
    leaf = random_embeddings(1, batch=6, dim=128, dtype=torch.float32)
    with pytest.raises(LossInputError, match=r"token ids as labels.*\(6, length\); got a "
                                             r"torch.float32"):
        loss.compute_loss_from_embeddings(leaf, torch.zeros(6, 4))
    with pytest.raises(LossInputError, match="embeddings of size 16 cannot feed a decoder of "
                                             "hidden size 128"):
        loss.compute_loss_from_embeddings(random_embeddings(1, batch=6), torch.ones(6, 4).long())
    with pytest.raises(LossInputError, match="no token to predict"):
        loss.compute_loss_from_embeddings(leaf, torch.zeros(6, 4, dtype=torch.long))


def test_decoder_of_another_hidden_size_is_refused():
    # An untied decoder from a BERT of hidden size 32; the encoder's is 128. The decoder
    # cross-attends to the sentence embedding, so the sizes must match.
    decoder_path = other_tokenizer_bert_path()
    with pytest.raises(LossInputError, match=r"DenoisingAutoEncoderLoss: the encoder's hidden "
                                             r"size \(128\) differs from the decoder's \(32\)"):
        DenoisingAutoEncoderLoss(tiny_model(torch.float32), decoder_path,
                                 tie_encoder_decoder=False)


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("denoising")["train"].select(range(160))
    assert_trainer_equivalence(DenoisingAutoEncoderLoss, reference.DenoisingAutoEncoderLoss,
                               data, tmp_path, steps=5, model_name="tiny-bert")
