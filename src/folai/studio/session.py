"""Per-browser-session state of the studio: a private temporary workspace, the video, the envelope
with its undo history, reference recordings and the last render.

Nothing the browser sends is ever used as a file-system path: files are stored under names the
server makes (random hex ids plus a fixed suffix from a whitelist), and requests name them only by
id, which must match :data:`ID_RE`.
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..envelope import Envelope
from ..errors import FolaiError

ID_RE = re.compile(r"^[0-9a-f]{32}$")

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".aif", ".aiff")


def new_id() -> str:
    """A fresh 128-bit random id (32 hex digits)."""
    return secrets.token_hex(16)


def valid_id(value: str) -> bool:
    return bool(ID_RE.match(value or ""))


def base_name(name: str | None) -> str:
    """The printable base name of a name the browser sent (never a path), at its whole length."""
    base = re.split(r"[\\/]", name or "")[-1]
    return "".join(ch for ch in base if ch.isprintable()).strip()


def display_name(name: str | None, default: str = "file") -> str:
    """A file name fit for showing in the page only (never for a path): base name, printable, short
    (a long one keeps its suffix: ``Scene_12_take_3_xxx....mp4``)."""
    base = base_name(name) or default
    if len(base) <= 120:
        return base
    suffix = Path(base).suffix
    suffix = suffix if 1 < len(suffix) <= 10 else ""
    return base[: 120 - len(suffix) - 3] + "..." + suffix


def suffix_of(name: str | None, allowed: tuple[str, ...], what: str) -> str:
    """The lower-case suffix of ``name`` if it is one of ``allowed``, else a clear error. The suffix is
    read from the whole name (a name over the 120 characters shown had lost it; found by a review)."""
    suffix = Path(base_name(name)).suffix.lower()
    if suffix not in allowed:
        raise FolaiError(
            f"{what} must be one of {', '.join(allowed)}; got '{display_name(name)}'"
        )
    return suffix


@dataclass
class Limits:
    """Upload limits (bytes and counts) of one studio server."""

    video_bytes: int = 512 * 1024 * 1024
    audio_bytes: int = 64 * 1024 * 1024
    csv_bytes: int = 16 * 1024 * 1024
    json_bytes: int = 8 * 1024 * 1024  # a request of edits or options (a drawn curve of 100 000 points: ~3 MiB)
    max_references: int = 16
    max_sessions: int = 8
    video_seconds: float = 30 * 60.0
    history: int = 100


class History:
    """Undo/redo over immutable :class:`Envelope` snapshots."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = max(2, limit)
        self._items: list[Envelope] = []
        self._pos = -1

    @property
    def current(self) -> Envelope | None:
        return self._items[self._pos] if self._pos >= 0 else None

    def reset(self, env: Envelope) -> None:
        self._items = [env]
        self._pos = 0

    def push(self, env: Envelope) -> None:
        del self._items[self._pos + 1 :]
        self._items.append(env)
        if len(self._items) > self.limit:
            del self._items[0 : len(self._items) - self.limit]
        self._pos = len(self._items) - 1

    @property
    def can_undo(self) -> bool:
        return self._pos > 0

    @property
    def can_redo(self) -> bool:
        return 0 <= self._pos < len(self._items) - 1

    def undo(self) -> Envelope:
        if not self.can_undo:
            raise FolaiError("there is nothing to undo")
        self._pos -= 1
        return self._items[self._pos]

    def redo(self) -> Envelope:
        if not self.can_redo:
            raise FolaiError("there is nothing to redo")
        self._pos += 1
        return self._items[self._pos]


@dataclass
class VideoItem:
    path: Path
    full_name: str  # the base name as given: downloads are named from it
    info: Any  # folai.media.VideoInfo
    owned: bool  # True when it lives in the workspace (uploaded), False for the command-line video

    @property
    def name(self) -> str:
        """The name shown in the page (shortened)."""
        return display_name(self.full_name)


@dataclass
class ReferenceItem:
    id: str
    path: Path
    name: str
    seconds: float


@dataclass
class RenderItem:
    """The last render: what it was made from, so a re-render can redo only what changed."""

    audio: np.ndarray  # (2, N) float32 at sample_rate
    sample_rate: int
    envelope: Envelope
    key: tuple
    path: Path  # the WAV in the workspace
    version: int
    peaks: list | None = None  # the waveform overview sent to the page (made once per render)


class Session:
    """One browser session. All mutation happens under ``lock``."""

    def __init__(self, sid: str, root: Path, limits: Limits) -> None:
        self.id = sid
        self.dir = root / sid
        self.dir.mkdir(parents=True, exist_ok=False)
        self.limits = limits
        self.lock = threading.RLock()
        self.created = time.time()
        self.touched = self.created
        self.video: VideoItem | None = None
        self.history = History(limits.history)
        self.detected: list[float] = []  # event times from the timing backend
        self.pan: np.ndarray | None = None
        self.pan_times: np.ndarray | None = None  # seconds of each pan value (the timing run's frames)
        self.pan_version = 0  # bumps with every timing run (part of a render's identity)
        self.timing_backend: str | None = None
        self.references: dict[str, ReferenceItem] = {}
        self.render: RenderItem | None = None
        self.render_count = 0
        self.export_path: Path | None = None
        self.version = 0  # bumps on every envelope change

    # -- files
    def file(self, name: str) -> Path:
        """A path inside this session's workspace for a server-made ``name`` (no separators)."""
        if "/" in name or "\\" in name or name.startswith("."):
            raise FolaiError("internal file names never contain path separators")
        return self.dir / name

    # -- envelope
    @property
    def envelope(self) -> Envelope | None:
        return self.history.current

    def set_envelope(self, env: Envelope, reset: bool = False) -> None:
        if reset:
            self.history.reset(env)
        else:
            self.history.push(env)
        self.version += 1

    @property
    def duration(self) -> float | None:
        if self.video is not None:
            return float(self.video.info.duration)
        if self.envelope is not None:
            return float(self.envelope.end)
        return None

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class SessionStore:
    """All sessions of one server, each in its own folder under ``root``."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.limits = limits
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self) -> Session:
        with self._lock:
            while len(self._sessions) >= self.limits.max_sessions:
                oldest = min(self._sessions.values(), key=lambda s: s.touched)
                del self._sessions[oldest.id]
                oldest.close()
            s = Session(new_id(), self.root, self.limits)
            self._sessions[s.id] = s
            return s

    def get(self, sid: str) -> Session:
        if not valid_id(sid):
            raise KeyError(sid)
        with self._lock:
            s = self._sessions[sid]
        s.touched = time.time()
        return s

    def discard(self, sid: str) -> None:
        """Close and forget session ``sid`` (one that could not be set up)."""
        with self._lock:
            s = self._sessions.pop(sid, None)
        if s is not None:
            s.close()

    def close_all(self) -> None:
        with self._lock:
            for s in self._sessions.values():
                s.close()
            self._sessions.clear()
