"""How each catalog loss is benchmarked: its inputs, its batch sizes and its matrix-product floor.

The list of losses is ``lab.catalog.LOSSES`` (never a list of our own); this module only says how
to feed each one. Both implementations get identical inputs and are built by the same factory
(``lab.build.build_loss`` with the catalog's default knobs, ``library=`` ours or the reference's).

Two kinds of model stand in front of a loss:

- ``table`` (most losses): a lookup table of fixed random 384-dim embeddings, text i of column c
  being row c·B + i. Its forward is one index, its backward one scatter, so the measurement is the
  loss itself (forward + backward), as the trainer calls it (``loss(features, labels)``), for the
  cached losses and GIST too (GIST's guide is a copy of the same table: the model guides itself);
- ``tiny-bert`` (the lab's 2-layer BERT, dropout 0, 32 tokens per text): for the losses that need
  transformer layers or a decoder (AdaptiveLayerLoss, Matryoshka2dLoss, DenoisingAutoEncoderLoss),
  and for the cached losses' memory at scale, which only means something with a real encoder:
  gradient caching trades the activations of a big batch for those of one mini-batch.

The floor of a matrix-product loss is the time of the matrix products the loss cannot avoid
(forward, and backward where a gradient flows through them) on the same machine (``FLOORS``).
Run as ``python -m benchmarks.cases --serve ours|reference``, this module is the fork server of
``benchmarks.harness``.
"""

from __future__ import annotations

import argparse
import itertools
import random
import warnings
from dataclasses import dataclass
from typing import Any

DIM = 384
SEQUENCE_LENGTH = 32  # tokens per text for tiny-bert (the teaching corpus's sentences are short)
CLASSES = 8  # classes of the label losses' batches, balanced (as a label-balanced sampler gives)

DEFAULT_BATCHES = (256, 1024, 4096)
LARGE_BATCH = 4096

# Losses that need a real transformer (layers or a decoder), measured with tiny-bert.
TRANSFORMER_LOSSES = frozenset({"AdaptiveLayerLoss", "Matryoshka2dLoss",
                                "DenoisingAutoEncoderLoss"})
# Cached losses: their memory at batch 256 and 4096 is also measured with tiny-bert.
CACHED_LOSSES = ("CachedMultipleNegativesRankingLoss",
                 "CachedMultipleNegativesSymmetricRankingLoss", "CachedGISTEmbedLoss")
CACHED_SCALING_BATCHES = (256, 4096)
# Quick mode: a tiny-bert call at 4096 takes ~20 s per implementation and repeat.
CACHED_SCALING_QUICK = (256, 512)


@dataclass(frozen=True)
class Product:
    """One similarity matrix a loss needs: columns ``left`` x ``right``ᵀ over the first ``width``
    dimensions (None: all); ``grad`` False for the products without a gradient (a guide's)."""

    left: int
    right: int
    width: int | None = None
    grad: bool = True


@dataclass(frozen=True)
class Floor:
    """The unavoidable work of a loss: similarity matrices, or (``pairwise``) the B similarities
    of the rows' own pairs (CoSENT, AnglE: their scores are per pair; ours ranks them in
    O(B log B) without any (B, B) matrix, so their floor is not a matrix product and they are
    shown, not held to the 1.5x target). ``target``: whether the 1.5x target applies.
    ``gradient_cache``: the loss is a GradCache loss (both implementations embed every column in
    mini-batches without a graph, then again with one and back-propagate each mini-batch), so its
    floor also runs the stand-in model over those mini-batches, twice: that is the method's own
    work, not the loss's arithmetic, and no implementation of it can skip it."""

    products: tuple[Product, ...] = ()
    pairwise: bool = False
    description: str = ""
    target: bool = True
    gradient_cache: bool = False


_PAIR = Floor((Product(0, 1),), description="a·pᵀ (B x d x B), forward + backward")
_PASSES = ("the stand-in model over every mini-batch (of the loss's mini_batch_size) twice, "
           "without a graph and then with one and its backward: the GradCache method's own work")
_CACHED_PAIR = Floor((Product(0, 1),), gradient_cache=True,
                     description="a·pᵀ (B x d x B), forward + backward, plus " + _PASSES)
_PAIRWISE = Floor(pairwise=True, target=False,
                  description="the B pair similarities a_i·p_i (B x d), forward + backward; "
                              "no matrix product (shown, not a target)")
