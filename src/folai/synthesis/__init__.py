"""Stage 2, synthesis: envelope + what it should sound like -> 44.1 kHz stereo audio.

Backends (selected by name, imported lazily):
  - ``sampler``      (default, offline, no weights): envelope-following sample/procedural synthesis,
                     ``folai.synthesis.sampler``
  - ``stable-audio`` (the paper's model): Stable Audio Open + envelope ControlNet,
                     ``folai.synthesis.stable_audio``

A backend is a class constructed with keyword options and exposing ``sample_rate`` and
``render(envelope, *, duration, prompt=None, references=(), video=None, pan=None, seed=0,
progress=True) -> np.ndarray`` of shape (2, round(duration * sample_rate)), float32 in [-1, 1].
Backends that can re-render a stretch alone also expose ``render_span(envelope, start, end, **same)``
returning exactly the samples [round(start*sr), round(end*sr)) of the full render with the same
arguments (the studio uses it for local re-rendering). Backends may also expose
``check(prompt=None, references=(), progress=False)`` (``progress`` optional: a bar where the
check takes long), which raises :class:`FolaiError` for conditions they cannot
use (unknown prompt, silent reference...) before any work is done; the pipeline calls it first.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from ..envelope import Envelope
from ..errors import FolaiError

SAMPLE_RATE = 44100

SYNTH_BACKENDS: dict[str, str] = {
    "sampler": "folai.synthesis.sampler:SamplerSynth",
    "stable-audio": "folai.synthesis.stable_audio:StableAudioSynth",
}


class SynthBackend(Protocol):
    sample_rate: int

    def render(
        self,
        envelope: Envelope,
        *,
        duration: float,
        prompt: str | None = None,
        references: Sequence[str | Path] = (),
        video: str | Path | None = None,
        pan: np.ndarray | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> np.ndarray: ...


def get_synth(name: str, **options: Any) -> SynthBackend:
    """Build the synthesis backend ``name`` with ``options``; raise with the list on an unknown name."""
    if name not in SYNTH_BACKENDS:
        raise FolaiError(f"unknown synthesis backend '{name}'; choose one of: {', '.join(SYNTH_BACKENDS)}")
    modname, clsname = SYNTH_BACKENDS[name].split(":")
    try:
        module = importlib.import_module(modname)
    except ImportError as e:
        raise FolaiError(f"synthesis backend '{name}' is unavailable: {e}") from e
    return getattr(module, clsname)(**options)
