"""benchmarks/step_ceiling.py: the oracle finds a train that is there, and is a bound, not a fit
of anything (an irregular recording scores below 1)."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ceiling(benchmark_script):
    return benchmark_script("step_ceiling")


def test_regular_steps_are_found(ceiling):
    on = np.arange(0.13, 2.0, 0.5)
    f1, (per, ph, _) = ceiling.best_train(on, 2.0, 1)
    assert f1 == pytest.approx(1.0)  # (any period within the +-50 ms tolerance of 0.5 s over 4 steps)
    assert np.all(np.abs(np.arange(ph, 2.0, per)[:4] - on) <= 0.05)
    # heel and toe 90 ms apart: two sounds per step find them, one sound per step only half
    on2 = np.sort(np.concatenate([on, on + 0.09]))
    assert ceiling.best_train(on2, 2.0, 2)[0] == pytest.approx(1.0)
    assert ceiling.best_train(on2, 2.0, 1)[0] < 0.75


def test_irregular_onsets_stay_below_one(ceiling):
    on = np.sort(np.random.default_rng(3).uniform(0, 2.0, 16))
    f1, _ = ceiling.best_train(on, 2.0, 1)
    assert 0.0 < f1 < 0.8
