"""lab.exercises: right answers pass, typical wrong answers fail with a precise, friendly message.

The solutions here are written from the formulas, independently of the notebooks' solutions
and of ``losses`` (two styles per exercise, so the checker is shown to accept any correct
formulation, not one particular way of writing it).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lab import catalog
from lab import exercises as ex

# ------------------------------------------------------------------------------ right answers


def triplet_pairwise(anchors, positives, negatives, margin=5.0):
    d_pos = F.pairwise_distance(anchors, positives)
    d_neg = F.pairwise_distance(anchors, negatives)
    return torch.clamp(d_pos - d_neg + margin, min=0).mean()


def triplet_loop(anchors, positives, negatives, margin=5.0):
    terms = [torch.relu((a - p).norm() - (a - n).norm() + margin)
             for a, p, n in zip(anchors, positives, negatives, strict=True)]
    return torch.stack(terms).sum() / len(terms)


def batch_hard_masked(embeddings, labels, margin=5.0):
    dist = torch.cdist(embeddings, embeddings)
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool)
    hp = (dist * pos).amax(dim=1)  # 0 where no positive
    hn = torch.where(~same, dist, math.inf).amin(dim=1)
    hn = torch.where((~same).any(dim=1), hn, hp)
    return F.relu(hp - hn + margin).mean()


def batch_hard_loop(embeddings, labels, margin=5.0):
    terms = []
    for a in range(len(labels)):
        d = torch.linalg.norm(embeddings - embeddings[a], dim=1)
        positives = [d[p] for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        negatives = [d[n] for n in range(len(labels)) if labels[n] != labels[a]]
        hp = torch.stack(positives).max() if positives else d.new_zeros(())
        hn = torch.stack(negatives).min() if negatives else hp
        terms.append(torch.relu(hp - hn + margin))
    return torch.stack(terms).mean()


def mnrl_cross_entropy(anchors, positives, scale=20.0):
    scores = F.cosine_similarity(anchors[:, None, :], positives[None, :, :], dim=-1) * scale
    return F.cross_entropy(scores, torch.arange(len(anchors)))


def mnrl_logsumexp(anchors, positives, scale=20.0):
    a = anchors / anchors.norm(dim=1, keepdim=True)
    p = positives / positives.norm(dim=1, keepdim=True)
    scores = scale * a @ p.T
    return (torch.logsumexp(scores, dim=1) - scores.diagonal()).mean()


def cosent_masked(a, b, scores, scale=20.0):
    s = F.cosine_similarity(a, b) * scale
    diff = s[None, :] - s[:, None]
    diff = diff.masked_fill(~(scores[:, None] > scores[None, :]), -math.inf)
    return torch.logsumexp(torch.cat([s.new_zeros(1), diff.flatten()]), dim=0)


def cosent_loop(a, b, scores, scale=20.0):
    s = scale * (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(dim=1)
    logits = [s.new_zeros(())]
    for i in range(len(s)):
        for j in range(len(s)):
            if scores[i] > scores[j]:
                logits.append(s[j] - s[i])
    return torch.logsumexp(torch.stack(logits), dim=0)


def matryoshka_sum(loss_fn, anchors, positives, dims, weights):
    return sum(w * loss_fn(F.normalize(anchors[:, :d], dim=-1),
                           F.normalize(positives[:, :d], dim=-1))
               for d, w in zip(dims, weights, strict=True))


def matryoshka_sorted(loss_fn, anchors, positives, dims, weights):
    total = torch.zeros((), dtype=anchors.dtype)
    for d, w in sorted(zip(dims, weights, strict=True), reverse=True):
        a, p = anchors[:, :d], positives[:, :d]
        total = total + w * loss_fn(a / a.norm(dim=1, keepdim=True),
                                    p / p.norm(dim=1, keepdim=True))
    return total


RIGHT = {
    "triplet_loss": [triplet_pairwise, triplet_loop],
    "batch_hard_triplet_loss": [batch_hard_masked, batch_hard_loop],
    "mnrl": [mnrl_cross_entropy, mnrl_logsumexp],
    "cosent": [cosent_masked, cosent_loop],
    "matryoshka": [matryoshka_sum, matryoshka_sorted],
}


@pytest.mark.parametrize("name,function", [(name, f) for name, fs in RIGHT.items() for f in fs],
                         ids=lambda value: getattr(value, "__name__", value))
def test_a_correct_solution_passes_every_case(name: str, function) -> None:
    result = ex.get_exercise(name).checker(function)
    assert result.passed, result.message
    assert result.status == "passed"
    assert result.failed_case is None
    assert result.cases_run == [case.name for case in ex.get_exercise(name).cases()]
    assert result.message.startswith(f"✓ {name} passes all {len(result.cases_run)} cases")


# ------------------------------------------------------------------------------ wrong answers
def _triplet(terms=lambda dp, dn, m: torch.relu(dp - dn + m), reduce="mean",
             distance=lambda x, y: torch.linalg.norm(x - y, dim=1)):
    def triplet_loss(anchors, positives, negatives, margin=5.0):
        values = terms(distance(anchors, positives), distance(anchors, negatives), margin)
        return values.sum() if reduce == "sum" else values.mean()
    return triplet_loss


def _triplet_detached_negatives(anchors, positives, negatives, margin=5.0):
    dp = torch.linalg.norm(anchors - positives, dim=1)
    dn = torch.linalg.norm(anchors - negatives.detach(), dim=1)
    return torch.relu(dp - dn + margin).mean()


def _triplet_item(anchors, positives, negatives, margin=5.0):
    value = _triplet()(anchors, positives, negatives, margin).item()
    return torch.tensor(value, dtype=torch.float64)


def _triplet_rows(anchors, positives, negatives, margin=5.0):
    return torch.relu(torch.linalg.norm(anchors - positives, dim=1)
                      - torch.linalg.norm(anchors - negatives, dim=1) + margin)


def _triplet_float32(anchors, positives, negatives, margin=5.0):
    return _triplet()(anchors.float(), positives.float(), negatives.float(), margin)


def _triplet_naive_sqrt(anchors, positives, negatives, margin=5.0):
    dp = ((anchors - positives) ** 2).sum(dim=1).sqrt()
    dn = ((anchors - negatives) ** 2).sum(dim=1).sqrt()
    return torch.relu(dp - dn + margin).mean()


def _batch_hard(positive="max", negative="min", hinge=True, single_class="margin",
                include_same_class=False, squared=False):
    def batch_hard_triplet_loss(embeddings, labels, margin=5.0):
        d = torch.cdist(embeddings, embeddings)
        if squared:
            d = d**2
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool)
        pos = same & ~eye
        neg = ~eye if include_same_class else ~same
        if positive == "max":
            hp = torch.where(pos, d, 0.0).amax(dim=1)
        elif positive == "min":
            hp = torch.where(pos, d, math.inf).amin(dim=1)
            hp = torch.where(pos.any(dim=1), hp, 0.0)
        else:
            hp = (d * pos).sum(dim=1) / pos.sum(dim=1).clamp(min=1)
        if negative == "min":
            hn = torch.where(neg, d, math.inf).amin(dim=1)
        else:
            hn = torch.where(neg, d, -math.inf).amax(dim=1)
        if single_class == "margin":
            hn = torch.where(neg.any(dim=1), hn, hp)
        terms = hp - hn + margin
        return (torch.relu(terms) if hinge else terms).mean()
    return batch_hard_triplet_loss


def _batch_hard_detached_mining(embeddings, labels, margin=5.0):
    # Picks the right rows, but measures their distances on detached embeddings.
    d = torch.cdist(embeddings, embeddings).detach()
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool)
    hp = torch.where(pos, d, 0.0).amax(dim=1)
    hn = torch.where(~same, d, math.inf).amin(dim=1)
    hn = torch.where((~same).any(dim=1), hn, hp)
    return torch.relu(hp - hn + margin).mean() + 0 * embeddings.sum()


def _batch_hard_detached_negatives(embeddings, labels, margin=5.0):
    d = torch.cdist(embeddings, embeddings)
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool)
    hp = torch.where(pos, d, 0.0).amax(dim=1)
    hn = torch.where(~same, d.detach(), math.inf).amin(dim=1)  # no push on the negatives
    return torch.relu(hp - hn + margin).mean()


def _batch_hard_naive_sqrt(embeddings, labels, margin=5.0):
    squared = ((embeddings[:, None, :] - embeddings[None, :, :]) ** 2).sum(dim=-1)
    d = squared.sqrt()  # NaN gradient on the diagonal
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool)
    hp = torch.where(pos, d, 0.0).amax(dim=1)
    hn = torch.where(~same, d, math.inf).amin(dim=1)
    hn = torch.where((~same).any(dim=1), hn, hp)
    return torch.relu(hp - hn + margin).mean()


def _mnrl(normalize=True, scale_fn=lambda s: s, transpose=False, reduction="mean",
          symmetric=False, zero_targets=False, naive=False, detach_positives=False):
    def mnrl(anchors, positives, scale=20.0):
        if detach_positives:
            positives = positives.detach()
        if normalize:
            anchors, positives = F.normalize(anchors, dim=1), F.normalize(positives, dim=1)
        scores = scale_fn(scale) * anchors @ positives.T
        targets = (torch.zeros if zero_targets else torch.arange)(len(scores)).long()
        if naive:
            e = torch.exp(scores)
            return -torch.log(e.diagonal() / e.sum(dim=1)).mean()
        if symmetric:
            return (F.cross_entropy(scores, targets) + F.cross_entropy(scores.T, targets)) / 2
        return F.cross_entropy(scores.T if transpose else scores, targets, reduction=reduction)
    return mnrl


def _cosent(order=">", one=True, scale_fn=lambda s: s, combine="logsumexp", mse=False,
            dot=False):
    def cosent(a, b, scores, scale=20.0):
        cos = (a * b).sum(dim=1) if dot else F.cosine_similarity(a, b)
        if mse:
            return F.mse_loss(cos, scores)
        s = cos * scale_fn(scale)
        diff = s[None, :] - s[:, None]
        if order == ">":
            keep = scores[:, None] > scores[None, :]
        elif order == ">=":
            keep = (scores[:, None] >= scores[None, :]) & ~torch.eye(len(s), dtype=torch.bool)
        else:
            keep = scores[:, None] < scores[None, :]
        logits = diff[keep]
        if combine == "softplus mean":
            return F.softplus(logits).mean() if len(logits) else s.sum() * 0
        if combine == "naive":
            return torch.log(1 + torch.exp(logits).sum())
        if one:
            logits = torch.cat([s.new_zeros(1), logits])
        return torch.logsumexp(logits, dim=0)
    return cosent


def _matryoshka(cut=lambda x, d: F.normalize(x[:, :d], dim=-1), combine="sum"):
    def matryoshka(loss_fn, anchors, positives, dims, weights):
        terms = torch.stack([loss_fn(cut(anchors, d), cut(positives, d)) for d in dims])
        w = torch.tensor(list(weights), dtype=terms.dtype)
        if combine == "weighted mean":
            return (w * terms).sum() / w.sum()
        if combine == "unweighted":
            return terms.sum()
        if combine == "full only":
            return terms[list(dims).index(max(dims))]
        return (w * terms).sum()
    return matryoshka


def _matryoshka_detached(loss_fn, anchors, positives, dims, weights):
    return sum(w * loss_fn(F.normalize(anchors[:, :d], dim=-1).detach(),
                           F.normalize(positives[:, :d], dim=-1))
               for d, w in zip(dims, weights, strict=True))


# (exercise, wrong function, status, case it fails on, words the hint must contain)
WRONG = [
    ("triplet_loss", "no hinge", _triplet(terms=lambda dp, dn, m: dp - dn + m),
     "wrong value", "random batch", "forgot the hinge"),
    ("triplet_loss", "sum", _triplet(reduce="sum"), "wrong value", "random batch",
     "summed over the triplets"),
    ("triplet_loss", "swapped", _triplet(terms=lambda dp, dn, m: torch.relu(dn - dp + m)),
     "wrong value", "random batch", "swapped"),
    ("triplet_loss", "margin sign", _triplet(terms=lambda dp, dn, m: torch.relu(dp - dn - m)),
     "wrong value", "random batch", "margin has the wrong sign"),
    ("triplet_loss", "squared", _triplet(terms=lambda dp, dn, m: torch.relu(dp**2 - dn**2 + m)),
     "wrong value", "random batch", "squared distances"),
    ("triplet_loss", "fixed margin", _triplet(terms=lambda dp, dn, m: torch.relu(dp - dn + 5)),
     "wrong value", "another margin", "use the `margin` argument"),
    ("triplet_loss", "detached", _triplet_detached_negatives, "wrong gradient", "random batch",
     "No gradient reaches `negatives`"),
    ("triplet_loss", ".item()", _triplet_item, "wrong gradient", "random batch",
     "did you use .item()"),
    ("triplet_loss", "per row", _triplet_rows, "wrong output", "random batch",
     "expected a scalar"),
    ("triplet_loss", "float32", _triplet_float32, "wrong output", "random batch",
     "expected float64"),
    ("triplet_loss", "naive sqrt", _triplet_naive_sqrt, "wrong gradient", "identical embeddings",
     "sqrt has an infinite slope at 0"),
    ("batch_hard_triplet_loss", "nearest positive", _batch_hard(positive="min"), "wrong value",
     "random batch", "NEAREST positive"),
    ("batch_hard_triplet_loss", "mean positive", _batch_hard(positive="mean"), "wrong value",
     "random batch", "averaged the positive distances"),
    ("batch_hard_triplet_loss", "farthest negative", _batch_hard(negative="max"),
     "wrong value", "random batch", "FARTHEST negative"),
    ("batch_hard_triplet_loss", "no hinge", _batch_hard(hinge=False), "wrong value",
     "another margin", "forgot the hinge"),
    ("batch_hard_triplet_loss", "single class", _batch_hard(single_class="drop"),
     "wrong value", "single class", "its term is exactly the margin"),
    ("batch_hard_triplet_loss", "own class as negative", _batch_hard(include_same_class=True),
     "wrong value", "random batch", "include examples of the anchor's own class"),
    ("batch_hard_triplet_loss", "squared", _batch_hard(squared=True), "wrong value",
     "random batch", "squared distances"),
    ("batch_hard_triplet_loss", "all detached", _batch_hard_detached_mining, "wrong gradient",
     "random batch", "No gradient reaches `embeddings`"),
    ("batch_hard_triplet_loss", "negatives detached", _batch_hard_detached_negatives,
     "wrong gradient", "random batch", "gradients do not"),
    ("batch_hard_triplet_loss", "naive sqrt", _batch_hard_naive_sqrt, "wrong gradient",
     "random batch", "NaN"),
    ("mnrl", "dot product", _mnrl(normalize=False), "wrong value", "random batch",
     "dot product"),
    ("mnrl", "no scale", _mnrl(scale_fn=lambda s: 1.0), "wrong value", "random batch",
     "scale is missing"),
    ("mnrl", "divided by scale", _mnrl(scale_fn=lambda s: 1 / s), "wrong value",
     "random batch", "MULTIPLY"),
    ("mnrl", "transposed", _mnrl(transpose=True), "wrong value", "random batch",
     "wrong direction"),
    ("mnrl", "sum", _mnrl(reduction="sum"), "wrong value", "random batch", "summed"),
    ("mnrl", "symmetric", _mnrl(symmetric=True), "wrong value", "random batch",
     "MultipleNegativesSymmetricRankingLoss"),
    ("mnrl", "zero targets", _mnrl(zero_targets=True), "wrong value", "random batch",
     "torch.arange(B)"),
    ("mnrl", "exp overflow", _mnrl(naive=True), "wrong value", "large scale", "overflows"),
    ("mnrl", "detached", _mnrl(detach_positives=True), "wrong gradient", "random batch",
     "No gradient reaches `positives`"),
    ("cosent", "reversed", _cosent(order="<"), "wrong value", "random batch", "reversed"),
    ("cosent", "ties compared", _cosent(order=">="), "wrong value", "ties in the scores",
     "EQUAL scores"),
    ("cosent", "no 1 +", _cosent(one=False), "wrong value", "random batch", "'1 +'"),
    ("cosent", "no scale", _cosent(scale_fn=lambda s: 1.0), "wrong value", "random batch",
     "scale is missing"),
    ("cosent", "fixed scale", _cosent(scale_fn=lambda s: 20.0), "wrong value",
     "another scale", "fixed at 20"),
    ("cosent", "mean of pairs", _cosent(combine="softplus mean"), "wrong value",
     "random batch", "ONE log"),
    ("cosent", "exp overflow", _cosent(combine="naive"), "wrong value", "large scale",
     "overflows"),
    ("cosent", "regression", _cosent(mse=True), "wrong value", "random batch",
     "CosineSimilarityLoss"),
    ("cosent", "dot product", _cosent(dot=True), "wrong value", "random batch", "dot product"),
    ("matryoshka", "no normalisation", _matryoshka(cut=lambda x, d: x[:, :d]), "wrong value",
     "dot-product loss", "did not normalise"),
    ("matryoshka", "normalise first", _matryoshka(cut=lambda x, d: F.normalize(x)[:, :d]),
     "wrong value", "dot-product loss", "BEFORE cutting"),
    ("matryoshka", "off by one", _matryoshka(cut=lambda x, d: F.normalize(x[:, :d - 1])),
     "wrong value", "random batch", "d - 1 coordinates"),
    ("matryoshka", "last coordinates", _matryoshka(cut=lambda x, d: F.normalize(x[:, -d:])),
     "wrong value", "random batch", "LAST d"),
    ("matryoshka", "weighted mean", _matryoshka(combine="weighted mean"), "wrong value",
     "random batch", "weighted SUM"),
    ("matryoshka", "unweighted", _matryoshka(combine="unweighted"), "wrong value",
     "unequal weights", "weights are missing"),
    ("matryoshka", "full only", _matryoshka(combine="full only"), "wrong value",
     "random batch", "Only the full dimension"),
    ("matryoshka", "detached", _matryoshka_detached, "wrong gradient", "random batch",
     "No gradient reaches `anchors`"),
]


@pytest.mark.parametrize("name,label,function,status,case,hint", WRONG,
                         ids=[f"{row[0]}-{row[1]}" for row in WRONG])
def test_a_typical_mistake_fails_with_a_precise_message(name, label, function, status, case,
                                                        hint) -> None:
    result = ex.get_exercise(name).checker(function)
    message = result.message
    assert not result.passed
    assert (result.status, result.failed_case) == (status, case), message
    assert f'"{case}"' in message  # the case is named
    assert hint in message, message
    assert "Traceback" not in message
    if status == "wrong value":
        assert "Expected: " in message and "Got: " in message
    elif status == "wrong gradient":
        assert "expected" in message and ", got " in message
    # The call and the inputs of the failing case are shown, and how to reproduce it.
    assert ex.get_exercise(name).signature.removeprefix("def ").split("(")[0] + "(" in message
    assert "shape (" in message
    assert f'get_case("{name}", "{case}")' in message


def test_there_are_at_least_three_wrong_answers_per_exercise() -> None:
    for exercise in ex.EXERCISES:
        assert sum(row[0] == exercise.name for row in WRONG) >= 3, exercise.name


@pytest.mark.parametrize("exercise", ex.EXERCISES, ids=lambda exercise: exercise.name)
def test_every_built_in_mistake_is_caught(exercise: ex.Exercise) -> None:
    # Each typical mistake the checker knows, submitted as a student's answer, fails, and
    # the first failure names that mistake or one that coincides with it on that case.
    names = [name for name, _ in exercise.cases()[0].inputs]
    hints = {mistake.hint for mistake in exercise.mistakes}
    for mistake in exercise.mistakes:
        def student(*args, compute=mistake.compute):
            return compute(dict(zip(names, args, strict=True)))
        result = exercise.checker(student)
        assert not result.passed, mistake.hint
        if result.status == "wrong value":
            assert any(hint in result.message for hint in hints), result.message


# ------------------------------------------------------------------------------ no tracebacks
def test_the_blank_stub_gets_a_friendly_not_implemented_message() -> None:
    def triplet_loss(anchors, positives, negatives, margin=5.0):
        raise NotImplementedError

    result = ex.check_triplet_loss(triplet_loss)
    assert (result.passed, result.status) == (False, "not implemented")
    assert "triplet_loss is not implemented yet" in result.message
    assert "Traceback" not in result.message and "NotImplementedError" in result.message
    assert result.cases_run == ["random batch"]


def test_an_exception_in_the_students_code_becomes_a_message() -> None:
    def mnrl(anchors, positives, scale=20.0):
        ratio = 1 / 0  # the student's bug
        return ratio

    result = ex.check_mnrl(mnrl)
    assert result.status == "error"
    assert 'ZeroDivisionError on case "random batch"' in result.message
    assert "ratio = 1 / 0" in result.message  # the student's own line
    assert "Traceback" not in result.message


def test_an_exception_only_on_an_edge_case_names_that_case() -> None:
    def cosent(a, b, scores, scale=20.0):
        second = a[1]  # fails on a batch of one
        return _cosent()(a, b, scores, scale) + 0 * second.sum()

    result = ex.check_cosent(cosent)
    assert (result.status, result.failed_case) == ("error", "batch of one")
    assert "IndexError" in result.message and "second = a[1]" in result.message
    assert "batch of one row" in result.message  # the hint for this case


def test_modifying_an_input_in_place_is_explained() -> None:
    def triplet_loss(anchors, positives, negatives, margin=5.0):
        anchors -= positives
        return anchors.sum()

    result = ex.check_triplet_loss(triplet_loss)
    assert result.status == "error"
    assert "Do not modify the inputs in place" in result.message


@pytest.mark.parametrize("returned,words", [
    (None, "returned None"),
    (1.5, "not a tensor"),
    ("loss", "returned a str"),
])
def test_a_wrong_kind_of_return_value_is_explained(returned, words) -> None:
    result = ex.check_cosent(lambda a, b, scores, scale=20.0: returned)
    assert result.status == "wrong output"
    assert words in result.message


def test_calling_the_checker_wrongly_is_explained() -> None:
    not_a_function = ex.check_mnrl(3)
    assert not_a_function.status == "bad call"
    assert "check_mnrl(mnrl)" in not_a_function.message
    wrong_parameters = ex.check_cosent(lambda a, b: a.sum())
    assert wrong_parameters.status == "bad call"
    assert "cosent(a, b, scores, scale=20.0)" in wrong_parameters.message


# ------------------------------------------------------------------------------ the API
def test_exercises_list_names_signatures_and_checkers() -> None:
    names = [exercise.name for exercise in ex.EXERCISES]
    assert len(set(names)) == len(names) >= 5
    assert {"triplet_loss", "batch_hard_triplet_loss", "mnrl", "cosent",
            "matryoshka"} <= set(names)
    for exercise in ex.EXERCISES:
        assert exercise.signature.startswith(f"def {exercise.name}(")
        assert exercise.checker.__name__ == f"check_{exercise.name}"
        assert exercise.checker is getattr(ex, f"check_{exercise.name}")
        assert exercise.loss in catalog.LOSSES
        assert len(exercise.mistakes) >= 3
        cases = exercise.cases()
        assert len(cases) >= 8
        assert len({case.name for case in cases}) == len(cases)
        assert all(case.about and case.differentiable for case in cases)


def test_every_exercise_has_edge_and_adversarial_cases() -> None:
    for exercise in ex.EXERCISES:
        names = " ".join(case.name for case in exercise.cases())
        assert "random batch" in names
        assert "batch of one" in names
        assert "large" in names and "near-duplicate" in names, exercise.name


def test_cases_are_reproducible_and_cannot_be_spoiled() -> None:
    first = ex.get_case("triplet_loss", "random batch")
    args = first.args
    args[0].add_(100.0)  # a student's in-place change to a copy
    second = ex.get_case("triplet_loss", "random batch")
    assert torch.equal(first.args[0], second.args[0])
    assert not torch.equal(args[0], second.args[0])
    assert all(value.dtype == torch.float64 for value in second.args[:3])
    value = triplet_pairwise(*second.args)
    assert value.shape == ()
    with pytest.raises(KeyError, match="its cases are"):
        ex.get_case("triplet_loss", "no such case")
    with pytest.raises(KeyError, match="the exercises are"):
        ex.get_exercise("no_such_exercise")


def test_the_result_shows_as_markdown_and_text() -> None:
    failing = ex.check_triplet_loss(_triplet(reduce="sum"))
    markdown = failing._repr_markdown_()
    assert markdown.startswith("**✗ triplet_loss")
    assert "```" in markdown  # inputs in a code block
    assert str(failing) == failing.message == repr(failing)
    passing = ex.check("triplet_loss", triplet_pairwise)
    assert passing.passed and passing._repr_markdown_().startswith("**✓")
