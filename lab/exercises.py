"""Checkers for classroom exercises: a student writes a loss, the checker grades it against ours.

Each exercise asks for one plain function on embeddings (no model), for example::

    def triplet_loss(anchors, positives, negatives, margin=5.0): ...

and its checker (``check_triplet_loss(triplet_loss)``) runs it on a fixed series of named cases:
a random batch, edge cases (ties, a batch of one, identical embeddings, a loss that is already 0,
a single class) and adversarial batches (huge embeddings or scales, near-duplicate rows, negative
scores). Everything runs in float64. In every case the checker compares the student's value AND
the gradients with respect to the embeddings (``torch.autograd.grad``) with the reference: our
own ``losses`` package, ``compute_loss_from_embeddings`` with the matching settings.

It stops at the first difference and explains it: which case (by name, with what it tests), the
call and its inputs (printed when small), expected against got, and a hint aimed at the usual
mistakes (several typical wrong answers are computed on the same inputs: when the student's value
equals one of them, the hint names that mistake). The checker never shows a traceback for a bug
in the student's code: an exception becomes a message naming the case, the exception and the line
of the student's code that raised it; the blank stub's ``NotImplementedError`` gives a friendly
"not implemented yet".

Every checker returns a :class:`CheckResult` (``passed``, ``message``, ``cases_run``, ...) that
displays itself as Markdown in a notebook and as plain text in a terminal. ``EXERCISES`` lists the
exercises (name, signature, checker); ``get_case(exercise, case)`` rebuilds any case's inputs so a
student can reproduce a failure.
"""

from __future__ import annotations

import inspect
import math
import os
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

import losses
from losses.similarity import dot_score

__all__ = [
    "EXERCISES",
    "Case",
    "CheckResult",
    "Exercise",
    "check",
    "check_batch_hard_triplet_loss",
    "check_cosent",
    "check_matryoshka",
    "check_mnrl",
    "check_triplet_loss",
    "get_case",
    "get_exercise",
    "run_checks",
]

DTYPE = torch.float64
# float64 leaves room for tight tolerances: a right answer written differently (another order of
# sums, logsumexp vs cross_entropy) agrees to ~1e-14; the usual mistakes miss by far more.
VALUE_RTOL, VALUE_ATOL = 1e-7, 1e-10
GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-10
PRINT_LIMIT = 64  # tensors with at most this many numbers are printed in full in messages


# ------------------------------------------------------------------------------------ cases
@dataclass(frozen=True)
class Case:
    """One batch a checker runs: the arguments of the student's function, in call order.

    ``inputs`` holds (parameter name, value) pairs; tensors are never handed out directly (every
    call gets fresh copies, so nothing a student does to them can leak into the next case).
    ``differentiable`` names the tensor inputs whose gradients are compared. ``gradients`` is
    "exact" (compared with the reference) or "finite" (ties where several gradients are equally
    right, e.g. two positives exactly as far: only checked to be finite).
    """

    name: str
    about: str
    inputs: tuple[tuple[str, Any], ...]
    differentiable: tuple[str, ...]
    gradients: str = "exact"

    @property
    def args(self) -> tuple[Any, ...]:
        """Fresh copies of the arguments, in call order: ``student_fn(*case.args)``."""
        return tuple(self.fresh(requires_grad=False).values())

    def fresh(self, requires_grad: bool = True) -> dict[str, Any]:
        """Name -> argument, tensors cloned; the differentiable ones as leaves requiring grad."""
        values = {}
        for name, value in self.inputs:
            if isinstance(value, Tensor):
                value = value.detach().clone()
                if requires_grad and name in self.differentiable:
                    value.requires_grad_(True)
            values[name] = value
        return values

    @property
    def batch_size(self) -> int:
        """Rows of the first tensor input."""
        return next(value.shape[0] for _, value in self.inputs if isinstance(value, Tensor))

    def call_text(self, function_name: str) -> str:
        """The call as the checker makes it, e.g. ``triplet_loss(anchors, ..., margin=5.0)``."""
        parts = [name if isinstance(value, Tensor) or callable(value) else f"{name}={value!r}"
                 for name, value in self.inputs]
        return f"{function_name}({', '.join(parts)})"


def _case(name: str, about: str, differentiable: Sequence[str], gradients: str = "exact",
          **inputs: Any) -> Case:
    return Case(name, about, tuple(inputs.items()), tuple(differentiable), gradients)


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer: how to compute it on a case's inputs and what to tell the student."""

    hint: str
    compute: Callable[[dict[str, Any]], Tensor]


@dataclass(frozen=True)
class Exercise:
    """One exercise: the function a student writes, its checker and what the checker runs.

    ``name`` is the student's function name, ``title`` the loss it rebuilds, ``loss`` the name of
    that loss in ``lab.catalog`` / ``losses``; ``signature`` is the stub's first line;
    ``checker`` the public ``check_<name>`` function. The rest is the checker's machinery:
    ``make_cases`` builds the cases, ``reference`` computes our value from a case's arguments,
    ``alternatives`` are other equally right answers (e.g. Euclidean distance with or without
    the tiny epsilon torch's ``pairwise_distance`` adds), ``mistakes`` the typical wrong answers
    that get a tailored hint, ``formula`` the one-line reminder used when no mistake matches.
    """

    name: str
    title: str
    loss: str
    signature: str
    summary: str
    checker: Callable[[Callable[..., Any]], CheckResult]
    make_cases: Callable[[], list[Case]] = field(repr=False)
    reference: Callable[[dict[str, Any]], Tensor] = field(repr=False)
    formula: str = field(repr=False)
    mistakes: tuple[Mistake, ...] = field(default=(), repr=False)
    alternatives: tuple[Callable[[dict[str, Any]], Tensor], ...] = field(default=(), repr=False)
    gradient_hint: str = field(default="", repr=False)

    def cases(self) -> list[Case]:
        """The cases the checker runs, in order (rebuilt from a fixed seed each time)."""
        return self.make_cases()


# ------------------------------------------------------------------------------------ results
class CheckResult:
    """What a checker found: ``passed``, the ``message`` and the names of the ``cases_run``.

    ``status`` is one of "passed", "not implemented", "error" (the student's code raised),
    "wrong output" (not a scalar float64 tensor), "wrong value", "wrong gradient", "bad call"
    (the checker was called with something that is not a function of the right signature).
    ``failed_case`` names the case that failed (None if it passed). Shows as Markdown in a
    notebook and as the plain message with ``print``.
    """

    def __init__(self, exercise: str, status: str, lines: list[tuple[str, str]],
                 cases_run: list[str], failed_case: str | None = None) -> None:
        self.exercise = exercise
        self.status = status
        self.passed = status == "passed"
        self.cases_run = cases_run
        self.failed_case = failed_case
        self._lines = lines  # ("title" | "text" | "code", text)

    @property
    def message(self) -> str:
        """The explanation as plain text (code blocks indented)."""
        out = []
        for kind, text in self._lines:
            if kind == "code":
                out.extend("    " + line for line in text.splitlines())
            else:
                out.append(text)
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        out = []
        for kind, text in self._lines:
            if kind == "title":
                out.append(f"**{text}**\n")
            elif kind == "code":
                out.append(f"```\n{text}\n```\n")
            else:
                out.append(text + "\n")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return self.message


class _Failure(Exception):
    """Internal: carries one case's failure report out of the checks."""

    def __init__(self, status: str, lines: list[tuple[str, str]]) -> None:
        super().__init__(status)
        self.status = status
        self.lines = lines


# ------------------------------------------------------------------------------------ formatting
def _value(tensor: Tensor) -> float:
    return float(tensor.detach())


def _number(value: float) -> str:
    return f"{value:.10g}"


def _tensor_text(value: Tensor, limit: int = PRINT_LIMIT) -> str:
    array = value.detach().cpu().numpy()
    if array.size > limit:
        rows = np.array2string(array[:2], precision=4, suppress_small=True, max_line_width=96)
        return f"(first 2 rows of {array.shape[0]})\n{rows}"
    return np.array2string(array, precision=4, suppress_small=True, max_line_width=96)


