"""CachedMultipleNegativesRankingLoss: the reference's cached loss, and our own uncached twin.

Two kinds of checks:
- parity with the reference cached loss (values, float64 model gradients) for every option,
  with dropout on too (the same seeds give the same dropout masks on both sides);
- equality with our MultipleNegativesRankingLoss for every mini-batch split: the cached loss is
  the uncached loss computed on cached embeddings. The uncached forward sees one set of dropout
  masks per column, so with dropout the comparison is made where the masks can agree (one
  mini-batch per column); other splits are compared without dropout, and a separate test shows
  that the replayed second forward reproduces the first forward's embeddings exactly.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import warnings

import pytest
import torch
from sentence_transformers import util
from sentence_transformers.sentence_transformer import losses as reference
from torch import nn

from losses import similarity
from losses.cached_multiple_negatives_ranking import CachedMultipleNegativesRankingLoss
from losses.multiple_negatives_ranking import MultipleNegativesRankingLoss
from losses.validation import LossInputError, LossInputWarning
from tests.losses.parity import (
    ANCHORS,
    MORE_NEGATIVES,
    NEGATIVES,
    POSITIVES,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    seed_everything,
    tiny_model,
    tokenize,
)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these tensors are tiny, and on a shared 2-core machine extra threads
    only spin against other processes (8x slower here). Restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ALL_DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
COLUMNS = [ANCHORS, POSITIVES, NEGATIVES, MORE_NEGATIVES]  # rows 0 and 4 duplicated
OPTIONS = [  # each single option away from the defaults (model level)
    {},
    {"scale": 5.0},
    {"similarity": "dot_score"},
    {"mini_batch_size": 1},
    {"mini_batch_size": 2},  # three mini-batches per column, three loss chunks
    {"mini_batch_num_tokens": 40},
    {"gather_across_devices": True},  # one process: the local batch (see the gather test file)
    {"directions": ("query_to_doc", "query_to_query")},
    {"directions": ("query_to_doc", "doc_to_query")},
    {"directions": ("query_to_doc", "doc_to_doc")},
    {"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"},
    {"hardness_mode": "in_batch_negatives", "hardness_strength": 9.0},
    {"hardness_mode": "hard_negatives", "hardness_strength": 5.0},
    {"hardness_mode": "all_negatives", "hardness_strength": 3.0},
    {"show_progress_bar": True},
]


def split(options: dict) -> tuple[dict, dict]:
    """(our options, reference options): a named similarity becomes each side's function."""
    ours, theirs = dict(options), dict(options)
    name = ours.pop("similarity", None)
    theirs.pop("similarity", None)
    if name == "dot_score":
        ours.update(similarity_fct=similarity.dot_score, scale=1.0)
        theirs.update(similarity_fct=util.dot_score, scale=1.0)
    return ours, theirs


def option_id(options: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in options.items()) or "defaults"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_model_parity_with_the_reference_cached_loss(options, dtype):
    ours, theirs = split({"mini_batch_size": 4, **options})  # 2 mini-batches per column
    # Gradients in float64 only (REFERENCE-NOTES: float32 reordering noise).
    assert_model_parity(lambda model: CachedMultipleNegativesRankingLoss(model, **ours),
                        lambda model: reference.CachedMultipleNegativesRankingLoss(model,
                                                                                   **theirs),
                        # Two hard-negative columns for the defaults, one elsewhere (time).
                        COLUMNS if not options else COLUMNS[:3], dtype=dtype,
                        check_gradients=dtype == torch.float64)


def test_model_parity_on_pairs_with_every_direction():
    assert_model_parity(
        lambda model: CachedMultipleNegativesRankingLoss(model, mini_batch_size=4,
                                                         directions=ALL_DIRECTIONS),
        lambda model: reference.CachedMultipleNegativesRankingLoss(model, mini_batch_size=4,
                                                                   directions=ALL_DIRECTIONS),
        [ANCHORS, POSITIVES])


# ------------------------------------------------------------- the cached loss = the uncached one
def gradients_of(make_loss, model: nn.Module, columns, factor: float = 1.0, seed: int = 12):
    """(loss value, {parameter: gradient}) of one call, seeded right before the forward."""
    loss = make_loss(model)
    seed_everything(seed)
    value = loss(tokenize(model, columns), None)
    (factor * value).backward()
    return value.detach(), {name: parameter.grad.clone()
                            for name, parameter in model.named_parameters()
                            if parameter.grad is not None}


