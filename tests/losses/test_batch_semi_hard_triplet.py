"""BatchSemiHardTripletLoss against the reference: values, gradients, config, bad input, mining."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

from losses.batch_semi_hard_triplet import BatchSemiHardTripletLoss
from losses.mining import anchor_positive_mask
from tests.losses.batch_triplet_cases import (
    DISTANCES,
    LABEL_SETS,
    MARGINS,
    assert_bad_input_is_explained,
    assert_config_and_citation_match,
    assert_finite_gradients_for_identical_embeddings,
    assert_forward_refuses_wrong_column_count,
    assert_records_its_triplets,
    embedding_cases,
    embedding_parity,
    largest_intermediate,
    model_parity,
)
from tests.losses.parity import assert_trainer_equivalence

DTYPES = [torch.float32, torch.float64]
CASES = embedding_cases()
SINGLE_OPTIONS = [("cosine", None), ("eucledian-alias", None), ("squared-partial", None),
                  (None, 0), (None, 1)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("labels", list(LABEL_SETS))
def test_model_parity_defaults(labels, dtype):
    model_parity(BatchSemiHardTripletLoss, labels, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("distance", "margin"), SINGLE_OPTIONS, ids=str)
def test_model_parity_each_option(distance, margin, dtype):
    model_parity(BatchSemiHardTripletLoss, "duplicates-across-labels", dtype, distance, margin)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("margin", MARGINS)
@pytest.mark.parametrize("distance", list(DISTANCES))
def test_embedding_parity_every_combination(distance, margin, case):
    embeddings, labels = CASES[case]
    embedding_parity(BatchSemiHardTripletLoss, embeddings, labels, distance, margin)


def test_one_class_batch_returns_the_reference_value_and_warns():
    embeddings, _ = CASES["random"]
    labels = torch.zeros(12, dtype=torch.long)
    with pytest.warns(UserWarning, match="same label"):
        ours = BatchSemiHardTripletLoss(None, margin=0.5).compute_loss_from_embeddings(
            [embeddings], labels)
    theirs = reference.BatchSemiHardTripletLoss(None, margin=0.5).compute_loss_from_embeddings(
        [embeddings], labels)
    # No negatives: the reference puts the row's smallest distance (0, itself) in their place.
    distances = torch.cdist(embeddings, embeddings)[anchor_positive_mask(labels)]
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours, (distances + 0.5).mean())


def test_identical_embeddings_give_finite_gradients():
    assert_finite_gradients_for_identical_embeddings(BatchSemiHardTripletLoss)


def test_config_and_citation_match_the_reference():
    assert_config_and_citation_match(BatchSemiHardTripletLoss)


def test_bad_input_names_the_loss_and_the_format():
    assert_bad_input_is_explained(BatchSemiHardTripletLoss)


def test_forward_refuses_wrong_column_count_before_running_the_model():
    assert_forward_refuses_wrong_column_count(BatchSemiHardTripletLoss)


def test_records_one_triplet_per_positive_pair():
    record = assert_records_its_triplets(BatchSemiHardTripletLoss)
    _, labels = CASES["random"]
    assert record.num_valid == int(anchor_positive_mask(labels).sum())
    assert bool((record.active == (record.losses > 0)).all())


def test_memory_stays_quadratic_in_the_batch():
    assert largest_intermediate(BatchSemiHardTripletLoss(None), 64) <= 2 * 64 * 64


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("sentence-label")["train"].select(range(160))
    assert_trainer_equivalence(BatchSemiHardTripletLoss, reference.BatchSemiHardTripletLoss,
                               data, tmp_path, batch_size=16)
