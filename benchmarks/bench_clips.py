"""Measured on real clips: folai generate beside the published systems, and its speed.

    python benchmarks/bench_clips.py --clips ../shared/bench [--out DIR] [--repeat 3] [--widths 120,136]
                                     [--frame-step 2]

``--clips DIR`` is laid out like ``shared/bench``: ``gh/<id>/`` (Greatest Hits) and ``wtm/<id>/``
(Walking The Maps) folders, each with ``GT_<id>.mp4`` (the video with its recorded audio) and
optionally published systems' outputs ``<system>_<id>[_<variant>].mp4``. The paper's demo page
holds 13 Greatest Hits and 5 Walking The Maps clips in that layout (``ours_`` is the paper's
system): ``git clone -b gh-page https://github.com/ispamm/Stable-V2A`` then
``--clips Stable-V2A/assets/samples``.

For each clip it strips the audio from ``GT_<id>.mp4`` (:func:`folai.media.strip_audio`), runs
``folai generate`` on the silent video through the library pipeline (``--prompt footsteps`` for
wtm; ``--gh-prompt`` for gh, default: none, the sampler's default sound), and scores the generated
audio against the recorded one with :mod:`folai.metrics.sync`: E-L1 (SPEC evaluation definition:
mono 44.1 kHz, librosa RMS 512/128 centred/reflect, mean absolute difference, generated audio
zero-padded or cut to the recording's length) and onset precision / recall / F1 within +-50 ms
(librosa onset detection on both, greedy one-to-one matching). Every published system's file in
the clip folders is scored the same way. It prints one table per dataset (mean over the clips a
system has) and the speed: ``folai generate`` wall time vs the time PyAV needs merely to decode
the same video (all frames, default decoder settings, no conversion), both measured in this run,
interleaved, best of ``--repeat``. A ``(silence)`` row scores an all-zero track: E-L1 measures
loudness as well as timing, so a quiet output does well on it, and a system's E-L1 means little
unless it beats silence's. ``--widths`` also runs the motion timing at other analysis widths
(pixels; the default is 128) and prints folai's onset F1 at each, and the mean and range over
them: how much the figures move under a change that should not matter (a few real clips' F1
moves by several hundredths). ``--frame-step N`` keeps every Nth frame of each silent clip
(re-encoded at 1/N of its rate): the same clips as a 15 or 10 fps video would show them. Each timed generate starts like a fresh ``folai generate``
process would: a new pipeline (no synthesis plan cached) and no remembered probe of the video.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

DATASETS = {"gh": "Greatest Hits", "wtm": "Walking The Maps"}


def decode_only(path: Path) -> tuple[float, float]:
    """(wall, CPU) seconds PyAV takes to decode every video frame of ``path`` (no conversion)."""
    import av

    t, c0 = time.perf_counter(), time.process_time()
    with av.open(str(path)) as c:
        for _ in c.decode(video=0):
            pass
    return time.perf_counter() - t, time.process_time() - c0


def score(generated: np.ndarray, sr: int, reference: np.ndarray) -> dict[str, float]:
    from folai.metrics.sync import e_l1, onset_prf

    o = onset_prf(generated, reference, sr=sr, ref_sr=44100)
    return {"el1": e_l1(generated, reference, sr=sr, ref_sr=44100), "p": o.precision, "r": o.recall, "f1": o.f1}


def system_name(stem: str, clip_id: str) -> str | None:
    """``syncfusion_20_text`` -> ``syncfusion_text``; ``ours_20`` (the paper's demo page name for its
    own system) -> ``folai-paper``; ``GT_20`` -> None."""
    if stem.startswith("GT_"):
        return None
    m = re.fullmatch(rf"(.+?)_{re.escape(clip_id)}(_.+)?", stem)
    if not m:
        return stem
    name = "folai-paper" if m.group(1) == "ours" else m.group(1)
    return name + (m.group(2) or "")


def _every_nth_frame(path: Path, step: int) -> None:
    """Re-encode ``path`` in place with every ``step``-th frame, at 1/step of its frame rate (the
    frames keep their times; H.264 at a constant quantiser, so that every run gets the same file)."""
    from fractions import Fraction

    import av

    tmp = path.with_name(path.stem + f".step{step}.mp4")
    with av.open(str(path)) as cin, av.open(str(tmp), "w") as cout:
        vs = cin.streams.video[0]
        rate = Fraction(vs.average_rate) / step
        # a constant quantiser: x264's CRF rate control gave slightly different pictures run to run
        out = cout.add_stream("libx264", rate=rate, options={"qp": "18", "preset": "veryfast"})
        out.width, out.height, out.pix_fmt = vs.codec_context.width, vs.codec_context.height, "yuv420p"
        out.codec_context.time_base = 1 / rate
        for k, frame in enumerate(cin.decode(vs)):
            if k % step:
                continue
            f = frame.reformat(format="yuv420p")
            f.pts, f.time_base = k // step, 1 / rate
            for pkt in out.encode(f):
                cout.mux(pkt)
        for pkt in out.encode():
            cout.mux(pkt)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", required=True, type=Path, help="folder with gh/<id>/ and wtm/<id>/ clip folders")
    ap.add_argument("--out", type=Path, default=None, help="keep the generated files here (default: a temp folder)")
    ap.add_argument("--repeat", type=int, default=3, help="timing runs per clip (best of) (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gh-prompt", default=None, help="prompt for Greatest Hits clips (default: none)")
    ap.add_argument("--wtm-prompt", default="footsteps", help="prompt for Walking The Maps clips (default: footsteps)")
    ap.add_argument("--no-published", action="store_true", help="score folai only")
    ap.add_argument("--widths", default="", help="comma-separated analysis widths (px) to also run the motion "
                    "timing at: the figures' sensitivity (default: none)")
    ap.add_argument("--frame-step", type=int, default=1, metavar="N",
                    help="keep every Nth frame of each clip (re-encoded, H.264): the same clips at 1/N of their "
                    "frame rate (2: 30 -> 15 fps), to measure low frame rates (default 1: as they are)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        widths = [int(w) for w in args.widths.split(",") if w.strip()]
    except ValueError:
        ap.error(f"--widths takes comma-separated whole numbers of pixels, got {args.widths!r}")
    if any(w < 16 for w in widths):
        ap.error("--widths: each width must be at least 16 px")
    if args.frame_step < 1:
        ap.error(f"--frame-step must be a whole number >= 1, got {args.frame_step}")

    from folai.media import read_audio, strip_audio
    from folai.metrics.audio import load_audio
    from folai.pipeline import FoleyPipeline, output_paths

    if not args.clips.is_dir():
        raise SystemExit(f"--clips {args.clips} is not a folder")
    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="folai-bench-")
        out_dir = Path(tmp.name)
    else:
        out_dir = args.out
        out_dir.mkdir(parents=True, exist_ok=True)

    from folai.media import probe_video

    results: dict[str, dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    speed_rows = []
    per_clip = []
    sens: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))  # ds -> width -> F1s
    for ds, ds_name in DATASETS.items():
        root = args.clips / ds
        if not root.is_dir():
            continue
        clips = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: (len(d.name), d.name))
        prompt = args.gh_prompt if ds == "gh" else args.wtm_prompt
        for clip in clips:
            cid = clip.name
            gt = clip / f"GT_{cid}.mp4"
            if not gt.exists():
                print(f"skip {clip}: no GT_{cid}.mp4", file=sys.stderr)
                continue
            ref = load_audio(gt, 44100)  # scored exactly as `folai evaluate` loads audio
            silent = out_dir / f"{ds}_{cid}.silent.mp4"
            if silent.exists():
                silent.unlink()
            strip_audio(gt, silent)
            if args.frame_step > 1:
                _every_nth_frame(silent, args.frame_step)
            out = out_dir / f"{ds}_{cid}.foley.mp4"
            dec_t, gen_t, dec_c, gen_c, stages = [], [], [], [], None
            for rep in range(max(1, args.repeat)):
                w, c = decode_only(silent)
                dec_t.append(w)
                dec_c.append(c)
                for f in output_paths(out).values():  # generate never overwrites: clear the last run
                    if f.exists():
                        f.unlink()
                getattr(probe_video, "cache_clear", lambda: None)()  # as in a fresh process: nothing known
                t, c0 = time.perf_counter(), time.process_time()
                pipe = FoleyPipeline()  # (module imports are not timed: done by the first run)
                res = pipe.generate(silent, out, prompt=prompt, seed=args.seed, progress=False)
                gen_t.append(time.perf_counter() - t)
                gen_c.append(time.process_time() - c0)
                if stages is None or gen_t[-1] <= min(gen_t):
                    stages = dict(res.seconds)
            audio = read_audio(res.wav, 44100, channels=2)
            s = score(audio, 44100, ref)
            results[ds]["folai"].append(s)
            per_clip.append((ds, cid, "folai", s))
            # a sanity floor: an all-silent track. E-L1 rewards quiet output, so every figure needs it beside
            results[ds]["(silence)"].append(score(np.zeros((2, ref.shape[-1]), np.float32), 44100, ref))
            speed_rows.append((ds, cid, res.duration, min(dec_t), min(gen_t), min(dec_c), min(gen_c), stages))
            sens[ds][128].append(s["f1"])
            for w in widths:
                if w == 128:
                    continue
                pw = FoleyPipeline(timing_options={"width": w})
                env_w = pw.estimate(silent, progress=False, prompt=prompt).envelope.fit(res.duration)
                y_w = pw.render(env_w, res.duration, prompt=prompt, seed=args.seed, progress=False)
                sens[ds][w].append(score(y_w, 44100, ref)["f1"])
            if not args.no_published:
                for f in sorted(clip.glob("*.mp4")):
                    name = system_name(f.stem, cid)
                    if name is None:
                        continue
                    try:
                        y = load_audio(f, 44100)
                    except Exception as e:  # a broken published file: report, go on
                        print(f"skip {f}: {e}", file=sys.stderr)
                        continue
                    s2 = score(y, 44100, ref)
                    results[ds][name].append(s2)
                    per_clip.append((ds, cid, name, s2))

    print()
    for ds, systems in results.items():
        n_clips = len(systems["folai"])
        print(f"{DATASETS[ds]} ({ds}, {n_clips} clip{'s' if n_clips != 1 else ''}): mean over the clips each system has")
        print(f"  {'system':<22} {'clips':>5} {'E-L1':>8} {'onset P':>8} {'onset R':>8} {'onset F1':>8}")
        order = ["folai"] + sorted((k for k in systems if k != "folai"),
                                   key=lambda k: np.mean([r["el1"] for r in systems[k]]))
        for name in order:
            rows = systems[name]
            m = {k: float(np.mean([r[k] for r in rows])) for k in ("el1", "p", "r", "f1")}
            print(f"  {name:<22} {len(rows):>5} {m['el1']:>8.4f} {m['p']:>8.2f} {m['r']:>8.2f} {m['f1']:>8.2f}")
        print()
    if widths:
        print("sensitivity: folai onset F1 at other analysis widths of the motion timing (default 128 px)")
        for ds, by_w in sens.items():
            ws = sorted(by_w)
            means = [float(np.mean(by_w[w])) for w in ws]
            print(f"  {DATASETS[ds]}: " + ", ".join(f"{w} px {m:.3f}" for w, m in zip(ws, means))
                  + f"; mean {np.mean(means):.3f}, range {min(means):.3f}-{max(means):.3f}")
        print()
    print("per clip (folai): " + ", ".join(f"{ds}/{cid} E-L1 {s['el1']:.4f} F1 {s['f1']:.2f}"
                                          for ds, cid, name, s in per_clip if name == "folai"))
    print()
    print(f"speed (best of {args.repeat}, same run, same machine): folai generate vs PyAV decode-only of the same video")
    print("  wall = elapsed seconds; cpu = CPU seconds of all threads (less sensitive to other load on the machine)")
    print(f"  {'clip':<10} {'video s':>7} {'decode':>7} {'generate':>8} {'ratio':>6} {'cpu dec':>8} {'cpu gen':>8} {'ratio':>6}   stages (wall s)")
    for ds, cid, dur, dec, gen, cdec, cgen, stages in speed_rows:
        st = ", ".join(f"{k} {v:.3f}" + (f" ({v / dec:.2f}x decode)" if k == "timing" else "")
                       for k, v in (stages or {}).items())
        print(f"  {ds + '/' + cid:<10} {dur:>7.2f} {dec:>7.3f} {gen:>8.3f} {gen / dec:>6.2f} {cdec:>8.3f} {cgen:>8.3f} "
              f"{cgen / cdec:>6.2f}   {st}")
    ten = [(gen / dec, cgen / cdec) for ds, cid, dur, dec, gen, cdec, cgen, _ in speed_rows if dur >= 9.5]
    if ten:
        print(f"  clips of 10 s or more: generate / decode wall ratio mean {np.mean([r[0] for r in ten]):.2f}, "
              f"worst {max(r[0] for r in ten):.2f} (target <= 2.5); cpu ratio mean {np.mean([r[1] for r in ten]):.2f}")
    print("  stages: timing = stage 1 (decode + optical flow); synthesis = rendering (WAV/CSV written by a thread "
          "alongside); encode = AAC thread, alongside synthesis; mux = what is left after the plot")
    try:
        import os

        print(f"  load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    except OSError:
        pass
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
