"""Make any dataset fit a lab data format, or say exactly why it does not.

The built-in corpus, user CSV/JSONL files and Hub datasets all pass through ``conform``: it picks
the train and eval splits, renames columns on request, checks that the columns are exactly the
ones the format needs (sentence-transformers feeds every non-label column to the loss, by
position, so an extra column would silently become an extra input), checks the label values, and
casts to the dtypes the trainer expects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import datasets

from lab.data.formats import FORMATS, NLI_LABELS, Format

EVAL_SPLIT_NAMES = ("eval", "dev", "validation", "test")

_LABEL_FEATURES = {
    "int": datasets.Value("int64"),
    "binary": datasets.Value("int64"),
    "float": datasets.Value("float32"),
    "vector": datasets.List(datasets.Value("float32")),
}


@contextmanager
def _quiet() -> Iterator[None]:
    """Hide datasets' progress bars for an instant operation, restoring the user's setting."""
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


class DataFormatError(ValueError):
    """A dataset does not have the columns or labels its data format needs."""


def get_format(fmt: str) -> Format:
    """The format called ``fmt``, or a ValueError listing the valid names."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown data format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    return FORMATS[fmt]


def features_for(fmt: Format, text_columns: tuple[str, ...]) -> datasets.Features:
    """Arrow features of a format: strings for texts, the label's dtype last."""
    features = {name: datasets.Value("string") for name in text_columns}
    if fmt.label_column:
        features[fmt.label_column] = _LABEL_FEATURES[fmt.label_kind]
    return datasets.Features(features)


def expected_columns_text(fmt: Format) -> str:
    """Human-readable column list of a format, e.g. "anchor, positive, negative_1..negative_n"."""
    texts = list(fmt.text_columns)
    if fmt.variable_negatives:
        texts[-1] = "negative_1..negative_n"
    label = [f"{fmt.label_column} ({fmt.label_kind})"] if fmt.label_column else []
    return ", ".join(texts + label)


def format_error(
    source: str, fmt: Format, found: list[str], problem: str, hint: str = ""
) -> DataFormatError:
    """One error shape for every data problem: the format, its columns, what was found, why."""
    return DataFormatError(
        f"{source}: the {fmt.name!r} format ({fmt.description}) expects columns "
        f"[{expected_columns_text(fmt)}]; found [{', '.join(found)}]: {problem}.{hint}"
    )


def _text_columns(fmt: Format, found: list[str]) -> tuple[str, ...]:
    """The text columns this dataset must have: fixed, or anchor/query, positive, negative_k."""
    if not fmt.variable_negatives:
        return fmt.text_columns
    negatives = sorted(
        (int(match.group(1)) for name in found if (match := re.fullmatch(r"negative_(\d+)", name))),
    )
    count = max(1, len(negatives))
    return fmt.text_columns[:-1] + tuple(f"negative_{k}" for k in range(1, count + 1))


def check_columns(dataset: datasets.Dataset, fmt: Format, source: str) -> tuple[str, ...]:
    """Raise DataFormatError unless ``dataset`` has exactly the format's columns (any order)."""
    found = list(dataset.column_names)
    text_columns = _text_columns(fmt, found)
    expected = list(text_columns) + ([fmt.label_column] if fmt.label_column else [])
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unexpected:
            problems.append(
                f"unexpected {', '.join(unexpected)} (the trainer would feed it to the loss as an "
                f"extra input)"
            )
        raise format_error(source, fmt, found, "; ".join(problems),
                           " Rename columns with columns={'your_name': 'expected_name'}.")
    return text_columns


def check_values(dataset: datasets.Dataset, fmt: Format, text_columns: tuple[str, ...],
                 source: str) -> None:
    """Raise DataFormatError for empty texts or labels of the wrong kind or range."""
    found = list(dataset.column_names)
    if len(dataset) == 0:
        raise format_error(source, fmt, found, "no rows")
    for name in text_columns:
        for row, text in enumerate(dataset[name]):
            if not isinstance(text, str) or not text.strip():
                raise format_error(source, fmt, found,
                                   f"column {name!r} row {row} should be a non-empty text; "
                                   f"got {text!r}")
    if fmt.label_column:
        _check_labels(dataset[fmt.label_column], fmt, source, found)


