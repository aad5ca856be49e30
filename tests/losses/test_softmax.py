"""SoftmaxLoss against the reference: initial classifier, values, gradients, config, input."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference
from torch import Tensor, nn

from losses.softmax import SoftmaxLoss
from losses.validation import LossInputError
from tests.losses.parity import (
    ANCHORS,
    NEGATIVES,
    POSITIVES,
    assert_model_parity,
    assert_trainer_equivalence,
    random_embeddings,
    seed_everything,
    tiny_model,
)

DIM = 16  # of random_embeddings
FLAGS = [flags for flags in itertools.product([True, False], repeat=3) if any(flags)]
FLAG_NAMES = ("concatenation_sent_rep", "concatenation_sent_difference",
              "concatenation_sent_multiplication")


class EmbeddingFeeder(nn.Module):
    """A stand-in model whose 'sentence embedding' is whatever tensor the features carry.

    The reference SoftmaxLoss has no compute_loss_from_embeddings, so the embedding-level
    comparison goes through its forward with this model.
    """

    device = torch.device("cpu")

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"sentence_embedding": features["embedding"]}


def make_both(*args, **options) -> tuple[SoftmaxLoss, nn.Module]:
    """Our loss and the reference's, each constructed right after the same seed."""
    seed_everything()
    ours = SoftmaxLoss(None, *args, **options)
    seed_everything()
    theirs = reference.SoftmaxLoss(EmbeddingFeeder(), *args, **options)
    return ours, theirs


def assert_softmax_parity(ours: SoftmaxLoss, theirs: nn.Module, embeddings: list[Tensor],
                          labels: Tensor) -> None:
    """Same value and gradients (embeddings and classifier) on the same embeddings."""
    results = []
    for loss in (ours, theirs):
        leaves = [embedding.detach().clone().requires_grad_(True) for embedding in embeddings]
        if loss is ours:
            value = ours.compute_loss_from_embeddings(leaves, labels.clone())  # no model at all
        else:
            value = theirs([{"embedding": leaf} for leaf in leaves], labels.clone())
        value.backward()
        results.append([value, *(leaf.grad for leaf in leaves),
                        loss.classifier.weight.grad, loss.classifier.bias.grad])
    for what, (mine, expected) in zip(["value", "grad u", "grad v", "grad W", "grad b"],
                                      zip(*results, strict=True), strict=True):
        torch.testing.assert_close(mine, expected, rtol=1e-5, atol=1e-7,
                                   msg=lambda m, what=what: f"{what}: {m}")


@pytest.mark.parametrize("num_labels", [2, 3])
@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "".join("TF"[not v] for v in f))
def test_seeded_classifier_starts_with_the_references_weights(flags, num_labels):
    ours, theirs = make_both(DIM, num_labels, *flags)
    assert ours.classifier.weight.shape == theirs.classifier.weight.shape
    assert torch.equal(ours.classifier.weight, theirs.classifier.weight)
    assert torch.equal(ours.classifier.bias, theirs.classifier.bias)
    assert ours.classifier.weight.dtype == theirs.classifier.weight.dtype == torch.float32


MODEL_OPTIONS = {
    "defaults": (3, {}),
    "two-labels": (2, {}),
    "no-rep": (3, {"concatenation_sent_rep": False}),
    "no-difference": (3, {"concatenation_sent_difference": False}),
    "multiplication": (3, {"concatenation_sent_multiplication": True}),
    "loss-fct": (3, {"loss_fct": nn.CrossEntropyLoss(label_smoothing=0.25)}),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("option", list(MODEL_OPTIONS))
def test_model_parity(option, dtype):
    num_labels, options = MODEL_OPTIONS[option]
    labels = torch.tensor([0, 1, 2, 0, 1, 2]) % num_labels
    second = [POSITIVES[0], NEGATIVES[1], POSITIVES[2], NEGATIVES[3], POSITIVES[4], NEGATIVES[5]]
    dim = tiny_model().get_embedding_dimension()
    assert_model_parity(  # gradients include the classifier's (same parameter names)
        lambda model: SoftmaxLoss(model, dim, num_labels, **options),
        lambda model: reference.SoftmaxLoss(model, dim, num_labels, **options),
        [ANCHORS, second], labels, dtype=dtype,
        check_gradients=dtype == torch.float64)  # float32: values only (REFERENCE-NOTES)


LOSS_FUNCTIONS = {
    "cross-entropy": nn.CrossEntropyLoss(),
    "label-smoothing": nn.CrossEntropyLoss(label_smoothing=0.125),
    "class-weights": nn.CrossEntropyLoss(weight=torch.tensor([0.5, 1.0, 2.0])),
    "sum": nn.CrossEntropyLoss(reduction="sum"),
    "multi-margin": nn.MultiMarginLoss(),
}


@pytest.mark.parametrize("loss_fct", list(LOSS_FUNCTIONS))
def test_embedding_parity_for_every_flag_combination(loss_fct):
    first, second = (column.float() for column in random_embeddings(2, seed=11))
    second[:2] = first[:2]  # identical pairs: |u - v| = 0
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])
    # Three class weights need three classes.
    for num_labels in [2, 3] if loss_fct != "class-weights" else [3]:
        for flags in FLAGS:
            for rows in (slice(None), slice(0, 1), slice(3, 5)):  # whole batch, 1 row, 2 rows
                assert_softmax_parity(*make_both(DIM, num_labels, *flags,
                                                 loss_fct=LOSS_FUNCTIONS[loss_fct]),
                                      [first[rows], second[rows]], labels[rows] % num_labels)


