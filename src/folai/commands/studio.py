"""``folai studio [--host 127.0.0.1] [--port N] [VIDEO]``: the local web app."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", nargs="?", metavar="VIDEO", help="a video to open in the studio (optional; you can upload one in the page)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765; 0 picks a free one)")
    p.add_argument("--timing-checkpoint", metavar="PATH", help="a trained timing model; offers the 'learned' timing backend")
    p.add_argument("--encoder-weights", metavar="PATH_OR_ID",
                   help="the learned timing's frame encoder weights, where not where its features were extracted from")
    p.add_argument("--flow-weights", metavar="PATH",
                   help="the learned timing's RAFT weights file, for features extracted with one")
    p.add_argument("--controlnet", metavar="PATH_OR_ID", help="the envelope ControlNet for the 'stable-audio' synthesis backend")
    p.add_argument("--base", metavar="ID_OR_PATH", help="Stable Audio Open base weights for 'stable-audio' (default: its hub id)")
    p.add_argument("--device", help="torch device for the neural backends (default: cuda if available, else cpu)")
    p.add_argument("--max-upload-mb", type=float, default=512.0, help="largest video upload in MiB (default 512)")
    p.add_argument("--workspace", metavar="DIR", help="folder for session workspaces (default: a temporary folder removed on exit)")


def run(args: argparse.Namespace) -> int:
    from ..errors import FolaiError
    from ..studio import StudioServer, is_loopback
    from ..studio.backends import BackendOptions
    from ..studio.session import Limits

    if args.port < 0 or args.port > 65535:
        raise FolaiError(f"--port must be in 0..65535, got {args.port}")
    if args.max_upload_mb <= 0:
        raise FolaiError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    workspace = None
    if args.workspace:
        from pathlib import Path

        workspace = Path(args.workspace)
        if not workspace.is_dir():
            raise FolaiError(f"--workspace folder does not exist: {workspace}")
    server = StudioServer(
        args.host,
        args.port,
        video=args.video,
        workspace=workspace,
        limits=Limits(video_bytes=int(args.max_upload_mb * 2**20)),
        backend_options=BackendOptions(
            timing_checkpoint=args.timing_checkpoint, controlnet=args.controlnet, base=args.base, device=args.device,
            encoder_weights=args.encoder_weights, flow_weights=args.flow_weights,
        ),
    )
    if not is_loopback(args.host):
        print(
            f"folai studio: warning: listening on {args.host}, so other machines on the network can use this studio",
            file=sys.stderr,
        )
    print(f"folai studio: open {server.url} in a browser (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
