"""lab.viz: figures render to PNG and refuse mismatched input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from lab.viz import embedding_map, project_2d


def test_embedding_map_renders_a_png_with_one_legend_entry_per_label():
    rng = np.random.default_rng(0)
    embeddings = np.concatenate([rng.normal(loc, 0.1, size=(10, 8)) for loc in (0, 3, 6)])
    labels = np.repeat([0, 1, 2], 10)
    figure = embedding_map(embeddings, labels, ["a", "b", "c"], title="three blobs")
    assert isinstance(figure, Figure)
    legend = figure.axes[0].get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["a", "b", "c"]
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pca_keeps_well_separated_groups_apart():
    rng = np.random.default_rng(1)
    embeddings = np.concatenate([rng.normal(0, 0.1, (20, 16)), rng.normal(5, 0.1, (20, 16))])
    points = project_2d(embeddings)
    assert points.shape == (40, 2)
    gap = np.linalg.norm(points[:20].mean(0) - points[20:].mean(0))
    spread = points[:20].std(0).max()
    assert gap > 10 * spread


def test_mismatched_labels_and_bad_method_are_clear_errors():
    embeddings = np.zeros((5, 4)) + np.arange(5)[:, None]
    with pytest.raises(ValueError, match="5 embeddings but 4 labels"):
        embedding_map(embeddings, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="'pca' or 'umap'"):
        project_2d(embeddings, method="tsne")
    with pytest.raises(ValueError, match="shape"):
        project_2d(np.zeros(4))
