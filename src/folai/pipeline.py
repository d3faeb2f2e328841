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
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .envelope import Envelope
from .errors import FolaiError
from .paths import atomic_output, atomic_outputs, check_input, check_output
from .synthesis import SAMPLE_RATE, get_synth
from .timing import TimingResult, get_timing

log = logging.getLogger(__name__)

#: seconds rendered per chunk when the backend supports ``render_span``
CHUNK_SECONDS = 30.0
#: seconds per chunk in :meth:`FoleyPipeline.generate` (a multiple of the sampler's 2 s blocks):
#: the next chunk is rendered while the writer encodes the last one
STREAM_SECONDS = 2.0
#: shares of the track after which generate looks for a silence to hand the AAC encoding of the
#: rest to another encoder thread (AudioMux.branch)
BRANCH_AFTER = (0.3, 0.6)


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
    timing_info: dict | None = None  # what stage 1 reported (TimingResult.info); None with an envelope given


def output_paths(out: str | os.PathLike, video: bool = True) -> dict[str, Path]:
    """OUT.mp4 -> {video: OUT.mp4, wav: OUT.wav, csv: OUT.envelope.csv, png: OUT.envelope.png}.
    Without a ``video`` to write, OUT.wav names the same files (and an OUT.mp4 that is not written)."""
    p = Path(out)
    # (--no-video -o clip.wav had been refused: name a video you do not want); the name as given
    wav_named = not video and p.suffix.lower() == ".wav"
    if not wav_named and p.suffix.lower() not in (".mp4", ".mov", ".mkv", ".m4v"):
        raise FolaiError(f"output video must end in .mp4, .mov, .mkv or .m4v, got '{p.name}'"
                         + ("" if video else " (or, with no video written, .wav)"))
    base = p.with_suffix("")
    return {
        "video": Path(f"{base}.mp4") if wav_named else p,
        "wav": p if wav_named else Path(f"{base}.wav"),
        "csv": Path(f"{base}.envelope.csv"),
        "png": Path(f"{base}.envelope.png"),
    }


def refuse_foreign_outputs(paths: dict[str, Path], out: str | os.PathLike, *, plot: bool = True) -> None:
    """Refuse (before any work) to replace a file that generate names after OUT but did not write.

    ``-o clip.mp4`` also writes clip.wav, clip.envelope.csv and clip.envelope.png. clip.wav is what
    a camera's or a recorder's own sound is often called, and clip.envelope.csv may hold the user's
    edit: they are replaced only as an earlier take of generate, unedited: the WAV carries folai's
    mark and the SHA-256 of the CSV written with it, and the CSV beside it still has that hash
    (:mod:`folai.marks`). The PNG needs folai's mark. The file named by ``-o`` itself is the
    caller's choice and is replaced. Every file in the way is named in one message.
    """
    from .marks import file_digest, png_is_ours, take_digest

    wav, csv, png = paths["wav"], paths["csv"], paths["png"]
    wav_named = wav == Path(out)  # --no-video -o clip.wav: the caller's choice
    recorded = take_digest(wav) if wav.exists() else None
    csv_problem = csv.exists() and (recorded is None or recorded != file_digest(csv))
    problems = []
    if wav.exists() and not wav_named and recorded is None:
        problems.append(f"{wav} (no mark of folai generate: another program's, a camera's or recorder's own sound, "
                        "or a take of an older folai)")
    elif wav.exists() and not wav_named and not csv.exists():
        problems.append(f"{wav} (no {csv.name} of its take beside it: renamed, or its envelope removed)")
    if csv_problem and recorded is not None:
        # the WAV is a take, but of other bytes than this CSV's: the CSV was edited since, or the
        # WAV was renamed from another take (the hashes cannot say which: both named)
        problems.append(f"{csv} and {wav} (not one take: the CSV edited since folai wrote them, or the WAV "
                        "renamed from another take)" if not wav_named else
                        f"{csv} (edited since folai wrote it with {wav.name}, or {wav.name} is another take's)")
    elif csv_problem:
        problems.append(f"{csv} (no take of folai generate beside it records it, so an edit cannot be told)")
    if plot and png.exists() and not png_is_ours(png):
        problems.append(f"{png} (no mark of folai)")
    if not problems:
        return
    them = "them" if len(problems) > 1 or (csv_problem and recorded is not None and not wav_named) else "it"
    msg = (f"this run would replace {'; '.join(problems)}: choose another -o, move {them} away, or pass "
           "--overwrite")
    if csv_problem:
        take = _second_take(wav if wav_named else paths["video"])  # (--no-video -o w.wav: a WAV, not a video)
        msg += (f" (to render that envelope: --envelope {shlex.quote(str(csv))} -o {shlex.quote(str(take))}"
                + (" --no-video)" if wav_named else ")"))
    raise FolaiError(msg)


