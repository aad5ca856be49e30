"""Teaching data in every data format the losses take.

- ``FORMATS``: the data formats (column contracts) by name.
- ``load_dataset(fmt, **options)``: the lab's own corpus in that format, as a DatasetDict with
  "train" and "eval" (split by meaning group, seeded, no group on both sides).
- ``load_user_file(path, fmt)``: a CSV or JSONL file of yours, checked against the format.
- ``load_hub_dataset(name, fmt)``: a Hugging Face dataset (or a local dataset folder), the same
  way.

The corpus and how every format is derived from it are described in ``README.md`` here.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Mapping
from pathlib import Path

import datasets

from lab.data.builders import BUILDERS
from lab.data.corpus import load_corpus, split_groups, topics
from lab.data.formats import FORMATS, NLI_LABELS, Format
from lab.data.teacher import TEACHER_BUILDERS
from lab.data.validate import DataFormatError, conform, features_for, get_format

__all__ = [
    "FORMATS",
    "NLI_LABELS",
    "DataFormatError",
    "Format",
    "format_options",
    "load_corpus",
    "load_dataset",
    "load_hub_dataset",
    "load_user_file",
    "topics",
]

_ALL_BUILDERS = {**BUILDERS, **TEACHER_BUILDERS}
assert list(_ALL_BUILDERS) == [name for name in FORMATS if name in _ALL_BUILDERS]
assert set(_ALL_BUILDERS) == set(FORMATS), "every format needs a builder"


def format_options(fmt: str) -> dict[str, object]:
    """The options ``load_dataset(fmt, ...)`` accepts for a format, with their defaults."""
    builder = _ALL_BUILDERS[get_format(fmt).name]
    parameters = list(inspect.signature(builder).parameters.values())[2:]  # after groups, rng
    return {parameter.name: parameter.default for parameter in parameters}


def load_dataset(
    fmt: str, *, seed: int = 0, eval_fraction: float = 0.2, **options: object
) -> datasets.DatasetDict:
    """The teaching corpus in data format ``fmt``, split into "train" and "eval".

    Args:
        fmt: a name from ``FORMATS``.
        seed: seeds the split and every random choice (negatives, damage); same seed, same data.
        eval_fraction: share of each topic's meaning groups held out for "eval".
        **options: format-specific options, see ``format_options(fmt)`` (e.g.
            ``label_by="group"`` for sentence-label, ``num_negatives=5`` for n-tuple,
            ``teacher="minilm"`` for the teacher formats).
    """
    spec = get_format(fmt)
    allowed = format_options(fmt)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(f"{name}={default!r}" for name, default in allowed.items()) or "none"
        raise TypeError(f"load_dataset({fmt!r}) got unknown option(s) {unknown}; valid: {valid}")
    builder = _ALL_BUILDERS[spec.name]
    splits = split_groups(seed=seed, eval_fraction=eval_fraction)
    result = {}
    for offset, (split, groups) in enumerate(splits.items()):
        rng = random.Random(f"{seed}-{offset}-{fmt}")
        rows = builder(groups, rng, **options)
        rng.shuffle(rows)
        text_columns = tuple(name for name in rows[0] if name != spec.label_column)
        result[split] = datasets.Dataset.from_list(rows, features=features_for(spec, text_columns))
    return conform(datasets.DatasetDict(result), fmt, source=f"teaching corpus ({fmt})")


def load_user_file(
    path: str | Path,
    fmt: str,
    *,
    columns: Mapping[str, str] | None = None,
    eval_fraction: float = 0.2,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> datasets.DatasetDict:
    """Load a CSV or JSONL (one JSON object per line) file in data format ``fmt``.

    The file needs exactly the format's columns (``columns=`` renames yours first). Rows are
    split into "train" and "eval" with ``eval_fraction`` and ``seed``. Only data is read: no
    code, no pickles. ``cache_dir`` keeps the parsed copy there instead of the Hugging Face
    datasets cache (the app keeps each session's uploads in its own folder).
    """
    path = Path(path)
    builders = {".csv": "csv", ".jsonl": "json", ".json": "json"}
    if path.suffix.lower() not in builders:
        raise ValueError(f"{path.name}: expected a .csv or .jsonl file; got {path.suffix!r}")
    if not path.is_file():
        raise FileNotFoundError(f"No file at {str(path)!r}")
    options: dict = {"data_files": str(path)}
    if cache_dir is not None:
        options["cache_dir"] = str(cache_dir)
    return _load_and_conform(
        builders[path.suffix.lower()], options, fmt, columns, eval_fraction, seed,
        source=path.name,
    )


def load_hub_dataset(
    name: str,
    fmt: str,
    *,
    subset: str | None = None,
    columns: Mapping[str, str] | None = None,
    eval_fraction: float = 0.2,
    seed: int = 0,
) -> datasets.DatasetDict:
    """Load a Hugging Face dataset by name (or a local dataset folder) in data format ``fmt``.

    For example ``load_hub_dataset("sentence-transformers/all-nli", "triplet", subset="triplet")``
    (needs network access or the dataset in the local Hugging Face cache). Its "train" split and
    its eval split (eval, dev, validation or test) are checked exactly like a user file.
    """
    return _load_and_conform(name, {"name": subset}, fmt, columns, eval_fraction, seed,
                             source=name)


def _load_and_conform(
    path_or_builder: str, load_options: dict, fmt: str, columns: Mapping[str, str] | None,
    eval_fraction: float, seed: int, source: str,
) -> datasets.DatasetDict:
    """The one code path behind user files and Hub datasets."""
    get_format(fmt)  # fail on a bad format name before touching the data
    raw = datasets.load_dataset(path_or_builder, **load_options)
    return conform(raw, fmt, columns=columns, eval_fraction=eval_fraction, seed=seed,
                   source=source)
