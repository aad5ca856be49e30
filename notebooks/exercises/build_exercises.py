"""Build the exercise notebooks: a blank and a solutions variant of each exercise.

    python notebooks/exercises/build_exercises.py          # (re)write every notebook
    python notebooks/exercises/build_exercises.py --check  # exit 1 if a notebook is out of date

Writes ``notebooks/exercises/NN_<name>.ipynb`` (the student's version: explanation, formula, a
worked example, a stub that raises NotImplementedError, the check cell) and
``notebooks/exercises/solutions/NN_<name>_solution.ipynb`` (the same with a solution written
from the math). The notebooks are saved without outputs and with fixed cell ids, so building
twice gives identical files. The exercises themselves (names, signatures, checkers) come from
``lab.exercises.EXERCISES``; this file holds only the teaching text and the solutions.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.exercises import EXERCISES  # after the sys.path line above

SETUP = '''\
# Setup: make the lab importable (this notebook lives in notebooks/exercises/).
import sys
from pathlib import Path

ROOT = next((folder for folder in (Path.cwd(), *Path.cwd().parents)
             if (folder / "lab" / "exercises.py").is_file()), None)
if ROOT is None:
    raise RuntimeError("Open this notebook from inside the embedding-loss lab repository.")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch
import torch.nn.functional as F{noqa}

import losses
from lab.exercises import {checker}'''

HOW_IT_WORKS = """\
**How this works.** Write the function below, then run the check cell. The checker calls your
function on about ten small batches (a random one, edge cases such as ties or a batch of one,
and adversarial ones such as huge numbers), in float64, and compares both the value and the
gradients with the lab's own `losses.{loss}`. It stops at the first difference and tells you
which batch it was, what it expected, what it got, and a hint. Every input is a `torch.Tensor`;
return a scalar tensor (shape `()`) computed with torch operations, so that gradients flow."""


@dataclass(frozen=True)
class Content:
    """The teaching text and the solution of one exercise (its checker is in lab.exercises)."""

    name: str
    number: int
    minutes: int
    idea: str
    formula: str
    example: str
    example_code: str
    example_shows: tuple[str, ...]  # what the example cell prints: the numbers worked out above
    task: str
    stub: str
    solution: str
    further: str


TRIPLET = Content(
    name="triplet_loss",
    number=1,
    minutes=15,
    idea="""\
## The idea

A triplet is three sentences: an **anchor**, a **positive** (it means the same) and a
**negative** (it does not). The loss looks at two distances: anchor to positive and anchor to
negative. It is happy when the negative is at least a **margin** farther away than the
positive; then that triplet costs nothing. Otherwise it costs exactly how far it falls short,
which pulls the anchor and the positive together and pushes the negative away.""",
    formula=r"""\
## The formula

For a batch of $B$ triplets $(a_i, p_i, n_i)$ and the Euclidean distance
$d(x, y) = \lVert x - y \rVert_2$:

$$L = \frac{1}{B} \sum_{i=1}^{B} \max\bigl(0,\; d(a_i, p_i) - d(a_i, n_i) + \text{margin}\bigr)$$

The default margin is 5 (the lab's `TripletLoss` uses the same default; it suits the Euclidean
distances of unnormalised embeddings).""",
    example="""\
## A worked example

Two triplets of 2-D points, margin 5:

| triplet | anchor | positive | negative | d(a, p) | d(a, n) | term |
|---|---|---|---|---|---|---|
| 1 | (0, 0) | (3, 4) | (6, 8) | 5 | 10 | max(0, 5 - 10 + 5) = **0** |
| 2 | (0, 0) | (0, 2) | (1, 0) | 2 | 1 | max(0, 2 - 1 + 5) = **6** |

The loss is the mean of the terms: (0 + 6) / 2 = **3**. Triplet 1 already satisfies the margin
and contributes nothing; triplet 2 has its negative nearer than its positive. The lab's
reference gives the same number:""",
    example_code="""\
anchors = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
positives = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
negatives = torch.tensor([[6.0, 8.0], [1.0, 0.0]])
reference = losses.TripletLoss(None, triplet_margin=5.0)  # no model: works on embeddings
print(reference.compute_loss_from_embeddings([anchors, positives, negatives]))""",
    example_shows=("tensor(3.)",),
    task="""\
