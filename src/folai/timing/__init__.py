"""Stage 1, timing: video -> RMS envelope.

Backends (selected by name, imported lazily):
  - ``motion``  (default, offline, no weights): optical-flow motion analysis, ``folai.timing.motion``
  - ``learned`` (the paper's video model): ``folai.timing.learned``

A backend is a class constructed with keyword options and exposing
``estimate(video, *, roi=None, progress=True, prompt=None) -> TimingResult``; ``prompt`` is the
user's description of the sound (e.g. "footsteps on gravel"), a hint a backend may use to choose
what kind of events to look for, or ignore.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..envelope import Envelope
from ..errors import FolaiError

TIMING_BACKENDS: dict[str, str] = {
    "motion": "folai.timing.motion:MotionTiming",
    "learned": "folai.timing.learned:LearnedTiming",
}


@dataclass
class TimingResult:
    """What stage 1 gives stage 2.

    envelope: the mono RMS envelope at the SPEC rate (125 frames/s).
    pan:      optional horizontal position of the sounding motion per envelope frame, (T,) in
              [-1 (left), 1 (right)], used by ``--pan``.
    info:     backend-specific diagnostics (e.g. detected event times in seconds under "events").
    """

    envelope: Envelope
    pan: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


class TimingBackend(Protocol):
    def estimate(
        self,
        video: str | Path,
        *,
        roi: tuple[int, int, int, int] | None = None,
        progress: bool = True,
        prompt: str | None = None,
    ) -> TimingResult: ...


def get_timing(name: str, **options: Any) -> TimingBackend:
    """Build the timing backend ``name`` with ``options``; raise with the list on an unknown name."""
    if name not in TIMING_BACKENDS:
        raise FolaiError(f"unknown timing backend '{name}'; choose one of: {', '.join(TIMING_BACKENDS)}")
    modname, clsname = TIMING_BACKENDS[name].split(":")
    try:
        module = importlib.import_module(modname)
    except ImportError as e:
        raise FolaiError(f"timing backend '{name}' is unavailable: {e}") from e
    return getattr(module, clsname)(**options)
