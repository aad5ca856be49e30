"""GradCache: the loss and gradients of one big batch, with the activation memory of a mini-batch.

Gao, Zhang, Han and Callan, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup" (RepL4NLP 2021). A loss over the whole batch (in-batch negatives, hardest-negative mining)
needs every embedding at once, but not every embedding's activations. So:

1. embed each column mini-batch by mini-batch *without* building a graph, remembering the random
   state of each forward pass (dropout);
2. compute the loss on these embeddings (detached leaves) and back-propagate it to them: their
   gradients ∂L/∂e are the "cache";
3. when the trainer later calls ``loss.backward()``, a hook on the returned loss re-embeds each
   mini-batch *with* a graph, replaying its random state so the activations are the same, and
   back-propagates the cached gradient into the model: backward of the surrogate <e, ∂L/∂e>.

Chain rule: ∂L/∂θ = Σ_rows ∂L/∂e · ∂e/∂θ, exactly the gradient of the full batch. The cost is a
second forward pass. The incoming gradient of the loss (gradient accumulation, fp16 loss scaling)
multiplies every mini-batch.

What it supports: padded text features (sliced along the batch, and trailing all-padding columns
dropped so short mini-batches are cheap) and flattened features (``cu_seq_lens_q``, from
``DataCollatorWithFlattening``). Mini-batches hold ``mini_batch_size`` rows, or, with
``mini_batch_num_tokens``, as many rows as fit that many non-padding tokens (at least one row).
Under DDP, gradients are synchronised once, after the last mini-batch. Static-embedding models
(one flat ``input_ids`` + ``offsets`` per batch) cannot be split and are refused by the losses.

``loss_fn(embeddings, labels, with_backward)`` receives per-column lists of mini-batch embeddings;
with ``with_backward=True`` it must back-propagate its loss (it may do so chunk by chunk) and
return the detached value. Every cached loss here (CachedMultipleNegativesRankingLoss and its
symmetric alias, CachedGISTEmbedLoss, MegaBatchMarginLoss) passes a ``loss_fn`` that calls its own
``calculate_loss(reps, ..., *, with_backward)``, looked up on the instance at call time: the one
place where a wrapper such as MatryoshkaLoss (losses/matryoshka.py) changes what is computed.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

Features = dict[str, Any]
LossOnMiniBatches = Callable[[list[list[Tensor]], Tensor | None, bool], Tensor]


# ----------------------------------------------------------------------------- input inspection
def is_static_embedding_model(model: nn.Module | None) -> bool:
    """True if the model's input module is a StaticEmbedding (directly or behind a Router)."""
    if model is None:
        return False
    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
    try:
        first = model[0]
    except (TypeError, IndexError, KeyError):
        return False
    routes = getattr(first, "sub_modules", None)
    inputs = [route[0] for route in routes.values()] if routes is not None else [first]
    return any(type(module).__name__ == "StaticEmbedding" for module in inputs)


def batch_size_of(features: Features) -> int:
    """Rows in one column's tokenised features (padded or flattened)."""
    if "cu_seq_lens_q" in features:
        return len(features["cu_seq_lens_q"]) - 1
    for key in ("input_ids", "attention_mask"):
        if isinstance(features.get(key), Tensor):
            return features[key].shape[0]
    return next(value.shape[0] for value in features.values()
                if isinstance(value, Tensor) and value.dim() > 0)


def minibatch_ranges(features: Features, mini_batch_size: int,
                     mini_batch_num_tokens: int | None = None) -> list[tuple[int, int]]:
    """(begin, end) row ranges of the mini-batches, by row count or by a token budget."""
    rows = batch_size_of(features)
    if mini_batch_num_tokens is None:
        return [(begin, min(begin + mini_batch_size, rows))
                for begin in range(0, rows, mini_batch_size)]
    if "cu_seq_lens_q" in features:
        tokens_so_far = features["cu_seq_lens_q"][1:].tolist()  # cumulative tokens per row
    elif "attention_mask" in features:
        tokens_so_far = features["attention_mask"].sum(dim=1).cumsum(dim=0).tolist()
    else:
        raise ValueError("mini_batch_num_tokens needs per-row token counts ('attention_mask' or "
                         "'cu_seq_lens_q' in the features); use mini_batch_size instead")
    ranges, begin = [], 0
    while begin < rows:
        before = tokens_so_far[begin - 1] if begin else 0
        # The last row whose cumulative count stays within the budget; always at least one row.
        end = max(bisect.bisect_right(tokens_so_far, before + mini_batch_num_tokens), begin + 1)
        ranges.append((begin, end))
        begin = end
    return ranges


