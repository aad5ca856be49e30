"""The 2-D playground: real gradient steps of our losses on free points, and their picture."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.quiver import Quiver

import losses
from lab import catalog
from lab.build import KnobError
from lab.playground import (
    PLAYGROUND_LOSSES,
    Playground,
    PlaygroundDivergedError,
    PlaygroundError,
    PlaygroundInputError,
    PlaygroundLossError,
    make_points,
    trajectory_figure,
)


@pytest.fixture(autouse=True)
def _quiet_deprecated_loss():
    # MultipleNegativesSymmetricRankingLoss warns on construction that it is deprecated (the
    # reference does too); that is the loss's message, not the playground's concern.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="MultipleNegativesSymmetricRankingLoss is dep")
        yield


def _small() -> tuple[np.ndarray, np.ndarray]:
    return make_points(n_classes=3, per_class=4, seed=1)  # 12 points


def _loss_with_autograd(module: torch.nn.Module, points: np.ndarray, columns, targets
                        ) -> tuple[float, np.ndarray]:
    """(loss, (n, 2) gradient) of ``module`` on ``points`` gathered by ``columns``, by autograd."""
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    value = module.compute_loss_from_embeddings([x[torch.as_tensor(c)] for c in columns], targets)
    if isinstance(value, dict):
        value = sum(value.values())
    (gradient,) = torch.autograd.grad(value, x)
    return float(value.detach()), gradient.numpy()


def _within_over_between(points: np.ndarray, labels: np.ndarray) -> float:
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)  # (n, n)
    same = labels[:, None] == labels[None]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    return distances[same & off_diagonal].mean() / distances[~same].mean()


# ------------------------------------------------------------------------------------ catalog
def test_playground_losses_are_exactly_the_catalogs_raw_embedding_losses():
    expected = [name for name, entry in catalog.LOSSES.items() if entry.uses_raw_embeddings]
    assert isinstance(PLAYGROUND_LOSSES, tuple)
    assert list(PLAYGROUND_LOSSES) == expected
    assert "SoftmaxLoss" not in PLAYGROUND_LOSSES and "TripletLoss" in PLAYGROUND_LOSSES


# ------------------------------------------------------------------------------- make_points
def test_make_points_is_seeded_labelled_and_messy():
    points, labels = make_points(n_classes=3, per_class=6, seed=0)
    assert points.shape == (18, 2) and points.dtype == np.float64
    assert labels.shape == (18,) and labels.dtype.kind == "i"
    assert np.bincount(labels).tolist() == [6, 6, 6]
    again, _ = make_points(seed=0)
    other, _ = make_points(seed=1)
    np.testing.assert_array_equal(points, again)
    assert not np.allclose(points, other)
    # Messy: some point lies nearer another class's mean than its own.
    means = np.stack([points[labels == k].mean(axis=0) for k in range(3)])  # (3, 2)
    nearest = np.linalg.norm(points[:, None] - means[None], axis=-1).argmin(axis=1)
    assert (nearest != labels).any()
    wide, _ = make_points(seed=0, spread=3.0)
    np.testing.assert_allclose(wide, 3.0 * points)


def test_make_points_refuses_a_single_class():
    with pytest.raises(PlaygroundInputError, match="n_classes >= 2; got 1"):
        make_points(n_classes=1)


# ---------------------------------------------------------------------------- every loss runs
@pytest.mark.parametrize("name", PLAYGROUND_LOSSES)
def test_every_playground_loss_takes_five_finite_steps_that_move_the_points(name):
    points, labels = _small()
    playground = Playground(name, points, labels)
    last = playground.step(5)
    assert len(playground.positions) == 6 and len(playground.losses) == 5
    assert last == playground.losses[-1]
    assert np.isfinite(playground.losses).all()
    np.testing.assert_array_equal(playground.positions[0], points)
    assert all(p.shape == (12, 2) and np.isfinite(p).all() for p in playground.positions)
    assert np.abs(playground.positions[-1] - points).max() > 1e-4
    description = playground.inputs_description()
    assert description and "\n" not in description
    assert playground.forces().shape == (12, 2)


def test_each_recorded_loss_is_the_loss_at_the_recorded_positions_with_the_same_pairing():
    points, labels = _small()
    playground = Playground("TripletLoss", points, labels)
    playground.step(4)
    direct = losses.TripletLoss(None)
    for k in range(4):
        value, _ = _loss_with_autograd(direct, playground.positions[k], playground.columns, None)
        assert playground.losses[k] == pytest.approx(value, rel=1e-12)


# ------------------------------------------------------------------ a step is gradient descent
def _independent_targets(name: str, playground: Playground, labels: np.ndarray):
    """The label column rebuilt from the rows and the teacher, without the playground's code."""
    if name in ("BatchHardTripletLoss", "BatchAllTripletLoss"):
        return torch.as_tensor(labels)
    if name == "ContrastiveLoss":
        first, second = playground.columns
        return torch.as_tensor((labels[first] == labels[second]).astype(np.int64))
    if name == "CoSENTLoss":
        first, second = playground.columns
        return torch.as_tensor((labels[first] == labels[second]).astype(np.float64))
    if name == "MSELoss":
        return torch.as_tensor(playground.teacher)
    if name == "MarginMSELoss":  # the teacher's dot-product margin
        t = playground.teacher
        anchor, positive, negative = playground.columns
        margin = (t[anchor] * t[positive]).sum(1) - (t[anchor] * t[negative]).sum(1)
        return torch.as_tensor(margin)
    return None  # TripletLoss, MultipleNegativesRankingLoss, GOR: no labels


