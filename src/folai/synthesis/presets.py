"""Procedural material presets for the offline sampler: every sound is synthesised in code.

Each :class:`Preset` describes a material by a few physical-ish numbers and yields two sounds:

- :meth:`Preset.impact` — a one-shot hit (modal synthesis: damped sinusoids at material-specific
  frequency ratios and decays, plus a filtered-noise contact burst and/or a granular crackle;
  footstep presets add a second, softer toe transient after the heel);
- :meth:`Preset.texture` — a continuous, roughly stationary scratch / rub / slide sound (filtered
  noise through the material's resonances plus granular crackle), unit RMS.

No sample files are involved. :func:`match_preset` maps a free-text prompt ("hitting metal with a
stick", "footsteps on gravel") to a preset name through each preset's words and synonyms.

Example::

    >>> import numpy as np
    >>> from folai.synthesis.presets import get_preset, match_preset
    >>> match_preset("footsteps on gravel")
    'footsteps-gravel'
    >>> x = get_preset("wood").impact(np.random.default_rng(0))   # (N,) float32 at 44.1 kHz
    >>> bool(np.abs(x).max() <= 1.0)
    True
"""

from __future__ import annotations

import functools
import logging
import math
import re
from dataclasses import dataclass

import numpy as np
from scipy import signal

from ..errors import FolaiError

log = logging.getLogger(__name__)

__all__ = ["Preset", "PRESETS", "DEFAULT_PRESET", "get_preset", "list_presets", "match_preset"]

SR = 44100


