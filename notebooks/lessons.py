"""The teaching text of the family notebooks, one :class:`Lesson` per catalog loss.

``build_notebooks.py`` turns this into notebooks. The catalog (``lab.catalog``) already holds
each loss's family, explanation, formula, paper, data formats and knobs; what is here is what a
teacher adds: the idea in plain words, a worked example small enough to check by hand (and the
code that checks it with our ``losses``), the widgets and the questions.

Conventions of the worked examples: a handful of 2-D (or 4-D) vectors with round numbers, the
hand computation in the markdown, and ``agree(by_hand, ours)`` in the code, which fails the
notebook if the two ever differ. Losses are built with ``model=None`` and called through
``compute_loss_from_embeddings``: no encoder, just the math.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PLOTS: tuple[str, ...] = ("loss-curve", "embedding-map-before-after",
                                  "similarity-histograms")
"""Figures of ``lab.report.figures`` every lesson shows unless it picks others."""

TRIPLET_PLOTS: tuple[str, ...] = ("loss-curve", "embedding-map-before-after",
                                  "similarity-histograms", "active-triplets",
                                  "mined-triplets-map", "mined-triplets-table")


@dataclass(frozen=True)
class Lesson:
    """What a notebook says and runs about one loss, besides what the catalog holds.

    Attributes:
        idea: the idea in plain words (markdown, a few sentences).
        example: the worked example computed by hand (markdown).
        example_code: code computing the same with ``losses`` and checking it with ``agree``.
        plots_note: what the plots of the training run show (markdown).
        widget_note: what the widget does (markdown).
        widget_code: code that shows the widget (it must only redo quick computations).
        try_these: questions and experiments for the student.
        train_note: what to know before the training run (markdown, optional).
        train_options: extra keyword arguments for ``lab.train`` as code, e.g. 'margin=1.0'.
        batch_size: the training batch size.
        plots: names of ``lab.report.figures`` to show, in order.
        extra_plots: code for figures beyond those (optional).
    """

    idea: str
    example: str
    example_code: str
    plots_note: str
    widget_note: str
    widget_code: str
    try_these: tuple[str, ...]
    train_note: str = ""
    train_options: str = ""
    batch_size: int = 16
    plots: tuple[str, ...] = DEFAULT_PLOTS
    extra_plots: str = ""


@dataclass(frozen=True)
class FamilyStory:
    """A family notebook's title, introduction, closing comparison and extra setup code."""

    title: str
    intro: str
    wrap_up: str
    setup_extra: str = ""


HOW_TO_USE = """
## How to use this notebook

Run the cells from top to bottom (Shift+Enter); the setup cell comes first. Every loss has the
same parts: **the idea** and its formula; **a worked example** with numbers you can check by hand
on paper, which our `losses` code then computes too (`agree` stops the notebook if they ever
differ); **a short training run** of a small model on the lab's teaching corpus; **the plots** of
what training did to the embeddings; **widgets** to turn the loss's knobs (they redo a quick
computation, never a training run, so move them freely); and **things to try**.

Each training run takes seconds to a minute on a laptop CPU; a GPU is used when there is one.
The probe sentences in the maps are paraphrases from 12 topics: half of them from meanings the
model trains on, half from meanings it never sees. The training summaries report both halves
(`train_...` is the seen half); the gap between them is memorisation, made visible.
"""

# =============================================================================================
# Family stories
# =============================================================================================

FAMILIES: dict[str, FamilyStory] = {
    "triplet": FamilyStory(
        title="Triplet losses: anchor, positive, negative, and a margin between them",
        intro="""
A triplet is three embeddings: an **anchor**, a **positive** that should lie close to it and a
**negative** that should lie farther away, by at least a **margin**. Once the negative is that
much farther than the positive, the triplet is satisfied and stops pulling; until then, the loss
is the shortfall.

`TripletLoss` takes triplets you wrote down. The four `Batch...TripletLoss`es take single
sentences with a class label and **mine** the triplets themselves, inside each batch: two
sentences of the same class give an (anchor, positive), any sentence of another class a
negative. They differ only in which of those triplets they use: all of them, the hardest, the
semi-hard ones, or the hardest with a soft hinge instead of a margin.

All worked examples use the same four points, drawn below after the setup cell: A and B are
class 0, C and D class 1. On purpose, they sit badly: each point's classmate is 4 away, while a
point of the other class is only 3 away.
""",
        wrap_up="""
Same data, same model, same number of steps: how far did each loss move the probe sentences'
topic kNN accuracy (measured on sentences no run trained on)? Batch-all uses every relation of
a batch; batch-hard only the worst; semi-hard avoids the hardest; the soft margin never stops
pushing. Look back at the active-triplet curves: which loss ran out of work first?
""",
        setup_extra='''
from lab.build import build_loss

# The four points of the worked examples: A and B are class 0, C and D class 1.
# Distances: A-B = C-D = 4 (classmates), A-C = B-D = 3 and A-D = B-C = 5 (other class).
A, B, C, D = POINTS = torch.tensor([[0.0, 0.0], [0.0, 4.0], [3.0, 0.0], [3.0, 4.0]])
LABELS = torch.tensor([0, 0, 1, 1])
NAMES = "ABCD"
display(helpers.points_figure(POINTS, LABELS, NAMES, positives=[(0, 1), (2, 3)],
                              title="the four points (classmates joined)"))
''',
    ),
    "contrastive pairs": FamilyStory(
        title="Contrastive losses: labelled pairs, a spring and a margin",
        intro="""
Contrastive losses read **pairs of sentences with a 0/1 label**: 1 means "same meaning", 0
"different". A positive pair is pulled together like a spring: the farther apart, the harder the
pull. A negative pair is pushed apart, but only while it is closer than the **margin**; beyond
the margin it is left alone, so the loss never wastes effort pushing unrelated sentences to the
ends of the space.

The distance is, by default, the **cosine distance** d = 1 − cos(u, v): 0 for the same
direction, 1 at right angles, 2 for opposite directions. The margin 0.5 therefore means
"negatives should be at least 60 degrees apart" (cos 60° = 0.5).

The worked examples share three pairs, defined in the setup cell: a positive pair at right
angles, a negative pair that points almost the same way, and a negative pair pointing in
opposite directions.
""",
        wrap_up="""
Both losses saw the same labelled pairs. `ContrastiveLoss` pushes and pulls every pair a little;
`OnlineContrastiveLoss` only the ones that are currently on the wrong side of the others. Which
one separated the topics more in the same number of steps?
""",
        setup_extra='''
# Three labelled pairs (u[i], v[i], label[i]) shared by the worked examples.
U = torch.tensor([[1.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
V = torch.tensor([[0.0, 1.0], [4.0, 3.0], [-1.0, 0.0]])
PAIR_LABELS = torch.tensor([1, 0, 0])  # pair 1 positive, pairs 2 and 3 negative
''',
    ),
    "scored pairs": FamilyStory(
        title="Scored pairs: teach the model how similar two sentences are",
        intro="""
Here every pair of sentences comes with a **gold similarity score** between 0 and 1. In the
lab's corpus: two paraphrases score 1.0, a near miss (same words, other meaning) 0.5, two
sentences of the same topic 0.25, and of different topics 0.0.

There are two ways to learn from scores. **Regression** (`CosineSimilarityLoss`): make the
cosine of each pair equal to its score, pair by pair. **Ranking** (`CoSENTLoss`, `AnglELoss`):
only ask that a pair with a higher score gets a higher similarity than a pair with a lower
score, whatever the exact numbers. Ranking is what similarity search needs, and it usually
trains better.

The worked examples share three scored pairs, defined in the setup cell. Their cosines are
0, 0.96 and 0.8, while their gold scores are 0.0, 0.5 and 1.0: the second pair looks too
similar, the third not similar enough.
""",
        wrap_up="""
The regression loss chases exact numbers, the two ranking losses chase the order. Compare the
gold-versus-cosine scatter plots above: which loss lines the pairs up in the right order, and
which one gets their cosines close to the gold values?
""",
        setup_extra='''
from lab.build import build_loss

# Three scored pairs (u[i], v[i], score[i]) shared by the worked examples.
U = torch.tensor([[1.0, 0.0], [3.0, 4.0], [3.0, 4.0]])
V = torch.tensor([[0.0, 1.0], [4.0, 3.0], [0.0, 5.0]])
SCORES = torch.tensor([0.0, 0.5, 1.0])
''',
    ),
    "in-batch negatives": FamilyStory(
        title="In-batch negatives: every other sentence in the batch is a negative",
        intro="""
These losses need only **positive pairs**: (anchor, positive), such as a question and its
answer or two paraphrases. The negatives come for free: in a batch of B pairs, each anchor's
positive is one of B candidates, and the B − 1 positives of the other pairs (plus any hard
negatives you add as extra columns) are its negatives. The loss is a softmax classification,
"which of these candidates is mine?", with the similarities multiplied by a **scale** (an
inverse temperature) before the softmax.

Two consequences: a **bigger batch** means more negatives and a harder, more useful task; and a
**duplicate** in the batch (another pair that happens to mean the same) becomes a false
negative. The lab trains these losses with sentence-transformers' no-duplicates batch sampler.

The variants: symmetric (positives also find their anchors), cached (gradient caching, for
batches that do not fit in memory), guided (GIST: a second model vetoes likely false negatives)
and MegaBatchMargin (hinges on the hardest in-batch negative).

The worked examples share two (anchor, positive) pairs of unit vectors, defined in the setup
cell: a₁ = (1, 0), a₂ = (0, 1), p₁ = (0.8, 0.6), p₂ = (0.6, 0.8). Each anchor's own positive
has cosine 0.8 with it, the other pair's positive 0.6.
""",
        wrap_up="""
All of these trained on the same (anchor, positive) pairs. Some ran on the tiny static model and
some on the tiny BERT (the cached and guided losses need a transformer), so compare the rows of
the same model. Which losses improved the unseen probe sentences most per second of training?
""",
        setup_extra='''
from lab.build import build_loss

# Two (anchor, positive) pairs of unit vectors shared by the worked examples: cos = dot product.
ANCHORS = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
POSITIVES = torch.tensor([[0.8, 0.6], [0.6, 0.8]])
display(helpers.points_figure(torch.cat([ANCHORS, POSITIVES]), [0, 1, 0, 1],
                              ["a1", "a2", "p1", "p2"], positives=[(0, 2), (1, 3)],
                              origin=True, title="two (anchor, positive) pairs"))

_tiny_bert = {}


def cached_vs_plain(cached, plain, mini_batch_size, rows=8, **knobs):
    """Value and gradient norm of a cached loss and of its plain twin on the same batch.

    A fresh tiny BERT (in eval mode: no dropout, so both see identical embeddings) embeds
    `rows` pairs of the corpus; each loss computes its value and back-propagates into the model.
    """
    if "model" not in _tiny_bert:
        _tiny_bert["model"] = lab.models.load_model("tiny-bert", device="cpu").eval()
        _tiny_bert["pairs"] = lab.data.load_dataset("pair")["train"].select(range(32))
    model, pairs = _tiny_bert["model"], _tiny_bert["pairs"].select(range(rows))
    results = {}
    for name, options in ((plain, knobs), (cached, {**knobs, "mini_batch_size": mini_batch_size})):
        loss = build_loss(name, model, options)
        model.zero_grad()
        features = [model.preprocess(list(pairs[column])) for column in ("anchor", "positive")]
        value = loss(features, None)
        value.backward()  # a cached loss re-embeds its mini-batches here
        gradient = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()
                                  if p.grad is not None))
        results[name] = (float(value.detach()), float(gradient))
    for name, (value, gradient) in results.items():
        print(f"{name:45s} loss {value:.6f}   gradient norm {gradient:.6f}")
    return results
''',
    ),
    "classification": FamilyStory(
        title="Classification: learn embeddings by classifying pairs",
        intro="""
`SoftmaxLoss` is how the original Sentence-BERT was trained: on NLI data, pairs of a premise and
a hypothesis labelled **entailment**, **neutral** or **contradiction**. The model embeds both
sentences into u and v; a small linear classifier reads the features [u, v, |u − v|] and
predicts the label; cross-entropy trains the classifier and the encoder together. Afterwards the
classifier is thrown away: what is kept is an encoder whose embeddings had to make those three
classes separable.

It is an indirect way to shape similarity (nothing in the loss says "entailed sentences should
have a high cosine"), which is why, for similarity search, losses that act on distances directly
usually do better.
""",
        wrap_up="""
One loss, one run. Compare its topic kNN accuracy with the runs of the other families (same
probe sentences, same model): did classifying NLI pairs make the topics easier to tell apart?
""",
        setup_extra="",
    ),
    "unsupervised": FamilyStory(
        title="Unsupervised losses: learn from raw sentences, without labels",
        intro="""
When all you have is sentences from your domain, no pairs and no labels, these losses still
shape the embedding space:

- **Contrastive tension** keeps two copies of the encoder. For the same sentence, their
  embeddings should agree (a high dot product); for different sentences, they should not. It
  undoes the habit of pretrained language models of giving every sentence a similar vector.
- **Contrastive tension with in-batch negatives** does the same as a softmax: each sentence's
  embedding by one copy must pick out the other copy's embedding of the same sentence among the
  whole batch.
- **TSDAE (denoising auto-encoder)** deletes most words of a sentence, embeds what is left, and
  asks a decoder to write the original sentence back from that one vector.

All three need a transformer model here (the tiny BERT): two encoder copies that can differ, or
an encoder that can also serve as a decoder.
""",
        wrap_up="""
None of these runs saw a topic label or a paraphrase pair, yet the probe sentences are scored
by topic. Did any of them improve topic kNN accuracy? Unsupervised losses usually need far more
steps than we gave them here; compare the direction of change rather than the size.
""",
        setup_extra="""
from lab.build import build_loss
""",
    ),
    "distillation": FamilyStory(
        title="Distillation: a student copies a teacher",
        intro="""
A big, good model (the **teacher**, here all-MiniLM-L6-v2) has already embedded or scored the
training data; the lab computed that once and stored it with the data. A small model (the
**student**, here the tiny static model) learns to reproduce what the teacher says. What exactly
it copies is the difference between the losses:

- `MSELoss`: the teacher's embedding, coordinate by coordinate;
- `EmbedDistillLoss`: the teacher's embedding, up to a choice of distance (cosine copies only
  the direction);
- `MarginMSELoss`: by how much the teacher prefers the positive to the negative for a query;
- `DistillKLDivLoss`: the teacher's whole distribution of preferences over several candidates.

In the 2-D playground the teacher is a fixed position per class (the stars), and you can watch
the student's points being drawn to it.
""",
        wrap_up="""
The students copied different things from the same teacher. Which copy transferred the most
topic structure to the unseen probe sentences? The task metrics in each summary above say how
close each student got to its teacher: `teacher_cosine` for the embedding copiers, retrieval
recall and triplet accuracy (ranked as the teacher ranks) for the margin and score copiers.
""",
        setup_extra="""
from lab.build import build_loss
""",
    ),
    "modifiers and regularisers": FamilyStory(
        title="Modifiers and regularisers: losses around other losses",
        intro="""
These do not define a task on their own (except the regulariser); they change **where** or
**how** another loss is applied:

- `MatryoshkaLoss` applies the inner loss to the first 32, 64, ... coordinates of the embedding
  too, so that a short prefix is already a usable embedding (cheaper storage and search);
- `AdaptiveLayerLoss` applies it to the embeddings of earlier transformer layers too, so the
  model can be cut short at inference;
- `Matryoshka2dLoss` does both at once;
- `GlobalOrthogonalRegularizationLoss` spreads unrelated embeddings out, so they do not all
  crowd into a narrow cone.

The wrappers train on the data of the loss they wrap (by default
`MultipleNegativesRankingLoss` on (anchor, positive) pairs). Their plots add quality versus
embedding size and versus layer, before and after training.
""",
        wrap_up="""
The wrappers add structure (short prefixes, early layers) on top of the inner loss; the
regulariser adds spread. Compare the quality-versus-dimension and versus-layer curves above with
the plain kNN accuracy here: what did each modifier buy, and did it cost full-size quality?
""",
        setup_extra="""
from lab.build import build_loss

# Two 4-D pairs with gold similarity scores, shared by the wrappers' worked examples.
U4 = torch.tensor([[3.0, 4.0, 0.0, 5.0], [1.0, 0.0, 0.0, 0.0]])
V4 = torch.tensor([[3.0, 4.0, 5.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
GOLD = torch.tensor([1.0, 0.0])
# The layer wrappers insist on a transformer model, even when handed embeddings directly.
BERT = lab.models.load_model("tiny-bert", device="cpu")
""",
    ),
}

