"""lab.viz: figures render to PNG and refuse mismatched input."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

from lab.viz import (
    NEGATIVE_COLOUR,
    POSITIVE_COLOUR,
    active_fraction_curve,
    before_after_map,
    embedding_map,
    fit_projection,
    layer_plot,
    loss_curve,
    matryoshka_plot,
    pair_similarities,
    project_2d,
    similarity_heatmap,
    similarity_histograms,
    snapshot_grid,
    triplet_map,
    triplet_rows,
    triplet_table,
)


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


# --------------------------------------------------------------------------- shared helpers

def _saved(figure: Figure, tmp_path, name: str = "x.png") -> None:
    """Render to a PNG file and check it holds more than an empty set of axes (about 8 KB)."""
    assert isinstance(figure, Figure)
    path = tmp_path / name
    figure.savefig(path)
    assert path.exists()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 12_000


def _blobs(seed: int = 0, per: int = 6, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Three labelled Gaussian blobs: (3 * per, dim) embeddings and (3 * per,) labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], per)
    return rng.normal(size=(3 * per, dim)) + 3.0 * labels[:, None], labels


def _offsets(axes) -> np.ndarray:
    """All scatter points of one axes, stacked: (points, 2)."""
    return np.concatenate([collection.get_offsets() for collection in axes.collections
                           if isinstance(collection, PathCollection)])


# --------------------------------------------------------------------------- projection

def test_projection_is_one_pca_fitted_on_all_arrays_so_motion_is_real():
    first, _ = _blobs(0)
    second = first + 2.0  # every point moves by the same vector
    projection = fit_projection([first, second])
    expected = PCA(n_components=2, random_state=0).fit(np.concatenate([first, second]))
    np.testing.assert_allclose(projection.transform(first), expected.transform(first))
    # A linear projection fitted once moves every point by the same 2-D vector.
    motion = projection.transform(second) - projection.transform(first)  # (n, 2)
    np.testing.assert_allclose(motion, np.broadcast_to(motion[0], motion.shape), atol=1e-9)
    assert np.linalg.norm(motion[0]) > 1.0
    assert projection.axis_labels[0].startswith("PCA 1 (")


def test_projection_refuses_mismatched_input():
    first, _ = _blobs(0)
    with pytest.raises(ValueError, match="same dimension"):
        fit_projection([first, first[:, :4]])
    with pytest.raises(ValueError, match="fitted on 8-dimensional"):
        fit_projection([first]).transform(first[:, :4])
    with pytest.raises(ValueError, match="'pca' or 'umap'"):
        fit_projection([first], method="tsne")
    with pytest.raises(TypeError, match="list of"):
        fit_projection(first)


@pytest.mark.slow
def test_umap_caches_numba_code_under_the_lab_cache_and_announces_it_once():
    # A fresh process: only there does the first UMAP import happen (and get announced).
    script = (
        "import os, numpy as np\n"
        "from lab.models import cache_dir\n"
        "from lab.viz import fit_projection\n"
        "x = np.random.default_rng(0).normal(size=(40, 6))\n"
        "p = fit_projection([x[:20], x[20:]], method='umap')\n"
        "q = fit_projection([x], method='umap')\n"
        "assert p.transform(x[:20]).shape == (20, 2)\n"
        "assert p.transform(x[:3] + 0.01).shape == (3, 2)\n"
        "print(os.environ['NUMBA_CACHE_DIR'])\n"
        "print(cache_dir())\n"
    )
    environment = {name: value for name, value in os.environ.items()
                   if name != "NUMBA_CACHE_DIR"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=environment, cwd=Path(__file__).parents[2], timeout=600)
    assert done.returncode == 0, done.stderr
    numba_folder, lab_cache = done.stdout.split()
    assert Path(numba_folder) == Path(lab_cache) / "numba"
    announcements = [line for line in done.stderr.splitlines() if line.startswith("UMAP:")]
    assert len(announcements) == 1
    assert any(path.suffix == ".nbi" for path in Path(numba_folder).rglob("*"))


# --------------------------------------------------------------------------- maps

def test_before_after_map_uses_one_projection_and_equal_limits(tmp_path):
    before, labels = _blobs(0)
    after = before * 2.0 + 1.0
    figure = before_after_map(before, after, labels, ["a", "b", "c"], title="training")
    _saved(figure, tmp_path)
    left, right = figure.axes
    assert (left.get_title(), right.get_title()) == ("before", "after")
    assert left.get_xlim() == right.get_xlim() and left.get_ylim() == right.get_ylim()
    projection = fit_projection([before, after])
    # Points are drawn label by label; _blobs' labels are sorted, so the order is unchanged.
    np.testing.assert_allclose(_offsets(left), projection.transform(before))
    np.testing.assert_allclose(_offsets(right), projection.transform(after))
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="'after' embeddings"):
        before_after_map(before, after[:-1], labels)


def test_snapshot_grid_has_one_titled_panel_per_snapshot_on_shared_limits(tmp_path):
    first, labels = _blobs(0)
    snapshots = [(0, first), (10, first * 1.5), (20, first * 2), (30, first * 2.5), (40, first)]
    figure = snapshot_grid(snapshots, labels, ["a", "b", "c"], columns=3)
    _saved(figure, tmp_path)
    assert [axes.get_title() for axes in figure.axes] == [f"step {s}" for s in range(0, 50, 10)]
    assert len({axes.get_xlim() for axes in figure.axes}) == 1
    assert len({axes.get_ylim() for axes in figure.axes}) == 1
    # One shared projection: the same embeddings land on the same points in every panel.
    np.testing.assert_allclose(_offsets(figure.axes[0]), _offsets(figure.axes[4]))
    projection = fit_projection([matrix for _, matrix in snapshots])
    np.testing.assert_allclose(_offsets(figure.axes[1]), projection.transform(first * 1.5))
    with pytest.raises(ValueError, match="columns"):
        snapshot_grid(snapshots, labels, columns=0)
    with pytest.raises(ValueError, match="step 10"):
        snapshot_grid([(0, first), (10, first[:-1])], labels)


def _segments_by_width(axes) -> dict[tuple[float, str], np.ndarray]:
    """{(line width, colour hex): (segments, 2, 2)} of every LineCollection on the axes."""
    found = {}
    for collection in axes.collections:
        if isinstance(collection, LineCollection):
            key = (float(collection.get_linewidth()[0]), to_hex(collection.get_color()[0]))
            found[key] = np.asarray(collection.get_segments())
    return found


def test_triplet_map_draws_active_triplets_first_and_thick(tmp_path):
    probe, labels = _blobs(0)
    batch = probe[::2]  # (9, dim)
    anchor, positive, negative = [0, 1, 2, 3], [4, 5, 6, 7], [8, 0, 1, 2]
    active = [False, True, False, True]
    figure = triplet_map(probe, labels, batch, anchor, positive, negative, active,
                         label_names=["a", "b", "c"], max_triplets=3)
    _saved(figure, tmp_path)
    axes = figure.axes[0]
    assert axes.get_title() == "3 of 4 triplets shown, 2 of 4 active"
    segments = _segments_by_width(axes)
    # Both active triplets (1 and 3) thick; of the inactive ones only the first (0) fits.
    assert {key: len(value) for key, value in segments.items()} == {
        (2.0, POSITIVE_COLOUR): 2, (2.0, NEGATIVE_COLOUR): 2,
        (0.8, POSITIVE_COLOUR): 1, (0.8, NEGATIVE_COLOUR): 1}
    points = fit_projection([probe, batch]).transform(batch)  # (9, 2)
    np.testing.assert_allclose(segments[(2.0, POSITIVE_COLOUR)],
                               np.stack([points[[1, 3]], points[[5, 7]]], axis=1))
    np.testing.assert_allclose(segments[(0.8, NEGATIVE_COLOUR)],
                               np.stack([points[[0]], points[[8]]], axis=1))
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend == ["anchor → positive (pulled closer)", "anchor → negative (pushed away)",
                      "active triplet (loss > 0)", "inactive (already satisfied)", "anchor",
                      "positive / negative"]
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["a", "b", "c"]


def test_triplet_map_without_active_flags_draws_all_active_and_checks_indices(tmp_path):
    probe, labels = _blobs(1)
    figure = triplet_map(probe, labels, probe[:6], [0, 1], [2, 3], [4, 5])
    _saved(figure, tmp_path)
    axes = figure.axes[0]
    assert {width for width, _ in _segments_by_width(axes)} == {2.0}
    assert "inactive (already satisfied)" not in [t.get_text() for t in axes.get_legend().texts]
    with pytest.raises(ValueError, match=r"negative indices must lie in \[0, 6\)"):
        triplet_map(probe, labels, probe[:6], [0], [1], [6])
    with pytest.raises(ValueError, match="one flag per triplet"):
        triplet_map(probe, labels, probe[:6], [0], [1], [2], [True, False])


TEXTS = ["the cat sleeps on the warm windowsill all afternoon long, dreaming of birds",
         "a kitten naps", "stocks fell sharply today", "the market dropped",
         "rain is expected tomorrow", "showers later this week"]
LABELS = [0, 0, 1, 1, 2, 2]
NAMES = ["pets", "finance", "weather"]


def test_triplet_rows_give_texts_label_names_losses_and_derived_active_flags():
    rows = triplet_rows(TEXTS, [0, 2, 4], [1, 3, 5], [2, 4, 0], labels=LABELS,
                        label_names=NAMES, losses=[0.25, 0.0, 1.5], max_rows=2)
    assert rows == [
        {"anchor": TEXTS[0], "positive": "a kitten naps", "negative": "stocks fell sharply today",
         "anchor_label": "pets", "negative_label": "finance", "loss": 0.25, "active": True},
        {"anchor": "stocks fell sharply today", "positive": "the market dropped",
         "negative": "rain is expected tomorrow", "anchor_label": "finance",
         "negative_label": "weather", "loss": 0.0, "active": False},
    ]
    bare = triplet_rows(TEXTS, [0], [1], [2])
    assert bare[0]["anchor_label"] is None and bare[0]["loss"] is None
    assert bare[0]["active"] is None
    with pytest.raises(ValueError, match="anchor has 2 entries but positive has 1"):
        triplet_rows(TEXTS, [0, 1], [1], [2, 3])
    with pytest.raises(ValueError, match="losses must have one value per triplet"):
        triplet_rows(TEXTS, [0], [1], [2], losses=[0.1, 0.2])


def test_triplet_table_truncates_texts_and_tints_active_rows(tmp_path):
    figure = triplet_table(TEXTS, [0, 2, 4], [1, 3, 5], [2, 4, 0], labels=LABELS,
                           label_names=NAMES, losses=[0.25, 0.0, 1.5])
    _saved(figure, tmp_path)
    axes = figure.axes[0]
    cells = axes.tables[0].get_celld()
    header = [cells[0, column].get_text().get_text() for column in range(7)]
    assert header == ["#", "anchor", "positive", "negative", "anchor / negative label", "loss",
                      "active"]
    assert max(row for row, _ in cells) == 3  # header + 3 triplets
    long_text = cells[1, 1].get_text().get_text()
    assert long_text.endswith("…") and len(long_text) == 60
    assert TEXTS[0].startswith(long_text[:-1])
    assert [cells[row, 5].get_text().get_text() for row in (1, 2, 3)] == ["0.250", "0.000",
                                                                          "1.500"]
    assert [cells[row, 6].get_text().get_text() for row in (1, 2, 3)] == ["yes", "no", "yes"]
    tints = [to_hex(cells[row, 1].get_facecolor()) for row in (1, 2, 3)]
    assert tints[0] == tints[2] != tints[1]
    assert axes.get_title().startswith("3 of 3 triplets")


# --------------------------------------------------------------------------- training curves

def test_loss_curve_draws_the_total_thicker_and_first_in_the_legend(tmp_path):
    steps = range(10)
    figure = loss_curve({"pull": [(s, 1.0 / (s + 1)) for s in steps],
                         "loss": [(s, 2.0 / (s + 1)) for s in steps]}, title="short")
    _saved(figure, tmp_path)
    axes = figure.axes[0]
    assert len(axes.lines) == 2
    by_label = {line.get_label(): line for line in axes.lines}
    assert by_label["loss"].get_linewidth() > by_label["pull"].get_linewidth()
    np.testing.assert_allclose(by_label["loss"].get_ydata(), [2.0 / (s + 1) for s in steps])
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["loss", "pull"]
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("step", "loss")


def test_long_loss_curves_get_a_moving_average_over_a_faint_raw_line(tmp_path):
    steps = np.arange(60)
    zigzag = (steps % 2).astype(float)  # 0, 1, 0, 1, ...: the average is what matters
    figure = loss_curve({"loss": list(zip(steps, zigzag, strict=True)),
                         "ramp": list(zip(steps, steps * 0.5, strict=True))})
    _saved(figure, tmp_path)
    axes = figure.axes[0]
    assert len(axes.lines) == 4  # raw + smoothed per curve
    raw = [line for line in axes.lines if line.get_alpha() == 0.25]
    smooth = {line.get_label(): line.get_ydata() for line in axes.lines if line.get_alpha() is None}
    assert len(raw) == 2 and set(smooth) == {"loss", "ramp"}
    # A centred window of 5 over a zigzag averages 2/5 or 3/5; a straight line stays straight.
    assert set(np.round(smooth["loss"][5:-5], 6)) == {0.4, 0.6}
    np.testing.assert_allclose(smooth["ramp"][5:-5], steps[5:-5] * 0.5)
    empty = loss_curve({"loss": []})
    assert empty.axes[0].texts[0].get_text() == "no loss recorded yet"


def test_active_fraction_curve_spans_zero_to_one(tmp_path):
    points = [(step, 1.0 - step / 20) for step in range(0, 21, 2)]
    figure = active_fraction_curve(points, title="batch hard")
    _saved(figure, tmp_path)
    axes = figure.axes[0]
    assert axes.get_ylim() == (0.0, 1.0)
    np.testing.assert_allclose(axes.lines[0].get_ydata(), [value for _, value in points])
    assert axes.get_ylabel() == "active triplets (loss > 0)"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        active_fraction_curve([(0, 1.5)])


# --------------------------------------------------------------------------- pair distances

EAST, NORTH, WEST = [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]


def test_pair_similarities_by_hand():
    embeddings = np.array([EAST, NORTH, [-3.0, 0.0]])  # the last one points west, length 3
    labels = [0, 0, 1]  # pairs: (0, 1) same label; (0, 2) and (1, 2) different
    positive, negative = pair_similarities(embeddings, labels)
    np.testing.assert_allclose(positive, [0.0], atol=1e-12)
    np.testing.assert_allclose(negative, [-1.0, 0.0], atol=1e-12)
    positive, negative = pair_similarities(embeddings, labels, measure="cosine_distance")
    np.testing.assert_allclose(negative, [2.0, 1.0], atol=1e-12)
    positive, negative = pair_similarities(embeddings, labels, measure="euclidean")
    np.testing.assert_allclose(positive, [np.sqrt(2)])
    np.testing.assert_allclose(negative, [4.0, np.sqrt(10)])
    with pytest.raises(ValueError, match="measure must be one of"):
        pair_similarities(embeddings, labels, measure="dot")


def test_similarity_histograms_share_bins_and_mark_the_margin(tmp_path):
    before, labels = _blobs(0)
    after = before * 3.0
    figure = similarity_histograms(before, after, labels, measure="euclidean", margin=100.0)
    _saved(figure, tmp_path)
    left, right = figure.axes
    assert left.get_xlim() == right.get_xlim()
    # The margin lies beyond every distance here, yet the shared x range still shows it.
    assert np.concatenate(pair_similarities(after, labels, measure="euclidean")).max() < 100.0
    assert left.get_xlim()[1] > 100.0
    for axes in (left, right):
        dashed = [line for line in axes.lines if line.get_linestyle() == "--"]
        assert len(dashed) == 1 and list(dashed[0].get_xdata()) == [100.0, 100.0]
        # Same bins: every bar of both histograms starts on the same grid of edges.
        assert len(axes.patches) == 2 * 40
    assert [patch.get_x() for patch in left.patches] == [patch.get_x() for patch in right.patches]
    legend = [text.get_text() for text in left.get_legend().get_texts()]
    # 3 labels x 6 points: 3 * C(6, 2) = 45 same-label pairs of the C(18, 2) = 153.
    assert legend == ["positive (same label), 45 pairs", "negative (different), 108 pairs",
                      "margin = 100"]
    assert left.get_xlabel() == "euclidean distance (positives belong on the left)"
    single = similarity_histograms(before, None, labels)
    assert len(single.axes) == 1 and single.axes[0].get_title().startswith("before")
    assert not [line for line in single.axes[0].lines if line.get_linestyle() == "--"]


def test_similarity_heatmap_shows_the_cosine_matrix_with_values(tmp_path):
    embeddings = np.array([EAST, NORTH, WEST, [1.0, 1.0], [2.0, 0.0]])
    texts = ["east", "north", "west", "a much longer text that will not fit as a tick", "east2"]
    figure = similarity_heatmap(embeddings, texts, labels=[0, 1, 0, 1, 0], title="compass")
    _saved(figure, tmp_path)
    axes = figure.axes[0]
    assert len(figure.axes) == 2  # the heatmap and its colour bar
    matrix = axes.images[0].get_array()
    assert matrix.shape == (5, 5)
    np.testing.assert_allclose(matrix[0], [1.0, 0.0, -1.0, np.sqrt(0.5), 1.0], atol=1e-12)
    assert len(axes.texts) == 25 and axes.texts[2].get_text() == "-1.00"
    ticks = [tick.get_text() for tick in axes.get_yticklabels()]
    assert ticks[:3] == ["east", "north", "west"] and ticks[3].endswith("…")
    assert axes.get_yticklabels()[0].get_color() != axes.get_yticklabels()[1].get_color()
    big = similarity_heatmap(np.random.default_rng(0).normal(size=(30, 4)))
    assert big.axes[0].images[0].get_array().shape == (24, 24)
    assert not big.axes[0].texts
    assert big.axes[0].get_title() == "cosine similarity (first 24 of 30)"
    with pytest.raises(ValueError, match="5 embeddings but 2 texts"):
        similarity_heatmap(embeddings, ["a", "b"])


# --------------------------------------------------------------------------- quality curves

def test_matryoshka_plot_has_a_log2_axis_ticked_at_the_dimensions(tmp_path):
    curves = {"before": {64: 0.6, 16: 0.4, 128: 0.65}, "after": {128: 0.9, 64: 0.88, 8: 0.5}}
    figure = matryoshka_plot(curves, metric="Spearman")
    _saved(figure, tmp_path)
    axes = figure.axes[0]
    assert axes.get_xscale() == "log"
    assert list(axes.get_xticks()) == [8, 16, 64, 128]
    assert [tick.get_text() for tick in axes.get_xticklabels()] == ["8", "16", "64", "128"]
    lines = {line.get_label(): line for line in axes.lines}
    assert list(lines["before"].get_xdata()) == [16, 64, 128]
    assert list(lines["before"].get_ydata()) == [0.4, 0.6, 0.65]
    assert axes.get_ylabel() == "Spearman"
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["before", "after"]


def test_layer_plot_has_integer_layer_ticks(tmp_path):
    figure = layer_plot({"before": {1: 0.3, 2: 0.5}, "after": {2: 0.9, 1: 0.7, 3: 0.95}})
    _saved(figure, tmp_path)
    axes = figure.axes[0]
    assert list(axes.get_xticks()) == [1, 2, 3]
    assert len(axes.lines) == 2
    assert list(axes.lines[1].get_ydata()) == [0.7, 0.9, 0.95]
    assert axes.get_ylabel() == "kNN accuracy"
    assert axes.get_xlabel().startswith("transformer layers used")
