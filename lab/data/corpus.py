"""The lab's own teaching corpus: topics made of meaning groups.

One line of ``teaching_corpus.jsonl`` is one *meaning group*: several paraphrases that say the
same thing, near-miss sentences on the same topic that reuse its words but mean something else
(the hard negatives), and three written NLI hypotheses about its first paraphrase. Every data
format of the lab is derived from these groups; see ``README.md`` beside this file.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CORPUS_PATH = Path(__file__).with_name("teaching_corpus.jsonl")


@dataclass(frozen=True)
class MeaningGroup:
    """Sentences that share one meaning, plus its near misses and NLI hypotheses."""

    topic: str
    group: str
    paraphrases: tuple[str, ...]
    near_misses: tuple[str, ...]
    entailment: str
    neutral: str
    contradiction: str

    @property
    def sentences(self) -> tuple[str, ...]:
        """Every sentence of the group: paraphrases, near misses, then the hypotheses."""
        return self.paraphrases + self.near_misses + (
            self.entailment, self.neutral, self.contradiction)


@cache
def load_corpus(path: Path = CORPUS_PATH) -> tuple[MeaningGroup, ...]:
    """All meaning groups of the corpus, in file order (grouped by topic)."""
    groups = []
    with open(path, encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                groups.append(MeaningGroup(
                    topic=row["topic"],
                    group=row["group"],
                    paraphrases=tuple(row["paraphrases"]),
                    near_misses=tuple(row["near_misses"]),
                    entailment=row["entailment"],
                    neutral=row["neutral"],
                    contradiction=row["contradiction"],
                ))
            except KeyError as missing:
                raise ValueError(f"{path}:{line_number}: meaning group lacks {missing}") from None
    return tuple(groups)


def topics() -> tuple[str, ...]:
    """Topic names in corpus order; a topic's index is its class label."""
    return tuple(dict.fromkeys(group.topic for group in load_corpus()))


def split_groups(
    seed: int = 0, eval_fraction: float = 0.2
) -> dict[str, tuple[MeaningGroup, ...]]:
    """Split the meaning groups into "train" and "eval", per topic, seeded.

    Whole groups go to one side, so no meaning (and none of its near misses) leaks from train
    into eval. Each topic sends ``round(eval_fraction * groups)`` groups to eval, at least one
    when ``eval_fraction > 0``.
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1); got {eval_fraction!r}")
    rng = random.Random(seed)
    train: list[MeaningGroup] = []
    evaluation: list[MeaningGroup] = []
    for topic in topics():
        members = [group for group in load_corpus() if group.topic == topic]
        rng.shuffle(members)
        n_eval = max(1, round(eval_fraction * len(members))) if eval_fraction > 0 else 0
        evaluation.extend(members[:n_eval])
        train.extend(members[n_eval:])
    return {"train": tuple(train), "eval": tuple(evaluation)}
