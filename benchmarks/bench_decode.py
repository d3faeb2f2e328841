"""Decode speed and memory of folai.media.iter_video_frames.

Prints:
  * frames/s decoding at 30 fps (full size, and resized to 224x224) for a real 10 s clip
    (default ../shared/bench/gh/20/GT_20.mp4 beside the repository) and for a generated
    1280x720 10 s clip;
  * resident memory while streaming a generated 10-minute 320x240 video: it must stay flat
    (growth from the first minute to the end is printed, and the script exits 1 if it exceeds
    --max-growth-mb).

Usage:
    PYTHONPATH=src python benchmarks/bench_decode.py [GT_20.mp4] [--minutes 10] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from folai.media import iter_video_frames, probe_video
from folai.testing import make_video

REPO = Path(__file__).resolve().parents[1]
_GT = Path("shared") / "bench" / "gh" / "20" / "GT_20.mp4"
# ../shared beside the repository (CI); else the nearest ancestor folder that has shared/bench
DEFAULT_GT = next((a / _GT for a in REPO.parents if (a / _GT).exists()), REPO.parent / _GT)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def decode_speed(path: Path, fps: float = 30.0, size=None, repeat: int = 2) -> tuple[float, int]:
    """Best frames/s over ``repeat`` runs, and the number of frames."""
    best = 0.0
    n = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = 0
        for _t, frame in iter_video_frames(path, fps=fps, size=size):
            n += 1
        dt = time.perf_counter() - t0
        best = max(best, n / dt)
    return best, n


def moving_square(w: int, h: int, fps: float):
    bg = np.full((h, w, 3), 40, np.uint8)
    side = max(8, h // 6)

    def frame(k: int) -> np.ndarray:
        img = bg.copy()
        t = k / fps
        x = int((w - side) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t)))
        y = int((h - side) * abs(np.sin(2 * np.pi * 0.7 * t)))
        img[y : y + side, x : x + side] = (200, 120, 60)
        return img

    return frame


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip", nargs="?", default=str(DEFAULT_GT), help="real clip to time (default: %(default)s)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the generated long video")
    ap.add_argument("--max-growth-mb", type=float, default=50.0, help="fail if RSS grows more than this")
    ap.add_argument("--workdir", default=None, help="where to write generated videos (default: a temp dir)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs visible")

        clip = Path(args.clip)
        if clip.exists():
            info = probe_video(clip)
            fs, n = decode_speed(clip)
            fs224, _ = decode_speed(clip, size=(224, 224))
            print(f"{clip.name}: {info.width}x{info.height} {info.fps:.3f} fps {info.duration:.2f} s -> "
                  f"{n} frames at 30 fps: {fs:.0f} frames/s full size, {fs224:.0f} frames/s at 224x224")
        else:
            print(f"{clip}: not found, skipped")

        t0 = time.perf_counter()
        hd = make_video(tmp / "hd.mp4", moving_square(1280, 720, 30.0), fps=30, n_frames=300, size=(1280, 720),
                        crf=23, preset="veryfast")
        gen = time.perf_counter() - t0
        fs, n = decode_speed(hd)
        fs224, _ = decode_speed(hd, size=(224, 224))
        print(f"generated 1280x720 30 fps 10 s ({gen:.1f} s to make): {n} frames at 30 fps: "
              f"{fs:.0f} frames/s full size, {fs224:.0f} frames/s at 224x224")

        n_long = int(round(args.minutes * 60 * 30))
        t0 = time.perf_counter()
        long = make_video(tmp / "long.mp4", moving_square(320, 240, 30.0), fps=30, n_frames=n_long,
                          size=(320, 240), crf=35, preset="ultrafast")
        gen = time.perf_counter() - t0
        size_mb = long.stat().st_size / 2**20
        base = rss_mb()
        samples = []
        t0 = time.perf_counter()
        n = 0
        for t, _frame in iter_video_frames(long, fps=30):
            n += 1
            if n % 900 == 0:  # every 30 s of video
                samples.append((t, rss_mb()))
        dt = time.perf_counter() - t0
        peak = max(r for _, r in samples)
        first_min = next((r for t, r in samples if t >= 59.0), samples[0][1])
        growth = samples[-1][1] - first_min
        print(f"generated {args.minutes:g} min 320x240 ({size_mb:.1f} MiB, {gen:.1f} s to make): {n} frames "
              f"decoded at {n / dt:.0f} frames/s")
        print(f"  RSS before {base:.1f} MiB, after 1 min {first_min:.1f} MiB, at the end {samples[-1][1]:.1f} MiB, "
              f"peak {peak:.1f} MiB; growth 1 min -> end {growth:+.1f} MiB; "
              f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")
        print("  RSS every 2 min:", ", ".join(f"{t / 60:.0f}m {r:.0f}" for t, r in samples[3::4]))
        if growth > args.max_growth_mb:
            print(f"FAIL: memory grew by {growth:.1f} MiB while streaming", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
