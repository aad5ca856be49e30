"""MultipleNegativesRankingLoss against the reference: every option, values, gradients, config."""

from __future__ import annotations

import functools
import itertools
import logging
import warnings

import pytest
import torch
from sentence_transformers import util
from sentence_transformers.sentence_transformer import losses as reference
from sentence_transformers.util.misc import similarity_fct_name as reference_similarity_fct_name

from losses import similarity
from losses.multiple_negatives_ranking import MultipleNegativesRankingLoss
from losses.similarity import similarity_fct_name
from losses.validation import LossInputError, LossInputWarning
from tests.losses.parity import (
    ANCHORS,
    MORE_NEGATIVES,
    NEGATIVES,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    tiny_model,
)

ALL_DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
# (ours, reference, a scale that keeps the logits moderate)
SIMILARITIES = {
    "cos_sim": (similarity.cos_sim, util.cos_sim, 20.0),
    "dot_score": (similarity.dot_score, util.dot_score, 1.0),
    "euclidean_sim": (similarity.euclidean_sim, util.euclidean_sim, 0.5),
    "manhattan_sim": (similarity.manhattan_sim, util.manhattan_sim, 0.1),
}
# Each single option away from the defaults (model level).
OPTIONS = [
    {},
    {"scale": 5.0},
    {"similarity": "dot_score"},
    {"directions": ("query_to_doc", "query_to_query")},
    {"directions": ("query_to_doc", "doc_to_query")},
    {"directions": ("query_to_doc", "doc_to_doc")},
    {"directions": ("query_to_doc", "doc_to_query"), "partition_mode": "per_direction"},
    {"hardness_mode": "in_batch_negatives", "hardness_strength": 9.0},
    {"hardness_mode": "hard_negatives", "hardness_strength": 5.0},
    {"hardness_mode": "all_negatives", "hardness_strength": 3.0},
]


def make_pair(options: dict):
    """(our loss factory, reference loss factory) for options with a named similarity."""
    options = dict(options)
    name = options.pop("similarity", None)
    ours_options, reference_options = dict(options), dict(options)
    if name is not None:
        ours_fn, reference_fn, scale = SIMILARITIES[name]
        ours_options.update(similarity_fct=ours_fn, scale=scale)
        reference_options.update(similarity_fct=reference_fn, scale=scale)
    return (lambda model: MultipleNegativesRankingLoss(model, **ours_options),
            lambda model: reference.MultipleNegativesRankingLoss(model, **reference_options))


def option_id(options: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in options.items()) or "defaults"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_model_parity_with_duplicates_and_two_hard_negative_columns(options, dtype):
    ours, theirs = make_pair(options)
    # Rows 0 and 4 of the anchors (and of the positives) are the same text.
    # Gradients in float64 only: in float32 the mathematically zero gradient of the attention
    # key biases is pure rounding noise (REFERENCE-NOTES), which no two implementations share.
    assert_model_parity(ours, theirs, [ANCHORS, POSITIVES, NEGATIVES, MORE_NEGATIVES],
                        dtype=dtype, check_gradients=dtype == torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_model_parity_on_pairs(dtype):
    ours, theirs = make_pair({"directions": ALL_DIRECTIONS})
    assert_model_parity(ours, theirs, [ANCHORS, POSITIVES], dtype=dtype,
                        check_gradients=dtype == torch.float64)


def direction_settings():
    """Every valid (directions, partition_mode)."""
    extras = ALL_DIRECTIONS[1:]
    for count in range(len(extras) + 1):
        for chosen in itertools.combinations(extras, count):
            directions = ("query_to_doc", *chosen)
            yield directions, "joint"
            if not set(chosen) & {"query_to_query", "doc_to_doc"}:
                yield directions, "per_direction"


HARDNESS = [(None, 0.0), ("in_batch_negatives", 9.0), ("hard_negatives", 5.0),
            ("all_negatives", 3.0)]


def edge_batches(columns: int):
    """A batch with duplicated rows (0 = 4), a batch of two and a batch of one."""
    duplicated = random_embeddings(columns, batch=6, seed=columns)
    for column in duplicated:
        column[4] = column[0]
    yield duplicated
    yield random_embeddings(columns, batch=2, seed=10 + columns)
    yield random_embeddings(columns, batch=1, seed=20 + columns)


@pytest.mark.parametrize(("directions", "partition_mode"), list(direction_settings()),
                         ids=lambda value: "+".join(value) if isinstance(value, tuple) else value)
def test_embedding_parity_for_every_combination(directions, partition_mode):
    for (mode, strength), name, columns in itertools.product(HARDNESS, ["cos_sim", "dot_score"],
                                                            [2, 4]):
        ours_fn, reference_fn, scale = SIMILARITIES[name]
        options = {"scale": scale, "directions": directions, "partition_mode": partition_mode,
                   "hardness_mode": mode, "hardness_strength": strength}
        for embeddings in edge_batches(columns):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LossInputWarning)  # the batch of one
                assert_embedding_parity(
                    MultipleNegativesRankingLoss(None, similarity_fct=ours_fn, **options),
                    reference.MultipleNegativesRankingLoss(None, similarity_fct=reference_fn,
                                                           **options),
                    embeddings)


@pytest.mark.parametrize("name", list(SIMILARITIES))
def test_embedding_parity_for_every_similarity_function(name):
    ours_fn, reference_fn, scale = SIMILARITIES[name]
    for columns in (2, 3):
        for embeddings in edge_batches(columns):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LossInputWarning)
                assert_embedding_parity(
                    MultipleNegativesRankingLoss(None, scale=scale, similarity_fct=ours_fn),
                    reference.MultipleNegativesRankingLoss(None, scale=scale,
                                                           similarity_fct=reference_fn),
                    embeddings)