FLOORS: dict[str, Floor] = {
    "MultipleNegativesRankingLoss": _PAIR,
    "MultipleNegativesSymmetricRankingLoss": _PAIR,
    "CachedMultipleNegativesRankingLoss": _CACHED_PAIR,
    "CachedMultipleNegativesSymmetricRankingLoss": Floor(
        (Product(0, 1),), gradient_cache=True,
        description="a·pᵀ (B x d x B), forward + backward, plus " + _PASSES + ". Within bounded "
                    "memory (no B x B matrix held) the symmetric loss needs a fourth product: "
                    "a column's log-sum-exp needs every row before any row's gradient, so each "
                    "chunk of rows is scored twice; 4/3 of this floor's products is its minimum"),
    "MegaBatchMarginLoss": Floor(
        (Product(0, 1, grad=False),), gradient_cache=True,
        description="a·pᵀ without gradient: it only finds each anchor's hardest negative; the "
                    "two similarities per anchor that carry a gradient are O(B·d). Plus "
                    + _PASSES),
    "MatryoshkaLoss": Floor(tuple(Product(0, 1, width) for width in (384, 256, 128, 64, 32)),
                            target=False,  # not one of the matrix-product losses
                            description="a·pᵀ at each Matryoshka width (384..32), fwd + bwd "
                                        "(shown, not a target)"),
    "GlobalOrthogonalRegularizationLoss": Floor(
        (Product(0, 0), Product(1, 1)), description="a·aᵀ and p·pᵀ, forward + backward"),
    "CoSENTLoss": _PAIRWISE,
    "AnglELoss": _PAIRWISE,
}
for _name in ("GISTEmbedLoss", "CachedGISTEmbedLoss"):
    FLOORS[_name] = Floor(
        (Product(0, 1), Product(0, 0), Product(1, 1),
         Product(0, 1, grad=False), Product(0, 0, grad=False), Product(1, 1, grad=False)),
        target=False,  # the issue holds GIST to completing batch 4096, not to its floor
        description="a·pᵀ, a·aᵀ, p·pᵀ fwd + bwd, and the guide's three without gradient "
                    "(shown, not a target)")
"""The losses with a floor, and what each floor computes."""


@dataclass(frozen=True)
class Recipe:
    """How to benchmark one loss: the model in front of it, full and quick batch sizes (the
    knobs are always the catalog's defaults). ``reference_fails``: batch sizes at which the
    reference runs out of memory or time in every full run; quick mode does not wait for it."""

    model: str = "table"
    batches: tuple[int, ...] = DEFAULT_BATCHES
    quick_batches: tuple[int, ...] = (1024,)
    reference_fails: tuple[int, ...] = ()


_LABEL_LOSS_BATCHES = (256, 1024, 2048, 4096)
_MATRIX_QUICK = (1024, LARGE_BATCH)  # the floor target is at 4096
RECIPES: dict[str, Recipe] = {
    "BatchAllTripletLoss": Recipe(batches=(256, 512, 1024, 2048, 4096),
                                  quick_batches=(1024, LARGE_BATCH),
                                  reference_fails=(2048, LARGE_BATCH)),  # ~31 GB at 2048
    "BatchHardTripletLoss": Recipe(batches=_LABEL_LOSS_BATCHES),
    "BatchSemiHardTripletLoss": Recipe(batches=_LABEL_LOSS_BATCHES),
    "BatchHardSoftMarginTripletLoss": Recipe(batches=_LABEL_LOSS_BATCHES),
    # The reference's GIST runs out of memory from 1024, its CachedGIST takes over 300 s at 4096.
    "GISTEmbedLoss": Recipe(quick_batches=(256, LARGE_BATCH), reference_fails=(LARGE_BATCH,)),
    "CachedGISTEmbedLoss": Recipe(quick_batches=(256, LARGE_BATCH),
                                  reference_fails=(LARGE_BATCH,)),
    "CachedMultipleNegativesRankingLoss": Recipe(quick_batches=_MATRIX_QUICK),
    "CachedMultipleNegativesSymmetricRankingLoss": Recipe(quick_batches=_MATRIX_QUICK),
    **{name: Recipe(quick_batches=_MATRIX_QUICK) for name in (
        "MultipleNegativesRankingLoss", "MultipleNegativesSymmetricRankingLoss", "CoSENTLoss",
        "AnglELoss", "MegaBatchMarginLoss", "GlobalOrthogonalRegularizationLoss",
        "MatryoshkaLoss")},
    **{name: Recipe(model="tiny-bert", batches=(32, 128, 512), quick_batches=(32,))
       for name in TRANSFORMER_LOSSES},
}
"""Losses whose batches or model differ from the default (table model, 256/1024/4096)."""


