"""Generate the lab's notebooks: 00_start_here and one notebook per loss family.

    .venv/bin/python notebooks/build_notebooks.py            # rewrite notebooks/*.ipynb
    .venv/bin/python notebooks/build_notebooks.py --out DIR  # write them somewhere else
    .venv/bin/python notebooks/build_notebooks.py --check    # exit 1 if any is out of date

The notebooks are generated so that every family notebook has the same shape and none drifts
from the catalog: the families and the losses in each come from ``lab.catalog`` (``FAMILIES``,
``by_family()``), and so do each loss's explanation, formula, paper, data format and knobs. The
teaching that the catalog does not hold (plain-words idea, worked example, widgets, questions)
lives in ``notebooks/lessons.py``, one :class:`lessons.Lesson` per loss.

The files are written without outputs; run them in Jupyter (or let the tests execute them).
Edit this script or lessons.py, never the .ipynb files, then rerun it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # `lab` from the repository root, `lessons` from this folder
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import lessons

from lab import catalog
from lab.data import FORMATS

STEPS = {"tiny": 40, "tiny-bert": 20, "minilm": 10}
"""Training steps per default model: a visible change in well under a minute on a CPU."""

KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def notebook_name(family: str) -> str:
    """The file stem of a family's notebook, e.g. "04_in_batch_negatives"."""
    number = catalog.FAMILIES.index(family) + 1
    return f"{number:02d}_" + family.replace("-", "_").replace(" ", "_")


HELPER_NAMES = ("agree", "explore", "knob_controls", "playground_explorer", "show", "steps")
"""Helpers a notebook may call by their bare name (imported only where they are used)."""

LAB_MODULES = ("catalog", "metrics", "playground", "report", "viz")
"""``lab`` modules a notebook may use by their bare name (imported only where used)."""


def _uses(code: str, name: str) -> bool:
    """Whether ``code`` uses ``name`` as a word (not as an attribute like ``x.name``)."""
    return re.search(rf"(?<![\w.]){re.escape(name)}\b", code) is not None


def _setup_cell(code: str, extra: str = "") -> str:
    """The first code cell of a notebook whose other code cells are ``code``: plots inline,
    find the repository, import (only) what the notebook uses, set the lab up."""
    code = code + "\n" + extra
    helpers = [name for name in HELPER_NAMES if _uses(code, name)]
    display_names = [name for name in ("Markdown", "display") if _uses(code, name)]
    modules = [name for name in LAB_MODULES if _uses(code, name)]
    third_party = (["import ipywidgets as widgets"] * _uses(code, "widgets")
                   + ["import numpy as np"] * _uses(code, "np")
                   + ["import torch"] * _uses(code, "torch"))
    if display_names:
        third_party.append(f"from IPython.display import {', '.join(display_names)}")
    first_party = ["import lab"]
    first_party += [f"import lab.{name}" for name in ("data", "models") if f"lab.{name}." in code]
    first_party += ["import losses"] * _uses(code, "losses")
    if modules:
        first_party.append(f"from lab import {', '.join(modules)}")
    extra = extra.strip()
    if extra.startswith("from lab.build import build_loss"):
        # Part of the import block (kept sorted), not a separate statement after it.
        first_party.append("from lab.build import build_loss")
        extra = extra.removeprefix("from lab.build import build_loss").strip()
    helper_import = f"\nfrom helpers import {', '.join(helpers)}" if helpers else ""
    imports = "\n".join(third_party) + ("\n\n" if third_party else "") + "\n".join(first_party)
    return f'''%matplotlib inline
# Find the repository root (the folder holding lab/), so `import lab` works wherever Jupyter
# was started, and this folder, for the notebooks' small helpers module.
import sys
from pathlib import Path

ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "lab" / "catalog.py").is_file())
for path in (ROOT, ROOT / "notebooks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import helpers{helper_import}

device = helpers.setup()  # one CPU thread for tiny models, quiet progress bars

{imports}
''' + (f"\n{extra}\n" if extra else "")