# =============================================================================================
# Lessons, one per loss (the notebooks take the losses and their order from the catalog)
# =============================================================================================

_BATCH_TRIPLET_PLOTS_NOTE = """
From left to right and top to bottom: the loss at every step; the probe sentences before and
after training (one colour per topic, in one shared projection, so movement is real); distances
of same-topic pairs (green) and different-topic pairs (red) before and after, with the margin
dashed; the fraction of mined triplets that were still **active** (violating the margin) at
each step; and the triplets mined in the last recorded batch, drawn on the map (solid green:
anchor to positive, dotted red: anchor to negative) and listed with their loss.
"""


def _mining_widget(loss: str, knobs: str) -> str:
    """Widget code: mine the four points with the chosen knobs, then the playground."""
    start = ", margin=2.0" if "margin" in knobs else ""
    return f'''
def mine_four_points(**knobs):
    loss = build_loss("{loss}", None, knobs)
    value = loss.compute_loss_from_embeddings([POINTS], LABELS)
    print(f"loss on the four points: {{float(value):.4f}}")
    helpers.show_mined(loss.last_mined, NAMES)


explore(mine_four_points,
        knob_controls("{loss}", {knobs}{start}))
playground_explorer("{loss}", {knobs})
'''


LESSONS: dict[str, Lesson] = {}

# ------------------------------------------------------------------------------------- triplet
LESSONS["TripletLoss"] = Lesson(
    idea="""
Take an anchor, a positive and a negative. Measure two distances, anchor to positive and anchor
to negative. If the negative is already farther than the positive by the margin, the triplet is
fine and costs nothing. Otherwise the loss is the shortfall, and its gradient moves the anchor
towards the positive and away from the negative (and the other two points along with it).
""",
    example="""
Two triplets from the four points, margin 2, Euclidean distance:

| triplet (a, p, n) | d(a, p) | d(a, n) | d(a, p) − d(a, n) + 2 | loss |
|---|---|---|---|---|
| (A, B, C) | 4 | 3 | 3 | 3 |
| (C, D, B) | 4 | 5 | 1 | 1 |

Mean over the two triplets: (3 + 1) / 2 = **2**. The first triplet is badly violated (its
negative is closer than its positive). The second nearly holds: B would need to be just 1 unit
farther from C for it to cost nothing.
""",
    example_code='''
anchors = torch.stack([A, C])      # (2, 2): one row per triplet
positives = torch.stack([B, D])
negatives = torch.stack([C, B])
loss = losses.TripletLoss(None, triplet_margin=2)  # model=None: it gets embeddings directly
agree(2.0, loss.compute_loss_from_embeddings([anchors, positives, negatives], None))
display(helpers.points_figure(POINTS, LABELS, NAMES, positives=[(0, 1), (2, 3)],
                              negatives=[(0, 2), (2, 1)], title="triplets (A,B,C) and (C,D,B)"))
''',
    train_note="""
The `triplet` data of the corpus: a sentence, a paraphrase of it, and a hard negative (a near
miss that reuses its words, or another meaning of the same topic).
""",
    plots_note="""
The loss curve; the probe sentences before and after training (one colour per topic, in one
shared projection, so movement is real); and the cosine similarities of same-topic pairs
(green) and different-topic pairs (red) before and after. A loss that works pushes the green
histogram right of the red one.
""",
    widget_note="""
The playground: 18 free points in three overlapping classes, moved by this loss's gradient
(each point with a classmate anchors one fixed triplet; green lines join anchor and positive,
dotted red anchor and negative). The arrows are the forces at the end. Change the margin or the
distance and watch where the points settle.
""",
    widget_code='''
playground_explorer("TripletLoss", ["triplet_margin", "distance_metric"], links=True)
''',
    try_these=(
        "In the worked example, which margin makes the triplet (C, D, B) cost exactly 0? And "
        "(A, B, C)?",
        "In the playground, set the margin to 0. Why do the points barely move?",
        "Switch `distance_metric` to cosine. The cosine distance is at most 2: what does a margin "
        "of 5 mean then? Which margin would you choose?",
        "The corpus triplets use near misses as negatives. Why is a near miss a harder negative "
        "than a sentence on another topic, and why is that useful?",
    ),
)

LESSONS["BatchAllTripletLoss"] = Lesson(
    idea="""
You give single sentences with a class label; the loss forms every triplet the batch allows
(anchor and positive of the same class, negative of another class) and applies the triplet hinge
to all of them. It then averages over the triplets that still have a positive loss, so the loss
does not shrink just because many easy triplets pile up.
""",
    example="""
The four points with their labels, margin 2. Each point has one classmate (its positive) and
two points of the other class (its negatives): 4 × 1 × 2 = 8 triplets. For anchor A:

| anchor | positive (distance) | negative (distance) | [d(a,p) − d(a,n) + 2]₊ |
|---|---|---|---|
| A | B (4) | C (3) | 3 |
| A | B (4) | D (5) | 1 |

By symmetry B, C and D give the same two values: four triplets at 3, four at 1, all positive.
Batch-all averages over the triplets with a positive loss: (4 · 3 + 4 · 1) / 8 = **2**.
""",
    example_code='''
loss = losses.BatchAllTripletLoss(None, margin=2)
agree(2.0, loss.compute_loss_from_embeddings([POINTS], LABELS))
helpers.show_mined(loss.last_mined, NAMES)  # every triplet it formed
''',
    train_note="""
Label-balanced batches: the lab's sampler puts several sentences of each topic into every
batch (a batch of one topic would have no negatives).
""",
    plots=TRIPLET_PLOTS,
    plots_note=_BATCH_TRIPLET_PLOTS_NOTE,
    widget_note="""
First the four points, mined with the knobs you choose (the table lists every triplet, its loss
and whether it is active); then the playground, where 18 points in three classes move under the
loss.
""",
    widget_code=_mining_widget("BatchAllTripletLoss", '["margin", "distance_metric"]'),
    try_these=(
        "On the four points, raise the margin from 2 to 3. Predict the loss before you look.",
        "Lower the margin until some triplets become inactive. Does the loss drop as you expect? "
        "(Remember which triplets it averages over.)",
        "In the training plots, how did the fraction of active triplets change? What does it "
        "mean for learning when it drops to 0?",
        "Batch-all averages over active triplets only. What would go wrong, late in training, "
        "if it averaged over all triplets instead?",
    ),
)

LESSONS["BatchHardTripletLoss"] = Lesson(
    idea="""
For every sentence in the batch, take only its hardest case: the farthest sentence of its own
class and the closest sentence of another class. One triplet per anchor, the worst one. It
learns fast, but it trusts the labels: a mislabelled sentence is always somebody's hardest
case.
""",
    example="""
For each anchor: the hardest positive is the farthest classmate (for A: B, at 4, the only one)
and the hardest negative the closest point of the other class (for A: C, at 3):
[4 − 3 + 2]₊ = 3. Every anchor is in the same situation (B's closest negative is D at 3, and so
on), so the mean over the four anchors is **3**: higher than batch-all's 2, because only the
worst triplets count.
""",
    example_code='''
loss = losses.BatchHardTripletLoss(None, margin=2)
agree(3.0, loss.compute_loss_from_embeddings([POINTS], LABELS))
helpers.show_mined(loss.last_mined, NAMES)  # one (hardest) triplet per anchor
''',
    train_note=LESSONS["BatchAllTripletLoss"].train_note,
    plots=TRIPLET_PLOTS,
    plots_note=_BATCH_TRIPLET_PLOTS_NOTE,
    widget_note=LESSONS["BatchAllTripletLoss"].widget_note,
    widget_code=_mining_widget("BatchHardTripletLoss", '["margin", "distance_metric"]'),
    try_these=(
        "Set the margin to 0 on the four points. Which triplets stay active, and why?",
        "In the playground, compare batch-hard with batch-all at the same margin and steps: "
        "which separates the classes faster, which leaves points on the boundary?",
        "Look at the mined-triplets table of the training run: are the hardest negatives "
        "sentences you would call wrong, or near misses a human would also hesitate over?",
        "Why does batch-hard need several sentences of each class in every batch?",
    ),
)

LESSONS["BatchSemiHardTripletLoss"] = Lesson(
    idea="""
For every (anchor, positive) pair, choose a negative that is *semi-hard*: farther than the
positive, but the closest such one, so it still lies inside the margin. It skips negatives that
are closer than the positive (too hard: often label noise, and chasing them can collapse
training) and negatives that are already beyond the margin (too easy to teach anything).
""",
    example="""
For A with positive B (distance 4), the negatives are C (3) and D (5). Only D is farther than
the positive, so the semi-hard negative is D: [4 − 5 + 2]₊ = 1. Every pair is in the same
situation, so the mean is **1**. The miner ignored C, the negative that is closer than the
positive: batch-hard would have picked exactly that one.
""",
    example_code='''
loss = losses.BatchSemiHardTripletLoss(None, margin=2)
agree(1.0, loss.compute_loss_from_embeddings([POINTS], LABELS))
helpers.show_mined(loss.last_mined, NAMES)
''',
    train_note=LESSONS["BatchAllTripletLoss"].train_note,
    plots=TRIPLET_PLOTS,
    plots_note=_BATCH_TRIPLET_PLOTS_NOTE,
    widget_note=LESSONS["BatchAllTripletLoss"].widget_note,
    widget_code=_mining_widget("BatchSemiHardTripletLoss", '["margin", "distance_metric"]'),
    try_these=(
        "On the four points, which negative does the miner choose when the margin is 0.5? When "
        "no negative is farther than the positive, what does it fall back to?",
        "Move the margin slider: when does the loss on the four points become 0, and why does "
        "batch-hard still have work to do then?",
        "Compare the active-triplet curve with batch-hard's: which loss keeps more triplets "
        "active, and what does that say about its gradient?",
    ),
)