def recipe(name: str) -> Recipe:
    """The recipe of a catalog loss (the default one unless ``RECIPES`` says otherwise)."""
    return RECIPES.get(name, Recipe())


def input_layout(name: str) -> tuple[int, str | None]:
    """(text columns, label kind) a loss is fed, from its catalog default data format.

    Label kinds: "classes", "binary", "scores", "nli", "teacher", "margins", "teacher_scores",
    or None. ContrastiveTensionLoss takes its data loader's (text, text, 0/1 label) rows.
    """
    from lab import catalog
    from lab.data import FORMATS

    if name == "ContrastiveTensionLoss":
        return 2, "binary"
    fmt = FORMATS[catalog.get(name).default_format]
    kinds = {
        "sentence-label": "classes", "pair-label": "binary", "pair-score": "scores",
        "nli": "nli", "teacher-embedding": "teacher", "teacher-margin": "margins",
        "teacher-scores": "teacher_scores",
    }
    return len(fmt.text_columns), kinds.get(fmt.name)


def make_labels(kind: str | None, batch: int, columns: int, generator: Any) -> Any:
    """Labels of one batch, reproducible from ``generator`` (scores are dyadic: exact in both
    float32 and float64, so no near-ties differ between the implementations)."""
    import torch

    if kind is None:
        return None
    if kind == "classes":
        return torch.arange(batch) % CLASSES
    if kind == "binary":
        return torch.randint(0, 2, (batch,), generator=generator)
    if kind == "nli":
        return torch.randint(0, 3, (batch,), generator=generator)
    if kind == "scores":
        return torch.randint(0, 5, (batch,), generator=generator) / 4
    if kind == "teacher":
        return torch.randn(batch, DIM, generator=generator)
    if kind == "margins":
        return torch.randn(batch, generator=generator)
    if kind == "teacher_scores":
        return torch.randn(batch, columns - 1, generator=generator)
    raise ValueError(f"unknown label kind {kind!r}")


def plan(names: list[str], quick: bool, batches: list[int] | None = None) -> list[dict]:
    """Every task of a run: per loss and batch, ours and the reference, and the floor if any;
    then the cached losses with tiny-bert at 256 and 4096. Each task is a dict for ``run_task``;
    one with a ``skip`` reason is reported as not run (quick mode, where the reference fails).
    """
    tasks = []
    for name in names:
        spec = recipe(name)
        for batch in batches or (spec.quick_batches if quick else spec.batches):
            for impl in ("ours", "reference"):
                task = {"loss": name, "batch": batch, "impl": impl, "model": spec.model}
                if quick and impl == "reference" and batch in spec.reference_fails:
                    task["skip"] = "not run in quick mode (fails in the full run)"
                tasks.append(task)
            if name in FLOORS and (FLOORS[name].target or not quick):  # quick: targets only
                tasks.append({"loss": name, "batch": batch, "impl": "floor", "model": "table"})
    for name in CACHED_LOSSES:
        if name not in names:
            continue
        for batch in batches or (CACHED_SCALING_QUICK if quick else CACHED_SCALING_BATCHES):
            for impl in ("ours", "reference"):
                tasks.append({"loss": name, "batch": batch, "impl": impl, "model": "tiny-bert"})
    return tasks


