"""Score every published system's clips in shared/bench with ``folai evaluate``'s library and
print the table side by side with the figures published in shared/bench/README.md.

    PYTHONPATH=src python benchmarks/bench_evaluate.py [--bench ../shared/bench] [--json OUT.json]

Each system is one ``folai evaluate`` run; the equivalent command for SyncFusion is

    folai evaluate --generated BENCH/gh --reference BENCH/gh \\
        --generated-pattern 'syncfusion_*[0-9].mp4' --reference-pattern 'GT_*.mp4' --name SyncFusion

Weight-needing metrics (FAD-*, CLAP, FAVD) are skipped here (no weights on this machine); pass
``--weights`` options through ``folai evaluate`` to compute them.
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
    a = ap.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