def _knob_table(entry: catalog.LossEntry) -> str:
    if not entry.knobs:
        return "Knobs: none."
    rows = ["| knob | default | what it does |", "|---|---|---|"]
    for knob in entry.knobs:
        default = ", ".join(map(str, knob.default)) if isinstance(knob.default, tuple) \
            else knob.default
        rows.append(f"| `{knob.name}` | `{default}` | {knob.help} |")
    return "\n".join(rows)


def _formats_line(entry: catalog.LossEntry) -> str:
    described = [f"`{name}` ({FORMATS[name].description})" for name in entry.formats]
    return ("Data formats: " + "; ".join(described) + f". The lab trains it on "
            f"`{entry.default_format}` with the `{entry.default_model}` model.")


def _wrap_call(opening: str, arguments: list[str], width: int = 100, closing: str = ")") -> str:
    """``opening`` + the arguments + ``closing``, wrapped under the opening bracket at ``width``."""
    lines, line = [], opening
    for index, argument in enumerate(arguments):
        piece = argument + (", " if index < len(arguments) - 1 else closing)
        if len(line) + len(piece.rstrip()) > width and line.strip() != opening.strip():
            lines.append(line.rstrip())
            line = " " * len(opening)
        line += piece
    return "\n".join([*lines, line])


def loss_cells(entry: catalog.LossEntry, number: int) -> list:
    """The cells that teach one loss: idea, formula, worked example, training, plots, widget."""
    lesson = lessons.LESSONS[entry.name]
    paper = f"\n\nPaper: {entry.paper}" if entry.paper else ""
    notes = f"\n\nGood to know: {entry.notes}" if entry.notes else ""
    cells = [new_markdown_cell(
        f"## {number}. {entry.name}\n\n"
        f"**The idea in plain words.** {lesson.idea.strip()}\n\n"
        f"**From the catalog.** {entry.explanation}\n\n"
        f"**Formula** (B = batch size, [x]₊ = max(0, x)):\n\n```text\n{entry.formula}\n```\n\n"
        f"{_formats_line(entry)}{paper}{notes}\n\n{_knob_table(entry)}")]
    cells.append(new_markdown_cell(f"### Worked example\n\n{lesson.example.strip()}"))
    cells.append(new_code_cell(lesson.example_code.strip()))
    model_steps = STEPS[entry.default_model]
    options = f", {lesson.train_options}" if lesson.train_options else ""
    cells.append(new_markdown_cell(
        f"### Train it\n\n{lesson.train_note.strip()}\n\n".lstrip()
        + f"`lab.train` builds the `{entry.default_model}` model, the `{entry.default_format}` "
        f"data of the teaching corpus and the loss, trains for {model_steps} steps (fewer in "
        "quick mode), and records the loss curve and the probe sentences' embeddings at the "
        "start, midway and at the end."))
    call = _wrap_call("result = lab.train(", [
        f'"{entry.name}"', f"steps=steps({model_steps})", f"batch_size={lesson.batch_size}",
        "snapshots=2", "progress_bar=False", *([lesson.train_options] * bool(options))])
    cells.append(new_code_cell(
        f'{call}\nruns["{entry.name}"] = result\nprint(result.summary())'))
    cells.append(new_markdown_cell(f"### What it did\n\n{lesson.plots_note.strip()}"))
    plots = _wrap_call("plots = [", [f'"{name}"' for name in lesson.plots], closing="]")
    cells.append(new_code_cell(
        f"{plots}\nshow(report.figures(result, only=plots), *plots)"
        + (f"\n{lesson.extra_plots.strip()}" if lesson.extra_plots else "")))
    cells.append(new_markdown_cell(f"### Turn the knobs\n\n{lesson.widget_note.strip()}"))
    cells.append(new_code_cell(lesson.widget_code.strip()))
    questions = "\n".join(f"{index}. {question.strip()}"
                          for index, question in enumerate(lesson.try_these, 1))
    cells.append(new_markdown_cell(f"### Things to try\n\n{questions}"))
    return cells


