"""Shared machinery of the parity tests: our loss against the installed sentence-transformers.

Two levels, both comparing values and gradients:

- ``assert_model_parity``: both losses wrap the same tiny BERT (dropout 0, float64 by default)
  and see the same tokenised batch; their values and the gradients on every model parameter
  must agree (rtol 1e-5 on values; rtol 1e-4 on float64 gradients, see REFERENCE-NOTES).
- ``assert_embedding_parity``: both ``compute_loss_from_embeddings`` on the same random
  embeddings; values and gradients with respect to the embeddings. Cheap, so it is where every
  option combination and edge case is swept.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from torch import Tensor

VALUE_RTOL = 1e-5
GRAD_RTOL = 1e-4

# Texts with the hard cases built in: duplicates (rows 0 and 4 of "anchor"), near misses.
ANCHORS = [
    "Boil the pasta before adding the sauce.",
    "The concert was cancelled because of rain.",
    "She runs five kilometres every morning.",
    "Water the tomatoes in the evening.",
    "Boil the pasta before adding the sauce.",
    "The rocket reached orbit after ten minutes.",
]
POSITIVES = [
    "Cook the noodles first, then pour on the sauce.",
    "Heavy rain forced them to call off the show.",
    "Every morning she goes for a 5 km run.",
    "Give the tomato plants water at night.",
    "Cook the noodles first, then pour on the sauce.",
    "Ten minutes after launch the rocket was in orbit.",
]
NEGATIVES = [
    "Add the sauce before boiling the pasta.",
    "The concert went ahead despite the rain.",
    "She walks five kilometres every evening.",
    "Never water the tomatoes in the evening.",
    "Pour the sauce on before you boil the pasta.",
    "The rocket failed to reach orbit.",
]
MORE_NEGATIVES = [
    "The soup needs more salt.",
    "Tickets for the show sold out.",
    "He swims on Sundays.",
    "Roses need full sun.",
    "The oven was too hot.",
    "Mars has two small moons.",
]


def seed_everything(seed: int = 12) -> None:
    """Seed Python, NumPy and torch identically before each side of a comparison."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@cache
def _base_model() -> SentenceTransformer:
    from lab.models import load_model

    return load_model("tiny-bert", device="cpu", dropout=0.0)


def tiny_model(dtype: torch.dtype = torch.float64) -> SentenceTransformer:
    """A fresh copy of the lab's tiny BERT without dropout, in ``dtype``."""
    return copy.deepcopy(_base_model()).to(dtype)


@cache
def _base_dropout_model() -> SentenceTransformer:
    from lab.models import load_model

    return load_model("tiny-bert", device="cpu", dropout=0.1)


def tiny_dropout_model(dtype: torch.dtype = torch.float64) -> SentenceTransformer:
    """A fresh copy of the lab's tiny BERT with dropout 0.1, in training mode.

    Same weights as ``tiny_model`` (same seed): only the dropout differs, so a dropout test can
    show that dropout was active by comparing with ``tiny_model``.
    """
    model = copy.deepcopy(_base_dropout_model()).to(dtype)
    model.train()
    return model


def tokenize(model: SentenceTransformer, columns: Sequence[Sequence[str]]) -> list[dict]:
    """Fresh feature dicts per column (the model writes into them, so never reuse them)."""
    return [model.preprocess(list(column)) for column in columns]


def _named_gradients(module: torch.nn.Module) -> dict[str, Tensor]:
    return {name: parameter.grad.detach().clone()
            for name, parameter in module.named_parameters() if parameter.grad is not None}


def _total(value: Tensor | dict[str, Tensor]) -> Tensor:
    return sum(value.values()) if isinstance(value, dict) else value


def _assert_values_close(ours, theirs, what: str) -> None:
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{what}: reference returns a dict, ours {type(ours)}"
        assert set(ours) == set(theirs), f"{what}: keys {set(ours)} vs {set(theirs)}"
        for key in theirs:
            _assert_values_close(ours[key], theirs[key], f"{what}[{key}]")
        return
    assert isinstance(ours, Tensor), f"{what}: ours is {type(ours)}, not a tensor"
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs {theirs.shape}"
    torch.testing.assert_close(ours.detach().double(), theirs.detach().double(), rtol=VALUE_RTOL,
                               atol=1e-7, msg=lambda m: f"{what}: {m}")


def _assert_gradients_close(ours: dict[str, Tensor], theirs: dict[str, Tensor], what: str,
                            rtol: float) -> None:
    assert set(ours) == set(theirs), f"{what}: parameters with gradients differ: " \
                                     f"{sorted(set(ours) ^ set(theirs))[:5]}"
    for name in theirs:
        scale = theirs[name].abs().max().item()
        torch.testing.assert_close(ours[name], theirs[name], rtol=rtol, atol=rtol * scale + 1e-12,
                                   msg=lambda m, name=name: f"{what} gradient of {name}: {m}")


def assert_model_parity(
    make_ours: Callable[[SentenceTransformer], torch.nn.Module],
    make_reference: Callable[[SentenceTransformer], torch.nn.Module],
    columns: Sequence[Sequence[str]],
    labels: Tensor | None = None,
    dtype: torch.dtype = torch.float64,
    check_gradients: bool = True,
) -> None:
    """Same value and model gradients from both losses on one batch (see module docstring)."""
    results = []
    for make in (make_ours, make_reference):
        model = tiny_model(dtype)
        seed_everything()
        loss = make(model)
        seed_everything()
        label_copy = None if labels is None else labels.clone()
        value = loss(tokenize(model, columns), label_copy)
        gradients = {}
        if check_gradients:
            _total(value).backward()
            gradients = _named_gradients(loss)
        results.append((value, gradients))
    (ours, our_gradients), (theirs, their_gradients) = results
    _assert_values_close(ours, theirs, f"loss value ({dtype})")
    if check_gradients:
        rtol = GRAD_RTOL if dtype == torch.float64 else 1e-2
        _assert_gradients_close(our_gradients, their_gradients, f"{dtype}", rtol)


