"""Tests for lab.catalog: the catalog must agree with the spec and with sentence-transformers.

The installed sentence-transformers is the oracle for constructor parameters, defaults and (for
the losses that work on raw embeddings) the data formats each loss accepts.
"""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from sentence_transformers import util
from sentence_transformers.sentence_transformer import losses as ref

from lab import catalog
from lab.catalog import FAMILIES, LOSSES, Knob, LossEntry
from lab.data.formats import FORMATS

# The spec: the 29 losses of the mission, by family, in the order the lab presents them.
SPEC: dict[str, list[str]] = {
    "triplet": [
        "TripletLoss",
        "BatchAllTripletLoss",
        "BatchHardTripletLoss",
        "BatchSemiHardTripletLoss",
        "BatchHardSoftMarginTripletLoss",
    ],
    "contrastive pairs": ["ContrastiveLoss", "OnlineContrastiveLoss"],
    "scored pairs": ["CosineSimilarityLoss", "CoSENTLoss", "AnglELoss"],
    "in-batch negatives": [
        "MultipleNegativesRankingLoss",
        "MultipleNegativesSymmetricRankingLoss",
        "CachedMultipleNegativesRankingLoss",
        "CachedMultipleNegativesSymmetricRankingLoss",
        "GISTEmbedLoss",
        "CachedGISTEmbedLoss",
        "MegaBatchMarginLoss",
    ],
    "classification": ["SoftmaxLoss"],
    "unsupervised": [
        "ContrastiveTensionLoss",
        "ContrastiveTensionLossInBatchNegatives",
        "DenoisingAutoEncoderLoss",
    ],
    "distillation": ["MSELoss", "MarginMSELoss", "DistillKLDivLoss", "EmbedDistillLoss"],
    "modifiers and regularisers": [
        "MatryoshkaLoss",
        "Matryoshka2dLoss",
        "AdaptiveLayerLoss",
        "GlobalOrthogonalRegularizationLoss",
    ],
}
SPEC_NAMES: list[str] = [name for names in SPEC.values() for name in names]

# Reference defaults that are functions or modules, and the name the catalog must use for each.
FUNCTION_DEFAULT_NAMES: list[tuple[object, str]] = [
    (ref.TripletDistanceMetric.EUCLIDEAN, "euclidean"),
    (ref.TripletDistanceMetric.COSINE, "cosine"),
    (ref.TripletDistanceMetric.MANHATTAN, "manhattan"),
    (ref.SiameseDistanceMetric.EUCLIDEAN, "euclidean"),
    (ref.SiameseDistanceMetric.COSINE_DISTANCE, "cosine"),
    (ref.SiameseDistanceMetric.MANHATTAN, "manhattan"),
    (ref.BatchHardTripletLossDistanceFunction.euclidean_distance, "euclidean"),
    (ref.BatchHardTripletLossDistanceFunction.cosine_distance, "cosine"),
    (util.cos_sim, "cos_sim"),
    (util.pairwise_cos_sim, "cos_sim"),
    (util.dot_score, "dot"),
    (util.pairwise_dot_score, "dot"),
]

# Required constructor parameters the lab supplies itself rather than through a knob.
SUPPLIED_BY_LAB = {"model", "loss", "guide", "embedding_dimension", "num_labels"}


def _params(name: str) -> dict[str, inspect.Parameter]:
    params = dict(inspect.signature(getattr(ref, name).__init__).parameters)
    params.pop("self")
    return params


def _knobs() -> list[tuple[str, Knob]]:
    return [(entry.name, knob) for entry in LOSSES.values() for knob in entry.knobs]


def _knob_id(item: tuple[str, Knob]) -> str:
    return f"{item[0]}.{item[1].name}"