# ------------------------------------------------------------------------- inside a child process
def table_model(rows: int, seed: int = 0, tokenizer: Any = None) -> Any:
    """A stand-in encoder: text ``i`` is row ``i`` of a (rows, 384) table of random numbers."""
    import torch
    from torch import Tensor, nn

    class RowLookup(torch.autograd.Function):
        """table[ids] whose backward adds the rows' gradient into ``model.table_grad`` in place.

        Why not ``F.embedding(..., sparse=True)``: torch accumulates its sparse gradients into a
        dense zero-filled copy of the whole table on every backward, so a cached loss's 256
        mini-batch replays at batch 4096 would cost 256 table-sized fills and adds (0.6 s of
        stand-in work, the same in both implementations, that no real encoder has). Here each
        backward costs its own rows, as an encoder's costs its batch.
        """

        @staticmethod
        def forward(ctx: Any, table: Tensor, ids: Tensor, model: nn.Module) -> Tensor:
            ctx.ids, ctx.model = ids, model
            return table[ids]  # (B, DIM)

        @staticmethod
        def backward(ctx: Any, gradient: Tensor) -> tuple[None, None, None]:
            ctx.model.table_grad.index_add_(0, ctx.ids, gradient)
            return None, None, None

    class TableModel(nn.Module):
        """Looks embeddings up by the row ids in ``features["input_ids"]`` (shape (B,))."""

        def __init__(self) -> None:
            super().__init__()
            generator = torch.Generator().manual_seed(seed)
            self.table = nn.Parameter(torch.randn(rows, DIM, generator=generator))
            # The table's gradient, allocated once (before any measurement's baseline).
            self.register_buffer("table_grad", torch.zeros(rows, DIM))
            self.tokenizer = tokenizer  # GIST compares the model's and the guide's tokenizers
            self.max_seq_length = 128

        def forward(self, features: dict) -> dict:
            features["sentence_embedding"] = RowLookup.apply(self.table, features["input_ids"],
                                                             self)
            return features

        def get_embedding_dimension(self) -> int:
            return DIM

        @property
        def device(self) -> torch.device:
            return self.table.device

        def __getitem__(self, index: int) -> nn.Module:  # losses inspect model[0]'s type
            if index != 0:
                raise IndexError(index)
            return self

    return TableModel()


def _minilm_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from lab.models import minilm_path

    return AutoTokenizer.from_pretrained(str(minilm_path()))


def _token_features(batch: int, generator: Any) -> dict:
    """Padded tokeniser-like features of ``batch`` random texts of SEQUENCE_LENGTH tokens."""
    import torch

    ids = torch.randint(1000, 30000, (batch, SEQUENCE_LENGTH), generator=generator)
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "token_type_ids": torch.zeros_like(ids)}


def loss_step(name: str, batch: int, impl: str, model_kind: str = "table") -> Any:
    """A function that runs one forward + backward of the loss and returns the loss value."""
    import torch

    from lab.build import build_loss

    if impl == "ours":
        import losses as library
    else:
        from sentence_transformers.sentence_transformer import losses as library
    columns, label_kind = input_layout(name)
    generator = torch.Generator().manual_seed(1)  # not the table's seed (0): other numbers
    guided = "GIST" in name
    if model_kind == "table":
        tokenizer = _minilm_tokenizer() if guided else None
        model = table_model(columns * batch, tokenizer=tokenizer)
        guide = table_model(columns * batch, tokenizer=tokenizer) if guided else None
        features = [{"input_ids": torch.arange(batch) + column * batch}
                    for column in range(columns)]
    else:
        from lab.models import load_model

        model = load_model("tiny-bert", device="cpu", dropout=0.0)
        guide = load_model("tiny-bert", device="cpu", dropout=0.0) if guided else None
        features = [_token_features(batch, generator) for _ in range(columns)]
    labels = make_labels(label_kind, batch, columns, generator)
    torch.manual_seed(0)  # the same initial values for randomly initialised loss parameters
    loss = build_loss(name, model, library=library, load_guide=lambda _name: guide)
    parameters = list(dict.fromkeys(itertools.chain(model.parameters(), loss.parameters())))

    def step() -> float:
        # The same random draws (layers, dimensions: torch and Python's random) in both.
        torch.manual_seed(1)
        random.seed(1)
        value = loss([dict(column) for column in features], labels)  # fresh dicts: forward
        total = sum(value.values()) if isinstance(value, dict) else value  # writes into them
        total.backward()
        for parameter in parameters:
            parameter.grad = None
        return float(total.detach())

    return step