@dataclass(frozen=True)
class Preset:
    """A material: how its hits ring and how it sounds when rubbed.

    Frequencies in Hz, times in seconds. Ranges are (low, high) drawn uniformly per event.
    """

    name: str
    words: tuple[str, ...]  # words/synonyms that select it from a prompt (lower case)
    description: str
    # modal part of an impact
    base_hz: tuple[float, float] = (300.0, 600.0)
    ratios: tuple[float, ...] = (1.0, 2.3, 3.9, 5.4)
    mode_decay: tuple[float, float] = (0.05, 0.10)  # decay time constant of the lowest mode
    decay_slope: float = 0.8  # higher modes decay as (f0 / f) ** slope times faster
    mode_level: float = 1.0  # weight of the modal part against the noise part
    inharmonic: float = 0.03  # random detuning of each ratio (fraction)
    # noise contact burst
    click_level: float = 0.5
    click_decay: float = 0.004
    click_band: tuple[float, float] = (800.0, 8000.0)
    # low body thump (stone, dirt, footsteps)
    thump_hz: float = 0.0
    thump_decay: float = 0.03
    thump_level: float = 0.0
    # granular crackle in the impact (gravel, leaves, snow, paper)
    grains: tuple[int, int] = (0, 0)
    grain_spread: float = 0.06
    grain_band: tuple[float, float] = (1500.0, 7000.0)
    grain_decay: float = 0.002
    # bubbles (water)
    bubbles: tuple[int, int] = (0, 0)
    # footsteps: a toe transient after the heel
    footstep: bool = False
    toe_delay: tuple[float, float] = (0.05, 0.10)
    toe_level: tuple[float, float] = (0.2, 0.45)
    length: float = 0.6  # cap on the one-shot length
    # continuous texture (scratch / rub / slide)
    tex_band: tuple[float, float] = (500.0, 6000.0)
    tex_crackle: float = 0.0  # crackle grains per second (dense, >= 300/s: sparse clicks read as onsets)
    tex_crackle_level: float = 0.5
    tex_resonance: float = 0.3  # how much of the texture passes the material's modes
    tex_flutter: float = 6.0  # slow random amplitude modulation rate (Hz)
    # (decay, tail, tail_share) of the SPEC envelope of its natural hit (decay_scale 1), for the
    # materials that ring past the motion timing's default impact shape (metal, glass): a prompt
    # naming one gives stage 1's impacts this shape, so that the sound can ring as the material
    # does (the sampler follows the envelope). tests/test_sampler.py fits it again from impact()
    ring: tuple[float, float, float] | None = None

    @property
    def natural_decay(self) -> float:
        """The typical decay time constant (s) of this material's hit."""
        return float(np.mean(self.mode_decay))

    # -------------------------------------------------------------- impact
    def impact(self, rng: np.random.Generator, decay_scale: float = 1.0, variation: float = 1.0, sr: int = SR) -> np.ndarray:
        """One hit: (N,) float32 at ``sr``, attack at sample 0, peak 1.

        ``decay_scale`` multiplies the material's decay times (the envelope says how long the hit
        rings); ``variation`` scales how far pitch, decay and the toe's timing stray from the middle
        of the preset's ranges (0: every hit rings alike).
        """
        n = int(self.length * max(0.5, min(decay_scale, 3.0)) * sr) + int(0.12 * sr * self.footstep)
        n = max(n, int(0.05 * sr))
        x = self._hit(rng, n, decay_scale, sr, gain=1.0, variation=variation)
        if self.footstep:
            d = int(_draw(rng, self.toe_delay, variation) * sr)
            toe = self._hit(rng, n - d, decay_scale * 0.7, sr, gain=_draw(rng, self.toe_level, variation),
                            variation=variation)
            r = min(toe.size, int(0.006 * sr))
            toe[:r] *= np.linspace(0.0, 1.0, r) ** 2  # the toe rolls in: softer than the heel's strike
            x[d:] += toe
        # a thump's damped sine starts at phase 0 (a bubble's too), so it pushes one way: a pulse
        # under 20 Hz on every hit (up to -20 dB of the peak on footsteps-dirt, a DC offset of
        # +0.002-0.006 over a render), which wastes headroom and pumps woofers (found by a review).
        # A gentle high-pass at 25 Hz takes it out; a 55-120 Hz thump itself stays
        x = signal.sosfilt(_highpass(25.0, sr), x)
        fade = min(n // 4, int(0.03 * sr))
        x[n - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32) ** 2
        peak = float(np.max(np.abs(x))) or 1.0
        return (x / peak).astype(np.float32)

    def _hit(self, rng: np.random.Generator, n: int, decay_scale: float, sr: int, gain: float,
             variation: float = 1.0) -> np.ndarray:
        # damped sinusoids (modes, thump): amp * sin(2 pi f t + ph) * exp(-t / d), summed at once
        modes: list[tuple[float, float, float, float]] = []  # (amp, f, ph, d)
        if self.mode_level > 0:
            f0 = _draw(rng, self.base_hz, variation)
            d0 = _draw(rng, self.mode_decay, variation) * decay_scale
            for k, ratio in enumerate(self.ratios):
                f = f0 * ratio * (1.0 + self.inharmonic * min(variation, 1.0) * rng.uniform(-1, 1))
                if f >= 0.45 * sr:
                    continue
                d = d0 * (f0 / f) ** self.decay_slope
                amp = rng.uniform(0.5, 1.0) / (1.0 + 0.5 * k)
                ph = rng.uniform(0, 2 * np.pi)
                modes.append((self.mode_level * amp, f, ph, d))
        if self.thump_level > 0:
            # (strayed by `variation` like the modes: at 0 every hit is the same one-shot)
            f = self.thump_hz * (1.0 + (rng.uniform(0.85, 1.15) - 1.0) * min(variation, 1.0))
            modes.append((self.thump_level, f, 0.0, self.thump_decay * decay_scale))
        x = _damped_sines(modes, n, sr)
        if self.click_level > 0:
            m = min(n, int(10 * self.click_decay * sr) + 1)
            burst = _band_noise(rng, m, self.click_band, sr) * np.exp(-np.arange(m) / (sr * self.click_decay))
            x[:m] += self.click_level * burst / (np.max(np.abs(burst)) + 1e-9)
        if self.grains[1] > 0:
            x += _grains(rng, n, int(rng.integers(self.grains[0], self.grains[1] + 1)), self.grain_spread,
                         self.grain_band, self.grain_decay, sr)
        if self.bubbles[1] > 0:
            x += _bubbles(rng, n, int(rng.integers(self.bubbles[0], self.bubbles[1] + 1)), sr)
        # a 0.3 ms fade-in keeps the attack sharp but click-free
        a = min(n, int(0.0003 * sr) + 1)
        x[:a] *= np.linspace(0.0, 1.0, a)
        return gain * x / (np.max(np.abs(x)) + 1e-12)

    # -------------------------------------------------------------- texture
    def texture(self, rng: np.random.Generator, n: int, sr: int = SR) -> np.ndarray:
        """A continuous rub / scratch / slide: (n,) float32 of unit RMS."""
        warm = 2048
        m = n + warm
        x = _band_noise(rng, m, self.tex_band, sr)
        if self.tex_resonance > 0:
            f0 = float(np.mean(self.base_hz))
            res = np.zeros(m)
            for ratio in self.ratios[:4]:
                f = f0 * ratio
                if f >= 0.45 * sr:
                    continue
                b, a = _peak(float(f), sr)
                res += signal.lfilter(b, a, x)
            x = (1 - self.tex_resonance) * x / (np.std(x) + 1e-12) + self.tex_resonance * res / (np.std(res) + 1e-12)
        if self.tex_crackle > 0:
            cr = _grains(rng, m, int(rng.poisson(self.tex_crackle * m / sr)), m / sr, self.grain_band,
                         self.grain_decay, sr, spread_from_start=False)
            x = x / (np.std(x) + 1e-12) + self.tex_crackle_level * 3.0 * cr / (np.std(cr) + 1e-12) * (np.std(cr) > 0)
        if self.tex_flutter > 0:
            k = max(2, int(m / sr * self.tex_flutter) + 2)
            x = x * _polyline(rng.uniform(0.7, 1.0, k), m)
        x = x[warm:]
        return (x / (np.sqrt(np.mean(x * x)) + 1e-12)).astype(np.float32)


# ------------------------------------------------------------------ building blocks


def _draw(rng: np.random.Generator, span: tuple[float, float], variation: float) -> float:
    """A value of ``span`` = (low, high): its middle, strayed by ``variation`` (1 = the whole span)."""
    lo, hi = span
    mid = 0.5 * (lo + hi)
    x = mid + rng.uniform(-0.5, 0.5) * (hi - lo) * variation
    return float(max(x, 0.25 * lo if lo > 0 else 0.0))


@functools.lru_cache(maxsize=256)
def _bandpass(lo: float, hi: float, sr: int) -> np.ndarray:
    return signal.butter(2, [lo, min(hi, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")


@functools.lru_cache(maxsize=8)
def _highpass(f: float, sr: int) -> np.ndarray:
    return signal.butter(2, f, btype="highpass", fs=sr, output="sos")


@functools.lru_cache(maxsize=256)
def _peak(f: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    return signal.iirpeak(f, Q=8.0, fs=sr)


_SEG = 512  # samples per row of _damped_sines' product


def _damped_sines(modes: list[tuple[float, float, float, float]], n: int, sr: int) -> np.ndarray:
    """(n,) sum of ``amp * sin(2 pi f t + ph) * exp(-t / d)`` over ``modes`` = (amp, f, ph, d).

    Each mode is ``Im(amp e^{i ph} z^s)`` with ``z = e^{(2 pi i f - 1/d) / sr}``; writing the sample
    ``s = _SEG q + r`` splits ``z^s = z^{_SEG q} z^r``, so all modes together are one real matrix
    product of a (rows, 2 modes) by a (2 modes, _SEG) matrix: a few multiplications per sample instead
    of a sine and an exponential per mode. A mode is left out where it has died (8 time constants:
    -70 dB).
    """
    x = np.zeros(n)
    if not modes or n <= 0:
        return x
    rows = -(-n // _SEG)
    amp, f, ph, d = (np.array(v, dtype=np.float64) for v in zip(*modes))
    lam = (2j * np.pi * f - 1.0 / d) / sr  # (M,) log z
    r = np.arange(_SEG)
    zr = np.exp(np.outer(lam, r))  # (M, _SEG)
    bq = (amp * np.exp(1j * ph))[None, :] * np.exp(np.outer(np.arange(rows) * _SEG, lam))  # (rows, M)
    # a mode contributes nothing to the rows after it died
    alive = np.arange(rows)[:, None] * _SEG <= (8 * d * sr)[None, :]
    bq = np.where(alive, bq, 0.0)
    a = np.concatenate([bq.real, bq.imag], axis=1)  # (rows, 2M)
    b = np.concatenate([zr.imag, zr.real], axis=0)  # (2M, _SEG)
    x[:] = (a @ b).reshape(-1)[:n]
    return x


def _polyline(v: np.ndarray, m: int) -> np.ndarray:
    """(m,) the line through the values ``v`` spread evenly from the first sample to the last
    (``np.interp(np.linspace(0, k - 1, m), np.arange(k), v)``, a segment at a time)."""
    k = v.size
    out = np.empty(m)
    step = (k - 1) / (m - 1) if m > 1 else 0.0
    # sample s lies at knot position s * step: segment i holds the samples from ceil(i / step)
    edges = [0] + [min(m, int(math.ceil(i / step))) if step > 0 else m for i in range(1, k - 1)] + [m]
    for i in range(k - 1):
        a, b = edges[i], edges[i + 1]
        if b > a:
            u = np.arange(a, b) * step - i
            out[a:b] = v[i] + (v[i + 1] - v[i]) * u
    if k == 1:
        out[:] = v[0]
    return out


def _band_noise(rng: np.random.Generator, n: int, band: tuple[float, float], sr: int) -> np.ndarray:
    return signal.sosfilt(_bandpass(float(band[0]), float(band[1]), sr), rng.standard_normal(n))


def _grains(rng, n, count, spread, band, decay, sr, spread_from_start=True) -> np.ndarray:
    """``count`` tiny filtered clicks scattered over ``spread`` s (from the start, decaying density)."""
    out = np.zeros(n)
    if count <= 0:
        return out
    g = int(8 * decay * sr) + 2
    tg = np.arange(g) / sr
    env = np.exp(-tg / decay)
    if spread_from_start:
        starts = (rng.exponential(spread / 3, count) * sr).astype(int)
    else:
        starts = rng.integers(0, max(1, n - 1), count)
    amps = rng.uniform(0.2, 1.0, count) * np.where(rng.random(count) < 0.5, -1, 1)
    burst = rng.standard_normal(g) * env
    for s, a in zip(starts, amps):
        if s >= n:
            continue
        e = min(n, s + g)
        # each grain: the shared burst shape, randomly reversed in polarity and shifted in phase
        out[s:e] += a * np.roll(burst, int(rng.integers(0, 4)))[: e - s]
    return signal.sosfilt(_bandpass(float(band[0]), float(band[1]), sr), out)


def _bubbles(rng, n, count, sr) -> np.ndarray:
    """Minnaert-like bubbles: short sinusoids whose pitch rises as they decay."""
    out = np.zeros(n)
    for _ in range(count):
        s = int(rng.exponential(0.04) * sr)
        f = rng.uniform(400, 2500)
        d = rng.uniform(0.008, 0.03)
        m = min(n - s, int(6 * d * sr))
        if m <= 0:
            continue
        t = np.arange(m) / sr
        phase = 2 * np.pi * np.cumsum(f * (1 + 2.0 * t / (6 * d))) / sr
        out[s : s + m] += rng.uniform(0.3, 1.0) * np.sin(phase) * np.exp(-t / d)
    return out


# ------------------------------------------------------------------ the presets


def _p(**kw) -> Preset:
    return Preset(**kw)


_LIST: list[Preset] = [
    _p(name="wood", words=("wood", "wooden", "timber", "plank", "table", "desk", "door", "stick", "log", "branch",
                           "tree", "drumstick", "chair", "crate", "hit", "hits", "hitting", "knock", "knocking", "tap",
                           "drawer", "cupboard", "cabinet", "shelf", "bench", "twig"),
       description="a wooden stick hitting wood (Greatest-Hits-like knock)",
       base_hz=(250.0, 700.0), ratios=(1.0, 2.6, 4.1, 6.3, 8.9), mode_decay=(0.03, 0.07), decay_slope=1.0,
       click_level=0.6, click_band=(1000.0, 7000.0), thump_hz=120.0, thump_level=0.3, thump_decay=0.02,
       length=0.5, tex_band=(300.0, 4000.0), tex_resonance=0.35),
    _p(name="metal", words=("metal", "metallic", "steel", "iron", "tin", "pipe", "railing", "saucepan", "pot",
                            "bell", "aluminium", "aluminum", "copper", "brass", "chain", "car", "gate", "fence",
                            "anvil", "gong", "cymbal", "cowbell", "spoon", "fork", "knife", "cutlery", "keys",
                            "coin", "coins", "nail", "nails", "locker", "tray", "bolt", "wrench", "kettle"),
       description="struck metal: bright, long-ringing inharmonic partials",
       base_hz=(350.0, 900.0), ratios=(1.0, 2.76, 5.40, 8.93, 13.34), mode_decay=(0.25, 0.6), decay_slope=0.5,
       inharmonic=0.05, click_level=0.35, click_band=(2000.0, 12000.0), length=1.4,
       tex_band=(1500.0, 9000.0), tex_resonance=0.6, tex_flutter=4.0, ring=(0.14, 0.41, 0.83)),
    _p(name="glass", words=("glass", "bottle", "jar", "window", "cup", "mug", "ceramic", "porcelain", "plate",
                            "dish", "wine", "mirror", "tile", "tiles", "vase", "bowl", "teacup", "crystal"),
       description="glass or ceramic: high, pure, ringing partials",
       base_hz=(900.0, 1800.0), ratios=(1.0, 2.32, 4.25, 6.63), mode_decay=(0.12, 0.3), decay_slope=0.6,
       inharmonic=0.02, click_level=0.3, click_band=(2500.0, 9000.0), length=0.9,
       tex_band=(2500.0, 12000.0), tex_resonance=0.5, ring=(0.15, 0.23, 0.45)),
    _p(name="plastic", words=("plastic", "bucket", "box", "toy", "container", "bin", "lid", "keyboard",
                              "drywall", "plasterboard", "plaster", "gypsum", "rubber"),
       description="hollow plastic: dull mid knock, short ring",
       base_hz=(400.0, 900.0), ratios=(1.0, 1.9, 3.1, 4.6), mode_decay=(0.015, 0.04), decay_slope=1.0,
       click_level=0.5, click_band=(1200.0, 6000.0), length=0.35, tex_band=(600.0, 5000.0), tex_resonance=0.3),
    _p(name="stone", words=("stone", "rock", "rocks", "concrete", "brick", "bricks", "cement", "pavement",
                            "asphalt", "marble", "floor", "ground", "wall", "sidewalk", "street", "road",
                            "cobblestone", "cobblestones", "cobbles", "tarmac", "granite", "slab"),
       description="stone or concrete: hard, dry, very short",
       base_hz=(900.0, 2200.0), ratios=(1.0, 1.7, 2.9, 4.4), mode_decay=(0.006, 0.015), decay_slope=1.0,
       mode_level=0.6, click_level=0.9, click_band=(800.0, 9000.0), click_decay=0.003, thump_hz=90.0,
       thump_level=0.5, thump_decay=0.015, length=0.25, tex_band=(800.0, 8000.0), tex_crackle=300.0,
       tex_crackle_level=0.4, tex_resonance=0.1),
    _p(name="cloth", words=("cloth", "fabric", "clothes", "clothing", "shirt", "jacket", "towel", "cushion",
                            "pillow", "sofa", "couch", "bed", "blanket", "curtain", "cotton", "wool", "bag",
                            "coat", "rustle", "rustling", "carpet", "rug", "mat", "foam", "leather"),
       description="cloth: soft, muffled thud and rustle",
       base_hz=(80.0, 160.0), ratios=(1.0,), mode_decay=(0.02, 0.04), mode_level=0.4, click_level=1.0,
       click_band=(200.0, 2500.0), click_decay=0.02, length=0.3, tex_band=(300.0, 3000.0), tex_resonance=0.0, tex_flutter=8.0),
    _p(name="paper", words=("paper", "papers", "cardboard", "book", "books", "page", "pages", "newspaper",
                            "envelope", "card", "crumple", "crumpling", "magazine"),
       description="paper or cardboard: crisp crackle",
       base_hz=(200.0, 400.0), ratios=(1.0, 2.1), mode_decay=(0.01, 0.02), mode_level=0.3, click_level=0.7,
       click_band=(1500.0, 10000.0), grains=(6, 14), grain_spread=0.05, grain_band=(2000.0, 10000.0),
       length=0.3, tex_band=(1500.0, 10000.0), tex_crackle=400.0, tex_crackle_level=0.8, tex_resonance=0.0),
    _p(name="leaves", words=("leaves", "leaf", "foliage", "bush", "bushes", "hedge", "twigs", "forest"),
       description="dry leaves: a burst of dense high crackle",
       base_hz=(150.0, 300.0), ratios=(1.0,), mode_decay=(0.01, 0.02), mode_level=0.15, click_level=0.5,
       click_band=(2000.0, 10000.0), grains=(15, 35), grain_spread=0.12, grain_band=(2500.0, 11000.0),
       grain_decay=0.0015, length=0.4, tex_band=(2000.0, 11000.0), tex_crackle=500.0, tex_crackle_level=1.0,
       tex_resonance=0.0),
    _p(name="grass", words=("grass", "grassy", "lawn", "field", "meadow", "hay", "weeds"),
       description="grass: soft high swish",
       base_hz=(100.0, 200.0), ratios=(1.0,), mode_decay=(0.01, 0.02), mode_level=0.2, click_level=1.0,
       click_band=(2500.0, 9000.0), click_decay=0.03, grains=(4, 10), grain_spread=0.08,
       grain_band=(3000.0, 10000.0), length=0.35, tex_band=(2500.0, 10000.0), tex_resonance=0.0),
    _p(name="gravel", words=("gravel", "pebble", "pebbles", "stones", "rubble", "shingle", "grit", "path"),
       description="gravel: many small stones crunching",
       base_hz=(1500.0, 3000.0), ratios=(1.0, 1.6), mode_decay=(0.004, 0.01), mode_level=0.3,
       click_level=0.6, click_band=(1000.0, 8000.0), thump_hz=80.0, thump_level=0.3, thump_decay=0.02,
       grains=(20, 45), grain_spread=0.10, grain_band=(1200.0, 9000.0), grain_decay=0.0025, length=0.4,
       tex_band=(1000.0, 8000.0), tex_crackle=500.0, tex_crackle_level=1.0, tex_resonance=0.0),
    _p(name="dirt", words=("dirt", "soil", "earth", "mud", "muddy", "dust", "dusty", "clay", "sand", "sandy",
                           "beach", "trail"),
       description="dirt or soil: a low dull thud with a little grit",
       base_hz=(70.0, 140.0), ratios=(1.0, 2.2), mode_decay=(0.02, 0.05), mode_level=0.6, click_level=0.6,
       click_band=(300.0, 3000.0), click_decay=0.01, thump_hz=60.0, thump_level=0.8, thump_decay=0.04,
       grains=(5, 15), grain_spread=0.06, grain_band=(800.0, 5000.0), length=0.35, tex_band=(300.0, 4000.0),
       tex_crackle=300.0, tex_crackle_level=0.3, tex_resonance=0.0),
    _p(name="water", words=("water", "splash", "splashing", "puddle", "river", "stream", "pool", "lake", "sea",
                            "liquid", "drip", "drips", "dripping", "drop", "pour", "pouring", "swim", "swimming",
                            "rain", "raindrops", "bubbles", "bubbling", "waves"),
       description="water: a splash with bubbles",
       base_hz=(200.0, 400.0), ratios=(1.0,), mode_decay=(0.01, 0.02), mode_level=0.2, click_level=1.0,
       click_band=(500.0, 8000.0), click_decay=0.03, bubbles=(4, 10), length=0.5, tex_band=(300.0, 6000.0),
       tex_resonance=0.0, tex_flutter=10.0),
    _p(name="snow", words=("snow", "snowy", "frost", "powder", "slush"),
       description="snow: a soft compressed crunch",
       base_hz=(150.0, 300.0), ratios=(1.0,), mode_decay=(0.01, 0.03), mode_level=0.2, click_level=0.5,
       click_band=(500.0, 5000.0), click_decay=0.02, grains=(25, 50), grain_spread=0.12,
       grain_band=(800.0, 6000.0), grain_decay=0.003, length=0.4, tex_band=(600.0, 6000.0), tex_crackle=400.0,
       tex_crackle_level=0.8, tex_resonance=0.0),
]

_SURFACES = {
    "wood": dict(base_hz=(150.0, 350.0), ratios=(1.0, 2.5, 4.2), mode_decay=(0.02, 0.05), click_level=0.6,
                 click_band=(600.0, 6000.0), thump_hz=90.0, thump_level=0.7, thump_decay=0.025,
                 tex_band=(300.0, 4000.0)),
    "concrete": dict(base_hz=(800.0, 1800.0), ratios=(1.0, 1.7, 2.9), mode_decay=(0.004, 0.01), mode_level=0.4,
                     click_level=1.0, click_band=(900.0, 9000.0), click_decay=0.003, thump_hz=70.0,
                     thump_level=0.6, thump_decay=0.015, tex_band=(800.0, 8000.0)),
    "gravel": dict(base_hz=(1500.0, 3000.0), ratios=(1.0,), mode_decay=(0.004, 0.01), mode_level=0.2,
                   click_level=0.6, click_band=(900.0, 8000.0), thump_hz=70.0, thump_level=0.4,
                   grains=(20, 40), grain_spread=0.08, grain_band=(1200.0, 9000.0), grain_decay=0.0025,
                   tex_band=(1000.0, 8000.0), tex_crackle=500.0, tex_crackle_level=1.0),
    "grass": dict(base_hz=(80.0, 150.0), ratios=(1.0,), mode_decay=(0.01, 0.02), mode_level=0.3,
                  click_level=0.9, click_band=(2000.0, 9000.0), click_decay=0.02, thump_hz=60.0,
                  thump_level=0.5, grains=(5, 12), grain_spread=0.06, grain_band=(3000.0, 10000.0),
                  tex_band=(2500.0, 10000.0)),
    "snow": dict(base_hz=(120.0, 250.0), ratios=(1.0,), mode_decay=(0.01, 0.03), mode_level=0.2, click_level=0.4,
                 click_band=(400.0, 5000.0), click_decay=0.02, thump_hz=60.0, thump_level=0.5,
                 grains=(25, 50), grain_spread=0.10, grain_band=(700.0, 6000.0), grain_decay=0.003,
                 tex_band=(600.0, 6000.0), tex_crackle=400.0, tex_crackle_level=0.8),
    "dirt": dict(base_hz=(70.0, 140.0), ratios=(1.0, 2.2), mode_decay=(0.02, 0.04), mode_level=0.5,
                 click_level=0.5, click_band=(300.0, 3000.0), click_decay=0.01, thump_hz=55.0, thump_level=0.9,
                 thump_decay=0.04, grains=(5, 15), grain_spread=0.05, grain_band=(800.0, 5000.0),
                 tex_band=(300.0, 4000.0), tex_crackle=300.0, tex_crackle_level=0.3),
    "metal": dict(base_hz=(400.0, 900.0), ratios=(1.0, 2.76, 5.4, 8.9), mode_decay=(0.08, 0.2), decay_slope=0.5,
                  inharmonic=0.05, click_level=0.5, click_band=(1500.0, 10000.0), thump_hz=80.0,
                  thump_level=0.3, tex_band=(1500.0, 9000.0), tex_resonance=0.5),
}
_SURFACE_WORDS = {
    "wood": ("wood", "wooden", "floor", "floorboards", "boards", "parquet", "deck", "stairs", "plank", "indoor",
             "indoors", "house", "room", "kitchen", "apartment", "upstairs", "downstairs", "stage"),
    "concrete": ("concrete", "stone", "pavement", "asphalt", "street", "road", "tile", "tiles", "tiled", "marble",
                 "sidewalk", "cement", "brick", "bricks", "cobblestones", "cobblestone", "cobbles", "tarmac",
                 "rock", "rocks", "granite", "parking", "garage", "corridor", "hallway", "court"),
    "gravel": ("gravel", "pebbles", "rubble", "stones", "rocky", "shingle"),
    "grass": ("grass", "lawn", "field", "meadow", "leaves", "forest", "bush", "undergrowth"),
    "snow": ("snow", "snowy", "ice", "icy", "frozen"),
    "dirt": ("dirt", "soil", "mud", "earth", "sand", "sandy", "beach", "trail", "dust", "ground"),
    "metal": ("metal", "metallic", "steel", "grate", "grating", "catwalk", "iron", "tin", "aluminium", "aluminum",
              "ladder"),
}
for _surf, _kw in _SURFACES.items():
    base = dict(footstep=True, toe_delay=(0.02, 0.035), toe_level=(0.25, 0.5), length=0.3, tex_flutter=0.0)
    base.update(_kw)
    _LIST.append(Preset(name=f"footsteps-{_surf}", words=_SURFACE_WORDS[_surf],
                        description=f"footsteps on {_surf}: heel then toe", **base))

PRESETS: dict[str, Preset] = {p.name: p for p in _LIST}
DEFAULT_PRESET = "wood"
#: a walker's words (as words, so "footsteps_gravel" and "footsteps-gravel" count): the footsteps
#: presets and the motion timing's footsteps mode read a prompt with this one rule
_WALK = re.compile(
    r"\b(foot ?steps?|footfalls?|steps?|stepping|walk(s|ed|ing|er|ers)?|run(s|ning|ner|ners)?|ran|"
    r"jog(s|ged|ging|ger|gers)?|stomp(s|ed|ing)?|march(es|ed|ing)?|strid(e|es|ing)|gait|hik(e|es|ed|ing|er|ers)|"
    r"sprint(s|ed|ing|er|ers)?|tiptoe(s|d|ing)?|trudg(e|es|ed|ing)|pac(e|es|ed|ing)|treads?|treading|"
    r"stroll(s|ed|ing)?|limp(s|ed|ing)?|barefoot|feet|foot|shoes?|boots?|heels?|sneakers?)\b"
)
# words that say something about the action but not the material; they never pick a preset alone
_ACTION_WORDS = {"hit", "hits", "hitting", "knock", "knocking", "tap", "stick", "drumstick", "rustle", "rustling",
                 "splash", "splashing", "drop", "pour", "pouring", "crumple", "crumpling"}
# striking words: a material named after one is the thing struck ("a metal spoon tapping a wine glass"
# is glass); one named after "with" or "using" is what strikes ("hitting metal with a wooden stick")
_STRIKE_WORDS = {"hit", "hits", "hitting", "strike", "strikes", "striking", "struck", "tap", "taps", "tapping",
                 "knock", "knocks", "knocking", "bang", "bangs", "banging", "against", "smack", "smacks",
                 "slap", "slaps", "whack", "whacks", "pound", "pounding", "scrape", "scraping", "scratch",
                 "scratching"}
_WITH_WORDS = {"with", "using"}
# sound sources no preset makes: a prompt naming one is refused, rather than mapped to a setting
# word ("a dog barking in the street" had given stone, "thunder over the sea" water)
_NOT_FOLEY = {"bark", "barks", "barking", "meow", "meowing", "purr", "chirp", "chirping", "tweet", "singing",
              "sing", "song", "music", "voice", "voices", "speech", "talking", "talk", "scream", "screaming",
              "laugh", "laughing", "laughter", "applause", "clapping", "explosion", "explosions", "explode",
              "gunshot", "gunshots", "gunfire", "thunder", "siren", "sirens", "horn", "honk", "engine", "engines",
              "helicopter", "airplane", "plane", "jet", "traffic", "wind", "birdsong", "crowd", "baby", "crying"}
# a negated word does not count ("no footsteps, just cloth", "without glass", "anything but metal",
# "everything except glass", "nothing metallic"; "nothing but metal" keeps its metal)
_NEGATION = re.compile(r"\b(no|not|without|never|non|nothing|except(?:\s+for)?|excluding|(?:anything|everything|all)\s+but)"
                       r"\s+(?:any\s+|a\s+|an\s+|the\s+)?[a-z]+")


def list_presets() -> list[str]:
    """The names of the built-in presets, in a stable order."""
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset called ``name``; raise a :class:`FolaiError` listing the presets otherwise."""
    if name not in PRESETS:
        raise FolaiError(f"unknown sound preset '{name}'; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _names(token: str, word: str) -> bool:
    """Whether ``token`` is ``word`` or its plural ("bottles", "boxes", "glasses")."""
    return token == word or token in (word + "s", word + "es")


#: "running water", "a running engine", "a run of hits": run words that are not a gait (removed
#: before the words are read; shared with the motion timing's footsteps mode, so that both stages
#: read a prompt the same way)
_FLOWING = (r"(water|tap|faucet|engine|motor|machine|stream|river|dishwasher|car|cars|shower|fridge|"
            r"refrigerator|fan|clock|printer|generator|dryer|washer|vacuum|blender|program|script|code|nose)")
NOT_GAIT = re.compile(rf"\b({_FLOWING} (is )?)run(s|ning)?\b|\brun(s|ning)?(?= {_FLOWING}\b)|\ba run of\b")


def not_gait(text: str) -> str:
    """``text`` without the run words that are not a gait ("running water" -> " water")."""
    return NOT_GAIT.sub(lambda m: m.group(1) or " ", text)


def _read(prompt: str) -> str:
    """A prompt as both stages read it: lower case, "_" and "-" as spaces, without negated words,
    "field recording" or run words that are not a gait."""
    text = prompt.lower().replace("_", " ").replace("-", " ")
    text = re.sub(r"\bfield recordings?\b", " ", text)
    text = _NEGATION.sub(" ", text)
    return not_gait(text)


def wants_steps(prompt: str | None) -> bool:
    """Whether a prompt describes a walker (footsteps, walking, running, stomping, heels, ...):
    the footsteps presets, and the motion timing's footsteps mode."""
    return bool(prompt) and bool(_WALK.search(_read(prompt)))


def timing_prompt(prompt: str | None, references: bool) -> str | None:
    """What of a sound prompt stage 1 hears: all of it (a walker's steps, a ringing material's
    decay), or with reference recordings, which make the sound, only a walking prompt."""
    return prompt if not references or wants_steps(prompt) else None


def prompt_ring(prompt: str | None) -> tuple[float, float, float] | None:
    """The impact envelope shape (decay, tail, tail_share) a prompt's material rings with
    (:attr:`Preset.ring`), or None: no prompt, no ringing material, or a prompt no preset matches."""
    if not prompt or wants_steps(prompt):  # (footsteps do not ring)
        return None
    try:
        return PRESETS[match_preset(prompt)].ring
    except FolaiError:
        return None


def match_preset(prompt: str) -> str:
    """The preset a free-text prompt asks for, e.g. "footsteps on gravel" -> ``'footsteps-gravel'``.

    A preset name itself ("metal", "footsteps-snow") always matches. Otherwise the prompt's words
    are compared with each preset's words and synonyms. Words naming a material beat words naming
    an action or a striker ("hitting metal with a stick" -> metal, not the stick's wood; "rustling
    dry leaves" -> leaves), and among material words the first one named wins ("a person hit glass
    with a wooden stick" -> glass). Walking words (footsteps, walking, running, ...) select the
    footsteps presets, the surface from the other words (wood when none is named). A prompt with
    no known word raises a :class:`FolaiError` that lists the presets.
    """
    text = (prompt or "").strip().lower()
    if not text:
        raise FolaiError(f"the sound prompt is empty; describe the sound or name a preset: {', '.join(PRESETS)}")
    if text in PRESETS:
        return text
    read = _read(text)  # "running water" is water, not a runner; "no glass" is not glass
    toks = _tokens(read)
    source = next((t for t in toks if t in _NOT_FOLEY), None)
    if source is not None:
        raise FolaiError(
            f"no built-in sound makes '{source}' (prompt '{prompt}'): the presets are Foley materials and "
            f"footsteps: {', '.join(PRESETS)}; use --reference with a recording of it"
        )
    if _WALK.search(read):  # (wants_steps)
        for t in toks:
            for surf, words in _SURFACE_WORDS.items():
                if any(_names(t, w) for w in (surf, *words)):
                    return f"footsteps-{surf}"
        if any(t in ("on", "in", "through", "across", "over", "along", "onto", "into") for t in toks):
            # (a place was meant: say which surfaces there are)
            log.warning("the prompt '%s' names no surface the footsteps know (%s): footsteps on wood",
                        prompt, ", ".join(_SURFACE_WORDS))
        return "footsteps-wood"
    # (material?, struck?, -position): a material beats an action word, the thing struck beats
    # what strikes it, and then the first named wins
    best: tuple[int, int, int, str] | None = None
    for pos, t in enumerate(toks):
        for p in _LIST:
            if p.footstep:
                continue
            if any(_names(t, w) for w in (p.name, *p.words)):  # (a plural too: "bottles", "pots")
                material = 0 if t in _ACTION_WORDS else 1
                before = toks[:pos]
                k_strike = max((i for i, w in enumerate(before) if w in _STRIKE_WORDS), default=-1)
                k_with = max((i for i, w in enumerate(before) if w in _WITH_WORDS), default=-1)
                struck = 1 if k_strike > k_with else (0 if k_with < 0 else -1)
                cand = (material, struck, -pos, p.name)
                if best is None or cand[:3] > best[:3]:
                    best = cand
                break
    if best is None:
        import difflib

        vocab = sorted({w for p in _LIST for w in (p.name, *p.words)} | {"footsteps"})
        near = [m for t in toks for m in difflib.get_close_matches(t, vocab, n=1, cutoff=0.8)]
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        negated = [m.group(0) for m in _NEGATION.finditer(text.replace("_", " ").replace("-", " "))]
        if negated and not near:
            # (its only material words are negated: the usual advice, to name a material, read as
            # if "metal" had not been understood)
            raise FolaiError(
                f"no built-in sound matches the prompt '{prompt}': the materials it names are negated "
                f"({', '.join(repr(n) for n in negated)}); name the material it should sound like (e.g. "
                f"'hitting wood with a stick') or one of the presets: {', '.join(PRESETS)}"
            )
        raise FolaiError(
            f"no built-in sound matches the prompt '{prompt}'{hint}; name a material (e.g. 'hitting metal with "
            f"a stick', 'footsteps on gravel') or one of the presets: {', '.join(PRESETS)}"
        )
    return best[3]
