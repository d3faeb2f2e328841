"""Streaming motion features for :mod:`folai.timing.motion`: fast gray frames + DIS optical flow.

Two pieces, run as a two-stage pipeline so decoding and optical flow overlap on two cores:

* :func:`iter_small_gray` decodes a video with PyAV and yields small grayscale frames at a fixed
  rate. It follows :func:`folai.media.iter_video_frames`' conventions exactly (output frame ``k`` is
  at ``t = k / fps`` and shows the last source frame with presentation time ``<= t``; rotation
  metadata applied; the same :class:`~folai.errors.MediaError` messages), but takes the luma plane
  of the decoded picture directly and shrinks it with ``cv2.resize(INTER_AREA)``, which is 2-3x
  cheaper than a swscale RGB/gray conversion of the whole frame: the whole timing stage then
  costs little more than decoding.
* :class:`FlowFeatures` turns consecutive frames into a few numbers per frame pair (dense DIS
  flow): mean speed, the velocity and horizontal position of the fastest-moving region.

Memory is constant in the video's length: one previous frame and a bounded queue of small frames;
the per-frame features (5 floats per frame) are all that accumulates.
"""

from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import MediaError

# formats whose first plane is 8-bit luma at full resolution
_LUMA_FORMATS = {
    "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
    "yuv411p", "yuv410p", "nv12", "nv21", "nv16", "gray", "yuva420p", "yuva422p", "yuva444p",
}


def _luma(frame) -> np.ndarray:
    """(H, W) uint8 luma of a decoded frame (zero-copy view of the plane when possible)."""
    if frame.format.name in _LUMA_FORMATS:
        plane = frame.planes[0]
        buf = np.frombuffer(plane, np.uint8)
        return buf.reshape(-1, plane.line_size)[: frame.height, : frame.width]
    arr = frame.to_ndarray(format="gray")
    return arr[..., 0] if arr.ndim == 3 else arr


def _roi_in_source(roi: tuple[int, int, int, int], rot_cw: int, src_w: int, src_h: int) -> tuple[int, int, int, int]:
    """Map a display-space rectangle (x, y, w, h) to the coded (unrotated) picture's coordinates."""
    x, y, w, h = roi
    # display = source rotated clockwise by rot_cw; invert per corner
    corners = [(x, y), (x + w, y), (x, y + h), (x + w, y + h)]
    pts = []
    for cx, cy in corners:
        if rot_cw == 0:
            sx, sy = cx, cy
        elif rot_cw == 90:  # display (cx, cy) <- source (cy, src_h - cx)
            sx, sy = cy, src_h - cx
        elif rot_cw == 180:
            sx, sy = src_w - cx, src_h - cy
        else:  # 270
            sx, sy = src_w - cy, cx
        pts.append((sx, sy))
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    return int(min(xs)), int(min(ys)), int(max(xs) - min(xs)), int(max(ys) - min(ys))


@dataclass
class FrameGeometry:
    """Where the analysed pixels come from, in display (rotated) pixel coordinates."""

    display_w: int
    display_h: int
    roi: tuple[int, int, int, int]  # (x, y, w, h) analysed rectangle, clipped to the frame
    size: tuple[int, int]  # (w, h) of the small analysis frames