def _inputs_block(case: Case) -> str:
    lines = []
    for name, value in case.inputs:
        if isinstance(value, Tensor):
            dtype = str(value.dtype).removeprefix("torch.")
            kind = "" if value.is_floating_point() else f" {dtype}"
            text = _tensor_text(value)
            lines.append(f"{name}: shape {tuple(value.shape)}{kind} =")
            lines.extend("  " + line for line in text.splitlines())
        else:
            lines.append(f"{name} = {value!r}")
    return "\n".join(lines)


def _reproduce(exercise: Exercise, case: Case) -> str:
    return (f'Reproduce it: `case = lab.exercises.get_case("{exercise.name}", "{case.name}")`, '
            f"then `{exercise.name}(*case.args)`")


def _case_header(exercise: Exercise, case: Case, index: int, total: int) -> list[tuple[str, str]]:
    return [("text", f'Case {index} of {total}, "{case.name}": {case.about}'),
            ("text", f"Call: `{case.call_text(exercise.name)}`"),
            ("code", _inputs_block(case))]


def _student_line(error: BaseException) -> str | None:
    """'line N: <code>' of the innermost frame of the student's own code, if any."""
    here = os.path.abspath(__file__)
    # Frames in torch or in our losses (e.g. a loss_fn the student called) are not theirs.
    libraries = tuple(os.path.dirname(os.path.abspath(module.__file__)) + os.sep
                      for module in (torch, losses))
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        filename = os.path.abspath(frame.filename)
        if filename == here or filename.startswith(libraries):
            continue
        code = (frame.line or "").strip()
        return f"line {frame.lineno}" + (f": `{code}`" if code else "")
    return None


def _error_hint(error: BaseException, case: Case) -> str:
    text = str(error)
    if "in-place" in text or "inplace" in text:
        return ("Do not modify the inputs in place (x += ..., x[...] = ..., .add_()): autograd "
                "needs them unchanged. Write x = x + ... or work on new tensors.")
    if isinstance(error, (IndexError, RuntimeError, ValueError)) and case.batch_size == 1:
        return ("This case has a batch of one row: code that assumes several rows (indexing "
                "row 1, .squeeze() turning (1, dim) into (dim,), empty masks) breaks here.")
    if "does not require grad" in text:
        return "Part of your computation was detached from the inputs."
    if any(word in text for word in ("size", "shape", "dimension")):
        return ("A shape mismatch: write down the shape of every intermediate tensor, e.g. (B,) "
                "for one value per row and (B, B) for every pair of rows.")
    return "Run your function on this case's inputs yourself (see below) to find the bug."


# ------------------------------------------------------------------------------------ comparisons
def _close(got: Tensor, expected: Tensor, rtol: float, atol: float) -> bool:
    if got.shape != expected.shape:
        return False
    return bool(torch.allclose(got.detach(), expected.detach(), rtol=rtol, atol=atol))


def _gradients(output: Tensor, leaves: list[Tensor]) -> list[Tensor]:
    """d output / d leaf for each leaf; zeros where the output does not depend on a leaf."""
    if not output.requires_grad:
        return [torch.zeros_like(leaf) for leaf in leaves]
    grads = torch.autograd.grad(output, leaves, allow_unused=True)
    return [torch.zeros_like(leaf) if grad is None else grad.detach()
            for leaf, grad in zip(leaves, grads, strict=True)]


def _quietly(function: Callable[[dict[str, Any]], Tensor], args: dict[str, Any]) -> Tensor:
    # The reference warns about degenerate batches (one class, tied scores, one pair); here
    # those batches are chosen on purpose.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(args)


def _first_difference(got: Tensor, expected: Tensor, rtol: float, atol: float) -> tuple[int, ...]:
    bad = ~torch.isclose(got, expected, rtol=rtol, atol=atol)
    return tuple(int(i) for i in bad.nonzero()[0]) if bool(bad.any()) else ()


def _mistake_hint(exercise: Exercise, case: Case, got: Tensor, expected: Tensor) -> str:
    """The hint of the first typical mistake whose value equals the student's, else a guess."""
    args = case.fresh(requires_grad=False)
    for mistake in exercise.mistakes:
        try:
            with torch.no_grad():
                wrong = _quietly(mistake.compute, args)
        except Exception:  # a mistake that does not apply to this case's shapes
            continue
        if not isinstance(wrong, Tensor) or wrong.shape != ():
            continue
        # Only a mistake that changes the value here can explain the difference.
        if torch.isclose(wrong, expected, rtol=1e-9, atol=1e-12):
            continue
        if torch.isclose(got.detach(), wrong, rtol=1e-6, atol=1e-9, equal_nan=True):
            return mistake.hint
    value, target = _value(got), _value(expected)
    if math.isnan(value):
        return ("Your loss is NaN: look for 0/0 (normalising a zero vector), log of 0 or of a "
                "negative number, sqrt of a negative number, or inf - inf (e.g. exp overflowing).")
    if math.isinf(value):
        return ("Your loss is infinite: exp() of a large number overflows (use torch.logsumexp "
                "or F.cross_entropy, which subtract the maximum first), or a min/max ran over an "
                "empty set.")
    batch = case.batch_size
    if target != 0 and batch > 1 and math.isclose(value, target * batch, rel_tol=1e-6):
        return f"Your value is {batch} (the batch size) times too big: take the mean, not the sum."
    if target != 0 and batch > 1 and math.isclose(value, target / batch, rel_tol=1e-6):
        return f"Your value is {batch} (the batch size) times too small: you divided twice."
    if target != 0 and math.isclose(value, -target, rel_tol=1e-6):
        return "Your value has the wrong sign."
    return exercise.formula


def _output_problem(got: Any) -> tuple[str, str] | None:
    """(what is wrong, hint) when the student's return value is not a float64 scalar tensor."""
    if got is None:
        return "it returned None", "Did you forget the `return` statement?"
    if isinstance(got, (int, float, np.floating, np.integer)):
        return (f"it returned a Python/NumPy number ({got!r}), not a tensor",
                "A number has no gradient: don't call .item(), float() or .numpy(); return the "
                "tensor itself.")
    if not isinstance(got, Tensor):
        return (f"it returned a {type(got).__name__}, not a tensor",
                "Return one scalar tensor (shape ()), the loss of the whole batch.")
    if got.shape != ():
        hint = ("You still have one value per row (or per pair): reduce them to the loss of the "
                "batch (the mean, or the sum where the formula says so).")
        if got.numel() == 1:
            hint = "Drop the extra dimension of size 1 (e.g. .squeeze() or index [0])."
        return f"wrong shape: expected a scalar (shape ()), got shape {tuple(got.shape)}", hint
    if got.dtype != DTYPE:
        return (f"wrong dtype: expected float64 like the inputs, got {got.dtype}",
                "A tensor made with torch.tensor(...)/torch.zeros(n)/torch.ones(n) without dtype= "
                "is float32; use dtype=anchors.dtype (or zeros_like/new_zeros), and don't call "
                ".float().")
    return None