def test_exactly_the_29_losses_in_family_order() -> None:
    assert len(SPEC_NAMES) == 29
    assert list(LOSSES) == SPEC_NAMES


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_each_loss_exists_in_reference(name: str) -> None:
    assert inspect.isclass(getattr(ref, name, None)), name
    entry = LOSSES[name]
    assert isinstance(entry, LossEntry)
    assert entry.name == name


def test_families_fixed_order_and_cover_every_loss() -> None:
    assert tuple(SPEC) == FAMILIES
    groups = catalog.by_family()
    assert list(groups) == list(FAMILIES)
    assert {family: [e.name for e in entries] for family, entries in groups.items()} == SPEC
    for family, names in SPEC.items():
        for name in names:
            assert LOSSES[name].family == family


@pytest.mark.parametrize("item", _knobs(), ids=_knob_id)
def test_knob_is_reference_parameter_with_reference_default(item: tuple[str, Knob]) -> None:
    loss_name, knob = item
    params = _params(loss_name)
    assert knob.name in params, f"{loss_name} has no parameter {knob.name!r}"
    ref_default = params[knob.name].default
    if ref_default is inspect.Parameter.empty:
        # Required by the reference (e.g. matryoshka_dims): the lab picks the value.
        return
    if callable(ref_default) or isinstance(ref_default, torch.nn.Module):
        # Function- or module-valued default: the catalog stores a name for it.
        assert isinstance(knob.default, str)
        assert knob.default in catalog.FUNCTION_NAMES or knob.kind == "choice"
        if isinstance(ref_default, torch.nn.MSELoss):
            assert knob.default == "mse"
        else:
            expected = [n for obj, n in FUNCTION_DEFAULT_NAMES if obj is ref_default]
            if expected:
                assert knob.default == expected[0], (loss_name, knob.name)
        return
    assert knob.default == ref_default, (loss_name, knob.name, knob.default, ref_default)
    if isinstance(ref_default, bool):
        assert isinstance(knob.default, bool)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_required_parameters_are_covered(name: str) -> None:
    entry = LOSSES[name]
    knob_names = [knob.name for knob in entry.knobs]
    assert len(knob_names) == len(set(knob_names)), "duplicate knob"
    for param_name, param in _params(name).items():
        if param.default is inspect.Parameter.empty and param.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            assert param_name in knob_names or param_name in SUPPLIED_BY_LAB, param_name
    params = _params(name)
    assert ("loss" in params) == entry.wraps
    assert ("guide" in params) == entry.needs_guide
    assert ("num_labels" in params) == entry.needs_num_labels


@pytest.mark.parametrize("item", _knobs(), ids=_knob_id)
def test_knob_ranges_and_choices_contain_default(item: tuple[str, Knob]) -> None:
    _, knob = item
    assert knob.kind in catalog.KNOB_KINDS
    assert knob.help
    if knob.kind in ("float", "int"):
        assert knob.low is not None and knob.high is not None and knob.step is not None
        assert knob.low <= knob.default <= knob.high
        assert knob.step > 0
        assert not knob.choices
    elif knob.kind == "choice":
        assert knob.default in knob.choices
        assert len(knob.choices) >= 2
    else:
        assert isinstance(knob.default, bool)


def test_matryoshka_dims_fit_the_default_model() -> None:
    from lab.models import TINY_BERT_CONFIG

    model_dims = {"tiny": 384, "minilm": 384, "tiny-bert": TINY_BERT_CONFIG["hidden_size"]}
    for name in ("MatryoshkaLoss", "Matryoshka2dLoss"):
        entry = LOSSES[name]
        knob = entry.knob("matryoshka_dims")
        for dims in knob.choices:
            assert isinstance(dims, tuple)
            assert list(dims) == sorted(dims, reverse=True)
        # The full dimension is trained, and no prefix is longer than the embedding.
        assert knob.default[0] == model_dims[entry.default_model], name


