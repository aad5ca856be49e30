"""Contrastive Tension losses and data loader against the reference: values, gradients on both
model copies, config, the second model as a real submodule, loader batches, bad input."""

from __future__ import annotations

import random

import pytest
import torch
from sentence_transformers import util
from sentence_transformers.sentence_transformer import losses as reference
from torch import Tensor, nn

from losses import similarity
from losses.contrastive_tension import (
    ContrastiveTensionDataLoader,
    ContrastiveTensionLoss,
    ContrastiveTensionLossInBatchNegatives,
)
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

# Second column for ContrastiveTensionLoss: rows 0, 2, 4 repeat the first column (positives).
SECOND = [ANCHORS[0], POSITIVES[1], ANCHORS[2], NEGATIVES[3], ANCHORS[4], MORE_NEGATIVES[5]]
SECOND_LABELS = torch.tensor([1, 0, 1, 0, 1, 0])
# (ours, reference) similarity functions of the same name
SIMILARITIES = [(similarity.cos_sim, util.cos_sim), (similarity.dot_score, util.dot_score),
                (similarity.euclidean_sim, util.euclidean_sim),
                (similarity.manhattan_sim, util.manhattan_sim)]
IN_BATCH_OPTIONS = [({}, {}), ({"scale": 1.0}, {"scale": 1.0})] + [
    ({"similarity_fct": ours}, {"similarity_fct": theirs}) for ours, theirs in SIMILARITIES[1:]]
IDS = ["defaults", "scale=1", "dot_score", "euclidean_sim", "manhattan_sim"]


