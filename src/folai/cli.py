"""The ``folai`` command line: one subcommand per library function.

Each subcommand lives in ``folai.commands.<name>`` and provides ``add_arguments(parser)`` and
``run(args) -> int | None``. Modules are imported only when their command runs, so a missing
optional dependency of one command never breaks another.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from . import __version__
from .errors import FolaiError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("folai.commands.generate", "video -> envelope -> Foley audio, muxed back into the video"),
    "envelope": ("folai.commands.envelope", "stage 1 alone: the RMS envelope of a video (or of a recording) as CSV/PNG"),
    "render": ("folai.commands.render", "stage 2 alone: render an envelope CSV to 44.1 kHz stereo audio"),
    "strip-audio": ("folai.commands.media_tools", "write a copy of a video without its audio tracks"),
    "mux": ("folai.commands.media_tools", "put an audio file onto a video (video stream copied, not re-encoded)"),
    "extract": ("folai.commands.extract", "cache per-frame video features for the learned timing model"),
    "train": ("folai.commands.train", "train the timing model (stage 1) or the envelope ControlNet (stage 2)"),
    "evaluate": ("folai.commands.evaluate", "score generated audio against references (E-L1, onsets, FAD, CLAP, FAVD)"),
    "studio": ("folai.commands.studio", "local web app: see, edit and hear the envelope before rendering"),
    "example": ("folai.commands.example", "write a generated example video (a block hitting the floor) to try folai on"),
}


_ARGV: list[str] = []  # the command line being parsed (for _Parser's hint)


class _Parser(argparse.ArgumentParser):
    """argparse, with a hint for the one way of giving the options that reads as a missing video
    (or envelope, for render): an option taking several files (``--reference a.wav b.wav``)
    written before the video takes it as one more file."""

    def error(self, message: str):
        if "required: video" in message and "--reference" in _ARGV:
            message += (" (--reference takes one or more files, and took the video as one: put the "
                        "video first, e.g. folai generate clip.mp4 --reference hits.wav)")
        elif "required: ENV.csv" in message and "--reference" in _ARGV:  # (render: the same slip)
            message += (" (--reference takes one or more files, and took the envelope as one: put the "
                        "envelope first, e.g. folai render env.csv -o out.wav --reference hits.wav)")
        super().error(message)


def _load(name: str):
    module = importlib.import_module(COMMANDS[name][0])
    return module


def build_parser(load: str | None = "*") -> argparse.ArgumentParser:
    """The full parser. ``load``: which subcommands' arguments to build ("*" = all, or one name);
    the others get a bare parser, so running one command never imports another's heavy modules."""
    parser = _Parser(
        prog="folai",
        description=(
            "Synchronized Foley for silent video in two stages: timing (video -> an editable RMS "
            "envelope CSV) and synthesis (envelope + a prompt or reference recordings -> 44.1 kHz "
            "stereo audio). The default path runs on a CPU with no downloaded weights."
        ),
        epilog="Run 'folai COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"folai {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (modname, helptext) in COMMANDS.items():
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.set_defaults(_command=name)
        # the global flags also after the command ("folai generate x.mp4 --debug", as folai's own
        # error lines suggest); absent there, they leave the value given before it
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress details")
        if load == "*" or load == name:
            try:
                module = _load(name)
            except ImportError as e:  # command's module missing or its optional deps absent
                p.set_defaults(_import_error=str(e))
                continue
            adder = getattr(module, f"add_arguments_{name.replace('-', '_')}", None) or module.add_arguments
            adder(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _ARGV[:] = argv
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            # run with the stream closed (`2>&-`, some service managers): Python has no sys.stderr
            # then, and the first progress bar or message failed with an internal error (found by
            # a review); what would be written there goes nowhere instead
            setattr(sys, name, open(os.devnull, "w"))
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(load=chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # third-party libraries' retry chatter would bury our one-line error message; the env vars
        # hold for libraries imported later (they reset their loggers' levels on import)
        import warnings

        for var in ("HF_HUB_VERBOSITY", "TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
            os.environ.setdefault(var, "error")

        for name in ("huggingface_hub", "transformers", "diffusers", "accelerate"):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module="huggingface_hub")
        warnings.filterwarnings("ignore", category=FutureWarning)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    previous = _terminate_as_interrupt()
    try:
        if getattr(args, "_import_error", None):
            raise FolaiError(f"command '{args.command}' is unavailable: {args._import_error}")
        module = _load(args.command)
        runner = getattr(module, f"run_{args.command.replace('-', '_')}", None) or module.run
        rc = runner(args)
        return int(rc or 0)
    except FolaiError as e:
        if args.debug:
            raise
        print(f"folai {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"folai {args.command}: interrupted", file=sys.stderr)
        return 130
    except _Terminated as e:
        print(f"folai {args.command}: {e.what}", file=sys.stderr)
        return 128 + e.signum
    except Exception as e:  # unexpected: still one line unless --debug
        if args.debug:
            raise
        print(
            f"folai {args.command}: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 3
    finally:
        if previous is not None:
            import signal

            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)  # (None: set from C)


#: seconds after a first Ctrl-C / SIGTERM during which another is ignored (the clean-up runs); one
#: after that ends the process at once
FORCE_AFTER = 2.0


class _Terminated(BaseException):
    """SIGTERM (``timeout``, ``kill``, a job queue, ``docker stop``) or SIGHUP (the terminal closed,
    an ssh connection dropped) as an exception, so that the command unwinds like on Ctrl-C:
    partial outputs removed, nothing left behind."""

    def __init__(self, signum: int):
        import signal

        super().__init__(signum)
        self.signum = int(signum)
        self.what = "hung up (SIGHUP)" if signum == getattr(signal, "SIGHUP", None) else "terminated"


def _terminate_as_interrupt():
    """Turn SIGTERM and SIGHUP into :class:`_Terminated` (and SIGINT into KeyboardInterrupt, once)
    in the main thread; the previous handlers ``{signal: handler}``, or None where no handler can
    be installed (not the main thread). SIGHUP had killed the process with its hidden partial
    files left behind (found by a review)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    import os
    import time

    stopping: list[float] = []

    def handler(signum, frame):
        # the first signal stops the command; another within FORCE_AFTER s is ignored while it cleans
        # up (a second Ctrl-C during the unwinding had printed a traceback and killed it by SIGINT,
        # which could leave a partial file behind; found by a review). One after that ends it at
        # once: a clean-up stuck on a slow or hung disk must not make folai unstoppable.
        if stopping:
            if time.monotonic() - stopping[0] < FORCE_AFTER:
                return
            os.write(2, b"folai: stopped at once (its partial files may be left behind)\n")
            os._exit(128 + signum)
        stopping.append(time.monotonic())
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Terminated(signum)

    from .paths import held_signals

    return {sig: signal.signal(sig, handler) for sig in held_signals()}  # (not those ignored: nohup)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
