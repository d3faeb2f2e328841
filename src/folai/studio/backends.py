"""Which stage backends the studio can offer, and rendering with local re-rendering.

A backend is offered when its module imports and what it needs is present; otherwise the page
shows it disabled with the reason. Nothing here loads weights until the user asks for a run.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
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
    encoder_weights: str | None = None  # the learned timing's frame encoder, where not recorded in the run
    flow_weights: str | None = None  # ... and its RAFT weights file, for features extracted with one
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


STABLE_AUDIO_BASE = "stabilityai/stable-audio-open-1.0"
CLAP_ID = "laion/clap-htsat-unfused"


def _ref_status(ref: str, what: str, probe_file: str | None) -> tuple[bool, str]:
    """Is the weights reference ``ref`` (a local file/folder or a hub id) here without downloading?"""
    p = Path(ref).expanduser()
    if p.exists():
        return True, ""
    if ref.startswith(("/", ".", "~")) or "\\" in ref or ref.count("/") != 1:
        return False, f"the {what} was not found at {ref}"
    if probe_file is None:
        return True, ""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False, f"the {what} ({ref}) needs huggingface_hub to be found; install folai[neural]"
    hit = try_to_load_from_cache(ref, probe_file)
    if isinstance(hit, str):
        return True, ""
    return False, (
        f"the {what} ({ref}) is not downloaded; accept its licence on the Hugging Face hub, log in with "
        f"`huggingface-cli login` and run `huggingface-cli download {ref}`, or pass a local folder"
    )


def _stable_audio_status(opts: BackendOptions) -> tuple[bool, str]:
    if not opts.controlnet:
        return False, "start the studio with --controlnet PATH_OR_ID (a trained envelope ControlNet) to use it"
    for ref, what, probe in (
        (opts.controlnet, "envelope ControlNet", "controlnet.json"),
        (opts.base or STABLE_AUDIO_BASE, "Stable Audio Open base model", "transformer/config.json"),
        (CLAP_ID, "CLAP model", "config.json"),
    ):
        ok, why = _ref_status(ref, what, probe)
        if not ok:
            return ok, why
    return True, ""


def timing_options(name: str, opts: BackendOptions) -> dict[str, Any]:
    if name == "learned":
        o: dict[str, Any] = {"checkpoint": opts.timing_checkpoint}
        if opts.device:
            o["device"] = opts.device
        if opts.encoder_weights:
            o["encoder_weights"] = opts.encoder_weights
        if opts.flow_weights:  # (RAFT features from a file of the user's: refused without it)
            o["flow_weights"] = opts.flow_weights
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
        if ok and name == "learned":
            ok, why = _ref_status(opts.timing_checkpoint, "timing checkpoint", None)
        if ok:
            ok, why = _weights_status(modname, clsname, timing_options(name, opts))
        timing.append({"name": name, "available": ok, "reason": why})
    synth = []
    for name, target in SYNTH_BACKENDS.items():
        modname, clsname = target.split(":")
        ok, why = _module_status(modname)
        if ok and name == "stable-audio":
            ok, why = _stable_audio_status(opts)
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
    """One :class:`folai.pipeline.FoleyPipeline` per backend, kept so that weights load once per
    server; the studio runs the same inference path as ``folai generate`` / ``folai render``."""

    def __init__(self, opts: BackendOptions) -> None:
        self.opts = opts
        self._items: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def timing(self, name: str) -> Any:
        """A pipeline whose stage 1 is ``name`` (use ``.estimate``)."""
        from ..pipeline import FoleyPipeline

        return self._get("timing", name, lambda: FoleyPipeline(timing=name, timing_options=timing_options(name, self.opts)))

    def synth(self, name: str) -> Any:
        """A pipeline whose stage 2 is ``name`` (use ``.check``, ``.render``, ``.synth.render_span``)."""
        from ..pipeline import FoleyPipeline

        return self._get("synth", name, lambda: FoleyPipeline(synth=name, synth_options=synth_options(name, self.opts)))

    def _get(self, kind: str, name: str, build: Any) -> Any:
        with self._lock:
            key = (kind, name)
            if key not in self._items:
                self._items[key] = build()
            return self._items[key]


# ----------------------------------------------------------------------------- local re-rendering


class NoLocalRender(Exception):
    """The backend cannot tell which stretch an envelope edit changes: render in full."""


def affected_span(synth: Any, old: Envelope, new: Envelope, duration: float, **render_kwargs: Any) -> tuple[float, float] | None:
    """Seconds [t0, t1) of audio that can differ between renders of ``old`` and ``new`` (same other
    arguments); None when nothing changes. Raises :class:`NoLocalRender` when it cannot be known.

    The backend decides through its own ``affected_span(old, new, **render_kwargs)`` when it has one;
    for the offline sampler, whose output is made in fixed blocks from a frame-rate plan, the plan of
    both envelopes is compared block by block (see :func:`_sampler_blocks`)."""
    own = getattr(synth, "affected_span", None)
    if callable(own):
        span = own(old, new, duration=duration, **render_kwargs)
    elif hasattr(synth, "_plan") and type(synth).__module__ == "folai.synthesis.sampler":
        span = _sampler_span(synth, old, new, duration, **render_kwargs)
    else:
        raise NoLocalRender(f"{type(synth).__name__} does not say which stretch an edit changes")
    if span is None:
        return None
    t0, t1 = max(0.0, float(span[0])), min(float(duration), float(span[1]))
    return (t0, t1) if t1 > t0 else None


_PLAN_SKIP = ("source", "seed", "n", "cache", "bank", "tex_cache")  # fixed by the render key, or caches


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.shape == y.shape and np.array_equal(x, y)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    return bool(x == y)


def _sampler_span(synth: Any, old: Envelope, new: Envelope, duration: float, **kw: Any) -> tuple[float, float] | None:
    """The sampler renders fixed blocks (``_BLOCK`` samples with ``_CTX`` of context each side) from a
    frame-rate plan. A block's samples depend only on the plan's per-frame curves inside its window,
    on the events sounding in it or starting just after it (whose rise ends a tail), and on the
    plan's global settings. The plans of both envelopes are compared field by field on those terms:
    a per-frame array (length T) by the block's window, a per-event list by the sounding events,
    anything else globally (if it differs, every block does). A field of another kind means the
    sampler changed in a way this does not know: then render in full."""
    import dataclasses
    import sys

    mod = sys.modules[type(synth).__module__]
    try:
        B, C, H, ME, sr = mod._BLOCK, mod._CTX, mod._HOP44, mod._MAX_EVENT, mod.SR
    except AttributeError as e:  # the sampler changed its internals: stay correct, render in full
        raise NoLocalRender(str(e)) from None
    n = int(round(duration * sr))
    args = (n, kw.get("prompt"), kw.get("references", ()), kw.get("pan"), kw.get("seed", 0))
    # through the sampler's plan cache: the old envelope's plan is usually the one its last render
    # made, and the new one's is then kept for the render of the changed stretch (three plans per
    # edit had been made, ~0.3 s each at 30 minutes)
    plan = getattr(synth, "_cached_plan", None) or synth._plan
    a = plan(old, *args)
    b = plan(new, *args)
    if not dataclasses.is_dataclass(a) or a.e.shape != b.e.shape:
        raise NoLocalRender("the sampler's plan is not comparable")
    T = a.e.shape[0]
    per_block = callable(getattr(a, "kernel", None))  # the level matching's kernel, per output block
    frame_fields, event_fields = [], []
    for f in dataclasses.fields(a):
        if f.name in _PLAN_SKIP:
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x is None and y is None:
            continue
        if f.name == "k_match" and per_block:
            continue  # compared per block below
        if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.shape == y.shape == (T,):
            frame_fields.append(f.name)
        elif f.name in ("events", "samples", "peaks", "takes", "shapes", "ev_pan"):
            event_fields.append(f.name)
        elif isinstance(x, (int, float, str, bool, np.integer, np.floating)) and type(x) is type(y):
            if x != y:  # a global setting changed (e.g. the level-matching kernel): everything
                return 0.0, n / sr
        else:
            raise NoLocalRender(f"unknown sampler plan field '{f.name}'")

    reach = int(0.25 * sr)  # an event starting this soon after the window may start its rise inside it

    def sounding(p: Any, ws: int, we: int) -> list:
        idx = np.nonzero((p.samples < we + reach) & (p.samples > ws - int(ME * sr)))[0]
        return [[None if getattr(p, name) is None else getattr(p, name)[i] for name in event_fields] for i in idx]

    changed = []
    for k in range(-(-n // B)):
        ws, we = k * B - C, (k + 1) * B + C
        f0 = int(round(ws / H))
        nf = (we - ws) * 160 // 441 // 128
        fr = slice(max(0, f0), max(0, f0 + nf))
        if any(not np.array_equal(getattr(a, name)[fr], getattr(b, name)[fr]) for name in frame_fields) or not _same(
            sounding(a, ws, we), sounding(b, ws, we)
        ) or (per_block and a.kernel(k) != b.kernel(k)):
            changed.append(k)
    if not changed:
        return None
    return changed[0] * B / sr, min(n, (changed[-1] + 1) * B) / sr
