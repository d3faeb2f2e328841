"""What the AAC track of `folai generate` costs, and what the other encoder settings would give.

The video's new audio track is encoded with FFmpeg's native AAC encoder (fast coder, variable bit
rate at quality 4, ``folai.media.AAC_FAST_OPTIONS``; until the seventh session a constant
256 kbit/s, the same options without VBR). This script measures the settings on folai's own output:
the audio that ``folai generate`` renders for each clip (motion timing + sampler, the default
sound and a few presets), encoded by each setting in turn (interleaved, ``--repeat`` rounds).

Prints, per setting: encoder CPU seconds per 10 s of audio (median; the thread's own CPU time, so
other load on the machine matters less), its ratio to the default's, the SNR of the decoded track
against the rendered samples (median and worst, dB), the bit rate the stream actually used, and
a rough audibility measure of the coding noise: the share (%) of audible band-frames (Bark bands
of 46 ms frames, band level over -80 dB re a full-scale sine) where the noise comes within 13 dB
of the signal in that band (``noisy %``, median and worst over the signals; ~13 dB is where noise
stops being masked by a tone in its band), and the 95th percentile of that noise-to-signal ratio
over the band-frames louder than -50 dB (``NSR p95``, dB, median over the signals). A global SNR
is dominated by the loudest hits; the band measure sees the quiet tails and dense textures.

Usage:
    PYTHONPATH=src python benchmarks/bench_aac.py [--clips DIR] [--repeat 3]

``--clips`` takes a folder laid out like ../shared/bench (``*/<id>/GT_<id>.mp4``; only their
pictures are used); without it, generated test videos with known hits are used.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

SR = 44100
PROMPTS = (None, "hitting metal", "glass", "footsteps on gravel", "leaves")


def settings() -> dict[str, tuple[dict, int | None]]:
    from folai.media import AAC_FAST_OPTIONS, aac_bit_rate

    vbr = dict(AAC_FAST_OPTIONS)
    # the constant-rate setting generate used until the seventh session: the same without VBR
    cbr = {k: v for k, v in vbr.items() if k not in ("flags", "global_quality")}
    return {
        "VBR q 4 fast (default)": (vbr, None),
        "CBR 256k fast (until s7)": (cbr, aac_bit_rate(2)),
        "CBR 192k fast": (cbr, 192_000),
        "VBR q 4 fast, M/S forced": ({**vbr, "aac_ms": "1"}, None),
        "CBR 256k two-loop": ({k: v for k, v in cbr.items() if k != "aac_coder"}, aac_bit_rate(2)),
    }


def encode(x: np.ndarray, options: dict, bit_rate: int | None, decoded: list | None = None) -> tuple[float, float, float]:
    """(CPU s, SNR dB, kbit/s) of encoding (2, n) float32 ``x`` to AAC and decoding it back (the
    decoded, aligned (2, m) track is appended to ``decoded`` when given)."""
    import av

    buf = io.BytesIO()
    cpu = 0.0
    nbytes = 0
    with av.open(buf, "w", format="adts") as oc:
        st = oc.add_stream("aac", rate=SR, layout="stereo", options=dict(options))
        if bit_rate:
            st.bit_rate = bit_rate
        frames = []
        for s in range(0, x.shape[1], 4096):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, s : s + 4096]), format="fltp", layout="stereo")
            frame.sample_rate = SR
            frame.time_base = Fraction(1, SR)
            frame.pts = s
            frames.append(frame)
        for frame in [*frames, None]:  # None: flush
            t = time.thread_time()
            packets = st.encode(frame)
            cpu += time.thread_time() - t
            for p in packets:
                nbytes += p.size
                oc.mux(p)
    buf.seek(0)
    with av.open(buf, format="adts") as ic:
        y = np.concatenate([f.to_ndarray() for f in ic.decode(audio=0)], axis=1)
    y = y[:, 1024 : 1024 + x.shape[1]]  # an ADTS stream keeps the encoder's 1024 samples of priming
    ref = x[:, : y.shape[1]].astype(np.float64)
    err = float(np.sum((ref - y) ** 2))
    snr = 10 * np.log10(float(np.sum(ref**2)) / max(err, 1e-20))
    if decoded is not None:
        decoded.append(y)
    return cpu, snr, nbytes * 8 / (x.shape[1] / SR) / 1000


def band_noise(x: np.ndarray, y: np.ndarray, n: int = 2048) -> tuple[float, float]:
    """(share of audible band-frames whose coding noise is within 13 dB of the signal, 95th
    percentile noise-to-signal ratio in dB over the band-frames louder than -50 dB) of decoded
    ``y`` against ``x`` (both (2, m), the channels' mean; Hann frames of ``n``, hop ``n // 2``,
    Bark bands). ``nan`` for the percentile when nothing is that loud."""
    a = x[:, : y.shape[1]].astype(np.float64).mean(axis=0)
    b = y[:, : a.size].astype(np.float64).mean(axis=0)
    win = np.hanning(n)
    starts = np.arange(0, a.size - n + 1, n // 2)
    if starts.size == 0:
        return 0.0, float("nan")
    idx = starts[:, None] + np.arange(n)
    sx = np.fft.rfft(a[idx] * win, axis=1)
    se = np.fft.rfft((a - b)[idx] * win, axis=1)
    f = np.fft.rfftfreq(n, 1 / SR)
    bark = np.floor(13 * np.arctan(0.00076 * f) + 3.5 * np.arctan((f / 7500) ** 2)).astype(int)
    px = np.stack([np.sum(np.abs(sx[:, bark == k]) ** 2, axis=1) for k in range(bark.max() + 1)], axis=1)
    pe = np.stack([np.sum(np.abs(se[:, bark == k]) ** 2, axis=1) for k in range(bark.max() + 1)], axis=1)
    full = (n / 4) ** 2  # a full-scale sine's power in one Hann-windowed frame
    audible = px > full * 1e-8
    nsr = 10 * np.log10((pe + 1e-30) / (px + 1e-30))
    loud = px > full * 1e-5
    share = float(np.mean(nsr[audible] > -13)) if audible.any() else 0.0
    return share, float(np.percentile(nsr[loud], 95)) if loud.any() else float("nan")


def rendered(videos: list[Path], tmp: Path) -> list[tuple[str, np.ndarray]]:
    """folai's audio for each video and prompt: (name, (2, n) float32)."""
    import soundfile as sf

    from folai.pipeline import FoleyPipeline

    pipe = FoleyPipeline()
    out = []
    for v in videos:
        for prompt in PROMPTS:
            name = f"{v.stem} [{prompt or 'default'}]"
            r = pipe.generate(v, tmp / f"{len(out)}.mp4", prompt=prompt, write_video=False, plot=False, progress=False)
            x = sf.read(r.wav, dtype="float32")[0].T
            if np.any(x):
                out.append((name, np.ascontiguousarray(x)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=Path, default=None, help="folder with */<id>/GT_<id>.mp4 (default: generated videos)")
    ap.add_argument("--max-clips", type=int, default=4, help="use at most this many clips (default 4)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds over all settings (default 3)")
    ap.add_argument("--per-signal", action="store_true", help="also print each signal's SNR and bit rate per setting")
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.max_clips < 1:
        ap.error("--repeat and --max-clips must be >= 1")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.clips is not None:
            if not args.clips.is_dir():
                ap.error(f"--clips {args.clips} is not a folder")
            videos = sorted(args.clips.glob("*/*/GT_*.mp4"))[: args.max_clips]
            if not videos:
                ap.error(f"no */<id>/GT_<id>.mp4 clips under {args.clips}")
        else:
            from folai.testing import make_hit_video

            videos = []
            for i in range(args.max_clips):
                rng = np.random.default_rng(i)
                p = tmp / f"hits{i}.mp4"
                hits = np.sort(rng.uniform(0.3, 9.5, 12)).round(2).tolist()
                make_hit_video(p, duration=10.0, hit_times=hits, size=(344, 256), seed=i, with_audio=False)
                videos.append(p)
        signals = rendered(videos, tmp)
        if not signals:
            print("nothing rendered (silent clips?)", file=sys.stderr)
            return 1
        modes = settings()
        res: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
        bands: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
        per: dict[str, dict[str, tuple[float, float, float]]] = {}
        for rep in range(args.repeat):
            order = list(modes) if rep % 2 == 0 else list(modes)[::-1]  # interleaved: drift hits all alike
            for name, x in signals:
                for m in order:
                    opts, br = modes[m]
                    dec: list = []
                    cpu, snr, kbps = encode(x, opts, br, dec if rep == 0 else None)
                    res[m].append((cpu * 10.0 * SR / x.shape[1], snr, kbps))
                    if rep == 0:  # the same bits every round: measured once
                        bands[m].append(band_noise(x, dec[0]))
                        per.setdefault(name, {})[m] = (snr, kbps, 100 * bands[m][-1][0])
    base = statistics.median(c for c, _, _ in res[next(iter(modes))])
    print(f"AAC encoding of folai's rendered audio: {len(signals)} signals (of {len(videos)} clip(s) x {len(PROMPTS)} "
          f"sounds; silent renders skipped), {args.repeat} round(s)")
    print(f"  {'setting':26s} {'CPU s / 10 s':>12s} {'vs default':>10s} {'SNR median':>10s} {'SNR worst':>9s} "
          f"{'kbit/s':>7s} {'noisy % med':>11s} {'noisy % worst':>13s} {'NSR p95':>7s}")
    for m, v in res.items():
        cpu = statistics.median(c for c, _, _ in v)
        shares = [100 * s for s, _ in bands[m]]
        p95 = [p for _, p in bands[m] if p == p]
        print(f"  {m:26s} {cpu:12.3f} {cpu / base:10.2f} {statistics.median(s for _, s, _ in v):10.1f} "
              f"{min(s for _, s, _ in v):9.1f} {statistics.median(k for _, _, k in v):7.0f} "
              f"{statistics.median(shares):11.2f} {max(shares):13.2f} {statistics.median(p95) if p95 else float('nan'):7.1f}")
    print("  SNR: decoded track against the rendered samples; kbit/s: what the stream used (median);")
    print("  noisy %: audible band-frames whose coding noise is within 13 dB of the signal (lower is better);")
    print("  NSR p95: 95th percentile noise-to-signal ratio of the band-frames louder than -50 dB (lower is better)")
    if args.per_signal:
        print("per signal: SNR dB / kbit/s / noisy % for each setting above, in order")
        for name, row in per.items():
            print(f"  {name:40s} " + "  ".join(f"{row[m][0]:5.1f} / {row[m][1]:3.0f} / {row[m][2]:4.1f}" for m in modes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