@pytest.mark.parametrize("name", [
    "BatchHardTripletLoss", "BatchAllTripletLoss", "TripletLoss", "ContrastiveLoss",
    "CoSENTLoss", "MultipleNegativesRankingLoss", "MSELoss", "MarginMSELoss",
    "GlobalOrthogonalRegularizationLoss",
])
def test_one_sgd_step_moves_points_by_minus_lr_times_the_autograd_gradient(name):
    points, labels = _small()
    playground = Playground(name, points, labels, learning_rate=0.05)
    direct = getattr(losses, name)(None)  # built straight from losses, reference defaults
    targets = _independent_targets(name, playground, labels)
    value, gradient = _loss_with_autograd(direct, points, playground.columns, targets)
    assert np.abs(gradient).max() > 1e-6  # a real gradient, not a vacuous comparison
    playground.step()
    assert playground.losses[0] == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(playground.positions[1], points - 0.05 * gradient,
                               rtol=0, atol=1e-12)


def test_knobs_reach_the_loss():
    points, labels = _small()
    loose = Playground("BatchHardTripletLoss", points, labels, knobs={"margin": 0.5})
    direct = losses.BatchHardTripletLoss(None, margin=0.5)
    value, gradient = _loss_with_autograd(direct, points, loose.columns, torch.as_tensor(labels))
    loose.step()
    assert loose.losses[0] == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(loose.positions[1], points - 0.1 * gradient, rtol=0, atol=1e-12)
    default = Playground("BatchHardTripletLoss", points, labels)
    assert default.step() != pytest.approx(loose.losses[0])


def test_forces_are_minus_the_autograd_gradient_and_move_nothing():
    points, labels = _small()
    playground = Playground("TripletLoss", points, labels)
    playground.step(3)
    here = playground.positions[-1]
    _, gradient = _loss_with_autograd(losses.TripletLoss(None), here, playground.columns, None)
    forces = playground.forces()
    np.testing.assert_allclose(forces, -gradient, rtol=0, atol=1e-12)
    assert len(playground.positions) == 4
    np.testing.assert_array_equal(playground.positions[-1], here)
    # The next plain SGD step is exactly lr times those forces.
    playground.step()
    np.testing.assert_allclose(playground.positions[-1], here + 0.1 * forces, rtol=0, atol=1e-12)


def test_forces_of_a_teacher_loss_point_towards_the_teacher():
    points, labels = _small()
    playground = Playground("MSELoss", points, labels)
    # MSE: force = 2 / (n·2) · (teacher - point): parallel to the way home.
    np.testing.assert_allclose(playground.forces(), (playground.teacher - points) / 12,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["TripletLoss", "BatchHardTripletLoss"])
def test_a_triplet_loss_pulls_classes_together_over_fifty_steps(name):
    points, labels = make_points(seed=0)
    playground = Playground(name, points, labels)
    playground.step(50)
    before = _within_over_between(points, labels)
    after = _within_over_between(playground.positions[-1], labels)
    assert after < 0.75 * before
    assert playground.losses[-1] < playground.losses[0]


def test_other_optimizers_take_other_steps():
    points, labels = _small()
    runs = {}
    for optimizer in ("sgd", "momentum", "adam"):
        playground = Playground("TripletLoss", points, labels, optimizer=optimizer)
        playground.step(3)
        runs[optimizer] = playground.positions[-1]
    assert not np.allclose(runs["sgd"], runs["momentum"])
    assert not np.allclose(runs["sgd"], runs["adam"])


