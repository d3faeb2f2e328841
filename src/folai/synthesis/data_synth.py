"""Training data for the stage-2 ControlNet: chunks of 44.1 kHz stereo audio with their envelopes.

A dataset item is a dict::

    audio   (2, n) float32  44.1 kHz stereo chunk (zero-padded at the end of a short file)
    env     (2, n) float32  its L/R RMS envelopes (SPEC: 16 kHz, frame 512 / hop 128, smoothed)
                            interpolated back to 44.1 kHz — what the ControlNet sees
    frames  (T, 224, 224, 3) uint8 RGB at 4 fps for CAVP, or None (audio-only items)
    prompt  str             the item's text prompt (SPEC templates), '' when unknown
    seconds float           chunk duration (SAO's seconds_total)

Layouts (``kind``):

- ``folder``: any audio/video files under a folder (recursively); an optional ``prompts.csv``
  (``file,prompt``) or a sidecar ``<name>.txt`` gives prompts.
- ``greatest-hits``: the Greatest Hits videos (``*_denoised.mp4`` or any video) with their
  ``<name>_times.txt`` annotations (``time material action reaction`` per line); the prompt is
  SPEC's "A person {action} {frequency} on {material} with a wooden stick", from the annotations
  inside the chunk (most common action/material; "once" for one event, "multiple times" otherwise).
  Chunks of 10 s.
- ``walking-the-maps``: ``<youtube_id>_<start>_<end>.mp4`` clips with footstep audio (AudioSep
  output); prompt "footstep sounds"; chunks of 2 s (SPEC).
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..envelope import DEFAULT as ENV_CONFIG
from ..envelope import Envelope, rms_frames, smooth
from ..errors import FolaiError

log = logging.getLogger(__name__)

SR = 44100
AUDIO_EXT = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac"}
VIDEO_EXT = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
KINDS = ("folder", "greatest-hits", "walking-the-maps")
DEFAULT_CHUNK = {"folder": 10.0, "greatest-hits": 10.0, "walking-the-maps": 2.0}
WTM_PROMPT = "footstep sounds"


def greatest_hits_prompt(action: str, material: str, n_events: int) -> str:
    """SPEC's Greatest Hits template; ``action`` 'hit' or 'scratch' (any other word is used as given)."""
    verb = {"hit": "hits", "scratch": "scratches"}.get(action.strip().lower(), action.strip().lower())
    freq = "once" if n_events == 1 else "multiple times"
    return f"A person {verb} {freq} on {material.strip().lower()} with a wooden stick"


def read_greatest_hits_times(path: Path) -> list[tuple[float, str, str]]:
    """[(time_s, material, action)] from a Greatest Hits ``*_times.txt`` (blank/malformed lines skipped)."""
    out = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            t = float(parts[0])
        except ValueError:
            continue
        if parts[1].lower() == "none" or parts[2].lower() == "none":
            continue
        out.append((t, parts[1], parts[2]))
    return out


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


@dataclass
class Chunk:
    path: Path
    start: float
    duration: float
    prompt: str
    is_video: bool


class SynthesisDataset:
    """Chunks of a folder of media (map-style; works with torch DataLoader)."""

    def __init__(
        self,
        root: str | os.PathLike,
        kind: str = "folder",
        chunk_seconds: float | None = None,
        use_video: bool = True,
        min_seconds: float = 0.5,
        files: Sequence[str | os.PathLike] | None = None,
    ):
        from ..media import audio_info

        if kind not in KINDS:
            raise FolaiError(f"unknown dataset kind '{kind}'; choose one of {', '.join(KINDS)}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FolaiError(f"dataset folder not found: {self.root}")
        self.kind = kind
        self.chunk_seconds = float(chunk_seconds or DEFAULT_CHUNK[kind])
        self.use_video = use_video
        paths = [Path(f) for f in files] if files is not None else sorted(
            p for p in self.root.rglob("*") if p.suffix.lower() in AUDIO_EXT | VIDEO_EXT and not p.name.startswith(".")
        )
        prompts = self._folder_prompts() if kind == "folder" else {}
        self.chunks: list[Chunk] = []
        for p in paths:
            try:
                _, _, dur = audio_info(p)
            except FolaiError as e:
                log.warning("skipping %s: %s", p, e)
                continue
            if dur < min_seconds:
                continue
            n = max(1, int(dur // self.chunk_seconds))
            is_video = p.suffix.lower() in VIDEO_EXT
            gh = read_greatest_hits_times(self._times_file(p)) if kind == "greatest-hits" and self._times_file(p).exists() else None
            for k in range(n):
                s = k * self.chunk_seconds
                self.chunks.append(Chunk(p, s, self.chunk_seconds, self._prompt(p, s, prompts, gh), is_video))
        if not self.chunks:
            raise FolaiError(f"no usable audio or video files (at least {min_seconds} s long) found in {self.root}")

    def _times_file(self, p: Path) -> Path:
        stem = p.stem[: -len("_denoised")] if p.stem.endswith("_denoised") else p.stem
        return p.with_name(stem + "_times.txt")

    def _folder_prompts(self) -> dict[str, str]:
        f = self.root / "prompts.csv"
        out: dict[str, str] = {}
        if f.exists():
            with open(f, newline="") as fh:
                for row in csv.reader(fh):
                    if len(row) >= 2 and row[0] != "file":
                        out[row[0]] = row[1]
        return out

    def _prompt(self, p: Path, start: float, prompts: dict, gh) -> str:
        if self.kind == "walking-the-maps":
            return WTM_PROMPT
        if self.kind == "greatest-hits":
            if not gh:
                return ""
            ev = [(m, a) for t, m, a in gh if start <= t < start + self.chunk_seconds]
            if not ev:
                return ""
            mat = Counter(m for m, _ in ev).most_common(1)[0][0]
            act = Counter(a for _, a in ev).most_common(1)[0][0]
            return greatest_hits_prompt(act, mat, len(ev))
        rel = str(p.relative_to(self.root)) if p.is_relative_to(self.root) else p.name
        if rel in prompts:
            return prompts[rel]
        side = p.with_suffix(".txt")
        return side.read_text().strip() if side.exists() else ""

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict:
        from ..media import read_audio

        c = self.chunks[i]
        n = int(round(c.duration * SR))
        audio = read_audio(c.path, sr=SR, channels=2, start=c.start, duration=c.duration)
        audio = audio[:, :n] if audio.shape[1] >= n else np.pad(audio, ((0, 0), (0, n - audio.shape[1])))
        frames = None
        if self.use_video and c.is_video:
            from .cavp import read_cavp_frames

            try:
                frames = read_cavp_frames(c.path, c.start, c.duration)
            except FolaiError as e:
                log.warning("no frames from %s: %s", c.path, e)
        return {"audio": audio.astype(np.float32), "env": stereo_envelope(audio, SR), "frames": frames,
                "prompt": c.prompt, "seconds": float(c.duration)}


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
