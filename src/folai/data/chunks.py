"""Datasets as lists of chunks: (video, start, duration, target audio, prompt), split by video.

The one dataset layer of both stages: a :class:`Chunk` is all a trainer needs to find its inputs.
Stage 1 (``folai.data.timing``) reads cached video features and the chunk's own audio (for the
envelope target); stage 2 (``folai.synthesis.data_synth``) reads the audio at 44.1 kHz stereo, the
frames at 4 fps and the prompt. Datasets here do no decoding at construction beyond probing durations.

- :class:`GreatestHits`   the Greatest Hits dataset as distributed (``<id>_denoised.mp4``,
                          ``<id>_denoised.wav``, ``<id>_times.txt``), 10 s chunks, 732/49/196 videos,
                          SPEC prompt from the annotated hits of each chunk.
- :class:`WalkingTheMaps` ``<youtube_id>_<start>_<end>.mp4`` clips (footstep audio as a same-named
                          .wav/.flac beside the video or in ``audio/``, else the video's own track),
                          2 s chunks, split by YouTube video, prompt "footstep sounds".
- :class:`VideoFolder`    any folder of videos with audio (embedded, or a same-named audio file);
                          prompts from ``prompts.csv`` or a same-named .txt; optionally also
                          audio files without a video (stage 2 trains on them without frames).

:func:`add_dataset_arguments` / :func:`dataset_from_args` give both ``folai train`` commands the
same ``--data --dataset --split --split-dir --split-seed`` options.
"""

from __future__ import annotations

import argparse
import csv
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
    "add_dataset_arguments",
    "dataset_from_args",
]

SPLITS = ("train", "val", "test", "all")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
# lossless first: a sidecar is looked up in this order
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac")


@dataclass(frozen=True)
class Chunk:
    """One training example: ``duration`` seconds of ``video`` from ``start``.

    video:   the video file, or None for an audio-only chunk (``VideoFolder(audio_files=True)``).
    audio:   the file holding the target audio (time-aligned with the video; may be the video).
             Reading ``duration`` s from ``start`` may come back short (a file shorter than one
             chunk, see ``min_seconds``): readers zero-pad.
    prompt:  text description (Greatest Hits: from the annotations), or None.
    clip_id: a stable unique name, ``<video id>@<start s>``.
    meta:    dataset-specific extras (e.g. the annotated hits inside the chunk).
    """

    video: Path | None
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
    for line in path.read_text(encoding="utf-8").splitlines():
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


def _duration(video: Path | None, audio: Path) -> float:
    """Seconds covered by both the video and its target audio (headers only)."""
    from ..media import audio_info, probe_video

    d = float(probe_video(video).duration) if video is not None else None
    if audio != video:
        a = audio_info(audio)[2]
        d = a if d is None else min(d, a)
    return float(d)


