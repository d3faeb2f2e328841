"""Frechet distance between Gaussians fitted to embeddings (FAD, FAVD).

``d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``

The trace of the matrix square root is computed through a symmetric eigen-decomposition:
with ``A = S1^(1/2)`` (symmetric PSD), ``S1 S2`` is similar to ``A S2 A``, which is symmetric PSD,
so ``tr((S1 S2)^(1/2)) = sum(sqrt(max(eig(A S2 A), 0)))``. This route never produces complex
numbers and stays finite for singular or near-singular covariances (fewer clips than dimensions),
where ``scipy.linalg.sqrtm`` is known to return garbage; ``eps`` adds ``eps * I`` to both
covariances first (as pytorch-fid does on failure) when given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import FolaiError


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2.0)
    w = np.clip(w, 0.0, None)
    return (v * np.sqrt(w)) @ v.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 0.0
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    mu: (D,), sigma: (D, D) symmetric positive semi-definite. Returns a float >= 0.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise FolaiError(
            f"Frechet distance needs means of equal size and matching square covariances; got "
            f"{mu1.shape}, {mu2.shape}, {s1.shape}, {s2.shape}"
        )
    if not (np.isfinite(mu1).all() and np.isfinite(mu2).all() and np.isfinite(s1).all() and np.isfinite(s2).all()):
        raise FolaiError("Frechet distance got non-finite embedding statistics (NaN or inf); check the embeddings")
    if eps:
        s1 = s1 + eps * np.eye(s1.shape[0])
        s2 = s2 + eps * np.eye(s2.shape[0])
    a = _sqrt_psd(s1)
    m = a @ s2 @ a
    w = np.linalg.eigvalsh((m + m.T) / 2.0)
    tr_covmean = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    diff = mu1 - mu2
    d = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(d, 0.0)


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of embeddings x: (N, D), N >= 2."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise FolaiError(f"embeddings must be a (N, D) array, got shape {x.shape}")
    if x.shape[0] < 2:
        raise FolaiError(
            f"a Frechet distance needs at least 2 embedding vectors per set to estimate a covariance, got {x.shape[0]}; "
            "evaluate more clips"
        )
    if not np.isfinite(x).all():
        raise FolaiError("embeddings contain NaN or inf values; check the input audio and the model weights")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


@dataclass
class FrechetDistance:
    """Stateful Frechet distance: ``update(generated=..., reference=...)`` then ``compute()``.

    Each update adds embedding rows (N, D) to either set; ``compute()`` fits a Gaussian to each
    set and returns the distance. ``reset()`` empties both sets.
    """

    eps: float = 0.0
    _gen: list = field(default_factory=list, repr=False)
    _ref: list = field(default_factory=list, repr=False)

    def reset(self) -> None:
        self._gen.clear()
        self._ref.clear()

    def update(self, generated: np.ndarray | None = None, reference: np.ndarray | None = None) -> None:
        for x, store in ((generated, self._gen), (reference, self._ref)):
            if x is None:
                continue
            x = np.asarray(x, dtype=np.float64)
            store.append(x.reshape(1, -1) if x.ndim == 1 else x)

    def compute(self) -> float:
        if not self._gen or not self._ref:
            raise FolaiError("Frechet distance needs embeddings of both the generated and the reference set")
        g = np.concatenate(self._gen, axis=0)
        r = np.concatenate(self._ref, axis=0)
        if g.shape[1] != r.shape[1]:
            raise FolaiError(f"generated and reference embeddings differ in size: {g.shape[1]} vs {r.shape[1]}")
        return frechet_distance(*gaussian_stats(g), *gaussian_stats(r), eps=self.eps)
