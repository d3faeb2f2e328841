"""Long videos: `folai generate` on a 1-minute and a 10-minute generated video, each in a fresh
process, printing wall time and peak resident memory. Memory must stay (nearly) flat with length.

    python benchmarks/bench_long.py [--minutes 1 10] [--size 320x240]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from folai.pipeline import FoleyPipeline
t = time.perf_counter()
res = FoleyPipeline().generate(sys.argv[1], sys.argv[2], prompt=sys.argv[3], progress=False)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "duration": res.duration, "seconds": res.seconds}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--prompt", default="hitting wood with a stick")
    args = ap.parse_args()
    import numpy as np

    from folai.testing import make_hit_video

    w, h = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for minutes in args.minutes:
            dur = minutes * 60.0
            video = Path(d) / f"long_{minutes:g}min.mp4"
            hits = list(np.arange(0.7, dur - 0.5, 1.3))
            t = time.perf_counter()
            make_hit_video(video, duration=dur, size=(w, h), hit_times=hits, with_audio=False)
            make_s = time.perf_counter() - t
            out = Path(d) / f"long_{minutes:g}min.foley.mp4"
            r = subprocess.run([sys.executable, "-c", CHILD, str(video), str(out), args.prompt],
                               capture_output=True, text=True, check=False)
            if r.returncode != 0:
                print(r.stderr, file=sys.stderr)
                raise SystemExit(f"generate failed on the {minutes:g}-minute video")
            stats = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append((minutes, stats, make_s))
            print(f"{minutes:5.1f} min  {w}x{h}: generate {stats['wall']:7.1f} s "
                  f"({stats['wall'] / dur:.3f} s per video second), peak RSS {stats['peak_rss_mb']:7.1f} MB "
                  f"[stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in stats["seconds"].items()) + "]", flush=True)
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        print(f"long-video: peak_rss_ratio={b[1]['peak_rss_mb'] / a[1]['peak_rss_mb']:.2f} "
              f"for {b[0] / a[0]:.0f}x the length ({a[0]:g} -> {b[0]:g} min)")


if __name__ == "__main__":
    main()