def assert_same(first, second, rtol: float = 1e-7) -> None:
    (value, gradients), (other_value, other_gradients) = first, second
    torch.testing.assert_close(value, other_value, rtol=rtol, atol=0)
    assert set(gradients) == set(other_gradients)
    for name, gradient in other_gradients.items():
        torch.testing.assert_close(gradients[name], gradient, rtol=rtol,
                                   atol=rtol * gradient.abs().max().item() + 1e-15,
                                   msg=lambda m, name=name: f"gradient of {name}: {m}")


def dropout_model() -> nn.Module:
    from lab.models import load_model

    model = load_model("tiny-bert", device="cpu", dropout=0.1).double()
    model.train()
    return model


SPLITS = [{"mini_batch_size": size} for size in (1, 2, 3, 6, 100)] + [
    {"mini_batch_size": 2, "mini_batch_num_tokens": 12},  # a few rows per mini-batch
    {"mini_batch_num_tokens": 1},  # one row per mini-batch
]


EVERYTHING = {"directions": ALL_DIRECTIONS, "hardness_mode": "all_negatives",
              "hardness_strength": 3.0}


@pytest.mark.parametrize(("splitting", "options"),
                         [(splitting, {}) for splitting in SPLITS]
                         + [(splitting, EVERYTHING) for splitting in SPLITS[1:3]],
                         ids=lambda options: option_id(options) if options else "defaults")
def test_equals_the_uncached_loss_for_every_mini_batch_split(splitting, options):
    uncached = gradients_of(lambda m: MultipleNegativesRankingLoss(m, **options), tiny_model(),
                            COLUMNS)
    cached = gradients_of(lambda m: CachedMultipleNegativesRankingLoss(m, **splitting, **options),
                          tiny_model(), COLUMNS)
    assert_same(cached, uncached, rtol=1e-9)


@pytest.mark.parametrize("mini_batch_size", [6, 100])
def test_with_dropout_equals_the_uncached_loss_when_the_masks_agree(mini_batch_size):
    # One mini-batch per column: the first pass draws exactly the uncached forward's masks, and
    # the replay draws them again. Without the replay, the gradients would not match.
    uncached = gradients_of(MultipleNegativesRankingLoss, dropout_model(), COLUMNS[:3])
    cached = gradients_of(
        lambda m: CachedMultipleNegativesRankingLoss(m, mini_batch_size=mini_batch_size),
        dropout_model(), COLUMNS[:3])
    assert_same(cached, uncached, rtol=1e-9)
    undropped = gradients_of(MultipleNegativesRankingLoss, tiny_model(), COLUMNS[:3])
    assert not torch.allclose(uncached[0], undropped[0]), "dropout was not active"


@pytest.mark.parametrize("splitting", [{"mini_batch_size": 2}, {"mini_batch_num_tokens": 30}],
                         ids=option_id)
def test_with_dropout_matches_the_reference_and_scales_with_the_incoming_gradient(splitting):
    # Same seeds, same mini-batches: both draw the same masks in the same order. The factor 3
    # stands for gradient accumulation or fp16 loss scaling: every mini-batch gets it.
    ours = gradients_of(lambda m: CachedMultipleNegativesRankingLoss(m, **splitting),
                        dropout_model(), COLUMNS, factor=3.0)
    theirs = gradients_of(lambda m: reference.CachedMultipleNegativesRankingLoss(m, **splitting),
                          dropout_model(), COLUMNS, factor=3.0)
    assert_same(ours, theirs, rtol=1e-6)
    once = gradients_of(lambda m: CachedMultipleNegativesRankingLoss(m, **splitting),
                        dropout_model(), COLUMNS)
    torch.testing.assert_close(ours[0], once[0], rtol=0, atol=0)
    for name, gradient in once[1].items():
        torch.testing.assert_close(ours[1][name], 3.0 * gradient, rtol=1e-9,
                                   atol=1e-9 * gradient.abs().max().item() + 1e-15)


def test_the_replayed_forward_reproduces_the_first_forward_exactly():
    model = dropout_model()
    embedded = []  # every mini-batch embedding, in call order: first pass, then replay
    hook = model.register_forward_hook(
        lambda module, inputs, output: embedded.append(output["sentence_embedding"].detach()))
    loss = CachedMultipleNegativesRankingLoss(model, mini_batch_size=2)
    torch.manual_seed(0)
    value = loss(tokenize(model, COLUMNS[:2]), None)
    first_pass = list(embedded)
    assert len(first_pass) == 6  # 2 columns x 3 mini-batches
    value.backward()
    hook.remove()
    replayed = embedded[len(first_pass):]
    assert len(replayed) == len(first_pass)
    for before, after in zip(first_pass, replayed, strict=True):
        assert torch.equal(before, after)
    # Dropout is really on: the same mini-batch embedded again, without replay, differs.
    again = model(tokenize(model, [ANCHORS[:2]])[0])["sentence_embedding"].detach()
    assert not torch.allclose(again, first_pass[0])