# ------------------------------------------------------------------------------------ inputs
def test_triplet_rows_follow_the_labels_and_the_seed():
    points, labels = _small()
    playground = Playground("TripletLoss", points, labels, seed=3)
    anchor, positive, negative = playground.columns
    assert playground.column_names == ("anchor", "positive", "negative")
    assert len(anchor) == 12
    assert (labels[anchor] == labels[positive]).all() and (anchor != positive).all()
    assert (labels[anchor] != labels[negative]).all()
    same = Playground("TripletLoss", points, labels, seed=3)
    other = Playground("TripletLoss", points, labels, seed=4)
    assert all((a == b).all() for a, b in zip(same.columns, playground.columns, strict=True))
    assert any((a != b).any() for a, b in zip(other.columns, playground.columns, strict=True))


def test_pair_label_inputs_are_half_same_class_half_other_class():
    points, labels = _small()
    playground = Playground("OnlineContrastiveLoss", points, labels)
    first, second = playground.columns
    targets = playground.targets.numpy()
    assert playground.format == "pair-label" and len(first) == 24
    np.testing.assert_array_equal(targets, (labels[first] == labels[second]).astype(int))
    assert targets.sum() == 12


def test_pair_score_inputs_are_float_scores():
    points, labels = _small()
    playground = Playground("CosineSimilarityLoss", points, labels)
    first, second = playground.columns
    assert playground.targets.dtype == torch.float64
    np.testing.assert_array_equal(playground.targets.numpy(),
                                  (labels[first] == labels[second]).astype(float))


def test_teacher_positions_are_class_centres_on_a_circle():
    points, labels = _small()
    playground = Playground("EmbedDistillLoss", points, labels)
    centres = playground.teacher_centres
    assert centres.shape == (3, 2)
    radii = np.linalg.norm(centres, axis=1)
    np.testing.assert_allclose(radii, radii[0])
    np.testing.assert_array_equal(playground.teacher, centres[labels])
    np.testing.assert_array_equal(playground.targets.numpy(), playground.teacher)


def test_teacher_margin_and_scores_use_the_losses_similarity():
    points, labels = _small()
    # With cosine similarity, three centres 120° apart: cos 1 for a classmate, -1/2 otherwise.
    margin = Playground("MarginMSELoss", points, labels, knobs={"similarity_fct": "cos_sim"})
    np.testing.assert_allclose(margin.targets.numpy(), 1.5)
    scores = Playground("DistillKLDivLoss", points, labels, knobs={"similarity_fct": "cos_sim"})
    np.testing.assert_allclose(scores.targets.numpy(), np.tile([1.0, -0.5], (12, 1)))
    dot = Playground("DistillKLDivLoss", points, labels)  # default: dot product, radius²
    radius_squared = float((dot.teacher_centres[0] ** 2).sum())
    np.testing.assert_allclose(dot.targets.numpy()[:, 0], radius_squared)


def test_descriptions_differ_by_format():
    points, labels = _small()
    names = ["TripletLoss", "BatchHardTripletLoss", "ContrastiveLoss", "CoSENTLoss",
             "MultipleNegativesRankingLoss", "MSELoss", "MarginMSELoss", "DistillKLDivLoss"]
    descriptions = {Playground(name, points, labels).inputs_description() for name in names}
    assert len(descriptions) == len(names)


