"""What a student should measure about embeddings, computed from the embeddings themselves.

Every function takes arrays (NumPy or torch, shape (n, dim)) and returns plain floats, so it
works for a model's output, for precomputed vectors and for the 2-D playground alike. Similarity
is cosine throughout.

- ``retrieval_metrics``: recall@k and MRR of queries against documents;
- ``spearman``: rank correlation of pair similarities with gold scores (STS);
- ``knn_accuracy``: does a point's neighbourhood share its label;
- ``triplet_accuracy``: is the positive closer to the anchor than the negative;
- ``alignment`` and ``uniformity``: Wang and Isola (2020), "Understanding Contrastive
  Representation Learning through Alignment and Uniformity on the Hypersphere": positives close
  (alignment low) while all points spread over the sphere (uniformity low);
- ``matryoshka_curve``: any of the above on the first d dimensions only, for several d.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def _unit(x: object) -> np.ndarray:
    """Rows scaled to unit length, as float64 NumPy (accepts torch tensors and lists)."""
    array = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D (n, dim) array of embeddings; got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms == 0, 1.0, norms)


def cosine_matrix(first: object, second: object) -> np.ndarray:
    """Cosine similarity of every row of ``first`` with every row of ``second``: (n, m)."""
    return _unit(first) @ _unit(second).T


def retrieval_metrics(
    queries: object,
    documents: object,
    relevant: Sequence[int] | Sequence[set[int]],
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@k for each k and mean reciprocal rank, ranking documents by cosine similarity.

    ``relevant[i]`` is the index of query i's relevant document, or a set of indices.
    recall@k is the share of a query's relevant documents found in its top k, averaged over
    queries; MRR averages 1 / rank of the first relevant document (rank 1 = best).
    """
    similarity = cosine_matrix(queries, documents)  # (queries, documents)
    if len(relevant) != len(similarity):
        raise ValueError(f"got {len(similarity)} queries but {len(relevant)} relevance entries")
    relevant_sets = [{item} if isinstance(item, (int, np.integer)) else set(item)
                     for item in relevant]
    # Stable sort of negated similarities: ties keep document order, so results are repeatable.
    ranking = np.argsort(-similarity, axis=1, kind="stable")  # (queries, documents)
    result = {}
    for k in ks:
        hits = [len(relevant_set & set(ranking[row, :k].tolist())) / len(relevant_set)
                for row, relevant_set in enumerate(relevant_sets)]
        result[f"recall@{k}"] = float(np.mean(hits))
    reciprocal = []
    for row, relevant_set in enumerate(relevant_sets):
        first_hit = next(rank for rank, document in enumerate(ranking[row], start=1)
                         if document in relevant_set)
        reciprocal.append(1.0 / first_hit)
    result["mrr"] = float(np.mean(reciprocal))
    return result


def spearman(first: object, second: object, scores: Sequence[float]) -> float:
    """Spearman rank correlation between cos(first[i], second[i]) and the gold scores."""
    from scipy.stats import spearmanr

    similarities = (_unit(first) * _unit(second)).sum(axis=1)
    return float(spearmanr(similarities, np.asarray(scores, dtype=np.float64)).statistic)


def knn_accuracy(
    embeddings: object, labels: Sequence[int], k: int = 5, groups: Sequence[int] | None = None
) -> float:
    """Share of points whose k nearest neighbours (cosine, majority vote) have their label.

    A point never counts as its own neighbour. With ``groups``, neighbours from the point's own
    group are excluded too: paraphrases share words, so even a bag of words finds them, and
    leaving them out measures whether the model knows the *label* (e.g. the topic).
    Ties in the vote go to the smallest label.
    """
    labels = np.asarray(labels)
    similarity = cosine_matrix(embeddings, embeddings)  # (n, n)
    excluded = (np.eye(len(labels), dtype=bool) if groups is None
                else np.asarray(groups)[:, None] == np.asarray(groups)[None, :])
    similarity[excluded] = -np.inf
    neighbours = np.argsort(-similarity, axis=1, kind="stable")[:, :k]  # (n, k)
    votes = labels[neighbours]
    predicted = np.array([np.bincount(row, minlength=labels.max() + 1).argmax() for row in votes])
    return float((predicted == labels).mean())


def triplet_accuracy(anchors: object, positives: object, negatives: object) -> float:
    """Share of triplets where cos(anchor, positive) > cos(anchor, negative)."""
    anchors, positives, negatives = _unit(anchors), _unit(positives), _unit(negatives)
    return float(((anchors * positives).sum(1) > (anchors * negatives).sum(1)).mean())


def alignment(first: object, second: object, alpha: float = 2.0) -> float:
    """Mean ||x - y||^alpha over positive pairs of unit vectors: lower = positives closer."""
    difference = _unit(first) - _unit(second)
    return float((np.linalg.norm(difference, axis=1) ** alpha).mean())


def uniformity(embeddings: object, t: float = 2.0) -> float:
    """log mean over pairs i < j of exp(-t ||x_i - x_j||²), unit vectors: lower = more spread."""
    unit = _unit(embeddings)
    squared = np.clip(2.0 - 2.0 * unit @ unit.T, 0.0, None)  # ||x - y||² of unit vectors
    upper = np.triu_indices(len(unit), k=1)
    return float(np.log(np.exp(-t * squared[upper]).mean()))


def matryoshka_curve(
    metric: Callable[..., float], columns: Sequence[object], dims: Sequence[int], **options: object
) -> dict[int, float]:
    """``metric`` computed on the first ``d`` dimensions of every column, for each d in dims.

    Example: ``matryoshka_curve(spearman, [first, second], [384, 128, 32], scores=scores)``.
    """
    arrays = [np.asarray(column.detach().cpu() if hasattr(column, "detach") else column)
              for column in columns]
    full = arrays[0].shape[1]
    bad = [dim for dim in dims if not 0 < dim <= full]
    if bad:
        raise ValueError(f"dims must be between 1 and the embedding size {full}; got {bad}")
    return {int(dim): metric(*[array[:, :dim] for array in arrays], **options) for dim in dims}
