"""The catalog of every loss the lab knows: the one source of truth for app, notebooks, CLI, tests.

For each of the 29 losses of sentence-transformers' ``sentence_transformer.losses`` this module
records its family, the data formats it accepts (names from :data:`lab.data.formats.FORMATS`,
most natural first), the model it trains on by default, its tunable knobs with slider ranges, a
plain-words explanation, the formula for one batch and the paper.

Nothing here imports torch or sentence-transformers: the catalog is plain data, cheap to import
from a Gradio callback or a notebook cell.

Conventions
-----------
* Knob names are exactly the constructor parameter names of the reference class, and knob
  defaults are exactly the reference defaults. Where the reference default is a function or a
  module (a distance, a similarity, a criterion), the knob stores a *name* instead, resolved by
  the code that builds the loss. The names are listed in :data:`FUNCTION_NAMES`.
* Where the reference parameter is required (``matryoshka_dims``), the knob's default is the
  lab's choice for a 384-dimensional model.
* Model names: ``"tiny"`` is the static-embedding model (token embeddings + mean pooling, 384
  dims), ``"tiny-bert"`` the small BERT built from a config (has transformer layers and can act
  as a decoder), ``"minilm"`` the full all-MiniLM-L6-v2 (used as GIST guide).
* Formula notation: B is the batch size, cos the cosine similarity, d a distance, s a scale
  (inverse temperature), τ a temperature, [x]₊ = max(0, x), a/p/n anchor/positive/negative.

Parameters deliberately not exposed as knobs (they are infrastructure, not something a student
tunes): ``gather_across_devices`` (multi-GPU only), ``show_progress_bar``,
``mini_batch_num_tokens`` (token packing), ``projection_dim`` (the lab's teacher and students
share 384 dims), ``matryoshka_weights`` (None means equal weights), ``cos_score_transformation``,
``decoder_name_or_path`` (chosen by the lab), and the objects ``model``, ``loss``, ``guide``,
plus SoftmaxLoss's ``embedding_dimension`` / ``num_labels`` (read off the model and the data).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from lab.data.formats import FORMATS

__all__ = [
    "FAMILIES",
    "FUNCTION_NAMES",
    "KNOB_KINDS",
    "LOSSES",
    "MODEL_NAMES",
    "Knob",
    "LossEntry",
    "UnknownLossError",
    "by_family",
    "get",
    "is_implemented",
    "losses_for_format",
    "overview_rows",
]

FAMILIES: tuple[str, ...] = (
    "triplet",
    "contrastive pairs",
    "scored pairs",
    "in-batch negatives",
    "classification",
    "unsupervised",
    "distillation",
    "modifiers and regularisers",
)
"""The loss families, in the order the lab presents them."""

KNOB_KINDS: tuple[str, ...] = ("float", "int", "bool", "choice")
"""The widget kinds a knob can have."""

MODEL_NAMES: tuple[str, ...] = ("tiny", "tiny-bert", "minilm")
"""Names of the lab's built-in models that a catalog entry may refer to."""

FUNCTION_NAMES: dict[str, str] = {
    "euclidean": "Euclidean (L2) distance",
    "cosine": "cosine distance, 1 - cos(u, v)",
    "manhattan": "Manhattan (L1) distance",
    "cos_sim": "cosine similarity (pairwise or full matrix, whichever the loss uses)",
    "dot": "dot product (pairwise or full matrix, whichever the loss uses)",
    "mse": "mean squared error criterion",
    "l1": "mean absolute error criterion",
}
"""What each name of a function-valued knob means (distances, similarities, criteria)."""


@dataclass(frozen=True)
class Knob:
    """One tunable constructor parameter of a loss, with what a slider or dropdown needs.

    ``low``/``high``/``step`` are set for numeric kinds ("float", "int") and ``choices`` for
    "choice"; the default always lies in the range or among the choices (checked on creation).
    """

    name: str
    default: Any
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KNOB_KINDS:
            raise ValueError(
                f"Knob {self.name!r}: kind must be one of {KNOB_KINDS}, got {self.kind!r}"
            )
        if self.kind in ("float", "int"):
            if self.low is None or self.high is None or self.step is None:
                raise ValueError(f"Knob {self.name!r}: numeric knobs need low, high and step")
            if not self.low <= self.default <= self.high:
                raise ValueError(
                    f"Knob {self.name!r}: default {self.default} outside [{self.low}, {self.high}]"
                )
        elif self.kind == "choice":
            if self.default not in self.choices:
                raise ValueError(f"Knob {self.name!r}: default {self.default!r} not in choices")
        elif not isinstance(self.default, bool):
            raise ValueError(f"Knob {self.name!r}: a bool knob needs a bool default")


@dataclass(frozen=True)
class LossEntry:
    """Everything the lab knows about one loss.

    Attributes:
        name: class name, identical in ``losses`` and in sentence-transformers.
        family: one of :data:`FAMILIES`.
        formats: data-format names (keys of ``FORMATS``) the loss accepts, most natural first.
        default_format: the format the lab trains it on when the user picks nothing.
        default_model: one of :data:`MODEL_NAMES`.
        knobs: the user-tunable constructor parameters.
        explanation: one paragraph for a student: what it pulls together and pushes apart, and
            when to choose it.
        formula: the loss for one batch in plain text / unicode math.
        paper: "title (year) URL", or "" when there is none.
        wraps: True when the loss wraps another loss (given as ``loss=``).
        needs_guide: True when the constructor needs a ``guide`` model.
        needs_num_labels: True when the constructor needs ``num_labels`` (and the model's
            ``embedding_dimension``).
        uses_raw_embeddings: True when the loss is pure math on embeddings (plus labels), so the
            2-D playground can apply it to free points with no encoder.
        default_inner_loss: for wrappers, the loss they wrap by default; "" otherwise.
        default_guide: for guided losses, the model used as guide; "" otherwise.
        notes: practical caveats the trainer, app or data loader must respect ("" if none).
    """

    name: str
    family: str
    formats: tuple[str, ...]
    default_format: str
    default_model: str
    knobs: tuple[Knob, ...]
    explanation: str
    formula: str
    paper: str
    wraps: bool = False
    needs_guide: bool = False
    needs_num_labels: bool = False
    uses_raw_embeddings: bool = False
    default_inner_loss: str = ""
    default_guide: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: unknown family {self.family!r}")
        unknown = [fmt for fmt in self.formats if fmt not in FORMATS]
        if unknown:
            raise ValueError(f"{self.name}: unknown formats {unknown}; valid: {list(FORMATS)}")
        if self.default_format not in self.formats:
            raise ValueError(f"{self.name}: default_format {self.default_format!r} not in formats")
        if self.default_model not in MODEL_NAMES:
            raise ValueError(f"{self.name}: unknown default_model {self.default_model!r}")
        if self.wraps != bool(self.default_inner_loss):
            raise ValueError(f"{self.name}: wrappers (and only wrappers) name a default_inner_loss")

    def knob(self, name: str) -> Knob:
        """Return the knob called ``name``; raise ``KeyError`` naming the valid knobs."""
        for knob in self.knobs:
            if knob.name == name:
                return knob
        raise KeyError(f"{self.name} has no knob {name!r}; knobs: {[k.name for k in self.knobs]}")

    @property
    def batch_sampler(self) -> str:
        """The batch sampler training needs (a sentence-transformers ``BatchSamplers`` value).

        "group_by_label" for losses that mine triplets inside a batch (a batch of one class has
        no negatives), "no_duplicates" for losses that treat the other rows of a batch as
        negatives (a duplicate text would be a false negative), "batch_sampler" otherwise.
        A wrapper needs what the loss it wraps needs (here: its default inner loss).
        """
        if self.wraps:
            return get(self.default_inner_loss).batch_sampler
        if self.family == "triplet" and self.default_format == "sentence-label":
            return "group_by_label"
        if self.family == "in-batch negatives" or self.name.endswith("InBatchNegatives"):
            return "no_duplicates"
        return "batch_sampler"

    def default_knob_values(self) -> dict[str, Any]:
        """The knob defaults as a ``{parameter name: default}`` dict (function knobs by name)."""
        return {knob.name: knob.default for knob in self.knobs}


