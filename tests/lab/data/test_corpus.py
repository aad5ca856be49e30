"""The teaching corpus: its size and shape, and the seeded split by meaning group."""

from __future__ import annotations

from collections import Counter

import pytest

from lab.data.corpus import load_corpus, split_groups, topics


def test_corpus_has_many_topics_each_with_many_meaning_groups() -> None:
    groups_per_topic = Counter(group.topic for group in load_corpus())
    assert len(groups_per_topic) >= 10
    assert min(groups_per_topic.values()) >= 10
    assert set(groups_per_topic) == set(topics())


def test_topics_are_listed_once_in_corpus_order() -> None:
    order = []
    for group in load_corpus():
        if group.topic not in order:
            order.append(group.topic)
    assert list(topics()) == order


@pytest.mark.parametrize("group", load_corpus(), ids=lambda group: group.group)
def test_every_group_has_paraphrases_near_misses_and_hypotheses(group) -> None:
    assert len(group.paraphrases) >= 3
    assert len(group.near_misses) >= 1
    for text in group.sentences:
        assert isinstance(text, str)
        assert text.strip() == text and len(text.split()) >= 3, text


def test_every_sentence_is_unique_across_the_corpus() -> None:
    counts = Counter(text for group in load_corpus() for text in group.sentences)
    repeated = [text for text, count in counts.items() if count > 1]
    assert repeated == []
    # Also unique after trivial normalisation: no pair that differs only in case or spacing.
    normalised = Counter(" ".join(text.lower().split()) for text in counts)
    assert max(normalised.values()) == 1


def test_group_ids_are_unique() -> None:
    ids = [group.group for group in load_corpus()]
    assert len(ids) == len(set(ids))


def _ids(groups) -> set[str]:
    return {group.group for group in groups}


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("eval_fraction", [0.2, 0.5])
def test_split_keeps_groups_whole_and_every_topic_on_both_sides(
    seed: int, eval_fraction: float
) -> None:
    splits = split_groups(seed=seed, eval_fraction=eval_fraction)
    assert set(splits) == {"train", "eval"}
    train, evaluation = _ids(splits["train"]), _ids(splits["eval"])
    assert not train & evaluation
    assert train | evaluation == _ids(load_corpus())
    assert len(splits["train"]) + len(splits["eval"]) == len(load_corpus())
    assert {group.topic for group in splits["train"]} == set(topics())
    assert {group.topic for group in splits["eval"]} == set(topics())
    share = len(splits["eval"]) / len(load_corpus())
    assert share == pytest.approx(eval_fraction, abs=0.05)


def test_split_is_deterministic_for_a_seed_and_differs_for_another() -> None:
    first = split_groups(seed=3)
    again = split_groups(seed=3)
    assert [g.group for g in first["eval"]] == [g.group for g in again["eval"]]
    assert [g.group for g in first["train"]] == [g.group for g in again["train"]]
    other = split_groups(seed=4)
    assert _ids(first["eval"]) != _ids(other["eval"])


@pytest.mark.parametrize("eval_fraction", [-0.1, 1.0, 1.5])
def test_split_rejects_bad_eval_fraction(eval_fraction: float) -> None:
    with pytest.raises(ValueError, match="eval_fraction"):
        split_groups(eval_fraction=eval_fraction)
