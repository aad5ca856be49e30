"""MatryoshkaLoss against the reference: values, gradients, random dims, cached losses, restoring.

Two kinds of model: the lab's tiny BERT (hidden size 128) for a few model-level checks, and a
"table model" (each row's embedding is a trainable row of a table) that makes every wrapped loss
cheap to compare, including the gradient-cached ones through their mini-batch slicing.
"""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference
from torch import nn

import losses as ours
from losses.matryoshka import MatryoshkaLoss
from losses.validation import LossInputError
from tests.losses.parity import (
    ANCHORS,
    NEGATIVES,
    POSITIVES,
    _assert_gradients_close,
    _assert_values_close,
    _total,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    seed_everything,
    tiny_model,
    tokenize,
)

DIMS = [128, 64, 32]


class TableModel(nn.Module):
    """A model whose embedding of input row i is row i of a trainable (rows, dim) table."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table.clone())

    def forward(self, features: dict) -> dict:
        return {"sentence_embedding": self.table[features["rows"]]}

    def get_embedding_dimension(self) -> int:
        return self.table.shape[1]

    def __getitem__(self, index: int) -> nn.Module:
        return self  # its only "module" (the cached losses look at model[0])


def table_features(columns: int, batch: int) -> list[dict]:
    return [{"rows": torch.arange(column * batch, (column + 1) * batch)}
            for column in range(columns)]


def assert_table_parity(make_ours, make_reference, columns: int, labels=None, batch: int = 8,
                        dim: int = 16, seed: int = 0, table: torch.Tensor | None = None) -> None:
    """Same value and table gradient (= embedding gradients) from both losses."""
    if table is None:
        generator = torch.Generator().manual_seed(seed)
        table = torch.randn(columns * batch, dim, generator=generator, dtype=torch.float64)
    results = []
    for make in (make_ours, make_reference):
        model = TableModel(table)
        seed_everything(seed)
        loss = make(model)
        seed_everything(seed)
        value = loss(table_features(columns, batch), None if labels is None else labels.clone())
        _total(value).backward()
        results.append((value, {"table": model.table.grad}))
    (value, gradients), (reference_value, reference_gradients) = results
    _assert_values_close(value, reference_value, "loss value")
    _assert_gradients_close(gradients, reference_gradients, "table", 1e-4)


SCORES = torch.tensor([1.0, 0.5, 0.25, 0.0, 1.0, 0.75, 0.5, 0.25], dtype=torch.float64)
PAIR_LABELS = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0])
CLASSES = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
TEACHER = torch.randn(8, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
MARGINS = torch.tensor([0.5, -0.25, 1.0, 0.0, 2.0, 0.25, -1.0, 0.75], dtype=torch.float64)
TEACHER_SCORES = torch.randn(8, 3, generator=torch.Generator().manual_seed(6),
                             dtype=torch.float64)

# (name, columns, labels): every part-1 loss that computes from embeddings.
INNER = [
    ("MultipleNegativesRankingLoss", 3, None),
    ("MultipleNegativesSymmetricRankingLoss", 2, None),
    ("CoSENTLoss", 2, SCORES),
    ("AnglELoss", 2, SCORES),
    ("CosineSimilarityLoss", 2, SCORES),
    ("ContrastiveLoss", 2, PAIR_LABELS),
    ("OnlineContrastiveLoss", 2, PAIR_LABELS),
    ("TripletLoss", 3, None),
    ("BatchHardTripletLoss", 1, CLASSES),
    ("BatchAllTripletLoss", 1, CLASSES),
    ("BatchSemiHardTripletLoss", 1, CLASSES),
    ("BatchHardSoftMarginTripletLoss", 1, CLASSES),
    ("MSELoss", 2, TEACHER),  # teacher embeddings as labels: truncated with the embeddings
    ("EmbedDistillLoss", 1, TEACHER),
    ("MarginMSELoss", 4, TEACHER_SCORES),
    ("DistillKLDivLoss", 4, TEACHER_SCORES),
]
TABLE_DIMS = [16, 8, 4, 2]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("n_dims_per_step", [-1, 2])
@pytest.mark.parametrize(("name", "columns", "labels"), INNER, ids=[case[0] for case in INNER])
def test_every_inner_loss_matches_the_reference(name, columns, labels, n_dims_per_step):
    options = {"matryoshka_weights": [1, 0.5, 2, 0.25], "n_dims_per_step": n_dims_per_step}
    assert_table_parity(
        lambda m: MatryoshkaLoss(m, getattr(ours, name)(m), TABLE_DIMS, **options),
        lambda m: reference.MatryoshkaLoss(m, getattr(reference, name)(m), TABLE_DIMS, **options),
        columns, labels)


@pytest.mark.parametrize("options", [
    {"use_mini_batched_version": False},
    {"mini_batch_size": 3},  # gradient-cached: the calculate_loss hook, uneven mini-batches
])
@pytest.mark.parametrize("n_dims_per_step", [-1, 1])
def test_mega_batch_margin_in_both_modes(options, n_dims_per_step):
    assert_table_parity(
        lambda m: MatryoshkaLoss(m, ours.MegaBatchMarginLoss(m, **options), TABLE_DIMS,
                                 [1, 2, 3, 4], n_dims_per_step),
        lambda m: reference.MatryoshkaLoss(m, reference.MegaBatchMarginLoss(m, **options),
                                           TABLE_DIMS, [1, 2, 3, 4], n_dims_per_step),
        2)


@pytest.mark.parametrize("n_dims_per_step", [-1, 2])
def test_wraps_a_cached_loss_through_its_calculate_loss(n_dims_per_step):
    # The reference's CachedMultipleNegativesRankingLoss follows the calculate_loss protocol, so
    # it stands in for any gradient-cached loss (ours are compared by their own tests).
    def make_cached(model):
        return reference.CachedMultipleNegativesRankingLoss(model, mini_batch_size=3)

    assert_table_parity(
        lambda m: MatryoshkaLoss(m, make_cached(m), TABLE_DIMS, [1, 0.5, 2, 0.25],
                                 n_dims_per_step),
        lambda m: reference.MatryoshkaLoss(m, make_cached(m), TABLE_DIMS, [1, 0.5, 2, 0.25],
                                           n_dims_per_step),
        3)


def test_cached_inner_loss_in_evaluation_matches_the_reference():
    table = random_embeddings(1, batch=16)[0]
    values = []
    for matryoshka, module in ((MatryoshkaLoss, ours), (reference.MatryoshkaLoss, reference)):
        model = TableModel(table)
        loss = matryoshka(model, module.MegaBatchMarginLoss(model, mini_batch_size=3), [16, 8],
                          [1, 0.5])
        with torch.no_grad():  # no gradient cache: calculate_loss without backward
            values.append(loss(table_features(2, 8), None))
    torch.testing.assert_close(values[0], values[1])


@pytest.mark.parametrize("seed", range(6))
def test_random_dims_are_drawn_like_the_reference(seed):
    assert_table_parity(
        lambda m: MatryoshkaLoss(m, ours.CoSENTLoss(m), TABLE_DIMS, n_dims_per_step=1),
        lambda m: reference.MatryoshkaLoss(m, reference.CoSENTLoss(m), TABLE_DIMS,
                                           n_dims_per_step=1),
        2, SCORES, seed=seed, table=random_embeddings(1, batch=16, dim=16)[0])


def test_random_dims_change_the_loss_from_seed_to_seed():
    table = random_embeddings(1, batch=16, dim=16)[0]
    values = set()
    for seed in range(8):
        model = TableModel(table)
        loss = MatryoshkaLoss(model, ours.CoSENTLoss(model), TABLE_DIMS, n_dims_per_step=1)
        seed_everything(seed)
        values.add(round(loss(table_features(2, 8), SCORES).item(), 10))
    assert len(values) > 1, "n_dims_per_step=1 always trained the same dim"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_model_parity_defaults(dtype):
    assert_model_parity(
        lambda m: MatryoshkaLoss(m, ours.MultipleNegativesRankingLoss(m), DIMS),
        lambda m: reference.MatryoshkaLoss(m, reference.MultipleNegativesRankingLoss(m), DIMS),
        [ANCHORS, POSITIVES, NEGATIVES], dtype=dtype,
        # float32 gradients differ by summation order alone (REFERENCE-NOTES): values only.
        check_gradients=dtype == torch.float64)


def test_model_parity_options():
    # Unsorted dims with weights, two of three dims drawn at random (seeded); the other options
    # are swept on the table model above.
    options = {"matryoshka_dims": [32, 128, 64], "matryoshka_weights": [0.25, 1, 0.5],
               "n_dims_per_step": 2}
    assert_model_parity(
        lambda m: MatryoshkaLoss(m, ours.CoSENTLoss(m), **options),
        lambda m: reference.MatryoshkaLoss(m, reference.CoSENTLoss(m), **options),
        [ANCHORS, POSITIVES], torch.tensor([1.0, 0.5, 0.25, 0.0, 1.0, 0.75]))


def test_runs_the_model_once_per_column_per_step():
    model = tiny_model()
    calls = []
    model[0].register_forward_hook(lambda *args: calls.append(1))
    loss = MatryoshkaLoss(model, ours.MultipleNegativesRankingLoss(model), DIMS)
    loss(tokenize(model, [ANCHORS, POSITIVES]), None)
    assert len(calls) == 2


def test_compute_loss_from_embeddings_without_a_model():
    embeddings = random_embeddings(2)
    loss = MatryoshkaLoss(None, ours.CoSENTLoss(None), TABLE_DIMS, [1, 0.5, 2, 0.25])
    value = loss.compute_loss_from_embeddings(embeddings, SCORES)
    expected = sum(weight * reference.CoSENTLoss(None).compute_loss_from_embeddings(
        [torch.nn.functional.normalize(e[:, :dim], dim=-1) for e in embeddings], SCORES)
        for dim, weight in zip(TABLE_DIMS, [1, 0.5, 2, 0.25], strict=True))
    torch.testing.assert_close(value, expected)
    model = TableModel(torch.cat(embeddings))
    via_model = MatryoshkaLoss(model, ours.CoSENTLoss(model), TABLE_DIMS, [1, 0.5, 2, 0.25])
    torch.testing.assert_close(via_model(table_features(2, 8), SCORES), value)


def test_loss_components_are_summed_per_name():
    model = TableModel(random_embeddings(1)[0])
    inner = ours.GlobalOrthogonalRegularizationLoss(model)
    value = MatryoshkaLoss(model, inner, [16, 8], [1, 0.5])(table_features(1, 8), None)
    table = model.table.detach()
    expected = {key: inner.compute_loss_from_embeddings(
        [torch.nn.functional.normalize(table, dim=-1)], None)[key] + 0.5 * part
        for key, part in inner.compute_loss_from_embeddings(
            [torch.nn.functional.normalize(table[:, :8], dim=-1)], None).items()}
    assert set(value) == set(expected)
    for key in expected:
        torch.testing.assert_close(value[key].detach(), expected[key])


def test_identical_embeddings_give_finite_gradients():
    embedding = torch.ones(4, 16, requires_grad=True)
    loss = MatryoshkaLoss(None, ours.CoSENTLoss(None), [16, 8])
    loss.compute_loss_from_embeddings([embedding, embedding],
                                      torch.tensor([1.0, 0.5, 0.0, 0.25])).backward()
    assert torch.isfinite(embedding.grad).all()


class Boom(RuntimeError):
    pass


class ExplodesOnSecondCall(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.calls = 0

    def forward(self, features, labels):
        self.calls += 1
        embeddings = [self.model(f)["sentence_embedding"] for f in features]
        if self.calls == 2:
            raise Boom("inner loss failed")
        return sum(e.sum() for e in embeddings)


def test_model_is_restored_when_the_inner_loss_raises():
    model = tiny_model()
    features = tokenize(model, [ANCHORS])
    before = model(tokenize(model, [ANCHORS])[0])["sentence_embedding"].detach()
    loss = MatryoshkaLoss(model, ExplodesOnSecondCall(model), DIMS)
    with pytest.raises(Boom):
        loss(features, None)
    assert "forward" not in model.__dict__ and "forward" not in model[0].__dict__
    after = model(tokenize(model, [ANCHORS])[0])["sentence_embedding"]
    assert after.shape == before.shape  # full size again, not truncated
    torch.testing.assert_close(after.detach(), before)


def test_cached_inner_loss_is_restored_and_unchanged_outside_the_step():
    model = TableModel(random_embeddings(1, batch=16)[0])
    inner = ours.MegaBatchMarginLoss(model, mini_batch_size=3)
    loss = MatryoshkaLoss(model, inner, [16, 8])
    loss(table_features(2, 8), None)
    assert "calculate_loss" not in inner.__dict__

    def explode(*args, **kwargs):
        raise Boom("inner calculate_loss failed")

    inner_class_method = type(inner).calculate_loss
    type(inner).calculate_loss = explode
    try:
        with pytest.raises(Boom):
            loss(table_features(2, 8), None)
    finally:
        type(inner).calculate_loss = inner_class_method
    assert "calculate_loss" not in inner.__dict__ and "forward" not in model.__dict__


def test_config_and_citation_match_the_reference():
    model = tiny_model()
    for options in ({}, {"matryoshka_weights": [3, 1, 2]}, {"n_dims_per_step": 2}):
        dims = [64, 128, 32]
        ours_loss = MatryoshkaLoss(model, ours.CoSENTLoss(model), dims, **options)
        theirs = reference.MatryoshkaLoss(model, reference.CoSENTLoss(model), dims, **options)
        assert ours_loss.get_config_dict() == theirs.get_config_dict()
        assert ours_loss.citation == theirs.citation


@pytest.mark.parametrize(("arguments", "message"), [
    ({"matryoshka_dims": []}, "at least one dimension"),
    ({"matryoshka_dims": [128, 0]}, "must be > 0"),
    ({"matryoshka_dims": [128, -4]}, "must be > 0"),
    ({"matryoshka_dims": [256, 128]}, r"\[256\] exceed the model's embedding dimension 128"),
    ({"matryoshka_dims": [128, 64.5]}, "must be integers"),
    ({"matryoshka_dims": [128, 64, 64]}, "repeats a dimension"),
    ({"matryoshka_dims": [128, 64], "matryoshka_weights": [1]}, "one weight per dim"),
    ({"matryoshka_dims": [128], "n_dims_per_step": 0}, "n_dims_per_step must be -1"),
    ({"matryoshka_dims": [128], "n_dims_per_step": -2}, "n_dims_per_step must be -1"),
])
def test_bad_settings_are_refused(arguments, message):
    model = tiny_model()
    with pytest.raises(ValueError, match=f"MatryoshkaLoss: .*{message}"):
        MatryoshkaLoss(model, ours.CoSENTLoss(model), **arguments)


def test_dims_larger_than_the_embeddings_are_refused_at_compute_time():
    loss = MatryoshkaLoss(None, ours.CoSENTLoss(None), [32, 8])
    with pytest.raises(LossInputError, match="MatryoshkaLoss: matryoshka dim 32 is larger than "
                                             "the embeddings it got, of size 16"):
        loss.compute_loss_from_embeddings(random_embeddings(2), SCORES)


def test_cached_loss_without_calculate_loss_is_refused():
    class Opaque(nn.Module):
        uses_gradient_cache = True

    with pytest.raises(TypeError, match="Opaque uses gradient caching but has no calculate_loss"):
        MatryoshkaLoss(None, Opaque(), [8])


def test_inner_errors_still_name_the_inner_loss():
    loss = MatryoshkaLoss(None, ours.CoSENTLoss(None), [16, 8])
    with pytest.raises(LossInputError, match="CoSENTLoss expects"):
        loss.compute_loss_from_embeddings(random_embeddings(3), SCORES)


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("pair")["train"].select(range(160))
    dims = [384, 256, 128, 64]
    assert_trainer_equivalence(
        lambda m: MatryoshkaLoss(m, ours.MultipleNegativesRankingLoss(m), dims),
        lambda m: reference.MatryoshkaLoss(m, reference.MultipleNegativesRankingLoss(m), dims),
        data, tmp_path)
