"""CachedGISTEmbedLoss: parity with the reference, and equal to our GISTEmbedLoss.

With dropout on, as for CachedMultipleNegativesRankingLoss: GISTEmbedLoss draws one set of
dropout masks per column, so the cached loss equals it where the masks can agree (one mini-batch
per column); at smaller mini-batches it is compared with the reference cached loss, which draws
the same masks in the same order from the same seeds and, like ours, replays them in backward.
"""

from __future__ import annotations

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as reference

from losses.cached_gist_embed import CachedGISTEmbedLoss
from losses.gist_embed import GISTEmbedLoss
from losses.validation import LossInputError
from tests.losses.batch_triplet_cases import LargestTensor
from tests.losses.gist_cases import other_tokenizer_guide, same_tokenizer_guide
from tests.losses.parity import (
    ANCHORS,
    MORE_NEGATIVES,
    NEGATIVES,
    POSITIVES,
    assert_model_parity,
    assert_same_value_and_gradients,
    random_embeddings,
    seed_everything,
    tiny_dropout_model,
    tiny_model,
    tokenize,
    value_and_gradients,
)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these tensors are tiny, and on a shared 2-core machine extra threads
    only spin against other processes. Restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


PAIRS = [ANCHORS, POSITIVES]
TRIPLETS = [ANCHORS, POSITIVES, NEGATIVES]
NTUPLES = [ANCHORS, POSITIVES, NEGATIVES, MORE_NEGATIVES]
OPTIONS = [  # model-level runs are slow here: options are combined, every one appears
    {},
    {"mini_batch_num_tokens": 20, "temperature": 0.05},
    {"margin": 0.05, "mini_batch_size": 4},  # an uneven last mini-batch
    {"margin_strategy": "relative", "margin": 0.1, "mini_batch_size": 2,
     "contrast_anchors": False, "contrast_positives": False},
]
CONFIGS = [*OPTIONS, {"show_progress_bar": True, "mini_batch_size": 3},
           {"gather_across_devices": True, "contrast_positives": False}]


def option_id(options: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in options.items()) or "defaults"


def model_parity(options, columns, dtype=torch.float64, guide=None) -> None:
    guide = same_tokenizer_guide(dtype) if guide is None else guide
    assert_model_parity(lambda model: CachedGISTEmbedLoss(model, guide, **options),
                        lambda model: reference.CachedGISTEmbedLoss(model, guide, **options),
                        columns, dtype=dtype, check_gradients=dtype == torch.float64)


@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_model_parity_ntuples(options):
    model_parity(options, NTUPLES)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_model_parity_pairs(dtype):
    model_parity({"mini_batch_size": 2}, PAIRS, dtype)


def test_model_parity_with_a_guide_of_another_tokenizer():
    guide = other_tokenizer_guide()
    assert CachedGISTEmbedLoss(tiny_model(), guide).must_retokenize
    model_parity({"mini_batch_size": 2, "margin": 0.05}, TRIPLETS, guide=guide)


def gradients_of(make_loss, columns, scale=1.0):
    model = tiny_model()
    seed_everything()
    value = make_loss(model)(tokenize(model, columns), None)
    (scale * value).backward()
    return value.detach(), {name: p.grad.clone() for name, p in model.named_parameters()
                            if p.grad is not None}


@pytest.mark.parametrize(("mini_batch_size", "options"), [
    (1, {}), (2, {"margin": 0.05}), (3, {}), (32, {"margin": 0.05})], ids=["1", "2", "3", "32"])
def test_equals_our_gist_embed_loss(mini_batch_size, options):
    guide = same_tokenizer_guide()
    columns = TRIPLETS  # rows 0 and 4 duplicates: ties, kept at margin 0, removed at 0.05
    plain = gradients_of(lambda m, o=options: GISTEmbedLoss(m, guide, **o), columns)
    cached = gradients_of(lambda m, o=options: CachedGISTEmbedLoss(
        m, guide, mini_batch_size=mini_batch_size, **o), columns)
    torch.testing.assert_close(cached[0], plain[0], rtol=1e-9, atol=0)
    for name, gradient in plain[1].items():
        torch.testing.assert_close(cached[1][name], gradient, rtol=1e-7,
                                   atol=1e-9 * gradient.abs().max().item() + 1e-15)


@pytest.mark.parametrize("mini_batch_size", [6, 32])
def test_with_dropout_equals_our_gist_embed_loss_when_the_masks_agree(mini_batch_size):
    # One mini-batch per column: the first pass draws exactly GISTEmbedLoss's masks (the guide,
    # without dropout, draws none), and the backward replays them.
    guide = same_tokenizer_guide()
    cached = value_and_gradients(
        lambda m: CachedGISTEmbedLoss(m, guide, mini_batch_size=mini_batch_size),
        tiny_dropout_model(), TRIPLETS)
    plain = value_and_gradients(lambda m: GISTEmbedLoss(m, guide), tiny_dropout_model(),
                                TRIPLETS)
    assert_same_value_and_gradients(cached, plain, value_rtol=1e-9, gradient_rtol=1e-7)
    undropped = value_and_gradients(lambda m: GISTEmbedLoss(m, guide), tiny_model(), TRIPLETS)
    assert not torch.allclose(plain[0], undropped[0]), "dropout was not active"


