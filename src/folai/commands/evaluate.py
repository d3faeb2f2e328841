"""``folai evaluate``: score generated audio against references (paper Table I metrics + onsets)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ._common import number

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generated", required=True, metavar="DIR",
                   help="folder (searched recursively) of generated audio files or videos whose audio track is used")
    p.add_argument("--reference", required=True, metavar="DIR",
                   help="folder of reference (ground-truth) audio files or videos")
    p.add_argument("--videos", metavar="DIR", help="original videos, paired by clip id (needed for FAVD)")
    p.add_argument("--envelopes", metavar="DIR",
                   help="predicted envelopes (CSV time_s,rms or .npy logits (frames, 64)) for env E-L1 and acc@k")
    p.add_argument("--generated-pattern", default="*", metavar="GLOB",
                   help="file-name glob for generated files; the part its wildcards match is the clip id "
                        "(e.g. 'syncfusion_*[0-9].mp4'). "
                        "Default: every media file, id = name without a known prefix such as GT_ or folai-paper_")
    p.add_argument("--reference-pattern", default="*", metavar="GLOB", help="the same for reference files (e.g. 'GT_*.mp4')")
    p.add_argument("--video-pattern", default="*", metavar="GLOB", help="the same for --videos")
    p.add_argument("--envelope-pattern", default="*", metavar="GLOB", help="the same for --envelopes")
    p.add_argument("--allow-missing", action="store_true",
                   help="evaluate the complete pairs only, listing unpaired clips, instead of stopping")
    p.add_argument("--metrics", default="all", metavar="LIST",
                   help="comma-separated: e_l1, onset, envelope, fad_p, fad_c, fad_lc, clap, favd, or all (default). "
                        "Metrics whose weights are not given are skipped with a note")
    p.add_argument("--prompt", metavar="TEXT", help="text prompt for the CLAP text score (LAION-CLAP text vs generated audio)")
    p.add_argument("--tolerance", type=number(above=0.0, high=1.0), default=0.05, metavar="S",
                   help="onset matching tolerance in seconds, above 0 and at most 1 (default 0.05)")
    p.add_argument("--resampler", choices=("polyphase", "soxr"), default="polyphase",
                   help="resampler to 44.1 kHz for E-L1 and onsets (default polyphase; see docs/evaluation.md); "
                        "embedders always resample polyphase from 44.1 kHz to their own rate")
    p.add_argument("--panns-weights", metavar="PATH_OR_URL", help="Wavegram_Logmel_Cnn14_mAP=0.439.pth (FAD-P)")
    p.add_argument("--msclap-weights", metavar="PATH_OR_URL", help="CLAP_weights_2023.pth (FAD-C)")
    p.add_argument("--clap-model", metavar="HUB_ID_OR_DIR", help="LAION-CLAP for transformers.ClapModel (FAD-LC, CLAP)")
    p.add_argument("--vggish-weights", metavar="PATH_OR_URL", help="vggish-10086976.pth (FAVD)")
    p.add_argument("--i3d-weights", metavar="PATH_OR_URL", help="i3d_rgb.pt (FAVD)")
    p.add_argument("--cache", metavar="DIR", help="embedding cache folder (default: none)")
    p.add_argument("--device", default="cpu", help="torch device for the embedders (default cpu)")
    p.add_argument("--name", default=None, help="system name in the report (default: the generated folder's name)")
    p.add_argument("--bootstrap", type=number(int, low=1), default=1000, metavar="N",
                   help="bootstrap resamples, at least 1 (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("-o", "--output", metavar="REPORT",
                   help="write the report: REPORT.md gets markdown, REPORT.json JSON; any other name gets both "
                        "(REPORT.md and REPORT.json). Default: markdown on stdout")
    p.add_argument("--json", action="store_true", help="print JSON instead of markdown on stdout")


def run(args: argparse.Namespace) -> int:
    from ..metrics.evaluate import EvalOptions, evaluate_pairs, parse_metrics
    from ..metrics.pairing import collect, pair_files
    from ..metrics.report import markdown_report
    from ..paths import atomic_output

    references = collect(args.reference, args.reference_pattern, "reference")  # walked once
    pairs, problems = pair_files(
        args.generated, args.reference, args.videos,
        args.generated_pattern, args.reference_pattern, args.video_pattern, allow_missing=args.allow_missing,
        references=references,
    )
    reference_ids = tuple(references)  # (unpaired ones too)
    weights = {k: v for k, v in {
        "panns": args.panns_weights, "msclap": args.msclap_weights, "laion_clap": args.clap_model,
        "vggish": args.vggish_weights, "i3d": args.i3d_weights,
    }.items() if v}
    opts = EvalOptions(
        metrics=parse_metrics(args.metrics), tolerance=args.tolerance, resampler=args.resampler,
        prompt=args.prompt, envelopes=Path(args.envelopes) if args.envelopes else None,
        envelope_pattern=args.envelope_pattern, reference_ids=reference_ids, weights=weights,
        cache_dir=Path(args.cache) if args.cache else None, device=args.device,
        n_boot=args.bootstrap, seed=args.seed,
        system=args.name or Path(args.generated).name, progress=sys.stderr.isatty(),
    )
    rep = evaluate_pairs(pairs, opts)
    rep.notes.extend(f"skipped unpaired: {p}" for p in problems)
    md = markdown_report([rep])
    if args.output:
        out = Path(args.output)
        inputs = [args.generated, args.reference]
        targets = [out] if out.suffix in (".md", ".json") else [out.with_suffix(".md"), out.with_suffix(".json")]
        for t in targets:
            with atomic_output(t, inputs) as tmp:
                tmp.write_text(rep.json() if t.suffix == ".json" else md, encoding="utf-8")
            log.info("wrote %s", t)
    if args.json:
        sys.stdout.write(rep.json() + "\n")
    elif not args.output:
        sys.stdout.write(md)
    return 0
