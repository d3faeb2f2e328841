"""``folai generate``: the main job, video in, video with synchronized Foley out."""

from __future__ import annotations

import argparse
import sys

from ._common import (add_synth_args, add_timing_args, parse_roi, synth_options, timing_options, timing_summary,
                      warn_moot_prompt, warn_moot_timing)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Put synchronized Foley on a video: stage 1 estimates the loudness envelope from the picture, "
        "stage 2 renders 44.1 kHz stereo audio that follows it, and the audio is muxed into a copy of "
        "the video (video stream copied, not re-encoded; a codec that no .mp4/.mkv/.mov file carries, "
        "such as a GIF, is re-encoded as H.264). Writes OUT.mp4, OUT.wav, OUT.envelope.csv "
        "and OUT.envelope.png. Edit the CSV and pass it back with --envelope to skip stage 1."
    )
    p.add_argument("video", help="input video (its own audio, if any, is ignored and replaced)")
    p.add_argument("-o", "--output", metavar="OUT.mp4", help="output video: .mp4, .m4v, .mov or .mkv (default: VIDEO.foley.mp4 beside the input; "
                   ".mov/.mkv/.m4v inputs keep their container, a VP8 .webm gets .mkv)")
    p.add_argument("--envelope", metavar="ENV.csv", help="use this (edited) envelope instead of running stage 1")
    p.add_argument("--pan", action="store_true", help="pan each sound from the horizontal position of the motion; the "
                   "envelope CSV is then stereo (time_s,rms_left,rms_right), so an edited one passed back with "
                   "--envelope keeps the pan")
    p.add_argument("--no-video", action="store_true", help="write only the WAV and envelope files, no muxed video")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.wav, OUT.envelope.csv and OUT.envelope.png "
                   "even when folai did not write them or the CSV was edited since (without it such files are "
                   "kept and the run refused: a camera's clip.wav beside clip.mov, an edited envelope)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_timing_args(p)
    add_synth_args(p)


def run(args: argparse.Namespace) -> int:
    from ..pipeline import FoleyPipeline

    # options that an --envelope (stage 1 skipped) or the prompt make moot: said, not dropped silently
    warn_moot_timing(args, "--envelope" if args.envelope is not None else None)
    warn_moot_prompt(args, stage1=args.envelope is None and args.timing == "motion")
    pipe = FoleyPipeline(
        timing=args.timing, synth=args.synth,
        timing_options=timing_options(args) if args.envelope is None else {},
        synth_options=synth_options(args),
    )
    res = pipe.generate(
        args.video, args.output, prompt=args.prompt, references=args.reference, envelope=args.envelope,
        seed=args.seed, roi=parse_roi(args.roi), pan=args.pan, write_video=not args.no_video,
        progress=not args.quiet, overwrite=args.overwrite,
    )
    if not args.quiet:
        if res.timing_info is not None:
            print(timing_summary(res.timing_info), file=sys.stderr)
        for label, path in (("video", res.video), ("audio", res.wav), ("envelope", res.envelope_csv), ("plot", res.envelope_png)):
            if path:
                print(f"{label:9s} {path}", file=sys.stderr)
    return 0
