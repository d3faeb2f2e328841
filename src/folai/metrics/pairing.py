"""Pair generated files with their references by clip id.

Rule: every media file under a folder (searched recursively) that matches a glob ``pattern``
on its file name gets the clip id

- the text matched from the first to the last wildcard of the pattern, when the pattern has one
  other than a leading ``*`` before the extension (``"syncfusion_*.mp4"`` -> ``syncfusion_20.mp4``
  has id ``20``; ``"syncfusion_[0-9]*.mp4"`` -> ``20`` and skips ``syncfusion_20_text.mp4``);
- otherwise (default pattern ``"*"``) the file stem with one known system prefix removed
  (``GT_``, ``folai-paper_``, ``syncfusion_``, ... see :data:`KNOWN_PREFIXES`).

A generated id that is not a reference id but ends with ``_<reference id>`` (an unknown system
prefix, ``mysys_12``) is mapped onto that id. Generated and reference files with the same id
form a pair. Two files with the same id in one
folder, or ids present on one side only, are reported with a clear message (or, with
``allow_missing=True``, unpaired ids are skipped and listed).
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import FolaiError
from .audio import MEDIA_EXTS

KNOWN_PREFIXES = (
    "GT_", "gt_", "ref_", "reference_", "real_", "orig_",
    "folai-paper_", "folai_", "generated_", "gen_", "fake_",
    "syncfusion_", "videofoley_", "video-foley_", "condfoleygen_", "difffoley_", "diff-foley_",
    "specvqgan_", "tfoley_", "t-foley_",
)


@dataclass(frozen=True)
class Pair:
    clip: str            # clip id
    generated: Path
    reference: Path
    video: Path | None = None


def clip_id(name: str, pattern: str = "*") -> str | None:
    """Clip id of file name ``name`` under ``pattern`` (None if it does not match)."""
    if not fnmatch.fnmatch(name, pattern):
        return None
    if pattern in ("*", "*.*") or pattern.startswith("*.") and "*" not in pattern[1:]:
        stem = Path(name).stem
        for pre in KNOWN_PREFIXES:
            if stem.startswith(pre) and len(stem) > len(pre):
                return stem[len(pre):]
        return stem
    # translate the glob into a regex; the id is the span from the first to the last wildcard
    parts = [t for t in re.split(r"(\*|\?|\[[^\]]*\])", pattern) if t]
    wild = [i for i, t in enumerate(parts) if t in ("*", "?") or (t.startswith("[") and len(t) > 2)]
    if not wild:
        return Path(name).stem
    rx = []
    for i, t in enumerate(parts):
        if i == wild[0]:
            rx.append("(")
        rx.append(".*" if t == "*" else "." if t == "?" else t if i in wild else re.escape(t))
        if i == wild[-1]:
            rx.append(")")
    m = re.fullmatch("".join(rx), name)
    if not m:
        return Path(name).stem
    cid = m.group(1)
    if "." not in Path(pattern).name.split("*")[-1] and cid.endswith(Path(name).suffix) and Path(name).suffix:
        # a pattern without an extension ('syncfusion_*'): the id had kept the file's (20.m4v, which
        # never paired with GT_20.mp4's 20; found by a review)
        cid = cid[: -len(Path(name).suffix)]
    return cid


def collect(
    folder: str | os.PathLike, pattern: str = "*", what: str = "generated", exts: set[str] | None = None
) -> dict[str, Path]:
    """Map clip id -> file for all files under ``folder`` with a suffix in ``exts`` (media) matching ``pattern``."""
    exts = MEDIA_EXTS if exts is None else exts
    root = Path(folder)
    if not root.exists():
        raise FolaiError(f"{what} folder not found: {root}")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    out: dict[str, Path] = {}
    for p in files:
        if p.suffix.lower() not in exts:
            continue
        cid = clip_id(p.name, pattern)
        if cid is None:
            continue
        if cid in out:
            raise FolaiError(
                f"two {what} files have the clip id {cid!r}: {out[cid]} and {p}; give a --{what}-pattern "
                "that selects one system (e.g. 'syncfusion_*.mp4')"
            )
        out[cid] = p
    if not out:
        raise FolaiError(f"no {what} files matching {pattern!r} under {root} (looked for {', '.join(sorted(exts))})")
    return out


def pair_files(
    generated: str | os.PathLike,
    reference: str | os.PathLike,
    videos: str | os.PathLike | None = None,
    generated_pattern: str = "*",
    reference_pattern: str = "*",
    video_pattern: str = "*",
    allow_missing: bool = False,
    references: dict[str, Path] | None = None,
) -> tuple[list[Pair], list[str]]:
    """Pair files by clip id. Returns (pairs sorted by id, list of problems skipped).

    ``references``: ``collect(reference, reference_pattern, "reference")`` when the caller already
    has it (the folder is then not walked again)."""
    gen = collect(generated, generated_pattern, "generated")
    ref = collect(reference, reference_pattern, "reference") if references is None else references
    vid = collect(videos, video_pattern, "video") if videos is not None else {}
    gen = align_prefixed(gen, ref)
    vid = align_prefixed(vid, ref, "video")  # (the same rule as the generated files, as the docs say)
    problems = []
    no_ref = sorted(set(gen) - set(ref))
    no_gen = sorted(set(ref) - set(gen))
    if no_ref:
        problems.append(f"{len(no_ref)} generated clip(s) have no reference: {_few(no_ref)}")
    if no_gen:
        problems.append(f"{len(no_gen)} reference clip(s) have no generated file: {_few(no_gen)}")
    common = sorted(set(gen) & set(ref), key=_natural)
    if videos is not None:
        no_vid = [c for c in common if c not in vid]
        if no_vid:
            problems.append(f"{len(no_vid)} clip(s) have no video: {_few(no_vid)}")
            common = [c for c in common if c in vid]
    if problems and not allow_missing:
        raise FolaiError(
            "files do not pair up by clip id: " + "; ".join(problems)
            + " (ids are file names without known prefixes such as GT_ or syncfusion_, or the part matched by '*' "
            "in --generated-pattern/--reference-pattern; pass --allow-missing to evaluate only the complete pairs)"
        )
    if not common:
        raise FolaiError(f"no generated file pairs with a reference ({'; '.join(problems)})")
    pairs = [Pair(c, gen[c], ref[c], vid.get(c)) for c in common]
    return pairs, problems


def align_prefixed(gen: dict[str, Path], ref, what: str | None = None) -> dict[str, Path]:
    """Map a generated id with an unknown system prefix (``mysys_12``) onto the reference id it
    ends with after an underscore (``12``); the longest such reference id wins; ids that already
    match, or that would collide, are left alone. With ``what`` (the files' kind, for the message),
    two files that would both map onto one id are an error instead (``base_1.csv`` and
    ``mysys_1.csv``: which one is clip 1's?); an exact id still wins."""
    out: dict[str, Path] = {}
    claims: dict[str, list[str]] = {}
    for g, path in gen.items():
        new = g
        if g not in ref:
            cands = [r for r in ref if g.endswith("_" + r)]
            if cands:
                new = max(cands, key=len)
                claims.setdefault(new, []).append(path.name)
        if new in out or (new != g and new in gen):
            new = g
        out[new] = path
    if what is not None:
        for r, names in claims.items():
            if len(names) > 1 and r not in gen:
                raise FolaiError(f"{len(names)} {what} files could be clip {r!r}'s: {', '.join(sorted(names))}; "
                                 "keep one system's files per folder, or name it by the clip id")
    return out


def _few(ids: list[str], n: int = 5) -> str:
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]
