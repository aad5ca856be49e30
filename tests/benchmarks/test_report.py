"""benchmarks/report.py: the arithmetic and the markdown of RESULTS.md, on made-up results."""

from __future__ import annotations

import math

import pytest

from benchmarks import report


def result(loss, batch, impl, seconds=None, mb=None, value=1.0, error=None, model="table"):
    entry = {"loss": loss, "batch": batch, "impl": impl, "model": model}
    if error:
        entry["error"] = error
    else:
        entry.update(seconds=seconds, peak_mb=mb, runs=3, value=value)
    return entry


def test_small_helpers():
    assert report.values_agree(1.0, 1.0 + 1e-6)
    assert not report.values_agree(1.0, 1.01)
    assert not report.values_agree(None, 1.0)
    assert report.memory_ratio(0.0, 0.0) == 1.0
    assert report.ratio(1.0, 0.0) == math.inf
    # memory x16 for batch x4: quadratic
    assert report.growth_exponent((1024, 64.0), (4096, 1024.0)) == pytest.approx(2.0)
    assert report.growth_exponent((1024, 16.0), (4096, 1024.0)) == pytest.approx(3.0)
    assert report.growth_exponent((256, 1.0), (1024, 5.0)) is None  # too small to tell


def test_cells():
    assert report.seconds_cell(None) == "–"
    assert report.seconds_cell({"error": "out of memory (> 8 GB)"}) == "out of memory (> 8 GB)"
    assert report.seconds_cell({"seconds": 0.123456}) == "0.1235"
    assert report.mb_cell({"peak_mb": 3.21, "seconds": 1}) == "3.2"
    assert report.mb_cell({"peak_mb": 321.4, "seconds": 1}) == "321"
    assert report.ratio_cell(math.inf) == "∞"
    assert report.ratio_cell(0.0123) == "0.012"
    assert report.ratio_cell(None) == "–"


def test_rows_pair_ours_reference_and_floor_and_the_table_shows_the_ratios():
    results = [result("MultipleNegativesRankingLoss", 4096, "ours", 0.5, 300, value=2.5),
               result("MultipleNegativesRankingLoss", 4096, "reference", 1.0, 600, value=2.5),
               result("MultipleNegativesRankingLoss", 4096, "floor", 0.4, 100),
               result("MSELoss", 256, "ours", 0.01, 2),
               result("MSELoss", 256, "reference", error="over 120 s")]
    rows = report.rows_for(results, "table")
    assert [(row.loss, row.batch) for row in rows] == [("MultipleNegativesRankingLoss", 4096),
                                                       ("MSELoss", 256)]
    mnrl, mse = rows
    assert mnrl.time_ratio == pytest.approx(0.5)
    assert mnrl.floor_ratio == pytest.approx(1.25)
    assert mnrl.agree is True
    assert mse.time_ratio is None and mse.agree is None
    lines = report.loss_table(rows, with_floor=True)
    assert lines[0].startswith("| loss | batch |") and "ours/floor" in lines[0]
    assert "| MultipleNegativesRankingLoss | 4096 | 0.5 | 1 | 0.50 |" in lines[2]
    assert lines[2].endswith("| yes | 0.4 | 1.25 |")
    assert "over 120 s" in lines[3]
    assert report.rows_for(results, "tiny-bert") == []


def test_an_alternating_measurement_decides_the_ratio_and_is_marked():
    ours = result("A", 256, "ours", 0.012, 10)
    ours["alternating"] = {"reference": {"ours": 0.0101, "reference": 0.0100, "runs": 300},
                           "floor": {"ours": 0.0100, "floor": 0.0050, "runs": 300}}
    rows = report.rows_for([ours, result("A", 256, "reference", 0.010, 10),
                            result("A", 256, "floor", 0.004, 1)], "table")
    assert rows[0].time_ratio == pytest.approx(1.01)  # not 1.2 from the fresh processes
    assert rows[0].floor_ratio == pytest.approx(2.0)
    line = report.loss_table(rows, with_floor=True)[2]
    assert "| 1.01 ⇄ |" in line and line.endswith("| 2.00 ⇄ |")
    assert report.target_no_regression(rows).status == "met"
    assert not report.slower_and_heavier(ours, rows[0].reference)[0]
    ours["alternating"]["reference"]["ours"] = 0.0125  # still slower side by side: not met
    target = report.target_no_regression(rows)
    assert target.status == "not met" and "timed alternating" in target.detail


def test_no_regression_target_flags_slower_and_heavier_losses_only():
    fine = [result("A", 256, "ours", 1.05, 100), result("A", 256, "reference", 1.0, 100)]
    assert report.target_no_regression(report.rows_for(fine, "table")).status == "met"
    slower = [result("A", 256, "ours", 1.2, 100), result("A", 256, "reference", 1.0, 100)]
    target = report.target_no_regression(report.rows_for(slower, "table"))
    assert target.status == "not met" and "A @ 256: 1.20x the time" in target.detail
    heavier = [result("A", 256, "ours", 1.0, 200), result("A", 256, "reference", 1.0, 100)]
    assert report.target_no_regression(report.rows_for(heavier, "table")).status == "not met"
    noise = [result("A", 256, "ours", 1.0, 4), result("A", 256, "reference", 1.0, 1)]
    assert report.target_no_regression(report.rows_for(noise, "table")).status == "met"
    # The reference running out of memory is no regression of ours; ours failing is.
    survived = [result("A", 4096, "ours", 1.0, 100),
                result("A", 4096, "reference", error="out of memory (> 8 GB)")]
    assert report.target_no_regression(report.rows_for(survived, "table")).status == "met"
    failed = [result("A", 256, "ours", error="over 120 s"), result("A", 256, "reference", 1, 1)]
    assert report.target_no_regression(report.rows_for(failed, "table")).status == "not met"
    assert report.target_no_regression([]).status == "not measured"


