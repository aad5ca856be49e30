"""Small helpers shared by the lab's family notebooks: setup, figures, knob widgets, playground.

The notebooks hold the teaching; the engine is ``lab`` and ``losses``. What is here is only the
glue a notebook would otherwise repeat in every section:

* :func:`setup`: one call at the top of a notebook (threads, quiet progress bars, device);
* :func:`steps`: the number of training steps, shrunk when ``LAB_NOTEBOOK_QUICK=1`` (the tests);
* :func:`show`: display a few of ``lab.report.figures(result)`` by name;
* :func:`agree`: print a hand-computed number next to our ``losses`` value and insist they agree;
* :func:`knob_controls` / :func:`explore`: ipywidgets built from the catalog's knobs, re-running a
  quick function (never a training run) whenever a control moves;
* :func:`playground_explorer`: the 2-D playground (:mod:`lab.playground`) behind such controls.

Everything displays with ``IPython.display.display``; figures are bare matplotlib Figures from
``lab.viz``, which ``%matplotlib inline`` renders as PNG images.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

QUICK: bool = os.environ.get("LAB_NOTEBOOK_QUICK", "").strip() not in ("", "0")
"""True when the notebooks run as a smoke test (the test suite sets LAB_NOTEBOOK_QUICK=1)."""


def setup(threads: int | None = None) -> str:
    """Prepare a notebook: quiet progress bars, CPU threads; return the device lab.train will use.

    On a CPU the tiny models train faster on one thread: their matrices are so small that
    splitting them across cores costs more than it saves, and a second thread competing with
    other programs can slow a step down many times. Pass ``threads`` (or set ``LAB_THREADS``)
    to choose another number.
    """
    # Progress bars of sentence-transformers' trainer internals are noise in a lesson.
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything the lab needs is local
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        wanted = threads or int(os.environ.get("LAB_THREADS", "1"))
        torch.set_num_threads(max(1, wanted))
    detail = (f"{torch.get_num_threads()} CPU thread(s)" if device == "cpu"
              else torch.cuda.get_device_name(0))
    print(f"lab.train will use: {device} ({detail})" + ("; quick mode" if QUICK else ""))
    return device


def steps(full: int) -> int:
    """``full`` training steps, or about a quarter of them (at least 3) in quick mode."""
    if full < 1:
        raise ValueError(f"steps needs a positive number of steps; got {full}")
    return max(3, math.ceil(full / 4)) if QUICK else full


def show(figures: Mapping[str, Any], *names: str) -> None:
    """Display the figures called ``names`` (all of them when none is given), in that order.

    ``figures`` is what ``lab.report.figures(result)`` returns (``only=names`` builds just
    those). An unknown name is an error that lists the available ones, so a typo never silently
    hides a plot.
    """
    from IPython.display import display

    wanted = names or tuple(figures)
    missing = [name for name in wanted if name not in figures]
    if missing:
        raise KeyError(f"no figure {missing}; this run has: {', '.join(figures)}")
    for name in wanted:
        display(figures[name])


def agree(by_hand: float, ours: Any, what: str = "loss", tolerance: float = 1e-3) -> float:
    """Print the hand-computed value next to our code's and raise if they differ.

    ``ours`` may be a tensor or a number; the comparison is relative for large values and
    absolute (``tolerance``) for small ones. Returns our value as a float.
    """
    value = float(ours.detach() if hasattr(ours, "detach") else ours)
    if not math.isfinite(value):
        raise AssertionError(f"{what}: our code gave {value}, the hand computation {by_hand}")
    close = math.isclose(value, by_hand, rel_tol=tolerance, abs_tol=tolerance)
    verdict = "they agree" if close else "THEY DIFFER"
    print(f"{what}: by hand {by_hand:.4f}   ours {value:.4f}   -> {verdict}")
    if not close:
        raise AssertionError(f"{what}: by hand {by_hand} but our code gives {value}")
    return value


# ----------------------------------------------------------------------------------- widgets
def _label(value: Any) -> str:
    """How a choice shows in a dropdown: tuples without brackets noise, None as 'None'."""
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


def knob_controls(loss: str, names: Sequence[str] | None = None,
                  **values: Any) -> dict[str, Any]:
    """One ipywidget per knob of ``loss`` (catalog ranges and defaults), keyed by knob name.

    ``names`` picks and orders the knobs (default: all); ``values`` overrides start values.
    Floats and ints become sliders, bools checkboxes, choices dropdowns; each control's tooltip
    is the knob's help text from the catalog.
    """
    import ipywidgets as widgets

    from lab import catalog

    entry = catalog.get(loss)
    chosen = list(names) if names is not None else [knob.name for knob in entry.knobs]
    unknown = set(values) - set(chosen)
    if unknown:
        raise KeyError(f"start values for knobs not shown: {sorted(unknown)}; shown: {chosen}")
    style = {"description_width": "initial"}
    controls: dict[str, Any] = {}
    for name in chosen:
        knob = entry.knob(name)  # KeyError naming the valid knobs on a typo
        start = values.get(name, knob.default)
        common = {"description": name, "tooltip": knob.help, "style": style}
        if knob.kind == "float":
            controls[name] = widgets.FloatSlider(value=start, min=knob.low, max=knob.high,
                                                 step=knob.step, continuous_update=False,
                                                 **common)
        elif knob.kind == "int":
            controls[name] = widgets.IntSlider(value=start, min=int(knob.low),
                                               max=int(knob.high), step=int(knob.step),
                                               continuous_update=False, **common)
        elif knob.kind == "bool":
            controls[name] = widgets.Checkbox(value=bool(start), indent=False, **common)
        else:
            options = [(_label(choice), choice) for choice in knob.choices]
            controls[name] = widgets.Dropdown(options=options, value=start, **common)
    return controls


def slider(name: str, value: float, low: float, high: float, step: float) -> Any:
    """A float slider for a setting that is not a catalog knob (steps, learning rate, ...)."""
    import ipywidgets as widgets

    kind = widgets.IntSlider if all(float(x).is_integer() for x in (value, low, high, step)) \
        else widgets.FloatSlider
    return kind(value=value, min=low, max=high, step=step, description=name,
                continuous_update=False, style={"description_width": "initial"})


def explore(function: Callable[..., Any], controls: Mapping[str, Any]) -> None:
    """Show ``controls`` and call ``function(**values)`` now and after every change.

    Whatever ``function`` prints or displays appears below the controls, replacing the previous
    output. Keep ``function`` quick (a worked example, the playground): it runs on every move.
    An error in the first call is raised (a broken example must not pass unnoticed); after a
    change, its message is shown in place of the output instead.
    """
    import ipywidgets as widgets
    from IPython.display import display

    output = widgets.Output()

    def run(first: bool = False) -> None:
        values = {name: control.value for name, control in controls.items()}
        # Capture what the function shows and hand it to the Output widget as its outputs. (The
        # usual `with output:` capture relies on the front end routing messages, which headless
        # runners such as nbclient mimic imperfectly: they can stall on it.)
        items, error = _captured(function, values)
        if error is not None:
            if first:
                raise error
            items.append(_stream(f"{type(error).__name__}: {error}\n"))
        output.outputs = tuple(items)

    for control in controls.values():
        control.observe(lambda change: run(), names="value")
    run(first=True)
    panel = widgets.HBox(list(controls.values()),
                         layout=widgets.Layout(flex_flow="row wrap", gap="4px 16px"))
    display(widgets.VBox([panel, output]))


def _stream(text: str, name: str = "stdout") -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def _captured(function: Callable[..., Any], values: Mapping[str, Any]
              ) -> tuple[list[dict[str, Any]], Exception | None]:
    """(the outputs ``function(**values)`` printed and displayed, its exception or None)."""
    import base64

    from IPython.utils.capture import capture_output

    error = None
    with capture_output() as captured:
        try:
            function(**values)
        except Exception as caught:  # reported by the caller, with what was shown before it
            error = caught
    items = []
    if captured.stdout:
        items.append(_stream(captured.stdout))
    if captured.stderr:
        items.append(_stream(captured.stderr, "stderr"))
    for shown in captured.outputs:
        # Binary data (PNG images) travels as base64 text, as in a saved notebook.
        data = {kind: base64.b64encode(value).decode("ascii") if isinstance(value, bytes)
                else value for kind, value in shown.data.items()}
        items.append({"output_type": "display_data", "data": data,
                      "metadata": shown.metadata or {}})
    return items, error


def playground_run(loss: str, knobs: Mapping[str, Any] | None = None, *, n_steps: int = 40,
                   learning_rate: float = 0.05, optimizer: str = "adam", n_classes: int = 3,
                   per_class: int = 6, seed: int = 0) -> Any:
    """A :class:`lab.playground.Playground` on :func:`lab.playground.make_points`, stepped."""
    from lab import playground

    points, labels = playground.make_points(n_classes, per_class, seed=seed)
    board = playground.Playground(loss, points, labels, knobs=dict(knobs or {}),
                                  learning_rate=learning_rate, optimizer=optimizer, seed=seed)
    if n_steps:
        board.step(n_steps)
    return board


def playground_explorer(loss: str, knob_names: Sequence[str] = (), *, n_steps: int = 40,
                        learning_rate: float = 0.05, optimizer: str = "adam",
                        links: bool = False, **knob_values: Any) -> None:
    """Widgets for ``loss``'s knobs ``knob_names`` plus steps and learning rate, over the
    2-D playground: every change re-runs the points from the same start and redraws them."""
    from IPython.display import display

    from lab import playground

    controls = knob_controls(loss, knob_names, **knob_values)
    controls["steps"] = slider("steps", n_steps, 0, 200, 10)
    controls["learning_rate"] = slider("learning rate", learning_rate, 0.01, 0.5, 0.01)

    def redraw(steps: int, learning_rate: float, **knobs: Any) -> None:
        try:
            board = playground_run(loss, knobs, n_steps=steps, learning_rate=learning_rate,
                                   optimizer=optimizer)
        except playground.PlaygroundError as error:  # e.g. diverged: say so, keep the widget
            print(f"{type(error).__name__}: {error}")
            return
        if board.losses:
            print(f"loss {board.losses[0]:.4f} at the start -> {board.losses[-1]:.4f} "
                  f"after {len(board.losses)} steps")
        display(playground.trajectory_figure(board, links=links))

    explore(redraw, controls)


# ------------------------------------------------------------------------------------ figures
def points_figure(points: Any, labels: Sequence[int], names: Sequence[str] | None = None, *,
                  positives: Sequence[tuple[int, int]] = (),
                  negatives: Sequence[tuple[int, int]] = (), title: str = "",
                  origin: bool = False) -> Any:
    """A worked example's few 2-D points, lettered and coloured by label.

    ``positives`` / ``negatives`` are (i, j) index pairs drawn as green solid / red dotted
    segments (what the loss pulls together / pushes apart); ``origin`` marks (0, 0) and draws
    each point as an arrow from it, for losses that only look at directions (cosine).
    """
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from lab.viz import NEGATIVE_COLOUR, POSITIVE_COLOUR

    xy = np.asarray(points, dtype=float)  # (n, 2)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"points_figure draws 2-D points, shape (n, 2); got {xy.shape}")
    names = list(names) if names is not None else [chr(ord("A") + i) for i in range(len(xy))]
    palette = colormaps["tab10"]
    figure = Figure(figsize=(4.2, 3.8), layout="constrained")
    axes = figure.subplots()
    for pairs, colour, style in ((positives, POSITIVE_COLOUR, "-"),
                                 (negatives, NEGATIVE_COLOUR, ":")):
        for i, j in pairs:
            axes.plot(*xy[[i, j]].T, style, color=colour, lw=2, zorder=1)
    if origin:
        axes.scatter([0], [0], marker="+", color="grey", s=80)
        for (x, y), label in zip(xy, labels, strict=True):
            axes.annotate("", (x, y), (0, 0), arrowprops={"arrowstyle": "->", "alpha": 0.4,
                                                          "color": palette(int(label) % 10)})
    for (x, y), label, name in zip(xy, labels, names, strict=True):
        axes.scatter([x], [y], s=90, color=palette(int(label) % 10), zorder=2,
                     edgecolors="white")
        axes.annotate(f" {name}", (x, y), fontsize=11, zorder=3)
    axes.set_aspect("equal", adjustable="datalim")
    axes.margins(0.25)
    axes.grid(alpha=0.3)
    axes.set_title(title, fontsize=10)
    return figure


def compare_runs(runs: Mapping[str, Any], metric: str = "topic_knn_accuracy") -> None:
    """A table of this notebook's training runs: time, loss, ``metric`` before and after.

    ``metric`` is measured on the probe sentences no run trained on (topic kNN accuracy by
    default), so the rows compare even though the losses trained on different data formats.
    """
    from IPython.display import Markdown, display

    if not runs:
        print("no runs yet: execute the training cells above first")
        return
    rows = ["| loss | model, data | steps | seconds | loss first → last | "
            f"{metric} before → after |", "|---|---|---|---|---|---|"]
    for name, result in runs.items():
        curve = result.curves.get("loss", [])
        losses = f"{curve[0][1]:.3f} → {curve[-1][1]:.3f}" if curve else "–"
        before = result.metrics_before.get(metric, float("nan"))
        after = result.metrics_after.get(metric, float("nan"))
        rows.append(f"| {name} | {result.model_name}, {result.data_format} | "
                    f"{result.steps_done} | {result.seconds:.1f} | {losses} | "
                    f"{before:.3f} → {after:.3f} |")
    display(Markdown("\n".join(rows)))


def show_mined(mined: Any, names: Sequence[str]) -> None:
    """The triplets a batch triplet loss mined (its ``last_mined``), as a table of point names."""
    from IPython.display import Markdown, display

    if mined is None or not mined.is_listed:
        print("this loss call recorded no list of triplets")
        return
    rows = ["| anchor | positive | negative | loss | active |", "|---|---|---|---|---|"]
    for anchor, positive, negative, loss, active in zip(
            mined.anchor.tolist(), mined.positive.tolist(), mined.negative.tolist(),
            mined.losses.tolist(), mined.active.tolist(), strict=True):
        rows.append(f"| {names[anchor]} | {names[positive]} | {names[negative]} | "
                    f"{loss:.4f} | {'yes' if active else 'no'} |")
    rows.append(f"\n{mined.num_active} of {mined.num_valid} triplets active")
    display(Markdown("\n".join(rows)))


def gold_vs_cosine(result: Any, rows: int = 200) -> Any:
    """Gold score (or 0/1 label) against the model's cosine on the run's eval pairs, before
    training (the same model freshly loaded) and after; Spearman correlation in each title."""
    import numpy as np
    from matplotlib.figure import Figure

    from lab.data import FORMATS, load_dataset
    from lab.metrics import spearman
    from lab.models import load_model

    spec = FORMATS[result.data_format]
    if spec.label_kind not in ("float", "binary") or len(spec.text_columns) != 2:
        raise ValueError(f"gold_vs_cosine needs scored or 0/1-labelled pairs; the run trained "
                         f"on {result.data_format!r}")
    data = load_dataset(result.data_format, seed=result.seed)["eval"]
    data = data.select(range(min(rows, len(data))))
    gold = np.asarray(list(data[spec.label_column]), dtype=float)  # (n,)
    before = load_model(result.model_name, device=result.device, seed=result.seed)
    jitter = np.random.default_rng(0).uniform(-0.03, 0.03, len(gold))  # separate equal golds
    figure = Figure(figsize=(10, 4), layout="constrained")
    panels = figure.subplots(1, 2, sharey=True)
    for axes, model, moment in zip(panels, (before, result.model), ("before", "after"),
                                   strict=True):
        first, second = (model.encode(list(data[column]), convert_to_numpy=True,
                                      normalize_embeddings=True, show_progress_bar=False)
                         for column in spec.text_columns)
        cosine = np.sum(first * second, axis=1)  # (n,) cosines of unit vectors
        axes.scatter(gold + jitter, cosine, s=10, alpha=0.5)
        axes.set_title(f"{moment}: Spearman {spearman(first, second, gold):.3f}", fontsize=10)
        axes.set_xlabel(f"gold {spec.label_column}")
        axes.grid(alpha=0.3)
    panels[0].set_ylabel("cosine similarity of the pair")
    figure.suptitle(f"{result.loss}: eval pairs, gold against model")
    return figure