@pytest.mark.parametrize("splitting", [{"mini_batch_size": 2}, {"mini_batch_num_tokens": 30}],
                         ids=["mini_batch_size=2", "mini_batch_num_tokens=30"])
def test_with_dropout_matches_the_reference_and_scales_with_the_incoming_gradient(splitting):
    # Same seeds, same mini-batches: both draw the same masks in the same order. The factor 3
    # stands for gradient accumulation or fp16 loss scaling: every mini-batch must get it.
    guide = same_tokenizer_guide()
    ours = value_and_gradients(lambda m: CachedGISTEmbedLoss(m, guide, **splitting),
                               tiny_dropout_model(), NTUPLES, factor=3.0)
    theirs = value_and_gradients(lambda m: reference.CachedGISTEmbedLoss(m, guide, **splitting),
                                 tiny_dropout_model(), NTUPLES, factor=3.0)
    assert_same_value_and_gradients(ours, theirs, value_rtol=1e-9, gradient_rtol=1e-6)
    once = value_and_gradients(lambda m: CachedGISTEmbedLoss(m, guide, **splitting),
                               tiny_dropout_model(), NTUPLES)
    scaled = (once[0], {name: 3.0 * gradient for name, gradient in once[1].items()})
    assert_same_value_and_gradients(ours, scaled, value_rtol=0, gradient_rtol=1e-9)
    undropped = value_and_gradients(lambda m: CachedGISTEmbedLoss(m, guide, **splitting),
                                    tiny_model(), NTUPLES)
    assert not torch.allclose(ours[0], undropped[0]), "dropout was not active"


def test_evaluation_without_gradients_gives_the_same_value():
    model, guide = tiny_model(), same_tokenizer_guide()
    loss = CachedGISTEmbedLoss(model, guide, mini_batch_size=2)
    with torch.no_grad():
        value = loss(tokenize(model, NTUPLES), None)
    torch.testing.assert_close(value, loss(tokenize(model, NTUPLES), None).detach())


def test_embedding_level_equals_our_gist_and_blocks_bound_memory():
    embeddings = random_embeddings(3, batch=64, dim=32)
    guide = random_embeddings(3, batch=64, dim=8, seed=5)
    cached = CachedGISTEmbedLoss(None, None, mini_batch_size=8)
    plain = GISTEmbedLoss(None, None).compute_loss_from_embeddings(embeddings, None, guide)
    torch.testing.assert_close(cached.compute_loss_from_embeddings(embeddings, None, guide), plain)
    with torch.no_grad(), LargestTensor() as monitor:
        torch.testing.assert_close(cached.compute_loss_from_embeddings(embeddings, None, guide),
                                   plain)
    assert monitor.largest <= 8 * 4 * 64  # one block of logits: 8 rows x 4 x 64 candidates


def test_config_matches_the_reference_and_there_is_no_citation():
    model, guide = tiny_model(), same_tokenizer_guide()
    for options in CONFIGS:
        ours = CachedGISTEmbedLoss(model, guide, **options)
        theirs = reference.CachedGISTEmbedLoss(model, guide, **options)
        assert ours.get_config_dict() == theirs.get_config_dict()
    assert ours.citation is None and getattr(theirs, "citation", None) is None
    assert ours.uses_gradient_cache and not isinstance(ours, GISTEmbedLoss)


def test_bad_input_and_settings_are_refused():
    from lab.models import load_model

    model, guide = tiny_model(), same_tokenizer_guide()
    loss = CachedGISTEmbedLoss(model, guide)
    with pytest.raises(LossInputError, match=r"CachedGISTEmbedLoss expects \(anchor, positive\) "
                                             r"pairs.*n-tuples.*2 or more text column.*got 1"):
        loss([{}])
    with pytest.raises(ValueError, match="CachedGISTEmbedLoss needs a guide"):
        CachedGISTEmbedLoss(model, None)
    with pytest.raises(ValueError, match="mini_batch_num_tokens must be a positive integer"):
        CachedGISTEmbedLoss(model, guide, mini_batch_num_tokens=0)
    with pytest.raises(ValueError, match="StaticEmbedding"):
        CachedGISTEmbedLoss(load_model("tiny", device="cpu"), guide)


@pytest.mark.parametrize("mini_batch_size", [0, -2, 1.5])
def test_mini_batch_size_must_be_a_positive_integer(mini_batch_size):
    with pytest.raises(ValueError, match=r"CachedGISTEmbedLoss: mini_batch_size must be a "
                                         r"positive integer; got"):
        CachedGISTEmbedLoss(tiny_model(), same_tokenizer_guide(), mini_batch_size=mini_batch_size)
