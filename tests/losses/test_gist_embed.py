"""GISTEmbedLoss against the reference: values, gradients, guides, config, memory, bad input."""

from __future__ import annotations

import itertools

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

from losses.gist_embed import GISTEmbedLoss, decoded_texts
from losses.validation import LossInputError, LossInputWarning
from tests.losses.batch_triplet_cases import LargestTensor
from tests.losses.gist_cases import (
    OursWithGuide,
    ReferenceOnEmbeddings,
    StandIn,
    other_tokenizer_guide,
    reference_on_embeddings,
    same_tokenizer_guide,
    short_guide,
)
from tests.losses.parity import (
    ANCHORS,
    NEGATIVES,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    random_embeddings,
    tiny_model,
    tokenize,
    train_weights,
)

OPTIONS = [  # the defaults and each single option away from them
    {},
    {"margin": 0.05},
    {"margin_strategy": "relative", "margin": 0.1},
    {"contrast_anchors": False},
    {"contrast_positives": False},
    {"temperature": 0.05},
]
PAIRS = [ANCHORS, POSITIVES]  # rows 0 and 4 are the same pair: a tie for the guide
TRIPLETS = [ANCHORS, POSITIVES, NEGATIVES]


def option_id(options: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in options.items()) or "defaults"


def model_parity(options: dict, columns, dtype=torch.float64, guide=None) -> None:
    """Values in both dtypes; gradients in float64 only (REFERENCE-NOTES: in float32 the key
    biases' mathematically zero gradients are rounding noise, compared relatively)."""
    guide = same_tokenizer_guide(dtype) if guide is None else guide
    assert_model_parity(lambda model: GISTEmbedLoss(model, guide, **options),
                        lambda model: reference.GISTEmbedLoss(model, guide, **options),
                        columns, dtype=dtype, check_gradients=dtype == torch.float64)


@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_model_parity_float64_triplets(options):
    model_parity(options, TRIPLETS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [{}, {"margin": 0.05}], ids=option_id)
def test_model_parity_pairs(options, dtype):
    model_parity(options, PAIRS, dtype)


def test_model_parity_float32_triplets():
    model_parity({}, TRIPLETS, torch.float32)


@pytest.mark.parametrize(("make_guide", "options", "columns"), [
    (other_tokenizer_guide, {}, TRIPLETS),
    (other_tokenizer_guide, {"margin": 0.05}, PAIRS),
    (short_guide, {}, TRIPLETS),
], ids=["other_tokenizer", "other_tokenizer_margin_pairs", "shorter_max_seq_length"])
def test_model_parity_with_a_guide_that_retokenizes(make_guide, options, columns):
    guide = make_guide()
    model = tiny_model()
    assert GISTEmbedLoss(model, guide).must_retokenize
    assert reference.GISTEmbedLoss(model, guide).must_retokenize
    model_parity(options, columns, guide=guide)


def test_guide_with_the_models_tokenizer_reads_the_models_features():
    assert not GISTEmbedLoss(tiny_model(), same_tokenizer_guide()).must_retokenize


def test_decoded_texts_of_padded_and_flattened_features_agree():
    model = tiny_model()
    padded = model.preprocess(ANCHORS[:3])
    mask = padded["attention_mask"].bool()
    lengths = mask.sum(dim=1)
    flattened = {"input_ids": padded["input_ids"][mask].unsqueeze(0),
                 "cu_seq_lens_q": torch.cat([torch.zeros(1, dtype=torch.long),
                                             lengths.cumsum(0)])}
    texts = decoded_texts(model.tokenizer, padded)
    assert texts == decoded_texts(model.tokenizer, flattened)
    assert texts[0] == ANCHORS[0].lower()


# ------------------------------------------------------------------------- embedding level
def embedding_cases() -> dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """name -> (three columns of embeddings, the guide's three columns of another dim)."""
    model = random_embeddings(3, batch=8, dim=16, seed=1)
    guide = random_embeddings(3, batch=8, dim=12, seed=2)
    for columns in (model, guide):  # row 5 duplicates row 2: a tie for the guide at margin 0
        for column in columns:
            column[5] = column[2]
    identical = [torch.ones(4, 16, dtype=torch.float64) for _ in range(3)]
    return {"random_with_duplicates": (model, guide),
            "identical": (identical, [column[:, :12] for column in identical]),
            "batch_of_1": ([c[:1] for c in model], [c[:1] for c in guide]),
            "batch_of_2": ([c[:2] for c in model], [c[:2] for c in guide])}