# --------------------------------------------------------------------------------------------
# Knob builders shared by several losses. Each returns a fresh Knob with the reference default.
# --------------------------------------------------------------------------------------------


def _scale(default: float = 20.0) -> Knob:
    return Knob(
        "scale", default, "float", low=1.0, high=100.0, step=1.0,
        help="Multiplies similarities before the softmax (1 / temperature); higher is sharper.",
    )


def _similarity(default: str = "cos_sim") -> Knob:
    return Knob(
        "similarity_fct", default, "choice", choices=("cos_sim", "dot"),
        help="How two embeddings are scored: cosine similarity or plain dot product.",
    )


def _mini_batch_size(default: int = 32) -> Knob:
    return Knob(
        "mini_batch_size", default, "int", low=1, high=256, step=1,
        help="Texts embedded at once; saves memory without changing the loss or its gradient.",
    )


def _batch_distance() -> Knob:
    return Knob(
        "distance_metric", "euclidean", "choice", choices=("euclidean", "cosine"),
        help="Distance between embeddings used to mine and score triplets.",
    )


def _batch_margin() -> Knob:
    return Knob(
        "margin", 5, "float", low=0.0, high=10.0, step=0.1,
        help="How much farther than the positive every negative must be.",
    )


def _mnrl_direction_knobs() -> tuple[Knob, ...]:
    return (
        Knob(
            "directions", ("query_to_doc",), "choice",
            choices=(
                ("query_to_doc",),
                ("query_to_doc", "doc_to_query"),
                ("query_to_doc", "query_to_query"),
                ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"),
            ),
            help="Which comparisons compete in the softmax: queries vs documents, and optionally "
                 "documents vs queries, queries vs queries, documents vs documents.",
        ),
        Knob(
            "partition_mode", "joint", "choice", choices=("joint", "per_direction"),
            help="One softmax over all directions, or one per direction averaged "
                 "(per_direction cannot use query_to_query or doc_to_doc).",
        ),
        Knob(
            "hardness_mode", None, "choice",
            choices=(None, "in_batch_negatives", "hard_negatives", "all_negatives"),
            help="Which negatives get an extra push proportional to how similar they already are.",
        ),
        Knob(
            "hardness_strength", 0.0, "float", low=0.0, high=10.0, step=0.5,
            help="Size of that extra push on hard negatives (0 switches it off).",
        ),
    )


def _gist_knobs() -> tuple[Knob, ...]:
    return (
        Knob(
            "margin_strategy", "absolute", "choice", choices=("absolute", "relative"),
            help="Whether the false-negative margin is an absolute amount or a fraction of the "
                 "guide's positive score.",
        ),
        Knob(
            "margin", 0.0, "float", low=0.0, high=0.5, step=0.01,
            help="Drop a candidate when the guide scores it within this margin of the positive.",
        ),
        Knob(
            "contrast_anchors", True, "bool",
            help="Also use the other anchors of the batch as negatives.",
        ),
        Knob(
            "contrast_positives", True, "bool",
            help="Also contrast each positive against the other positives of the batch.",
        ),
    )


def _gist_temperature() -> Knob:
    return Knob(
        "temperature", 0.01, "float", low=0.005, high=0.5, step=0.005,
        help="Softmax temperature; lower is sharper (scale = 1 / temperature).",
    )


_MATRYOSHKA_DIMS_CHOICES: tuple[tuple[int, ...], ...] = (
    (384, 256, 128, 64, 32),
    (384, 192, 96, 48, 24),
    (384, 128, 32),
    (384, 256, 128, 64, 32, 16, 8),
    (128, 64, 32, 16),
    (128, 96, 64, 32, 16, 8),
)


def _matryoshka_dims(default: tuple[int, ...]) -> Knob:
    # The largest dimension must not exceed the model's: 384 for "tiny", 128 for "tiny-bert".
    return Knob(
        "matryoshka_dims", default, "choice", choices=_MATRYOSHKA_DIMS_CHOICES,
        help="Prefix lengths of the embedding that are each trained to work on their own.",
    )


def _n_dims_per_step(default: int) -> Knob:
    return Knob(
        "n_dims_per_step", default, "int", low=-1, high=5, step=1,
        help="How many of those dimensions are sampled per step (-1 uses all of them).",
    )


def _layer_knobs() -> tuple[Knob, ...]:
    return (
        Knob(
            "n_layers_per_step", 1, "int", low=-1, high=6, step=1,
            help="Earlier layers sampled per step for the extra loss (0 or -1 uses all of them).",
        ),
        Knob(
            "last_layer_weight", 1.0, "float", low=0.0, high=2.0, step=0.1,
            help="Weight of the inner loss on the final layer.",
        ),
        Knob(
            "prior_layers_weight", 1.0, "float", low=0.0, high=2.0, step=0.1,
            help="Weight of the inner loss on the sampled earlier layers.",
        ),
        Knob(
            "kl_div_weight", 1.0, "float", low=0.0, high=2.0, step=0.1,
            help="Weight of the term pulling earlier layers towards the final layer.",
        ),
        Knob(
            "kl_temperature", 0.3, "float", low=0.0, high=2.0, step=0.05,
            help="Temperature of that layer-to-final-layer KL term (0 switches it off).",
        ),
        Knob(
            "layer_weighting", "uniform", "choice", choices=("uniform", "log", "linear"),
            help="How earlier layers are weighted: equally, or less the deeper they sit.",
        ),
    )


_MNRL_FORMATS: tuple[str, ...] = ("pair", "triplet", "n-tuple")
_STATIC_REFUSED = (
    "The reference refuses a static-embedding model (its inputs cannot be split into "
    "mini-batches), so the lab trains it on tiny-bert."
)

