"""The lab's Gradio app, also the Hugging Face Space entry point: ``python app.py`` (``make lab``).

Four tabs, all thin views of :mod:`lab` (this file trains, loads and draws nothing itself):

* **Train**: any loss of :mod:`lab.catalog`, its data (the teaching corpus in a format the loss
  takes, or an uploaded CSV/JSONL), model, budget and knobs; ``lab.train`` runs in a worker
  thread while the page streams progress, the loss curve, the embedding map at each snapshot and,
  for the batch triplet losses, the mined triplets. Stop ends training cleanly and keeps what was
  recorded. Results: metrics before and after, ``lab.report`` figures, downloads.
* **Compare**: two to four losses, same model, budget, seed and probe set, side by side.
* **Playground**: ``lab.playground``: free 2-D points moved by one loss's gradient.
* **Learn**: the catalog's explanation, formula, data formats and knobs of every loss.

Everything a run owns (its stop switch, its results, its uploads in a temporary folder) lives in
a per-session :class:`Session` held by ``gr.State``: nothing of one user's run is visible in
another session. Public-server limits are in :class:`Limits` (``LAB_APP_<NAME>`` environment
variables override them). Event handlers with an ``api_name`` are also an API
(``gradio_client``): train, stop, download, compare, playground_reset, playground_step,
playground_run, describe.
"""

from __future__ import annotations

import os

# Offline and private by default; a deployment can still override these before starting.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import atexit
import dataclasses
import json
import math
import queue
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import scipy.linalg  # noqa: F401  (loads scipy's BLAS now, so the limit below applies to it)
from threadpoolctl import threadpool_limits

from lab import catalog, report, viz
from lab.data.formats import FORMATS
from lab.data.validate import expected_columns_text
from lab.models import BUILTIN_MODELS
from lab.playground import (
    OPTIMIZERS,
    PLAYGROUND_LOSSES,
    Playground,
    PlaygroundError,
    make_points,
    trajectory_figure,
)
from lab.training import DEFAULT_LEARNING_RATES

# NumPy/SciPy BLAS on one thread: the maps' PCA is a small SVD that multi-threaded OpenBLAS
# makes 10-100 times slower while torch trains on the same cores (threads spin for each other).
# torch keeps its own thread pool. LAB_APP_BLAS_THREADS overrides.
threadpool_limits(int(os.environ.get("LAB_APP_BLAS_THREADS", "1")), user_api="blas")

try:  # Hugging Face ZeroGPU Spaces: request a GPU for the duration of a training event.
    import spaces
except ImportError:  # everywhere else (and in the tests) the app runs as it is
    spaces = None

__all__ = [
    "DEFAULTS",
    "LIMITS",
    "Limits",
    "Session",
    "build_app",
    "describe",
    "launch",
    "main",
]


# ---------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Limits:
    """Caps for a public server; ``LAB_APP_<FIELD>`` (e.g. ``LAB_APP_MAX_STEPS``) overrides each."""

    max_steps: int = 500  # training steps of one run
    max_compare_steps: int = 200  # training steps of each loss in a comparison
    max_batch_size: int = 128
    max_snapshots: int = 8
    max_compare: int = 4  # losses in one comparison
    max_upload_mb: float = 5.0
    max_upload_rows: int = 20_000
    run_seconds: float = 300.0  # a run (or a whole comparison) stops cleanly after this
    concurrency: int = 1  # training events running at once, over all sessions
    queue_size: int = 16  # events waiting beyond that; more get "queue is full"
    max_playground_points: int = 90
    max_playground_steps: int = 100  # per Step click / per Run frame
    max_playground_total: int = 3_000  # steps one playground keeps before it must be reset

    @classmethod
    def from_env(cls) -> Limits:
        """The defaults, with any ``LAB_APP_<FIELD>`` environment variable applied."""
        values = {}
        for item in dataclasses.fields(cls):
            raw = os.environ.get(f"LAB_APP_{item.name.upper()}")
            if raw is not None:
                values[item.name] = type(getattr(cls, item.name))(float(raw))
        return cls(**values)


LIMITS = Limits.from_env()
"""The limits in force (read at call time, so a test may swap them)."""


@dataclass(frozen=True)
class Defaults:
    """What the Train tab starts with: a batch triplet loss that finishes in seconds on a CPU."""

    loss: str = "BatchHardTripletLoss"
    steps: int = 60
    batch_size: int = 32
    snapshots: int = 3
    compare: tuple[str, ...] = ("BatchHardTripletLoss", "BatchAllTripletLoss")
    compare_steps: int = 40
    playground_loss: str = "BatchHardTripletLoss"


DEFAULTS = Defaults()
CURVE_SECONDS = 1.5  # the live loss curve is redrawn at most this often (drawing costs CPU)
_WAIT_SECONDS = 0.25  # how long the page waits for news from the training thread per loop
MAX_KNOBS = max(len(entry.knobs) for entry in catalog.LOSSES.values())


def _gpu(function: Callable) -> Callable:
    """``spaces.GPU`` around a training handler where the ``spaces`` package exists."""
    if spaces is None:
        return function
    return spaces.GPU(duration=int(LIMITS.run_seconds) + 60)(function)


# ----------------------------------------------------------------------------------- sessions
class Session:
    """What one browser tab (or one API client) owns; kept in ``gr.State``, never shared.

    ``folder``: a private temporary folder for uploads, run folders and downloads (deleted with
    the session); ``stop_event``: the switch of the current run; ``result``: the last finished
    run; ``playground`` and the settings it was built with.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="session-", dir=_sessions_root()))
        self.stop_event = threading.Event()
        self.running = False
        self.runs = 0
        self.result: Any = None
        self.playground: Playground | None = None
        self.playground_key: tuple | None = None

    def close(self) -> None:
        """Delete the session's folder (called by gradio when the session ends)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def __deepcopy__(self, memo: dict) -> Session:
        # gradio deep-copies a State's initial value for each new session; a Session is a
        # handle to one session's things (a stop switch, a folder), so it is its own copy.
        return self


_ROOT: list[Path] = []  # the one folder that holds every session's folder, made on first use


