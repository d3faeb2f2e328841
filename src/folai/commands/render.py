"""``folai render``: stage 2 alone, an envelope CSV to 44.1 kHz stereo audio."""

from __future__ import annotations

import argparse
import logging

from ..envelope import Envelope
from ..errors import FolaiError
from ..paths import check_input, check_output
from ._common import add_synth_args, synth_options, warn_moot_prompt

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Render an envelope CSV (from 'folai envelope', possibly edited) to 44.1 kHz stereo audio whose "
        "loudness follows it. Choose the sound with --prompt or --reference."
    )
    p.add_argument("envelope", metavar="ENV.csv", help="envelope CSV (time_s,rms)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.wav", help="audio file to write (.wav or .flac)")
    p.add_argument("--duration", type=float, default=None, help="seconds to render from 0 s, the video's start (default: to the end of the envelope's last row, "
                   "which lasts one row's step)")
    p.add_argument("--video", default=None, help="the video, for backends conditioned on frames (stable-audio's CAVP)")
    p.add_argument("--subtype", default="PCM_16", choices=["PCM_16", "PCM_24", "FLOAT"], help="sample format (default PCM_16)")
    p.add_argument("--device", default=None, help="torch device for neural backends")
    add_synth_args(p)


#: the longest render --duration asks for (seconds)
MAX_DURATION = 24 * 3600.0


def run(args: argparse.Namespace) -> int:
    from ..pipeline import FoleyPipeline

    check_input(args.envelope, "envelope file")
    for r in args.reference:
        check_input(r, "reference recording")
    if args.video is not None:
        check_input(args.video, "video")
    if not args.output.lower().endswith((".wav", ".flac")):
        raise FolaiError(f"output must end in .wav or .flac, got '{args.output}'")
    if args.subtype == "FLOAT" and args.output.lower().endswith(".flac"):
        raise FolaiError("FLAC holds integer samples only: use --subtype PCM_16 or PCM_24, or a .wav output for FLOAT")
    check_output(args.output, [args.envelope, *args.reference, args.video])
    env = Envelope.load_csv(args.envelope)
    if args.duration is not None and not (1.0 / 44100 <= args.duration <= MAX_DURATION):
        # (nan, inf and absurd lengths were internal errors; a length under one sample wrote an empty file)
        raise FolaiError(
            f"--duration must be a number of seconds from one sample (1/44100) to {MAX_DURATION:.0f} "
            f"(24 hours), got {args.duration}"
        )
    if args.duration is not None and (env.start >= args.duration or env.end <= 0):  # (end: the last row's end)
        # (the user chose the span, which may be meant to be silent; but a curve wholly outside it had
        # rendered silence without a word, where generate --envelope refuses it: found by a review)
        log.warning("the envelope covers %.3f to %.3f s, wholly outside the render's 0 to %.3f s (--duration): "
                    "the render is silent (its times are seconds from the video's start)",
                    env.start, env.end, args.duration)
    if args.duration is None and env.end <= 0:  # (it had said "duration is -0.250 s")
        raise FolaiError(f"the envelope covers {env.start:.3f} to {env.end:.3f} s, wholly before the video's start "
                         "(0 s): there is nothing to render (its times are seconds from the video's start)")
    if args.duration is None and env.end > MAX_DURATION:
        # (a first row at 1e12 s had been a MemoryError, at 1e308 an OverflowError)
        raise FolaiError(
            f"the envelope ends at {env.end:.6g} s, past the longest render ({MAX_DURATION:.0f} s, 24 hours); "
            "its times are seconds from the video's start"
        )
    if args.duration is None and env.start >= 60.0 and env.start > 10 * env.duration:
        # (a DAW timecode, 3600 s, had silently made a WAV of an hour of silence before the curve)
        log.warning("the envelope starts at %.3f s: the render covers the video's time from 0 s, silent for "
                    "the first %.3f s (the times are seconds from the video's start)", env.start, env.start)
    warn_moot_prompt(args, stage1=False)
    pipe = FoleyPipeline(synth=args.synth, synth_options=synth_options(args))
    pipe.check(prompt=args.prompt, references=args.reference, progress=True)
    pipe.render_to_file(
        env, args.output, args.duration or env.end, inputs=[args.envelope, *args.reference, args.video],
        subtype=args.subtype, prompt=args.prompt, references=args.reference, video=args.video, seed=args.seed,
    )
    return 0
