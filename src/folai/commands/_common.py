"""Argument groups shared by generate / envelope / render."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..errors import FolaiError

log = logging.getLogger(__name__)


def number(kind: type = float, *, low: float | None = None, high: float | None = None, above: float | None = None):
    """An argparse ``type``: a finite ``kind`` (int or float) within the bounds, or a one-line
    usage error saying what was expected (``nan``, ``inf`` and out-of-range values had reached the
    code as internal errors or endless runs)."""
    import math

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got '{text}'") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
        if above is not None and not v > above:
            raise argparse.ArgumentTypeError(f"expected a value above {above:g}, got '{text}'")
        if low is not None and v < low:
            raise argparse.ArgumentTypeError(f"expected at least {low:g}, got '{text}'")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"expected at most {high:g}, got '{text}'")
        return v

    parse.__name__ = kind.__name__  # (argparse names the type in its messages)
    return parse


def prompt_text(text: str) -> str:
    """An argparse ``type`` for ``--prompt``: an empty one ('' as '  ', say a script's unset
    variable) is a usage error; '' had given the default sound silently and '  ' an error."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "the sound prompt is empty; describe the sound (e.g. 'hitting wood with a stick') or leave --prompt "
            "out for the default sound"
        )
    return text


def parse_roi(text: str | None) -> tuple[int, int, int, int] | None:
    if text is None:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise FolaiError(f"--roi expects x,y,w,h in pixels (four integers), got '{text}'") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise FolaiError(f"--roi needs x,y >= 0 and w,h > 0, got '{text}'")
    return (x, y, w, h)


def add_timing_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("stage 1 (timing)")
    g.add_argument("--timing", default="motion", choices=["motion", "learned"],
                   help="motion: optical-flow analysis, offline, no weights (default); "
                        "learned: the paper's video model (needs --checkpoint)")
    g.add_argument("--roi", metavar="X,Y,W,H", help="only look at this rectangle of the frame (pixels)")
    g.add_argument("--checkpoint", metavar="RUN_OR_ID", help="learned timing: a training run folder, checkpoint file or hub id")
    g.add_argument("--encoder-weights", metavar="PATH_OR_ID",
                   help="learned timing: the frame encoder's weights, where they are not where the run's features "
                        "were extracted from (a TC-CLIP checkpoint file, a CLIP folder or hub id)")
    g.add_argument("--flow-weights", metavar="PATH",
                   help="learned timing with RAFT features: the raft_large state dict the features were extracted with")
    g.add_argument("--device", default=None, help="torch device for neural backends (default: cuda if available, else cpu)")
    g.add_argument("--step-lead", type=float, default=None, metavar="FRACTION",
                   help="footsteps (motion timing): where a step sounds, in step periods before the lowest point "
                        "of the walker's bob (default -0.1: a tenth of a step after it, as measured on game "
                        "footage; about 0.12 for live-action walkers, whose heel strikes just before the body "
                        "is lowest)")


def add_synth_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("stage 2 (synthesis): what it sounds like")
    g.add_argument("--prompt", metavar="TEXT", type=prompt_text,
                   help="e.g. 'hitting metal with a stick', 'footsteps on gravel' (leave it out for the default sound); "
                        "with --reference the recordings make the sound, and a walking prompt ('footsteps') "
                        "still gives stage 1's footsteps timing")
    g.add_argument("--reference", metavar="FILE", nargs="+", default=[], help="your own recordings to use as the sound")
    g.add_argument("--synth", default="sampler", choices=["sampler", "stable-audio"],
                   help="sampler: envelope-following sample synthesis, offline, no weights (default); "
                        "stable-audio: Stable Audio Open + the envelope ControlNet (needs weights, a GPU advised)")
    g.add_argument("--seed", type=int, default=0, help="random seed: same seed, same output (default 0)")
    n = p.add_argument_group("stable-audio options")
    n.add_argument("--controlnet", metavar="PATH_OR_ID", help="trained envelope ControlNet (folder or hub id)")
    n.add_argument("--base", metavar="ID_OR_PATH", default=None, help="Stable Audio Open weights (default stabilityai/stable-audio-open-1.0)")
    n.add_argument("--steps", type=int, default=150, help="sampling steps (default 150)")
    n.add_argument("--cfg", type=float, default=2.0, help="classifier-free guidance scale (default 2)")
    n.add_argument("--negative", metavar="TEXT", default=None, help="negative prompt")
    n.add_argument("--clap", metavar="ID_OR_PATH", default=None, help="LAION-CLAP weights (default laion/clap-htsat-unfused)")
    n.add_argument("--cavp", metavar="PATH", default=None, help="Diff-Foley CAVP checkpoint (cavp_epoch66.ckpt) for video conditioning")
    n.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"], help="weights dtype (default bf16 on GPU, fp32 on CPU)")
    n.add_argument("--offload", action="store_true", help="keep models on the CPU and move each to the GPU only while it runs (small GPUs)")
    n.add_argument("--offline", action="store_true", help="never contact the hub; use only local files / the local cache")