LESSONS["BatchHardSoftMarginTripletLoss"] = Lesson(
    idea="""
Batch-hard mining (farthest classmate, closest other-class point, per anchor), but instead of a
hinge with a margin it uses the soft hinge log(1 + eˣ). There is no margin to tune, and the loss
never reaches exactly zero: well-separated classes still feel a gentle push apart.
""",
    example="""
The mined triplets are batch-hard's: hardest positive at 4, hardest negative at 3 for every
anchor. Each costs log(1 + e^(4 − 3)) = log(1 + e) = log(3.718) = **1.3133**, and so does
their mean. A triplet that is comfortably satisfied, with d(a,p) − d(a,n) = −3, would still
cost log(1 + e⁻³) = 0.049.
""",
    example_code='''
import math

loss = losses.BatchHardSoftMarginTripletLoss(None)
agree(math.log(1 + math.e), loss.compute_loss_from_embeddings([POINTS], LABELS))
helpers.show_mined(loss.last_mined, NAMES)
''',
    train_note=LESSONS["BatchAllTripletLoss"].train_note,
    plots=TRIPLET_PLOTS,
    plots_note=_BATCH_TRIPLET_PLOTS_NOTE,
    widget_note="""
This loss has one knob, the distance. First the four points mined with it, then the playground.
""",
    widget_code=_mining_widget("BatchHardSoftMarginTripletLoss", '["distance_metric"]'),
    try_these=(
        "Plot log(1 + eˣ) against max(0, x + margin) in your head or on paper: where do they "
        "differ most?",
        "In the playground, run many steps. Do the classes keep drifting apart? Compare with "
        "batch-hard, which stops once the margin holds.",
        "Every mined triplet counts as active here. Why?",
    ),
)

# --------------------------------------------------------------------------- contrastive pairs
_CONTRASTIVE_PLOTS_NOTE = """
The loss curve; the probe sentences before and after (one colour per topic); the **cosine
distances** of same-topic (green) and different-topic (red) probe pairs with the margin 0.5
dashed: the loss wants negatives to the right of the margin and positives near 0; and the eval
pairs' cosine against their 0/1 label, before and after.
"""

_CONTRASTIVE_EXTRA_PLOTS = '''
(_, before), (_, after) = result.snapshots[0], result.snapshots[-1]
margin = result.knobs.get("margin", catalog.get(result.loss).knob("margin").default)
display(viz.similarity_histograms(before, after, result.probe.labels, measure="cosine_distance",
                                  margin=margin, title="probe pairs, with the margin"))
display(helpers.gold_vs_cosine(result))
'''

LESSONS["ContrastiveLoss"] = Lesson(
    idea="""
For a positive pair (label 1), the loss is the squared distance: a spring pulling the two
sentences together, harder the farther apart they are. For a negative pair (label 0), it is the
squared amount by which they are closer than the margin: a push that stops as soon as they are
far enough apart.
""",
    example="""
The three pairs of the setup cell, cosine distance d = 1 − cos, margin 0.5:

| pair | u | v | label | cos | d | term |
|---|---|---|---|---|---|---|
| 1 | (1, 0) | (0, 1) | 1 | 0 | 1 | ½ · d² = 0.5 |
| 2 | (3, 4) | (4, 3) | 0 | 24/25 = 0.96 | 0.04 | ½ · [0.5 − 0.04]₊² = ½ · 0.2116 = 0.1058 |
| 3 | (1, 0) | (−1, 0) | 0 | −1 | 2 | ½ · [0.5 − 2]₊² = 0 |

Mean: (0.5 + 0.1058 + 0) / 3 = **0.2019**. Pair 1 is pulled (a positive at right angles), pair
2 pushed (a negative that points almost the same way), pair 3 ignored (a negative already far
beyond the margin).
""",
    example_code='''
loss = losses.ContrastiveLoss(None)  # cosine distance, margin 0.5, mean over pairs
agree((0.5 + 0.5 * 0.46**2 + 0) / 3, loss.compute_loss_from_embeddings([U, V], PAIR_LABELS))
display(helpers.points_figure(torch.cat([U, V]), [0, 1, 2, 0, 1, 2],
                              ["u1", "u2", "u3", "v1", "v2", "v3"], positives=[(0, 3)],
                              negatives=[(1, 4), (2, 5)], origin=True,
                              title="pair 1 positive, pairs 2 and 3 negative"))
''',
    train_note="""
The `pair-label` data: two paraphrases are labelled 1; a near miss or another meaning of the
same topic is labelled 0.
""",
    plots=("loss-curve", "embedding-map-before-after"),
    extra_plots=_CONTRASTIVE_EXTRA_PLOTS,
    plots_note=_CONTRASTIVE_PLOTS_NOTE,
    widget_note="""
The playground: each point is paired once with a classmate (label 1) and once with a point of
another class (label 0). Change the distance and the margin and watch which pairs stop moving.
""",
    widget_code='''
playground_explorer("ContrastiveLoss", ["distance_metric", "margin", "size_average"])
''',
    try_these=(
        "In the worked example, which margin would make pair 2 cost nothing? Is that a margin "
        "you would want?",
        "The positive term has no margin: a positive pair is pulled until it coincides. What "
        "does that do to paraphrases that are only roughly the same?",
        "In the playground, try `euclidean` with margin 0.5 and then 2.0. Why does the picture "
        "change so much more than with cosine?",
        "Set `size_average` off. What changes in the loss value, and what in the motion?",
    ),
)

LESSONS["OnlineContrastiveLoss"] = Lesson(
    idea="""
The contrastive loss, applied only to the pairs that are currently confusing: positive pairs
that are farther apart than the closest negative pair, and negative pairs that are closer than
the farthest positive pair. Easy pairs are left out, so all the gradient goes where the model is
wrong.
""",
    example="""
The same three pairs. The positive pair 1 has d = 1; the negative pairs have d = 0.04 (pair 2)
and d = 2 (pair 3).

- A positive counts if it is farther than the closest negative: 1 > 0.04, so pair 1 counts,
  with d² = 1.
- A negative counts if it is closer than the farthest positive: pair 2 (0.04 < 1) counts, with
  [0.5 − 0.04]₊² = 0.2116; pair 3 (2 > 1) is easy and left out.

The loss is the **sum**, without the ½: 1 + 0.2116 = **1.2116**.
""",
    example_code='''
loss = losses.OnlineContrastiveLoss(None)  # cosine distance, margin 0.5
agree(1 + 0.46**2, loss.compute_loss_from_embeddings([U, V], PAIR_LABELS))
''',
    train_note=LESSONS["ContrastiveLoss"].train_note,
    plots=("loss-curve", "embedding-map-before-after"),
    extra_plots=_CONTRASTIVE_EXTRA_PLOTS,
    plots_note=_CONTRASTIVE_PLOTS_NOTE + """
The loss curve is jumpy: the number of hard pairs changes from batch to batch, and the loss is a
sum over them, not a mean.
""",
    widget_note=LESSONS["ContrastiveLoss"].widget_note,
    widget_code='''
playground_explorer("OnlineContrastiveLoss", ["distance_metric", "margin"])
''',
    try_these=(
        "Change pair 3 in the worked example to v = (0, 1) (d = 1). Does it count now? Work it "
        "out, then check with the code.",
        "Why does a batch with no positive pair, or no negative pair, give this loss nothing to "
        "do?",
        "In the playground, watch the loss value: why can it stay at exactly 0 while some "
        "negatives are still inside the margin?",
    ),
)

# -------------------------------------------------------------------------------- scored pairs
_SCORED_PLOTS_NOTE = """
The loss curve; the probe sentences before and after; same-topic (green) and different-topic
(red) cosine similarities of probe pairs; and, the plot that matters here, each eval pair's
cosine against its gold score, before and after, with the Spearman rank correlation (1.0 = the
model orders the pairs exactly as the gold scores do).
"""

LESSONS["CosineSimilarityLoss"] = Lesson(
    idea="""
Regression on similarity: for every pair, the squared difference between the cosine of the two
embeddings and the gold score. Each pair is handled on its own, and the target is an exact
number: a pair of paraphrases must reach cosine 1.0, an unrelated pair exactly 0.0.
""",
    example="""
The three scored pairs: cosines 0, 0.96 (= 24/25) and 0.8 (= 20/25), gold scores 0.0, 0.5 and
1.0.

| pair | cos | gold | (cos − gold)² |
|---|---|---|---|
| 1 | 0 | 0.0 | 0 |
| 2 | 0.96 | 0.5 | 0.2116 |
| 3 | 0.8 | 1.0 | 0.04 |

Mean: (0 + 0.2116 + 0.04) / 3 = **0.0839**.
""",
    example_code='''
loss = losses.CosineSimilarityLoss(None)  # mean squared error between cos and score
agree((0.46**2 + 0.2**2) / 3, loss.compute_loss_from_embeddings([U, V], SCORES))
''',
    train_note="""
The `pair-score` data: paraphrases 1.0, a near miss 0.5, two meanings of the same topic 0.25,
different topics 0.0.
""",
    extra_plots="display(helpers.gold_vs_cosine(result))",
    plots_note=_SCORED_PLOTS_NOTE,
    widget_note="""
The playground: each point appears in two pairs, with a classmate (score 1.0) and with a point
of another class (score 0.0). Only directions matter to the cosine, so the points fan out
around the origin (the grey cross).
""",
    widget_code='''
playground_explorer("CosineSimilarityLoss", ["loss_fct"])
''',
    try_these=(
        "Pair 3 has gold score 1.0 but cosine 0.8. Which single coordinate change of v₃ would "
        "make it cost 0?",
        "Switch `loss_fct` to l1 in the playground. Which pairs does it push harder than mse, "
        "the nearly right ones or the very wrong ones?",
        "Why is an exact target cosine of 0.0 for unrelated sentences a strong (maybe too "
        "strong) demand?",
    ),
)

_RANKING_RATE_NOTE = """
With scale 20 the ranking losses have steep gradients, and the static model's default learning
rate (0.01) overshoots on this data: the eval Spearman gets worse. We train with 0.003.
"""

LESSONS["CoSENTLoss"] = Lesson(
    idea="""
A ranking loss for scored pairs: whenever one pair has a higher gold score than another, the
model's similarity for it should be higher too. Each wrongly ordered couple of pairs adds a
penalty that grows exponentially with how wrong the order is; correctly ordered couples add
almost nothing. Hitting exact values does not matter, only the order.
""",
    example="""
Ordered by gold score: pair 3 (1.0) > pair 2 (0.5) > pair 1 (0.0). Model similarities
s₁ = 0, s₂ = 0.96, s₃ = 0.8. Each couple (i, j) with yᵢ > yⱼ adds exp(scale · (sⱼ − sᵢ)), with
scale 20:

| couple | sⱼ − sᵢ | term |
|---|---|---|
| (3, 2) | 0.96 − 0.8 = 0.16 | e^3.2 = 24.53 (wrong order: pair 2 scores above pair 3) |
| (3, 1) | 0 − 0.8 | e^−16 ≈ 0.0000001 |
| (2, 1) | 0 − 0.96 | e^−19.2 ≈ 0 |

L = log(1 + 24.53 + …) = log(25.53) = **3.2400**. Only the one couple in the wrong order
counts. Note that pair 3 is not asked to reach cosine 1.0, just to beat pair 2.
""",
    example_code='''
import math

loss = losses.CoSENTLoss(None)  # scale 20, cosine similarity
by_hand = math.log(1 + math.exp(20 * 0.16) + math.exp(-16) + math.exp(-19.2))
agree(by_hand, loss.compute_loss_from_embeddings([U, V], SCORES))
''',
    train_note=LESSONS["CosineSimilarityLoss"].train_note + _RANKING_RATE_NOTE,
    train_options="learning_rate=0.003",
    extra_plots="display(helpers.gold_vs_cosine(result))",
    plots_note=_SCORED_PLOTS_NOTE,
    widget_note="""
First the worked example as a function of the scale (and the similarity): watch how the scale
turns a small mistake in the order into a large loss. Then the playground.
""",
    widget_code='''
def cosent_on_three_pairs(scale, similarity_fct):
    loss = build_loss("CoSENTLoss", None, {"scale": scale, "similarity_fct": similarity_fct})
    value = float(loss.compute_loss_from_embeddings([U, V], SCORES))
    print(f"loss on the three pairs: {value:.4f}")


explore(cosent_on_three_pairs, knob_controls("CoSENTLoss"))
playground_explorer("CoSENTLoss", ["scale", "similarity_fct"])
''',
    try_these=(
        "Train again with `learning_rate=0.01` (the default for the tiny model). What happens "
        "to the loss curve and to the Spearman correlation?",
        "With scale 1 instead of 20, recompute the worked example by hand. Why does a small "
        "scale make the loss care about correctly ordered couples too?",
        "Compare the gold-versus-cosine plot with CosineSimilarityLoss's: which one has the "
        "higher Spearman, which one has cosines closer to the gold values?",
        "CoSENT also accepts 0/1 labels (`pair-label`). What does ranking mean with only two "
        "possible labels?",
    ),
)

