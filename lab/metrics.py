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
- ``matryoshka_curve``: any of the above on the first d dimensions only, for several d;
- ``layer_embeddings`` and ``layer_curve``: a transformer's mean-pooled output after each of its
  layers, and the kNN accuracy of each (how much does each layer add?).
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


def _layered_transformer(model: object) -> object:
    """The Hugging Face model inside ``model``'s first module, or a ValueError saying why not."""
    import torch

    modules = list(model.children()) if isinstance(model, torch.nn.Module) else []
    first = modules[0] if modules else None
    hf_model = getattr(first, "auto_model", None)
    layers = getattr(getattr(hf_model, "config", None), "num_hidden_layers", None)
    if hf_model is None or not layers:
        got = type(model).__name__ + (f" whose first module is {type(first).__name__}"
                                      if first is not None else "")
        raise ValueError(
            f"per-layer metrics need a SentenceTransformer whose first module is a Hugging Face "
            f"transformer with layers (the lab's 'tiny-bert' or 'minilm', or a BERT-like Hub "
            f"model); got {got}, which has no transformer layers (the 'tiny' model is static "
            f"token embeddings)."
        )
    return first


def layer_embeddings(
    model: object, texts: Sequence[str], *, batch_size: int = 64
) -> dict[int, np.ndarray]:
    """Mean-pooled embeddings after each transformer layer: {L: (n, hidden)}, L = 1..layers.

    ``model`` is a SentenceTransformer whose first module wraps a Hugging Face transformer. Layer
    L is the mean over real (unpadded) tokens of the hidden states after the first L layers, so
    for a model that pools by mean the last entry equals ``model.encode(texts)`` (before any
    normalisation module).
    """
    import inspect

    import torch

    transformer = _layered_transformer(model)
    hf_model = transformer.auto_model
    accepted = inspect.signature(hf_model.forward).parameters  # the inputs this model takes
    device = next(hf_model.parameters()).device
    # Recent sentence-transformers call tokenisation "preprocess"; older versions "tokenize".
    prepare = getattr(transformer, "preprocess", None) or transformer.tokenize
    texts = list(texts)
    pooled: dict[int, list[np.ndarray]] = {}
    was_training = model.training
    model.eval()  # no dropout: the same text always gets the same vector
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                features = prepare(texts[start:start + batch_size])
                inputs = {name: value.to(device) for name, value in features.items()
                          if name in accepted and isinstance(value, torch.Tensor)}
                output = hf_model(**inputs, output_hidden_states=True, return_dict=True)
                # layers + 1 tensors of (batch, tokens, hidden); entry 0 is the input embeddings.
                hidden_states = output.hidden_states
                mask = inputs["attention_mask"].unsqueeze(-1)  # (batch, tokens, 1): 1 = real
                mask = mask.to(hidden_states[0].dtype)
                count = mask.sum(dim=1).clamp(min=1)  # (batch, 1) real tokens per text
                for layer in range(1, len(hidden_states)):
                    mean = (hidden_states[layer] * mask).sum(dim=1) / count  # (batch, hidden)
                    pooled.setdefault(layer, []).append(mean.float().cpu().numpy())
    finally:
        model.train(was_training)
    return {layer: np.concatenate(parts) for layer, parts in pooled.items()}


def layer_curve(
    model: object,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    k: int = 5,
    groups: Sequence[int] | None = None,
) -> dict[int, float]:
    """kNN accuracy of the mean-pooled output of each layer: {L: accuracy}, L = 1..layers.

    Shows how much each transformer layer adds (AdaptiveLayerLoss trains early layers to be
    useful on their own). ``k`` and ``groups`` are passed to ``knn_accuracy``. Raises a
    ValueError for models without transformer layers, such as the lab's ``tiny``.
    """
    if len(texts) != len(labels):
        raise ValueError(f"got {len(texts)} texts but {len(labels)} labels")
    return {layer: knn_accuracy(embeddings, labels, k=k, groups=groups)
            for layer, embeddings in layer_embeddings(model, texts).items()}