# ------------------------------------------------------------------------------------ the engine
def _check_case(exercise: Exercise, function: Callable[..., Any], case: Case,
                header: list[tuple[str, str]]) -> None:
    """Run one case; return quietly if it passes, raise _Failure with the report otherwise."""
    reference_args = case.fresh()
    reference_leaves = [reference_args[name] for name in case.differentiable]
    expected = _quietly(exercise.reference, reference_args)
    expected_grads = _gradients(expected, reference_leaves)

    student_args = case.fresh()
    student_leaves = [student_args[name] for name in case.differentiable]
    try:
        got = function(*student_args.values())
    except NotImplementedError:
        raise _Failure("not implemented", [
            ("title", f"⏳ {exercise.name} is not implemented yet."),
            ("text", "Replace the `raise NotImplementedError` line with your code, run that cell "
                     "again, then run this check."),
        ]) from None
    except Exception as error:
        where = _student_line(error)
        raise _Failure("error", [
            ("title", f"✗ {exercise.name} raised {type(error).__name__} on case \"{case.name}\"."),
            ("text", f"{type(error).__name__}: {error}"),
            *([("text", f"Raised at {where}")] if where else []),
            *header,
            ("text", f"Hint: {_error_hint(error, case)}"),
        ]) from None

    problem = _output_problem(got)
    if problem is not None:
        what, hint = problem
        raise _Failure("wrong output", [
            ("title", f"✗ {exercise.name} returned the wrong kind of result on case "
                      f"\"{case.name}\": {what}."),
            *header,
            ("text", f"Expected: {_number(_value(expected))} (a float64 tensor of shape ())"),
            ("text", f"Hint: {hint}"),
        ])

    # Values: the reference, or any equally right alternative.
    candidates = [(expected, expected_grads)]
    for alternative in exercise.alternatives:
        alternative_args = case.fresh()
        value = _quietly(alternative, alternative_args)
        candidates.append((value, _gradients(
            value, [alternative_args[name] for name in case.differentiable])))
    matching = [grads for value, grads in candidates
                if _close(got, value, VALUE_RTOL, VALUE_ATOL)]
    if not matching:
        got_value = _value(got)
        raise _Failure("wrong value", [
            ("title", f"✗ {exercise.name}: wrong value on case \"{case.name}\"."),
            *header,
            ("text", f"Expected: {_number(_value(expected))}"),
            ("text", f"Got:      {_number(got_value)}"
                     + (f"   (difference {_number(got_value - _value(expected))})"
                        if math.isfinite(got_value) else "")),
            ("text", f"Hint: {_mistake_hint(exercise, case, got, expected)}"),
        ])

    # Gradients, w.r.t. every differentiable input.
    try:
        got_grads = _gradients(got, student_leaves)
    except Exception as error:
        where = _student_line(error)
        raise _Failure("error", [
            ("title", f"✗ {exercise.name}: computing the gradient of your loss failed on case "
                      f"\"{case.name}\"."),
            ("text", f"{type(error).__name__}: {error}"),
            *([("text", f"Raised at {where}")] if where else []),
            *header,
            ("text", f"Hint: {_error_hint(error, case)}"),
        ]) from None
    for name, grad, theirs in zip(case.differentiable, got_grads, matching[0], strict=True):
        if not bool(torch.isfinite(grad).all()):
            index = tuple(int(i) for i in (~torch.isfinite(grad)).nonzero()[0])
            raise _Failure("wrong gradient", [
                ("title", f"✗ {exercise.name}: the value is right but the gradient w.r.t. "
                          f"`{name}` contains NaN or inf on case \"{case.name}\"."),
                *header,
                ("text", f"First difference at {name}{list(index)}: expected "
                         f"{_number(float(theirs[index]))}, got {_number(float(grad[index]))}."),
                ("text", f"Got d loss / d {name} ="),
                ("code", _tensor_text(grad)),
                ("text", "Hint: sqrt has an infinite slope at 0, so sqrt(sum of squares) of a "
                         "zero distance (a row compared with itself, identical rows) gives NaN "
                         "gradients even where its result is masked out afterwards. Use "
                         "torch.cdist, F.pairwise_distance or torch.linalg.norm (they handle "
                         "distance 0), and F.normalize for unit vectors."),
            ])
    if case.gradients != "exact":
        return
    if any(_grads_close(got_grads, grads) for grads in matching):
        return
    grads = matching[0]
    for name, mine, theirs in zip(case.differentiable, got_grads, grads, strict=True):
        if _close(mine, theirs, GRAD_RTOL, GRAD_ATOL):
            continue
        index = _first_difference(mine, theirs, GRAD_RTOL, GRAD_ATOL)
        if not got.requires_grad:
            hint = ("Your loss is not connected to the inputs at all (it has no gradient): "
                    "did you use .item(), float(), .numpy(), torch.tensor(...) on a computed "
                    "value, .detach() or torch.no_grad()? Keep it all tensor operations on "
                    "the inputs.")
        elif not bool(mine.any()):
            hint = (f"No gradient reaches `{name}`: the part of your loss that uses `{name}` is "
                    "detached (.detach(), .data, .item(), .numpy(), torch.no_grad()).")
        else:
            hint = ("The values agree but the gradients do not: part of your computation is "
                    "detached (.detach(), .data, .item()) or rebuilt from detached numbers. "
                    + exercise.gradient_hint).strip()
        raise _Failure("wrong gradient", [
            ("title", f"✗ {exercise.name}: the value is right but the gradient w.r.t. `{name}` "
                      f"differs on case \"{case.name}\"."),
            *header,
            ("text", f"First difference at {name}{list(index)}: expected "
                     f"{_number(float(theirs[index]))}, got {_number(float(mine[index]))}."),
            ("text", f"Expected d loss / d {name} ="),
            ("code", _tensor_text(theirs)),
            ("text", "Got ="),
            ("code", _tensor_text(mine)),
            ("text", f"Hint: {hint}"),
        ])


def _grads_close(got: list[Tensor], expected: list[Tensor]) -> bool:
    return all(_close(g, e, GRAD_RTOL, GRAD_ATOL) for g, e in zip(got, expected, strict=True))


def _bad_call(exercise: Exercise, function: Any) -> str | None:
    """Why ``function`` cannot be called like the exercise's function, or None."""
    if not callable(function):
        return (f"check_{exercise.name} expects your function itself, e.g. "
                f"check_{exercise.name}({exercise.name}) (no parentheses after the name); "
                f"got {type(function).__name__} {function!r:.80}.")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None  # builtins and the like: just call it
    arguments = [name for name, _ in exercise.make_cases()[0].inputs]
    try:
        signature.bind(*arguments)
    except TypeError:
        call = exercise.signature.removeprefix("def ").removesuffix(":")
        return (f"Your function's parameters are {signature}, but the exercise calls it with "
                f"{len(arguments)} arguments: {call}.")
    return None


def run_checks(exercise: Exercise | str, function: Callable[..., Any]) -> CheckResult:
    """Run every case of ``exercise`` on ``function``; stop at the first difference."""
    exercise = get_exercise(exercise) if isinstance(exercise, str) else exercise
    problem = _bad_call(exercise, function)
    if problem is not None:
        return CheckResult(exercise.name, "bad call", [
            ("title", f"✗ Cannot check {exercise.name}."), ("text", problem)], [])
    cases = exercise.cases()
    run: list[str] = []
    for index, case in enumerate(cases, start=1):
        run.append(case.name)
        header = _case_header(exercise, case, index, len(cases))
        try:
            _check_case(exercise, function, case, header)
        except _Failure as failure:
            lines = list(failure.lines)
            if failure.status != "not implemented":
                passed = run[:-1]
                lines.append(("text", "Passed before this case: " + (
                    ", ".join(f'"{name}"' for name in passed) if passed else "none") + "."))
                lines.append(("text", _reproduce(exercise, case)))
            return CheckResult(exercise.name, failure.status, lines, run, case.name)
    names = ", ".join(f'"{name}"' for name in run)
    return CheckResult(exercise.name, "passed", [
        ("title", f"✓ {exercise.name} passes all {len(run)} cases: values and gradients match "
                  f"{exercise.title}."),
        ("text", f"Cases: {names}."),
    ], run)


def check(name: str, function: Callable[..., Any]) -> CheckResult:
    """Check ``function`` for the exercise called ``name`` (see ``EXERCISES``)."""
    return run_checks(get_exercise(name), function)


def get_exercise(name: str) -> Exercise:
    """The exercise called ``name`` (its function name, e.g. "triplet_loss", or its title)."""
    for exercise in EXERCISES:
        if name in (exercise.name, exercise.title):
            return exercise
    known = ", ".join(exercise.name for exercise in EXERCISES)
    raise KeyError(f"no exercise named {name!r}; the exercises are: {known}")


def get_case(exercise: str, case: str) -> Case:
    """The case called ``case`` of ``exercise``: ``student_fn(*get_case(...).args)``."""
    cases = get_exercise(exercise).cases()
    for candidate in cases:
        if candidate.name == case:
            return candidate
    known = ", ".join(repr(candidate.name) for candidate in cases)
    raise KeyError(f"exercise {exercise!r} has no case {case!r}; its cases are: {known}")


