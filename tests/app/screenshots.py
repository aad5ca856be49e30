"""Screenshots of the app's four tabs, and the time of the default run, in a real browser.

    .venv/bin/python tests/app/screenshots.py [--out docs/screenshots]

Serves the app on 127.0.0.1, opens it in Debian's Chromium, presses Train with the page's
defaults (and times it until the status says done), runs the default comparison, takes ten
playground steps, opens a loss in Learn, and saves ``train.png``, ``compare.png``,
``playground.png`` and ``learn.png``. Not a test (pytest does not collect it); the browser
tests in test_browser.py check the same page.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    """Take the screenshots; print where they went and how long the default run took."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"),
                        help="folder for the PNGs (default: docs/screenshots)")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    import app as lab_app
    from tests.app.browser import choose, open_page, open_tab, plot_image, train
    from tests.app.conftest import free_port

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    blocks, url = lab_app.launch(host="127.0.0.1", port=free_port(), prevent_thread_lock=True,
                                 quiet=True)
    blocked: list[str] = []
    try:
        with open_page(url, blocked, width=1400, height=1100) as page:
            started = time.perf_counter()
            train(page, timeout_s=600)
            seconds = time.perf_counter() - started
            status = page.locator("#train-status").inner_text()
            page.locator("#train-downloads").get_by_text("-run").wait_for(timeout=120_000)
            page.screenshot(path=str(out / "train.png"), full_page=True)

            open_tab(page, "Compare")
            page.locator("#compare-button").click()
            page.locator("#compare-status .lab-done").wait_for(timeout=600_000)
            page.screenshot(path=str(out / "compare.png"), full_page=True)

            open_tab(page, "Playground")
            plot_image(page, "pg-plot").wait_for()
            page.locator("#pg-run").click()
            page.locator("#pg-text").get_by_text("100 steps so far").wait_for(timeout=120_000)
            page.screenshot(path=str(out / "playground.png"), full_page=True)

            open_tab(page, "Learn")
            choose(page, "learn-loss", "MultipleNegativesRankingLoss")
            page.locator("#learn-page").get_by_role(
                "heading", name="MultipleNegativesRankingLoss").wait_for()
            page.screenshot(path=str(out / "learn.png"), full_page=True)
    finally:
        blocks.close()
    defaults = lab_app.DEFAULTS
    print(f"default run ({defaults.loss}, {defaults.steps} steps, batch {defaults.batch_size}, "
          f"{defaults.snapshots} snapshots): {seconds:.1f} s from pressing Train to the "
          f"results on the page; status: {status!r}")
    for name in ("train", "compare", "playground", "learn"):
        print(out / f"{name}.png")
    if blocked:
        print(f"requests outside 127.0.0.1 (blocked): {blocked}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