class Lookup(nn.Module):
    """Stand-in model: returns the embedding stored in the features under ``key``."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"sentence_embedding": features[self.key]}


def run_on_embeddings(loss: nn.Module, first: Tensor, second: Tensor, labels, two_columns: bool):
    """Forward a loss built on Lookup("b") whose copy model1 reads "a"; value and gradients."""
    loss.model1.key = "a"
    a, b = first.detach().clone().requires_grad_(), second.detach().clone().requires_grad_()
    features = [{"a": a}, {"b": b}] if two_columns else [{"a": a, "b": b}]
    seed_everything()
    value = loss(features, labels)
    value.backward()
    return value, a.grad, b.grad


def assert_same_on_embeddings(ours, theirs, first, second, labels=None, two_columns=True):
    ours_result = run_on_embeddings(ours, first, second, labels, two_columns)
    theirs_result = run_on_embeddings(theirs, first, second, labels, two_columns)
    for mine, other in zip(ours_result, theirs_result, strict=True):
        torch.testing.assert_close(mine, other, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------------ ContrastiveTensionLoss
@pytest.mark.parametrize(("labels", "dtype"), [(None, torch.float32), (None, torch.float64),
                                               (SECOND_LABELS, torch.float64)],
                         ids=["derived-labels-float32", "derived-labels-float64", "labels-float64"])
def test_model_parity(labels, dtype):
    assert_model_parity(ContrastiveTensionLoss, reference.ContrastiveTensionLoss,
                        [ANCHORS, SECOND], labels, dtype=dtype)


def test_gradients_reach_both_model_copies():
    model = tiny_model()
    loss = ContrastiveTensionLoss(model)
    loss(tokenize(model, [ANCHORS, SECOND]), None).backward()
    for copy_name in ("model1", "model2"):
        grads = [p.grad for n, p in loss.named_parameters() if n.startswith(copy_name + ".")]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), copy_name


def test_derived_labels_ignore_padding_and_work_without_attention_mask():
    loss = ContrastiveTensionLoss(None)
    bert = tiny_model()
    expected = SECOND_LABELS.float()
    first, second = tokenize(bert, [ANCHORS, SECOND])
    assert torch.equal(loss.identical_pairs(first, second), expected)
    # The same texts padded to another length (and padded on the left) are still identical.
    bert.tokenizer.padding_side = "left"
    longer = tokenize(bert, [[*SECOND[:5], SECOND[5] + " and a much longer tail of words"]])[0]
    assert torch.equal(loss.identical_pairs(first, longer), expected)
    from lab.models import load_model

    static = load_model("tiny", device="cpu")  # flat input_ids + offsets, no attention mask
    first, second = tokenize(static, [ANCHORS, SECOND])
    assert torch.equal(loss.identical_pairs(first, second), expected)
    value = ContrastiveTensionLoss(static)(tokenize(static, [ANCHORS, SECOND]), None)
    assert torch.isfinite(value)


@pytest.mark.parametrize("seed", [0, 1])
def test_embedding_parity(seed):
    first, second = random_embeddings(2, seed=seed)
    second[:3] = first[:3]  # identical embeddings
    labels = torch.tensor([1, 1, 0, 0, 1, 0, 0, 0])
    assert_same_on_embeddings(ContrastiveTensionLoss(Lookup("b")),
                              reference.ContrastiveTensionLoss(Lookup("b")), first, second, labels)
    value = ContrastiveTensionLoss(None).compute_loss_from_embeddings([first, second], labels)
    logits = (first * second).sum(-1)
    torch.testing.assert_close(value, nn.functional.binary_cross_entropy_with_logits(
        logits, labels.double(), reduction="sum"))


def test_bad_input_names_the_loss_and_the_format():
    loss = ContrastiveTensionLoss(None)
    pair = random_embeddings(2, batch=4)
    with pytest.raises(LossInputError, match=r"ContrastiveTensionLoss expects \(sentence_A, "
                                             r"sentence_B\) pairs.*exactly 2.*got 3"):
        loss.compute_loss_from_embeddings(random_embeddings(3, batch=4), torch.zeros(4))
    with pytest.raises(LossInputError, match=r"ContrastiveTensionLoss.*got no labels"):
        loss.compute_loss_from_embeddings(pair, None)
    with pytest.raises(LossInputError, match=r"shape \(4,\)"):
        loss.compute_loss_from_embeddings(pair, torch.zeros(5))
    with pytest.raises(LossInputError, match=r"labels 0 or 1; got 0\.5"):
        loss.compute_loss_from_embeddings(pair, torch.tensor([0.0, 0.5, 1.0, 1.0]))
    with pytest.raises(LossInputError, match=r"exactly 2 text column.*got 1"):
        ContrastiveTensionLoss(tiny_model())([{}], None)  # before running any model


def test_identical_embeddings_give_finite_gradients():
    embedding = torch.ones(4, 8, requires_grad=True)
    for loss, labels in ((ContrastiveTensionLoss(None), torch.ones(4)),
                         (ContrastiveTensionLossInBatchNegatives(None), None)):
        loss.compute_loss_from_embeddings([embedding, embedding], labels).backward()
        assert torch.isfinite(embedding.grad).all()
    for function, _ in SIMILARITIES:
        embedding.grad = None
        ContrastiveTensionLossInBatchNegatives(None, similarity_fct=function) \
            .compute_loss_from_embeddings([embedding, embedding]).backward()
        assert torch.isfinite(embedding.grad).all(), function.__name__


# --------------------------------------------------------- ContrastiveTensionLossInBatchNegatives
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("ours", "theirs"), IN_BATCH_OPTIONS[:1], ids=IDS[:1])
def test_in_batch_model_parity(ours, theirs, dtype):
    assert_model_parity(lambda model: ContrastiveTensionLossInBatchNegatives(model, **ours),
                        lambda model: reference.ContrastiveTensionLossInBatchNegatives(
                            model, **theirs), [ANCHORS], dtype=dtype)


@pytest.mark.parametrize(("ours", "theirs"), IN_BATCH_OPTIONS[1:], ids=IDS[1:])
def test_in_batch_model_parity_per_option(ours, theirs):
    assert_model_parity(lambda model: ContrastiveTensionLossInBatchNegatives(model, **ours),
                        lambda model: reference.ContrastiveTensionLossInBatchNegatives(
                            model, **theirs), [ANCHORS])


@pytest.mark.parametrize("scale", [20.0, 1.0, 7.25])
@pytest.mark.parametrize(("ours_fct", "theirs_fct"), SIMILARITIES,
                         ids=[ours.__name__ for ours, _ in SIMILARITIES])
@pytest.mark.parametrize("case", ["random", "identical", "batch-of-1", "batch-of-2"])
def test_in_batch_embedding_parity(ours_fct, theirs_fct, scale, case):
    first, second = random_embeddings(2)
    if case == "identical":
        second = first.clone()
        first[3] = first[2]  # and a duplicate row
    elif case.startswith("batch-of"):
        size = int(case[-1])
        first, second = first[:size], second[:size]
    assert_same_on_embeddings(
        ContrastiveTensionLossInBatchNegatives(Lookup("b"), scale, ours_fct),
        reference.ContrastiveTensionLossInBatchNegatives(Lookup("b"), scale, theirs_fct),
        first, second, two_columns=False)


def test_in_batch_scale_is_a_trained_parameter():
    model = tiny_model()
    loss = ContrastiveTensionLossInBatchNegatives(model, scale=20.0)
    loss(tokenize(model, [ANCHORS]), None).backward()
    assert loss.logit_scale.grad is not None and loss.logit_scale.grad != 0
    with torch.no_grad():
        loss.logit_scale.fill_(0.0)
    assert loss.get_config_dict()["scale"] == 1.0


def test_in_batch_bad_input():
    loss = ContrastiveTensionLossInBatchNegatives(tiny_model())
    with pytest.raises(LossInputError, match=r"ContrastiveTensionLossInBatchNegatives expects "
                                             r"single sentences \(one text column\).*exactly 1.*"
                                             r"got 2"):
        loss([{}, {}], None)  # the reference would silently drop the second column
    bare = ContrastiveTensionLossInBatchNegatives(None)
    with pytest.raises(LossInputError, match=r"two .* embeddings .* model1 and from model2; got 1"):
        bare.compute_loss_from_embeddings(random_embeddings(1))
    with pytest.raises(LossInputError, match=r"one shape; got \(8, 16\) and \(4, 16\)"):
        bare.compute_loss_from_embeddings([random_embeddings(1)[0], random_embeddings(1)[0][:4]])
    with pytest.warns(LossInputWarning, match="ignoring the label column"):
        bare.compute_loss_from_embeddings(random_embeddings(2), torch.zeros(8))


# ------------------------------------------------------------------------------ both losses
def test_config_and_citation_match_the_reference():
    model = tiny_model()
    pairs = [(ContrastiveTensionLoss(model), reference.ContrastiveTensionLoss(model))]
    pairs += [(ContrastiveTensionLossInBatchNegatives(model, **ours),
               reference.ContrastiveTensionLossInBatchNegatives(model, **theirs))
              for ours, theirs in IN_BATCH_OPTIONS]
    for ours, theirs in pairs:
        assert ours.get_config_dict() == theirs.get_config_dict()
        assert ours.citation == theirs.citation


@pytest.mark.parametrize("loss_class", [ContrastiveTensionLoss,
                                        ContrastiveTensionLossInBatchNegatives])
def test_second_model_is_a_trained_and_saved_submodule(loss_class, tmp_path):
    model = tiny_model()
    loss = loss_class(model)
    assert loss.model2 is model and loss.model is model and loss.model1 is not model
    model_names = {name for name, _ in model.named_parameters()}
    names = {name for name, _ in loss.named_parameters()}
    assert {f"model1.{n}" for n in model_names} | {f"model2.{n}" for n in model_names} <= names
    copies = {p.data_ptr() for p in loss.model1.parameters()}
    assert copies.isdisjoint(p.data_ptr() for p in model.parameters())  # independent storage
    reference_class = getattr(reference, loss_class.__name__)
    assert set(loss.state_dict()) == set(reference_class(model).state_dict())
    # One optimizer step over loss.parameters() moves the copy too.
    before = [p.detach().clone() for p in loss.model1.parameters()]
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.1)
    columns = [ANCHORS, SECOND] if loss_class is ContrastiveTensionLoss else [ANCHORS]
    loss(tokenize(model, columns), None).backward()
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, loss.model1.parameters(),
                                                     strict=True))
    # The copy saves and loads with the loss.
    torch.save(loss.state_dict(), tmp_path / "loss.pt")
    restored = loss_class(tiny_model())
    restored.load_state_dict(torch.load(tmp_path / "loss.pt"))
    for (name, saved), (_, loaded) in zip(loss.state_dict().items(),
                                          restored.state_dict().items(), strict=True):
        assert torch.equal(saved, loaded), name


# ------------------------------------------------------------------- ContrastiveTensionDataLoader
SENTENCES = [f"sentence number {i}" for i in range(101)]


def batches(loader, epochs: int = 2):
    return [[(tuple(example.texts), example.label) for example in batch]
            for _ in range(epochs) for batch in loader]


@pytest.mark.parametrize(("batch_size", "ratio"), [(8, 8), (4, 2), (6, 3), (5, 1), (16, 4),
                                                   (3, 3)])
def test_data_loader_yields_the_reference_batches(batch_size, ratio):
    from sentence_transformers.sentence_transformer.readers import InputExample

    theirs_sentences = list(SENTENCES)
    ours = ContrastiveTensionDataLoader(SENTENCES, batch_size, pos_neg_ratio=ratio)
    theirs = reference.ContrastiveTensionDataLoader(theirs_sentences, batch_size,
                                                    pos_neg_ratio=ratio)
    assert len(ours) == len(theirs) > 0
    random.seed(3)
    our_batches = batches(ours)
    random.seed(3)
    assert our_batches == batches(theirs)
    assert [f"sentence number {i}" for i in range(101)] == SENTENCES  # caller's list untouched
    assert all(len(batch) == batch_size for batch in our_batches)
    assert isinstance(next(iter(ours))[0], InputExample)


def test_data_loader_default_ratio_and_collate_fn():
    loader = ContrastiveTensionDataLoader(SENTENCES, 16)
    random.seed(0)
    batch = next(iter(loader))
    assert [example.label for example in batch] == [1, 0, 0, 0, 0, 0, 0, 0] * 2
    assert all(ex.texts[0] == ex.texts[1] for ex in batch if ex.label == 1)
    assert all(ex.texts[0] != ex.texts[1] for ex in batch if ex.label == 0)
    loader.collate_fn = len
    assert next(iter(loader)) == 16


@pytest.mark.parametrize("batch_size", [0, -8, 2.5, 8.0, "8", True])
def test_data_loader_batch_size_must_be_a_positive_integer(batch_size):
    # The reference accepts most of these and fails later (ZeroDivisionError when iterating
    # with 0, TypeError with 8.0) or never (True counts as 1); ours refuses them up front.
    with pytest.raises(ValueError, match=r"ContrastiveTensionDataLoader: batch_size must be a "
                                         r"positive integer; got"):
        ContrastiveTensionDataLoader(SENTENCES, batch_size, pos_neg_ratio=1)


def test_data_loader_bad_input():
    with pytest.raises(ValueError, match=r"ContrastiveTensionDataLoader .*must be divisible"):
        ContrastiveTensionDataLoader(SENTENCES, 6, pos_neg_ratio=4)
    with pytest.raises(ValueError, match="pos_neg_ratio must be a positive integer; got 0"):
        ContrastiveTensionDataLoader(SENTENCES, 6, pos_neg_ratio=0)
    with pytest.raises(ValueError, match=r"needs at least 15 sentences .*got 10"):
        ContrastiveTensionDataLoader(SENTENCES[:10], 8)
    loader = ContrastiveTensionDataLoader(["same text"] * 40, 4, pos_neg_ratio=4)
    with pytest.warns(LossInputWarning, match="negative pair holds the same sentence"):
        list(loader)


# ------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_in_batch_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from lab.data import load_dataset

    data = load_dataset("sentence")["train"].select(range(160))
    assert_trainer_equivalence(ContrastiveTensionLossInBatchNegatives,
                               reference.ContrastiveTensionLossInBatchNegatives, data, tmp_path,
                               steps=5, model_name="tiny-bert")


@pytest.mark.slow
def test_pair_trainer_ends_with_the_same_weights_as_the_reference(tmp_path):
    from datasets import Dataset

    from lab.data import load_dataset

    sentences = load_dataset("sentence")["train"]["sentence"][:161]
    # Every fourth pair repeats its sentence (a positive), the others pair two sentences.
    second = [text if i % 4 == 0 else sentences[i + 1] for i, text in enumerate(sentences[:160])]
    data = Dataset.from_dict({"sentence_A": sentences[:160], "sentence_B": second})
    assert_trainer_equivalence(ContrastiveTensionLoss, reference.ContrastiveTensionLoss, data,
                               tmp_path, steps=5, model_name="tiny-bert")