def _second_take(path: Path) -> Path:
    """clip.mp4 -> clip.take2.mp4: the name suggested for a take that must not replace ``path``."""
    return path.with_name(f"{path.stem}.take2{path.suffix}")


def default_output(video: str | os.PathLike) -> Path:
    """``clip.mp4`` -> ``clip.foley.mp4`` next to it (``.mov``, ``.mkv`` and ``.m4v`` keep their
    suffix). Other files get the first of ``.mp4``, ``.mkv``, ``.mov`` that can carry their video
    stream as it is (a VP8 ``.webm`` -> ``.mkv``), or ``.mp4`` when none can (a GIF: re-encoded)."""
    v = Path(video)
    from .media import MUX_CONTAINERS, copy_suffixes

    try:
        fits = copy_suffixes(v)
    except FolaiError:
        fits = []  # a file that cannot be read: stage 1 says why
    own = v.suffix.lower()
    if own in (".mp4", ".mov", ".mkv", ".m4v") and (
        not fits or any(MUX_CONTAINERS[x] == MUX_CONTAINERS.get(own) for x in fits)
    ):
        # (its own suffix, unless that container cannot carry the stream and another can: a raw
        # nv12 .mkv had kept .mkv, and was refused with a message naming .mov; a review)
        return v.with_name(f"{v.stem}.foley{v.suffix}")
    return v.with_name(f"{v.stem}.foley{fits[0] if fits else '.mp4'}")


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
    def check(self, prompt: str | None = None, references: Sequence[str | os.PathLike] = (),
              progress: bool = False) -> None:
        """Fail fast on conditions the synthesis backend cannot use (before stage 1 runs).
        ``progress``: a bar where the backend takes long (cutting a long recording into takes)."""
        import inspect

        check = getattr(self.synth, "check", None)
        if check is not None:
            try:
                params = inspect.signature(check).parameters.values()
            except (TypeError, ValueError):  # (a callable without a signature to read)
                params = ()
            takes = any(p.name == "progress" or p.kind is p.VAR_KEYWORD for p in params)
            check(prompt=prompt, references=list(references), **({"progress": progress} if takes else {}))

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

        duration = envelope.end if duration is None else float(duration)
        if duration <= 0:
            raise FolaiError(f"nothing to render: duration is {duration:.3f} s")
        from .media import wav_format

        sr = getattr(self.synth, "sample_rate", SAMPLE_RATE)
        fmt = "FLAC" if flac else wav_format(round(duration * sr), 2, subtype)
        with sf.SoundFile(path, "w", samplerate=sr, channels=2, subtype=subtype, format=fmt) as f:
            for chunk in self._render_chunks(envelope, duration, step=CHUNK_SECONDS, bar_from=0.0,
                                             progress=progress, **render_kwargs):
                f.write(chunk.T)

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
        overwrite: bool = False,
    ) -> GenerateResult:
        """Video -> OUT.mp4 (video stream copied, new audio), OUT.wav, OUT.envelope.csv, OUT.envelope.png.

        Independent work overlaps: the video is probed once and its packets are read for the copy
        while stage 1 runs; the audio is rendered chunk by chunk while one thread writes the
        previous chunk to the WAV file (and the CSV) and another encodes it into the video's new
        track. No file is read back, and memory stays flat for long videos. OUT.wav, OUT.envelope.csv
        and OUT.envelope.png (names the caller did not give) replace existing files only where an
        earlier take wrote them, unedited (:func:`refuse_foreign_outputs`), or with ``overwrite``.
        ``seconds`` holds
        wall times: ``timing``, ``synthesis`` (the rendering), ``plot``, ``encode`` (the encoder
        threads' time, the longer of the two, alongside ``synthesis``) and ``mux`` (what is left after the plot: the
        last chunk's encoding and writing the video file).
        """
        import soundfile as sf

        from .marks import mark_wav
        from .media import check_copy, probe_video, wav_format

        video = check_input(video, "video")
        for r in references:
            check_input(r, "reference recording")
        out = Path(out) if out is not None else default_output(video)
        paths = output_paths(out, video=write_video)
        ins = [video, *references, envelope if isinstance(envelope, (str, os.PathLike)) else None]
        if isinstance(envelope, (str, os.PathLike)) and Path(envelope).exists() and paths["csv"].exists() \
                and os.path.samefile(envelope, paths["csv"]):
            # the edit loop (generate, edit OUT.envelope.csv, generate --envelope it) with the same -o
            # (found by a review): said as such, with a name for the new take
            take = _second_take(paths["video"])
            raise FolaiError(
                f"the envelope {envelope} is the one this output writes ({paths['csv'].name}); inputs are never "
                f"overwritten: write the new take under another name, e.g. -o {shlex.quote(str(take))}"
            )
        for key, p in paths.items():
            if key == "video" and not write_video:
                continue
            check_output(p, ins)
        self.check(prompt=prompt, references=references, progress=progress)
        info = probe_video(video)  # remembered: the timing stage asks again for free
        if write_video:
            check_copy(video, paths["video"])  # a codec the output cannot carry: said before stage 1
        if info.duration <= 0:
            raise FolaiError(f"video {video} has zero duration")
        given = note = None
        if envelope is not None:  # read and fitted before any work: a bad CSV is said first
            given = envelope if isinstance(envelope, Envelope) else Envelope.load_csv(envelope)
            given, note = envelope_for_video(given, info.duration)
        else:  # stage 1's options too (--step-lead's range, a region of interest off the picture)
            _ = self.timing
            if self.timing_name == "motion":
                from .timing._flow import resolve_roi

                resolve_roi(roi, info.width, info.height, warn=False)
        if not overwrite:  # inputs first, then what this run would replace
            refuse_foreign_outputs(paths, out, plot=plot)
        if note:  # (after the refusal: a refused run says one line)
            log.warning("%s", note)
        seconds: dict[str, float] = {}

        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_outputs(
                {k: p for k, p in paths.items() if (k != "video" or write_video) and (k != "png" or plot)}, ins))
            synth = self.synth
            sr = int(getattr(synth, "sample_rate", SAMPLE_RATE))
            # the copy of the video stream is prepared (packets read, encoder opened) meanwhile
            mux_job = _Background(_open_mux, video, tmp["video"], sr) if write_video else None
            stack.callback(_abort_mux, mux_job)
            # a backend may get ready for a render meanwhile too (optional hook: work that does not
            # depend on the envelope, e.g. a preset's texture for this seed); joined before rendering
            prepare = getattr(synth, "prepare", None)
            prep_job = None
            if callable(prepare):
                prep_job = _Background(lambda: prepare(duration=info.duration, prompt=prompt,
                                                       references=list(references), seed=seed))
                stack.callback(prep_job.outcome)

            t = time.perf_counter()
            pan_curve = None
            timing_info = None
            if envelope is None:
                from .synthesis.presets import timing_prompt

                result = self.estimate(video, roi=roi, progress=progress,
                                       prompt=timing_prompt(prompt, bool(references)))
                env = result.envelope
                timing_info = result.info
                pan_curve = result.pan
                events = result.info.get("events")
                env, _ = envelope_for_video(env, info.duration)  # (it covers the video: no note)
            else:
                env = given
                events = None
            # with --pan the CSV and plot carry the pan: (left, right) levels as the render pans
            # them, so that the curve passed back with --envelope after an edit renders panned
            written = _panned(env, pan_curve) if pan and pan_curve is not None else env
            seconds["timing"] = time.perf_counter() - t

            mux = mux_job.result() if mux_job is not None else None
            if prep_job is not None:
                prep_job.result()
            peaks = _Peaks() if plot else None
            wav = stack.enter_context(sf.SoundFile(tmp["wav"], "w", samplerate=sr, channels=2, subtype="PCM_16",
                                                   format=wav_format(round(info.duration * sr), 2)))
            # files (CSV, WAV) and the AAC encoder each get a thread: rendering goes on meanwhile.
            # The encoder is the slowest part of stage 2, so at the first silence past each of
            # BRANCH_AFTER's shares of the track another encoder takes over the rest in a thread
            # of its own (AudioMux.branch: both see only zeros around the seam, so the joined track
            # decodes as one encoder's would there): the stretches are encoded at once, while the
            # next chunks are rendered.
            marks = [int(f * mux.n_samples) for f in BRANCH_AFTER] if mux is not None else []
            encoder = mux  # the encoder the chunks go to now
            branched = 0
            with contextlib.ExitStack() as workers:
                files = workers.enter_context(_Worker("folai-files"))
                encs = [workers.enter_context(_Worker(f"folai-encode{i or ''}")) for i in range(len(marks) + 1)]
                csv_bytes: list[bytes] = []

                def write_csv():
                    # as bytes: the take's WAV records their hash (folai.marks)
                    csv_bytes.append(written.to_csv_string().encode("utf-8"))
                    tmp["csv"].write_bytes(csv_bytes[0])

                files.submit(write_csv)
                t = time.perf_counter()
                pos = 0  # track sample of the chunk's start
                # the render is in the file's time; the video's track starts at its first frame
                skip = mux.lead if mux is not None else 0
                for chunk in self._render_chunks(
                    env, info.duration, progress=progress, prompt=prompt, references=list(references),
                    video=video, pan=pan_curve if pan else None, seed=seed,
                ):
                    if peaks is not None:
                        peaks.add(chunk)
                    files.submit(wav.write, chunk.T)
                    if skip:
                        cut = min(skip, chunk.shape[1])
                        chunk, skip = chunk[:, cut:], skip - cut
                        if chunk.shape[1] == 0:
                            continue
                    if encoder is not None:
                        at = None
                        if branched < len(marks) and encoder.can_branch():
                            at = encoder.find_seam(chunk, pos, after=marks[branched])
                        if at is None:
                            encs[branched].submit(encoder.write, chunk)
                        else:
                            nxt = encoder.branch(at)
                            encs[branched + 1].submit(nxt.write, chunk[:, at - pos - mux.BRANCH_PREROLL :])
                            encs[branched].submit(encoder.write, chunk[:, : at - pos])
                            encs[branched].submit(encoder.end_at, at)
                            encoder = nxt
                            branched += 1
                    pos += chunk.shape[1]
                # the mark after the last frames: strings set before them go into the header, and
                # libsndfile then refuses to open the file read/write (found by a review)
                files.submit(lambda: mark_wav(wav, csv_bytes[0]))
                files.submit(wav.close)
                if branched:
                    encs[branched].submit(encoder.finish)
                elif mux is not None:
                    encs[0].submit(mux.close)
                seconds["synthesis"] = time.perf_counter() - t
                if plot:  # drawn while the threads finish the last chunk
                    t = time.perf_counter()
                    written.plot(tmp["png"], waveform=peaks.wave(), sr=sr / peaks.block, events=events,
                                 waveform_start=0.0)  # (the render covers the video from 0 s)
                    seconds["plot"] = time.perf_counter() - t
                t = time.perf_counter()
            if branched:  # all encoders are done: write the video file
                mux.close()
            seconds["encode"] = max((e.busy for e in encs), default=0.0)
            seconds["mux"] = time.perf_counter() - t
            if write_video and mux is None:  # a rate the mux cannot encode: mux the finished WAV file
                from .media import mux_audio

                t = time.perf_counter()
                mux_audio(video, tmp["wav"], tmp["video"])
                seconds["mux"] += time.perf_counter() - t
            if not overwrite:  # again before the files are put in place: one edited meanwhile is kept
                refuse_foreign_outputs(paths, out, plot=plot)
        video_out = paths["video"] if write_video else None
        png = paths["png"] if plot else None
        return GenerateResult(
            wav=paths["wav"], envelope_csv=paths["csv"], envelope_png=png,
            video=Path(video_out) if video_out else None, envelope=env, duration=info.duration, seconds=seconds,
            timing_info=timing_info,
        )

    def _render_chunks(self, envelope: Envelope, duration: float, *, step: float = STREAM_SECONDS,
                       bar_from: float = 4 * CHUNK_SECONDS, progress: bool = True, **render_kwargs: Any):
        """Stage 2 as consecutive (2, n) float32 chunks clipped to [-1, 1]: ``step`` seconds each
        (rendered one by one when the backend renders stretches, else cut from one whole render).
        The chunks' progress bar shows from ``bar_from`` seconds of audio on."""
        from tqdm.auto import tqdm

        synth = self.synth
        sr = getattr(synth, "sample_rate", SAMPLE_RATE)
        total = int(round(duration * sr))
        got = 0
        if hasattr(synth, "render_span") and duration > step * 1.5:
            starts = np.arange(0.0, duration, step)
            if duration - starts[-1] < 0.5 * step and len(starts) > 1:
                starts = starts[:-1]  # no sliver of a last chunk
            bounds = [*map(float, starts), float(duration)]
            bar = tqdm(total=len(starts), desc="render", unit="chunk", disable=not progress or duration < bar_from)
            with bar:
                for t0, t1 in zip(bounds[:-1], bounds[1:]):
                    chunk = synth.render_span(envelope, t0, t1, duration=duration, progress=False, **render_kwargs)
                    got += chunk.shape[1]
                    yield np.clip(chunk, -1, 1)
                    bar.update(1)
        else:
            audio = synth.render(envelope, duration=duration, progress=progress, **render_kwargs)
            got = audio.shape[1]
            audio = np.clip(audio, -1, 1)
            n = int(round(step * sr))
            for i in range(0, audio.shape[1], n):
                yield audio[:, i : i + n]
        if got != total:
            raise FolaiError(f"internal: rendered {got} samples, expected {total}")