## Your turn

Write `triplet_loss`. Each input has shape `(B, dim)`; row `i` of the three tensors is one
triplet. Handy: `torch.linalg.norm(x, dim=1)` (or `F.pairwise_distance(x, y)`) for one
distance per row, `torch.relu` or `.clamp(min=0)` for the max with 0, `.mean()`.""",
    stub='''\
def triplet_loss(anchors, positives, negatives, margin=5.0):
    """Mean over the batch of max(0, d(a, p) - d(a, n) + margin), d = Euclidean distance.

    anchors, positives, negatives: (B, dim) tensors, row i of each is one triplet.
    Returns a scalar tensor (shape ()), differentiable with respect to all three inputs.
    """
    # Your code here: replace the line below.
    raise NotImplementedError''',
    solution='''\
def triplet_loss(anchors, positives, negatives, margin=5.0):
    """Mean over the batch of max(0, d(a, p) - d(a, n) + margin), d = Euclidean distance.

    anchors, positives, negatives: (B, dim) tensors, row i of each is one triplet.
    Returns a scalar tensor (shape ()), differentiable with respect to all three inputs.
    """
    to_positive = torch.linalg.norm(anchors - positives, dim=1)  # (B,) one distance per row
    to_negative = torch.linalg.norm(anchors - negatives, dim=1)  # (B,)
    terms = torch.relu(to_positive - to_negative + margin)  # (B,) 0 once the margin is met
    return terms.mean()''',
    further="""\
## Going further

- Which triplets give a gradient, and which give none? What does that mean for training once
  most triplets satisfy the margin?
- Try `margin=0`: what does the loss ask for then, and why is that not enough?
- The lab's `TripletLoss` can also use the cosine distance (`1 - cos`, between 0 and 2). Why
  does a margin of 5 make no sense with it? Pick a sensible one.""",
)

BATCH_HARD = Content(
    name="batch_hard_triplet_loss",
    number=2,
    minutes=25,
    idea="""\
## The idea

Here the batch holds single sentences with a class label, not ready-made triplets: the loss
**mines** the triplets itself. Every example of the batch takes a turn as the anchor, and for
each anchor batch-hard picks the *hardest* triplet available:

- the **hardest positive**: the example of the anchor's own class that is **farthest** away;
- the **hardest negative**: the example of another class that is **nearest**.

It then applies the triplet hinge to that pair of distances. Hard triplets are the informative
ones; easy ones would contribute zero anyway.""",
    formula=r"""\
## The formula

With $D_{ij}$ the Euclidean distance between embeddings $i$ and $j$ and labels $y$:

$$\text{hp}(a) = \max_{p \ne a,\; y_p = y_a} D_{ap} \qquad
  \text{hn}(a) = \min_{n:\; y_n \ne y_a} D_{an}$$

$$L = \frac{1}{B} \sum_{a=1}^{B} \max\bigl(0,\; \text{hp}(a) - \text{hn}(a) + \text{margin}\bigr)$$

Two conventions, the same as the lab's `BatchHardTripletLoss`:

- an anchor whose label occurs only once has no positive: its $\text{hp}$ is **0**;
- an anchor with no negative at all (every example of the batch has its label) takes
  $\text{hn} = \text{hp}$, so its term is exactly the **margin**. Such a batch teaches nothing
  (the library warns about it); a label-balanced sampler avoids it in training.""",
    example="""\
## A worked example

Four points on a line (2-D points with y = 0), two classes, margin 1:

| anchor | label | hardest positive | hardest negative | term |
|---|---|---|---|---|
| (0, 0) | 0 | (1, 0): 1 | (3, 0): 3 | max(0, 1 - 3 + 1) = 0 |
| (1, 0) | 0 | (0, 0): 1 | (3, 0): 2 | max(0, 1 - 2 + 1) = 0 |
| (3, 0) | 1 | (7, 0): 4 | (1, 0): 2 | max(0, 4 - 2 + 1) = **3** |
| (7, 0) | 1 | (3, 0): 4 | (1, 0): 6 | max(0, 4 - 6 + 1) = 0 |

