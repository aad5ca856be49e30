"""load_user_file, load_hub_dataset (on a local folder) and conform: the user-data code path."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import datasets
import pytest

from lab.data import FORMATS, DataFormatError, load_hub_dataset, load_user_file
from lab.data.validate import conform


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(row) + "\n")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write(path: Path, rows: list[dict]) -> Path:
    return write_csv(path, rows) if path.suffix == ".csv" else write_jsonl(path, rows)


def key(row: dict) -> str:
    return json.dumps(row, sort_keys=True)


def check_split(data: datasets.DatasetDict, written: list[dict], eval_fraction: float) -> None:
    """train + eval hold exactly the written rows, with eval the requested share."""
    assert sorted(data) == ["eval", "train"]
    n_eval, share = data["eval"].num_rows, eval_fraction * len(written)
    assert n_eval in (math.floor(share), math.ceil(share))
    assert data["train"].num_rows + n_eval == len(written)
    loaded = data["train"].to_list() + data["eval"].to_list()
    assert sorted(map(key, loaded)) == sorted(map(key, written))


def pair_score_rows(n: int = 20) -> list[dict]:
    return [{"sentence1": f"first sentence {i}", "sentence2": f"second sentence {i}",
             "score": (i % 5) / 4} for i in range(n)]


def pair_label_rows(n: int = 20) -> list[dict]:
    return [{"sentence1": f"left {i}", "sentence2": f"right {i}", "label": i % 2} for i in range(n)]


def triplet_rows(n: int = 20) -> list[dict]:
    return [{"anchor": f"anchor {i}", "positive": f"positive {i}", "negative": f"negative {i}"}
            for i in range(n)]


def n_tuple_rows(n: int = 20) -> list[dict]:
    return [{"anchor": f"anchor {i}", "positive": f"positive {i}", "negative_1": f"miss {i}",
             "negative_2": f"other {i}"} for i in range(n)]


def teacher_scores_rows(n: int = 20) -> list[dict]:
    return [{"query": f"query {i}", "positive": f"doc {i}", "negative_1": f"bad {i}",
             "negative_2": f"worse {i}", "label": [0.875, 0.25 + i / 64, -0.125]}
            for i in range(n)]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize("eval_fraction", [0.2, 0.5])
def test_pair_score_file(tmp_path: Path, suffix: str, eval_fraction: float) -> None:
    written = pair_score_rows()
    data = load_user_file(write(tmp_path / f"scores{suffix}", written), "pair-score",
                          eval_fraction=eval_fraction)
    for split in data.values():
        assert split.column_names == ["sentence1", "sentence2", "score"]
        assert split.features["score"].dtype == "float32"
    check_split(data, written, eval_fraction)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_pair_label_file(tmp_path: Path, suffix: str) -> None:
    written = pair_label_rows()
    data = load_user_file(write(tmp_path / f"labels{suffix}", written), "pair-label")
    for split in data.values():
        assert split.features["label"].dtype == "int64"
    check_split(data, written, 0.2)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_triplet_file(tmp_path: Path, suffix: str) -> None:
    written = triplet_rows()
    data = load_user_file(write(tmp_path / f"triplets{suffix}", written), "triplet")
    for split in data.values():
        assert split.column_names == ["anchor", "positive", "negative"]
    check_split(data, written, 0.2)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_n_tuple_file_with_two_negatives(tmp_path: Path, suffix: str) -> None:
    written = n_tuple_rows()
    data = load_user_file(write(tmp_path / f"tuples{suffix}", written), "n-tuple")
    for split in data.values():
        assert split.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    check_split(data, written, 0.2)


def test_teacher_scores_jsonl_with_vector_labels(tmp_path: Path) -> None:
    written = teacher_scores_rows()
    data = load_user_file(write_jsonl(tmp_path / "scores.jsonl", written), "teacher-scores")
    for split in data.values():
        assert split.column_names == ["query", "positive", "negative_1", "negative_2", "label"]
        assert isinstance(split.features["label"], datasets.List)
        assert split.features["label"].feature.dtype == "float32"
    check_split(data, written, 0.2)  # the labels are exact in float32


def test_same_seed_same_split_other_seed_other_split(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "triplets.jsonl", triplet_rows(40))
    first = load_user_file(path, "triplet", seed=1)
    again = load_user_file(path, "triplet", seed=1)
    other = load_user_file(path, "triplet", seed=2)
    assert first["eval"].to_list() == again["eval"].to_list()
    assert first["eval"]["anchor"] != other["eval"]["anchor"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_columns_renames_before_checking(tmp_path: Path, suffix: str) -> None:
    written = [{"question": f"q {i}", "answer": f"a {i}", "similarity": i / 20}
               for i in range(20)]
    data = load_user_file(
        write(tmp_path / f"qa{suffix}", written), "pair-score",
        columns={"question": "sentence1", "answer": "sentence2", "similarity": "score"},
    )
    loaded = data["train"].to_list() + data["eval"].to_list()
    assert data["train"].column_names == ["sentence1", "sentence2", "score"]
    by_first = {row["sentence1"]: row for row in loaded}
    for row in written:
        assert by_first[row["question"]]["sentence2"] == row["answer"]
        assert by_first[row["question"]]["score"] == pytest.approx(row["similarity"])


# --- errors --------------------------------------------------------------------------------

def _rows(maker, change) -> list[dict]:
    rows = maker(6)
    for row in rows:
        change(row)
    return rows


def _vector_widths(rows: list[dict]) -> list[dict]:
    rows[3]["label"] = [0.5, 0.25]
    return rows


# id: (format, file name, rows, columns=, something the message must quote about the problem)
BAD_FILES = {
    "missing-column": ("pair-score", "missing.csv",
                       _rows(pair_score_rows, lambda row: row.pop("sentence2")), None,
                       "sentence2"),
    "extra-column": ("pair-score", "extra.jsonl",
                     _rows(pair_score_rows, lambda row: row.update(notes="hi")), None, "notes"),
    "string-label": ("pair-label", "strings.csv",
                     _rows(pair_label_rows, lambda row: row.update(label="yes")), None, "yes"),
    "score-out-of-range": ("pair-score", "sts.jsonl",
                           _rows(pair_score_rows, lambda row: row.update(score=3.5)), None,
                           "3.5"),
    "nli-label-3": ("nli", "nli.jsonl",
                    [{"premise": f"p {i}", "hypothesis": f"h {i}", "label": 3 if i == 2 else 0}
                     for i in range(6)], None, "3"),
    "vector-widths": ("teacher-scores", "widths.jsonl", _vector_widths(teacher_scores_rows(6)),
                      None, "[0.5, 0.25]"),
    "empty-text": ("triplet", "empty.jsonl",
                   _rows(triplet_rows, lambda row: row.update(positive="")), None, "positive"),
    "rename-absent": ("pair", "pairs.jsonl",
                      [{"anchor": f"a {i}", "positive": f"p {i}"} for i in range(6)],
                      {"query": "anchor"}, "query"),
}


def _load_bad(tmp_path: Path, case: str) -> DataFormatError:
    fmt, name, rows, columns, _ = BAD_FILES[case]
    path = write(tmp_path / name, rows)
    with pytest.raises(DataFormatError) as raised:
        load_user_file(path, fmt, columns=columns)
    return raised.value


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_a_data_format_error_naming_the_problem(tmp_path: Path, case: str) -> None:
    error = _load_bad(tmp_path, case)
    assert isinstance(error, ValueError)
    message = str(error)
    assert BAD_FILES[case][1] in message  # which file
    assert BAD_FILES[case][4] in message  # what is wrong with it


def _names(word: str, message: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", message) is not None


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_message_names_format_expected_and_found_columns(
    tmp_path: Path, case: str
) -> None:
    fmt, _, rows, _, _ = BAD_FILES[case]
    message = str(_load_bad(tmp_path, case))
    assert _names(fmt, message), f"format {fmt!r} not named: {message}"
    for column in FORMATS[fmt].columns:
        assert _names(column, message), f"expected column {column!r} not named: {message}"
    for column in rows[0]:
        assert _names(column, message), f"found column {column!r} not named: {message}"


def test_unsupported_suffix_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("anchor,positive\na,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="txt"):
        load_user_file(path, "pair")


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_user_file(tmp_path / "nowhere.csv", "pair")


def test_unknown_format_is_a_value_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", triplet_rows(4))
    with pytest.raises(ValueError, match="triplet"):
        load_user_file(path, "triplets")


# --- local dataset folders through load_hub_dataset ------------------------------------------

def pair_rows(prefix: str, n: int) -> list[dict]:
    return [{"anchor": f"{prefix} anchor {i}", "positive": f"{prefix} positive {i}"}
            for i in range(n)]


def test_local_folder_uses_its_dev_split_as_eval(tmp_path: Path) -> None:
    folder = tmp_path / "mydata"
    folder.mkdir()
    train, dev = pair_rows("train", 12), pair_rows("dev", 5)
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "dev.jsonl", dev)
    data = load_hub_dataset(str(folder), "pair")
    assert sorted(data) == ["eval", "train"]
    assert data["eval"].to_list() == dev
    assert data["train"].to_list() == train


def test_local_folder_without_eval_split_holds_one_out(tmp_path: Path) -> None:
    folder = tmp_path / "mydata"
    folder.mkdir()
    train = pair_rows("train", 20)
    write_jsonl(folder / "train.jsonl", train)
    data = load_hub_dataset(str(folder), "pair", eval_fraction=0.25)
    check_split(data, train, 0.25)


# --- conform on in-memory data ---------------------------------------------------------------

def test_conform_reorders_columns_and_casts_labels() -> None:
    dataset = datasets.Dataset.from_dict({
        "score": [1, 0, 0.5, 0.25, 0.0],
        "sentence2": ["b0", "b1", "b2", "b3", "b4"],
        "sentence1": ["a0", "a1", "a2", "a3", "a4"],
    })
    data = conform(dataset, "pair-score", eval_fraction=0.4)
    for split in data.values():
        assert split.column_names == ["sentence1", "sentence2", "score"]
        assert split.features["score"].dtype == "float32"
    rows = data["train"].to_list() + data["eval"].to_list()
    expected = {f"a{i}": (f"b{i}", score) for i, score in enumerate([1, 0, 0.5, 0.25, 0.0])}
    assert {row["sentence1"]: (row["sentence2"], row["score"]) for row in rows} == expected


def test_conform_takes_a_test_split_as_eval_and_orders_negatives() -> None:
    def tuples(prefix: str) -> datasets.Dataset:
        return datasets.Dataset.from_dict({
            "negative_2": [f"{prefix} n2"], "positive": [f"{prefix} p"],
            "negative_1": [f"{prefix} n1"], "anchor": [f"{prefix} a"],
        })

    data = conform(datasets.DatasetDict({"train": tuples("t"), "test": tuples("e")}), "n-tuple")
    assert data["eval"].to_list() == [
        {"anchor": "e a", "positive": "e p", "negative_1": "e n1", "negative_2": "e n2"}]
    assert data["train"].column_names == ["anchor", "positive", "negative_1", "negative_2"]
