"""Triplet mining: which (anchor, positive, negative) triplets a labelled batch offers, and which
ones each batch triplet loss uses.

A batch of B sentences with integer class labels y contains triplets (a, p, n) of row indices.
A triplet is *valid* when

    y_a = y_p,  a ≠ p   (p is a positive of the anchor a)
    y_n ≠ y_a           (n is a negative of the anchor a)

Given the (B, B) matrix D of distances between the rows (D[i, j] = d(row i, row j)), each loss
scores a triplet with the hinge  [D[a, p] - D[a, n] + margin]₊  (or a soft version of it) and
differs only in WHICH triplets it looks at. The three strategies, one per loss family:

- all triplets (BatchAllTripletLoss): every valid triplet;
- batch-hard (BatchHardTripletLoss, BatchHardSoftMarginTripletLoss; Hermans, Beyer and Leibe,
  "In Defense of the Triplet Loss for Person Re-Identification", 2017): per anchor, the farthest
  positive and the nearest negative, one triplet per anchor;
- semi-hard (BatchSemiHardTripletLoss; Schroff, Kalenichenko and Philbin, "FaceNet", 2015, as
  TensorFlow Addons implements it): per anchor-positive pair, the nearest negative that is still
  farther away than the positive (D[a, n] > D[a, p]); when no negative is that far, the farthest
  negative of the anchor.

Each strategy function returns the differentiable loss terms (for the loss to reduce) together
with a ``MinedTriplets`` record of the triplets it used, as row indices into the batch, so the lab
can count and draw them. ``mine`` does the same from embeddings, with no loss object.

Memory: everything here is O(B²) (masks, distance matrices, per-pair indices); nothing builds a
(B, B, B) tensor. The all-triplets sum in particular is computed from per-(anchor, negative)
counts found by sorting each anchor's positives and bisecting (see ``all_triplet_terms``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.similarity import BatchHardTripletLossDistanceFunction
from losses.validation import LossInputError, class_labels

# BatchAllTripletLoss lists its triplets one by one only up to this many (counts are always kept).
LISTING_LIMIT = 100_000
# A triplet of BatchAllTripletLoss counts as active (and in the loss's denominator) above this.
ACTIVE_THRESHOLD = 1e-16


# BibTeX of Hermans, Beyer and Leibe (2017), the citation of every triplet loss here (bibliographic
# data, reproduced exactly as the reference gives it).
HERMANS_2017_BIBTEX = """
@misc{hermans2017defense,
    title={In Defense of the Triplet Loss for Person Re-Identification},
    author={Alexander Hermans and Lucas Beyer and Bastian Leibe},
    year={2017},
    eprint={1703.07737},
    archivePrefix={arXiv},
    primaryClass={cs.CV}
}
"""


# ------------------------------------------------------------------------------------- the record
@dataclass(frozen=True, eq=False)
class MinedTriplets:
    """The triplets a batch triplet loss used on one batch, as row indices into that batch.

    ``anchor``, ``positive``, ``negative``: (T,) long tensors, triplet t is
    (anchor[t], positive[t], negative[t]). ``losses``: (T,) each triplet's loss term. ``active``:
    (T,) bool, the triplets that still push (each loss documents its definition). ``num_valid``,
    ``num_active``: how many triplets the loss considered and how many were active; they are
    always set, while the lists are None where they would be too long (BatchAllTripletLoss above
    ``LISTING_LIMIT`` triplets). All tensors are detached: keeping a record holds no graph.
    """

    anchor: Tensor | None
    positive: Tensor | None
    negative: Tensor | None
    losses: Tensor | None
    active: Tensor | None
    num_valid: int
    num_active: int

    @property
    def is_listed(self) -> bool:
        """Whether the triplets are listed (not only counted)."""
        return self.anchor is not None

    def __len__(self) -> int:
        """Number of listed triplets (0 when only counted)."""
        return 0 if self.anchor is None else int(self.anchor.numel())

    def only_active(self) -> MinedTriplets:
        """The same record restricted to the active triplets (e.g. to draw only those)."""
        if self.anchor is None or self.active is None:
            return replace(self, num_valid=self.num_active)
        keep = self.active
        return MinedTriplets(self.anchor[keep], self.positive[keep], self.negative[keep],
                             self.losses[keep], self.active[keep], self.num_active,
                             self.num_active)

    def as_tuples(self) -> list[tuple[int, int, int]]:
        """The listed triplets as Python (anchor, positive, negative) tuples."""
        if self.anchor is None:
            return []
        return list(zip(self.anchor.tolist(), self.positive.tolist(), self.negative.tolist(),
                        strict=True))

    def cpu(self) -> MinedTriplets:
        """A copy with every tensor on the CPU (for plotting)."""
        moved = {name: getattr(self, name).cpu() if isinstance(getattr(self, name), Tensor)
                 else getattr(self, name)
                 for name in ("anchor", "positive", "negative", "losses", "active")}
        return replace(self, **moved)


def _record(anchor: Tensor, positive: Tensor, negative: Tensor, losses: Tensor,
            active: Tensor) -> MinedTriplets:
    """A fully listed record (every argument (T,)); the counts follow from the lists."""
    return MinedTriplets(anchor.detach(), positive.detach(), negative.detach(), losses.detach(),
                         active.detach(), int(anchor.numel()), int(active.sum()))


# ------------------------------------------------------------------------------------ label masks
def anchor_positive_mask(labels: Tensor) -> Tensor:
    """(B, B) bool, True at [a, p] when p is a positive of a: same label and another row."""
    same_label = labels.unsqueeze(0) == labels.unsqueeze(1)  # (B, B)
    other_row = ~torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
    return same_label & other_row


def anchor_negative_mask(labels: Tensor) -> Tensor:
    """(B, B) bool, True at [a, n] when n is a negative of a: a different label."""
    return labels.unsqueeze(0) != labels.unsqueeze(1)


def valid_triplet_mask(labels: Tensor) -> Tensor:
    """(B, B, B) bool, True at [a, p, n] for a valid triplet. Cubic in memory: for small batches,
    teaching and tests only; the losses never build it."""
    return anchor_positive_mask(labels).unsqueeze(2) & anchor_negative_mask(labels).unsqueeze(1)


def count_valid_triplets(labels: Tensor) -> int:
    """Number of valid (a, p, n) triplets: Σ_a #positives(a) · #negatives(a), no (B, B, B) mask."""
    positives = anchor_positive_mask(labels).sum(dim=1)  # (B,)
    negatives = anchor_negative_mask(labels).sum(dim=1)  # (B,)
    return int((positives * negatives).sum())


