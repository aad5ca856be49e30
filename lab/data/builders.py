"""Turn meaning groups into rows of each data format.

Each builder takes the meaning groups of one split and a seeded ``random.Random`` and returns a
list of row dicts with exactly the columns of its format (see ``formats.py``). Negatives are
always drawn from the same split, so eval rows never mention a training sentence.

How the graded formats are scored (dyadic values, exact in float32):

=========================================  =============  ==============
pair of sentences                           pair-score     pair-label
=========================================  =============  ==============
two paraphrases of one meaning group        1.0            1
a paraphrase and a near miss of its group   0.5            0
same topic, different meaning group         0.25           0
different topics                            0.0            (not used)
=========================================  =============  ==============
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Callable, Sequence

from lab.data.corpus import MeaningGroup, topics

Row = dict[str, object]

SCORE_SAME_GROUP = 1.0
SCORE_NEAR_MISS = 0.5
SCORE_SAME_TOPIC = 0.25
SCORE_OTHER_TOPIC = 0.0


def _paraphrase_pairs(group: MeaningGroup) -> list[tuple[str, str]]:
    """Every unordered pair of paraphrases of a group (4 paraphrases -> 6 pairs)."""
    return list(itertools.combinations(group.paraphrases, 2))


def _by_topic(groups: Sequence[MeaningGroup]) -> dict[str, list[MeaningGroup]]:
    members: dict[str, list[MeaningGroup]] = defaultdict(list)
    for group in groups:
        members[group.topic].append(group)
    return members


def _same_topic_sentences(
    group: MeaningGroup, by_topic: dict[str, list[MeaningGroup]], rng: random.Random, count: int
) -> list[str]:
    """``count`` paraphrases from distinct other groups of the same topic (fewer if too few)."""
    others = [other for other in by_topic[group.topic] if other.group != group.group]
    chosen = rng.sample(others, min(count, len(others)))
    return [rng.choice(other.paraphrases) for other in chosen]


def _other_topic_sentences(
    group: MeaningGroup, groups: Sequence[MeaningGroup], rng: random.Random, count: int
) -> list[str]:
    """``count`` paraphrases from distinct groups of other topics."""
    if count <= 0:
        return []
    others = [other for other in groups if other.topic != group.topic]
    chosen = rng.sample(others, min(count, len(others)))
    return [rng.choice(other.paraphrases) for other in chosen]


def sentence_label(
    groups: Sequence[MeaningGroup], rng: random.Random, label_by: str = "topic"
) -> list[Row]:
    """Single sentences with a class id.

    ``label_by="topic"``: paraphrases and near misses, labelled by topic index (12 classes).
    ``label_by="group"``: paraphrases only, labelled by meaning group (fine-grained classes,
    numbered in corpus order).
    """
    if label_by == "topic":
        topic_ids = {name: index for index, name in enumerate(topics())}
        return [
            {"sentence": sentence, "label": topic_ids[group.topic]}
            for group in groups
            for sentence in group.paraphrases + group.near_misses
        ]
    if label_by == "group":
        from lab.data.corpus import load_corpus

        group_ids = {group.group: index for index, group in enumerate(load_corpus())}
        return [
            {"sentence": sentence, "label": group_ids[group.group]}
            for group in groups
            for sentence in group.paraphrases
        ]
    raise ValueError(f"label_by must be 'topic' or 'group'; got {label_by!r}")


def sentence(groups: Sequence[MeaningGroup], rng: random.Random) -> list[Row]:
    """Every sentence of the split, unlabeled."""
    return [{"sentence": text} for group in groups for text in group.sentences]


def pair(groups: Sequence[MeaningGroup], rng: random.Random) -> list[Row]:
    """(anchor, positive): every pair of paraphrases of each group."""
    return [
        {"anchor": anchor, "positive": positive}
        for group in groups
        for anchor, positive in _paraphrase_pairs(group)
    ]


def triplet(
    groups: Sequence[MeaningGroup], rng: random.Random, negatives: str = "mixed"
) -> list[Row]:
    """(anchor, positive, negative) for every paraphrase pair.

    ``negatives``: ``"near-miss"`` (the group's own near misses: the hardest), ``"same-topic"``
    (another meaning of the same topic), or ``"mixed"`` (alternating the two).
    """
    if negatives not in ("near-miss", "same-topic", "mixed"):
        raise ValueError(
            f"negatives must be 'near-miss', 'same-topic' or 'mixed'; got {negatives!r}")
    by_topic = _by_topic(groups)
    rows = []
    for group in groups:
        for index, (anchor, positive) in enumerate(_paraphrase_pairs(group)):
            use_near_miss = negatives == "near-miss" or (negatives == "mixed" and index % 2 == 0)
            if use_near_miss:
                negative = group.near_misses[index // 2 % len(group.near_misses)]
            else:
                negative = _same_topic_sentences(group, by_topic, rng, 1)[0]
            rows.append({"anchor": anchor, "positive": positive, "negative": negative})
    return rows


def n_tuple(
    groups: Sequence[MeaningGroup], rng: random.Random, num_negatives: int = 3
) -> list[Row]:
    """(anchor, positive, negative_1..negative_n), hardest negatives first.

    Negatives are the group's near misses, then other meanings of the same topic, then (when a
    small split runs out of those) meanings of other topics; never a repeat.
    """
    if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 1:
        raise ValueError(f"num_negatives must be a positive integer; got {num_negatives!r}")
    by_topic = _by_topic(groups)
    available = min(len(group.near_misses) for group in groups) + len(groups) - 1
    if num_negatives > available:
        raise ValueError(
            f"num_negatives={num_negatives} is more than this split can give without repeats "
            f"({available}: near misses plus one sentence of every other meaning group)"
        )
    rows = []
    for group in groups:
        for anchor, positive in _paraphrase_pairs(group):
            negatives = list(group.near_misses[:num_negatives])
            negatives += _same_topic_sentences(group, by_topic, rng, num_negatives - len(negatives))
            negatives += _other_topic_sentences(group, groups, rng, num_negatives - len(negatives))
            row: Row = {"anchor": anchor, "positive": positive}
            row.update({f"negative_{k}": text for k, text in enumerate(negatives, start=1)})
            rows.append(row)
    return rows


def _graded_pairs(
    groups: Sequence[MeaningGroup], rng: random.Random
) -> list[tuple[str, str, float]]:
    """Per group: 6 paraphrase pairs, 2 near-miss pairs, 4 same-topic and 4 other-topic pairs."""
    by_topic = _by_topic(groups)
    graded = []
    for group in groups:
        graded += [(a, b, SCORE_SAME_GROUP) for a, b in _paraphrase_pairs(group)]
        graded += [(rng.choice(group.paraphrases), miss, SCORE_NEAR_MISS)
                   for miss in group.near_misses]
        graded += [(rng.choice(group.paraphrases), other, SCORE_SAME_TOPIC)
                   for other in _same_topic_sentences(group, by_topic, rng, 4)]
        graded += [(rng.choice(group.paraphrases), other, SCORE_OTHER_TOPIC)
                   for other in _other_topic_sentences(group, groups, rng, 4)]
    return graded


def pair_score(groups: Sequence[MeaningGroup], rng: random.Random) -> list[Row]:
    """(sentence1, sentence2, score in [0, 1]) graded by meaning group and topic."""
    return [{"sentence1": a, "sentence2": b, "score": score}
            for a, b, score in _graded_pairs(groups, rng)]


def pair_label(groups: Sequence[MeaningGroup], rng: random.Random) -> list[Row]:
    """(sentence1, sentence2, label 0/1): same meaning vs near miss or other meaning (1:1)."""
    return [
        {"sentence1": a, "sentence2": b, "label": int(score == SCORE_SAME_GROUP)}
        for a, b, score in _graded_pairs(groups, rng)
        if score != SCORE_OTHER_TOPIC
    ]


def nli(groups: Sequence[MeaningGroup], rng: random.Random) -> list[Row]:
    """(premise, hypothesis, label): each paraphrase against the group's three hypotheses.

    Labels index ``formats.NLI_LABELS``: 0 entailment, 1 neutral, 2 contradiction.

    The hypotheses were written about the first paraphrase; the others say the same thing, so
    the same relation holds for them.
    """
    rows = []
    for group in groups:
        hypotheses = (group.entailment, group.neutral, group.contradiction)
        for premise in group.paraphrases:
            for label, hypothesis in enumerate(hypotheses):
                rows.append({"premise": premise, "hypothesis": hypothesis, "label": label})
    return rows


def damage(text: str, rng: random.Random, deletion_ratio: float = 0.6) -> str:
    """Delete each word with probability ``deletion_ratio``, keeping at least one word.

    The noise of TSDAE (Wang et al., 2021), whose best setting deletes 60% of the words.
    """
    words = text.split()
    kept = [word for word in words if rng.random() >= deletion_ratio]
    return " ".join(kept) if kept else rng.choice(words)


def denoising(
    groups: Sequence[MeaningGroup], rng: random.Random, deletion_ratio: float = 0.6
) -> list[Row]:
    """(damaged, original) for every sentence of the split."""
    if not 0.0 <= deletion_ratio < 1.0:
        raise ValueError(f"deletion_ratio must be in [0, 1); got {deletion_ratio!r}")
    return [{"damaged": damage(text, rng, deletion_ratio), "original": text}
            for group in groups for text in group.sentences]


BUILDERS: dict[str, Callable[..., list[Row]]] = {
    "sentence-label": sentence_label,
    "sentence": sentence,
    "pair": pair,
    "triplet": triplet,
    "n-tuple": n_tuple,
    "pair-score": pair_score,
    "pair-label": pair_label,
    "nli": nli,
    "denoising": denoising,
}
"""Builders of the formats made from text alone (the teacher formats live in teacher.py)."""
