"""Timeline edits of the studio, applied with :class:`folai.envelope.Envelope`'s own methods.

Each edit is a JSON object ``{"op": NAME, ...}`` from the page; :func:`apply_edit` validates it
and returns a new envelope (the input is never changed). The operations are the ones the CLI and
library offer (``add_event``, ``remove``, ``gain``, ``gate``, ``clip``, ``draw``, ``shift``) plus
``move_event``, which drags one event (a peak and the rise and decay around it) in time and level.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..envelope import Envelope
from ..errors import FolaiError

EDIT_OPS = ("add_event", "move_event", "remove", "gain", "gate", "clip", "draw", "shift")


def _num(edit: dict[str, Any], key: str, default: float | None = None) -> float:
    value = edit.get(key, default)
    if value is None:
        raise FolaiError(f"edit '{edit.get('op')}' needs a number '{key}'")
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):  # (an integer of 400 digits overflows a float)
        raise FolaiError(f"edit '{edit.get('op')}': '{key}' must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(x):
        raise FolaiError(f"edit '{edit.get('op')}': '{key}' must be finite, got {value!r}")
    return x


def _range(edit: dict[str, Any], env: Envelope) -> tuple[float, float]:
    t0, t1 = _num(edit, "t0"), _num(edit, "t1")
    if t1 < t0:
        t0, t1 = t1, t0
    t0, t1 = max(t0, env.start), min(t1, env.end)
    if t1 - t0 < 0.5 / env.rate:
        raise FolaiError("select a time range on the timeline first (it is empty or outside the envelope)")
    return t0, t1


def event_extent(env: Envelope, time: float) -> tuple[int, int, int]:
    """Frames (first, peak, end) of the event nearest ``time``: from the valley before its peak to
    the valley (or silence) after it. ``end`` is exclusive."""
    x = env.mono
    n = x.size
    i = int(np.clip(round((time - env.start) * env.rate), 0, n - 1))
    # climb to the local maximum within 40 ms
    w = max(1, int(round(0.04 * env.rate)))
    lo, hi = max(0, i - w), min(n, i + w + 1)
    p = lo + int(np.argmax(x[lo:hi]))
    floor = max(1e-4, 0.002 * float(x[p]))

    def held(j: int, step: int) -> bool:
        # a level held for 3 frames below the peak: a sustained sound under the event (a drawn
        # scrape), where its extent ends. Walking across it, a move or a level change took the
        # whole sustain with the event
        k = j + 3 * step
        return x[j] < x[p] and 0 <= k < n and bool(np.all(x[min(j, k) : max(j, k) + 1] == x[j]))

    a = p
    while a > 0 and x[a - 1] <= x[a] and x[a] > floor and not held(a, -1):  # down to the valley or to silence
        a -= 1
    b = p
    while b < n - 1 and x[b + 1] <= x[b] and x[b] > floor and not held(b, 1):
        b += 1
    return a, p, b + 1


def move_event(env: Envelope, time: float, to_time: float, level: float) -> Envelope:
    """Move the event nearest ``time`` so its peak lands at ``to_time`` with peak ``level``.

    The event's shape above the straight line joining its two valleys is lifted off (that line is
    left in place, so a sustained background under the event survives), scaled to ``level`` and laid
    onto the curve at the new time by maximum, like :meth:`Envelope.add_event`.
    """
    if not 0.0 <= level <= 1.0:
        raise FolaiError(f"event level must be in [0, 1], got {level}")
    a, p, b = event_extent(env, time)
    x = env.values  # (C, T)
    peak = float(env.mono[p])
    if peak <= 0.0:
        raise FolaiError(f"there is no event near {time:.3f} s to move")
    k = int(round((to_time - env.start) * env.rate)) - p
    if k == 0:  # level only: the envelope's own gain over the event
        return env.gain(level / peak, env.start + a / env.rate, env.start + b / env.rate)
    seg = x[:, a:b]
    base = np.linspace(x[:, a], x[:, b - 1], b - a, axis=1) if b - a > 1 else seg.copy()
    bump = np.maximum(seg - base, 0.0)
    v = x.copy()
    v[:, a:b] = np.minimum(seg, base)
    scale = level / peak
    lift = float(base[:, p - a].mean()) if bump.size else 0.0
    shape = (bump + lift) * scale  # the event as it was, at the new level
    n = v.shape[1]
    s0, s1 = a + k, b + k
    c0, c1 = max(0, s0), min(n, s1)
    if c1 > c0:
        v[:, c0:c1] = np.maximum(v[:, c0:c1], shape[:, c0 - s0 : c1 - s0])
    return Envelope(np.clip(v, 0.0, 1.0), rate=env.rate, start=env.start, config=env.config)


def apply_edit(env: Envelope, edit: dict[str, Any]) -> Envelope:
    """Apply one timeline edit to ``env`` and return the new envelope."""
    op = edit.get("op")
    if op not in EDIT_OPS:
        raise FolaiError(f"unknown edit '{op}'; expected one of: {', '.join(EDIT_OPS)}")
    # a click at the timeline's very end (where the UI clamps a drag) is the last frame where a hit
    # can be: the one before the last, as a peak needs a frame to fall on (one put on the last
    # frame had no dot to drag and was not heard; found by a review)
    last = env.end - 2.0 / env.rate
    last_frame = env.end - 1.0 / env.rate  # (a drawn curve reaches the very end)
    if op == "add_event":
        t = _num(edit, "time")
        if not env.start <= t <= env.end:
            raise FolaiError(f"event time {t:.6g} s is outside the envelope ({env.start:.2f}-{env.end:.2f} s)")
        return env.add_event(min(t, last), _num(edit, "level"), decay=_num(edit, "decay", 0.08))
    if op == "move_event":
        to = _num(edit, "to_time")
        if not env.start <= to <= env.end:
            raise FolaiError(f"event time {to:.6g} s is outside the envelope ({env.start:.2f}-{env.end:.2f} s)")
        to = min(to, last)
        t = _num(edit, "time")
        if not env.start <= t <= env.end:  # (a far-off time overflowed finding the event)
            raise FolaiError(f"there is no event at {t:g} s: it is outside the envelope ({env.start:.2f}-{env.end:.2f} s)")
        return move_event(env, t, to, _num(edit, "level"))
    if op == "remove":
        return env.remove(*_range(edit, env))
    if op == "gain":
        t0, t1 = _range(edit, env)
        return env.gain(_num(edit, "factor"), t0, t1)
    if op == "gate":
        t0, t1 = _range(edit, env)
        thr = _num(edit, "threshold")
        if not 0.0 <= thr <= 1.0:
            raise FolaiError(f"gate threshold must be in [0, 1], got {thr}")
        return env.gate(thr, t0, t1)
    if op == "clip":
        return env.clip(_num(edit, "lo", 0.0), _num(edit, "hi", 1.0))
    if op == "shift":
        return env.shift(_num(edit, "seconds"))
    # draw
    times, levels = edit.get("times"), edit.get("levels")
    if (not isinstance(times, list) or not isinstance(levels, list) or len(times) != len(levels)
            or len(times) > 100_000):
        raise FolaiError("edit 'draw' needs lists 'times' and 'levels' of the same length")
    t = np.asarray([_num({"op": "draw", "t": v}, "t") for v in times])
    lv = np.asarray([_num({"op": "draw", "l": v}, "l") for v in levels])
    if t.size:
        keep = (t >= env.start) & (t <= env.end)
        t, lv = np.minimum(t[keep], last_frame), lv[keep]
    return env.draw(t, lv)