LESSONS["AnglELoss"] = Lesson(
    idea="""
CoSENT's ranking, with a different similarity. Each embedding is read as a list of complex
numbers (first half real parts, second half imaginary parts) and two embeddings are compared by
how far one is rotated against the other. The cosine flattens out near ±1, so its gradient
vanishes for nearly identical or opposite pairs; this angle-based score keeps a usable gradient
there.
""",
    example="""
A 2-D vector (x, y) is one complex number x + iy. For unit vectors at angles α and β the
score works out to |cos(α − β) + sin(α − β)|:

| pair | x̂ | ŷ | cos(α − β) | sin(α − β) | score |
|---|---|---|---|---|---|
| 1 | (1, 0) | (0, 1) | 0 | −1 | 1 |
| 2 | (0.6, 0.8) | (0.8, 0.6) | 0.96 | 0.8·0.8 − 0.6·0.6 = 0.28 | 1.24 |
| 3 | (0.6, 0.8) | (0, 1) | 0.8 | 0.8·0 − 0.6·1 = −0.6 | 0.2 |

CoSENT's ranking with scale 20: (3, 2) adds e^(20 · (1.24 − 0.2)) = e^20.8, (3, 1) adds
e^(20 · (1 − 0.2)) = e^16, (2, 1) adds e^(20 · (1 − 1.24)) = e^−4.8. So
L = log(1 + e^20.8 + e^16 + e^−4.8) ≈ 20.8 + e^−4.8 ≈ **20.808**. In two dimensions this score
is odd (pair 1, at right angles, scores as high as identical vectors): it is designed for
hundreds of dimensions, where the imaginary part refines the cosine. The mechanics are the
point here.
""",
    example_code='''
import math

loss = losses.AnglELoss(None)  # scale 20
by_hand = math.log(1 + math.exp(20 * 1.04) + math.exp(20 * 0.8) + math.exp(-20 * 0.24))
agree(by_hand, loss.compute_loss_from_embeddings([U, V], SCORES))
''',
    train_note=LESSONS["CosineSimilarityLoss"].train_note + _RANKING_RATE_NOTE,
    train_options="learning_rate=0.003",
    extra_plots="display(helpers.gold_vs_cosine(result))",
    plots_note=_SCORED_PLOTS_NOTE,
    widget_note="""
The worked example as a function of the scale, next to CoSENT's value on the same pairs; then
the playground.
""",
    widget_code='''
def angle_on_three_pairs(scale):
    for name in ("AnglELoss", "CoSENTLoss"):
        loss = build_loss(name, None, {"scale": scale})
        value = float(loss.compute_loss_from_embeddings([U, V], SCORES))
        print(f"{name:11s} on the three pairs: {value:.4f}")


explore(angle_on_three_pairs, knob_controls("AnglELoss"))
playground_explorer("AnglELoss", ["scale"])
''',
    try_these=(
        "Check row 2 of the table with the formula |cos + Σ(b·c − a·d)|: which coordinates are "
        "a, b, c and d?",
        "Rotate both vectors of a pair by the same angle. Does the score change? Why is that "
        "the property a similarity should have?",
        "Compare the gold-versus-cosine plot with CoSENT's. The plot shows cosines, but AnglE "
        "trained a different score: is the comparison fair?",
    ),
)

# -------------------------------------------------------------------------- in-batch negatives
_IN_BATCH_PLOTS_NOTE = """
The loss curve; the probe sentences before and after; same-topic (green) and different-topic
(red) cosine similarities of probe pairs; and the cosine similarities of six eval pairs the model
never saw (anchors first, then their positives, in the same order, colour = pair). The loss
trained each anchor to light up its own positive: look at the block where anchor rows meet
positive columns, and at its diagonal.
"""

_IN_BATCH_EXTRA_PLOTS = '''
unseen = lab.data.load_dataset("pair")["eval"].select(range(6))  # six pairs, six meanings
texts = list(unseen["anchor"]) + list(unseen["positive"])
display(viz.similarity_heatmap(result.model.encode(texts), texts, labels=list(range(6)) * 2,
                               title="six unseen pairs after training"))
'''

_IN_BATCH_TRAIN_NOTE = """
The `pair` data: (anchor, paraphrase) pairs, drawn with no duplicate text in a batch.
"""

LESSONS["MultipleNegativesRankingLoss"] = Lesson(
    idea="""
Each anchor gets a multiple-choice question: "which of these candidates is my positive?" The
candidates are all positives of the batch (and any hard negatives). Scores are scaled
similarities, turned into probabilities by a softmax, and the loss is minus the log-probability
of the right answer. Also known as InfoNCE.
""",
    example="""
Two pairs. Row 1: anchor a₁ against the candidates p₁ (its own) and p₂, cosines 0.8 and 0.6;
times scale 20: logits 16 and 12. The loss of picking p₁ is

  −16 + log(e¹⁶ + e¹²) = log(1 + e^(12 − 16)) = log(1 + e⁻⁴) = 0.01815.

Row 2 is the mirror image and costs the same. The mean is **0.0181**. With scale 1 instead of
20 the same batch would cost log(1 + e^−0.2) = 0.598: the scale decides how sharply the softmax
reacts to a small difference in cosine.
""",
    example_code='''
import math

loss = losses.MultipleNegativesRankingLoss(None)  # scale 20, cosine similarity
agree(math.log(1 + math.exp(-4)), loss.compute_loss_from_embeddings([ANCHORS, POSITIVES], None))
''',
    train_note=_IN_BATCH_TRAIN_NOTE,
    extra_plots=_IN_BATCH_EXTRA_PLOTS,
    plots_note=_IN_BATCH_PLOTS_NOTE,
    widget_note="""
First the worked example: the probability each anchor gives its own positive, as a function of
the scale and the similarity. Then the playground, where each point is paired with one classmate
and every other pair's positive is a negative, even one of the same class.
""",
    widget_code='''
def softmax_rows(scale, similarity_fct):
    loss = build_loss("MultipleNegativesRankingLoss", None,
                      {"scale": scale, "similarity_fct": similarity_fct})
    value = float(loss.compute_loss_from_embeddings([ANCHORS, POSITIVES], None))
    scores = scale * (ANCHORS @ POSITIVES.T)  # (2, 2); unit vectors: dot = cos
    print("P(own positive) per anchor:", torch.softmax(scores, dim=1).diagonal().numpy().round(4))
    print(f"loss: {value:.4f}")


explore(softmax_rows, knob_controls("MultipleNegativesRankingLoss",
                                    ["scale", "similarity_fct"]))
playground_explorer("MultipleNegativesRankingLoss", ["scale", "similarity_fct", "directions"])
''',
    try_these=(
        "With scale 20, how much larger must the right cosine be than the wrong one for the "
        "anchor to give its positive 99% probability?",
        "In the playground, pairs of the same class are negatives of each other. What does that "
        "do to a class? Is it a bug or a feature of the loss?",
        "Why does a larger batch make this loss harder, and why is that good?",
        "Add a hard-negative column in your head: what changes in the worked example if a₁ also "
        "had a negative n₁ = (1, 0)?",
    ),
)

LESSONS["MultipleNegativesSymmetricRankingLoss"] = Lesson(
    idea="""
The same multiple-choice question in both directions: each anchor must pick its positive among
the positives, and each positive must pick its anchor among the anchors. The two losses are
averaged. Natural when the relation is symmetric (paraphrases, translations) or when you will
search both ways.
""",
    example="""
Forward, as in MultipleNegativesRankingLoss: 0.01815 per row. Backward, p₁ chooses among the
anchors a₁ and a₂: cosines 0.8 and 0.6, the same numbers, because this little batch is
symmetric; also 0.01815 per row. L = ½ (0.01815 + 0.01815) = **0.0181**. The widget below
rotates p₂ to break the symmetry.
""",
    example_code='''
import math

loss = losses.MultipleNegativesSymmetricRankingLoss(None)
agree(math.log(1 + math.exp(-4)), loss.compute_loss_from_embeddings([ANCHORS, POSITIVES], None))
''',
    train_note=_IN_BATCH_TRAIN_NOTE,
    extra_plots=_IN_BATCH_EXTRA_PLOTS,
    plots_note=_IN_BATCH_PLOTS_NOTE,
    widget_note="""
Rotate p₂ (its angle in degrees; 53° is the worked example) and compare the two directions:
forward (anchors choose) and backward (positives choose), and the symmetric loss, their mean.
Then the playground.
""",
    widget_code='''
import math


def both_directions(p2_degrees, scale):
    angle = math.radians(p2_degrees)
    positives = torch.stack([POSITIVES[0], torch.tensor([math.cos(angle), math.sin(angle)])])
    forward = build_loss("MultipleNegativesRankingLoss", None, {"scale": scale})
    symmetric = build_loss("MultipleNegativesSymmetricRankingLoss", None, {"scale": scale})
    ahead = float(forward.compute_loss_from_embeddings([ANCHORS, positives], None))
    back = float(forward.compute_loss_from_embeddings([positives, ANCHORS], None))
    both = float(symmetric.compute_loss_from_embeddings([ANCHORS, positives], None))
    print(f"forward {ahead:.4f}   backward {back:.4f}   symmetric {both:.4f}")


explore(both_directions, {"p2_degrees": helpers.slider("p2 angle (degrees)", 53, 0, 90, 1),
                          **knob_controls("MultipleNegativesSymmetricRankingLoss", ["scale"])})
playground_explorer("MultipleNegativesSymmetricRankingLoss", ["scale"])
''',
    try_these=(
        "Find a p₂ angle where the forward loss is small but the backward loss is large. What "
        "does p₂ look like to a₁ and to a₂ there?",
        "Is the symmetric loss always the mean of the forward loss on (a, p) and on (p, a)? "
        "Check with the widget.",
        "Compare this run's numbers with MultipleNegativesRankingLoss's above: same data, same "
        "steps. Any difference?",
    ),
)

_CACHED_TRAIN_NOTE = """
We train with `mini_batch_size=4`: each batch of 16 pairs is embedded 4 texts at a time, so
caching really happens. The reference refuses static-embedding models here, hence the tiny BERT.
"""

_CACHED_IDEA = """
The same loss, computed so that the batch no longer has to fit in memory. Gradient caching
(GradCache) works in three passes: embed the whole batch in small mini-batches without keeping
the activations; compute the loss and its gradient with respect to the embeddings only (cheap);
then re-embed each mini-batch, this time with activations, and push the cached embedding
gradients into the model. Same value, same gradient, about twice the compute, and memory that
no longer grows with the batch: you can afford the huge batches in-batch negatives love.
"""

LESSONS["CachedMultipleNegativesRankingLoss"] = Lesson(
    idea=_CACHED_IDEA,
    example="""
On embeddings there is nothing to cache, so the loss is exactly MultipleNegativesRankingLoss:
the same two pairs cost log(1 + e⁻⁴) = **0.0181**. The interesting check needs a model: the
widget below embeds 8 real pairs with the tiny BERT and compares value and gradient with the
uncached loss, for any mini-batch size.
""",
    example_code='''
import math

loss = losses.CachedMultipleNegativesRankingLoss(None)
agree(math.log(1 + math.exp(-4)), loss.compute_loss_from_embeddings([ANCHORS, POSITIVES], None))
''',
    train_note=_CACHED_TRAIN_NOTE,
    train_options="mini_batch_size=4",
    extra_plots=_IN_BATCH_EXTRA_PLOTS,
    plots_note=_IN_BATCH_PLOTS_NOTE,
    widget_note="""
Choose the mini-batch size: the cached loss and the plain one compute the value and the gradient
norm of the same 8 pairs on a fresh tiny BERT. They agree for every size (up to float rounding
in the last digits).
""",
    widget_code='''
explore(lambda mini_batch_size: cached_vs_plain(
            "CachedMultipleNegativesRankingLoss", "MultipleNegativesRankingLoss",
            mini_batch_size),
        knob_controls("CachedMultipleNegativesRankingLoss", ["mini_batch_size"],
                      mini_batch_size=2))
''',
    try_these=(
        "Time the widget with mini-batch size 1 and 8. Which is slower, and why?",
        "Why can the loss's gradient with respect to the embeddings be computed for the whole "
        "batch, while the model's gradient has to be computed mini-batch by mini-batch?",
        "Dropout makes each forward pass random. What must the cached loss remember between the "
        "first and the third pass so the gradient stays exact?",
    ),
)