def slice_features(features: Features, begin: int, end: int) -> Features:
    """Rows begin:end of one column's features, padded or flattened."""
    if "cu_seq_lens_q" in features:
        return _slice_flattened(features, begin, end)
    width = None  # keep columns up to the last one any of these rows uses
    mask = features.get("attention_mask")
    if isinstance(mask, Tensor) and mask.dim() == 2:
        used = mask[begin:end].bool().any(dim=0).nonzero()
        if len(used):
            width = int(used.max()) + 1
    sliced = {}
    for key, value in features.items():
        if not isinstance(value, Tensor) or value.dim() == 0:
            sliced[key] = value
        elif width is not None and value.dim() >= 2 and value.shape[1] == mask.shape[1]:
            sliced[key] = value[begin:end, :width]
        else:
            sliced[key] = value[begin:end]
    return sliced


def _slice_flattened(features: Features, begin: int, end: int) -> Features:
    """Rows begin:end of features packed into one token stream (``cu_seq_lens_q`` offsets)."""
    offsets = features["cu_seq_lens_q"]
    first, last, total = int(offsets[begin]), int(offsets[end]), int(offsets[-1])
    new_offsets = offsets[begin:end + 1] - offsets[begin]
    sliced = {}
    for key, value in features.items():
        if key in ("cu_seq_lens_q", "cu_seq_lens_k"):
            sliced[key] = new_offsets
        elif key in ("max_length_q", "max_length_k"):
            sliced[key] = int((new_offsets[1:] - new_offsets[:-1]).max())
        elif key == "seq_idx":
            sliced[key] = value[..., first:last] - begin
        elif isinstance(value, Tensor) and value.dim() >= 1 and value.shape[-1] == total:
            sliced[key] = value[..., first:last]  # token-level tensors (input_ids, position_ids)
        else:
            sliced[key] = value
    return sliced


# ------------------------------------------------------------------------------- random replay
class RandomState:
    """The CPU and CUDA random states at one moment, to replay a forward pass's dropout."""

    def __init__(self, tensors: Sequence[Any]) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda_devices = sorted({value.get_device() for value in tensors
                                    if isinstance(value, Tensor) and value.is_cuda})
        self.cuda = [torch.cuda.get_rng_state(device) for device in self.cuda_devices]

    @contextmanager
    def replay(self) -> Iterator[None]:
        """Run the block with the saved state; the outer random state is left untouched."""
        with torch.random.fork_rng(devices=self.cuda_devices):
            torch.set_rng_state(self.cpu)
            for device, state in zip(self.cuda_devices, self.cuda, strict=True):
                torch.cuda.set_rng_state(state, device)
            yield


# ---------------------------------------------------------------------------------- the cache
def _progress(ranges: list[tuple[int, int]], show: bool) -> Iterator[tuple[int, int]]:
    if not show:
        return iter(ranges)
    from tqdm.auto import tqdm

    return iter(tqdm(ranges, desc="Embed mini-batches"))


def _first_pass(model: nn.Module, features: Features, ranges: list[tuple[int, int]],
                remember_random_state: bool,
                show_progress_bar: bool) -> tuple[list[Tensor], list[RandomState]]:
    """Step 1: graph-free embeddings of every mini-batch (leaves that will collect ∂L/∂e)."""
    embeddings, states = [], []
    with torch.no_grad():
        for begin, end in _progress(ranges, show_progress_bar):
            minibatch = slice_features(features, begin, end)
            if remember_random_state:
                states.append(RandomState(list(minibatch.values())))
            embeddings.append(model(minibatch)["sentence_embedding"].detach().requires_grad_())
    return embeddings, states


