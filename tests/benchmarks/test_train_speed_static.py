"""benchmarks/train_speed_static.py: how steps per second are counted (no timing asserted)."""

from __future__ import annotations

import pytest

from benchmarks.train_speed_static import steps_per_second


def test_intervals_ending_in_an_evaluation_are_left_out():
    # Steps end at 0, 1, 2, 5 (evaluated: 3 s of it was evaluation) and 6.
    times = [0.0, 1.0, 2.0, 5.0, 6.0]
    evaluated = [True, False, False, True, False]
    assert steps_per_second(times, evaluated) == pytest.approx(1.0)
    assert steps_per_second([0.0, 0.5, 1.0], [False] * 3) == pytest.approx(2.0)


def test_too_few_steps_or_mismatched_flags_are_refused():
    with pytest.raises(ValueError, match="at least two consecutive steps"):
        steps_per_second([0.0], [False])
    with pytest.raises(ValueError, match="at least two consecutive steps"):
        steps_per_second([0.0, 1.0], [False, True])
    with pytest.raises(ValueError, match="one evaluated flag per step time"):
        steps_per_second([0.0, 1.0], [False])
