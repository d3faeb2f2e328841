"""Synthetic clips whose sound is caused by visible motion: balls bouncing on a textured floor.

Used by the learned-timing benchmark and the dataset tests (tiny data in each dataset's layout).
Each clip has 1-3 balls (random size, colour, drop height, horizontal speed, bounciness) that fall
under gravity and bounce on a floor; every floor impact makes a sound whose loudness grows with the
impact speed and ball size and whose timbre depends on the floor "material". A silent distractor
(a block sliding at constant speed) moves too, so motion alone does not mean sound.

Physics runs at 20x the frame rate, so impact times are exact to 1/600 s; audio events start at
those times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SyntheticClip", "simulate_clip", "write_clip", "write_wav"]

MATERIALS = {  # name: (decay seconds, one-pole low-pass coefficient, colour)
    "wood": (0.06, 0.55, (150, 105, 60)),
    "metal": (0.25, 0.05, (170, 175, 185)),
    "rock": (0.035, 0.3, (110, 110, 105)),
    "cloth": (0.02, 0.85, (60, 80, 150)),
}


@dataclass
class SyntheticClip:
    frames: np.ndarray  # (T, H, W, 3) uint8 at fps
    audio: np.ndarray  # (N,) float32 at sr
    fps: float
    sr: int
    hits: list[tuple[float, float]] = field(default_factory=list)  # (time s, strength)
    material: str = "wood"


def simulate_clip(
    rng: np.random.Generator, duration: float = 2.0, size: int = 96, fps: float = 30.0, sr: int = 16000
) -> SyntheticClip:
    H = W = size
    T = int(round(duration * fps))
    floor_y = int(H * 0.8)
    material = str(rng.choice(list(MATERIALS)))
    decay, lp, floor_col = MATERIALS[material]
    # background and floor textures
    bg = (rng.uniform(20, 90, 3)[None, None] + rng.normal(0, 6, (H, W, 1))).clip(0, 255)
    floor = np.asarray(floor_col, np.float32)[None, None] + rng.normal(0, 12, (H - floor_y, W, 1))
    base = bg.copy()
    base[floor_y:] = floor.clip(0, 255)
    g = 9.0 * H  # gravity in px/s^2 (a ball dropped from mid-frame lands in ~0.3 s)
    sub = 20
    dt = 1.0 / (fps * sub)
    balls = []
    for _ in range(int(rng.integers(1, 4))):
        r = float(rng.uniform(3, 9)) * size / 96
        balls.append(
            dict(
                r=r,
                x=float(rng.uniform(r, W - r)),
                y=float(rng.uniform(r + 2, floor_y * 0.6)),
                vx=float(rng.uniform(-0.4, 0.4) * W),
                vy=float(rng.uniform(-0.5, 0.5) * H),
                e=float(rng.uniform(0.55, 0.85)),
                col=rng.uniform(120, 255, 3),
                t0=float(rng.uniform(0.0, duration * 0.5)),  # released at t0 (held still before)
            )
        )
    distractor = dict(x=float(rng.uniform(0, W)), y=float(rng.uniform(0.1, 0.5) * H), vx=float(rng.uniform(-0.6, 0.6) * W),
                      s=int(rng.integers(4, 10)), col=rng.uniform(80, 255, 3))
    hits: list[tuple[float, float]] = []
    frames = np.empty((T, H, W, 3), np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    for k in range(T):
        img = base.copy()
        for b in balls:
            cx, cy = b["x"], b["y"]
            m = (xx - cx) ** 2 + (yy - cy) ** 2 <= b["r"] ** 2
            img[m] = b["col"]
        d = distractor
        x0 = int(d["x"]) % W
        img[int(d["y"]) : int(d["y"]) + d["s"], x0 : x0 + d["s"]] = d["col"]
        frames[k] = img.clip(0, 255).astype(np.uint8)
        # advance physics to the next frame
        for s in range(sub):
            t = (k * sub + s) * dt
            for b in balls:
                if t < b["t0"]:
                    continue
                b["vy"] += g * dt
                b["x"] += b["vx"] * dt
                b["y"] += b["vy"] * dt
                if b["x"] < b["r"] or b["x"] > W - b["r"]:
                    b["vx"] = -b["vx"]
                    b["x"] = float(np.clip(b["x"], b["r"], W - b["r"]))
                if b["y"] + b["r"] >= floor_y and b["vy"] > 0:
                    speed = b["vy"] / H  # frame heights per second
                    if speed > 0.35:
                        hits.append((t + dt, float(speed * b["r"] / (6.0 * size / 96))))
                    b["y"] = floor_y - b["r"]
                    b["vy"] = -b["vy"] * b["e"]
            distractor["x"] += distractor["vx"] * dt
    audio = _render_audio(rng, hits, duration, sr, decay, lp)
    return SyntheticClip(frames=frames, audio=audio, fps=fps, sr=sr, hits=sorted(hits), material=material)


def _render_audio(rng, hits, duration, sr, decay, lp) -> np.ndarray:
    from scipy.signal import lfilter

    n = int(round(duration * sr))
    y = rng.normal(0, 1e-3, n).astype(np.float64)  # faint room noise
    for t, strength in hits:
        i0 = int(round(t * sr))
        if i0 >= n:
            continue
        L = min(n - i0, int(decay * 6 * sr))
        tt = np.arange(L) / sr
        noise = rng.normal(0, 1, L)
        # one-pole low-pass: the material's brightness
        out = lfilter([1 - lp], [1, -lp], noise)
        out /= np.abs(out).max() + 1e-9
        y[i0 : i0 + L] += min(1.0, 0.15 * strength) * out * np.exp(-tt / decay)
    return y.astype(np.float32)


def write_clip(
    clip: SyntheticClip, video_path: str | Path, audio_path: str | Path | None = None, embed_audio: bool = False
) -> None:
    """Write the frames as H.264 mp4 (with an AAC track if ``embed_audio``) and the audio as wav."""
    from ..testing import make_video

    make_video(video_path, clip.frames, fps=clip.fps, audio=clip.audio if embed_audio else None, sr=clip.sr,
               crf=18, preset="ultrafast")
    if audio_path is not None:
        write_wav(audio_path, clip.audio, clip.sr)


def write_wav(path: str | Path, audio: np.ndarray, sr: int) -> None:
    import soundfile as sf

    sf.write(str(path), np.asarray(audio, np.float32), sr, subtype="PCM_16")
