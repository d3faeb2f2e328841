"""Safe output paths: never overwrite an input, never leave a partial file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import FolaiError


def check_input(path: str | os.PathLike, what: str = "input file") -> Path:
    """Return ``path`` as a Path, or raise a clear error if it does not exist or is a folder."""
    p = Path(path)
    if not p.exists():
        raise FolaiError(f"{what} not found: {p}")
    if p.is_dir():
        raise FolaiError(f"{what} is a folder, expected a file: {p}")
    return p


def check_output(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()
) -> Path:
    """Validate an output path: its folder exists and it is not one of ``inputs``."""
    p = Path(path)
    if len(os.fsencode(p.name)) > _NAME_MAX:
        # (said before any work: found when the file was written, after the analysis, and as an
        # internal error from the checks below)
        raise FolaiError(f"output file name is too long for the file system ({len(os.fsencode(p.name))} bytes, "
                         f"at most {_NAME_MAX}): {p.name[:40]}...; choose a shorter name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise FolaiError(f"output folder does not exist: {parent} (create it first)")
    if not parent.is_dir():
        raise FolaiError(f"output folder {parent} is a file, not a folder; choose another path")
    if p.is_dir():
        raise FolaiError(f"output path is a folder, expected a file name: {p}")
    if not os.access(parent, os.W_OK | os.X_OK):
        # said before any work (a folder the user cannot write had been found only when the
        # output was written, after the analysis: envelope --plot left its CSV behind)
        raise FolaiError(f"cannot write {p}: the folder {parent} is not writable (permission denied)")
    for src in inputs:
        if src is None:
            continue
        s = Path(src)
        try:
            same = s.exists() and p.exists() and os.path.samefile(s, p)
        except OSError:
            same = False
        if same or s.resolve() == p.resolve():
            raise FolaiError(
                f"output path {p} is the same as an input; choose another name (inputs are never overwritten)"
            )
    return p


#: the longest file name most file systems take (bytes)
_NAME_MAX = 255


def _temp_affixes(p: Path) -> tuple[str, str]:
    """The hidden temporary name's ``(prefix, suffix)`` for ``p``: ``.STEM.`` and ``.partSUFFIX``,
    cut (at a character) so that the whole name (``mkstemp`` adds 8 characters) fits
    :data:`_NAME_MAX` bytes: a valid name of over 240 bytes had been refused as too long. The
    stem goes first; a suffix too long to keep (no format has one) goes too."""
    stem, suffix = p.stem, f".part{p.suffix}"
    while len(os.fsencode(f"..{'x' * 8}{suffix}")) > _NAME_MAX:
        suffix = suffix[:-1]
    room = _NAME_MAX - len(os.fsencode(f"..{'x' * 8}{suffix}"))
    while stem and len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return f".{stem}.", suffix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_trouble(path: str | os.PathLike) -> str | None:
    """Why writing into ``path``'s folder fails, if the folder says so: gone, no longer writable,
    or its disk full (under 1 MiB free). None when it looks fine. A full disk had shown as
    "internal error: LibsndfileError: System error." or as a mux error blaming the input video."""
    import shutil

    parent = Path(path).parent if str(Path(path).parent) else Path(".")
    if not parent.is_dir():
        return f"the output folder {parent} is gone"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the output folder {parent} is no longer writable"
    try:
        free = shutil.disk_usage(parent).free
    except OSError:
        return None
    if free < 1 << 20:
        return f"no space left on the device of {parent} ({free // 1024} KiB free)"
    return None


def _io_error(e: BaseException) -> bool:
    """Whether ``e`` (or what it was raised from) is a failed write: an OSError of a full disk, a
    missing or unwritable place (PyAV's included; not a network error), or libsndfile's "System
    error"."""
    import errno

    codes = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOENT, errno.EACCES, errno.EPERM, errno.EIO}
    seen = 0
    while e is not None and seen < 8:
        if isinstance(e, OSError) and e.errno in codes:  # (PyAV's errors are OSErrors with errno)
            return True
        if type(e).__name__ == "LibsndfileError" or "System error" in str(e):  # (libsndfile's errno is lost)
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def _trouble(e: BaseException, paths: Iterable[Path]) -> FolaiError | None:
    """A :class:`FolaiError` saying why one of ``paths`` could not be written, when the error is
    one of writing and the folder tells (asked before the partial files are removed: they are
    what filled the disk). Any other error is left as it is, even on a nearly full disk (or a
    network file system that reports no free space)."""
    if isinstance(e, Exception) and _io_error(e):
        for p in paths:
            why = write_trouble(p)
            if why is not None:
                return FolaiError(f"cannot write {p}: {why}")
    return None


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the suffix of ``path`` so format detection by extension still works.
    On any exception the temporary file is removed and the exception propagates (as a
    :class:`FolaiError` saying so when the folder is gone, unwritable or its disk full).
    """
    with atomic_outputs({0: path}, inputs) as tmp:
        yield tmp[0]


def held_signals() -> list:
    """The stop signals (SIGINT, SIGTERM, SIGHUP) that are not ignored: one that the process was
    started ignoring (SIGHUP under ``nohup``, SIGINT in a background job of a script) stays
    ignored."""
    import signal

    sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    return [s for s in sigs if signal.getsignal(s) is not signal.SIG_IGN]


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block is done, then deliver them (in the main
    thread; elsewhere nothing is held). For a step that must not stop half way: putting a set of
    finished files in place."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    previous = {}
    try:
        for sig in held_signals():
            previous[sig] = signal.getsignal(sig)  # (kept before the swap: a signal may land between)
            signal.signal(sig, lambda signum, frame: got.append(signum))
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h if h is not None else signal.SIG_DFL)  # (None: a handler set from C)
        if got:
            signal.raise_signal(got[0])


@contextlib.contextmanager
def atomic_outputs(
    paths: dict, inputs: Iterable[str | os.PathLike | None] = ()
) -> Iterator[dict]:
    """:func:`atomic_output` for a set of files that belong together (``{key: path}`` -> ``{key:
    temporary path}``): all of them are put in place, or none. The renames run with signals held
    (:func:`deferred_signals`): a Ctrl-C or SIGTERM between two renames had left a mixed set, some
    files of the new take beside the previous take's others."""
    inputs = list(inputs)
    seen: dict = {}
    for p in paths.values():
        check_output(p, inputs)
        r = Path(p).resolve()
        if r in seen:
            raise FolaiError(f"two outputs are the same file: {seen[r]} and {p}; give each its own name")
        seen[r] = p
    tmps: dict = {}
    try:
        # (signals held: one landing between a file's creation and its entry in `tmps` left that
        # file behind, seen in a test that stops generate as soon as its first file appears)
        with deferred_signals():
            for key, p in paths.items():
                p = Path(p)
                try:
                    prefix, suffix = _temp_affixes(p)
                    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=p.parent or ".")
                except OSError as e:
                    raise FolaiError(f"cannot write {p}: {e.strerror or e} (in {p.parent or Path('.')})") from e
                os.close(fd)
                tmps[key] = Path(tmp)
        yield dict(tmps)
        with deferred_signals():
            for key, p in paths.items():
                t = tmps[key]
                if t.exists():
                    os.chmod(t, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
                os.replace(t, p)
                del tmps[key]
    except BaseException as e:
        err = _trouble(e, [Path(p) for p in paths.values()])
        for t in tmps.values():
            with contextlib.suppress(OSError):
                t.unlink()
        if err is not None:
            raise err from e
        raise