# ------------------------------------------------------------------------------------ helpers
def _generator(seed: int) -> Callable[..., Tensor]:
    """A seeded randn(*shape) in float64, so every run builds the same cases."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=DTYPE)

    return randn


def _float(values: Sequence[Any]) -> Tensor:
    return torch.tensor(values, dtype=DTYPE)


# ------------------------------------------------------------------------------------ TripletLoss
TRIPLET = ("anchors", "positives", "negatives")


def _distance(x: Tensor, y: Tensor) -> Tensor:
    """Exact Euclidean distance of row i of x to row i of y: (B,)."""
    return torch.linalg.vector_norm(x - y, dim=-1)


def _triplet_reference(args: dict[str, Any]) -> Tensor:
    loss = losses.TripletLoss(None, distance_metric=losses.TripletDistanceMetric.EUCLIDEAN,
                              triplet_margin=args["margin"])
    return loss.compute_loss_from_embeddings([args[name] for name in TRIPLET])


def _triplet_pairwise_distance(args: dict[str, Any]) -> Tensor:
    # Ours uses the exact ||a - p||; torch's F.pairwise_distance adds 1e-6 to every difference
    # (so its gradient is finite at distance 0), which is as right: accept it too.
    loss = losses.TripletLoss(None, distance_metric=lambda x, y: F.pairwise_distance(x, y),
                              triplet_margin=args["margin"])
    return loss.compute_loss_from_embeddings([args[name] for name in TRIPLET])


Terms = Callable[[Tensor, Tensor, float], Tensor]


def _hinge(to_positive: Tensor, to_negative: Tensor, margin: float) -> Tensor:
    return F.relu(to_positive - to_negative + margin)


def _triplet_variant(args: dict[str, Any], terms: Terms = _hinge, reduce: str = "mean",
                     distance: Callable[[Tensor, Tensor], Tensor] = _distance) -> Tensor:
    """The triplet loss with one rule changed: per-triplet ``terms``, ``reduce``, ``distance``."""
    anchors, positives, negatives = (args[name] for name in TRIPLET)
    values = terms(distance(anchors, positives), distance(anchors, negatives), args["margin"])
    if reduce == "sum":
        return values.sum()
    if reduce == "active":
        return values.sum() / (values > 0).sum()
    return values.mean()


def _cosine_distance(x: Tensor, y: Tensor) -> Tensor:
    return 1 - F.cosine_similarity(x, y)


def _distance_over_batch(x: Tensor, y: Tensor) -> Tensor:
    return torch.linalg.vector_norm(x - y, dim=0)  # (dim,): the wrong axis


def _triplet_mistakes() -> tuple[Mistake, ...]:
    return (
        Mistake("You forgot the hinge max(0, ·): a triplet whose negative is already more than "
                "the margin farther than its positive must add 0, not a negative number "
                "(torch.relu or .clamp(min=0) on each term).",
                lambda a: _triplet_variant(a, terms=lambda dp, dn, m: dp - dn + m)),
        Mistake("You averaged before the hinge: the loss is the mean over triplets of "
                "max(0, d(a,p) - d(a,n) + margin), not max(0, mean(...)).",
                lambda a: _triplet_variant(a, terms=lambda dp, dn, m: F.relu((dp - dn).mean()
                                                                             + m))),
        Mistake("You summed over the triplets: the loss is their mean.",
                lambda a: _triplet_variant(a, reduce="sum")),
        Mistake("Positive and negative are swapped: the loss must grow when the POSITIVE is far "
                "from the anchor: max(0, d(a,p) - d(a,n) + margin).",
                lambda a: _triplet_variant(a, terms=lambda dp, dn, m: _hinge(dn, dp, m))),
        Mistake("The margin has the wrong sign: it is + margin inside the max.",
                lambda a: _triplet_variant(a, terms=lambda dp, dn, m: _hinge(dp, dn, -m))),
        Mistake("You used squared distances; this loss uses the plain Euclidean distance "
                "sqrt(sum((a - p)²)), e.g. F.pairwise_distance(a, p) or "
                "torch.linalg.norm(a - p, dim=1).",
                lambda a: _triplet_variant(a, terms=lambda dp, dn, m: _hinge(dp**2, dn**2, m))),
        Mistake("The margin is fixed at 5: use the `margin` argument.",
                lambda a: _triplet_variant(a, terms=lambda dp, dn, m: _hinge(dp, dn, 5.0))),
        Mistake("You averaged over the active triplets only: divide by the number of ALL "
                "triplets (the mean over the batch), zeros included.",
                lambda a: _triplet_variant(a, reduce="active")),
        Mistake("You used the cosine distance; this exercise uses the Euclidean distance.",
                lambda a: _triplet_variant(a, distance=_cosine_distance)),
        Mistake("The distance is over the wrong axis: compare row i of anchors with row i of "
                "positives, summing over the embedding dimension (dim=1), one distance per row.",
                lambda a: _triplet_variant(a, distance=_distance_over_batch)),
    )


def _triplet_cases() -> list[Case]:
    randn = _generator(11)
    a = randn(6, 4) * 2
    random_batch = (a, a + randn(6, 4), a + 2.5 * randn(6, 4))
    b = randn(5, 3)
    p = b + 0.1 * randn(5, 3)
    big = randn(6, 4) * 1000
    near = randn(5, 4)
    one = randn(1, 3)
    same = randn(1, 3).repeat(4, 1)
    tie_a, tie_p = randn(4, 3), randn(4, 3)
    return [
        _case("random batch", "six random triplets in 4 dimensions; some already satisfy the "
              "margin, some do not.", TRIPLET, anchors=random_batch[0],
              positives=random_batch[1], negatives=random_batch[2], margin=5.0),
        _case("another margin", "the same kind of batch with margin=1.5: the margin argument "
              "must be used.", TRIPLET, anchors=random_batch[0], positives=random_batch[1],
              negatives=random_batch[2], margin=1.5),
        _case("batch of one", "a single triplet (batch size 1).", TRIPLET,
              anchors=one, positives=one + _float([[1.0, 2.0, 2.0]]),
              negatives=one + _float([[0.0, 4.0, 0.0]]), margin=5.0),
        _case("loss already zero", "every negative is more than the margin farther than its "
              "positive, so every term is max(0, negative number) = 0 and so is the gradient.",
              TRIPLET, anchors=b, positives=p, negatives=b + 10.0, margin=5.0),
        _case("tie: negative as far as the positive", "each negative is the mirror image of "
              "the positive through the anchor (n = 2a - p), so d(a, p) = d(a, n) and every "
              "term is exactly the margin.", TRIPLET, anchors=tie_a, positives=tie_p,
              negatives=2 * tie_a - tie_p, margin=5.0),
        _case("identical embeddings", "anchor, positive and negative are the same vector: every "
              "distance is 0, the loss is the margin (the gradient of a distance at 0 is "
              "accepted as 0 or as torch's pairwise_distance gives it).", TRIPLET,
              anchors=same, positives=same.clone(), negatives=same.clone(), margin=5.0),
        _case("large embeddings", "coordinates around ±1000 with margin 5: distances in the "
              "thousands.", TRIPLET, anchors=big, positives=big + 300 * randn(6, 4),
              negatives=big + 400 * randn(6, 4), margin=5.0),
        _case("near-duplicate rows", "positives and negatives within 0.001 of their anchor: tiny "
              "distances, every term close to the margin.", TRIPLET, anchors=near,
              positives=near + 1e-3 * randn(5, 4), negatives=near + 1e-3 * randn(5, 4),
              margin=5.0),
    ]


# ------------------------------------------------------------------------------- BatchHardTriplet
def _batch_hard_reference(args: dict[str, Any]) -> Tensor:
    loss = losses.BatchHardTripletLoss(None, margin=args["margin"])
    return loss.compute_loss_from_embeddings([args["embeddings"]], args["labels"])


def _hardest(args: dict[str, Any], positive: str = "max", negative: str = "min",
             squared: bool = False, negatives_include_positives: bool = False
             ) -> tuple[Tensor, Tensor]:
    """(B,) hardest-positive and hardest-negative distances under some (possibly wrong) rule."""
    embeddings, labels = args["embeddings"], args["labels"]
    distances = torch.cdist(embeddings, embeddings)  # (B, B)
    if squared:
        distances = distances**2
    same = labels.unsqueeze(0) == labels.unsqueeze(1)  # (B, B)
    eye = torch.eye(len(labels), dtype=torch.bool)
    positives = same & ~eye
    negatives = ~eye if negatives_include_positives else ~same
    if positive == "max":
        hp = torch.where(positives, distances, 0.0).amax(dim=1)
    elif positive == "min":
        hp = torch.where(positives, distances, math.inf).amin(dim=1)
        hp = torch.where(positives.any(dim=1), hp, 0.0)
    else:  # mean over the positives
        hp = (distances * positives).sum(dim=1) / positives.sum(dim=1).clamp(min=1)
    if negative == "min":
        hn = torch.where(negatives, distances, math.inf).amin(dim=1)
    else:  # the farthest negative
        hn = torch.where(negatives, distances, -math.inf).amax(dim=1)
    hn = torch.where(negatives.any(dim=1), hn, hp)  # no negative: term = margin, as ours
    return hp, hn


def _batch_hard_variant(args: dict[str, Any], terms: Terms = _hinge, reduce: str = "mean",
                        **rule: Any) -> Tensor:
    """Batch-hard with one rule changed (see ``_hardest`` for the mining rules)."""
    values = terms(*_hardest(args, **rule), args["margin"])
    if reduce == "sum":
        return values.sum()
    if reduce == "active":
        return values.sum() / (values > 0).sum()
    return values.mean()


def _batch_hard_single_class_zero(args: dict[str, Any]) -> Tensor:
    """An anchor without a negative dropped (term 0) instead of adding the margin."""
    embeddings, labels = args["embeddings"], args["labels"]
    if bool((labels != labels[0]).any()):
        return _batch_hard_reference(args)
    return embeddings.new_zeros(())


def _batch_hard_mistakes() -> tuple[Mistake, ...]:
    return (
        Mistake("With a single class there is no negative: by the convention of this exercise "
                "(and of the library) such an anchor's hardest-negative distance is taken equal "
                "to its hardest-positive distance, so its term is exactly the margin, not 0 and "
                "not inf.", _batch_hard_single_class_zero),
        Mistake("You used the NEAREST positive: batch-hard takes the hardest positive, the "
                "FARTHEST example of the anchor's own class (max over positives).",
                lambda a: _batch_hard_variant(a, positive="min")),
        Mistake("You averaged the positive distances: batch-hard uses the farthest positive "
                "(max), not the mean.", lambda a: _batch_hard_variant(a, positive="mean")),
        Mistake("You used the FARTHEST negative: the hardest negative is the NEAREST example of "
                "another class (min over negatives).",
                lambda a: _batch_hard_variant(a, negative="max")),
        Mistake("Your negatives include examples of the anchor's own class: only examples with "
                "a different label are negatives.",
                lambda a: _batch_hard_variant(a, negatives_include_positives=True)),
        Mistake("You used squared distances; use the Euclidean distance itself (torch.cdist).",
                lambda a: _batch_hard_variant(a, squared=True)),
        Mistake("You forgot the hinge max(0, ·): an anchor whose nearest negative is already "
                "margin farther than its farthest positive must add 0.",
                lambda a: _batch_hard_variant(a, terms=lambda hp, hn, m: hp - hn + m)),
        Mistake("You summed over the anchors: the loss is the mean over the B anchors.",
                lambda a: _batch_hard_variant(a, reduce="sum")),
        Mistake("The margin is fixed at 5: use the `margin` argument.",
                lambda a: _batch_hard_variant(a, terms=lambda hp, hn, m: _hinge(hp, hn, 5.0))),
        Mistake("You averaged over the anchors with a non-zero term only: divide by all B "
                "anchors.", lambda a: _batch_hard_variant(a, reduce="active")),
    )


def _batch_hard_cases() -> list[Case]:
    randn = _generator(23)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    random = randn(3, 4)[labels] * 2.5 + randn(8, 4)  # 3 class centres, noise around them
    clusters = torch.repeat_interleave(randn(3, 3) * 20, 3, dim=0) + 0.3 * randn(9, 3)
    lattice = _float([[0, 0], [2, 0], [0, 2], [-2, 0], [1, 1], [1, -1], [-1, 1], [-1, -1]])
    return [
        _case("random batch", "8 random embeddings of 3 classes (3, 3 and 2 examples) around "
              "3 random centres.",
              ("embeddings",), embeddings=random, labels=labels, margin=5.0),
        _case("another margin", "the same batch with margin=0.5: some anchors are satisfied "
              "now, and the margin argument must be used.", ("embeddings",),
              embeddings=random, labels=labels, margin=0.5),
        _case("a class with one example", "label 9 occurs once: that anchor has no positive, "
              "so its hardest-positive distance is 0 (its term is max(0, margin - nearest "
              "negative)).", ("embeddings",), embeddings=randn(7, 3),
              labels=torch.tensor([0, 0, 0, 1, 1, 9, 1]), margin=2.0),
        _case("single class", "every example has the same label: no anchor has a negative. "
              "Convention: the hardest-negative distance is then taken equal to the "
              "hardest-positive one, so every term is exactly the margin (nothing to learn).",
              ("embeddings",), embeddings=randn(5, 3), labels=torch.full((5,), 7), margin=5.0),
        _case("batch of one", "one example (so one class, no positive, no negative): the loss "
              "is the margin.", ("embeddings",), embeddings=randn(1, 3),
              labels=torch.tensor([4]), margin=5.0),
        _case("loss already zero", "3 tight clusters (one per class) far apart: every anchor's "
              "nearest negative is more than the margin beyond its farthest positive.",
              ("embeddings",), embeddings=clusters,
              labels=torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2]), margin=1.0),
        _case("ties: equal distances", "points of a lattice, so several positives (and "
              "negatives) are exactly equally far: any of them is a valid choice, so gradients "
              "are only checked to be finite here.", ("embeddings",), gradients="finite",
              embeddings=lattice, labels=torch.tensor([0, 1, 0, 1, 2, 2, 3, 3]), margin=3.0),
        _case("identical embeddings", "all 6 embeddings are the same vector, in 2 classes: "
              "every distance is 0, every term is the margin, the gradient is 0.",
              ("embeddings",), embeddings=randn(1, 4).repeat(6, 1),
              labels=torch.tensor([0, 0, 0, 1, 1, 1]), margin=5.0),
        _case("large embeddings", "coordinates around ±1000: distances in the thousands.",
              ("embeddings",), embeddings=randn(8, 4) * 1000, labels=labels, margin=5.0),
        _case("near-duplicate rows", "pairs of rows within 0.001 of each other, one pair per "
              "class and one pair across classes.", ("embeddings",),
              embeddings=torch.repeat_interleave(randn(4, 4), 2, dim=0) + 1e-3 * randn(8, 4),
              labels=torch.tensor([0, 0, 1, 1, 2, 2, 2, 3]), margin=5.0),
    ]


# ------------------------------------------------------------------------------------ MNRL
PAIR = ("anchors", "positives")


def _mnrl_reference(args: dict[str, Any]) -> Tensor:
    loss = losses.MultipleNegativesRankingLoss(None, scale=args["scale"])
    return loss.compute_loss_from_embeddings([args["anchors"], args["positives"]])


def _mnrl_scores(args: dict[str, Any], normalize: bool = True) -> Tensor:
    anchors, positives = args["anchors"], args["positives"]
    if normalize:
        anchors, positives = F.normalize(anchors, dim=-1), F.normalize(positives, dim=-1)
    return anchors @ positives.T  # (B, B): row i = anchor i against every positive


def _mnrl_mistakes() -> tuple[Mistake, ...]:
    def ce(scores: Tensor, **options: Any) -> Tensor:
        return F.cross_entropy(scores, torch.arange(len(scores)), **options)

    def positive_left_out(args: dict[str, Any]) -> Tensor:
        scores = _mnrl_scores(args) * args["scale"]
        others = scores.masked_fill(torch.eye(len(scores), dtype=torch.bool), -math.inf)
        return (torch.logsumexp(others, dim=1) - scores.diagonal()).mean()

    return (
        Mistake("You used the dot product: the similarity is the COSINE similarity, so "
                "normalise the rows first (F.normalize(x, dim=-1)).",
                lambda a: ce(_mnrl_scores(a, normalize=False) * a["scale"])),
        Mistake("The scale is missing: multiply the cosine similarities by `scale` before the "
                "softmax.", lambda a: ce(_mnrl_scores(a))),
        Mistake("You divided by the scale: scale is 1/temperature, so MULTIPLY the "
                "similarities by it.", lambda a: ce(_mnrl_scores(a) / a["scale"])),
        Mistake("The scale is fixed at 20: use the `scale` argument.",
                lambda a: ce(_mnrl_scores(a) * 20.0)),
        Mistake("You ranked in the wrong direction: each ANCHOR (row) picks its positive among "
                "all positives, i.e. a softmax over each row of sim(anchors, positives), with "
                "target i for row i; you took the softmax over the columns.",
                lambda a: ce(_mnrl_scores(a).T * a["scale"])),
        Mistake("You averaged both directions (anchor→positive and positive→anchor): that is "
                "MultipleNegativesSymmetricRankingLoss. Here only each anchor ranks the "
                "positives.", lambda a: (ce(_mnrl_scores(a) * a["scale"])
                                          + ce(_mnrl_scores(a).T * a["scale"])) / 2),
        Mistake("You summed over the batch: the loss is the mean over the anchors.",
                lambda a: ce(_mnrl_scores(a) * a["scale"], reduction="sum")),
        Mistake("The correct class of anchor i is column i (its own positive), so the targets "
                "are torch.arange(B), not zeros.",
                lambda a: F.cross_entropy(_mnrl_scores(a) * a["scale"],
                                          torch.zeros(len(a["anchors"]), dtype=torch.long))),
        Mistake("You left the positive out of the denominator: the log-sum-exp runs over ALL B "
                "candidates, the positive included (it is a softmax over the row).",
                positive_left_out),
        Mistake("exp() overflows at this scale (exp(710) is already inf in float64): compute "
                "log Σ exp(...) with torch.logsumexp, or use F.cross_entropy, which subtract the "
                "largest logit first.", lambda a: (lambda e: -torch.log(
                    e.diagonal() / e.sum(dim=1)).mean())(torch.exp(_mnrl_scores(a) * a["scale"]))),
        Mistake("You took minus the softmax probability, without the log: the loss is "
                "-log softmax (cross-entropy).",
                lambda a: -torch.softmax(_mnrl_scores(a) * a["scale"], dim=1).diagonal().mean()),
    )


def _mnrl_cases() -> list[Case]:
    randn = _generator(37)
    anchors = randn(6, 8)
    positives = anchors + 3.0 * randn(6, 8)
    lengths = _float([1e-3, 1e-1, 1.0, 10.0, 1e3]).unsqueeze(1)
    varied = randn(5, 6)
    near = randn(5, 6)
    near[1] = near[0] + 1e-6 * randn(6)
    onehot = torch.eye(5, dtype=DTYPE)
    same = randn(1, 4)
    return [
        _case("random batch", "6 random (anchor, positive) pairs in 8 dimensions, each "
              "positive a (very) noisy copy of its anchor.", PAIR, anchors=anchors,
              positives=positives, scale=20.0),
        _case("another scale", "the same batch with scale=1.0: the scale argument must be used.",
              PAIR, anchors=anchors, positives=positives, scale=1.0),
        _case("batch of one", "one pair: the positive is the only candidate, so the loss is "
              "exactly 0.", PAIR, anchors=randn(1, 4), positives=randn(1, 4), scale=20.0),
        _case("identical embeddings", "every anchor and positive is the same vector: all "
              "similarities are 1, the loss is log(B).", PAIR, anchors=same.repeat(4, 1),
              positives=same.repeat(4, 1), scale=20.0),
        _case("retrieval already perfect", "one-hot anchors with identical positives: "
              "similarity 1 to the own positive, 0 to the others; the loss is tiny but not 0.",
              PAIR, anchors=onehot, positives=onehot.clone(), scale=20.0),
        _case("rows of very different lengths", "anchors and positives scaled from 0.001 to "
              "1000: cosine similarity ignores lengths.", PAIR, anchors=varied * lengths,
              positives=(varied + 1.5 * randn(5, 6)) * lengths.flip(0), scale=20.0),
        _case("large scale", "scale=1000: the logits reach ±1000 and exp() overflows unless "
              "the log-sum-exp is computed stably.", PAIR, anchors=anchors,
              positives=positives, scale=1000.0),
        _case("near-duplicate anchors", "anchors 0 and 1 are within 1e-6 of each other, so "
              "each can hardly tell its positive from the other's.", PAIR, anchors=near,
              positives=near + 0.3 * randn(5, 6), scale=20.0),
        _case("opposite positives", "every positive points away from its anchor (similarity "
              "-1): a large loss.", PAIR, anchors=anchors[:4], positives=-anchors[:4] * 2,
              scale=20.0),
    ]


# ------------------------------------------------------------------------------------ CoSENT
def _cosent_reference(args: dict[str, Any]) -> Tensor:
    loss = losses.CoSENTLoss(None, scale=args["scale"])
    return loss.compute_loss_from_embeddings([args["a"], args["b"]], args["scores"])


def _cosent_variant(args: dict[str, Any], similarity: str = "cosine", scale: float | None = None,
                    ordered: str = ">", combine: str = "1 + logsumexp") -> Tensor:
    """CoSENT with one rule changed: the similarity, the scale, which pairs count, the sum."""
    a, b, scores = args["a"], args["b"], args["scores"]
    cosine = F.cosine_similarity(a, b) if similarity == "cosine" else (a * b).sum(dim=-1)
    s = cosine * (args["scale"] if scale is None else scale)  # (B,)
    difference = s.unsqueeze(0) - s.unsqueeze(1)  # [i, j] = s_j - s_i
    higher = scores.unsqueeze(1) - scores.unsqueeze(0)  # [i, j] = y_i - y_j
    if ordered == ">":
        keep = higher > 0
    elif ordered == ">=":
        keep = (higher >= 0) & ~torch.eye(len(s), dtype=torch.bool)
    else:  # reversed: y_i < y_j
        keep = higher < 0
    logits = difference[keep]  # one per compared (i, j)
    if combine == "logsumexp":  # without the "1 +"
        return torch.logsumexp(logits, dim=0)
    if combine == "naive":  # log(1 + Σ exp), overflowing for large logits
        return torch.log1p(torch.exp(logits).sum())
    if combine == "mean of pairs":
        return F.softplus(logits).mean()
    return torch.logsumexp(torch.cat((s.new_zeros(1), logits)), dim=0)


def _cosent_mistakes() -> tuple[Mistake, ...]:
    return (
        Mistake("The order is reversed: a pair (i, j) is penalised when y_i > y_j by "
                "exp(scale·(s_j - s_i)): it grows when the LOWER-scored pair j is more similar.",
                lambda a: _cosent_variant(a, ordered="reversed")),
        Mistake("You compared pairs with EQUAL scores too: only pairs with y_i > y_j (strictly) "
                "count; ties say nothing about the order.",
                lambda a: _cosent_variant(a, ordered=">=")),
        Mistake("The '1 +' inside the log is missing: L = log(1 + Σ exp(...)); add a zero "
                "logit before the logsumexp (torch.cat((zeros(1), logits))).",
                lambda a: _cosent_variant(a, combine="logsumexp")),
        Mistake("The scale is missing: multiply the cosine similarities by `scale`.",
                lambda a: _cosent_variant(a, scale=1.0)),
        Mistake("The scale is fixed at 20: use the `scale` argument.",
                lambda a: _cosent_variant(a, scale=20.0)),
        Mistake("You used the dot product: the similarity is the cosine similarity of a[i] and "
                "b[i] (F.cosine_similarity(a, b) or normalised rows).",
                lambda a: _cosent_variant(a, similarity="dot")),
        Mistake("You averaged log(1 + exp(...)) over the ordered pairs: CoSENT puts all of them "
                "inside ONE log: log(1 + Σ exp(...)).",
                lambda a: _cosent_variant(a, combine="mean of pairs")),
        Mistake("exp() overflows at this scale (exp(710) is already inf in float64): compute "
                "log(1 + Σ exp(...)) as torch.logsumexp over the differences with an extra 0 "
                "logit for the '1 +'.", lambda a: _cosent_variant(a, combine="naive")),
        Mistake("You regressed the similarities onto the scores (that is CosineSimilarityLoss); "
                "CoSENT only ranks: log(1 + Σ_{y_i > y_j} exp(scale·(s_j - s_i))).",
                lambda a: F.mse_loss(F.cosine_similarity(a["a"], a["b"]), a["scores"])),
    )


def _cosent_cases() -> list[Case]:
    randn = _generator(53)
    a = randn(6, 8)
    b = a + randn(6, 8)
    scores = torch.rand(6, generator=torch.Generator().manual_seed(5), dtype=DTYPE)
    angles = _float([0.1, 0.6, 1.1, 1.6])  # decreasing cosine, with decreasing scores below
    ordered_a = torch.zeros(4, 3, dtype=DTYPE)
    ordered_a[:, 0] = 1.0
    ordered_b = torch.stack((angles.cos(), angles.sin(), torch.zeros(4, dtype=DTYPE)), dim=1)
    same = randn(5, 4)
    near = randn(5, 4)
    unrelated = randn(6, 8)  # similarities to a spread over roughly [-0.6, 0.6]
    return [
        _case("random batch", "6 random pairs in 8 dimensions with distinct scores in [0, 1].",
              ("a", "b"), a=a, b=b, scores=scores, scale=20.0),
        _case("another scale", "the same batch with scale=2.0: the scale argument must be "
              "used.", ("a", "b"), a=a, b=b, scores=scores, scale=2.0),
        _case("ties in the scores", "pairs 0 and 1 have the same score, and so do 2 and 3: "
              "pairs with equal scores must not be compared.", ("a", "b"), a=a, b=b,
              scores=_float([0.8, 0.8, 0.3, 0.3, 0.5, 0.1]), scale=20.0),
        _case("all scores equal", "nothing to rank: no (i, j) with y_i > y_j, so the loss is "
              "log(1 + 0) = 0 and the gradient 0.", ("a", "b"), a=a, b=b,
              scores=torch.full((6,), 0.5, dtype=DTYPE), scale=20.0),
        _case("batch of one", "a single pair: nothing to compare, the loss is 0.", ("a", "b"),
              a=randn(1, 4), b=randn(1, 4), scores=_float([0.7]), scale=20.0),
        _case("scores outside [0, 1]", "negative and large scores (-3 to 7): only their order "
              "matters.", ("a", "b"), a=a, b=b, scores=_float([-3.0, 7.0, 0.0, -1.5, 2.0, 5.0]),
              scale=20.0),
        _case("0/1 labels", "binary labels: every positive pair should be more similar than "
              "every negative pair.", ("a", "b"), a=a, b=b,
              scores=_float([1.0, 0.0, 0.0, 1.0, 1.0, 0.0]), scale=20.0),
        _case("already in order", "similarities decrease exactly as the scores do, 0.5 apart: "
              "every term is small, the loss is close to (not exactly) 0.", ("a", "b"),
              a=ordered_a, b=ordered_b, scores=_float([0.9, 0.6, 0.3, 0.0]), scale=20.0),
        _case("identical embeddings", "a[i] == b[i] for every pair: every similarity is 1, so "
              "the loss is log(1 + number of ordered pairs).", ("a", "b"), a=same,
              b=same.clone(), scores=_float([0.1, 0.4, 0.2, 0.9, 0.6]), scale=20.0),
        _case("large scale", "scale=2000 and scores in the reverse order of the similarities: "
              "exp(scale·(s_j - s_i)) overflows unless you use logsumexp.", ("a", "b"), a=a,
              b=unrelated, scores=-F.cosine_similarity(a, unrelated), scale=2000.0),
        _case("near-duplicate rows", "pairs 0 and 1 are within 1e-6 of each other but have "
              "different scores.", ("a", "b"), a=torch.cat((near[:1], near[:1] + 1e-6
                                                            * randn(1, 4), near[2:])),
              b=torch.cat((near[:1] + 1, near[:1] + 1, near[2:] - 1)),
              scores=_float([0.9, 0.2, 0.5, 0.4, 0.7]), scale=20.0),
    ]


# ------------------------------------------------------------------------------------ Matryoshka
class InnerLoss:
    """The ``loss_fn`` handed to a student's matryoshka(): ``loss_fn(anchors, positives)``.

    Wraps one of our losses (``self.loss``, used by the reference MatryoshkaLoss) and, for losses
    that need them, fixed ``labels`` of the batch.
    """

    def __init__(self, loss: losses.base.EmbeddingLoss, description: str,
                 labels: Tensor | None = None) -> None:
        self.loss = loss
        self.description = description
        self.labels = labels

    def __call__(self, anchors: Tensor, positives: Tensor) -> Tensor:
        """The wrapped loss of (B, d) anchors and positives, any d."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.loss.compute_loss_from_embeddings([anchors, positives], self.labels)

    def __repr__(self) -> str:
        return self.description