def iter_small_gray(
    path: str | Path,
    fps: float = 30.0,
    width: int = 128,
    roi: tuple[int, int, int, int] | None = None,
    geometry: list | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(t, gray)`` at ``fps``: ``(h, w)`` uint8 luma of the display picture (or of ``roi``),
    shrunk so that its width is at most ``width`` pixels (never enlarged).

    ``roi`` is ``(x, y, w, h)`` in display pixels; it is clipped to the frame, and a rectangle that
    misses the frame raises :class:`~folai.errors.FolaiError`. If ``geometry`` is a list, the
    :class:`FrameGeometry` used is appended to it when the first frame is decoded.
    """
    import cv2

    from .. import media
    from ..errors import FolaiError

    av = media._av()
    p, container = media._open(path, "video")
    try:
        vs = media._video_stream(container, p)
        vs.thread_type = "AUTO"
        tb = vs.time_base
        origin = media._origin(container)
        header_end = media._stream_end(container, vs, origin)
        src_rate = vs.average_rate or vs.guessed_rate
        src_dt = 1.0 / float(src_rate) if src_rate else 1.0 / 30.0
        tol = min(max(media._TIME_TOL, 0.5 * float(tb) if tb else 0.0), 0.25 / fps)

        setup: dict = {}

        def convert(frame) -> np.ndarray:
            if not setup:
                rot = media._rotation_cw(frame, vs)
                sw, sh = frame.width, frame.height
                dw, dh = (sh, sw) if rot in (90, 270) else (sw, sh)
                if roi is None:
                    r = (0, 0, dw, dh)
                else:
                    x, y, w, h = (int(v) for v in roi)
                    x0, y0 = max(0, x), max(0, y)
                    x1, y1 = min(dw, x + w), min(dh, y + h)
                    if x1 - x0 < 2 or y1 - y0 < 2:
                        raise FolaiError(
                            f"the region of interest {x},{y},{w},{h} lies outside the {dw}x{dh} video; "
                            "give x,y,w,h inside the picture"
                        )
                    r = (x0, y0, x1 - x0, y1 - y0)
                sx, sy, sw_, sh_ = _roi_in_source(r, rot, sw, sh)
                scale = min(1.0, width / float(r[2]))
                out_w = max(2, int(round(r[2] * scale)))
                out_h = max(2, int(round(r[3] * scale)))
                # size of the crop before rotation
                cw, ch = (out_h, out_w) if rot in (90, 270) else (out_w, out_h)
                setup.update(rot=rot, crop=(sx, sy, sw_, sh_), csize=(cw, ch), full=(r == (0, 0, dw, dh)))
                if geometry is not None:
                    geometry.append(FrameGeometry(dw, dh, r, (out_w, out_h)))
            y = _luma(frame)
            sx, sy, sw_, sh_ = setup["crop"]
            if not setup["full"]:
                y = y[sy : sy + sh_, sx : sx + sw_]
            cw, ch = setup["csize"]
            if (y.shape[1], y.shape[0]) != (cw, ch):
                y = cv2.resize(y, (cw, ch), interpolation=cv2.INTER_AREA)
            else:
                y = np.ascontiguousarray(y)
            rot = setup["rot"]
            if rot:
                y = np.ascontiguousarray(np.rot90(y, k=-(rot // 90)))
            return y

        k = 0
        t_k = 0.0
        prev = prev_arr = None
        prev_t = None
        last_dur = src_dt
        demux = container.demux(vs)
        while True:
            try:
                packet = next(demux)
                frames = packet.decode()
            except (StopIteration, av.error.EOFError):
                break
            except av.error.FFmpegError as e:
                at = prev_t if prev_t is not None else 0.0
                raise MediaError(
                    f"{p} cannot be decoded past {at:.2f} s ({media._reason(e)}); the file is truncated or corrupt."
                ) from e
            for frame in frames:
                if frame.pts is not None and frame.time_base is not None:
                    ft = float(frame.pts * frame.time_base) - origin
                else:
                    ft = (prev_t + last_dur) if prev_t is not None else 0.0
                if prev_t is not None and ft > prev_t:
                    last_dur = ft - prev_t
                while t_k < ft - tol:
                    if prev is None:
                        arr = convert(frame)
                    else:
                        if prev_arr is None:
                            prev_arr = convert(prev)
                        arr = prev_arr
                    yield t_k, arr
                    k += 1
                    t_k = k / fps
                prev, prev_arr, prev_t = frame, None, ft
                if frame.duration and frame.time_base is not None:
                    last_dur = float(frame.duration * frame.time_base)
        if prev is None:
            raise MediaError(f"{p} has zero duration: its video stream contains no frames.")
        video_end = prev_t + last_dur
        if header_end is not None and video_end < header_end - max(media._TRUNC_ABS, media._TRUNC_REL * header_end):
            raise MediaError(
                f"{p} is truncated: its video stops at {video_end:.2f} s but the file says {header_end:.2f} s."
            )
        while t_k < video_end - tol:
            if prev_arr is None:
                prev_arr = convert(prev)
            yield t_k, prev_arr
            k += 1
            t_k = k / fps
    finally:
        container.close()


def threaded(it: Iterator, maxsize: int = 16) -> Iterator:
    """Run iterator ``it`` in a background thread (bounded queue), re-raising its exceptions here.

    Decoding (PyAV, which releases the GIL) then overlaps with the consumer's optical flow (OpenCV,
    which releases it too).
    """
    q: queue.Queue = queue.Queue(maxsize=maxsize)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", done))
        except BaseException as e:  # forwarded to the consumer
            q.put(("error", e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass

    th = threading.Thread(target=produce, name="folai-decode", daemon=True)
    th.start()
    try:
        while True:
            kind, val = q.get()
            if kind == "item":
                yield val
            elif kind == "error":
                raise val
            else:
                return
    finally:
        stop.set()
        while th.is_alive():  # drain so the producer can finish
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        th.join()


class FlowFeatures:
    """Per frame pair: mean flow speed and the velocity / x position of the fastest-moving region.

    Speeds are in percent of the analysed width per frame, so they do not depend on the analysis
    resolution. The "moving region" is the top ``top_fraction`` of pixels by flow magnitude.
    """

    def __init__(self, preset: str = "ultrafast", top_fraction: float = 0.05, compensate: bool = True) -> None:
        self.compensate = bool(compensate)
        self.stride = 4 if preset in ("ultrafast", "fast") else 2
        import cv2

        presets = {
            "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }
        if preset not in presets:
            from ..errors import FolaiError

            raise FolaiError(f"unknown optical-flow preset '{preset}'; choose one of: {', '.join(presets)}")
        self._dis = cv2.DISOpticalFlow_create(presets[preset])
        self._cv2 = cv2
        self.top_fraction = float(top_fraction)
        self._prev: np.ndarray | None = None

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        """Feed the next frame; returns (5,) float32 [speed, vx, vy, cx, moving_fraction] of the
        motion from the previous frame to this one (zeros for the first frame).

        cx is the magnitude-weighted x of the moving region in [0, 1] of the analysed width.
        """
        cv2 = self._cv2
        prev, self._prev = self._prev, gray
        if prev is None or prev.shape != gray.shape:
            return np.zeros(5, np.float32)
        flow = self._dis.calc(prev, gray, None)  # (h, w, 2) pixels per frame
        scale = 100.0 / gray.shape[1]
        # DIS "ultrafast"/"fast" estimate flow on a 4x coarser grid and upsample it, so the centres
        # of 4x4 blocks carry all of its information: statistics there cost 16x less
        st = self.stride
        sub = flow[st // 2 :: st, st // 2 :: st]
        fx = np.ascontiguousarray(sub[..., 0]).ravel()
        fy = np.ascontiguousarray(sub[..., 1]).ravel()
        if self.compensate:
            # camera motion: the median flow of the picture, removed so that a pan or a shaking
            # camera does not look like moving objects
            fx = fx - np.median(fx)
            fy = fy - np.median(fy)
        m = cv2.magnitude(fx, fy).ravel()
        speed = float(m.mean()) * scale
        n = m.size
        k = max(1, int(math.ceil(self.top_fraction * n)))
        idx = np.argpartition(m, n - k)[n - k :]
        mt = m[idx]
        vx = float(fx[idx].mean()) * scale
        vy = float(fy[idx].mean()) * scale
        wsum = float(mt.sum())
        xs = (idx % sub.shape[1]) * st + st // 2 + 0.5
        cx = float((xs * mt).sum() / wsum) / gray.shape[1] if wsum > 0 else 0.5
        moving = float((m > 0.25 / scale).mean())  # share of pixels moving > 0.25 % width/frame
        return np.array([speed, vx, vy, cx, moving], np.float32)
