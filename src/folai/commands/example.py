"""``folai example``: write a small generated example video to try folai on (no download needed)."""

from __future__ import annotations

import argparse

from ..paths import atomic_output


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Write a generated example video: a block that falls and hits the floor at known times, "
        "with no audio track (the silent input folai is for), and print the hit times."
    )
    p.add_argument("output", nargs="?", default="example.mp4", help="video to write (default example.mp4)")
    p.add_argument("--duration", type=float, default=6.0, help="seconds (default 6)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the hit times")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import FolaiError
    from ..testing import make_hit_video

    if args.duration < 2.0:
        raise FolaiError(f"--duration must be at least 2 s, got {args.duration}")
    rng = np.random.default_rng(args.seed)
    n = max(2, int(args.duration / 1.2))
    slots = np.linspace(0.6, args.duration - 0.6, n)
    hits = sorted(float(round(t + rng.uniform(-0.15, 0.15), 3)) for t in slots)
    with atomic_output(args.output) as tmp:
        make_hit_video(tmp, duration=args.duration, hit_times=hits, size=(344, 256), with_audio=False, seed=args.seed)
    print(f"wrote {args.output}: hits at " + ", ".join(f"{t:.3f}" for t in hits) + " s")
    return 0