def _sessions_root() -> Path:
    """A temporary folder for this process's sessions, deleted when the process exits (sessions
    still open then, e.g. of a test server, are not left behind)."""
    if not _ROOT:
        root = Path(tempfile.mkdtemp(prefix="lab-app-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _ROOT.append(root)
    return _ROOT[0]


def _session(value: Any) -> Session:
    """The session in a ``gr.State`` value, created on first use."""
    return value if isinstance(value, Session) else Session()


def _close_session(value: Any) -> None:
    if isinstance(value, Session):
        value.close()


# ------------------------------------------------------------------------------ input checks
def _fail(message: str) -> gr.Error:
    """A one-line error for the page (and for API clients)."""
    return gr.Error(message, print_exception=False)


def _as_page_error(error: BaseException) -> gr.Error:
    """Any error of a handler as a clear ``gr.Error``: the lab's own messages pass unchanged."""
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, (ValueError, TypeError, KeyError, FloatingPointError, FileNotFoundError)):
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        return _fail(str(message))
    return _fail(f"the run failed: {type(error).__name__}: {error}")


def _entry(name: Any) -> catalog.LossEntry:
    try:
        return catalog.get(str(name or "").strip())
    except catalog.UnknownLossError as error:
        raise _fail(str(error)) from None


def _whole(what: str, value: Any, low: int, high: int, why: str = "") -> int:
    """``value`` as an int in [low, high], or an error naming ``what`` and the range."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(f"{what} must be a whole number from {low} to {high}; got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise _fail(f"{what} must be a whole number from {low} to {high}; got {value!r}")
    if not low <= number <= high:
        cap = f"; {why}" if why and number > high else ""
        raise _fail(f"{what} must be from {low} to {high}; got {int(number)}{cap}")
    return int(number)


def _positive(what: str, value: Any, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(f"{what} must be a positive number; got {value!r}") from None
    if not (math.isfinite(number) and 0 < number <= high):
        raise _fail(f"{what} must be a positive number up to {high:g}; got {value!r}")
    return number


def _model(value: Any) -> str:
    name = str(value or "").strip()
    if name not in BUILTIN_MODELS:
        raise _fail(f"model must be one of {', '.join(BUILTIN_MODELS)}; got {value!r}")
    return name


def _knobs(text: Any) -> dict[str, Any]:
    """The knob JSON the Train button sends (``{}`` = every knob at its catalog default)."""
    if isinstance(text, dict):
        return dict(text)
    if text is None or not str(text).strip():
        return {}
    try:
        knobs = json.loads(str(text))
    except json.JSONDecodeError as error:
        raise _fail(f"knobs must be a JSON object like {{\"margin\": 2.0}}; could not read "
                    f"{str(text)[:80]!r}: {error.msg}") from None
    if not isinstance(knobs, dict):
        raise _fail(f"knobs must be a JSON object like {{\"margin\": 2.0}}; got "
                    f"{type(knobs).__name__}")
    return knobs


def _data_entry(entry: catalog.LossEntry, inner: str | None) -> catalog.LossEntry:
    """The entry whose data a run trains on: the wrapped loss's for a wrapper."""
    return _entry(inner or entry.default_inner_loss) if entry.wraps else entry


def _inner(entry: catalog.LossEntry, value: Any) -> str | None:
    """The wrapped loss of a wrapper (default: the catalog's), refused for a plain loss."""
    name = str(value or "").strip()
    if not entry.wraps:
        if name:
            raise _fail(f"{entry.name} wraps no other loss, so inner_loss must be empty; got "
                        f"{name!r}")
        return None
    inner = _entry(name or entry.default_inner_loss)
    if inner.wraps:
        raise _fail(f"{entry.name} wraps a plain loss, not the wrapper {inner.name}; e.g. "
                    f"{entry.default_inner_loss}")
    return inner.name


def _format(entry: catalog.LossEntry, value: Any) -> str:
    name = str(value or "").strip() or entry.default_format
    if name not in entry.formats:
        raise _fail(f"{entry.name} trains on data format {', '.join(entry.formats)}; got "
                    f"{name!r}")
    return name


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def read_upload(path: Any, fmt: str, session: Session, limits: Limits | None = None) -> Any:
    """An uploaded CSV/JSONL as a ``DatasetDict`` in format ``fmt``, or a clear ``gr.Error``.

    The file is copied into the session's folder (under a sanitised name) and parsed there as
    data only (``lab.data.load_user_file``: CSV or JSON lines, no code, no pickles). Refused:
    other extensions, files over the size cap, binary or non-UTF-8 content, too many rows, and
    columns that do not match the format (the message names the expected columns).
    """
    from lab.data import load_user_file

    limits = limits or LIMITS
    source = Path(str(path))
    name = _SAFE_NAME.sub("_", source.name)[-80:] or "upload"
    suffix = source.suffix.lower()
    wanted = f"{fmt} (columns {expected_columns_text(FORMATS[fmt])})"
    if suffix not in (".csv", ".jsonl", ".json"):
        raise _fail(f"{source.name}: expected a .csv or .jsonl file with the {wanted}; got a "
                    f"{suffix or 'extension-less'} file")
    if not source.is_file():
        raise _fail(f"{source.name}: the upload did not arrive; please upload it again")
    size = source.stat().st_size
    if size > limits.max_upload_mb * 1e6:
        raise _fail(f"{source.name}: {size / 1e6:.1f} MB is over this server's "
                    f"{limits.max_upload_mb:g} MB upload limit")
    raw = source.read_bytes()
    if b"\x00" in raw[:65536]:
        raise _fail(f"{source.name}: this is a binary file, not text; expected a CSV or JSONL "
                    f"text file with the {wanted}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _fail(f"{source.name}: not UTF-8 text (bad byte at position {error.start}); "
                    f"expected a CSV or JSONL text file with the {wanted}") from None
    folder = session.folder / "uploads" / f"{time.time_ns()}"
    folder.mkdir(parents=True)
    copy = folder / name
    copy.write_bytes(raw)
    try:
        data = load_user_file(copy, fmt, cache_dir=folder / "cache")
    except Exception as error:  # DataFormatError and the CSV/JSON parsers' own errors
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if type(error).__name__ == "DataFormatError":
            raise _fail(message) from None
        raise _fail(f"{source.name}: could not read it as {suffix[1:].upper()} with the "
                    f"{wanted}: {message}") from None
    rows = sum(len(split) for split in data.values())
    if rows > limits.max_upload_rows:
        raise _fail(f"{source.name}: {rows} rows is over this server's "
                    f"{limits.max_upload_rows} row limit")
    return data


# ----------------------------------------------------------------------------- the Learn tab
def _choice_text(value: Any) -> str:
    """How a knob choice is shown in a menu and in JSON-free text: names plain, others repr."""
    return value if isinstance(value, str) else repr(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def describe(name: str) -> str:
    """Markdown page of one loss: what it does, when to choose it, its formula, data and knobs."""
    entry = catalog.get(name)
    formats = "\n".join(
        f"- `{fmt}`: {FORMATS[fmt].description}; columns `{expected_columns_text(FORMATS[fmt])}`"
        + (" (the built-in dataset it trains on)" if fmt == entry.default_format else "")
        for fmt in entry.formats)
    alternatives = [other.name for other in catalog.losses_for_format(entry.default_format)
                    if other.name != entry.name and not other.wraps]
    choose = [f"Choose it when your training data looks like one of these:\n\n{formats}"]
    if alternatives:
        choose.append(f"Other losses for `{entry.default_format}` data: "
                      f"{', '.join(alternatives)}.")
    if entry.wraps:
        choose.append(f"It wraps another loss (by default {entry.default_inner_loss}) and trains "
                      f"on that loss's data.")
    if entry.needs_guide:
        choose.append(f"It needs a guide model to spot false negatives; the lab uses "
                      f"`{entry.default_guide}`.")
    if entry.batch_sampler == "group_by_label":
        choose.append("The lab trains it on label-balanced batches (several sentences per topic "
                      "in each batch), so every batch has positives and negatives to mine.")
    knob_rows = []
    for knob in entry.knobs:
        if knob.kind == "choice":
            values = ", ".join(f"`{_choice_text(choice)}`" for choice in knob.choices)
        elif knob.kind == "bool":
            values = "true / false"
        else:
            values = f"{knob.low:g} to {knob.high:g} ({knob.kind})"
        knob_rows.append(f"| `{knob.name}` | `{_cell(_choice_text(knob.default))}` | "
                         f"{_cell(values)} | {_cell(knob.help)} |")
    knobs = ("| knob | default | values | what it does |\n|---|---|---|---|\n"
             + "\n".join(knob_rows)) if knob_rows else "This loss has no knobs to tune."
    notes = f"\n\n### Notes\n\n{entry.notes}" if entry.notes else ""
    paper = f"\n\n### Paper\n\n{entry.paper}" if entry.paper else ""
    return (
        f"## {entry.name}\n\n*Family: {entry.family} · default model: `{entry.default_model}` · "
        f"trains by default on: `{entry.default_format}`*\n\n{entry.explanation}\n\n"
        f"### When to choose it\n\n" + "\n\n".join(choose)
        + f"\n\n### Formula\n\n```\n{entry.formula}\n```\n\n### Knobs\n\n{knobs}{notes}{paper}"
    )


def overview_table() -> pd.DataFrame:
    """One row per loss of the catalog: family, name, data formats, default data and model."""
    rows = [{"family": row["family"], "loss": row["name"], "data formats": row["formats"],
             "trains by default on": row["default_format"],
             "default model": catalog.get(row["name"]).default_model}
            for row in catalog.overview_rows()]
    return pd.DataFrame(rows)


def loss_choices(names: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Menu entries "family · Name" in the catalog's family order (optionally only ``names``)."""
    return [(f"{family} · {entry.name}", entry.name)
            for family, entries in catalog.by_family().items() for entry in entries
            if names is None or entry.name in names]


def data_note(loss: str, inner: str | None = None) -> str:
    """What data the chosen loss trains on, in one Markdown paragraph."""
    entry = _entry(loss)
    data = _data_entry(entry, inner if entry.wraps else None)
    spec = FORMATS[data.default_format]
    parts = [f"**{entry.name}** ({entry.family}) trains on **`{data.default_format}`** data: "
             f"{spec.description}. Columns: `{expected_columns_text(spec)}`."]
    if len(data.formats) > 1:
        parts.append(f"It also takes {', '.join(f'`{f}`' for f in data.formats[1:])}.")
    if entry.wraps:
        parts.append(f"It wraps {data.name}, whose data it uses.")
    if entry.needs_guide:
        parts.append(f"Guide model: `{entry.default_guide}`.")
    parts.append("Upload a CSV/JSONL with the columns of the chosen format to train on yours.")
    return " ".join(parts)


# ---------------------------------------------------------------------------- knob widgets
class KnobPool:
    """A fixed pool of widgets that shows the knobs of whichever loss is chosen.

    Gradio components cannot be created per loss after the page is built, so each of the
    ``MAX_KNOBS`` slots holds a slider (numbers), a checkbox (bool) and a menu (choices); the
    slot shows the one its knob needs. :meth:`updates` re-labels the pool for a loss and
    :meth:`read` turns the widget values back into ``{knob: value}``.
    """

    def __init__(self, prefix: str, loss: str) -> None:
        """Create the pool (inside a Blocks context) showing the knobs of ``loss``."""
        self.components: list[gr.components.Component] = []
        for slot, (number, flag, menu) in enumerate(self._props(loss)):
            self.components += [
                gr.Slider(elem_id=f"{prefix}-knob-{slot}-number", **number),
                gr.Checkbox(elem_id=f"{prefix}-knob-{slot}-bool", **flag),
                gr.Dropdown(allow_custom_value=True, elem_id=f"{prefix}-knob-{slot}-choice",
                            **{"choices": [], **menu}),
            ]

    @staticmethod
    def _props(loss: str) -> list[tuple[dict, dict, dict]]:
        """(slider, checkbox, menu) properties per slot: the loss's knobs at their defaults."""
        entry = catalog.LOSSES.get(loss)
        knobs = entry.knobs if entry is not None else ()
        hidden = {"visible": False}
        slots: list[tuple[dict, dict, dict]] = []
        for slot in range(MAX_KNOBS):
            if slot >= len(knobs):
                slots.append((hidden, hidden, hidden))
                continue
            knob = knobs[slot]
            common = {"visible": True, "label": knob.name, "info": knob.help,
                      "interactive": True}
            if knob.kind in ("float", "int"):
                slots.append(({"minimum": knob.low, "maximum": knob.high, "step": knob.step,
                               "value": knob.default, **common}, hidden, hidden))
            elif knob.kind == "bool":
                slots.append((hidden, {"value": knob.default, **common}, hidden))
            else:
                texts = [_choice_text(choice) for choice in knob.choices]
                slots.append((hidden, hidden, {"choices": texts,
                                               "value": _choice_text(knob.default), **common}))
        return slots

    @staticmethod
    def updates(loss: str) -> list[Any]:
        """One update per pool widget: the loss's knobs shown at their defaults, the rest hidden."""
        return [gr.update(**props) for slot in KnobPool._props(loss) for props in slot]

    @staticmethod
    def read(loss: str, values: Sequence[Any]) -> dict[str, Any]:
        """``{knob: value}`` (JSON-friendly: tuples as lists) from the pool's widget values."""
        entry = catalog.LOSSES.get(loss)
        if entry is None:
            return {}
        knobs: dict[str, Any] = {}
        for slot, knob in enumerate(entry.knobs):
            number, flag, choice = values[3 * slot: 3 * slot + 3]
            if knob.kind == "int":
                value: Any = round(float(number if number is not None else knob.default))
            elif knob.kind == "float":
                value = float(number if number is not None else knob.default)
            elif knob.kind == "bool":
                value = bool(flag)
            else:
                by_text = {_choice_text(option): option for option in knob.choices}
                value = by_text.get(choice, knob.default)
                value = list(value) if isinstance(value, tuple) else value
            knobs[knob.name] = value
        return knobs


def _knobs_json(loss: str, *values: Any) -> str:
    return json.dumps(KnobPool.read(loss, values))


# ------------------------------------------------------------------------- the training thread
def _start(job: Callable[[Callable[[str, Any], None]], None]) -> queue.Queue:
    """Run ``job(report)`` in a daemon thread; what it reports, and how it ends, go to a queue.

    The queue receives ``(kind, payload)`` pairs from ``report``, then ``("error", exception)``
    if the job raised, and always ``("end", None)`` last.
    """
    messages: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            job(lambda kind, payload: messages.put((kind, payload)))
        except BaseException as error:  # handed to the page, which shows it
            messages.put(("error", error))
        finally:
            messages.put(("end", None))

    threading.Thread(target=work, name="lab-app-run", daemon=True).start()
    return messages


def _drain(messages: queue.Queue, wait: float) -> list[tuple[str, Any]]:
    """Every message available now, waiting up to ``wait`` seconds for the first."""
    try:
        found = [messages.get(timeout=wait)]
    except queue.Empty:
        return []
    while True:
        try:
            found.append(messages.get_nowait())
        except queue.Empty:
            return found


@dataclass
class _Frame:
    """A copy of what a run recorded so far, taken in the training thread after a step.

    The lists are copies and their items are never changed after they are recorded, so the
    page thread can draw them while training goes on.
    """

    step: int
    total: int
    loss: float | None
    curves: dict[str, list[tuple[int, float]]]
    snapshots: list[tuple[int, np.ndarray]]
    triplet: Any
    probe: Any


def _frame(progress: Any) -> _Frame:
    result = progress.result
    return _Frame(step=progress.step, total=progress.total_steps, loss=progress.loss,
                  curves={name: list(points) for name, points in result.curves.items()},
                  snapshots=list(result.snapshots),
                  triplet=result.triplets[-1] if result.triplets else None, probe=result.probe)


def _lab_train(*args: Any, **kwargs: Any) -> Any:
    from lab.training import train

    return train(*args, **kwargs)


# --------------------------------------------------------------------------------- pictures
def _status(text: str, step: int = 0, total: int = 0, state: str = "running") -> str:
    """The status line: a progress bar and one sentence (``state`` names its CSS class)."""
    bar = f'<progress value="{step}" max="{max(total, 1)}"></progress>' if total else ""
    return f'<div class="lab-status lab-{state}">{bar}<span>{text}</span></div>'


def _map_figure(frame_or_result: Any) -> Any:
    """The probe sentences at step 0 and at the latest snapshot (one map before any)."""
    probe, snapshots = frame_or_result.probe, frame_or_result.snapshots
    (first, before), (last, now) = snapshots[0], snapshots[-1]
    if last == first:
        return viz.embedding_map(before, probe.labels, probe.label_names,
                                 title=f"probe sentences at step {first}, before training")
    return viz.before_after_map(before, now, probe.labels, probe.label_names,
                                title=f"probe sentences at step {first} and at step {last}")


def _triplet_figure(probe: Any, snapshots: list, record: Any) -> Any:
    background = snapshots[-1][1]
    return viz.triplet_map(background, probe.labels, record.embeddings, record.anchor,
                           record.positive, record.negative, record.active,
                           label_names=probe.label_names,
                           title=f"triplets mined at step {record.step}")


def _triplet_table(probe: Any, record: Any) -> pd.DataFrame:
    rows = viz.triplet_rows(record.texts, record.anchor, record.positive, record.negative,
                            labels=record.labels, label_names=probe.label_names,
                            losses=record.losses, active=record.active, max_rows=12)
    table = pd.DataFrame(rows)
    table.insert(0, "step", record.step)
    if "loss" in table:
        table["loss"] = table["loss"].round(3)
    return table


_LOWER_IS_BETTER = ("alignment", "uniformity")


def metrics_table(before: dict[str, float], after: dict[str, float]) -> pd.DataFrame:
    """Metric, before, after, change and which direction is better, one row per metric."""
    rows = []
    for name, value in before.items():
        later = after.get(name, float("nan"))
        lower = name.endswith(_LOWER_IS_BETTER)
        rows.append({"metric": name, "before": round(value, 4), "after": round(later, 4),
                     "change": round(later - value, 4),
                     "better when": "lower" if lower else "higher"})
    return pd.DataFrame(rows, columns=["metric", "before", "after", "change", "better when"])


# ------------------------------------------------------------------------------ the Train tab
TRAIN_OUTPUTS = ("status", "summary", "loss_plot", "map_plot", "triplet_plot", "triplet_table",
                 "metrics", "hist_plot", "active_plot", "dims_plot", "layers_plot", "session")


def _outputs(names: Sequence[str], **values: Any) -> list[Any]:
    """The handler's outputs in ``names`` order; ``gr.skip()`` (unchanged) where not given."""
    unknown = set(values) - set(names)
    assert not unknown, unknown
    return [values.get(name, gr.skip()) for name in names]


def _train_summary(settings: dict[str, Any], phase: str, **extra: Any) -> dict[str, Any]:
    return {"phase": phase, **settings, **extra}


def _shown(figure: Any) -> Any:
    return gr.update(value=figure, visible=figure is not None)


@_gpu
def train_run(loss: str, model: str, dataset: str, upload: Any, steps: Any, batch_size: Any,
              learning_rate: Any, snapshots: Any, inner_loss: str, knobs: str, seed: Any,
              session: Any) -> Iterator[list[Any]]:
    """Train one loss and stream the run: progress, curve, map, mined triplets, then results.

    ``dataset`` is a data format of the loss ("" = its default); with ``upload`` (a CSV/JSONL
    path) the file is the data, read in that format. ``knobs`` is a JSON object of the loss's
    knobs ("" or "{}" = defaults); ``inner_loss`` is the wrapped loss of a wrapper ("" = its
    default; must be "" for other losses). ``learning_rate`` None = the model's default.
    """
    limits = LIMITS
    entry = _entry(loss)
    inner = _inner(entry, inner_loss)
    data_entry = _data_entry(entry, inner)
    fmt = _format(data_entry, dataset)
    model = _model(model)
    longer = "for longer runs use `python -m lab train` on your own machine"
    steps = _whole("steps", steps, 1, limits.max_steps, longer)
    batch_size = _whole("batch size", batch_size, 2, limits.max_batch_size)
    snapshots = _whole("snapshots", snapshots, 1, min(limits.max_snapshots, steps))
    seed = _whole("seed", seed if seed not in (None, "") else 0, 0, 2**31 - 1)
    rate = (DEFAULT_LEARNING_RATES.get(model, 5e-5) if learning_rate in (None, "")
            else _positive("learning rate", learning_rate, 10.0))
    knob_values = _knobs(knobs)
    session = _session(session)
    if session.running:
        raise _fail("a run is already in progress in this session; stop it or wait for it")
    data: Any = read_upload(upload, fmt, session, limits) if upload else fmt

    session.running = True
    session.stop_event = stop = threading.Event()
    session.runs += 1
    settings = {"loss": entry.name, "inner_loss": inner, "model": model,
                "data": f"upload {Path(str(upload)).name} ({fmt})" if upload else fmt,
                "steps": steps, "batch_size": batch_size, "learning_rate": rate,
                "snapshots": snapshots, "seed": seed, "knobs": knob_values}
    options = dict(knob_values)
    if inner is not None:
        options["inner_loss"] = inner

    def job(report: Callable[[str, Any], None]) -> None:
        result = _lab_train(entry.name, model, data, steps=steps, batch_size=batch_size,
                            learning_rate=rate, seed=seed, snapshots=snapshots,
                            on_update=lambda progress: report("step", _frame(progress)),
                            stop_event=stop, progress_bar=False, **options)
        report("result", result)

    started = time.perf_counter()
    try:
        yield _outputs(
            TRAIN_OUTPUTS, session=session,
            status=_status(f"Preparing {entry.name} on {settings['data']} with {model}...",
                           0, steps),
            summary=_train_summary(settings, "starting", step=0),
            loss_plot=viz.loss_curve({}), map_plot=None,
            triplet_plot=gr.update(value=None, visible=False),
            triplet_table=gr.update(value=None, visible=False), metrics=metrics_table({}, {}),
            hist_plot=None, active_plot=_shown(None), dims_plot=_shown(None),
            layers_plot=_shown(None))
        messages = _start(job)
        frame: _Frame | None = None
        result, error, reason = None, None, ""
        shown_step, shown_triplet, drawn_triplet, drawn_at = None, None, None, 0.0
        last_step = -1
        finished = False
        while not finished:
            for kind, payload in _drain(messages, _WAIT_SECONDS):
                if kind == "step":
                    frame = payload
                elif kind == "result":
                    result = payload
                elif kind == "error":
                    error = payload
                elif kind == "end":
                    finished = True
            elapsed = time.perf_counter() - started
            if not stop.is_set() and elapsed > limits.run_seconds:
                stop.set()
                reason = f"the time limit of {limits.run_seconds:g} s per run was reached"
            if finished or frame is None or frame.step == last_step:
                continue
            last_step = frame.step
            values: dict[str, Any] = {}
            latest = frame.snapshots[-1][0]
            new_map = latest != shown_step
            record = frame.triplet
            new_record = record is not None and record is not shown_triplet
            now = time.perf_counter()
            if new_map or now - drawn_at >= CURVE_SECONDS:
                values["loss_plot"] = viz.loss_curve(frame.curves,
                                                     title=f"{entry.name}, step {frame.step}")
                drawn_at = now
            if new_map:
                values["map_plot"] = _map_figure(frame)
                shown_step = latest
            if new_record:  # the table is cheap: every recorded batch, from step 1 on
                values["triplet_table"] = gr.update(value=_triplet_table(frame.probe, record),
                                                    visible=True)
                shown_triplet = record
                # Drawing costs a second or two: only batches recorded at a snapshot, on the
                # map of that snapshot.
                if record.step == latest and latest > 0:
                    values["triplet_plot"] = _shown(_triplet_figure(frame.probe,
                                                                    frame.snapshots, record))
                    drawn_triplet = record
            loss_text = f", loss {frame.loss:.4f}" if frame.loss is not None else ""
            stopping = " (stopping...)" if stop.is_set() else ""
            yield _outputs(
                TRAIN_OUTPUTS,
                status=_status(f"step {frame.step}/{frame.total}{loss_text}, "
                               f"{elapsed:.1f} s{stopping}", frame.step, frame.total),
                summary=_train_summary(settings, "training", step=frame.step,
                                       last_loss=frame.loss, seconds=round(elapsed, 2),
                                       snapshot_steps=[s for s, _ in frame.snapshots]),
                **values)
        if error is not None:
            raise _as_page_error(error)
        if result is None:
            raise _fail("training ended without a result")
        record = result.triplets[-1] if result.triplets else None
        # The page already shows the maps drawn live; build only what it lacks.
        wanted = {"loss-curve", "similarity-histograms", "active-triplets",
                  "quality-vs-dimension", "quality-vs-layer"}
        if result.snapshots[-1][0] != shown_step:
            wanted.add("embedding-map-before-after")
        if record is not None and record is not drawn_triplet:
            wanted.add("mined-triplets-map")
        figures = report.figures(result, only=wanted)
        session.result = result
        if result.stopped:
            why = reason or "you pressed Stop"
            text = (f"Stopped at step {result.steps_done}/{steps} ({why}); everything recorded "
                    f"so far is kept below.")
            phase = "stopped"
        else:
            text = f"Done: {result.steps_done} steps in {result.seconds:.1f} s."
            phase = "done"
        final_loss = result.curves["loss"][-1][1] if result.curves.get("loss") else None
        values = {
            "loss_plot": figures["loss-curve"],
            "metrics": metrics_table(result.metrics_before, result.metrics_after),
            "hist_plot": figures["similarity-histograms"],
            "active_plot": _shown(figures.get("active-triplets")),
            "dims_plot": _shown(figures.get("quality-vs-dimension")),
            "layers_plot": _shown(figures.get("quality-vs-layer")),
        }
        if "embedding-map-before-after" in figures:
            values["map_plot"] = figures["embedding-map-before-after"]
        if "mined-triplets-map" in figures:
            values["triplet_plot"] = _shown(figures["mined-triplets-map"])
        if record is not None and record is not shown_triplet:
            values["triplet_table"] = gr.update(value=_triplet_table(result.probe, record),
                                                visible=True)
        yield _outputs(
            TRAIN_OUTPUTS,
            status=_status(text, result.steps_done, steps, state=phase),
            summary=_train_summary(
                settings, phase, step=result.steps_done, steps_done=result.steps_done,
                stopped=result.stopped, stop_reason=reason or ("stop button" if result.stopped
                                                               else None),
                seconds=round(result.seconds, 2), last_loss=final_loss, device=result.device,
                data_format=result.data_format,
                snapshot_steps=[s for s, _ in result.snapshots],
                triplet_records=len(result.triplets), metrics_before=result.metrics_before,
                metrics_after=result.metrics_after),
            **values)
    finally:
        stop.set()  # a closed page (or an error) must not leave training running
        session.running = False


def stop_run(session: Any) -> str:
    """Ask this session's run to stop after its current step (nothing recorded is lost)."""
    if isinstance(session, Session) and session.running:
        session.stop_event.set()
        return "Stopping after the current step; everything recorded so far is kept."
    return "No run in progress in this session."


def _zip(folder: Path, target: Path, skip: str | None = None) -> Path:
    """Zip ``folder`` into ``target`` (stored, not compressed: model weights do not shrink)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and (skip is None or relative.parts[0] != skip):
                archive.write(path, Path(folder.name) / relative)
    return target


def download_run(session: Any) -> list[str]:
    """Save this session's last run and return [model zip, run-folder zip].

    The model zip holds the trained model in sentence-transformers format (load it with
    ``SentenceTransformer(path)``); the run zip holds ``result.json``, ``arrays.npz`` and the
    PNG plots (``lab.training.TrainResult.load`` reads it back).
    """
    if not isinstance(session, Session) or session.result is None:
        raise _fail("no finished run in this session yet: train a model first")
    result = session.result
    name = f"run-{session.runs}-{result.loss}"
    folder = session.folder / "runs" / name
    if folder.exists():
        shutil.rmtree(folder)
    result.save(folder)
    report.write_plots(result, folder / "plots")
    model_zip = _zip(folder / "model", session.folder / "runs" / f"{name}-model.zip")
    run_zip = _zip(folder, session.folder / "runs" / f"{name}-run.zip", skip="model")
    return [str(model_zip), str(run_zip)]


# ---------------------------------------------------------------------------- the Compare tab
COMPARE_OUTPUTS = ("status", "summary", "curves_plot", "metrics", "map_0", "map_1", "map_2",
                   "map_3", "session")
EACH_DEFAULT = "default"


def _compare_table(results: dict[str, Any], failures: dict[str, str]) -> pd.DataFrame:
    """One column per loss: its data, model, final loss, time and every metric before -> after."""
    names = list(results) + [name for name in failures if name not in results]
    metrics: list[str] = []
    for result in results.values():
        metrics += [name for name in result.metrics_before if name not in metrics]
    columns: dict[str, list[str]] = {"what": ["data", "model", "steps", "final loss", "seconds",
                                          *metrics]}
    for name in names:
        if name in failures:
            columns[name] = [f"failed: {failures[name]}"] + [""] * (4 + len(metrics))
            continue
        result = results[name]
        before, after = result.metrics_before, result.metrics_after
        final = result.curves["loss"][-1][1] if result.curves.get("loss") else float("nan")
        columns[name] = [result.data_format, result.model_name, str(result.steps_done),
                         f"{final:.4f}", f"{result.seconds:.1f}"] + [
            f"{before[m]:.3f} → {after[m]:.3f}" if m in before and m in after else ""
            for m in metrics]
    return pd.DataFrame(columns)


def _compare_maps(names: list[str], results: dict[str, Any], drawn: set[str]
                  ) -> dict[str, Any]:
    """The final map of each finished loss not drawn yet (and mark it drawn)."""
    maps = {}
    for index, name in enumerate(names):
        if name in results and name not in drawn:
            step, embeddings = results[name].snapshots[-1]
            probe = results[name].probe
            maps[f"map_{index}"] = viz.embedding_map(
                embeddings, probe.labels, probe.label_names,
                title=f"{name} ({results[name].model_name}), step {step}")
            drawn.add(name)
    return maps


@_gpu
def compare_run(losses: Any, model: str, steps: Any, batch_size: Any, seed: Any,
                session: Any) -> Iterator[list[Any]]:
    """Train 2 to 4 losses one after another with the same budget; stream curves and results.

    Every loss trains on the teaching corpus in its own default format (so the sentences are
    the same, arranged as each loss needs), with the same steps, batch size, seed and model
    (``model="default"``: each loss's catalog default), and is measured on the same probe set.
    """
    limits = LIMITS
    names = [losses] if isinstance(losses, str) else list(losses or [])
    entries = [_entry(name) for name in names]
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise _fail(f"choose each loss once; got {', '.join(names)}")
    if not 2 <= len(names) <= limits.max_compare:
        raise _fail(f"compare needs 2 to {limits.max_compare} losses; got {len(names)}")
    chosen = str(model or EACH_DEFAULT)
    if chosen != EACH_DEFAULT:
        _model(chosen)
    steps = _whole("steps", steps, 1, limits.max_compare_steps,
                   "each compared loss trains this many steps")
    batch_size = _whole("batch size", batch_size, 2, limits.max_batch_size)
    seed = _whole("seed", seed if seed not in (None, "") else 0, 0, 2**31 - 1)
    session = _session(session)
    if session.running:
        raise _fail("a run is already in progress in this session; stop it or wait for it")
    session.running = True
    session.stop_event = stop = threading.Event()
    settings = {"losses": names, "model": chosen, "steps": steps, "batch_size": batch_size,
                "seed": seed}

    def job(report: Callable[[str, Any], None]) -> None:
        for index, entry in enumerate(entries):
            if stop.is_set():
                break
            model_name = entry.default_model if chosen == EACH_DEFAULT else chosen

            def update(progress: Any, index: int = index) -> None:
                report("step", (index, progress.step, list(progress.result.curves["loss"])))

            try:
                result = _lab_train(entry.name, model_name, None, steps=steps,
                                    batch_size=batch_size, seed=seed, snapshots=1,
                                    on_update=update, stop_event=stop, progress_bar=False)
            except Exception as error:  # one loss failing must not lose the others
                report("failed", (index, error))
            else:
                report("result", (index, result))

    started = time.perf_counter()
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    live: dict[str, list] = {}
    drawn: set[str] = set()
    try:
        yield _outputs(COMPARE_OUTPUTS, session=session,
                       status=_status(f"Preparing {names[0]}...", 0, steps * len(names)),
                       summary={"phase": "starting", **settings},
                       curves_plot=viz.loss_curve({}), metrics=None,
                       **{f"map_{slot}": gr.update(value=None, visible=slot < len(names))
                          for slot in range(4)})
        messages = _start(job)
        finished, error, reason, drawn_at = False, None, "", 0.0
        current = (0, 0)
        while not finished:
            changed, new_results = False, []
            for kind, payload in _drain(messages, _WAIT_SECONDS):
                if kind == "step":
                    index, step, points = payload
                    live[names[index]] = points
                    current, changed = (index, step), True
                elif kind == "result":
                    index, result = payload
                    results[names[index]] = result
                    live[names[index]] = list(result.curves.get("loss", []))
                    new_results.append(index)
                elif kind == "failed":
                    index, failure = payload
                    failures[names[index]] = str(_as_page_error(failure).message)
                    new_results.append(index)
                elif kind == "error":
                    error = payload
                elif kind == "end":
                    finished = True
            elapsed = time.perf_counter() - started
            if not stop.is_set() and elapsed > limits.run_seconds:
                stop.set()
                reason = f"the time limit of {limits.run_seconds:g} s was reached"
            if error is not None:
                raise _as_page_error(error)
            if not (changed or new_results) or finished:
                continue
            values: dict[str, Any] = {}
            now = time.perf_counter()
            if new_results or now - drawn_at >= CURVE_SECONDS:
                values["curves_plot"] = viz.loss_curve(live, title="training loss of each loss")
                drawn_at = now
            values.update(_compare_maps(names, results, drawn))
            if new_results:
                values["metrics"] = _compare_table(results, failures)
            index, step = current
            yield _outputs(
                COMPARE_OUTPUTS,
                status=_status(f"{names[index]} ({index + 1}/{len(names)}): step {step}/{steps}, "
                               f"{elapsed:.1f} s", index * steps + step, steps * len(names)),
                summary={"phase": "training", **settings, "current": names[index], "step": step,
                         "finished": list(results), "failed": failures},
                **values)
        if not results:
            raise _fail("no loss could be trained: " + "; ".join(
                f"{name}: {message}" for name, message in failures.items()))
        stopped = [name for name, result in results.items() if result.stopped]
        skipped = [name for name in names if name not in results and name not in failures]
        phase = "stopped" if stopped or skipped else "done"
        text = (f"Stopped ({reason or 'you pressed Stop'}); finished losses are kept."
                if phase == "stopped" else
                f"Done: {len(results)} losses in {time.perf_counter() - started:.1f} s.")
        if failures:
            text += " Failed: " + "; ".join(f"{n}: {m}" for n, m in failures.items())
        yield _outputs(
            COMPARE_OUTPUTS,
            status=_status(text, steps * len(names), steps * len(names), state=phase),
            curves_plot=viz.loss_curve(live, title="training loss of each loss"),
            metrics=_compare_table(results, failures), **_compare_maps(names, results, drawn),
            summary={"phase": phase, **settings, "finished": list(results), "failed": failures,
                     "skipped": skipped,
                     "results": {name: {"steps_done": result.steps_done,
                                        "stopped": result.stopped,
                                        "data_format": result.data_format,
                                        "model": result.model_name,
                                        "metrics_before": result.metrics_before,
                                        "metrics_after": result.metrics_after}
                                 for name, result in results.items()}})
    finally:
        stop.set()
        session.running = False


# ------------------------------------------------------------------------- the Playground tab
PLAYGROUND_OUTPUTS = ("trajectory", "pg_curve", "pg_text", "pg_summary", "session")


def _playground(session: Session, loss: str, classes: Any, per_class: Any, seed: Any,
                learning_rate: Any, optimizer: str, knobs: Any, fresh: bool) -> Playground:
    """The session's playground for these settings (a new one when they changed or ``fresh``)."""
    limits = LIMITS
    if loss not in PLAYGROUND_LOSSES:
        if loss in catalog.LOSSES:
            raise _fail(f"{loss} needs a model, so it cannot move free points; the playground "
                        f"takes: {', '.join(PLAYGROUND_LOSSES)}")
        _entry(loss)  # unknown: the catalog's message, with the closest name
    classes = _whole("classes", classes, 2, 6)
    per_class = _whole("points per class", per_class, 2,
                       max(2, limits.max_playground_points // classes))
    seed = _whole("seed", seed if seed not in (None, "") else 0, 0, 2**31 - 1)
    rate = _positive("learning rate", learning_rate, 10.0)
    if optimizer not in OPTIMIZERS:
        raise _fail(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}")
    knob_values = _knobs(knobs)
    key = (loss, classes, per_class, seed, rate, optimizer, json.dumps(knob_values,
                                                                      sort_keys=True))
    if fresh or session.playground is None or session.playground_key != key:
        points, labels = make_points(classes, per_class, seed=seed)
        try:
            session.playground = Playground(loss, points, labels, knobs=knob_values,
                                            learning_rate=rate, optimizer=optimizer, seed=seed)
        except (PlaygroundError, ValueError, TypeError) as error:
            raise _as_page_error(error) from None
        session.playground_key = key
    return session.playground


def _playground_outputs(session: Session, links: bool) -> list[Any]:
    playground = session.playground
    assert playground is not None
    steps = len(playground.losses)
    moved = float(np.linalg.norm(playground.positions[-1] - playground.positions[0],
                                 axis=1).mean())
    forces = float(np.linalg.norm(playground.forces(), axis=1).mean())
    curve = viz.loss_curve({"loss": list(enumerate(playground.losses, start=1))},
                           title=f"{playground.loss_name} on {len(playground.labels)} points")
    text = (f"**{playground.loss_name}** on `{playground.format}` inputs "
            f"({', '.join(playground.column_names)}). {playground.inputs_description()}\n\n"
            f"Arrows: the force on each point (minus the gradient of the loss). "
            f"{steps} steps so far; mean distance moved {moved:.3f}; mean force {forces:.3g}.")
    summary = {"loss": playground.loss_name, "format": playground.format,
               "points": len(playground.labels), "steps": steps,
               "first_loss": playground.losses[0] if steps else None,
               "last_loss": playground.losses[-1] if steps else None,
               "mean_moved": moved, "mean_force": forces,
               "optimizer": playground.optimizer_name,
               "learning_rate": playground.learning_rate}
    figure = trajectory_figure(playground, links=bool(links),
                               every=max(1, steps // 200))
    return _outputs(PLAYGROUND_OUTPUTS, trajectory=figure, pg_curve=curve, pg_text=text,
                    pg_summary=summary, session=session)


def _take_steps(playground: Playground, steps: int) -> None:
    limits = LIMITS
    if len(playground.losses) + steps > limits.max_playground_total:
        raise _fail(f"this playground has taken {len(playground.losses)} steps; at most "
                    f"{limits.max_playground_total} are kept: press New points to start again")
    try:
        playground.step(steps)
    except PlaygroundError as error:
        raise _fail(str(error)) from None


def playground_reset(loss: str, classes: Any, per_class: Any, seed: Any, learning_rate: Any,
                     optimizer: str, knobs: str, links: bool, session: Any) -> list[Any]:
    """Fresh seeded points for the chosen loss and settings, no steps taken yet."""
    session = _session(session)
    _playground(session, loss, classes, per_class, seed, learning_rate, optimizer, knobs,
                fresh=True)
    return _playground_outputs(session, links)


def playground_step(loss: str, classes: Any, per_class: Any, seed: Any, learning_rate: Any,
                    optimizer: str, knobs: str, links: bool, steps: Any,
                    session: Any) -> list[Any]:
    """Take ``steps`` gradient steps (starting afresh if the settings changed)."""
    session = _session(session)
    playground = _playground(session, loss, classes, per_class, seed, learning_rate, optimizer,
                             knobs, fresh=False)
    _take_steps(playground, _whole("steps", steps, 1, LIMITS.max_playground_steps))
    return _playground_outputs(session, links)


def playground_run(loss: str, classes: Any, per_class: Any, seed: Any, learning_rate: Any,
                   optimizer: str, knobs: str, links: bool, steps: Any,
                   session: Any) -> Iterator[list[Any]]:
    """Ten frames of ``steps`` steps each, streamed: watch the points move."""
    session = _session(session)
    playground = _playground(session, loss, classes, per_class, seed, learning_rate, optimizer,
                             knobs, fresh=False)
    steps = _whole("steps", steps, 1, LIMITS.max_playground_steps)
    for _ in range(10):
        _take_steps(playground, steps)
        yield _playground_outputs(session, links)


# ------------------------------------------------------------------------------- the page
CSS = """
.lab-status {display: flex; gap: 0.8em; align-items: center; padding: 0.3em 0;}
.lab-status progress {flex: 0 0 40%; height: 1em;}
.lab-stopped span, .lab-done span {font-weight: 600;}
"""


def _limits_text(limits: Limits) -> str:
    return (f"Limits of this server: at most {limits.max_steps} steps and batch size "
            f"{limits.max_batch_size} per run, {limits.run_seconds:g} s per run (it then stops "
            f"and keeps its results), {limits.max_compare} losses of {limits.max_compare_steps} "
            f"steps in a comparison, uploads up to {limits.max_upload_mb:g} MB and "
            f"{limits.max_upload_rows} rows; {limits.concurrency} run(s) at a time, others "
            f"wait in a queue of {limits.queue_size}.")


def _on_loss_change(loss: str) -> list[Any]:
    """Train tab: data note, model, data formats, wrapped loss and knobs for the chosen loss."""
    entry = catalog.LOSSES.get(loss)
    if entry is None:
        return [gr.skip()] * (5 + 3 * MAX_KNOBS)
    data = _data_entry(entry, None)
    return [
        data_note(loss),
        gr.update(value=entry.default_model),
        gr.update(choices=list(data.formats), value=data.default_format),
        gr.update(visible=entry.wraps, value=entry.default_inner_loss if entry.wraps else ""),
        gr.update(value=DEFAULT_LEARNING_RATES.get(entry.default_model, 5e-5)),
        *KnobPool.updates(loss),
    ]


def _on_inner_change(loss: str, inner: str) -> list[Any]:
    entry = catalog.LOSSES.get(loss)
    if entry is None or not entry.wraps or inner not in catalog.LOSSES:
        return [gr.skip(), gr.skip()]
    data = catalog.get(inner)
    return [data_note(loss, inner), gr.update(choices=list(data.formats),
                                              value=data.default_format)]


def build_app() -> gr.Blocks:
    """The Gradio Blocks of the app (call :func:`launch`, or ``.launch()`` it yourself)."""
    train_loss_choices = loss_choices()
    plain_losses = loss_choices([name for name, entry in catalog.LOSSES.items()
                                 if not entry.wraps])
    model_choices = list(BUILTIN_MODELS)
    model_info = ("tiny: static embeddings, trains in seconds; tiny-bert: 2-layer BERT; "
                  "minilm: all-MiniLM-L6-v2, slow on a CPU")
    default = catalog.get(DEFAULTS.loss)
    with gr.Blocks(title="Embedding Loss Lab", analytics_enabled=False,
                   delete_cache=(3600, 7200)) as app:
        # A callable initial value: gradio makes one Session per page load (or API client)
        # before that session's first event, so concurrent events share it.
        session = gr.State(Session, delete_callback=_close_session)
        gr.Markdown(
            "# Embedding Loss Lab\nTrain a sentence-embedding model with any of the 29 "
            "sentence-transformers losses and watch what it does to the embeddings. "
            "**Train** one loss, **Compare** several, push 2-D points around in the "
            "**Playground**, or read about each loss in **Learn**.")
        with gr.Tabs(selected="train") as tabs:
            # ------------------------------------------------------------------- Train
            with gr.Tab("Train", id="train"), gr.Row():
                with gr.Column(scale=1, min_width=320):
                    loss = gr.Dropdown(train_loss_choices, value=default.name, label="Loss",
                                       info="grouped by family", allow_custom_value=True,
                                       elem_id="train-loss")
                    note = gr.Markdown(data_note(default.name), elem_id="train-data-note")
                    inner = gr.Dropdown(plain_losses, value="", label="Wrapped loss",
                                        visible=default.wraps, allow_custom_value=True,
                                        info="the loss this modifier wraps",
                                        elem_id="train-inner")
                    model = gr.Dropdown(model_choices, value=default.default_model,
                                        label="Model", info=model_info,
                                        allow_custom_value=True, elem_id="train-model")
                    dataset = gr.Dropdown(list(default.formats),
                                          value=default.default_format,
                                          label="Data format (teaching corpus)",
                                          allow_custom_value=True, elem_id="train-dataset")
                    upload = gr.File(label="Or your own data: CSV / JSONL in that format",
                                     file_types=[".csv", ".jsonl", ".json"],
                                     type="filepath", height=120,
                                     elem_id="train-upload")
                    with gr.Row():
                        steps = gr.Number(DEFAULTS.steps, precision=0, label="Steps",
                                          info=f"1 to {LIMITS.max_steps}",
                                          elem_id="train-steps")
                        batch_size = gr.Number(DEFAULTS.batch_size, precision=0,
                                               label="Batch size",
                                               info=f"2 to {LIMITS.max_batch_size}",
                                               elem_id="train-batch")
                    with gr.Row():
                        rate = gr.Number(DEFAULT_LEARNING_RATES[default.default_model],
                                         label="Learning rate",
                                         info="default set per model",
                                         elem_id="train-lr")
                        snapshots = gr.Slider(1, LIMITS.max_snapshots, DEFAULTS.snapshots,
                                              step=1, label="Snapshots",
                                              info="maps recorded during training",
                                              elem_id="train-snapshots")
                    seed = gr.Number(0, precision=0, label="Seed", elem_id="train-seed")
                    with gr.Accordion("Knobs of the loss", open=True):
                        train_pool = KnobPool("train", default.name)
                    with gr.Row():
                        train_button = gr.Button("Train", variant="primary",
                                                 elem_id="train-button")
                        stop_button = gr.Button("Stop", variant="stop",
                                                elem_id="train-stop")
                    stop_note = gr.Markdown(elem_id="train-stop-note")
                    with gr.Accordion("Knob values sent (JSON)", open=False):
                        knobs_json = gr.Code("{}", language="json", interactive=False,
                                             elem_id="train-knobs")
                    gr.Markdown(_limits_text(LIMITS), elem_id="train-limits")
                with gr.Column(scale=2):
                    status = gr.HTML(_status("Choose a loss and press Train.", state="idle"),
                                     elem_id="train-status")
                    loss_plot = gr.Plot(label="Loss curve", elem_id="train-loss-plot")
                    map_plot = gr.Plot(label="Embedding map (probe sentences, PCA)",
                                       elem_id="train-map-plot")
                    triplet_plot = gr.Plot(label="Mined triplets on the map", visible=False,
                                           elem_id="train-triplet-plot")
                    triplet_table = gr.Dataframe(
                        label="Mined triplets of the latest recorded batch", visible=False,
                        wrap=True, column_widths=["4%", "21%", "21%", "21%", "10%", "10%", "7%",
                                                  "6%"], elem_id="train-triplet-table")
                    metrics = gr.Dataframe(metrics_table({}, {}),
                                           label="Metrics before and after training",
                                           elem_id="train-metrics")
                    hist_plot = gr.Plot(label="Similarity of same-topic vs different-topic "
                                              "pairs", elem_id="train-hist-plot")
                    active_plot = gr.Plot(label="Active triplets", visible=False,
                                          elem_id="train-active-plot")
                    dims_plot = gr.Plot(label="Quality vs Matryoshka dimension",
                                        visible=False, elem_id="train-dims-plot")
                    layers_plot = gr.Plot(label="Quality vs layer", visible=False,
                                          elem_id="train-layers-plot")
                    downloads = gr.File(label="Downloads: trained model (zip) and run "
                                              "folder (zip)", file_count="multiple",
                                        interactive=False, height=120,
                                        elem_id="train-downloads")
                    summary = gr.JSON(label="Run summary", open=False,
                                      elem_id="train-summary")
            # ----------------------------------------------------------------- Compare
            with gr.Tab("Compare", id="compare"):
                gr.Markdown(
                    "Train two to four losses with the same budget (steps, batch size, seed) "
                    "on the teaching corpus, each in its own data format, and compare their "
                    "curves, metrics (on the same probe sentences) and maps. Knobs stay at "
                    "their defaults.")
                with gr.Row():
                    compare_losses = gr.Dropdown(
                        train_loss_choices, value=list(DEFAULTS.compare), multiselect=True,
                        max_choices=LIMITS.max_compare, allow_custom_value=True,
                        label=f"Losses (2 to {LIMITS.max_compare})", elem_id="compare-losses",
                        scale=3)
                    compare_model = gr.Dropdown(
                        [("each loss's default model", EACH_DEFAULT), *model_choices],
                        info=model_info,
                        value=EACH_DEFAULT, label="Model", elem_id="compare-model", scale=2)
                with gr.Row():
                    compare_steps = gr.Number(DEFAULTS.compare_steps, precision=0,
                                              label="Steps per loss",
                                              info=f"1 to {LIMITS.max_compare_steps}",
                                              elem_id="compare-steps")
                    compare_batch = gr.Number(DEFAULTS.batch_size, precision=0,
                                              label="Batch size", elem_id="compare-batch")
                    compare_seed = gr.Number(0, precision=0, label="Seed",
                                             elem_id="compare-seed")
                with gr.Row():
                    compare_button = gr.Button("Compare", variant="primary",
                                               elem_id="compare-button")
                    compare_stop = gr.Button("Stop", variant="stop", elem_id="compare-stop")
                compare_status = gr.HTML(_status("Choose losses and press Compare.",
                                                 state="idle"), elem_id="compare-status")
                curves_plot = gr.Plot(label="Training loss", elem_id="compare-curves")
                compare_table = gr.Dataframe(label="Side by side: metric before → after",
                                             wrap=True, elem_id="compare-metrics")
                with gr.Row():
                    compare_maps = [gr.Plot(label=f"Map after training ({slot + 1})",
                                            visible=slot < len(DEFAULTS.compare),
                                            elem_id=f"compare-map-{slot}")
                                    for slot in range(4)]
                compare_summary = gr.JSON(label="Comparison summary", open=False,
                                          elem_id="compare-summary")
            # -------------------------------------------------------------- Playground
            with gr.Tab("Playground", id="playground"):
                gr.Markdown(
                    "No model here: the points **are** the embeddings, and each step moves them "
                    "against the gradient of the loss. Arrows show the force on each point.")
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        pg_loss = gr.Dropdown(loss_choices(PLAYGROUND_LOSSES),
                                              value=DEFAULTS.playground_loss, label="Loss",
                                              allow_custom_value=True, elem_id="pg-loss")
                        with gr.Row():
                            pg_classes = gr.Number(3, precision=0, label="Classes",
                                                   info="2 to 6", elem_id="pg-classes")
                            pg_per_class = gr.Number(6, precision=0, label="Points per class",
                                                     elem_id="pg-per-class")
                            pg_seed = gr.Number(0, precision=0, label="Seed", elem_id="pg-seed")
                        with gr.Row():
                            pg_rate = gr.Number(0.05, label="Learning rate", elem_id="pg-lr")
                            pg_optimizer = gr.Radio(list(OPTIMIZERS), value="sgd",
                                                    label="Optimizer", elem_id="pg-optimizer")
                        pg_steps = gr.Number(10, precision=0, label="Steps per click",
                                             info=f"1 to {LIMITS.max_playground_steps}",
                                             elem_id="pg-steps")
                        pg_links = gr.Checkbox(False, label="Draw each triplet's links",
                                               elem_id="pg-links")
                        with gr.Accordion("Knobs of the loss", open=False):
                            pg_pool = KnobPool("pg", DEFAULTS.playground_loss)
                        pg_knobs = gr.Code("{}", language="json", interactive=False,
                                           visible=False, elem_id="pg-knobs")
                        with gr.Row():
                            pg_new = gr.Button("New points", elem_id="pg-new")
                            pg_step = gr.Button("Step", variant="primary", elem_id="pg-step")
                            pg_run = gr.Button("Run ×10", elem_id="pg-run")
                    with gr.Column(scale=2):
                        trajectory = gr.Plot(label="Points, trails and forces",
                                             elem_id="pg-plot")
                        pg_text = gr.Markdown(elem_id="pg-text")
                        pg_curve = gr.Plot(label="Loss per step", elem_id="pg-curve")
                        pg_summary = gr.JSON(label="Numbers", open=False, elem_id="pg-summary")
            # ------------------------------------------------------------------- Learn
            with gr.Tab("Learn", id="learn"):
                with gr.Row():
                    learn_loss = gr.Dropdown(train_loss_choices, value=default.name,
                                             label="Loss", allow_custom_value=True,
                                             elem_id="learn-loss", scale=3)
                    learn_train = gr.Button("Train this loss", elem_id="learn-train", scale=1)
                learn_page = gr.Markdown(describe(default.name), elem_id="learn-page")
                with gr.Accordion("All losses: family, data formats, defaults", open=False):
                    gr.Dataframe(overview_table(), interactive=False, wrap=True,
                                 elem_id="learn-overview")

        # ----------------------------------------------------------------------- events
        quick = {"concurrency_limit": None, "api_visibility": "private"}
        loss.change(_on_loss_change, loss,
                    [note, model, dataset, inner, rate, *train_pool.components], **quick)
        inner.change(_on_inner_change, [loss, inner], [note, dataset], **quick)
        model.change(lambda name: DEFAULT_LEARNING_RATES.get(name, 5e-5), model, rate, **quick)
        train_outputs = {"status": status, "summary": summary, "loss_plot": loss_plot,
                         "map_plot": map_plot, "triplet_plot": triplet_plot,
                         "triplet_table": triplet_table, "metrics": metrics,
                         "hist_plot": hist_plot, "active_plot": active_plot,
                         "dims_plot": dims_plot, "layers_plot": layers_plot,
                         "session": session}
        (train_button.click(lambda *values: (_knobs_json(*values), None, ""),
                            [loss, *train_pool.components], [knobs_json, downloads, stop_note],
                            **quick)
         .then(train_run, [loss, model, dataset, upload, steps, batch_size, rate, snapshots,
                           inner, knobs_json, seed, session],
               [train_outputs[name] for name in TRAIN_OUTPUTS], api_name="train",
               concurrency_id="training", concurrency_limit=LIMITS.concurrency,
               show_progress="hidden", time_limit=int(LIMITS.run_seconds) + 120)
         .success(download_run, session, downloads, api_name="download",
                  concurrency_id="packing", concurrency_limit=1, show_progress="minimal"))
        stop_button.click(stop_run, session, stop_note, api_name="stop", concurrency_limit=None)
        compare_outputs = {"status": compare_status, "summary": compare_summary,
                           "curves_plot": curves_plot, "metrics": compare_table,
                           **{f"map_{slot}": plot for slot, plot in enumerate(compare_maps)},
                           "session": session}
        compare_button.click(
            compare_run, [compare_losses, compare_model, compare_steps, compare_batch,
                          compare_seed, session],
            [compare_outputs[name] for name in COMPARE_OUTPUTS], api_name="compare",
            concurrency_id="training", concurrency_limit=LIMITS.concurrency,
            show_progress="hidden", time_limit=int(LIMITS.run_seconds) + 120)
        compare_stop.click(stop_run, session, None, concurrency_limit=None,
                           api_visibility="private")

        pg_inputs = [pg_loss, pg_classes, pg_per_class, pg_seed, pg_rate, pg_optimizer,
                     pg_knobs, pg_links]
        pg_outputs = [trajectory, pg_curve, pg_text, pg_summary, session]
        pg_events = {"concurrency_id": "playground", "concurrency_limit": 2}
        collect_pg = {"fn": _knobs_json, "inputs": [pg_loss, *pg_pool.components],
                      "outputs": pg_knobs, **quick}
        pg_reset_inputs = [*pg_inputs, session]
        pg_step_inputs = [*pg_inputs, pg_steps, session]
        (pg_loss.change(KnobPool.updates, pg_loss, pg_pool.components, **quick)
         .then(**collect_pg)
         .then(playground_reset, pg_reset_inputs, pg_outputs, api_name="playground_on_loss",
               api_visibility="private", **pg_events))
        pg_new.click(**collect_pg).then(playground_reset, pg_reset_inputs, pg_outputs,
                                        api_name="playground_reset", **pg_events)
        pg_step.click(**collect_pg).then(playground_step, pg_step_inputs, pg_outputs,
                                         api_name="playground_step", **pg_events)
        pg_run.click(**collect_pg).then(playground_run, pg_step_inputs, pg_outputs,
                                        api_name="playground_run", show_progress="hidden",
                                        **pg_events)

        learn_loss.change(describe_or_error, learn_loss, learn_page, api_name="describe",
                          concurrency_limit=None)
        learn_train.click(lambda name: (name, gr.Tabs(selected="train")), learn_loss,
                          [loss, tabs], **quick)

        # The first visit draws the playground.
        app.load(**collect_pg).then(playground_reset, pg_reset_inputs, pg_outputs,
                                    api_name="playground_on_load", api_visibility="private",
                                    **pg_events)
    app.queue(default_concurrency_limit=2, max_size=LIMITS.queue_size)
    return app


def describe_or_error(name: str) -> str:
    """:func:`describe`, with an unknown name answered by a clear error."""
    return describe(_entry(name).name)


def launch(app: gr.Blocks | None = None, *, host: str | None = None, port: int | None = None,
           **options: Any) -> tuple[gr.Blocks, str]:
    """Serve the app (offline, no share link) and return it with its local URL.

    ``host`` defaults to ``GRADIO_SERVER_NAME`` or 127.0.0.1 (a Space sets 0.0.0.0 itself);
    ``port`` to ``GRADIO_SERVER_PORT`` or the first free port from 7860. Extra ``options``
    go to ``Blocks.launch`` (e.g. ``prevent_thread_lock=True``).
    """
    app = app or build_app()
    host = host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    _, url, _ = app.launch(
        server_name=host, server_port=port, share=False, show_error=True, ssr_mode=False,
        max_file_size=f"{LIMITS.max_upload_mb:g}mb", css=CSS, mcp_server=False, **options)
    return app, url


def main() -> None:
    """``python app.py``: serve the app and say where to open it."""
    host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    # A plain `kill` ends the server like Ctrl-C does, so the sessions' folders are removed.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(0))
    app = build_app()
    print(f"Embedding Loss Lab: starting on {host} (Ctrl-C to stop)...", flush=True)
    launch(app, host=host)


if __name__ == "__main__":
    main()
