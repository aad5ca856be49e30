"""The built-in datasets train with sentence-transformers' own trainer and reference losses."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

# (format, reference loss, extra loss arguments)
CASES = [
    ("sentence-label", "BatchHardTripletLoss", {}),
    ("pair", "MultipleNegativesRankingLoss", {}),
    ("triplet", "TripletLoss", {}),
    ("n-tuple", "MultipleNegativesRankingLoss", {}),
    ("pair-score", "CoSENTLoss", {}),
    ("pair-label", "ContrastiveLoss", {}),
    ("nli", "SoftmaxLoss", {"embedding_dimension": 384, "num_labels": 3}),
    ("teacher-embedding", "MSELoss", {}),
    ("teacher-margin", "MarginMSELoss", {}),
    ("teacher-scores", "DistillKLDivLoss", {}),
]


@pytest.fixture(scope="module")
def tiny():
    from lab.models import load_model

    return load_model("tiny", device="cpu")


@pytest.mark.parametrize(("fmt", "loss_name", "loss_options"), CASES, ids=[c[0] for c in CASES])
def test_reference_trainer_runs_on_built_in_dataset(
    tiny, tmp_path: Path, fmt: str, loss_name: str, loss_options: dict
) -> None:
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer import losses

    from lab.data import load_dataset

    model = copy.deepcopy(tiny)
    before = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    loss = getattr(losses, loss_name)(model, **loss_options)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=8, report_to="none",
        use_cpu=True, save_strategy="no", logging_steps=1, disable_tqdm=True,
    )
    train = load_dataset(fmt)["train"].select(range(32))
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=loss)
    output = trainer.train()

    assert output.global_step == 2
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2
    assert all(math.isfinite(value) for value in logged), logged
    assert math.isfinite(output.training_loss)
    after = model.state_dict()
    changed = [name for name, tensor in before.items() if not torch.equal(tensor, after[name])]
    assert changed, "no model weight changed after two optimiser steps"
