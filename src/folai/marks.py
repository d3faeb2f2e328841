"""folai's mark in the files it writes, so that ``generate`` can tell its own earlier take from a
file of the same name that it did not write (or that was edited since).

``generate -o clip.mp4`` also writes ``clip.wav``, ``clip.envelope.csv`` and ``clip.envelope.png``:
names the user did not type. ``clip.wav`` in particular is what a camera or a recorder beside it
calls its own sound. Those files are replaced only when they carry the mark of an earlier take:

* the WAV: its INFO chunk's software field (``ISFT``) starts with ``folai``, and its comment
  (``ICMT``) holds the SHA-256 of the envelope CSV written with it (set after the last frames:
  libsndfile refuses to open a file read/write whose strings precede its data);
* the CSV (whose format, ``time_s,rms``, has no room for a mark): its bytes still hash to what the
  WAV beside it recorded, i.e. it was not edited since (and the WAV is that CSV's take, not
  another file renamed);
* the PNG: a ``tEXt`` chunk ``Software`` = ``folai``.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib

SOFTWARE = "folai"
_CSV_TAG = "folai envelope sha256:"


def csv_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wav_comment(csv_bytes: bytes) -> str:
    """The WAV comment that ties a take's WAV to its envelope CSV."""
    return _CSV_TAG + csv_digest(csv_bytes)


def mark_wav(f, csv_bytes: bytes) -> None:
    """Mark an open ``soundfile.SoundFile`` being written, after its last frames (strings set
    before them go into the header, and libsndfile then refuses to open the file read/write)."""
    f.software = SOFTWARE
    f.comment = wav_comment(csv_bytes)


def _wav_strings(path: str | os.PathLike) -> tuple[str, str] | None:
    """(software, comment) of a WAV/RF64/other soundfile-readable file; None when unreadable."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            return f.software or "", f.comment or ""
    except Exception:  # noqa: BLE001 - any file libsndfile cannot open is not ours
        return None


def wav_is_ours(path: str | os.PathLike) -> bool:
    s = _wav_strings(path)
    return s is not None and s[0].startswith(SOFTWARE)


def take_digest(wav: str | os.PathLike) -> str | None:
    """The SHA-256 of the envelope CSV that ``wav`` was written with, as ``generate`` records it;
    None for a file that is not a take of ``generate`` (unreadable, unmarked, or another program's)."""
    s = _wav_strings(wav)
    if s is None or not s[0].startswith(SOFTWARE) or not s[1].startswith(_CSV_TAG):
        return None
    return s[1][len(_CSV_TAG):]


def file_digest(path: str | os.PathLike) -> str | None:
    """:func:`folai.weights.content_sha256` of a file, None where it cannot be read."""
    from .weights import content_sha256

    try:
        return content_sha256(path)
    except OSError:
        return None


def png_with_software(png: bytes) -> bytes:
    """``png`` with a ``tEXt`` chunk ``Software`` = folai, put before its first IDAT."""
    body = b"Software\x00" + SOFTWARE.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    i = png.find(b"IDAT")
    if not png.startswith(b"\x89PNG\r\n\x1a\n") or i < 12:
        raise ValueError("not a PNG")
    return png[: i - 4] + chunk + png[i - 4:]


def png_is_ours(path: str | os.PathLike) -> bool:
    """The PNG's chunks before its image data include ``tEXt`` ``Software`` = folai."""
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                return False
            for _ in range(64):  # (the text chunks come first; a bounded walk)
                head = fh.read(8)
                if len(head) < 8:
                    return False
                n, kind = struct.unpack(">I4s", head)
                if kind in (b"IDAT", b"IEND"):
                    return False
                if kind == b"tEXt" and n < 4096:
                    key, _, value = fh.read(n).partition(b"\x00")
                    fh.seek(4, os.SEEK_CUR)
                    if key == b"Software" and value == SOFTWARE.encode("latin-1"):
                        return True
                else:
                    fh.seek(n + 4, os.SEEK_CUR)
    except OSError:
        return False
    return False
