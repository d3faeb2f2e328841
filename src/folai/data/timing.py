"""Stage-1 training examples: cached video features + envelope targets from each chunk's own audio.

For a chunk of ``d`` seconds from ``start``:

- features: rows ``round(start * fps) ...`` of the clip's cached (T, D) features, ``round(d * fps)``
  rows (300 for 10 s), the last row repeated if the cache is short;
- target: the chunk's audio (mono, 16 kHz, ``d * 16000`` samples, zero-padded if short), peak-
  normalised, RMS (512 / 128), smoothed -> ``rms`` (1250,) in [0, 1]; its mu-law ``classes``
  (1250,) int64 and the Gaussian label-smoothed ``targets`` (1250, 64) — exactly
  :meth:`folai.envelope.Envelope.from_audio`, ``to_classes``, ``targets``.

Targets are computed once at construction (a progress bar shows it) and kept in memory
(1250 floats per chunk); features are read from the safetensors cache per item (memory-mapped).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..envelope import Envelope, EnvelopeConfig, mu_classes, smooth_targets
from ..errors import FolaiError
from ..timing.features import FeatureCache, read_audio
from .chunks import Chunk, ChunkDataset

log = logging.getLogger(__name__)

__all__ = ["chunk_envelope", "TimingDataset"]


def chunk_envelope(chunk: Chunk, config: EnvelopeConfig = EnvelopeConfig()) -> Envelope:
    """The SPEC target envelope of ``chunk`` from its own audio (length exactly n_frames(duration))."""
    n = int(round(chunk.duration * config.sr))
    y = read_audio(chunk.audio, config.sr, start=chunk.start, duration=chunk.duration)
    y = y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))
    env = Envelope.from_audio(y, config.sr, config=config)
    assert env.n_frames == config.n_frames(chunk.duration), (env.n_frames, chunk.duration)
    return env


class TimingDataset(torch.utils.data.Dataset):
    """(features (T_video, D), targets (T_env, C), classes (T_env,), rms (T_env,)) per chunk.

    chunks:       a :class:`~folai.data.chunks.ChunkDataset` (or a list of chunks) of equal duration.
    features:     the folder written by ``folai extract`` for the same data root.
    fps:          feature rate (checked against the cache metadata).
    """

    def __init__(
        self,
        chunks: ChunkDataset | list[Chunk],
        features: str | Path,
        fps: float = 30.0,
        envelope: EnvelopeConfig = EnvelopeConfig(),
        data_root: str | Path | None = None,
        progress: bool = True,
    ):
        from tqdm.auto import tqdm

        self.chunks = list(chunks)
        if not self.chunks:
            raise FolaiError("the dataset split has no chunks; check the data folder and the split")
        no_video = [c for c in self.chunks if c.video is None]
        if no_video:
            raise FolaiError(f"{len(no_video)} chunks have no video (e.g. {no_video[0].audio}); the timing model trains on videos only")
        durations = {round(c.duration, 6) for c in self.chunks}
        if len(durations) != 1:
            raise FolaiError(f"all chunks must have one duration, found {sorted(durations)}")
        self.duration = durations.pop()
        self.fps = float(fps)
        self.envelope = envelope
        root = data_root if data_root is not None else getattr(chunks, "root", None)
        self.cache = FeatureCache(Path(features), root)
        self.n_video = int(round(self.duration * self.fps))
        self.n_env = envelope.n_frames(self.duration)
        # check every clip has features before spending time on targets
        self._meta: dict[Path, dict[str, str]] = {}
        missing = []
        for v in sorted({c.video for c in self.chunks}):
            p = self.cache.path_for(v)
            if not p.is_file():
                missing.append(str(v))
                continue
            self._meta[v] = FeatureCache.metadata(p)
        if missing:
            raise FolaiError(
                f"{len(missing)} videos have no cached features in {features} (e.g. {missing[0]}); "
                "run 'folai extract' on the data folder with the same --out first"
            )
        metas = {(m.get("encoder"), m.get("encoder_config"), m.get("fps"), m.get("version")) for m in self._meta.values()}
        if len(metas) != 1:
            raise FolaiError(f"the feature folder {features} mixes encoders or versions: {sorted(map(str, metas))[:3]}")
        enc, enc_cfg, cfps, _ = metas.pop()
        if abs(float(cfps) - self.fps) > 1e-6:
            raise FolaiError(f"features were extracted at {cfps} fps but the model expects {self.fps} fps")
        self.feature_info = {"encoder": enc, "encoder_config": enc_cfg, "fps": float(cfps),
                             "flow": next(iter(self._meta.values())).get("flow")}
        self.feature_dim = int(next(iter(self._meta.values()))["dim"])
        rms = np.zeros((len(self.chunks), self.n_env), np.float32)
        for i, c in enumerate(tqdm(self.chunks, desc="envelope targets", unit="chunk", disable=not progress, leave=False)):
            rms[i] = chunk_envelope(c, envelope).mono
        self.rms = rms  # (N, T_env)
        self.classes = mu_classes(rms, envelope.mu)  # (N, T_env)

    def __len__(self) -> int:
        return len(self.chunks)

    def features(self, i: int) -> np.ndarray:
        """(T_video, D) float32 features of chunk ``i``."""
        from safetensors import safe_open

        c = self.chunks[i]
        f0 = int(round(c.start * self.fps))
        with safe_open(str(self.cache.path_for(c.video)), framework="np") as f:
            sl = f.get_slice("features")
            total = sl.get_shape()[0]
            x = sl[f0 : min(total, f0 + self.n_video)]
        if x.shape[0] == 0:
            raise FolaiError(f"cached features of {c.video} end ({total} frames) before chunk start {c.start} s")
        if x.shape[0] < self.n_video:
            x = np.concatenate([x, np.repeat(x[-1:], self.n_video - x.shape[0], axis=0)])
        return np.asarray(x, dtype=np.float32)

    def __getitem__(self, i: int) -> dict[str, Any]:
        e = self.envelope
        cls = self.classes[i]
        return {
            "features": torch.from_numpy(self.features(i)),  # (T_video, D)
            "targets": torch.from_numpy(smooth_targets(cls, e.n_classes, e.label_sigma, e.label_width)),  # (T_env, C)
            "classes": torch.from_numpy(cls),  # (T_env,)
            "rms": torch.from_numpy(self.rms[i]),  # (T_env,)
        }
