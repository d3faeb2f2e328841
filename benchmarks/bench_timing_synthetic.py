"""Does the learned timing model learn "when" from motion? A CPU benchmark on synthetic clips.

Generates clips of balls bouncing on textured floors (random sizes, speeds, drop times, floor
materials) plus a silent sliding distractor; each floor impact makes a sound whose loudness
follows the impact. The clips are written as mp4 + wav in the "folder" dataset layout, features are
extracted with the weight-free ``flowstats`` encoder through ``folai.timing.features``, the ``tiny``
VideoEnvelopeNet is trained with ``folai.timing.train.train_timing`` on 2 s chunks, and the
held-out split (whole clips never seen in training) is scored against two baselines:

- majority: always rank the classes by their training frequency (acc@5 of that constant guess);
- mean envelope: predict the per-frame mean training envelope (its E-L1).

Usage: ``PYTHONPATH=src python benchmarks/bench_timing_synthetic.py [--clips 300] [--epochs 40]``
Last line: ``timing-learned: val_acc5=... majority_acc5=... val_el1=... mean_el1=...``
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--size", type=int, default=96, help="video frame size (pixels)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", help="keep the generated data here (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    from folai.data.chunks import VideoFolder
    from folai.data.synthetic import simulate_clip, write_clip
    from folai.data.timing import TimingDataset
    from folai.metrics.timing import acc_at_k, envelope_l1
    from folai.timing.features import extract_folder
    from folai.timing.learned import load_model
    from folai.timing.model import model_config
    from folai.timing.train import evaluate, train_config, train_timing

    tmp = tempfile.TemporaryDirectory()
    work = Path(args.workdir or tmp.name)
    data, feats, run = work / "clips", work / "features", work / "run"
    data.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    n_hits = 0
    for i in range(args.clips):
        clip = simulate_clip(rng, duration=2.0, size=args.size)
        n_hits += len(clip.hits)
        v = data / f"clip{i:04d}.mp4"
        if not v.exists():
            write_clip(clip, v, v.with_suffix(".wav"))
    t_gen = time.time() - t0
    res = extract_folder(data, feats, encoder="flowstats", flow="dis", encoder_options={"image_size": 64},
                         flow_options={"preset": "fast"}, progress=False)
    t_feat = time.time() - t0 - t_gen

    fr = (0.75, 0.25, 0.0)  # whole clips held out for validation
    tr = TimingDataset(VideoFolder(data, "train", chunk_seconds=2.0, seed=args.seed, fractions=fr), feats, progress=False)
    va = TimingDataset(VideoFolder(data, "val", chunk_seconds=2.0, seed=args.seed, fractions=fr), feats, progress=False)
    assert not ({c.video for c in tr.chunks} & {c.video for c in va.chunks}), "train/val overlap"
    mcfg = model_config("tiny", input_dim=tr.feature_dim)
    tcfg = train_config("tiny", epochs=args.epochs, seed=args.seed)
    train_timing(tr, va, run, mcfg, tcfg, device="cpu", progress=False)
    t_train = time.time() - t0 - t_gen - t_feat

    model, _ = load_model(run / "best.safetensors")
    loader = torch.utils.data.DataLoader(va, batch_size=32)
    m = evaluate(model, loader, torch.device("cpu"))
    # baselines from the training split only
    freq = np.bincount(tr.classes.reshape(-1), minlength=64).astype(np.float64)
    prior = np.log(freq + 1e-9)
    const_logits = np.broadcast_to(prior, (*va.classes.shape, 64))
    majority_acc5 = acc_at_k(const_logits, va.classes, k=5)
    mean_env = tr.rms.mean(axis=0, keepdims=True)
    mean_el1 = envelope_l1(np.broadcast_to(mean_env, va.rms.shape), va.rms)
    print(f"clips: {args.clips} ({len(tr)} train / {len(va)} held-out chunks of 2 s), {n_hits} impacts; "
          f"features {res['done']} extracted")
    print(f"time: generate {t_gen:.1f} s, features {t_feat:.1f} s, train {t_train:.1f} s ({args.epochs} epochs)")
    print(f"held-out: acc@1 {m['acc@1']:.3f} acc@5 {m['acc@5']:.3f} acc@10 {m['acc@10']:.3f} "
          f"acc+-1 {m['acc+-1']:.3f} E-L1 {m['el1']:.4f}")
    print(f"timing-learned: val_acc5={m['acc@5']:.3f} majority_acc5={majority_acc5:.3f} "
          f"val_el1={m['el1']:.4f} mean_el1={mean_el1:.4f}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
