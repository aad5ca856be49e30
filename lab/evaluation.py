"""What the lab measures about a model while it trains: a fixed probe set plus the data's own task.

* The probe: paraphrases of the teaching corpus labelled by topic: those of the eval meaning
  groups (never trained on; about 100 sentences, 12 topics) and as many from training groups.
  Every run embeds the same probe, so maps and numbers of different runs and losses compare. On
  each half: topic kNN accuracy (neighbours from the sentence's own meaning group excluded, see
  :func:`lab.metrics.knn_accuracy`), alignment of paraphrases and uniformity (Wang and Isola
  2020). Metrics of the training half carry the prefix ``train_``: the gap between the halves
  is overfitting, made visible.
* The task of the training data's format, on its eval split: retrieval (recall@1, MRR) for
  anchor/positive data, triplet accuracy where there are negatives, Spearman for scored pairs,
  ROC AUC for 0/1-labelled pairs, cosine to the teacher for distillation targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import datasets
import numpy as np

from lab.data import FORMATS, load_corpus, split_groups, topics
from lab.metrics import (
    alignment,
    knn_accuracy,
    retrieval_metrics,
    spearman,
    triplet_accuracy,
    uniformity,
)

__all__ = ["EVAL_ROWS", "Probe", "default_probe", "evaluate", "task_metrics"]

EVAL_ROWS = 200
"""At most this many eval rows are embedded per evaluation (keeps evaluation a fraction of a
training step budget on a CPU)."""


@dataclass(frozen=True)
class Probe:
    """Fixed sentences embedded at every snapshot: texts, topic labels, meaning groups, and
    whether each was in the training split (``seen``)."""

    texts: tuple[str, ...]
    labels: tuple[int, ...]
    label_names: tuple[str, ...]
    groups: tuple[int, ...]
    seen: tuple[bool, ...]


@cache
def default_probe(seed: int = 0) -> Probe:
    """Paraphrases of the eval meaning groups (split ``seed``) and of as many training groups
    (the first of each topic's), labelled by topic."""
    names = topics()
    splits = split_groups(seed=seed)
    evaluation = splits["eval"]
    per_topic = {topic: sum(group.topic == topic for group in evaluation) for topic in names}
    training = [group for topic in names
                for group in [g for g in splits["train"] if g.topic == topic][:per_topic[topic]]]
    index = {group.group: number for number, group in enumerate(load_corpus())}
    rows = [(text, names.index(group.topic), index[group.group], seen)
            for seen, chosen in ((False, evaluation), (True, training))
            for group in chosen for text in group.paraphrases]
    texts, labels, groups, seen = zip(*rows, strict=True)
    return Probe(tuple(texts), tuple(labels), names, tuple(groups), tuple(seen))


def probe_metrics(embeddings: np.ndarray, probe: Probe) -> dict[str, float]:
    """Topic kNN accuracy, paraphrase alignment and uniformity of (n, dim) probe embeddings,
    for the unseen half and (prefixed ``train_``) the seen half."""
    result = {}
    for prefix, seen in (("", False), ("train_", True)):
        rows = np.flatnonzero(np.asarray(probe.seen) == seen)
        groups = np.asarray(probe.groups)[rows]
        labels = np.asarray(probe.labels)[rows]
        part = embeddings[rows]
        # Alignment over paraphrase pairs: consecutive sentences of the same meaning group.
        same = np.flatnonzero(groups[:-1] == groups[1:])
        result[f"{prefix}topic_knn_accuracy"] = knn_accuracy(part, labels, k=5, groups=groups)
        result[f"{prefix}alignment"] = alignment(part[same], part[same + 1])
        result[f"{prefix}uniformity"] = uniformity(part)
    return result


def _encode(model, texts: Sequence[str]) -> np.ndarray:
    return model.encode(list(texts), batch_size=64, convert_to_numpy=True,
                        show_progress_bar=False)


def task_metrics(model, fmt: str, rows: datasets.Dataset) -> dict[str, float]:
    """The metrics that fit data format ``fmt``, on (at most ``EVAL_ROWS``) ``rows``."""
    if len(rows) == 0:
        return {}
    rows = rows.select(range(min(len(rows), EVAL_ROWS)))
    spec = FORMATS[fmt]
    columns = [name for name in rows.column_names if name != spec.label_column]
    if fmt in ("pair", "triplet", "n-tuple", "teacher-margin", "teacher-scores", "denoising"):
        queries = _encode(model, rows[columns[0]])
        documents = _encode(model, rows[columns[1]])
        result = retrieval_metrics(queries, documents, list(range(len(rows))), ks=(1, 5))
        if len(columns) >= 3:
            negatives = _encode(model, rows[columns[2]])
            result["triplet_accuracy"] = triplet_accuracy(queries, documents, negatives)
        return result
    if fmt in ("pair-score", "pair-label"):
        first, second = _encode(model, rows[columns[0]]), _encode(model, rows[columns[1]])
        labels = np.asarray(rows[spec.label_column], dtype=float)
        if fmt == "pair-score":
            return {"spearman": spearman(first, second, labels)}
        from sklearn.metrics import roc_auc_score

        if len(np.unique(labels)) < 2:
            return {}
        cosine = np.sum(_unit(first) * _unit(second), axis=1)
        return {"pair_auc": float(roc_auc_score(labels, cosine))}
    if fmt == "teacher-embedding":
        student = _encode(model, rows[columns[0]])
        teacher = np.asarray(rows[spec.label_column], dtype=float)
        if teacher.shape[1] != student.shape[1]:
            return {}
        return {"teacher_cosine": float(np.mean(np.sum(_unit(student) * _unit(teacher), axis=1)))}
    return {}  # sentence, sentence-label, nli: the probe metrics say it


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def evaluate(model, probe: Probe, fmt: str, eval_rows: datasets.Dataset | None
             ) -> tuple[dict[str, float], np.ndarray]:
    """All metrics of ``model`` and its (n, dim) probe embeddings (float32, for snapshots)."""
    embeddings = _encode(model, probe.texts)
    metrics = probe_metrics(embeddings, probe)
    if eval_rows is not None:
        metrics.update(task_metrics(model, fmt, eval_rows))
    return metrics, embeddings.astype(np.float32)