def timing_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.timing == "learned":
        if args.step_lead is not None:
            raise FolaiError("--step-lead is only used with --timing motion")
        if not args.checkpoint:
            raise FolaiError("--timing learned needs --checkpoint RUN_OR_ID (a run folder, checkpoint file or hub id)")
        opts = {"checkpoint": args.checkpoint, "device": args.device}
        if args.encoder_weights:
            opts["encoder_weights"] = args.encoder_weights
        if args.flow_weights:
            opts["flow_weights"] = args.flow_weights
        return opts
    for flag, value in (("--checkpoint", args.checkpoint), ("--encoder-weights", args.encoder_weights),
                        ("--flow-weights", args.flow_weights)):
        if value:
            raise FolaiError(f"{flag} is only used with --timing learned")
    return {} if args.step_lead is None else {"step_lead": args.step_lead}


def synth_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.synth == "stable-audio":
        opts = {"controlnet": args.controlnet, "steps": args.steps, "cfg": args.cfg, "negative": args.negative,
                "device": getattr(args, "device", None)}
        for key in ("base", "clap", "cavp", "dtype"):
            if getattr(args, key, None):
                opts[key] = getattr(args, key)
        opts["offload"] = bool(args.offload)
        opts["offline"] = bool(args.offline)
        return opts
    if args.controlnet or args.base or args.cavp or args.clap or args.offload or args.dtype:
        raise FolaiError("--controlnet/--base/--clap/--cavp/--dtype/--offload are only used with --synth stable-audio")
    if args.steps <= 0:
        raise FolaiError(f"--steps must be positive, got {args.steps}")
    return {}


def timing_summary(info: dict) -> str:
    """One line on what stage 1 found, from a TimingResult's ``info`` (any backend; the motion
    timing's frame rate, cuts, camera compensation and held frames when it reports them)."""
    events = info.get("events") or []
    kind = "step" if info.get("mode") == "steps" else "event"
    parts = [f"{len(events)} {kind}{'' if len(events) == 1 else 's'}"]
    if info.get("fps"):
        parts.append(f"analysed at {float(info['fps']):.4g} fps")
    if info.get("cuts"):
        parts.append(f"{info['cuts']} cut{'s' if info['cuts'] != 1 else ''} between shots")
    if info.get("camera_share", 0) >= 0.005:
        parts.append(f"camera motion removed over {100 * info['camera_share']:.0f} % of it")
    if info.get("held_frames"):
        parts.append(f"{info['held_frames']} held frames shared out")
    if not events and info.get("mode") == "impacts":
        # (a walking video timed for impacts was silent without a word; found by a review)
        parts.append("nothing to sound: the audio is silent (someone walking? add --prompt footsteps; "
                     "a small or far action? try --roi)")
    elif not events and info.get("mode") == "steps":
        parts.append("no regular walk found: the audio is silent (try --roi around the walker, or draw the "
                     "steps into the envelope CSV or in folai studio)")
    return "stage 1: " + "; ".join(parts)


def warn_moot_prompt(args: argparse.Namespace, stage1: bool) -> None:
    """Say that ``--prompt`` is not used beside ``--reference`` (the recordings make the sound), unless
    stage 1 runs (``stage1``) and the prompt asks for footsteps timing, which it then gives."""
    if not (args.prompt and args.reference):
        return
    from ..synthesis.presets import wants_steps

    if stage1 and wants_steps(args.prompt):
        return
    log.warning("--prompt not used: --reference makes the sound%s", "; beside it a prompt only asks for footsteps "
                "timing (e.g. --prompt footsteps)" if stage1 else " (and only stage 1's motion timing, which "
                "this run does not use, times footsteps from a prompt)")


def warn_moot_timing(args: argparse.Namespace, skipped_by: str | None) -> None:
    """Say which stage 1 options will not be used, instead of dropping them silently: all of them
    when ``skipped_by`` (an option, e.g. ``--envelope``) skips stage 1, and ``--step-lead`` when the
    prompt asks for no footsteps."""
    if skipped_by is not None:
        moot = [o for o, on in (("--pan", getattr(args, "pan", False)), ("--roi", args.roi),
                                ("--prompt", skipped_by == "--from-audio" and args.prompt),
                                ("--step-lead", args.step_lead is not None),
                                ("--timing", args.timing != "motion"), ("--checkpoint", args.checkpoint),
                                ("--encoder-weights", getattr(args, "encoder_weights", None)),
                                ("--flow-weights", getattr(args, "flow_weights", None))) if on]
        if moot:
            log.warning("%s not used: %s skips stage 1 (the timing), which %s%s", ", ".join(moot), skipped_by,
                        "these act on" if len(moot) > 1 else "it acts on",
                        " (a stereo CSV, as generate --pan writes, carries its own pan)"
                        if getattr(args, "pan", False) else "")
    elif args.step_lead is not None and args.timing == "motion":
        from ..timing.motion import prompt_wants_steps

        if not prompt_wants_steps(args.prompt):
            log.warning("--step-lead not used: it places footsteps, and the prompt asks for none "
                        "(e.g. --prompt footsteps)")