# ------------------------------------------------------------------------------------ figure
def _render(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_figure_renders_a_png_with_one_arrow_per_point_and_a_trail_per_point():
    points, labels = _small()
    playground = Playground("BatchAllTripletLoss", points, labels)
    playground.step(5)
    figure = trajectory_figure(playground, every=2, title="pulled together")
    assert isinstance(figure, Figure)
    assert _render(figure).startswith(b"\x89PNG")
    axes = figure.axes[0]
    assert axes.get_title() == "pulled together"
    quivers = [c for c in axes.collections if isinstance(c, Quiver)]
    assert len(quivers) == 1 and quivers[0].N == 12
    np.testing.assert_allclose(quivers[0].U, playground.forces()[:, 0])
    trails = [c for c in axes.collections if isinstance(c, LineCollection)
              and not isinstance(c, Quiver)]
    assert len(trails) == 1
    segments = trails[0].get_segments()
    assert len(segments) == 12
    assert all(len(s) == 4 for s in segments)  # positions 0, 2, 4 and the last one, 5


def test_figure_without_arrows_and_with_triplet_links():
    points, labels = _small()
    playground = Playground("TripletLoss", points, labels)
    playground.step(2)
    plain = trajectory_figure(playground, arrows=False)
    assert not [c for c in plain.axes[0].collections if isinstance(c, Quiver)]
    assert "TripletLoss" in plain.axes[0].get_title()
    linked = trajectory_figure(playground, links=True)
    lines = [c for c in linked.axes[0].collections if isinstance(c, LineCollection)
             and not isinstance(c, Quiver)]
    assert len(lines) == 3  # trails, anchor-positive, anchor-negative
    assert len(lines[1].get_segments()) == len(playground.columns[0])
    _render(linked)


def test_figure_of_a_fresh_playground_and_of_a_teacher_loss():
    points, labels = _small()
    playground = Playground("MSELoss", points, labels)
    figure = trajectory_figure(playground)
    assert _render(figure).startswith(b"\x89PNG")
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert "teacher" in legend
    with pytest.raises(PlaygroundInputError, match="every"):
        trajectory_figure(playground, every=0)


# -------------------------------------------------------------------------------- bad inputs
def test_unknown_or_model_bound_losses_name_the_valid_ones():
    points, labels = _small()
    for name, said in (("TripletLos", "unknown loss"), ("SoftmaxLoss", "needs a model")):
        with pytest.raises(PlaygroundLossError) as caught:
            Playground(name, points, labels)
        message = str(caught.value)
        assert said in message and "TripletLoss" in message and "MSELoss" in message
        assert "\n" not in message
        assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(("points", "labels", "said"), [
    (np.zeros((6, 3)), np.array([0, 0, 0, 1, 1, 1]), r"shape \(n, 2\).*got shape \(6, 3\)"),
    (np.zeros(6), np.array([0, 0, 0, 1, 1, 1]), r"got shape \(6,\)"),
    (np.ones((6, 2)), np.array([0, 1, 0, 1]), r"labels must have shape \(6,\).*got shape \(4,\)"),
    (np.ones((6, 2)), np.zeros(6, dtype=int), r"at least 2 classes; got 1"),
    (np.ones((4, 2)), np.array([0.5, 1.0, 0.0, 1.0]), "integer class ids"),
    (np.array([[0.0, 1.0], [np.nan, 0.0]]), np.array([0, 1]), "finite"),
])
def test_bad_points_or_labels_say_what_was_expected(points, labels, said):
    with pytest.raises(PlaygroundInputError, match=said):
        Playground("TripletLoss", points, labels)


def test_whole_number_float_labels_are_accepted():
    points, labels = _small()
    playground = Playground("BatchHardTripletLoss", points, labels.astype(float))
    assert playground.labels.dtype == np.int64


def test_a_loss_that_needs_positives_refuses_singleton_classes():
    points = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    with pytest.raises(PlaygroundInputError, match="2 or more points"):
        Playground("TripletLoss", points, np.array([0, 1, 2]))


def test_bad_settings_are_refused():
    points, labels = _small()
    with pytest.raises(PlaygroundInputError, match="learning_rate"):
        Playground("TripletLoss", points, labels, learning_rate=0.0)
    with pytest.raises(PlaygroundInputError, match="sgd, momentum, adam"):
        Playground("TripletLoss", points, labels, optimizer="lbfgs")
    with pytest.raises(KnobError, match="triplet_margin"):
        Playground("TripletLoss", points, labels, knobs={"margin": 1.0})
    playground = Playground("TripletLoss", points, labels)
    with pytest.raises(PlaygroundInputError, match="n >= 1"):
        playground.step(0)


def test_a_diverging_step_raises_and_keeps_the_last_finite_positions():
    points, labels = _small()
    playground = Playground("MSELoss", points, labels, learning_rate=1e200)
    with pytest.raises(PlaygroundDivergedError, match="smaller learning rate") as caught:
        playground.step(5)
    assert isinstance(caught.value, PlaygroundError)
    assert len(playground.positions) == len(playground.losses) + 1
    assert all(np.isfinite(p).all() for p in playground.positions)
    assert np.isfinite(playground.losses).all()


class _NaNLoss(torch.nn.Module):
    """Stands in for a loss whose value turns NaN while the points stay finite."""

    def compute_loss_from_embeddings(self, embeddings, labels):
        return embeddings[0].sum() * float("nan")


def test_a_nan_loss_is_refused_before_anything_moves():
    points, labels = _small()
    playground = Playground("TripletLoss", points, labels)
    playground.loss_module = _NaNLoss()
    with pytest.raises(PlaygroundDivergedError, match="loss became NaN"):
        playground.step()
    with pytest.raises(PlaygroundDivergedError, match="smaller learning rate"):
        playground.forces()
    assert len(playground.positions) == 1 and playground.losses == []
    # The refused step moved nothing: a good step afterwards starts from the initial points.
    playground.loss_module = losses.TripletLoss(None)
    _, gradient = _loss_with_autograd(playground.loss_module, points, playground.columns, None)
    playground.step()
    np.testing.assert_allclose(playground.positions[1], points - 0.1 * gradient, rtol=0,
                               atol=1e-12)