def test_knob_rejects_default_outside_range() -> None:
    with pytest.raises(ValueError):
        Knob("margin", 5.0, "float", low=0.0, high=1.0, step=0.1, help="x")
    with pytest.raises(ValueError):
        Knob("mode", "c", "choice", choices=("a", "b"), help="x")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_formats_and_fields(name: str) -> None:
    entry = LOSSES[name]
    assert entry.formats, name
    for fmt in entry.formats:
        assert fmt in FORMATS, (name, fmt)
    assert len(set(entry.formats)) == len(entry.formats)
    assert entry.default_format in entry.formats
    assert entry.default_model in catalog.MODEL_NAMES
    assert entry.explanation and entry.formula
    if entry.wraps:
        assert entry.default_inner_loss in LOSSES
        assert entry.formats == LOSSES[entry.default_inner_loss].formats
    else:
        assert entry.default_inner_loss == ""
    assert bool(entry.default_guide) == entry.needs_guide


def test_flags_match_spec() -> None:
    wrappers = {name for name, e in LOSSES.items() if e.wraps}
    assert wrappers == {"MatryoshkaLoss", "Matryoshka2dLoss", "AdaptiveLayerLoss"}
    guided = {name for name, e in LOSSES.items() if e.needs_guide}
    assert guided == {"GISTEmbedLoss", "CachedGISTEmbedLoss"}
    assert {name for name, e in LOSSES.items() if e.needs_num_labels} == {"SoftmaxLoss"}
    for name in ("AdaptiveLayerLoss", "Matryoshka2dLoss", "DenoisingAutoEncoderLoss"):
        assert LOSSES[name].default_model == "tiny-bert"
    not_raw = {
        "CachedMultipleNegativesRankingLoss",
        "CachedMultipleNegativesSymmetricRankingLoss",
        "CachedGISTEmbedLoss",
        "GISTEmbedLoss",
        "SoftmaxLoss",
        "ContrastiveTensionLoss",
        "ContrastiveTensionLossInBatchNegatives",
        "DenoisingAutoEncoderLoss",
        *wrappers,
    }
    for name in not_raw:
        assert not LOSSES[name].uses_raw_embeddings, name
    for name in SPEC["triplet"] + SPEC["contrastive pairs"] + SPEC["scored pairs"]:
        assert LOSSES[name].uses_raw_embeddings, name
    for name in ("MultipleNegativesRankingLoss", "GlobalOrthogonalRegularizationLoss", "MSELoss"):
        assert LOSSES[name].uses_raw_embeddings, name


def test_spec_formats() -> None:
    assert LOSSES["TripletLoss"].formats == ("triplet",)
    for name in SPEC["triplet"][1:]:
        assert LOSSES[name].formats == ("sentence-label",)
    for name in SPEC["contrastive pairs"]:
        assert LOSSES[name].formats == ("pair-label",)
    for name in SPEC["scored pairs"]:
        assert LOSSES[name].default_format == "pair-score"
    assert "pair-label" in LOSSES["CoSENTLoss"].formats
    assert "pair-label" in LOSSES["AnglELoss"].formats
    assert LOSSES["MultipleNegativesRankingLoss"].formats == ("pair", "triplet", "n-tuple")
    assert LOSSES["MegaBatchMarginLoss"].formats == ("pair",)
    assert LOSSES["SoftmaxLoss"].formats == ("nli",)
    assert LOSSES["DenoisingAutoEncoderLoss"].formats == ("denoising",)
    assert LOSSES["MSELoss"].formats == ("teacher-embedding",)
    assert LOSSES["MarginMSELoss"].default_format == "teacher-margin"
    assert LOSSES["DistillKLDivLoss"].formats == ("teacher-scores",)
    assert LOSSES["GlobalOrthogonalRegularizationLoss"].default_format == "pair"


