"""BatchHardTripletLoss against the reference: values, gradients, config, bad input, mining."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

from losses.batch_hard_triplet import BatchHardTripletLoss
from losses.mining import anchor_negative_mask, anchor_positive_mask, valid_triplet_mask
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
# Each option on its own at the model level (the combinations run at the embedding level).
SINGLE_OPTIONS = [("cosine", None), ("eucledian-alias", None), ("squared-partial", None),
                  (None, 0), (None, 1)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("labels", list(LABEL_SETS))
def test_model_parity_defaults(labels, dtype):
    model_parity(BatchHardTripletLoss, labels, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("distance", "margin"), SINGLE_OPTIONS, ids=str)
def test_model_parity_each_option(distance, margin, dtype):
    model_parity(BatchHardTripletLoss, "duplicates-across-labels", dtype, distance, margin)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("margin", MARGINS)
@pytest.mark.parametrize("distance", list(DISTANCES))
def test_embedding_parity_every_combination(distance, margin, case):
    embeddings, labels = CASES[case]
    embedding_parity(BatchHardTripletLoss, embeddings, labels, distance, margin)


def test_one_class_batch_returns_the_reference_value_and_warns():
    embeddings, _ = CASES["random"]
    labels = torch.zeros(12, dtype=torch.long)
    with pytest.warns(UserWarning, match="same label"):
        ours = BatchHardTripletLoss(None, margin=2.5).compute_loss_from_embeddings(
            [embeddings], labels)
    theirs = reference.BatchHardTripletLoss(None, margin=2.5).compute_loss_from_embeddings(
        [embeddings], labels)
    assert ours.item() == pytest.approx(theirs.item()) == pytest.approx(2.5)  # the margin


def test_static_masks_match_the_reference():
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    theirs = reference.BatchHardTripletLoss
    assert torch.equal(BatchHardTripletLoss.get_anchor_positive_triplet_mask(labels),
                       theirs.get_anchor_positive_triplet_mask(labels))
    assert torch.equal(BatchHardTripletLoss.get_anchor_negative_triplet_mask(labels),
                       theirs.get_anchor_negative_triplet_mask(labels))
    assert torch.equal(BatchHardTripletLoss.get_triplet_mask(labels),
                       theirs.get_triplet_mask(labels))
    assert BatchHardTripletLoss.get_anchor_positive_triplet_mask is anchor_positive_mask
    assert BatchHardTripletLoss.get_anchor_negative_triplet_mask is anchor_negative_mask
    assert BatchHardTripletLoss.get_triplet_mask is valid_triplet_mask


def test_identical_embeddings_give_finite_gradients():
    assert_finite_gradients_for_identical_embeddings(BatchHardTripletLoss)


def test_config_and_citation_match_the_reference():
    assert_config_and_citation_match(BatchHardTripletLoss)


def test_bad_input_names_the_loss_and_the_format():
    assert_bad_input_is_explained(BatchHardTripletLoss)


def test_forward_refuses_wrong_column_count_before_running_the_model():
    assert_forward_refuses_wrong_column_count(BatchHardTripletLoss)


def test_parameters_are_named_like_the_reference():
    ours = BatchHardTripletLoss(None)
    assert ours.model is None and ours.sentence_embedder is None
    model = torch.nn.Linear(2, 2)
    ours = BatchHardTripletLoss(model)
    assert ours.model is model and ours.sentence_embedder is model
    assert [name for name, _ in ours.named_parameters()] == [
        name for name, _ in reference.BatchHardTripletLoss(model).named_parameters()]


def test_records_one_triplet_per_anchor_with_positive_and_negative():
    record = assert_records_its_triplets(BatchHardTripletLoss)
    assert record.anchor.tolist() == sorted(set(record.anchor.tolist()))
    assert bool((record.active == (record.losses > 0)).all())


def test_memory_stays_quadratic_in_the_batch():
    assert largest_intermediate(BatchHardTripletLoss(None), 64) <= 2 * 64 * 64


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    # The trainer's default random batch sampler, the same for both runs; with 12 topics,
    # batches of 16 repeat several labels.
    data = load_dataset("sentence-label")["train"].select(range(160))
    assert_trainer_equivalence(BatchHardTripletLoss, reference.BatchHardTripletLoss, data,
                               tmp_path, batch_size=16)