def _check_labels(labels: list, fmt: Format, source: str, found: list[str]) -> None:
    column = fmt.label_column
    width = None
    for row, label in enumerate(labels):
        problem = None
        if fmt.label_kind in ("int", "binary"):
            is_integer = (isinstance(label, int) and not isinstance(label, bool)) or (
                isinstance(label, float) and label.is_integer())
            if not is_integer:
                problem = "an integer class id"
            elif fmt.label_kind == "binary" and label not in (0, 1):
                problem = "0 or 1"
            elif fmt.name == "nli" and not 0 <= label < len(NLI_LABELS):
                problem = "0 (entailment), 1 (neutral) or 2 (contradiction)"
            elif label < 0:
                problem = "a class id >= 0"
        elif fmt.label_kind == "float":
            if not isinstance(label, (int, float)) or isinstance(label, bool) or math.isnan(label):
                problem = "a number"
            elif fmt.name == "pair-score" and not 0.0 <= label <= 1.0:
                problem = "a score in [0, 1] (rescale e.g. 0-5 STS scores by dividing by 5)"
        elif fmt.label_kind == "vector":
            if not isinstance(label, list) or not label or not all(
                    isinstance(value, (int, float)) for value in label):
                problem = "a non-empty list of numbers"
            elif width is not None and len(label) != width:
                problem = f"a list of {width} numbers like the rows before it"
            width = len(label) if isinstance(label, list) else width
        if problem:
            raise format_error(source, fmt, found,
                               f"label column {column!r} row {row} should be {problem}; "
                               f"got {label!r}")


def conform(
    raw: datasets.DatasetDict | datasets.Dataset,
    fmt: str,
    *,
    columns: Mapping[str, str] | None = None,
    eval_fraction: float = 0.2,
    seed: int = 0,
    source: str = "dataset",
) -> datasets.DatasetDict:
    """Return ``raw`` as a DatasetDict with "train" and "eval" in format ``fmt``.

    Args:
        raw: one Dataset, or a DatasetDict with a "train" split (or a single split) and
            optionally an eval split named eval, dev, validation or test.
        fmt: a name from ``FORMATS``.
        columns: renames applied first, ``{"name in the data": "name the format uses"}``.
        eval_fraction: share of train held out as eval when ``raw`` has no eval split.
        seed: seed of that hold-out split.
        source: what to call the data in error messages (a path or a Hub name).
    """
    spec = get_format(fmt)
    if isinstance(raw, datasets.Dataset):
        raw = datasets.DatasetDict({"train": raw})
    train_name = "train" if "train" in raw else next(iter(raw)) if len(raw) == 1 else None
    if train_name is None:
        raise DataFormatError(f"{source}: no 'train' split; found splits {list(raw)}")
    eval_name = next((name for name in EVAL_SPLIT_NAMES if name in raw and name != train_name),
                     None)
    splits = {"train": raw[train_name]}
    if eval_name:
        splits["eval"] = raw[eval_name]

    result = {}
    for split, dataset in splits.items():
        if columns:
            absent = [name for name in columns if name not in dataset.column_names]
            if absent:
                raise format_error(source, spec, list(dataset.column_names),
                                   f"columns= renames {absent}, which the data does not have")
            dataset = dataset.rename_columns(dict(columns))
        where = f"{source} [{split}]"
        text_columns = check_columns(dataset, spec, where)
        check_values(dataset, spec, text_columns, where)
        ordered = list(text_columns) + ([spec.label_column] if spec.label_column else [])
        dataset = dataset.select_columns(ordered)
        features = features_for(spec, text_columns)
        if dataset.features != features:
            with _quiet():
                dataset = dataset.cast(features)
        result[split] = dataset

    if "eval" not in result:
        if not 0.0 < eval_fraction < 1.0 or len(result["train"]) < 2:
            raise DataFormatError(
                f"{source}: no eval split to use, and cannot hold one out of "
                f"{len(result['train'])} rows with eval_fraction={eval_fraction}"
            )
        held_out = result["train"].train_test_split(test_size=eval_fraction, seed=seed)
        result = {"train": held_out["train"], "eval": held_out["test"]}
    return datasets.DatasetDict(result)
