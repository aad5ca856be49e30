"""The 2-D playground: free points in the plane, moved step by step by one loss's gradient.

There is no encoder here. The "embeddings" are the points themselves, a (n, 2) tensor that an
optimizer updates directly, so what you see is exactly what the loss asks of the embeddings it is
given: which points it pulls together, which it pushes apart, and where it stops caring.

The loss is our own ``losses`` implementation, built by :func:`lab.build.build_loss` with
``model=None`` and called through ``compute_loss_from_embeddings`` on the points. Which losses
qualify is the catalog's business (``uses_raw_embeddings``), not this module's.

Most losses do not take (points, labels) directly. Their inputs are derived once from the labelled
points, following the loss's default data format (``lab.data.formats``), and then kept, so the
motion of one step is comparable with the next:

* ``sentence-label``: one column holding every point, with the class labels;
* ``triplet`` / ``n-tuple``: every point with a classmate is an anchor, with one random classmate
  as positive and one random point of another class as negative;
* ``pair``: the (anchor, positive) columns of those triplets;
* ``pair-label`` / ``pair-score``: each anchor twice, with its positive (label 1 / score 1.0) and
  with its negative (label 0 / score 0.0);
* ``teacher-embedding``: a fixed "teacher" position per class (class centres evenly spread on a
  circle around the origin) is the target of each point of the class;
* ``teacher-margin`` / ``teacher-scores``: the triplets, labelled with the teacher's margin
  sim(t_a, t_p) - sim(t_a, t_n) or its scores [sim(t_a, t_p), sim(t_a, t_n)], computed with the
  loss's own similarity function on the teacher positions;
* ``sentence``: one column holding every point, no labels.

Several losses compare directions (cosine), so in 2-D their points fan out around the origin and
only their angles matter: that is the lesson, not a bug.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor, nn

from lab import catalog
from lab.build import build_loss
from losses import similarity

__all__ = [
    "OPTIMIZERS",
    "PLAYGROUND_LOSSES",
    "Playground",
    "PlaygroundDivergedError",
    "PlaygroundError",
    "PlaygroundInputError",
    "PlaygroundLossError",
    "make_points",
    "trajectory_figure",
]

PLAYGROUND_LOSSES: tuple[str, ...] = tuple(
    name for name, entry in catalog.LOSSES.items() if entry.uses_raw_embeddings)
"""Every catalog loss that is pure math on embeddings, in catalog order: the playground's menu."""

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adam")
"""Optimizers the playground offers: plain gradient descent, SGD with momentum 0.9, and Adam."""

# Formats whose rows are (anchor, positive, negative): the figure can draw their links.
_TRIPLET_SHAPED = ("triplet", "n-tuple", "teacher-margin", "teacher-scores")


class PlaygroundError(ValueError):
    """Base class of the playground's errors; each message is one line a student can act on."""


class PlaygroundLossError(PlaygroundError):
    """The loss is unknown, or it cannot act on free points (it needs a model)."""


class PlaygroundInputError(PlaygroundError):
    """Points, labels, learning rate or optimizer that the playground cannot use."""


class PlaygroundDivergedError(PlaygroundError):
    """A step produced NaN or infinite values; the points are left where they were."""


