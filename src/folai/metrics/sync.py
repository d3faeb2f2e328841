"""Temporal-alignment metrics on waveforms, as the paper and ``shared/bench/README.md`` define them.

- :func:`e_l1`: mono 44.1 kHz, ``librosa.feature.rms(frame_length=512, hop_length=128, center=True,
  pad_mode="reflect")`` of both signals, mean absolute difference; the generated signal is
  zero-padded or cut to the reference length. No normalisation.
- :func:`onset_prf`: ``librosa.onset.onset_detect`` (default parameters, 44.1 kHz mono, times in
  seconds) on both signals, greedy one-to-one matching of the closest pairs within ``tolerance``
  seconds; precision = matches / generated onsets, recall = matches / reference onsets.

These reproduce the published systems' figures in ``shared/bench/README.md`` (checked by
``benchmarks/bench_clips.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EVAL_SR = 44100


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(N,) or (C, N) -> (N,) float32 channel mean."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 2:
        a = a.mean(axis=0)
    if a.ndim != 1:
        raise ValueError(f"audio must be (N,) or (C, N), got shape {np.shape(audio)}")
    return a


def _prepare(audio: np.ndarray, sr: int) -> np.ndarray:
    a = to_mono(audio)
    if sr != EVAL_SR:
        from .audio import resample

        a = resample(a, sr, EVAL_SR)  # the same resampler as `folai evaluate` (polyphase)
    return a


def eval_rms(audio: np.ndarray, sr: int = EVAL_SR) -> np.ndarray:
    """(frames,) RMS curve used by the evaluation E-L1 (mono 44.1 kHz, 512/128, centred, reflect)."""
    import librosa

    y = _prepare(audio, sr)
    return librosa.feature.rms(y=y, frame_length=512, hop_length=128, center=True, pad_mode="reflect")[0]


def e_l1(generated: np.ndarray, reference: np.ndarray, sr: int = EVAL_SR, ref_sr: int | None = None) -> float:
    """E-L1 between generated and reference audio (SPEC evaluation definition)."""
    g = _prepare(generated, sr)
    r = _prepare(reference, ref_sr or sr)
    if len(r) == 0:
        raise ValueError("reference audio is empty")
    g = g[: len(r)] if len(g) >= len(r) else np.pad(g, (0, len(r) - len(g)))
    return float(np.mean(np.abs(eval_rms(g) - eval_rms(r))))


#: a signal whose peak is under this (-80 dBFS) is silence: librosa normalises the onset strength,
#: and a reference whose stereo channels cancel to +-1 LSB had given 10 "onsets" of rounding noise
#: (found by a review)
SILENT_PEAK = 1e-4


def is_silent(audio: np.ndarray) -> bool:
    """Whether ``audio``'s peak is under :data:`SILENT_PEAK` (-80 dBFS)."""
    a = np.asarray(audio)
    return a.size == 0 or float(np.max(np.abs(a))) < SILENT_PEAK


def detect_onsets(audio: np.ndarray, sr: int = EVAL_SR) -> np.ndarray:
    """Onset times in seconds (librosa defaults on mono 44.1 kHz); none in silence (:func:`is_silent`)."""
    import librosa

    y = _prepare(audio, sr)
    if is_silent(y):
        return np.zeros(0)
    return librosa.onset.onset_detect(y=y, sr=EVAL_SR, units="time")


def match_onsets(reference: np.ndarray, generated: np.ndarray, tolerance: float = 0.05) -> list[tuple[int, int]]:
    """Greedy one-to-one matching: closest pairs first, each onset used at most once."""
    ref = np.asarray(reference, dtype=np.float64)
    gen = np.asarray(generated, dtype=np.float64)
    if ref.size == 0 or gen.size == 0:
        return []
    d = np.abs(ref[:, None] - gen[None, :])
    ii, jj = np.nonzero(d <= tolerance)
    order = np.lexsort((jj, ii, d[ii, jj]))
    used_r: set[int] = set()
    used_g: set[int] = set()
    pairs = []
    for k in order:
        i, j = int(ii[k]), int(jj[k])
        if i in used_r or j in used_g:
            continue
        used_r.add(i)
        used_g.add(j)
        pairs.append((i, j))
    return pairs


@dataclass
class OnsetScore:
    precision: float
    recall: float
    f1: float
    n_reference: int
    n_generated: int
    n_matched: int


def onset_prf_times(reference: np.ndarray, generated: np.ndarray, tolerance: float = 0.05) -> OnsetScore:
    """Precision / recall / F1 of generated onset times against reference onset times."""
    m = len(match_onsets(reference, generated, tolerance))
    ng, nr = len(generated), len(reference)
    p = m / ng if ng else 0.0
    r = m / nr if nr else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return OnsetScore(p, r, f, nr, ng, m)


def onset_prf(
    generated: np.ndarray, reference: np.ndarray, sr: int = EVAL_SR, ref_sr: int | None = None, tolerance: float = 0.05
) -> OnsetScore:
    """Onset precision / recall / F1 of generated audio against reference audio within ±tolerance s,
    over the reference's span (generated audio past its end is cut, as :func:`e_l1` cuts it)."""
    generated = within_reference(generated, sr, reference, ref_sr or sr)
    return onset_prf_times(detect_onsets(reference, ref_sr or sr), detect_onsets(generated, sr), tolerance)


def within_reference(generated: np.ndarray, sr: int, reference: np.ndarray, ref_sr: int) -> np.ndarray:
    """``generated`` cut to the reference's duration (its last axis; shorter audio as it is). The
    onset scores had counted onsets past the reference's end, where E-L1 cuts: a system writing a
    longer file lost onset precision only (found by a review)."""
    n = int(round(np.asarray(reference).shape[-1] * sr / ref_sr))
    g = np.asarray(generated)
    return g[..., :n] if g.shape[-1] > n else g
