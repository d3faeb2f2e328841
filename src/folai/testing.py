"""Synthetic media for tests and benchmarks (written with PyAV, no system ffmpeg).

The main generator is :func:`make_hit_video`: a coloured square falls, stops abruptly on the floor
exactly at each hit time (an impact), rests a moment, rises again; the audio track has an impact
sound starting exactly at each hit sample. Tests of the timing stage, the metrics and the media
layer use the returned :class:`HitVideo` as ground truth.

Everything here is deterministic given ``seed``.

Example::

    from folai.testing import make_hit_video
    hv = make_hit_video(tmp_path / "hits.mp4", duration=4.0, hit_times=[1.0, 2.5])
    hv.hit_frames      # array([30, 75])  first frame showing the square on the floor
    hv.hit_samples     # array([44100, 110250])  first sample of each impact sound
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "HitVideo",
    "make_video",
    "make_hit_video",
    "make_static_video",
    "make_clicks",
    "make_tone",
    "make_audio_file",
    "default_video_codec",
]

# container suffix -> default (video codec, audio codec)
_CONTAINER_FORMATS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".avi": "avi",
    ".webm": "webm",
    # audio-only containers (make_audio_file)
    ".mp3": "mp3",
    ".m4a": "ipod",
    ".wav": "wav",
    ".flac": "flac",
}


def default_video_codec(suffix: str = ".mp4") -> str:
    """The video encoder used for ``suffix``: libx264 where this PyAV build has it, else mpeg4."""
    import av

    if suffix.lower() == ".webm":
        return "libvpx"
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except Exception:  # pragma: no cover - depends on the PyAV build
        return "mpeg4"


def _default_audio_codec(suffix: str) -> str:
    suffix = suffix.lower()
    special = {".mp3": "libmp3lame", ".wav": "pcm_s16le", ".flac": "flac", ".m4a": "aac"}
    if suffix in special:
        return special[suffix]
    if suffix in (".mkv", ".mov", ".avi"):
        return "pcm_s16le"  # sample exact, no encoder delay
    if suffix == ".webm":
        return "libopus"
    return "aac"


def make_video(
    path: str | Path,
    frames: Callable[[int], np.ndarray] | np.ndarray | Sequence[np.ndarray] | None,
    fps: float = 30.0,
    size: tuple[int, int] | None = None,
    n_frames: int | None = None,
    audio: np.ndarray | None = None,
    sr: int = 44100,
    codec: str | None = None,
    audio_codec: str | None = None,
    frame_times: Sequence[float] | None = None,
    rotation: int = 0,
    sample_aspect_ratio: Fraction | None = None,
    crf: int = 18,
    preset: str = "veryfast",
    gop: int | None = None,
    audio_only: bool = False,
) -> Path:
    """Encode frames (and optionally an audio track) into ``path``; the container follows the suffix.

    Args:
        path: output file (.mp4, .mov, .mkv, .avi, .webm).
        frames: a function ``k -> (H, W, 3) uint8 RGB`` (then ``n_frames`` is required), an array
            ``(T, H, W, 3)`` uint8, or a sequence of ``(H, W, 3)`` arrays. ``(H, W)`` gray frames
            are accepted too.
        fps: nominal frame rate (may be fractional, e.g. ``30000/1001``); frame ``k`` is stamped at
            ``k / fps`` unless ``frame_times`` is given.
        size: ``(w, h)``; frames of another size are rescaled. Default: the first frame's size.
        n_frames: number of frames when ``frames`` is a function.
        audio: ``(C, N)`` or ``(N,)`` float32 in [-1, 1] at ``sr``, written as a second stream.
        codec / audio_codec: encoder names; defaults: libx264 (or mpeg4) and AAC for mp4,
            PCM 16-bit for mov/mkv/avi.
        frame_times: seconds of each frame, strictly increasing: makes a variable-frame-rate file.
        rotation: clockwise rotation a player must apply (0/90/180/270), stored as display matrix
            side data, like a phone video shot in portrait. Frames are stored as given.
        sample_aspect_ratio: pixel aspect ratio to store (anamorphic video), e.g. ``Fraction(4, 3)``.
        crf / preset: x264 quality (lower is better) and speed preset; gop: keyframe interval in frames.
        audio_only: write only the audio stream (for "no video stream" tests).

    Returns:
        ``Path(path)``.
    """
    import av

    path = Path(path)
    suffix = path.suffix.lower()
    fmt = _CONTAINER_FORMATS.get(suffix)
    if fmt is None:
        raise ValueError(f"unsupported container suffix {suffix!r}; use one of {sorted(_CONTAINER_FORMATS)}")

    if audio_only:
        get, total = None, 0
    elif callable(frames):
        if n_frames is None:
            raise ValueError("n_frames is required when frames is a function")
        get = frames
        total = int(n_frames)
    else:
        seq = frames
        total = len(seq) if n_frames is None else min(int(n_frames), len(seq))
        get = lambda k: seq[k]  # noqa: E731
    if frame_times is not None:
        frame_times = [float(t) for t in frame_times]
        if len(frame_times) < total:
            raise ValueError("frame_times must have one entry per frame")
        if any(b <= a for a, b in zip(frame_times, frame_times[1:])):
            raise ValueError("frame_times must be strictly increasing")

    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None]
        if audio.ndim != 2 or audio.shape[0] not in (1, 2):
            raise ValueError(f"audio must be (N,) or (C, N) with C in (1, 2), got {audio.shape}")

    from .media import mux_options

    container = av.open(str(path), "w", format=fmt, options=mux_options(fmt))  # (the same call, the same bytes)
    try:
        vstream = None
        if not audio_only:
            first = np.asarray(get(0)) if total > 0 else None
            if size is None:
                if first is None:
                    raise ValueError("size is required for a video with no frames")
                size = (first.shape[1], first.shape[0])
            w, h = int(size[0]), int(size[1])
            vcodec = codec or default_video_codec(suffix)
            rate = Fraction(fps).limit_denominator(1001)
            vstream = container.add_stream(vcodec, rate=rate)
            vstream.width, vstream.height = w, h
            vstream.pix_fmt = "yuv420p"
            if frame_times is not None:
                # fine time base so arbitrary timestamps survive
                vstream.time_base = Fraction(1, 90000) if fmt != "matroska" else Fraction(1, 1000)
                vstream.codec_context.time_base = vstream.time_base
            else:
                vstream.codec_context.time_base = 1 / rate
            opts = {}
            if vcodec == "libx264":
                opts = {"crf": str(crf), "preset": preset}
                if frame_times is not None:
                    opts["x264-params"] = "bframes=0"  # exact durations in the mp4 index
            elif vcodec == "mpeg4":
                vstream.bit_rate = max(200_000, w * h * 4)
            elif vcodec.startswith("libvpx"):
                # one thread: libvpx's threads spin-wait for each other, and with the cores
                # oversubscribed (two test runs at once) a 1 s test clip took over 8 minutes
                vstream.codec_context.thread_count = 1
            if gop:
                vstream.codec_context.gop_size = int(gop)
            if sample_aspect_ratio:
                vstream.codec_context.sample_aspect_ratio = Fraction(sample_aspect_ratio)
            vstream.options = opts
            if rotation % 360:
                if rotation % 90:
                    raise ValueError("rotation must be a multiple of 90 degrees")
                vstream.set_display_rotation(-float(rotation))  # PyAV takes counter-clockwise

        astream = None
        if audio is not None:
            acodec = audio_codec or _default_audio_codec(suffix)
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            astream = container.add_stream(acodec, rate=int(sr), layout=layout)
            if acodec == "aac":
                astream.bit_rate = 128_000 * audio.shape[0]

        if vstream is not None:
            tb = vstream.codec_context.time_base if frame_times is None else vstream.time_base
            for k in range(total):
                arr = np.asarray(get(k))
                if arr.dtype != np.uint8:
                    arr = np.clip(arr, 0, 255).astype(np.uint8)
                if arr.ndim == 2:
                    arr = np.repeat(arr[:, :, None], 3, axis=2)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr[:, :, :3]), format="rgb24")
                if (frame.width, frame.height) != (w, h):
                    frame = frame.reformat(width=w, height=h)
                if frame_times is None:
                    frame.pts = k
                else:
                    frame.pts = int(round(frame_times[k] / tb))
                frame.time_base = tb
                for packet in vstream.encode(frame):
                    container.mux(packet)
            for packet in vstream.encode():
                container.mux(packet)

        if astream is not None:
            _encode_audio(container, astream, audio, int(sr))
        if total == 0 and astream is None:
            container.start_encoding()  # write the header of an empty file (zero-duration tests)
    finally:
        container.close()
    return path


def _encode_audio(container, astream, audio: np.ndarray, sr: int) -> None:
    """Encode ``audio`` (C, N) float32 into ``astream`` in blocks, with sample-exact pts."""
    import av

    layout = "mono" if audio.shape[0] == 1 else "stereo"
    fmt = astream.codec_context.format.name if astream.codec_context.format else "fltp"
    block = astream.codec_context.frame_size or 1024
    n = audio.shape[1]
    resampler = None
    for start in range(0, n, block):
        chunk = np.ascontiguousarray(audio[:, start : start + block], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = sr
        frame.pts = start
        frame.time_base = Fraction(1, sr)
        if fmt != "fltp":
            if resampler is None:
                resampler = av.AudioResampler(format=fmt, layout=layout, rate=sr)
            frames = resampler.resample(frame)
        else:
            frames = [frame]
        for f in frames:
            for packet in astream.encode(f):
                container.mux(packet)
    for packet in astream.encode():
        container.mux(packet)


def make_audio_file(path: str | Path, audio: np.ndarray, sr: int = 44100, codec: str | None = None) -> Path:
    """Encode ``(C, N)`` / ``(N,)`` float32 audio with PyAV: .wav, .flac, .mp3, .m4a (AAC), or
    an audio-only .mp4/.mkv/.mov (for "no video stream" tests)."""
    return make_video(path, None, audio=audio, sr=sr, audio_codec=codec, audio_only=True)


# --------------------------------------------------------------------------------------------
# audio signals


def make_clicks(
    duration: float,
    sr: int = 44100,
    times: Iterable[float] = (),
    amplitude: float = 0.8,
    decay: float = 0.03,
    length: float | None = None,
    kind: str = "impact",
    seed: int = 0,
) -> np.ndarray:
    """A mono track of impact sounds, each starting exactly at sample ``round(t * sr)``.

    Args:
        duration: seconds; the result has ``round(duration * sr)`` samples.
        times: onset times in seconds (outside [0, duration) are ignored).
        amplitude: peak level of each event.
        decay: exponential decay time constant in seconds.
        length: event length in seconds (default ``6 * decay``).
        kind: ``"impact"`` (decaying noise burst plus a low thump) or ``"click"`` (a single-sample
            impulse followed by a short decaying sine).
        seed: noise seed.

    Returns:
        ``(N,)`` float32. Samples before each onset are exactly zero (if no earlier event rings).
    """
    n = int(round(duration * sr))
    out = np.zeros(n, dtype=np.float32)
    rng = np.random.default_rng(seed)
    length = 6 * decay if length is None else length
    m = max(1, int(round(length * sr)))
    tt = np.arange(m) / sr
    env = np.exp(-tt / max(decay, 1e-4))
    for t in times:
        s = int(round(float(t) * sr))
        if s < 0 or s >= n:
            continue
        if kind == "impact":
            ev = rng.standard_normal(m) * 0.7 + np.sin(2 * np.pi * 120.0 * tt) * 0.6
            ev = ev * env
        elif kind == "click":
            ev = np.sin(2 * np.pi * 2000.0 * tt + np.pi / 2) * env
        else:
            raise ValueError(f"unknown click kind {kind!r}; use 'impact' or 'click'")
        ev = ev / max(np.abs(ev).max(), 1e-9) * amplitude
        ev[0] = amplitude  # a sharp transient marks the onset sample
        e = min(n, s + m)
        out[s:e] += ev[: e - s].astype(np.float32)
    np.clip(out, -1.0, 1.0, out=out)
    return out


def make_tone(
    duration: float,
    sr: int = 44100,
    freq: float = 440.0,
    amplitude: float = 0.5,
    channels: int = 1,
    phase: float = 0.0,
) -> np.ndarray:
    """A sine tone: ``(N,)`` float32 for ``channels == 1``, else ``(channels, N)``."""
    n = int(round(duration * sr))
    t = np.arange(n) / sr
    x = (amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)
    if channels == 1:
        return x
    return np.repeat(x[None], channels, axis=0)


# --------------------------------------------------------------------------------------------
# videos


def make_static_video(
    path: str | Path,
    duration: float = 2.0,
    fps: float = 30.0,
    size: tuple[int, int] = (160, 120),
    color: tuple[int, int, int] = (90, 110, 130),
    audio: np.ndarray | None = None,
    sr: int = 44100,
    **kwargs,
) -> Path:
    """A video of one constant colour (nothing moves): the "no events" case."""
    w, h = size
    frame = np.empty((h, w, 3), dtype=np.uint8)
    frame[:] = np.asarray(color, dtype=np.uint8)
    n = int(round(duration * fps))
    return make_video(path, lambda k: frame, fps=fps, size=size, n_frames=n, audio=audio, sr=sr, **kwargs)


def add_still_shot(
    video: str | Path,
    out: str | Path,
    color: tuple[int, int, int] = (0, 0, 0),
    seconds: float = 2.0,
    at: str = "end",
    noise: float = 3.0,
    fps: float = 30.0,
    seed: int = 0,
) -> Path:
    """``video`` (read at ``fps``) with a plain still shot of ``color`` and ``seconds`` before
    (``at="start"``) or after it (``"end"``): a title card or a black ending, with ``noise`` grey
    levels of per-frame noise as a camera or a codec leaves on flat colour. No audio."""
    from .media import iter_video_frames

    if at not in ("start", "end"):
        raise ValueError(f"at must be 'start' or 'end', got {at!r}")
    frames = [f for _, f in iter_video_frames(video, fps=fps)]
    rng = np.random.default_rng(seed)
    still = []
    for _ in range(int(round(seconds * fps))):
        f = np.empty_like(frames[0])
        f[:] = color
        still.append(np.clip(f + rng.normal(0, noise, f.shape[:2] + (1,)), 0, 255).astype(np.uint8))
    return make_video(out, still + frames if at == "start" else frames + still, fps=fps)


@dataclass
class HitVideo:
    """Ground truth of a :func:`make_hit_video` clip."""

    path: Path
    duration: float
    fps: float
    size: tuple[int, int]  # (w, h)
    n_frames: int
    hit_times: np.ndarray  # (K,) seconds
    hit_frames: np.ndarray  # (K,) first frame index showing the square on the floor
    hit_samples: np.ndarray  # (K,) first audio sample of each impact sound
    sr: int
    audio: np.ndarray | None = field(repr=False, default=None)  # (C, N) float32 as written
    positions: np.ndarray = field(repr=False, default=None)  # (T, 2) top-left (x, y) of the square per frame
    square: int = 0  # side of the square in pixels
    floor_y: int = 0  # y of the floor line (top of the floor)

    def frame_time(self, k: int) -> float:
        return k / self.fps


def _hit_trajectory(t: np.ndarray, hits: np.ndarray, duration: float) -> np.ndarray:
    """Height above the floor in [0, 1] at times ``t``: falls (accelerating) onto the floor at each
    hit, rests, rises again; 1 = top of the fall, 0 = on the floor."""
    hgt = np.ones_like(t, dtype=np.float64)
    bounds = np.concatenate([[0.0], hits, [max(duration, hits[-1] if len(hits) else 0.0) + 1.0]])
    for i in range(len(bounds) - 1):
        a, b = bounds[i], bounds[i + 1]
        g = b - a
        seg = (t >= a) & (t < b)
        if not seg.any():
            continue
        ts = t[seg] - a
        y = np.ones_like(ts)
        if i > 0:  # after a hit: rest on the floor, then rise smoothly
            rest = min(0.12, 0.15 * g)
            rise = min(0.35, 0.3 * g)
            y = np.where(ts < rest, 0.0, np.where(ts < rest + rise, 0.5 - 0.5 * np.cos(np.pi * (ts - rest) / rise), 1.0))
        if i < len(bounds) - 2:  # before the next hit: fall with constant acceleration
            fall = min(0.4, 0.4 * g if i > 0 else 0.8 * g)
            tf = ts - (g - fall)
            falling = tf >= 0
            y = np.where(falling, 1.0 - (tf / fall) ** 2, y)
        hgt[seg] = y
    return np.clip(hgt, 0.0, 1.0)


def make_hit_video(
    path: str | Path,
    duration: float = 4.0,
    fps: float = 30.0,
    size: tuple[int, int] = (160, 120),
    hit_times: Sequence[float] | None = None,
    seed: int = 0,
    with_audio: bool = True,
    sr: int = 44100,
    channels: int = 1,
    codec: str | None = None,
    audio_codec: str | None = None,
    rotation: int = 0,
    background_noise: float = 4.0,
    frame_times: Sequence[float] | None = None,
) -> HitVideo:
    """A square that falls and stops abruptly on the floor at each hit time, with impact sounds.

    The square accelerates downwards and lands exactly at each hit time (the first frame with
    ``k / fps >= hit`` shows it on the floor), rests for a moment, rises smoothly and waits at the
    top. The audio track has an impact sound (see :func:`make_clicks`) starting exactly at sample
    ``round(hit * sr)``. Hits should be at least ~0.3 s apart.

    Args:
        path: output file; container by suffix (mp4 gets AAC audio, mov/mkv 16-bit PCM).
        duration: seconds.
        hit_times: seconds; default: ``seed``-random times, 0.6 to 1.2 s apart.
        seed: colours, horizontal positions, background texture and default hit times.
        with_audio: write the audio track.
        channels: 1 or 2 audio channels.
        rotation: display rotation metadata (clockwise degrees), frames stored unrotated.
        background_noise: std of a static texture added to the background (helps codecs and
            makes "nothing moves" non-trivial); 0 gives a flat background.
        frame_times: seconds of each frame (strictly increasing, within ``duration``): a
            variable-frame-rate file (``fps`` is then only its nominal rate, e.g. for the default
            hit times); default ``k / fps``.

    Returns:
        :class:`HitVideo` with ``hit_times``, ``hit_frames``, ``hit_samples``, ``positions``,
        and the audio as written.
    """
    rng = np.random.default_rng(seed)
    w, h = int(size[0]), int(size[1])
    if hit_times is None:
        times = []
        t = 0.5 + rng.uniform(0.1, 0.4)
        while t < duration - 0.3:
            times.append(round(t * fps) / fps)
            t += rng.uniform(0.6, 1.2)
        hits = np.asarray(times, dtype=np.float64)
    else:
        hits = np.sort(np.asarray(list(hit_times), dtype=np.float64))
        if len(hits) and (hits[0] <= 0 or hits[-1] >= duration):
            raise ValueError("hit_times must lie inside (0, duration)")
    if frame_times is None:
        n_frames = int(math.ceil(duration * fps - 1e-9))
        t = np.arange(n_frames) / fps
    else:
        t = np.asarray(list(frame_times), dtype=np.float64)
        n_frames = len(t)
        if n_frames == 0 or t[0] < 0 or t[-1] >= duration:
            raise ValueError("frame_times must lie inside [0, duration)")
    height = _hit_trajectory(t, hits, duration)

    side = max(4, min(w, h) // 6)
    floor_y = h - max(3, h // 10)  # floor line: rows floor_y..h-1
    top_y = max(1, h // 12)
    y = np.round(top_y + (1.0 - height) * (floor_y - side - top_y)).astype(int)
    # horizontal position changes at each hit (a new throw), colour per hit
    xs_per_seg = rng.integers(side, max(side + 1, w - 2 * side), size=len(hits) + 1)
    seg_idx = np.searchsorted(hits, t + 1e-9, side="right")
    # a new x for each throw, taken only once the square has left the floor (no sideways jump
    # while it rests after a hit)
    x = np.empty(n_frames, dtype=int)
    cur = xs_per_seg[0]
    for k in range(n_frames):
        if height[k] > 0.05:
            cur = xs_per_seg[seg_idx[k]]
        x[k] = cur
    colors = rng.integers(60, 255, size=(len(hits) + 1, 3))
    bg = np.empty((h, w, 3), dtype=np.float32)
    bg[:] = (40, 45, 55)
    if background_noise > 0:
        bg += rng.normal(0, background_noise, size=(h, w, 1)).astype(np.float32)
    bg[floor_y:, :, :] = (150, 130, 100)
    bg = np.clip(bg, 0, 255).astype(np.uint8)

    def frame(k: int) -> np.ndarray:
        img = bg.copy()
        yy, xx = int(y[k]), int(x[k])
        img[yy : yy + side, xx : xx + side] = colors[min(seg_idx[k], len(colors) - 1)]
        return img

    audio = None
    if with_audio:
        mono = make_clicks(duration, sr, hits, seed=seed)
        audio = np.repeat(mono[None], channels, axis=0)
    path = make_video(
        path, frame, fps=fps, size=(w, h), n_frames=n_frames, audio=audio, sr=sr,
        codec=codec, audio_codec=audio_codec, rotation=rotation, frame_times=frame_times,
    )
    hit_frames = np.searchsorted(t, hits - 1e-6)  # the first frame at or after each hit
    hit_samples = np.round(hits * sr).astype(int)
    return HitVideo(
        path=Path(path), duration=float(duration), fps=float(fps), size=(w, h), n_frames=n_frames,
        hit_times=hits, hit_frames=hit_frames, hit_samples=hit_samples, sr=int(sr), audio=audio,
        positions=np.stack([x, y], axis=1), square=side, floor_y=floor_y,
    )
