"""Media I/O with PyAV (no system ffmpeg): video frames at a fixed rate, audio in and out, muxing.

Time convention: ``t = 0`` is the start of the file (the container's start time), the same origin
for the video frames and the audio samples of one file, so an envelope computed from the frames
lines up with the audio track.

* :func:`iter_video_frames` streams frames resampled to a fixed frame rate **by timestamp**:
  output frame ``k`` is at ``t = start + k / fps`` and shows the last source frame whose
  presentation time is ``<= t`` (the frame a player shows at that moment), so 23.976 / 25 /
  29.97 / 30 / 60 fps and variable-frame-rate sources all give the right picture at the right
  time. Rotation metadata is applied; memory stays flat with the video's length.
* :func:`read_audio` decodes any audio PyAV opens (wav, flac, mp3, AAC in mp4/mov, the audio
  track of a video) to float32 ``(C, N)`` at a requested rate (soxr) and channel count.
* :func:`write_audio` writes WAV (16/24-bit, float) or FLAC, atomically.
* :func:`mux_audio` puts an audio track onto a video, copying the video stream packet for packet
  (no re-encode); :func:`strip_audio` drops the audio tracks.

Every problem with an input raises :class:`folai.errors.MediaError` with one sentence.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import logging
import math
import os
import tempfile
from array import array
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import MediaError
from .paths import atomic_output, check_output

__all__ = [
    "VideoInfo",
    "probe_video",
    "iter_video_frames",
    "read_video_frames",
    "read_audio",
    "audio_info",
    "write_audio",
    "mux_audio",
    "AudioMux",
    "strip_audio",
    "MUX_CONTAINERS",
]

log = logging.getLogger(__name__)

# output suffix -> libavformat muxer
MUX_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# audio codecs each muxer accepts for a new track (first = default)
_MUX_AUDIO_CODECS = {
    "mp4": ("aac", "alac", "flac", "mp3"),
    "mov": ("aac", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"),
    "matroska": ("aac", "flac", "pcm_s16le", "pcm_s24le", "pcm_f32le", "libopus", "mp3"),
}
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)

# A source frame whose time is within half a time-base unit of an output time counts as "at" that
# time (covers the 1 ms rounding of Matroska timestamps, yet keeps 29.97 distinct from 30 fps in
# mp4); never more than a quarter of the output frame interval.
_TIME_TOL = 1e-6
# a stream that ends this much before its header says it should is reported as truncated
_TRUNC_ABS, _TRUNC_REL = 0.5, 0.02


def _past_header(t: float, header_end: float | None) -> bool:
    """Whether a video timestamp ``t`` (seconds) lies so far past the duration the file states
    (more than twice it, plus 5 s) that the timestamp, not the header, is damaged."""
    return header_end is not None and t > 2.0 * header_end + 5.0


# --------------------------------------------------------------------------------------------
# opening and probing


def _av():
    import av

    return av


def _check_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{what} not found: {p}")
    if p.is_dir():
        raise MediaError(f"{what} is a folder, expected a file: {p}")
    if p.stat().st_size == 0:
        raise MediaError(f"{what} {p} is empty (0 bytes).")
    return p


def _reason(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    # PyAV messages look like "[Errno 1094995529] Invalid data found when processing input: 'x'"
    if "]" in msg and msg.startswith("[Errno"):
        msg = msg.split("]", 1)[1].strip()
    msg = msg.split(": '")[0]
    return msg.rstrip(".")


def _open(path: str | os.PathLike, what: str):
    """Open ``path`` for reading or raise MediaError (missing, empty, not media, unreadable)."""
    av = _av()
    p = _check_file(path, what)
    try:
        return p, av.open(str(p), "r", metadata_errors="ignore")
    except av.error.EOFError as e:
        raise MediaError(
            f"{what} {p} has zero duration: it ends right after its header, with no audio or video data."
        ) from e
    except Exception as e:  # av.error.* (InvalidDataError, ...), OSError
        raise MediaError(
            f"{what} {p} is not a media file that can be read ({_reason(e)}); it may be truncated, "
            "corrupt or not audio/video at all."
        ) from e


def _video_stream(container, p: Path):
    """The video stream a player shows: of the streams that are not cover art, the ones flagged
    default when only some are, and of those the one with the most frames (a one-frame thumbnail
    track is not the video), then the longest, then the largest picture, then the first. Taking the first stream
    lost the video of a file whose track 0 was a thumbnail: one frame, 0.03 s of output."""
    av = _av()
    cands = []
    for s in container.streams.video:
        try:
            if s.disposition & av.stream.Disposition.attached_pic:
                continue  # cover art in an audio file
        except AttributeError:  # pragma: no cover - older PyAV
            pass
        cands.append(s)
    if not cands:
        kind = "an audio-only file" if container.streams.audio else "a file without video"
        raise MediaError(f"{p} has no video stream (it is {kind}); a video file is needed here.")
    if len(cands) == 1:
        return cands[0]
    try:
        # (a one-frame track is never the video, flagged or not: MP4 muxers flag the first track)
        default = [s for s in cands if s.disposition & av.stream.Disposition.default and s.frames != 1]
    except AttributeError:  # pragma: no cover - older PyAV
        default = []
    pool = default if 0 < len(default) < len(cands) else cands

    origin = _origin(container)

    def size(s):
        # (Matroska counts no frames: its streams' lengths, from their DURATION tags, decide)
        cc = s.codec_context
        tag = _parse_hms(s.metadata.get("DURATION"))
        end = tag if tag is not None else (_stream_end(container, s, origin) or 0.0)
        return (s.frames != 1, s.frames or 0, round(end, 2), (cc.width or 0) * (cc.height or 0), -s.index)

    return max(pool, key=size)


def _audio_stream(container, p: Path):
    if not container.streams.audio:
        raise MediaError(f"{p} has no audio stream; a file with sound is needed here.")
    return container.streams.audio[0]


def _origin(container) -> float:
    """Seconds of the file's time zero (the container's start time)."""
    st = container.start_time
    return 0.0 if st is None else st / 1_000_000


def _parse_hms(text: str) -> float | None:
    try:
        h, m, s = text.strip().split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except (ValueError, AttributeError):
        return None


def _stream_end(container, stream, origin: float) -> float | None:
    """End time (seconds from the origin) of ``stream`` according to the headers, if known."""
    tb = stream.time_base
    start = stream.start_time * tb if (stream.start_time is not None and tb) else origin
    if stream.duration and tb:
        return float(start + stream.duration * tb) - origin
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        d = _parse_hms(tag)
        if d is not None:
            # FFmpeg's Matroska muxer writes a track's end time on the file's timeline (from 0)
            # there, mkvmerge its length. The two differ for a track that starts late (an audio
            # track after the video, a video whose first frame is at 1.5 s, as folai's own .mkv of
            # such a source): read as a length, FFmpeg's made a complete file "truncated"; read
            # as an end, mkvmerge's cut its last second off (found by reviews). Then the track's
            # last packets say which it is
            length = float(start) - origin + d
            end = d - origin
            if container.duration:  # no track ends after the file
                length = min(length, container.duration / 1_000_000)
            if end <= 0 or abs(length - end) < 1e-3:
                return length
            last = _packet_end(container.name, origin, stream.index, near=min(end, length))
            return min((length, end), key=lambda r: abs(r - last)) if last > 0 else end
    n_av = sum(1 for s in container.streams if s.type in ("video", "audio"))
    if container.duration and n_av == 1:
        return container.duration / 1_000_000
    return None


def _packet_end(path: str | Path, origin: float, index: int | None = None, near: float | None = None) -> float:
    """The end (seconds from ``origin``) of stream ``index`` (default: the video) of ``path`` read
    from its packets (demuxed, not decoded), from a second before ``near`` s on when given: the
    last presentation time plus the last packet's duration, or the median frame interval where
    packets carry none (WebM's simple blocks); a stream without times at all (a raw .h264) counts
    its packets at its rate. A length where the headers give none, or which of their readings is
    right; 0.0 when nothing can be read."""
    av = _av()
    times, last, last_dur, tb, n = [], None, 0, None, 0
    try:
        with av.open(str(path), metadata_errors="ignore") as c:
            st = c.streams.video[0] if index is None else c.streams[index]
            rate = (st.average_rate or st.guessed_rate) if st.type == "video" else None
            if near is not None and st.time_base:
                try:
                    c.seek(max(0, int((near + origin - 1.0) / st.time_base)), stream=st, backward=True)
                except av.error.FFmpegError:
                    pass  # read from the start
            for pkt in c.demux(st):
                if not pkt.size:
                    continue
                n += 1
                t = pkt.pts if pkt.pts is not None else pkt.dts
                if t is None or pkt.time_base is None:
                    continue
                tb = pkt.time_base
                times.append(int(t))
                if last is None or t >= last:  # the latest packet so far: its duration ends the stream
                    last, last_dur = int(t), int(pkt.duration or 0)
    except (av.error.FFmpegError, OSError, IndexError):
        return 0.0
    if not times or tb is None:
        return n / float(rate) if n and rate else 0.0
    if not last_dur and len(times) > 1:
        last_dur = int(np.median(np.diff(np.unique(np.asarray(times, np.int64)))))
    return float(_seconds(last + last_dur, tb) - origin)


def _stamps_in_decode_order(container, vs) -> bool:
    """Whether the decoded frames of ``vs`` carry their packets' decode-order stamps: an AVI file
    (which stores no presentation times, only each packet's place) of a codec whose frames are
    reordered (B-frames). The decoder gives the pictures in the right order, but stamped 1, 4, 3,
    5, 2, ...: read by those times, the motion timing lost a hit and moved the others (found by a
    review); see :class:`_Restamp`."""
    try:
        return "avi" in container.format.name.split(",") and bool(vs.codec_context.has_b_frames)
    except Exception:  # pragma: no cover - no codec context
        return False


class _Restamp:
    """Presentation stamps for decoded frames that carry decode-order ones (``active``, see
    :func:`_stamps_in_decode_order`): the frames come out in presentation order and their stamps
    are the right ones, shuffled within the codec's reordering window, so the k-th frame out gets
    the k-th smallest stamp. Frames wait in a window of ``depth`` (more than any reordering H.264
    or HEVC allows); a frame whose stamps are already in order keeps its own. Inactive, each frame
    keeps its stamp at once.

    FFmpeg's own stamps, only reordered: a copied stream (MPEG-4 Part 2) keeps them in the output,
    so the timing reads the file's timeline as players show it (shifting them to the stream's start
    put the sound of a copied xvid AVI a frame early, and after a seek moved every frame back to
    the start, found by a review)."""

    def __init__(self, active: bool, depth: int = 24) -> None:
        self.active = active
        self.depth = depth
        self._frames: collections.deque = collections.deque()
        self._stamps: list[int] = []

    def stamped(self, frames, end: bool = False) -> list:
        """Feed the next decoded ``frames``; returns the [(frame, pts)] now known (all of them at
        the ``end`` of the stream)."""
        if not self.active:
            return [(f, f.pts) for f in frames]
        for f in frames:
            self._frames.append(f)
            if f.pts is not None:
                heapq.heappush(self._stamps, f.pts)
        out = []
        while self._frames and (end or len(self._frames) > self.depth):
            f = self._frames.popleft()
            out.append((f, heapq.heappop(self._stamps) if f.pts is not None and self._stamps else f.pts))
        return out


def _rotation_cw(frame, stream) -> int:
    """Clockwise degrees (0/90/180/270) a player rotates this frame by for display."""
    rot = 0
    try:
        rot = -int(round(frame.rotation))  # PyAV: counter-clockwise, from the display matrix
    except Exception:  # pragma: no cover - no side data support
        rot = 0
    if rot == 0:
        tag = stream.metadata.get("rotate")
        if tag:
            try:
                rot = int(float(tag))
            except ValueError:
                rot = 0
    return int(round(rot / 90.0)) * 90 % 360


def _orientation(frame, stream) -> tuple[int, bool]:
    """(clockwise degrees, mirrored) of how a player shows this frame: mirrored left-right first
    (when mirrored), then rotated. Read from the display matrix as FFmpeg's autorotate reads it; a
    mirror (QuickTime's "Flip Horizontal", some front cameras) was read as a 180 degree rotation,
    so the motion analysis saw the picture upside down and every hit was missed."""
    rot = _rotation_cw(frame, stream)
    m = None
    try:
        for sd in frame.side_data:
            if "DISPLAYMATRIX" in str(sd.type):
                m = np.frombuffer(bytes(sd)[:36], dtype="<i4").astype(np.float64)
                break
    except Exception:  # pragma: no cover - no side data support
        m = None
    if m is None or m.size < 5:
        return rot, False
    # (x', y') = A (x, y): A = [[m0, m3], [m1, m4]] (16.16 fixed point)
    a = np.array([[m[0], m[3]], [m[1], m[4]]])
    if not np.any(a):
        return rot, False
    a = np.round(a / np.abs(a).max())
    r90 = np.array([[0.0, -1.0], [1.0, 0.0]])
    flip = np.array([[-1.0, 0.0], [0.0, 1.0]])
    for mirrored in (False, True):
        rk = np.eye(2)
        for k in range(4):
            if np.array_equal(rk @ flip if mirrored else rk, a):
                return 90 * k, mirrored
            rk = r90 @ rk
    return rot, False  # not a multiple of 90 degrees: the rotation alone


@dataclass
class VideoInfo:
    """What :func:`probe_video` reports about a video file."""

    path: Path
    width: int  # display size (after rotation)
    height: int
    fps: float  # average frame rate of the stream
    duration: float  # seconds
    n_frames: int  # estimate
    rotation: int  # clockwise degrees applied for display (0/90/180/270)
    has_audio: bool
    audio_rate: int | None
    # frames per second from the median interval between the first few hundred frames: the rate
    # the pictures really come at where the average is lowered by holds (a screen recording that
    # stops sending frames while nothing changes); None if not known
    typical_fps: float | None = None
    codec: str = ""  # the video stream's codec (FFmpeg's name)
    # the output suffixes whose container carries the video stream copied as it is (copy_suffixes)
    copy_suffixes: tuple[str, ...] = ()
    alpha: bool = False  # a VP8 / VP9 stream with an alpha channel (only a Matroska copy keeps it)


# probe_video results of recently probed files, keyed by (path, size, mtime, inode): the pipeline
# and the timing stage ask about the same file; a changed file is probed again
_PROBE_CACHE: dict[tuple, VideoInfo] = {}
_PROBE_CACHE_SIZE = 16


def _file_key(p: Path) -> tuple | None:
    try:
        st = p.stat()
    except OSError:
        return None
    return (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate, duration, rotation and audio presence of a video.

    Decodes the first frame (to read rotation side data and to check the stream is decodable).
    Raises :class:`MediaError` for missing/non-media files, no video stream or zero duration.
    The answer for an unchanged file (same size, modification time and inode) is remembered, so
    asking again is free.
    """
    key = _file_key(Path(path))
    hit = _PROBE_CACHE.get(key) if key is not None else None
    if hit is not None:
        return dataclasses.replace(hit)
    info = _probe_video(path)
    if key is not None:
        if len(_PROBE_CACHE) >= _PROBE_CACHE_SIZE:
            _PROBE_CACHE.pop(next(iter(_PROBE_CACHE)))
        _PROBE_CACHE[key] = info
    return dataclasses.replace(info)


probe_video.cache_clear = _PROBE_CACHE.clear  # type: ignore[attr-defined]  # forget all answers


def _probe_video(path: str | os.PathLike) -> VideoInfo:
    p, container = _open(path, "video")
    try:
        vs = _video_stream(container, p)
        origin = _origin(container)
        first = None
        try:
            for frame in container.decode(vs):
                first = frame
                break
        except Exception as e:
            raise MediaError(f"the video stream of {p} cannot be decoded ({_reason(e)}); the file is corrupt or truncated.") from e
        if first is None:
            raise MediaError(f"{p} has zero duration: its video stream contains no frames.")
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else 0.0
        end = _stream_end(container, vs, origin)
        if end is None:
            # no length of the video's own (a Matroska file from mkvmerge or GStreamer, which write
            # no track DURATION tags) beside other streams: the file's length is the longest
            # stream's, and an audio track longer than the video made the WAV and the envelope as
            # long as it (found by a review). The end of the video's last packets, looked for
            # from the file's end back
            total = container.duration / 1_000_000 if container.duration else 0.0
            end = _packet_end(p, origin, index=vs.index, near=total) if total > 0 else 0.0
            if end <= 0:
                end = total
        if end <= 0:
            # no length in the headers (a WebM that a browser recorded, a live or streamed file, a
            # raw H.264 stream): the end of the last video packet
            end = _packet_end(p, origin)
        if end <= 0:
            raise MediaError(f"{p} has zero duration.")
        rot, _ = _orientation(first, vs)
        w, h = int(round(first.width * _sar(vs))), first.height
        if rot in (90, 270):
            w, h = h, w
        n = vs.frames or (int(round(end * fps)) if fps else 0)
        typical = _typical_rate(container, vs)
        a = container.streams.audio
        audio_rate = None
        if a:
            try:  # a damaged or unknown audio stream may have no rate to tell
                audio_rate = int(a[0].codec_context.sample_rate) or None
            except (AttributeError, TypeError, ValueError):
                audio_rate = None
        return VideoInfo(
            path=p, width=int(w), height=int(h), fps=fps, duration=float(end), n_frames=int(n),
            rotation=rot, has_audio=bool(a), audio_rate=audio_rate, typical_fps=typical,
            codec=vs.codec_context.name, copy_suffixes=tuple(_suffixes_carrying(vs)), alpha=_has_alpha(vs),
        )
    finally:
        container.close()


def _typical_rate(container, vs, n: int = 300) -> float | None:
    """Frames per second from the median interval between the timestamps of the next ``n`` video
    packets (read, not decoded: a few ms)."""
    tb = vs.time_base
    if not tb:
        return None
    ts = []
    try:
        for pkt in container.demux(vs):
            if pkt.pts is not None:
                ts.append(int(pkt.pts))
            if len(ts) >= n:
                break
    except Exception:  # a damaged stream: the decoding says so, later
        return None
    d = np.diff(np.unique(np.asarray(ts, np.int64)))
    if d.size < 4:
        return None
    rate = 1.0 / (float(np.median(d)) * float(tb))
    return rate if math.isfinite(rate) and rate > 0 else None


# --------------------------------------------------------------------------------------------
# video frames


def _sar(stream) -> Fraction:
    """Sample (pixel) aspect ratio of a video stream; 1 when unknown."""
    try:
        sar = stream.sample_aspect_ratio
    except Exception:  # pragma: no cover
        sar = None
    return Fraction(sar) if sar else Fraction(1)


def _frame_to_array(frame, size: tuple[int, int] | None, gray: bool, rot: int, sar: Fraction = Fraction(1),
                    mirrored: bool = False) -> np.ndarray:
    fmt = "gray" if gray else "rgb24"
    if size is None and sar != 1:  # non-square pixels: scale to the display shape
        w = max(1, int(round(frame.width * sar)))
        size = (w, frame.height) if rot not in (90, 270) else (frame.height, w)
    if size is not None:
        w, h = int(size[0]), int(size[1])
        if rot in (90, 270):  # size is the display size; scale the coded picture to (h, w)
            w, h = h, w
        if (w, h) != (frame.width, frame.height):
            shrink = w * h < frame.width * frame.height
            frame = frame.reformat(width=w, height=h, format=fmt, interpolation="AREA" if shrink else "BILINEAR")
    arr = frame.to_ndarray(format=fmt)
    if gray and arr.ndim == 3:
        arr = arr[..., 0]
    if mirrored:
        arr = arr[:, ::-1]
    if rot or mirrored:
        arr = np.ascontiguousarray(np.rot90(arr, k=-(rot // 90)))
    return arr


# pixel formats whose first plane is the 8-bit luma picture at full resolution
_LUMA_FORMATS = {
    "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
    "yuv411p", "yuv410p", "nv12", "nv21", "nv16", "gray", "yuva420p", "yuva422p", "yuva444p",
}


def _luma_plane(frame) -> np.ndarray:
    """(H, W) uint8 luma of a decoded frame: a zero-copy view of its Y plane when it has one,
    else libswscale's grey conversion."""
    if frame.format.name in _LUMA_FORMATS:
        plane = frame.planes[0]
        buf = np.frombuffer(plane, np.uint8)
        return buf.reshape(-1, plane.line_size)[: frame.height, : frame.width]
    arr = frame.to_ndarray(format="gray")
    return arr[..., 0] if arr.ndim == 3 else arr


def _rect_in_source(rect: tuple[int, int, int, int], rot_cw: int, w: int, h: int) -> tuple[int, int, int, int]:
    """A display-space rectangle (x, y, w, h) in the unrotated picture's coordinates (``w`` x ``h``
    is the unrotated picture's size)."""
    x, y, rw, rh = rect
    pts = []
    for cx, cy in ((x, y), (x + rw, y), (x, y + rh), (x + rw, y + rh)):
        if rot_cw == 0:
            pts.append((cx, cy))
        elif rot_cw == 90:  # display (cx, cy) <- source (cy, h - cx)
            pts.append((cy, h - cx))
        elif rot_cw == 180:
            pts.append((w - cx, h - cy))
        else:  # 270
            pts.append((w - cy, cx))
    xs = [q[0] for q in pts]
    ys = [q[1] for q in pts]
    return int(min(xs)), int(min(ys)), int(max(xs) - min(xs)), int(max(ys) - min(ys))


def _resize(arr: np.ndarray, w: int, h: int, fast: bool = False) -> np.ndarray:
    """Resize an (H, W[, 3]) uint8 picture to (h, w): area averaging when shrinking (OpenCV).

    ``fast``: shrink by the largest whole factor k first (OpenCV's k x k block-mean path, ~20x
    cheaper than its general area resampling at a fractional factor), then bilinearly by the rest
    (a factor under 2, on a picture already averaged over k x k blocks): nearly the same picture
    (a grey level or two; the < k edge pixels that do not fill a block are dropped). For 344x256
    -> 128x95 that is ~0.02 ms instead of ~0.15-0.25 ms a frame (decoding one takes ~0.5 ms):
    what the impact timing uses.
    """
    if (arr.shape[1], arr.shape[0]) == (w, h):
        return arr.copy() if arr.base is not None else arr  # never a view of the decoder's buffer
    import cv2

    H, W = arr.shape[:2]
    if w * h >= W * H:
        return cv2.resize(arr, (w, h), interpolation=cv2.INTER_LINEAR)
    if fast:
        k = int(min(W / w, H / h))
        if k >= 2:
            kw, kh = W // k, H // k
            if (kw, kh) != (W / k, H / k):  # whole blocks only (drops < k edge pixels)
                arr = arr[: kh * k, : kw * k]
            arr = cv2.resize(arr, (kw, kh), interpolation=cv2.INTER_AREA)
            if (kw, kh) == (w, h):
                return arr
            return cv2.resize(arr, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(arr, (w, h), interpolation=cv2.INTER_AREA)


class _Converter:
    """Decoded frame -> output array, set up from the first frame (rotation, pixel aspect, crop)."""

    def __init__(self, frame, stream, p: Path, size, gray, crop, blocks: bool = False) -> None:
        self.rot, self.mirrored = rot, mirrored = _orientation(frame, stream)
        self.sar = sar = _sar(stream)
        self.gray = gray
        w0, h0 = frame.width, frame.height
        pre_w = max(1, int(round(w0 * sar)))  # display width before rotation
        dw, dh = (h0, pre_w) if rot in (90, 270) else (pre_w, h0)
        self.src = None  # (x, y, w, h) of the coded picture to use, None: all of it
        if crop is not None:
            x, y, cw, ch = (int(v) for v in crop)
            x0, y0, x1, y1 = max(0, x), max(0, y), min(dw, x + cw), min(dh, y + ch)
            if x1 - x0 < 1 or y1 - y0 < 1:
                raise ValueError(f"crop {x},{y},{cw},{ch} lies outside the {dw}x{dh} picture of {p}")
            crop = (x0, y0, x1 - x0, y1 - y0)
            sx, sy, sw, sh = _rect_in_source(crop, rot, pre_w, h0)
            if mirrored:  # the rectangle in the picture before its mirroring
                sx = pre_w - sx - sw
            if sar != 1:
                sx1 = int(round((sx + sw) / sar))
                sx = int(round(sx / sar))
                sw = max(1, sx1 - sx)
            if (sx, sy, sw, sh) != (0, 0, w0, h0):
                self.src = (sx, sy, sw, sh)
            if size is None:
                size = (crop[2], crop[3])
        self.size = size
        out_w, out_h = size if size is not None else (dw, dh)
        self.target = (int(out_h), int(out_w)) if rot in (90, 270) else (int(out_w), int(out_h))  # before rotation
        self.fast = gray == "luma" or self.src is not None
        self.blocks = bool(blocks) and gray == "luma"

    def __call__(self, frame) -> np.ndarray:
        if not self.fast:
            return _frame_to_array(frame, self.size, bool(self.gray), self.rot, self.sar, self.mirrored)
        if self.gray == "luma":
            arr = _luma_plane(frame)
        else:
            fmt = "gray" if self.gray else "rgb24"
            arr = frame.to_ndarray(format=fmt)
            if self.gray and arr.ndim == 3:
                arr = arr[..., 0]
        if self.src is not None:
            sx, sy, sw, sh = self.src
            arr = arr[sy : sy + sh, sx : sx + sw]
        arr = _resize(arr, *self.target, fast=self.blocks)
        if self.mirrored:
            arr = arr[:, ::-1]
        if self.rot or self.mirrored:
            arr = np.ascontiguousarray(np.rot90(arr, k=-(self.rot // 90)))
        return arr


def iter_video_frames(
    path: str | os.PathLike,
    fps: float = 30.0,
    size: tuple[int, int] | None = None,
    start: float = 0.0,
    end: float | None = None,
    gray: bool | str = False,
    crop: tuple[int, int, int, int] | None = None,
    shrink: str = "area",
    source_times: bool = False,
    align: bool = False,
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream frames at a fixed rate, chosen by timestamp.

    Args:
        path: any video PyAV opens.
        fps: output frame rate.
        size: ``(w, h)`` display size of the output frames (after rotation); default: the
            video's display size (non-square pixels are scaled to square ones), or the crop's size.
        start: seconds; the first output frame is at ``start`` (the decoder seeks there).
        end: seconds (exclusive); default: the end of the video stream.
        gray: ``False``: ``(H, W, 3)`` RGB. ``True``: ``(H, W)`` grey (full range, libswscale).
            ``"luma"``: ``(H, W)`` luma plane exactly as decoded (no colour or range conversion;
            video-range sources keep their 16-235 levels), shrunk by area averaging (OpenCV, see
            ``shrink``): the cheapest picture there is, for motion analysis.
        crop: ``(x, y, w, h)`` rectangle in display pixels (after rotation) to keep, before
            resizing to ``size``; clipped to the picture (``ValueError`` if it misses it).
        shrink: with ``gray="luma"``: ``"area"`` (OpenCV's area resampling in one step) or
            ``"blocks"`` (whole k x k blocks first, then bilinear by the rest: nearly the same
            picture at a tenth of the cost, see :func:`_resize`).
        source_times: also yield the presentation time of the source frame shown (seconds, on
            the same clock as ``t``): equal for consecutive outputs that repeat a frame, further
            apart than ``1 / fps`` where frames were dropped (variable-frame-rate files).
        align: start the output times at the first decoded frame's phase: ``t = start + phase +
            k / fps``, ``phase`` the first frame's time after ``start`` modulo ``1 / fps`` (0 for
            frames on the grid from ``start``, as most files have). A video whose first frame
            comes a few ms after the file's start (MPEG-TS, browser and OBS recordings, an audio
            track with an encoder delay) then shows frame k at output k, not k - 1: the motion
            timing had placed every sound up to one frame late there (found by a review).

    Yields:
        ``(t, frame)`` (``(t, frame, source_t)`` with ``source_times``): ``t = start + k / fps``
        and the source frame shown at ``t`` (the last
        one with presentation time ``<= t``; before the first frame, the first frame), as
        ``(H, W, 3)`` or ``(H, W)`` uint8. Frames are yielded while ``t`` is before the end of
        the last source frame, so a 4.0 s clip gives 120 frames at 30 fps.

    Raises:
        MediaError: missing / non-media file, no video stream, zero duration, a stream that stops
            early (truncated file) or cannot be decoded.
    """
    av = _av()
    if not fps or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if end is not None and end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    p, container = _open(path, "video")
    try:
        vs = _video_stream(container, p)
        vs.thread_type = "AUTO"
        tb = vs.time_base
        origin = _origin(container)
        header_end = _stream_end(container, vs, origin)
        src_rate = vs.average_rate or vs.guessed_rate
        src_dt = 1.0 / float(src_rate) if src_rate else 1.0 / 30.0
        tol = min(max(_TIME_TOL, 0.5 * float(tb) if tb else 0.0), 0.25 / fps)
        if start > 0 and tb:
            try:
                container.seek(int(math.floor((start + origin) / tb)), stream=vs, backward=True)
            except av.error.FFmpegError:
                container.seek(0, stream=vs)  # unseekable: decode from the start

        k = 0
        base = start  # the output grid: t_k = base + k / fps (align: moved to the first frame's phase)
        t_k = start
        prev = None  # the last decoded source frame (kept as an AVFrame; converted when emitted)
        prev_t = None
        last_dur = src_dt
        conv = None
        n_decoded = 0
        if gray not in (False, True, "luma"):
            raise ValueError(f"gray must be False, True or 'luma', got {gray!r}")
        if shrink not in ("area", "blocks"):
            raise ValueError(f"shrink must be 'area' or 'blocks', got {shrink!r}")

        def emit(frame):
            # every output gets its own array, also when a source frame repeats (upsampling)
            nonlocal conv
            if conv is None:
                conv = _Converter(frame, vs, p, size, gray, crop, shrink == "blocks")
            return conv(frame)

        demux = container.demux(vs)
        restamp = _Restamp(_stamps_in_decode_order(container, vs))
        done = False
        while not done:
            try:
                packet = next(demux)
                frames = packet.decode()
            except StopIteration:
                done = True
                frames = []
            except av.error.EOFError:
                done = True
                frames = []
            except av.error.FFmpegError as e:
                at = prev_t if prev_t is not None else 0.0
                raise MediaError(
                    f"{p} cannot be decoded past {at:.2f} s ({_reason(e)}); the file is truncated or corrupt."
                ) from e
            for frame, pts in restamp.stamped(frames, end=done):
                n_decoded += 1
                # (the frame's time base read once: PyAV makes a new Fraction at each read, and
                # int / int is the same correctly rounded float as float(Fraction))
                ftb = frame.time_base
                if pts is not None and ftb is not None:
                    ft = _seconds(pts, ftb) - origin
                else:
                    ft = (prev_t + last_dur) if prev_t is not None else 0.0
                if _past_header(ft, header_end):
                    # a damaged timestamp: filling the gap up to it would repeat a frame for hours
                    raise MediaError(
                        f"{p} is corrupt: a video frame is stamped at {ft:.2f} s but the file says it "
                        f"lasts {header_end:.2f} s."
                    )
                if prev_t is not None and ft > prev_t:
                    last_dur = ft - prev_t
                if align and n_decoded == 1:
                    phase = (ft - start) % (1.0 / fps)
                    if tol < phase < 1.0 / fps - tol:
                        base = t_k = start + phase
                        # the grid now sits on the frames' own stamps, rounded to the time base
                        # (Matroska: 1 ms) as the first one's was: a frame stamped up to ~1 ms
                        # after its slot is shown at it (at half a unit a third of the slots of
                        # such a file had shown the previous picture again; found by a review)
                        tol = min(0.25 / fps, max(3.0 * tol, 1e-3))
                # output times before this frame show the previous frame
                while t_k < ft - tol and (end is None or t_k < end - 1e-9):
                    shown, shown_t = (prev, prev_t) if prev is not None else (frame, ft)
                    yield (t_k, emit(shown), shown_t) if source_times else (t_k, emit(shown))
                    k += 1
                    t_k = base + k / fps
                if end is not None and t_k >= end - 1e-9:
                    return
                prev, prev_t = frame, ft
                if frame.duration and ftb is not None:
                    last_dur = _seconds(frame.duration, ftb)
        if prev is None:
            if n_decoded == 0 and start > 0:
                raise MediaError(f"start {start:.3f} s is at or after the end of {p}.")
            raise MediaError(f"{p} has zero duration: its video stream contains no frames.")
        video_end = prev_t + last_dur
        if header_end is not None and video_end < header_end - max(_TRUNC_ABS, _TRUNC_REL * header_end):
            raise MediaError(
                f"{p} is truncated: its video stops at {video_end:.2f} s but the file says "
                f"{header_end:.2f} s."
            )
        counted = int(vs.frames or 0)
        if (start == 0 and end is None and counted and src_rate and container.format.name == "avi"
                and n_decoded < counted - max(2, 0.02 * counted)):
            # an AVI's header counts its frames; where its end is cut off FFmpeg's duration is a
            # guess from what is left, which the check above can pass (a review: 70 of 120 frames
            # processed as a whole 2.3 s clip, without a word). Said, not refused: capture tools
            # count dropped (empty) frames too
            log.warning("%s: its header counts %d video frames (%.2f s), only %d decode (%.2f s): the file may be "
                        "truncated", p, counted, counted / float(src_rate), n_decoded, video_end)
        # the end of the last frame may carry ~1 ms of timestamp rounding (Matroska sources)
        end_tol = max(tol, min(1e-3, 0.25 / fps))
        stop = video_end - end_tol if end is None or end > video_end - end_tol else end - 1e-9
        if k == 0 and t_k >= stop:
            raise MediaError(f"start {start:.3f} s is at or after the end of {p} ({video_end:.3f} s).")
        while t_k < stop:
            yield (t_k, emit(prev), prev_t) if source_times else (t_k, emit(prev))
            k += 1
            t_k = base + k / fps
    finally:
        container.close()


def read_video_frames(
    path: str | os.PathLike,
    fps: float = 30.0,
    size: tuple[int, int] | None = None,
    start: float = 0.0,
    end: float | None = None,
    gray: bool | str = False,
    crop: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """All frames of :func:`iter_video_frames` as one array ``(T, H, W, 3)`` (or ``(T, H, W)``) uint8."""
    frames = [f for _, f in iter_video_frames(path, fps=fps, size=size, start=start, end=end, gray=gray, crop=crop)]
    return np.stack(frames)


# --------------------------------------------------------------------------------------------
# audio


def _audio_frame_to_float(frame) -> np.ndarray:
    """Any PyAV audio frame -> (C, n) float32 in [-1, 1]."""
    arr = frame.to_ndarray()
    fmt = frame.format
    c = len(frame.layout.channels)
    if not fmt.is_planar:
        arr = arr.reshape(-1, c).T  # packed (1, n*C) -> (C, n)
    name = fmt.name.rstrip("p")
    if name == "s16":
        return arr.astype(np.float32) / 32768.0
    if name == "s32":
        return (arr.astype(np.float64) / 2147483648.0).astype(np.float32)
    if name == "s64":
        return (arr.astype(np.float64) / 9223372036854775808.0).astype(np.float32)
    if name == "u8":
        return (arr.astype(np.float32) - 128.0) / 128.0
    return arr.astype(np.float32)


def _map_channels(x: np.ndarray, channels: int | None) -> np.ndarray:
    c = x.shape[0]
    if channels is None or channels == c:
        return x
    if channels == 1:
        return x.mean(axis=0, keepdims=True)
    if c == 1:
        return np.repeat(x, channels, axis=0)
    return x[np.arange(channels) % c]  # fewer: the first ones; more: repeat cyclically


def _surround_to_stereo(x: np.ndarray, names: list[str]) -> np.ndarray:
    """(C, N) surround (no LFE) -> (2, N): each side the weighted mean of its channels, the centre
    ones in both at -3 dB. (Keeping the first two channels, FL and FR, had dropped the centre,
    where a film's main sound is.)"""
    left = np.array([n.endswith("L") or n.endswith("LC") for n in names])
    right = np.array([n.endswith("R") or n.endswith("RC") for n in names])
    centre = ~(left | right)
    out = np.empty((2, x.shape[1]), np.float32)
    for k, side in enumerate((left, right)):
        w = np.where(side, 1.0, np.where(centre, math.sqrt(0.5), 0.0))
        out[k] = (w @ x) / max(float(w.sum()), 1e-9)
    return out


def resample_audio(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``(C, N)`` float32 audio with soxr (high quality). Returns ``(C, M)``."""
    if int(sr_in) == int(sr_out) or audio.shape[-1] == 0:
        return np.ascontiguousarray(audio, dtype=np.float32)
    import soxr

    # channel by channel (the same samples as soxr's interleaved call, bit for bit): the (N, C)
    # copies in and out had held a long file three times over (found by a review: 5 GB for an
    # hour of 48 kHz stereo)
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]  # (a 1-D input comes back (1, M), as it always had)
    if x.shape[0] == 0:
        return np.zeros((0, int(round(x.shape[1] * int(sr_out) / int(sr_in)))), np.float32)
    y = None
    for i, c in enumerate(x):
        r = soxr.resample(np.ascontiguousarray(c), int(sr_in), int(sr_out), quality="HQ")
        if y is None:
            y = np.empty((x.shape[0], r.shape[0]), np.float32)
        y[i] = r
        del r  # (one row at a time beside the result)
    return y


def _wav_missing_bytes(p: Path) -> int:
    """Bytes a WAV file's 'data' chunk header promises beyond the end of the file (0 if complete
    or unknown). FFmpeg clamps the data size to the file, so truncation is checked here."""
    import struct

    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return 0
            endian = "<" if head[:4] == b"RIFF" else ">"
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                cid, clen = struct.unpack(endian + "4sI", f.read(8))
                if cid == b"data":
                    if clen in (0, 0xFFFFFFFF) or clen >= 0xFFFFFF00:  # streamed: size unknown
                        return 0
                    return max(0, pos + 8 + clen - size)
                pos += 8 + clen + (clen & 1)
    except OSError:
        return 0
    return 0


class _Samples:
    """The ``(C, N)`` float32 chunks of a decode, collected: into one array of ``expect`` samples
    while they fit it (what is past it is dropped: the caller cuts there anyway), else as a list
    joined at the end (no length known, a channel count that changes)."""

    def __init__(self, expect: int | None) -> None:
        self._expect = expect
        self._arr: np.ndarray | None = None
        self._n = 0
        self._list: list[np.ndarray] | None = None if expect else []

    def append(self, x: np.ndarray) -> None:
        if self._list is None:
            if self._arr is None:
                self._arr = np.empty((x.shape[0], self._expect), np.float32)
            if x.shape[0] == self._arr.shape[0]:
                k = min(x.shape[1], self._expect - self._n)
                self._arr[:, self._n : self._n + k] = x[:, :k]
                self._n += k
                return
            self._list = [self._arr[:, : self._n]]  # (the channels changed: joined at the end)
            self._arr = None
        self._list.append(x)

    def result(self) -> np.ndarray:
        if self._list is None:
            x, self._arr = self._arr, None
            return x if self._n == x.shape[1] else np.ascontiguousarray(x[:, : self._n])
        c = max(ch.shape[0] for ch in self._list)
        x = np.concatenate([ch if ch.shape[0] == c else _map_channels(ch, c) for ch in self._list], axis=1)
        self._list = None
        return x


def _decode_audio(path, start: float = 0.0, duration: float | None = None,
                  names: list | None = None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of ``path`` at its own rate: ``((C, N) float32, sr)``.
    ``names``, if given, receives the channels' names (``FL``, ``LFE``, ...) of the first frame."""
    av = _av()
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    p, container = _open(path, "audio file")
    try:
        a = _audio_stream(container, p)
        if container.format.name == "wav" and _wav_missing_bytes(p) > 0:
            raise MediaError(f"{p} is truncated: its WAV header promises {_wav_missing_bytes(p)} more bytes of audio than the file holds.")
        sr = int(a.sample_rate or a.codec_context.sample_rate)
        if not sr:
            raise MediaError(f"the audio stream of {p} has no sample rate; the file is corrupt.")
        tb = a.time_base
        origin = _origin(container)
        header_end = _stream_end(container, a, origin)
        # Seek only where timestamps are sample accurate; with coarse ones (Matroska: 1 ms) decode
        # from the start and count samples, so `start` lands on the exact sample.
        if start > 0 and tb and tb <= Fraction(1, sr):
            try:  # 0.2 s of pre-roll so codecs with overlapping frames (AAC, mp3) decode cleanly
                container.seek(int(math.floor((max(0.0, start - 0.2) + origin) / tb)), stream=a, backward=True)
            except av.error.FFmpegError:
                container.seek(0, stream=a)
        want = None if duration is None else int(round(duration * sr))
        # the samples go straight into one array as long as the header says the stream is (samples
        # past it are codec padding, cut below anyway): a long file had been held twice, its
        # chunks and then their concatenation
        expect = None
        n_hdr = int(round((header_end - start) * sr)) if header_end is not None else None
        if n_hdr is not None and n_hdr > 0 and (want is None or want <= n_hdr):
            expect = n_hdr if want is None else want
        chunks = _Samples(expect)
        have = 0  # samples collected (from `start` on)
        pos = None  # index, relative to `start`, of the next decoded sample (from the first pts only)
        demux = container.demux(a)
        done = False
        while not done:
            try:
                packet = next(demux)
                frames = packet.decode()
            except StopIteration:
                break
            except av.error.EOFError:
                break
            except av.error.FFmpegError as e:
                at = start + max(pos or 0, 0) / sr
                raise MediaError(
                    f"{p} cannot be decoded past {at:.2f} s ({_reason(e)}); the file is truncated or corrupt."
                ) from e
            for frame in frames:
                x = _audio_frame_to_float(frame)
                if names is not None and not names:
                    names.extend(str(ch.name) for ch in frame.layout.channels)
                if pos is None:
                    ft = 0.0
                    if frame.pts is not None and frame.time_base is not None:
                        ft = _seconds(frame.pts, frame.time_base) - origin
                    pos = int(round((ft - start) * sr))
                    if pos > 0:  # the audio starts after `start`: silence before it
                        chunks.append(np.zeros((x.shape[0], pos), np.float32))
                        have += pos
                n = x.shape[1]
                if pos + n <= 0:
                    pos += n
                    continue
                if pos < 0:
                    x = x[:, -pos:]
                pos += n
                chunks.append(x)
                have += x.shape[1]
                if want is not None and have >= want:
                    done = True
                    break
        if have == 0:
            if start > 0:
                raise MediaError(f"start {start:.3f} s is at or after the end of the audio in {p}.")
            raise MediaError(f"{p} has zero duration: its audio stream contains no samples.")
        x = chunks.result()
        del chunks
        if n_hdr is not None and want is None:
            if x.shape[1] > n_hdr > 0:
                x = x[:, :n_hdr]  # codec padding past the stream's stated end (AAC)
            elif x.shape[1] < n_hdr - max(_TRUNC_ABS, _TRUNC_REL * header_end) * sr:
                raise MediaError(
                    f"{p} is truncated: its audio stops at {start + x.shape[1] / sr:.2f} s but the file "
                    f"says {header_end:.2f} s."
                )
        if want is not None:
            x = x[:, :want]
        if x.shape[1] == 0:
            raise MediaError(f"{p} has zero duration: its audio stream contains no samples.")
        return np.ascontiguousarray(x, dtype=np.float32), sr
    finally:
        container.close()


#: a sample over +18 dBFS (``_GLITCH_OVER`` x full scale) with nothing within 36 dB of it
#: (``_GLITCH_RATIO``) in the ``_GLITCH_NEAR`` samples on either side is a glitch, not sound: only a
#: float file can hold one, and no real sound rises that far in under a millisecond and falls back
_GLITCH_OVER, _GLITCH_RATIO, _GLITCH_NEAR = 8.0, 64.0, 32


def _glitches(x: np.ndarray) -> np.ndarray | None:
    """Mask of the isolated huge samples of ``x`` (C, N), or None if there are none. A file with
    many samples over +18 dBFS (a float file at the scale of 16-bit integers), or whose other
    samples are not sound at the usual scale, is what it is, not damaged."""
    over = (x > _GLITCH_OVER) | (x < -_GLITCH_OVER)  # (no float copy of a long file)
    n = int(np.count_nonzero(over))
    if n == 0 or n > max(16, x.size // 10000):
        return None
    # ... in a file whose other samples are sound at the usual scale (peak 1e-3 ... 2): an impulse
    # response, a click track or a test tone file at the scale of 16-bit integers, with nothing
    # else in it, is what it is (a review of this rule found such files zeroed)
    rest = float(np.max(np.abs(np.where(over, np.float32(0.0), x))))  # (a rare path: a copy is fine)
    if not 1e-3 <= rest <= 2.0:
        return None
    mask = np.zeros_like(over)
    for c, i in zip(*np.nonzero(over)):
        span = slice(max(0, i - _GLITCH_NEAR), i + _GLITCH_NEAR + 1)
        near = np.where(over[c, span], 0.0, np.abs(x[c, span]))  # the neighbourhood, less the huge samples
        if float(near.max()) * _GLITCH_RATIO < abs(float(x[c, i])):
            mask[c, i] = True
    return mask if mask.any() else None


def read_audio(
    path: str | os.PathLike,
    sr: int | None,
    channels: int | None = 1,
    start: float = 0.0,
    duration: float | None = None,
    drop_lfe: bool | None = None,
) -> np.ndarray:
    """Decode audio from any file PyAV opens, as ``(channels, N)`` float32 at ``sr`` Hz.

    Args:
        path: wav, flac, mp3, ogg, m4a, or a video's audio track (AAC in mp4/mov, ...).
        sr: output sample rate (soxr resampling); ``None`` keeps the file's rate.
        channels: 1 averages all channels; more than the file has repeats them (mono -> stereo);
            fewer keeps the first ones, except that 2 from a surround file is its left and right
            sides (centre channels in both at -3 dB); ``None`` keeps the file's channels.
        drop_lfe: leave out a surround file's low-frequency effects channel (LFE, of a 5.1 or
            7.1 layout the file declares), as ITU-R BS.775 downmixes do. Default: for the
            downmixes (``channels`` 1 or 2), not for ``None`` (a caller that mixes the channels
            itself passes True).
        start: seconds from the start of the file.
        duration: seconds to read (default: to the end); the result is shorter if the file ends.

    Returns:
        ``(channels, N)`` float32 (in [-1, 1], except a float file's own overs; NaN or infinite
        samples, and isolated ones over +18 dBFS (:func:`_glitches`), are read as 0, with a
        warning). ``N = round(duration * sr)`` when the file is long enough (up to one sample of
        resampler rounding).

    Raises:
        MediaError: missing / non-media file, no audio stream, zero duration, truncated file.
    """
    names: list[str] = []
    x, file_sr = _decode_audio(path, start=start, duration=duration, names=names)
    if len(names) != x.shape[0] or "NONE" in names:
        names = []  # an unknown layout (a WAV without a channel mask): the channels as they come
    if drop_lfe is None:
        drop_lfe = channels in (1, 2)
    if drop_lfe and x.shape[0] > 2 and any(n.startswith("LFE") for n in names):
        # a 5.1 / 7.1 file's low-frequency effects channel is left out of every downmix (as
        # ITU-R BS.775 does): mixed at the weight of a main channel, a film's rumble became part of
        # a reference's hits and of an envelope's level
        keep = [i for i, n in enumerate(names) if not n.startswith("LFE")]
        x, names = x[keep], [names[i] for i in keep]
    bad = ~np.isfinite(x)
    if np.any(bad):
        # a damaged float file (a plugin's glitch in an export): its NaN / inf samples would
        # spread through the resampler and poison every measure of the recording (found by a review)
        log.warning("%s has %d NaN or infinite samples (a damaged float file): read as 0", path,
                    int(np.count_nonzero(bad)))
        x = np.where(bad, np.float32(0.0), x)
    glitch = _glitches(x)
    if glitch is not None:
        # one finite but huge sample (1e6) made the file's peak: normalised by it, a reference
        # had "no usable sound" and an envelope read from it was silent (found by a review)
        log.warning("%s has %d isolated samples over +18 dBFS (a glitch in a damaged float file): read as 0", path,
                    int(np.count_nonzero(glitch)))
        x[glitch] = 0.0
    if channels == 2 and x.shape[0] > 2 and names:
        x = _surround_to_stereo(x, names)
    x = _map_channels(x, channels)
    if sr is not None and int(sr) != file_sr:
        n_out = int(round(x.shape[1] * int(sr) / file_sr))
        x = resample_audio(x, file_sr, int(sr))
        x = x[:, :n_out] if x.shape[1] >= n_out else np.pad(x, ((0, 0), (0, n_out - x.shape[1])))
    return x


def audio_info(path: str | os.PathLike) -> tuple[int, int, float]:
    """``(sample_rate, channels, duration_seconds)`` of the first audio stream (from headers)."""
    p, container = _open(path, "audio file")
    try:
        a = _audio_stream(container, p)
        end = _stream_end(container, a, _origin(container))
        if end is None:
            end = container.duration / 1_000_000 if container.duration else 0.0
        return int(a.sample_rate), int(a.codec_context.channels), float(end)
    finally:
        container.close()


_SF_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
_SF_BYTES = {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4}
#: the most audio data a plain RIFF WAV can describe (its sizes are 32-bit), less room for its header
WAV_MAX_DATA = 0xFFFFFFFF - 1024


def wav_format(frames: int, channels: int, subtype: str = "PCM_16") -> str:
    """``"WAV"``, or ``"RF64"`` for audio too long for a WAV's 32-bit sizes (over 4 GiB of samples:
    6.8 h of 16-bit 44.1 kHz stereo). Past that a WAV's header had been saturated and readers lost
    the rest (found by a review); RF64 (EBU Tech 3306) is the same file with 64-bit sizes, read by
    FFmpeg, libsndfile, sox and the usual audio editors, under the same .wav name."""
    size = int(frames) * int(channels) * _SF_BYTES.get(subtype.upper(), 4)
    return "RF64" if size > WAV_MAX_DATA else "WAV"


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    """Write ``(C, N)`` (or ``(N,)``) float audio to WAV or FLAC (by suffix), atomically.

    Args:
        subtype: ``"PCM_16"``, ``"PCM_24"`` or ``"FLOAT"`` (WAV only). PCM output is clipped to
            [-1, 1].
    """
    import soundfile as sf

    p = Path(path)
    fmt = _SF_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise MediaError(f"cannot write audio to {p}: use a .wav or .flac file name.")
    subtype = subtype.upper()
    if subtype not in _SF_BYTES:
        raise MediaError(f"unknown audio subtype {subtype!r}; use PCM_16, PCM_24 or FLOAT.")
    if fmt == "FLAC" and subtype == "FLOAT":
        raise MediaError("FLAC cannot store float samples; use PCM_16 or PCM_24, or write a .wav file.")
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] > 64:
        raise ValueError(f"audio must be (C, N) with C channels first, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite values")
    if subtype != "FLOAT":
        x = np.clip(x, -1.0, 1.0)
    if fmt == "WAV":
        fmt = wav_format(x.shape[1], x.shape[0], subtype)
    with atomic_output(p) as tmp:
        sf.write(str(tmp), x.T, int(sr), subtype=subtype, format=fmt)
    return p


# --------------------------------------------------------------------------------------------
# muxing


def mux_options(fmt: str) -> dict[str, str] | None:
    """Options for writing a ``fmt`` container: Matroska's muxer writes random segment and track
    UIDs unless told +bitexact (the same seed had given another .mkv each run; found by a review).
    MP4 and MOV have none."""
    return {"fflags": "+bitexact"} if fmt in ("matroska", "webm") else None


def _out_format(out: Path) -> str:
    fmt = MUX_CONTAINERS.get(out.suffix.lower())
    if fmt is None:
        raise MediaError(
            f"cannot write {out}: the output must be a {', '.join(sorted(MUX_CONTAINERS))} file."
        )
    return fmt


# the containers folai writes, in the order a default output name picks them
COPY_SUFFIXES = (".mp4", ".mkv", ".mov")


def _trial_mux(key: tuple, fmt: str, attempt) -> bool:
    """Whether ``attempt(container)`` runs without the muxer refusing, on an in-memory ``fmt``
    container (closed afterwards, quietly); answered once per ``key``."""
    import io

    if key in _CARRIES:  # (generate asks before stage 1 and again when it muxes)
        return _CARRIES[key]
    av = _av()
    try:
        c = av.open(io.BytesIO(), "w", format=fmt)
    except av.error.FFmpegError:  # pragma: no cover - the three muxers are always built
        return False
    try:
        attempt(c)
        ok = True
    except (ValueError, av.error.FFmpegError):
        ok = False
    finally:
        try:
            c.close()
        except (ValueError, av.error.FFmpegError):
            pass
    _CARRIES[key] = ok
    return ok


def _carries(fmt: str, vs) -> bool:
    """Whether muxer ``fmt`` takes the video stream ``vs`` copied as it is (no encoding). A GIF
    never is: QuickTime files take its frames, but few players show them."""
    if vs.codec_context.name == "gif":
        return False

    def attempt(c) -> None:
        c.add_stream_from_template(vs, opaque=True)
        # the header too: Matroska takes a raw YUV stream (a .y4m file's) until it writes the
        # header, and a generate into .mkv failed there, after all its work (found by a review)
        c.start_encoding()

    return _trial_mux((fmt, vs.codec_context.name, vs.codec_context.codec_tag), fmt, attempt)


#: _carries' and _keeps_audio's answers by (muxer, codec, codec tag, ...)
_CARRIES: dict[tuple, bool] = {}


def _keeps_audio(fmt: str, stream) -> bool:
    """Whether muxer ``fmt`` takes the audio ``stream`` copied. MP4 and QuickTime refuse a codec
    they have no sample entry for (PCM in .mp4, FLAC or Opus in .mov) only when they write their
    index, at the end: a packet is muxed into memory and the file closed to find out. Matroska
    is not asked so (it takes any audio, but builds its track header from the first real packet
    where the stream has no extradata, as an MPEG-TS's AAC: a made-up packet was refused; found
    by a review)."""
    if fmt not in ("mp4", "mov"):
        return True

    def attempt(c) -> None:
        out = c.add_stream_from_template(stream)
        c.start_encoding()
        pkt = _av().Packet(bytes(8))
        pkt.stream, pkt.pts, pkt.dts, pkt.duration = out, 0, 0, 1
        pkt.time_base = out.time_base or Fraction(1, 48000)
        c.mux(pkt)
        c.close()  # (where the refusal comes)

    key = ("keep", fmt, stream.codec_context.name, stream.codec_context.codec_tag, bool(stream.codec_context.extradata))
    return _trial_mux(key, fmt, attempt)


#: sample-entry tags of the same codec that MP4 / QuickTime players tell apart: Apple's players and
#: editors play HEVC tagged hvc1 (an iPhone's) but not hev1, which the muxer writes by default
_KEPT_TAGS = {"hvc1", "hev1", "avc1", "avc3", "dvh1", "dvhe"}
#: ProRes flavours (Proxy, LT, 422, HQ, 4444, 4444 XQ): the tag is the flavour, and a copy had been
#: labelled 422 HQ whatever it was (a 4444 then decoded at 10 bits, not 12); kept in Matroska too
_PRORES_TAGS = {"apco", "apcs", "apcn", "apch", "ap4h", "ap4x"}


def _keep_copy_params(src, dst, fmt: str) -> None:
    """Give the copied stream ``dst`` the source's sample-entry tag when both files are MP4 /
    QuickTime and it is one of :data:`_KEPT_TAGS` (HEVC from another container with its parameter
    sets in its header: ``hvc1``), or a ProRes flavour's (:data:`_PRORES_TAGS`,
    also into Matroska; PyAV clears the tag on a copy), and the source's pixel aspect ratio when
    only its container states it."""
    try:
        tag = src.codec_context.codec_tag
    except Exception:  # pragma: no cover - a stream without a readable tag
        return
    from_mp4 = src.container.format.name.split(",")[0] in ("mov", "mp4")
    if fmt in ("mp4", "mov") and tag in _KEPT_TAGS and from_mp4:
        dst.codec_context.codec_tag = tag
    elif fmt in ("mp4", "mov") and not from_mp4 and src.codec_context.name == "hevc" and src.codec_context.extradata:
        # HEVC from Matroska (OBS, HandBrake) with its parameter sets in the track header: labelled
        # hev1 by the muxer, which Apple's players and editors refuse; hvc1 (the sample entry
        # holds the parameter sets), as `ffmpeg -tag:v hvc1` does (found by a review)
        dst.codec_context.codec_tag = "hvc1"
    elif tag in _PRORES_TAGS and fmt in ("mov", "matroska"):
        dst.codec_context.codec_tag = tag
    # a pixel aspect ratio stored only by the container (QuickTime's 'pasp': ProRes, Animation)
    # is not in the copied codec parameters: the output had shown an anamorphic picture squeezed
    try:
        sar, csar = src.sample_aspect_ratio, src.codec_context.sample_aspect_ratio
        if sar and sar != 1 and not csar:
            dst.codec_context.sample_aspect_ratio = sar
    except Exception:  # pragma: no cover - a stream without readable aspect ratios
        pass


def copy_suffixes(video: str | os.PathLike) -> list[str]:
    """The output suffixes (of :data:`COPY_SUFFIXES`, in that order) whose container can carry the
    video stream of ``video`` copied packet for packet (VP8: ``.mkv``); ``[]`` for a codec
    none of them carries (GIF, Flash video, Windows Media, HuffYUV, ...: those are re-encoded).
    Part of :func:`probe_video`'s (remembered) answer."""
    return list(probe_video(video).copy_suffixes)


def _suffixes_carrying(vs) -> list[str]:
    """:data:`COPY_SUFFIXES` whose container takes the video stream ``vs`` copied as it is."""
    if _unstamped_reordered(vs):
        return []
    fits = [x for x in COPY_SUFFIXES if _carries(MUX_CONTAINERS[x], vs)]
    if _has_alpha(vs) and ".mkv" in fits:  # (only Matroska keeps it: the default output's suffix)
        fits.remove(".mkv")
        fits.insert(0, ".mkv")
    return fits


def _has_alpha(vs) -> bool:
    """A WebM / Matroska VP8 or VP9 stream with an alpha channel (``alpha_mode`` 1; its alpha rides
    in Matroska's BlockAdditional data, which an .mp4 or .mov copy drops: a transparent overlay
    had come out opaque in the default .mp4, without a word; found by a review)."""
    return str(vs.metadata.get("alpha_mode") or vs.metadata.get("ALPHA_MODE") or "") == "1"


def _unstamped_reordered(vs) -> bool:
    """An H.264 or HEVC stream with B-frames from an AVI file: its packets carry decode-order
    stamps, and copied into an .mp4, .mkv or .mov file, whose players show frames by their stamps,
    37 of 180 frames played in the wrong place (found by a review). It is re-encoded instead
    (MPEG-4 Part 2, xvid's, copies correctly: FFmpeg unpacks its B-frames)."""
    return vs.codec_context.name in ("h264", "hevc") and _stamps_in_decode_order(vs.container, vs)


def _refuse_copy(p: Path, codec: str, carriers, fmt: str, suffix: str | None = None) -> None:
    """Raise a MediaError when a ``codec`` video (of ``p``) that the containers of the suffixes
    ``carriers`` carry does not fit muxer ``fmt`` (an output ``suffix`` file) but another one does."""
    here = suffix or next(x for x in COPY_SUFFIXES if MUX_CONTAINERS[x] == fmt)
    others = [x for x in carriers if MUX_CONTAINERS[x] != fmt]
    if others:
        raise MediaError(
            f"the {codec} video of {p} cannot be copied into a {here} file; write a "
            f"{' or '.join(others)} file instead (e.g. -o {p.stem}.foley{others[0]})."
        )


def check_copy(video: str | os.PathLike, out: str | os.PathLike) -> None:
    """Raise now the error that muxing ``video``'s stream into ``out`` would raise later (a codec
    its container cannot carry, when another one can): before a long analysis, not after it.
    From :func:`probe_video`'s remembered answer: the file is not opened again."""
    suffix = Path(out).suffix.lower()
    fmt = MUX_CONTAINERS.get(suffix)
    if fmt is None:
        return
    info = probe_video(video)
    if not any(MUX_CONTAINERS[x] == fmt for x in info.copy_suffixes):
        _refuse_copy(info.path, info.codec, info.copy_suffixes, fmt, suffix)
    if info.alpha and fmt != "matroska":
        log.warning("the %s video of %s has an alpha channel, which a %s file drops: write a .mkv file to keep "
                    "it (e.g. -o %s.foley.mkv)", info.codec, info.path, suffix, info.path.stem)


class _Cancelled(Exception):
    """Work in a background thread stopped because its caller no longer needs it (see _cancelled)."""


def _cancelled() -> bool:
    """Whether the thread running this was asked to stop (its ``folai_cancel`` event, set by the
    pipeline's background jobs when ``generate`` is stopped: a re-encode of a long source had
    made a Ctrl-C wait seconds for work whose result was thrown away)."""
    import threading

    ev = getattr(threading.current_thread(), "folai_cancel", None)
    return ev is not None and ev.is_set()


def _reencoded(p: Path, vs, keep_existing: bool) -> Path:
    """A temporary QuickTime file with the video stream of ``p`` encoded as H.264 (same frames,
    same timestamps; its audio streams copied when ``keep_existing``). For a codec that no output
    container carries; the caller deletes the file."""
    av = _av()
    codec = "libx264"
    try:
        av.codec.Codec(codec, "w")
    except Exception:  # pragma: no cover - PyAV's wheels include libx264
        codec = "mpeg4"
    fd, name = tempfile.mkstemp(prefix="folai-video-", suffix=".mov")  # (Matroska would round times to 1 ms)
    os.close(fd)
    tmp = Path(name)
    try:
        with av.open(str(p), "r", metadata_errors="ignore") as cin, av.open(name, "w", format="mov") as cout:
            src = cin.streams[vs.index]
            src.thread_type = "AUTO"
            cc = src.codec_context
            w, h = cc.width, cc.height
            if not (w and h):  # not in the headers: the first picture tells
                w, h = next(((f.width, f.height) for f in cin.decode(src)), (0, 0))
                cin.seek(0, stream=src)
            w, h = max(2, w - w % 2), max(2, h - h % 2)  # 4:2:0 needs even sizes
            ovs = cout.add_stream(codec, rate=src.average_rate or src.guessed_rate or 30)
            ovs.width, ovs.height, ovs.pix_fmt = w, h, "yuv420p"
            ovs.time_base = src.time_base
            ovs.codec_context.time_base = src.time_base
            if cc.sample_aspect_ratio:
                ovs.codec_context.sample_aspect_ratio = cc.sample_aspect_ratio
            if codec == "libx264":  # (a constant quantiser: x264's CRF mode differs run to run)
                ovs.options = {"qp": "18", "preset": "veryfast"}
            else:  # pragma: no cover
                ovs.bit_rate = 8_000_000
            keep = list(cin.streams.audio) if keep_existing else []
            omap = {}
            for a in keep:
                try:
                    omap[a.index] = cout.add_stream_from_template(a)
                except Exception as e:
                    raise MediaError(f"the existing {a.codec_context.name} audio of {p} cannot be kept ({_reason(e)}).") from e
            last = None
            step = max(1, int(round(1.0 / (float(ovs.average_rate or 30) * float(src.time_base))))) if src.time_base else 1
            restamp = _Restamp(_stamps_in_decode_order(cin, src))

            def put(fr, pts, last):
                """Encode frame ``fr`` at ``pts``; returns the last pts encoded."""
                pts = pts if pts is not None else (0 if last is None else last + step)
                if last is not None and pts <= last:
                    return last  # the encoder needs increasing timestamps
                out = fr.reformat(width=w, height=h, format="yuv420p")
                out.pts, out.time_base = pts, src.time_base
                for op in ovs.encode(out):
                    cout.mux(op)
                return pts
            for pkt in cin.demux([src, *keep]):
                if _cancelled():
                    raise _Cancelled(f"re-encoding {p} was cancelled")
                if pkt.stream.index != src.index:
                    if pkt.size and pkt.dts is not None:
                        pkt.stream = omap[pkt.stream.index]
                        cout.mux(pkt)
                    continue
                for fr, pts in restamp.stamped(pkt.decode()):
                    last = put(fr, pts, last)
            for fr, pts in restamp.stamped([], end=True):
                last = put(fr, pts, last)
            for op in ovs.encode():
                cout.mux(op)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, av.error.FFmpegError):
            raise MediaError(f"re-encoding the video of {p} failed ({_reason(e)}); the file is truncated or corrupt.") from e
        raise
    return tmp


class _DtsFixer:
    """Fill in missing decode timestamps (Matroska sources) so mp4/mov muxers accept the packets."""

    def __init__(self):
        self.pending: list = []
        self.last_dts: int | None = None

    def push(self, pkt) -> list:
        if pkt.dts is None and self.last_dts is None:
            self.pending.append(pkt)
            return []
        if pkt.dts is None:
            pkt.dts = self.last_dts + 1
        out = []
        if self.pending:
            step = pkt.duration or 1
            for i, q in enumerate(self.pending):
                q.dts = pkt.dts - (len(self.pending) - i) * step
                if q.pts is not None and q.dts > q.pts:
                    q.dts = q.pts
                out.append(q)
            self.pending = []
        self.last_dts = pkt.dts
        out.append(pkt)
        return out

    def flush(self) -> list:
        out = []
        for q in self.pending:
            q.dts = q.pts
            out.append(q)
        self.pending = []
        return out


# a source video up to this size has its packets read once and kept in memory for the copy;
# larger ones are read twice (a span check, then the copy) so memory stays flat
_HOLD_PACKETS_BYTES = 128 * 1024 * 1024


def _frame_ticks(vs) -> int:
    """One frame of video stream ``vs`` at its average (or guessed) rate, in its time base ticks; 0
    if neither is known."""
    rate = vs.average_rate or vs.guessed_rate
    tb = vs.time_base
    if not rate or not tb or rate <= 0:
        return 0
    return max(1, int(round(1 / (Fraction(rate) * tb))))


class _SourcePackets:
    """The packets of a source video to copy (its video stream, and its audio streams if kept),
    checked on the way: the video's first pts and end (stream time, seconds), no frames or a
    truncated stream raise :class:`MediaError`."""

    def __init__(self, video: str | os.PathLike, keep_existing: bool = False, fmt: str | None = None,
                 suffix: str | None = None) -> None:
        av = _av()
        self.path, self.container = _open(video, "video")
        self.temp: Path | None = None  # a re-encoded copy of the video (deleted by close())
        self.shift, self._shifted = 0, False  # seconds added to every copied timestamp (see below)
        self._frame = 0  # ticks: the duration of a video packet that has none
        p, cin = self.path, self.container
        try:
            self.vs = vs = _video_stream(cin, p)
            # the file's time zero (seconds, stream time): the new audio's sample 0 (of the source
            # file, also when its video is read from a re-encoded copy)
            self.origin = _origin(cin)
            if fmt is not None and (not _carries(fmt, vs) or _unstamped_reordered(vs)):
                self._reencode(fmt, keep_existing, suffix)
                p, cin, vs = self.path, self.container, self.vs
            self.keep = list(cin.streams.audio) if keep_existing else []
            hold = p.stat().st_size <= _HOLD_PACKETS_BYTES
            self.packets: list | None = [] if hold else None
            tb = vs.time_base
            # MPEG-TS packets carry no duration: the last frame then counted for nothing, and the
            # copy's track (and its new audio) ended a frame early, 2.467 s of a 2.5 s clip (found
            # by a review). A packet without one lasts a frame of the stream's rate
            self._frame = _frame_ticks(vs)
            first = last_end = None
            for pkt in cin.demux([vs, *self.keep] if hold else [vs]):
                if _cancelled():  # (a whole file's scan, on a slow disk: not waited for after a Ctrl-C)
                    raise _Cancelled(f"reading {p} was cancelled")
                if pkt.size == 0:
                    continue
                if hold:
                    self.packets.append(pkt)
                if pkt.stream.index != vs.index or pkt.pts is None:
                    continue
                if pkt.is_discard:
                    # decoded but never shown: frames before the start of a trimmed .mp4/.mov (an
                    # edit list hides them; the copy keeps them and the muxer hides them again).
                    # Counted, they put the new audio's start, and every sound, early by as much
                    continue
                s0 = pkt.pts  # (ticks: made Fractions of seconds once, below)
                e = pkt.pts + (pkt.duration or self._frame)
                first = s0 if first is None else min(first, s0)
                last_end = e if last_end is None else max(last_end, e)
            if first is not None and last_end is not None:
                first, last_end = first * tb, last_end * tb
            if first is None or last_end is None or last_end <= first:
                raise MediaError(f"{p} has zero duration: its video stream contains no frames.")
            origin = _origin(cin)
            header_end = _stream_end(cin, vs, origin)
            got = float(last_end) - origin
            if header_end is not None and got < header_end - max(_TRUNC_ABS, _TRUNC_REL * header_end):
                raise MediaError(
                    f"{p} is truncated: its video stops at {got:.2f} s but the file says {header_end:.2f} s."
                )
            if _past_header(got, header_end):
                raise MediaError(
                    f"{p} is corrupt: a video packet is stamped at {got:.2f} s but the file says it lasts "
                    f"{header_end:.2f} s."
                )
            # The copy's time zero is the file's (as `ffmpeg -c copy` does): an MPEG-TS from a
            # camcorder or a broadcast starts at its clock's time (10 s, hours), which an .mp4 kept
            # as an empty edit of that length before the picture (a 2.5 s clip became a 12.5 s
            # movie) while the WAV and the envelope start at the file's time zero (found by a
            # review). Also, MP4 and QuickTime hide what is stamped before 0 (an edit list): a
            # shown frame stamped there (an MPEG-TS whose clock wrapped around 2^33 ticks
            # mid-clip, which FFmpeg reads as negative times) was lost with everything before it;
            # there the first shown frame goes to 0
            zero = Fraction(self.origin).limit_denominator(1_000_000)  # (microseconds: exact)
            if fmt in ("mp4", "mov"):
                zero = min(zero, Fraction(first))
            self.shift = -zero
            self.origin = self.origin + float(self.shift)
            self.first, self.end = first + self.shift, last_end + self.shift
            if not hold:  # read again for the copy, from the start
                cin.close()
                self.path, self.container = _open(p, "video")
                self.vs = _video_stream(self.container, p)
                self.keep = list(self.container.streams.audio) if keep_existing else []
        except av.error.FFmpegError as e:
            self.close()
            raise MediaError(f"reading {p} failed ({_reason(e)}); the file is truncated or corrupt.") from e
        except BaseException:
            self.close()
            raise

    def _reencode(self, fmt: str, keep_existing: bool, suffix: str | None = None) -> None:
        """The video's codec does not fit ``fmt`` (an output ``suffix`` file): refuse, naming the
        containers that carry it, or, when none does, read from a copy re-encoded as H.264."""
        p, vs = self.path, self.vs
        name = vs.codec_context.name
        _refuse_copy(p, name, _suffixes_carrying(vs), fmt, suffix)
        if _unstamped_reordered(vs):
            log.warning("the %s video of %s has B-frames without presentation times (an AVI file), which a "
                        ".mp4, .mkv or .mov file cannot take as they are: re-encoding it as H.264", name, p)
        else:
            log.warning("the %s video of %s cannot be copied into a .mp4, .mkv or .mov file: re-encoding it as H.264", name, p)
        tmp = _reencoded(p, vs, keep_existing)
        self.container.close()
        self.temp = tmp
        self.path, self.container = _open(tmp, "video")
        self.vs = _video_stream(self.container, tmp)

    def __iter__(self):
        if self.packets is not None:
            if not self._shifted:  # (held packets are amended once)
                for pkt in self.packets:
                    self._amend(pkt)
                self._shifted = True
            yield from self.packets
            return
        for pkt in self.container.demux([self.vs, *self.keep]):
            if pkt.size:
                self._amend(pkt)
                yield pkt

    def _amend(self, pkt) -> None:
        """The shift of every copied timestamp, and a frame's duration where a video packet has none."""
        if not pkt.duration and self._frame and pkt.stream.index == self.vs.index:
            pkt.duration = self._frame
        if not self.shift:
            return
        ticks = int(round(self.shift / pkt.time_base))
        if pkt.pts is not None:
            pkt.pts += ticks
        if pkt.dts is not None:
            pkt.dts += ticks

    def close(self) -> None:
        self.packets = None
        self.container.close()
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None


def _float_to_frame(chunk: np.ndarray, fmt: str, layout: str):
    """(C, n) float32 -> an AudioFrame in sample format ``fmt`` (fltp, flt, s16[p], s32[p])."""
    av = _av()
    planar = fmt.endswith("p")
    base = fmt.rstrip("p")
    if base == "flt":
        data = chunk.astype(np.float32)
    elif base == "dbl":
        data = chunk.astype(np.float64)
    elif base == "s16":
        data = np.round(np.clip(chunk, -1.0, 1.0) * 32767.0).astype(np.int16)
    elif base == "s32":
        data = np.round(np.clip(chunk, -1.0, 1.0).astype(np.float64) * 2147483647.0).astype(np.int32)
    else:  # pragma: no cover - no muxable encoder we allow uses another format
        raise MediaError(f"audio sample format {fmt} is not supported for encoding.")
    if not planar:
        data = data.T.reshape(1, -1)
    return av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)


def _prepare_audio(audio, sr: int | None) -> tuple[np.ndarray, int]:
    if isinstance(audio, (str, os.PathLike)):
        x, file_sr = _decode_audio(audio)
        if sr is not None and int(sr) != file_sr:
            x, file_sr = resample_audio(x, file_sr, int(sr)), int(sr)
        return x, file_sr
    if sr is None:
        raise ValueError("sr is required when the audio is given as an array")
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] > 64:
        raise ValueError(f"audio must be (C, N) with C channels first, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite values")
    return x, int(sr)


def _copy_stream_tags(src, dst) -> None:
    """Carry the tags a viewer shows (language, title) over to a copied stream, and a video's start
    timecode (a camera's, as QuickTime's tmcd track or a tag holds it: what an editor conforms the
    clip by; the MP4 / QuickTime muxer writes its tmcd track from it)."""
    for key in ("language", "title"):
        value = src.metadata.get(key)
        if value:
            dst.metadata[key] = value
    if src.type == "video" and _has_alpha(src):
        # (written as a track tag: the track's AlphaMode element, which browsers read, is not
        # written for a copied stream; FFmpeg's decoders find the alpha either way)
        dst.metadata["alpha_mode"] = "1"
    if src.type == "video":

        def timecode(meta):  # (Matroska's tag is upper case)
            return meta.get("timecode") or meta.get("TIMECODE")

        tc = timecode(src.metadata) or next(
            (timecode(s.metadata) for s in src.container.streams if timecode(s.metadata)),
            timecode(src.container.metadata),
        )
        if tc:
            dst.metadata["timecode"] = tc


#: ``AudioMux(fast=True)``'s AAC encoder options: FFmpeg's fast coder without perceptual noise
#: substitution, intensity and mid/side stereo (their searches cost ~1/3 of the encode; measured
#: SNR 39.5 dB vs 38.7 dB with them); TNS kept for transients. Variable bit rate at quality 4
#: (``global_quality`` 4 x FF_QP2LAMBDA; 4, 6 and 8 encode alike): one quantiser search per frame.
#: At a constant bit rate a frame of sparse Foley (a decay, a quiet tail) cannot use its share of
#: the rate and the encoder searches up to six times; on folai's own renders that cost 3x the CPU
#: for no audible gain: ``benchmarks/bench_aac.py`` measures both (CPU, SNR, and the share of
#: audible band-frames whose coding noise comes within 13 dB of the signal: fewer with VBR, which
#: spends its bits on the dense textures that the constant rate starves). Full bandwidth in both.
AAC_FAST_OPTIONS = {
    "aac_coder": "fast", "aac_pns": "0", "aac_is": "0", "aac_ms": "0",
    "flags": "+qscale", "global_quality": str(4 * 118),
}

def aac_bit_rate(channels: int) -> int:
    """The AAC bit rate of AudioMux's constant-rate encoding (``fast=False``; ``fast=True`` is VBR):
    256 kbit/s for stereo, 160 kbit/s for mono."""
    return 96_000 * int(channels) + 64_000


def _packet_seconds(q) -> float | None:
    """A packet's decoding time (its presentation time if it has none) in seconds, or None.

    The same float as ``float(t * q.time_base)`` (int / int rounds correctly) without Fraction
    arithmetic, which had been a third of muxing a 10 s clip: PyAV makes a new Fraction at each
    read of ``time_base``, and the mux compared each video packet with the next audio packet's time."""
    t = q.dts if q.dts is not None else q.pts
    if t is None:
        return None
    return _seconds(t, q.time_base)


def _seconds(t: int, tb) -> float:
    """``t`` ticks of the time base ``tb`` (a Fraction) in seconds: the same float as
    ``float(t * tb)`` (int / int rounds correctly), without making Fractions (PyAV makes a new one
    at each read of a ``time_base``; on the decoding and muxing loops they had cost a third of the
    work)."""
    return t * tb.numerator / tb.denominator


#: encoded audio held in memory (payload bytes) before the rest goes to a temporary file
HELD_PACKETS_BYTES = 8 << 20
_NONE = -(1 << 62)  # a timestamp that is None, in the held packets' integer arrays


class _HeldPackets:
    """The encoded audio packets an :class:`AudioMux` keeps until :meth:`AudioMux.close` muxes them
    with the video, in order: in memory up to :data:`HELD_PACKETS_BYTES` of payload, then each
    payload in an anonymous temporary file and its timing in flat integer arrays. An hour of AAC
    had held every packet object in memory, ~270 MB more at 60 minutes than at 10 (found by a
    review); the arrays take 48 bytes a packet. Iterating gives the packets back (rebuilt ones
    mux to the same bytes: payload, pts, dts, duration, time base, key-frame flag); a packet with
    side data is kept as it is."""

    def __init__(self, limit: int | None = None) -> None:
        self._limit = HELD_PACKETS_BYTES if limit is None else int(limit)
        self._mem: list = []  # the first packets, as they are
        self._bytes = 0
        self._file = None  # the payloads past the limit
        self._pos = 0
        self._meta = array("q")  # per packet past the limit: offset, size, pts, dts, duration, key frame
        self._objects: dict[int, object] = {}  # packets past the limit kept as objects (by index)
        self._tb: Fraction | None = None  # the spilled packets' time base
        self.time_base: Fraction | None = None  # set on every packet given back, when not None

    def __len__(self) -> int:
        return len(self._mem) + len(self._meta) // 6

    def extend(self, packets) -> None:
        for q in packets:
            self.append(q)

    def append(self, q) -> None:
        if self._file is None and self._bytes + q.size <= self._limit:
            self._mem.append(q)
            self._bytes += q.size
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="folai-aac-")
            self._tb = q.time_base
        n = len(self._meta) // 6
        if any(True for _ in q.iter_sidedata()) or q.time_base != self._tb:
            self._objects[n] = q
            self._meta.extend((0, -1, 0, 0, 0, 0))
            return
        data = bytes(q)
        self._file.write(data)
        pts, dts = q.pts, q.dts
        self._meta.extend((self._pos, len(data), _NONE if pts is None else pts, _NONE if dts is None else dts,
                           q.duration or 0, int(bool(q.is_keyframe))))
        self._pos += len(data)

    def keep(self, start: int | None, end: int | None) -> None:
        """Keep only the packets whose pts lies in ``[start, end)`` (None: open; a packet without
        pts is before ``start``'s cut and within ``end``'s, as AudioMux._keep had it)."""
        def kept(pts) -> bool:
            return (start is None or pts is not None and pts >= start) and (end is None or pts is None or pts < end)

        self._mem = [q for q in self._mem if kept(q.pts)]
        if not self._meta and not self._objects:
            return
        m, objects = self._meta, self._objects
        meta, keep_objects = array("q"), {}
        for i in range(len(m) // 6):
            obj = objects.get(i)
            pts = obj.pts if obj is not None else (None if m[6 * i + 2] == _NONE else m[6 * i + 2])
            if kept(pts):
                if obj is not None:
                    keep_objects[len(meta) // 6] = obj
                meta.extend(m[6 * i : 6 * i + 6])
        self._meta, self._objects = meta, keep_objects

    def __iter__(self):
        av = _av()
        tb = self.time_base
        for q in self._mem:
            if tb is not None:
                q.time_base = tb
            yield q
        if self._file is None:
            return
        self._file.flush()
        self._file.seek(0)
        m = self._meta
        for i in range(len(m) // 6):
            obj = self._objects.get(i)
            if obj is not None:
                q = obj
            else:
                off, size, pts, dts, dur, key = m[6 * i : 6 * i + 6]
                if self._file.tell() != off:
                    self._file.seek(off)
                q = av.Packet(self._file.read(size))
                q.pts = None if pts == _NONE else pts
                q.dts = None if dts == _NONE else dts
                q.duration = dur
                if tb is None:
                    q.time_base = self._tb
                q.is_keyframe = bool(key)
            if tb is not None:
                q.time_base = tb
            yield q

    def close(self) -> None:
        self._mem, self._objects = [], {}
        if self._file is not None:
            self._file.close()
            self._file = None


class AudioMux:
    """Write ``out``: the video stream of ``video`` copied packet for packet plus a new audio track
    whose samples arrive chunk by chunk.

    ::

        with AudioMux("in.mp4", "out.mp4", sr=44100, channels=2) as m:   # reads in.mp4's packets
            for chunk in chunks:                                       # (C, n) float32 each
                m.write(chunk)                                         # encoded as it arrives
        # leaving the block finishes out.mp4 (an exception instead leaves it unfinished)

    The source is read and the encoder opened in the constructor, so a mux can be prepared while
    the audio is still being computed; each :meth:`write` encodes at once (PyAV releases the GIL,
    so a writer thread overlaps with the code producing the audio). The audio is trimmed or
    zero-padded to the video stream's duration (:attr:`n_samples` samples) and starts with the
    first video frame: audio in the file's time (sample 0 at ``t = 0``, like an envelope of its
    frames) drops its first :attr:`lead` samples before :meth:`write` (0 unless the video stream
    starts after the file does). ``out`` is written where it is: :func:`mux_audio` is the atomic,
    whole-array entry point. ``sr=None`` writes no audio track (:func:`strip_audio`).
    ``fast=True`` encodes AAC with FFmpeg's fast coder at a variable bit rate
    (:data:`AAC_FAST_OPTIONS`; a third of the CPU time of the fast coder at a constant 256 kbit/s,
    a sixth of the default two-loop search's).

    Raises:
        MediaError: the source has no frames, is truncated or corrupt; ``out`` cannot take the
            codec or the streams.
    """

    def __init__(
        self,
        video: str | os.PathLike,
        out: str | os.PathLike,
        sr: int | None = None,
        *,
        channels: int = 2,
        codec: str | None = None,
        keep_existing: bool = False,
        fast: bool = False,
        _source: _SourcePackets | None = None,
    ) -> None:
        av = _av()
        self.out = Path(out)
        fmt = _out_format(self.out)
        self.sr = None if sr is None else int(sr)
        self.channels = int(channels)
        if self.sr is not None:
            codec = codec or _MUX_AUDIO_CODECS[fmt][0]
            if codec not in _MUX_AUDIO_CODECS[fmt]:
                raise MediaError(
                    f"audio codec {codec!r} cannot be written to a {self.out.suffix} file; use one of "
                    f"{', '.join(_MUX_AUDIO_CODECS[fmt])}."
                )
            if codec in ("aac", "mp3", "libopus") and self.sr not in _AAC_RATES or codec == "libopus" and self.sr != 48000:
                raise ValueError(f"{codec} cannot be encoded at {self.sr} Hz; resample first (mux_audio does)")
            if self.channels not in (1, 2):
                raise ValueError(f"channels must be 1 or 2, got {channels}")
        self.codec = codec
        self._src = _source if _source is not None else _SourcePackets(video, keep_existing, fmt, self.out.suffix)
        src = self._src
        p, cin, vs = src.path, src.container, src.vs
        self.duration = float(src.end - src.first)
        self.n_samples = int(round(self.duration * self.sr)) if self.sr is not None else 0
        # samples of the file's time before its first video frame (a camcorder .mts, an export whose
        # audio starts first): audio in the file's time drops these before write() (mux_audio and
        # folai generate do), so that it stays in sync with the pictures
        lead = float(src.first) - float(src.origin)
        self.lead = int(round(lead * self.sr)) if self.sr is not None and lead > 0 else 0
        self._have = 0  # samples taken so far (after trimming)
        self._buf: list[np.ndarray] = []  # samples not yet encoded (less than one block)
        self._buffered = 0
        self._pending = _HeldPackets()  # encoded audio packets, muxed in order with the video at the end
        self._done = False
        self._cout = None
        self._branches: list[AudioMux] = []  # second encoders for later stretches (branch())
        self._end: int | None = None  # track sample where this encoder stopped (end_at())
        try:
            self._cout = cout = av.open(str(self.out), "w", format=fmt, options=mux_options(fmt))
            # opaque: the copy takes the source's codec as it is; otherwise PyAV looks for an
            # encoder of the decoder's name, and a video decoded by a library (AV1 by libdav1d)
            # has none, although copying its packets needs no encoder at all
            ovs = cout.add_stream_from_template(vs, opaque=True)
            _keep_copy_params(vs, ovs, fmt)
            cout.metadata.update(cin.metadata)
            _copy_stream_tags(vs, ovs)
            self._omap = {vs.index: ovs}
            for s in src.keep:
                if not _keeps_audio(fmt, s):
                    # (the muxer takes the stream and refuses it only when it writes the header, at
                    # the end: the message then named the hidden temporary file and called the
                    # input corrupt; found by a review)
                    raise MediaError(
                        f"the existing {s.codec_context.name} audio of {p} cannot be kept in a "
                        f"{self.out.suffix} file; write a .mkv (it holds any audio) or leave the old audio out."
                    )
                try:
                    self._omap[s.index] = cout.add_stream_from_template(s)
                    _copy_stream_tags(s, self._omap[s.index])
                except Exception as e:
                    raise MediaError(
                        f"the existing {s.codec_context.name} audio of {p} cannot be kept in a {self.out.suffix} file ({_reason(e)})."
                    ) from e
            self._oas = None
            if self.sr is not None:
                layout = "mono" if self.channels == 1 else "stereo"
                opts = dict(AAC_FAST_OPTIONS) if fast and codec == "aac" else None
                oas = cout.add_stream(codec, rate=self.sr, layout=layout, options=opts)
                if codec == "aac" and opts is None:  # (the fast options are VBR: no bit rate)
                    oas.bit_rate = aac_bit_rate(self.channels)
                oas.time_base = Fraction(1, self.sr)
                self._oas = oas
                self._enc = oas  # what encodes: the stream, or a branch's own codec context
                self._enc_cc = oas.codec_context
                self._opts = opts
                self._pts0 = int(round(float(src.first) * self.sr))
                self._block = 4096
                log.info("muxing %d Hz %s audio (%.3f s) onto %s", self.sr, codec, self.n_samples / self.sr, p)
        except BaseException as e:
            self.abort()
            if isinstance(e, av.error.FFmpegError):
                raise MediaError(f"writing {self.out} failed ({_reason(e)}); its streams do not fit a {self.out.suffix} file.") from e
            raise

    # ------------------------------------------------------------------ audio in
    def write(self, audio: np.ndarray) -> None:
        """Append ``(C, n)`` float samples at ``sr`` (C >= ``channels``: the first ones are used;
        mono is repeated to stereo). Samples past :attr:`n_samples` are dropped."""
        if self._oas is None:
            raise ValueError("this mux has no audio track (sr=None)")
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.shape[0] != self.channels:
            x = x[: self.channels] if x.shape[0] > self.channels else np.repeat(x[:1], self.channels, axis=0)
        x = x[:, : max(0, self.n_samples - self._have)]
        if x.shape[1] == 0:
            return
        if self.codec not in ("pcm_f32le", "flac"):
            x = np.clip(x, -1.0, 1.0)
        self._have += x.shape[1]
        self._buf.append(x)
        self._buffered += x.shape[1]
        if self._buffered >= self._block:
            self._encode(final=False)

    def _encode(self, final: bool) -> None:
        av = _av()
        x = np.concatenate(self._buf, axis=1) if len(self._buf) > 1 else self._buf[0]
        n = x.shape[1] if final else x.shape[1] // self._block * self._block
        cc = self._enc_cc
        fmt, layout = cc.format.name, cc.layout.name
        pos = self._have - self._buffered  # index of x[:, 0] in the track
        tb = Fraction(1, self.sr)  # (one Fraction: they are slow to make)
        try:
            for s0 in range(0, n, self._block):
                frame = _float_to_frame(x[:, s0 : s0 + self._block], fmt, layout)
                frame.sample_rate = self.sr
                frame.time_base = tb
                frame.pts = self._pts0 + pos + s0
                self._pending.extend(self._enc.encode(frame))
        except av.error.FFmpegError as e:
            raise MediaError(f"encoding {self.codec} audio for {self.out} failed ({_reason(e)}).") from e
        rest = x[:, n:]
        self._buf = [rest] if rest.shape[1] else []
        self._buffered = rest.shape[1]

    # ------------------------------------------------------------------ two encoders
    #: samples an encoder is fed before a seam it starts at (so it is past its priming there)
    BRANCH_PREROLL = 2048
    #: silence needed on each side of a seam (samples): the frames on both sides of it, from
    #: either encoder, cover only zeros and decode to exact zeros
    SEAM_SILENCE = 4096

    def can_branch(self) -> bool:
        """Whether :meth:`branch` may be used (AAC; nothing branched or ended yet)."""
        return self.codec == "aac" and self._oas is not None and self._end is None and not self._branches

    def find_seam(self, chunk: np.ndarray, pos: int, after: int = 0) -> int | None:
        """A track sample index >= ``after`` inside ``chunk`` (whose first sample is track sample
        ``pos``) where the track may be split between two encoders: a multiple of the AAC frame
        size from the track start with ``SEAM_SILENCE`` exact zeros on each side, before
        :attr:`n_samples`. None if there is none."""
        quiet = self.SEAM_SILENCE
        n = chunk.shape[1]
        lo = max(after, pos + quiet)
        hi = min(pos + n - quiet, self.n_samples - quiet)
        first = -(-lo // 1024) * 1024
        if first > hi:
            return None
        zero = np.all(chunk == 0, axis=0)
        run = np.concatenate([[0], np.cumsum(zero, dtype=np.int64)])
        ats = np.arange(first, hi + 1, 1024) - pos
        ok = run[ats + quiet] - run[ats - quiet] == 2 * quiet
        return int(ats[ok][0] + pos) if ok.any() else None

    def branch(self, at: int) -> "AudioMux":
        """A second encoder for the track from sample ``at`` (from :meth:`find_seam`) on, so that
        two threads encode at once: feed it the samples from ``at - BRANCH_PREROLL`` on with its
        :meth:`write` and call its :meth:`finish`; feed this mux up to ``at`` and call
        :meth:`end_at`; then :meth:`close` this mux. Both encoders see only silence around the
        seam, so the joined track decodes as one encoder's would there (the packets differ only
        in the encoders' bit-level state)."""
        av = _av()
        if not self.can_branch():
            raise ValueError("this mux cannot branch (not AAC, or already branched or ended)")
        b = object.__new__(AudioMux)
        b.out, b.sr, b.channels, b.codec = self.out, self.sr, self.channels, self.codec
        b.duration, b.n_samples, b.lead = self.duration, self.n_samples, self.lead
        b._have = int(at) - self.BRANCH_PREROLL
        b._buf, b._buffered, b._pending, b._done = [], 0, _HeldPackets(), False
        b._cout = b._src = None
        b._branches, b._end = [], None
        b._pts0, b._block, b._opts = self._pts0, self._block, self._opts
        b._keep_from = self._pts0 + int(at)
        b._finished = False
        cc = av.CodecContext.create(self.codec, "w")
        cc.sample_rate = self.sr
        cc.layout = self._enc_cc.layout.name
        cc.format = self._enc_cc.format.name
        if self._enc_cc.bit_rate:  # (none in VBR mode)
            cc.bit_rate = self._enc_cc.bit_rate
        cc.time_base = Fraction(1, self.sr)
        if self._opts:
            cc.options = dict(self._opts)
        cc.open()
        b._enc = b._oas = cc
        b._enc_cc = cc
        self._branches.append(b)
        return b

    def _flush_encoder(self) -> None:
        if self._buffered:
            self._encode(final=True)
        self._pending.extend(self._enc.encode(None))

    def end_at(self, at: int) -> None:
        """This encoder stops at track sample ``at`` (it has been fed exactly the samples before
        it); a branch goes on from there. A branch may branch again and end at its own seam."""
        if self._have != at:
            raise ValueError(f"internal: the mux was fed {self._have} samples, not {at}")
        self._flush_encoder()
        self._end = int(at)
        self._keep(self._pts0 + int(at))

    def finish(self) -> None:
        """A branch's end: pad to the track's length, flush, keep its packets from its seam on."""
        self._pad_to_end()
        self._flush_encoder()
        self._keep(None)

    def _pad_to_end(self) -> None:
        """Feed zeros up to the track's length, 10 s at a time (memory stays flat for any gap)."""
        missing = self.n_samples - self._have
        if missing <= 0:
            return
        block = np.zeros((self.channels, min(int(missing), 10 * int(self.sr))), np.float32)
        while missing > 0:
            n = min(missing, block.shape[1])
            self.write(block[:, :n])
            missing -= n

    def _keep(self, end: int | None) -> None:
        """Keep the packets of this encoder's stretch of the track: from its seam (a branch) up to
        ``end`` (None: the end of the track)."""
        start = getattr(self, "_keep_from", None)
        self._pending.keep(start, end)
        if start is not None:  # a branch
            self._pending.time_base = Fraction(1, self.sr)
            self._finished = True

    def _branch_packets(self) -> list:
        """The held packets of this mux's branches (and theirs), in time order."""
        out = []
        for b in self._branches:
            if not b._finished:
                raise ValueError("internal: a branch of the mux was not finished")
            out.append(b._pending)
            out += b._branch_packets()
        return out

    def _release(self) -> None:
        """Drop the held packets (this mux's and its branches'; their temporary files go)."""
        self._pending.close()
        for b in self._branches:
            b._release()

    # ------------------------------------------------------------------ finishing
    def close(self) -> Path:
        """Pad the audio to the video's length, mux everything into ``out`` and close it."""
        if self._done:
            return self.out
        av = _av()
        src, cout, p = self._src, self._cout, self._src.path
        try:
            if self._oas is not None and self._end is None:
                self._pad_to_end()
                self._flush_encoder()
            held = [self._pending, *self._branch_packets()]  # the branches' follow, in time order
            omap = self._omap
            fixers = {i: _DtsFixer() for i in omap}
            oas = self._oas

            def audio():
                for h in held:
                    for q in h:
                        q.stream = oas  # (a branch's, or one rebuilt from the temporary file)
                        # each audio packet's time, once: it is compared with every video packet's
                        yield _packet_seconds(q), q

            it = audio()
            nxt = next(it, None)

            def mux_new_until(t_sec: float | None):
                nonlocal nxt
                while nxt is not None:
                    qt, q = nxt
                    if t_sec is not None and qt is not None and qt > t_sec:
                        break
                    cout.mux(q)
                    nxt = next(it, None)

            for pkt in src:
                ost = omap[pkt.stream.index]
                for q in fixers[pkt.stream.index].push(pkt):
                    qt = _packet_seconds(q)
                    if qt is not None:
                        mux_new_until(qt)
                    q.stream = ost
                    cout.mux(q)
            for i, fx in fixers.items():
                for q in fx.flush():
                    q.stream = omap[i]
                    cout.mux(q)
            mux_new_until(None)
            cout.close()
        except MediaError:
            self.abort()
            raise
        except av.error.FFmpegError as e:
            self.abort()
            raise MediaError(
                f"writing {self.out} failed ({_reason(e)}); the input {p} may be corrupt or its streams do not fit a {self.out.suffix} file."
            ) from e
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._release()
        src.close()
        return self.out

    def abort(self) -> None:
        """Stop without finishing ``out`` (it is left incomplete: remove it or let atomic_output do so).
        Does nothing after a successful :meth:`close`."""
        if self._done:
            return
        self._done = True
        self._release()
        if self._cout is not None:
            try:
                self._cout.close()
            except Exception:
                pass
        src = getattr(self, "_src", None)
        if src is not None:
            src.close()

    def __enter__(self) -> "AudioMux":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _remux(
    video: str | os.PathLike,
    out: str | os.PathLike,
    audio=None,
    sr: int | None = None,
    codec: str | None = None,
    keep_existing: bool = False,
    extra_inputs: tuple = (),
) -> Path:
    out = Path(out)
    fmt = _out_format(out)
    check_output(out, (video, *extra_inputs))  # fail before any decoding
    src = _SourcePackets(video, keep_existing, fmt, out.suffix)
    try:
        p = src.path
        x = None
        asr = channels = None
        if audio is not None:
            x, asr = _prepare_audio(audio, sr)
            codec = codec or _MUX_AUDIO_CODECS[fmt][0]
            if codec not in _MUX_AUDIO_CODECS[fmt]:
                raise MediaError(
                    f"audio codec {codec!r} cannot be written to a {out.suffix} file; use one of "
                    f"{', '.join(_MUX_AUDIO_CODECS[fmt])}."
                )
            if codec in ("aac", "mp3", "libopus") and asr not in _AAC_RATES:
                target = 48000 if codec != "mp3" else 44100
                x, asr = resample_audio(x, asr, target), target
            if codec == "libopus" and asr != 48000:
                x, asr = resample_audio(x, asr, 48000), 48000
            channels = min(2, x.shape[0])
        with atomic_output(out, (p, *extra_inputs)) as tmp:
            m = AudioMux(p, tmp, asr, channels=channels or 2, codec=codec, _source=src)
            try:
                if x is not None:
                    m.write(x[:channels, m.lead :])  # x is in the file's time: from its first frame on
            except BaseException:
                m.abort()
                raise
            m.close()
    finally:
        src.close()
    return out


def mux_audio(
    video: str | os.PathLike,
    audio,
    out: str | os.PathLike,
    sr: int | None = None,
    codec: str | None = None,
    keep_existing: bool = False,
) -> Path:
    """Write ``out``: the video stream of ``video`` copied packet for packet plus a new audio track.

    Args:
        video: the source video (its video stream is not re-encoded; the pictures are
            byte-identical).
        audio: ``(C, N)`` / ``(N,)`` float32 array at ``sr`` Hz, or an audio file (any format
            :func:`read_audio` opens; ``sr`` then resamples it, default: the file's rate).
        out: ``.mp4`` / ``.m4v`` / ``.mov`` / ``.mkv``; never one of the inputs; written atomically.
        codec: audio codec; default AAC. ``pcm_s16le`` / ``pcm_s24le`` / ``pcm_f32le`` in mov or
            mkv, ``flac`` in mkv/mp4, ``alac`` in mp4/mov, ``libopus`` / ``mp3`` in mkv.
        keep_existing: keep the video's own audio tracks (copied) before the new one; default
            replaces them.

    The new audio is in the file's time (sample 0 at ``t = 0``, the start of the file, the time
    of an envelope of its frames and of what ``folai render`` makes from it); it is trimmed or
    zero-padded to the video stream, so that the part before the first video frame is dropped
    (a camcorder ``.mts``, an export whose audio starts first) and the sound stays on the pictures.
    More than 2 channels keeps the first two.
    """
    extra = (audio,) if isinstance(audio, (str, os.PathLike)) else ()
    return _remux(video, out, audio=audio, sr=sr, codec=codec, keep_existing=keep_existing, extra_inputs=extra)


def strip_audio(video: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``out`` with only the video stream of ``video`` (copied packet for packet, no audio)."""
    return _remux(video, out, audio=None)
