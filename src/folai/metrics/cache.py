"""Per-file embedding cache keyed by content hash + model identity.

``EmbeddingCache(folder).get_or_compute(path, model_key, fn)`` returns the array stored for
(sha256 of the file's bytes, ``model_key``) or calls ``fn()`` and stores its result as ``.npy``.
``model_key`` must change whenever the embedding would (model name, checkpoint hash, sample
rate, options); :func:`model_key` builds one. Writes are atomic, so an interrupted run never
leaves a truncated entry.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..paths import atomic_output

log = logging.getLogger(__name__)


def model_key(name: str, **options) -> str:
    """A short, filesystem-safe key for a model and the options that change its output."""
    text = name + "|" + "|".join(f"{k}={options[k]}" for k in sorted(options))
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


class EmbeddingCache:
    """Cache of per-file embeddings in ``folder`` (None disables caching)."""

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = Path(folder) if folder is not None else None
        self.hits = 0
        self.misses = 0
        self._hashes: dict[Path, tuple[float, int, str]] = {}

    def _hash(self, path: Path) -> str:
        st = path.stat()
        got = self._hashes.get(path)
        if got and got[:2] == (st.st_mtime, st.st_size):
            return got[2]
        from ..weights import content_sha256

        h = content_sha256(path)
        self._hashes[path] = (st.st_mtime, st.st_size, h)
        return h

    def entry(self, path: str | os.PathLike, key: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / key / f"{self._hash(Path(path))}.npy"

    def get_or_compute(self, path: str | os.PathLike, key: str, fn: Callable[[], np.ndarray]) -> np.ndarray:
        entry = self.entry(path, key)
        if entry is not None and entry.is_file():
            try:
                arr = np.load(entry, allow_pickle=False)
                self.hits += 1
                return arr
            except (OSError, ValueError):
                log.warning("ignoring unreadable cache entry %s", entry)
        arr = np.asarray(fn())
        self.misses += 1
        if entry is not None:
            entry.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(entry) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, arr, allow_pickle=False)
        return arr