def _matryoshka_reference(args: dict[str, Any]) -> Tensor:
    inner: InnerLoss = args["loss_fn"]
    loss = losses.MatryoshkaLoss(None, inner.loss, list(args["dims"]), list(args["weights"]))
    return loss.compute_loss_from_embeddings([args["anchors"], args["positives"]], inner.labels)


def _matryoshka_rule(args: dict[str, Any], cut: Callable[[Tensor, int], Tensor],
                     combine: str = "sum") -> Tensor:
    """Σ_k w_k · loss_fn(cut(anchors, d_k), cut(positives, d_k)), or a wrong combination."""
    loss_fn, dims, weights = args["loss_fn"], args["dims"], args["weights"]
    terms = torch.stack([loss_fn(cut(args["anchors"], d), cut(args["positives"], d))
                         for d in dims])
    w = _float(list(weights))
    if combine == "weighted mean":
        return (w * terms).sum() / w.sum()
    if combine == "unweighted":
        return terms.sum()
    if combine == "mean":
        return (w * terms).mean()
    if combine == "full only":
        return loss_fn(cut(args["anchors"], max(dims)), cut(args["positives"], max(dims)))
    return (w * terms).sum()


def _matryoshka_mistakes() -> tuple[Mistake, ...]:
    def right(x: Tensor, d: int) -> Tensor:
        return F.normalize(x[:, :d], dim=-1)

    def rule(cut: Callable[[Tensor, int], Tensor] = right, combine: str = "sum"
             ) -> Callable[[dict[str, Any]], Tensor]:
        return lambda a: _matryoshka_rule(a, cut, combine)

    return (
        Mistake("You did not normalise: after cutting the first d coordinates, scale each row "
                "back to length 1 (F.normalize(x[:, :d], dim=-1)). With a dot-product loss_fn "
                "this changes the value.", rule(cut=lambda x, d: x[:, :d])),
        Mistake("You normalised BEFORE cutting: the cut prefix of a unit vector is not a unit "
                "vector. Cut first, then normalise.",
                rule(cut=lambda x, d: F.normalize(x, dim=-1)[:, :d])),
        Mistake("Off by one: the prefix of size d is x[:, :d] (coordinates 0 … d-1); you took "
                "d - 1 coordinates.", rule(cut=lambda x, d: F.normalize(x[:, :d - 1], dim=-1))),
        Mistake("Off by one: the prefix of size d is x[:, :d]; you took d + 1 coordinates.",
                rule(cut=lambda x, d: F.normalize(x[:, :d + 1], dim=-1))),
        Mistake("You took the LAST d coordinates: Matryoshka trains the FIRST d (x[:, :d]).",
                rule(cut=lambda x, d: F.normalize(x[:, -d:], dim=-1))),
        Mistake("You divided by the sum of the weights: the loss is the weighted SUM "
                "Σ w_k · loss_k, not a weighted mean.", rule(combine="weighted mean")),
        Mistake("The weights are missing: multiply each dimension's loss by its weight.",
                rule(combine="unweighted")),
        Mistake("You averaged over the dimensions: the loss is the weighted sum, not divided by "
                "the number of dims.", rule(combine="mean")),
        Mistake("Only the full dimension counts in your loss: add one term per dim in `dims`.",
                rule(combine="full only")),
    )