The loss is (0 + 0 + 3 + 0) / 4 = **0.75**: only the point at 3 is in trouble, because its own
class-mate is 4 away while a point of the other class sits 2 away. The reference agrees:""",
    example_code="""\
embeddings = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [7.0, 0.0]])
labels = torch.tensor([0, 0, 1, 1])
reference = losses.BatchHardTripletLoss(None, margin=1.0)
print(reference.compute_loss_from_embeddings([embeddings], labels))
print(reference.last_mined)  # the (anchor, positive, negative) triplets it picked""",
    example_shows=("tensor(0.7500)",),
    task="""\
## Your turn

Write `batch_hard_triplet_loss`. `embeddings` has shape `(B, dim)`, `labels` shape `(B,)`
(integers). Build the `(B, B)` distance matrix with `torch.cdist(embeddings, embeddings)`, the
`(B, B)` masks "same class" (`labels.unsqueeze(0) == labels.unsqueeze(1)`) and "not itself"
(`torch.eye`), then take the max / min of each row over the right entries with `torch.where`.
Avoid `sqrt` of a sum of squares yourself: its gradient at distance 0 (the diagonal) is NaN.""",
    stub='''\
def batch_hard_triplet_loss(embeddings, labels, margin=5.0):
    """Batch-hard triplet loss: each anchor's farthest positive against its nearest negative.

    embeddings: (B, dim) tensor; labels: (B,) integer class labels.
    An anchor with no positive uses 0 as its hardest-positive distance; an anchor with no
    negative (one class in the batch) uses its hardest-positive distance as the negative one.
    Returns a scalar tensor, differentiable with respect to embeddings.
    """
    # Your code here: replace the line below.
    raise NotImplementedError''',
    solution='''\
def batch_hard_triplet_loss(embeddings, labels, margin=5.0):
    """Batch-hard triplet loss: each anchor's farthest positive against its nearest negative.

    embeddings: (B, dim) tensor; labels: (B,) integer class labels.
    An anchor with no positive uses 0 as its hardest-positive distance; an anchor with no
    negative (one class in the batch) uses its hardest-positive distance as the negative one.
    Returns a scalar tensor, differentiable with respect to embeddings.
    """
    distances = torch.cdist(embeddings, embeddings)  # (B, B), finite gradient at 0
    same_class = labels.unsqueeze(0) == labels.unsqueeze(1)  # (B, B)
    itself = torch.eye(len(labels), dtype=torch.bool)  # (B, B)
    is_positive = same_class & ~itself
    is_negative = ~same_class
    # Farthest positive: masked entries become 0, which never beats a real distance (>= 0).
    hardest_positive = torch.where(is_positive, distances, 0.0).max(dim=1).values  # (B,)
    # Nearest negative: masked entries become +inf, which never wins a min.
    hardest_negative = torch.where(is_negative, distances, torch.inf).min(dim=1).values
    # No negative at all: take the positive distance, so the term is the margin.
    hardest_negative = torch.where(is_negative.any(dim=1), hardest_negative, hardest_positive)
    return torch.relu(hardest_positive - hardest_negative + margin).mean()''',
    further="""\
## Going further

- Print `losses.BatchHardTripletLoss(None).last_mined` after a call: how many of the mined
  triplets are active (non-zero term)? What happens to that number during training?
- Why does batch-hard need batches with several examples of each class? What would a random
  batch of 32 sentences from 100 classes give?
- Batch-hard is sensitive to label noise (a mislabelled example is always the "hardest").
  Which of the lab's other batch triplet losses is gentler, and why?""",
)