LESSONS["CachedMultipleNegativesSymmetricRankingLoss"] = Lesson(
    idea="""
The symmetric in-batch loss (anchors choose positives, positives choose anchors) with the
gradient caching just described: same value and gradient as
MultipleNegativesSymmetricRankingLoss, memory independent of the batch size, about twice the
compute.
""",
    example="""
On embeddings: the symmetric loss of the two pairs, ½ (0.01815 + 0.01815) = **0.0181**.
""",
    example_code='''
import math

loss = losses.CachedMultipleNegativesSymmetricRankingLoss(None)
agree(math.log(1 + math.exp(-4)), loss.compute_loss_from_embeddings([ANCHORS, POSITIVES], None))
''',
    train_note=_CACHED_TRAIN_NOTE,
    train_options="mini_batch_size=4",
    extra_plots=_IN_BATCH_EXTRA_PLOTS,
    plots_note=_IN_BATCH_PLOTS_NOTE,
    widget_note=LESSONS["CachedMultipleNegativesRankingLoss"].widget_note,
    widget_code='''
explore(lambda mini_batch_size: cached_vs_plain(
            "CachedMultipleNegativesSymmetricRankingLoss",
            "MultipleNegativesSymmetricRankingLoss", mini_batch_size),
        knob_controls("CachedMultipleNegativesSymmetricRankingLoss", ["mini_batch_size"],
                      mini_batch_size=2))
''',
    try_these=(
        "With mini-batch size 8 and 8 pairs there is a single mini-batch. Is the cached loss "
        "then doing any extra work?",
        "Which costs more memory in the cached loss: the embeddings of the whole batch or the "
        "activations of one mini-batch? For a 384-dimensional model and batch 4096?",
    ),
)

_GIST_EXAMPLE = """
The two pairs, with temperature τ = 0.1 (so scale 10) and, to keep the numbers few,
`contrast_anchors=False` and `contrast_positives=False`: each anchor's candidates are the two
positives. A guide model sees the texts differently; its embeddings are
g(a₁) = (1, 0), g(p₁) = (0.6, 0.8), g(a₂) = (0.8, 0.6), g(p₂) = (0.8, 0.6).

- Row 1. The guide's similarity of the true pair is g(a₁)·g(p₁) = 0.6; of the candidate p₂ it
  is g(a₁)·g(p₂) = 0.8, higher. The guide thinks p₂ fits a₁ better than a₁'s own positive, so p₂
  is probably a false negative and is **removed**. Only p₁ is left: −8 + log(e⁸) = 0.
- Row 2. g(a₂)·g(p₂) = 1.0 and g(a₂)·g(p₁) = 0.96 < 1.0: p₁ stays. Logits 10 · (0.6, 0.8)
  = (6, 8): log(1 + e^(6 − 8)) = log(1 + e⁻²) = 0.1269.

Mean: (0 + 0.1269) / 2 = **0.0635**. Without the guide's veto, row 1 would also cost 0.1269.
"""

_GIST_EXAMPLE_CODE = '''
import math

GUIDE = [torch.tensor([[1.0, 0.0], [0.8, 0.6]]),   # the guide's anchors
         torch.tensor([[0.6, 0.8], [0.8, 0.6]])]   # the guide's positives
loss = losses.{name}(None, guide=None, temperature=0.1, contrast_anchors=False,
                     contrast_positives=False)
agree(math.log(1 + math.exp(-2)) / 2,
      loss.compute_loss_from_embeddings([ANCHORS, POSITIVES], None, GUIDE))
'''

LESSONS["GISTEmbedLoss"] = Lesson(
    idea="""
In-batch negatives with a referee. A second, frozen **guide** model scores the same candidates.
Any in-batch negative that the guide finds more similar to the anchor than the anchor's own
positive is taken out of that anchor's softmax: it is probably another valid answer that
happens to share the batch (a false negative), and punishing it would teach the wrong thing.
""",
    example=_GIST_EXAMPLE,
    example_code=_GIST_EXAMPLE_CODE.format(name="GISTEmbedLoss"),
    train_note="""
The student is the tiny BERT and the guide the full all-MiniLM-L6-v2 (loaded from the local
package, never trained). Each step embeds the batch with both.
""",
    extra_plots=_IN_BATCH_EXTRA_PLOTS,
    plots_note=_IN_BATCH_PLOTS_NOTE,
    widget_note="""
The worked example under every knob: the table says, for each anchor and candidate, the guide's
similarity, the threshold it must stay under (the true pair's guide similarity minus the
margin, for the absolute strategy) and whether the candidate is kept. With the contrast
switches on, anchors and positives also compete as candidates and the value changes with them.
""",
    widget_code='''
def referee(temperature, margin_strategy, margin, contrast_anchors, contrast_positives):
    loss = build_loss("GISTEmbedLoss", None, {
        "guide": None, "temperature": temperature, "margin_strategy": margin_strategy,
        "margin": margin, "contrast_anchors": contrast_anchors,
        "contrast_positives": contrast_positives})
    value = float(loss.compute_loss_from_embeddings([ANCHORS, POSITIVES], None, GUIDE))
    guide_scores = GUIDE[0] @ GUIDE[1].T  # (2, 2): guide similarity of anchor i, positive j
    rows = ["| anchor | candidate | guide sim | threshold | kept |", "|---|---|---|---|---|"]
    for i in range(2):
        true = float(guide_scores[i, i])
        threshold = true - margin if margin_strategy == "absolute" else true - abs(true) * margin
        for j in range(2):
            kept = i == j or float(guide_scores[i, j]) <= threshold
            rows.append(f"| a{i + 1} | p{j + 1} | {float(guide_scores[i, j]):.2f} | "
                        f"{threshold:.2f} | {'yes' if kept else 'removed'} |")
    display(Markdown("\\n".join(rows)))
    print(f"loss: {value:.4f}")


explore(referee, knob_controls("GISTEmbedLoss", temperature=0.1, contrast_anchors=False,
                               contrast_positives=False))
''',
    try_these=(
        "Which margin keeps p₂ in row 1 of the worked example? Predict the loss then, and check.",
        "The guide is only as good as its own judgement. What happens if the guide is worse "
        "than the student?",
        "Switch `contrast_anchors` on: a₁ now also competes against a₂. Why is a₁ compared with "
        "itself removed by the same rule (its guide similarity is 1)?",
    ),
)

LESSONS["CachedGISTEmbedLoss"] = Lesson(
    idea="""
GISTEmbedLoss with gradient caching: the guide still vetoes likely false negatives, and the
model embeds the batch in mini-batches (three passes, as in the cached in-batch losses above),
so very large batches fit in memory. Same value and gradient as the uncached loss.
""",
    example=_GIST_EXAMPLE.replace("**0.0635**.", "**0.0635**, exactly as GISTEmbedLoss."),
    example_code=_GIST_EXAMPLE_CODE.format(name="CachedGISTEmbedLoss"),
    train_note=_CACHED_TRAIN_NOTE.replace("hence the tiny BERT.",
                                          "hence the tiny BERT; the guide is all-MiniLM-L6-v2."),
    train_options="mini_batch_size=4",
    extra_plots=_IN_BATCH_EXTRA_PLOTS,
    plots_note=_IN_BATCH_PLOTS_NOTE,
    widget_note="""
The cached and the plain GIST loss on 8 real pairs, with all-MiniLM-L6-v2 as guide: the same
value and gradient norm for every mini-batch size.
""",
    widget_code='''
minilm = lab.models.load_model("minilm", device="cpu")  # the guide: never trained
explore(lambda mini_batch_size: cached_vs_plain("CachedGISTEmbedLoss", "GISTEmbedLoss",
                                                mini_batch_size, guide=minilm),
        knob_controls("CachedGISTEmbedLoss", ["mini_batch_size"], mini_batch_size=2))
''',
    try_these=(
        "The guide embeds every mini-batch too. Does the guide need the third (re-embedding) "
        "pass? Why not?",
        "Compare the training time per step with GISTEmbedLoss's run above. Where does the "
        "extra time go?",
    ),
)

LESSONS["MegaBatchMarginLoss"] = Lesson(
    idea="""
For each (anchor, positive) pair, find the hardest negative in the batch: the other pair's
positive most similar to the anchor. Then two hinges: the anchor's cosine with its positive
should reach the positive margin, and with the hardest negative it should stay below the
negative margin. The bigger the batch, the harder the mined negative, hence "mega batch".
""",
    example="""
Row 1: cos(a₁, p₁) = 0.8, and the positive margin is 0.8: [0.8 − 0.8]₊ = 0. The hardest (only)
negative is p₂ with cos(a₁, p₂) = 0.6; it should stay below 0.3: [0.6 − 0.3]₊ = 0.3. Row 2 is
the mirror image. Mean: **0.3**.
""",
    example_code='''
loss = losses.MegaBatchMarginLoss(None, use_mini_batched_version=False)
agree(0.3, loss.compute_loss_from_embeddings([ANCHORS, POSITIVES], None))
''',
    train_note="""
Batches of 32 pairs, larger than elsewhere in this notebook: the loss wants many candidates to
mine from. The reference refuses the static model in its (default) mini-batched mode, hence the
tiny BERT.
""",
    batch_size=32,
    extra_plots=_IN_BATCH_EXTRA_PLOTS,
    plots_note=_IN_BATCH_PLOTS_NOTE,
    widget_note="""
The two margins on the worked example, then in the playground.
""",
    widget_code='''
def two_hinges(positive_margin, negative_margin):
    loss = build_loss("MegaBatchMarginLoss", None, {
        "positive_margin": positive_margin, "negative_margin": negative_margin,
        "use_mini_batched_version": False})
    print(f"loss: {float(loss.compute_loss_from_embeddings([ANCHORS, POSITIVES], None)):.4f}")


explore(two_hinges, knob_controls("MegaBatchMarginLoss", ["positive_margin", "negative_margin"]))
playground_explorer("MegaBatchMarginLoss", ["positive_margin", "negative_margin"])
''',
    try_these=(
        "Which margins make the worked example cost exactly 0?",
        "If the negative margin is higher than the positive margin, what can the loss no longer "
        "ask for?",
        "Why does only the hardest negative count, and what happens with a batch of two pairs?",
    ),
)

# ------------------------------------------------------------------------------ classification
LESSONS["SoftmaxLoss"] = Lesson(
    idea="""
Turn the two embeddings of a pair into one feature vector, [u, v, |u − v|] by default, and let a
linear classifier predict the pair's class from it, trained with cross-entropy. The encoder
learns only through the classifier: its embeddings become good features for telling
entailment, neutral and contradiction apart.
""",
    example="""
One pair, u = (1, 0) and v = (0, 1), labelled contradiction (class 2). The features are
[u, v, |u − v|] = (1, 0, 0, 1, 1, 1). Set the classifier by hand, bias 0 and one row per class:

| class | weights | logit |
|---|---|---|
| 0 entailment | (0, 0, 0, 0, 0, 0) | 0 |
| 1 neutral | (1, 0, 0, 0, 0, 0) | 1 |
| 2 contradiction | (0, 0, 0, 0, 1, 1) | 2 (it reads \\|u − v\\|: far apart, contradiction) |

softmax(0, 1, 2) = (0.090, 0.245, 0.665), and the loss is −log 0.665 =
log(1 + e + e²) − 2 = **0.4076**.
""",
    example_code='''
import math

loss = losses.SoftmaxLoss(None, embedding_dimension=2, num_labels=3)
with torch.no_grad():  # the hand-made classifier of the table
    loss.classifier.weight.copy_(torch.tensor([[0.0, 0, 0, 0, 0, 0],
                                               [1.0, 0, 0, 0, 0, 0],
                                               [0.0, 0, 0, 0, 1, 1]]))
    loss.classifier.bias.zero_()
u, v = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])  # (1, 2) each: one pair
agree(math.log(1 + math.e + math.e**2) - 2,
      loss.compute_loss_from_embeddings([u, v], torch.tensor([2])))
''',
    train_note="""
The `nli` data: every paraphrase of a meaning as premise, with three hypotheses written for it
(entailment, neutral, contradiction). The classifier starts random and is trained along with the
model; `lab.train` keeps only the model.
""",
    plots_note="""
The loss curve (cross-entropy of the classifier; ln 3 = 1.10 is a uniform guess over three
classes); the probe sentences before and after; and the cosine similarities of same-topic and
different-topic probe pairs. Nothing in this loss talks about topics: any change there is a side
effect of learning NLI features.
""",
    widget_note="""
The three switches decide what the classifier sees. The widget shows the feature vector of the
worked example's pair and how many weights the classifier has on the 384-dimensional tiny model.
""",
    widget_code='''
def classifier_features(concatenation_sent_rep, concatenation_sent_difference,
                        concatenation_sent_multiplication):
    u, v = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    parts = ([("u", u), ("v", v)] if concatenation_sent_rep else []) \\
        + ([("|u - v|", (u - v).abs())] if concatenation_sent_difference else []) \\
        + ([("u * v", u * v)] if concatenation_sent_multiplication else [])
    if not parts:
        print("SoftmaxLoss needs at least one part switched on")
        return
    print("features:", " + ".join(name for name, _ in parts), "=",
          torch.cat([value for _, value in parts]).tolist())
    size = len(parts) * 384  # every part has as many numbers as the embedding
    print(f"on the 384-dimensional tiny model: {size} features, a classifier of "
          f"3 x {size} weights + 3 biases = {3 * size + 3} parameters")


explore(classifier_features, knob_controls("SoftmaxLoss"))
''',
    try_these=(
        "Switch |u − v| off and keep [u, v]. Can a linear classifier still tell whether u and v "
        "are close? Why did Sentence-BERT add |u − v|?",
        "The loss starts near ln 3 = 1.10. Why exactly that number?",
        "Which would you expect to end up closer: the embeddings of a premise and its "
        "entailment, or of a premise and its contradiction? Nothing in the loss asks for either.",
    ),
)