def family_notebook(family: str) -> nbformat.NotebookNode:
    """The notebook of one family: every loss that ``catalog.by_family()`` puts in it."""
    entries = catalog.by_family()[family]
    story = lessons.FAMILIES[family]
    listing = "\n".join(f"{index}. [{entry.name}](#{index}.-{entry.name}): trains on "
                        f"`{entry.default_format}` with `{entry.default_model}`"
                        for index, entry in enumerate(entries, 1))
    body = []
    for number, entry in enumerate(entries, 1):
        body.extend(loss_cells(entry, number))
    body.append(new_markdown_cell(f"## Side by side\n\n{story.wrap_up.strip()}"))
    body.append(new_code_cell("helpers.compare_runs(runs)"))
    code = "\n".join(cell.source for cell in body if cell.cell_type == "code")
    cells = [
        new_markdown_cell(f"# {story.title}\n\n{story.intro.strip()}\n\n"
                          f"## The losses in this notebook\n\n{listing}\n\n"
                          f"{lessons.HOW_TO_USE.strip()}"),
        new_code_cell(_setup_cell(code, story.setup_extra)
                      + "\nruns = {}  # every training run of this notebook, by loss name"),
    ]
    return _notebook(cells + body)


def start_here_notebook() -> nbformat.NotebookNode:
    """00_start_here: embeddings, geometry, choosing a loss, a first run."""
    links = "\n".join(f"- [{notebook_name(family)}.ipynb]({notebook_name(family)}.ipynb): "
                      f"{lessons.FAMILIES[family].title}: "
                      + ", ".join(entry.name for entry in entries)
                      for family, entries in catalog.by_family().items())
    parts = lessons.start_here_cells(links)
    code = "\n".join(text for kind, text in parts if kind == "code")
    cells = [new_code_cell(_setup_cell(code).strip())
             if kind == "setup" else new_markdown_cell(text.strip()) if kind == "md"
             else new_code_cell(text.strip()) for kind, text in parts]
    return _notebook(cells)


def _notebook(cells: list) -> nbformat.NotebookNode:
    book = new_notebook(cells=cells)
    book.metadata["kernelspec"] = KERNEL
    book.metadata["language_info"] = {"name": "python"}
    # Stable cell ids, so regenerating an unchanged notebook gives an identical file.
    for index, cell in enumerate(book.cells):
        cell["id"] = f"cell-{index:03d}"
    nbformat.validate(book)
    return book


def build(out_dir: Path = HERE) -> list[Path]:
    """Write 00_start_here.ipynb and every family notebook into ``out_dir``; return the paths."""
    missing = [name for name in catalog.LOSSES if name not in lessons.LESSONS]
    if missing:
        raise SystemExit(f"notebooks/lessons.py has no lesson for {missing}: add one per loss")
    out_dir.mkdir(parents=True, exist_ok=True)
    books = {"00_start_here": start_here_notebook()}
    books.update({notebook_name(family): family_notebook(family) for family in catalog.FAMILIES})
    written = []
    for stem, book in books.items():
        path = out_dir / f"{stem}.ipynb"
        path.write_text(nbformat.writes(book), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: build into notebooks/ (or --out), or --check that they are up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a notebook in notebooks/ is out of date")
    args = parser.parse_args(argv)
    if args.check:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            stale = [path.name for path in build(Path(scratch))
                     if not (HERE / path.name).is_file()
                     or (HERE / path.name).read_text(encoding="utf-8")
                     != path.read_text(encoding="utf-8")]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python notebooks/build_notebooks.py")
            return 1
        print("notebooks are up to date")
        return 0
    for path in build(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
