"""losses/mining.py against plain Python loops over every (anchor, positive, negative) triplet.

Small random batches (pytorch-metric-learning style): random labels, random distance matrices,
and integer-valued ones full of exact ties, so tie-breaking (lowest index) is checked too.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from losses import mining
from losses.batch_all_triplet import BatchAllTripletLoss
from losses.batch_hard_soft_margin_triplet import BatchHardSoftMarginTripletLoss
from losses.batch_hard_triplet import BatchHardTripletLoss
from losses.batch_semi_hard_triplet import BatchSemiHardTripletLoss
from losses.mining import (
    MinedTriplets,
    all_triplet_terms,
    anchor_negative_mask,
    anchor_positive_mask,
    batch_hard_terms,
    count_valid_triplets,
    hardest_positive_and_negative,
    label_problem,
    mine,
    semi_hard_negatives,
    semi_hard_terms,
    valid_triplet_mask,
)

SEEDS = range(12)
DEGENERATE = {100: [0, 0, 0, 0, 0], 101: [0, 1, 2, 3], 102: [5], 103: [1, 2], 104: [4, 4]}
MARGINS = [0.0, 0.5, 2.0]


def random_batch(seed: int, ties: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, B) symmetric non-negative distances with a zero diagonal, and (B,) labels: random
    (4 to 10 rows, 2 to 4 labels), or for the ``DEGENERATE`` seeds the batches without a valid
    triplet (one class, all labels distinct, one row, two rows)."""
    generator = torch.Generator().manual_seed(seed)
    if seed in DEGENERATE:
        labels = torch.tensor(DEGENERATE[seed])
    else:
        size = int(torch.randint(4, 11, (1,), generator=generator))
        labels = torch.randint(0, int(torch.randint(2, 5, (1,), generator=generator)), (size,),
                               generator=generator)
    size = len(labels)
    if ties:  # few distinct values: many exact ties, including ties with the margin
        values = torch.randint(0, 4, (size, size), generator=generator).double() / 2
    else:
        values = torch.rand(size, size, generator=generator, dtype=torch.float64) * 3
    distances = torch.triu(values, diagonal=1)
    return distances + distances.T, labels


BATCHES = [(seed, ties) for seed in [*SEEDS, *DEGENERATE] for ties in (False, True)]


def is_positive(labels, a, p) -> bool:
    return bool(labels[a] == labels[p]) and a != p


def is_negative(labels, a, n) -> bool:
    return bool(labels[a] != labels[n])


def valid_triplets(labels) -> list[tuple[int, int, int]]:
    size = len(labels)
    return [(a, p, n) for a, p, n in itertools.product(range(size), repeat=3)
            if is_positive(labels, a, p) and is_negative(labels, a, n)]


# ------------------------------------------------------------------------------------------ masks
@pytest.mark.parametrize(("seed", "ties"), BATCHES)
def test_masks_and_counts_match_loops(seed, ties):
    _, labels = random_batch(seed, ties)
    size = len(labels)
    positives, negatives = anchor_positive_mask(labels), anchor_negative_mask(labels)
    triplets = valid_triplet_mask(labels)
    for a, j in itertools.product(range(size), repeat=2):
        assert bool(positives[a, j]) == is_positive(labels, a, j)
        assert bool(negatives[a, j]) == is_negative(labels, a, j)
    assert sorted(map(tuple, triplets.nonzero().tolist())) == valid_triplets(labels)
    assert count_valid_triplets(labels) == len(valid_triplets(labels))


def test_label_problem_names_one_class_and_all_distinct_batches():
    assert label_problem(torch.tensor([2, 2, 2]))[0] == "single-class"
    assert label_problem(torch.tensor([7]))[0] == "single-class"
    assert label_problem(torch.tensor([0, 1, 2]))[0] == "no-positives"
    assert label_problem(torch.tensor([0, 1, 1])) is None


