"""lab.metrics against small cases worked out by hand."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from lab.metrics import (
    alignment,
    knn_accuracy,
    layer_curve,
    layer_embeddings,
    matryoshka_curve,
    retrieval_metrics,
    spearman,
    triplet_accuracy,
    uniformity,
)

# Unit vectors at angles 0°, 90°, 180° and 270°.
EAST, NORTH, WEST, SOUTH = [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]


def test_retrieval_recall_and_mrr_by_hand():
    documents = np.array([EAST, NORTH, WEST])
    # Query 0 points east-north-east: ranks east (1st), north (2nd), west (3rd); relevant: north.
    # Query 1 points west: ranks west, then north and east tie (document order breaks it).
    queries = np.array([[1.0, 0.5], WEST])
    result = retrieval_metrics(queries, documents, relevant=[1, {0, 2}], ks=(1, 2))
    # recall@1: query 0 misses (0), query 1 finds 1 of its 2 relevant documents (0.5).
    assert result["recall@1"] == pytest.approx(0.25)
    # recall@2: query 0 finds north (1), query 1 finds west plus north, so 1 of 2 (0.5).
    assert result["recall@2"] == pytest.approx(0.75)
    # MRR: query 0 first hit at rank 2 (1/2), query 1 at rank 1 (1).
    assert result["mrr"] == pytest.approx(0.75)


def test_retrieval_checks_lengths():
    with pytest.raises(ValueError, match="2 queries but 1"):
        retrieval_metrics(np.array([EAST, NORTH]), np.array([EAST]), relevant=[0])


def test_spearman_is_one_for_the_same_order_and_minus_one_for_the_reverse():
    first = np.array([EAST, EAST, EAST])
    second = np.array([EAST, [1.0, 1.0], NORTH])  # cosines 1, 0.707, 0
    assert spearman(first, second, [0.9, 0.5, 0.1]) == pytest.approx(1.0)
    assert spearman(first, second, [0.1, 0.5, 0.9]) == pytest.approx(-1.0)


def test_knn_accuracy_with_and_without_excluded_groups():
    embeddings = np.array([[1, 0.0], [1, 0.01], [1, 0.02], [0, 1.0], [0.01, 1], [0.02, 1]])
    labels = [0, 0, 0, 1, 1, 1]
    assert knn_accuracy(embeddings, labels, k=1) == 1.0
    # Excluding each point's own group (0 and 1 share one, 3 and 4 another) still leaves a
    # same-label neighbour for everyone.
    assert knn_accuracy(embeddings, labels, k=1, groups=[0, 0, 1, 2, 2, 3]) == 1.0
    # Labels that contradict the geometry: every 1-NN votes wrong.
    assert knn_accuracy(embeddings, [1, 1, 0, 0, 0, 1], k=1, groups=[0, 0, 1, 2, 2, 3]) == 0.0


def test_triplet_accuracy_counts_triplets_with_the_positive_closer():
    anchors = np.array([EAST, EAST, NORTH, NORTH])
    positives = np.array([[1.0, 0.1], NORTH, NORTH, WEST])
    negatives = np.array([NORTH, [1.0, 0.1], SOUTH, [0.1, 1.0]])
    assert triplet_accuracy(anchors, positives, negatives) == 0.5


def test_alignment_is_zero_for_identical_pairs_and_four_for_opposite_ones():
    assert alignment(np.array([EAST, NORTH]), np.array([[2.0, 0.0], [0.0, 3.0]])) == 0.0
    # ||east - west||² = 4; ||north - east||² = 2 -> mean 3.
    assert alignment(np.array([EAST, NORTH]), np.array([WEST, EAST])) == pytest.approx(3.0)


def test_uniformity_by_hand_for_four_compass_points():
    # Pairs: 4 at 90° (squared distance 2) and 2 opposite (squared distance 4).
    expected = math.log((4 * math.exp(-2 * 2) + 2 * math.exp(-2 * 4)) / 6)
    assert uniformity(np.array([EAST, NORTH, WEST, SOUTH])) == pytest.approx(expected)
    # Collapsed points are the least uniform possible: log(mean(exp(0))) = 0.
    assert uniformity(np.array([EAST, EAST, EAST])) == pytest.approx(0.0)


def test_metrics_accept_torch_tensors():
    assert triplet_accuracy(torch.tensor([EAST]), torch.tensor([EAST]), torch.tensor([WEST])) == 1


def test_matryoshka_curve_truncates_every_column():
    # Agreement lives only in the first dimension; the second dimension disagrees strongly.
    anchors = np.array([[1.0, 5.0], [1.0, -5.0]])
    positives = np.array([[1.0, -5.0], [1.0, 5.0]])
    negatives = np.array([[-1.0, 5.0], [-1.0, -5.0]])
    curve = matryoshka_curve(triplet_accuracy, [anchors, positives, negatives], dims=[2, 1])
    assert curve == {2: 0.0, 1: 1.0}
    with pytest.raises(ValueError, match="between 1 and the embedding size 2"):
        matryoshka_curve(triplet_accuracy, [anchors, positives, negatives], dims=[3])


def test_non_matrix_input_is_refused():
    with pytest.raises(ValueError, match=r"2-D \(n, dim\)"):
        uniformity(np.zeros(3))


# --------------------------------------------------------------------------- per-layer metrics

# Different lengths, so batches are padded and mean pooling has to respect the attention mask.
SENTENCES = ["the cat sleeps", "a dog runs across the wide green park after the ball",
             "stocks fell", "the central bank raised interest rates again this quarter",
             "rain tomorrow", "a cold front brings snow to the northern hills tonight"]


@pytest.fixture(scope="module")
def tiny_bert():
    from lab.models import load_model

    return load_model("tiny-bert", device="cpu")  # 2 layers, hidden 128, dropout 0.1


def test_layer_embeddings_match_the_model_cut_after_each_layer(tiny_bert):
    tiny_bert.train()  # dropout on: layer_embeddings must switch it off, then restore the mode
    layers = layer_embeddings(tiny_bert, SENTENCES, batch_size=4)
    assert tiny_bert.training
    assert sorted(layers) == [1, 2]
    assert layers[1].shape == layers[2].shape == (len(SENTENCES), 128)
    # The last layer, mean-pooled, is exactly what the model itself encodes.
    np.testing.assert_allclose(layers[2], tiny_bert.encode(SENTENCES), atol=1e-5)
    # Layer 1 is what a copy of the model with its second layer removed encodes.
    one_layer = copy.deepcopy(tiny_bert)
    encoder = one_layer[0].auto_model.encoder
    encoder.layer = encoder.layer[:1]
    np.testing.assert_allclose(layers[1], one_layer.encode(SENTENCES), atol=1e-5)
    assert np.abs(layers[1] - layers[2]).max() > 1e-2
    # Padding does not leak into the mean: one text per batch gives the same vectors.
    alone = layer_embeddings(tiny_bert, SENTENCES, batch_size=1)
    np.testing.assert_allclose(alone[1], layers[1], atol=1e-5)


def test_layer_curve_by_hand_with_duplicated_texts(tiny_bert):
    texts = SENTENCES[:4] * 2  # every text twice: its nearest neighbour is its own copy
    # Copies share a label: every 1-NN vote is right, at every layer, whatever the weights.
    assert layer_curve(tiny_bert, texts, [0, 1, 2, 3] * 2, k=1) == {1: 1.0, 2: 1.0}
    # Copies get different labels (0 <-> 1, 2 <-> 3): every vote is wrong.
    assert layer_curve(tiny_bert, texts, [0, 0, 2, 2, 1, 1, 3, 3], k=1) == {1: 0.0, 2: 0.0}
    # groups exclude the copies, so the vote falls to other texts: it is knn_accuracy's rule.
    groups = [0, 1, 2, 3] * 2
    labels = [0, 0, 1, 1] * 2
    layers = layer_embeddings(tiny_bert, texts)
    assert layer_curve(tiny_bert, texts, labels, k=1, groups=groups) == {
        layer: knn_accuracy(layers[layer], labels, k=1, groups=groups) for layer in (1, 2)}
    with pytest.raises(ValueError, match="8 texts but 3 labels"):
        layer_curve(tiny_bert, texts, [0, 1, 2])


def test_layer_curve_refuses_models_without_transformer_layers():
    from lab.models import load_model

    static = load_model("tiny", device="cpu")
    with pytest.raises(ValueError, match=r"StaticEmbedding.*no transformer layers") as error:
        layer_curve(static, ["a", "b"], [0, 1])
    assert "tiny-bert" in str(error.value) and "minilm" in str(error.value)
    with pytest.raises(ValueError, match="got list"):
        layer_embeddings([1, 2], ["a"])
