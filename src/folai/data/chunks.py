"""Datasets as lists of chunks: (video, start, duration, target audio, prompt), split by video.

A :class:`Chunk` is all a trainer needs to find its inputs; stage 1 reads cached video features and
the chunk's own audio (for the envelope target), stage 2 reads the audio at 44.1 kHz and the prompt.
Datasets here do no decoding at construction beyond probing durations.

- :class:`GreatestHits`   the Greatest Hits dataset as distributed (``<id>_denoised.mp4``,
                          ``<id>_denoised.wav``, ``<id>_times.txt``), 10 s chunks, 732/49/196 videos.
- :class:`WalkingTheMaps` ``<youtube_id>_<start>_<end>.mp4`` clips (footstep audio as a same-named
                          .wav/.flac beside the video or in ``audio/``, else the video's own track),
                          2 s chunks, split by YouTube video.
- :class:`VideoFolder`    any folder of videos with audio (embedded, or a same-named .wav/.flac),
                          optional same-named .txt prompt.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..errors import FolaiError

log = logging.getLogger(__name__)

__all__ = [
    "Chunk",
    "ChunkDataset",
    "GreatestHits",
    "WalkingTheMaps",
    "VideoFolder",
    "DATASETS",
    "get_dataset",
    "detect_dataset",
    "split_items",
    "greatest_hits_prompt",
]

SPLITS = ("train", "val", "test", "all")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
AUDIO_SUFFIXES = (".wav", ".flac")


@dataclass(frozen=True)
class Chunk:
    """One training example: ``duration`` seconds of ``video`` from ``start``.

    audio:   the file holding the target audio (time-aligned with the video; may be the video).
    prompt:  text description (Greatest Hits: from the annotations), or None.
    clip_id: a stable unique name, ``<video id>@<start s>``.
    meta:    dataset-specific extras (e.g. the annotated hits inside the chunk).
    """

    video: Path
    start: float
    duration: float
    audio: Path
    prompt: str | None
    clip_id: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def end(self) -> float:
        return self.start + self.duration


def chunk_starts(length: float, chunk_seconds: float, tolerance: float = 0.02) -> list[float]:
    """Starts of the non-overlapping chunks of ``chunk_seconds`` that fit in ``length`` seconds."""
    n = int((length + tolerance) // chunk_seconds)
    return [round(i * chunk_seconds, 6) for i in range(n)]


def split_items(
    ids: Sequence[str], seed: int = 0, fractions: tuple[float, float, float] = (732 / 977, 49 / 977, 196 / 977)
) -> dict[str, list[str]]:
    """Shuffle sorted ``ids`` with ``seed`` and cut them into train/val/test by ``fractions``.

    With 977 Greatest Hits videos and the default fractions this gives exactly 732/49/196. With
    at least 3 ids, val and test get at least one each.
    """
    ids = sorted(set(ids))
    n = len(ids)
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [ids[i] for i in order]
    n_val = int(round(n * fractions[1]))
    n_test = int(round(n * fractions[2]))
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    n_train = n - n_val - n_test
    return {
        "train": shuffled[:n_train],
        "val": shuffled[n_train : n_train + n_val],
        "test": shuffled[n_train + n_val :],
    }


def _read_split_list(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name = Path(line.split()[0]).name
        for suf in VIDEO_SUFFIXES + AUDIO_SUFFIXES:
            if name.endswith(suf):
                name = name[: -len(suf)]
        for tail in ("_denoised", "_mic", "_times"):
            if name.endswith(tail):
                name = name[: -len(tail)]
        out.append(name)
    return out


def _duration(video: Path, audio: Path | None) -> float:
    from ..timing.features import video_duration

    d = video_duration(video)
    if audio is not None and audio != video and audio.suffix.lower() in AUDIO_SUFFIXES:
        import soundfile as sf

        try:
            d = min(d, sf.info(str(audio)).duration)
        except RuntimeError:
            pass
    return float(d)


class ChunkDataset:
    """A list of :class:`Chunk` for one split. Index it, iterate it, or read ``.chunks``."""

    name = "base"
    default_chunk_seconds = 10.0

    def __init__(self, root: str | Path, split: str = "train", chunk_seconds: float | None = None, seed: int = 0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FolaiError(f"dataset folder not found: {self.root}")
        if split not in SPLITS:
            raise FolaiError(f"unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
        self.split = split
        self.chunk_seconds = float(chunk_seconds or self.default_chunk_seconds)
        if self.chunk_seconds <= 0:
            raise FolaiError(f"chunk length must be > 0 s, got {self.chunk_seconds}")
        self.seed = seed
        self.chunks: list[Chunk] = []

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> Chunk:
        return self.chunks[i]

    def __iter__(self):
        return iter(self.chunks)

    def _select(self, groups: dict[str, Any], split_lists: dict[str, list[str]] | None,
                fractions: tuple[float, float, float] | None = None) -> list[str]:
        """Group ids (videos, or source videos) that belong to this split."""
        if self.split == "all":
            return sorted(groups)
        if split_lists is not None:
            wanted = split_lists.get(self.split, [])
            missing = [w for w in wanted if w not in groups]
            if missing:
                log.warning("%d ids of the %s split list are not in %s (e.g. %s)", len(missing), self.split, self.root, missing[0])
            return [w for w in wanted if w in groups]
        kw = {} if fractions is None else {"fractions": fractions}
        return split_items(list(groups), seed=self.seed, **kw)[self.split]

    def _chunks_of(self, video: Path, audio: Path, vid: str, prompt_fn: Callable[[float, float], tuple[str | None, dict]] | None = None) -> list[Chunk]:
        length = _duration(video, audio)
        starts = chunk_starts(length, self.chunk_seconds)
        if not starts:
            log.warning("%s is shorter (%.2f s) than one %.2f s chunk; skipped", video, length, self.chunk_seconds)
        out = []
        for s in starts:
            prompt, meta = prompt_fn(s, s + self.chunk_seconds) if prompt_fn else (None, {})
            out.append(Chunk(video, s, self.chunk_seconds, audio, prompt, f"{vid}@{s:g}", meta))
        return out

    def summary(self) -> str:
        n_videos = len({c.video for c in self.chunks})
        return f"{self.name} {self.split}: {len(self.chunks)} chunks of {self.chunk_seconds:g} s from {n_videos} videos"


# ----------------------------------------------------------------------------- Greatest Hits


def parse_times(path: Path) -> list[dict[str, Any]]:
    """Greatest Hits ``<id>_times.txt``: one annotated hit per line, ``time material action reaction``
    (whitespace separated; ``None`` for a missing label). Returns [{"time", "material", "action",
    "reaction"}] sorted by time; lines that do not start with a number are ignored."""
    hits = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            t = float(parts[0])
        except ValueError:
            continue
        lab = [None if (p in ("None", "none", "-", "")) else p for p in parts[1:4]]
        lab += [None] * (3 - len(lab))
        hits.append({"time": t, "material": lab[0], "action": lab[1], "reaction": lab[2]})
    return sorted(hits, key=lambda h: h["time"])


def greatest_hits_prompt(hits: Iterable[dict[str, Any]]) -> str | None:
    """SPEC prompt: "A person {action} {frequency} on {material} with a wooden stick".

    action: the most frequent annotated action ("hit" / "scratch"); frequency: "once" for one
    annotated hit in the chunk, else "multiple times"; material: the most frequent annotated
    material (dashes read as spaces). None when the chunk has no annotated hit.
    """
    hits = list(hits)
    if not hits:
        return None
    actions = Counter(h["action"] for h in hits if h.get("action"))
    materials = Counter(h["material"] for h in hits if h.get("material"))
    action = actions.most_common(1)[0][0] if actions else "hit"
    material = materials.most_common(1)[0][0].replace("-", " ") if materials else "a surface"
    frequency = "once" if len(hits) == 1 else "multiple times"
    return f"A person {action} {frequency} on {material} with a wooden stick"


class GreatestHits(ChunkDataset):
    """Greatest Hits (Owens et al. 2016) as distributed: ``<id>_denoised.mp4`` + ``<id>_denoised.wav``
    + ``<id>_times.txt`` in ``root`` (any depth). 10 s chunks. Split: the official lists if
    ``split_dir`` has ``train.txt``/``val.txt``/``test.txt`` (one video id or file name per line),
    else a seeded shuffle into 732/49/196 (proportionally for other counts)."""

    name = "greatest-hits"
    default_chunk_seconds = 10.0

    def __init__(self, root, split="train", chunk_seconds=None, seed=0, split_dir: str | Path | None = None):
        super().__init__(root, split, chunk_seconds, seed)
        videos = {p.name[: -len("_denoised.mp4")]: p for p in sorted(self.root.rglob("*_denoised.mp4"))}
        if not videos:
            raise FolaiError(f"no Greatest Hits videos (*_denoised.mp4) found in {self.root}")
        lists = None
        if split_dir is not None:
            sd = Path(split_dir)
            lists = {s: _read_split_list(sd / f"{s}.txt") for s in ("train", "val", "test") if (sd / f"{s}.txt").is_file()}
            if not lists:
                raise FolaiError(f"no split lists (train.txt, val.txt, test.txt) in {sd}")
        for vid in self._select(videos, lists):
            video = videos[vid]
            audio = video.with_name(f"{vid}_denoised.wav")
            if not audio.is_file():
                raise FolaiError(f"Greatest Hits audio missing for {vid}: expected {audio}")
            times = video.with_name(f"{vid}_times.txt")
            hits = parse_times(times) if times.is_file() else []

            def prompt_fn(t0, t1, hits=hits):
                inside = [h for h in hits if t0 <= h["time"] < t1]
                return greatest_hits_prompt(inside), {"hits": inside}

            self.chunks += self._chunks_of(video, audio, vid, prompt_fn)


# ----------------------------------------------------------------------------- Walking The Maps

WTM_NAME = re.compile(r"^(?P<yt>.+)_(?P<start>\d+(?:\.\d+)?)_(?P<end>\d+(?:\.\d+)?)$")


def _sidecar_audio(video: Path, extra_dirs: Sequence[Path] = ()) -> Path:
    for d in (video.parent, *extra_dirs):
        for suf in AUDIO_SUFFIXES:
            cand = d / (video.stem + suf)
            if cand.is_file():
                return cand
    return video


class WalkingTheMaps(ChunkDataset):
    """Walking The Maps: ``<youtube_id>_<start>_<end>.mp4`` clips; target audio = the AudioSep-isolated
    footsteps as ``<same name>.wav``/``.flac`` beside the video or in ``root/audio/``, else the
    video's own audio track. 2 s chunks. Split 80/10/10 by YouTube id (no source video in two
    splits), seeded; or the lists in ``split_dir`` (clip names)."""

    name = "walking-maps"
    default_chunk_seconds = 2.0
    prompt = "footstep sounds"

    def __init__(self, root, split="train", chunk_seconds=None, seed=0, split_dir: str | Path | None = None,
                 fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)):
        super().__init__(root, split, chunk_seconds, seed)
        clips: dict[str, Path] = {}
        sources: dict[str, list[str]] = {}
        for p in sorted(self.root.rglob("*")):
            if p.suffix.lower() not in VIDEO_SUFFIXES or p.name.startswith("."):
                continue
            m = WTM_NAME.match(p.stem)
            if not m:
                log.warning("skipping %s: name is not <youtube_id>_<start>_<end>", p.name)
                continue
            clips[p.stem] = p
            sources.setdefault(m["yt"], []).append(p.stem)
        if not clips:
            raise FolaiError(f"no Walking The Maps clips (<youtube_id>_<start>_<end>.mp4) found in {self.root}")
        if split_dir is not None:
            sd = Path(split_dir)
            lists = {s: _read_split_list(sd / f"{s}.txt") for s in ("train", "val", "test") if (sd / f"{s}.txt").is_file()}
            names = self._select(clips, lists)
        else:
            names = [c for yt in self._select(sources, None, fractions) for c in sorted(sources[yt])]
        audio_dir = [self.root / "audio"]
        for stem in names:
            video = clips[stem]
            m = WTM_NAME.match(stem)
            meta = {"youtube_id": m["yt"], "source_start": float(m["start"]), "source_end": float(m["end"])}
            self.chunks += self._chunks_of(
                video, _sidecar_audio(video, audio_dir), stem, lambda a, b, meta=meta: (self.prompt, dict(meta))
            )


# ----------------------------------------------------------------------------- any folder


class VideoFolder(ChunkDataset):
    """Any folder of videos with audio (embedded, or a same-named .wav/.flac beside the video).
    A same-named .txt file, if present, is the prompt. Split 80/10/10 by video, seeded."""

    name = "folder"
    default_chunk_seconds = 10.0

    def __init__(self, root, split="train", chunk_seconds=None, seed=0, split_dir: str | Path | None = None,
                 fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)):
        super().__init__(root, split, chunk_seconds, seed)
        videos = {}
        for p in sorted(self.root.rglob("*")):
            if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."):
                videos[str(p.relative_to(self.root).with_suffix(""))] = p
        if not videos:
            raise FolaiError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) found in {self.root}")
        lists = None
        if split_dir is not None:
            sd = Path(split_dir)
            lists = {s: _read_split_list(sd / f"{s}.txt") for s in ("train", "val", "test") if (sd / f"{s}.txt").is_file()}
            videos = {Path(k).name: v for k, v in videos.items()}
        for vid in self._select(videos, lists, fractions):
            video = videos[vid]
            txt = video.with_suffix(".txt")
            prompt = txt.read_text().strip() or None if txt.is_file() else None
            self.chunks += self._chunks_of(video, _sidecar_audio(video), vid, lambda a, b, p=prompt: (p, {}))


DATASETS: dict[str, type[ChunkDataset]] = {
    "greatest-hits": GreatestHits,
    "walking-maps": WalkingTheMaps,
    "folder": VideoFolder,
}


def detect_dataset(root: str | Path) -> str:
    """Guess the layout of ``root``: greatest-hits, walking-maps, or folder."""
    r = Path(root)
    if any(r.rglob("*_denoised.mp4")):
        return "greatest-hits"
    vids = [p for p in r.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES]
    if vids and all(WTM_NAME.match(p.stem) for p in vids):
        return "walking-maps"
    return "folder"


def get_dataset(name: str, root: str | Path, split: str = "train", **options: Any) -> ChunkDataset:
    """Build dataset ``name`` ("greatest-hits", "walking-maps", "folder", or "auto")."""
    if name == "auto":
        name = detect_dataset(root)
    if name not in DATASETS:
        raise FolaiError(f"unknown dataset '{name}'; choose one of: auto, {', '.join(DATASETS)}")
    return DATASETS[name](root, split=split, **{k: v for k, v in options.items() if v is not None})