# ------------------------------------------------------------------------------------ all triplets
@pytest.mark.parametrize("margin", MARGINS)
@pytest.mark.parametrize(("seed", "ties"), BATCHES)
def test_all_triplets_match_loops(seed, ties, margin):
    distances, labels = random_batch(seed, ties)
    leaf = distances.clone().requires_grad_(True)
    total, record = all_triplet_terms(leaf, labels, margin)

    naive_leaf = distances.clone().requires_grad_(True)
    terms = {t: ((naive_leaf[t[0], t[1]] - naive_leaf[t[0], t[2]]) + margin).clamp(min=0)
             for t in valid_triplets(labels)}
    naive_total = sum(terms.values(), torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close(total, naive_total)
    assert record.num_valid == len(terms)
    assert record.num_active == sum(1 for term in terms.values() if term > 1e-16)
    assert record.as_tuples() == list(terms)  # (anchor, positive, negative) order
    torch.testing.assert_close(record.losses, torch.stack(list(terms.values())).detach()
                               if terms else torch.zeros(0, dtype=torch.float64))
    # Gradient with respect to the distances: slope 1 for every term >= 0 (also exactly 0).
    if total.requires_grad:
        total.backward()
        if naive_total.requires_grad:
            naive_total.backward()
        expected = naive_leaf.grad if naive_leaf.grad is not None else torch.zeros_like(leaf)
        torch.testing.assert_close(leaf.grad, expected)


@pytest.mark.parametrize(("seed", "ties"), BATCHES[:8])
def test_all_triplets_bisection_fallback_matches_loops(seed, ties, monkeypatch):
    # Force the fast guess to be wrong, so the exact bisection has to settle every pair.
    distances, labels = random_batch(seed, ties)
    expected_total, expected = all_triplet_terms(distances, labels, 0.5)
    monkeypatch.setattr(mining.torch, "searchsorted",
                        lambda sorted_sequence, values, right: torch.zeros_like(values,
                                                                                dtype=torch.long))
    total, record = all_triplet_terms(distances, labels, 0.5)
    torch.testing.assert_close(total, expected_total)
    assert (record.num_valid, record.num_active) == (expected.num_valid, expected.num_active)
    assert record.as_tuples() == expected.as_tuples()


def test_all_triplets_are_counted_but_not_listed_above_the_limit():
    distances, labels = random_batch(3)
    full = all_triplet_terms(distances, labels, 1.0)[1]
    assert full.num_valid > 2
    counted = all_triplet_terms(distances, labels, 1.0, listing_limit=full.num_valid - 1)[1]
    assert counted.anchor is None and counted.losses is None and not counted.is_listed
    assert (counted.num_valid, counted.num_active) == (full.num_valid, full.num_active)


# -------------------------------------------------------------------------------------- batch-hard
def first_best(values: list[tuple[float, int]], largest: bool) -> int:
    """Index of the largest (or smallest) value; the lowest index among ties."""
    best = max(v for v, _ in values) if largest else min(v for v, _ in values)
    return next(i for v, i in values if v == best)


def numbered(values: list[torch.Tensor]) -> list[tuple[float, int]]:
    return [(float(value.detach()), index) for index, value in enumerate(values)]


@pytest.mark.parametrize(("seed", "ties"), BATCHES)
def test_hardest_positive_and_negative_match_loops(seed, ties):
    distances, labels = random_batch(seed, ties)
    positive, negative = hardest_positive_and_negative(distances, labels)
    for a in range(len(labels)):
        positives = [(float(distances[a, p]), p) for p in range(len(labels))
                     if is_positive(labels, a, p)]
        negatives = [(float(distances[a, n]), n) for n in range(len(labels))
                     if is_negative(labels, a, n)]
        assert positive[a] == (first_best(positives, largest=True) if positives else -1)
        assert negative[a] == (first_best(negatives, largest=False) if negatives else -1)


@pytest.mark.parametrize("margin", [*MARGINS, None])
@pytest.mark.parametrize(("seed", "ties"), BATCHES)
def test_batch_hard_terms_match_loops(seed, ties, margin):
    distances, labels = random_batch(seed, ties)
    leaf = distances.clone().requires_grad_(True)
    terms, record = batch_hard_terms(leaf, labels, margin)

    naive_leaf = distances.clone().requires_grad_(True)
    size, zero = len(labels), torch.zeros((), dtype=torch.float64)
    naive_terms, triplets = [], []
    for a in range(size):
        # The reference's definitions, entry by entry: non-positives count as 0 in the maximum;
        # non-negatives are raised by the row's largest distance in the minimum.
        row_max = naive_leaf[a, first_best([(float(distances[a, j]), j) for j in range(size)],
                                           largest=True)]
        candidates_p = [naive_leaf[a, j] if is_positive(labels, a, j) else zero
                        for j in range(size)]
        candidates_n = [naive_leaf[a, j] if is_negative(labels, a, j) else naive_leaf[a, j]
                        + row_max for j in range(size)]
        hp = candidates_p[first_best(numbered(candidates_p), largest=True)]
        hn = candidates_n[first_best(numbered(candidates_n), largest=False)]
        if margin is None:
            naive_terms.append(torch.nn.functional.softplus(hp - hn))
        else:
            naive_terms.append(((hp - hn) + margin).clamp(min=0))
        positives = [(float(distances[a, p]), p) for p in range(size)
                     if is_positive(labels, a, p)]
        negatives = [(float(distances[a, n]), n) for n in range(size)
                     if is_negative(labels, a, n)]
        if positives and negatives:
            p, n = first_best(positives, True), first_best(negatives, False)
            active = (distances[a, p] > distances[a, n] if margin is None
                      else naive_terms[-1] > 0)
            triplets.append(((a, p, n), float(naive_terms[-1].detach()), bool(active)))
    naive = torch.stack(naive_terms)
    torch.testing.assert_close(terms, naive)
    terms.sum().backward()
    naive.sum().backward()
    torch.testing.assert_close(leaf.grad, naive_leaf.grad)
    assert record.as_tuples() == [t for t, _, _ in triplets]
    assert record.losses.tolist() == pytest.approx([loss for _, loss, _ in triplets])
    assert record.active.tolist() == [active for _, _, active in triplets]
    assert record.num_valid == len(triplets)
    assert record.num_active == sum(active for _, _, active in triplets)


def test_one_class_batch_hard_gives_the_reference_value():
    # No negatives: the minimum runs over D + row max, i.e. row max + row min (0 here).
    distances, _ = random_batch(5)
    labels = torch.zeros(len(distances), dtype=torch.long)
    terms, record = batch_hard_terms(distances, labels, 1.0)
    hardest_positive = distances.max(dim=1).values
    torch.testing.assert_close(terms, (hardest_positive - hardest_positive + 1.0).clamp(min=0))
    assert record.num_valid == 0 and len(record) == 0


# --------------------------------------------------------------------------------------- semi-hard
def naive_semi_hard(distances, labels, a, j) -> int:
    """FaceNet's semi-hard negative for the pair (a, j), by looking at every row."""
    size = len(labels)
    negatives = [(float(distances[a, n]), n) for n in range(size) if is_negative(labels, a, n)]
    farther = [(d, n) for d, n in negatives if d > float(distances[a, j])]
    if farther:
        return first_best(farther, largest=False)
    if negatives:
        return first_best(negatives, largest=True)
    return first_best([(float(distances[a, k]), k) for k in range(size)], largest=False)


@pytest.mark.parametrize(("seed", "ties"), BATCHES)
def test_semi_hard_negatives_match_loops(seed, ties):
    distances, labels = random_batch(seed, ties)
    chosen = semi_hard_negatives(distances, labels)
    for a, j in itertools.product(range(len(labels)), repeat=2):
        assert chosen[a, j] == naive_semi_hard(distances, labels, a, j), (a, j)


@pytest.mark.parametrize("margin", MARGINS)
@pytest.mark.parametrize(("seed", "ties"), BATCHES)
def test_semi_hard_terms_match_loops(seed, ties, margin):
    distances, labels = random_batch(seed, ties)
    leaf = distances.clone().requires_grad_(True)
    terms, record = semi_hard_terms(leaf, labels, margin)

    naive_leaf = distances.clone().requires_grad_(True)
    size, zero = len(labels), torch.zeros((), dtype=torch.float64)
    naive_terms, triplets = [], []
    for a, p in itertools.product(range(size), repeat=2):
        if not is_positive(labels, a, p):
            continue
        n = naive_semi_hard(distances, labels, a, p)
        naive_terms.append(torch.maximum((naive_leaf[a, p] - naive_leaf[a, n]) + margin, zero))
        if any(is_negative(labels, a, k) for k in range(size)):
            triplets.append(((a, p, n), float(naive_terms[-1].detach())))
    assert terms.numel() == len(naive_terms)
    if naive_terms:
        naive = torch.stack(naive_terms)
        torch.testing.assert_close(terms, naive)
        terms.sum().backward()
        naive.sum().backward()
        torch.testing.assert_close(leaf.grad, naive_leaf.grad)
    assert record.as_tuples() == [t for t, _ in triplets]
    assert record.losses.tolist() == pytest.approx([loss for _, loss in triplets])
    assert record.num_valid == len(triplets)
    assert record.num_active == sum(loss > 0 for _, loss in triplets)


# ----------------------------------------------------------------------------- mine and the record
@pytest.mark.parametrize(("strategy", "loss_class"), [
    ("all", BatchAllTripletLoss), ("hard", BatchHardTripletLoss),
    ("hard-soft-margin", BatchHardSoftMarginTripletLoss), ("semi-hard", BatchSemiHardTripletLoss)])
def test_mine_matches_the_losses(strategy, loss_class):
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(14, 4, generator=generator)
    labels = torch.randint(0, 3, (14,), generator=generator)
    options = {} if loss_class is BatchHardSoftMarginTripletLoss else {"margin": 1.5}
    record = mine(embeddings, labels, strategy, margin=1.5)
    from_loss = loss_class(None, **options).mine(embeddings, labels)
    assert record.as_tuples() == from_loss.as_tuples() and len(record) > 0
    assert (record.num_valid, record.num_active) == (from_loss.num_valid, from_loss.num_active)


def test_mine_refuses_unknown_strategies():
    with pytest.raises(ValueError, match="unknown mining strategy 'hardest'"):
        mine(torch.zeros(2, 2), torch.tensor([0, 1]), "hardest")


def test_record_helpers():
    record = MinedTriplets(torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]),
                           torch.tensor([6, 7, 8]), torch.tensor([0.0, 1.5, 0.5]),
                           torch.tensor([False, True, True]), 3, 2)
    assert len(record) == 3 and record.is_listed
    assert record.as_tuples() == [(0, 3, 6), (1, 4, 7), (2, 5, 8)]
    active = record.only_active()
    assert active.as_tuples() == [(1, 4, 7), (2, 5, 8)]
    assert (active.num_valid, active.num_active) == (2, 2)
    assert record.cpu().as_tuples() == record.as_tuples()
    counted = MinedTriplets(None, None, None, None, None, 10, 4)
    assert len(counted) == 0 and counted.as_tuples() == [] and counted.cpu().num_valid == 10
    assert counted.only_active().num_valid == 4


def test_soft_margin_active_threshold_is_log_2():
    # softplus(x) > log 2 exactly when x > 0: the hardest negative is nearer than the positive.
    x = torch.tensor([-1.0, -1e-6, 0.0, 1e-6, 1.0], dtype=torch.float64)
    assert torch.equal(torch.nn.functional.softplus(x) > math.log(2), x > 0)