def value_and_gradients(make_loss: Callable[[SentenceTransformer], torch.nn.Module],
                        model: SentenceTransformer, columns: Sequence[Sequence[str]],
                        factor: float = 1.0, seed: int = 12) -> tuple[Tensor, dict[str, Tensor]]:
    """(loss value, {parameter: gradient}) of one call on ``model``, seeded before the forward.

    ``factor`` multiplies the loss before ``backward()``, as gradient accumulation or fp16 loss
    scaling do: a gradient-cached loss must pass it on to every mini-batch.
    """
    loss = make_loss(model)
    seed_everything(seed)
    value = _total(loss(tokenize(model, columns), None))
    (factor * value).backward()
    return value.detach(), _named_gradients(model)


def assert_same_value_and_gradients(first: tuple[Tensor, dict[str, Tensor]],
                                    second: tuple[Tensor, dict[str, Tensor]], value_rtol: float,
                                    gradient_rtol: float, what: str = "") -> None:
    """Two ``value_and_gradients`` results agree (gradient atol: rtol x the largest entry)."""
    (value, gradients), (other_value, other_gradients) = first, second
    torch.testing.assert_close(value, other_value, rtol=value_rtol, atol=0,
                               msg=lambda m: f"{what} loss value: {m}")
    assert set(gradients) == set(other_gradients), f"{what}: different parameters have gradients"
    for name, gradient in other_gradients.items():
        torch.testing.assert_close(gradients[name], gradient, rtol=gradient_rtol,
                                   atol=gradient_rtol * gradient.abs().max().item() + 1e-15,
                                   msg=lambda m, name=name: f"{what} gradient of {name}: {m}")


def random_embeddings(columns: int, batch: int = 8, dim: int = 16, seed: int = 0,
                      dtype: torch.dtype = torch.float64) -> list[Tensor]:
    """``columns`` random (batch, dim) embedding tensors."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=generator, dtype=dtype) for _ in range(columns)]


def assert_embedding_parity(
    ours: torch.nn.Module,
    reference: torch.nn.Module,
    embeddings: Sequence[Tensor],
    labels: Tensor | None = None,
) -> None:
    """Same ``compute_loss_from_embeddings`` value and embedding gradients from both losses."""
    results = []
    for loss in (ours, reference):
        leaves = [embedding.detach().clone().requires_grad_(True) for embedding in embeddings]
        seed_everything()
        value = loss.compute_loss_from_embeddings(
            leaves, None if labels is None else labels.clone())
        _total(value).backward()
        results.append((value, {str(i): leaf.grad if leaf.grad is not None
                                else torch.zeros_like(leaf) for i, leaf in enumerate(leaves)}))
    (value, gradients), (reference_value, reference_gradients) = results
    _assert_values_close(value, reference_value, "loss value from embeddings")
    _assert_gradients_close(gradients, reference_gradients, "embedding", GRAD_RTOL)


def train_weights(make_loss: Callable[[SentenceTransformer], torch.nn.Module], dataset,
                  output_dir: str, steps: int = 20, batch_size: int = 8,
                  model_name: str = "tiny") -> dict[str, Tensor]:
    """Train ``model_name`` for ``steps`` steps with SentenceTransformerTrainer; return weights."""
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from transformers import set_seed

    from lab.models import load_model

    set_seed(0)
    model = load_model(model_name, device="cpu", dropout=0.0)
    seed_everything()
    loss = make_loss(model)
    arguments = SentenceTransformerTrainingArguments(
        output_dir=output_dir, max_steps=steps, per_device_train_batch_size=batch_size,
        learning_rate=1e-2 if model_name == "tiny" else 1e-4, seed=0, data_seed=0,
        report_to="none", use_cpu=True, save_strategy="no", logging_strategy="no",
        disable_tqdm=True, dataloader_drop_last=True,
    )
    SentenceTransformerTrainer(model=model, args=arguments, train_dataset=dataset,
                               loss=loss).train()
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


def assert_trainer_equivalence(
    make_ours: Callable[[SentenceTransformer], torch.nn.Module],
    make_reference: Callable[[SentenceTransformer], torch.nn.Module],
    dataset,
    tmp_path,
    steps: int = 20,
    batch_size: int = 8,
    model_name: str = "tiny",
) -> None:
    """20 trainer steps with our loss end at the same weights as with the reference loss.

    The weights must also have moved, so the comparison is not between two untouched models.
    """
    from lab.models import load_model

    ours = train_weights(make_ours, dataset, str(tmp_path / "ours"), steps, batch_size, model_name)
    theirs = train_weights(make_reference, dataset, str(tmp_path / "reference"), steps,
                           batch_size, model_name)
    initial = dict(load_model(model_name, device="cpu", dropout=0.0).named_parameters())
    moved = max((theirs[name] - initial[name]).abs().max().item() for name in theirs)
    assert moved > 1e-4, "the reference run did not change the weights: nothing was compared"
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-6,
                                   msg=lambda m, name=name: f"weights of {name} after training: "
                                                            f"{m}")