def envelope_for_video(env: Envelope, duration: float) -> tuple[Envelope, str | None]:
    """``env`` as rendered for a video of ``duration`` seconds, and a sentence when it did not cover
    the video (None when it did). An envelope that lies wholly outside the video is an error.

    The result covers the video's time to its end: one that starts later, as a CSV may, keeps its
    start (silent before it); one that starts earlier is cut at 0 (the CSV of a curve shifted by
    -0.3 s had ended 0.3 s early, and its render was that much short; found by a review); one that
    ends early is padded with silence, one that ends late is cut. ``folai generate --envelope`` and
    the studio's CSV loading share this rule.
    """
    if env.start >= duration:
        raise FolaiError(f"the envelope starts at {env.start:.3f} s, after the video's end ({duration:.3f} s)")
    if env.end <= 0.5 / env.rate:  # (nothing of it in the video: it had written an empty CSV)
        raise FolaiError(f"the envelope ends at {env.end:.3f} s, before the video starts (0 s); "
                         "its times are in seconds from the video's start")
    note = None
    # (float slack: a curve this rule fitted once starts within half a frame of 0, at most a hair
    # under -0.5 frame by float error: it fits as it is, with no note and no frame cut again)
    early = env.start < -0.5 / env.rate - 1e-6
    if abs(env.end - duration) > 1.0 / env.rate + 1e-6 or early:
        note = (f"envelope covers {env.start:.3f} to {env.end:.3f} s but the video lasts {duration:.3f} s: "
                "fitted to the video (cut where it runs past it, silent where it has no rows)")
    if env.start > 0 or early:
        env = env.crop(max(0.0, env.start), duration)
    return env.fit(duration - env.start), note


