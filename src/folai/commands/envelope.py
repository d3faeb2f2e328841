"""``folai envelope``: stage 1 alone (or the target envelope of a recording)."""

from __future__ import annotations

import argparse
import sys

from ..envelope import Envelope
from ..errors import FolaiError
from ..paths import atomic_outputs, check_input, check_output
from ._common import add_timing_args, parse_roi, prompt_text, timing_options, timing_summary, warn_moot_timing


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Write the RMS envelope (125 frames/s, CSV 'time_s,rms') that stage 2 will follow. From a VIDEO it is "
        "estimated from the picture (stage 1); with --from-audio FILE it is measured from a recording or a "
        "video's audio track (the paper's target envelope). Edit the CSV, then 'folai render' or "
        "'folai generate --envelope'."
    )
    p.add_argument("video", nargs="?", help="silent (or not) video to estimate the envelope from")
    p.add_argument("--from-audio", metavar="FILE", help="measure the envelope of this recording / video audio track instead")
    p.add_argument("-o", "--output", required=True, metavar="ENV.csv", help="envelope CSV to write")
    p.add_argument("--plot", metavar="ENV.png", help="also write a PNG plot of the envelope")
    p.add_argument("--prompt", metavar="TEXT", type=prompt_text, help="what the sound is (e.g. 'footsteps on gravel'): tells motion timing which events to look for")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_timing_args(p)


def run(args: argparse.Namespace) -> int:
    if bool(args.video) == bool(args.from_audio):
        raise FolaiError("give either a VIDEO or --from-audio FILE (exactly one)")
    src = args.video or args.from_audio
    check_input(src, "video" if args.video else "audio file")
    if str(args.output).lower().endswith((".wav", ".png", ".mp4", ".mov", ".mkv", ".flac", ".mp3", ".json")):
        # (it wrote CSV text under a .wav name; any other name, .csv or .txt, is the user's choice)
        raise FolaiError(f"-o writes the envelope as CSV text: give a name ending in .csv, got '{args.output}'")
    check_output(args.output, [src])
    if args.plot:
        if not str(args.plot).lower().endswith(".png"):  # (it wrote PNG data under a .jpg or .svg name)
            raise FolaiError(f"--plot writes a PNG image: give a name ending in .png, got '{args.plot}'")
        check_output(args.plot, [src, args.output])
    warn_moot_timing(args, "--from-audio" if args.from_audio else None)
    events = None
    if args.from_audio:
        env = Envelope.from_media(args.from_audio)
    else:
        from ..pipeline import FoleyPipeline

        pipe = FoleyPipeline(timing=args.timing, timing_options=timing_options(args))
        res = pipe.estimate(args.video, roi=parse_roi(args.roi), prompt=args.prompt, progress=not args.quiet)
        env, events = res.envelope, res.info.get("events")
        print(timing_summary(res.info), file=sys.stderr)
    # both files or neither (a plot that could not be written had left the CSV behind)
    outs = {"csv": args.output, **({"png": args.plot} if args.plot else {})}
    with atomic_outputs(outs, [src]) as tmp:
        tmp["csv"].write_text(env.to_csv_string(), encoding="utf-8")
        if args.plot:
            env.plot(tmp["png"], events=events)
    return 0
