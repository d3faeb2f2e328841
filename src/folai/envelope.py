"""The RMS envelope: the contract between stage 1 (timing) and stage 2 (synthesis).

Exactly as SPEC.md says:

- target audio: mono, 16 kHz, peak-normalised to [-1, 1];
- RMS with frame 512 / hop 128 (``librosa.feature.rms`` conventions, centred frames) -> 125
  frames/s, ``samples // 128`` frames (1250 for 10 s); values in [0, 1];
- smoothing: a length-preserving centred moving average over 15 frames (``EnvelopeConfig.smooth_filter``
  = ``"box"``; ``"hann"`` and ``"none"`` are the alternatives; edges use reflection);
- classes: mu-law, mu = 127, quantised -> 64 classes 0..63 (equal to
  ``librosa.mu_compress(rms, mu=127, quantize=True)``), decoded by ``librosa.mu_expand``;
- class targets: Gaussian label smoothing, sigma 1, half-width 2, normalised to sum 1;
- for stage 2: linear interpolation to the audio rate and channel count.

Frame ``i`` of an envelope describes the audio around time ``start + i / rate`` seconds.

Example::

    >>> import numpy as np
    >>> from folai.envelope import Envelope
    >>> y = np.zeros(160000, dtype=np.float32); y[80000:80400] = 1.0   # a click at 5 s
    >>> env = Envelope.from_audio(y, sr=16000)
    >>> env.values.shape, env.rate                                       # (channels, frames)
    ((1, 1250), 125.0)
    >>> round(env.duration, 3)
    10.0
"""

from __future__ import annotations

import array
import csv
import io
import logging
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import EnvelopeFormatError, FolaiError

log = logging.getLogger(__name__)

__all__ = [
    "EnvelopeConfig",
    "Envelope",
    "rms_frames",
    "smooth",
    "mu_classes",
    "classes_to_rms",
    "smooth_targets",
]


#: how far (s) a row whose time is rounded to the millisecond may lie from the line through all
#: the rows (rounding moves it by up to 0.5 ms; the fitted line by a little more on short files);
#: in proportion for times rounded to 0.1 or 0.01 ms
_ROUNDED_OFF = 0.8e-3


def _without_trailing_empty(row: list[str], keep: int = 1) -> list[str]:
    """``row`` less its empty last cells beyond the first ``keep`` (a spreadsheet's empty column,
    or a line ending in ',')."""
    while len(row) > keep and not row[-1].strip():
        row = row[:-1]
    return row


def _lines(text: str):
    """The lines of ``text`` (newline-separated, each with its newline), one at a time: a StringIO
    of a long file held it again at 4 bytes a character."""
    i, n = 0, len(text)
    while i < n:
        j = text.find("\n", i)
        j = n if j < 0 else j + 1
        yield text[i:j]
        i = j


def _header_hint(header: list[str]) -> str:
    """What a bad header most likely is, as a hint for the error message."""
    if not any(c.strip() for c in header):
        return " (the first line has no names in it)"
    try:
        [float(c) for c in header]
        return " (the header line is missing: the first line must be the column names)"
    except ValueError:
        pass
    if len(header) == 1 and "," in header[0]:
        return " (each line is one quoted cell: save the file without quotes around whole lines)"
    if header and header[0].lstrip().startswith("#"):
        return " (a comment mark before the names: numpy.savetxt writes one unless given comments='')"
    if len(header) > 1 and header[0] == "" and header[1:] in (["time_s", "rms"], ["time_s", "rms_left", "rms_right"]):
        return " (an index column before the times: pandas writes one unless given index=False)"
    if header in (["time_s", "rms_left"], ["time_s", "rms_right"]):
        return " (one channel of a stereo envelope: name its column 'rms' for a mono one)"
    return ""


@dataclass(frozen=True)
class EnvelopeConfig:
    """Envelope extraction settings (defaults are the paper's / SPEC's)."""

    sr: int = 16000
    frame_length: int = 512
    hop_length: int = 128
    smooth_kernel: int = 15
    smooth_filter: str = "box"  # "box" (moving average), "hann" (Hann-weighted), "none"
    mu: int = 127
    label_sigma: float = 1.0
    label_width: int = 2

    @property
    def rate(self) -> float:
        """Envelope frames per second (125.0 by default)."""
        return self.sr / self.hop_length

    @property
    def n_classes(self) -> int:
        """Number of mu-law classes for values in [0, 1] (64 for mu = 127)."""
        return (self.mu + 1) // 2

    def n_frames(self, seconds: float) -> int:
        """Envelope frames for ``seconds`` of audio (1250 for 10 s)."""
        return int(round(seconds * self.sr)) // self.hop_length


DEFAULT = EnvelopeConfig()


# ----------------------------------------------------------------------------- core maths


