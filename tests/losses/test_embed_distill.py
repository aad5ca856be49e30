"""EmbedDistillLoss against the reference: values, gradients, projection, config, bad input."""

from __future__ import annotations

import itertools

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

from losses.embed_distill import EmbedDistillLoss
from losses.validation import LossInputError
from tests.losses.parity import (
    ANCHORS,
    NEGATIVES,
    POSITIVES,
    assert_embedding_parity,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    seed_everything,
    tiny_model,
)

METRICS = ["cosine", "l2", "mse"]
MODEL_DIM = 128  # the tiny BERT's embedding width


def dyadic(*shape: int, seed: int = 0) -> torch.Tensor:
    """Teacher values in steps of 1/8: exact in float32 and float64."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 9, shape, generator=generator).to(torch.float32) / 8


class ReferenceOnEmbeddings(torch.nn.Module):
    """The reference, with its label handling (done in its forward) in front of its
    ``compute_loss_from_embeddings``, which takes a list of per-column teacher tensors."""

    def __init__(self, loss: torch.nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def compute_loss_from_embeddings(self, embeddings, labels):
        targets = [labels] * len(embeddings) if labels.dim() == 2 else list(labels.unbind(1))
        return self.loss.compute_loss_from_embeddings(embeddings, targets)


def with_dtype(loss: torch.nn.Module, model) -> torch.nn.Module:
    """The reference keeps its projection in float32, which fails on a float64 model; cast it
    (values unchanged) so the float64 comparison can run at all."""
    if loss.projection is not None:
        loss.projection.to(next(model.parameters()).dtype)
    return loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("metric", "projection_dim"),
                         [("cosine", None), ("l2", None), ("mse", None), ("cosine", 16),
                          ("l2", 8), ("mse", 16)])
def test_model_parity(metric, projection_dim, dtype):
    width = projection_dim or MODEL_DIM
    options = {"distance_metric": metric, "projection_dim": projection_dim}
    assert_model_parity(
        lambda model: EmbedDistillLoss(model, **options),
        lambda model: with_dtype(reference.EmbedDistillLoss(model, **options), model),
        [ANCHORS], dyadic(6, width), dtype=dtype, check_gradients=dtype == torch.float64,
    )


@pytest.mark.parametrize("per_column", [False, True], ids=["shared-target", "per-column"])
def test_model_parity_with_several_columns(per_column):
    labels = dyadic(6, 3, MODEL_DIM) if per_column else dyadic(6, MODEL_DIM)
    assert_model_parity(lambda model: EmbedDistillLoss(model, distance_metric="l2"),
                        lambda model: reference.EmbedDistillLoss(model, distance_metric="l2"),
                        [ANCHORS, POSITIVES, NEGATIVES], labels)


@pytest.mark.parametrize(("metric", "columns", "per_column", "batch"),
                         list(itertools.product(METRICS, [1, 2, 3], [False, True], [1, 2, 8])))
def test_embedding_parity(metric, columns, per_column, batch):
    embeddings = random_embeddings(columns, batch=batch)
    labels = (torch.randn(batch, columns, 16, dtype=torch.float64) if per_column
              else torch.randn(batch, 16, dtype=torch.float64))
    # Hard case: the first row's student embedding already equals its teacher target.
    embeddings[0][0] = labels[0, 0] if per_column else labels[0]
    assert_embedding_parity(EmbedDistillLoss(None, distance_metric=metric),
                            ReferenceOnEmbeddings(reference.EmbedDistillLoss(None, metric)),
                            embeddings, labels)


@pytest.mark.parametrize("metric", METRICS)
def test_embedding_parity_with_projection(metric):
    model = tiny_model(torch.float64)
    seed_everything()
    ours = EmbedDistillLoss(model, distance_metric=metric, projection_dim=8)
    seed_everything()
    theirs = with_dtype(reference.EmbedDistillLoss(model, metric, projection_dim=8), model)
    embeddings = random_embeddings(2, dim=MODEL_DIM)
    assert_embedding_parity(ours, ReferenceOnEmbeddings(theirs), embeddings,
                            torch.randn(8, 2, 8, dtype=torch.float64))


def test_reference_list_form_of_teacher_embeddings_is_accepted():
    embeddings = random_embeddings(2)
    targets = random_embeddings(2, seed=1)
    ours = EmbedDistillLoss(None, "mse").compute_loss_from_embeddings(embeddings, targets)
    theirs = reference.EmbedDistillLoss(None, "mse").compute_loss_from_embeddings(embeddings,
                                                                                  targets)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("metric", METRICS)
def test_identical_embeddings_give_finite_gradients(metric):
    embedding = torch.ones(4, 8, requires_grad=True)
    loss = EmbedDistillLoss(None, metric).compute_loss_from_embeddings(
        [embedding, embedding], torch.ones(4, 8))
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(embedding.grad).all()


def test_seeded_projection_has_the_reference_initial_weights():
    model = tiny_model(torch.float32)
    seed_everything(3)
    ours = EmbedDistillLoss(model, projection_dim=32)
    seed_everything(3)
    theirs = reference.EmbedDistillLoss(model, projection_dim=32)
    assert torch.equal(ours.projection.weight, theirs.projection.weight)
    assert torch.equal(ours.projection.bias, theirs.projection.bias)
    # Same parameter names on the loss, so trainer optimizers and checkpoints line up.
    assert [name for name, _ in ours.named_parameters()] == \
           [name for name, _ in theirs.named_parameters()]


def test_projection_takes_the_model_dtype():
    loss = EmbedDistillLoss(tiny_model(torch.float64), projection_dim=4)
    assert loss.projection.weight.dtype == torch.float64


def test_projection_without_a_model_is_built_on_first_use():
    loss = EmbedDistillLoss(None, "mse", projection_dim=4)
    assert loss.projection is None
    value = loss.compute_loss_from_embeddings(random_embeddings(1), torch.zeros(8, 4))
    assert loss.projection.in_features == 16 and loss.projection.out_features == 4
    assert loss.projection.weight.dtype == torch.float64 and torch.isfinite(value)


def test_save_and_load_projection_interoperate_with_the_reference(tmp_path):
    model = tiny_model(torch.float32)
    seed_everything(1)
    ours = EmbedDistillLoss(model, projection_dim=16)
    theirs = reference.EmbedDistillLoss(model, projection_dim=16)  # other initial weights
    ours.save_projection(tmp_path / "ours.safetensors")
    theirs.load_projection(tmp_path / "ours.safetensors")
    assert torch.equal(theirs.projection.weight, ours.projection.weight)

    torch.nn.init.normal_(theirs.projection.weight)
    theirs.save_projection(tmp_path / "theirs.safetensors")
    fresh = EmbedDistillLoss(model)  # no projection yet: created from the file
    fresh.load_projection(tmp_path / "theirs.safetensors")
    assert fresh.projection_dim == 16
    assert fresh.get_config_dict() == {"distance_metric": "cosine", "projection_dim": 16}
    assert torch.equal(fresh.projection.weight, theirs.projection.weight)

    with pytest.raises(ValueError, match="no projection layer"):
        EmbedDistillLoss(model).save_projection(tmp_path / "none.safetensors")
    with pytest.raises(ValueError, match=r"maps 128 -> 16, the configured one 128 -> 8"):
        EmbedDistillLoss(model, projection_dim=8).load_projection(tmp_path / "theirs.safetensors")
    wrong_input = EmbedDistillLoss(None, projection_dim=16)
    wrong_input.compute_loss_from_embeddings(random_embeddings(1, dim=4), torch.zeros(8, 16))
    wrong_input.save_projection(tmp_path / "four.safetensors")
    with pytest.raises(ValueError, match="4-dim"):
        EmbedDistillLoss(model).load_projection(tmp_path / "four.safetensors")


def test_config_and_citation_match_the_reference():
    model = tiny_model(torch.float32)
    for metric, projection_dim in itertools.product(METRICS, [None, 8]):
        ours = EmbedDistillLoss(model, metric, projection_dim)
        theirs = reference.EmbedDistillLoss(model, metric, projection_dim)
        assert ours.get_config_dict() == theirs.get_config_dict()
        assert ours.citation == theirs.citation


def test_unknown_distance_metric_is_refused_like_the_reference():
    with pytest.raises(ValueError, match="distance_metric"):
        reference.EmbedDistillLoss(None, distance_metric="dot")
    with pytest.raises(ValueError, match=r"EmbedDistillLoss: distance_metric must be one of"):
        EmbedDistillLoss(None, distance_metric="dot")


def test_bad_input_names_the_loss_and_the_format():
    loss = EmbedDistillLoss(None)
    pair = random_embeddings(2, batch=4)
    with pytest.raises(LossInputError, match=r"EmbedDistillLoss expects one or more text "
                                             r"columns.*got no labels"):
        loss.compute_loss_from_embeddings(pair, None)
    with pytest.raises(LossInputError, match=r"\(4, 2, teacher_dim\).*shape \(4, 3, 16\)"):
        loss.compute_loss_from_embeddings(pair, torch.zeros(4, 3, 16))
    with pytest.raises(LossInputError, match=r"got a torch.float32 tensor of shape \(16,\)"):
        loss.compute_loss_from_embeddings(pair, torch.zeros(16))
    with pytest.raises(LossInputError, match=r"shape \(4, teacher_dim\); got .*\(1, 16\)"):
        loss.compute_loss_from_embeddings(pair, torch.zeros(1, 16))  # reference broadcasts it
    with pytest.raises(LossInputError, match="non-finite teacher embeddings"):
        loss.compute_loss_from_embeddings(pair, torch.full((4, 16), float("nan")))
    with pytest.raises(LossInputError, match="real-valued"):
        loss.compute_loss_from_embeddings(pair, torch.ones(4, 16, dtype=torch.bool))
    with pytest.raises(LossInputError, match="2 teacher tensors for 1 text column"):
        loss.compute_loss_from_embeddings(pair[:1], pair)
    with pytest.raises(LossInputError, match=r"1 or more text column.*got 0"):
        loss.compute_loss_from_embeddings([], torch.zeros(4, 16))


def test_width_mismatch_suggests_projection_dim():
    pair = random_embeddings(2, batch=4)
    with pytest.raises(LossInputError, match=r"EmbedDistillLoss: student embeddings have 16 "
                                             r"dimensions but the teacher's have 32; set "
                                             r"projection_dim=32"):
        EmbedDistillLoss(None).compute_loss_from_embeddings(pair, torch.zeros(4, 32))
    with pytest.raises(LossInputError, match=r"projection outputs 8: use projection_dim=32"):
        EmbedDistillLoss(None, projection_dim=8).compute_loss_from_embeddings(
            pair, torch.zeros(4, 32))
    with pytest.raises(LossInputError, match=r"projection maps 128-dim.*16-dim"):
        EmbedDistillLoss(tiny_model(), projection_dim=8).compute_loss_from_embeddings(
            pair, torch.zeros(4, 8))


def test_forward_refuses_bad_input_before_running_the_model():
    loss = EmbedDistillLoss(tiny_model())
    with pytest.raises(LossInputError, match="1 or more text column"):
        loss([], torch.zeros(1, MODEL_DIM))
    with pytest.raises(LossInputError, match="got no labels"):
        loss([{}], None)


@pytest.mark.slow
def test_trainer_with_projection_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("teacher-embedding")["train"].select(range(160))
    assert_trainer_equivalence(
        lambda model: EmbedDistillLoss(model, "cosine", projection_dim=384),
        lambda model: reference.EmbedDistillLoss(model, "cosine", projection_dim=384),
        data, tmp_path)