def test_float64_embeddings_are_classified_in_the_classifiers_float32():
    ours, theirs = make_both(DIM, 3)
    columns = random_embeddings(2)  # float64
    assert_softmax_parity(ours, theirs, columns, torch.tensor([0, 1, 2, 0, 1, 2, 2, 1]))
    assert ours.compute_loss_from_embeddings(columns, torch.zeros(8, dtype=torch.long)).dtype \
        == torch.float32


def test_class_probability_labels_and_ignore_index_match_the_reference():
    first, second = (column.float() for column in random_embeddings(2, seed=12))
    probabilities = torch.tensor([[0.25, 0.25, 0.5], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0],
                                  [0.125, 0.375, 0.5], [0.0, 0.0, 1.0], [0.75, 0.25, 0.0],
                                  [0.5, 0.25, 0.25], [0.0, 1.0, 0.0]])
    for flags in FLAGS:
        assert_softmax_parity(*make_both(DIM, 3, *flags), [first, second], probabilities)
    ignored = torch.tensor([0, -100, 2, 1, -100, 2, 0, 1])
    assert_softmax_parity(*make_both(DIM, 3), [first, second], ignored)


def test_without_labels_both_return_the_embeddings_and_the_logits():
    ours, theirs = make_both(DIM, 3, concatenation_sent_multiplication=True)
    columns = [column.float() for column in random_embeddings(2)]
    our_embeddings, our_logits = ours.compute_loss_from_embeddings(columns, None)
    their_embeddings, their_logits = theirs([{"embedding": c} for c in columns], None)
    assert our_logits.shape == (8, 3)
    torch.testing.assert_close(our_logits, their_logits)
    for mine, expected in zip(our_embeddings, their_embeddings, strict=True):
        assert torch.equal(mine, expected)
    model = tiny_model()
    features = [model.preprocess(ANCHORS), model.preprocess(POSITIVES)]
    embeddings, logits = SoftmaxLoss(model, 128, 3)(features, None)  # forward, as the reference
    assert len(embeddings) == 2 and logits.shape == (6, 3)


def test_identical_embeddings_give_finite_gradients():
    embedding = torch.ones(4, DIM, requires_grad=True)
    loss = SoftmaxLoss(None, DIM, 3, concatenation_sent_multiplication=True)
    loss.compute_loss_from_embeddings([embedding, embedding], torch.tensor([0, 1, 2, 0])).backward()
    assert torch.isfinite(embedding.grad).all()


def test_deprecated_dimension_alias_builds_the_same_classifier_and_warns():
    with pytest.warns(FutureWarning, match="SoftmaxLoss: the `sentence_embedding_dimension` "
                                           "argument is deprecated; use `embedding_dimension`"):
        seed_everything()
        ours = SoftmaxLoss(None, sentence_embedding_dimension=DIM, num_labels=3)
    seed_everything()
    theirs = reference.SoftmaxLoss(EmbeddingFeeder(), sentence_embedding_dimension=DIM,
                                   num_labels=3)
    assert torch.equal(ours.classifier.weight, theirs.classifier.weight)
    with pytest.warns(FutureWarning):  # both names, same value: fine (positional new name too)
        assert SoftmaxLoss(None, DIM, 3, sentence_embedding_dimension=DIM).classifier \
            .in_features == 3 * DIM
    # Conflicting values: the reference silently keeps the new one; ours refuses.
    theirs = reference.SoftmaxLoss(EmbeddingFeeder(), embedding_dimension=DIM,
                                   sentence_embedding_dimension=8, num_labels=3)
    assert theirs.classifier.in_features == 3 * DIM
    with pytest.warns(FutureWarning), pytest.raises(TypeError, match=r"both `embedding_"
                                                                     r"dimension`=16 and"):
        SoftmaxLoss(None, embedding_dimension=DIM, sentence_embedding_dimension=8, num_labels=3)