def make_points(
    n_classes: int = 3, per_class: int = 6, seed: int = 0, spread: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A messy, seeded starting layout: ``(points (n, 2) float64, labels (n,) int64)``.

    Class centres sit on a small circle and each point scatters around its centre with a
    standard deviation larger than that circle, so the classes overlap: a loss has work to do.
    """
    if n_classes < 2:
        raise PlaygroundInputError(f"make_points needs n_classes >= 2; got {n_classes}")
    if per_class < 1:
        raise PlaygroundInputError(f"make_points needs per_class >= 1; got {per_class}")
    if not (math.isfinite(spread) and spread > 0):
        raise PlaygroundInputError(f"make_points needs a positive spread; got {spread}")
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(n_classes) / n_classes  # (K,)
    centres = 0.6 * spread * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (K, 2)
    labels = np.repeat(np.arange(n_classes, dtype=np.int64), per_class)  # (n,)
    # Noise (0.7 spread) wider than the centres' separation: the classes overlap.
    points = centres[labels] + rng.normal(scale=0.7 * spread, size=(len(labels), 2))  # (n, 2)
    return points, labels


@dataclass(frozen=True)
class _Inputs:
    """How the points become the loss's inputs, fixed once per playground."""

    columns: tuple[Tensor, ...]  # one (B,) index tensor into the points per text column
    labels: Tensor | None  # the label column, already a tensor (or None)
    names: tuple[str, ...]  # the format's column names, for the description
    description: str


class Playground:
    """Labelled points in the plane, moved by gradient steps on one loss.

    Attributes:
        loss_name: the catalog name of the loss.
        entry: its :class:`lab.catalog.LossEntry`.
        loss_module: the loss itself (``losses.<name>``, built with ``model=None``).
        format: the data format the inputs were derived from (the loss's default one).
        labels: (n,) int64 class labels of the points.
        teacher: (n, 2) fixed target position of each point for the teacher-based formats,
            else None; ``teacher_centres`` (K, 2) holds one per class (or None).
        columns: one (B,) int64 array per input column: which point fills each row.
        column_names: the format's name for each of those columns, e.g. ("anchor", "positive").
        targets: the label column handed to the loss with those rows (None if the format has
            none): class ids, 0/1 labels, scores, teacher positions, margins or score rows.
        positions: the (n, 2) positions, initial ones first, then one entry after each step.
        losses: ``losses[k]`` is the loss at ``positions[k]``, i.e. the value step k+1 descended.
    """

    def __init__(
        self,
        loss: str,
        points: np.ndarray,
        labels: np.ndarray,
        *,
        knobs: Mapping[str, Any] | None = None,
        learning_rate: float = 0.1,
        optimizer: str = "sgd",
        seed: int = 0,
    ) -> None:
        self.entry = _playground_entry(loss)
        self.loss_name = self.entry.name
        start, self.labels = _checked_points(points, labels)
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not (
                math.isfinite(learning_rate) and learning_rate > 0):
            raise PlaygroundInputError(
                f"learning_rate must be a positive number; got {learning_rate!r}")
        if optimizer not in OPTIMIZERS:
            raise PlaygroundInputError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}")
        self.learning_rate = float(learning_rate)
        self.optimizer_name = optimizer
        self.knobs = dict(knobs or {})
        self.loss_module: nn.Module = build_loss(self.loss_name, None, self.knobs)
        self.format = _format_for(self.entry)

        self.teacher: np.ndarray | None = None
        self.teacher_centres: np.ndarray | None = None
        if self.format.startswith("teacher-"):
            self.teacher_centres, self.teacher = _teacher_positions(start, self.labels)
        # One generator for every random choice: same seed, same pairings, whatever the loss.
        rng = np.random.default_rng(seed)
        self._inputs = _derive_inputs(self.format, self.labels, self.teacher, rng,
                                      getattr(self.loss_module, "similarity_fct", None))
        self.columns = tuple(column.numpy().copy() for column in self._inputs.columns)
        self.column_names = self._inputs.names
        self.targets = self._inputs.labels

        # The points are the only parameters: float64, so small steps are not lost to rounding.
        self._points = torch.tensor(start, dtype=torch.float64, requires_grad=True)  # (n, 2)
        self._optimizer = _make_optimizer(optimizer, self._points, self.learning_rate)
        self.positions: list[np.ndarray] = [start.copy()]
        self.losses: list[float] = []

    def __repr__(self) -> str:
        return (f"Playground({self.loss_name!r}, {len(self.labels)} points, "
                f"{len(self.losses)} steps, {self.optimizer_name} lr={self.learning_rate:g})")

    # ------------------------------------------------------------------------------ the math
    def _loss_at(self, points: Tensor) -> Tensor:
        """The scalar loss with the (n, 2) ``points`` as embeddings."""
        # Gather each column's rows, (B, 2) each: a point used in several rows receives the sum
        # of their gradients, exactly as a text embedded in several columns would.
        embeddings = [points[index] for index in self._inputs.columns]
        value = self.loss_module.compute_loss_from_embeddings(embeddings, self._inputs.labels)
        if isinstance(value, dict):  # a loss with named components: summed, as the trainer does
            value = sum(value.values())
        return value

    def _value_and_gradient(self, points: Tensor) -> tuple[float, Tensor]:
        """(loss, (n, 2) gradient) at ``points``; raises when either is NaN or infinite."""
        value = self._loss_at(points)
        if value.requires_grad:
            (gradient,) = torch.autograd.grad(value, points)
        else:  # e.g. a loss with no term left that touches the points: no force at all
            gradient = torch.zeros_like(points)
        loss = float(value.detach())
        if not math.isfinite(loss) or not bool(torch.isfinite(gradient).all()):
            what = "loss" if not math.isfinite(loss) else "gradient"
            raise PlaygroundDivergedError(
                f"{self.loss_name}: the {what} became NaN or infinite after {len(self.losses)} "
                f"step(s) (the points may have flown apart); try a smaller learning rate than "
                f"{self.learning_rate:g}")
        return loss, gradient

    def step(self, n: int = 1) -> float:
        """Take ``n`` optimizer steps; return the loss value of the last one.

        Each step evaluates the loss at the current positions, then moves the points against its
        gradient. Nothing is recorded for a step that would produce NaN or infinity: it raises
        :class:`PlaygroundDivergedError` and the points stay at their last finite positions.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise PlaygroundInputError(f"step(n) needs a whole number n >= 1; got {n!r}")
        for _ in range(n):
            loss, gradient = self._value_and_gradient(self._points)
            self._points.grad = gradient
            self._optimizer.step()
            if not bool(torch.isfinite(self._points).all()):
                with torch.no_grad():  # undo the overflowing move
                    self._points.copy_(torch.from_numpy(self.positions[-1]))
                raise PlaygroundDivergedError(
                    f"{self.loss_name}: a step moved points to infinity after "
                    f"{len(self.losses)} step(s); try a smaller learning rate than "
                    f"{self.learning_rate:g}")
            self.positions.append(self._points.detach().numpy().copy())
            self.losses.append(loss)
        return self.losses[-1]

    def forces(self) -> np.ndarray:
        """(n, 2) force on each point at the current positions: minus the loss's gradient.

        Nothing moves and the optimizer is untouched; this is what the next plain SGD step would
        apply, divided by the learning rate.
        """
        here = torch.tensor(self.positions[-1], dtype=torch.float64, requires_grad=True)
        _, gradient = self._value_and_gradient(here)
        return -gradient.numpy()

    def inputs_description(self) -> str:
        """One sentence, for a student, on how the points were turned into the loss's inputs."""
        return self._inputs.description