def floor_step(name: str, batch: int) -> Any:
    """One forward + backward of the matrix products (or pairwise comparison) ``name`` needs."""
    import torch

    floor = FLOORS[name]
    generator = torch.Generator().manual_seed(0)
    if floor.pairwise:
        anchors = torch.randn(batch, DIM, generator=generator)
        positives = torch.randn(batch, DIM, generator=generator)

        def pairwise() -> float:
            left = anchors.clone().requires_grad_(True)
            right = positives.clone().requires_grad_(True)
            value = (left * right).sum()  # the B dot products a_i·p_i, summed
            value.backward()
            return float(value.detach())

        return pairwise

    columns = 1 + max(max(product.left, product.right) for product in floor.products)
    data = [torch.randn(batch, DIM, generator=generator) for _ in range(columns)]
    gradients = [torch.randn(batch, batch, generator=generator) for _ in floor.products]
    passes = (mini_batch_passes(name, batch, generator, table_model(input_layout(name)[0] * batch))
              if floor.gradient_cache else None)

    def products() -> float:
        if passes is not None:
            passes()
        leaves = [column.clone().requires_grad_(True) for column in data]
        outputs, incoming = [], []
        for product, gradient in zip(floor.products, gradients, strict=True):
            width = product.width or DIM
            left, right = leaves[product.left][:, :width], leaves[product.right][:, :width]
            if product.grad:
                outputs.append(left @ right.T)  # (B, B)
                incoming.append(gradient)
            else:
                with torch.no_grad():
                    left @ right.T
        torch.autograd.backward(outputs, incoming)
        return float(sum(output.detach()[0, 0] for output in outputs))

    return products


def mini_batch_passes(name: str, batch: int, generator: Any, model: Any) -> Any:
    """GradCache's model work for loss ``name`` at ``batch``, on ``model`` (a ``table_model``
    with a row per text): each input column in mini-batches of the loss's ``mini_batch_size``,
    once without a graph, then once with a graph and a backward of a fixed gradient."""
    import torch

    import losses
    from lab.build import build_loss

    columns, _ = input_layout(name)
    with warnings.catch_warnings():  # CachedMultipleNegativesSymmetricRankingLoss's deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        size = build_loss(name, model, library=losses).mini_batch_size
    mini_batches = [ids for column in range(columns)
                    for ids in (torch.arange(batch) + column * batch).split(size)]
    upstream = torch.randn(size, DIM, generator=generator)

    def run() -> None:
        with torch.no_grad():
            for ids in mini_batches:
                model({"input_ids": ids})
        for ids in mini_batches:
            embeddings = model({"input_ids": ids})["sentence_embedding"]
            embeddings.backward(upstream[: len(ids)])

    return run


def side_step(task: dict, impl: str) -> Any:
    """The step of one side of a task: the floor's products, or ours / the reference's loss."""
    if impl == "floor":
        return floor_step(task["loss"], task["batch"])
    return loss_step(task["loss"], task["batch"], impl, task.get("model", "table"))


def run_task(task: dict) -> dict:
    """Measure one task (in a forked child): time, peak extra memory, loss value; or, for
    ``impl`` "alternate", the times of its ``sides`` (e.g. ours and the reference) called in
    turn in this one process (``harness.alternate_timing``)."""
    from benchmarks.harness import alternate_timing, time_and_memory

    if task.get("threads"):
        import torch

        torch.set_num_threads(task["threads"])  # in the child: the server never starts a pool
    if task["impl"] == "alternate":
        steps = {impl: side_step(task, impl) for impl in task["sides"]}
        return {"alternating": alternate_timing(steps, min_time_s=task.get("min_time_s") or 3.0,
                                                budget_s=task.get("budget_s") or 60.0)}
    return time_and_memory(side_step(task, task["impl"]), repeats=task.get("repeats", 5),
                           budget_s=task.get("budget_s", 60.0),
                           min_time_s=task.get("min_time_s", 0.5))


def preload(kind: str) -> None:
    """What a server imports once, before forking (no torch computation: see the harness)."""
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import lab.build
    import lab.models  # noqa: F401
    import losses  # noqa: F401

    if kind == "reference":
        from sentence_transformers.sentence_transformer import losses as reference  # noqa: F401


def main() -> None:
    """Run as a fork server (``--serve ours|reference``) for ``benchmarks.harness.Server``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--serve", choices=("ours", "reference"), required=True)
    args = parser.parse_args()
    from benchmarks.harness import protocol_streams, serve

    requests, replies = protocol_streams()
    serve(lambda: preload(args.serve), run_task, requests, replies)


if __name__ == "__main__":
    main()