# --------------------------------------------------------------------------------------------
# The entries, family by family. uses_raw_embeddings is True exactly where the loss is a
# function of embeddings (and labels) alone; the reason is given where it is False.
# --------------------------------------------------------------------------------------------

_ENTRIES: list[LossEntry] = [
    # ---------------------------------------------------------------- triplet
    LossEntry(
        name="TripletLoss",
        family="triplet",
        formats=("triplet",),
        default_format="triplet",
        default_model="tiny",
        knobs=(
            Knob(
                "distance_metric", "euclidean", "choice",
                choices=("euclidean", "cosine", "manhattan"),
                help="Distance used to compare the anchor with the positive and the negative.",
            ),
            Knob(
                "triplet_margin", 5, "float", low=0.0, high=10.0, step=0.1,
                help="How much farther than the positive the negative must be before the "
                     "triplet stops contributing.",
            ),
        ),
        explanation=(
            "Each example is a hand-picked triplet: an anchor, a positive that means the same "
            "and a negative that does not. The loss moves the anchor towards the positive and "
            "away from the negative until the negative is at least a margin farther away than "
            "the positive; after that the triplet is satisfied and gives no more gradient. "
            "Choose it when you already have good (anchor, positive, hard negative) triplets; "
            "with only pairs, in-batch-negative losses usually learn faster."
        ),
        formula="L = (1/B) Σᵢ [ d(aᵢ, pᵢ) − d(aᵢ, nᵢ) + margin ]₊",
        paper=(
            "FaceNet: A Unified Embedding for Face Recognition and Clustering (2015) "
            "https://arxiv.org/abs/1503.03832"
        ),
        uses_raw_embeddings=True,
    ),
    LossEntry(
        name="BatchAllTripletLoss",
        family="triplet",
        formats=("sentence-label",),
        default_format="sentence-label",
        default_model="tiny",
        knobs=(_batch_distance(), _batch_margin()),
        explanation=(
            "You give single sentences with a class label; the loss builds every triplet the "
            "batch allows (two sentences of the same class, one of another class) and applies "
            "the triplet hinge to all of them, averaging over the triplets that still violate "
            "the margin. It pulls each class together and pushes classes apart using every "
            "relation in the batch, which makes it a stable first choice for labelled data. "
            "Batches must hold several sentences of each class."
        ),
        formula=(
            "L = Σ_{(a,p,n) valid} [ d(a,p) − d(a,n) + margin ]₊ / #{valid triplets with "
            "loss > 0},  valid: y_a = y_p, a ≠ p, y_n ≠ y_a"
        ),
        paper=(
            "In Defense of the Triplet Loss for Person Re-Identification (2017) "
            "https://arxiv.org/abs/1703.07737"
        ),
        uses_raw_embeddings=True,
    ),
    LossEntry(
        name="BatchHardTripletLoss",
        family="triplet",
        formats=("sentence-label",),
        default_format="sentence-label",
        default_model="tiny",
        knobs=(_batch_distance(), _batch_margin()),
        explanation=(
            "For every sentence in the batch it picks only the hardest case: the farthest "
            "sentence of the same class and the closest sentence of another class, and asks "
            "that the second be a margin farther than the first. Focusing on the worst offenders "
            "gives a strong signal, but noisy labels then hurt more, because a mislabelled "
            "sentence is always the hardest. Needs several sentences per class in each batch."
        ),
        formula=(
            "L = (1/B) Σ_a [ max_{p: y_p=y_a, p≠a} d(a,p) − min_{n: y_n≠y_a} d(a,n) + margin ]₊"
        ),
        paper=(
            "In Defense of the Triplet Loss for Person Re-Identification (2017) "
            "https://arxiv.org/abs/1703.07737"
        ),
        uses_raw_embeddings=True,
    ),
    LossEntry(
        name="BatchSemiHardTripletLoss",
        family="triplet",
        formats=("sentence-label",),
        default_format="sentence-label",
        default_model="tiny",
        knobs=(_batch_distance(), _batch_margin()),
        explanation=(
            "For every same-class pair it picks a negative that is 'semi-hard': farther away "
            "than the positive, but the closest such one, so it still lies inside the margin. "
            "These negatives teach something without being so hard that training collapses. "
            "When no negative is farther than the positive it falls back to the farthest "
            "negative. A middle road between batch-all and batch-hard for labelled sentences."
        ),
        formula=(
            "for each pair (a,p) with y_a = y_p: n* = argmin_{n: y_n≠y_a, d(a,n) > d(a,p)} d(a,n) "
            "(if none: argmax_{n: y_n≠y_a} d(a,n));  "
            "L = mean over pairs of [ d(a,p) − d(a,n*) + margin ]₊"
        ),
        paper=(
            "FaceNet: A Unified Embedding for Face Recognition and Clustering (2015) "
            "https://arxiv.org/abs/1503.03832"
        ),
        uses_raw_embeddings=True,
    ),
    LossEntry(
        name="BatchHardSoftMarginTripletLoss",
        family="triplet",
        formats=("sentence-label",),
        default_format="sentence-label",
        default_model="tiny",
        knobs=(_batch_distance(),),
        explanation=(
            "Batch-hard mining (farthest positive, closest negative per sentence) with the hard "
            "hinge replaced by a smooth softplus, so there is no margin to tune and the loss "
            "never becomes exactly zero: it keeps pushing classes apart, gently once they are "
            "well separated. Choose it for labelled sentences when you do not want to pick a "
            "margin."
        ),
        formula=(
            "L = (1/B) Σ_a log(1 + exp( max_{p: y_p=y_a, p≠a} d(a,p) − min_{n: y_n≠y_a} d(a,n) ))"
        ),
        paper=(
            "In Defense of the Triplet Loss for Person Re-Identification (2017) "
            "https://arxiv.org/abs/1703.07737"
        ),
        uses_raw_embeddings=True,
    ),
    # ---------------------------------------------------------------- contrastive pairs
    LossEntry(
        name="ContrastiveLoss",
        family="contrastive pairs",
        formats=("pair-label",),
        default_format="pair-label",
        default_model="tiny",
        knobs=(
            Knob(
                "distance_metric", "cosine", "choice",
                choices=("cosine", "euclidean", "manhattan"),
                help="Distance between the two sentences of a pair.",
            ),
            Knob(
                "margin", 0.5, "float", low=0.0, high=2.0, step=0.05,
                help="Negative pairs closer than this are pushed apart; farther ones are left "
                     "alone.",
            ),
            Knob(
                "size_average", True, "bool",
                help="Average the per-pair losses (True) or sum them (False).",
            ),
        ),
        explanation=(
            "Works on pairs labelled 1 (same meaning) or 0 (different). Positive pairs are "
            "pulled together with a spring whose force grows with their distance; negative "
            "pairs are pushed apart only while they are closer than the margin. The classic "
            "Siamese-network loss: choose it when your data is yes/no pairs, for example "
            "duplicate-question detection."
        ),
        formula=(
            "L = (1/B) Σᵢ ½ [ yᵢ · d(uᵢ,vᵢ)² + (1 − yᵢ) · [margin − d(uᵢ,vᵢ)]₊² ]  "
            "(sum instead of mean when size_average=False)"
        ),
        paper=(
            "Dimensionality Reduction by Learning an Invariant Mapping (2006) "
            "http://yann.lecun.com/exdb/publis/pdf/hadsell-chopra-lecun-06.pdf"
        ),
        uses_raw_embeddings=True,
    ),
    LossEntry(
        name="OnlineContrastiveLoss",
        family="contrastive pairs",
        formats=("pair-label",),
        default_format="pair-label",
        default_model="tiny",
        knobs=(
            Knob(
                "distance_metric", "cosine", "choice",
                choices=("cosine", "euclidean", "manhattan"),
                help="Distance between the two sentences of a pair.",
            ),
            Knob(
                "margin", 0.5, "float", low=0.0, high=2.0, step=0.05,
                help="Hard negative pairs closer than this are pushed apart.",
            ),
        ),
        explanation=(
            "The contrastive loss restricted to the pairs that are currently wrong: positive "
            "pairs that sit farther apart than the closest negative pair, and negative pairs "
            "that sit closer than the farthest positive pair. Easy pairs are ignored, so the "
            "gradient concentrates on the confusing ones. It usually beats plain "
            "ContrastiveLoss on the same yes/no pair data."
        ),
        formula=(
            "P = positive pairs with d > min(d over negative pairs),  "
            "N = negative pairs with d < max(d over positive pairs);  "
            "L = Σ_{i∈P} d(uᵢ,vᵢ)² + Σ_{i∈N} [margin − d(uᵢ,vᵢ)]₊²"
        ),
        paper=(
            "Dimensionality Reduction by Learning an Invariant Mapping (2006) "
            "http://yann.lecun.com/exdb/publis/pdf/hadsell-chopra-lecun-06.pdf"
        ),
        uses_raw_embeddings=True,
    ),
    # ---------------------------------------------------------------- scored pairs
    LossEntry(
        name="CosineSimilarityLoss",
        family="scored pairs",
        formats=("pair-score",),
        default_format="pair-score",
        default_model="tiny",
        knobs=(
            Knob(
                "loss_fct", "mse", "choice", choices=("mse", "l1"),
                help="How the gap between predicted cosine and gold score is penalised.",
            ),
        ),
        explanation=(
            "Regression on similarity: for each pair with a gold score, the cosine of the two "
            "embeddings should equal that score. Every pair is handled on its own, so only "
            "absolute values matter, not the ordering between pairs. Simple and intuitive for "
            "graded-similarity (STS-style) data, though CoSENT usually trains better on the "
            "same data."
        ),
        formula="L = (1/B) Σᵢ ( cos(uᵢ, vᵢ) − yᵢ )²",
        paper=(
            "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks (2019) "
            "https://arxiv.org/abs/1908.10084"
        ),
        uses_raw_embeddings=True,
    ),
    LossEntry(
        name="CoSENTLoss",
        family="scored pairs",
        formats=("pair-score", "pair-label"),
        default_format="pair-score",
        default_model="tiny",
        knobs=(_scale(), _similarity("cos_sim")),
        explanation=(
            "A ranking loss for scored pairs: whenever pair i has a higher gold score than pair "
            "j, the model's similarity for i should be higher than for j. Only the order of the "
            "pairs matters, not hitting the exact score, which matches how similarity is judged "
            "and gives a stronger signal than CosineSimilarityLoss. Choose it for any data with "
            "graded scores or 0/1 labels on pairs."
        ),
        formula=(
            "L = log( 1 + Σ_{(i,j): yᵢ > yⱼ} exp( scale · (sim(uⱼ,vⱼ) − sim(uᵢ,vᵢ)) ) )"
        ),
        paper=(
            "CoSENT: Consistent Sentence Embedding via Similarity Ranking (2024) "
            "https://penghao-bdsc.github.io/papers/CoSENT_TASLP2024.pdf"
        ),
        uses_raw_embeddings=True,
    ),
    LossEntry(
        name="AnglELoss",
        family="scored pairs",
        formats=("pair-score", "pair-label", "triplet", "n-tuple"),
        default_format="pair-score",
        default_model="tiny",
        knobs=(_scale(),),
        explanation=(
            "The CoSENT ranking objective with a different score: each embedding is read as a "
            "complex vector (first half real part, second half imaginary part) and the pair is "
            "scored by an angle-based similarity. Cosine flattens out near ±1, so its gradient "
            "vanishes for very similar or very different pairs; the angle score keeps a usable "
            "gradient there. Choose it where you would choose CoSENT, often together with an "
            "in-batch-negatives loss."
        ),
        formula=(
            "L = log( 1 + Σ_{(i,j): yᵢ > yⱼ} exp( scale · (θ(uⱼ,vⱼ) − θ(uᵢ,vᵢ)) ) ),  "
            "θ(u,v) = | û·v̂ + Σₖ (û₂ₖ v̂₁ₖ − û₁ₖ v̂₂ₖ) |,  "
            "û, v̂ = unit vectors, ₁/₂ = first/second half"
        ),
        paper="AnglE-optimized Text Embeddings (2023) https://arxiv.org/abs/2309.12871",
        uses_raw_embeddings=True,
        notes=(
            "Unlabelled triplets / n-tuples are also accepted: (anchor, positive) counts as a "
            "pair with score 1 and each (anchor, negative) as a pair with score 0."
        ),
    ),
    # ---------------------------------------------------------------- in-batch negatives
    LossEntry(
        name="MultipleNegativesRankingLoss",
        family="in-batch negatives",
        formats=_MNRL_FORMATS,
        default_format="pair",
        default_model="tiny",
        knobs=(_scale(), _similarity("cos_sim"), *_mnrl_direction_knobs()),
        explanation=(
            "Also known as InfoNCE or in-batch negatives. Each anchor must pick out its own "
            "positive among all positives (and hard negatives) in the batch: a softmax "
            "classification where every other sentence is a free negative. Only positive pairs "
            "are needed, and bigger batches mean more negatives and a harder task. The default "
            "choice for (anchor, positive) data such as paraphrases or question-answer pairs."
        ),
        formula=(
            "L = −(1/B) Σᵢ log[ exp(scale·sim(aᵢ,pᵢ)) / Σ_{c ∈ {p₁..p_B, n₁..}} "
            "exp(scale·sim(aᵢ,c)) ]"
        ),
        paper=(
            "Efficient Natural Language Response Suggestion for Smart Reply (2017) "
            "https://arxiv.org/abs/1705.00652"
        ),
        uses_raw_embeddings=True,
    ),
    LossEntry(
        name="MultipleNegativesSymmetricRankingLoss",
        family="in-batch negatives",
        formats=_MNRL_FORMATS,
        default_format="pair",
        default_model="tiny",
        knobs=(_scale(), _similarity("cos_sim")),
        explanation=(
            "In-batch negatives in both directions: each anchor must find its positive among "
            "the batch's positives, and each positive must find its anchor among the batch's "
            "anchors; the two losses are averaged. Choose it when the relation is symmetric "
            "(paraphrases, translations) or when you will search in both directions."
        ),
        formula=(
            "L = ½ ( −(1/B) Σᵢ log softmaxⱼ(scale·sim(aᵢ,cⱼ))[pᵢ]  "
            "−(1/B) Σᵢ log softmaxⱼ(scale·sim(pᵢ,aⱼ))[aᵢ] )"
        ),
        paper=(
            "Efficient Natural Language Response Suggestion for Smart Reply (2017) "
            "https://arxiv.org/abs/1705.00652"
        ),
        uses_raw_embeddings=True,
    ),
    LossEntry(
        name="CachedMultipleNegativesRankingLoss",
        family="in-batch negatives",
        formats=_MNRL_FORMATS,
        default_format="pair",
        # The reference refuses static-embedding models (see notes).
        default_model="tiny-bert",
        knobs=(_scale(), _similarity("cos_sim"), _mini_batch_size(32), *_mnrl_direction_knobs()),
        explanation=(
            "Exactly MultipleNegativesRankingLoss, computed with gradient caching: embeddings "
            "are first computed without gradients in small mini-batches, the loss and its "
            "gradient with respect to the embeddings are taken over the whole batch, then each "
            "mini-batch is re-run to push that gradient into the model. Memory no longer grows "
            "with the batch, so you can afford the very large batches in-batch negatives love, "
            "at the cost of roughly twice the compute."
        ),
        formula=(
            "same as MultipleNegativesRankingLoss: L = −(1/B) Σᵢ log softmax_c(scale·sim(aᵢ,c))[pᵢ]"
            " (computed in mini-batches; the value and gradient do not change)"
        ),
        paper=(
            "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup (2021) "
            "https://arxiv.org/abs/2101.06983"
        ),
        # False: the point of the loss is the caching around the encoder; on free points it is
        # identical to MultipleNegativesRankingLoss, which the playground uses instead.
        uses_raw_embeddings=False,
        notes=_STATIC_REFUSED,
    ),
    LossEntry(
        name="CachedMultipleNegativesSymmetricRankingLoss",
        family="in-batch negatives",
        formats=_MNRL_FORMATS,
        default_format="pair",
        default_model="tiny-bert",
        knobs=(_scale(), _similarity("cos_sim"), _mini_batch_size(32)),
        explanation=(
            "The symmetric in-batch-negatives loss (anchor finds positive and positive finds "
            "anchor) with gradient caching, so very large batches fit in memory. Same value "
            "and gradient as MultipleNegativesSymmetricRankingLoss, about twice the compute."
        ),
        formula=(
            "same as MultipleNegativesSymmetricRankingLoss (computed in mini-batches; the value "
            "and gradient do not change)"
        ),
        paper=(
            "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup (2021) "
            "https://arxiv.org/abs/2101.06983"
        ),
        # False: caching wrapper around an encoder; see CachedMultipleNegativesRankingLoss.
        uses_raw_embeddings=False,
        notes=_STATIC_REFUSED,
    ),
    LossEntry(
        name="GISTEmbedLoss",
        family="in-batch negatives",
        # The reference accepts 2 or 3 text columns only, so no n-tuples.
        formats=("pair", "triplet"),
        default_format="pair",
        default_model="tiny-bert",
        knobs=(_gist_temperature(), *_gist_knobs()),
        explanation=(
            "In-batch negatives with a referee. A second, fixed 'guide' model scores every "
            "candidate too, and any in-batch negative that the guide finds at least as similar "
            "to the anchor as the true positive is removed from the softmax, since it is "
            "probably a false negative (another valid answer that happens to share the batch). "
            "Choose it when your batches are likely to contain duplicates or near-duplicates "
            "and you have a good model to act as guide."
        ),
        formula=(
            "L = −(1/B) Σᵢ log[ exp(cos(aᵢ,pᵢ)/τ) / Σ_{c ∈ Cᵢ} exp(cos(aᵢ,c)/τ) ],  "
            "Cᵢ = batch positives, negatives (and anchors, positives-vs-positives when enabled) "
            "minus every c with g(aᵢ,c) > g(aᵢ,pᵢ) − margin (g = guide cosine)"
        ),
        paper=(
            "GISTEmbed: Guided In-sample Selection of Training Negatives for Text Embedding "
            "Fine-tuning (2024) https://arxiv.org/abs/2402.16829"
        ),
        needs_guide=True,
        default_guide="minilm",
        # False: the masking depends on a second model's view of the same texts.
        uses_raw_embeddings=False,
        notes=(
            "Takes 2 or 3 text columns only. The reference refuses a static-embedding student "
            "when it must re-tokenise for the guide (its tokenizer is not a transformers one), "
            "so the lab trains it on tiny-bert with MiniLM as guide."
        ),
    ),
    LossEntry(
        name="CachedGISTEmbedLoss",
        family="in-batch negatives",
        formats=_MNRL_FORMATS,
        default_format="pair",
        default_model="tiny-bert",
        knobs=(_gist_temperature(), _mini_batch_size(32), *_gist_knobs()),
        explanation=(
            "GISTEmbedLoss with gradient caching: the guide still vetoes likely false "
            "negatives, and the embeddings are computed in mini-batches so very large batches "
            "fit in memory. Same value and gradient as the uncached loss, about twice the "
            "compute."
        ),
        formula="same as GISTEmbedLoss (computed in mini-batches; value and gradient unchanged)",
        paper=(
            "GISTEmbed: Guided In-sample Selection of Training Negatives for Text Embedding "
            "Fine-tuning (2024) https://arxiv.org/abs/2402.16829"
        ),
        needs_guide=True,
        default_guide="minilm",
        # False: needs a guide model and is a caching mechanism around an encoder.
        uses_raw_embeddings=False,
        notes=_STATIC_REFUSED,
    ),
    LossEntry(
        name="MegaBatchMarginLoss",
        family="in-batch negatives",
        formats=("pair",),
        default_format="pair",
        # With the default use_mini_batched_version=True the reference refuses static models.
        default_model="tiny-bert",
        knobs=(
            Knob(
                "positive_margin", 0.8, "float", low=0.0, high=1.0, step=0.05,
                help="Cosine an anchor and its positive should at least reach.",
            ),
            Knob(
                "negative_margin", 0.3, "float", low=-1.0, high=1.0, step=0.05,
                help="Cosine the hardest in-batch negative should stay below.",
            ),
            Knob(
                "use_mini_batched_version", True, "bool",
                help="Embed in mini-batches to save memory (same loss, about 2x compute).",
            ),
            _mini_batch_size(50),
        ),
        explanation=(
            "For each (anchor, positive) pair, the hardest negative is the other pair's "
            "positive that is most similar to the anchor. Two hinges then apply: the anchor's "
            "cosine with its positive should exceed the positive margin, and its cosine with "
            "that hardest negative should stay below the negative margin. The larger the batch, "
            "the harder the mined negatives, hence 'mega batch' (hundreds of pairs)."
        ),
        formula=(
            "L = (1/B) Σᵢ ( [m⁺ − cos(aᵢ,pᵢ)]₊ + [max_{j≠i} cos(aᵢ,pⱼ) − m⁻]₊ )"
        ),
        paper=(
            "ParaNMT-50M: Pushing the Limits of Paraphrastic Sentence Embeddings with Millions "
            "of Machine Translations (2018) https://aclanthology.org/P18-1042/"
        ),
        uses_raw_embeddings=True,
        notes=(
            "Wants large batches. With use_mini_batched_version=True (the default) the "
            "reference refuses a static-embedding model: use tiny-bert, or switch it off to "
            "train the tiny model."
        ),
    ),
    # ---------------------------------------------------------------- classification
    LossEntry(
        name="SoftmaxLoss",
        family="classification",
        formats=("nli",),
        default_format="nli",
        default_model="tiny",
        knobs=(
            Knob(
                "concatenation_sent_rep", True, "bool",
                help="Feed both sentence embeddings u and v to the classifier.",
            ),
            Knob(
                "concatenation_sent_difference", True, "bool",
                help="Feed their element-wise distance |u − v| to the classifier.",
            ),
            Knob(
                "concatenation_sent_multiplication", False, "bool",
                help="Feed their element-wise product u * v to the classifier.",
            ),
        ),
        explanation=(
            "A small linear classifier sits on top of the two sentence embeddings and predicts "
            "the pair's class (for NLI: entailment, neutral, contradiction) with cross-entropy. "
            "The embeddings only improve indirectly, by becoming useful features for that "
            "classifier, which is how the original Sentence-BERT was trained. Choose it for "
            "labelled pair classification; for similarity search, losses that act on distances "
            "directly usually do better."
        ),
        formula="z = W · [u; v; |u − v|] (u * v optional);  L = −(1/B) Σᵢ log softmax(zᵢ)[yᵢ]",
        paper=(
            "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks (2019) "
            "https://arxiv.org/abs/1908.10084"
        ),
        needs_num_labels=True,
        # False: the loss has its own trainable classifier W, not just embeddings and labels.
        uses_raw_embeddings=False,
        notes="embedding_dimension comes from the model; num_labels from the data (3 for nli).",
    ),
    # ---------------------------------------------------------------- unsupervised
    LossEntry(
        name="ContrastiveTensionLoss",
        family="unsupervised",
        formats=("sentence",),
        default_format="sentence",
        # Its automatic labelling compares token-id rows, which a static model does not produce.
        default_model="tiny-bert",
        knobs=(),
        explanation=(
            "Unsupervised: two independent copies of the encoder read a pair of sentences, and "
            "a binary classifier on the dot product of their embeddings must tell whether the "
            "two sentences are identical (positive) or different (negative). Needing no labels "
            "at all, it undoes the 'everything looks similar' habit of pretrained language "
            "models. Choose it when you only have raw sentences from your domain."
        ),
        formula=(
            "L = −(1/B) Σᵢ [ yᵢ log σ(fᵢ·gᵢ) + (1 − yᵢ) log(1 − σ(fᵢ·gᵢ)) ],  f, g from the two "
            "encoder copies, yᵢ = 1 iff the two texts are identical"
        ),
        paper="Semantic Re-tuning with Contrastive Tension (2021) https://openreview.net/forum?id=Ov_sMNau-PF",
        # False: the two encoder copies are the mechanism; there is nothing to do on free points.
        uses_raw_embeddings=False,
        notes=(
            "The reference forward takes two text columns (text_A, text_B) with no label, and "
            "labels a pair 1 when the two texts are identical. The lab derives those pairs "
            "from the 'sentence' format: each sentence paired with itself now and then "
            "(about 1 in 8) and with a random other sentence otherwise. The automatic "
            "labelling fails on a static-embedding model, hence tiny-bert."
        ),
    ),
    LossEntry(
        name="ContrastiveTensionLossInBatchNegatives",
        family="unsupervised",
        formats=("sentence",),
        default_format="sentence",
        default_model="tiny-bert",
        knobs=(_scale(), _similarity("cos_sim")),
        explanation=(
            "Contrastive tension with in-batch negatives: both encoder copies embed the same "
            "sentence, which is the positive pair, and every other sentence in the batch is a "
            "negative, in a symmetric softmax. A stronger signal than the original contrastive "
            "tension, improving with batch size. Choose it for unsupervised domain adaptation "
            "from raw sentences."
        ),
        formula=(
            "Sᵢⱼ = scale · sim(fᵢ, gⱼ);  L = ½ ( CE(S, I) + CE(Sᵀ, I) ),  f, g from the two "
            "encoder copies on the same sentences, CE = row-wise cross-entropy with the "
            "diagonal as target"
        ),
        paper="Semantic Re-tuning with Contrastive Tension (2021) https://openreview.net/forum?id=Ov_sMNau-PF",
        # False: the two encoder copies read the same text; free points have no second copy.
        uses_raw_embeddings=False,
        notes=(
            "One text column; the reference reads only the first column and makes the "
            "(sentence, same sentence) pair itself."
        ),
    ),
    LossEntry(
        name="DenoisingAutoEncoderLoss",
        family="unsupervised",
        formats=("denoising",),
        default_format="denoising",
        default_model="tiny-bert",
        knobs=(
            Knob(
                "tie_encoder_decoder", True, "bool",
                help="Share the weights of encoder and decoder (less memory, usually better).",
            ),
        ),
        explanation=(
            "TSDAE: a sentence with words deleted is squeezed into one embedding, and a decoder "
            "that sees only that embedding must rebuild the original sentence word by word. To "
            "make this possible the embedding has to capture what the sentence is about. "
            "Unsupervised; choose it for domain adaptation from raw sentences, with a "
            "transformer model that can serve as decoder."
        ),
        formula=(
            "L = −(1/B) Σᵢ Σₜ log P_dec( xᵢ,ₜ | xᵢ,<ₜ, e(x̃ᵢ) ),  x̃ = damaged sentence, "
            "x = original, e = sentence embedding"
        ),
        paper=(
            "TSDAE: Using Transformer-based Sequential Denoising Auto-Encoder for Unsupervised "
            "Sentence Embedding Learning (2021) https://arxiv.org/abs/2104.06979"
        ),
        # False: needs a decoder reading token sequences, not just embeddings.
        uses_raw_embeddings=False,
    ),
    # ---------------------------------------------------------------- distillation
    LossEntry(
        name="MSELoss",
        family="distillation",
        formats=("teacher-embedding",),
        default_format="teacher-embedding",
        default_model="tiny",
        knobs=(),
        explanation=(
            "Distillation by copying: the student's embedding of each sentence should equal "
            "the teacher's precomputed embedding, coordinate by coordinate. Simple and "
            "effective when student and teacher have the same dimension, for example to make "
            "a small model imitate a big one, or a multilingual student imitate an English "
            "teacher on translated sentences."
        ),
        formula="L = mean over batch and dimensions of ( eᵢ − tᵢ )²,  t = teacher embedding",
        paper=(
            "Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation "
            "(2020) https://arxiv.org/abs/2004.09813"
        ),
        uses_raw_embeddings=True,
    ),
    LossEntry(
        name="MarginMSELoss",
        family="distillation",
        formats=("teacher-margin", "teacher-scores"),
        default_format="teacher-margin",
        default_model="tiny",
        knobs=(
            Knob(
                "similarity_fct", "dot", "choice", choices=("dot", "cos_sim"),
                help="How the student scores a (query, document) pair.",
            ),
        ),
        explanation=(
            "Distillation of preferences rather than coordinates: the teacher says by how much "
            "the positive beats the negative for a query, and the student's own score margin "
            "sim(q, p) − sim(q, n) should match that number. Only the gap is copied, so "
            "student and teacher may score on different scales. The standard choice for "
            "distilling a cross-encoder into a retrieval model."
        ),
        formula=(
            "L = mean over i, k of ( (sim(qᵢ,pᵢ) − sim(qᵢ,nᵢₖ)) − (T(qᵢ,pᵢ) − T(qᵢ,nᵢₖ)) )²"
        ),
        paper=(
            "Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge "
            "Distillation (2020) https://arxiv.org/abs/2010.02666"
        ),
        uses_raw_embeddings=True,
        notes=(
            "The label may be the margin(s) T(q,p) − T(q,nₖ) or the raw teacher scores "
            "[T(q,p), T(q,n₁), ...]; raw scores are turned into margins."
        ),
    ),
    LossEntry(
        name="DistillKLDivLoss",
        family="distillation",
        formats=("teacher-scores",),
        default_format="teacher-scores",
        default_model="tiny",
        knobs=(
            Knob(
                "similarity_fct", "dot", "choice", choices=("dot", "cos_sim"),
                help="How the student scores a (query, document) pair.",
            ),
            Knob(
                "temperature", 1.0, "float", low=0.05, high=5.0, step=0.05,
                help="Softens both score distributions; higher means flatter.",
            ),
            Knob(
                "student_temperature", None, "choice", choices=(None, 0.05, 0.1, 0.5, 1.0, 2.0),
                help="Student-side temperature override (None uses temperature).",
            ),
            Knob(
                "teacher_temperature", None, "choice", choices=(None, 0.05, 0.1, 0.5, 1.0, 2.0),
                help="Teacher-side temperature override (None uses temperature).",
            ),
        ),
        explanation=(
            "Distillation of a whole ranking: for each query, teacher and student scores over "
            "the positive and the negatives are turned into probability distributions with a "
            "softmax, and the student's distribution is pulled towards the teacher's "
            "(KL divergence). It passes on how much better each candidate is, not just which is "
            "best. Choose it when you have teacher scores for several candidates per query."
        ),
        formula=(
            "L = τ_s² · (1/B) Σᵢ KL( softmax(tᵢ/τ_t) ‖ softmax(sᵢ/τ_s) ),  "
            "sᵢₖ = sim(qᵢ, cᵢₖ) student scores, tᵢ teacher scores over the same candidates"
        ),
        paper=(
            "Distilling Dense Representations for Ranking using Tightly-Coupled Teachers "
            "(2020) https://arxiv.org/abs/2010.11386"
        ),
        uses_raw_embeddings=True,
        notes="Needs at least two candidates per query (positive and one negative).",
    ),
    LossEntry(
        name="EmbedDistillLoss",
        family="distillation",
        formats=("teacher-embedding",),
        default_format="teacher-embedding",
        default_model="tiny",
        knobs=(
            Knob(
                "distance_metric", "cosine", "choice", choices=("cosine", "l2", "mse"),
                help="How far the student's embedding is from the teacher's.",
            ),
        ),
        explanation=(
            "Embedding matching with a choice of distance: the student's embedding of each text "
            "should lie on top of the teacher's precomputed embedding. With cosine distance "
            "only the direction is copied, which is what retrieval with cosine similarity "
            "needs; L2 and MSE copy the vector itself. Choose it to distil an embedding "
            "teacher into a smaller student."
        ),
        formula=(
            "L = mean over columns c and batch i of dist(e_{c,i}, t_{c,i}),  dist ∈ "
            "{1 − cos, ‖e − t‖₂, mean((e − t)²)}"
        ),
        paper=(
            "EmbedDistill: A Geometric Knowledge Distillation for Information Retrieval (2023) "
            "https://arxiv.org/abs/2301.12005"
        ),
        uses_raw_embeddings=True,
        notes=(
            "The reference also takes several text columns, with one teacher embedding per "
            "column or one shared by all; the lab uses the single-column format."
        ),
    ),
    # ---------------------------------------------------------------- modifiers and regularisers
    LossEntry(
        name="MatryoshkaLoss",
        family="modifiers and regularisers",
        formats=_MNRL_FORMATS,
        default_format="pair",
        default_model="tiny",
        knobs=(_matryoshka_dims((384, 256, 128, 64, 32)), _n_dims_per_step(-1)),
        explanation=(
            "Wraps another loss and applies it several times: to the full embedding and to its "
            "first 256, 128, 64, ... coordinates, summing the results. The model learns to put "
            "the most important information first, so embeddings can later be truncated for "
            "cheaper storage and search with little loss in quality. Choose it on top of your "
            "usual loss whenever smaller embeddings would be useful."
        ),
        formula="L = Σ_{d ∈ dims} w_d · L_inner( e[:d] ),  e[:d] = first d coordinates",
        paper="Matryoshka Representation Learning (2022) https://arxiv.org/abs/2205.13147",
        wraps=True,
        default_inner_loss="MultipleNegativesRankingLoss",
        # False: wraps an encoder-level loss; truncating 2-D points has no meaning.
        uses_raw_embeddings=False,
        notes="The formats are those of the wrapped loss.",
    ),
    LossEntry(
        name="Matryoshka2dLoss",
        family="modifiers and regularisers",
        formats=_MNRL_FORMATS,
        default_format="pair",
        default_model="tiny-bert",
        knobs=(
            _matryoshka_dims((128, 64, 32, 16)),  # tiny-bert embeds in 128 dimensions
            _n_dims_per_step(1),
            *_layer_knobs(),
        ),
        explanation=(
            "Matryoshka in two directions: embeddings should work when truncated to fewer "
            "dimensions and also when taken from an earlier transformer layer. It is "
            "AdaptiveLayerLoss around MatryoshkaLoss around your loss, so you can later trade "
            "quality for speed by cutting both dimensions and layers."
        ),
        formula=(
            "L = AdaptiveLayer( Matryoshka( L_inner ) ): the Matryoshka sum over dimensions, "
            "applied to the final layer and to sampled earlier layers, plus the KL term"
        ),
        paper="2D Matryoshka Sentence Embeddings (2024) https://arxiv.org/abs/2402.14776",
        wraps=True,
        default_inner_loss="MultipleNegativesRankingLoss",
        # False: needs transformer layers and truncation of real embeddings.
        uses_raw_embeddings=False,
        notes=(
            "Needs a transformer model (layers). matryoshka_dims must not exceed the model's "
            "embedding dimension (128 for tiny-bert, 384 for tiny and minilm). The formats are "
            "those of the wrapped loss."
        ),
    ),
    LossEntry(
        name="AdaptiveLayerLoss",
        family="modifiers and regularisers",
        formats=_MNRL_FORMATS,
        default_format="pair",
        default_model="tiny-bert",
        knobs=_layer_knobs(),
        explanation=(
            "Wraps another loss and also applies it to the sentence embeddings taken after "
            "earlier transformer layers, while a KL term pulls each earlier layer's embedding "
            "distribution towards the final layer's. The model learns to give usable "
            "embeddings even when cut short, so at inference you can drop the last layers for "
            "speed."
        ),
        formula=(
            "L = w_last · L_inner(final) + Σ_{l ∈ S} [ w_prior · ω(l)/|S| · L_inner(layer l) "
            "+ kl_div_weight · τ · KL( softmax(e_final/τ) ‖ softmax(e_l/τ) ) ],  "
            "S = sampled earlier layers, ω = layer weighting"
        ),
        paper="2D Matryoshka Sentence Embeddings (2024) https://arxiv.org/abs/2402.14776",
        wraps=True,
        default_inner_loss="MultipleNegativesRankingLoss",
        # False: needs the hidden states of transformer layers.
        uses_raw_embeddings=False,
        notes="Needs a transformer model (layers). The formats are those of the wrapped loss.",
    ),
    LossEntry(
        name="GlobalOrthogonalRegularizationLoss",
        family="modifiers and regularisers",
        formats=("pair", "triplet", "n-tuple", "sentence"),
        default_format="pair",
        default_model="tiny",
        knobs=(
            _similarity("cos_sim"),
            Knob(
                "mean_weight", 1.0, "float", low=0.0, high=5.0, step=0.1,
                help="Weight of the term that pushes the average similarity towards 0.",
            ),
            Knob(
                "second_moment_weight", 1.0, "float", low=0.0, high=5.0, step=0.1,
                help="Weight of the term that keeps similarities from bunching up.",
            ),
            Knob(
                "aggregation", "mean", "choice", choices=("mean", "sum"),
                help="Average or add up the per-column losses.",
            ),
        ),
        explanation=(
            "A regulariser that spreads embeddings out. Within each text column, unrelated "
            "sentences should on average be orthogonal (mean similarity near 0), and their "
            "squared similarities should not exceed what random directions in d dimensions "
            "give (1/d). It fights the collapse of all embeddings into a narrow cone. Use it "
            "next to a main loss such as MultipleNegativesRankingLoss; it ignores labels."
        ),
        formula=(
            "per column: M₁ = mean_{i≠j} sim(eᵢ,eⱼ), M₂ = mean_{i≠j} sim(eᵢ,eⱼ)²;  "
            "L = agg over columns of ( mean_weight · M₁² + second_moment_weight · [M₂ − 1/d]₊ )"
        ),
        paper="Learning Spread-out Local Feature Descriptors (2017) https://arxiv.org/abs/1708.06320",
        uses_raw_embeddings=True,
        notes=(
            "Accepts any number of text columns and no label; returns two named components "
            "(mean term and second-moment term)."
        ),
    ),
]

