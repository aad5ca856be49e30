"""MultipleNegativesSymmetricRankingLoss: a deprecated alias, checked against the reference."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from sentence_transformers import util
from sentence_transformers.sentence_transformer import losses as reference

from losses import similarity
from losses.multiple_negatives_ranking import MultipleNegativesRankingLoss
from losses.multiple_negatives_symmetric_ranking import MultipleNegativesSymmetricRankingLoss
from losses.validation import LossInputError
from tests.losses.parity import (
    ANCHORS,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    random_embeddings,
    tiny_model,
)

OPTIONS = [  # (ours, reference)
    ({}, {}),
    ({"scale": 5.0}, {"scale": 5.0}),
    ({"similarity_fct": similarity.dot_score, "scale": 1.0},
     {"similarity_fct": util.dot_score, "scale": 1.0}),
    ({"gather_across_devices": True}, {"gather_across_devices": True}),
]
IDS = ["defaults", "scale", "dot_score", "gather_across_devices"]


def quietly(make):
    """Build a deprecated loss without the expected DeprecationWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return make()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("ours", "theirs"), OPTIONS[:3], ids=IDS[:3])
def test_model_parity_with_duplicates(ours, theirs, dtype):
    assert_model_parity(
        lambda model: quietly(lambda: MultipleNegativesSymmetricRankingLoss(model, **ours)),
        lambda model: quietly(lambda: reference.MultipleNegativesSymmetricRankingLoss(
            model, **theirs)),
        [ANCHORS, POSITIVES], dtype=dtype, check_gradients=dtype == torch.float64)


@pytest.mark.parametrize(("ours", "theirs"), OPTIONS, ids=IDS)
def test_embedding_parity_on_pairs_triplets_and_tiny_batches(ours, theirs):
    for columns, batch in [(2, 8), (3, 8), (2, 2), (2, 1)]:
        embeddings = random_embeddings(columns, batch=batch, seed=batch)
        embeddings[0][-1] = embeddings[0][0]  # a duplicate anchor (or, at batch 1, itself)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert_embedding_parity(MultipleNegativesSymmetricRankingLoss(None, **ours),
                                    reference.MultipleNegativesSymmetricRankingLoss(None,
                                                                                    **theirs),
                                    embeddings)


def test_is_the_symmetric_multiple_negatives_ranking_loss():
    embeddings = random_embeddings(2)
    symmetric = quietly(lambda: MultipleNegativesSymmetricRankingLoss(None, scale=7.0))
    plain = MultipleNegativesRankingLoss(None, scale=7.0, partition_mode="per_direction",
                                         directions=("query_to_doc", "doc_to_query"))
    assert isinstance(symmetric, MultipleNegativesRankingLoss)
    assert torch.equal(symmetric.compute_loss_from_embeddings(embeddings, None),
                       plain.compute_loss_from_embeddings(embeddings, None))


def test_construction_warns_with_the_reference_category():
    with pytest.warns(DeprecationWarning) as ours:
        MultipleNegativesSymmetricRankingLoss(None)
    with pytest.warns(DeprecationWarning) as theirs:
        reference.MultipleNegativesSymmetricRankingLoss(None)
    assert [w.category for w in ours] == [w.category for w in theirs]
    assert "directions=('query_to_doc', 'doc_to_query')" in str(ours[0].message)
    assert "partition_mode='per_direction'" in str(ours[0].message)
    assert MultipleNegativesSymmetricRankingLoss.__deprecated__  # visible to type checkers


def test_signature_matches_the_reference():
    ours = inspect.signature(MultipleNegativesSymmetricRankingLoss.__init__).parameters
    theirs = inspect.signature(reference.MultipleNegativesSymmetricRankingLoss.__init__).parameters
    assert list(ours) == list(theirs)
    assert [p.default for p in ours.values() if p.name != "similarity_fct"] == \
           [p.default for p in theirs.values() if p.name != "similarity_fct"]


@pytest.mark.parametrize(("ours", "theirs"), OPTIONS, ids=IDS)
def test_config_and_citation_match_the_reference(ours, theirs):
    model = tiny_model()
    mine = quietly(lambda: MultipleNegativesSymmetricRankingLoss(model, **ours))
    other = quietly(lambda: reference.MultipleNegativesSymmetricRankingLoss(model, **theirs))
    assert mine.get_config_dict() == other.get_config_dict()
    assert mine.citation == other.citation


def test_identical_embeddings_give_finite_gradients():
    embedding = torch.ones(4, 8, requires_grad=True)
    loss = quietly(lambda: MultipleNegativesSymmetricRankingLoss(None))
    loss.compute_loss_from_embeddings([embedding, embedding], None).backward()
    assert torch.isfinite(embedding.grad).all()


def test_bad_input_names_the_loss_and_the_format():
    loss = quietly(lambda: MultipleNegativesSymmetricRankingLoss(None))
    with pytest.raises(LossInputError, match=r"MultipleNegativesSymmetricRankingLoss expects "
                                             r"\(anchor, positive\) pairs.*got 1"):
        loss.compute_loss_from_embeddings(random_embeddings(1), None)
    with pytest.raises(ValueError, match="scale must be positive"):
        quietly(lambda: MultipleNegativesSymmetricRankingLoss(None, scale=-1.0))