class ChunkDataset:
    """A list of :class:`Chunk` for one split. Index it, iterate it, or read ``.chunks``."""

    name = "base"
    default_chunk_seconds = 10.0

    def __init__(self, root: str | Path, split: str = "train", chunk_seconds: float | None = None, seed: int = 0,
                 split_dir: str | Path | None = None, min_seconds: float | None = None):
        """root: the dataset folder; split: train, val, test or all; chunk_seconds: chunk length
        (default: the dataset's); seed: of the split when there are no lists; split_dir: a folder with
        ``train.txt``/``val.txt``/``test.txt`` (one id or file name per line); min_seconds: a file
        shorter than one chunk but at least this long still gives one chunk (read zero-padded),
        None skips it (stage 1's fixed windows)."""
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
        self.split_dir = Path(split_dir) if split_dir is not None else None
        self.min_seconds = min_seconds
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

    def _split_lists(self) -> dict[str, list[str]] | None:
        """The official lists in ``split_dir`` (ids without suffixes), or None for a seeded split."""
        if self.split_dir is None:
            return None
        sd = self.split_dir
        lists = {s: _read_split_list(sd / f"{s}.txt") for s in ("train", "val", "test") if (sd / f"{s}.txt").is_file()}
        if not lists:
            raise FolaiError(f"no split lists (train.txt, val.txt, test.txt) in {sd}")
        return lists

    def _chunks_of(self, video: Path | None, audio: Path, vid: str, prompt_fn: Callable[[float, float], tuple[str | None, dict]] | None = None) -> list[Chunk]:
        length = _duration(video, audio)
        starts = chunk_starts(length, self.chunk_seconds)
        if not starts and self.min_seconds is not None and length >= self.min_seconds:
            starts = [0.0]  # one zero-padded chunk
        if not starts:
            # (the length is the shorter of the video and its audio: say which, the video's own
            # length had been printed as the audio's; found by a review)
            what = "" if video is None or audio == video else f" with its audio track {Path(audio).name}"
            log.warning("%s%s lasts %.2f s (the shorter of the two), under one %.2f s chunk; skipped"
                        if what else "%s%s lasts %.2f s, under one %.2f s chunk; skipped",
                        video or audio, what, length, self.chunk_seconds)
        out = []
        for s in starts:
            prompt, meta = prompt_fn(s, s + self.chunk_seconds) if prompt_fn else (None, {})
            out.append(Chunk(video, s, self.chunk_seconds, audio, prompt, f"{vid}@{s:g}", meta))
        return out

    def summary(self) -> str:
        n_files = len({c.video or c.audio for c in self.chunks})
        return f"{self.name} {self.split}: {len(self.chunks)} chunks of {self.chunk_seconds:g} s from {n_files} files"


# ----------------------------------------------------------------------------- Greatest Hits


def parse_times(path: Path) -> list[dict[str, Any]]:
    """Greatest Hits ``<id>_times.txt``: one annotated hit per line, ``time material action reaction``
    (whitespace separated; ``None`` for a missing label). Returns [{"time", "material", "action",
    "reaction"}] sorted by time; lines that do not start with a number are ignored."""
    hits = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            t = float(parts[0])
        except ValueError:
            continue
        lab = [None if p.lower() in ("none", "-") else p for p in parts[1:4]]
        lab += [None] * (3 - len(lab))
        hits.append({"time": t, "material": lab[0], "action": lab[1], "reaction": lab[2]})
    return sorted(hits, key=lambda h: h["time"])


# the annotated action as the template's verb (third person: "A person hits ...")
GH_VERBS = {"hit": "hits", "scratch": "scratches"}


def greatest_hits_prompt(hits: Iterable[dict[str, Any]]) -> str | None:
    """SPEC prompt: "A person {action} {frequency} on {material} with a wooden stick".

    hits: the annotated hits inside the chunk (:func:`parse_times` dicts). action: the most frequent
    annotated action as a verb ("hit" -> "hits", "scratch" -> "scratches", another label as written);
    frequency: "once" for one annotated hit in the chunk, else "multiple times" (unlabelled hits
    count); material: the most frequent annotated material, lower case, dashes read as spaces.
    None when the chunk has no annotated hit.

    >>> greatest_hits_prompt([{"time": 1.0, "material": "Plastic-bag", "action": "scratch"}])
    'A person scratches once on plastic bag with a wooden stick'
    """
    hits = list(hits)
    if not hits:
        return None
    actions = Counter(h["action"].lower() for h in hits if h.get("action"))
    materials = Counter(h["material"].lower() for h in hits if h.get("material"))
    action = actions.most_common(1)[0][0] if actions else "hit"
    verb = GH_VERBS.get(action, action)
    material = materials.most_common(1)[0][0].replace("-", " ") if materials else "a surface"
    frequency = "once" if len(hits) == 1 else "multiple times"
    return f"A person {verb} {frequency} on {material} with a wooden stick"