def batch_all(seconds_4096=1.5, mb_4096=400.0, ours_1024=(0.1, 60.0), value=3.0):
    return [result("BatchAllTripletLoss", 1024, "ours", *ours_1024, value=value),
            result("BatchAllTripletLoss", 1024, "reference", 5.0, 3600, value=3.0),
            result("BatchAllTripletLoss", 4096, "ours", seconds_4096, mb_4096),
            result("BatchAllTripletLoss", 4096, "reference", error="out of memory (> 8 GB)")]


def test_batch_all_target_reads_every_condition():
    met = report.target_batch_all(report.rows_for(batch_all(), "table"))
    assert met.status == "met"
    assert "50.0x faster" in met.detail and "60.0x leaner" in met.detail
    for spoiled in (batch_all(seconds_4096=2.5), batch_all(mb_4096=1500),
                    batch_all(ours_1024=(0.6, 60.0)), batch_all(value=3.1),
                    batch_all(mb_4096=60.0 * 4**3)):  # cubic growth from 1024 to 4096
        assert report.target_batch_all(report.rows_for(spoiled, "table")).status == "not met"


def test_quadratic_memory_target_names_the_cubic_losses():
    results = [result("Cubic", 1024, "ours", 1, 50), result("Cubic", 4096, "ours", 1, 50 * 64),
               result("Fine", 1024, "ours", 1, 50), result("Fine", 4096, "ours", 1, 50 * 16)]
    target = report.target_quadratic_memory(report.rows_for(results, "table"))
    assert target.status == "not met"
    assert "Cubic (batch^3.0)" in target.detail and "Fine" not in target.detail.split("Ours")[1]


def test_gist_cached_floor_and_tiny_targets():
    gist = [result("GISTEmbedLoss", 256, "ours", 0.1, 20),
            result("GISTEmbedLoss", 4096, "ours", 3.0, 600),
            result("GISTEmbedLoss", 4096, "reference", error="out of memory (> 8 GB)")]
    assert report.target_gist(report.rows_for(gist, "table")).status == "met"
    gist[1] = result("GISTEmbedLoss", 4096, "ours", error="out of memory (> 8 GB)")
    assert report.target_gist(report.rows_for(gist, "table")).status == "not met"

    cached = [result("C", 256, "ours", 1, 100, model="tiny-bert"),
              result("C", 4096, "ours", 9, 150, model="tiny-bert")]
    rows = report.rows_for(cached, "tiny-bert")
    assert report.target_cached(rows, ("C",)).status == "met"
    cached[1] = result("C", 4096, "ours", 9, 250, model="tiny-bert")
    target = report.target_cached(report.rows_for(cached, "tiny-bert"), ("C",))
    assert target.status == "not met" and "2.50x" in target.detail
    cached[1] = result("C", 1024, "ours", 3, 150, model="tiny-bert")  # a quick run's batch
    target = report.target_cached(report.rows_for(cached, "tiny-bert"), ("C",))
    assert target.status == "not measured" and "1.50x at batch 1024, not 4096" in target.detail

    floors = [result("M", 4096, "ours", 0.45, 10), result("M", 4096, "floor", 0.32, 10)]
    assert report.target_floor(report.rows_for(floors, "table"), ["M"]).status == "met"
    floors[0] = result("M", 4096, "ours", 0.60, 10)
    assert report.target_floor(report.rows_for(floors, "table"), ["M"]).status == "not met"

    speed = {"speedup": 2.5, "steps": 50, "full": {"steps_per_s": 10.0, "parameters": 11.7e6,
             "topic_knn_accuracy": 0.434, "metrics_after": {"mrr": 0.5, "alignment": 0.8}},
             "tiny": {"steps_per_s": 25.0, "parameters": 3e6, "topic_knn_accuracy": 0.434,
                      "metrics_after": {"mrr": 0.5, "alignment": 0.8}}}
    assert report.target_tiny(speed).status == "met"
    speed["tiny"]["metrics_after"] = {"mrr": 0.5, "alignment": 0.9}  # alignment: lower is better
    target = report.target_tiny(speed)
    assert target.status == "not met" and "alignment" in target.detail
    assert report.target_tiny(None).status == "not measured"


def test_render_writes_every_section():
    info = {"cpu": "Test CPU", "cores": 2, "ram_gb": 8.0, "torch_threads": 2,
            "versions": {"python": "3.11", "torch": "2.13"}, "date": "2026-01-01 00:00",
            "load_average": (0.1, 0.2)}
    results = [*batch_all(), result("C", 256, "ours", 1, 100, model="tiny-bert"),
               result("C", 256, "reference", 1, 100, model="tiny-bert")]
    page = report.render(results, info=info, speed=None, floors={"M": "a·pᵀ"},
                         floor_targets=["M"], cached=("C",), command="make bench")
    for needed in ("`make bench`", "Test CPU, 2 cores", "torch 2.13", "## Targets",
                   "## Each loss alone", "## With tiny-bert", "- M: a·pᵀ", "## Method",
                   "| BatchAllTripletLoss | 4096 | 1.5 | out of memory (> 8 GB) |"):
        assert needed in page, needed
    assert "| met |" in page and "not measured" in page


def test_machine_describes_this_computer():
    info = report.machine()
    assert info["cores"] >= 1 and info["versions"]["torch"] != "absent"
    assert info["cpu"]