def _replayed(model: nn.Module, features: Features, ranges: list[tuple[int, int]],
              states: list[RandomState], show_progress_bar: bool) -> Iterator[Tensor]:
    """Step 3's embeddings of each mini-batch, with a graph, under step 1's random state."""
    for (begin, end), state in zip(_progress(ranges, show_progress_bar), states, strict=True):
        with state.replay():
            embedding = model(slice_features(features, begin, end))["sentence_embedding"]
        yield embedding  # outside the replay: the caller's random state is back in place


def _replay_backward(incoming: Tensor, model: nn.Module, features: list[Features],
                     ranges: list[list[tuple[int, int]]], states: list[list[RandomState]],
                     cache: list[list[Tensor]], show_progress_bar: bool) -> None:
    """Step 3 (a hook on the loss): re-embed with a graph, back-propagate cached gradient."""
    ddp = model if isinstance(model, nn.parallel.DistributedDataParallel) else None
    remaining = sum(len(column) for column in cache)
    with torch.enable_grad():
        for column, column_ranges, column_states, gradients in zip(
                features, ranges, states, cache, strict=True):
            replayed = _replayed(model, column, column_ranges, column_states, show_progress_bar)
            for gradient in gradients:
                remaining -= 1
                # DDP: all-reduce the gradients once, after the last mini-batch.
                sync = nullcontext() if ddp is None or remaining == 0 else ddp.no_sync()
                with sync:
                    embedding = next(replayed)
                    if not embedding.requires_grad:  # a frozen model part: nothing to do
                        continue
                    # Backward of the surrogate <e, ∂L/∂e> · incoming, without building it:
                    # e receives ∂L/∂e · incoming (computed in at least float32).
                    dtype = torch.promote_types(torch.promote_types(embedding.dtype,
                                                                     gradient.dtype),
                                                torch.float32)
                    upstream = (gradient.to(dtype) * incoming.to(dtype)).to(embedding.dtype)
                    torch.autograd.backward(embedding, upstream)


def send_gradients_back(pairs: Sequence[tuple[Tensor, Tensor | None]]) -> None:
    """Back-propagate each computed gradient into its tensor's graph, in one backward call
    (pairs whose tensor needs no gradient, or whose gradient is None, are left out)."""
    pairs = [(tensor, grad) for tensor, grad in pairs if tensor.requires_grad and grad is not None]
    if pairs:
        torch.autograd.backward([tensor for tensor, _ in pairs], [grad for _, grad in pairs])


def gradient_cached_loss(model: nn.Module, features: Sequence[Features], labels: Tensor | None,
                         loss_fn: LossOnMiniBatches, mini_batch_size: int,
                         mini_batch_num_tokens: int | None = None,
                         show_progress_bar: bool = False) -> Tensor:
    """The loss of the whole batch, computed the GradCache way (see module docstring).

    Returns a scalar whose ``backward()`` fills the model's gradients. Without gradient mode
    (evaluation) it only embeds mini-batch by mini-batch and returns the loss.
    """
    features = list(features)
    training = torch.is_grad_enabled()
    # Fix the boundaries first: modules may edit features in place while embedding.
    ranges = [minibatch_ranges(column, mini_batch_size, mini_batch_num_tokens)
              for column in features]
    embeddings, states = [], []
    for column, column_ranges in zip(features, ranges, strict=True):
        column_embeddings, column_states = _first_pass(model, column, column_ranges, training,
                                                       show_progress_bar)
        embeddings.append(column_embeddings)
        states.append(column_states)
    if not training:
        return loss_fn(embeddings, labels, False)

    loss = loss_fn(embeddings, labels, True).detach().requires_grad_()  # step 2
    cache = [[piece.grad for piece in column] for column in embeddings]
    unused = [index for index, column in enumerate(cache) if any(g is None for g in column)]
    if unused:
        raise ValueError(f"The loss never used input column(s) {unused}: they got no gradient. "
                         "Remove them from the dataset (every column is embedded, twice).")
    loss.register_hook(lambda incoming: _replay_backward(
        incoming, model, features, ranges, states, cache, show_progress_bar))
    return loss