SWEEP = [dict(margin_strategy=strategy, margin=margin, contrast_anchors=anchors,
              contrast_positives=positives, temperature=temperature)
         for strategy, margin, anchors, positives, temperature in itertools.product(
             ["absolute", "relative"], [0.0, 0.05, 0.1], [True, False], [True, False],
             [0.01, 0.05])]


def assert_parity_on(embeddings, guide, options) -> None:
    assert_embedding_parity(
        OursWithGuide(GISTEmbedLoss(None, None, **options), guide),
        ReferenceOnEmbeddings(lambda m, g: reference.GISTEmbedLoss(m, g, **options), guide),
        embeddings)


@pytest.mark.parametrize("width", [2, 3], ids=["pairs", "triplets"])
def test_embedding_parity_for_every_option_combination(width):
    embeddings, guide = (columns[:width] for columns in embedding_cases()["random_with_duplicates"])
    for options in SWEEP:
        assert_parity_on(embeddings, guide, options)


@pytest.mark.filterwarnings("ignore::losses.validation.LossInputWarning")
@pytest.mark.parametrize("case", ["identical", "batch_of_1", "batch_of_2"])
def test_embedding_parity_on_edge_cases(case):
    for width, options in itertools.product([2, 3], OPTIONS):
        embeddings, guide = (columns[:width] for columns in embedding_cases()[case])
        assert_parity_on(embeddings, guide, options)


def test_without_guide_embeddings_the_embeddings_guide_themselves():
    embeddings = random_embeddings(3)
    ours = GISTEmbedLoss(None, None, margin=0.05).compute_loss_from_embeddings(embeddings)
    theirs = reference_on_embeddings(
        lambda m, g: reference.GISTEmbedLoss(m, g, margin=0.05), embeddings, None)
    torch.testing.assert_close(ours, theirs)


def test_identical_embeddings_give_finite_gradients():
    embedding = torch.ones(4, 8, requires_grad=True)
    loss = GISTEmbedLoss(None, None).compute_loss_from_embeddings([embedding] * 3)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(embedding.grad).all()


def test_gather_across_devices_outside_a_distributed_run_is_the_local_loss():
    embeddings = random_embeddings(3)
    local = GISTEmbedLoss(None, None).compute_loss_from_embeddings(embeddings)
    gathered = GISTEmbedLoss(None, None, gather_across_devices=True)
    torch.testing.assert_close(gathered.compute_loss_from_embeddings(embeddings), local)


# ----------------------------------------------------------------------------------- memory
def largest_tensor(run) -> int:
    with LargestTensor() as monitor:
        run().backward()
    return monitor.largest


def test_memory_grows_as_batch_squared_not_batch_squared_times_dim():
    batch, dim = 64, 32
    embeddings = [e.requires_grad_() for e in random_embeddings(3, batch=batch, dim=dim)]
    ours = largest_tensor(lambda: GISTEmbedLoss(None, None).compute_loss_from_embeddings(
        embeddings))
    # Widest logits: positives, anchors, positives again, negatives: 4 x (batch x batch).
    assert ours <= 4 * batch * batch < batch * batch * dim
    theirs = largest_tensor(lambda: reference_on_embeddings(
        lambda m, g: reference.GISTEmbedLoss(m, g), embeddings, None))
    assert theirs >= batch * batch * dim  # the reference broadcasts: the test can fail


# ---------------------------------------------------------------------------- config, input
def test_config_and_citation_match_the_reference():
    model, guide = tiny_model(), same_tokenizer_guide()
    for options in [*OPTIONS, {"gather_across_devices": True}]:
        ours = GISTEmbedLoss(model, guide, **options)
        theirs = reference.GISTEmbedLoss(model, guide, **options)
        assert ours.get_config_dict() == theirs.get_config_dict()
        assert ours.get_config_dict()["guide"] is guide
    assert ours.citation == theirs.citation


def test_bad_input_names_the_loss_and_the_format():
    loss = GISTEmbedLoss(None, None)
    with pytest.raises(LossInputError, match=r"GISTEmbedLoss expects \(anchor, positive\) pairs "
                                             r"or .*triplets.*2 to 3 text column.*got 4"):
        loss.compute_loss_from_embeddings(random_embeddings(4))
    with pytest.raises(LossInputError, match=r"2 to 3 text column.*got 1"):
        loss.compute_loss_from_embeddings(random_embeddings(1))
    with pytest.raises(LossInputError, match="one guide embedding tensor per column"):
        loss.compute_loss_from_embeddings(random_embeddings(2), None, random_embeddings(3))
    with pytest.raises(LossInputError, match=r"guide's embeddings as \(batch=8, dim\)"):
        loss.compute_loss_from_embeddings(random_embeddings(2), None,
                                          random_embeddings(2, batch=4))
    with pytest.warns(LossInputWarning, match="ignores labels"):
        loss.compute_loss_from_embeddings(random_embeddings(2), torch.ones(8))


