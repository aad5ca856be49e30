"""Constructor signatures of the part-2 losses and ContrastiveTensionDataLoader: the reference's.

A drop-in loss takes the same arguments, by position and by name, with the same defaults.
``inspect.signature`` is read from ``__init__`` (minus ``self``): the deprecated classes are
wrapped by ``typing_extensions.deprecated``, whose class signature is ``(*args, **kwargs)`` on both
sides and would compare equal whatever the parameters. Defaults are compared by value; function
defaults (similarity functions) by ``__name__``, as ours are our own functions.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from sentence_transformers.sentence_transformer import losses as reference

import losses as ours

PART_2 = [
    "CachedMultipleNegativesRankingLoss",
    "CachedMultipleNegativesSymmetricRankingLoss",
    "GISTEmbedLoss",
    "CachedGISTEmbedLoss",
    "MatryoshkaLoss",
    "Matryoshka2dLoss",
    "AdaptiveLayerLoss",
    "ContrastiveTensionLoss",
    "ContrastiveTensionLossInBatchNegatives",
    "DenoisingAutoEncoderLoss",
    "ContrastiveTensionDataLoader",
]


def parameters(cls: type) -> list[inspect.Parameter]:
    """The constructor's parameters after ``self``."""
    return list(inspect.signature(cls.__init__).parameters.values())[1:]


def comparable(default: Any) -> Any:
    """A default as compared: functions by name, everything else by value."""
    return default.__name__ if inspect.isfunction(default) else default


@pytest.mark.parametrize("name", PART_2)
def test_constructor_signature_matches_the_reference(name):
    mine, theirs = parameters(getattr(ours, name)), parameters(getattr(reference, name))
    assert theirs, f"{name}: the reference's constructor has no parameters to compare"
    assert [p.name for p in mine] == [p.name for p in theirs], f"{name}: names or order differ"
    assert [p.kind for p in mine] == [p.kind for p in theirs], f"{name}: parameter kinds differ"
    for mine_parameter, their_parameter in zip(mine, theirs, strict=True):
        assert comparable(mine_parameter.default) == comparable(their_parameter.default), (
            f"{name}.{their_parameter.name}: default {mine_parameter.default!r}, reference "
            f"{their_parameter.default!r}")
