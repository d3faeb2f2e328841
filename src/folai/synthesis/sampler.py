"""The offline synthesis backend ``sampler``: envelope-following sample / procedural synthesis.

No weights, CPU only. Given an RMS :class:`~folai.envelope.Envelope` (the SPEC envelope: 16 kHz,
peak-normalised, RMS 512/128 -> 125 frames/s, smoothed over 15 frames) it renders 44.1 kHz stereo
whose own SPEC envelope follows the input:

1. **Events.** Sudden onsets are found in the envelope. A box-smoothed envelope rises ``K // 2 + 1``
   frames before the sound that caused it (K = smoothing kernel), with a jump in its slope at the
   first frame of the rise; a sharp (unsmoothed: hand-drawn, a timing model's impacts) rise tops
   out at the event. Both kinds are recognised (sub-frame times); a quantised or jittery curve is
   lightly smoothed first.
2. **Each event's own RMS** is read back from the envelope (for a box-smoothed one by
   ``r[f] = K * slope + r[f - K]``), and its one-shot (a procedural preset hit, or a take cut from
   the user's recordings) is scaled to it, with a falling texture tail where the one-shot dies too
   soon.
3. **Sustained parts.** What wide bumps and plateaus of the envelope are not explained by events
   (a grey opening of the curve minus a model of the events' bumps and tails) becomes the level of
   a continuous texture (scratch / rub / slide).
4. **Level matching.** The candidate's own SPEC envelope is measured (mono, 16 kHz, RMS, the
   envelope's smoothing) and a smooth gain ``target / measured`` applied, a few passes; attacks
   are sharpened and peaks limited so that the loudest event within ``peak_window`` s peaks at full
   scale, as in the peak-normalised recording the envelope describes. Transients stay sharp
   because the gain is smooth and the attack is where the one-shot put it.

Everything is computed in fixed 2 s blocks with context, and all randomness is derived from the
seed and either the event's quantised time or the fixed texture block's index, so
``render_span`` returns bit-for-bit the same samples as the full render, and editing the envelope
in one place leaves the audio away from the edit unchanged (events more than ``peak_window`` s
away, plus the context, are untouched). User documentation: ``docs/sampler.md``.

Example::

    >>> import numpy as np
    >>> from folai.envelope import Envelope
    >>> from folai.synthesis.sampler import SamplerSynth
    >>> env = Envelope.zeros(2.0).add_event(0.5, 0.3).add_event(1.2, 0.2)
    >>> audio = SamplerSynth().render(env, duration=2.0, prompt="metal", progress=False)
    >>> audio.shape, audio.dtype
    ((2, 88200), dtype('float32'))
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from ..envelope import DEFAULT as ENV_DEFAULT
from ..envelope import Envelope, smooth
from ..errors import FolaiError
from ..metrics.sync import SILENT_PEAK
from .presets import DEFAULT_PRESET, Preset, get_preset, list_presets, match_preset

__all__ = ["SamplerSynth", "list_presets", "match_preset", "detect_events", "Event"]

log = logging.getLogger(__name__)

SR = 44100
_HOP44 = SR * ENV_DEFAULT.hop_length / ENV_DEFAULT.sr  # 352.8 samples per envelope frame
_ALIGN = 1764  # 5 frames = 640 samples at 16 kHz: windows starting here align both grids
_BLOCK = 50 * _ALIGN  # 2 s output blocks
_CTX = 10 * _ALIGN  # 0.4 s of context on each side for the level matching
_TEX = 22050  # texture blocks (0.5 s), overlapped by half with power-complementary windows
_MAX_EVENT = 2.0  # seconds: no one-shot is longer
#: a one-shot whose event still sounds at _MAX_EVENT fades out over its last this many seconds,
#: while texture takes over (the plan's fill): cut there, the level matching's gain jumped with
#: the texture after it, heard and detected as a hit
_HANDOVER = 0.3


def _handover(first: float, n_frames: int, rate: float) -> np.ndarray:
    """(n_frames,) an event's share of its own shape per envelope frame (frame 0 at ``first`` s
    after its onset): 1, then falling linearly over :data:`_HANDOVER` s to 0 at :data:`_MAX_EVENT`."""
    t = first + np.arange(n_frames) / rate
    return np.clip((_MAX_EVENT - t) / _HANDOVER, 0.0, 1.0)


def _hands_over(want: np.ndarray, first: float, rate: float) -> bool:
    """Whether an event's shape (``want`` per frame from ``first`` s after its onset) still sounds
    where its one-shot must fade out (over -60 dB of its loudest at the fade's start)."""
    j = int(np.ceil((_MAX_EVENT - _HANDOVER - first) * rate))
    return 0 <= j < want.size and float(want[j]) > 1e-3 * float(want.max())
_BANK, _BANK_LEN = 3, int(2.5 * SR)  # textures are stretches of a few stored ones (speed)
#: a reference recording longer than this (s) is filtered and its onsets found in blocks of this
#: length (with 1 s of context each side), so that memory does not grow with its length: a
#: 20-minute recording analysed at once took 2.1 GB (librosa's spectrogram of it, twice)
_REF_BLOCK = 60.0
_BAR_FROM = 3  # blocks (of _REF_BLOCK) from which cutting a recording shows a progress bar: over 2 minutes
#: the texture's grains come from at most this much of each recording (s): a longer one gives
#: evenly spread excerpts of _MATERIAL_PIECE s
_MATERIAL_MAX, _MATERIAL_PIECE = 300.0, 10.0


@dataclass(frozen=True)
class Event:
    """An onset found in the envelope."""

    time: float  # seconds from the envelope's first frame (sub-frame precision)
    level: float  # the envelope's peak over the event's bump (SPEC units)
    strength: float  # the estimated jump of the unsmoothed RMS at the onset
    decay: float  # estimated decay time constant of the sound's RMS (s)
    sharp: bool  # the envelope rose in one frame (not smoothed)
    rise: int = 0  # envelope frame where the rise starts


# ----------------------------------------------------------------------------- analysis


def _solve_tau(s: float, n: int) -> float:
    """tau (frames) with sum_{m<n} exp(-m/tau) == s (1 <= s <= n)."""
    s = min(max(s, 1.0001), n - 1e-3)
    lo, hi = 0.01, 1e4
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        r = math.exp(-1.0 / mid)
        val = (1 - r**n) / (1 - r)
        if val < s:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


#: the envelope level of a hit that peaks at full scale in a peak-normalised recording (the
#: SPEC envelope's typical Greatest Hits impact; the motion timing gives its strongest hits this)
_FULL_SCALE_LEVEL = 0.09

#: an onset's jump must be at least this share of the level it rises from, and on a quantised
#: curve this many classes of the SPEC's mu-law (a class is 8-9 % of the level over 0.05, 14 % at
#: 0.01, 20 % at 0.005): see detect_events
_MIN_RISE, _MIN_CLASSES = 0.15, 2.5
#: ... and this many robust deviations of the curve's frame-to-frame change around it
_NOISE_SIGMAS = 3.0
#: ... and on a classifier's classes, a rise to the top of this many classes
_TOP_CLASSES = 2.5


def _class_step(level: float) -> float:
    """d rms / d class of the SPEC's mu-law classes at ``level``."""
    mu = float(ENV_DEFAULT.mu)
    return (1.0 + mu * max(level, 0.0)) * math.log1p(mu) / mu / ENV_DEFAULT.n_classes


def _min_rise(base: float, classes: bool) -> float:
    """The least jump that is an onset over ``base``: :data:`_MIN_RISE` of it, and with ``classes``
    (a quantised curve) :data:`_MIN_CLASSES` of the mu-law's classes there."""
    if base <= 0:
        return 0.0
    return max(_MIN_RISE * base, _MIN_CLASSES * _class_step(base)) if classes else _MIN_RISE * base


def detect_events(
    e: np.ndarray, rate: float = ENV_DEFAULT.rate, kernel: int = ENV_DEFAULT.smooth_kernel, sensitivity: float = 1.0,
    robust: bool = False, classes: np.ndarray | None = None,
) -> list[Event]:
    """Onsets of a mono envelope ``e`` (T,) at ``rate`` frames/s smoothed over ``kernel`` frames.

    ``robust``: the curve steps or jitters (a classifier's classes); an onset's slope must then
    stay up for 5 frames. ``classes``: (T,) bool, the frames whose curve was a classifier's mu-law
    classes (:func:`_on_class_grid`): an onset there must rise by more than a flicker of its
    classes. A frame-local rule, so an edit of the envelope changes only the events near it.
    """
    e = np.asarray(e, dtype=np.float64)
    T = e.size
    if T < 4:
        return []
    K = max(1, int(kernel))
    half = K // 2
    pad = K + 8
    ep = np.pad(e, (pad, pad))
    d = np.diff(ep, prepend=ep[0])  # d[i] = e[i] - e[i-1]
    J = np.diff(d, prepend=d[0])  # jump of the slope
    Jp = np.maximum(J, 0.0)
    loc = ndimage.maximum_filter1d(ep, size=int(2 * rate) + 1, mode="constant")
    # the curve's own frame-to-frame jitter around each frame, as a deviation of its change: a
    # robust one (over 1 s) of its second difference, / sqrt(3) (for white jitter the change's
    # deviation; a decay, however steep, curves little from frame to frame). An onset must stand
    # out of it (see _NOISE_SIGMAS)
    noise = (1.4826 / math.sqrt(3.0)) * ndimage.median_filter(np.abs(J), size=int(rate) + 1, mode="nearest")
    jmax = ndimage.maximum_filter1d(J, size=5, mode="constant")
    cand = np.nonzero((J > 0) & (J >= jmax))[0]
    events: list[tuple[float, Event]] = []
    for i in cand:
        if i < pad - half - 2 or i >= T + pad:
            continue
        base = float(ep[i - 1])
        # The top of this rise: up to K + 3 frames on (a box-smoothed rise climbs for the box's
        # length), but not past a fall under 4/5 of the rise so far, counted once that rise is
        # itself an onset's (_MIN_RISE of where it started) or when the curve goes under where it
        # started (a knee in a decay, not a rise). Where it started: the lowest of the frame before
        # and the first three (a box-smoothed rise's slope jumps a frame or two before its trough;
        # a second hit's candidate can sit in the first's trough). Found by reviews: a louder hit
        # 60-140 ms after a sharp one had lent it its top, and the first was read as a smoothed
        # rise, ~60 ms late with silence at its time, or lost (ghosts 64-76 ms before hits on the
        # motion timing's curves at 6-10 hits/s); measured from the frame before alone, the second
        # of two recorded knocks was lost; counted from the first frame, a wobble cut a slow rise.
        ahead = ep[i : i + K + 3]
        low = min(base, float(ahead[:3].min()))
        risen = np.maximum.accumulate(ahead) - low
        fell = np.nonzero((ahead - low < 0.8 * risen) & ((risen > _MIN_RISE * low) | (ahead < low)))[0]
        peak = float(ahead[: max(1, int(fell[0]))].max() if fell.size else ahead.max())
        h = peak - base
        if h <= 0:
            continue
        # unsmoothed: most of the rise within two frames (a hit drawn as a jump, the motion
        # timing's 16 ms attacks); or a ramp that gets within a fifth of its top in 6 frames
        # (48 ms: drawn by hand, or a 24-30 fps curve brought to 125 frames/s) and then falls by a
        # fifth within 8 frames: a box-smoothed hit holds near its top for the box's length.
        # Read as smoothed, such a ramp was placed ~45 ms late with a hole after it
        # A ring that decays slowly does not fall by a fifth in 8 frames, but it falls from its top
        # on every frame, by 3 % of its rise or more over 8 frames, where a box-smoothed hit rises
        # or holds (its box still gathers the sound) until the box's length has passed
        sharp = (ep[i + 1] - ep[i - 1]) >= 0.6 * h
        if not sharp:
            top = np.nonzero(ep[i : i + 6] >= base + 0.8 * h)[0]
            if top.size:
                j = i + int(top[0])
                sharp = j + 8 < ep.size and ep[j + 8] - base < 0.8 * h
                if not sharp and j + K + 8 < ep.size:
                    k = j + int(np.argmax(ep[j : j + 3]))
                    tail = ep[k : k + 9]
                    sharp = bool(np.all(np.diff(tail) < 0)) and tail[0] - tail[-1] >= 0.03 * h
                    # ... and its fall slows down (a decay is convex): a box-smoothed hit's plateau
                    # can fall a little on every frame too (an earlier ring leaving the box), but
                    # then it falls off a cliff when the hit leaves the box, K frames on
                    sharp = sharp and bool(np.all(np.diff(ep[k : k + K + 5], 2) >= -0.01 * h))
        rise_at, h_jump = i, h
        if sharp:
            # the rise starts at its foot: an attack over two or more frames (0 -> 0.3 -> 1, a
            # 50-100 rows/s jump brought to 125 frames/s) was measured from its first rising
            # frame, and the sound was cut to silence where the ring fell below that frame's level.
            # A frame counts while it rises by 2 % of the jump or more (not a Gaussian's tail), and
            # only a foot within 5 frames counts (a box-smoothed rise climbs for the box's length)
            f = i - 1
            while f > i - 6 and ep[f] - ep[f - 1] > 0.02 * (peak - ep[f - 1]):
                f -= 1
            if f > i - 6:
                rise_at, base = f + 1, float(ep[f])
                h = peak - base
        # A: the jump of the unsmoothed RMS at the onset. The threshold is relative to the loudest
        # envelope level within 1 s; a smoothed envelope's level is about half its RMS jumps.
        if sharp:
            A = h_jump
        elif robust:
            # the slope must stay up: the mean slope over the next 5 frames against the 5 before
            # (a lone step of a quantised or jittery curve does not keep rising)
            A = (float(d[i : i + 5].mean()) - float(d[i - 5 : i].mean())) * K / 0.75
        else:
            # the jump of the slope, times K, is the jump of the unsmoothed RMS (exact for a box)
            A = float(Jp[i - 1 : i + 3].sum()) * K
        thr = max(0.004, (0.1 if sharp else 0.2) * float(loc[i])) / sensitivity
        # ... and the jump 15 % of the level it rises from (_min_rise, scaled by `sensitivity`)
        # and 3 deviations of the curve's own jitter; on a classifier's classes (`classes`) 2.5 of
        # its mu-law classes too, and as many for the rise to the top (the mean slopes of a smoothed
        # flicker can add up to a jump). A steady level whose class flips by one or two steps (a
        # classifier's output on a scrape or rain) had become 40-130 knocks in 20 s, each near full
        # scale (found by a review); elsewhere not: the box-smoothed RMS of a knock 5-7 dB over a
        # noisy texture rises by only ~20 %, and read so it was lost (found by a review of the
        # first fix)
        quant = classes is not None and bool(classes[min(max(i - pad, 0), T - 1)])
        least = max(_min_rise(base, classes=quant) / sensitivity, _NOISE_SIGMAS * float(noise[i]))
        if A < thr or A < 0.4 * h_jump or A < least:
            continue
        if quant and not sharp and h < _TOP_CLASSES * _class_step(base) / sensitivity:
            continue
        w = Jp[i - 2 : i + 3]
        c = float((np.arange(-2, 3) * w).sum() / w.sum())
        if sharp:
            # an unsmoothed rise peaks with the sound's attack: the onset is where it (nearly) tops out
            top = np.nonzero(ep[i : i + 6] >= base + 0.8 * h)[0]
            t_frame = i + (float(top[0]) if top.size else c) - 0.25
            # decay: frames until the curve falls to 1/e of its rise, past its top (the first
            # frames of a ramp are under that already)
            after = ep[i : i + int(rate)] - base
            k = int(top[0]) if top.size else 0
            below = np.nonzero(after[k:] < h / math.e)[0] + k
            tau_f = float(below[0]) if below.size else rate
        else:
            t_frame = i + c + half + _ONSET_OFFSET
            prof = d[i : i + K] - min(0.0, float(d[i - 1]))
            prof = np.maximum(prof, 0.0)
            s = float(prof.sum() / (prof.max() + 1e-12))
            tau_f = _solve_tau(s, K) - 1.5  # the 32 ms RMS window spreads the attack over ~3 frames
        tau_f = min(max(tau_f, 0.5), 2 * rate)
        ev = Event(time=(t_frame - pad) / rate, level=peak, strength=A, decay=tau_f / rate, sharp=bool(sharp),
                   rise=int(rise_at - pad))
        events.append((A, ev))
    events.sort(key=lambda p: p[1].time)
    # merge onsets closer than 30 ms: keep the stronger
    out: list[tuple[float, Event]] = []
    for A, ev in events:
        if out and ev.time - out[-1][1].time < 0.03:
            if A > out[-1][0]:
                out[-1] = (A, ev)
            continue
        # a small step within 80 ms of a much stronger onset is part of its rise, not a hit
        if out and ev.time - out[-1][1].time < 0.08 and A < 0.25 * out[-1][0]:
            continue
        out.append((A, ev))
    return [ev for _, ev in out if ev.time > -0.05]


# where, within the rise of a box-smoothed envelope, the sound starts: the rise begins half a kernel
# before the onset frame, and the centred 32 ms RMS window sees the sound one more frame early.
_ONSET_OFFSET = 0.8


def _is_rough(e: np.ndarray) -> bool:
    """Whether a curve steps or jitters from frame to frame (quantised classes, a model's argmax).

    On its loud frames, a smoothed recording's envelope has a slope that changes little from frame
    to frame (median |second difference| / median |slope| 0.1-0.4) and never stands still; a
    quantised one stands still on many frames, a jittery one flips its slope (ratio ~1).
    """
    if e.size < 8 or e.max() <= 0:
        return False
    d = np.diff(e)
    jj = np.diff(d)
    loud = e[1:-1] > 0.05 * e.max()
    if loud.sum() < 8:
        return False
    ad, aj = np.abs(d[1:][loud]), np.abs(jj[loud])
    still = float(np.mean(ad < 1e-7))
    return still > 0.1 or float(np.median(aj)) > 0.6 * float(np.median(ad)) + 1e-12


def _on_class_grid(e: np.ndarray) -> bool:
    """Whether a curve is a classifier's mu-law classes (``Envelope.from_classes``, as the learned
    timing writes): nine in ten of its sounding frames on the classes' levels (within 0.1 %, or a
    CSV's 6 decimals). A measured or drawn curve that merely jitters is not."""
    from ..envelope import classes_to_rms

    v = np.asarray(e, dtype=np.float64)
    v = v[v > 0]
    if v.size < 8:
        return False
    grid = classes_to_rms(np.arange(ENV_DEFAULT.n_classes), ENV_DEFAULT.mu).astype(np.float64)
    k = np.clip(np.searchsorted(grid, v), 1, grid.size - 1)
    near = np.minimum(np.abs(v - grid[k - 1]), np.abs(v - grid[k]))
    return float(np.mean(near <= np.maximum(1e-3 * v, 1e-6))) >= 0.9


def _event_bump(level: float, tau_frames: float, K: int) -> np.ndarray:
    """A model of the envelope bump of one event: box-smoothed exponential decay, peak ``level``."""
    n = int(min(6 * tau_frames, 500)) + K
    r = np.exp(-np.arange(n) / max(tau_frames, 0.5))
    b = np.convolve(r, np.ones(K) / K)  # index 0 == K//2 frames before the onset
    return level * b / (b.max() + 1e-12)


def event_shapes(e: np.ndarray, events: list[Event], kernel: int, rate: float, power: bool = False) -> list[np.ndarray]:
    """Each event's own unsmoothed RMS over time, per envelope frame from its onset frame on.

    For a box-smoothed envelope ``e = box_K(r)`` the slope gives ``r[f] = K (e[f-h] - e[f-h-1]) +
    r[f-K]`` (h = K // 2): starting from the level before the rise, this recovers the sound's
    RMS until the next event's rise (the two-stage decay of a real hit included). A sharp rise
    is its own RMS. The result never grows after its peak. Local: it reads ``e`` from the event's
    rise to the next event's. ``power``: ``e`` adds sounds by power (a stereo envelope's
    equal-power level, :func:`_level`), so a sharp event's own level is sqrt(e^2 - before^2).
    """
    e = np.asarray(e, dtype=np.float64)
    T = e.size
    K = max(1, int(kernel))
    h = K // 2
    out = []
    for n, ev in enumerate(events):
        s = ev.rise
        base = float(e[s - 1]) if s >= 1 else 0.0
        first = s if ev.sharp else s + h
        stop = first + int(2 * rate)
        if n + 1 < len(events):
            nxt = events[n + 1].rise
            stop = min(stop, nxt if (ev.sharp or events[n + 1].sharp) else nxt + h)
        stop = min(stop, T)
        if stop - first < 2:
            stop = min(T, first + 2)
        if (ev.sharp or K == 1) and power:
            r = np.sqrt(np.maximum(e[first:stop] ** 2 - base * base, 0.0))
        elif ev.sharp or K == 1:
            r = np.maximum(e[first:stop] - base, 0.0)
        else:
            r = np.zeros(max(0, stop - first))
            for f in range(first, stop):
                prev = r[f - K - first] + base if f - K >= first else base
                r[f - first] = max(0.0, K * (e[f - h] - e[f - h - 1]) + prev)
            r = np.maximum(r - base, 0.0)
        if r.size == 0:
            r = np.array([ev.level])
        r = np.convolve(np.pad(r, 1, mode="edge"), np.ones(3) / 3, mode="valid")
        k = int(np.argmax(r))
        r[k:] = np.minimum.accumulate(r[k:])
        # beyond the next event the sound goes on decaying as its rise says
        tau = max(ev.decay * rate, 1.0)
        more = int(min(5 * tau, 2 * rate))
        if more > 0 and r[-1] > 0:
            r = np.concatenate([r, r[-1] * np.exp(-np.arange(1, more + 1) / tau)])
        out.append(r)
    return out


# ----------------------------------------------------------------------------- sound sources


def _rng(seed: int, *keys: int) -> np.random.Generator:
    # every bit of the seed counts (the low 32 bits alone made --seed 0 and --seed 4294967296 the
    # same sound); a seed under 2**32 gives the entropy words it always did
    seed = int(seed)
    words = [seed & 0xFFFFFFFF]
    high = (seed & ((1 << 128) - 1)) >> 32
    while high:
        words.append(high & 0xFFFFFFFF)
        high >>= 32
    return np.random.default_rng([*words, *[int(k) & 0xFFFFFFFF for k in keys]])


class _PresetSource:
    def __init__(self, preset: Preset):
        self.preset = preset
        self.key = ("preset", preset.name)

    def impact(self, rng: np.random.Generator, ev: Event, variation: float, take: int | None) -> np.ndarray:
        scale = ev.decay / max(self.preset.natural_decay, 1e-3)
        scale = float(np.clip(scale, 0.5, 2.5)) ** 0.7
        scale *= float(np.exp(0.1 * variation * rng.standard_normal()))
        return self.preset.impact(rng, decay_scale=scale, variation=variation)

    def texture(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.preset.texture(rng, n)


def _no_swell_into_onsets(level: np.ndarray, events: Sequence[Event], K: int, rate: float) -> None:
    """Hold a texture level (per frame, in place) at most at its value from just before each
    event's rise until the onset: a texture swelling into an onset sounds (and detects) as an
    early hit."""
    T = level.size
    for ev in events:
        f_on = int(round(ev.time * rate))
        lo = f_on - K // 2 - 3
        if 0 <= lo < T:
            level[lo + 1 : f_on + 1] = np.minimum(level[lo + 1 : f_on + 1], level[lo])


def _low_hum(y: np.ndarray) -> bool:
    """Whether the quiet parts of a peak-normalised recording hold a steady low tone (mains hum, a
    rumble): the median of the quietest fifth of its 100 ms blocks (at most 64 of them) over -40 dB
    and mostly (70 % of its power) under 200 Hz. Knocks in a silent or broadband-noisy room have
    no such floor."""
    B = int(0.1 * SR)
    nb = y.size // B
    if nb < 2:
        return False
    rms = np.concatenate([np.sqrt(np.mean(np.square(y[i * B : j * B].astype(np.float64)).reshape(j - i, B), axis=1))
                          for i, j in ((i, min(nb, i + 1024)) for i in range(0, nb, 1024))])
    quiet = np.argsort(rms, kind="stable")[: max(1, nb // 5)]
    quiet = quiet[np.linspace(0, quiet.size - 1, min(64, quiet.size)).astype(np.int64)]
    if float(np.median(rms[quiet])) < 0.01:
        return False
    win = np.hanning(B)
    low = int(200.0 * B / SR) + 1  # rfft bins under 200 Hz
    share = []
    for q in quiet:
        p = np.abs(np.fft.rfft(y[q * B : (q + 1) * B].astype(np.float64) * win)) ** 2
        share.append(float(p[:low].sum() / (p.sum() + 1e-30)))
    return float(np.median(share)) > 0.7


def _rising_onsets(y: np.ndarray, onsets: np.ndarray, window: float = 0.02, ahead: float = 0.06,
                   rise: float = 2.0, hum: bool = False) -> np.ndarray:
    """The onsets (samples) where the level rises: the loudest 10 ms within ``ahead`` s after the
    onset at least ``rise`` times the RMS over the ``window`` s before it (onsets come
    backtracked to the quiet before an attack, so the attack itself may come a little later).
    librosa also marks the flux of a noisy decay (a scrape, a crumple, a knock's rattle) every few
    tens of ms; cut there, one sound became pieces shorter than a take, all dropped, and such a
    recording was refused as having no usable sound. With ``hum`` (:func:`_low_hum`), an onset
    that does not rise so broadband is measured again over 200 Hz: mains hum 10-12 dB under the
    hits had hidden their rise (takes of two hits, or the whole file one take; found by a review).
    Only then: in a clean file the re-test admitted librosa's onsets on the rattle or crackle in
    a low-bodied knock's decay, which fell into 30-70 ms pieces."""
    w, b = max(1, int(window * SR)), int(0.01 * SR)
    nb = max(1, int(round(ahead / 0.01)))

    def rises(x: np.ndarray, o: int) -> bool | None:
        after = x[o : o + nb * b].astype(np.float64)
        if after.size == 0:
            return None
        m = after.size // b  # whole 10 ms blocks (a shorter rest near the end of the file: one block)
        blocks = after[: m * b].reshape(m, b) if m else after[None]
        e_a = float(np.sqrt(np.mean(blocks**2, axis=1)).max())
        # "before": the quieter of the windows ending at the onset and 10 ms before it (librosa's
        # backtracking can land up to one 11.6 ms hop into an attack; in a noisy recording the
        # window just before such an onset held the attack, and a hit 27 dB over the noise was
        # dropped)
        e_b = None
        for back in (0, b):
            before = x[max(0, o - back - w) : max(0, o - back)].astype(np.float64)
            if before.size:
                r = float(np.sqrt(np.mean(before**2)))
                e_b = r if e_b is None else min(e_b, r)
        return e_a >= rise * (e_b or 0.0)

    sos = None
    keep = []
    for o in np.asarray(onsets, dtype=np.int64):
        ok = rises(y, int(o))
        if ok is None:
            continue
        if not ok and hum:
            from scipy.signal import butter, sosfiltfilt

            if sos is None:
                sos = butter(4, 200.0, btype="highpass", fs=SR, output="sos")
            pad = int(0.05 * SR)  # (the filter's response is over well within it)
            lo = max(0, int(o) - b - w - pad)
            seg = y[lo : int(o) + nb * b + pad].astype(np.float64)
            ok = seg.size > 27 and bool(rises(sosfiltfilt(sos, seg), int(o) - lo))
        if ok:
            keep.append(int(o))
    return np.asarray(keep, dtype=np.int64)


#: the plan reads the curve in segments of this many output blocks (10 s): see _segments
_SEGMENT_BLOCKS = 5


def _segments(T: int, rate: float) -> np.ndarray:
    """(T,) the 10 s segment (aligned with the output blocks) of each frame of a curve at ``rate``."""
    return (np.arange(T) / rate * SR // (_SEGMENT_BLOCKS * _BLOCK)).astype(np.int64)


def _event_segments(events: Sequence[Event], seg_f: np.ndarray, rate: float) -> np.ndarray:
    """(len(events),) each event's segment (:func:`_segments`; its frame clipped to the curve's)."""
    if not len(events) or not seg_f.size:
        return np.zeros(len(events), dtype=np.int64)
    f = np.rint(np.array([ev.time for ev in events], dtype=np.float64) * rate).astype(np.int64)
    return seg_f[np.clip(f, 0, seg_f.size - 1)]


def _mostly_sharp(events: Sequence[Event], seg: np.ndarray, n_seg: int) -> np.ndarray:
    """(n_seg,) bool: whether most of each segment's ``events`` (their segments ``seg``) rose in
    one frame (an unsmoothed curve: drawn, or a timing model's sharp impacts)."""
    n_all = np.bincount(seg, minlength=n_seg)[:n_seg]
    n_sharp = np.bincount(seg, weights=[float(ev.sharp) for ev in events], minlength=n_seg)[:n_seg]
    return (n_all > 0) & (n_sharp > n_all / 2)


#: an envelope with fewer rows per second is typed by hand, or at a video's frame rate: see
#: _upsample_coarse. (Up to 20 until a review found a level typed on one row per video frame, 24-30
#: rows/s, sounding ~34 ms late and 2.5 dB loud: the 33-42 ms ramp between the rows read as a
#: box-smoothed rise, as drawn ramps of 32-64 ms do. From 32 rows/s a row's ramp is under 31 ms,
#: read as the one-frame jump it is)
_COARSE_RATE = 32.0


def _upsample_coarse(env: Envelope, rate: float) -> Envelope:
    """A hand-typed envelope of few rows per second at ``rate`` frames/s: linear between rows,
    except a rise from near silence (the lower row under a quarter of the upper) to (nearly, 80 %)
    the top of the next two rows, which jumps at the upper row (a swell that starts from silence
    stays a ramp). Interpolated linearly, a 0 -> level step between two rows 100 ms apart became a
    100 ms ramp, read as a box-smoothed rise, and the hit sounded 30-48 ms before the row it was
    typed on. Same time span as :meth:`Envelope.resample`."""
    out = env.resample(rate)
    t_new, t_old = out.times, env.times
    vals = out.values.copy()
    m = env.values.astype(np.float64).mean(axis=0)  # decided on the mono curve: channels jump together
    ahead = np.maximum(m[1:], np.concatenate([m[2:], [0.0]]))  # the next two rows' top
    # a step up from near silence to (nearly) the top of what follows: a hit, not a swell's start
    for k in np.nonzero((m[:-1] < 0.25 * m[1:]) & (m[1:] >= 0.8 * ahead))[0]:
        # the frames strictly between the two rows (t_new is sorted: a slice, not a mask of all)
        i0 = np.searchsorted(t_new, t_old[k] + 1e-9, side="right")
        i1 = np.searchsorted(t_new, t_old[k + 1] - 1e-9, side="left")
        vals[:, i0:i1] = env.values[:, k : k + 1]
    return replace(out, values=vals.astype(out.values.dtype))


def _blocks(n: int):
    """``(a, b, lo, hi)`` for the blocks ``[a, b)`` of a recording of ``n`` samples analysed in
    :data:`_REF_BLOCK` s pieces, each read with 1 s of context: ``[lo, hi)``, ``lo`` on the onset
    detector's 512-sample frame grid (so that its frames are the whole recording's). One block when
    it is no longer than that."""
    B, M = int(_REF_BLOCK * SR), SR
    if n <= B:
        yield 0, n, 0, n
        return
    for a in range(0, n, B):
        b = min(n, a + B)
        yield a, b, max(0, (a - M) // 512 * 512), min(n, b + M)


def silent_recording(what: str, peak: float) -> FolaiError:
    """The error for a recording whose peak is under :data:`SILENT_PEAK` (-80 dBFS), with its level
    (a real but very quiet 24-bit take had been called just "silent"; found by a review)."""
    level = f"peak {20 * np.log10(peak):.0f} dBFS" if peak > 0 else "all zeros"
    return FolaiError(f"{what} is silent ({level}, under the -80 dBFS floor); give a recording of the sound "
                      "you want, or raise a very quiet one's gain first")


def _no_dc(y: np.ndarray) -> np.ndarray:
    """``y`` without its DC offset and what lies under 20 Hz (zero-phase Butterworth high-pass, so
    attacks stay where they are). An offset of even -46 dBFS had defeated the take cutting (the
    40 dB tail rule, the -34 dB noise test measure it too), and takes carried it as steps. A long
    recording is filtered in blocks with 1 s of context each side (the filter's response is over in
    ~0.1 s: the same to 1e-6 as at once), in float64 one block at a time."""
    from scipy.signal import butter, sosfiltfilt

    if y.size < 64:
        return (y - y.mean()).astype(np.float32)
    sos = butter(2, 20.0, btype="highpass", fs=SR, output="sos")
    mean = float(np.mean(y))
    out = np.empty(y.size, dtype=np.float32)
    for a, b, lo, hi in _blocks(y.size):
        out[a:b] = sosfiltfilt(sos, y[lo:hi].astype(np.float64) - mean)[a - lo : b - lo]
    return out


def _onsets(y: np.ndarray, bar: str | None = None) -> np.ndarray:
    """librosa's onsets (samples, backtracked) of ``y``; in :func:`_blocks` for a long recording
    (each block's onsets found with 1 s of context; the detector's threshold is then relative to
    the block, not to the whole recording). ``bar``: a progress bar of that title over the blocks
    of a recording of :data:`_BAR_FROM` blocks or more (an hour takes about a minute)."""
    import librosa
    from tqdm.auto import tqdm

    parts = []
    blocks = list(_blocks(y.size))
    for a, b, lo, hi in tqdm(blocks, desc=bar, unit="min", disable=bar is None or len(blocks) < _BAR_FROM, leave=False):
        on = librosa.onset.onset_detect(y=y[lo:hi], sr=SR, units="samples", backtrack=True) + lo
        parts.append(on[(on >= a) & (on < b)])
    return np.concatenate(parts).astype(np.int64)


def _material(y: np.ndarray) -> np.ndarray:
    """What of a (peak-normalised) recording the texture's grains may come from: all of it up to
    :data:`_MATERIAL_MAX` s, else that much in evenly spread excerpts (a copy: the recording itself
    is not kept)."""
    cap, piece = int(_MATERIAL_MAX * SR), int(_MATERIAL_PIECE * SR)
    if y.size <= cap:
        return y
    starts = np.linspace(0, y.size - piece, cap // piece).astype(np.int64)
    return np.concatenate([y[a : a + piece] for a in starts])


def _trim_take(seg: np.ndarray) -> tuple[np.ndarray, int]:
    """A stretch of a recording as a take: from 1 ms before its attack (its first 1 ms a tenth of
    its loudest) to where it falls 40 dB under its loudest 10 ms (the rest is room noise), faded
    out over its last 20 ms, peak 1. Onsets come backtracked to the quiet up to tens of ms before a
    hit, and that pre-roll, placed at the event, put the hit late behind texture the level matching
    filled it with (a flam). Also returns where in ``seg`` the take starts."""
    n1 = seg.size // 44
    r1 = np.sqrt(np.mean(seg[: n1 * 44].reshape(n1, 44) ** 2, axis=1))
    hot = np.nonzero(r1 >= 0.1 * r1.max())[0]
    head = 0
    if hot.size:
        # (at least 20 ms kept: a crackly stretch whose loudest crackle came at its end was cut to
        # under 10 ms, and the level below then failed on no 10 ms block at all, an internal error)
        head = min(max(0, int(hot[0]) - 1) * 44, max(0, seg.size - int(0.02 * SR)))
        seg = seg[head:]
    m = seg.size // 441
    if m:
        r10 = np.sqrt(np.mean(seg[: m * 441].reshape(m, 441) ** 2, axis=1))
        above = np.nonzero(r10 > 0.01 * r10.max())[0]
        seg = seg[: max(int(0.05 * SR), (int(above[-1]) + 1) * 441)]
    seg = seg.copy()
    fade = min(seg.size // 4, int(0.02 * SR))
    seg[seg.size - fade :] *= np.linspace(1, 0, fade, dtype=np.float32)
    return seg / (np.max(np.abs(seg)) + 1e-12), head


def _starts_with_attack(seg: np.ndarray) -> bool:
    """Whether a recording's first stretch starts with a sound (a trimmed one-shot: its loudest
    10 ms in the first 60 ms at least twice its median 10 ms level), not with steady room noise,
    hum or an offset before the first hit."""
    m = seg.size // 441
    if m < 2:
        return True
    r10 = np.sqrt(np.mean(seg[: m * 441].astype(np.float64).reshape(m, 441) ** 2, axis=1))
    return float(r10[:6].max()) >= 2.0 * float(np.median(r10))


class _ReferenceSource:
    """Takes cut from the user's recordings by onset detection, used round-robin."""

    def __init__(self, files: Sequence[str | Path], progress: bool = False):
        self.key: tuple = ("references", tuple(str(f) for f in files))  # names the texture bank
        self.takes: list[np.ndarray] = []
        material: list[np.ndarray] = []
        seen: set[bytes] = set()  # digests of the takes kept (the same file given twice, a copy)
        copies = _FileCopies() if len(files) > 1 else None  # (a lossy or resampled copy of a file)
        material_onsets = None
        for f in files:
            y = _read_reference(f)
            if y.size < int(0.02 * SR):
                raise FolaiError(f"reference recording {f} is too short ({1000 * y.size / SR:.1f} ms); a take needs at "
                                 "least 20 ms of sound")
            if y.size < int(0.05 * SR):
                # a trimmed click or tick (20-50 ms): padded with silence to what the onset
                # detector reads; refused for its length, the same click with 21 ms of silence
                # after it was taken (found by a review)
                y = np.pad(y, (0, int(0.05 * SR) - y.size))
            y = _no_dc(y)
            peak = float(np.max(np.abs(y))) if y.size else 0.0
            if peak < SILENT_PEAK:
                raise silent_recording(f"reference recording {f}", peak)
            y /= peak  # (in place: a long recording is not held twice)
            raw = _onsets(y, f"cutting takes from {Path(f).name}" if progress else None)
            on = _rising_onsets(y, raw, hum=_low_hum(y))
            # the file's start is a take too if a sound starts there (a trimmed one-shot); room
            # noise, hum or an offset before the first hit is not: such a head had become a take,
            # scaled to full scale, and some events played a burst of noise, hum or a DC step
            head = on.size == 0 or on[0] > 0
            on = np.unique(np.concatenate([[0], on]))
            bounds = list(on) + [y.size]
            new: list[tuple[int, np.ndarray]] = []  # (start in the file, take) of the takes not seen before
            spare = None  # the head, if it is kept only when the file has nothing else
            # takes of 0.1 s or more (a shorter stretch is a flam or a glitch); a file whose
            # stretches are mostly shorter (a click train at 12-20 Hz: 50-83 ms), or that has no
            # longer one, gets takes of 20 ms or more
            found = False  # a take (new or one given before) found in this file
            fast = float(np.median(np.diff(bounds))) < 0.1 * SR
            for min_len in ((int(0.02 * SR),) if fast else (int(0.1 * SR), int(0.02 * SR))):
                for a, b in zip(bounds[:-1], bounds[1:]):
                    b = min(b, a + int(_MAX_EVENT * SR))
                    seg = y[a:b].astype(np.float32)
                    if seg.size < min_len:
                        continue
                    if np.sqrt(np.mean(seg[: int(0.1 * SR)] ** 2)) < 0.02:  # -34 dB: noise, not a take
                        continue
                    if a == 0 and head and not _starts_with_attack(seg):
                        spare = seg
                        continue
                    seg, cut = _trim_take(seg)
                    found = True
                    digest = _digest(seg)
                    if digest in seen:
                        continue
                    seen.add(digest)
                    new.append((a + cut, seg))
                if found or spare is not None:
                    break
            if copies is not None and new:
                drop = copies.copies([t for t, _ in new], [x for _, x in new], Path(f).name)
                new = [n for i, n in enumerate(new) if i not in drop]
            self.takes.extend(x for _, x in new)
            if not found and spare is not None and (digest := _digest(spare)) not in seen:
                # no hit in the whole file: a sustained sound (a scrape, rain), used as it is (a file
                # whose hits were all given before, the same file twice, had added its head of room
                # noise or hum as a take, scaled to full scale: found by a review)
                seen.add(digest)
                self.takes.append(spare / (np.max(np.abs(spare)) + 1e-12))
            if not found and spare is None:
                raise FolaiError(f"reference recording {f} has no usable sound: no hit of 20 ms or more above -34 dB of its peak")
            material.append(_material(y))
            # the grain rule below needs the material's onsets: one whole recording's are these
            material_onsets = raw if len(files) == 1 and material[0] is y else None
            del y
        if len(self.takes) == 1:
            log.warning("the reference recordings hold one take: every event uses it (give recordings of several hits for variety)")
        self.material = np.concatenate(material).astype(np.float32)
        # where texture grains may start: not within 60 ms after an onset, not in near-silence
        self._grain = g = int(0.08 * SR)
        m = self.material
        if m.size <= 2 * g:
            m = self.material = np.pad(m, (0, 2 * g + 1 - m.size), mode="wrap")
            material_onsets = None
        starts = np.arange(0, m.size - g, 441)
        on = _onsets(m) if material_onsets is None else material_onsets
        # no grain over an onset or within 60 ms after one: starts in (o - g, o + 60 ms) are out
        hit = np.zeros(starts.size + 1, dtype=np.int64)
        np.add.at(hit, np.searchsorted(starts, on - g, side="right"), 1)
        np.add.at(hit, np.searchsorted(starts, on + int(0.06 * SR), side="left"), -1)
        ok = np.cumsum(hit[:-1]) == 0
        # each grain's RMS, from the energy of the 10 ms blocks it spans (g = 8 blocks)
        nb = m.size // 441
        e10 = np.square(m[: nb * 441].astype(np.float64)).reshape(nb, 441).sum(axis=1)
        c = np.concatenate([[0.0], np.cumsum(e10)])
        k = g // 441
        r = np.sqrt(np.maximum(c[k : k + starts.size] - c[: starts.size], 0.0) / g)
        ok &= r > 0.01 * r.max()
        self._grain_starts = starts[ok] if np.any(ok) else starts[np.argsort(r)[-max(1, starts.size // 4) :]]

    def recent(self) -> int:
        """How many of the last takes an event may not use: the last one, and with 5 takes or more
        the last two (no A-B-A). A longer memory (a strict rotation) made an edit change the take
        of every later event: measured on 200 events, removing one changed up to 188 later
        choices with 3 takes kept from the last two, 48 with 4; this rule, at most 13."""
        n = len(self.takes)
        return min(n - 1, 1 if n <= 4 else 2)

    def choose(self, rng: np.random.Generator, recent: Sequence[int]) -> int:
        """The event's take: the first, in its own random order of the takes, not among ``recent``
        (the last takes used). A uniform draw that only avoided the last take had left 2 of 5
        takes in some windows, and A-B-A-B runs; an order drawn per event keeps an edit's effect
        local (a changed take changes a later choice only when it is that event's first choice)."""
        n = len(self.takes)
        if n == 1:
            return 0
        for k in rng.permutation(n):
            if int(k) not in recent:
                return int(k)
        return int(rng.integers(0, n))  # pragma: no cover - recent() < n

    def impact(self, rng: np.random.Generator, ev: Event, variation: float, take: int | None) -> np.ndarray:
        """Take number ``take`` with small random changes of pitch (resampling), start and level."""
        import soxr

        take = self.takes[take]
        cents = 60.0 * variation * rng.uniform(-1, 1)
        ratio = 2.0 ** (cents / 1200.0)
        # the start varies within the take's 1 ms before its attack: up to 2 ms had cut into the
        # attack of 1 one-shot in 20, a step of up to 0.67 of its peak on its first sample
        offset = int(rng.uniform(0, 0.001 * min(variation, 1.0)) * SR)
        src = take[offset:]
        if abs(ratio - 1.0) > 1e-9:
            # pitch by resampling: band-limited (soxr), where linear interpolation had dulled a
            # bright take by 2 dB at 10-14 kHz and 4 dB above 16 kHz
            x = soxr.resample(src.astype(np.float32), SR * ratio, SR, quality="HQ").astype(np.float32)
        else:
            x = src.astype(np.float32)
        if x.size < 8:
            x = np.pad(x, (0, 8 - x.size))
        x *= float(10 ** (1.5 * variation * rng.uniform(-1, 1) / 20))
        return x

    def texture(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Granular texture: 80 ms Hann grains, each of equal RMS, from the recordings' sustained parts.

        Grains never start within 60 ms after an onset, so the texture has no attacks of its own.
        """
        g = self._grain
        out = np.zeros(n + g)
        win = np.hanning(g)
        for s in rng.integers(-g, n, max(4, int(50 * (n + g) / SR))):
            p = int(self._grain_starts[int(rng.integers(0, self._grain_starts.size))])
            grain = self.material[p : p + g] * win
            grain = grain / (np.sqrt(np.mean(grain * grain)) + 1e-12)
            a = max(0, int(s))
            out[a : s + g] += grain[a - s :] * (1 if rng.random() < 0.5 else -1)
        out = out[:n]
        return (out / (np.sqrt(np.mean(out * out)) + 1e-12)).astype(np.float32)


class _FileCopies:
    """Tells the takes of a file that copy those of an *earlier file* through a lossy or resampling
    codec, or with silence added or cut at its start (the same recording given as .wav and .mp3,
    or at 48 kHz): their samples differ, so the digest misses them, and the round robin played one
    hit twice in a row, once from each file.

    A copy is told by its **timing**, then its sound. Its takes start where the earlier file's do,
    shifted by one common offset (within MATCH = 12 ms: a codec's pre-echo moves a cut attack by
    up to ~10 ms): at least 4 of them, and 60 % of the file's takes, and at no other offset a gap
    away half as many (two performances on one steady grid line up at every step: not copies; a
    copy of such a file is missed). Two performances do not share their timing like that, where a
    likeness of single takes could not tell them apart (distinct hits of one object, recorded one
    after another, correlate up to 0.98 at the waveform, as much as an MP3 copy; found by a
    review). Then the matched pairs must sound the same: the normalised correlation of their
    first 46 ms under 5 kHz (what such codecs keep), at the best lag within MATCH and either
    polarity, at least 0.8 each and 0.95 in the median, so that two performances of one object in
    one rhythm that is no steady grid (a sequenced pattern, a ball dropped twice) stay apart
    (their distinct hits measured a median 0.69-0.92: a third review); copies at 32 kbit/s or
    less are missed for it. Timing is not used against a file whose takes are so dense that one lands within
    MATCH by chance one time in 10. Files of fewer than 4 takes (one-shots from a sample pack: the
    same object's round-robin hits) are never merged: with no timing to tell by, a copy of a
    one-shot stays a take of its own. Figures in docs/sampler.md.
    """

    TOL = int(0.003 * SR)
    MATCH = 4 * TOL  # a lossy codec's pre-echo moves a take's cut attack by up to ~10 ms
    MIN_MATCHED = 4
    SHARE = 0.6
    PAIR, MEDIAN = 0.8, 0.95
    _N, _FFT = 2048, 4096
    _KEEP = int(5000 * 4096 / SR) + 1  # bins under 5 kHz

    def __init__(self) -> None:
        self.files: list[tuple[np.ndarray, np.ndarray, str]] = []  # per earlier file: take starts, low bands, name

    def _bands(self, takes: Sequence[np.ndarray]) -> np.ndarray:
        X = np.zeros((len(takes), self._KEEP), np.complex128)
        for i, t in enumerate(takes):
            X[i] = np.fft.rfft(t[: self._N].astype(np.float64), self._FFT)[: self._KEEP]
        return X

    def _likeness(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Row by row: the largest |normalised cross-correlation| of the low bands within +-MATCH."""
        c = np.fft.irfft(A * np.conj(B), self._FFT, axis=1)
        ea = np.fft.irfft(np.abs(A) ** 2, self._FFT, axis=1)[:, 0]
        eb = np.fft.irfft(np.abs(B) ** 2, self._FFT, axis=1)[:, 0]
        lag = self.MATCH  # (the two takes' starts may differ by as much)
        near = np.concatenate([c[:, : lag + 1], c[:, -lag:]], axis=1)
        return np.max(np.abs(near), axis=1) / np.sqrt(np.maximum(ea * eb, 1e-30))

    def copies(self, starts: Sequence[int], takes: Sequence[np.ndarray], name: str = "") -> set[int]:
        """Indices of this file's takes (``starts``: where each begins in the file, in samples) that
        copy an earlier file's; this file is then remembered (as ``name``, for the log)."""
        tb = np.asarray(starts, np.int64)
        bands = self._bands(takes)
        out: set[int] = set()
        if tb.size >= self.MIN_MATCHED:
            need = max(self.MIN_MATCHED, int(math.ceil(self.SHARE * tb.size)))
            # up to 64 of this file's takes, spread over it, tell the offset
            sample = tb[np.unique(np.linspace(0, tb.size - 1, min(64, tb.size)).astype(np.int64))]
            for ta, band_a, earlier in self.files:
                if ta.size < self.MIN_MATCHED:
                    continue
                # timing tells nothing where the earlier file's takes are so dense that a start
                # lands within +-MATCH of one by chance one time in 10 (over 4 takes a second)
                span = max(int(ta[-1] - ta[0]), 1)
                if (2 * self.MATCH + 1) * ta.size / span > 0.1:
                    continue
                # the common offset: the densest cluster (+-TOL) of the differences between the two
                # files' take starts (a take's start moves by a few ms with where the onsets cut:
                # its attack is found against the loudest of its stretch) ...
                d = np.sort((ta[:, None] - sample[None, :]).ravel())
                dense = np.searchsorted(d, d + self.TOL, side="right") - np.searchsorted(d, d - self.TOL)

                def matched(k: int) -> tuple[np.ndarray, np.ndarray]:
                    """This file's takes within MATCH of one of the earlier file's, at the offset
                    of the cluster around d[k], and their counterparts."""
                    around = d[np.searchsorted(d, d[k] - self.TOL) : np.searchsorted(d, d[k] + self.TOL, side="right")]
                    shifted = tb + int(np.median(around))
                    j = np.clip(np.searchsorted(ta, shifted), 1, ta.size - 1)
                    j = np.where(np.abs(ta[j - 1] - shifted) <= np.abs(ta[j] - shifted), j - 1, j)
                    hit = np.nonzero(np.abs(ta[j] - shifted) <= self.MATCH)[0]
                    return hit, j[hit]

                best = int(np.argmax(dense))
                hit, pair = matched(best)
                if hit.size < need:
                    continue
                # ... and only one such offset: takes on a steady grid (a metronome, a sequencer)
                # line up at every multiple of its step too, and a second performance on that grid
                # is not a copy (found by a review: one object's hits on a 0.5 s grid, merged). The
                # best other offsets, a gap away, must match under half as many takes
                gap = max(2 * self.MATCH, int(np.median(np.diff(ta))) // 2)
                far = np.nonzero(np.abs(d - d[best]) > gap)[0]
                wide = np.searchsorted(d, d + self.MATCH, side="right") - np.searchsorted(d, d - self.MATCH)
                rivals = far[np.argsort(-wide[far], kind="stable")[:4]]  # (+-MATCH: a jittered grid's too)
                if any(2 * matched(int(k))[0].size > hit.size for k in rivals):
                    continue
                like = self._likeness(band_a[pair], bands[hit])
                if float(np.median(like)) >= self.MEDIAN:
                    out |= {int(i) for i in hit[like >= self.PAIR]}
                    log.warning("reference %s copies %s (a lossy, resampled or shifted copy?): %d of its %d takes "
                                "left out", name, earlier, len(out), tb.size)
                    break
        self.files.append((tb, bands, name))
        return out


def _digest(x: np.ndarray) -> bytes:
    """A take's samples as a 16-byte digest: what tells copies apart, without keeping their bytes."""
    import hashlib

    return hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).digest()


def _power(x: np.ndarray) -> float:
    """Mean square of ``x`` in float64, a million samples at a time (no float64 copy of a long file)."""
    step = 1 << 20
    tot = sum(float(np.dot(c, c)) for c in (x[i : i + step].astype(np.float64) for i in range(0, x.size, step)))
    return tot / max(1, x.size)


def _read_reference(path: str | Path) -> np.ndarray:
    """(N,) float32 mono at 44.1 kHz (a bad file is a :class:`~folai.errors.MediaError`)."""
    from ..media import read_audio

    p = Path(path)
    if not p.exists():
        raise FolaiError(f"reference recording not found: {p}")
    x = np.asarray(read_audio(p, sr=SR, channels=None, drop_lfe=True), dtype=np.float32)
    mono = x[0] if x.shape[0] == 1 else x.mean(axis=0)
    if x.shape[0] > 1:
        # channels out of phase (a miswired or M/S-decoded recording) cancel in the mean: then the
        # loudest channel, rather than "silent". Cancelling is measured against the mean of
        # unrelated channels (sum of their powers / C^2): against the loudest channel's power, a
        # 5.1 file with its hits in the front three was "cancelled" and read from a surround
        # channel of room tone (found by a review). (For a stereo pair of equal power the two agree.)
        power = np.array([_power(c) for c in x])
        if _power(mono) < 0.5 * power.sum() / x.shape[0] ** 2:
            mono = x[int(np.argmax(power))]
    return np.ascontiguousarray(mono, dtype=np.float32)


# ----------------------------------------------------------------------------- the backend


@dataclass
class _Plan:
    e: np.ndarray  # (T,) float64 target envelope at 125 frames/s, zero-padded to the duration
    events: list[Event]
    samples: np.ndarray  # (n_events,) int onset sample of each event
    peaks: np.ndarray  # (n_events,) target attack peak of each event
    takes: list  # chosen take per event (references) or None
    shapes: list  # each event's wanted RMS per frame (event_shapes)
    q: np.ndarray  # (T,) texture level
    skirt: np.ndarray  # (T,) texture level of the fade in / out around textures, where the target is 0
    pan: np.ndarray | None  # (T,) pan per frame in [-1, 1] or None (centre)
    source: object
    seed: int
    n: int  # samples in the full render
    # smoothing kernel of the level matching per 10 s segment (_segments): the envelope's, or 1
    # where it is unsmoothed
    k_match: np.ndarray
    # a stereo envelope: each event's own pan, from the rise of each channel at its onset
    ev_pan: np.ndarray | None = None
    cache: dict = field(default_factory=dict)  # event index -> one-shot (pure function of the plan)
    bank: dict = field(default_factory=dict)  # texture bank: index -> 2.5 s of the source's texture
    tex_cache: dict = field(default_factory=dict)  # texture block index -> samples

    def kernel(self, block: int) -> int:
        """The level matching's kernel for output block ``block`` (its 10 s segment's)."""
        return int(self.k_match[min(self.k_match.size - 1, block // _SEGMENT_BLOCKS)])

    def texture(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n,) float64 unit-RMS texture (n <= 2.5 s): a stretch of one of a few stored textures."""
        b = int(rng.integers(0, _BANK))
        off = int(rng.integers(0, _BANK_LEN - n + 1))
        return _bank_texture(self.bank, self.source, self.seed, b)[off : off + n]


def _bank_texture(bank: dict, source, seed: int, b: int) -> np.ndarray:
    """Texture ``b`` of the bank of ``source`` for ``seed`` (made once; a pure function of its key)."""
    x = bank.get(b)
    if x is None:
        x = bank[b] = source.texture(_rng(seed, 2_000_003, b), _BANK_LEN).astype(np.float64)
    return x


class SamplerSynth:
    """Envelope-following synthesis from procedural presets or the user's own recordings.

    Options (keyword only):
      variation:   how much hits differ (pitch, decay, level, start; 1 = natural, 0 = the same
                   one-shot for every hit, shaped only by the envelope)
      pan_mode:    "auto" (use ``pan`` when given, else a stereo envelope's own channels), "motion"
                   (``pan`` required) or "center" (always centred)
      sensitivity: scales the onset thresholds (> 1 finds quieter onsets)
      texture:     render sustained parts as a continuous texture (True) or only as events
      silence:     envelope level below which the output is silent
      floor:       ... and relative level (to the loudest sound within 2 s) below which it is silent
                   (a recording's noise floor is not worth imitating: it only adds false onsets)
      peak_window: seconds either side of an event in which the loudest event peaks at full scale
      iterations:  level-matching passes
      tail_ratio:  how many times slower than its rise says an event may ring before the rest of
                   the level counts as a sustained texture
    """

    sample_rate = SR

    def __init__(
        self,
        *,
        variation: float = 1.0,
        pan_mode: str = "auto",
        sensitivity: float = 1.0,
        texture: bool = True,
        silence: float = 0.002,
        floor: float = 0.04,
        peak_window: float = 5.0,
        iterations: int = 3,
        tail_ratio: float = 3.0,
    ):
        if pan_mode not in ("auto", "motion", "center"):
            raise FolaiError(f"unknown pan mode '{pan_mode}'; choose auto, motion or center")
        if not 0.0 <= variation <= 4.0:
            raise FolaiError(f"variation must be between 0 and 4, got {variation}")
        if sensitivity <= 0:
            raise FolaiError(f"sensitivity must be > 0, got {sensitivity}")
        self.variation = float(variation)
        self.pan_mode = pan_mode
        self.sensitivity = float(sensitivity)
        self.texture = bool(texture)
        self.silence = float(silence)
        self.floor = float(floor)
        self.peak_window = float(peak_window)
        self.iterations = int(iterations)
        self.tail_ratio = float(tail_ratio)
        self._refs = None  # (key, _ReferenceSource): recordings are cut into takes once
        self._last = None  # (key, _Plan): the plan of the last render call
        self._banks: dict = {}  # (source key, seed) -> texture bank {index: samples}, the last two kept

    # ------------------------------------------------------------------ public API
    def render(
        self,
        envelope: Envelope,
        *,
        duration: float,
        prompt: str | None = None,
        references: Sequence[str | Path] = (),
        video: str | Path | None = None,
        pan: np.ndarray | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> np.ndarray:
        """(2, round(duration * 44100)) float32 in [-1, 1] whose SPEC envelope follows ``envelope``.

        Sample k is at time ``k / 44100`` s, the envelope's frame i at ``envelope.start + i / rate``
        (an envelope cropped to [5, 7) s renders its sound 5 s in). ``video`` is accepted for the
        backend contract and unused (the sampler does not look at pictures). ``pan``: one value in
        [-1, 1] per envelope frame; without it a stereo (left, right) envelope is placed by its
        own channels (equal power).
        """
        return self.render_span(envelope, 0.0, duration, duration=duration, prompt=prompt, references=references,
                                video=video, pan=pan, seed=seed, progress=progress)

    def render_span(
        self,
        envelope: Envelope,
        start: float,
        end: float,
        *,
        duration: float | None = None,
        prompt: str | None = None,
        references: Sequence[str | Path] = (),
        video: str | Path | None = None,
        pan: np.ndarray | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> np.ndarray:
        """Samples [round(start*sr), round(end*sr)) of ``render`` with the same arguments, bit for bit.

        ``duration`` defaults to the envelope's duration (it only decides where the render ends).
        """
        if duration is None:
            duration = envelope.duration
        if not duration > 0:
            raise FolaiError(f"duration must be > 0 s, got {duration}")
        n = int(round(duration * SR))
        a, b = int(round(start * SR)), int(round(end * SR))
        if not 0 <= a <= b <= n:
            raise FolaiError(f"span [{start}, {end}) s must lie within the render's [0, {duration}] s")
        plan = self._cached_plan(envelope, n, prompt, references, pan, seed)
        out = np.zeros((2, b - a), dtype=np.float32)
        if b == a:
            return out
        k0, k1 = a // _BLOCK, (b - 1) // _BLOCK + 1
        from tqdm.auto import tqdm

        cache, tex_cache = plan.cache, plan.tex_cache
        blocks = range(k0, k1)
        for k in tqdm(blocks, desc="sampler", unit="block", disable=not progress or len(blocks) < 4, leave=False):
            blk = self._render_block(plan, k, cache, tex_cache)
            s = k * _BLOCK
            lo, hi = max(a, s), min(b, s + _BLOCK)
            out[:, lo - a : hi - a] = blk[:, lo - s : hi - s]
            # forget one-shots that ended before the next block's context; their end sample is kept
            # (later blocks select events by their start and would otherwise make them again)
            horizon = (k + 1) * _BLOCK - _CTX
            for i in [i for i, x in cache.items() if not isinstance(x, int) and plan.samples[i] + x.size < horizon]:
                cache[i] = int(plan.samples[i] + cache[i].size)
            for j in [j for j in tex_cache if (j + 2) * (_TEX // 2) < horizon]:
                del tex_cache[j]
        return out

    def prepare(self, *, duration: float | None = None, prompt: str | None = None,
                references: Sequence[str | Path] = (), seed: int = 0, **_: object) -> None:
        """Get ready for a render with these inputs before the envelope is known (optional).

        Makes what does not depend on the envelope: the source (a reference set is cut into takes)
        and its texture bank for ``seed`` (the textures of sustained parts and of events' tails).
        The pipeline runs it during stage 1; a render does the same work itself when it was not
        called. ``duration`` is accepted for the backend contract."""
        source = self._source(prompt, references)
        bank = self._bank(source, seed)
        for b in range(_BANK):
            _bank_texture(bank, source, int(seed), b)
        _interp_matrix()
        for name in ("soxr", "tqdm.auto"):  # imported here, off the render's clock
            importlib.import_module(name)

    def _bank(self, source, seed: int) -> dict:
        key = (source.key, int(seed))
        bank = self._banks.get(key)
        if bank is None:
            while len(self._banks) >= 2:
                self._banks.pop(next(iter(self._banks)))
            bank = self._banks[key] = {}
        return bank

    # ------------------------------------------------------------------ planning (frame rate, global)
    def check(self, prompt: str | None = None, references: Sequence[str | Path] = (), progress: bool = False) -> None:
        """Raise a :class:`FolaiError` now for a prompt or recordings the render could not use
        (``progress``: a bar while a long recording is cut into takes)."""
        self._source(prompt, references, progress=progress)

    def _source(self, prompt, references, progress: bool = False):
        if references:
            key = tuple(str(Path(r).resolve()) for r in references)
            stamp = tuple(Path(r).stat().st_mtime_ns if Path(r).exists() else -1 for r in references)
            if self._refs is None or self._refs[0] != (key, stamp):
                src = _ReferenceSource(list(references), progress=progress)
                src.key = ("references", key, stamp)
                self._refs = ((key, stamp), src)
            return self._refs[1]
        if prompt:
            return _PresetSource(get_preset(match_preset(prompt)))
        return _PresetSource(get_preset(DEFAULT_PRESET))

    def _cached_plan(self, envelope, n, prompt, references, pan, seed) -> _Plan:
        """The plan of the last call with the same inputs (render_span is called chunk by chunk)."""
        import hashlib

        h = hashlib.blake2b(digest_size=16)
        h.update(np.ascontiguousarray(envelope.values).tobytes())
        # (the shape and type too: a mono curve of 2T frames and a stereo one of T have the same bytes)
        h.update(repr((envelope.values.shape, envelope.values.dtype.str, envelope.rate, envelope.start,
                       envelope.config, n, prompt, seed)).encode())
        h.update(repr(tuple(str(r) for r in references)).encode())
        if pan is not None:
            h.update(np.ascontiguousarray(np.asarray(pan, dtype=np.float64)).tobytes())
        key = h.hexdigest()
        if self._last is None or self._last[0] != key:
            self._last = (key, self._plan(envelope, n, prompt, references, pan, seed))
        return self._last[1]

    def _plan(self, envelope, n, prompt, references, pan, seed) -> _Plan:
        if not isinstance(envelope, Envelope):
            raise FolaiError(f"render needs a folai Envelope, got {type(envelope).__name__}")
        cfg = ENV_DEFAULT
        if abs(envelope.rate - cfg.rate) < 1e-9:
            env = envelope
        elif envelope.rate < _COARSE_RATE:
            env = _upsample_coarse(envelope, cfg.rate)
        else:
            env = envelope.resample(cfg.rate)
        K = envelope.config.smooth_kernel if envelope.config.smooth_filter != "none" else 1
        T = int(math.ceil(n / _HOP44)) + 2
        e = np.zeros(T, dtype=np.float64)
        # sample k of the render is at time k / 44100 (the video's time): frame f at f / 125 s
        shift = env.start * cfg.rate
        if abs(shift - round(shift)) < 1e-6:
            k0 = int(round(shift))
            lo, hi = max(0, k0), min(T, k0 + env.n_frames)
            if hi > lo:
                e[lo:hi] = _level(env)[lo - k0 : hi - k0]
        else:
            e = np.interp(np.arange(T) / cfg.rate, env.times, _level(env), left=0.0, right=0.0)
        e = np.clip(e, 0.0, 1.0)
        # The curve is read in fixed 10 s segments: whether it is a quantised or jittery one (to be
        # smoothed, its onsets found in robust mode) is decided per segment, so that an edit
        # changes the reading only of its own segment. Decided over the whole curve, a flat level
        # drawn far away (its still frames) re-smoothed all of it and changed the sound everywhere.
        seg_f = _segments(T, cfg.rate)  # each frame's segment

        n_seg = int(seg_f.max()) + 1 if T else 0
        found = detect_events(e, cfg.rate, K, self.sensitivity)  # the curve as it is
        found_seg = _event_segments(found, seg_f, cfg.rate)
        sharp_seg = _mostly_sharp(found, found_seg, n_seg)
        bounds = np.searchsorted(seg_f, np.arange(n_seg + 1))  # (segments are runs of frames)
        rough_seg = np.zeros(n_seg, dtype=bool)
        for k in range(n_seg):
            # a quantised or jittery stretch, unless its rises are mostly one-frame jumps: then it
            # is drawn by hand or made of a timing model's sharp impacts, and its still frames are
            # holds (a flat drawn level, values rounded in a spreadsheet, a gate), not classes.
            # Smoothing such a curve made its sharp hits read as smoothed ones, each placed half a
            # kernel (~50 ms) late.
            rough_seg[k] = _is_rough(e[bounds[k] : bounds[k + 1]]) and not sharp_seg[k]
        source = self._source(prompt, references)
        if np.any(rough_seg):
            # a quantised or jittery curve (a classifier's classes): its frame-to-frame steps are not
            # sounds. A light Hann smoothing keeps the onsets' slope jumps where they were.
            rough = rough_seg[seg_f]
            # (which stretches are a classifier's classes: judged before the smoothing)
            quant = np.array([bool(rough_seg[k]) and _on_class_grid(e[bounds[k] : bounds[k + 1]]) for k in range(n_seg)],
                             dtype=bool)[seg_f]
            e = np.where(rough, np.clip(smooth(e, 7, "hann").astype(np.float64), 0.0, 1.0), e)
            robust = detect_events(e, cfg.rate, K, self.sensitivity, robust=True, classes=quant)
            robust_seg = _event_segments(robust, seg_f, cfg.rate)
            keep = ([ev for ev, g in zip(found, found_seg) if not rough_seg[g]]
                    + [ev for ev, g in zip(robust, robust_seg) if rough_seg[g]])
            found = []
            for ev in sorted(keep, key=lambda x: x.time):  # (one onset either side of a segment edge)
                if found and ev.time - found[-1].time < 0.03:
                    if ev.strength > found[-1].strength:
                        found[-1] = ev
                    continue
                found.append(ev)
        events = [ev for ev in found if ev.time * SR < n]
        samples = np.array([int(round(ev.time * SR)) for ev in events], dtype=np.int64)
        # attack peaks: the loudest event within peak_window s peaks at full scale, the others in
        # proportion, and none over what its level says a real hit peaks at (_FULL_SCALE_LEVEL): a
        # lone quiet tap, the loudest in its window, was sharpened towards full scale, +10 dB
        # over its curve, and identical taps came out 9 dB apart near and far from a loud hit
        # (found by a review)
        w = int(self.peak_window * cfg.rate)
        lref = ndimage.maximum_filter1d(e, size=2 * w + 1, mode="constant")
        peaks = np.array(
            [min(1.0, ev.level / max(lref[min(T - 1, max(0, int(round(ev.time * cfg.rate))))], 1e-9),
                 ev.level / _FULL_SCALE_LEVEL) for ev in events]
        )
        # round robin (references): never the same take twice in a row
        takes: list = [None] * len(events)
        if isinstance(source, _ReferenceSource):
            m = source.recent()
            takes = []
            for ev in events:
                takes.append(source.choose(_rng(seed, _qtime(ev.time), 7), takes[-m:] if m else []))
        # silence: below an absolute floor, or far below the loudest sound within 2 s
        loc = ndimage.maximum_filter1d(e, size=int(4 * cfg.rate) + 1, mode="constant")
        audible = e >= np.maximum(self.silence, self.floor * loc)
        # no flicker where the curve hovers at the threshold: gaps under 80 ms are filled, and
        # islands under 24 ms dropped
        # (on the curve continued past both ends: closing and opening erode the array's borders,
        # which silenced every sound in the last ~45 ms of a clip and cut the first ~40 ms)
        m = 6
        padded = np.pad(audible, m, mode="edge")
        padded = ndimage.binary_closing(padded, structure=np.ones(11, dtype=bool)) & np.pad(e > 0, m, mode="edge")
        closed = padded[m:-m]
        audible = ndimage.binary_opening(padded, structure=np.ones(3, dtype=bool))[m:-m]
        if events:
            # ... but an island that holds an event is a sound: a hit typed into the CSV as one or
            # two rows (no recording's curve is that narrow) had rendered as silence (found by a
            # review)
            islands, _ = ndimage.label(closed & ~audible)
            for ev in events:
                f = int(round(ev.time * cfg.rate))
                near = islands[max(0, f - 2) : f + 3]
                for lab in np.unique(near[near > 0]):
                    audible |= islands == lab
        target = np.where(audible, e, 0.0)
        # sustained texture level: wide plateaus of the curve not explained by an event's bump or tail
        q = np.zeros(T)
        if self.texture:
            width = int(0.5 * cfg.rate) | 1
            opened = ndimage.grey_opening(target, size=width, mode="constant")
            model = np.zeros(T)
            for ev in events:
                f_on = int(round(ev.time * cfg.rate))
                bump = _event_bump(ev.level, ev.decay * cfg.rate, K)
                i0 = f_on - K // 2 - 1
                lo, hi = max(0, i0), min(T, i0 + bump.size)
                if hi > lo:
                    model[lo:hi] = np.maximum(model[lo:hi], bump[lo - i0 : hi - i0])
                # the tail as the curve itself falls after the bump's peak
                a = max(0, f_on - K // 2)
                seg = e[a : a + 2 * K]
                if seg.size == 0:
                    continue
                pk = a + int(np.argmax(seg))
                fall = np.nonzero(e[pk : pk + int(2 * cfg.rate)] < e[pk] / math.e)[0]
                tau = float(fall[0]) if fall.size else 2 * cfg.rate
                # a ringing object decays at most a few times slower than its rise says; a level that
                # stays up longer is a sustained sound of its own (texture), not a tail to stretch
                tau = min(tau, self.tail_ratio * ev.decay * cfg.rate + K // 2)
                n_t = min(T - pk, int(6 * tau) + 1)
                model[pk : pk + n_t] = np.maximum(model[pk : pk + n_t], e[pk] * np.exp(-np.arange(n_t) / max(tau, 1.0)))
            q = np.sqrt(np.maximum(opened**2 - model**2, 0.0))
            q[q < self.silence] = 0.0
            # fade the texture in and out (an opening has steep edges, heard and detected as onsets)
            q = np.minimum(smooth(q, 2 * K + 1, "hann").astype(np.float64), target)
            # a texture never swells into an onset: that would sound (and detect) as an early hit
            _no_swell_into_onsets(q, events, K, cfg.rate)
        pan_f = None
        ev_pan = None
        if pan is not None and self.pan_mode != "center":
            p = np.asarray(pan, dtype=np.float64).reshape(-1)
            if p.size == 0 or not np.all(np.isfinite(p)):
                raise FolaiError("pan must be a non-empty array of finite values in [-1, 1], one per envelope frame")
            p = np.clip(p, -1.0, 1.0)
            # pan frames are the envelope's frames: bring them to 125 frames/s like the envelope
            t_src = envelope.start + np.arange(p.size) / envelope.rate
            pan_f = np.interp(np.arange(T) / cfg.rate, t_src, p)
        elif self.pan_mode == "motion" and pan is None:
            raise FolaiError("pan_mode 'motion' needs a pan curve (from the motion timing); none was given")
        elif self.pan_mode == "auto" and envelope.channels == 2 and not np.array_equal(*envelope.values):
            # a stereo envelope: rendered at its equal-power level (_level) and placed by the
            # equal-power pan of its channels' ratio, so each channel gets exactly its level (with
            # the channels' mean as the level and a balance law, a curve written by generate --pan
            # came back 0.7-2 dB louder than its render). Quiet frames take the pan of the nearest
            # sounding one: read as the centre, they pulled every onset towards it (a left-only
            # hit leaked -16 dB into the right channel)
            lv, rv = (np.asarray(c, dtype=np.float64) for c in envelope.values)
            tot = lv + rv
            loud = np.flatnonzero(tot > 1e-4)
            p = np.zeros(tot.size)
            if loud.size:
                p = np.interp(np.arange(tot.size), loud, _power_pan(lv[loud], rv[loud]))
            p = smooth(p, 5, "box").astype(np.float64)
            pan_f = np.interp(np.arange(T) / cfg.rate, envelope.times, np.clip(p, -1.0, 1.0))
            # each event's pan is that of its own rise in each channel: the curve's pan at
            # the onset still held the tail of an earlier hit on the other side (a right-only hit
            # 0.6 s after a left-only one came out with its left channel at -11.8 dB)
            ch = [np.interp(np.arange(T) / cfg.rate, envelope.times, c, left=0.0, right=0.0) for c in (lv, rv)]
            ev_pan = np.zeros(len(events))
            for k, ev in enumerate(events):
                a = min(T - 1, max(0, ev.rise - 1))
                top = min(T - 1, max(a + 1, int(round(ev.time * cfg.rate)) + 2))
                dl, dr = (max(0.0, float(c[a + 1 : top + 1].max() - c[a])) for c in ch)
                ev_pan[k] = _power_pan(dl, dr) if dr + dl > 1e-9 else float(pan_f[min(T - 1, a + 1)])
        shapes = event_shapes(e, events, K, cfg.rate, power=ev_pan is not None)
        if self.texture:
            # what neither an event's own sound nor the texture accounts for: sounds too close to or
            # too small beside a louder one to read as onsets (a typing or gravel envelope measured
            # from a recording). Those frames had no source at all, and the level matching cannot
            # lift silence: 0.3 s at 40 % of the clip's peak rendered as digital silence (found by a
            # review). They get texture, as much as the plan lacks even with its events 12 dB
            # louder (the level matching does the rest where a sound is there to scale)
            have = q**2
            fading = np.zeros(T)  # the power of one-shots handing over to texture (counted exactly)
            for ev, r in zip(events, shapes):
                a = ev.rise if ev.sharp else ev.rise + K // 2
                a0, b = max(0, a), min(T, a + r.size)
                if b > a0:
                    r = r[a0 - a : b - a]
                    first = a0 / cfg.rate - ev.time
                    if _hands_over(r, first, cfg.rate):
                        # the one-shot stops at _MAX_EVENT, fading out before it: a slower ring's
                        # shape counted beyond had switched texture on from silence where it ended
                        g = _handover(first, r.size, cfg.rate)
                        have[a0:b] += (r * (g >= 1.0)) ** 2
                        fading[a0:b] += (r * g * (g < 1.0)) ** 2
                    else:
                        have[a0:b] += r**2
                # a smoothed curve's rise before the sound's first frame is the event's own
                # (counted as lacking, its fill spilled ~100 ms past every onset)
                lo = max(0, ev.rise)
                if a > lo:
                    have[lo : min(T, a)] = np.maximum(have[lo : min(T, a)], target[lo : min(T, a)] ** 2 / 16.0)
            lack = np.sqrt(np.maximum(target**2 - 16.0 * have - fading, 0.0))
            lack[lack < self.silence] = 0.0
            if np.any(lack > 0):
                lack = np.minimum(smooth(lack, 2 * K + 1, "hann").astype(np.float64), target)
                _no_swell_into_onsets(lack, events, K, cfg.rate)  # (as the texture)
                q = np.maximum(q, lack)
        # a texture does not switch on from digital silence (a level jump in dB, heard and detected
        # as an onset however slow its linear fade): it rises out of it at 1 dB per frame, under
        # the silence threshold
        skirt = np.zeros(T)
        if np.any(q > 0):
            src_lv = np.where(q > 0, target, 0.0)
            k = 10 ** (-1.0 / 20)
            fwd, bwd = src_lv.copy(), src_lv.copy()
            # (from the sounding edge only: carried from a louder frame through a fall steeper
            # than 1 dB per frame, the skirt swelled over the curve's last frames after it went
            # silent, by up to 11 dB; found by a review)
            for f in range(1, T):
                if target[f] <= 0.0:
                    fwd[f] = max(fwd[f], fwd[f - 1] * k)
            for f in range(T - 2, -1, -1):
                if target[f] <= 0.0:
                    bwd[f] = max(bwd[f], bwd[f + 1] * k)
            skirt = np.where(target > 0, 0.0, np.maximum(fwd, bwd))
            skirt[skirt < 1e-6] = 0.0
            # a texture that starts with an event's onset (a drawn box, a scrape's first contact)
            # needs no rise out of silence: the event is its start, and a skirt before it would be
            # heard (and detected) as the sound starting early
            for ev in events:
                f_on = int(round(ev.time * cfg.rate))
                if 0 <= f_on < T and np.any(q[f_on : f_on + K + 1] > 0):
                    j = min(f_on, T - 1)
                    while j >= 0 and target[j] > 0.0 and j > f_on - K:  # back to where the rise begins
                        j -= 1
                    while j >= 0 and target[j] == 0.0 and skirt[j] > 0.0:
                        skirt[j] = 0.0
                        j -= 1
        # an envelope whose onsets are mostly one-frame jumps was not smoothed (hand-drawn, or a
        # timing model's sharp impacts): match the render's unsmoothed RMS to it
        # (per 10 s segment: an edit changes only its own segment's kernel)
        k_match = np.full(max(1, n_seg), K, dtype=np.int64)
        k_match[:n_seg][_mostly_sharp(events, _event_segments(events, seg_f, cfg.rate), n_seg)] = 1
        return _Plan(e=target, events=events, samples=samples, peaks=peaks, takes=takes, shapes=shapes, q=q,
                     skirt=skirt, pan=pan_f, ev_pan=ev_pan,
                     source=source, seed=int(seed), n=n, k_match=k_match, bank=self._bank(source, seed))

    # ------------------------------------------------------------------ one block (audio rate, local)
    def _event_sound(self, plan: _Plan, i: int) -> np.ndarray:
        """Event ``i``'s one-shot in SPEC units, onset at sample 0."""
        ev = plan.events[i]
        key = _qtime(ev.time) if self.variation > 0 else 0  # variation 0: one sound for every hit
        rng = _rng(plan.seed, key, 1)
        x = plan.source.impact(rng, ev, self.variation, plan.takes[i]).astype(np.float64)
        first = ev.rise if ev.sharp else ev.rise + ENV_DEFAULT.smooth_kernel // 2
        t0 = first / ENV_DEFAULT.rate - ev.time
        return _with_tail(x, plan.shapes[i], t0, plan.texture, _rng(plan.seed, key, 2))

    def _texture(self, plan: _Plan, lo: int, hi: int, tex_cache: dict) -> np.ndarray:
        """Unit-RMS texture on samples [lo, hi): fixed 0.5 s blocks, overlap-added with sine windows."""
        hop = _TEX // 2
        out = np.zeros(hi - lo)
        win = np.sin(np.pi * (np.arange(_TEX) + 0.5) / _TEX)
        for j in range(max(0, lo // hop - 1), hi // hop + 1):
            s = j * hop
            if s >= hi or s + _TEX <= lo:
                continue
            if j not in tex_cache:
                tex_cache[j] = plan.texture(_rng(plan.seed, 1_000_003, j), _TEX) * win
            a, b = max(lo, s), min(hi, s + _TEX)
            out[a - lo : b - lo] += tex_cache[j][a - s : b - s]
        return out

    def _render_block(self, plan: _Plan, k: int, cache: dict, tex_cache: dict) -> np.ndarray:
        bs = k * _BLOCK
        ws, we = bs - _CTX, bs + _BLOCK + _CTX
        L = we - ws
        f0 = int(round(ws / _HOP44))  # global frame of local frame 0 (exact: ws is a multiple of 1764)
        nf = L * 160 // 441 // 128
        fidx = f0 + np.arange(nf)
        T = plan.e.size
        inside = (fidx >= 0) & (fidx < T)
        e = np.zeros(nf)
        e[inside] = plan.e[fidx[inside]]
        if not np.any(e > self.silence):
            return np.zeros((2, _BLOCK), dtype=np.float32)
        stereo = plan.pan is not None
        src = np.zeros(L)
        lr = np.zeros((2, L)) if stereo else None
        # one-shots overlapping the window
        sel = np.nonzero((plan.samples < we) & (plan.samples > ws - int(_MAX_EVENT * SR)))[0]
        sounds = {}  # event -> its one-shot, for the events that sound in this window
        lo_nz, hi_nz = L, 0  # where src (and the skirts) may be nonzero: nothing is heard elsewhere
        for i in sel:
            x = cache.get(i)
            if isinstance(x, int):  # made before and forgotten: it ended at sample x
                if x < ws:
                    continue
                x = None
            if x is None:
                x = cache[i] = self._event_sound(plan, int(i))
            sounds[i] = x
            p = int(plan.samples[i])
            a, b = max(ws, p), min(we, p + x.size)
            if b <= a:
                continue
            src[a - ws : b - ws] += x[a - p : b - p]
            lo_nz, hi_nz = min(lo_nz, a - ws), max(hi_nz, b - ws)
            if stereo:
                fi = min(T - 1, max(0, int(round(p / _HOP44))))
                pv = plan.ev_pan[i] if plan.ev_pan is not None else np.median(plan.pan[max(0, fi - 2) : fi + 3])
                gl, gr = pan_gains(float(pv))
                lr[0, a - ws : b - ws] += gl * x[a - p : b - p]
                lr[1, a - ws : b - ws] += gr * x[a - p : b - p]
        # texture for the sustained parts
        qf = np.zeros(nf)
        qf[inside] = plan.q[fidx[inside]]
        skf = np.zeros(nf)
        skf[inside] = plan.skirt[fidx[inside]]
        sk_src = np.zeros(L)  # the textures' skirts: not level-matched (the target is 0 there)
        sk_lr = np.zeros((2, L)) if stereo else None
        if np.any(qf > 0) or np.any(skf > 0):
            qs = _frames_to_samples(qf + skf)
            nz = np.nonzero(qs > 0)[0]
            t_lo, t_hi = max(0, ws + int(nz[0])), ws + int(nz[-1]) + 1
            tex = np.zeros(L)
            if t_hi > t_lo:
                tex[t_lo - ws : t_hi - ws] = self._texture(plan, t_lo, t_hi, tex_cache)
                lo_nz, hi_nz = min(lo_nz, t_lo - ws), max(hi_nz, t_hi - ws)
            sks = _frames_to_samples(skf)
            sk_src = tex * sks
            tex = tex * _frames_to_samples(qf)
            src += tex
            if stereo:
                pf = np.zeros(nf)
                pf[inside] = plan.pan[fidx[inside]]
                gl, gr = pan_gains(_frames_to_samples(pf))
                lr[0] += gl * tex
                lr[1] += gr * tex
                sk_lr = np.stack([gl * sk_src, gr * sk_src])
        # level matching: smooth gain = target / measured SPEC envelope, a few passes
        K = ENV_DEFAULT.smooth_kernel
        g = np.where(e > self.silence, 1.0, 0.0)
        shape = np.ones(L)
        loc_ev = [(i, int(plan.samples[i]) - ws) for i in sel if 0 <= plan.samples[i] - ws < L]
        # frames before each onset (where the smoothed target already rises) and the frames of each
        # event's tail without texture: there the gain must not lift leftovers into a sound of their own
        pre, tails = [], []
        for n_i, i in enumerate(sel):
            ev = plan.events[i]
            fo = int((int(plan.samples[i]) - ws) / _HOP44)
            z0 = ev.rise - f0
            if z0 >= 1 and fo - 1 > z0 and fo - 1 <= nf:
                pre.append((z0, fo - 1))
            t0 = max(1, fo + K // 2)
            t1 = min(nf, (plan.events[i + 1].rise - f0) if i + 1 < len(plan.events) else nf)
            if t1 - t0 > 2 and not np.any(qf[max(0, t0 - 1) : t1] > 0):
                tails.append((t0, t1))
        # ceiling per sample: each event's region may peak at its target peak (the louder wins)
        ceil = np.ones(L)
        if loc_ev:
            ceil[:] = 0.0
            covered = np.zeros(L, dtype=bool)
            # An event's own peak holds until the next event's onset; past it, only as high as its
            # sound (its decaying upper envelope, with 18 dB to spare: the level matching's gain
            # rises for a quieter hit after it, and lifts the ring with it) rings there. A quieter
            # hit within 0.3 s after a louder one had the louder one's ceiling, which let its
            # attack (shape) reach full scale: +6 dB over its level
            order = sorted(sounds, key=lambda j: int(plan.samples[j]))
            for n_i, i in enumerate(order):
                x = sounds[i]
                p = int(plan.samples[i]) - ws
                a, b = max(0, p - 44), min(L, p + min(x.size, int(0.3 * SR)))
                if b <= a:
                    continue
                c = b
                if n_i + 1 < len(order):
                    c = min(b, max(a, int(plan.samples[order[n_i + 1]]) - ws - 44))
                ceil[a:c] = np.maximum(ceil[a:c], plan.peaks[i])
                if c < b:
                    # (relative to its loudest after its first 5 ms: a take whose click stands 20 dB
                    # over its ring had the limiter hold the click down, so that in the output the
                    # ring is louder than the one-shot says, and the ring was ducked 5-6 dB)
                    ax = np.abs(x[c - p : b - p])
                    u = np.maximum.accumulate(ax[::-1])[::-1] / (np.max(np.abs(x[220:] if x.size > 440 else x)) + 1e-12)
                    # where the one-shot has ended (u is 0 from there: a take cut out of digital
                    # silence, a gated click) it caps nothing: a ceiling of 0 there had limited
                    # whatever else sounded to silence, and 0 / 0 made NaNs that silenced the
                    # whole block (found by a review)
                    b = c + int(np.count_nonzero(u > 0))
                    ceil[c:b] = np.maximum(ceil[c:b], plan.peaks[i] * np.minimum(1.0, 8.0 * u[: b - c]))
                covered[a:b] = True
            ceil[~covered] = 1.0

        has_sk = bool(np.any(sk_src))
        # the level matching works on the stretch where sound is (whole 5-frame periods, with one
        # period of silence each side for the resampler's filter): y is exactly 0 elsewhere
        if hi_nz <= lo_nz:
            return np.zeros((2, _BLOCK), dtype=np.float32)
        p0, p1 = max(0, lo_nz // _ALIGN - 1), min(L // _ALIGN, -(-hi_nz // _ALIGN) + 1)
        s0, s1 = p0 * _ALIGN, p1 * _ALIGN
        src_s, ceil_s, shape_s = src[s0:s1], ceil[s0:s1], shape[s0:s1]
        sk_s = sk_src[s0:s1] if has_sk else None

        gs, y = np.zeros(L), np.zeros(L)  # reused by every pass (0 outside the stretch)

        def limited(g):
            """(y, gain, limiter gain) over the window for frame gains ``g``: ``y = (src * gs + skirts)
            * lg`` with its peaks under the ceiling. The limiter acts only around samples over their
            ceiling; elsewhere its gain is 1. ``y`` and ``gs`` are overwritten by the next call."""
            gss = gs[s0:s1]
            _frames_to_samples(g, p0, p1, out=gss)
            gss *= shape_s
            ys = y[s0:s1]
            np.multiply(src_s, gss, out=ys)
            if has_sk:
                ys += sk_s
            ay = np.abs(ys)
            st = np.max(np.abs(lr[:, s0:s1] * gss + sk_lr[:, s0:s1]), axis=0) if stereo else None
            hot = ay > ceil_s
            if stereo:
                hot |= st > 1.0
            idx = np.flatnonzero(hot)
            if idx.size == 0:
                return y, gs, None
            lg = np.ones(L)
            lgs = lg[s0:s1]
            # stretches of samples over the ceiling, apart by more than the limiter's reach (2 x 2 ms)
            cut = np.flatnonzero(np.diff(idx) > 4 * _LIM_W) + 1
            n_s = s1 - s0
            for run in np.split(idx, cut):
                a, b = max(0, int(run[0]) - 2 * _LIM_W), min(n_s, int(run[-1]) + 2 * _LIM_W + 1)
                over = ay[a:b] / ceil_s[a:b]
                if stereo:
                    over = np.maximum(over, st[a:b])
                seg = _limiter_gain(over)
                lgs[a:b] = seg
                ys[a:b] *= seg
                gss[a:b] *= seg
            return y, gs, lg

        gated = ~(e > self.silence)
        fine, shaped = None, True  # the frame RMS of src * shape, made again when the shape changed
        for it in range(self.iterations):
            y, _, _ = limited(g)
            y16 = np.zeros(L * 160 // 441)
            a16 = s0 * 160 // 441
            r16 = _resample16(y[s0:s1])[: y16.size - a16]
            y16[a16 : a16 + r16.size] = r16
            meas = _spec_envelope16(y16, nf, plan.kernel(k))
            ratio = np.where(e > self.silence, e / np.maximum(meas, 1e-7), 0.0)
            g_new = np.clip(g * np.clip(ratio, 0.0, 8.0), 0.0, 1e3)
            # where the target falls silent, what still rings fades out at 1 dB per frame (no cut)
            _fade_out(g_new, gated)
            for z0, z1 in pre:
                g_new[z0:z1] = np.minimum(g_new[z0:z1], g_new[z0 - 1])
            if tails:
                if shaped:
                    fine, shaped = _frame_rms(src_s * shape_s, nf, s0), False
                for t0, t1 in tails:
                    _no_rises(g_new, fine, t0, t1)
            # attacks that do not reach their peak (as they will be after this gain update) are
            # sharpened: the loudest event nearby at full scale, the others in proportion. Peaks
            # above it are the limiter's.
            for i, p in loc_ev:
                a, b = max(0, p - 44), min(L, p + 882)
                if b <= a:
                    continue
                a16, b16 = a * 160 // 441, max(a * 160 // 441 + 1, b * 160 // 441)
                pk = max(float(np.max(np.abs(y[a:b]))), float(np.max(np.abs(y16[a16:b16]))))
                fi = min(nf - 1, int(round(p / _HOP44)))
                pk *= g_new[fi] / g[fi] if g[fi] > 0 else 0.0
                if pk <= 1e-9:
                    continue
                f = float(np.clip(plan.peaks[i] / pk, 1.0, 4.0))
                log.debug("attack boost event %d pass %d: %.3f", i, it, plan.peaks[i] / pk)
                if f > 1.0 + 1e-4:
                    a, b = max(0, p - 88), min(L, p + int(0.1 * SR))
                    shape[a:b] *= 1.0 + (f - 1.0) * _attack_window(a - p, b - p)
                    shaped = True
            g = g_new
        _, gs, lg = limited(g)
        lo, hi = _CTX, _CTX + _BLOCK
        if stereo:
            out = lr[:, lo:hi] * gs[lo:hi]
            if lg is None:
                out += sk_lr[:, lo:hi]
            else:
                out += sk_lr[:, lo:hi] * lg[lo:hi]
        else:
            out = src[lo:hi] * gs[lo:hi]
            if has_sk:
                out += sk_src[lo:hi] if lg is None else sk_src[lo:hi] * lg[lo:hi]
        # nothing past the end of the render
        end = plan.n - bs
        if end < _BLOCK:
            out[..., max(0, end) :] = 0.0
        if not np.all(np.isfinite(out)):  # pragma: no cover - a guard, never expected
            log.warning("sampler: non-finite samples in block %d replaced by silence", k)
            out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
        out = np.clip(out, -1.0, 1.0, out=out).astype(np.float32)
        if stereo:
            return out
        both = np.empty((2, _BLOCK), dtype=np.float32)
        both[0] = both[1] = out
        return both


def _with_tail(x: np.ndarray, want: np.ndarray, t0: float, texture, rng: np.random.Generator) -> np.ndarray:
    """Scale a one-shot to the event's RMS ``want`` and fill what its ring lacks with a texture tail.

    ``want`` holds the wanted RMS (32 ms windows, as the SPEC measures) per envelope frame, frame 0
    at ``t0`` s from the onset. The attack sets the scale; where the material's ring dies sooner
    than the envelope says, the missing level is filled with the source's texture (a rub / scatter
    tail, ``texture(rng, n)``) that starts with the attack and only falls. Without it the level matching would stretch a
    dying ring by large, uneven gains, heard (and detected) as extra hits.
    """
    rate = ENV_DEFAULT.rate
    n = int(min(_MAX_EVENT, max(x.size / SR, t0 + want.size / rate)) * SR)
    x = np.pad(x, (0, max(0, n - x.size)))[:n]
    hand = _hands_over(want, t0, rate)
    centres = np.round((t0 + np.arange(want.size) / rate) * SR).astype(np.int64)
    keep = centres < n
    centres, want = centres[keep], want[keep]
    if want.size < 2:
        return x
    pts, ilo, ihi = _window_points(centres, 705, 706, n)
    xr = np.sqrt(np.maximum(_window_sums(x * x, pts, ilo, ihi), 0.0) / 1411.0)
    k = min(6, want.size)
    scale = float(want[:k].max()) / (float(xr[:k].max()) + 1e-12)
    if not scale > 0:
        return np.zeros(n)
    # where the one-shot rings longer than the envelope says, let it die with the envelope
    att = np.ones(want.size)
    att[k:] = np.minimum(1.0, want[k:] / (scale * xr[k:] + 1e-12))
    att = np.minimum.accumulate(att)
    if att[-1] < 1.0:
        # the fade starts after the last frame still at 1 (the gain is 1 before it)
        j = max(0, int(np.searchsorted(-att, -1.0, side="right")) - 1)
        a = max(0, int(centres[j]))
        x[a:] *= _knot_interp(att, int(centres[0]), a, n, 1.0, float(att[-1]))
        xr = xr * att
    need = np.sqrt(np.maximum((want / scale) ** 2 - xr**2, 0.0))
    if np.any(need > 1e-3 * float(xr[:k].max())):
        # never let the tail swell: it starts with the attack at its largest later level and only falls
        need = np.maximum.accumulate(need[::-1])[::-1]
        tex = texture(rng, n)
        # the tail's level falls to 0 after the last frame that needs any (silence from there on)
        last = int(np.flatnonzero(need > 0)[-1])
        m = min(n, int(centres[0]) + int((last + 1) * _HOP44) + 2)
        if m > 0:  # (m <= 0: only the frame just before the onset lacks level; nothing to add after it)
            tail = tex[:m] * _knot_interp(need, int(centres[0]), 0, m, float(need[0]), 0.0)
            fade = min(n // 4, int(0.03 * SR))
            if m > n - fade:
                tail[n - fade :] *= np.linspace(1.0, 0.0, fade)[: m - (n - fade)]
            x[:m] += tail
    if hand:  # (handing over to the plan's texture fill: see _HANDOVER)
        x *= np.clip((_MAX_EVENT - np.arange(n) / SR) / _HANDOVER, 0.0, 1.0)
    return x * scale


def _knot_interp(v: np.ndarray, c0: int, lo: int, hi: int, left: float, right: float) -> np.ndarray:
    """Samples [lo, hi) of the line through ``v[j]`` at sample ``c0 + j * 44100 / 125`` (one value
    per envelope frame from sample ``c0``): ``left`` before the first, falling or rising to ``right``
    over the frame after the last. Frames and samples align every 5 frames (``_ALIGN`` samples), so
    it is a matrix product per 5-frame period, like :func:`_frames_to_samples`."""
    out = np.empty(max(0, hi - lo))
    a = min(max(lo, c0), hi)
    out[: a - lo] = left
    if hi > a:
        q0, q1 = (a - c0) // _ALIGN, (hi - 1 - c0) // _ALIGN + 1
        vp = np.full(max(5 * q1 + 1, v.size), float(right))
        vp[: v.size] = v
        idx = np.arange(q0, q1)[:, None] * 5 + np.arange(6)[None, :]
        vals = (vp[idx] @ _interp_matrix()).reshape(-1)
        off = a - (c0 + q0 * _ALIGN)
        out[a - lo :] = vals[off : off + hi - a]
    return out


def _qtime(t: float) -> int:
    """An event's time quantised to 10 ms: the key of its randomness."""
    return int(math.floor(t * 100.0 + 0.5)) + 1000


def _level(env: Envelope) -> np.ndarray:
    """(T,) the level a render follows: a mono envelope's own, a stereo one's equal-power level
    sqrt((L^2 + R^2) / 2) (its channels are then L / level and R / level of it, the equal-power law
    of a ``pan`` curve: a curve written by ``generate --pan`` renders as the ``--pan`` render did)."""
    if env.channels == 1:
        return env.values[0]
    v = env.values.astype(np.float64)
    return np.sqrt(0.5 * (v[0] ** 2 + v[1] ** 2))


def _power_pan(left, right):
    """The pan in [-1, 1] whose equal-power gains (:func:`pan_gains`) have the ratio right / left."""
    return np.arctan2(np.asarray(right, dtype=np.float64), np.asarray(left, dtype=np.float64)) * (4.0 / np.pi) - 1.0


def pan_gains(p):
    """(left, right) gains of pan ``p`` in [-1 (left), 1 (right)]: equal-power, scaled so the centre
    is unity on both channels (a stereo envelope is read with the same law: :func:`_level`)."""
    p = np.asarray(p, dtype=np.float64)
    th = (p + 1.0) * (np.pi / 4)
    return np.sqrt(2.0) * np.cos(th), np.sqrt(2.0) * np.sin(th)


def _attack_window(lo: int, hi: int) -> np.ndarray:
    """Weights over samples [lo, hi) relative to the onset: 1 over [-1 ms, 2 ms], then falling smoothly.

    The fall (time constant 12 ms) changes the attack's peak without a step a listener (or an onset
    detector) would hear as a second hit.
    """
    t = np.arange(lo, hi) / SR
    w = np.exp(-np.maximum(t - 0.002, 0.0) / 0.012)
    rise = t < -0.001
    w[rise] = np.clip((t[rise] + 0.002) / 0.001, 0.0, 1.0)
    return w


_FADE_K = 10 ** (-1.0 / 20)
_local = threading.local()


def _resample16(y: np.ndarray) -> np.ndarray:
    """``y`` (a whole signal at 44.1 kHz) resampled to 16 kHz: soxr HQ, as ``soxr.resample`` does,
    through one stream per thread (cleared before each signal: the filter is designed once)."""
    rs = getattr(_local, "soxr16", None)
    if rs is None:
        import soxr

        rs = _local.soxr16 = soxr.ResampleStream(SR, 16000, 1, dtype="float32", quality="HQ")
    else:
        rs.clear()
    return rs.resample_chunk(y.astype(np.float32), last=True)


#: ... and is 0 after this many frames (60 dB down, 0.48 s): a ring that goes on under the
#: fade (a one-shot longer than its envelope) would otherwise never be exactly silent, and the
#: AAC encoder's threads take over only at exact silences (pipeline.BRANCH_AFTER)
_FADE_FRAMES = 60


def _fade_out(g: np.ndarray, gated: np.ndarray) -> None:
    """In place: on ``gated`` frames the gain falls from the previous frame's by 1 dB per frame,
    to 0 after :data:`_FADE_FRAMES`."""
    idx = np.flatnonzero(gated[1:]) + 1
    if idx.size == 0:
        return
    # runs of gated frames: each falls from the frame before its start, k ** (1, 2, ...)
    start = np.ones(idx.size, dtype=bool)
    start[1:] = np.diff(idx) > 1
    run = np.cumsum(start) - 1
    first = idx[start]
    pos = idx - first[run] + 1
    g[idx] = np.where(pos <= _FADE_FRAMES, g[first - 1][run] * _FADE_K ** pos, 0.0)


def _limiter_gain(over: np.ndarray) -> np.ndarray:
    """Gain <= 1 that brings ``over`` (level / ceiling per sample) to <= 1, smooth over 2 ms.

    The needed gain is min-filtered over 2 ms and then averaged over the same 2 ms, so every
    sample's gain is at most what it needs, and the gain has no steps (no clicks).
    """
    need = 1.0 / np.maximum(over, 1.0)
    if need.min() >= 1.0:
        return np.ones_like(need)
    m = ndimage.minimum_filter1d(need, size=_LIM_W, mode="nearest")
    return ndimage.uniform_filter1d(m, size=_LIM_W, mode="nearest")


_LIM_W = 89  # the limiter's smoothing: 2 ms


def _window_points(c: np.ndarray, half_lo: int, half_hi: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For windows [c - half_lo, c + half_hi) (clipped to [0, n)) around the centres ``c``: the
    sorted window edges, and where each window's start and end are among them."""
    lo, hi = np.clip(c - half_lo, 0, n), np.clip(c + half_hi, 0, n)
    pts = np.unique(np.concatenate([[0], lo, hi]))
    return pts, np.searchsorted(pts, lo), np.searchsorted(pts, hi)


@functools.lru_cache(maxsize=64)
def _frame_points(nf: int, s0: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_window_points` of the 8 ms windows of a block window's frames, for a stretch of ``n``
    samples starting at sample ``s0`` of the window."""
    pts = _window_points(np.round(np.arange(nf) * _HOP44).astype(np.int64) - s0, 176, 177, n)
    for a in pts:
        a.flags.writeable = False  # shared by every render
    return pts


def _window_sums(sq: np.ndarray, pts: np.ndarray, ilo: np.ndarray, ihi: np.ndarray) -> np.ndarray:
    """Sums of ``sq`` over the windows of :func:`_window_points` (one pass: sums between edges)."""
    inner = pts[pts < sq.size]
    seg = np.add.reduceat(sq, inner) if sq.size else np.zeros(0)
    c = np.zeros(pts.size)  # c[j]: the sum of sq[:pts[j]] (pts[0] == 0; an edge at the end: all)
    c[1:] = np.cumsum(seg)[: pts.size - 1]
    return c[ihi] - c[ilo]


def _frame_rms(y: np.ndarray, nf: int, s0: int = 0) -> np.ndarray:
    """(nf,) RMS over 8 ms around each envelope frame of a block window whose samples [s0, s0 +
    y.size) are ``y`` (and the rest 0)."""
    pts, ilo, ihi = _frame_points(nf, s0, y.size)
    return np.sqrt(np.maximum(_window_sums(y * y, pts, ilo, ihi), 0.0) / 353.0)


def _no_rises(g: np.ndarray, fine: np.ndarray, t0: int, t1: int) -> None:
    """In frames [t0, t1) lower ``g`` where needed so that ``g * fine`` never rises (in place).

    The product is held at its running minimum from frame ``t0 - 1`` on (frames where ``fine`` is 0
    keep their gain; the product there is 0)."""
    if t1 <= t0:
        return
    h = g[t0 - 1 : t1] * fine[t0 - 1 : t1]
    m = np.minimum.accumulate(h)
    f = fine[t0:t1]
    low = (h[1:] > m[1:]) & (f > 0)
    if np.any(low):
        g[t0:t1][low] = m[1:][low] / f[low]


@functools.lru_cache(maxsize=1)
def _interp_matrix() -> np.ndarray:
    """(6, 1764) weights: linear interpolation from frames to samples, one 5-frame period at a time.

    Frames and samples align every ``_ALIGN`` samples (5 frames), so the samples of period j of a
    block window are ``v[5j : 5j + 6] @ M`` (the last frame held, as at the window's end).
    """
    pos = np.arange(_ALIGN) / _HOP44
    i0 = np.floor(pos).astype(np.int64)
    w = pos - i0
    m = np.zeros((6, _ALIGN))
    m[i0, np.arange(_ALIGN)] = 1.0 - w
    m[i0 + 1, np.arange(_ALIGN)] += w
    m.flags.writeable = False  # shared by every render
    return m


def _frames_to_samples(v: np.ndarray, p0: int = 0, p1: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """(nf,) per-frame values of a block window -> (L,) per-sample values (linear between frames);
    with ``p0``, ``p1``: only the samples of the 5-frame periods [p0, p1) (``_ALIGN`` samples each)."""
    nf = v.size
    per = nf // 5  # whole periods of 5 frames (a block window holds exactly 70)
    vp = np.empty(5 * per + 1)
    vp[: 5 * per] = v[: 5 * per]
    vp[5 * per] = v[5 * per] if nf > 5 * per else v[5 * per - 1]
    p1 = per if p1 is None else p1
    idx = np.arange(p0, p1)[:, None] * 5 + np.arange(6)[None, :]
    if out is None:
        return (vp[idx] @ _interp_matrix()).reshape(-1)
    np.matmul(vp[idx], _interp_matrix(), out=out.reshape(p1 - p0, _ALIGN))
    return out


def _spec_envelope16(y16: np.ndarray, nf: int, K: int) -> np.ndarray:
    """The SPEC envelope (before peak normalisation) of a frame-aligned window already at 16 kHz.

    Frame f is the RMS of the 512 samples from ``128 f - 256`` (zeros outside the window): the sum
    of four 128-sample chunks' energies."""
    y16 = y16.astype(np.float64)
    nc = nf + 3  # chunks [128 (c - 2), 128 (c - 1)) for c < nf + 3
    yp = np.zeros(nc * 128)
    m = min(y16.size, (nc - 2) * 128)
    yp[256 : 256 + m] = y16[:m]
    ch = np.einsum("ij,ij->i", yp.reshape(nc, 128), yp.reshape(nc, 128))
    e4 = ch[:nf] + ch[1 : nf + 1] + ch[2 : nf + 2] + ch[3 : nf + 3]
    rms = np.sqrt(np.maximum(e4 / 512, 0.0))
    return smooth(rms, K, ENV_DEFAULT.smooth_filter).astype(np.float64)