# -------------------------------------------------------------------------------- unsupervised
LESSONS["ContrastiveTensionLoss"] = Lesson(
    idea="""
Two copies of the encoder read a pair of sentences, one sentence each. A logistic classifier on
the dot product of their embeddings must say whether the two sentences are the same sentence
(positive) or two different ones (negative). Agreeing on identical sentences and disagreeing on
different ones pulls the copies' spaces apart from the "everything is similar" state.
""",
    example="""
Two pairs. Pair 1 is a sentence with itself (label 1): copy 1 gives f₁ = (1, 1), copy 2 gives
g₁ = (1, 0), dot product 1; its loss is −log σ(1) = log(1 + e⁻¹) = 0.3133. Pair 2 is two
different sentences (label 0): f₂ = (1, 0), g₂ = (−1, 1), dot product −1; its loss is
−log(1 − σ(−1)) = log(1 + e⁻¹) = 0.3133. This loss **sums** over the batch:
0.3133 + 0.3133 = **0.6265**.
""",
    example_code='''
import math

F = torch.tensor([[1.0, 1.0], [1.0, 0.0]])   # copy 1's embeddings of each pair's first text
G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # copy 2's embeddings of the second text
same = torch.tensor([1, 0])                   # pair 1: the same sentence; pair 2: different
loss = losses.ContrastiveTensionLoss(None)
agree(2 * math.log(1 + math.exp(-1)), loss.compute_loss_from_embeddings([F, G], same))
# How the lab makes such pairs from single sentences: every fourth one is paired with itself.
from lab.training import tension_pairs

sentences = list(lab.data.load_dataset("sentence")["train"]["sentence"][:8])
display(tension_pairs(sentences).to_pandas())
''',
    train_note="""
The `sentence` data, turned into pairs as shown above. The reference labels a pair from its
tokens, which a static model does not produce, so the lab uses the tiny BERT.
""",
    plots_note="""
The loss curve (a sum over the batch, so it scales with the batch size); the probe sentences
before and after; and the same-topic versus different-topic cosines.
""",
    widget_note="""
The per-pair loss as a function of the two copies' dot product, for a pair of identical
sentences (label 1, wants a large dot product) and of different ones (label 0, wants a small
one).
""",
    widget_code='''
from matplotlib.figure import Figure


def tension(dot_product):
    x = np.linspace(-6, 6, 241)
    same, different = np.log1p(np.exp(-x)), np.log1p(np.exp(x))  # -log σ(x), -log(1 - σ(x))
    figure = Figure(figsize=(5.5, 3.2), layout="constrained")
    axes = figure.subplots()
    axes.plot(x, same, label="same sentence (label 1)")
    axes.plot(x, different, label="different sentences (label 0)")
    axes.axvline(dot_product, color="grey", ls="--")
    axes.set_xlabel("dot product of the two copies' embeddings")
    axes.set_ylabel("loss of the pair")
    axes.legend()
    print(f"at {dot_product:+.1f}: same {np.log1p(np.exp(-dot_product)):.4f}, "
          f"different {np.log1p(np.exp(dot_product)):.4f}")
    display(figure)


explore(tension, {"dot_product": helpers.slider("dot product", 1.0, -6.0, 6.0, 0.5)})
''',
    try_these=(
        "Why does the lab pair only one sentence in four with itself? What would happen with "
        "only positive pairs?",
        "The loss sums over the batch. If you double the batch size, what should you do with "
        "the learning rate?",
        "Only one of the two copies is kept after training. Why train both?",
    ),
)

LESSONS["ContrastiveTensionLossInBatchNegatives"] = Lesson(
    idea="""
Both encoder copies embed the same batch of sentences. Each sentence's embedding by copy 1 must
pick out copy 2's embedding of the same sentence among all of copy 2's embeddings (a softmax
over scaled similarities), and the other way round. Every other sentence is a negative: an
unsupervised twin of MultipleNegativesRankingLoss.
""",
    example="""
Two sentences. Copy 1 embeds them as f₁ = (1, 0), f₂ = (0, 1); copy 2 as g₁ = (0.8, 0.6),
g₂ = (0.6, 0.8). The cosines form the matrix [[0.8, 0.6], [0.6, 0.8]]; times the scale 20:
[[16, 12], [12, 16]]. Each row's cross-entropy, with the diagonal as the right answer, is
log(1 + e⁻⁴) = 0.01815, and so is each column's. L = ½ (0.01815 + 0.01815) = **0.0181**.
""",
    example_code='''
import math

F = torch.tensor([[1.0, 0.0], [0.0, 1.0]])   # copy 1's embeddings of two sentences
G = torch.tensor([[0.8, 0.6], [0.6, 0.8]])   # copy 2's embeddings of the same two sentences
loss = losses.ContrastiveTensionLossInBatchNegatives(None)
agree(math.log(1 + math.exp(-4)), loss.compute_loss_from_embeddings([F, G]))
''',
    train_note="""
The `sentence` data: single sentences, no labels, no pairs.
""",
    plots_note=LESSONS["ContrastiveTensionLoss"].plots_note.replace(
        "(a sum over the batch, so it scales with the batch size)", "(a mean over the batch)"),
    widget_note="""
The worked example under the two knobs. Note that the scale is also *trained*: the loss keeps
it as a parameter (its logarithm), starting from the value you choose.
""",
    widget_code='''
def in_batch_tension(scale, similarity_fct):
    loss = build_loss("ContrastiveTensionLossInBatchNegatives", None,
                      {"scale": scale, "similarity_fct": similarity_fct})
    print(f"loss: {float(loss.compute_loss_from_embeddings([F, G]).detach()):.4f}")


explore(in_batch_tension, knob_controls("ContrastiveTensionLossInBatchNegatives"))
''',
    try_these=(
        "With `similarity_fct` = dot, the scale 20 multiplies raw dot products. Why do the docs "
        "suggest a scale of about 1 then?",
        "Compare this run with ContrastiveTensionLoss's: which moved the probe sentences more in "
        "the same number of steps?",
    ),
)

LESSONS["DenoisingAutoEncoderLoss"] = Lesson(
    idea="""
TSDAE: delete most words of a sentence, embed what is left into one vector, and ask a decoder
to write the original sentence back from that vector alone, token by token. The loss is the
decoder's cross-entropy. The only way to succeed is to pack the sentence's meaning into the
embedding, which is what makes it a good sentence embedding.
""",
    example="""
First the noise: each word is deleted with probability 0.6 (at least one word stays). Then the
decoder's loss, on a toy: a 4-token vocabulary and three positions whose right tokens get
probabilities 0.5, 0.25 and 0.125. The loss is the mean of −log p:
(0.693 + 1.386 + 2.079) / 3 = **1.3863** (= ln 4).

An untrained decoder knows nothing, so it spreads its probability roughly evenly over the
30,522 tokens of the vocabulary: each token costs about ln 30522 = **10.33**, which is where
training starts. (Roughly: a random decoder is not exactly uniform.)
""",
    example_code='''
import math
import random

from lab.data.builders import damage

rng = random.Random(0)
sentence = "The printer ran out of ink just before the report was due."
for _ in range(3):
    print("damaged:", damage(sentence, rng))

probabilities = torch.tensor([[0.5, 0.25, 0.125, 0.125]] * 3)  # (positions, vocabulary)
right_tokens = torch.tensor([0, 1, 2])
agree(math.log(4), torch.nn.functional.cross_entropy(probabilities.log(), right_tokens))

# The real loss: the tiny BERT as encoder, its untrained decoder, one sentence.
bert = lab.models.load_model("tiny-bert", device="cpu")  # examples run on the CPU
tsdae = build_loss("DenoisingAutoEncoderLoss", bert, {})
tokens = tsdae.tokenizer_decoder([sentence], return_tensors="pt")["input_ids"]  # (1, length)
embedding = bert.encode([damage(sentence, rng)], convert_to_tensor=True).clone()  # (1, 128)
agree(math.log(tsdae.tokenizer_decoder.vocab_size),
      tsdae.compute_loss_from_embeddings([embedding], tokens), what="≈ uniform guess",
      tolerance=0.05)
''',
    train_note="""
The `denoising` data: each sentence with about 60% of its words deleted, paired with the
original. The decoder shares the encoder's weights (`tie_encoder_decoder=True`).
""",
    plots_note="""
The loss curve (the decoder's cross-entropy per token, starting near ln 30522 = 10.33); the
probe sentences before and after; and the same-topic versus different-topic cosines.
""",
    widget_note="""
The noise is TSDAE's main setting (it is a property of the data, not a knob of the loss): move
the deletion ratio and see what the encoder gets to read.
""",
    widget_code='''
import random

from lab.data.builders import damage

examples = list(lab.data.load_dataset("sentence")["train"]["sentence"][:4])


def noise(deletion_ratio, seed):
    rng = random.Random(seed)
    for text in examples:
        print(f"{damage(text, rng, deletion_ratio)!r:70s} <- {text!r}")


explore(noise, {"deletion_ratio": helpers.slider("deletion ratio", 0.6, 0.0, 0.9, 0.05),
                "seed": helpers.slider("seed", 0, 0, 20, 1)})
''',
    try_these=(
        "With a deletion ratio of 0, what is the easiest way for the model to make the loss "
        "small? Why is that not what we want?",
        "With 0.9, can a person still guess the original sentence? Can the decoder?",
        "Why must the decoder see only the sentence embedding (a memory of one vector) and not "
        "the encoder's token outputs?",
    ),
)

# -------------------------------------------------------------------------------- distillation
_DISTILL_WIDGET_NOTE = """
The playground: each class has a fixed teacher position (the stars); the student's points move
towards what the teacher says, in this loss's sense.
"""

LESSONS["MSELoss"] = Lesson(
    idea="""
Copy the teacher coordinate by coordinate: the loss is the mean squared difference between the
student's embedding of a sentence and the teacher's. Student and teacher must have the same
dimension (384 here).
""",
    example="""
Two sentences. Student e₁ = (1, 2), teacher t₁ = (0, 2); student e₂ = (3, 0), teacher
t₂ = (1, 1). The squared differences are (1 − 0)² = 1, (2 − 2)² = 0, (3 − 1)² = 4 and
(0 − 1)² = 1; their mean over the 4 numbers is 6 / 4 = **1.5**.
""",
    example_code='''
student = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
teacher = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
agree(1.5, losses.MSELoss(None).compute_loss_from_embeddings([student], teacher))
''',
    train_note="""
The `teacher-embedding` data: each sentence with all-MiniLM-L6-v2's embedding of it as label.
""",
    plots_note="""
The loss curve; the probe sentences before and after; the same-topic versus different-topic
cosines. The summary's `teacher_cosine` says how close the student's embeddings came to the
teacher's on unseen sentences.
""",
    widget_note=_DISTILL_WIDGET_NOTE,
    widget_code='''
playground_explorer("MSELoss", [])
''',
    try_these=(
        "MSE punishes a student embedding that points the right way but is twice as long. Is "
        "that a problem if you will only ever use cosine similarity?",
        "The loss values are tiny (around 0.001). Why, for 384-dimensional unit-length "
        "teacher embeddings?",
    ),
)

