"""Onset average precision and a stateful onset metric.

Onset average precision (AP) scores the generated onset *strength* as a detector of the
reference onsets, independent of one detection threshold:

1. candidates: every local maximum of the generated signal's onset-strength envelope
   (``librosa.onset.onset_strength`` with default parameters, normalised to [0, 1] as
   ``onset_detect`` does), picked with ``onset_detect``'s default windows but no threshold;
2. candidates are ranked by strength; walking down the list, a candidate is a true positive if
   an unmatched reference onset (``librosa.onset.onset_detect`` defaults, as for P/R/F1) lies
   within ``tolerance`` seconds (the closest such one is taken), otherwise a false positive;
3. AP = sum over true positives of precision-at-that-rank, divided by the number of reference
   onsets (the area under the interpolation-free precision/recall curve).

A perfect detector scores 1; AP is undefined (None) when the reference has no onsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .sync import EVAL_SR, detect_onsets, onset_prf_times, within_reference

HOP = 512  # librosa onset default hop


def onset_candidates(y: np.ndarray, sr: int = EVAL_SR) -> tuple[np.ndarray, np.ndarray]:
    """All peaks of the onset-strength envelope: (times (K,) s, strengths (K,) in [0, 1])."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.size == 0 or not np.any(y):
        return np.zeros(0), np.zeros(0)
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP)
    env = env - env.min()
    top = env.max()
    if top <= 0:
        return np.zeros(0), np.zeros(0)
    env = env / top
    from scipy.signal import find_peaks

    # local maxima at least onset_detect's ``wait`` (30 ms) apart, no threshold
    peaks, _ = find_peaks(np.concatenate([[0.0], env, [0.0]]), distance=max(1, int(0.03 * sr / HOP)))
    peaks = peaks - 1
    peaks = peaks[env[peaks] > 0]
    return librosa.frames_to_time(peaks, sr=sr, hop_length=HOP), env[peaks]


def average_precision(
    reference: np.ndarray, candidates: np.ndarray, scores: np.ndarray, tolerance: float = 0.05
) -> float | None:
    """AP of scored candidate onset times against reference onset times (None if no reference)."""
    ref = np.asarray(reference, dtype=np.float64)
    if ref.size == 0:
        return None
    cand = np.asarray(candidates, dtype=np.float64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    used = np.zeros(ref.size, dtype=bool)
    tp = 0
    ap = 0.0
    for rank, k in enumerate(order, start=1):
        d = np.abs(ref - cand[k])
        d[used] = np.inf
        j = int(np.argmin(d))
        if d[j] <= tolerance:
            used[j] = True
            tp += 1
            ap += tp / rank
    return ap / ref.size


def onset_ap(generated: np.ndarray, reference: np.ndarray, sr: int = EVAL_SR, tolerance: float = 0.05) -> float | None:
    """Onset AP of generated audio against reference audio, both mono at ``sr`` (= 44.1 kHz)."""
    ref = detect_onsets(reference, sr)
    times, strengths = onset_candidates(generated, sr) if sr == EVAL_SR else onset_candidates(_to_eval(generated, sr))
    return average_precision(ref, times, strengths, tolerance)


def _to_eval(y, sr):
    from .audio import resample

    return resample(y, sr, EVAL_SR)


@dataclass
class OnsetMetric:
    """Stateful onset P/R/F1/AP: ``update(generated, reference)`` per clip (mono 44.1 kHz arrays),
    ``compute()`` -> dict of clip means. Clips whose reference has no onset are counted in
    ``undefined`` and left out of the means (their F1/AP are undefined, not 0)."""

    tolerance: float = 0.05
    per_clip: list = field(default_factory=list)
    undefined: int = 0

    def reset(self) -> None:
        self.per_clip.clear()
        self.undefined = 0

    def score(self, generated: np.ndarray, reference: np.ndarray) -> dict | None:
        generated = within_reference(generated, EVAL_SR, reference, EVAL_SR)  # (the span E-L1 scores)
        ref = detect_onsets(reference, EVAL_SR)
        gen = detect_onsets(generated, EVAL_SR)
        if len(ref) == 0:
            return None
        s = onset_prf_times(ref, gen, self.tolerance)
        times, strengths = onset_candidates(generated, EVAL_SR)
        ap = average_precision(ref, times, strengths, self.tolerance)
        return {
            "onset_precision": s.precision, "onset_recall": s.recall, "onset_f1": s.f1, "onset_ap": ap,
            "n_onsets_reference": s.n_reference, "n_onsets_generated": s.n_generated, "n_onsets_matched": s.n_matched,
        }

    def update(self, generated: np.ndarray, reference: np.ndarray) -> dict | None:
        r = self.score(generated, reference)
        if r is None:
            self.undefined += 1
        else:
            self.per_clip.append(r)
        return r

    def compute(self) -> dict:
        keys = ("onset_precision", "onset_recall", "onset_f1", "onset_ap")
        if not self.per_clip:
            return {k: None for k in keys}
        return {k: float(np.mean([c[k] for c in self.per_clip])) for k in keys}
