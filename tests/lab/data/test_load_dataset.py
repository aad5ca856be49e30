"""load_dataset: every built-in format, its columns and dtypes, no leakage, and what rows mean.

Meaning is checked against the corpus itself (``load_corpus()``): which meaning group and topic
each sentence belongs to, and in which role (paraphrase, near miss, NLI hypothesis).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import cache

import datasets
import numpy as np
import pytest

from lab.data import (
    FORMATS,
    NLI_LABELS,
    builders,
    format_options,
    load_corpus,
    load_dataset,
    topics,
)
from lab.data.corpus import MeaningGroup, split_groups

TEACHER_FORMATS = ("teacher-embedding", "teacher-margin", "teacher-scores")
ALL_FORMATS = [
    pytest.param(name, marks=pytest.mark.slow) if name in TEACHER_FORMATS else name
    for name in FORMATS
]
EXPECTED_COLUMNS = {
    "sentence-label": ["sentence", "label"],
    "sentence": ["sentence"],
    "pair": ["anchor", "positive"],
    "triplet": ["anchor", "positive", "negative"],
    "n-tuple": ["anchor", "positive", "negative_1", "negative_2", "negative_3"],
    "pair-score": ["sentence1", "sentence2", "score"],
    "pair-label": ["sentence1", "sentence2", "label"],
    "nli": ["premise", "hypothesis", "label"],
    "denoising": ["damaged", "original"],
    "teacher-embedding": ["sentence", "label"],
    "teacher-margin": ["query", "positive", "negative", "label"],
    "teacher-scores": ["query", "positive", "negative_1", "negative_2", "negative_3", "label"],
}
LABEL_DTYPES = {"int": "int64", "binary": "int64", "float": "float32", "vector": "float32"}


@dataclass(frozen=True)
class Place:
    """Where a sentence sits in the corpus."""

    group: MeaningGroup
    role: str  # "paraphrase", "near_miss", "entailment", "neutral" or "contradiction"


@cache
def where() -> dict[str, Place]:
    places = {}
    for group in load_corpus():
        for text in group.paraphrases:
            places[text] = Place(group, "paraphrase")
        for text in group.near_misses:
            places[text] = Place(group, "near_miss")
        for role in ("entailment", "neutral", "contradiction"):
            places[getattr(group, role)] = Place(group, role)
    return places


@cache
def built(fmt: str) -> datasets.DatasetDict:
    """load_dataset(fmt) with default options, built once per test session."""
    return load_dataset(fmt)


def rows(fmt: str, split: str) -> list[dict]:
    return built(fmt)[split].to_list()


def corpus_columns(fmt: str) -> list[str]:
    """The columns that hold corpus sentences verbatim."""
    spec = FORMATS[fmt]
    if fmt == "denoising":
        return ["original"]
    return [name for name in built(fmt)["train"].column_names if name != spec.label_column]


@cache
def minilm():
    from lab.models import load_model

    return load_model("minilm", device="cpu")


def encode(texts: list[str]) -> np.ndarray:
    return minilm().encode(texts, convert_to_numpy=True).astype(np.float64)


# --- every format: splits, columns, dtypes, sizes, leakage -------------------------------------


def test_expected_columns_cover_every_format() -> None:
    assert set(EXPECTED_COLUMNS) == set(FORMATS)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_splits_columns_and_dtypes(fmt: str) -> None:
    data = built(fmt)
    assert isinstance(data, datasets.DatasetDict)
    assert sorted(data) == ["eval", "train"]
    spec = FORMATS[fmt]
    for split in ("train", "eval"):
        dataset = data[split]
        assert dataset.column_names == EXPECTED_COLUMNS[fmt]
        for name in EXPECTED_COLUMNS[fmt]:
            feature = dataset.features[name]
            if name == spec.label_column:
                expected = LABEL_DTYPES[spec.label_kind]
                if spec.label_kind == "vector":
                    assert isinstance(feature, datasets.List), feature
                    assert feature.feature.dtype == expected
                else:
                    assert feature.dtype == expected
            else:
                assert feature.dtype == "string", (name, feature)
    assert data["train"].num_rows >= 500
    assert data["eval"].num_rows >= 100


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_text_columns_hold_corpus_sentences_and_nothing_leaks_into_eval(fmt: str) -> None:
    places = where()
    seen: dict[str, set[str]] = {}
    for split in ("train", "eval"):
        texts = {row[name] for row in rows(fmt, split) for name in corpus_columns(fmt)}
        unknown = texts - set(places)
        assert not unknown, f"not corpus sentences: {sorted(unknown)[:3]}"
        seen[split] = texts
    assert not seen["train"] & seen["eval"]
    # Stronger: no meaning group is used on both sides (near misses of a group included).
    groups = {split: {places[t].group.group for t in texts} for split, texts in seen.items()}
    assert not groups["train"] & groups["eval"]


# --- meaning of each format --------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "eval"])
def test_pair_rows_are_two_paraphrases_of_one_group(split: str) -> None:
    places = where()
    pairs = set()
    for row in rows("pair", split):
        anchor, positive = places[row["anchor"]], places[row["positive"]]
        assert anchor.role == positive.role == "paraphrase"
        assert anchor.group == positive.group
        assert row["anchor"] != row["positive"]
        pairs.add(frozenset((row["anchor"], row["positive"])))
    assert len(pairs) == len(rows("pair", split))  # no pair twice, in either order
    # Every group of the split appears, with every pair of its paraphrases.
    expected = {
        frozenset(two)
        for group in split_groups(seed=0)[split]
        for two in itertools.combinations(group.paraphrases, 2)
    }
    assert pairs == expected


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple"])
@pytest.mark.parametrize("split", ["train", "eval"])
def test_negatives_are_hard_but_never_a_paraphrase_of_the_anchor(fmt: str, split: str) -> None:
    places = where()
    for row in rows(fmt, split):
        anchor = places[row["anchor"]]
        assert anchor.role == "paraphrase"
        assert places[row["positive"]].role == "paraphrase"
        assert places[row["positive"]].group == anchor.group
        negatives = [row[name] for name in row if name.startswith("negative")]
        assert len(negatives) == len(set(negatives)), "a negative repeats within a row"
        for text in negatives:
            negative = places[text]
            assert not (negative.group == anchor.group and negative.role == "paraphrase")
            # Hard negatives: the group's own near misses or another meaning of the same topic.
            assert negative.group.topic == anchor.group.topic
            assert negative.role in ("near_miss", "paraphrase")


def test_triplet_negatives_mix_near_misses_and_same_topic_meanings() -> None:
    places = where()
    roles = [places[row["negative"]].role for row in rows("triplet", "train")]
    near = roles.count("near_miss") / len(roles)
    assert 0.3 <= near <= 0.7


def expected_score(first: str, second: str) -> float:
    places = where()
    a, b = places[first], places[second]
    if a.group == b.group:
        if a.role == b.role == "paraphrase":
            return builders.SCORE_SAME_GROUP
        return builders.SCORE_NEAR_MISS
    if a.group.topic == b.group.topic:
        return builders.SCORE_SAME_TOPIC
    return builders.SCORE_OTHER_TOPIC


@pytest.mark.parametrize("split", ["train", "eval"])
def test_pair_scores_are_the_graded_values_and_match_membership(split: str) -> None:
    graded = {
        builders.SCORE_SAME_GROUP, builders.SCORE_NEAR_MISS, builders.SCORE_SAME_TOPIC,
        builders.SCORE_OTHER_TOPIC,
    }
    assert graded == {1.0, 0.5, 0.25, 0.0}
    data = rows("pair-score", split)
    assert {row["score"] for row in data} == graded  # every grade is used, nothing else
    for row in data:
        assert row["score"] == expected_score(row["sentence1"], row["sentence2"]), row


@pytest.mark.parametrize("split", ["train", "eval"])
def test_pair_label_is_one_iff_same_meaning_and_classes_are_balanced(split: str) -> None:
    places = where()
    data = rows("pair-label", split)
    for row in data:
        a, b = places[row["sentence1"]], places[row["sentence2"]]
        same = a.group == b.group and a.role == b.role == "paraphrase"
        assert row["label"] == int(same), row
    positives = sum(row["label"] for row in data) / len(data)
    assert 0.3 <= positives <= 0.7


@pytest.mark.parametrize("split", ["train", "eval"])
def test_nli_label_names_the_hypothesis_the_row_took(split: str) -> None:
    places = where()
    data = rows("nli", split)
    for row in data:
        premise = places[row["premise"]]
        assert premise.role == "paraphrase"
        hypothesis = places[row["hypothesis"]]
        assert hypothesis.group == premise.group
        assert hypothesis.role == NLI_LABELS[row["label"]], row
    assert {row["label"] for row in data} == {0, 1, 2}


@pytest.mark.parametrize("label_by", ["topic", "group"])
def test_sentence_label_maps_to_topic_or_group_index(label_by: str) -> None:
    places = where()
    group_index = {group.group: index for index, group in enumerate(load_corpus())}
    data = load_dataset("sentence-label", label_by=label_by)
    labels = {}
    for split in ("train", "eval"):
        for row in data[split].to_list():
            place = places[row["sentence"]]
            if label_by == "topic":
                assert place.role in ("paraphrase", "near_miss")
                assert topics()[row["label"]] == place.group.topic
            else:
                assert place.role == "paraphrase"
                assert row["label"] == group_index[place.group.group]
            labels.setdefault(split, set()).add(row["label"])
    if label_by == "topic":
        assert labels["train"] == labels["eval"] == set(range(len(topics())))
    else:
        assert not labels["train"] & labels["eval"]
        assert len(labels["train"] | labels["eval"]) == len(load_corpus())


def is_subsequence(part: list[str], whole: list[str]) -> bool:
    remaining = iter(whole)
    return all(word in remaining for word in part)


@pytest.mark.parametrize("deletion_ratio", [None, 0.3])
def test_denoising_deletes_words_in_order_at_the_requested_ratio(deletion_ratio) -> None:
    if deletion_ratio is None:
        data, ratio = built("denoising"), 0.6
    else:
        data, ratio = load_dataset("denoising", deletion_ratio=deletion_ratio), deletion_ratio
    kept = total = shorter = 0
    for row in data["train"].to_list() + data["eval"].to_list():
        damaged, original = row["damaged"].split(), row["original"].split()
        assert damaged, row
        assert is_subsequence(damaged, original), row
        kept += len(damaged)
        total += len(original)
        shorter += len(damaged) < len(original)
    assert 1 - kept / total == pytest.approx(ratio, abs=0.05)
    assert shorter / (data["train"].num_rows + data["eval"].num_rows) > 0.9


@pytest.mark.slow
def test_teacher_embedding_is_minilms_embedding_of_the_sentence() -> None:
    data = built("teacher-embedding")
    for split in ("train", "eval"):
        sample = data[split].select(range(4)).to_list()
        expected = encode([row["sentence"] for row in sample])
        labels = np.array([row["label"] for row in sample])
        assert labels.shape == expected.shape == (4, 384)
        np.testing.assert_allclose(labels, expected, atol=1e-5)


@pytest.mark.slow
def test_teacher_margin_is_minilm_dot_product_difference() -> None:
    data = built("teacher-margin")
    for split in ("train", "eval"):
        sample = data[split].select(range(4)).to_list()
        for row in sample:
            q, p, n = encode([row["query"], row["positive"], row["negative"]])
            assert row["label"] == pytest.approx(q @ p - q @ n, abs=1e-5)
    margins = np.array(data["train"]["label"])
    assert margins.mean() > 0, "the teacher should prefer the paraphrase on average"


@pytest.mark.slow
def test_teacher_scores_are_minilm_dot_products_with_every_document() -> None:
    data = built("teacher-scores")
    for split in ("train", "eval"):
        for row in data[split].to_list():
            assert len(row["label"]) == 1 + 3
        for row in data[split].select(range(3)).to_list():
            documents = [row["positive"]] + [row[f"negative_{k}"] for k in (1, 2, 3)]
            vectors = encode([row["query"], *documents])
            np.testing.assert_allclose(row["label"], vectors[1:] @ vectors[0], atol=1e-5)


@pytest.mark.slow
def test_teacher_scores_follow_num_negatives() -> None:
    data = load_dataset("teacher-scores", num_negatives=5, eval_fraction=0.4)
    for split in ("train", "eval"):
        assert data[split].column_names == [
            "query", "positive", *(f"negative_{k}" for k in range(1, 6)), "label"]
        assert {len(label) for label in data[split]["label"]} == {6}


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["triplet", "n-tuple", "pair-score", "pair-label", "denoising"])
def test_same_seed_same_data_other_seed_other_data(fmt: str) -> None:
    first = load_dataset(fmt, seed=5)
    again = load_dataset(fmt, seed=5)
    other = load_dataset(fmt, seed=6)
    for split in ("train", "eval"):
        assert first[split].to_list() == again[split].to_list()
        assert first[split].to_list() != other[split].to_list()
    # A different seed also moves groups between train and eval.
    originals = sorted(first["eval"][first["eval"].column_names[0]])
    assert originals != sorted(other["eval"][other["eval"].column_names[0]])


def test_num_negatives_five_works_with_default_split() -> None:
    data = load_dataset("n-tuple", num_negatives=5)
    assert data["eval"].column_names[-1] == "negative_5"


def test_num_negatives_five_gives_five_negative_columns() -> None:
    data = load_dataset("n-tuple", num_negatives=5, eval_fraction=0.4)
    places = where()
    for split in ("train", "eval"):
        assert data[split].column_names == [
            "anchor", "positive", *(f"negative_{k}" for k in range(1, 6))]
        for row in data[split].to_list():
            anchor = places[row["anchor"]].group
            negatives = [row[f"negative_{k}"] for k in range(1, 6)]
            assert len(set(negatives)) == 5
            # near misses first, then other meanings of the topic
            assert list(negatives[: len(anchor.near_misses)]) == list(anchor.near_misses)
            assert all(places[text].group != anchor for text in negatives[2:])


def test_too_many_negatives_raises() -> None:
    with pytest.raises(ValueError, match="num_negatives"):
        load_dataset("n-tuple", num_negatives=50)
    with pytest.raises(ValueError, match="num_negatives"):
        load_dataset("n-tuple", num_negatives=0)


@pytest.mark.parametrize("fmt", ["n-tuple", "sentence-label", "triplet"])
def test_unknown_option_is_a_type_error_listing_the_valid_ones(fmt: str) -> None:
    with pytest.raises(TypeError) as raised:
        load_dataset(fmt, not_an_option=1)
    message = str(raised.value)
    assert "not_an_option" in message
    for option in format_options(fmt):
        assert option in message


def test_format_options_are_the_documented_knobs() -> None:
    assert format_options("n-tuple") == {"num_negatives": 3}
    assert format_options("sentence-label") == {"label_by": "topic"}
    assert format_options("pair") == {}


def test_unknown_format_is_a_value_error_listing_the_formats() -> None:
    with pytest.raises(ValueError) as raised:
        load_dataset("tripplet")
    message = str(raised.value)
    assert "tripplet" in message
    for name in FORMATS:
        assert re.search(rf"\b{re.escape(name)}\b", message), name