def test_config_and_citation_match_the_reference():
    model = tiny_model()
    for num_labels, flags in itertools.product([2, 3], FLAGS[:4]):
        ours, theirs = (cls(model, 128, num_labels, *flags)
                        for cls in (SoftmaxLoss, reference.SoftmaxLoss))
        assert ours.get_config_dict() == theirs.get_config_dict()
    assert ours.citation == theirs.citation


def test_bad_configuration_raises_like_or_stricter_than_the_reference():
    with pytest.raises(ValueError, match="At least one"):
        reference.SoftmaxLoss(EmbeddingFeeder(), DIM, 3, False, False, False)
    with pytest.raises(ValueError, match="SoftmaxLoss needs at least one feature block"):
        SoftmaxLoss(None, DIM, 3, False, False, False)
    reference.SoftmaxLoss(EmbeddingFeeder(), DIM, 1)  # silently accepted: loss always 0
    with pytest.raises(ValueError, match="num_labels >= 2; got 1"):
        SoftmaxLoss(None, DIM, 1)
    SoftmaxLoss(None, DIM, 1, loss_fct=nn.MSELoss())  # a regression head is fine


def test_bad_input_names_the_loss_and_the_format():
    loss = SoftmaxLoss(None, DIM, 3)
    columns = random_embeddings(3, batch=4)
    expected = r"SoftmaxLoss expects \(sentence1, sentence2\) pairs with an integer class label"
    with pytest.raises(LossInputError, match=expected + r".*exactly 2.*got 3"):
        loss.compute_loss_from_embeddings(columns, torch.zeros(4, dtype=torch.long))
    with pytest.raises(LossInputError, match=expected + r".*class ids in \[0, 3\).*got 3"):
        loss.compute_loss_from_embeddings(columns[:2], torch.tensor([0, 1, 3, 2]))
    with pytest.raises(LossInputError, match=expected + r".*class ids in \[0, 3\).*got -1"):
        loss.compute_loss_from_embeddings(columns[:2], torch.tensor([0, -1, 1, 2]))
    with pytest.raises(LossInputError, match=expected + r".*integer class ids.*float32"):
        loss.compute_loss_from_embeddings(columns[:2], torch.tensor([0.0, 1.0, 1.0, 2.0]))
    with pytest.raises(LossInputError, match=expected + r".*shape \(4,\).*got .*\(5,\)"):
        loss.compute_loss_from_embeddings(columns[:2], torch.zeros(5, dtype=torch.long))
    with pytest.raises(LossInputError, match=expected + r".*sum to 1; got row 1"):
        loss.compute_loss_from_embeddings(columns[:2], torch.tensor(
            [[1.0, 0.0, 0.0], [0.5, 0.25, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(LossInputError, match=r"built for embeddings of dimension 16.*got .*8"):
        loss.compute_loss_from_embeddings([c[:, :8] for c in columns[:2]],
                                          torch.zeros(4, dtype=torch.long))
    with pytest.raises(LossInputError, match="exactly 2 text column"):
        SoftmaxLoss(tiny_model(), 128, 3)([{}], torch.zeros(1, dtype=torch.long))


def test_reference_also_fails_on_those_labels():
    """Where ours raises for bad class ids, the reference raises too (a torch error)."""
    first, second = (column.float() for column in random_embeddings(2, batch=4))
    theirs = make_both(DIM, 3)[1]
    for labels in (torch.tensor([0, 1, 3, 2]), torch.tensor([0.0, 1.0, 1.0, 2.0])):
        with warnings.catch_warnings(), pytest.raises((IndexError, RuntimeError)):
            warnings.simplefilter("ignore")
            theirs([{"embedding": first}, {"embedding": second}], labels)


@pytest.mark.slow
def test_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("nli")["train"].shuffle(seed=0).select(range(160))
    assert_trainer_equivalence(
        lambda model: SoftmaxLoss(model, embedding_dimension=384, num_labels=3),
        lambda model: reference.SoftmaxLoss(model, embedding_dimension=384, num_labels=3),
        data, tmp_path)