def label_problem(labels: Tensor) -> tuple[str, str] | None:
    """Why a batch offers no valid triplet at all, as (short key, sentence); None if it has one."""
    values, counts = torch.unique(labels, return_counts=True)
    if values.numel() == 1:
        return ("single-class", f"all {labels.numel()} examples of the batch have the same label "
                                f"({values[0].item():g}), so no anchor has a negative")
    if bool((counts < 2).all()):
        return ("no-positives", f"the {labels.numel()} examples of the batch all have different "
                                "labels, so no anchor has a positive")
    return None


# ------------------------------------------------------------------------------- all the triplets
# Anchor rows processed together in all_triplet_terms: bounds its (rows, B) temporaries to about
# this many elements (4 M: 16 to 32 MB each), whatever the batch size.
BLOCK_ELEMENTS = 1 << 22


def _failing_run(sorted_positives: Tensor, distances: Tensor, margin: float, threshold: float,
                 strict: bool) -> tuple[Tensor, Tensor]:
    """For every (anchor a, candidate n): how many of a's positives, in ascending order of
    D[a, p], make a triplet term ``(D[a, p] - D[a, n]) + margin`` that does NOT pass the
    threshold (``> threshold`` if ``strict``, else ``>= threshold``); and the term of the first
    positive that passes (+inf when none does).

    ``sorted_positives`` (b, P + 2): row a holds -inf, then D[a, p] over a's positives in
    ascending order (preceded by more -inf for rows with fewer than P positives), then +inf;
    ``distances`` (b, B): D[a, n]. The term grows with D[a, p] (rounding is monotone too), so the
    failing positives are a leading run. Its length is guessed with one binary search per
    (a, n) for the distance D[a, n] - margin + threshold, then checked with the term evaluated
    exactly as written above, so ties at the threshold fall as in a triplet-by-triplet
    computation. Should rounding have moved the boundary anywhere, an exact bisection on the
    term itself settles every entry: ~log2(P) steps on (b, B) tensors.
    """
    count = sorted_positives.shape[1] - 2
    inner = sorted_positives[:, 1:-1].contiguous()  # (b, P): what the search runs on
    after = sorted_positives[:, 1:]  # after[:, r] is the positive of rank r (then +inf)

    def term_at(values: Tensor, rank: Tensor) -> Tensor:  # (b, B) -> (D[a, p] - D[a, n]) + m
        return values.gather(1, rank).sub_(distances).add_(margin)

    def passing(term: Tensor) -> Tensor:
        return term > threshold if strict else term >= threshold

    # Failing: D[a, p] < D[a, n] - margin + threshold (<= when strict), counted by the search.
    limit = distances - margin
    if threshold:
        limit += threshold
    guess = torch.searchsorted(inner, limit, right=strict)
    first_passing = term_at(after, guess)  # rank `guess`, or +inf past the last positive
    last_failing = term_at(sorted_positives, guess)  # rank `guess` - 1, or -inf before the first
    if bool((passing(first_passing) & ~passing(last_failing)).all()):
        return guess, first_passing
    low = torch.zeros_like(guess)  # positives below `low` fail ...
    high = torch.full_like(guess, count)  # ... and from `high` on they pass
    for _ in range(max(1, count.bit_length())):  # each step at least halves high - low
        undecided = low < high
        middle = (low + high) // 2
        holds = passing(term_at(after, middle))
        high = torch.where(undecided & holds, middle, high)
        low = torch.where(undecided & ~holds, middle + 1, low)
    return low, term_at(after, low)


