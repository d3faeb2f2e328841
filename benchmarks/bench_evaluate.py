"""Score every published system's clips in shared/bench with ``folai evaluate``'s library and
print the table side by side with the figures published in shared/bench/README.md.

    PYTHONPATH=src python benchmarks/bench_evaluate.py [--bench ../shared/bench] [--json OUT.json]

Each system is one ``folai evaluate`` run; the equivalent command for SyncFusion is

    folai evaluate --generated BENCH/gh --reference BENCH/gh \\
        --generated-pattern 'syncfusion_*[0-9].mp4' --reference-pattern 'GT_*.mp4' --name SyncFusion

Weight-needing metrics (FAD-*, CLAP, FAVD) are skipped here (no weights on this machine); pass
the weights options of ``folai evaluate`` to compute them.

``--verify-against DIR`` instead checks the embedders against their reference implementations at
full size: DIR holds clones of qiuqiangkong/audioset_tagging_cnn, microsoft/CLAP,
v-iashin/video_features and harritaylor/torchvggish (``torchlibrosa`` installed); each reference
model gets random weights, they are loaded into folai's module by its strict key mapping, and the
outputs on the same input are compared (no published weights needed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from folai.metrics.evaluate import EvalOptions, evaluate_pairs
from folai.metrics.pairing import pair_files
from folai.metrics.report import markdown_report

# system, file prefix, published E-L1, published onset F1 (shared/bench/README.md)
SYSTEMS = [
    ("SyncFusion", "syncfusion", 0.0121, 0.57),
    ("FolAI (paper)", "folai-paper", 0.0133, 0.38),
    ("Video-Foley", "videofoley", 0.0157, 0.14),
    ("CondFoleyGen", "condfoleygen", 0.0275, 0.33),
    ("Diff-Foley", "difffoley", 0.0365, 0.12),
    ("SpecVQGAN", "specvqgan", 0.0465, 0.16),
]
TEXT = [("FolAI (paper), text", "folai-paper"), ("SyncFusion, text", "syncfusion"), ("Video-Foley, text", "videofoley")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=str(Path(__file__).resolve().parents[3] / "shared" / "bench"))
    ap.add_argument("--resampler", default="polyphase", choices=("polyphase", "soxr"))
    ap.add_argument("--json", help="write all reports as JSON here")
    ap.add_argument("--verify-against", metavar="DIR", help="compare the embedders with reference clones in DIR")
    a = ap.parse_args(argv)
    if a.verify_against:
        return verify_embedders(Path(a.verify_against))
    bench = Path(a.bench)
    if not (bench / "gh").is_dir():
        bench = Path("/work/shared/bench")
    metrics = ("e_l1", "onset")
    reports, rows, ok = [], [], True
    t0 = time.time()
    for dataset in ("gh", "wtm"):
        root = bench / dataset
        if not root.is_dir():
            continue
        entries = [(n, f"{p}_*[0-9].mp4", p, e, f) for n, p, e, f in SYSTEMS]
        entries += [(n, f"{p}_*_text.mp4", p, None, None) for n, p in TEXT]
        for name, pattern, prefix, pub_el1, pub_f1 in entries:
            if not any(root.rglob(pattern)):
                continue
            pairs, _ = pair_files(root, root, generated_pattern=pattern, reference_pattern="GT_*.mp4", allow_missing=True)
            rep = evaluate_pairs(pairs, EvalOptions(metrics=metrics, system=f"{name} [{dataset}]", resampler=a.resampler))
            reports.append(rep)
            el1 = rep.results["e_l1"].value
            f1 = rep.results["onset_f1"].value if "onset_f1" in rep.results else float("nan")
            if dataset == "gh" and pub_el1 is not None:
                match = abs(round(el1, 4) - pub_el1) < 1e-9 and abs(round(f1, 2) - pub_f1) < 1e-9
                ok &= match
                rows.append((f"{name} [{dataset}]", len(pairs), el1, pub_el1, f1, pub_f1, "yes" if match else "NO"))
            else:
                rows.append((f"{name} [{dataset}]", len(pairs), el1, None, f1, None, ""))
    print("| system | clips | E-L1 | published E-L1 | onset F1 (±50 ms) | published F1 | reproduced |")
    print("|---|---|---|---|---|---|---|")
    for n, c, e, pe, f, pf, m in rows:
        print(f"| {n} | {c} | {e:.4f} | {'' if pe is None else f'{pe:.4f}'} | {f:.3f} | {'' if pf is None else f'{pf:.2f}'} | {m} |")
    print()
    print(markdown_report(reports))
    print(f"({time.time() - t0:.1f} s; resampler {a.resampler}; all published figures reproduced: {ok})")
    if a.json:
        Path(a.json).write_text(json.dumps([r.to_json() for r in reports], indent=2))
    return 0 if ok else 1


def _randomize(module, seed=1):
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.state_dict().items():
            if not p.dtype.is_floating_point or "extractor" in name:
                continue  # keep the STFT / mel front ends as built
            p.copy_(torch.rand(p.shape, generator=g) + 0.5 if "running_var" in name else torch.randn(p.shape, generator=g) * 0.05)


def verify_embedders(root: Path) -> int:
    """Full-size equivalence with the reference implementations (same random weights, same input)."""
    import importlib
    import types

    import numpy as np
    import torch

    from folai.metrics.embedders import i3d, msclap, panns, vggish
    from folai.metrics.embedders.base import load_strict

    torch.manual_seed(0)
    rows = []

    def report(name, a, b):
        d = float((a - b).abs().max()) if hasattr(a, "abs") else float(np.abs(a - b).max())
        scale = float(a.abs().max()) if hasattr(a, "abs") else float(np.abs(a).max())
        rows.append((name, d, scale))

    def package(name, folder):  # import a reference folder as a package without running its __init__
        mod = types.ModuleType(name)
        mod.__path__ = [str(folder)]
        sys.modules[name] = mod
        return name

    sys.path[:0] = [str(root / "audioset_tagging_cnn" / "pytorch")]
    ref_panns = importlib.import_module("models").Wavegram_Logmel_Cnn14(32000, 1024, 320, 64, 50, 14000, 527).eval()
    _randomize(ref_panns)
    mine = panns.WavegramLogmelCnn14().eval()
    load_strict(mine, ref_panns.state_dict(), "PANNs")
    x = torch.randn(1, 96000) * 0.1
    with torch.no_grad():
        report("PANNs Wavegram-Logmel-Cnn14 embedding", ref_panns(x)["embedding"], mine(x)["embedding"])

    ref_i3d = importlib.import_module(package("_ref_i3d", root / "video_features/models/i3d/i3d_src") + ".i3d_net").I3D(400, "rgb").eval()
    _randomize(ref_i3d)
    mine = i3d.I3D().eval()
    load_strict(mine, ref_i3d.state_dict(), "I3D")
    v = torch.rand(1, 3, 24, 224, 224) * 2 - 1
    with torch.no_grad():
        report("I3D RGB features", ref_i3d(v, features=True), mine(v, features=True))

    sys.modules.setdefault("resampy", types.ModuleType("resampy"))  # only used for resampling, not here
    pkg = package("_ref_vggish", root / "torchvggish/torchvggish")
    tv = importlib.import_module(pkg + ".vggish")
    vin = importlib.import_module(pkg + ".vggish_input")
    ref_vgg = tv.VGG(tv.make_layers()).eval()
    _randomize(ref_vgg)
    mine = vggish.VGGish().eval()
    load_strict(mine, ref_vgg.state_dict(), "VGGish")
    y = np.random.default_rng(0).standard_normal(48000) * 0.1
    ex = vggish.log_mel_examples(y)
    report("VGGish log-mel examples", vin.waveform_to_examples(y, 16000, return_tensor=False), ex)
    with torch.no_grad():
        t = torch.tensor(ex)[:, None]
        report("VGGish embeddings", ref_vgg(t), mine(t))

    ref_h = importlib.import_module(package("_ref_msclap", root / "CLAP/msclap/models") + ".htsat").HTSATWrapper(44100, 1024, 320, 64, 50, 8000, 527, 768).eval()
    _randomize(ref_h)
    mine = msclap.MSClapAudioEncoder().eval()
    sd = {"base." + k: val for k, val in ref_h.state_dict().items()}
    sd.update({k: val for k, val in mine.state_dict().items() if k.startswith("projection.")})
    load_strict(mine, sd, "MS-CLAP HTSAT")
    x = torch.randn(1, 44100 * 7) * 0.1
    with torch.no_grad():
        report("MS-CLAP 2023 HTSAT latent", ref_h(x)["embedding"], mine.base.htsat(x))

    print("| model | max abs difference | output scale |")
    print("|---|---|---|")
    for name, d, scale in rows:
        print(f"| {name} | {d:.3g} | {scale:.3g} |")
    return 0 if all(d <= 1e-4 * max(1.0, s) for _, d, s in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
