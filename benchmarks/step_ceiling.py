"""How high can onset F1 go on footstep clips if each step makes one sound? An oracle bound.

    python benchmarks/step_ceiling.py --clips ../shared/bench [--dataset wtm]

For each ``<dataset>/<id>/GT_<id>.mp4`` (layout of ``shared/bench``) it detects the onsets of the
recorded audio as ``bench_clips.py`` does (librosa, the same settings) and searches, *with the
answer in hand*, the perfectly regular step train (a cadence within the footsteps tracker's range,
``GaitConfig.min_cadence``-``max_cadence`` = 1.3-3.6 steps/s, and a phase, on a 5 ms grid) that
scores the highest onset F1 (+-50 ms, one-to-one) against them. A tracker that puts one sound on
each step at a steady cadence in that range cannot beat that figure on the clip, however well it
follows the walker (the bound may pick a faster cadence than the walker's when that matches more
of a dense recording's onsets). It does the same for steps of two and of three sounds (a second and third
transient 60-150 ms after the first: heel-toe, a crunch of gravel), and prints the recordings'
onset count and each bound per clip, and their means.

On the 5 Walking The Maps clips of the paper's demo page, 4 of the recordings hold 16-17 onsets in
2 s (continuous crunching), which bounds one sound per step well below 1 there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def best_train(onsets: np.ndarray, duration: float, per_step: int, periods=None,
               gaps=(0.06, 0.09, 0.12, 0.15)) -> tuple[float, tuple]:
    """(best F1, (period, phase, gap)) of a regular train of steps of ``per_step`` sounds;
    ``periods`` default: the footsteps tracker's cadence range, 5 ms apart."""
    from folai.metrics.sync import onset_prf_times
    from folai.timing._gait import GaitConfig

    if periods is None:
        cfg = GaitConfig()
        periods = np.arange(1.0 / cfg.max_cadence, 1.0 / cfg.min_cadence + 1e-9, 0.005)

    best, arg = 0.0, ()
    for per in periods:
        for ph in np.arange(0.0, per, 0.005):
            steps = np.arange(ph, duration, per)
            for gap in (gaps if per_step > 1 else (0.0,)):
                ev = np.sort(np.concatenate([steps + k * gap for k in range(per_step)]))
                ev = ev[ev < duration]
                f = onset_prf_times(onsets, ev).f1
                if f > best:
                    best, arg = f, (round(float(per), 3), round(float(ph), 3), gap)
    return best, arg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", required=True, type=Path, help="folder with <dataset>/<id>/GT_<id>.mp4")
    ap.add_argument("--dataset", default="wtm", help="sub-folder to read (default wtm)")
    args = ap.parse_args(argv)
    from folai.metrics.audio import load_audio
    from folai.metrics.sync import detect_onsets

    root = args.clips / args.dataset
    if not root.is_dir():
        ap.error(f"no folder {root}")
    clips = sorted(root.glob("*/GT_*.mp4"), key=lambda p: (len(p.parent.name), p.parent.name))
    if not clips:
        ap.error(f"no <id>/GT_<id>.mp4 under {root}")
    rows = []
    print(f"{'clip':>8s} {'onsets':>6s} {'1 sound/step':>12s} {'2 sounds':>9s} {'3 sounds':>9s}   (best period, phase, gap for 1)")
    for p in clips:
        ref = load_audio(p, 44100)
        dur = len(ref) / 44100
        on = detect_onsets(ref, 44100)
        b = [best_train(on, dur, k) for k in (1, 2, 3)]
        rows.append([x[0] for x in b])
        print(f"{args.dataset}/{p.parent.name:>4s} {len(on):6d} {b[0][0]:12.2f} {b[1][0]:9.2f} {b[2][0]:9.2f}   {b[0][1][:2]}")
    m = np.mean(rows, axis=0)
    print(f"{'mean':>8s} {'':6s} {m[0]:12.3f} {m[1]:9.3f} {m[2]:9.3f}")
    print("oracle bounds: the best perfectly regular step train per clip, chosen with the recording's onsets known")
    return 0


if __name__ == "__main__":
    sys.exit(main())
