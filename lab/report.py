"""The pictures of one training run: which plots fit a :class:`lab.training.TrainResult`.

``figures(result)`` returns ``{name: Figure}`` for the notebooks and the app; ``write_plots``
saves them as PNGs into the run folder for the command line.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from lab import viz

__all__ = ["figures", "write_plots"]


def _margin(result: Any) -> float | None:
    """The loss's margin knob where it is on the plotted (euclidean distance) scale."""
    knobs = result.knobs
    if result.loss.startswith("Batch") and knobs.get("distance_metric", "euclidean") == "euclidean":
        from lab.catalog import get

        entry = get(result.loss)
        if any(knob.name == "margin" for knob in entry.knobs):
            return float(knobs.get("margin", entry.knob("margin").default))
    return None


def figures(result: Any, only: Collection[str] | None = None) -> dict[str, Figure]:
    """Every plot that fits ``result``, by name (names are the PNG file stems).

    ``only``: build just these names (those that fit), e.g. for a page that already drew the
    others; None builds all.
    """

    def wanted(name: str) -> bool:
        return only is None or name in only

    probe = result.probe
    labels = np.asarray(probe.labels)
    names = list(probe.label_names)
    (first_step, before), (last_step, after) = result.snapshots[0], result.snapshots[-1]
    title = f"{result.loss} on {result.data_format} ({result.model_name})"
    plots: dict[str, Figure] = {}
    if wanted("loss-curve"):
        plots["loss-curve"] = viz.loss_curve(result.curves, title=title)
    if wanted("embedding-map-before-after"):
        plots["embedding-map-before-after"] = viz.before_after_map(
            before, after, labels, names,
            title=f"{title}: probe sentences at step {first_step} and step {last_step}")
    if len(result.snapshots) > 2 and wanted("embedding-map-snapshots"):
        plots["embedding-map-snapshots"] = viz.snapshot_grid(result.snapshots, labels, names)
    if wanted("similarity-histograms"):
        margin = _margin(result)
        measure = "euclidean" if margin is not None else "cosine"
        plots["similarity-histograms"] = viz.similarity_histograms(
            before, after, labels, measure=measure, margin=margin,
            title=f"{title}: same-topic vs different-topic pairs")
    if result.active_fraction and wanted("active-triplets"):
        plots["active-triplets"] = viz.active_fraction_curve(result.active_fraction, title=title)
    if result.triplets:
        record = result.triplets[-1]
        if wanted("mined-triplets-map"):
            plots["mined-triplets-map"] = viz.triplet_map(
                after, labels, record.embeddings, record.anchor, record.positive,
                record.negative, record.active, label_names=names)
        if wanted("mined-triplets-table"):
            plots["mined-triplets-table"] = viz.triplet_table(
                record.texts, record.anchor, record.positive, record.negative,
                labels=record.labels, label_names=names, losses=record.losses,
                active=record.active)
    if "matryoshka" in result.extra_curves and wanted("quality-vs-dimension"):
        plots["quality-vs-dimension"] = viz.matryoshka_plot(result.extra_curves["matryoshka"])
    if "layers" in result.extra_curves and wanted("quality-vs-layer"):
        plots["quality-vs-layer"] = viz.layer_plot(result.extra_curves["layers"])
    return plots


def write_plots(result: Any, folder: str | Path) -> list[Path]:
    """Save every plot of ``result`` as ``<name>.png`` into ``folder``; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in figures(result).items():
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=110)
        written.append(path)
    return written
