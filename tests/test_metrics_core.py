"""Metrics on hand-made signals with known answers: E-L1, onsets, AP, Frechet, acc@k, bootstrap."""

import numpy as np
import pytest

from folai.errors import FolaiError
from folai.metrics.envelopes import acc_at_k, acc_tolerance
from folai.metrics.frechet import FrechetDistance, frechet_distance, gaussian_stats
from folai.metrics.onsets import OnsetMetric, average_precision, onset_ap
from folai.metrics.report import bootstrap_mean
from folai.metrics.sync import e_l1, onset_prf

SR = 44100


def clicks(times, n=SR * 4, width=200, amp=0.8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.zeros(n, np.float32)
    for t in times:
        i = int(t * SR)
        y[i:i + width] = amp * rng.standard_normal(min(width, n - i)).astype(np.float32) * np.exp(-np.arange(min(width, n - i)) / 60)
    return y


TIMES = [0.5, 1.1, 1.7, 2.3, 2.9, 3.5]


# ---- E-L1
def test_e_l1_constant_signals_is_difference_of_levels():
    a, b = 0.3, 0.1
    ref = np.full(SR, a, np.float32)
    assert e_l1(np.full(SR, b, np.float32), ref, SR) == pytest.approx(a - b, abs=1e-6)
    assert e_l1(np.zeros(SR, np.float32), ref, SR) == pytest.approx(a, abs=1e-6)
    assert e_l1(ref.copy(), ref, SR) == 0.0


def test_e_l1_cuts_or_pads_generated_to_reference_length():
    ref = np.full(SR, 0.25, np.float32)
    longer = np.concatenate([ref, np.ones(SR, np.float32)])   # the extra second is ignored
    assert e_l1(longer, ref, SR) == pytest.approx(0.0, abs=1e-7)
    shorter = ref[: SR // 2]   # zero-padded: half of the frames differ by 0.25 (edges blur a few)
    assert e_l1(shorter, ref, SR) == pytest.approx(0.125, abs=2e-3)


# ---- onsets
def test_onset_prf_exact_shifted_and_missing():
    ref = clicks(TIMES)
    s = onset_prf(ref, ref, SR)
    assert (s.precision, s.recall, s.f1) == (1.0, 1.0, 1.0)
    assert s.n_reference == len(TIMES)
    near = onset_prf(clicks([t + 0.02 for t in TIMES], seed=1), ref, SR)   # within +-50 ms
    assert near.f1 == 1.0
    far = onset_prf(clicks([t + 0.2 for t in TIMES], seed=1), ref, SR)     # all outside tolerance
    assert far.f1 == 0.0 and far.n_generated == len(TIMES)
    half = onset_prf(clicks(TIMES[::2]), ref, SR)
    assert half.precision == 1.0 and half.recall == pytest.approx(0.5) and half.f1 == pytest.approx(2 / 3)


def test_average_precision_by_hand():
    ref = np.array([1.0, 2.0])
    # ranked: hit (P=1), miss, hit (P=2/3) -> AP = (1 + 2/3) / 2
    ap = average_precision(ref, np.array([1.01, 5.0, 2.02]), np.array([0.9, 0.8, 0.7]))
    assert ap == pytest.approx((1 + 2 / 3) / 2)
    # the same candidates ranked best-first give 1
    assert average_precision(ref, np.array([1.01, 2.02, 5.0]), np.array([0.9, 0.8, 0.1])) == pytest.approx(1.0)
    assert average_precision(np.array([]), np.array([1.0]), np.array([1.0])) is None
    assert average_precision(ref, np.array([]), np.array([])) == 0.0


def test_onset_ap_perfect_and_silent():
    ref = clicks(TIMES)
    assert onset_ap(ref, ref) == pytest.approx(1.0)
    assert onset_ap(np.zeros_like(ref), ref) == 0.0


def test_onset_metric_leaves_out_clips_without_reference_onsets():
    m = OnsetMetric()
    assert m.update(clicks(TIMES), clicks(TIMES))["onset_f1"] == 1.0
    assert m.update(clicks(TIMES), np.zeros(SR * 4, np.float32)) is None
    out = m.compute()
    assert m.undefined == 1 and out["onset_f1"] == 1.0 and not np.isnan(out["onset_ap"])


# ---- Frechet distance against closed forms
def test_frechet_1d_closed_form():
    # d = (m1 - m2)^2 + (s1 - s2)^2 for variances s1^2, s2^2
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)


def test_frechet_commuting_and_singular_covariances():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    l1 = np.array([4.0, 1.0, 0.25, 0.0, 0.0, 2.0])   # rank-deficient
    l2 = np.array([1.0, 1.0, 1.0, 0.0, 9.0, 0.5])
    s1, s2 = (q * l1) @ q.T, (q * l2) @ q.T
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_general_matches_scipy_sqrtm_on_well_conditioned_case():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    s1, s2 = a @ a.T + np.eye(5), b @ b.T + np.eye(5)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)


def test_frechet_near_singular_from_few_samples_is_finite_and_nonnegative():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 64)), rng.standard_normal((5, 64)) + 1.0   # 5 samples in 64 dims
    d = frechet_distance(*gaussian_stats(x), *gaussian_stats(y))
    assert np.isfinite(d) and d > 0


def test_frechet_metric_update_compute_and_sample_estimate():
    rng = np.random.default_rng(3)
    m = FrechetDistance()
    shift = np.array([1.0, -2.0, 0.5])
    for _ in range(4):
        m.update(generated=rng.standard_normal((5000, 3)) + shift, reference=rng.standard_normal((5000, 3)))
    assert m.compute() == pytest.approx(float(shift @ shift), abs=0.05)
    m.reset()
    with pytest.raises(FolaiError, match="both"):
        m.compute()


def test_frechet_bad_input_messages():
    with pytest.raises(FolaiError, match="at least 2"):
        gaussian_stats(np.zeros((1, 3)))
    with pytest.raises(FolaiError, match="NaN"):
        gaussian_stats(np.full((3, 2), np.nan))
    with pytest.raises(FolaiError, match="equal size"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# ---- acc@k
def test_acc_at_k_and_tolerance_by_hand():
    logits = np.array([[5, 4, 3, 2, 1], [1, 2, 3, 4, 5], [0, 9, 8, 0, 0]], float)
    target = np.array([0, 3, 2])
    assert acc_at_k(logits, target, 1) == pytest.approx(1 / 3)
    assert acc_at_k(logits, target, 2) == pytest.approx(1.0)
    assert acc_tolerance(np.array([0, 4, 1]), target, 1) == pytest.approx(1.0)
    assert acc_tolerance(np.array([0, 4, 1]), target, 0) == pytest.approx(1 / 3)


# ---- bootstrap
def test_bootstrap_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(4).normal(1.0, 0.5, 50)
    a, b = bootstrap_mean(x, 500, seed=7), bootstrap_mean(x, 500, seed=7)
    assert a == b and a[0] < x.mean() < a[1]
    assert bootstrap_mean([1.0]) is None