LESSONS["MarginMSELoss"] = Lesson(
    idea="""
Copy the teacher's preferences, not its coordinates. For a query with a positive and a negative,
the teacher says by how much it prefers the positive (its score margin); the student's own
margin sim(q, p) − sim(q, n) should equal that number. Only the gap is copied, so the student
may score on a different scale from the teacher.
""",
    example="""
Dot-product similarity. Row 1: q₁ = (1, 0), p₁ = (2, 1), n₁ = (1, 3); student margin
2 − 1 = 1; teacher margin 3: (1 − 3)² = 4. Row 2: q₂ = (0, 1), p₂ = (1, 1), n₂ = (2, 0); student
margin 1 − 0 = 1; teacher margin 0.5: (1 − 0.5)² = 0.25. Mean: **2.125**.
""",
    example_code='''
queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
positives = torch.tensor([[2.0, 1.0], [1.0, 1.0]])
negatives = torch.tensor([[1.0, 3.0], [2.0, 0.0]])
teacher_margins = torch.tensor([3.0, 0.5])
loss = losses.MarginMSELoss(None)  # dot product
agree(2.125, loss.compute_loss_from_embeddings([queries, positives, negatives], teacher_margins))
''',
    train_note="""
The `teacher-margin` data: (query, positive, negative) with the teacher's margin
s(q, p) − s(q, n) as label.
""",
    plots_note=LESSONS["MSELoss"].plots_note.replace(
        "The summary's `teacher_cosine` says how close the student's embeddings came to the\n"
        "teacher's on unseen sentences.",
        "The summary's retrieval metrics and triplet accuracy say whether the student ranks "
        "unseen positives above their negatives, as the teacher does."),
    widget_note=_DISTILL_WIDGET_NOTE,
    widget_code='''
playground_explorer("MarginMSELoss", ["similarity_fct"])
''',
    try_these=(
        "Add 10 to every similarity the student computes. Does the loss change? What does that "
        "say about what is copied?",
        "A cross-encoder teacher scores (query, document) pairs but has no embeddings. Which of "
        "the four distillation losses can learn from it?",
    ),
)

LESSONS["DistillKLDivLoss"] = Lesson(
    idea="""
Copy the teacher's whole ranking. For each query, the student's scores over its candidates
(the positive and the negatives) become a probability distribution by a softmax, and so do the
teacher's; the loss is the KL divergence from the teacher's distribution to the student's. It
passes on how much better each candidate is, not only which one is best.
""",
    example="""
One query q = (1, 0) with the candidates p = (2, 0) and n = (0, 1), dot product, temperature 1.
Student scores (2, 0), softmax (0.881, 0.119). The teacher scores both candidates 1: softmax
(0.5, 0.5). KL(teacher ‖ student) = 0.5 · ln(0.5 / 0.881) + 0.5 · ln(0.5 / 0.119)
= 0.5 · (−0.566) + 0.5 · 1.434 = **0.4338**. The student is too sure of itself; the loss pulls
its two scores together.
""",
    example_code='''
import math

query, positive, negative = (torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]]),
                             torch.tensor([[0.0, 1.0]]))
teacher_scores = torch.tensor([[1.0, 1.0]])  # (queries, candidates)
student = torch.softmax(torch.tensor([2.0, 0.0]), dim=0)
by_hand = 0.5 * math.log(0.5 / float(student[0])) + 0.5 * math.log(0.5 / float(student[1]))
loss = losses.DistillKLDivLoss(None)  # dot product, temperature 1
agree(by_hand, loss.compute_loss_from_embeddings([query, positive, negative], teacher_scores))
''',
    train_note="""
The `teacher-scores` data: (query, positive, negative_1, ...) with the teacher's scores of every
candidate as label.
""",
    plots_note=LESSONS["MarginMSELoss"].plots_note,
    widget_note=_DISTILL_WIDGET_NOTE,
    widget_code='''
playground_explorer("DistillKLDivLoss", ["similarity_fct", "temperature"])
''',
    try_these=(
        "Raise the temperature in the worked example (by hand, say to 2). Do the two "
        "distributions get closer or farther apart? What does a high temperature pass on?",
        "Why is the loss multiplied by τ²?",
        "If the teacher gives a negative almost the positive's score, what does this loss teach "
        "that MultipleNegativesRankingLoss would not?",
    ),
)

LESSONS["EmbedDistillLoss"] = Lesson(
    idea="""
Lay the student's embedding on top of the teacher's, with a choice of distance: cosine distance
copies only the direction (what cosine-similarity search uses), L2 and MSE copy the vector
itself.
""",
    example="""
Cosine distance, two sentences. Student e₁ = (1, 0), teacher t₁ = (0, 1): 1 − cos = 1 − 0 = 1.
Student e₂ = (3, 4), teacher t₂ = (4, 3): 1 − 24/25 = 0.04. Mean: **0.52**.
""",
    example_code='''
student = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
teacher = torch.tensor([[0.0, 1.0], [4.0, 3.0]])
agree(0.52, losses.EmbedDistillLoss(None).compute_loss_from_embeddings([student], teacher))
''',
    train_note=LESSONS["MSELoss"].train_note,
    plots_note=LESSONS["MSELoss"].plots_note,
    widget_note="""
The worked example under each distance, then the playground.
""",
    widget_code='''
def three_distances(distance_metric):
    loss = build_loss("EmbedDistillLoss", None, {"distance_metric": distance_metric})
    value = float(loss.compute_loss_from_embeddings([student], teacher))
    print(f"{distance_metric}: {value:.4f}")


explore(three_distances, knob_controls("EmbedDistillLoss"))
playground_explorer("EmbedDistillLoss", ["distance_metric"])
''',
    try_these=(
        "Compute the L2 version of the worked example by hand (the mean of ‖e − t‖). Which pair "
        "dominates now?",
        "Scale the student's e₂ to (6, 8). Which distances change?",
        "Compare `teacher_cosine` after training with MSELoss's run above.",
    ),
)

# ------------------------------------------------------------------ modifiers and regularisers
LESSONS["MatryoshkaLoss"] = Lesson(
    idea="""
Apply the inner loss to the whole embedding and also to its first 256, 128, 64 and 32
coordinates (each prefix L2-normalised), and add the results. The model learns to put the most
important information first, so that later you can keep only a prefix: smaller indexes, faster
search, little loss in quality.
""",
    example="""
Inner loss CosineSimilarityLoss (simpler by hand than the default), dimensions 4 and 2, two
4-D pairs with gold scores:

| pair | u | v | gold | cos, 4 dims | cos, first 2 dims |
|---|---|---|---|---|---|
| 1 | (3, 4, 0, 5) | (3, 4, 5, 0) | 1 | 25/50 = 0.5 | (3, 4)·(3, 4) / 25 = 1 |
| 2 | (1, 0, 0, 0) | (0, 1, 0, 0) | 0 | 0 | 0 |

Full size: ((0.5 − 1)² + 0) / 2 = 0.125. First 2 dims: (0 + 0) / 2 = 0. Sum, weights 1:
**0.125**. The first two coordinates already say "similar"; the last two disagree, and only the
full-size term notices.
""",
    example_code='''
inner = losses.CosineSimilarityLoss(None)
loss = losses.MatryoshkaLoss(None, inner, matryoshka_dims=[4, 2])
agree(0.125, loss.compute_loss_from_embeddings([U4, V4], GOLD))
''',
    train_note="""
The wrapped loss is MultipleNegativesRankingLoss (the default) on `pair` data, at dimensions
384, 256, 128, 64 and 32 of the tiny model.
""",
    plots=("loss-curve", "embedding-map-before-after", "quality-vs-dimension"),
    plots_note="""
The loss curve (the sum over all dimensions); the probe sentences before and after; and the
topic kNN accuracy of the probe sentences when only the first d coordinates are kept, before and
after training.
""",
    widget_note="""
Cut the trained embeddings (before and after training) to a prefix of your choice: the kNN
accuracy of the unseen probe sentences, and their map at that size.
""",
    widget_code='''
run = runs["MatryoshkaLoss"]
unseen = ~np.asarray(run.probe.seen)
labels, groups = np.asarray(run.probe.labels)[unseen], np.asarray(run.probe.groups)[unseen]
(_, before), (_, after) = run.snapshots[0], run.snapshots[-1]
before, after = before[unseen], after[unseen]


def prefix(dimensions):
    for moment, embeddings in (("before", before), ("after", after)):
        accuracy = metrics.knn_accuracy(embeddings[:, :dimensions], labels, k=5, groups=groups)
        print(f"{moment:6s} first {dimensions:3d} dims: topic kNN accuracy {accuracy:.3f}")
    display(viz.before_after_map(before[:, :dimensions], after[:, :dimensions], labels,
                                 run.probe.label_names, title=f"first {dimensions} dims"))


explore(prefix, {"dimensions": widgets.SelectionSlider(
    options=[8, 16, 32, 64, 128, 256, 384], value=32, description="prefix length")})
''',
    try_these=(
        "In the worked example, which dimension list makes the loss 0? Is that a good sign?",
        "Compare kNN accuracy at 32 dims before and after. Did training make the prefix better "
        "than the same prefix of the untrained model?",
        "A prefix of 8 dims was never trained. Did it improve anyway?",
    ),
)

LESSONS["Matryoshka2dLoss"] = Lesson(
    idea="""
Matryoshka in two directions at once: embeddings should work when cut to fewer dimensions and
also when taken from an earlier transformer layer. It is AdaptiveLayerLoss around MatryoshkaLoss
around the inner loss, so you can later trade quality for speed along both axes.
""",
    example="""
The Matryoshka example above is the final layer's term: 0.125. Add one earlier layer, where pair
1 is u = (0, 5, 3, 4), v = (0, 5, 4, 3) (cos = 49/50 = 0.98 on 4 dims, 1 on 2 dims) and pair 2
is as before. Its Matryoshka term is ((0.98 − 1)² + 0) / 2 + 0 = 0.0002. With every layer and
every dimension used, weights 1 and the KL term switched off: 0.125 + 0.0002 = **0.1252**.

(The loss warns that the dims [4, 2] leave out the tiny BERT's full 128 dimensions: true, and
harmless here, since the example hands it 4-D embeddings directly.)
""",
    example_code='''
# The wrapper needs a transformer model even though the example hands it embeddings directly.
loss = losses.Matryoshka2dLoss(BERT, losses.CosineSimilarityLoss(None), [4, 2],
                               n_layers_per_step=-1, n_dims_per_step=-1, kl_div_weight=0.0)
earlier = [torch.tensor([[0.0, 5.0, 3.0, 4.0], [1.0, 0.0, 0.0, 0.0]]),
           torch.tensor([[0.0, 5.0, 4.0, 3.0], [0.0, 1.0, 0.0, 0.0]])]
agree(0.125 + 0.0002, loss.compute_loss_from_layer_embeddings([earlier, [U4, V4]], GOLD))
''',
    train_note="""
MultipleNegativesRankingLoss on `pair` data, on the tiny BERT (128 dims, 2 layers), at
dimensions 128, 64, 32 and 16; each step samples one earlier layer and one dimension.
""",
    plots=("loss-curve", "embedding-map-before-after", "quality-vs-dimension",
           "quality-vs-layer"),
    plots_note="""
The loss curve; the probe sentences before and after; topic kNN accuracy against the number of
dimensions kept, and against the layer the embedding is taken from, before and after.
""",
    widget_note="""
Choose a layer and a prefix length: the kNN accuracy of the probe sentences embedded by the
trained model and by the untrained one, cut both ways.
""",
    widget_code='''
run = runs["Matryoshka2dLoss"]
labels, groups = np.asarray(run.probe.labels), np.asarray(run.probe.groups)
after_layers = metrics.layer_embeddings(run.model, run.probe.texts)  # {layer: (n, 128)}
before_layers = metrics.layer_embeddings(lab.models.load_model("tiny-bert", seed=run.seed),
                                         run.probe.texts)


def cut(layer, dimensions):
    for moment, layers in (("before", before_layers), ("after", after_layers)):
        accuracy = metrics.knn_accuracy(layers[layer][:, :dimensions], labels, k=5,
                                        groups=groups)
        print(f"{moment:6s} layer {layer}, first {dimensions:3d} dims: kNN accuracy "
              f"{accuracy:.3f}")


explore(cut, {"layer": widgets.IntSlider(value=1, min=1, max=max(after_layers),
                                         description="layer"),
              "dimensions": widgets.SelectionSlider(options=[8, 16, 32, 64, 128], value=32,
                                                    description="prefix length")})
''',
    try_these=(
        "Which costs more quality: dropping a layer or halving the dimensions?",
        "With 20 steps, each step trained one earlier layer and one dimension. How many "
        "combinations are there, and how often was each trained?",
    ),
)

