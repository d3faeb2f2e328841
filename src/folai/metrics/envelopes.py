"""Metrics of predicted envelopes (stage 1) against the envelope of the reference audio.

- E-L1 (SPEC stage 1): mean |rms_pred - rms_gt| over frames; rms_pred decoded from the
  predicted class (mu-law, 64 classes) when logits are given, else the predicted values as read.
- acc@k: share of frames whose target class (unsmoothed) is among the k highest logits.
- acc+-t: share of frames whose argmax class is within t classes of the target.

If ``folai.metrics.timing`` (the stage-1 helper's module) is present its ``acc_at_k`` is used;
otherwise the definition below (identical in meaning) is.

Prediction files: envelope CSV (``time_s,rms``; gives E-L1, acc@1 and acc+-t from the
quantised values) or ``.npy`` logits of shape (T, 64) (gives all of them, acc@5/acc@10 included).
Ground truth: ``Envelope.from_audio`` of the reference audio (SPEC: 16 kHz, peak-normalised,
RMS 512/128, smoothed). Predictions are cut or zero-padded to the ground-truth length.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..envelope import DEFAULT, Envelope, classes_to_rms, mu_classes
from ..errors import FolaiError

ENVELOPE_EXTS = {".csv", ".npy"}


def acc_at_k(logits: np.ndarray, target: np.ndarray, k: int) -> float:
    """Top-k accuracy. logits: (T, n_classes); target: (T,) int classes."""
    try:  # prefer the stage-1 module's implementation when it exists
        from .timing import acc_at_k as _acc  # type: ignore

        return float(_acc(logits, target, k))
    except (ImportError, AttributeError, TypeError):
        pass
    logits = np.asarray(logits, dtype=np.float64)
    target = np.asarray(target).astype(np.int64)
    if logits.ndim != 2 or logits.shape[0] != target.shape[0]:
        raise FolaiError(f"logits must be (T, classes) with T = {target.shape[0]}, got {logits.shape}")
    k = min(k, logits.shape[1])
    topk = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(topk == target[:, None], axis=1)))


def acc_tolerance(pred_classes: np.ndarray, target: np.ndarray, t: int) -> float:
    """Share of frames with |predicted class - target class| <= t."""
    return float(np.mean(np.abs(np.asarray(pred_classes, np.int64) - np.asarray(target, np.int64)) <= t))


def _fit(x: np.ndarray, n: int, axis: int = 0) -> np.ndarray:
    if x.shape[axis] >= n:
        return np.take(x, np.arange(n), axis=axis)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, n - x.shape[axis])
    return np.pad(x, pad)


def load_prediction(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """(rms (T,), logits (T, C) or None) from an envelope CSV or a .npy logits file."""
    p = Path(path)
    if p.suffix.lower() == ".npy":
        logits = np.load(p, allow_pickle=False)
        if logits.ndim != 2 or logits.shape[1] != DEFAULT.n_classes:
            raise FolaiError(f"{p}: envelope logits must be (frames, {DEFAULT.n_classes}), got {logits.shape}")
        if not np.isfinite(logits).all():
            raise FolaiError(f"{p}: envelope logits contain NaN or inf")
        rms = classes_to_rms(np.argmax(logits, axis=1), DEFAULT.mu)
        return np.asarray(rms, np.float64).reshape(-1), logits
    env = Envelope.load_csv(p)
    if abs(env.rate - DEFAULT.rate) > 1e-6:
        env = env.resample(DEFAULT.rate)
    return env.mono.astype(np.float64).reshape(-1), None


@dataclass
class EnvelopeMetric:
    """Stateful stage-1 metrics: ``update(prediction_path, reference_audio_16k)``, ``compute()``."""

    ks: tuple = (1, 5, 10)
    tolerances: tuple = (1, 2)
    per_clip: list = field(default_factory=list)

    def reset(self) -> None:
        self.per_clip.clear()

    def score(self, prediction: str | os.PathLike, reference_16k: np.ndarray) -> dict:
        gt = Envelope.from_audio(reference_16k, DEFAULT.sr).mono.astype(np.float64).reshape(-1)
        rms, logits = load_prediction(prediction)
        n = gt.shape[0]
        target = mu_classes(gt, DEFAULT.mu).reshape(-1)
        out: dict = {}
        if logits is not None:
            logits = _fit(logits, n)
            for k in self.ks:
                out[f"acc@{k}"] = acc_at_k(logits, target, k)
            pred_cls = np.argmax(logits, axis=1)
        else:
            rms = _fit(rms, n)
            pred_cls = mu_classes(np.clip(rms, 0, 1), DEFAULT.mu).reshape(-1)
            out["acc@1"] = float(np.mean(pred_cls == target))
        rms = _fit(rms, n)
        out["env_e_l1"] = float(np.mean(np.abs(rms - gt)))
        for t in self.tolerances:
            out[f"acc+-{t}"] = acc_tolerance(pred_cls, target, t)
        return out

    def update(self, prediction, reference_16k) -> dict:
        r = self.score(prediction, reference_16k)
        self.per_clip.append(r)
        return r

    def compute(self) -> dict:
        keys = sorted({k for c in self.per_clip for k in c})
        return {k: float(np.mean([c[k] for c in self.per_clip if k in c])) for k in keys}