def test_identical_embeddings_give_finite_gradients():
    for options in [{}, {"directions": ALL_DIRECTIONS, "hardness_mode": "all_negatives",
                         "hardness_strength": 5.0}]:
        embedding = torch.ones(4, 8, requires_grad=True)
        loss = MultipleNegativesRankingLoss(None, **options).compute_loss_from_embeddings(
            [embedding, embedding, embedding], None)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(embedding.grad).all()


def test_batch_of_one_pair_is_constant_and_warns():
    loss = MultipleNegativesRankingLoss(None)
    pair = [column.requires_grad_(True) for column in random_embeddings(2, batch=1)]
    with pytest.warns(LossInputWarning, match="batch of one pair has no negatives"):
        value = loss.compute_loss_from_embeddings(pair, None)
    value.backward()
    assert value.item() == 0.0 and not pair[0].grad.any()


def test_temperature_is_the_inverse_scale():
    assert MultipleNegativesRankingLoss(None, scale=20.0).temperature == pytest.approx(0.05)


CONFIG_OPTIONS = [
    {},
    {"scale": 7.5, "gather_across_devices": True},
    {"similarity": "dot_score", "directions": ("query_to_doc", "doc_to_query"),
     "partition_mode": "per_direction"},
    {"directions": ALL_DIRECTIONS},
    {"directions": ("doc_to_doc", "query_to_doc"), "hardness_mode": "hard_negatives",
     "hardness_strength": 5.0},
]


@pytest.mark.parametrize("options", CONFIG_OPTIONS, ids=option_id)
def test_config_and_citation_match_the_reference(options):
    model = tiny_model()
    make_ours, make_reference = make_pair(options)
    ours, theirs = make_ours(model), make_reference(model)
    assert ours.get_config_dict() == theirs.get_config_dict()
    assert ours.citation == theirs.citation
    assert ours.temperature == theirs.temperature


def test_similarity_function_names_match_the_reference():
    class Configured:
        def __call__(self, a, b):
            return a @ b.T

        def get_config_dict(self):
            return {"margin": 0.5, "kind": "dot"}

    model = tiny_model()
    candidates = [similarity.cos_sim, util.dot_score, functools.partial(util.cos_sim),
                  functools.partial(util.maxsim, chunk_size=4), lambda a, b: a @ b.T,
                  Configured(), torch.nn.CosineSimilarity(), model.similarity,
                  model.similarity_pairwise]
    for function in candidates:
        assert similarity_fct_name(function) == reference_similarity_fct_name(function)
    for kind in ("dot", "euclidean", "manhattan"):
        model.similarity_fn_name = kind
        for function in (model.similarity, model.similarity_pairwise):
            assert similarity_fct_name(function) == reference_similarity_fct_name(function)
    loss = MultipleNegativesRankingLoss(model, similarity_fct=model.similarity)
    assert loss.get_config_dict()["similarity_fct"] == "manhattan_sim"


BAD_SETTINGS = [
    ({"scale": 0.0}, "scale must be positive"),
    ({"directions": ()}, "at least one direction"),
    ({"directions": ("query_to_doc", "doc_to_everything")}, "unknown direction"),
    ({"directions": ("doc_to_query",)}, "must include 'query_to_doc'"),
    ({"partition_mode": "softmax"}, "partition_mode must be"),
    ({"directions": ("query_to_doc", "query_to_query"), "partition_mode": "per_direction"},
     "per_direction"),
    ({"hardness_mode": "hardest"}, "hardness_mode must be"),
    ({"hardness_strength": -1.0}, "non-negative"),
]


@pytest.mark.parametrize(("options", "message"), BAD_SETTINGS, ids=[m for _, m in BAD_SETTINGS])
def test_bad_settings_raise_like_the_reference(options, message):
    with pytest.raises(ValueError):
        reference.MultipleNegativesRankingLoss(None, **options)
    with pytest.raises(ValueError, match=f"MultipleNegativesRankingLoss: .*{message}"):
        MultipleNegativesRankingLoss(None, **options)


def test_hardness_mode_without_strength_logs_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        MultipleNegativesRankingLoss(None, hardness_mode="hard_negatives")
    assert "does nothing with hardness_strength=0.0" in caplog.text


def test_bad_input_names_the_loss_and_the_format():
    loss = MultipleNegativesRankingLoss(None)
    with pytest.raises(LossInputError, match=r"MultipleNegativesRankingLoss expects \(anchor, "
                                             r"positive\) pairs.*2 or more.*got 1"):
        loss.compute_loss_from_embeddings(random_embeddings(1), None)
    with pytest.raises(LossInputError, match="one shape; got shapes"):
        loss.compute_loss_from_embeddings([torch.zeros(4, 8), torch.zeros(3, 8)], None)
    with pytest.raises(LossInputError, match="single tensor"):
        loss.compute_loss_from_embeddings(torch.zeros(2, 4, 8), None)
    with pytest.warns(LossInputWarning, match="ignores labels"):
        loss.compute_loss_from_embeddings(random_embeddings(2), torch.ones(8))
    hard = MultipleNegativesRankingLoss(None, hardness_mode="hard_negatives",
                                        hardness_strength=5.0)
    with pytest.warns(LossInputWarning, match="has no effect"):
        hard.compute_loss_from_embeddings(random_embeddings(2), None)


def test_forward_refuses_wrong_column_count_before_running_the_model():
    loss = MultipleNegativesRankingLoss(tiny_model())
    with pytest.raises(LossInputError, match="2 or more text column"):
        loss([{}], None)


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("triplet")["train"].select(range(160))
    assert_trainer_equivalence(MultipleNegativesRankingLoss,
                               reference.MultipleNegativesRankingLoss, data, tmp_path)
