"""Run a notebook headlessly with the project's own Python, for the notebook tests.

``run_notebook(path)`` executes every cell with nbclient in a kernel started from
``sys.executable`` (the venv's python running pytest), whatever kernelspecs the machine has
registered: the kernel spec comes from ipykernel itself, pointing at this interpreter. The
kernel starts in the notebook's folder (as Jupyter does) and inherits the test environment
(offline variables from tests/conftest.py) except ``MPLBACKEND``, so ``%matplotlib inline``
keeps working and figures show up as image outputs.

Starting a kernel and importing torch costs several seconds on a small machine, so
``SharedKernel`` runs many small notebooks one after the other in one kernel: before each, the
user namespace is cleared (``%reset -f``) and the working folder set to the notebook's, so each
notebook still runs top to bottom on its own; only already imported modules are reused.

``outputs_text(cell)`` joins what a cell printed or displayed; ``error_outputs(notebook)``
lists the cells that raised.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

import nbformat
from ipykernel.kernelspec import RESOURCES, get_kernel_dict
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

KERNEL_NAME = "embedding-loss-lab-venv"


class VenvKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel is always ipykernel on the running interpreter."""

    @property
    def kernel_spec(self) -> KernelSpec:
        """ipykernel's spec for ``sys.executable`` (no registered kernelspec needed)."""
        if self._kernel_spec is None:
            self._kernel_spec = KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())
        return self._kernel_spec


def kernel_environment() -> dict[str, str]:
    """The test process's environment, minus a matplotlib backend that would hide plots."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    return env


def run_notebook(path: Path | str, timeout: int = 300) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` top to bottom; return it with its outputs.

    Raises ``nbclient.exceptions.CellExecutionError`` (with the cell and its traceback) if a
    cell fails, and ``CellTimeoutError`` if one runs longer than ``timeout`` seconds.
    """
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=KERNEL_NAME,
        kernel_manager_class=VenvKernelManager,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=kernel_environment())
    return notebook


class SharedKernel:
    """One kernel for several notebooks: ``with SharedKernel() as kernel: kernel.run(path)``."""

    def __init__(self, timeout: int = 300) -> None:
        self.timeout = timeout
        self.manager = VenvKernelManager(kernel_name=KERNEL_NAME)

    def __enter__(self) -> SharedKernel:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def run(self, path: Path | str) -> nbformat.NotebookNode:
        """Execute the notebook at ``path`` in a fresh namespace; return it with its outputs.

        Raises like ``run_notebook``. The returned notebook has exactly the file's cells.
        """
        path = Path(path).resolve()
        notebook = nbformat.read(path, as_version=4)
        # A first cell, removed again afterwards: empty namespace, the notebook's folder.
        fresh_start = nbformat.v4.new_code_cell(
            f"%reset -f\nimport os\nos.chdir({str(path.parent)!r})", id="fresh-start")
        notebook.cells.insert(0, fresh_start)
        client = NotebookClient(notebook, km=self.manager, timeout=self.timeout,
                                resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute(env=kernel_environment())
        finally:
            notebook.cells.pop(0)
            if client.kc is not None:
                client.kc.stop_channels()
        return notebook

    def close(self) -> None:
        """Shut the kernel down (if it was started)."""
        if self.manager.has_kernel:
            run_sync(self.manager.shutdown_kernel)(now=True)


def outputs_text(cell: Any) -> str:
    """Everything a code cell showed: streams, text/plain and text/markdown, errors."""
    parts = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(output.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {})
            parts.extend(data[key] for key in ("text/markdown", "text/plain") if key in data)
        elif kind == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
            parts.extend(output.get("traceback", []))
    return "\n".join(parts)


def error_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """'ename: evalue' of every error output in the notebook (empty if none raised)."""
    return [f"{output.get('ename')}: {output.get('evalue')}"
            for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def cells_tagged(notebook: nbformat.NotebookNode, tag: str) -> list[Any]:
    """The cells whose metadata tags include ``tag``."""
    return [cell for cell in notebook.cells if tag in cell.get("metadata", {}).get("tags", [])]
