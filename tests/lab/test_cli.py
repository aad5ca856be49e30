"""python -m lab train / losses: complete help, one clear line for every mistake, a real run."""

from __future__ import annotations

import json

import pytest

from lab import catalog
from lab.__main__ import main, parse_knob


@pytest.mark.parametrize(("text", "expected"), [
    ("margin=2", ("margin", 2)),
    ("margin=0.5", ("margin", 0.5)),
    ("contrast_anchors=false", ("contrast_anchors", False)),
    ("matryoshka_dims=(384, 128, 32)", ("matryoshka_dims", (384, 128, 32))),
    ("distance_metric=euclidean", ("distance_metric", "euclidean")),
    ("hardness_mode=None", ("hardness_mode", None)),
])
def test_knob_values_parse_as_literals_or_text(text, expected):
    assert parse_knob(text) == expected


def test_train_help_lists_every_option_and_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--loss", "--model", "--dataset", "--steps", "--batch-size",
                   "--learning-rate", "--device", "--seed", "--snapshots", "--knob", "--out"):
        assert option in text
    assert "examples:" in text and "python -m lab losses --knobs" in text


def test_losses_lists_every_catalog_loss_with_its_formats_and_knobs(capsys):
    assert main(["losses", "--knobs"]) == 0
    text = capsys.readouterr().out
    for entry in catalog.LOSSES.values():
        assert entry.name in text
    assert "triplet_margin=5" in text and "loss='MultipleNegativesRankingLoss'" in text


@pytest.mark.parametrize(("arguments", "words"), [
    (["--loss", "TripletLos"], "Unknown loss 'TripletLos'"),
    (["--loss", "TripletLoss", "--knob", "margin=1"], "its knobs: distance_metric, triplet_margin"),
    (["--loss", "TripletLoss", "--knob", "margin"], "expects name=value"),
    (["--loss", "CoSENTLoss", "--dataset", "triplet"], "takes pair-score, pair-label"),
])
def test_a_mistake_is_one_clear_line_and_exit_status_2(arguments, words, capsys, tmp_path):
    status = main(["train", *arguments, "--steps", "1", "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert error.startswith("error: ") and words in error and "\n" not in error
    assert not (tmp_path / "run").exists()


def test_train_writes_a_run_folder_with_plots_and_prints_where(capsys, tmp_path):
    out = tmp_path / "run"
    status = main(["train", "--loss", "BatchSemiHardTripletLoss", "--steps", "3",
                   "--batch-size", "16", "--snapshots", "3", "--device", "cpu",
                   "--knob", "margin=1.5", "--out", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert f"Wrote the run to {out}/" in printed and "topic_knn_accuracy" in printed
    record = json.loads((out / "result.json").read_text())
    assert record["knobs"] == {"margin": 1.5} and record["steps_done"] == 3
    for name in ("loss-curve", "embedding-map-before-after", "embedding-map-snapshots",
                 "similarity-histograms", "active-triplets", "mined-triplets-map",
                 "mined-triplets-table"):
        assert (out / f"{name}.png").stat().st_size > 5_000, name
