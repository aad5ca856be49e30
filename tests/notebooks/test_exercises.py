"""The exercise notebooks: built by their generator, and run headlessly with the venv's kernel.

A solution notebook must run to the end with every check passing; a blank notebook must also run
to the end (its check catches the stub's NotImplementedError) and show the friendly "not
implemented yet" message, with no error and no traceback anywhere. The worked examples must
print the numbers their text computes by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from lab.exercises import EXERCISES
from notebooks.exercises import build_exercises as builder
from tests.notebooks.runner import SharedKernel, cells_tagged, error_outputs, outputs_text

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "notebooks" / "exercises"


CONTENTS = builder.CONTENTS


@pytest.fixture(scope="module")
def kernel() -> Iterator[SharedKernel]:
    with SharedKernel(timeout=120) as shared:
        yield shared


def test_every_exercise_has_a_blank_and_a_solution_notebook() -> None:
    assert [content.name for content in CONTENTS] == [exercise.name for exercise in EXERCISES]
    expected = {builder.notebook_path(content, solution)
                for content in CONTENTS for solution in (False, True)}
    found = set(FOLDER.glob("*.ipynb")) | set((FOLDER / "solutions").glob("*.ipynb"))
    assert found == expected
    assert [content.number for content in CONTENTS] == list(range(1, len(CONTENTS) + 1))


def test_the_committed_notebooks_are_what_the_generator_builds(capsys) -> None:
    assert builder.main(["--check"]) == 0, capsys.readouterr().out
    for path in sorted(FOLDER.rglob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


def test_blank_and_solution_differ_only_in_the_function_and_the_intro() -> None:
    for content in CONTENTS:
        blank = nbformat.read(builder.notebook_path(content, False), as_version=4)
        solution = nbformat.read(builder.notebook_path(content, True), as_version=4)
        different = [index for index, (one, other) in enumerate(
            zip(blank.cells, solution.cells, strict=True))
            if _without_noqa(one.source) != _without_noqa(other.source)]
        stub = blank.cells.index(cells_tagged(blank, "stub")[0])
        assert different == [0, stub], content.name
        assert "raise NotImplementedError" in blank.cells[stub].source
        assert "NotImplementedError" not in cells_tagged(solution, "solution")[0].source


def _without_noqa(source: str) -> str:
    # The setup cell marks its `F` import "noqa" where no other cell uses F yet.
    return re.sub(r"  # noqa: F401.*", "", source)


@pytest.mark.slow
@pytest.mark.parametrize("content", CONTENTS, ids=lambda content: content.name)
def test_a_solution_notebook_runs_and_passes_its_checks(kernel: SharedKernel, content) -> None:
    notebook = kernel.run(builder.notebook_path(content, True))
    assert error_outputs(notebook) == []
    [check] = cells_tagged(notebook, "check")
    shown = outputs_text(check)
    assert f"✓ {content.name} passes all" in shown, shown
    assert check.outputs[0]["data"]["text/markdown"].startswith("**✓")
    example = outputs_text(cells_tagged(notebook, "example")[0])
    for number in content.example_shows:
        assert number in example, (number, example)


@pytest.mark.slow
@pytest.mark.parametrize("content", CONTENTS, ids=lambda content: content.name)
def test_a_blank_notebook_runs_and_says_not_implemented(kernel: SharedKernel, content) -> None:
    notebook = kernel.run(builder.notebook_path(content, False))
    assert error_outputs(notebook) == []
    [check] = cells_tagged(notebook, "check")
    shown = outputs_text(check)
    assert f"{content.name} is not implemented yet" in shown, shown
    everything = "\n".join(outputs_text(cell) for cell in notebook.cells
                           if cell.cell_type == "code")
    assert "Traceback" not in everything


@pytest.mark.slow
def test_the_shared_kernel_gives_each_notebook_a_fresh_namespace(kernel: SharedKernel,
                                                                 tmp_path: Path) -> None:
    first, second = tmp_path / "first.ipynb", tmp_path / "second.ipynb"
    for path, source in ((first, "leftover = 1"), (second, "print(leftover)")):
        notebook = nbformat.v4.new_notebook()
        notebook.cells.append(nbformat.v4.new_code_cell(source))
        nbformat.write(notebook, path)
    assert len(kernel.run(first).cells) == 1
    with pytest.raises(CellExecutionError, match="NameError"):
        kernel.run(second)