# ------------------------------------------------------------------------------------ checks
def _playground_entry(loss: str) -> catalog.LossEntry:
    """The catalog entry of ``loss``, refused unless the playground can run it."""
    valid = ", ".join(PLAYGROUND_LOSSES)
    entry = catalog.LOSSES.get(loss) if isinstance(loss, str) else None
    if entry is None:
        raise PlaygroundLossError(f"unknown loss {loss!r}; the playground takes: {valid}")
    if not entry.uses_raw_embeddings:
        raise PlaygroundLossError(
            f"{entry.name} needs a model (it is not pure math on embeddings), so it cannot move "
            f"free points; the playground takes: {valid}")
    return entry


def _checked_points(points: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """(points (n, 2) float64, labels (n,) int64) copies, or a clear error."""
    try:
        array = np.array(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise PlaygroundInputError(
            f"points must be numbers of shape (n, 2); got {type(points).__name__}") from None
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 2:
        raise PlaygroundInputError(
            f"points must have shape (n, 2) with n >= 2; got shape {array.shape}")
    if not np.isfinite(array).all():
        raise PlaygroundInputError("points must be finite; got NaN or infinite coordinates")
    tags = np.asarray(labels)
    if tags.ndim != 1 or len(tags) != len(array):
        raise PlaygroundInputError(
            f"labels must have shape ({len(array)},), one per point; got shape {tags.shape}")
    if tags.dtype.kind not in "iub":
        # Whole-number floats (e.g. labels read from a CSV) are fine; anything else is not.
        whole = tags.dtype.kind == "f" and bool(np.isfinite(tags).all())
        if not (whole and bool((tags == np.round(tags)).all())):
            raise PlaygroundInputError(
                f"labels must be integer class ids; got dtype {tags.dtype}")
    tags = tags.astype(np.int64)
    classes = np.unique(tags)
    if len(classes) < 2:
        raise PlaygroundInputError(
            f"labels must name at least 2 classes; got {len(classes)} ({classes.tolist()})")
    return array, tags


def _make_optimizer(name: str, points: Tensor, learning_rate: float) -> torch.optim.Optimizer:
    """The optimizer called ``name`` (one of :data:`OPTIMIZERS`) over the points."""
    if name == "adam":
        return torch.optim.Adam([points], lr=learning_rate)
    return torch.optim.SGD([points], lr=learning_rate, momentum=0.9 if name == "momentum" else 0.0)


# ------------------------------------------------------------------------------------ inputs
def _format_for(entry: catalog.LossEntry) -> str:
    """The loss's default format, or its first other format the playground can derive."""
    for fmt in (entry.default_format, *entry.formats):
        if fmt in _BUILDERS:
            return fmt
    raise PlaygroundLossError(
        f"{entry.name}: the playground cannot derive inputs in its formats "
        f"{list(entry.formats)}; it derives {', '.join(_BUILDERS)}")


def _teacher_positions(points: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class centres (K, 2), each point's centre (n, 2)): the fixed teacher's embeddings.

    The K centres sit evenly on a circle around the origin, at the angles :func:`make_points`
    uses for its classes (class k at 2πk/K), so they differ in direction as well as in position:
    cosine and dot-product losses can use them too.
    The radius is twice the points' root-mean-square norm, so the targets fit the initial scale.
    """
    classes = np.unique(labels)  # (K,) sorted
    rms = float(np.sqrt((points**2).sum(axis=1).mean()))
    radius = 2.0 * rms if rms > 0 else 1.0
    angles = 2 * np.pi * np.arange(len(classes)) / len(classes)  # (K,)
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (K, 2)
    return centres, centres[np.searchsorted(classes, labels)]


def _triplet_rows(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(anchors, positives, negatives) index arrays (B,): every point with a classmate anchors
    one row, with a random classmate and a random point of another class."""
    everyone = np.arange(len(labels))
    rows = []
    for anchor in everyone:
        mates = everyone[(labels == labels[anchor]) & (everyone != anchor)]
        others = everyone[labels != labels[anchor]]
        if len(mates):
            rows.append((anchor, rng.choice(mates), rng.choice(others)))
    if not rows:
        raise PlaygroundInputError(
            "this loss needs positives, i.e. at least one class with 2 or more points; every "
            "class has a single point")
    return tuple(np.array(column, dtype=np.int64) for column in zip(*rows, strict=True))


def _indices(*columns: np.ndarray) -> tuple[Tensor, ...]:
    return tuple(torch.as_tensor(column, dtype=torch.long) for column in columns)


def _derive_inputs(
    fmt: str,
    labels: np.ndarray,
    teacher: np.ndarray | None,
    rng: np.random.Generator,
    similarity_fct: Callable[[Tensor, Tensor], Tensor] | None,
) -> _Inputs:
    """The loss's inputs in format ``fmt``, derived from the labelled points."""
    return _BUILDERS[fmt](labels, teacher, rng, similarity_fct)


def _one_column(labels: np.ndarray, with_labels: bool) -> _Inputs:
    n = len(labels)
    everyone = _indices(np.arange(n))
    if with_labels:
        return _Inputs(everyone, torch.as_tensor(labels), ("sentence",),
                       f"All {n} points form one column, with their class labels; the loss "
                       f"finds its own positives (same label) and negatives (other labels) "
                       f"inside that batch.")
    return _Inputs(everyone, None, ("sentence",),
                   f"All {n} points form one column, without labels: the loss sees no classes.")


def _sentence_label(labels, teacher, rng, similarity_fct) -> _Inputs:
    return _one_column(labels, with_labels=True)


def _sentence(labels, teacher, rng, similarity_fct) -> _Inputs:
    return _one_column(labels, with_labels=False)


def _triplet(labels, teacher, rng, similarity_fct) -> _Inputs:
    anchors, positives, negatives = _triplet_rows(labels, rng)
    return _Inputs(_indices(anchors, positives, negatives), None,
                   ("anchor", "positive", "negative"),
                   f"Each of {len(anchors)} points is an anchor, with a random point of its own "
                   f"class as positive and a random point of another class as negative, chosen "
                   f"once: {len(anchors)} (anchor, positive, negative) rows, no labels.")


def _pair(labels, teacher, rng, similarity_fct) -> _Inputs:
    anchors, positives, _ = _triplet_rows(labels, rng)
    return _Inputs(_indices(anchors, positives), None, ("anchor", "positive"),
                   f"Each of {len(anchors)} points is an anchor paired with a random point of "
                   f"its own class, chosen once: {len(anchors)} (anchor, positive) rows, no "
                   f"labels; within the batch every other row's positive counts as a negative, "
                   f"even one of the same class.")


def _labelled_pairs(labels, rng, scores: bool) -> _Inputs:
    anchors, positives, negatives = _triplet_rows(labels, rng)
    count = len(anchors)
    first = np.concatenate([anchors, anchors])  # (2B,): each anchor twice
    second = np.concatenate([positives, negatives])  # (2B,): its classmate, then an outsider
    same = np.concatenate([np.ones(count), np.zeros(count)])  # (2B,)
    target = (torch.as_tensor(same, dtype=torch.float64) if scores
              else torch.as_tensor(same, dtype=torch.long))
    yes, no = ("score 1.0", "score 0.0") if scores else ("label 1", "label 0")
    return _Inputs(_indices(first, second), target, ("sentence1", "sentence2"),
                   f"Each of {count} points appears in two pairs, chosen once: with a random "
                   f"point of its own class ({yes}) and with a random point of another class "
                   f"({no}): {2 * count} pairs, half similar and half not.")


def _pair_label(labels, teacher, rng, similarity_fct) -> _Inputs:
    return _labelled_pairs(labels, rng, scores=False)


def _pair_score(labels, teacher, rng, similarity_fct) -> _Inputs:
    return _labelled_pairs(labels, rng, scores=True)


def _teacher_embedding(labels, teacher, rng, similarity_fct) -> _Inputs:
    n = len(labels)
    return _Inputs(_indices(np.arange(n)), torch.as_tensor(teacher, dtype=torch.float64),
                   ("sentence",),
                   f"All {n} points form one column; each point's target is a fixed 'teacher' "
                   f"position, its class's centre on a circle around the origin (the stars).")


def _teacher_similarities(teacher, rows, similarity_fct) -> tuple[Tensor, Tensor]:
    """(sim(t_a, t_p), sim(t_a, t_n)), each (B,), on the teacher positions of the rows."""
    fct = similarity_fct or similarity.pairwise_dot_score
    anchors, positives, negatives = (torch.as_tensor(teacher[index], dtype=torch.float64)
                                     for index in rows)  # (B, 2) each
    return fct(anchors, positives), fct(anchors, negatives)


def _teacher_margin(labels, teacher, rng, similarity_fct) -> _Inputs:
    rows = _triplet_rows(labels, rng)
    to_positive, to_negative = _teacher_similarities(teacher, rows, similarity_fct)
    return _Inputs(_indices(*rows), to_positive - to_negative, ("query", "positive", "negative"),
                   f"Each of {len(rows[0])} points is a query with a random classmate as "
                   f"positive and a random outsider as negative, chosen once; the label is the "
                   f"teacher's margin sim(query, positive) - sim(query, negative), computed on "
                   f"fixed teacher positions (class centres on a circle, the stars).")


def _teacher_scores(labels, teacher, rng, similarity_fct) -> _Inputs:
    rows = _triplet_rows(labels, rng)
    to_positive, to_negative = _teacher_similarities(teacher, rows, similarity_fct)
    return _Inputs(_indices(*rows), torch.stack([to_positive, to_negative], dim=1),
                   ("query", "positive", "negative_1"),
                   f"Each of {len(rows[0])} points is a query with a random classmate as "
                   f"positive and a random outsider as negative, chosen once; the label is the "
                   f"teacher's scores [sim(query, positive), sim(query, negative)], computed on "
                   f"fixed teacher positions (class centres on a circle, the stars).")


# Format name -> input builder (labels, teacher, rng, similarity_fct) -> _Inputs.
_BUILDERS: dict[str, Callable[..., _Inputs]] = {
    "sentence-label": _sentence_label,
    "triplet": _triplet,
    "n-tuple": _triplet,
    "pair": _pair,
    "pair-label": _pair_label,
    "pair-score": _pair_score,
    "teacher-embedding": _teacher_embedding,
    "teacher-margin": _teacher_margin,
    "teacher-scores": _teacher_scores,
    "sentence": _sentence,
}


# ------------------------------------------------------------------------------------ figure
def trajectory_figure(
    playground: Playground,
    *,
    every: int = 1,
    arrows: bool = True,
    title: str = "",
    links: bool = False,
) -> Figure:
    """The points' journey: final points by label, faint trails, and the current forces.

    Args:
        playground: the playground to draw (any number of steps, including none).
        every: draw every ``every``-th recorded position in the trails (the last one always).
        arrows: draw one arrow per point, the force (minus the gradient) at its final position.
        title: the figure title (default: the loss, the steps taken and the last loss value).
        links: for (anchor, positive, negative) inputs, draw each row's anchor-positive segment
            (solid) and anchor-negative segment (dotted) at the final positions.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise PlaygroundInputError(f"every must be a whole number >= 1; got {every!r}")
    recorded = playground.positions
    kept = recorded[::every]
    if (len(recorded) - 1) % every:
        kept = [*kept, recorded[-1]]  # the trails always end where the points are
    path = np.stack(kept)  # (T, n, 2)
    final = recorded[-1]  # (n, 2)
    labels = playground.labels
    classes = np.unique(labels)
    palette = colormaps["tab20" if len(classes) > 10 else "tab10"]
    colour_of = {label: palette(index % palette.N) for index, label in enumerate(classes)}
    point_colours = [colour_of[label] for label in labels]

    # A bare Figure (not pyplot's): nothing global to leak into notebooks or the app.
    figure = Figure(figsize=(6.5, 6), layout="constrained")
    axes = figure.subplots()
    # Trails: one polyline per point through its recorded positions, (n, T, 2) segments.
    axes.add_collection(LineCollection(list(path.transpose(1, 0, 2)), colors=point_colours,
                                       linewidths=1.0, alpha=0.35))
    axes.scatter(path[0, :, 0], path[0, :, 1], s=12, facecolors="none",
                 edgecolors=point_colours, alpha=0.5, linewidths=0.8)
    if links and playground.format in _TRIPLET_SHAPED:
        anchors, positives, negatives = playground.columns[:3]
        axes.add_collection(LineCollection(
            list(np.stack([final[anchors], final[positives]], axis=1)),  # (B, 2, 2)
            colors="tab:green", linewidths=0.8, alpha=0.4))
        axes.add_collection(LineCollection(
            list(np.stack([final[anchors], final[negatives]], axis=1)),  # (B, 2, 2)
            colors="tab:red", linewidths=0.8, alpha=0.4, linestyles="dotted"))
    for label in classes:
        chosen = labels == label
        axes.scatter(final[chosen, 0], final[chosen, 1], s=40, color=colour_of[label],
                     edgecolors="white", linewidths=0.6, zorder=3, label=f"class {label}")
    if playground.teacher_centres is not None:
        axes.scatter(playground.teacher_centres[:, 0], playground.teacher_centres[:, 1],
                     marker="*", s=220, color=[colour_of[label] for label in classes],
                     edgecolors="black", linewidths=0.8, zorder=4, label="teacher")
    # The origin matters to every cosine loss: directions are measured from it.
    axes.scatter([0.0], [0.0], marker="+", s=60, color="grey", zorder=2)

    extent = np.concatenate([path.reshape(-1, 2), np.zeros((1, 2))])  # (T·n + 1, 2)
    if playground.teacher_centres is not None:
        extent = np.concatenate([extent, playground.teacher_centres])
    span = float(np.ptp(extent, axis=0).max()) or 1.0
    if arrows:
        forces = playground.forces()  # (n, 2)
        longest = float(np.linalg.norm(forces, axis=1).max())
        # Arrows in data units, the longest a fifth of the picture: readable for any loss scale.
        scale = longest / (0.2 * span) if longest > 0 else 1.0
        axes.quiver(final[:, 0], final[:, 1], forces[:, 0], forces[:, 1], color=point_colours,
                    angles="xy", scale_units="xy", scale=scale, width=0.004, zorder=5)
    axes.set_aspect("equal", adjustable="datalim")
    axes.autoscale_view()
    steps = len(playground.losses)
    default_title = f"{playground.loss_name}, {steps} step{'s' if steps != 1 else ''}"
    if steps:
        default_title += f" (loss {playground.losses[-1]:.3g})"
    axes.set_title(title or default_title)
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=9)
    return figure