def test_forward_refuses_wrong_column_count_before_running_the_model():
    loss = GISTEmbedLoss(tiny_model(), same_tokenizer_guide())
    with pytest.raises(LossInputError, match=r"2 to 3 text column.*got 4"):
        loss([{}] * 4)
    model = tiny_model()
    with pytest.raises(ValueError, match="Expected 2 or 3"):  # the reference, after embedding
        reference.GISTEmbedLoss(model, same_tokenizer_guide())(
            tokenize(model, [ANCHORS] * 4), None)


@pytest.mark.parametrize("guide", [None, "minilm", torch.nn.Linear(2, 2)],
                         ids=["None", "a_name", "a_module_without_tokenizer"])
def test_guide_must_be_a_model_with_a_tokenizer(guide):
    model = tiny_model()
    with pytest.raises(ValueError, match="GISTEmbedLoss needs a guide: a SentenceTransformer"):
        GISTEmbedLoss(model, guide)
    with pytest.raises(ValueError):  # the reference refuses too
        reference.GISTEmbedLoss(model, guide)


def test_guide_without_a_transformers_tokenizer_is_refused():
    guide = StandIn("guide")
    guide.tokenizer = object()
    with pytest.raises(ValueError, match="the guide must use a Hugging Face transformers"):
        GISTEmbedLoss(tiny_model(), guide)
    with pytest.raises(ValueError):
        reference.GISTEmbedLoss(tiny_model(), guide)


def test_static_embedding_model_with_a_guide_that_needs_retokenizing_is_refused():
    from transformers import PreTrainedTokenizerFast

    from lab.models import load_model

    guide = other_tokenizer_guide()
    static = load_model("tiny", device="cpu")  # its tokenizer is a bare tokenizers.Tokenizer
    with pytest.raises(ValueError, match="GISTEmbedLoss: the trained model must use a Hugging "
                                         "Face transformers tokenizer"):
        GISTEmbedLoss(static, guide)
    with pytest.raises(ValueError):
        reference.GISTEmbedLoss(static, guide)
    # The same model with a transformers tokenizer (same vocabulary) gets to the vocabulary
    # check: the guide's differs, texts would have to be decoded from the flat StaticEmbedding
    # inputs, which is refused.
    static.tokenizer = PreTrainedTokenizerFast(tokenizer_object=static.tokenizer)
    with pytest.raises(ValueError, match=r"GISTEmbedLoss: the guide has a different tokenizer.*"
                                         r"StaticEmbedding model's flat inputs"):
        GISTEmbedLoss(static, guide)
    with pytest.raises(ValueError, match="must not be based on a StaticEmbedding"):
        reference.GISTEmbedLoss(static, guide)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="margin_strategy must be 'absolute' or 'relative'"):
        GISTEmbedLoss(None, None, margin_strategy="hard")
    with pytest.raises(ValueError, match="temperature must be positive"):
        GISTEmbedLoss(None, None, temperature=0.0)


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset
    from lab.models import load_model

    data = load_dataset("pair")["train"].select(range(160))
    guide = same_tokenizer_guide(torch.float32)
    # float32 training: Adam turns rounding-level gradient differences of the two
    # implementations (e.g. of weights whose gradient is nearly 0) into updates of up to ~5e-6,
    # and temperature 0.01 (scale 100) amplifies them further, so: temperature 0.05, 10 steps,
    # and an absolute tolerance of 1e-5 on weights of size ~1e-1.
    ours = train_weights(lambda model: GISTEmbedLoss(model, guide, temperature=0.05), data,
                         str(tmp_path / "ours"), steps=10, model_name="tiny-bert")
    theirs = train_weights(lambda model: reference.GISTEmbedLoss(model, guide, temperature=0.05),
                           data, str(tmp_path / "reference"), steps=10, model_name="tiny-bert")
    initial = dict(load_model("tiny-bert", device="cpu", dropout=0.0).named_parameters())
    assert max((theirs[name] - initial[name]).abs().max().item() for name in theirs) > 1e-4
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-5,
                                   msg=lambda m, name=name: f"weights of {name}: {m}")