class GreatestHits(ChunkDataset):
    """Greatest Hits (Owens et al. 2016) as distributed: ``<id>_denoised.mp4`` + ``<id>_denoised.wav``
    + ``<id>_times.txt`` in ``root`` (any depth). The target audio is the ``_denoised.wav`` (the
    video's own track when it is missing). 10 s chunks; ``meta["hits"]`` holds the annotated hits
    inside a chunk and the prompt is :func:`greatest_hits_prompt` of them. Split: the official lists
    if ``split_dir`` has ``train.txt``/``val.txt``/``test.txt`` (one video id or file name per line),
    else a seeded shuffle into 732/49/196 (proportionally for other counts)."""

    name = "greatest-hits"
    default_chunk_seconds = 10.0

    def __init__(self, root, split="train", chunk_seconds=None, seed=0, split_dir=None, min_seconds=None):
        super().__init__(root, split, chunk_seconds, seed, split_dir, min_seconds)
        videos = {p.name[: -len("_denoised.mp4")]: p for p in sorted(self.root.rglob("*_denoised.mp4"))}
        if not videos:
            raise FolaiError(f"no Greatest Hits videos (*_denoised.mp4) found in {self.root}")
        for vid in self._select(videos, self._split_lists()):
            video = videos[vid]
            audio = video.with_name(f"{vid}_denoised.wav")
            if not audio.is_file():
                log.warning("%s is missing; using the audio track of %s", audio.name, video.name)
                audio = video
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
    video's own audio track. 2 s chunks, prompt "footstep sounds". Split 80/10/10 by YouTube id (no
    source video in two splits), seeded; or the lists in ``split_dir`` (clip names)."""

    name = "walking-the-maps"
    default_chunk_seconds = 2.0
    prompt = "footstep sounds"

    def __init__(self, root, split="train", chunk_seconds=None, seed=0, split_dir=None, min_seconds=None,
                 fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)):
        super().__init__(root, split, chunk_seconds, seed, split_dir, min_seconds)
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
        lists = self._split_lists()
        if lists is not None:
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


def _read_prompts_csv(path: Path) -> dict[str, str]:
    """``prompts.csv`` rows ``file,prompt`` (file relative to the folder; a ``file,prompt`` header is skipped)."""
    out: dict[str, str] = {}
    if path.is_file():
        with open(path, newline="") as fh:
            for row in csv.reader(fh):
                if len(row) >= 2 and row[0].strip() and row[0] != "file":
                    out[Path(row[0].strip()).as_posix()] = row[1].strip()
    return out


class VideoFolder(ChunkDataset):
    """Any folder of videos with audio (embedded, or a same-named audio file beside the video).
    Prompt: the row of ``prompts.csv`` (``file,prompt``, file relative to the folder), else a
    same-named .txt file, else None. With ``audio_files=True`` audio files that are not a video's
    sidecar are chunks too, with ``video=None`` (stage 2 trains on them without the video
    condition). Split 80/10/10 by file, seeded; or the lists in ``split_dir`` (file names)."""

    name = "folder"
    default_chunk_seconds = 10.0

    def __init__(self, root, split="train", chunk_seconds=None, seed=0, split_dir=None, min_seconds=None,
                 fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), audio_files: bool = False):
        super().__init__(root, split, chunk_seconds, seed, split_dir, min_seconds)
        media: dict[str, Path] = {}
        files = [p for p in sorted(self.root.rglob("*")) if p.is_file() and not p.name.startswith(".")]
        videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        stems = {p.with_suffix("") for p in videos}
        for p in videos:
            media[p.relative_to(self.root).with_suffix("").as_posix()] = p
        if audio_files:
            for p in files:
                if p.suffix.lower() in AUDIO_SUFFIXES and p.with_suffix("") not in stems:
                    media[p.relative_to(self.root).with_suffix("").as_posix()] = p
        if not media:
            kinds = ", ".join(VIDEO_SUFFIXES + (AUDIO_SUFFIXES if audio_files else ()))
            raise FolaiError(f"no media files ({kinds}) found in {self.root}")
        lists = self._split_lists()
        if lists is not None:
            media = {Path(k).name: v for k, v in media.items()}
        prompts = _read_prompts_csv(self.root / "prompts.csv")
        for vid in self._select(media, lists, fractions):
            path = media[vid]
            is_video = path.suffix.lower() in VIDEO_SUFFIXES
            rel = path.relative_to(self.root).as_posix()
            prompt = prompts.get(rel, prompts.get(rel.rsplit(".", 1)[0]))
            txt = path.with_suffix(".txt")
            if prompt is None and txt.is_file():
                prompt = txt.read_text(encoding="utf-8").strip() or None
            video, audio = (path, _sidecar_audio(path)) if is_video else (None, path)
            self.chunks += self._chunks_of(video, audio, vid, lambda a, b, p=prompt: (p, {}))


DATASETS: dict[str, type[ChunkDataset]] = {
    "greatest-hits": GreatestHits,
    "walking-the-maps": WalkingTheMaps,
    "folder": VideoFolder,
}
# older names still accepted from Python
ALIASES = {"walking-maps": "walking-the-maps"}


def _youtube_clip_name(stem: str) -> bool:
    """A Walking The Maps clip's name proper: an 11-character YouTube id, then a start before an end
    (a phone's VID_20240101_120000 matches the looser pattern; found by a review)."""
    m = WTM_NAME.match(stem)
    return bool(m) and re.fullmatch(r"[A-Za-z0-9_-]{11}", m["yt"]) is not None and float(m["start"]) < float(m["end"])


def detect_dataset(root: str | Path) -> str:
    """Guess the layout of ``root``: greatest-hits, walking-the-maps, or folder."""
    r = Path(root)
    if any(r.rglob("*_denoised.mp4")):
        return "greatest-hits"
    vids = [p for p in r.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES]
    if vids and all(WTM_NAME.match(p.stem) for p in vids):
        return "walking-the-maps"
    named = sum(1 for p in vids if _youtube_clip_name(p.stem))
    if vids and named >= 0.5 * len(vids):
        # one stray file (an intro.mp4) among the clips had made the layout "folder": split by
        # file, the clips of one YouTube video landed in train, val and test, and the AudioSep
        # footstep tracks were not read (found by a review). The stray files are left out
        log.warning("%s: %d of %d videos are named as Walking The Maps clips (<youtube_id>_<start>_<end>): read as "
                    "walking-the-maps, the others left out (--dataset folder to read every file)", r, named, len(vids))
        return "walking-the-maps"
    return "folder"


def resolve_dataset_name(name: str, root: str | Path) -> str:
    """``name`` as a key of :data:`DATASETS` ("auto" detects the layout of ``root``)."""
    name = ALIASES.get(name, name)
    if name == "auto":
        name = detect_dataset(root)
    if name not in DATASETS:
        raise FolaiError(f"unknown dataset '{name}'; choose one of: auto, {', '.join(DATASETS)}")
    return name


def get_dataset(name: str, root: str | Path, split: str = "train", **options: Any) -> ChunkDataset:
    """Build dataset ``name`` ("greatest-hits", "walking-the-maps", "folder", or "auto") for ``split``.

    options: constructor arguments of the class (chunk_seconds, seed, split_dir, min_seconds, ...);
    None values are left to the class defaults.
    """
    cls = DATASETS[resolve_dataset_name(name, root)]
    return cls(root, split=split, **{k: v for k, v in options.items() if v is not None})


# ----------------------------------------------------------------------------- shared CLI options


def add_dataset_arguments(p: argparse.ArgumentParser, data_required: bool = True) -> None:
    """The dataset options of every ``folai train`` stage: --data, --dataset, --split, --split-dir, --split-seed."""
    g = p.add_argument_group("dataset")
    g.add_argument("--data", metavar="DIR", required=data_required, help="dataset folder, in its distributed layout")
    g.add_argument("--dataset", default="auto", choices=["auto", *DATASETS],
                   help="layout of --data (default: auto, detected)")
    g.add_argument("--split", default="train", choices=SPLITS, help="split to train on (default train)")
    g.add_argument("--split-dir", metavar="DIR",
                   help="folder with official train.txt/val.txt/test.txt lists (default: a seeded split by video)")
    g.add_argument("--split-seed", type=int, default=0, metavar="N", help="seed of the split when there are no lists (default 0)")


def dataset_from_args(args: argparse.Namespace, split: str | None = None, **options: Any) -> ChunkDataset:
    """The :class:`ChunkDataset` that :func:`add_dataset_arguments` options name (``split`` defaults to --split)."""
    return get_dataset(args.dataset, args.data, split or args.split, seed=args.split_seed,
                       split_dir=args.split_dir, **options)