def rms_frames(y: np.ndarray, frame_length: int = 512, hop_length: int = 128) -> np.ndarray:
    """RMS per centred frame of a mono signal, like ``librosa.feature.rms`` (center, pad constant 0).

    y: (N,) float. Returns (N // hop_length,) float32 — the trailing partial frame librosa adds is
    dropped so that 10 s at 16 kHz give exactly 1250 frames.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"rms_frames expects a mono (N,) signal, got shape {y.shape}")
    n = len(y) // hop_length
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    pad = frame_length // 2
    yp = np.pad(y, (pad, pad))
    # sum of squares over each window via cumulative sums (O(N), exact enough in float64)
    c = np.concatenate([[0.0], np.cumsum(yp * yp)])
    starts = np.arange(n) * hop_length
    power = (c[starts + frame_length] - c[starts]) / frame_length
    return np.sqrt(np.maximum(power, 0.0)).astype(np.float32)


def smooth(x: np.ndarray, kernel: int = 15, kind: str = "box") -> np.ndarray:
    """Length-preserving centred smoothing along the last axis (reflect at the edges)."""
    if kind == "none" or kernel <= 1:
        return np.asarray(x, dtype=np.float32).copy()
    if kernel % 2 == 0:
        raise ValueError(f"smoothing kernel must be odd to stay centred, got {kernel}")
    if kind == "box":
        w = np.ones(kernel)
    elif kind == "hann":
        w = np.hanning(kernel + 2)[1:-1]
    else:
        raise ValueError(f"unknown smoothing filter '{kind}'; expected 'box', 'hann' or 'none'")
    w = w / w.sum()
    x = np.asarray(x, dtype=np.float64)
    half = kernel // 2
    T = x.shape[-1]
    if T == 0:
        return x.astype(np.float32)
    mode = "reflect" if T > half else "edge"
    xp = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(half, half)], mode=mode)
    out = np.apply_along_axis(lambda r: np.convolve(r, w, mode="valid"), -1, xp)
    return out.astype(np.float32)


def mu_classes(rms: np.ndarray, mu: int = 127) -> np.ndarray:
    """Mu-law classes of values in [0, 1]: equals ``librosa.mu_compress(rms, mu=mu, quantize=True)``.

    Returns int64 classes in 0..(mu+1)//2 - 1 (0..63 for mu = 127).
    """
    x = np.clip(np.asarray(rms, dtype=np.float64), 0.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    bins = np.linspace(-1, 1, num=1 + mu, endpoint=True)
    q = np.digitize(y, bins=bins, right=True) - (mu + 1) // 2
    return np.clip(q, 0, (mu + 1) // 2 - 1).astype(np.int64)


def classes_to_rms(classes: np.ndarray, mu: int = 127) -> np.ndarray:
    """Decode classes to RMS: equals ``librosa.mu_expand(classes, mu=mu, quantize=True)``."""
    x = np.asarray(classes, dtype=np.float64) * (2.0 / (1 + mu))
    y = np.sign(x) / mu * (np.power(1.0 + mu, np.abs(x)) - 1.0)
    return y.astype(np.float32)


def smooth_targets(
    classes: np.ndarray, n_classes: int = 64, sigma: float = 1.0, width: int = 2
) -> np.ndarray:
    """Gaussian label smoothing: (...,) int classes -> (..., n_classes) float32 rows summing to 1.

    weight(c) = exp(-(c - c*)^2 / (2 sigma^2)) for |c - c*| <= width, else 0; normalised.
    """
    classes = np.asarray(classes, dtype=np.int64)
    c = np.arange(n_classes)
    d = c - classes[..., None]
    w = np.exp(-(d.astype(np.float64) ** 2) / (2.0 * sigma**2))
    w[np.abs(d) > width] = 0.0
    w /= w.sum(axis=-1, keepdims=True)
    return w.astype(np.float32)


# ----------------------------------------------------------------------------- the type


def _with_level(values: np.ndarray, level: np.ndarray) -> np.ndarray:
    """(2, T) ``values`` scaled per frame so that their mean is ``level``: each frame keeps its
    channels' ratio (its side); a silent frame gets ``level`` in both. A channel that would pass 1
    stops there, the other scaled alike (the side is kept, the level falls short)."""
    v = np.asarray(values, dtype=np.float64)
    mean = v.mean(axis=0)
    ratio = np.where(mean > 0, v / np.where(mean > 0, mean, 1.0), 1.0)
    out = ratio * np.asarray(level, dtype=np.float64)[None]
    top = out.max(axis=0)
    out = np.where(top > 1.0, out / np.where(top > 1.0, top, 1.0), out)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


@dataclass
class Envelope:
    """Loudness over time.

    values: (C, T) float32 in [0, 1] — C = 1 (mono) or 2 (left, right).
    rate:   frames per second (125.0 for the SPEC envelope).
    start:  time in seconds of frame 0.
    """

    values: np.ndarray
    rate: float = DEFAULT.rate
    start: float = 0.0
    config: EnvelopeConfig = field(default=DEFAULT, repr=False, compare=False)

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.float32)
        if v.ndim == 1:
            v = v[None]
        if v.ndim != 2 or v.shape[0] not in (1, 2):
            raise ValueError(f"envelope values must be (T,) or (C, T) with C in (1, 2), got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError("envelope values must be finite")
        if self.rate <= 0:
            raise ValueError(f"envelope rate must be positive, got {self.rate}")
        self.values = v
        self.rate = float(self.rate)
        self.start = float(self.start)

    # -- basic properties
    @property
    def channels(self) -> int:
        return self.values.shape[0]

    @property
    def n_frames(self) -> int:
        return self.values.shape[1]

    @property
    def duration(self) -> float:
        """Seconds covered: n_frames / rate."""
        return self.n_frames / self.rate

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def times(self) -> np.ndarray:
        """(T,) float64 time of each frame in seconds."""
        return self.start + np.arange(self.n_frames) / self.rate

    @property
    def mono(self) -> np.ndarray:
        """(T,) float32: the channel mean."""
        return self.values.mean(axis=0)

    def copy(self) -> "Envelope":
        return replace(self, values=self.values.copy())

    def _with(self, values: np.ndarray) -> "Envelope":
        return replace(self, values=np.clip(values, 0.0, 1.0).astype(np.float32))

    def _index(self, t: float) -> int:
        return int(round((t - self.start) * self.rate))

    def _range(self, t0: float | None, t1: float | None) -> slice:
        i0 = 0 if t0 is None else max(0, self._index(t0))
        i1 = self.n_frames if t1 is None else min(self.n_frames, self._index(t1))
        return slice(i0, max(i0, i1))

    # -- construction
    @classmethod
    def from_audio(
        cls,
        audio: np.ndarray,
        sr: int,
        config: EnvelopeConfig = DEFAULT,
        smoothing: bool = True,
        start: float = 0.0,
    ) -> "Envelope":
        """The target envelope of a recording (SPEC): mono, ``config.sr``, peak-normalised, RMS, smoothed.

        audio: (N,) or (C, N) float at rate ``sr`` (channels are averaged to mono).
        """
        a = np.asarray(audio, dtype=np.float32)
        if a.ndim == 2:
            a = a.mean(axis=0)
        if a.ndim != 1:
            raise ValueError(f"audio must be (N,) or (C, N), got {np.shape(audio)}")
        if sr != config.sr:
            import soxr

            a = soxr.resample(a, sr, config.sr, quality="HQ").astype(np.float32)
        peak = float(np.max(np.abs(a))) if a.size else 0.0
        if peak > 0:
            a = a / peak
        rms = rms_frames(a, config.frame_length, config.hop_length)
        if smoothing:
            rms = smooth(rms, config.smooth_kernel, config.smooth_filter)
        return cls(np.clip(rms, 0.0, 1.0)[None], rate=config.rate, start=start, config=config)

    @classmethod
    def from_media(cls, path: str | os.PathLike, config: EnvelopeConfig = DEFAULT, smoothing: bool = True) -> "Envelope":
        """The target envelope of an audio file or of a video's audio track."""
        from .media import read_audio

        audio = read_audio(path, sr=config.sr, channels=1)
        if audio.size and float(np.max(np.abs(audio))) < 1e-3:
            # a mono mix at -60 dBFS or less: channels out of phase (a miswired or M/S-decoded
            # recording) cancel in it, and peak normalisation then made a flat curve of the
            # leftover's noise (a review); the loudest channel, as the sampler reads a reference
            chans = np.atleast_2d(read_audio(path, sr=config.sr, channels=None, drop_lfe=True))
            peaks = np.max(np.abs(chans), axis=1) if chans.size else np.zeros(1)
            if chans.shape[0] > 1 and float(peaks.max()) >= 10 * max(float(np.max(np.abs(audio))), 1e-6):
                k = int(np.argmax(peaks))
                log.warning("%s: its channels cancel when mixed to mono (out of phase?): the envelope is "
                            "measured on channel %d alone", path, k + 1)
                audio = chans[k]
        if audio.shape[-1] < config.hop_length:
            raise FolaiError(f"audio in {path} is too short for an envelope (needs at least {config.hop_length} samples at {config.sr} Hz)")
        return cls.from_audio(audio, config.sr, config=config, smoothing=smoothing)

    @classmethod
    def from_classes(cls, classes: np.ndarray, config: EnvelopeConfig = DEFAULT, start: float = 0.0) -> "Envelope":
        """Decode (T,) or (C, T) class indices to an envelope."""
        return cls(classes_to_rms(classes, config.mu), rate=config.rate, start=start, config=config)

    @classmethod
    def zeros(cls, duration: float, rate: float = DEFAULT.rate, channels: int = 1) -> "Envelope":
        return cls(np.zeros((channels, int(round(duration * rate))), np.float32), rate=rate)

    # -- classes and targets
    def to_classes(self) -> np.ndarray:
        """(C, T) int64 mu-law classes."""
        return mu_classes(self.values, self.config.mu)

    def targets(self) -> np.ndarray:
        """(C, T, n_classes) float32 Gaussian-smoothed class targets."""
        c = self.config
        return smooth_targets(self.to_classes(), c.n_classes, c.label_sigma, c.label_width)

    def quantized(self) -> "Envelope":
        """The envelope after a class round trip (what a classifier can express at best)."""
        return self._with(classes_to_rms(self.to_classes(), self.config.mu))

    # -- resampling
    def resample(self, rate: float) -> "Envelope":
        """Linear interpolation to another frame rate over the same time span (at least one frame:
        a curve shorter than half a new frame had become empty, and an internal error in render)."""
        n = max(1, int(round(self.duration * rate)))
        t_new = self.start + np.arange(n) / rate
        vals = np.stack([np.interp(t_new, self.times, ch) for ch in self.values])
        return replace(self, values=vals.astype(np.float32), rate=float(rate))

    def to_audio_rate(self, sr: int = 44100, n_samples: int | None = None, channels: int = 2) -> np.ndarray:
        """(channels, n_samples) float32: the envelope linearly interpolated to audio samples.

        A mono envelope is duplicated to every channel; a stereo one to 1 channel is averaged.
        ``n_samples`` defaults to round(duration * sr); sample k is at time start + k / sr.
        """
        if n_samples is None:
            n_samples = int(round(self.duration * sr))
        t = self.start + np.arange(n_samples) / sr
        src = self.values
        if channels == 1 and src.shape[0] == 2:
            src = src.mean(axis=0, keepdims=True)
        out = np.stack([np.interp(t, self.times, ch) for ch in src]).astype(np.float32)
        if out.shape[0] != channels:
            out = np.repeat(out[:1], channels, axis=0)
        return out

    def with_channels(self, channels: int) -> "Envelope":
        if channels == self.channels:
            return self.copy()
        if channels == 1:
            return replace(self, values=self.mono[None].copy())
        return replace(self, values=np.repeat(self.values[:1], 2, axis=0))

    def crop(self, t0: float, t1: float) -> "Envelope":
        """The frames in [t0, t1) as a new envelope starting at the first kept frame's time."""
        s = self._range(t0, t1)
        return replace(self, values=self.values[:, s].copy(), start=self.start + s.start / self.rate)

    def fit(self, duration: float) -> "Envelope":
        """Cut or zero-pad to exactly round(duration * rate) frames."""
        n = int(round(duration * self.rate))
        v = self.values[:, :n]
        if v.shape[1] < n:
            v = np.pad(v, ((0, 0), (0, n - v.shape[1])))
        return replace(self, values=v.copy())

    # -- edits a sound designer needs (each returns a new envelope)
    def gain(self, factor: float, t0: float | None = None, t1: float | None = None) -> "Envelope":
        """Multiply the level by ``factor`` (in [t0, t1) if given); result clipped to [0, 1]."""
        if factor < 0:
            raise FolaiError(f"gain factor must be >= 0, got {factor}")
        # in float64 and clipped before it is stored: a factor past float32's range (1e39) made the
        # silent frames 0 * inf = NaN
        v = self.values.astype(np.float64)
        v[:, self._range(t0, t1)] *= factor
        return self._with(np.clip(v, 0.0, 1.0).astype(np.float32))

    def gain_db(self, db: float, t0: float | None = None, t1: float | None = None) -> "Envelope":
        """:meth:`gain` in decibels (beyond +-400 dB the result is the same: silence or full scale)."""
        db = float(db)
        if not np.isfinite(db):
            raise FolaiError(f"gain in dB must be a finite number, got {db}")
        return self.gain(10.0 ** (min(400.0, max(-400.0, db)) / 20.0), t0, t1)

    def shift(self, seconds: float) -> "Envelope":
        """Move the content later (positive) or earlier (negative); same length, zeros enter."""
        seconds = float(seconds)
        if not np.isfinite(seconds):
            raise FolaiError(f"shift needs a finite number of seconds, got {seconds}")
        n = self.n_frames
        k = int(round(max(-n - 1.0, min(n + 1.0, seconds * self.rate))))  # past the end: all zeros
        v = np.zeros_like(self.values)
        if 0 <= k < n:
            v[:, k:] = self.values[:, : n - k]
        elif -n < k < 0:
            v[:, : n + k] = self.values[:, -k:]
        return replace(self, values=v)

    def add_event(self, time: float, level: float, decay: float = 0.08, attack: float = 0.004) -> "Envelope":
        """Add an impact at ``time`` s peaking at ``level`` and decaying exponentially (time constant ``decay`` s).

        The new shape is combined with the existing curve by maximum, so an event never lowers it.
        """
        if not 0.0 <= level <= 1.0:
            raise FolaiError(f"event level must be in [0, 1], got {level}")
        if decay <= 0:
            raise FolaiError(f"event decay must be > 0 s, got {decay}")
        if 1.0 / self.rate > 2.0 * attack and self.n_frames:
            # rows further apart than the attack (a CSV of 10 rows/s loaded as it is): the event
            # peaks on the nearest row. Sampled between rows, it had lost its attack's top (a
            # 0.3 event became 0.125, on the next row)
            time = self.start + min(self.n_frames - 1, max(0, round((time - self.start) * self.rate))) / self.rate
        dt = self.times - time
        shape = np.where(dt < 0, np.exp(-((dt / max(attack, 1e-6)) ** 2)), np.exp(-np.maximum(dt, 0) / decay))
        return self._with(np.maximum(self.values, (level * shape)[None].astype(np.float32)))

    def remove(self, t0: float, t1: float) -> "Envelope":
        """Silence everything in [t0, t1) (delete the events there)."""
        if t1 <= t0:
            raise FolaiError(f"remove needs t0 < t1, got {t0} >= {t1}")
        v = self.values.copy()
        v[:, self._range(t0, t1)] = 0.0
        return replace(self, values=v)

    def gate(self, threshold: float, t0: float | None = None, t1: float | None = None) -> "Envelope":
        """Set values below ``threshold`` to 0 (in [t0, t1) if given). A stereo envelope is gated
        by its level (:attr:`mono`), both channels at once: gated one by one, the quiet side of a
        panned sound went and the sound moved to the other."""
        v = self.values.copy()
        s = self._range(t0, t1)
        seg = v[:, s]
        seg[:, self.mono[s] < threshold] = 0.0
        v[:, s] = seg
        return replace(self, values=v)

    def clip(self, lo: float = 0.0, hi: float = 1.0) -> "Envelope":
        """Limit values to [lo, hi]. A stereo envelope's level (:attr:`mono`) is limited, both
        channels scaled alike, so that a panned sound keeps its side."""
        if not 0.0 <= lo <= hi <= 1.0:
            raise FolaiError(f"clip needs 0 <= lo <= hi <= 1, got lo={lo}, hi={hi}")
        if self.channels == 1:
            return replace(self, values=np.clip(self.values, lo, hi).astype(np.float32))
        return replace(self, values=_with_level(self.values, np.clip(self.mono, lo, hi)))

    def draw(self, times: Sequence[float], levels: Sequence[float]) -> "Envelope":
        """Replace the curve between min(times) and max(times) by the polyline through the points."""
        t = np.asarray(times, dtype=np.float64)
        lv = np.asarray(levels, dtype=np.float64)
        if t.shape != lv.shape or t.size < 2:
            raise FolaiError("draw needs at least two (time, level) points of equal count")
        order = np.argsort(t)
        t, lv = t[order], np.clip(lv[order], 0.0, 1.0)
        s = self._range(t[0], t[-1] + 1.0 / self.rate)
        v = self.values.copy()
        drawn = np.interp(self.times[s], t, lv)
        # a stereo envelope keeps each frame's side (where it had none, the drawn level is centred)
        v[:, s] = drawn[None] if self.channels == 1 else _with_level(v[:, s], drawn)
        return self._with(v)

    def events(self, threshold: float = 0.02, min_gap: float = 0.05) -> list[tuple[float, float]]:
        """Local maxima above ``threshold`` at least ``min_gap`` s apart: [(time_s, level), ...]."""
        from scipy.signal import find_peaks

        x = self.mono
        if x.size < 3:
            return []
        gap = max(1, int(round(min_gap * self.rate)))
        peaks = list(find_peaks(x, height=threshold, distance=gap)[0])
        # a hit on the first frame, falling from there (a curve that starts with a sound): the
        # sampler sounds it, and it had no dot in the studio to drag (found by a review)
        if x[0] >= threshold and x[0] > x[1] and (not peaks or peaks[0] >= gap or x[peaks[0]] < x[0]):
            peaks = [0] + [p for p in peaks if p >= gap]
        return [(float(self.start + p / self.rate), float(x[p])) for p in peaks]

    # -- file I/O
    def save_csv(self, path: str | os.PathLike) -> Path:
        """Write the SPEC CSV (``time_s,rms`` or ``time_s,rms_left,rms_right``) atomically."""
        from .paths import atomic_output

        with atomic_output(path) as tmp:
            tmp.write_text(self.to_csv_string())
        return Path(path)

    def to_csv_string(self) -> str:
        buf = io.StringIO()
        header = ["time_s", "rms"] if self.channels == 1 else ["time_s", "rms_left", "rms_right"]
        buf.write(",".join(header) + "\n")
        # each level as the shortest text that reads back as the same float32 (a typed 0.6 had
        # come back as 0.600000024, so a diff of an edited CSV flagged every row it touched)
        vals = self.values.astype(np.float32, copy=False)
        for i, t in enumerate(self.times):
            cells = ",".join("0" if x == 0 else str(x) for x in vals[:, i])
            buf.write(f"{t:.6f},{cells}\n")
        return buf.getvalue()

    @classmethod
    def load_csv(cls, path: str | os.PathLike) -> "Envelope":
        """Read an envelope CSV; reject bad files with a message naming the line and the problem."""
        p = Path(path)
        if not p.exists():
            raise FolaiError(f"envelope file not found: {p}")
        if p.is_dir():  # (a tab-completed folder: it had been an internal IsADirectoryError)
            raise FolaiError(f"the envelope {p} is a folder, expected a CSV file")
        try:
            # UTF-8 whatever the machine's locale (a spreadsheet's "CSV UTF-8" with its byte-order
            # mark had been refused under a non-UTF-8 locale: Windows' cp1252, POSIX)
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise EnvelopeFormatError(f"{p}: not a text CSV file (expected header 'time_s,rms')") from None
        except OSError as e:  # (permissions, a share gone: had been an internal error)
            raise FolaiError(f"cannot read the envelope {p}: {e.strerror or e}") from None
        return cls.from_csv_string(text, name=str(p))

    @classmethod
    def from_csv_string(cls, text: str, name: str = "<envelope>") -> "Envelope":
        """Parse the CSV text of an envelope (line endings of any system); errors name the line."""
        text = text.replace("\r\n", "\n").replace("\r", "\n")  # as reading a file in text mode does
        text = text.removeprefix("\ufeff")  # the byte-order mark of Excel's "CSV UTF-8"
        # the rows are read one at a time (a list of every row's cells took ~37x the file's size:
        # 830 MB for a 3-hour envelope; found by a review), each with the file line it ends on (a
        # blank line, or a quoted cell over two lines, is not a row: the time-step error had named
        # the wrong line after blank lines)
        def blank(row) -> bool:
            return not row or all(not c.strip() for c in row)

        reader = csv.reader(_lines(text))
        try:
            first = next(reader, None)
            while first is not None and blank(first):  # (blank lines before the header: skipped, as after it)
                first = next(reader, None)
        except csv.Error as e:
            raise EnvelopeFormatError(f"{name}: not a CSV file ({e}); expected header 'time_s,rms'") from None
        if first is None:
            raise EnvelopeFormatError(f"{name}: file is empty (expected header 'time_s,rms')")
        header_line = reader.line_num
        decimal_comma = False
        if len(first) == 1 and (";" in first[0] or "\t" in first[0]):
            # a spreadsheet's CSV in a locale that writes "0,25" (LibreOffice and Excel take the
            # separators from the system's settings, not from the save dialog): semicolons or tabs
            # between the columns, decimal commas in the cells. Unambiguous with this header
            reader = csv.reader(_lines(text), delimiter=";" if ";" in first[0] else "\t")
            first = next(reader)
            while reader.line_num < header_line:  # the header line found above, split again
                first = next(reader)
            decimal_comma = True
        header = [h.strip() for h in _without_trailing_empty(first)]  # (a spreadsheet's empty last column)
        if header == ["time_s", "rms"]:
            nch = 1
        elif header == ["time_s", "rms_left", "rms_right"]:
            nch = 2
        else:
            raise EnvelopeFormatError(
                f"{name}: line {header_line}: bad header {','.join(header)!r}; expected 'time_s,rms' or "
                f"'time_s,rms_left,rms_right'{_header_hint(header)}"
            )
        times = array.array("d")
        vals = array.array("f")  # nch per row
        at = array.array("q")  # the file line of each data row

        def rows_of(reader):
            try:
                for row in reader:
                    yield reader.line_num, row
            except csv.Error as e:
                raise EnvelopeFormatError(f"{name}: line {reader.line_num}: not a CSV line ({e})") from None

        for lineno, row in rows_of(reader):
            if blank(row):
                continue
            row = _without_trailing_empty(row, nch + 1)
            if len(row) != nch + 1:
                raise EnvelopeFormatError(f"{name}: line {lineno}: expected {nch + 1} columns, found {len(row)}")
            try:
                if any("_" in c for c in row):  # Python reads "0_5" as 5
                    raise ValueError
                if decimal_comma:
                    if any("," in c and "." in c for c in row):  # "1.234,5": grouped digits
                        raise ValueError
                    row = [c.replace(",", ".") for c in row]
                nums = [float(c) for c in row]
            except ValueError:
                cells = " | ".join(repr(c) for c in row)
                comma = not decimal_comma and any("," in c for c in row)  # a quoted "0,25": a decimal comma
                grouped = any("," in c and "." in c for c in row)  # "1,234.5" or "1.234,5"
                raise EnvelopeFormatError(
                    f"{name}: line {lineno}: not a number: {cells}"
                    + (" (digits grouped in thousands: write the numbers without a thousands separator)"
                       if grouped else " (decimal commas: save with a point as the decimal separator)" if comma
                       else "")
                ) from None
            if any(math.isnan(x) or math.isinf(x) for x in nums):
                raise EnvelopeFormatError(f"{name}: line {lineno}: NaN or infinite value")
            t, *v = nums
            for x in v:
                if x < -1e-6:  # (-1e-17: a script's float noise, read as 0, as 1 + 1e-7 is read as 1)
                    raise EnvelopeFormatError(f"{name}: line {lineno}: negative rms {x}; values must be in [0, 1]")
                if x > 1 + 1e-6:  # (1.0000001: a script's float noise, read as 1)
                    raise EnvelopeFormatError(f"{name}: line {lineno}: rms {x} > 1; values must be in [0, 1]")
            if times and t <= times[-1]:
                # the same time twice: most often a spreadsheet's display rounding (0.01 s) saved
                # as the value, which read as rows out of order
                rounded = t == times[-1] and len(row[0].strip().partition(".")[2]) <= 2
                raise EnvelopeFormatError(
                    f"{name}: line {lineno}: time {t} is not after the previous {times[-1]}; times must increase"
                    + (" (the times look rounded: write the time column with 3 or more decimals; folai's "
                       "rows are 0.008 s apart)" if rounded else "")
                )
            times.append(t)
            vals.extend(min(max(x, 0.0), 1.0) for x in v)
            at.append(lineno)
        if not times:
            raise EnvelopeFormatError(f"{name}: has no data rows (a header alone); an envelope needs at least one")
        if len(times) == 1:
            # one row tells no rate: the SPEC's (what folai writes for a clip of one frame, as
            # generate does for a 1-frame video; it had written a CSV that it refused to read)
            return cls(np.frombuffer(vals, np.float32).reshape(1, nch).T.copy(), rate=DEFAULT.rate,
                       start=float(times[0]))
        ta = np.frombuffer(times, np.float64)
        d = np.diff(ta)
        step = float(np.median(d))
        if step > 1.0:  # (times in milliseconds made a 10 s curve 10000 s long; 1e308 a rate of 0)
            raise EnvelopeFormatError(
                f"{name}: rows are {step:g} s apart; an envelope has at least one row per second "
                "(the time column is in seconds)"
            )
        if step < 0.99e-4:  # (rows 1 us apart made a 0-sample render, "done")
            raise EnvelopeFormatError(
                f"{name}: rows are {step:g} s apart; an envelope has at most 10000 rows per second "
                "(the time column is in seconds)"
            )
        if step >= 0.1 and np.all(ta == np.round(ta)):
            # whole numbers 1 s or more apart: most likely frame numbers (a 4 s edit at 30 fps had
            # rendered 2 minutes without a word); coarse seconds are kept, but said
            log.warning("%s: the times are whole numbers %g apart, read as seconds (%g s in all); if they are "
                        "video frame numbers, divide them by the frame rate", name, step, ta[-1] - ta[0])
        tol = max(2e-6, 1e-3 * step)
        quantum = 0.0  # the rounding of the times (a spreadsheet's: 3 or 4 decimals), if coarser than a row's jitter
        for decimals in (3, 4, 5):
            q = 10.0 ** -decimals
            if q > 1e-3 * step and np.allclose(ta / q, np.round(ta / q), rtol=0.0, atol=1e-3):
                # at a rate that is not a whole number of quanta (29.97 or 44.1 rows/s) two rows'
                # steps differ by up to one quantum
                quantum = q
                break
        tol = max(tol, 1.0005 * quantum)
        bad = np.nonzero(np.abs(d - step) > tol)[0]
        if bad.size:
            k = int(bad[0])
            # (a fine grid, 24-125 rows/s, written with 2 decimals: steps off by the rounding only;
            # not an exact 2-decimal grid with a row missing, which the rounding would not explain)
            rounded = (step < 0.1 and bool(np.allclose(ta * 100.0, np.round(ta * 100.0), rtol=0.0, atol=1e-6))
                       and bool(np.all(np.abs(d - step) <= 0.0100001)))
            hint = (" (the times look rounded to 2 decimals: write the time column with 3 or more decimals)"
                    if rounded else "")
            if d.size - bad.size >= max(2, bad.size):
                # most rows keep one step: the row that breaks it
                raise EnvelopeFormatError(
                    f"{name}: line {at[k + 1]}: this row is {d[k]:.6f} s after the previous one, where the rows "
                    f"are {step:.6f} s apart; the rows must be evenly spaced in time{hint}"
                )
            # (too few rows, or no one step among them, to say which row is off: the median had been
            # given as the step expected, a step found nowhere in the file; found by a review)
            steps = ", ".join(f"{x:.6g}" for x in d[:6]) + (", ..." if d.size > 6 else "")
            raise EnvelopeFormatError(
                f"{name}: the rows must be evenly spaced in time (one row every 1/rate s, e.g. 0.008 s as "
                f"folai writes them); the steps between its rows are {steps} s{hint}"
            )
        k = np.arange(len(ta), dtype=np.float64)
        slope = (ta[-1] - ta[0]) / (len(ta) - 1)
        line = ta[0] + k * slope
        off = 0.01 * step  # (rows are placed on this line: each must be on it, not only each step)
        if quantum and len(ta) > 2:  # rounded times: the line through them all
            slope, icpt = np.polyfit(k, ta, 1)
            line = icpt + k * slope
            off = max(off, _ROUNDED_OFF * quantum / 1e-3)  # (rounding moves a row by up to half a quantum)
        rate = round(1.0 / slope, 6)
        # steps that each pass but add up: a section re-timed to 9 ms steps in a 125 rows/s file,
        # or a 1000 rows/s file thinned to every other row, had each row's own time ignored and
        # the sound moved by up to 0.6 s (found by a review). (The line is the exact one, not the
        # rate rounded to 6 decimals: that had drifted 0.1 ms off folai's own 7-hour CSV at 86.13
        # rows/s, found by a review of this check)
        dev = np.abs(ta - line)
        if float(dev.max()) > max(off, 2e-6):
            j = int(np.argmax(dev))
            raise EnvelopeFormatError(
                f"{name}: line {at[j]}: time {ta[j]:g} is {dev[j] * 1000:.1f} ms off the even spacing of the "
                f"whole file ({slope:.6f} s); rows must be evenly spaced (a stretch re-timed or rows "
                "taken out? resample it to the file's step)"
            )
        return cls(np.frombuffer(vals, np.float32).reshape(-1, nch).T.copy(), rate=rate, start=float(ta[0]))

    # -- plot
    def plot(
        self,
        path: str | os.PathLike,
        waveform: np.ndarray | None = None,
        sr: float | None = None,
        title: str | None = None,
        events: Sequence[float] | None = None,
        width: int | None = None,
        height: int = 300,
        waveform_start: float | None = None,
    ) -> Path:
        """PNG of the curve over time, time axis in seconds, optionally over a waveform.

        waveform: (N,) or (C, N) samples at ``sr`` (any rate: a decimated peak curve works too),
        drawn in grey under the curve, scaled to the curve's peak; its first sample is at
        ``waveform_start`` s (default: the curve's start). A render covers the video from 0 s:
        under a curve edited to start later, generate passes 0 (the waveform had been drawn
        shifted by the curve's start). ``events``: times (s) marked in red.
        Drawn with OpenCV (fast; no matplotlib needed).
        """
        import cv2

        from .marks import png_with_software
        from .paths import atomic_output

        W = width or int(min(2400, max(800, self.duration * 120)))
        H = height
        left, right, top, bottom = 56, 14, 26, 34
        pw, ph = W - left - right, H - top - bottom
        img = np.full((H, W, 3), 255, np.uint8)
        top_v = float(self.values.max()) if self.values.size else 0.0
        vmax = (top_v if top_v > 1e-6 else 1.0) * 1.1  # an all-silent curve: an axis of 0..1
        t0, t1 = self.start, max(self.end, self.start + 1e-6)

        def xpix(t):
            return left + (np.asarray(t, dtype=np.float64) - t0) / (t1 - t0) * pw

        def ypix(v):
            return top + ph - np.asarray(v, dtype=np.float64) / vmax * ph

        # grid, ticks and labels
        span = t1 - t0
        step = next(s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600) if span / s <= 12)
        font = cv2.FONT_HERSHEY_SIMPLEX
        for tk in np.arange(np.ceil(t0 / step) * step, t1 + 1e-9, step):
            x = int(round(float(xpix(tk))))
            cv2.line(img, (x, top), (x, top + ph), (235, 235, 235), 1)
            cv2.line(img, (x, top + ph), (x, top + ph + 4), (0, 0, 0), 1)
            label = f"{tk:g}"
            cv2.putText(img, label, (x - 4 * len(label), top + ph + 16), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        for frac in (0.0, 0.5, 1.0):
            v = vmax / 1.1 * frac
            y = int(round(float(ypix(v))))
            cv2.line(img, (left - 4, y), (left, y), (0, 0, 0), 1)
            cv2.putText(img, f"{v:.2f}", (4, y + 4), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        if waveform is not None:
            if sr is None:
                raise ValueError("plot(waveform=...) needs sr")
            w = np.asarray(waveform, dtype=np.float32)
            w = np.abs(w).max(axis=0) if w.ndim == 2 else np.abs(w)
            if w.size:
                w0 = t0 if waveform_start is None else float(waveform_start)
                tw = w0 + np.arange(len(w)) / sr - t0
                keep = (tw >= 0) & (tw <= t1 - t0)  # (what lies outside the axis is not drawn)
                cols = np.clip((tw[keep] / (t1 - t0) * pw).astype(np.int64), 0, pw - 1)
                colmax = np.zeros(pw, np.float32)
                np.maximum.at(colmax, cols, w[keep])
                peak = float(colmax.max()) or 1.0
                hpx = colmax / peak * (vmax / 1.1) / vmax * ph
                mid = top + ph
                for c in np.nonzero(hpx >= 0.5)[0]:
                    cv2.line(img, (left + int(c), mid), (left + int(c), int(round(mid - hpx[c]))), (205, 205, 205), 1)
        if events:
            for t in events:
                x = int(round(float(xpix(t))))
                cv2.line(img, (x, top), (x, top + ph), (60, 60, 230), 1)
        colors = [(200, 110, 30), (40, 140, 40)]
        names = ["rms"] if self.channels == 1 else ["rms left", "rms right"]
        # more frames than pixel columns: each group of frames is drawn as its lowest and highest
        # value (in their order), so every peak keeps its height; every stride-th frame alone drew
        # 162 equal hits over 10 minutes as a sawtooth of 0.04 to 0.8
        stride = max(1, self.n_frames // (pw * 2))
        for k, (ch, col) in enumerate(zip(self.values, colors)):
            if stride == 1:
                xs, ys = xpix(self.times), ch
            else:
                ng = -(-ch.size // stride)
                g = np.pad(ch, (0, ng * stride - ch.size), mode="edge").reshape(ng, stride)
                lo, hi = g.argmin(axis=1), g.argmax(axis=1)
                first = np.where(lo <= hi, lo, hi)
                second = np.where(lo <= hi, hi, lo)
                idx = np.stack([first, second], axis=1) + (np.arange(ng) * stride)[:, None]
                idx = np.minimum(idx.ravel(), ch.size - 1)
                xs, ys = xpix(self.times[idx]), ch[idx]
            pts = np.stack([xs, ypix(ys)], axis=1).round().astype(np.int32)
            cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, col, 1, cv2.LINE_AA)
            cv2.putText(img, names[k], (W - right - 90, top + 14 + 14 * k), font, 0.4, col, 1, cv2.LINE_AA)
        cv2.rectangle(img, (left, top), (left + pw, top + ph), (0, 0, 0), 1)
        cv2.putText(img, title or f"RMS envelope ({self.rate:g} frames/s, {self.duration:.2f} s)", (left, 17), font,
                    0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, "time (s)", (left + pw // 2 - 25, H - 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        ok, buf = cv2.imencode(".png", img)
        if not ok:  # pragma: no cover
            raise FolaiError("could not encode the envelope plot as PNG")
        with atomic_output(path) as tmp:
            tmp.write_bytes(png_with_software(buf.tobytes()))  # (marked: generate replaces its own plots only)
        return Path(path)