MNRL = Content(
    name="mnrl",
    number=3,
    minutes=20,
    idea="""\
## The idea

The data is pairs (anchor, positive): a question and its answer, a sentence and its
paraphrase. For anchor $i$, the batch holds $B$ candidate positives: its own and the $B - 1$
positives of the other pairs, which serve as **in-batch negatives** for free. The loss asks each
anchor to pick its own positive out of the batch, as a $B$-way classification: a softmax over
the (scaled) cosine similarities, with the right answer at position $i$. This is the InfoNCE
loss, the work-horse of modern embedding training.""",
    formula=r"""\
## The formula

With cosine similarity $\cos$ and scale $s$ (the inverse temperature, default 20):

$$S_{ij} = s \cdot \cos(a_i, p_j) \qquad
  L = \frac{1}{B} \sum_{i=1}^{B} \Bigl[ -S_{ii} + \log \sum_{j=1}^{B} e^{S_{ij}} \Bigr]$$

That is the cross-entropy of the $B \times B$ score matrix $S$ with target $i$ for row $i$.""",
    example="""\
## A worked example

Two pairs of 2-D vectors, scale 1 to keep the numbers small: anchors (1, 0) and (0, 1),
positives (1, 0) and (1, 1). The cosine similarities are

| | p₁ = (1, 0) | p₂ = (1, 1) |
|---|---|---|
| a₁ = (1, 0) | **1** | 0.7071 |
| a₂ = (0, 1) | 0 | **0.7071** |

Row 1: -1 + log(e¹ + e^0.7071) = -1 + log(4.7464) = 0.5574.
Row 2: -0.7071 + log(e⁰ + e^0.7071) = -0.7071 + log(3.0281) = 0.4008.
The loss is their mean, **0.4791**. With scale 20 the same batch gives 0.0014: the scale
sharpens the softmax, so a positive that wins by a little already wins by a lot.""",
    example_code="""\
anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
positives = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
for scale in (1.0, 20.0):
    reference = losses.MultipleNegativesRankingLoss(None, scale=scale)
    print(scale, reference.compute_loss_from_embeddings([anchors, positives]))""",
    example_shows=("1.0 tensor(0.4791)", "20.0 tensor(0.0014)"),
    task="""\
## Your turn

Write `mnrl`. `anchors` and `positives` have shape `(B, dim)`. Handy: `F.normalize(x, dim=1)`
(unit rows, so a matrix product gives cosine similarities), `@` and `.T`, `torch.arange(B)`,
and `F.cross_entropy` or `torch.logsumexp` (never `exp` then `log`: with scale 1000 `exp`
overflows).""",
    stub='''\
def mnrl(anchors, positives, scale=20.0):
    """MultipleNegativesRankingLoss: each anchor picks its own positive out of the batch.

    anchors, positives: (B, dim) tensors; row i of positives is the positive of anchor i and
    every other row is one of its in-batch negatives.
    Returns the mean cross-entropy of scale * cos(anchors, positives) with target i for row i.
    """
    # Your code here: replace the line below.
    raise NotImplementedError''',
    solution='''\
def mnrl(anchors, positives, scale=20.0):
    """MultipleNegativesRankingLoss: each anchor picks its own positive out of the batch.

    anchors, positives: (B, dim) tensors; row i of positives is the positive of anchor i and
    every other row is one of its in-batch negatives.
    Returns the mean cross-entropy of scale * cos(anchors, positives) with target i for row i.
    """
    # Unit rows: their dot products are cosine similarities.
    scores = scale * F.normalize(anchors, dim=1) @ F.normalize(positives, dim=1).T  # (B, B)
    targets = torch.arange(len(anchors))  # anchor i's positive is column i
    return F.cross_entropy(scores, targets)  # mean of -log softmax(row i)[i]''',
    further="""\
## Going further

- What happens to the loss if two anchors in a batch are the same sentence (a duplicate)? Why
  do sentence-transformers users sample batches "without duplicates"?
- Larger batches make the task harder (more negatives). Why does that help the embeddings?
- `MultipleNegativesSymmetricRankingLoss` adds the other direction (each positive picks its
  anchor). Change your function to compute it.""",
)