def test_without_gradients_only_the_value_is_computed():
    model = tiny_model()
    with torch.no_grad():
        value = CachedMultipleNegativesRankingLoss(model, mini_batch_size=4)(
            tokenize(model, COLUMNS), None)
        expected = MultipleNegativesRankingLoss(model)(tokenize(model, COLUMNS), None)
        theirs = reference.CachedMultipleNegativesRankingLoss(model, mini_batch_size=4)(
            tokenize(model, COLUMNS), None)
    assert not value.requires_grad
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(value, theirs)


# ------------------------------------------------------------------------- on embeddings
@functools.cache
def shared_model() -> nn.Module:
    """One model for the reference losses built only for their loss stage (it needs one)."""
    return tiny_model()


def reference_chunked(embeddings, **options):
    """The reference's chunked loss stage on mini-batch pieces: (value, gradient per column)."""
    loss = reference.CachedMultipleNegativesRankingLoss(shared_model(), **options)
    return run_chunked(loss, embeddings, options.get("mini_batch_size", 32))


def run_chunked(loss, embeddings, pieces: int):
    reps = [[piece.detach().clone().requires_grad_() for piece in column.split(pieces)]
            for column in embeddings]
    value = loss.calculate_loss(reps, None, with_backward=True)
    assert not value.requires_grad
    return value, [torch.cat([piece.grad for piece in column]) for column in reps]


HARDNESS = [(None, 0.0), ("in_batch_negatives", 9.0), ("hard_negatives", 5.0),
            ("all_negatives", 3.0)]
DIRECTION_SETTINGS = [(("query_to_doc",), "joint"), (ALL_DIRECTIONS, "joint"),
                      (("query_to_doc", "doc_to_query"), "per_direction"),
                      (("query_to_doc", "query_to_query", "doc_to_doc"), "joint")]


@pytest.mark.parametrize(("directions", "partition_mode"), DIRECTION_SETTINGS,
                         ids=lambda value: "+".join(value) if isinstance(value, tuple) else value)
def test_chunked_loss_stage_equals_uncached_loss_and_reference(directions, partition_mode):
    for (mode, strength), columns, batch, size in itertools.product(
            HARDNESS, [2, 4], [7, 2, 1], [1, 3]):
        embeddings = random_embeddings(columns, batch=batch, seed=batch + columns)
        if batch > 4:
            for column in embeddings:
                column[4] = column[0]  # a duplicated row
        options = {"directions": directions, "partition_mode": partition_mode,
                   "hardness_mode": mode, "hardness_strength": strength, "mini_batch_size": size}
        leaves = [column.clone().requires_grad_() for column in embeddings]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LossInputWarning)  # the batch of one
            ours = run_chunked(CachedMultipleNegativesRankingLoss(None, **options), embeddings,
                               size)
            theirs = reference_chunked(embeddings, **options)
            options.pop("mini_batch_size")
            plain = MultipleNegativesRankingLoss(None, **options).compute_loss_from_embeddings(
                leaves, None)
        plain.backward()
        for value, gradients in (theirs, (plain.detach(), [leaf.grad for leaf in leaves])):
            torch.testing.assert_close(ours[0], value, rtol=1e-10, atol=1e-12)
            for mine, other in zip(ours[1], gradients, strict=True):
                torch.testing.assert_close(mine, other, rtol=1e-9, atol=1e-12)


def test_compute_loss_from_embeddings_is_the_uncached_loss_and_needs_no_model():
    embeddings = random_embeddings(3)
    cached = CachedMultipleNegativesRankingLoss(None, scale=7.0, mini_batch_size=2)
    plain = MultipleNegativesRankingLoss(None, scale=7.0)
    assert torch.equal(cached.compute_loss_from_embeddings(embeddings, None),
                       plain.compute_loss_from_embeddings(embeddings, None))


def test_identical_embeddings_give_finite_gradients():
    for options in [{}, {"directions": ALL_DIRECTIONS, "hardness_mode": "all_negatives",
                         "hardness_strength": 5.0}]:
        loss = CachedMultipleNegativesRankingLoss(None, mini_batch_size=3, **options)
        value, gradients = run_chunked(loss, [torch.ones(4, 8, dtype=torch.float64)] * 3, 3)
        assert torch.isfinite(value) and all(torch.isfinite(g).all() for g in gradients)
        embedding = torch.ones(4, 8, requires_grad=True)
        loss.compute_loss_from_embeddings([embedding, embedding], None).backward()
        assert torch.isfinite(embedding.grad).all()


