"""BatchHardSoftMarginTripletLoss against the reference: values, gradients, config, bad input,
mining (with its own definition of an active triplet)."""

from __future__ import annotations

import math

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

from losses.batch_hard_soft_margin_triplet import BatchHardSoftMarginTripletLoss
from losses.batch_hard_triplet import BatchHardTripletLoss
from tests.losses.batch_triplet_cases import (
    DISTANCES,
    LABEL_SETS,
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


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("labels", list(LABEL_SETS))
def test_model_parity_defaults(labels, dtype):
    model_parity(BatchHardSoftMarginTripletLoss, labels, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("distance", ["cosine", "eucledian-alias", "squared-partial"])
def test_model_parity_each_distance(distance, dtype):
    model_parity(BatchHardSoftMarginTripletLoss, "duplicates-across-labels", dtype, distance)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("distance", list(DISTANCES))
def test_embedding_parity_every_combination(distance, case):
    embeddings, labels = CASES[case]
    embedding_parity(BatchHardSoftMarginTripletLoss, embeddings, labels, distance, None)


def test_is_a_batch_hard_triplet_loss_like_the_reference():
    assert isinstance(BatchHardSoftMarginTripletLoss(None), BatchHardTripletLoss)
    assert issubclass(reference.BatchHardSoftMarginTripletLoss, reference.BatchHardTripletLoss)


def test_active_means_the_hardest_negative_is_still_nearer_than_the_hardest_positive():
    assert_records_its_triplets(BatchHardSoftMarginTripletLoss)  # the common checks
    # Three loose clusters: some anchors are in order already, some are not.
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(12) % 3
    embeddings = 1.5 * torch.eye(8, dtype=torch.float64)[labels] + torch.randn(
        12, 8, generator=generator, dtype=torch.float64)
    record = BatchHardSoftMarginTripletLoss(None).mine(embeddings, labels)
    distances = torch.cdist(embeddings, embeddings)
    nearer = distances[record.anchor, record.positive] > distances[record.anchor, record.negative]
    assert torch.equal(record.active, nearer)
    assert torch.equal(record.active, record.losses > math.log(2))
    assert 0 < record.num_active < record.num_valid == 12


def test_identical_embeddings_give_finite_gradients():
    assert_finite_gradients_for_identical_embeddings(BatchHardSoftMarginTripletLoss)


def test_config_and_citation_match_the_reference():
    assert_config_and_citation_match(BatchHardSoftMarginTripletLoss)


def test_bad_input_names_the_loss_and_the_format():
    assert_bad_input_is_explained(BatchHardSoftMarginTripletLoss)


def test_forward_refuses_wrong_column_count_before_running_the_model():
    assert_forward_refuses_wrong_column_count(BatchHardSoftMarginTripletLoss)


def test_memory_stays_quadratic_in_the_batch():
    assert largest_intermediate(BatchHardSoftMarginTripletLoss(None), 64) <= 2 * 64 * 64


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("sentence-label")["train"].select(range(160))
    assert_trainer_equivalence(BatchHardSoftMarginTripletLoss,
                               reference.BatchHardSoftMarginTripletLoss, data, tmp_path,
                               batch_size=16)
