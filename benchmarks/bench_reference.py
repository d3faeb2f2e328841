"""Long reference recordings: how long cutting one into takes takes, and its peak memory.

    python benchmarks/bench_reference.py [--minutes 2 20]

For each length it writes a generated recording (a hit every 0.7 s of random pitch and level over
room noise and a DC offset, 16-bit WAV) and reads it as `--reference` does (the sampler's
`_ReferenceSource`: decode, DC filter, onsets, takes, the texture's grains), each in a fresh
process, twice: as folai does it (the filter and the onset detection in 60 s blocks, the texture's
grains from at most 5 minutes of excerpts), and at once (the same code with the blocks and the
excerpts turned off: the whole recording in one piece, as before the eighth session; the code before
it was slower still, with its per-grain loops). It prints wall time, peak resident memory, the takes
found, and the ratios. Memory includes decoding the whole file (4 bytes a sample, held while it is
cut).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from folai.commands._common import number

CHILD = r"""
import json, resource, sys, time
from folai.synthesis import sampler
if sys.argv[2] == "at-once":
    sampler._REF_BLOCK = sampler._MATERIAL_MAX = 1e9
t = time.perf_counter()
src = sampler._ReferenceSource([sys.argv[1]])
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "takes": len(src.takes), "material_s": src.material.size / sampler.SR}))
"""


def write_recording(path: Path, minutes: float, seed: int = 0) -> None:
    import numpy as np
    import soundfile as sf

    sr = 44100
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * sr)
    t = np.arange(int(0.4 * sr)) / sr
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        block = 60 * sr  # written a minute at a time
        for a in range(0, n, block):
            y = 0.002 * rng.standard_normal(min(block, n - a)) + 0.01
            for p in np.arange(0.1, y.size / sr - 0.45, 0.7):
                k = int(p * sr)
                hit = np.sin(2 * np.pi * rng.uniform(300, 1200) * t) * 0.6 + rng.standard_normal(t.size) * 0.4
                y[k : k + t.size] += hit * np.exp(-t / 0.06) * rng.uniform(0.3, 0.9)
            f.write(y.astype(np.float32))


def run(path: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=number(low=0.05), nargs="+", default=[2.0, 20.0],
                    help="lengths in minutes (at least 0.05: 3 s)")
    args = ap.parse_args()
    print(f"{'minutes':>8} {'mode':>9} {'wall s':>8} {'peak MB':>8} {'takes':>6} {'grain material s':>17}")
    with tempfile.TemporaryDirectory() as d:
        for minutes in args.minutes:
            path = Path(d) / f"ref_{minutes:g}min.wav"
            write_recording(path, minutes)
            r = {mode: run(path, mode) for mode in ("at-once", "blocks")}
            for mode, v in r.items():
                print(f"{minutes:8g} {mode:>9} {v['wall']:8.2f} {v['peak_rss_mb']:8.0f} {v['takes']:6d} {v['material_s']:17.0f}")
            a, b = r["at-once"], r["blocks"]
            print(f"{minutes:8g}   blocks / at once: time {b['wall'] / a['wall']:.2f}x, peak memory "
                  f"{b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
