"""Stage-2 training items from :mod:`folai.data` chunks: 44.1 kHz stereo audio, envelopes, frames, prompt.

Which chunks exist (Greatest Hits / Walking The Maps / a folder, their splits, chunk lengths and
prompts) is :mod:`folai.data.chunks`' job, shared with stage 1; this module only reads what stage 2
needs from each :class:`~folai.data.chunks.Chunk`. A dataset item is a dict::

    audio   (2, n) float32  44.1 kHz stereo chunk of ``chunk.audio`` (zero-padded at the end of a short file)
    env     (2, n) float32  its L/R RMS envelopes (SPEC: 16 kHz, frame 512 / hop 128, smoothed)
                            interpolated back to 44.1 kHz — what the ControlNet sees
    frames  (T, 224, 224, 3) uint8 RGB of ``chunk.video`` at 4 fps for CAVP (T = duration * 4, the
                            last frame repeated if the video ends early), or None (audio-only chunks,
                            or ``use_video=False``)
    prompt  str             ``chunk.prompt`` (SPEC templates, see folai.data), '' when there is none
    seconds float           chunk duration (SAO's seconds_total)

Example::

    from folai.data import get_dataset
    ds = SynthesisDataset(get_dataset("greatest-hits", "GreatestHits/", "train"))
"""

from __future__ import annotations

import argparse
import logging
from typing import Any, Sequence

import numpy as np

from ..data.chunks import Chunk, ChunkDataset
from ..envelope import DEFAULT as ENV_CONFIG
from ..envelope import Envelope, rms_frames, smooth
from ..errors import FolaiError

log = logging.getLogger(__name__)

SR = 44100
# stage 2 also trains on files shorter than one chunk (zero-padded) when they are at least this long
MIN_SECONDS = 0.5


def stereo_envelope(audio: np.ndarray, sr: int = SR) -> np.ndarray:
    """(2, N) audio -> (2, N) L/R envelopes at the audio rate (SPEC extraction, joint peak normalisation)."""
    import soxr

    a = np.asarray(audio, dtype=np.float32)
    assert a.ndim == 2, f"audio must be (C, N), got {a.shape}"
    c = ENV_CONFIG
    x = soxr.resample(a.T, sr, c.sr, quality="HQ").T if sr != c.sr else a
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:
        x = x / peak
    rms = np.stack([smooth(rms_frames(ch, c.frame_length, c.hop_length), c.smooth_kernel, c.smooth_filter) for ch in x])
    if rms.shape[1] < 2:
        return np.zeros_like(a)
    env = Envelope(np.clip(rms, 0.0, 1.0).astype(np.float32), rate=c.rate)
    return env.to_audio_rate(sr, n_samples=a.shape[1], channels=a.shape[0])


def synthesis_chunks(args: argparse.Namespace, **options: Any) -> ChunkDataset:
    """The chunks that the shared dataset options (:func:`folai.data.add_dataset_arguments`) name, as
    stage 2 takes them: a folder's audio files without a video count too (``video=None``), and a file
    shorter than one chunk but at least :data:`MIN_SECONDS` long gives one zero-padded chunk.
    options: more :func:`folai.data.get_dataset` options (chunk_seconds, ...)."""
    from ..data.chunks import dataset_from_args, resolve_dataset_name

    if resolve_dataset_name(args.dataset, args.data) == "folder":
        options.setdefault("audio_files", True)
    options.setdefault("min_seconds", MIN_SECONDS)
    return dataset_from_args(args, **options)


class SynthesisDataset:
    """Stage-2 items of a list of chunks (map-style; works with torch DataLoader).

    chunks:    a :class:`~folai.data.chunks.ChunkDataset` or a list of :class:`~folai.data.chunks.Chunk`.
    use_video: read CAVP frames of chunks that have a video (False when training without CAVP).
    """

    def __init__(self, chunks: ChunkDataset | Sequence[Chunk], use_video: bool = True):
        self.chunks = list(chunks)
        if not self.chunks:
            raise FolaiError("the dataset split has no chunks; check the data folder, --dataset and --split")
        self.use_video = use_video

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict:
        from ..media import read_audio

        c = self.chunks[i]
        n = int(round(c.duration * SR))
        audio = read_audio(c.audio, sr=SR, channels=2, start=c.start, duration=c.duration)
        audio = audio[:, :n] if audio.shape[1] >= n else np.pad(audio, ((0, 0), (0, n - audio.shape[1])))
        frames = None
        if self.use_video and c.video is not None:
            frames = self._frames(c)
        return {"audio": audio.astype(np.float32), "env": stereo_envelope(audio, SR), "frames": frames,
                "prompt": c.prompt or "", "seconds": float(c.duration)}

    @staticmethod
    def _frames(c: Chunk) -> np.ndarray | None:
        from .cavp import FPS, read_cavp_frames

        try:
            frames = read_cavp_frames(c.video, c.start, c.duration)  # (T', 224, 224, 3)
        except FolaiError as e:
            log.warning("no frames from %s: %s", c.video, e)
            return None
        T = max(1, int(round(c.duration * FPS)))
        if len(frames) == 0:
            return None
        if len(frames) < T:
            frames = np.concatenate([frames, np.repeat(frames[-1:], T - len(frames), axis=0)])
        return frames[:T]


def collate(items: list[dict]) -> dict:
    """Stack audio/env; keep frames and prompts as lists."""
    import torch

    return {
        "audio": torch.from_numpy(np.stack([it["audio"] for it in items])),
        "env": torch.from_numpy(np.stack([it["env"] for it in items])),
        "frames": [it["frames"] for it in items],
        "prompt": [it["prompt"] for it in items],
        "seconds": torch.tensor([it["seconds"] for it in items], dtype=torch.float32),
    }


def synthetic_items(n: int, seconds: float, seed: int = 0, frames: bool = True) -> list[dict]:
    """Clicks with random onsets (and random 4 fps frames): data for ``--tiny`` smoke runs and tests."""
    from ..testing import make_clicks

    rng = np.random.default_rng(seed)
    items = []
    for k in range(n):
        times = np.sort(rng.uniform(0, seconds, size=3))
        mono = make_clicks(seconds, SR, times=times, decay=0.005, seed=seed + k)
        audio = np.stack([mono, mono * 0.8]).astype(np.float32)
        T = max(1, int(round(seconds * 4)))
        fr = rng.integers(0, 255, size=(T, 224, 224, 3), dtype=np.uint8) if frames else None
        items.append({"audio": audio, "env": stereo_envelope(audio, SR), "frames": fr,
                      "prompt": "clicks", "seconds": float(seconds)})
    return items