COSENT = Content(
    name="cosent",
    number=4,
    minutes=20,
    idea="""\
## The idea

The data is sentence pairs with a gold similarity score (e.g. 0 to 1). Instead of forcing
each pair's cosine similarity to equal its score, CoSENT only asks for the right **order**:
whenever pair $i$ has a higher score than pair $j$, pair $i$ should also be more similar. Each
mis-ordered (or barely ordered) combination adds a smooth penalty, all inside one log, so the
worst offenders dominate.""",
    formula=r"""\
## The formula

With $s_i = \lambda \cdot \cos(a_i, b_i)$ (scale $\lambda$, default 20) and gold scores $y$:

$$L = \log\Bigl(1 + \sum_{(i, j):\; y_i > y_j} e^{\,s_j - s_i}\Bigr)$$

Pairs with equal scores are not compared. The "1 +" is the same as adding a logit 0 to a
log-sum-exp, which is how to compute it without overflow:
`torch.logsumexp(torch.cat([zeros(1), differences]), dim=0)`.""",
    example="""\
## A worked example

Three pairs, scale 10. Every first vector is (1, 0); the second vectors are chosen so the
cosine similarities are 0.9, 0.5 and 0.7; the gold scores are 1.0, 0.6 and 0.2.

| pair i above pair j | y_i > y_j | s_j - s_i | exp |
|---|---|---|---|
| 1 above 2 | 1.0 > 0.6 | 10·(0.5 - 0.9) = -4 | 0.0183 |
| 1 above 3 | 1.0 > 0.2 | 10·(0.7 - 0.9) = -2 | 0.1353 |
| 2 above 3 | 0.6 > 0.2 | 10·(0.7 - 0.5) = +2 | 7.3891 |

L = log(1 + 0.0183 + 0.1353 + 7.3891) = log(8.5427) = **2.1451**. Almost all of it comes from
pairs 2 and 3, the only mis-ordered combination.""",
    example_code="""\
cosines = torch.tensor([0.9, 0.5, 0.7])
a = torch.tensor([[1.0, 0.0]] * 3)
b = torch.stack([cosines, (1 - cosines**2).sqrt()], dim=1)  # unit vectors with those cosines
scores = torch.tensor([1.0, 0.6, 0.2])
reference = losses.CoSENTLoss(None, scale=10.0)
print(reference.compute_loss_from_embeddings([a, b], scores))""",
    example_shows=("tensor(2.1451)",),
    task="""\
## Your turn

Write `cosent`. `a` and `b` have shape `(B, dim)`, `scores` shape `(B,)`. Handy:
`F.cosine_similarity(a, b, dim=1)`, broadcasting (`s.unsqueeze(0) - s.unsqueeze(1)` is the
`(B, B)` matrix of all differences), a boolean mask to pick the entries with `y_i > y_j`, and
`torch.logsumexp`.""",
    stub='''\
def cosent(a, b, scores, scale=20.0):
    """CoSENT: log(1 + sum over y_i > y_j of exp(s_j - s_i)), s = scale * cos(a, b).

    a, b: (B, dim) tensors, row i of each is pair i; scores: (B,) gold scores.
    Returns a scalar tensor, differentiable with respect to a and b.
    """
    # Your code here: replace the line below.
    raise NotImplementedError''',
    solution='''\
def cosent(a, b, scores, scale=20.0):
    """CoSENT: log(1 + sum over y_i > y_j of exp(s_j - s_i)), s = scale * cos(a, b).

    a, b: (B, dim) tensors, row i of each is pair i; scores: (B,) gold scores.
    Returns a scalar tensor, differentiable with respect to a and b.
    """
    s = scale * F.cosine_similarity(a, b, dim=1)  # (B,)
    differences = s.unsqueeze(0) - s.unsqueeze(1)  # (B, B): [i, j] = s_j - s_i
    ranked_above = scores.unsqueeze(1) > scores.unsqueeze(0)  # (B, B): [i, j] = y_i > y_j
    logits = differences[ranked_above]  # one per ordered combination
    logits = torch.cat([logits.new_zeros(1), logits])  # the "1 +": exp(0) = 1
    return torch.logsumexp(logits, dim=0)''',
    further="""\
## Going further

- Multiply every score by 10, or subtract 0.5 from all of them: does the loss change? Why?
- Compare with `CosineSimilarityLoss` (mean squared error between cos and the score). Which
  one cares whether the model's similarities are 0.9 vs 0.8, and which only about the order?
- AnglE (`losses.AnglELoss`) keeps this exact ranking loss and changes only the similarity.
  Why might cosine similarity have trouble near ±1?""",
)

