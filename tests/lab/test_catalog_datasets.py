"""Every catalog loss's default dataset has the columns and labels the loss needs.

Proved twice: the reference sentence-transformers loss (the oracle), built on the entry's
default model, computes a finite value on a batch of the entry's default dataset; and every loss
of ours trains one step on it with SentenceTransformerTrainer.
"""

from __future__ import annotations

import math

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

import losses
from lab import catalog
from lab.data import FORMATS, load_dataset
from lab.models import load_model

BATCH = 6


@pytest.fixture(scope="module")
def models():
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_model(name, device="cpu")
        return cache[name]

    return get


def build_loss(entry: catalog.LossEntry, model, models, library=reference):
    """``library``'s loss with its defaults, plus what its constructor cannot do without."""
    cls = getattr(library, entry.name)
    if entry.wraps:
        inner = getattr(library, entry.default_inner_loss)(model)
        extra = {knob.name: list(knob.default) for knob in entry.knobs
                 if knob.name == "matryoshka_dims"}
        return cls(model, inner, **extra)
    if entry.needs_guide:
        return cls(model, guide=models(entry.default_guide))
    if entry.needs_num_labels:
        return cls(model, embedding_dimension=model.get_embedding_dimension(), num_labels=3)
    return cls(model)


def batch_of(entry: catalog.LossEntry, model):
    """Tokenised text columns and labels of the first rows of the default training split."""
    rows = load_dataset(entry.default_format)["train"].select(range(BATCH))
    spec = FORMATS[entry.default_format]
    columns = [name for name in rows.column_names if name != spec.label_column]
    texts = [rows[name] for name in columns]
    if entry.name == "ContrastiveTensionLoss":
        # It scores (sentence, sentence') pairs, label 1 for the same sentence: the lab's trainer
        # makes them from single sentences the way ContrastiveTensionDataLoader does.
        texts = [texts[0], texts[0][:2] + texts[0][2:][::-1]]
    features = [model.preprocess(column) for column in texts]
    labels = torch.tensor(rows[spec.label_column]) if spec.label_column else None
    return features, labels


@pytest.mark.slow
@pytest.mark.parametrize("name", list(catalog.LOSSES))
def test_reference_loss_runs_on_the_default_dataset(name, models):
    entry = catalog.LOSSES[name]
    model = models(entry.default_model)
    loss = build_loss(entry, model, models)
    features, labels = batch_of(entry, model)
    value = loss(features, labels)
    total = sum(value.values()) if isinstance(value, dict) else value
    assert math.isfinite(float(total.detach())), f"{name} on {entry.default_format}: {value}"


def tension_pairs(sentences: list[str]):
    """ContrastiveTensionLoss's pairs from single sentences: every 4th pair a sentence with
    itself (label 1), the rest two different sentences (label 0), as its data loader makes them.
    lab.train does this for the user (the catalog's "sentence" format is what they provide).
    """
    from datasets import Dataset

    rows = [{"sentence_a": text, "sentence_b": text if i % 4 == 0 else sentences[i - 1],
             "label": int(i % 4 == 0)} for i, text in enumerate(sentences)]
    return Dataset.from_list(rows)


IMPLEMENTED = [name for name in catalog.LOSSES if catalog.is_implemented(name)]


def test_is_implemented_follows_the_package():
    assert set(IMPLEMENTED) == set(losses.__all__) & set(catalog.LOSSES)
    assert "CosineSimilarityLoss" in IMPLEMENTED


@pytest.mark.slow
@pytest.mark.parametrize("name", IMPLEMENTED)
def test_our_loss_trains_one_step_on_the_default_dataset(name, models, tmp_path):
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    entry = catalog.LOSSES[name]
    model = load_model(entry.default_model, device="cpu")
    before = [parameter.detach().clone() for parameter in model.parameters()]
    loss = build_loss(entry, model, models, library=losses)
    data = load_dataset(entry.default_format)["train"].select(range(64))
    if name == "ContrastiveTensionLoss":
        data = tension_pairs(data["sentence"])
    arguments = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=16, report_to="none",
        use_cpu=True, save_strategy="no", logging_strategy="no", disable_tqdm=True)
    result = SentenceTransformerTrainer(model=model, args=arguments, train_dataset=data,
                                        loss=loss).train()
    assert math.isfinite(result.training_loss)
    assert any(not torch.equal(old, new.detach())
               for old, new in zip(before, model.parameters(), strict=True))