LESSONS["AdaptiveLayerLoss"] = Lesson(
    idea="""
Apply the inner loss to the final layer's embedding and also to embeddings pooled after
earlier transformer layers, while a KL term pulls each earlier layer's embedding towards the
final one (the final layer acts as a teacher). The model learns to give usable embeddings even
when cut short, so at inference you can drop its last layers for speed.
""",
    example="""
Inner loss CosineSimilarityLoss, two pairs with gold score 1, three layers (0, 1 and the final
2), every earlier layer used, KL term off:

| layer | pair 1 (u, v) | cos | pair 2 | inner loss (mean of (cos − 1)²) |
|---|---|---|---|---|
| 0 | (1, 0), (0, 1) | 0 | (1, 0), (1, 0) | (1 + 0) / 2 = 0.5 |
| 1 | (3, 4), (4, 3) | 0.96 | (1, 0), (1, 0) | (0.0016 + 0) / 2 = 0.0008 |
| final | (3, 4), (0, 5) | 0.8 | (1, 0), (1, 0) | (0.04 + 0) / 2 = 0.02 |

L = 1 · 0.02 + (1 / 2) · (0.5 + 0.0008) = **0.2704**: the final layer with weight
`last_layer_weight` = 1, each of the 2 earlier layers with `prior_layers_weight` = 1 divided by
their number.
""",
    example_code='''
loss = build_loss("AdaptiveLayerLoss", BERT, {"loss": "CosineSimilarityLoss",
                                              "n_layers_per_step": -1, "kl_div_weight": 0.0})
LAYERS = [[torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])],
          [torch.tensor([[3.0, 4.0], [1.0, 0.0]]), torch.tensor([[4.0, 3.0], [1.0, 0.0]])],
          [torch.tensor([[3.0, 4.0], [1.0, 0.0]]), torch.tensor([[0.0, 5.0], [1.0, 0.0]])]]
ONES = torch.tensor([1.0, 1.0])
agree(0.02 + (0.5 + 0.0008) / 2, loss.compute_loss_from_layer_embeddings(LAYERS, ONES))
''',
    train_note="""
MultipleNegativesRankingLoss on `pair` data, on the tiny BERT (2 layers); each step samples one
earlier layer.
""",
    plots=("loss-curve", "embedding-map-before-after", "quality-vs-layer"),
    plots_note="""
The loss curve; the probe sentences before and after; and topic kNN accuracy of the embedding
taken after each layer, before and after training.
""",
    widget_note="""
The worked example under the weighting knobs. Switch the KL term on to see it add a
self-distillation cost (it compares each layer's embedding, softened by the temperature, with
the final layer's).
""",
    widget_code='''
def layer_weights(**knobs):
    loss = build_loss("AdaptiveLayerLoss", BERT, {"loss": "CosineSimilarityLoss",
                                                  "n_layers_per_step": -1, **knobs})
    print(f"loss: {float(loss.compute_loss_from_layer_embeddings(LAYERS, ONES)):.4f}")


explore(layer_weights, knob_controls(
    "AdaptiveLayerLoss", ["last_layer_weight", "prior_layers_weight", "kl_div_weight",
                          "kl_temperature", "layer_weighting"], kl_div_weight=0.0))
''',
    try_these=(
        "Set `prior_layers_weight` to 0 and `kl_div_weight` to 0. Which plain loss is left?",
        "With `layer_weighting` = linear, layer 0 gets weight 1 and layer 1 weight 1/2. Check "
        "the widget's value by hand.",
        "After training, how much quality did the model keep at layer 1? Would you ship the "
        "1-layer model?",
    ),
)

LESSONS["GlobalOrthogonalRegularizationLoss"] = Lesson(
    idea="""
A regulariser that spreads embeddings out. Within a column of unrelated sentences, the average
cosine should be near 0 (random directions are roughly orthogonal), and the average squared
cosine should not exceed 1/d, what random directions in d dimensions give. It fights the
collapse of all embeddings into a narrow cone. It ignores labels; use it next to a main loss.
""",
    example="""
One column of three embeddings: e₁ = (1, 0), e₂ = (0, 1), e₃ = (0.6, 0.8). Pairwise cosines: 0,
0.6 and 0.8. First moment M₁ = (0 + 0.6 + 0.8) / 3 = 0.4667, mean term M₁² = 0.2178. Second
moment M₂ = (0 + 0.36 + 0.64) / 3 = 0.3333, below 1/d = 1/2, so the second term
[M₂ − 1/2]₊ = 0. L = 1 · 0.2178 + 1 · 0 = **0.2178**. The loss returns the two terms
separately; training adds them.
""",
    example_code='''
column = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
terms = losses.GlobalOrthogonalRegularizationLoss(None).compute_loss_from_embeddings([column])
print({name: round(float(value), 4) for name, value in terms.items()})
agree((1.4 / 3) ** 2, sum(terms.values()))
''',
    train_note="""
Trained alone here, on `pair` data, to see what it does by itself (in practice you add it to a
main loss). It returns two components, recorded as separate curves.
""",
    plots_note="""
The loss curve with its two components; the probe sentences before and after; and the
same-topic versus different-topic cosines: the regulariser should move both histograms towards
0, since it does not know which pairs belong together.
""",
    widget_note="""
The playground: one column of free points, no labels used. Watch them spread around the
origin.
""",
    widget_code='''
playground_explorer("GlobalOrthogonalRegularizationLoss",
                    ["mean_weight", "second_moment_weight", "similarity_fct"])
''',
    try_these=(
        "In 2 dimensions, can three directions all be orthogonal? What is the smallest M₁ three "
        "unit vectors can reach?",
        "Why is 1/d the squared cosine that random directions have on average?",
        "Trained alone, did the regulariser help or hurt topic kNN accuracy? Why?",
    ),
)


# =============================================================================================
# 00_start_here
# =============================================================================================
def start_here_cells(family_links: str) -> list[tuple[str, str]]:
    """The cells of 00_start_here as (kind, text) pairs in order; kind is "md", "code", or
    "setup" for the place of the setup cell (the builder writes it)."""
    return [
        ("md", """
# Start here: embeddings, losses, and the geometry a loss shapes

This lab is about the **loss functions** that fine-tune sentence-embedding models: what each
one asks of the embeddings, and what training with it does to them. This first notebook takes
about two minutes to run on a laptop CPU and covers:

1. what an embedding model is;
2. what a loss does to the geometry of the embeddings;
3. how to choose a loss from the data you have;
4. a first training run, and its before/after map.

Run the cells in order (Shift+Enter). The setup cell finds the lab and says whether a GPU will
be used.
"""),
        ("setup", ""),
        ("md", """
## 1. What an embedding model is

An embedding model turns a sentence into a fixed-length list of numbers, a vector, so that
sentences with similar meanings get vectors pointing in similar directions. Similarity is
usually measured by the **cosine** of the angle between two vectors: 1 for the same direction,
0 for unrelated (orthogonal), −1 for opposite.

The lab has three small models that work offline: `tiny`, a lookup table with one 384-number
vector per word piece whose sentence embedding is the average of its words' vectors (it trains
in seconds); `tiny-bert`, a 2-layer transformer (needed by losses that use layers or a
decoder); and `minilm`, the real all-MiniLM-L6-v2. Below, `tiny` embeds six sentences of the
lab's teaching corpus: a sentence, its paraphrase, a "near miss" that reuses its words with
another meaning, another sentence on the same topic, and a paraphrase pair on another topic.
"""),
        ("code", """
model = lab.models.load_model("tiny")
corpus = lab.data.load_corpus()  # meaning groups: paraphrases, near misses, ... by topic
cooking = [group for group in corpus if group.topic == "cooking"]
space = [group for group in corpus if group.topic == "space"]
sentences = [cooking[0].paraphrases[0], cooking[0].paraphrases[1], cooking[0].near_misses[0],
             cooking[1].paraphrases[0], space[0].paraphrases[0], space[0].paraphrases[1]]
meaning = [0, 0, 1, 2, 3, 3]  # which sentences mean the same (the colours below)
for number, text in enumerate(sentences):
    print(number, text)

embeddings = model.encode(sentences)  # (6, 384): one row per sentence
print("\\nshape:", embeddings.shape, "  first numbers of sentence 0:", embeddings[0][:5].round(3))
display(viz.similarity_heatmap(embeddings, sentences, labels=meaning,
                               title="cosine similarity, untrained tiny model"))
"""),
        ("md", """
Look at row 0: is the paraphrase (1) more similar to it than the near miss (2)? A model that
averages word vectors is fooled by shared words; fine-tuning with a good loss is how a model
learns that meaning matters more than vocabulary.

## 2. What a loss does to geometry

A loss is one number computed from a batch of embeddings (and labels): small when the
embeddings are arranged the way the loss wants, large otherwise. Its gradient says, for every
embedding, in which direction to move to make the number smaller: a **force** on each point.
Training changes the model's weights so that the embeddings follow those forces.

The **2-D playground** shows those forces with nothing in between: 18 free points in the plane,
in three classes that overlap, moved directly by the gradient of a loss. Here
`BatchAllTripletLoss` with margin 1: same-class points are pulled together and other-class
points pushed away until they are a margin farther.
"""),
        ("code", """
board = helpers.playground_run("BatchAllTripletLoss", {"margin": 1.0}, n_steps=0)
display(playground.trajectory_figure(board, title="the start; arrows are the forces"))
board.step(60)
display(playground.trajectory_figure(board))  # trails show where each point went
"""),
        ("md", """
Every loss of the lab that works on plain embeddings can move these points. Pick one, and
compare what it does: some care about distances, some only about directions (their points fan
out around the origin, the grey cross), some stop once a margin holds, some never stop.
"""),
        ("code", """
def any_loss(loss, steps):
    board = helpers.playground_run(loss, n_steps=steps)
    print(board.inputs_description())
    display(playground.trajectory_figure(board))


explore(any_loss, {"loss": widgets.Dropdown(options=playground.PLAYGROUND_LOSSES,
                                            value="MultipleNegativesRankingLoss",
                                            description="loss"),
                   "steps": helpers.slider("steps", 40, 0, 200, 10)})
"""),
        ("md", """
## 3. Choosing a loss from your data

The first question is not "which loss is best" but "what does my data look like". Every loss
expects a data **format**: which text columns, in which order, and which label. These are the
formats the lab knows (each one is also built from the teaching corpus):
"""),
        ("code", """
rows = ["| format | columns | what it is |", "|---|---|---|"]
rows += [f"| `{name}` | {', '.join(spec.columns)} | {spec.description} |"
         for name, spec in lab.data.FORMATS.items()]
display(Markdown("\\n".join(rows)))
"""),
        ("md", """
And this is every loss with the formats it accepts, most natural first (the same table as
sentence-transformers' loss overview, read from the lab's catalog):
"""),
        ("code", """
rows = ["| loss | family | data formats |", "|---|---|---|"]
rows += [f"| {row['name']} | {row['family']} | {row['formats']} |"
         for row in catalog.overview_rows()]
display(Markdown("\\n".join(rows)))
"""),
        ("md", """
Some rules of thumb. Only **(anchor, positive) pairs**, the most common case: start with
`MultipleNegativesRankingLoss` (with hard negatives as a third column if you have them).
**Sentences with a class label**: a batch triplet loss such as `BatchAllTripletLoss`. **Pairs
with a similarity score**: `CoSENTLoss`. **Yes/no pairs**: `OnlineContrastiveLoss` or
`CoSENTLoss`. **A better model to learn from**: a distillation loss. **Nothing but raw
sentences**: an unsupervised loss. Pick your data's format to see every loss that fits it:
"""),
        ("code", """
def which_losses(data_format):
    for entry in catalog.losses_for_format(data_format):
        display(Markdown(f"**{entry.name}** ({entry.family}): {entry.explanation}"))


explore(which_losses, {"data_format": widgets.Dropdown(options=list(lab.data.FORMATS),
                                                       value="pair", description="your data")})
"""),
        ("md", """
## 4. A first training run

`lab.train` does everything: it builds the model, the data in the loss's format, the loss, and
trains with sentence-transformers' trainer, on the GPU if there is one. Here
`BatchAllTripletLoss` on sentences labelled by topic, with the tiny model, 100 steps of 32
sentences: well under two minutes on a laptop CPU. Along the way it embeds a fixed set of
**probe** sentences (paraphrases from all 12 topics) at the start, midway and at the end.
"""),
        ("code", """
result = lab.train("BatchAllTripletLoss", steps=steps(100), batch_size=32, snapshots=2,
                   progress_bar=False)
print(result.summary())
plots = ["loss-curve", "embedding-map-before-after"]
show(report.figures(result, only=plots), *plots)
"""),
        ("md", """
The map shows the probe sentences before and after training, in one shared projection, one
colour per topic. Half of the probe sentences come from meanings the model trained on, half
from meanings it never saw. The summary reports them separately (`train_topic_knn_accuracy`
for the seen half, `topic_knn_accuracy` for the unseen half). Here they are as two maps:
"""),
        ("code", """
seen = np.asarray(result.probe.seen)
labels = np.asarray(result.probe.labels)
(_, before), (_, after) = result.snapshots[0], result.snapshots[-1]
for title, rows in (("sentences of meanings it trained on", seen),
                    ("sentences of meanings it never saw", ~seen)):
    display(viz.before_after_map(before[rows], after[rows], labels[rows],
                                 result.probe.label_names, title=title))
"""),
        ("md", f"""
The tiny model is a lookup table: training only moves the vectors of the words it saw, so the
seen sentences sort themselves into topics while unseen ones move much less. That gap between
memorising and generalising is a lesson in itself: a transformer such as `minilm` shares what
it learns across words (try `lab.train("BatchAllTripletLoss", model="minilm", steps=20)`, slower
on a CPU).

## Where next

One notebook per family of losses, each with every loss of the family: the idea, a worked
example you can check by hand, a training run, its plots, widgets and questions.

{family_links}

Classroom exercises, where you implement losses yourself and a checker grades them, are in
`exercises/`. The teacher's guide is `TEACHERS_GUIDE.md`.
"""),
    ]
