"""``folai strip-audio`` and ``folai mux``: thin wrappers of :func:`folai.media.strip_audio` and
:func:`folai.media.mux_audio` (the video stream is copied, never re-encoded)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments_strip_audio(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="input video (any container PyAV reads)")
    p.add_argument("-o", "--output", required=True, help="output video: .mp4, .m4v, .mov or .mkv (not the input)")


def run_strip_audio(args: argparse.Namespace) -> int:
    from ..media import strip_audio

    out = strip_audio(args.video, args.output)
    log.info("wrote %s", out)
    return 0


def add_arguments_mux(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="input video; its video stream is copied packet for packet")
    p.add_argument("audio", help="audio file to put on it (wav, flac, mp3, m4a, or a video's audio track)")
    p.add_argument("-o", "--output", required=True, help="output video: .mp4, .m4v, .mov or .mkv (not an input)")
    p.add_argument(
        "--keep-audio", action="store_true",
        help="keep the video's own audio tracks and add the new one after them (default: replace them)",
    )
    p.add_argument(
        "--codec", default=None,
        help="audio codec (default aac; pcm_s16le/pcm_s24le/pcm_f32le in .mov/.mkv, flac, alac, libopus in .mkv, mp3)",
    )
    p.add_argument("--sr", type=int, default=None, help="resample the audio to this rate (default: keep)")


def run_mux(args: argparse.Namespace) -> int:
    from ..media import mux_audio

    out = mux_audio(args.video, args.audio, args.output, sr=args.sr, codec=args.codec, keep_existing=args.keep_audio)
    log.info("wrote %s", out)
    return 0
