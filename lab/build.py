"""Build a loss from its catalog name and knob values: the one factory the lab uses.

``build_loss("BatchHardTripletLoss", model, {"margin": 2.0})`` returns our loss (or, with
``library=sentence_transformers...losses``, the reference's) with the knobs turned into the
constructor arguments the loss really takes:

* function-valued knobs are stored in the catalog by name ("euclidean", "cos_sim", "mse") and
  resolved here to the function of the right kind for *this* loss: a (B, B) distance matrix for
  the batch triplet losses, a pairwise distance for TripletLoss and ContrastiveLoss, a pairwise
  or a matrix similarity depending on what the loss's own default is;
* a wrapper (MatryoshkaLoss, Matryoshka2dLoss, AdaptiveLayerLoss) takes the loss it wraps as the
  knob ``loss`` (a catalog name, built with its defaults, or a ready loss module);
* a guided loss (GIST) takes the knob ``guide`` (a model name for :func:`lab.models.load_model`,
  or a model);
* SoftmaxLoss reads its ``embedding_dimension`` off the model and ``num_labels`` off the data.

Every mistake (unknown loss, unknown knob, a value outside the knob's choices, Matryoshka
dimensions larger than the model's) is one ``KnobError`` line that says what is valid.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from torch import nn

import losses as our_losses
from lab import catalog
from losses import similarity

__all__ = ["EXTRA_KNOBS", "KnobError", "build_loss", "check_knobs", "resolve_function"]

EXTRA_KNOBS: dict[str, str] = {
    "loss": "the loss a wrapper wraps (a catalog name; default: the catalog's default_inner_loss)",
    "guide": "the guide model of a guided loss (a model name; default: the catalog's guide)",
}
"""Knobs that are not numbers or choices in the catalog but objects the factory builds."""


class KnobError(ValueError):
    """A knob that the loss does not have, or a value it cannot take."""


def _metric_classes(library: ModuleType) -> tuple[type, ...]:
    return tuple(getattr(library, name) for name in (
        "TripletDistanceMetric", "SiameseDistanceMetric", "BatchHardTripletLossDistanceFunction"))


def resolve_function(loss_class: type, parameter: str, name: str,
                     library: ModuleType = our_losses) -> Any:
    """The function a function-valued knob's ``name`` stands for, for ``loss_class``.

    Which family of functions is meant follows from the loss's own default for ``parameter``:
    a member of a distance-metric class picks that class's member whose name contains ``name``;
    a pairwise similarity picks the pairwise variant; ``loss_fct`` picks a torch criterion.
    """
    default = inspect.signature(loss_class.__init__).parameters[parameter].default
    if parameter == "loss_fct":
        criteria = {"mse": nn.MSELoss, "l1": nn.L1Loss}
        if name not in criteria:
            raise KnobError(f"{loss_class.__name__}: loss_fct must be one of {list(criteria)}; "
                            f"got {name!r}")
        return criteria[name]()
    for owner in _metric_classes(library):
        members = {attribute: value for attribute, value in vars(owner).items()
                   if not attribute.startswith("_")}
        members = {attribute: getattr(owner, attribute) for attribute in members}
        if any(value is default for value in members.values()):
            matches = [value for attribute, value in members.items()
                       if name in attribute.lower()]
            if not matches:
                valid = sorted(attribute.lower() for attribute in members)
                raise KnobError(f"{loss_class.__name__}: {parameter} {name!r} is not one of "
                                f"{owner.__name__}'s metrics {valid}")
            return matches[0]
    if callable(default):  # a similarity function: pairwise or (B, B) matrix, like the default
        pairwise = default.__name__.startswith("pairwise_")
        table = ({"cos_sim": similarity.pairwise_cos_sim, "dot": similarity.pairwise_dot_score}
                 if pairwise else {"cos_sim": similarity.cos_sim, "dot": similarity.dot_score})
        if name not in table:
            raise KnobError(f"{loss_class.__name__}: {parameter} must be one of {list(table)}; "
                            f"got {name!r}")
        return table[name]
    return name  # the reference itself takes a string here (e.g. EmbedDistillLoss)


def check_knobs(loss_name: str, knobs: Mapping[str, Any]) -> catalog.LossEntry:
    """The catalog entry of ``loss_name`` after checking every knob name and value."""
    try:
        entry = catalog.get(loss_name)
    except catalog.UnknownLossError as error:
        raise KnobError(str(error)) from None
    valid = [knob.name for knob in entry.knobs]
    if entry.wraps:
        valid.append("loss")
    if entry.needs_guide:
        valid.append("guide")
    for name, value in knobs.items():
        if name not in valid:
            raise KnobError(f"{loss_name} has no knob {name!r}; its knobs: "
                            f"{', '.join(valid) or 'none'}")
        if name in EXTRA_KNOBS:
            continue
        knob = entry.knob(name)
        if knob.kind == "choice" and _as_choice(value) not in knob.choices:
            raise KnobError(f"{loss_name}: {name} must be one of {list(knob.choices)}; "
                            f"got {value!r}")
        if knob.kind == "bool" and not isinstance(value, bool):
            raise KnobError(f"{loss_name}: {name} must be true or false; got {value!r}")
        if knob.kind in ("int", "float") and (isinstance(value, bool)
                                              or not isinstance(value, (int, float))):
            raise KnobError(f"{loss_name}: {name} must be a number ({knob.kind}); "
                            f"got {value!r}")
        if knob.kind == "int" and int(value) != value:
            raise KnobError(f"{loss_name}: {name} must be a whole number; got {value!r}")
    return entry


def _as_choice(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def build_loss(
    loss_name: str,
    model: nn.Module,
    knobs: Mapping[str, Any] | None = None,
    *,
    num_labels: int | None = None,
    load_guide: Callable[[str], nn.Module] | None = None,
    library: ModuleType = our_losses,
) -> nn.Module:
    """The loss ``loss_name`` on ``model`` with ``knobs`` (catalog defaults for the rest).

    Args:
        loss_name: a catalog name, e.g. "MultipleNegativesRankingLoss".
        model: the SentenceTransformer being trained.
        knobs: ``{knob name: value}``; function knobs by name (see ``catalog.FUNCTION_NAMES``),
            ``loss`` for wrappers, ``guide`` for guided losses.
        num_labels: classes in the data (SoftmaxLoss only; default 3, the NLI classes).
        load_guide: turns a guide name into a model (default ``lab.models.load_model`` on the
            model's device).
        library: ``losses`` (ours) or the reference's losses module, built the same way.
    """
    knobs = dict(knobs or {})
    entry = check_knobs(loss_name, knobs)
    cls = getattr(library, entry.name)
    arguments: dict[str, Any] = {}
    for knob in entry.knobs:
        value = _as_choice(knobs.get(knob.name, knob.default))
        if knob.kind == "choice" and knob.default in catalog.FUNCTION_NAMES:
            value = resolve_function(cls, knob.name, value, library)
        elif knob.kind == "int":
            value = int(value)
        elif knob.name == "matryoshka_dims":
            value = _checked_dims(entry.name, value, model)
        arguments[knob.name] = value
    if entry.wraps:
        inner = knobs.get("loss", entry.default_inner_loss)
        if isinstance(inner, str):
            if inner == entry.name or catalog.get(inner).wraps:
                raise KnobError(f"{entry.name} wraps a plain loss, not {inner}; e.g. "
                                f"{entry.default_inner_loss}")
            inner = build_loss(inner, model, load_guide=load_guide, library=library)
        return cls(model, inner, **arguments)
    if entry.needs_guide:
        guide = knobs.get("guide", entry.default_guide)
        if isinstance(guide, str):
            guide = (load_guide or _default_guide_loader(model))(guide)
        return cls(model, guide=guide, **arguments)
    if entry.needs_num_labels:
        dimension = model.get_embedding_dimension()
        return cls(model, embedding_dimension=dimension, num_labels=num_labels or 3, **arguments)
    return cls(model, **arguments)


def _checked_dims(loss_name: str, dims: tuple[int, ...], model: nn.Module) -> list[int]:
    """Matryoshka dims as a list, refused when one exceeds the model's embedding size."""
    size = model.get_embedding_dimension()
    too_big = [dim for dim in dims if dim > size]
    if too_big:
        fitting = [list(choice) for choice in catalog.get(loss_name).knob("matryoshka_dims").choices
                   if max(choice) <= size]
        raise KnobError(f"{loss_name}: matryoshka_dims {list(dims)} exceed the model's "
                        f"{size} dimensions ({too_big}); choose dims <= {size}, e.g. "
                        f"{fitting[0] if fitting else [size, size // 2]}")
    return list(dims)


def _default_guide_loader(model: nn.Module) -> Callable[[str], nn.Module]:
    def load(name: str) -> nn.Module:
        from lab.models import load_model

        return load_model(name, device=str(model.device))

    return load