def _matryoshka_cases() -> list[Case]:
    randn = _generator(71)
    anchors = randn(6, 8)
    positives = anchors + 0.7 * randn(6, 8)
    mnrl = InnerLoss(losses.MultipleNegativesRankingLoss(None, scale=20.0),
                     "MNRL(scale=20, cosine similarity)")
    dot = InnerLoss(losses.MultipleNegativesRankingLoss(None, scale=1.0,
                                                        similarity_fct=dot_score),
                    "MNRL(scale=1, dot product): sensitive to the length of the rows")
    cosent = InnerLoss(losses.CoSENTLoss(None, scale=20.0),
                       "CoSENT(scale=20) with scores [0.9, 0.1, 0.5, 0.7, 0.3, 0.2]",
                       labels=_float([0.9, 0.1, 0.5, 0.7, 0.3, 0.2]))
    single = InnerLoss(losses.CosineSimilarityLoss(None),
                       "CosineSimilarityLoss with gold score 0.3", labels=_float([0.3]))
    near = randn(5, 8)
    return [
        _case("random batch", "6 pairs in 8 dimensions, dims (8, 4, 2), weights 1; loss_fn is "
              "MultipleNegativesRankingLoss.", PAIR, loss_fn=mnrl, anchors=anchors,
              positives=positives, dims=(8, 4, 2), weights=(1.0, 1.0, 1.0)),
        _case("dot-product loss", "loss_fn scores with the dot product, so whether (and when) "
              "you normalise changes the value.", PAIR, loss_fn=dot, anchors=anchors,
              positives=positives, dims=(8, 4, 2), weights=(1.0, 1.0, 1.0)),
        _case("unequal weights", "weights (1, 0.5, 0.25): the weighted SUM of the per-dim "
              "losses.", PAIR, loss_fn=dot, anchors=anchors, positives=positives,
              dims=(8, 4, 2), weights=(1.0, 0.5, 0.25)),
        _case("dims smallest first", "dims (2, 4, 8) with weights (0.25, 0.5, 1): each weight "
              "belongs to the dim at the same position.", PAIR, loss_fn=dot, anchors=anchors,
              positives=positives, dims=(2, 4, 8), weights=(0.25, 0.5, 1.0)),
        _case("full dimension only", "dims (8,): just loss_fn on the normalised embeddings.",
              PAIR, loss_fn=dot, anchors=anchors, positives=positives, dims=(8,),
              weights=(2.0,)),
        _case("one coordinate", "dims (8, 1): the 1-dimensional prefix normalises to ±1.", PAIR,
              loss_fn=dot, anchors=anchors, positives=positives, dims=(8, 1),
              weights=(1.0, 1.0)),
        _case("another loss_fn", "loss_fn is CoSENT with fixed scores: any loss of (anchors, "
              "positives) must work.", PAIR, loss_fn=cosent, anchors=anchors,
              positives=positives, dims=(8, 3), weights=(1.0, 0.5)),
        _case("batch of one", "a single pair; loss_fn is CosineSimilarityLoss with gold score "
              "0.3.", PAIR, loss_fn=single, anchors=anchors[:1], positives=positives[:1],
              dims=(8, 4), weights=(1.0, 1.0)),
        _case("large embeddings", "coordinates around ±10000: only normalisation keeps a "
              "dot-product loss finite.", PAIR, loss_fn=dot, anchors=anchors * 1e4,
              positives=positives * 1e4, dims=(8, 4, 2), weights=(1.0, 1.0, 1.0)),
        _case("near-duplicate rows", "rows 0 and 1 of the anchors are within 1e-6 of each "
              "other.", PAIR, loss_fn=dot,
              anchors=torch.cat((near[:1], near[:1] + 1e-6 * randn(1, 8), near[2:])),
              positives=near + 0.5 * randn(5, 8), dims=(8, 4), weights=(1.0, 1.0)),
    ]


