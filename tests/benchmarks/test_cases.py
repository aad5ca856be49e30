"""benchmarks/cases.py: every catalog loss can be benchmarked, on identical inputs for both
implementations, and the floors compute what they say."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks import cases
from lab import catalog


def test_every_catalog_loss_has_inputs_and_a_plan():
    tasks = cases.plan(list(catalog.LOSSES), quick=False)
    planned = {task["loss"] for task in tasks}
    assert planned == set(catalog.LOSSES)
    generator = torch.Generator().manual_seed(0)
    for name in catalog.LOSSES:
        columns, label_kind = cases.input_layout(name)
        assert columns >= 1
        cases.make_labels(label_kind, 4, columns, generator)  # a kind make_labels knows
        mine = [task for task in tasks if task["loss"] == name and task["impl"] == "ours"]
        theirs = [task for task in tasks if task["loss"] == name and task["impl"] == "reference"]
        assert len(mine) == len(theirs) >= 1, name  # ours and the reference, batch by batch
        floors = [task for task in tasks if task["loss"] == name and task["impl"] == "floor"]
        assert bool(floors) == (name in cases.FLOORS), name


def test_quick_plan_reaches_the_batches_the_targets_need():
    tasks = cases.plan(list(catalog.LOSSES), quick=True)

    def batches(loss, impl="ours", model="table"):
        return {task["batch"] for task in tasks
                if task["loss"] == loss and task["impl"] == impl and task["model"] == model}

    assert {1024, 4096} <= batches("BatchAllTripletLoss")
    assert 4096 in batches("GISTEmbedLoss") and 4096 in batches("CachedGISTEmbedLoss")
    for name, floor in cases.FLOORS.items():  # quick: only the floors that are targets
        assert 4096 in batches(name) and (4096 in batches(name, "floor")) == floor.target, name
    for name in cases.CACHED_LOSSES:  # quick: a smaller large batch (the target reads 4096)
        assert batches(name, model="tiny-bert") == set(cases.CACHED_SCALING_QUICK), name
    full = cases.plan(list(cases.CACHED_LOSSES), quick=False)
    assert {task["batch"] for task in full if task["model"] == "tiny-bert"} == set(
        cases.CACHED_SCALING_BATCHES)
    for name in cases.TRANSFORMER_LOSSES:
        assert batches(name, model="tiny-bert") and not batches(name), name


def test_plan_honours_a_batch_filter():
    tasks = cases.plan(["MSELoss", "MultipleNegativesRankingLoss"], quick=False, batches=[64])
    assert {task["batch"] for task in tasks} == {64}
    assert [task["impl"] for task in tasks] == ["ours", "reference", "ours", "reference",
                                                 "floor"]


def test_labels_of_every_kind():
    generator = torch.Generator().manual_seed(0)
    assert cases.make_labels(None, 8, 2, generator) is None
    classes = cases.make_labels("classes", 64, 1, generator)
    assert torch.bincount(classes).tolist() == [64 // cases.CLASSES] * cases.CLASSES
    scores = cases.make_labels("scores", 100, 2, generator)
    assert set((scores * 4).tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}  # dyadic: exact in float32
    assert cases.make_labels("teacher", 5, 1, generator).shape == (5, cases.DIM)
    assert cases.make_labels("teacher_scores", 5, 3, generator).shape == (5, 2)
    with pytest.raises(ValueError, match="unknown label kind"):
        cases.make_labels("colours", 5, 1, generator)


def test_table_model_looks_rows_up_and_trains_them():
    model = cases.table_model(6)
    features = {"input_ids": torch.tensor([4, 1])}
    out = model(features)["sentence_embedding"]
    assert torch.equal(out, model.table[[4, 1]])
    assert out.requires_grad
    (2 * out).sum().backward()
    out = model({"input_ids": torch.tensor([1])})["sentence_embedding"]
    out.sum().backward()
    grad = model.table_grad  # accumulated in place: a step costs its rows, not the table
    assert grad[4].eq(2).all() and grad[1].eq(3).all() and grad[[0, 2, 3, 5]].eq(0).all()
    assert model.get_embedding_dimension() == cases.DIM and model[0] is model


@pytest.mark.parametrize("name", ["MultipleNegativesRankingLoss", "BatchAllTripletLoss",
                                  "GISTEmbedLoss", "MSELoss"])
def test_both_implementations_compute_the_same_value_on_the_bench_inputs(name):
    ours = cases.loss_step(name, 32, "ours")()
    reference = cases.loss_step(name, 32, "reference")()
    assert math.isfinite(ours)
    assert ours == pytest.approx(reference, rel=1e-5)


def test_the_floor_of_mnrl_is_the_product_of_the_two_columns():
    step = cases.floor_step("MultipleNegativesRankingLoss", 8)
    generator = torch.Generator().manual_seed(0)
    anchors = torch.randn(8, cases.DIM, generator=generator)
    positives = torch.randn(8, cases.DIM, generator=generator)
    assert step() == pytest.approx(float(anchors[0] @ positives[0]), rel=1e-5)
    assert cases.FLOORS["MatryoshkaLoss"].products[-1].width == 32


def test_a_gradient_cache_floor_also_runs_the_model_over_its_mini_batches():
    table = cases.table_model(2 * 70)
    passes = cases.mini_batch_passes("CachedMultipleNegativesRankingLoss", 70,
                                     torch.Generator().manual_seed(0), table)
    passes()
    # Every row of both columns (2 x 70 texts) got its gradient once, mini-batch by mini-batch.
    touched = table.table_grad.abs().sum(dim=1) > 0
    assert touched.all() and touched.numel() == 140
    assert cases.FLOORS["CachedMultipleNegativesRankingLoss"].gradient_cache
    assert not cases.FLOORS["MultipleNegativesRankingLoss"].gradient_cache


def test_every_floor_runs_on_a_small_batch():
    for name in cases.FLOORS:
        assert math.isfinite(cases.floor_step(name, 16)()), name


def test_run_task_measures_a_floor():
    measured = cases.run_task({"loss": "GlobalOrthogonalRegularizationLoss", "batch": 16,
                               "impl": "floor", "repeats": 2, "threads": 1,
                               "min_time_s": 0.0})  # no extra calls for a fast step
    assert measured["runs"] == 2 and measured["seconds"] >= 0 and measured["peak_mb"] >= 0


def test_run_task_alternates_ours_and_the_reference_in_one_process():
    measured = cases.run_task({"loss": "MSELoss", "batch": 16, "impl": "alternate",
                               "sides": ["ours", "reference"], "threads": 1,
                               "min_time_s": 0.05, "budget_s": 5})
    timed = measured["alternating"]
    assert set(timed) == {"ours", "reference"}
    assert timed["ours"]["runs"] == timed["reference"]["runs"] >= 3
    assert all(side["seconds"] > 0 for side in timed.values())