def _panned(env: Envelope, pan: np.ndarray) -> Envelope:
    """``env`` (mono) as a (left, right) envelope panned by ``pan`` (one value in [-1, 1] per frame
    of ``env``, as the sampler takes it; the last value holds past its end) with the sampler's
    equal-power law: each channel's level as the ``--pan`` render gives it. Rendered back as a
    stereo envelope (read with the same law), it places each sound where the pan did, as loud. Levels over 1
    (a hard-panned sound over 0.71) are clipped to 1."""
    from .synthesis.sampler import pan_gains

    p = np.clip(np.asarray(pan, dtype=np.float64).reshape(-1), -1.0, 1.0)
    if p.size == 0:
        return env
    idx = np.minimum(np.arange(env.n_frames), p.size - 1)
    gl, gr = pan_gains(p[idx])
    v = env.values[0].astype(np.float64)
    return Envelope(np.clip(np.stack([v * gl, v * gr]), 0.0, 1.0).astype(np.float32), rate=env.rate,
                    start=env.start, config=env.config)


def _open_mux(video: Path, out: Path, sr: int):
    """The mux for generate's video output, or None when ``sr`` needs resampling first."""
    from .media import _AAC_RATES, AudioMux

    if sr not in _AAC_RATES:
        return None
    # the fast AAC coder at a variable bit rate (media.AAC_FAST_OPTIONS: a third of the CPU of a
    # constant 256 kbit/s, its coding noise no more audible); the WAV written beside the video
    # keeps the exact samples
    return AudioMux(video, out, sr, channels=2, fast=True)


