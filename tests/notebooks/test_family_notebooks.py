"""The family notebooks (notebooks/00_start_here and 01..08): generated, complete, runnable.

Fast checks: the .ipynb files on disk are what ``notebooks/build_notebooks.py`` generates (and
carry no outputs); every catalog loss is taught in exactly one family notebook, its family's;
the notebook helpers build a widget for every knob of the catalog and refuse a wrong hand
computation.

Slow check: every notebook runs top to bottom headlessly (nbclient, the venv's kernel, quick
mode: ``LAB_NOTEBOOK_QUICK=1`` shrinks the training runs), raises nowhere, and each loss section
of a family notebook shows its worked example agreeing with our code, at least one plot
(image/png) and a widget.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

from lab import catalog
from tests.notebooks.runner import SharedKernel, error_outputs, outputs_text

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
HEADING = re.compile(r"^## (\d+)\. (\w+)$", re.MULTILINE)  # "## 3. BatchHardTripletLoss"


def _import(name: str) -> ModuleType:
    """A module of notebooks/ (the generator or the helpers), e.g. ``notebooks.helpers``."""
    return importlib.import_module(f"notebooks.{name}")


def _family_files() -> dict[str, Path]:
    build = _import("build_notebooks")
    return {family: NOTEBOOKS / f"{build.notebook_name(family)}.ipynb"
            for family in catalog.FAMILIES}


def _loss_sections(notebook: nbformat.NotebookNode) -> dict[str, list]:
    """The cells of each loss section, by loss name (a section runs to the next heading)."""
    sections: dict[str, list] = {}
    current = None
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            match = HEADING.search(cell.source)
            if match:
                current = match.group(2)
                sections[current] = []
            elif cell.source.startswith("## "):  # e.g. "## Side by side" ends the last one
                current = None
        if current is not None:
            sections[current].append(cell)
    return sections


# ------------------------------------------------------------------------------------- fast
def test_notebooks_on_disk_are_the_generated_ones(tmp_path: Path) -> None:
    """Regenerating gives the committed notebooks, cell for cell, and they carry no outputs."""
    build = _import("build_notebooks")
    written = build.build(tmp_path)
    assert {path.name for path in written} == {"00_start_here.ipynb",
                                               *(path.name for path in _family_files().values())}
    for fresh in written:
        on_disk = NOTEBOOKS / fresh.name
        assert on_disk.is_file(), f"{fresh.name} missing: run python notebooks/build_notebooks.py"
        expected = nbformat.read(fresh, as_version=4)
        actual = nbformat.read(on_disk, as_version=4)
        assert [(c.cell_type, c.source) for c in actual.cells] == \
            [(c.cell_type, c.source) for c in expected.cells], (
            f"{fresh.name} is out of date: run python notebooks/build_notebooks.py")
        for cell in actual.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (
                    f"{fresh.name} was committed with outputs; regenerate it")


def test_every_loss_is_taught_in_exactly_one_family_notebook() -> None:
    """Each catalog loss has one section, in its own family's notebook, in catalog order."""
    taught: dict[str, list[str]] = {}
    for family, path in _family_files().items():
        notebook = nbformat.read(path, as_version=4)
        sections = list(_loss_sections(notebook))
        assert sections == [entry.name for entry in catalog.by_family()[family]], (
            f"{path.name} teaches {sections}")
        for name in sections:
            taught.setdefault(name, []).append(path.name)
    assert sorted(taught) == sorted(catalog.LOSSES)
    assert all(len(files) == 1 for files in taught.values()), taught


def test_setup_cells_import_only_what_the_notebook_uses() -> None:
    """The generator's import list follows the code: a helper appears iff a cell calls it."""
    build = _import("build_notebooks")
    code = 'show(figures, "a")\nresult = lab.train("X")\nlab.models.load_model("tiny")'
    setup = build._setup_cell(code)
    assert "from helpers import show\n" in setup
    assert "import lab.models" in setup and "import losses" not in setup
    assert "playground_explorer" not in setup and "import torch" not in setup


def test_knob_controls_cover_every_catalog_knob() -> None:
    """A widget for every knob of every loss, starting at the catalog default."""
    helpers = _import("helpers")
    for name, entry in catalog.LOSSES.items():
        controls = helpers.knob_controls(name)
        assert list(controls) == [knob.name for knob in entry.knobs]
        for knob in entry.knobs:
            assert controls[knob.name].value == knob.default, (name, knob.name)
    with pytest.raises(KeyError, match="knobs"):
        helpers.knob_controls("TripletLoss", ["no_such_knob"])


def test_agree_refuses_a_wrong_hand_computation(capsys: pytest.CaptureFixture[str]) -> None:
    """``agree`` passes equal values and stops the notebook on different ones."""
    helpers = _import("helpers")
    assert helpers.agree(0.5, 0.50001) == pytest.approx(0.5, abs=1e-4)
    assert "they agree" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"by hand 0\.5 but our code gives 0\.6"):
        helpers.agree(0.5, 0.6)
    with pytest.raises(AssertionError):
        helpers.agree(0.5, float("nan"))


# ------------------------------------------------------------------------------------- slow
@pytest.fixture(scope="module")
def kernel() -> Iterator[SharedKernel]:
    """One kernel for all notebooks (imports are paid once), in quick mode."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_NOTEBOOK_QUICK", "1")
        with SharedKernel(timeout=600) as shared:
            yield shared


def _pngs(cells: list) -> int:
    return sum("image/png" in output.get("data", {})
               for cell in cells if cell.cell_type == "code" for output in cell.outputs)


def _widgets(cells: list) -> int:
    return sum("application/vnd.jupyter.widget-view+json" in output.get("data", {})
               for cell in cells if cell.cell_type == "code" for output in cell.outputs)


@pytest.mark.slow
def test_start_here_runs(kernel: SharedKernel) -> None:
    """00_start_here runs, shows its figures and the overview of every loss."""
    notebook = kernel.run(NOTEBOOKS / "00_start_here.ipynb")
    assert error_outputs(notebook) == []
    assert _pngs(notebook.cells) >= 6  # heatmap, playground x2, curve, map, seen/unseen maps
    assert _widgets(notebook.cells) >= 2
    shown = "\n".join(outputs_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    missing = [name for name in catalog.LOSSES if f"| {name} |" not in shown]
    assert missing == [], f"overview table lacks {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("family", catalog.FAMILIES)
def test_family_notebook_runs(kernel: SharedKernel, family: str) -> None:
    """The family notebook runs; every loss section checks its example, plots and has a widget."""
    path = _family_files()[family]
    notebook = kernel.run(path)
    assert error_outputs(notebook) == []
    sections = _loss_sections(notebook)
    assert list(sections) == [entry.name for entry in catalog.by_family()[family]]
    for name, cells in sections.items():
        shown = "\n".join(outputs_text(cell) for cell in cells if cell.cell_type == "code")
        assert "they agree" in shown, f"{path.name}: {name}'s worked example printed no check"
        assert "THEY DIFFER" not in shown
        assert f"{name} on " in shown, f"{path.name}: {name} printed no training summary"
        assert _pngs(cells) >= 1, f"{path.name}: {name} produced no plot"
        assert _widgets(cells) >= 1, f"{path.name}: {name} shows no widget"
