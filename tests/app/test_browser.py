"""The app in a real browser: Debian's Chromium driven by Playwright, against 127.0.0.1.

One page for the module: choosing a batch triplet loss and training it live, the other tabs, and
(checked last) that the page never sent a request anywhere but 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.browser import (
    CHROMIUM,
    choose,
    open_page,
    open_tab,
    plot_image,
    set_number,
    train,
)


@pytest.fixture(scope="module")
def blocked() -> list[str]:
    """Every request the page tried to send to a host other than 127.0.0.1."""
    return []


@pytest.fixture(scope="module")
def page(app_url: str, blocked: list[str]) -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package "
                    f"(apt-get install chromium)")
    with open_page(app_url, blocked) as page:
        yield page


@pytest.mark.slow
def test_train_a_batch_triplet_loss_live_and_see_map_curve_and_triplets(
        page: object, tmp_path: Path):
    choose(page, "train-loss", "BatchSemiHardTripletLoss")
    note = page.locator("#train-data-note")
    note.get_by_text("BatchSemiHardTripletLoss").wait_for()
    assert "sentence-label" in note.inner_text()
    # The loss's own knobs appear, from the catalog: its margin and distance metric.
    assert page.locator("#train-knob-1-number").get_by_text("margin").is_visible()
    set_number(page, "train-steps", 4)
    set_number(page, "train-batch", 16)
    set_number(page, "train-snapshots", 2)
    train(page)
    assert "Done: 4 steps" in page.locator("#train-status").inner_text()
    for plot in ("train-loss-plot", "train-map-plot", "train-triplet-plot", "train-hist-plot"):
        image = plot_image(page, plot)
        image.wait_for()
        assert image.get_attribute("src").startswith("data:image/"), plot
        assert image.evaluate("img => img.complete && img.naturalWidth > 100"), plot
    table = page.locator("#train-triplet-table [role='grid']")
    assert int(table.get_attribute("aria-rowcount")) > 1, "the mined-triplet table has rows"
    first_row = page.locator("#train-triplet-table [role='row']").nth(1).inner_text()
    assert len(first_row) > 40, first_row  # real sentences of the teaching corpus
    assert "topic_knn_accuracy" in page.locator("#train-metrics").inner_text()
    downloads = page.locator("#train-downloads")
    downloads.get_by_text("BatchSemiHardTripletLoss-run").wait_for(timeout=90_000)
    assert "BatchSemiHardTripletLoss-model" in downloads.inner_text()
    page.screenshot(path=str(tmp_path / "train.png"), full_page=True)
    assert (tmp_path / "train.png").stat().st_size > 10_000


def test_learn_explains_the_chosen_loss_and_sends_it_to_train(page: object):
    open_tab(page, "Learn")
    choose(page, "learn-loss", "CoSENTLoss")
    learn = page.locator("#learn-page")
    learn.get_by_role("heading", name="CoSENTLoss").wait_for()
    assert "When to choose it" in learn.inner_text() and "pair-score" in learn.inner_text()
    page.locator("#learn-train").click()
    page.locator("#train-data-note").get_by_text("CoSENTLoss").wait_for()
    assert page.get_by_role("tab", name="Train").get_attribute("aria-selected") == "true"


def test_playground_steps_redraw_the_points(page: object):
    open_tab(page, "Playground")
    summary = page.locator("#pg-summary")
    plot_image(page, "pg-plot").wait_for()
    before = plot_image(page, "pg-plot").get_attribute("src")
    page.locator("#pg-step").click()
    page.locator("#pg-text").get_by_text("10 steps so far").wait_for()
    assert plot_image(page, "pg-plot").get_attribute("src") != before
    assert summary.count() == 1


def test_the_page_sends_no_request_outside_127_0_0_1(page: object, blocked: list[str]):
    open_tab(page, "Compare")
    page.locator("#compare-button").wait_for()
    open_tab(page, "Train")
    page.wait_for_timeout(500)
    assert blocked == []