def _abort_mux(job: "_Background | None") -> None:
    """On the way out of generate: a mux that was not closed (an error) is aborted."""
    if job is None:
        return
    job.cancel()  # (a finished job is not affected)
    mux = job.outcome()
    if mux is not None:
        mux.abort()


class _Background:
    """Run ``fn(*args)`` in a thread now; ``result()`` waits for it and returns or raises."""

    def __init__(self, fn, *args) -> None:
        import threading

        self._value = self._error = None
        # waited on through an Event: a Thread.join() interrupted by Ctrl-C / SIGTERM makes the next
        # join() return at once (CPython 3.11), so the clean-up's wait saw no mux while the thread was
        # still re-encoding the source, and its temporary video stayed in /tmp (found by a review)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(fn, args), name="folai-prepare", daemon=True)
        self._thread.folai_cancel = threading.Event()  # read by long loops in it (media._cancelled)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the job to stop early, where it can (its result is not wanted)."""
        self._thread.folai_cancel.set()

    def _run(self, fn, args) -> None:
        try:
            self._value = fn(*args)
        except BaseException as e:  # handed to the caller of result()
            self._error = e
        finally:
            self._done.set()

    def result(self):
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def outcome(self):
        """Wait for the job; its value, or None where it failed (its error is not wanted). A signal
        that lands while waiting still propagates: the clean-up that waits here had caught every
        exception around the wait, and a SIGTERM landing in it was lost, the run finishing with
        exit 0 (seen under load in the signal test)."""
        self._done.wait()
        return None if self._error is not None else self._value


