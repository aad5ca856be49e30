"""MSELoss against the reference: values, gradients, projection, config, bad input."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

from losses.embed_distill import EmbedDistillLoss
from losses.mse import MSELoss
from losses.validation import LossInputError
from tests.losses.parity import (
    ANCHORS,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    seed_everything,
    tiny_model,
)
from tests.losses.test_embed_distill import MODEL_DIM, ReferenceOnEmbeddings, dyadic, with_dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("projection_dim", [None, 16])
def test_model_parity(projection_dim, dtype):
    assert_model_parity(
        lambda model: MSELoss(model, projection_dim=projection_dim),
        lambda model: with_dtype(reference.MSELoss(model, projection_dim=projection_dim), model),
        [ANCHORS], dyadic(6, projection_dim or MODEL_DIM), dtype=dtype,
        check_gradients=dtype == torch.float64,  # float32: values only (REFERENCE-NOTES)
    )


@pytest.mark.parametrize("per_column", [False, True], ids=["shared-target", "per-column"])
@pytest.mark.parametrize("projection_dim", [None, 16])
def test_model_parity_with_two_columns(per_column, projection_dim):
    """Two columns (e.g. a sentence and its translation): each is compared with the same
    teacher embedding (2-D labels) or with its own (3-D labels), and the losses averaged."""
    width = projection_dim or MODEL_DIM
    labels = dyadic(6, 2, width) if per_column else dyadic(6, width)
    assert_model_parity(
        lambda model: MSELoss(model, projection_dim),
        lambda model: with_dtype(reference.MSELoss(model, projection_dim), model),
        [ANCHORS, POSITIVES], labels)


@pytest.mark.parametrize("batch", [1, 2, 8])
@pytest.mark.parametrize("columns", [1, 2, 3])
def test_embedding_parity(columns, batch):
    embeddings = random_embeddings(columns, batch=batch)
    labels = torch.randn(batch, 16, dtype=torch.float64)
    embeddings[0][0] = labels[0]  # one row already on target
    assert_embedding_parity(MSELoss(None), ReferenceOnEmbeddings(reference.MSELoss(None)),
                            embeddings, labels)


def test_is_embed_distill_with_the_squared_error():
    loss = MSELoss(None)
    assert isinstance(loss, EmbedDistillLoss) and loss.distance_metric == "mse"
    student, teacher = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    assert loss.compute_loss_from_embeddings([student], teacher).item() == pytest.approx(2.5)


def test_identical_embeddings_give_finite_gradients():
    embedding = torch.ones(4, 8, requires_grad=True)
    loss = MSELoss(None).compute_loss_from_embeddings([embedding], embedding.detach())
    loss.backward()
    assert torch.isfinite(embedding.grad).all() and loss.item() == 0.0


def test_seeded_projection_has_the_reference_initial_weights():
    model = tiny_model(torch.float32)
    seed_everything(5)
    ours = MSELoss(model, projection_dim=24)
    seed_everything(5)
    theirs = reference.MSELoss(model, projection_dim=24)
    assert torch.equal(ours.projection.weight, theirs.projection.weight)
    assert torch.equal(ours.projection.bias, theirs.projection.bias)


def test_save_and_load_projection(tmp_path):
    model = tiny_model(torch.float32)
    ours = MSELoss(model, projection_dim=8)
    ours.save_projection(tmp_path / "projection.safetensors")
    theirs = reference.MSELoss(model)
    theirs.load_projection(tmp_path / "projection.safetensors")
    assert torch.equal(theirs.projection.weight, ours.projection.weight)
    assert theirs.get_config_dict() == {"projection_dim": 8}
    again = MSELoss(model)
    again.load_projection(tmp_path / "projection.safetensors")
    assert again.get_config_dict() == {"projection_dim": 8}


def test_config_and_citation_match_the_reference():
    model = tiny_model(torch.float32)
    for projection_dim in (None, 8, 384):
        ours = MSELoss(model, projection_dim=projection_dim)
        theirs = reference.MSELoss(model, projection_dim=projection_dim)
        assert ours.get_config_dict() == theirs.get_config_dict()
    assert ours.citation == theirs.citation


def test_bad_input_names_the_loss_and_the_format():
    loss = MSELoss(None)
    one = random_embeddings(1, batch=4)
    with pytest.raises(LossInputError, match=r"MSELoss expects one or more text columns with "
                                             r"the teacher's embeddings.*got no labels"):
        loss.compute_loss_from_embeddings(one, None)
    with pytest.raises(LossInputError, match=r"shape \(4, teacher_dim\); got .*\(5, 16\)"):
        loss.compute_loss_from_embeddings(one, torch.zeros(5, 16))
    with pytest.raises(LossInputError, match="MSELoss got non-finite teacher embeddings"):
        loss.compute_loss_from_embeddings(one, torch.tensor([[float("nan")] * 16] * 4))
    with pytest.raises(LossInputError, match=r"\(4, 1, teacher_dim\)"):
        loss.compute_loss_from_embeddings(one, torch.zeros(4, 2, 16))
    with pytest.raises(LossInputError, match=r"MSELoss: student embeddings have 16 dimensions "
                                             r"but the teacher's have 384; set "
                                             r"projection_dim=384"):
        loss.compute_loss_from_embeddings(one, torch.zeros(4, 384))


def test_forward_refuses_missing_labels_before_running_the_model():
    with pytest.raises(LossInputError, match=r"MSELoss expects.*got no labels"):
        MSELoss(tiny_model())([{}], None)


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("teacher-embedding")["train"].select(range(160))
    assert_trainer_equivalence(MSELoss, reference.MSELoss, data, tmp_path)
