"""One app server for every test of tests/app: served on 127.0.0.1 on a free port."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def app_url() -> Iterator[str]:
    """The URL of the app, launched once for the whole test session and closed after it."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import app as lab_app

    blocks, url = lab_app.launch(host="127.0.0.1", port=free_port(), prevent_thread_lock=True,
                                 quiet=True)
    try:
        yield url
    finally:
        blocks.close()
