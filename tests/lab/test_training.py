"""lab.train: every catalog loss trains; what it records is real; runs save, load and stop."""

from __future__ import annotations

import math
import threading
from collections import Counter

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

import lab
from lab import catalog
from lab.build import KnobError
from lab.data import load_dataset
from lab.data.validate import DataFormatError
from lab.models import load_model
from lab.training import TrainResult, tension_pairs


def short_run(name: str, **options):
    defaults = {"steps": 2, "batch_size": 8, "snapshots": 1, "progress_bar": False,
                "device": "cpu"}
    return lab.train(name, **{**defaults, **options})


@pytest.mark.slow
@pytest.mark.parametrize("name", list(catalog.LOSSES))
def test_every_catalog_loss_trains_on_its_default_model_and_dataset(name):
    entry = catalog.LOSSES[name]
    model = load_model(entry.default_model, device="cpu")
    before = [parameter.detach().clone() for parameter in model.parameters()]
    result = short_run(name, model=model)
    assert result.data_format == entry.default_format
    assert result.steps_done == 2 and not result.stopped
    assert [step for step, _ in result.curves["loss"]] == [1, 2]
    assert all(math.isfinite(value) for _, value in result.curves["loss"])
    assert [evaluation["step"] for evaluation in result.evaluations] == [0, 2]
    assert "topic_knn_accuracy" in result.metrics_after
    assert result.snapshots[0][1].shape == (len(result.probe.texts),
                                            model.get_embedding_dimension())
    changed = any(not torch.equal(old, new.detach())
                  for old, new in zip(before, model.parameters(), strict=True))
    # A loss of exactly 0 (e.g. OnlineContrastiveLoss on a batch without hard pairs) has no
    # gradient; any other loss must move the model.
    assert changed or all(value == 0 for _, value in result.curves["loss"]), "nothing trained"
    assert result.batch_sampler == entry.batch_sampler


def test_batch_samplers_follow_the_loss():
    assert catalog.get("BatchHardTripletLoss").batch_sampler == "group_by_label"
    assert catalog.get("MultipleNegativesRankingLoss").batch_sampler == "no_duplicates"
    assert catalog.get("GISTEmbedLoss").batch_sampler == "no_duplicates"
    assert catalog.get("CoSENTLoss").batch_sampler == "batch_sampler"


@pytest.fixture(scope="module")
def batch_hard_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    result = lab.train("BatchHardTripletLoss", steps=6, batch_size=16, snapshots=2,
                       progress_bar=False, device="cpu", out_dir=folder, margin=2.0)
    return result, folder


def test_batch_triplet_batches_are_label_balanced_and_triplets_carry_their_texts(batch_hard_run):
    result, _ = batch_hard_run
    label_of = dict(zip(*load_dataset("sentence-label")["train"][:].values(), strict=True))
    assert [record.step for record in result.triplets] == [1, 3, 6]
    for record in result.triplets:
        counts = Counter(record.labels)
        assert len(counts) >= 2 and min(counts.values()) >= 2, counts
        assert [label_of[text] for text in record.texts] == record.labels
        assert record.embeddings.shape == (16, 384)
        # Batch hard: one triplet per anchor, positive shares its label, negative does not.
        assert len(record.anchor) == 16
        for anchor, positive, negative in zip(record.anchor, record.positive, record.negative,
                                              strict=True):
            assert record.labels[anchor] == record.labels[positive]
            assert record.labels[anchor] != record.labels[negative]
        assert record.num_active == sum(record.active)
    assert [step for step, _ in result.active_fraction] == list(range(1, 7))
    assert all(0.0 <= fraction <= 1.0 for _, fraction in result.active_fraction)


def test_a_run_folder_round_trips_and_its_model_loads_in_sentence_transformers(batch_hard_run):
    result, folder = batch_hard_run
    assert result.run_dir == folder
    loaded = TrainResult.load(folder)
    assert loaded.curves == result.curves
    assert loaded.evaluations == result.evaluations
    assert loaded.knobs == {"margin": 2.0} and loaded.probe == result.probe
    for (step, embeddings), (loaded_step, loaded_embeddings) in zip(
            result.snapshots, loaded.snapshots, strict=True):
        assert step == loaded_step
        np.testing.assert_array_equal(embeddings, loaded_embeddings)
    assert [vars(record).keys() for record in loaded.triplets] == [
        vars(record).keys() for record in result.triplets]
    np.testing.assert_array_equal(loaded.triplets[0].embeddings, result.triplets[0].embeddings)
    assert loaded.triplets[0].texts == result.triplets[0].texts
    texts = list(result.probe.texts[:5])
    reloaded = SentenceTransformer(str(folder / "model"), device="cpu")
    np.testing.assert_allclose(reloaded.encode(texts), result.model.encode(texts), atol=1e-6)
    np.testing.assert_allclose(result.model.encode(list(result.probe.texts)),
                               result.snapshots[-1][1], atol=1e-5)


