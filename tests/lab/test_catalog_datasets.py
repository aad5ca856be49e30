"""Every catalog loss's default dataset has the columns and labels the loss needs.

Proved with the oracle: the reference sentence-transformers loss, built by the lab's factory on
the entry's default model, computes a finite value on a batch of the entry's default dataset.
(That ours trains on it is tests/lab/test_training.py.)
"""

from __future__ import annotations

import math

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

import losses
from lab import catalog
from lab.build import build_loss
from lab.data import FORMATS, load_dataset
from lab.models import load_model
from lab.training import tension_pairs

BATCH = 6


@pytest.fixture(scope="module")
def models():
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_model(name, device="cpu")
        return cache[name]

    return get


def batch_of(entry: catalog.LossEntry, model):
    """Tokenised text columns and labels of the first rows of the default training split."""
    rows = load_dataset(entry.default_format)["train"].select(range(BATCH))
    spec = FORMATS[entry.default_format]
    columns = [name for name in rows.column_names if name != spec.label_column]
    texts = [rows[name] for name in columns]
    labels = torch.tensor(rows[spec.label_column]) if spec.label_column else None
    if entry.name == "ContrastiveTensionLoss":
        # It scores (sentence, sentence') pairs, label 1 for the same sentence: lab.train makes
        # them from single sentences the way ContrastiveTensionDataLoader does.
        pairs = tension_pairs(texts[0])
        texts = [pairs["sentence_a"], pairs["sentence_b"]]
        labels = torch.tensor(pairs["label"])
    features = [model.preprocess(column) for column in texts]
    return features, labels


@pytest.mark.slow
@pytest.mark.parametrize("name", list(catalog.LOSSES))
def test_reference_loss_runs_on_the_default_dataset(name, models):
    entry = catalog.LOSSES[name]
    model = models(entry.default_model)
    loss = build_loss(name, model, library=reference, load_guide=models)
    features, labels = batch_of(entry, model)
    value = loss(features, labels)
    total = sum(value.values()) if isinstance(value, dict) else value
    assert math.isfinite(float(total.detach())), f"{name} on {entry.default_format}: {value}"


def test_every_catalog_loss_is_implemented_by_the_package():
    implemented = [name for name in catalog.LOSSES if catalog.is_implemented(name)]
    assert set(implemented) == set(losses.__all__) & set(catalog.LOSSES)
    assert implemented == list(catalog.LOSSES)