# ------------------------------------------------------------------ settings, config, errors
def test_signature_matches_the_reference():
    ours = inspect.signature(CachedMultipleNegativesRankingLoss.__init__).parameters
    theirs = inspect.signature(reference.CachedMultipleNegativesRankingLoss.__init__).parameters
    assert list(ours) == list(theirs)
    assert [p.default for p in ours.values() if p.name != "similarity_fct"] == \
           [p.default for p in theirs.values() if p.name != "similarity_fct"]


CONFIG_OPTIONS = [
    {},
    {"scale": 7.5, "mini_batch_size": 8, "mini_batch_num_tokens": 100,
     "gather_across_devices": True},
    {"similarity": "dot_score", "directions": ("query_to_doc", "doc_to_query"),
     "partition_mode": "per_direction", "show_progress_bar": True},
    {"directions": ALL_DIRECTIONS, "hardness_mode": "hard_negatives", "hardness_strength": 5.0},
]


@pytest.mark.parametrize("options", CONFIG_OPTIONS, ids=option_id)
def test_config_citation_and_temperature_match_the_reference(options):
    model = tiny_model()
    ours, theirs = split(options)
    mine = CachedMultipleNegativesRankingLoss(model, **ours)
    other = reference.CachedMultipleNegativesRankingLoss(model, **theirs)
    assert mine.get_config_dict() == other.get_config_dict()
    assert list(mine.get_config_dict()) == list(other.get_config_dict())
    assert mine.citation == other.citation
    assert mine.temperature == other.temperature
    assert mine.uses_gradient_cache and other.uses_gradient_cache


def test_static_embedding_models_are_refused_with_the_alternatives():
    from lab.models import load_model

    static = load_model("tiny", device="cpu")
    with pytest.raises(ValueError):
        reference.CachedMultipleNegativesRankingLoss(static)
    with pytest.raises(ValueError, match=r"CachedMultipleNegativesRankingLoss: .*StaticEmbedding"
                                         r".*'tiny-bert'.*uncached MultipleNegativesRankingLoss"):
        CachedMultipleNegativesRankingLoss(static)


BAD_SETTINGS = [
    ({"mini_batch_size": 0}, "mini_batch_size must be a positive integer"),
    ({"mini_batch_num_tokens": 0}, "mini_batch_num_tokens must be a positive"),
    ({"scale": 0.0}, "scale must be positive"),
    ({"directions": ("doc_to_query",)}, "must include 'query_to_doc'"),
    ({"directions": ("query_to_doc", "doc_to_doc"), "partition_mode": "per_direction"},
     "per_direction"),
    ({"hardness_mode": "hardest"}, "hardness_mode must be"),
    ({"hardness_strength": -1.0}, "non-negative"),
]


@pytest.mark.parametrize(("options", "message"), BAD_SETTINGS, ids=[m for _, m in BAD_SETTINGS])
def test_bad_settings_name_the_loss(options, message):
    with pytest.raises(ValueError, match=f"CachedMultipleNegativesRankingLoss: .*{message}"):
        CachedMultipleNegativesRankingLoss(None, **options)
    if "mini_batch_size" not in options:  # the reference accepts 0 and fails inside range()
        with pytest.raises(ValueError):
            reference.CachedMultipleNegativesRankingLoss(tiny_model(), **options)


def test_bad_input_names_the_loss_and_the_format():
    model = tiny_model()
    loss = CachedMultipleNegativesRankingLoss(model, mini_batch_size=2)
    with pytest.raises(LossInputError, match=r"CachedMultipleNegativesRankingLoss expects "
                                             r"\(anchor, positive\) pairs.*2 or more.*got 1"):
        loss(tokenize(model, [ANCHORS]), None)  # refused before running the model
    with pytest.raises(LossInputError, match="one shape; got shapes"):
        loss.calculate_loss([[torch.zeros(4, 8)], [torch.zeros(3, 8)]])
    with pytest.warns(LossInputWarning, match="ignores labels"):
        loss(tokenize(model, [ANCHORS, POSITIVES]), torch.ones(6))
    with pytest.warns(LossInputWarning, match="batch of one pair has no negatives"):
        loss(tokenize(model, [ANCHORS[:1], POSITIVES[:1]]), None)


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("pair")["train"].select(range(160))
    assert_trainer_equivalence(
        lambda model: CachedMultipleNegativesRankingLoss(model, mini_batch_size=3),
        lambda model: reference.CachedMultipleNegativesRankingLoss(model, mini_batch_size=3),
        data, tmp_path, model_name="tiny-bert")
