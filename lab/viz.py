"""Matplotlib figures of what a loss does to embeddings.

Every function returns a ``matplotlib.figure.Figure`` (never shows it), so notebooks display it,
the app streams it and scripts save it with ``figure.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patheffects import withStroke


def project_2d(embeddings: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Project (n, dim) embeddings to (n, 2) with PCA (default) or UMAP."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or len(embeddings) < 3:
        raise ValueError(f"expected embeddings of shape (n >= 3, dim); got {embeddings.shape}")
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(embeddings)
    if method == "umap":
        import umap

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(embeddings)
    raise ValueError(f"method must be 'pca' or 'umap'; got {method!r}")


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
    points = project_2d(embeddings, method)
    labels = np.asarray(labels)
    if len(labels) != len(points):
        raise ValueError(f"got {len(points)} embeddings but {len(labels)} labels")
    # A bare Figure (not pyplot's): nothing global to leak, and notebooks show it exactly once.
    figure = Figure(figsize=(7.5, 6), layout="constrained")
    axes = figure.subplots()
    colours = colormaps["tab20" if len(np.unique(labels)) > 10 else "tab10"]
    for index, label in enumerate(np.unique(labels)):
        chosen = labels == label
        name = label_names[label] if label_names is not None else str(label)
        colour = colours(index % colours.N)
        axes.scatter(points[chosen, 0], points[chosen, 1], s=14, alpha=0.6, color=colour,
                     label=name)
        if annotate:
            # Name each class at its median point: a cluster is easier to see than to look up.
            centre = np.median(points[chosen], axis=0)
            axes.annotate(name, centre, ha="center", va="center", fontsize=9, weight="bold",
                          color=colour, path_effects=[withStroke(linewidth=3, foreground="white")])
    axes.set_title(title)
    axes.set_xlabel(f"{method.upper()} 1")
    axes.set_ylabel(f"{method.upper()} 2")
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=9)
    return figure
