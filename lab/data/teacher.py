"""Distillation targets: what a teacher model says about the corpus.

The teacher (all-MiniLM-L6-v2 by default) embeds every sentence of the corpus once; the result
is cached in the lab cache, keyed by teacher and corpus content, so later calls are instant.
Scores are dot products of the teacher's embeddings; MiniLM's embeddings are unit-normalised, so
for it they are cosine similarities (and match MarginMSELoss's default dot-product similarity).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence

import numpy as np

from lab.data.builders import Row, n_tuple, triplet
from lab.data.corpus import CORPUS_PATH, MeaningGroup, load_corpus


class TeacherEmbeddings:
    """Lookup of a teacher's embedding for every sentence of the corpus."""

    def __init__(self, teacher: str = "minilm") -> None:
        self.teacher = teacher
        texts = sorted({text for group in load_corpus() for text in group.sentences})
        self.index = {text: row for row, text in enumerate(texts)}
        self.vectors = _cached_embeddings(teacher, texts)  # (n_texts, dim) float32

    def embedding(self, text: str) -> np.ndarray:
        """The teacher's embedding of one corpus sentence, shape (dim,)."""
        return self.vectors[self.index[text]]

    def score(self, first: str, second: str) -> float:
        """Dot product of the teacher's embeddings of two corpus sentences."""
        return float(self.embedding(first) @ self.embedding(second))


def _cached_embeddings(teacher: str, texts: list[str]) -> np.ndarray:
    from lab.models import cache_dir, load_model

    digest = hashlib.sha256(CORPUS_PATH.read_bytes()).hexdigest()[:16]
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", teacher)
    path = cache_dir() / f"teacher-{safe_name}-{digest}.npy"
    if path.exists():
        return np.load(path)
    model = load_model(teacher)
    vectors = model.encode(texts, batch_size=64, convert_to_numpy=True).astype(np.float32)
    temporary = path.with_suffix(f".{random.getrandbits(32):08x}.tmp.npy")
    np.save(temporary, vectors)
    temporary.replace(path)  # atomic: concurrent processes never read half a file
    return vectors


def teacher_embedding(
    groups: Sequence[MeaningGroup], rng: random.Random, teacher: str = "minilm"
) -> list[Row]:
    """(sentence, label = the teacher's embedding of the sentence)."""
    lookup = TeacherEmbeddings(teacher)
    return [
        {"sentence": text, "label": lookup.embedding(text).tolist()}
        for group in groups
        for text in group.paraphrases + group.near_misses
    ]


def teacher_margin(
    groups: Sequence[MeaningGroup], rng: random.Random, teacher: str = "minilm",
    negatives: str = "mixed",
) -> list[Row]:
    """(query, positive, negative, label = teacher's s(q, p) - s(q, n)) from the triplets."""
    lookup = TeacherEmbeddings(teacher)
    rows = []
    for row in triplet(groups, rng, negatives=negatives):
        query, positive, negative = row["anchor"], row["positive"], row["negative"]
        margin = lookup.score(query, positive) - lookup.score(query, negative)
        rows.append({"query": query, "positive": positive, "negative": negative, "label": margin})
    return rows


def teacher_scores(
    groups: Sequence[MeaningGroup], rng: random.Random, teacher: str = "minilm",
    num_negatives: int = 3,
) -> list[Row]:
    """(query, positive, negative_1..n, label = teacher's [s(q, p), s(q, n_1), ...])."""
    lookup = TeacherEmbeddings(teacher)
    rows = []
    for row in n_tuple(groups, rng, num_negatives=num_negatives):
        query = row.pop("anchor")
        documents = list(row.values())  # positive, negative_1, ..., negative_n in order
        scored: Row = {"query": query, **row}
        scored["label"] = [lookup.score(query, document) for document in documents]
        rows.append(scored)
    return rows


TEACHER_BUILDERS = {
    "teacher-embedding": teacher_embedding,
    "teacher-margin": teacher_margin,
    "teacher-scores": teacher_scores,
}
"""Builders of the distillation formats."""
