"""FoleyPipeline: video -> envelope (stage 1) -> audio (stage 2) -> muxed video.

The one inference path shared by the CLI, the studio and the benchmarks::

    from folai.pipeline import FoleyPipeline
    pipe = FoleyPipeline()                                   # motion timing + sampler synthesis
    out = pipe.generate("clip.mp4", "clip.foley.mp4", prompt="hitting metal with a stick", seed=0)
    out.video, out.wav, out.envelope_csv, out.envelope_png   # the four files written

Long videos are rendered in chunks written straight to the WAV file, so memory does not grow with
the video's length when the synthesis backend can render a stretch alone (``render_span``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .envelope import Envelope
from .errors import FolaiError
from .paths import atomic_output, check_input, check_output
from .synthesis import SAMPLE_RATE, get_synth
from .timing import TimingResult, get_timing

log = logging.getLogger(__name__)

#: seconds rendered per chunk when the backend supports ``render_span``
CHUNK_SECONDS = 30.0


@dataclass
class GenerateResult:
    """Paths written by :meth:`FoleyPipeline.generate` and the seconds each stage took."""

    wav: Path
    envelope_csv: Path
    envelope_png: Path | None
    video: Path | None
    envelope: Envelope
    duration: float
    seconds: dict[str, float] = field(default_factory=dict)


def output_paths(out: str | os.PathLike) -> dict[str, Path]:
    """OUT.mp4 -> {video: OUT.mp4, wav: OUT.wav, csv: OUT.envelope.csv, png: OUT.envelope.png}."""
    p = Path(out)
    if p.suffix.lower() not in (".mp4", ".mov", ".mkv", ".m4v"):
        raise FolaiError(f"output video must end in .mp4, .mov, .mkv or .m4v, got '{p.name}'")
    base = p.with_suffix("")
    return {
        "video": p,
        "wav": base.with_suffix(".wav"),
        "csv": Path(f"{base}.envelope.csv"),
        "png": Path(f"{base}.envelope.png"),
    }


def default_output(video: str | os.PathLike) -> Path:
    """``clip.mp4`` -> ``clip.foley.mp4`` next to it."""
    v = Path(video)
    return v.with_name(f"{v.stem}.foley{v.suffix if v.suffix.lower() in ('.mp4', '.mov', '.mkv', '.m4v') else '.mp4'}")


class FoleyPipeline:
    """Both stages, chosen by backend name, with their options."""

    def __init__(
        self,
        timing: str = "motion",
        synth: str = "sampler",
        timing_options: dict[str, Any] | None = None,
        synth_options: dict[str, Any] | None = None,
    ) -> None:
        self.timing_name = timing
        self.synth_name = synth
        self.timing_options = dict(timing_options or {})
        self.synth_options = dict(synth_options or {})
        self._timing = None
        self._synth = None

    @property
    def timing(self):
        if self._timing is None:
            self._timing = get_timing(self.timing_name, **self.timing_options)
        return self._timing

    @property
    def synth(self):
        if self._synth is None:
            self._synth = get_synth(self.synth_name, **self.synth_options)
        return self._synth

    # ---------------------------------------------------------------- stage 1
    def estimate(
        self,
        video: str | os.PathLike,
        roi: tuple[int, int, int, int] | None = None,
        progress: bool = True,
        prompt: str | None = None,
    ) -> TimingResult:
        """Stage 1: the video's envelope (and pan, events); ``prompt`` hints what kind of events to find."""
        check_input(video, "video")
        return self.timing.estimate(video, roi=roi, progress=progress, prompt=prompt)

    # ---------------------------------------------------------------- stage 2
    def check(self, prompt: str | None = None, references: Sequence[str | os.PathLike] = ()) -> None:
        """Fail fast on conditions the synthesis backend cannot use (before stage 1 runs)."""
        check = getattr(self.synth, "check", None)
        if check is not None:
            check(prompt=prompt, references=list(references))

    def render(
        self,
        envelope: Envelope,
        duration: float | None = None,
        *,
        prompt: str | None = None,
        references: Sequence[str | os.PathLike] = (),
        video: str | os.PathLike | None = None,
        pan: np.ndarray | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> np.ndarray:
        """Stage 2 in memory: (2, round(duration * 44100)) float32."""
        duration = envelope.duration if duration is None else duration
        return self.synth.render(
            envelope, duration=duration, prompt=prompt, references=list(references), video=video,
            pan=pan, seed=seed, progress=progress,
        )

    def render_to_file(
        self,
        envelope: Envelope,
        out_wav: str | os.PathLike,
        duration: float | None = None,
        *,
        inputs: Sequence[str | os.PathLike | None] = (),
        subtype: str = "PCM_16",
        progress: bool = True,
        **render_kwargs: Any,
    ) -> Path:
        """Stage 2 straight to a WAV/FLAC file (atomically), chunk by chunk when the backend allows it."""
        with atomic_output(out_wav, inputs) as tmp:
            self._render_into(tmp, envelope, duration, subtype=subtype, progress=progress,
                              flac=Path(out_wav).suffix.lower() == ".flac", **render_kwargs)
        return Path(out_wav)

    def _render_into(
        self, path: Path, envelope: Envelope, duration: float | None, *, subtype: str = "PCM_16",
        progress: bool = True, flac: bool = False, **render_kwargs: Any,
    ) -> None:
        import soundfile as sf
        from tqdm.auto import tqdm

        duration = envelope.end if duration is None else float(duration)
        if duration <= 0:
            raise FolaiError(f"nothing to render: duration is {duration:.3f} s")
        synth = self.synth
        sr = getattr(synth, "sample_rate", SAMPLE_RATE)
        total = int(round(duration * sr))
        with sf.SoundFile(path, "w", samplerate=sr, channels=2, subtype=subtype, format="FLAC" if flac else "WAV") as f:
            if hasattr(synth, "render_span") and duration > CHUNK_SECONDS * 1.5:
                starts = np.arange(0.0, duration, CHUNK_SECONDS)
                for t0 in tqdm(starts, desc="render", unit="chunk", disable=not progress):
                    t1 = min(duration, t0 + CHUNK_SECONDS)
                    chunk = synth.render_span(envelope, float(t0), float(t1), duration=duration, progress=False, **render_kwargs)
                    f.write(np.clip(chunk, -1, 1).T)
            else:
                audio = synth.render(envelope, duration=duration, progress=progress, **render_kwargs)
                f.write(np.clip(audio, -1, 1).T)
            written = f.frames
        if written != total:
            raise FolaiError(f"internal: rendered {written} samples, expected {total}")

    # ---------------------------------------------------------------- end to end
    def generate(
        self,
        video: str | os.PathLike,
        out: str | os.PathLike | None = None,
        *,
        prompt: str | None = None,
        references: Sequence[str | os.PathLike] = (),
        envelope: Envelope | str | os.PathLike | None = None,
        seed: int = 0,
        roi: tuple[int, int, int, int] | None = None,
        pan: bool = False,
        write_video: bool = True,
        plot: bool = True,
        progress: bool = True,
    ) -> GenerateResult:
        """Video -> OUT.mp4 (video stream copied, new audio), OUT.wav, OUT.envelope.csv, OUT.envelope.png."""
        from .media import mux_audio, probe_video

        video = check_input(video, "video")
        for r in references:
            check_input(r, "reference recording")
        out = Path(out) if out is not None else default_output(video)
        paths = output_paths(out)
        ins = [video, *references, envelope if isinstance(envelope, (str, os.PathLike)) else None]
        for key, p in paths.items():
            if key == "video" and not write_video:
                continue
            check_output(p, ins)
        self.check(prompt=prompt, references=references)
        info = probe_video(video)
        if info.duration <= 0:
            raise FolaiError(f"video {video} has zero duration")
        seconds: dict[str, float] = {}

        t = time.perf_counter()
        pan_curve = None
        if envelope is None:
            result = self.estimate(video, roi=roi, progress=progress, prompt=prompt)
            env = result.envelope
            pan_curve = result.pan
            events = result.info.get("events")
        else:
            env = envelope if isinstance(envelope, Envelope) else Envelope.load_csv(envelope)
            events = None
            if abs(env.end - info.duration) > 1.0 / env.rate:
                log.warning("envelope covers %.3f s but the video lasts %.3f s: cut or padded to fit", env.end, info.duration)
        env = env.fit(info.duration) if env.start == 0 else env
        seconds["timing"] = time.perf_counter() - t

        with contextlib.ExitStack() as stack:
            tmp = {k: stack.enter_context(atomic_output(p, ins)) for k, p in paths.items()
                   if (k != "video" or write_video) and (k != "png" or plot)}
            tmp["csv"].write_text(env.to_csv_string())
            t = time.perf_counter()
            self._render_into(
                tmp["wav"], env, info.duration, progress=progress, prompt=prompt, references=list(references),
                video=video, pan=pan_curve if pan else None, seed=seed,
            )
            seconds["synthesis"] = time.perf_counter() - t
            if write_video:
                t = time.perf_counter()
                mux_audio(video, tmp["wav"], tmp["video"])
                seconds["mux"] = time.perf_counter() - t
            if plot:
                t = time.perf_counter()
                _plot_with_audio(env, tmp["wav"], tmp["png"], events)
                seconds["plot"] = time.perf_counter() - t
        video_out = paths["video"] if write_video else None
        png = paths["png"] if plot else None
        return GenerateResult(
            wav=paths["wav"], envelope_csv=paths["csv"], envelope_png=png,
            video=Path(video_out) if video_out else None, envelope=env, duration=info.duration, seconds=seconds,
        )


def _plot_with_audio(env: Envelope, wav: Path, png: Path, events: Sequence[float] | None) -> Path:
    """Envelope PNG over the rendered waveform (decimated while reading, so long files stay cheap)."""
    import soundfile as sf

    peaks = []
    block = 441
    with sf.SoundFile(wav) as f:
        sr = f.samplerate
        for b in f.blocks(blocksize=block * 50, dtype="float32", always_2d=True):
            m = b.mean(axis=1)
            n = len(m) // block * block
            if n:
                peaks.append(np.abs(m[:n]).reshape(-1, block).max(axis=1))
    wave = np.concatenate(peaks) if peaks else np.zeros(1, np.float32)
    return env.plot(png, waveform=wave, sr=sr / block, events=events)