MATRYOSHKA = Content(
    name="matryoshka",
    number=5,
    minutes=15,
    idea="""\
## The idea

A Matryoshka embedding is trained so that its **first** $d$ numbers are a good embedding on
their own, for several $d$ (like the smallest doll inside the bigger ones). Afterwards you can
keep only the first 64 of 384 numbers and still search well, for a fraction of the storage.
MatryoshkaLoss is a *modifier*: it takes any loss and applies it several times, once per size
$d_k$, to the embeddings cut to their first $d_k$ coordinates and normalised again to length 1,
and adds the results with weights.""",
    formula=r"""\
## The formula

For an inner loss $\ell$, dims $d_1, \dots, d_K$ and weights $w_1, \dots, w_K$:

$$L = \sum_{k=1}^{K} w_k \cdot \ell\Bigl(\text{normalize}(A_{:, :d_k}),\;
      \text{normalize}(P_{:, :d_k})\Bigr)$$

where $A_{:, :d}$ keeps the first $d$ columns of every row and normalize scales each row to
length 1. It is a weighted **sum**, not a mean.""",
    example="""\
## A worked example

Take the anchor row (3, 4, 0, 12) with dims (4, 2):

- d = 4: the whole row, divided by its length 13: (0.2308, 0.3077, 0, 0.9231);
- d = 2: the first two numbers (3, 4), divided by their length 5: (0.6, 0.8).

Note that the second is *not* the first two numbers of the first: normalise after cutting.
With MultipleNegativesRankingLoss (scale 1) as the inner loss, weights (1, 0.5) and a second
pair, the code below computes the two terms (0.8167 and 0.8937) and their weighted sum
0.8167 + 0.5 · 0.8937 = **1.2635**, which is what the lab's MatryoshkaLoss gives.""",
    example_code="""\
anchors = torch.tensor([[3.0, 4.0, 0.0, 12.0], [1.0, 0.0, 2.0, 2.0]])
positives = torch.tensor([[4.0, 3.0, 12.0, 0.0], [0.0, 1.0, 2.0, 2.0]])
inner = losses.MultipleNegativesRankingLoss(None, scale=1.0)
for dim in (4, 2):
    cut = [F.normalize(anchors[:, :dim], dim=1), F.normalize(positives[:, :dim], dim=1)]
    print(dim, cut[0][0], inner.compute_loss_from_embeddings(cut))
reference = losses.MatryoshkaLoss(None, inner, matryoshka_dims=[4, 2],
                                  matryoshka_weights=[1.0, 0.5])
print(reference.compute_loss_from_embeddings([anchors, positives], None))""",
    example_shows=("tensor(0.8167)", "tensor(0.8937)", "tensor(1.2635)"),
    task="""\
## Your turn

Write `matryoshka`. `loss_fn(anchors, positives)` is any loss of two `(B, d)` tensors that
returns a scalar (the checker passes MultipleNegativesRankingLoss and others); `dims` and
`weights` are sequences of the same length, in any order. Handy: slicing `x[:, :d]`,
`F.normalize(x, dim=1)`, a loop over `zip(dims, weights, strict=True)`.""",
    stub='''\
def matryoshka(loss_fn, anchors, positives, dims, weights):
    """Weighted sum over the dims d of loss_fn on the first d coordinates, renormalised.

    loss_fn: a function (anchors, positives) -> scalar loss, for (B, d) tensors of any d.
    anchors, positives: (B, dim) tensors. dims, weights: sequences of the same length.
    Returns a scalar tensor, differentiable with respect to anchors and positives.
    """
    # Your code here: replace the line below.
    raise NotImplementedError''',
    solution='''\
def matryoshka(loss_fn, anchors, positives, dims, weights):
    """Weighted sum over the dims d of loss_fn on the first d coordinates, renormalised.

    loss_fn: a function (anchors, positives) -> scalar loss, for (B, d) tensors of any d.
    anchors, positives: (B, dim) tensors. dims, weights: sequences of the same length.
    Returns a scalar tensor, differentiable with respect to anchors and positives.
    """
    total = anchors.new_zeros(())  # float64 like the inputs
    for dim, weight in zip(dims, weights, strict=True):
        # Cut first, then normalise: each prefix must be a unit vector itself.
        small_anchors = F.normalize(anchors[:, :dim], dim=1)  # (B, dim)
        small_positives = F.normalize(positives[:, :dim], dim=1)
        total = total + weight * loss_fn(small_anchors, small_positives)
    return total''',
    further="""\
## Going further

- Train with `lab.train("MatryoshkaLoss", inner_loss="MultipleNegativesRankingLoss", ...)` and
  look at `result.extra_curves["matryoshka"]`: how much quality is left at 1/8 of the size?
- What happens to the full-size quality if the full dimension is left out of `dims`?
- Why normalise after cutting? Think of a loss that uses the dot product.""",
)