def test_the_same_seed_gives_the_same_run():
    first = short_run("MultipleNegativesRankingLoss", steps=3)
    second = short_run("MultipleNegativesRankingLoss", steps=3)
    third = short_run("MultipleNegativesRankingLoss", steps=3, seed=1)
    assert first.curves["loss"] == second.curves["loss"]
    assert first.curves["loss"] != third.curves["loss"]


def test_a_callback_sees_every_step_and_can_stop_cleanly(tmp_path):
    seen = []

    def on_update(progress):
        seen.append((progress.step, progress.total_steps, progress.loss))
        return progress.step == 3

    result = short_run("CoSENTLoss", steps=10, snapshots=5, on_update=on_update,
                       out_dir=tmp_path)
    assert [step for step, _, _ in seen] == [1, 2, 3] and seen[0][1] == 10
    assert result.stopped and result.steps_done == 3
    assert [evaluation["step"] for evaluation in result.evaluations] == [0, 2, 3]
    assert TrainResult.load(tmp_path, load_model=False).steps_done == 3


def test_a_stop_event_from_another_thread_stops_after_the_current_step():
    stop = threading.Event()

    def on_update(progress):
        if progress.step == 2:
            stop.set()

    result = short_run("CoSENTLoss", steps=10, on_update=on_update, stop_event=stop)
    assert result.stopped and result.steps_done == 2


def test_named_loss_components_are_recorded():
    result = short_run("GlobalOrthogonalRegularizationLoss")
    assert {"loss", "gor_mean", "gor_second_moment"} <= set(result.curves)


def test_wrappers_take_the_wrapped_loss_as_a_knob_and_its_data_format():
    result = short_run("MatryoshkaLoss", inner_loss="CoSENTLoss")
    assert result.data_format == "pair-score"
    assert result.knobs["loss"] == "CoSENTLoss"
    curves = result.extra_curves["matryoshka"]
    assert set(curves) == {"before", "after"}
    assert sorted(curves["after"]) == [32, 64, 128, 256, 384]


def test_contrastive_tension_gets_pairs_made_from_single_sentences():
    pairs = tension_pairs([f"sentence {index}" for index in range(9)])
    assert pairs["label"][::4] == [1.0, 1.0, 1.0]
    assert all(a == b for a, b, label in zip(pairs["sentence_a"], pairs["sentence_b"],
                                             pairs["label"], strict=True) if label == 1.0)
    assert all(a != b for a, b, label in zip(pairs["sentence_a"], pairs["sentence_b"],
                                             pairs["label"], strict=True) if label == 0.0)


def test_a_dataset_of_the_user_is_accepted_in_any_of_the_losses_formats():
    data = load_dataset("triplet")
    result = short_run("MultipleNegativesRankingLoss", dataset=data)
    assert result.data_format == "triplet"
    assert "triplet_accuracy" in result.metrics_after


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda: short_run("TripletLos"), KnobError, "Valid names"),
    (lambda: short_run("TripletLoss", margin=1.0), KnobError, "triplet_margin"),
    (lambda: short_run("TripletLoss", distance_metric="chebyshev"), KnobError, "euclidean"),
    (lambda: short_run("TripletLoss", dataset="pair-score"), DataFormatError, "triplet"),
    (lambda: short_run("CoSENTLoss", dataset=load_dataset("triplet")["train"]), DataFormatError,
     "sentence1"),
    (lambda: short_run("BatchHardTripletLoss", batch_size=7), ValueError, "even number"),
    (lambda: short_run("MatryoshkaLoss", model="tiny-bert"), KnobError, "<= 128"),
])
def test_mistakes_get_one_clear_line(call, error, words):
    with pytest.raises(error, match=words):
        call()
