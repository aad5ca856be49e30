"""Matplotlib figures of what a loss does to embeddings.

Every function returns a ``matplotlib.figure.Figure`` (never shows it), so notebooks display it,
the app streams it and scripts save it with ``figure.savefig(path)``. Inputs are plain NumPy
arrays and Python lists (torch CPU tensors work too), never a training-result object, so the
same figure serves a notebook, the app and the command line.

- Maps: ``embedding_map``, ``before_after_map``, ``snapshot_grid`` and ``triplet_map`` place
  embeddings in the plane with a ``Projection`` fitted once on everything shown, so a point that
  moves between panels really moved in embedding space.
- Mined triplets: ``triplet_map`` (drawn on the map), ``triplet_table`` and ``triplet_rows``.
- Training curves: ``loss_curve`` (with named components) and ``active_fraction_curve``.
- Distances: ``pair_similarities``, ``similarity_histograms`` (with the margin) and
  ``similarity_heatmap``.
- Quality curves: ``matryoshka_plot`` (vs embedding dimension) and ``layer_plot`` (vs layer).
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import threading
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patheffects import withStroke
from matplotlib.ticker import NullLocator, PercentFormatter

METHODS = ("pca", "umap")
"""Projection methods ``fit_projection`` knows."""

MEASURES = {
    "cosine": "cosine similarity",
    "cosine_distance": "cosine distance (1 − cos)",
    "euclidean": "euclidean distance",
}
"""Pair measures of ``pair_similarities`` and their axis names: a similarity or two distances."""

POSITIVE_COLOUR = "#2a9d3a"  # green: pairs/segments the loss pulls together
NEGATIVE_COLOUR = "#d62728"  # red: pairs/segments the loss pushes apart
SMOOTH_ABOVE = 30  # curves with more points than this get a moving average over a faint raw line
HEATMAP_MAX_ROWS = 24  # beyond this a similarity matrix is unreadable as text
HEATMAP_ANNOTATE_MAX = 12  # write each value into its cell up to this many rows

_UMAP_LOCK = threading.Lock()


# --------------------------------------------------------------------------- projections


def _matrix(array: object, what: str = "embeddings") -> np.ndarray:
    """``array`` as float64 of shape (n, dim), or a ValueError naming ``what``."""
    matrix = np.asarray(array.detach().cpu() if hasattr(array, "detach") else array,
                        dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"expected {what} of shape (n, dim); got shape {matrix.shape}")
    return matrix


def _fingerprint(matrix: np.ndarray) -> bytes:
    """Content hash of a float64 matrix: recognises an array the projection was fitted on."""
    digest = hashlib.blake2b(np.ascontiguousarray(matrix).tobytes(), digest_size=16)
    digest.update(str(matrix.shape).encode())
    return digest.digest()


def _cache_umap_numba() -> None:
    """Turn on numba's disk cache for every umap / pynndescent function that lacks it.

    Most of umap's numba functions (all the ``parallel=True`` ones among them) are compiled
    without ``cache=True``, so a fresh process recompiles them on every first fit and transform
    (tens of seconds on a small CPU). ``enable_caching`` is what ``@njit(cache=True)`` calls.
    """
    try:
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # pragma: no cover - a numba without these internals: just no cache
        return
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in ("umap", "pynndescent") or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher) and isinstance(getattr(value, "_cache", None),
                                                            NullCache):
                value.enable_caching()


def _import_umap() -> object:
    """Import umap-learn with numba's compiled code cached on disk, announcing the slow start.

    umap's numba functions take about 20 s to compile in a fresh process. numba only caches them
    when it may write next to their source or to ``NUMBA_CACHE_DIR``, so we point the latter at
    the lab cache (unless the user chose a folder) before umap, and its numba code, load; then
    we turn the cache on for the functions umap compiles without it.
    """
    with _UMAP_LOCK:  # the app may draw from several threads: announce and configure once
        if "umap" not in sys.modules:
            from lab.models import cache_dir

            folder = os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba"))
            if "numba" in sys.modules:
                # numba read its configuration when it was imported; set the folder directly.
                # It applies to functions compiled from now on, which includes all of umap's.
                import numba

                numba.config.CACHE_DIR = folder
            cached = any(name.endswith(".nbi") for _, _, names in os.walk(folder)
                         for name in names)
            if cached:
                print(f"UMAP: loading compiled numba code cached in {folder} (a few seconds)...",
                      file=sys.stderr, flush=True)
            else:
                print("UMAP: compiling numba code on first use (about 20 s, up to a few "
                      "minutes on a slow CPU; cached afterwards)...",
                      file=sys.stderr, flush=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # numba and umap import-time chatter
                import umap
            _cache_umap_numba()
        import umap
    return umap


class Projection:
    """A 2-D projection fitted once; ``transform`` places any (n, dim) array in the same plane.

    Built by ``fit_projection``. Fitting once on every array to be shown (all training
    snapshots, or before and after) means motion between panels is motion of the embeddings,
    not an artefact of refitting.
    """

    def __init__(self, method: str, estimator: object, dim: int,
                 axis_labels: tuple[str, str], fitted: dict[bytes, np.ndarray]) -> None:
        """Wrap a fitted estimator; use ``fit_projection`` rather than calling this."""
        self.method = method
        """``"pca"`` or ``"umap"``."""
        self.dim = dim
        """Width of the arrays it accepts."""
        self.axis_labels = axis_labels
        """Labels for the x and y axes, e.g. ("PCA 1 (41%)", "PCA 2 (17%)")."""
        self._estimator = estimator
        # UMAP's transform of a training point is only close to where the fit placed it, so the
        # fitted positions of each input array are kept and returned exactly.
        self._fitted = fitted

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Project (n, dim) embeddings to (n, 2) points in the fitted plane."""
        matrix = _matrix(x)
        if matrix.shape[1] != self.dim:
            raise ValueError(f"this projection was fitted on {self.dim}-dimensional embeddings; "
                             f"got shape {matrix.shape}")
        known = self._fitted.get(_fingerprint(matrix))
        if known is not None:
            return known.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # UMAP warns about threads and tiny inputs
            return np.asarray(self._estimator.transform(matrix), dtype=np.float64)

    def __repr__(self) -> str:
        """Show the method and input width."""
        return f"Projection(method={self.method!r}, dim={self.dim})"