CONTENTS = (TRIPLET, BATCH_HARD, MNRL, COSENT, MATRYOSHKA)


def notebook_name(content: Content, solution: bool) -> str:
    """File name: NN_<name>.ipynb, or NN_<name>_solution.ipynb."""
    return f"{content.number:02d}_{content.name}{'_solution' if solution else ''}.ipynb"


def notebook_path(content: Content, solution: bool) -> Path:
    """Where a variant lives: notebooks/exercises/ or notebooks/exercises/solutions/."""
    folder = HERE / "solutions" if solution else HERE
    return folder / notebook_name(content, solution)


def build(content: Content, solution: bool) -> nbformat.NotebookNode:
    """One notebook variant, without outputs and with stable cell ids."""
    exercise = next(exercise for exercise in EXERCISES if exercise.name == content.name)
    checker = exercise.checker.__name__
    code = content.solution if solution else content.stub
    if not code.startswith(exercise.signature):
        raise ValueError(f"{content.name}: the code must start with {exercise.signature!r}")
    # F is imported for the student; where no cell uses it yet, say why it is there.
    noqa = "" if "F." in content.example_code + code else "  # noqa: F401 (handy for your code)"
    variant = " (solution)" if solution else ""
    intro = (f"# Exercise {content.number}: {exercise.title}{variant}\n\n"
             f"Implement **{exercise.title}** yourself, on plain embeddings (no model), and let "
             f"a checker compare it with the lab's implementation. About {content.minutes} "
             f"minutes; everything runs on a CPU in seconds.\n\n"
             + HOW_IT_WORKS.format(loss=exercise.loss))
    if solution:
        intro += ("\n\n*This is the solutions variant: the function below is one correct "
                  "answer, written from the formula. Try the blank notebook "
                  f"(`../{notebook_name(content, False)}`) first.*")
    check = (f"# Runs your function on every case and explains the first difference.\n"
             f"{checker}({exercise.name})")
    cells = [
        ("markdown", intro, []),
        ("code", SETUP.format(checker=checker, noqa=noqa), ["setup"]),
        ("markdown", content.idea, []),
        ("markdown", content.formula, []),
        ("markdown", content.example, []),
        ("code", content.example_code, ["example"]),
        ("markdown", content.task, []),
        ("code", code, ["solution" if solution else "stub"]),
        ("markdown", "## Check\n\nRun this cell after every change to your function (run the "
                     "function's cell first).", []),
        ("code", check, ["check"]),
        ("markdown", content.further, []),
    ]
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                       "name": "python3"},
        "language_info": {"name": "python"},
    }
    for index, (kind, source, tags) in enumerate(cells):
        make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        cell = make(source, id=f"{content.name}-{index:02d}")
        if tags:
            cell.metadata["tags"] = tags
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def render(notebook: nbformat.NotebookNode) -> str:
    """The notebook's file content."""
    return nbformat.writes(notebook) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write every notebook, or with --check report the ones that differ from a fresh build."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if a notebook is missing or out of date")
    options = parser.parse_args(argv)
    missing = {exercise.name for exercise in EXERCISES} - {content.name for content in CONTENTS}
    if missing:
        raise SystemExit(f"no notebook content for exercise(s) {sorted(missing)}")
    stale = []
    for content in CONTENTS:
        for solution in (False, True):
            path = notebook_path(content, solution)
            text = render(build(content, solution))
            if options.check:
                if not path.is_file() or path.read_text(encoding="utf-8") != text:
                    stale.append(path)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        names = ", ".join(str(path.relative_to(ROOT)) for path in stale)
        print(f"out of date (run python notebooks/exercises/build_exercises.py): {names}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