def test_get_returns_entry_and_suggests_closest_name() -> None:
    assert catalog.get("CoSENTLoss") is LOSSES["CoSENTLoss"]
    with pytest.raises(KeyError) as info:
        catalog.get("CoSENTLos")
    message = str(info.value)
    assert "Did you mean 'CoSENTLoss'?" in message
    assert "MultipleNegativesRankingLoss" in message  # lists the valid names
    with pytest.raises(ValueError, match="Did you mean 'BatchHardTripletLoss'"):
        catalog.get("batchhardtripletloss")
    with pytest.raises(ValueError, match="Unknown loss"):
        catalog.get("zzz")


def test_losses_for_format() -> None:
    names = [entry.name for entry in catalog.losses_for_format("pair-score")]
    assert "CoSENTLoss" in names
    assert "CosineSimilarityLoss" in names
    assert "TripletLoss" not in names
    assert [e.name for e in catalog.losses_for_format("nli")] == ["SoftmaxLoss"]
    for fmt in FORMATS:
        for entry in catalog.losses_for_format(fmt):
            assert fmt in entry.formats
    with pytest.raises(ValueError, match="Valid formats"):
        catalog.losses_for_format("pairs")


def test_every_format_is_used_by_some_loss() -> None:
    for fmt in FORMATS:
        assert catalog.losses_for_format(fmt), fmt


def test_overview_rows() -> None:
    rows = catalog.overview_rows()
    assert len(rows) == 29
    assert [row["name"] for row in rows] == SPEC_NAMES
    cosent = rows[SPEC_NAMES.index("CoSENTLoss")]
    assert cosent == {
        "name": "CoSENTLoss",
        "family": "scored pairs",
        "formats": "pair-score, pair-label",
        "default_format": "pair-score",
    }


# ---------------------------------------------------------------------------------------------
# Oracle check of the formats: every loss that works on raw embeddings is run through the
# reference's compute_loss_from_embeddings on random embeddings shaped like each accepted format.
# ---------------------------------------------------------------------------------------------

BATCH, DIM = 8, 16


class _NoModel(torch.nn.Module):
    """Stands in for the SentenceTransformer: compute_loss_from_embeddings never calls it."""


def _batch_for(fmt: str) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    spec = FORMATS[fmt]
    n_columns = len(spec.text_columns) + (1 if spec.variable_negatives else 0)
    gen = torch.Generator().manual_seed(0)
    embeddings = [torch.randn(BATCH, DIM, generator=gen) for _ in range(n_columns)]
    labels: torch.Tensor | None
    if spec.label_kind is None:
        labels = None
    elif spec.label_kind == "int":
        labels = torch.arange(BATCH) % 3
    elif spec.label_kind == "binary":
        labels = (torch.arange(BATCH) % 2).float()
    elif spec.label_kind == "float":
        labels = torch.rand(BATCH, generator=gen)
    elif fmt == "teacher-embedding":
        labels = torch.randn(BATCH, DIM, generator=gen)
    else:  # teacher-scores: one score per candidate column
        labels = torch.randn(BATCH, n_columns - 1, generator=gen)
    return embeddings, labels


_RAW_CASES = [
    (entry.name, fmt)
    for entry in LOSSES.values()
    if entry.uses_raw_embeddings
    and hasattr(getattr(ref, entry.name), "compute_loss_from_embeddings")
    for fmt in entry.formats
]


@pytest.mark.parametrize(("name", "fmt"), _RAW_CASES, ids=[f"{n}-{f}" for n, f in _RAW_CASES])
def test_reference_accepts_each_listed_format(name: str, fmt: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # MNSRL is deprecated upstream
        loss = getattr(ref, name)(_NoModel())
    embeddings, labels = _batch_for(fmt)
    targets: object = labels
    if fmt == "teacher-embedding":
        # The embedding-distillation losses take one teacher tensor per text column here.
        targets = [labels for _ in embeddings]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. silent broadcasting of a bad shape
        out = loss.compute_loss_from_embeddings(embeddings, targets)
    values = out.values() if isinstance(out, dict) else [out]
    for value in values:
        assert value.dim() == 0
        assert torch.isfinite(value)
