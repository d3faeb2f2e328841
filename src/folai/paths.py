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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the suffix of ``path`` so format detection by extension still works.
    On any exception the temporary file is removed and the exception propagates.
    """
    p = check_output(path, inputs)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.stem}.", suffix=f".part{p.suffix}", dir=p.parent or ".")
    except OSError as e:  # a read-only folder or disk, no permission, a full disk
        raise FolaiError(f"cannot write {p}: {e.strerror or e} (in {p.parent or Path('.')})") from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, p)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