def fit_projection(arrays: Sequence[np.ndarray], method: str = "pca", seed: int = 0) -> Projection:
    """Fit one 2-D projection (PCA by default, or UMAP) on all ``arrays`` stacked.

    Each array is (n_i, dim) with the same dim, e.g. every training snapshot of a probe set.
    UMAP (umap-learn) compiles numba code on its first use in a process (about 20 s, cached on
    disk under the lab cache afterwards); PCA is instant.
    """
    if method not in METHODS:
        raise ValueError(f"method must be 'pca' or 'umap'; got {method!r}")
    if isinstance(arrays, np.ndarray) and arrays.ndim == 2:
        raise TypeError("fit_projection takes a list of (n, dim) arrays; wrap one array in [ ]")
    matrices = [_matrix(array) for array in arrays]
    if not matrices:
        raise ValueError("fit_projection needs at least one array of embeddings")
    widths = {matrix.shape[1] for matrix in matrices}
    if len(widths) > 1:
        raise ValueError(f"all arrays must have the same dimension; got {sorted(widths)}")
    stacked = np.concatenate(matrices)  # (sum of n_i, dim)
    if len(stacked) < 3:
        raise ValueError(f"expected embeddings of shape (n >= 3, dim); got {stacked.shape}")
    dim = stacked.shape[1]

    if method == "pca":
        from sklearn.decomposition import PCA

        estimator = PCA(n_components=2, random_state=seed).fit(stacked)
        share = estimator.explained_variance_ratio_  # (2,) share of the variance each axis shows
        labels = (f"PCA 1 ({share[0]:.0%})", f"PCA 2 ({share[1]:.0%})")
        return Projection("pca", estimator, dim, labels, {})

    umap = _import_umap()
    # UMAP needs fewer neighbours than points; 15 (its default) otherwise.
    estimator = umap.UMAP(n_components=2, n_neighbors=min(15, len(stacked) - 1),
                          random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state" and the like
        placed = estimator.fit_transform(stacked)  # (sum of n_i, 2)
    fitted, start = {}, 0
    for matrix in matrices:
        fitted[_fingerprint(matrix)] = placed[start:start + len(matrix)]
        start += len(matrix)
    return Projection("umap", estimator, dim, ("UMAP 1", "UMAP 2"), fitted)


def project_2d(embeddings: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Project (n, dim) embeddings to (n, 2) with PCA (default) or UMAP."""
    if method not in METHODS:
        raise ValueError(f"method must be 'pca' or 'umap'; got {method!r}")
    matrix = _matrix(embeddings)
    return fit_projection([matrix], method, seed).transform(matrix)


# --------------------------------------------------------------------------- label helpers


def _labels(labels: object, count: int, what: str = "embeddings") -> np.ndarray:
    """Labels as an (n,) array, checked against the number of points."""
    array = np.asarray(labels)
    if array.ndim != 1 or len(array) != count:
        raise ValueError(f"got {count} {what} but {array.size} labels")
    return array


def _label_name(label: object, label_names: Sequence[str] | None) -> str:
    """Display name of a label: ``label_names[label]`` when names are given."""
    return str(label) if label_names is None else str(label_names[int(label)])


def _palette(labels: np.ndarray) -> dict[object, tuple[float, ...]]:
    """One colour per distinct label, the same in every panel of a figure."""
    unique = np.unique(labels)
    colours = colormaps["tab20" if len(unique) > 10 else "tab10"]
    return {label: colours(index % colours.N) for index, label in enumerate(unique)}


def _scatter_labels(axes: object, points: np.ndarray, labels: np.ndarray,
                    palette: Mapping[object, tuple[float, ...]],
                    label_names: Sequence[str] | None, *, size: float = 14, alpha: float = 0.6,
                    annotate: bool = False) -> None:
    """Scatter (n, 2) points one label at a time; optionally name each cluster at its median."""
    for label, colour in palette.items():
        chosen = labels == label
        if not chosen.any():
            continue
        name = _label_name(label, label_names)
        axes.scatter(points[chosen, 0], points[chosen, 1], s=size, alpha=alpha, color=colour,
                     label=name)
        if annotate:
            # A cluster is easier to read by its name than to look up in the legend.
            centre = np.median(points[chosen], axis=0)
            axes.annotate(name, centre, ha="center", va="center", fontsize=9, weight="bold",
                          color=colour, path_effects=[withStroke(linewidth=3, foreground="white")])


def _figure_legend(figure: Figure, axes: object) -> None:
    """The label legend of ``axes`` once, outside the panels on the right."""
    handles, names = axes.get_legend_handles_labels()
    if handles:
        figure.legend(handles, names, loc="outside right center", frameon=False, fontsize=9)


def _truncate(text: object, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[:width - 1].rstrip() + "…"


# --------------------------------------------------------------------------- maps


def embedding_map(
    embeddings: np.ndarray,
    labels: Sequence[int],
    label_names: Sequence[str] | None = None,
    *,
    title: str = "",
    method: str = "pca",
    annotate: bool = True,
) -> Figure:
    """Scatter of embeddings projected to 2-D, one colour per label, with a legend.

    ``annotate`` writes each label's name at the median of its points.
    """
    matrix = _matrix(embeddings)
    labels = _labels(labels, len(matrix))
    projection = fit_projection([matrix], method)
    points = projection.transform(matrix)  # (n, 2)
    # A bare Figure (not pyplot's): nothing global to leak, and notebooks show it exactly once.
    figure = Figure(figsize=(7.5, 6), layout="constrained")
    axes = figure.subplots()
    _scatter_labels(axes, points, labels, _palette(labels), label_names, annotate=annotate)
    axes.set_title(title)
    axes.set_xlabel(projection.axis_labels[0])
    axes.set_ylabel(projection.axis_labels[1])
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=9)
    return figure


def before_after_map(
    before: np.ndarray,
    after: np.ndarray,
    labels: Sequence[int],
    label_names: Sequence[str] | None = None,
    *,
    method: str = "pca",
    title: str = "",
) -> Figure:
    """Two maps side by side, before and after training, in one projection with equal limits.

    ``before`` and ``after`` are (n, dim) embeddings of the same n texts; ``labels`` colours them.
    """
    before, after = _matrix(before, "before"), _matrix(after, "after")
    labels = _labels(labels, len(before))
    _labels(labels, len(after), "'after' embeddings")
    projection = fit_projection([before, after], method)
    palette = _palette(labels)
    figure = Figure(figsize=(12.5, 5.8), layout="constrained")
    # Shared axes: one pair of limits covers both panels, so positions compare directly.
    panels = figure.subplots(1, 2, sharex=True, sharey=True)
    for axes, matrix, name in zip(panels, (before, after), ("before", "after"), strict=True):
        _scatter_labels(axes, projection.transform(matrix), labels, palette, label_names,
                        annotate=True)
        axes.set_title(name)
        axes.set_xlabel(projection.axis_labels[0])
    panels[0].set_ylabel(projection.axis_labels[1])
    _figure_legend(figure, panels[0])
    if title:
        figure.suptitle(title)
    return figure


def snapshot_grid(
    snapshots: Sequence[tuple[int, np.ndarray]],
    labels: Sequence[int],
    label_names: Sequence[str] | None = None,
    *,
    method: str = "pca",
    columns: int = 4,
) -> Figure:
    """Small multiples: one map per (step, (n, dim) embeddings), titled "step N".

    All snapshots share one projection and one pair of axis limits, so the panels read as frames
    of a film of training.
    """
    snapshots = list(snapshots)
    if not snapshots:
        raise ValueError("snapshot_grid needs at least one (step, embeddings) snapshot")
    if columns < 1:
        raise ValueError(f"columns must be at least 1; got {columns}")
    matrices = [_matrix(matrix, f"the embeddings of step {step}") for step, matrix in snapshots]
    labels = _labels(labels, len(matrices[0]))
    for (step, _), matrix in zip(snapshots, matrices, strict=True):
        _labels(labels, len(matrix), f"embeddings at step {step}")
    projection = fit_projection(matrices, method)
    palette = _palette(labels)

    width = min(columns, len(snapshots))
    rows = math.ceil(len(snapshots) / width)
    figure = Figure(figsize=(3.3 * width + 1.6, 3.1 * rows), layout="constrained")
    grid = figure.subplots(rows, width, sharex=True, sharey=True, squeeze=False)
    for index, axes in enumerate(grid.flat):
        if index >= len(snapshots):
            # An empty cell: the panel above it is the last of its column and needs x ticks.
            grid[rows - 2, index % width].xaxis.set_tick_params(labelbottom=True)
            axes.remove()
            continue
        step = snapshots[index][0]
        _scatter_labels(axes, projection.transform(matrices[index]), labels, palette,
                        label_names, size=8)
        axes.set_title(f"step {step}", fontsize=10)
    for axes in grid[:, 0]:
        axes.set_ylabel(projection.axis_labels[1], fontsize=8)
    for axes in grid[-1, :]:
        axes.set_xlabel(projection.axis_labels[0], fontsize=8)
    _figure_legend(figure, grid[0, 0])
    return figure


def _indices(values: object, what: str, size: int, count: int | None = None) -> np.ndarray:
    """Integer index array (t,), checked to lie in [0, size) and to have ``count`` entries."""
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{what} must be a 1-D array of integer indices; got {array!r}")
    array = array.astype(np.int64)
    if count is not None and len(array) != count:
        raise ValueError(f"anchor has {count} entries but {what} has {len(array)}")
    if array.size and (array.min() < 0 or array.max() >= size):
        raise ValueError(f"{what} indices must lie in [0, {size}); got {array.min()} to "
                         f"{array.max()}")
    return array


def _triplets(anchor: object, positive: object, negative: object, active: object, size: int,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Checked (t,) index arrays and the (t,) active mask (None when not given)."""
    anchor = _indices(anchor, "anchor", size)
    positive = _indices(positive, "positive", size, len(anchor))
    negative = _indices(negative, "negative", size, len(anchor))
    if active is not None:
        active = np.asarray(active, dtype=bool)
        if active.shape != anchor.shape:
            raise ValueError(f"active must have one flag per triplet ({len(anchor)}); "
                             f"got shape {active.shape}")
    return anchor, positive, negative, active


def triplet_map(
    probe_embeddings: np.ndarray,
    probe_labels: Sequence[int],
    batch_embeddings: np.ndarray,
    anchor: Sequence[int],
    positive: Sequence[int],
    negative: Sequence[int],
    active: Sequence[bool] | None = None,
    *,
    label_names: Sequence[str] | None = None,
    method: str = "pca",
    max_triplets: int = 30,
    title: str = "",
) -> Figure:
    """Mined triplets drawn on the embedding map.

    The probe set (n, dim) is the faint background, coloured by label. The batch (b, dim) is
    placed in the same projection (fitted on probe and batch together). ``anchor``, ``positive``
    and ``negative`` are (t,) indices into the batch; ``active`` (t,) marks triplets with a
    positive loss (None: all active). Each triplet is an anchor-positive segment (green, the
    loss pulls it shorter) and an anchor-negative segment (red, pushed longer); active triplets
    are thick, inactive ones faint. At most ``max_triplets`` are drawn, active ones first.
    """
    probe = _matrix(probe_embeddings, "probe embeddings")
    probe_labels = _labels(probe_labels, len(probe), "probe embeddings")
    batch = _matrix(batch_embeddings, "batch embeddings")
    anchor, positive, negative, active = _triplets(anchor, positive, negative, active,
                                                   len(batch))
    if active is None:
        active = np.ones(len(anchor), dtype=bool)
    # Active triplets are the ones that move the model: show them first when capping.
    shown = np.concatenate([np.flatnonzero(active), np.flatnonzero(~active)])[:max(max_triplets, 0)]

    projection = fit_projection([probe, batch], method)
    probe_points = projection.transform(probe)  # (n, 2)
    batch_points = projection.transform(batch)  # (b, 2)
    figure = Figure(figsize=(9, 6.5), layout="constrained")
    axes = figure.subplots()
    _scatter_labels(axes, probe_points, probe_labels, _palette(probe_labels), label_names,
                    size=10, alpha=0.2, annotate=True)

    explanation = []
    for is_active in (True, False):
        chosen = shown[active[shown] == is_active]  # (s,) triplet numbers in this style
        if not len(chosen):
            continue
        style = ({"linewidths": 2.0, "alpha": 0.9, "zorder": 3} if is_active
                 else {"linewidths": 0.8, "alpha": 0.25, "zorder": 2})
        for ends, colour in ((positive, POSITIVE_COLOUR), (negative, NEGATIVE_COLOUR)):
            # (s, 2 ends, 2 coordinates): one segment per triplet from its anchor.
            segments = np.stack([batch_points[anchor[chosen]], batch_points[ends[chosen]]], 1)
            axes.add_collection(LineCollection(segments, colors=colour, **style))
        explanation.append(
            Line2D([], [], color="grey", lw=2.0, alpha=0.9, label="active triplet (loss > 0)")
            if is_active else
            Line2D([], [], color="grey", lw=0.8, alpha=0.4, label="inactive (already satisfied)"))
    if len(shown):
        ends = np.unique(np.concatenate([positive[shown], negative[shown]]))
        axes.scatter(batch_points[ends, 0], batch_points[ends, 1], s=26, facecolors="white",
                     edgecolors="black", linewidths=0.8, zorder=4)
        starts = np.unique(anchor[shown])
        axes.scatter(batch_points[starts, 0], batch_points[starts, 1], s=26, color="black",
                     zorder=5)
    axes.autoscale_view()
    handles = [
        Line2D([], [], color=POSITIVE_COLOUR, lw=2, label="anchor → positive (pulled closer)"),
        Line2D([], [], color=NEGATIVE_COLOUR, lw=2, label="anchor → negative (pushed away)"),
        *explanation,
        Line2D([], [], ls="", marker="o", color="black", markersize=5, label="anchor"),
        Line2D([], [], ls="", marker="o", markerfacecolor="white", markeredgecolor="black",
               markersize=5, label="positive / negative"),
    ]
    axes.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.85)
    # The label colours go in a figure legend: constrained layout makes room for it there.
    probe_handles, probe_names = axes.get_legend_handles_labels()
    probe_legend = figure.legend(probe_handles, probe_names, loc="outside right center",
                                 frameon=False, fontsize=9, title="probe set")
    for handle in probe_legend.legend_handles:
        handle.set_alpha(1.0)  # the background is faint on purpose; its key should not be
    summary = (f"{len(shown)} of {len(anchor)} triplets shown, "
               f"{int(active.sum())} of {len(anchor)} active")
    axes.set_title(f"{title}\n{summary}" if title else summary)
    axes.set_xlabel(projection.axis_labels[0])
    axes.set_ylabel(projection.axis_labels[1])
    return figure


# --------------------------------------------------------------------------- triplet tables


def triplet_rows(
    texts: Sequence[str],
    anchor: Sequence[int],
    positive: Sequence[int],
    negative: Sequence[int],
    *,
    labels: Sequence[int] | None = None,
    label_names: Sequence[str] | None = None,
    losses: Sequence[float] | None = None,
    active: Sequence[bool] | None = None,
    max_rows: int = 12,
) -> list[dict]:
    """The first ``max_rows`` triplets as dicts, for a gradio Dataframe or pandas.

    ``anchor``, ``positive`` and ``negative`` are (t,) indices into ``texts`` (the batch).
    Keys: anchor, positive, negative (full texts), anchor_label, negative_label (names when
    ``label_names`` is given; None without ``labels``), loss (float or None) and active
    (bool; from ``losses > 0`` when only losses are given; None when neither is).
    """
    texts = list(texts)
    anchor, positive, negative, active = _triplets(anchor, positive, negative, active,
                                                   len(texts))
    if labels is not None:
        labels = _labels(labels, len(texts), "texts")
    if losses is not None:
        losses = np.asarray(losses, dtype=np.float64)
        if losses.shape != anchor.shape:
            raise ValueError(f"losses must have one value per triplet ({len(anchor)}); "
                             f"got shape {losses.shape}")
        if active is None:
            active = losses > 0
    rows = []
    for number in range(min(len(anchor), max(max_rows, 0))):
        rows.append({
            "anchor": texts[anchor[number]],
            "positive": texts[positive[number]],
            "negative": texts[negative[number]],
            "anchor_label": None if labels is None
            else _label_name(labels[anchor[number]], label_names),
            "negative_label": None if labels is None
            else _label_name(labels[negative[number]], label_names),
            "loss": None if losses is None else float(losses[number]),
            "active": None if active is None else bool(active[number]),
        })
    return rows


def triplet_table(
    texts: Sequence[str],
    anchor: Sequence[int],
    positive: Sequence[int],
    negative: Sequence[int],
    *,
    labels: Sequence[int] | None = None,
    label_names: Sequence[str] | None = None,
    losses: Sequence[float] | None = None,
    active: Sequence[bool] | None = None,
    max_rows: int = 12,
) -> Figure:
    """The rows of ``triplet_rows`` as a table figure, texts cut to fit, active rows tinted."""
    rows = triplet_rows(texts, anchor, positive, negative, labels=labels,
                        label_names=label_names, losses=losses, active=active, max_rows=max_rows)
    total = len(np.asarray(anchor))
    has_labels, has_loss = labels is not None, losses is not None
    has_active = bool(rows) and rows[0]["active"] is not None
    header = ["#", "anchor", "positive", "negative"]
    widths = [0.04, 0.27, 0.27, 0.27]
    if has_labels:
        header.append("anchor / negative label")
        widths.append(0.17)
    if has_loss:
        header.append("loss")
        widths.append(0.07)
    if has_active:
        header.append("active")
        widths.append(0.06)
    cells = []
    for number, row in enumerate(rows):
        line = [str(number), *(_truncate(row[key], 60) for key in ("anchor", "positive",
                                                                     "negative"))]
        if has_labels:
            line.append(_truncate(f"{row['anchor_label']} / {row['negative_label']}", 26))
        if has_loss:
            line.append(f"{row['loss']:.3f}")
        if has_active:
            line.append("yes" if row["active"] else "no")
        cells.append(line)

    figure = Figure(figsize=(15, 0.3 * (len(rows) + 1) + 0.5), layout="constrained")
    axes = figure.subplots()
    axes.axis("off")
    axes.set_title(f"{len(rows)} of {total} triplets" + (
        " (tinted: active, loss > 0)" if has_active else ""), fontsize=10)
    if not rows:
        axes.text(0.5, 0.5, "no triplets", ha="center", va="center")
        return figure
    # bbox = the whole axes: rows share the figure's height, no empty band below the table.
    table = axes.table(cellText=cells, colLabels=header, colWidths=widths, bbox=(0, 0, 1, 1),
                       cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for cell in table.get_celld().values():
        cell.PAD = 0.02  # text padding as a share of the cell width (0.1 wastes wide columns)
    for column in range(len(header)):
        table[0, column].set_text_props(weight="bold")
    if has_active:
        for number, row in enumerate(rows, start=1):
            for column in range(len(header)):
                table[number, column].set_facecolor("#fde3cf" if row["active"] else "white")
    return figure


# --------------------------------------------------------------------------- training curves


def _series(points: Sequence[tuple[int, float]], what: str) -> tuple[np.ndarray, np.ndarray]:
    """(step, value) pairs as two (n,) arrays sorted by step."""
    array = np.asarray(list(points), dtype=np.float64)
    if array.size == 0:
        return np.zeros(0), np.zeros(0)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{what} must be a sequence of (step, value) pairs; got shape "
                         f"{array.shape}")
    order = np.argsort(array[:, 0], kind="stable")
    return array[order, 0], array[order, 1]


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """(n,) -> (n,) mean over a centred window, narrower at the ends so no point is lost."""
    count = len(values)
    sums = np.concatenate([[0.0], np.cumsum(values)])  # (n + 1,) prefix sums
    position = np.arange(count)
    low = np.clip(position - window // 2, 0, count)
    high = np.clip(position + window // 2 + 1, 0, count)
    return (sums[high] - sums[low]) / (high - low)


def _smoothing_window(count: int) -> int:
    """Moving-average width for a curve of ``count`` points (about 5% of it, at least 5)."""
    return max(5, count // 20)


def _draw_series(axes: object, steps: np.ndarray, values: np.ndarray, *, colour: object,
                 label: str, width: float) -> bool:
    """One curve; long ones as a faint raw line under a moving average. True if smoothed."""
    if len(values) <= SMOOTH_ABOVE:
        axes.plot(steps, values, color=colour, lw=width, label=label,
                  marker="o" if len(values) <= 12 else None, markersize=3)
        return False
    axes.plot(steps, values, color=colour, lw=max(width * 0.5, 0.6), alpha=0.25)
    axes.plot(steps, _moving_average(values, _smoothing_window(len(values))), color=colour,
              lw=width, label=label)
    return True


def loss_curve(curves: Mapping[str, Sequence[tuple[int, float]]], *, title: str = "") -> Figure:
    """Training loss against step, one line per named component.

    ``curves`` maps a name to (step, value) pairs; the key ``"loss"`` is the total and is drawn
    thicker, in black. Curves of more than 30 points are drawn as a moving average over a faint
    raw line.
    """
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.subplots()
    colours = colormaps["tab10"]
    smoothed = False
    # Components first, so the total lies on top of them.
    names = sorted(curves, key=lambda name: name == "loss")
    component = 0
    for name in names:
        steps, values = _series(curves[name], f"curve {name!r}")
        if name == "loss":
            colour, width = "black", 2.4
        else:
            colour, width = colours(component % colours.N), 1.4
            component += 1
        if len(steps):
            smoothed |= _draw_series(axes, steps, values, colour=colour, label=name, width=width)
    if not axes.lines:
        axes.text(0.5, 0.5, "no loss recorded yet", ha="center", va="center",
                  transform=axes.transAxes)
    else:
        handles, names = axes.get_legend_handles_labels()
        order = sorted(range(len(names)), key=lambda index: names[index] != "loss")  # total first
        axes.legend([handles[index] for index in order], [names[index] for index in order],
                    fontsize=9, title="moving average, raw faint" if smoothed else None,
                    title_fontsize=8)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return figure


def active_fraction_curve(points: Sequence[tuple[int, float]], *, title: str = "") -> Figure:
    """Share of mined triplets with a positive loss (active) against step, y from 0 to 1.

    When it falls towards 0 the loss has run out of triplets to learn from.
    """
    steps, values = _series(points, "points")
    if len(values) and (values.min() < 0 or values.max() > 1):
        raise ValueError(f"active fractions must lie in [0, 1]; got {values.min()} to "
                         f"{values.max()}")
    figure = Figure(figsize=(8, 3.6), layout="constrained")
    axes = figure.subplots()
    if len(steps):
        _draw_series(axes, steps, values, colour="#9467bd", label="active fraction", width=1.8)
    else:
        axes.text(0.5, 0.5, "no triplets mined yet", ha="center", va="center",
                  transform=axes.transAxes)
    for line in axes.lines:
        line.set_clip_on(False)  # a fraction of exactly 0 or 1 stays visible on the frame
    axes.set_ylim(0, 1)
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    axes.set_xlabel("step")
    axes.set_ylabel("active triplets (loss > 0)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return figure


# --------------------------------------------------------------------------- pair distances


def pair_similarities(
    embeddings: np.ndarray, labels: Sequence[int], *, measure: str = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """Values of all pairs i < j, split by label: (same-label pairs, different-label pairs).

    ``measure``: ``"cosine"`` similarity (higher = closer), ``"cosine_distance"`` (1 - cosine)
    or ``"euclidean"`` distance of the raw vectors (lower = closer). Pairs come in row-major
    order: (0, 1), (0, 2), ..., (1, 2), ...
    """
    from scipy.spatial.distance import pdist

    matrix = _matrix(embeddings)
    labels = _labels(labels, len(matrix))
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}; got {measure!r}")
    # pdist gives the (n (n - 1) / 2,) condensed pair list, row-major like triu_indices(k=1).
    if measure == "euclidean":
        values = pdist(matrix)
    else:
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        distance = pdist(matrix / np.where(norms == 0, 1.0, norms), "cosine")  # 1 - cos
        values = distance if measure == "cosine_distance" else 1.0 - distance
    first, second = np.triu_indices(len(matrix), k=1)
    same = labels[first] == labels[second]  # (pairs,)
    return values[same], values[~same]


def similarity_histograms(
    before: np.ndarray,
    after: np.ndarray | None,
    labels: Sequence[int],
    *,
    measure: str = "cosine",
    margin: float | None = None,
    title: str = "",
) -> Figure:
    """Histograms of same-label (positive) vs different-label (negative) pair values.

    One panel for ``before`` and one for ``after`` (just one if ``after`` is None), on the same
    bins and x range; the ``margin`` is a dashed vertical line. A loss that works separates the
    two histograms, with the margin between them.
    """
    panels = [("before", before)] + ([] if after is None else [("after", after)])
    pairs = [pair_similarities(matrix, labels, measure=measure) for _, matrix in panels]
    every = np.concatenate([values for pair in pairs for values in pair]
                           + [np.asarray([] if margin is None else [margin], dtype=np.float64)])
    low, high = (float(every.min()), float(every.max())) if every.size else (0.0, 1.0)
    pad = 0.03 * (high - low) if high > low else 0.5
    bins = np.linspace(low - pad, high + pad, 41)  # (41,) shared edges: equal bars compare

    figure = Figure(figsize=(5.5 * len(panels) + 0.5, 4.2), layout="constrained")
    grid = figure.subplots(1, len(panels), sharex=True, squeeze=False)[0]
    closer = "right" if measure == "cosine" else "left"
    for axes, (name, _), (positives, negatives) in zip(grid, panels, pairs, strict=True):
        summary = []
        for values, colour, kind in ((positives, POSITIVE_COLOUR, "positive (same label)"),
                                     (negatives, NEGATIVE_COLOUR, "negative (different)")):
            if len(values):
                # density: there are many more negative pairs; shapes matter, not counts.
                axes.hist(values, bins=bins, density=True, alpha=0.55, color=colour,
                          label=f"{kind}, {len(values)} pairs")
                summary.append(f"{kind.split()[0][:3]} mean {values.mean():.2f}")
        if margin is not None:
            axes.axvline(margin, color="black", ls="--", lw=1.5, label=f"margin = {margin:g}")
        axes.set_xlim(bins[0], bins[-1])
        axes.set_title(f"{name}: " + ", ".join(summary) if summary else name, fontsize=10)
        axes.set_xlabel(f"{MEASURES[measure]} (positives belong on the {closer})")
        axes.legend(fontsize=8)
    grid[0].set_ylabel("density")
    if title:
        figure.suptitle(title)
    return figure


def similarity_heatmap(
    embeddings: np.ndarray,
    texts: Sequence[str] | None = None,
    labels: Sequence[int] | None = None,
    *,
    title: str = "",
) -> Figure:
    """Cosine similarity matrix of a small batch, at most 24 rows, values written up to 12.

    ``texts`` become the (truncated) tick labels, else row numbers; ``labels`` colour them.
    """
    from lab.metrics import cosine_matrix

    matrix = _matrix(embeddings)
    total = len(matrix)
    if texts is not None and len(texts) != total:
        raise ValueError(f"got {total} embeddings but {len(texts)} texts")
    if labels is not None:
        labels = _labels(labels, total)
    count = min(total, HEATMAP_MAX_ROWS)
    similarity = cosine_matrix(matrix[:count], matrix[:count])  # (count, count)
    names = ([_truncate(text, 28) for text in texts[:count]] if texts is not None
             else [str(index) for index in range(count)])

    side = 4.5 + 0.28 * count + (2.0 if texts is not None else 0.0)
    figure = Figure(figsize=(side + 1.0, side), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(similarity, vmin=-1, vmax=1, cmap="RdBu_r")
    figure.colorbar(image, ax=axes, shrink=0.8, label="cosine similarity")
    axes.set_xticks(range(count), names, rotation=60, ha="right", fontsize=7)
    axes.set_yticks(range(count), names, fontsize=7)
    if labels is not None:
        palette = _palette(labels)
        for ticks in (axes.get_xticklabels(), axes.get_yticklabels()):
            for tick, label in zip(ticks, labels[:count], strict=True):
                tick.set_color(palette[label])
    if count <= HEATMAP_ANNOTATE_MAX:
        for row in range(count):
            for column in range(count):
                value = similarity[row, column]
                axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                          color="white" if abs(value) > 0.6 else "black")
    capped = f" (first {count} of {total})" if count < total else ""
    axes.set_title(f"{title or 'cosine similarity'}{capped}")
    return figure


# --------------------------------------------------------------------------- quality curves


def _quality_axes(curves: Mapping[str, Mapping[int, float]], metric: str,
                  ) -> tuple[Figure, object, list[int]]:
    """A figure with one marked line per named curve over its sorted x values."""
    figure = Figure(figsize=(7, 4.3), layout="constrained")
    axes = figure.subplots()
    xs: set[int] = set()
    for name, curve in curves.items():
        keys = sorted(int(key) for key in curve)
        xs.update(keys)
        axes.plot(keys, [curve[key] for key in keys], marker="o", label=name)
    if curves:
        axes.legend(fontsize=9)
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    return figure, axes, sorted(xs)


def matryoshka_plot(
    curves: Mapping[str, Mapping[int, float]], *, metric: str = "kNN accuracy", title: str = ""
) -> Figure:
    """Quality against Matryoshka dimension (first d dims kept), one line per curve.

    ``curves`` maps a name (e.g. "before", "after") to {dimension: value}, as returned by
    ``lab.metrics.matryoshka_curve``. The x axis is log2, ticked at the dimensions.
    """
    figure, axes, dims = _quality_axes(curves, metric)
    axes.set_xscale("log", base=2)
    axes.set_xticks(dims, [str(dim) for dim in dims])
    axes.xaxis.set_minor_locator(NullLocator())  # only the measured dimensions, no 2^k clutter
    axes.set_xlabel("embedding dimension (first d dimensions kept)")
    axes.set_title(title or f"{metric} vs embedding dimension")
    return figure


def layer_plot(
    curves: Mapping[str, Mapping[int, float]], *, metric: str = "kNN accuracy", title: str = ""
) -> Figure:
    """Quality against the number of transformer layers used, one line per curve.

    ``curves`` maps a name to {layers: value}, as returned by ``lab.metrics.layer_curve``.
    """
    figure, axes, layers = _quality_axes(curves, metric)
    axes.set_xticks(layers, [str(layer) for layer in layers])
    axes.set_xlabel("transformer layers used (mean-pooled output of layer L)")
    axes.set_title(title or f"{metric} vs layer")
    return figure