LOSSES: dict[str, LossEntry] = {entry.name: entry for entry in _ENTRIES}
"""Every loss by name, in family order (see :data:`FAMILIES`), then in catalog order."""

if len(LOSSES) != len(_ENTRIES):  # pragma: no cover - guards against a duplicated entry
    raise RuntimeError("lab.catalog: duplicate loss names")


class UnknownLossError(KeyError, ValueError):
    """Raised by :func:`get` for a name that is not in the catalog.

    It is both a ``KeyError`` (a failed lookup) and a ``ValueError`` (a bad argument), and its
    message lists the valid names and the closest match.
    """

    def __str__(self) -> str:
        # KeyError would show the message with quotes around it; show it plainly.
        return str(self.args[0]) if self.args else ""


def get(name: str) -> LossEntry:
    """Return the catalog entry of the loss called ``name`` (exact class name).

    Raises:
        UnknownLossError: ``name`` is not a loss of the catalog. The message suggests the
            closest name (a typo, or different capitalisation) and lists all valid names.
    """
    try:
        return LOSSES[name]
    except KeyError:
        pass
    by_lower = {loss_name.lower(): loss_name for loss_name in LOSSES}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.5)
    hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
    raise UnknownLossError(
        f"Unknown loss {name!r}.{hint} Valid names: {', '.join(LOSSES)}."
    )


