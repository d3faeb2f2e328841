"""``folai train timing|synthesis``: dispatches to the stage's own trainer module."""

from __future__ import annotations

import argparse
import importlib

TRAINERS = {
    "timing": ("folai.timing.train", "train the stage-1 video -> envelope model (the paper's video model)"),
    "synthesis": ("folai.synthesis.train", "train the stage-2 envelope ControlNet on Stable Audio Open"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, (modname, helptext) in TRAINERS.items():
        sp = sub.add_parser(name, help=helptext, description=helptext)
        try:
            importlib.import_module(modname).add_arguments(sp)
        except ImportError as e:
            sp.set_defaults(_import_error=str(e))


def run(args: argparse.Namespace) -> int:
    return importlib.import_module(TRAINERS[args.stage][0]).run(args) or 0
