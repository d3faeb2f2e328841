"""``folai extract``: cache per-frame video features for the learned timing model."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Extract per-frame features (30 fps) of every video under VIDEOS and cache one .safetensors per "
        "video under --out (same relative paths). Finished videos are skipped, so an interrupted run "
        "can simply be started again. Encoders: tcclip (the paper's, needs an official TC-CLIP "
        "checkpoint), clip (CLIP ViT-B/16 via transformers), flowstats (no weights)."
    )
    p.add_argument("videos", help="a video file or a folder of videos (searched recursively)")
    p.add_argument("--out", required=True, help="feature folder (created)")
    p.add_argument("--pattern", default="*", help="only videos whose file name matches this glob "
                   "(Greatest Hits: '*_denoised.mp4'; default: all videos)")
    p.add_argument("--encoder", default="flowstats", choices=["tcclip", "clip", "flowstats"],
                   help="frame encoder (default flowstats: offline, weight-free)")
    p.add_argument("--encoder-weights", help="tcclip: checkpoint file; clip: hub id or folder "
                   "(default openai/clip-vit-base-patch16)")
    p.add_argument("--streams", default="rgb+flow", choices=["rgb+flow", "rgb"],
                   help="tcclip/clip: RGB and flow images (1024-d, the paper) or RGB only (512-d)")
    p.add_argument("--flow", default="dis", choices=["dis", "raft"],
                   help="optical flow: OpenCV DIS (default, no weights) or RAFT (the paper; needs folai[raft])")
    p.add_argument("--flow-weights", help="RAFT: a raft_large state dict (default: torchvision's weights)")
    p.add_argument("--image-size", type=int, default=128, help="flowstats: frame size for flow (default 128)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30, as the paper)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    p.add_argument("--overwrite", action="store_true", help="recompute even finished videos")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import FolaiError
    from ..timing.features import extract_folder

    if args.encoder == "flowstats":
        enc_opts = {"image_size": args.image_size}
    else:
        enc_opts = {"weights": args.encoder_weights, "streams": args.streams, "device": args.device}
    flow_opts = {"weights": args.flow_weights, "device": args.device} if args.flow == "raft" else {}
    if not Path(args.videos).exists():  # before creating --out: a typo leaves nothing behind
        raise FolaiError(f"video folder not found: {args.videos}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    videos = args.videos
    if args.pattern != "*":
        from ..timing.features import list_videos

        root = Path(args.videos)
        videos = [v for v in list_videos(root) if v.match(args.pattern)]
        if not videos:
            raise FolaiError(f"no videos matching '{args.pattern}' under {root}")
    res = extract_folder(
        videos, args.out, data_root=args.videos if Path(args.videos).is_dir() else None, encoder=args.encoder, flow=args.flow, fps=args.fps,
        encoder_options=enc_opts, flow_options=flow_opts, overwrite=args.overwrite,
    )
    print(f"features in {args.out}: {res['done']} extracted, {res['skipped']} already cached, {res['total']} videos"
          + (f", {res['failed']} unreadable (skipped)" if res["failed"] else ""))
    if res["failed"]:
        # (the others are done: a script sees the failure, and training lists the missing ones)
        raise FolaiError(f"{res['failed']} of {res['total']} videos could not be read; the first: {res['errors'][0]}")
    return 0