def _accumulation_dtype(tensor: Tensor) -> torch.dtype:
    """float64 for exact sums of many terms, except where the device has none (Apple MPS)."""
    return tensor.dtype if tensor.device.type == "mps" else torch.float64


class _WeightedSum(torch.autograd.Function):
    """Σ weights · distances; its gradient with respect to the distances is ``weights``.

    The integer-valued weights times the distances are summed per row in the distances'
    precision, and the row sums in the ``wide`` dtype (float64): as precise as needed, without
    (B, B) float64 copies, and the backward keeps only the weights.
    """

    @staticmethod
    def forward(ctx: Any, distances: Tensor, weights: Tensor, wide: torch.dtype) -> Tensor:
        ctx.save_for_backward(weights)
        ctx.input_dtype = distances.dtype
        total = torch.zeros((), dtype=wide, device=distances.device)
        rows = max(1, BLOCK_ELEMENTS // max(1, distances.shape[1]))
        for begin in range(0, distances.shape[0], rows):
            block = slice(begin, begin + rows)
            total += (weights[block] * distances[block]).sum(dim=1).to(wide).sum()
        return total

    @staticmethod
    def backward(ctx: Any, gradient: Tensor) -> tuple[Tensor | None, None, None]:
        (weights,) = ctx.saved_tensors
        if gradient is None:
            return None, None, None
        return (gradient * weights).to(ctx.input_dtype), None, None


def _class_members(labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The rows of each class: ``(members, class_of_row, class_sizes)``.

    ``members`` (C, W): row indices of class c (W = the largest class), padded with -1;
    ``class_of_row`` (B,): each row's class index; ``class_sizes`` (C,).
    """
    _, class_of_row = torch.unique(labels, return_inverse=True)  # (B,) in 0..C-1
    sizes = torch.bincount(class_of_row)  # (C,)
    order = torch.argsort(class_of_row, stable=True)  # rows grouped by class, in index order
    starts = sizes.cumsum(0) - sizes  # (C,)
    grouped = class_of_row[order]
    rank = torch.arange(labels.numel(), device=labels.device) - starts[grouped]
    members = torch.full((sizes.numel(), int(sizes.max())), -1, dtype=torch.long,
                         device=labels.device)
    members[grouped, rank] = order
    return members, class_of_row, sizes


def all_triplet_terms(distances: Tensor, labels: Tensor, margin: float,
                      listing_limit: int = LISTING_LIMIT) -> tuple[Tensor, MinedTriplets]:
    """Σ over every valid triplet of [D[a, p] - D[a, n] + margin]₊, and the record.

    Without a (B, B, B) tensor. For an anchor a and a negative n, the positives p whose term is
    >= 0 are those with the largest D[a, p]: with a's positives sorted, they are everything
    after a leading run of failing ones (``_failing_run``). From these per-(a, n) counts the sum
    is linear in D with integer weights: D[a, n] enters minus the number of positives whose term
    with n is >= 0; D[a, p] enters once per negative n whose run p is beyond (a cumulative
    histogram of the run lengths); the margin once per term. Σ weight · D (row sums added in
    float64) gives the value, and the gradient is 1 per triplet whose term is >= 0 (the
    reference zeroes negative terms in place, which keeps a slope of 1 at exactly 0).

    Cost: O(B² log W) time, W = the size of the largest class, O(B²) memory; anchors are
    processed in blocks so the temporaries stay bounded (``BLOCK_ELEMENTS``). An anchor's
    positives are read from its class's member list ((B, W) values, not a (B, B) mask).

    Record: ``num_valid`` = number of valid triplets; ``num_active`` = triplets with a term above
    1e-16 (the denominator of BatchAllTripletLoss). The triplets themselves are listed (with
    their terms, in (anchor, positive, negative) index order) only when there are at most
    ``listing_limit`` valid triplets; otherwise the lists are None.
    """
    batch_size = distances.shape[0]
    device = distances.device
    # Integer weights, held in a float type that represents them exactly (counts < 2^24).
    weight_dtype = torch.promote_types(distances.dtype, torch.float32)
    weights = torch.zeros(batch_size, batch_size, dtype=weight_dtype, device=device)
    num_terms = num_active = num_valid = 0
    with torch.no_grad():
        detached = distances.detach()
        if batch_size:
            members, class_of_row, sizes = _class_members(labels)
            same_class = sizes[class_of_row]  # (B,): the anchor and its positives
            num_valid = int(((same_class - 1) * (batch_size - same_class)).sum())
        width = members.shape[1] if batch_size else 0  # W: a class's members, anchor included
        rows = max(1, BLOCK_ELEMENTS // max(1, batch_size))
        for begin in range(0, batch_size if num_valid else 0, rows):
            block = slice(begin, min(begin + rows, batch_size))
            block_distances = detached[block]  # (b, B)
            anchors = torch.arange(block.start, block.stop, device=device).unsqueeze(1)  # (b, 1)
            # Each anchor's class members (W columns; padding points at the anchor itself) and
            # their distances, the anchor and the padding at -inf: the positives sorted
            # ascending after W - P_a entries of -inf.
            columns = members[class_of_row[block]]  # (b, W)
            columns = torch.where(columns < 0, anchors, columns)
            values = block_distances.gather(1, columns).masked_fill_(columns == anchors,
                                                                       -math.inf)
            values, order = values.sort(dim=1)
            columns = columns.gather(1, order)
            ends = torch.full((values.shape[0], 1), math.inf, dtype=values.dtype, device=device)
            sorted_positives = torch.cat([-ends, values, ends], dim=1)  # (b, W + 2)
            # Per (a, n): the positives failing "term >= 0" (a leading run) and the term of the
            # first one that passes. Computed for every column n; only negatives count.
            failing, first_term = _failing_run(sorted_positives, block_distances, margin, 0.0,
                                               strict=False)
            # histogram[a, k]: negatives n of anchor a whose failing run is k long. Counted over
            # all columns, minus the anchor's own class: its positives (the finite entries) and
            # the anchor itself (once: the first -inf entry; the others are padding).
            own_class = torch.isfinite(values)
            own_class[:, 0] = True
            histogram = torch.zeros(values.shape[0], width + 1, dtype=torch.long, device=device)
            histogram.scatter_add_(1, failing, torch.ones_like(failing[:, :1]).expand_as(failing))
            histogram.scatter_add_(1, failing.gather(1, columns), -own_class.long())
            passing_per_run = width - torch.arange(width + 1, device=device)  # (W + 1,)
            block_terms = int((histogram * passing_per_run).sum())
            num_terms += block_terms
            # Active ("term > 1e-16") is the same run, except where the first passing term is
            # at most 1e-16 (exact zeros: ties with the margin). Those few (anchor, negative)
            # entries get their own exact count.
            num_active += block_terms
            tied = first_term <= ACTIVE_THRESHOLD
            if bool(tied.any()):
                tied &= class_of_row[block].unsqueeze(1) != class_of_row.unsqueeze(0)
                row, column = tied.nonzero(as_tuple=True)
                inactive, _ = _failing_run(sorted_positives[row],
                                           block_distances[row, column].unsqueeze(1), margin,
                                           ACTIVE_THRESHOLD, strict=True)  # (k, 1)
                num_active -= int((inactive.squeeze(1) - failing[row, column]).sum())
            # Weights of the row: D[a, n] enters minus once per passing positive; the class's
            # own columns get, instead, the positive at rank j: one per negative whose failing
            # run is at most j long (the cumulative histogram), 0 for the -inf entries.
            weight_rows = weights[block]  # a view, written in place
            weight_rows.copy_(failing).sub_(width)
            per_rank = histogram.cumsum(1)[:, :width]  # (b, W)
            per_rank.masked_fill_(torch.isinf(values), 0)
            weight_rows.scatter_(1, columns, per_rank.to(weight_dtype))
    wide = _accumulation_dtype(distances)
    total = _WeightedSum.apply(distances, weights, wide) + margin * num_terms
    # The reference multiplies by a float32 mask, so half-precision distances give float32.
    total = total.to(torch.promote_types(distances.dtype, torch.float32))

    if num_valid > listing_limit:
        return total, MinedTriplets(None, None, None, None, None, num_valid, num_active)
    positives = anchor_positive_mask(labels)  # (B, B)
    negatives = anchor_negative_mask(labels)  # (B, B)
    anchor, positive, negative = _list_valid_triplets(positives, negatives)
    with torch.no_grad():
        terms = ((detached[anchor, positive] - detached[anchor, negative]) + margin).clamp(min=0)
    record = MinedTriplets(anchor, positive, negative, terms, terms > ACTIVE_THRESHOLD,
                           num_valid, num_active)
    return total, record


def _list_valid_triplets(positives: Tensor, negatives: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Every valid triplet as three (T,) index tensors, in (anchor, positive, negative) order."""
    pair_anchor, pair_positive = positives.nonzero(as_tuple=True)  # (P,) each
    per_pair = negatives.sum(dim=1)[pair_anchor]  # (P,) negatives of each pair's anchor
    anchor = pair_anchor.repeat_interleave(per_pair)  # (T,)
    positive = pair_positive.repeat_interleave(per_pair)  # (T,)
    # Row a of this stable argsort starts with a's negatives in index order.
    negatives_first = (~negatives).to(torch.uint8).argsort(dim=1, stable=True)  # (B, B)
    start = (per_pair.cumsum(0) - per_pair).repeat_interleave(per_pair)  # (T,)
    rank = torch.arange(anchor.numel(), device=anchor.device) - start  # (T,) rank among negatives
    return anchor, positive, negatives_first[anchor, rank]


# -------------------------------------------------------------------------------------- batch-hard
def batch_hard_terms(distances: Tensor, labels: Tensor,
                     margin: float | None) -> tuple[Tensor, MinedTriplets]:
    """One term per anchor from its hardest positive and hardest negative, and the record.

    hardest positive  hp(a) = max over positives p of D[a, p], 0 when a has no positive (as if
                              paired with itself);
    hardest negative  hn(a) = min over negatives n of D[a, n]. The other rows are kept out of the
                              minimum by adding the row's largest distance to them (distances are
                              >= 0, so a negative always wins). A row with no negative at all (a
                              one-class batch) then yields its largest plus its smallest
                              distance: a meaningless number the reference returns too, which
                              the losses warn about;
    term(a) = [hp(a) - hn(a) + margin]₊, or softplus(hp(a) - hn(a)) when ``margin`` is None.

    Returns the (B,) terms (differentiable; the hinge has slope 1 at exactly 0, as in the
    reference) and the record: one triplet per anchor that has both a positive and a negative
    (its farthest positive and nearest negative); ``num_valid`` counts those anchors. Active: a
    hinge term > 0; for the soft margin, D[a, p] > D[a, n], i.e. the hardest negative is still
    nearer than the hardest positive (term > log 2), since softplus is never exactly 0.
    """
    # The reference mixes in float32 masks, so half-precision distances are computed in float32.
    distances = distances.to(torch.promote_types(distances.dtype, torch.float32))
    positives = anchor_positive_mask(labels)  # (B, B)
    negatives = anchor_negative_mask(labels)  # (B, B)
    hardest_positive, hardest_negative, positive, negative = _BatchHard.apply(
        distances, positives, negatives)  # (B,) values, (B,) indices the values were taken at
    difference = hardest_positive - hardest_negative  # (B,)
    if margin is None:
        terms = F.softplus(difference)
        active = difference > 0
    else:
        terms = (difference + margin).clamp(min=0)
        active = terms > 0

    with torch.no_grad():
        # The record names the true farthest positive and nearest negative: where the values
        # above were taken at a masked row (a tie, or an anchor without positives), look again.
        positive = _true_extreme(positive, positives, distances, largest=True)
        negative = _true_extreme(negative, negatives, distances, largest=False)
        anchor = ((positive >= 0) & (negative >= 0)).nonzero().squeeze(1)  # valid anchors
    return terms, _record(anchor, positive[anchor], negative[anchor], terms[anchor],
                          active[anchor])


class _BatchHard(torch.autograd.Function):
    """hp(a), hn(a) of ``batch_hard_terms`` with the indices they come from, and a lean backward.

    Forward, as the reference computes them: hp = max_j (positives ? D : 0)[a, j] and
    hn = min_j (negatives ? D : D + rowmax(D))[a, j]. Each is one entry of D (plus, for a masked
    hn, the row's largest entry), so the gradient is a (B, B) matrix with at most three non-zero
    entries per row: no autograd graph through the two (B, B) selections.
    """

    @staticmethod
    def forward(ctx: Any, distances: Tensor, positives: Tensor,
                negatives: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        hardest_positive, positive = torch.where(positives, distances, 0.0).max(dim=1)  # (B,)
        row_max, row_argmax = distances.max(dim=1, keepdim=True)  # (B, 1)
        hardest_negative, negative = torch.where(negatives, distances,
                                                 distances + row_max).min(dim=1)  # (B,)
        ctx.save_for_backward(positive, negative, row_argmax.squeeze(1),
                              positives.gather(1, positive.unsqueeze(1)).squeeze(1),
                              negatives.gather(1, negative.unsqueeze(1)).squeeze(1))
        ctx.shape = distances.shape
        ctx.mark_non_differentiable(positive, negative)
        return hardest_positive, hardest_negative, positive, negative

    @staticmethod
    def backward(ctx: Any, positive_gradient: Tensor, negative_gradient: Tensor,
                 *_: Any) -> tuple[Tensor, None, None]:
        positive, negative, row_argmax, positive_real, negative_real = ctx.saved_tensors
        gradient = positive_gradient.new_zeros(ctx.shape)  # (B, B)
        # A masked maximum is a 0 that does not depend on D; a masked minimum is D + rowmax(D).
        gradient.scatter_add_(1, positive.unsqueeze(1),
                              torch.where(positive_real, positive_gradient, 0.0).unsqueeze(1))
        gradient.scatter_add_(1, negative.unsqueeze(1), negative_gradient.unsqueeze(1))
        gradient.scatter_add_(1, row_argmax.unsqueeze(1),
                              torch.where(negative_real, 0.0, negative_gradient).unsqueeze(1))
        return gradient, None, None


def _true_extreme(index: Tensor, mask: Tensor, distances: Tensor, largest: bool) -> Tensor:
    """(B,) ``index`` where it points into ``mask``, else the row's true extreme (-1: none).

    ``index``: (B,) column each row's masked max/min came from; ``mask``: (B, B) the admissible
    columns. Only the rows whose index missed the mask are searched again.
    """
    missed = ~mask.gather(1, index.unsqueeze(1)).squeeze(1)  # (B,)
    if not bool(missed.any()):
        return index
    rows = missed.nonzero().squeeze(1)  # (m,)
    index = index.clone()
    index[rows] = _masked_extreme(distances[rows], mask[rows], largest)
    return index


def _masked_extreme(distances: Tensor, mask: Tensor, largest: bool) -> Tensor:
    """(n,) column of each row's largest (or smallest) distance among ``mask``'s, -1: none.
    ``distances``, ``mask``: (n, B)."""
    candidates = torch.where(mask, distances, -math.inf if largest else math.inf)
    found = candidates.argmax(dim=1) if largest else candidates.argmin(dim=1)
    return torch.where(mask.any(dim=1), found, -1)


def hardest_positive_and_negative(distances: Tensor, labels: Tensor,
                                  positives: Tensor | None = None,
                                  negatives: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(B,) index of each anchor's farthest positive and of its nearest negative (-1: none).

    ``positives`` / ``negatives``: the (B, B) masks of ``labels`` when the caller has them
    already (built here otherwise).
    """
    if positives is None:
        positives = anchor_positive_mask(labels)
    if negatives is None:
        negatives = anchor_negative_mask(labels)
    return (_masked_extreme(distances, positives, largest=True),
            _masked_extreme(distances, negatives, largest=False))


# --------------------------------------------------------------------------------------- semi-hard
def semi_hard_negatives(distances: Tensor, labels: Tensor) -> Tensor:
    """(B, B) long: for every pair (a, p), the negative FaceNet's semi-hard rule picks.

    The nearest negative n with D[a, n] > D[a, p] (strictly farther than the positive); if there
    is none, the farthest negative of a; if a has no negative at all, the nearest row of the batch
    (the reference then uses the row's smallest distance). Ties go to the lowest row index.
    """
    batch_size = distances.shape[0]
    negatives = anchor_negative_mask(labels)  # (B, B)
    detached = distances.detach()
    sorted_negatives, order = torch.where(negatives, detached, math.inf).sort(dim=1, stable=True)
    num_negatives = negatives.sum(dim=1, keepdim=True)  # (B, 1)
    # Rank (in a's ascending negatives) of the first one strictly beyond D[a, p].
    rank = torch.searchsorted(sorted_negatives, detached.contiguous(), right=True)  # (B, B)
    first_farther = order.gather(1, rank.clamp(max=batch_size - 1))  # (B, B)
    farthest = torch.where(negatives, detached, -math.inf).argmax(dim=1)  # (B,)
    fallback = torch.where(num_negatives.squeeze(1) > 0, farthest, detached.argmin(dim=1))
    return torch.where(rank < num_negatives, first_farther, fallback.unsqueeze(1))


def semi_hard_terms(distances: Tensor, labels: Tensor,
                    margin: float) -> tuple[Tensor, MinedTriplets]:
    """One term per anchor-positive pair with its semi-hard negative, and the record.

    term(a, p) = [D[a, p] - D[a, n] + margin]₊ with n from ``semi_hard_negatives``. Returns the
    (P,) terms over every positive pair (a, p) in row-major order (the loss averages them; the
    hinge splits its slope 1/2 : 1/2 at exactly 0 like ``torch.maximum``, as in the reference),
    and the record of the pairs whose anchor has a negative (``num_valid``); active: term > 0.
    """
    positives = anchor_positive_mask(labels)  # (B, B)
    with torch.no_grad():
        chosen = semi_hard_negatives(distances, labels)  # (B, B)
    anchor, positive = positives.nonzero(as_tuple=True)  # (P,) each
    negative = chosen[anchor, positive]  # (P,)
    raw = (distances[anchor, positive] - distances[anchor, negative]) + margin
    # The reference multiplies by a float32 mask here, so half precision continues in float32.
    raw = raw.to(torch.promote_types(raw.dtype, torch.float32))
    terms = torch.maximum(raw, torch.zeros((), dtype=raw.dtype, device=raw.device))
    has_negative = anchor_negative_mask(labels).any(dim=1)[anchor]  # (P,)
    kept = terms.detach()[has_negative]
    return terms, _record(anchor[has_negative], positive[has_negative], negative[has_negative],
                          kept, kept > 0)


# ---------------------------------------------------------------------- mining without a loss
STRATEGIES = ("all", "hard", "hard-soft-margin", "semi-hard")


def mine(
    embeddings: Tensor,
    labels: Tensor,
    strategy: str = "hard",
    distance_metric: Callable[[Tensor], Tensor] = BatchHardTripletLossDistanceFunction
    .euclidean_distance,
    margin: float = 5.0,
) -> MinedTriplets:
    """The triplets a strategy picks in a batch of (B, dim) embeddings with (B,) class labels.

    ``strategy``: "all" (BatchAllTripletLoss), "hard" (BatchHardTripletLoss), "hard-soft-margin"
    (BatchHardSoftMarginTripletLoss, ``margin`` unused) or "semi-hard" (BatchSemiHardTripletLoss).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown mining strategy {strategy!r}; choose one of {STRATEGIES}")
    labels = torch.as_tensor(labels).reshape(-1).to(embeddings.device)
    with torch.no_grad():
        distances = distance_metric(embeddings)
        if strategy == "all":
            return all_triplet_terms(distances, labels, margin)[1]
        if strategy == "semi-hard":
            return semi_hard_terms(distances, labels, margin)[1]
        return batch_hard_terms(distances, labels,
                                None if strategy == "hard-soft-margin" else margin)[1]


# ------------------------------------------------------------- what the batch triplet losses share
class BatchTripletLoss(EmbeddingLoss):
    """Base of the four batch triplet losses: label checks, the distance matrix, ``last_mined``.

    Input checks, the same in all four: exactly one text column (the reference silently embeds
    only the first column and ignores the rest: we refuse); integer class labels of shape
    (batch,) (the reference accepts fractional labels and compares them for equality: we
    refuse); a batch with no valid triplet at all (a single label, or no label twice) gives the
    same value as the reference (a constant or 0, useless for training) with a warning, once per
    loss instance.
    """

    expected_inputs = ("single sentences (one text column) with integer class labels, several "
                       "labels per batch with >= 2 examples each")
    column_range = (1, 1)

    def __init__(self, model: nn.Module | None,
                 distance_metric: Callable[[Tensor], Tensor]) -> None:
        # The reference stores the encoder as `sentence_embedder`: its parameters (and state-dict
        # keys) are named after it, so ours are too; `model` reads and writes the same attribute.
        super().__init__(None)
        self.sentence_embedder = model
        self.distance_metric = distance_metric
        self.last_mined: MinedTriplets | None = None

    @property
    def model(self) -> nn.Module | None:
        """The encoder (stored as ``sentence_embedder``, the reference's name)."""
        return self.sentence_embedder

    @model.setter
    def model(self, value: nn.Module | None) -> None:
        self.sentence_embedder = value

    def checked_batch(self, embeddings: list[Tensor], labels: Tensor | None) -> tuple[Tensor,
                                                                                     Tensor]:
        """The (B, dim) embeddings and (B,) labels after the checks in the class docstring."""
        batch_size, _ = self.check_embeddings(embeddings)
        name = type(self).__name__
        if batch_size == 0:
            raise LossInputError(f"{name} expects {self.expected_inputs}; got an empty batch")
        labels = class_labels(name, self.expected_inputs, labels, batch_size)
        labels = labels.to(embeddings[0].device)
        problem = label_problem(labels)
        if problem is not None:
            key, sentence = problem
            self.warn_once(key, f"{sentence}. The loss is meaningless on such a batch: it needs "
                                "several labels per batch with >= 2 examples each (use a "
                                "label-balanced batch sampler, e.g. BatchSamplers.GROUP_BY_LABEL).")
        return embeddings[0], labels

    def distance_matrix(self, embeddings: Tensor) -> Tensor:
        """(B, B) distances from ``distance_metric``, with a clear error if it is not one."""
        name = type(self).__name__
        try:
            distances = self.distance_metric(embeddings)
        except TypeError as error:
            raise TypeError(
                f"{name}: distance_metric must take one (batch, dim) tensor and return the "
                "(batch, batch) distance matrix, like BatchHardTripletLossDistanceFunction."
                f"euclidean_distance; calling it failed: {error}") from error
        batch_size = embeddings.shape[0]
        if not isinstance(distances, Tensor) or distances.shape != (batch_size, batch_size):
            got = (f"shape {tuple(distances.shape)}" if isinstance(distances, Tensor)
                   else type(distances).__name__)
            raise LossInputError(f"{name}: distance_metric must return a ({batch_size}, "
                                 f"{batch_size}) distance matrix; got {got}")
        return distances

    def mine(self, embeddings: Tensor, labels: Tensor) -> MinedTriplets:
        """The triplets this loss would use on (B, dim) ``embeddings`` with (B,) ``labels``.

        No model, no gradient, no change to ``last_mined``.
        """
        with torch.no_grad():
            anchors, labels = self.checked_batch([embeddings], labels)
            return self.mined_terms(self.distance_matrix(anchors), labels)[1]

    def mined_terms(self, distances: Tensor, labels: Tensor) -> tuple[Tensor, MinedTriplets]:
        """The loss's differentiable terms and its record, from the distance matrix."""
        raise NotImplementedError

    @property
    def citation(self) -> str:
        """BibTeX of Hermans, Beyer and Leibe (2017), which all four losses cite."""
        return HERMANS_2017_BIBTEX