# ------------------------------------------------------------------------------------ checkers
def check_triplet_loss(function: Callable[..., Any]) -> CheckResult:
    """Check ``triplet_loss(anchors, positives, negatives, margin=5.0)`` against TripletLoss."""
    return run_checks(_TRIPLET_EXERCISE, function)


def check_batch_hard_triplet_loss(function: Callable[..., Any]) -> CheckResult:
    """Check ``batch_hard_triplet_loss(embeddings, labels, margin=5.0)`` (BatchHardTripletLoss)."""
    return run_checks(_BATCH_HARD_EXERCISE, function)


def check_mnrl(function: Callable[..., Any]) -> CheckResult:
    """Check ``mnrl(anchors, positives, scale=20.0)`` against MultipleNegativesRankingLoss."""
    return run_checks(_MNRL_EXERCISE, function)


def check_cosent(function: Callable[..., Any]) -> CheckResult:
    """Check ``cosent(a, b, scores, scale=20.0)`` against CoSENTLoss."""
    return run_checks(_COSENT_EXERCISE, function)


def check_matryoshka(function: Callable[..., Any]) -> CheckResult:
    """Check ``matryoshka(loss_fn, anchors, positives, dims, weights)`` against MatryoshkaLoss."""
    return run_checks(_MATRYOSHKA_EXERCISE, function)


