"""Which stage backends the studio can offer, and rendering with local re-rendering.

A backend is offered when its module imports and what it needs is present; otherwise the page
shows it disabled with the reason. Nothing here loads weights until the user asks for a run.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..envelope import Envelope
from ..errors import FolaiError

log = logging.getLogger(__name__)


@dataclass
class BackendOptions:
    """What the command line told the studio about optional backends (paths stay server-side)."""

    timing_checkpoint: str | None = None
    controlnet: str | None = None
    base: str | None = None
    device: str | None = None


def _module_status(modname: str) -> tuple[bool, str]:
    try:
        importlib.import_module(modname)
    except ImportError as e:
        return False, f"its module cannot be imported ({e})"
    except Exception as e:  # a broken optional install should not take the studio down
        return False, f"its module failed to load ({type(e).__name__}: {e})"
    return True, ""


def _weights_status(modname: str, clsname: str, options: dict[str, Any]) -> tuple[bool, str]:
    """Ask the backend class whether its weights are present without loading them, if it can tell."""
    try:
        cls = getattr(importlib.import_module(modname), clsname)
    except Exception as e:  # pragma: no cover - already reported by _module_status
        return False, str(e)
    check = getattr(cls, "check_available", None)
    if check is None:
        return True, ""
    try:
        check(**options)
    except FolaiError as e:
        return False, str(e)
    except Exception as e:
        return False, f"{type(e).__name__}: {e}"
    return True, ""


def timing_options(name: str, opts: BackendOptions) -> dict[str, Any]:
    if name == "learned":
        o: dict[str, Any] = {"checkpoint": opts.timing_checkpoint}
        if opts.device:
            o["device"] = opts.device
        return o
    return {}


def synth_options(name: str, opts: BackendOptions) -> dict[str, Any]:
    if name == "stable-audio":
        o: dict[str, Any] = {}
        if opts.controlnet:
            o["controlnet"] = opts.controlnet
        if opts.base:
            o["base"] = opts.base
        if opts.device:
            o["device"] = opts.device
        return o
    return {}


def backend_table(opts: BackendOptions) -> dict[str, list[dict[str, Any]]]:
    """{"timing": [{name, available, reason}], "synthesis": [...]} for the page."""
    from ..synthesis import SYNTH_BACKENDS
    from ..timing import TIMING_BACKENDS

    timing = []
    for name, target in TIMING_BACKENDS.items():
        modname, clsname = target.split(":")
        if name == "learned" and not opts.timing_checkpoint:
            ok, why = False, "start the studio with --timing-checkpoint PATH (a trained timing model) to use it"
        else:
            ok, why = _module_status(modname)
        if ok:
            ok, why = _weights_status(modname, clsname, timing_options(name, opts))
        timing.append({"name": name, "available": ok, "reason": why})
    synth = []
    for name, target in SYNTH_BACKENDS.items():
        modname, clsname = target.split(":")
        ok, why = _module_status(modname)
        if ok:
            ok, why = _weights_status(modname, clsname, synth_options(name, opts))
        synth.append({"name": name, "available": ok, "reason": why})
    return {"timing": timing, "synthesis": synth}


def presets() -> list[str]:
    """Names of the sampler's built-in material presets (empty if the sampler is not installed)."""
    for modname in ("folai.synthesis.presets", "folai.synthesis.sampler"):
        try:
            mod = importlib.import_module(modname)
        except Exception:
            continue
        fn = getattr(mod, "list_presets", None)
        if callable(fn):
            return [str(n) for n in fn()]
    return []


class BackendCache:
    """Built backends, kept so that weights load once per server."""

    def __init__(self, opts: BackendOptions) -> None:
        self.opts = opts
        self._items: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def timing(self, name: str) -> Any:
        from ..timing import get_timing

        return self._get("timing", name, lambda: get_timing(name, **timing_options(name, self.opts)))

    def synth(self, name: str) -> Any:
        from ..synthesis import get_synth

        return self._get("synth", name, lambda: get_synth(name, **synth_options(name, self.opts)))

    def _get(self, kind: str, name: str, build: Any) -> Any:
        with self._lock:
            key = (kind, name)
            if key not in self._items:
                self._items[key] = build()
            return self._items[key]


# ----------------------------------------------------------------------------- local re-rendering


def changed_frames(old: Envelope, new: Envelope) -> tuple[int, int] | None:
    """First and one-past-last frame where the two envelopes differ; None if identical.

    Raises ValueError when they are not comparable (other length, rate, start or channels)."""
    if old.values.shape != new.values.shape or old.rate != new.rate or old.start != new.start:
        raise ValueError("envelopes differ in shape or timing")
    diff = np.nonzero(np.any(old.values != new.values, axis=0))[0]
    if diff.size == 0:
        return None
    return int(diff[0]), int(diff[-1]) + 1


def affected_span(synth: Any, old: Envelope, new: Envelope, duration: float) -> tuple[float, float] | None:
    """Seconds [t0, t1) of audio that can differ between renders of ``old`` and ``new``.

    Uses the backend's own ``affected_span(old, new)`` when it has one, else its
    ``span_margin = (before_s, after_s)`` around the changed frames. None: nothing changed."""
    own = getattr(synth, "affected_span", None)
    if callable(own):
        span = own(old, new)
        if span is None:
            return None
        t0, t1 = span
    else:
        frames = changed_frames(old, new)
        if frames is None:
            return None
        before, after = getattr(synth, "span_margin", (0.25, 3.0))
        t0 = new.start + frames[0] / new.rate - before
        t1 = new.start + frames[1] / new.rate + after
    t0, t1 = max(0.0, float(t0)), min(float(duration), float(t1))
    return (t0, t1) if t1 > t0 else None