#: seconds a worker thread waits on its queue before looking again (see _Worker._run)
_POLL = 0.25


class _Worker:
    """A thread running submitted calls in order (bounded queue: memory stays flat). The first
    error stops the rest and is raised when the ``with`` block is left; an exception in the block
    cancels what is still queued."""

    def __init__(self, name: str, maxsize: int = 4) -> None:
        import queue
        import threading

        self.busy = 0.0  # seconds spent in the calls
        self._q: queue.Queue = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._cancel = False
        self._done = threading.Event()  # (not Thread.join: see _Background)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import queue

        try:
            while True:
                # (polled: a Ctrl-C or SIGTERM raised in the main thread inside Queue.put, between
                # waking this thread and taking its waiter off the list, leaves a stale waiter that
                # the next put wakes instead; the thread then slept on with the stop sentinel in
                # its queue, and generate hung for good after the signal (found by a review))
                try:
                    task = self._q.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if task is None:
                    return
                if self._error is not None or self._cancel:
                    continue
                t = time.perf_counter()
                try:
                    task[0](*task[1])
                except BaseException as e:
                    self._error = e
                self.busy += time.perf_counter() - t
        finally:
            self._done.set()

    def submit(self, fn, *args) -> None:
        if self._error is not None:
            raise self._error
        self._put((fn, args))

    def _put(self, item) -> None:
        """``Queue.put`` with Ctrl-C, SIGTERM and SIGHUP held, 0.1 s at a time: a signal's exception
        raised inside the queue's own locking could leave its lock held (the worker then blocked for
        good, and so did the stop; a review saw 5 hangs in 1500 signals) or wake the wrong waiter.
        Between the tries a signal is delivered, so a full queue still stops on Ctrl-C."""
        import queue

        from .paths import deferred_signals

        while True:
            with deferred_signals():
                try:
                    self._q.put(item, timeout=0.1)
                    return
                except queue.Full:
                    pass

    def __enter__(self) -> "_Worker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._cancel = exc_type is not None
        self._put(None)
        try:
            self._done.wait()
        except BaseException:  # stopped while waiting: drop what is queued, let the running call end
            self._cancel = True
            self._done.wait()
            raise
        if exc_type is None and self._error is not None:
            raise self._error


class _Peaks:
    """Decimated waveform for the envelope plot: max |mono| per ``block`` samples, chunk by chunk."""

    block = 441

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self._rest = np.zeros(0, np.float32)

    def add(self, chunk: np.ndarray) -> None:
        m = np.concatenate([self._rest, chunk.mean(axis=0, dtype=np.float32)]) if self._rest.size else chunk.mean(axis=0, dtype=np.float32)
        n = len(m) // self.block * self.block
        if n:
            self._parts.append(np.abs(m[:n]).reshape(-1, self.block).max(axis=1))
        self._rest = m[n:]

    def wave(self) -> np.ndarray:
        return np.concatenate(self._parts) if self._parts else np.zeros(1, np.float32)
