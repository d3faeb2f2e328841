"""``folai example``: write a small generated example video to try folai on (no download needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..paths import atomic_output
from ._common import number


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Write a generated example video: a block that falls and hits the floor at known times, "
        "with no audio track (the silent input folai is for), and print the hit times."
    )
    p.add_argument("output", nargs="?", default="example.mp4",
                   help="video to write: .mp4, .mov, .mkv, .avi or .webm (default example.mp4)")
    p.add_argument("--duration", type=number(low=2.0, high=MAX_DURATION), default=6.0,
                   help=f"seconds, 2 to {MAX_DURATION:g} (default 6)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the hit times (any integer)")


#: seconds: the longest example (a memory bound too: the frames are made in memory)
MAX_DURATION = 600.0
#: the containers the example is written in
SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import FolaiError
    from ..testing import make_hit_video

    suffix = Path(args.output).suffix.lower()
    if suffix not in SUFFIXES:
        raise FolaiError(f"the example is a video: name it with one of {', '.join(SUFFIXES)}, got '{args.output}'")
    if not 2.0 <= args.duration <= MAX_DURATION:
        raise FolaiError(f"--duration must be 2 to {MAX_DURATION:g} s, got {args.duration}")
    # any integer, as generate takes: a negative one counts modulo 2**64 (others as they are)
    seed = args.seed if args.seed >= 0 else args.seed % (1 << 64)
    rng = np.random.default_rng(seed)
    n = max(2, int(args.duration / 1.2))
    slots = np.linspace(0.6, args.duration - 0.6, n)
    hits = sorted(float(round(t + rng.uniform(-0.15, 0.15), 3)) for t in slots)
    with atomic_output(args.output) as tmp:
        make_hit_video(tmp, duration=args.duration, hit_times=hits, size=(344, 256), with_audio=False, seed=seed)
    print(f"wrote {args.output}: hits at " + ", ".join(f"{t:.3f}" for t in hits) + " s")
    return 0
