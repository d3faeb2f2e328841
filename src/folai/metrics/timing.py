"""Stage-1 metrics: top-k class accuracy and envelope E-L1 (SPEC "Stage 1 video model").

- ``acc@k``: fraction of envelope frames whose *unsmoothed* target class is among the k largest
  logits of that frame (as in Video-Foley).
- ``acc+-t`` (tolerance accuracy): fraction of frames whose argmax class is within ``t`` classes of
  the target.
- ``E-L1``: mean |rms_pred - rms_gt| over frames, where rms_pred is decoded from the argmax class
  (``librosa.mu_expand(cls, mu=127, quantize=True)``) and rms_gt is the target envelope value.

Functions take numpy arrays or torch tensors; logits are (..., T, C), classes / rms (..., T).

Example::

    >>> import numpy as np
    >>> from folai.metrics.timing import acc_at_k, envelope_l1
    >>> logits = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])   # 2 frames, 3 classes
    >>> acc_at_k(logits, np.array([2, 1]), k=1), acc_at_k(logits, np.array([2, 1]), k=2)
    (0.0, 0.5)
    >>> round(envelope_l1(np.array([0.1, 0.5]), np.array([0.2, 0.2])), 3)
    0.2
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..envelope import classes_to_rms

__all__ = [
    "acc_at_k",
    "tolerance_accuracy",
    "envelope_l1",
    "decode_logits",
    "TimingMetrics",
]


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _check(logits: np.ndarray, target: np.ndarray) -> None:
    if logits.shape[:-1] != target.shape:
        raise ValueError(f"logits {logits.shape} and target classes {target.shape} disagree (logits are (..., T, C))")


def acc_at_k(logits: Any, target: Any, k: int = 1) -> float:
    """Top-k accuracy over all frames: is the target class among the k highest logits?"""
    lg, tg = _np(logits), _np(target).astype(np.int64)
    _check(lg, tg)
    k = min(k, lg.shape[-1])
    # rank of the target = number of classes scoring strictly higher (ties count for the target)
    tscore = np.take_along_axis(lg, tg[..., None], axis=-1)
    higher = (lg > tscore).sum(axis=-1)
    return float((higher < k).mean()) if tg.size else float("nan")


def tolerance_accuracy(logits: Any, target: Any, tolerance: int = 1) -> float:
    """Fraction of frames whose argmax class is within ``tolerance`` classes of the target."""
    lg, tg = _np(logits), _np(target).astype(np.int64)
    _check(lg, tg)
    return float((np.abs(lg.argmax(-1) - tg) <= tolerance).mean()) if tg.size else float("nan")


def decode_logits(logits: Any, mu: int = 127) -> np.ndarray:
    """(..., T, C) logits -> (..., T) RMS decoded from the argmax class."""
    return classes_to_rms(_np(logits).argmax(-1), mu)


def envelope_l1(pred_rms: Any, gt_rms: Any) -> float:
    """Mean absolute difference of two envelopes of equal shape (E-L1)."""
    p, g = _np(pred_rms).astype(np.float64), _np(gt_rms).astype(np.float64)
    if p.shape != g.shape:
        raise ValueError(f"envelopes differ in shape: {p.shape} vs {g.shape}")
    return float(np.abs(p - g).mean()) if p.size else float("nan")


class TimingMetrics:
    """Stateful accumulator: ``update(logits, target_classes, target_rms)`` then ``compute()``.

    Sums are kept as counts so that batches of any size combine exactly; ``compute(reduce=fn)``
    lets a distributed trainer sum the raw totals across processes first (``fn`` maps a float64
    numpy vector to its across-process sum, e.g. through ``accelerate``'s ``reduce``).
    """

    def __init__(self, ks: Sequence[int] = (1, 5, 10), tolerances: Sequence[int] = (1, 2), mu: int = 127):
        self.ks = tuple(ks)
        self.tolerances = tuple(tolerances)
        self.mu = mu
        self.reset()

    def reset(self) -> None:
        self._n = 0.0
        self._l1 = 0.0
        self._topk = np.zeros(len(self.ks))
        self._tol = np.zeros(len(self.tolerances))

    def update(self, logits: Any, target: Any, target_rms: Any) -> None:
        lg, tg, rms = _np(logits), _np(target).astype(np.int64), _np(target_rms)
        _check(lg, tg)
        n = tg.size
        tscore = np.take_along_axis(lg, tg[..., None], axis=-1)
        higher = (lg > tscore).sum(axis=-1)
        self._topk += np.array([(higher < k).sum() for k in self.ks], dtype=np.float64)
        am = lg.argmax(-1)
        self._tol += np.array([(np.abs(am - tg) <= t).sum() for t in self.tolerances], dtype=np.float64)
        self._l1 += float(np.abs(classes_to_rms(am, self.mu).astype(np.float64) - rms).sum())
        self._n += n

    def compute(self, reduce=None) -> dict[str, float]:
        vec = np.concatenate([[self._n, self._l1], self._topk, self._tol])
        if reduce is not None:
            vec = np.asarray(reduce(vec), dtype=np.float64)
        n = max(vec[0], 1.0)
        out = {"el1": float(vec[1] / n)}
        for i, k in enumerate(self.ks):
            out[f"acc@{k}"] = float(vec[2 + i] / n)
        for i, t in enumerate(self.tolerances):
            out[f"acc+-{t}"] = float(vec[2 + len(self.ks) + i] / n)
        out["frames"] = float(vec[0])
        return out
