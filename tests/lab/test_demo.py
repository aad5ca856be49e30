"""The demo that `make lab` runs: two embedding maps, and MiniLM knows the topics better."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lab.demo import run_demo


@pytest.mark.slow
def test_demo_writes_one_png_per_model_and_minilm_separates_topics_better(tmp_path, capsys):
    paths = run_demo(tmp_path, device="cpu")
    assert [path.name for path in paths] == ["embedding-map-tiny.png", "embedding-map-minilm.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 20_000
    printed = capsys.readouterr().out
    accuracy = {line.split()[0]: float(line.split("accuracy ")[1].split("%")[0])
                for line in printed.splitlines() if "accuracy" in line}
    assert accuracy["minilm"] > accuracy["tiny"] + 10
    assert str(tmp_path) in printed


def test_command_line_help_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "lab", "--help"], capture_output=True,
                            text=True, check=True)
    assert "demo" in result.stdout and "losses" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "lab", "dance"], capture_output=True, text=True)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr
