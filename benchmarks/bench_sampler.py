"""Speed and accuracy of the offline ``sampler`` synthesis backend.

    PYTHONPATH=src python benchmarks/bench_sampler.py                 # speed, 10 s and 60 s envelopes
    PYTHONPATH=src python benchmarks/bench_sampler.py --clips ../shared/bench

Speed: render time of a synthetic envelope (hits every ~0.4 s plus scratches), printed as
"x real time" (seconds of audio per second of compute), for 10 s and 60 s.

With ``--clips DIR`` (laid out like ``shared/bench``: ``<set>/<id>/GT_<id>.mp4``) it also runs the
oracle test of stage 2 alone: the SPEC envelope of each recorded clip is rendered back by the
sampler (prompt from ``--prompt``, footsteps for the ``wtm`` set) and the render is scored against
the recording with the evaluation E-L1 and onset F1 (+-50 ms) of ``folai.metrics.sync``. This is
the ceiling stage 2 can reach given a perfect stage 1.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from folai.envelope import Envelope
from folai.synthesis.sampler import SamplerSynth


def synthetic_envelope(seconds: float, seed: int = 0) -> Envelope:
    rng = np.random.default_rng(seed)
    env = Envelope.zeros(seconds)
    t = 0.2
    while t < seconds - 0.2:
        env = env.add_event(t, float(rng.uniform(0.05, 0.3)), decay=float(rng.uniform(0.03, 0.15)))
        t += float(rng.uniform(0.25, 0.6))
    # a few sustained scratches
    for s in np.arange(1.0, seconds - 1.0, 5.0):
        env = env.draw([s, s + 0.1, s + 0.7, s + 0.8], [0.0, 0.05, 0.05, 0.0])
    return Envelope.from_audio(env.to_audio_rate(16000, channels=1)[0] * np.random.default_rng(seed).standard_normal(int(round(seconds * 16000))), 16000)


def bench_speed(prompt: str, repeat: int = 5) -> None:
    """Render time of a fresh backend (as in a new ``folai generate``), best of ``repeat``; and with
    ``prepare()`` run first (the pipeline runs it during stage 1)."""
    SamplerSynth().render(synthetic_envelope(2.0), duration=2.0, prompt=prompt, progress=False)  # imports
    for seconds in (10.0, 60.0):
        env = synthetic_envelope(seconds)
        for prepared in (False, True) if hasattr(SamplerSynth, "prepare") else (False,):
            best, audio = float("inf"), None
            for _ in range(repeat if seconds <= 10 else 2):
                synth = SamplerSynth()
                if prepared:
                    synth.prepare(duration=seconds, prompt=prompt, references=[], seed=0)
                t0 = time.perf_counter()
                audio = synth.render(env, duration=seconds, prompt=prompt, progress=False)
                best = min(best, time.perf_counter() - t0)
            print(f"render {seconds:5.1f} s ({prompt}{', prepared' if prepared else ''}): {best:6.3f} s compute, "
                  f"{seconds / best:6.1f}x real time, peak {np.abs(audio).max():.3f}")


def _read_mp4_audio(path: Path) -> tuple[np.ndarray, int]:
    try:
        from folai.media import read_audio

        return read_audio(path, sr=44100, channels=1)[0], 44100
    except ImportError:
        import av

        with av.open(str(path)) as c:
            s = c.streams.audio[0]
            a = np.concatenate([f.to_ndarray() for f in c.decode(s)], axis=-1).astype(np.float32)
            return a.mean(axis=0), s.rate


def bench_clips(root: Path, prompt: str, seed: int) -> None:
    from folai.metrics.sync import e_l1, onset_prf

    synth = SamplerSynth()
    rows = []
    for gt in sorted(root.glob("*/*/GT_*.mp4")):
        y, sr = _read_mp4_audio(gt)
        env = Envelope.from_audio(y, sr)
        p = "footsteps" if gt.parent.parent.name == "wtm" else prompt
        t0 = time.perf_counter()
        audio = synth.render(env, duration=len(y) / sr, prompt=p, seed=seed, progress=False)
        dt = time.perf_counter() - t0
        el1 = e_l1(audio, y, sr=44100, ref_sr=sr)
        on = onset_prf(audio, y, sr=44100, ref_sr=sr)
        rows.append((gt.parent.parent.name, gt.stem, el1, on.precision, on.recall, on.f1, dt))
    print(f"{'set':4} {'clip':8} {'E-L1':>7} {'P':>5} {'R':>5} {'F1':>5} {'sec':>5}")
    for r in rows:
        print(f"{r[0]:4} {r[1]:8} {r[2]:7.4f} {r[3]:5.2f} {r[4]:5.2f} {r[5]:5.2f} {r[6]:5.2f}")
    gh = [r for r in rows if r[0] == "gh"]
    if gh:
        print(f"gh mean: E-L1 {np.mean([r[2] for r in gh]):.4f}  onset F1 {np.mean([r[5] for r in gh]):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=Path, help="folder laid out like shared/bench for the oracle test")
    ap.add_argument("--prompt", default="a person hits wood with a stick")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args()
    if not args.no_speed:
        bench_speed(args.prompt)
    if args.clips:
        bench_clips(args.clips, args.prompt, args.seed)


if __name__ == "__main__":
    main()