_TRIPLET_EXERCISE = Exercise(
    name="triplet_loss",
    title="TripletLoss",
    loss="TripletLoss",
    signature="def triplet_loss(anchors, positives, negatives, margin=5.0):",
    summary="mean over triplets of max(0, ‖a - p‖ - ‖a - n‖ + margin)",
    checker=check_triplet_loss,
    make_cases=_triplet_cases,
    reference=_triplet_reference,
    alternatives=(_triplet_pairwise_distance,),
    mistakes=_triplet_mistakes(),
    formula="Recheck the formula: L = mean_i max(0, ‖a_i - p_i‖ - ‖a_i - n_i‖ + margin), with "
            "the Euclidean distance of row i to row i.",
    gradient_hint="Compute the distances from the inputs with torch operations only.",
)
_BATCH_HARD_EXERCISE = Exercise(
    name="batch_hard_triplet_loss",
    title="BatchHardTripletLoss",
    loss="BatchHardTripletLoss",
    signature="def batch_hard_triplet_loss(embeddings, labels, margin=5.0):",
    summary="per anchor: farthest positive vs nearest negative, hinge, mean",
    checker=check_batch_hard_triplet_loss,
    make_cases=_batch_hard_cases,
    reference=_batch_hard_reference,
    mistakes=_batch_hard_mistakes(),
    formula="Recheck the formula: for every anchor a, hp = max distance to another example of "
            "its class (0 if none), hn = min distance to an example of another class; "
            "L = mean_a max(0, hp - hn + margin), with Euclidean distances (torch.cdist).",
    gradient_hint="Take the hardest distances with .max(dim=1)/.min(dim=1) (or amax/amin) on "
                  "the distance matrix itself, so the gradient flows to the chosen rows.",
)
_MNRL_EXERCISE = Exercise(
    name="mnrl",
    title="MultipleNegativesRankingLoss",
    loss="MultipleNegativesRankingLoss",
    signature="def mnrl(anchors, positives, scale=20.0):",
    summary="cross-entropy of scale·cos(anchors, positives) with target i for row i",
    checker=check_mnrl,
    make_cases=_mnrl_cases,
    reference=_mnrl_reference,
    mistakes=_mnrl_mistakes(),
    formula="Recheck the formula: S = scale · cos(anchors, positives) (a B x B matrix); "
            "L = mean_i [ log Σ_j exp(S[i, j]) - S[i, i] ] = F.cross_entropy(S, arange(B)).",
)
_COSENT_EXERCISE = Exercise(
    name="cosent",
    title="CoSENTLoss",
    loss="CoSENTLoss",
    signature="def cosent(a, b, scores, scale=20.0):",
    summary="log(1 + Σ_{y_i > y_j} exp(scale·(cos_j - cos_i)))",
    checker=check_cosent,
    make_cases=_cosent_cases,
    reference=_cosent_reference,
    mistakes=_cosent_mistakes(),
    formula="Recheck the formula: s_i = scale · cos(a_i, b_i); "
            "L = log(1 + Σ over (i, j) with scores[i] > scores[j] of exp(s_j - s_i)), computed "
            "as a logsumexp with an extra 0 logit.",
)
_MATRYOSHKA_EXERCISE = Exercise(
    name="matryoshka",
    title="MatryoshkaLoss",
    loss="MatryoshkaLoss",
    signature="def matryoshka(loss_fn, anchors, positives, dims, weights):",
    summary="Σ_k w_k · loss_fn(normalize(anchors[:, :d_k]), normalize(positives[:, :d_k]))",
    checker=check_matryoshka,
    make_cases=_matryoshka_cases,
    reference=_matryoshka_reference,
    mistakes=_matryoshka_mistakes(),
    formula="Recheck the formula: L = Σ_k w_k · loss_fn(normalize(anchors[:, :d_k]), "
            "normalize(positives[:, :d_k])), normalising each row after cutting.",
)

EXERCISES: tuple[Exercise, ...] = (
    _TRIPLET_EXERCISE,
    _BATCH_HARD_EXERCISE,
    _MNRL_EXERCISE,
    _COSENT_EXERCISE,
    _MATRYOSHKA_EXERCISE,
)
