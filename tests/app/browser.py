"""Driving the app in Debian's Chromium with Playwright: shared by the tests and screenshots.py.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium`` (``make test``
installs it with apt when it is missing).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1"}


@contextmanager
def open_page(url: str, blocked: list[str], width: int = 1400, height: int = 1000
              ) -> Iterator[object]:
    """A Chromium page at ``url``; every request to another host is aborted and listed in
    ``blocked`` (so a test can assert the page never tries to leave 127.0.0.1)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})

            def guard(route: object) -> None:
                address = route.request.url
                parts = urlsplit(address)
                if parts.scheme in ("data", "blob", "about") or parts.hostname in LOCAL_HOSTS:
                    route.continue_()
                else:
                    blocked.append(address)
                    route.abort()

            context.route("**/*", guard)
            page = context.new_page()
            page.on("request", lambda request: _note_foreign(request.url, blocked))
            page.goto(url)
            page.get_by_text("Embedding Loss Lab").first.wait_for()
            yield page
        finally:
            browser.close()


def _note_foreign(address: str, blocked: list[str]) -> None:
    parts = urlsplit(address)
    if parts.scheme not in ("data", "blob", "about") and parts.hostname not in LOCAL_HOSTS \
            and address not in blocked:
        blocked.append(address)


def choose(page: object, elem_id: str, option: str) -> None:
    """Pick ``option`` (the text of a menu entry) in the gradio dropdown ``#elem_id``."""
    field = page.locator(f"#{elem_id} input[role='combobox']")
    field.click()
    field.fill(option)
    page.locator("ul[role='listbox'] li", has_text=option).first.click()


def set_number(page: object, elem_id: str, value: float) -> None:
    """Type ``value`` into the gradio number field (or slider's number box) ``#elem_id``."""
    field = page.locator(f"#{elem_id} input[type='number']").first
    field.fill(str(value))
    field.press("Tab")  # gradio takes the value on blur


def open_tab(page: object, name: str) -> None:
    """Click the tab called ``name``."""
    page.get_by_role("tab", name=name).click()


def train(page: object, timeout_s: float = 180) -> None:
    """Press Train and wait until the status says the run is done."""
    page.locator("#train-button").click()
    page.locator("#train-status .lab-done").wait_for(timeout=timeout_s * 1000)


def plot_image(page: object, elem_id: str) -> object:
    """The rendered image of the gradio plot ``#elem_id``."""
    return page.locator(f"#{elem_id} img").first