def is_implemented(name: str) -> bool:
    """True when our ``losses`` package provides the loss (the rest are still to be written).

    Derived from ``losses.__all__`` rather than kept as a flag, so it can never disagree with
    the code. Imports ``losses`` (and so torch) on first call.
    """
    import losses

    return get(name).name in losses.__all__


def by_family() -> dict[str, list[LossEntry]]:
    """Return the losses grouped by family, families in :data:`FAMILIES` order."""
    groups: dict[str, list[LossEntry]] = {family: [] for family in FAMILIES}
    for entry in LOSSES.values():
        groups[entry.family].append(entry)
    return groups


def losses_for_format(fmt: str) -> list[LossEntry]:
    """Return the losses that accept data format ``fmt``, in catalog order.

    Raises:
        ValueError: ``fmt`` is not a format name of :data:`lab.data.formats.FORMATS`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown data format {fmt!r}. Valid formats: {', '.join(FORMATS)}.")
    return [entry for entry in LOSSES.values() if fmt in entry.formats]


def overview_rows() -> list[dict[str, str]]:
    """Return one row per loss for the overview table shown by the notebooks and the app.

    Each row has the keys ``name``, ``family``, ``formats`` (comma-separated, most natural
    first) and ``default_format``.
    """
    return [
        {
            "name": entry.name,
            "family": entry.family,
            "formats": ", ".join(entry.formats),
            "default_format": entry.default_format,
        }
        for entry in LOSSES.values()
    ]
