"""Streaming motion features for :mod:`folai.timing.motion`: fast gray frames + DIS optical flow.

Two pieces, run as a two-stage pipeline so decoding and optical flow overlap on two cores:

* :func:`iter_small_gray` yields small grayscale frames at a fixed rate through
  :func:`folai.media.iter_video_frames` (its timestamp, rotation and error conventions) in its
  ``gray="luma"`` mode: the luma plane of the decoded picture taken directly and shrunk by area
  averaging (OpenCV; by whole blocks first for the impacts, ``shrink="blocks"``), 2-3x cheaper
  than a swscale conversion of the whole frame, so the whole timing stage costs little more than
  decoding.
* :class:`FlowFeatures` turns consecutive frames into a few numbers per frame pair (dense DIS
  flow): mean speed, the velocity and horizontal position of the fastest-moving region.

Memory is constant in the video's length: one previous frame and a bounded queue of small frames;
the per-frame features (5 floats per frame) are all that accumulates.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class FrameGeometry:
    """Where the analysed pixels come from, in display (rotated) pixel coordinates."""

    display_w: int
    display_h: int
    roi: tuple[int, int, int, int]  # (x, y, w, h) analysed rectangle, clipped to the frame
    size: tuple[int, int]  # (w, h) of the small analysis frames


DIS_PRESETS = ("ultrafast", "fast", "medium")


def make_dis(preset: str = "ultrafast"):
    """An OpenCV DIS optical-flow object for ``preset`` (one of DIS_PRESETS)."""
    import cv2

    presets = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }
    if preset not in presets:
        from ..errors import FolaiError

        raise FolaiError(f"unknown optical-flow preset '{preset}'; choose one of: {', '.join(presets)}")
    return cv2.DISOpticalFlow_create(presets[preset])


@contextlib.contextmanager
def single_threaded_cv2():
    """OpenCV at one thread inside the block (restored after it).

    The motion stage already keeps both cores busy, one decoding and one computing the flow: DIS'
    own worker threads there only add CPU time (about 0.05 s per 10 s clip at 128 px, with no gain
    in wall time) that the decoder and the work beside stage 1 need. DIS gives bit-identical flow
    at any thread count.
    """
    import cv2

    old = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(old)


MIN_FLOW_SIDE = 32  # px: the shorter side of an analysis frame (DIS needs it)
MIN_ROI_SIDE = 16  # px: smaller regions carry no usable motion
MAX_ROI_ASPECT = 16  # longest / shortest side of a region


def check_roi_shape(w: int, h: int, whole_picture: bool = False) -> None:
    """Raise FolaiError if a w x h region (``whole_picture``: the video's picture, no region
    given) is too small or too thin for motion analysis."""
    from ..errors import FolaiError

    if min(w, h) < MIN_ROI_SIDE or max(w, h) > MAX_ROI_ASPECT * min(w, h):
        if whole_picture:
            raise FolaiError(
                f"the video's picture, {w}x{h} px, is too small or too thin to measure motion in; the motion "
                f"timing needs at least {MIN_ROI_SIDE} px each way and at most {MAX_ROI_ASPECT}:1 between the "
                "sides: give --roi X,Y,W,H around the action within those bounds, or --envelope ENV.csv to take "
                "the timing from an envelope instead"
            )
        raise FolaiError(
            f"the region of interest {w}x{h} px is too small or too thin to measure motion in; "
            f"give at least {MIN_ROI_SIDE} px each way and at most {MAX_ROI_ASPECT}:1 between its sides"
        )


def resolve_roi(roi: tuple[int, int, int, int] | None, dw: int, dh: int, warn: bool = True) -> tuple[int, int, int, int]:
    """The rectangle analysed in a ``dw`` x ``dh`` picture: ``roi`` (x, y, w, h, display pixels)
    clipped to it (said with a warning), or the whole picture; a :class:`~folai.errors.FolaiError`
    for one that misses the picture or is too small to measure motion in. Asked before any work
    by ``generate`` too."""
    from ..errors import FolaiError

    if roi is None:
        r = (0, 0, dw, dh)
    else:
        x, y, w, h = (int(v) for v in roi)
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(dw, x + w), min(dh, y + h)
        if x1 <= x0 or y1 <= y0:  # (one that overlaps the picture but is thin: check_roi_shape says so)
            raise FolaiError(
                f"the region of interest {x},{y},{w},{h} lies outside the {dw}x{dh} video; "
                "give x,y,w,h inside the picture"
            )
        r = (x0, y0, x1 - x0, y1 - y0)
        if r != (x, y, w, h):
            # (clipped without a word, and a region left too small was said in the clipped size,
            # not the one typed; found by a review)
            try:
                check_roi_shape(r[2], r[3])
            except FolaiError as e:
                raise FolaiError(f"the region of interest {x},{y},{w},{h} runs off the {dw}x{dh} picture; inside it "
                                 f"it is {r[2]}x{r[3]} px: {str(e).split('; ', 1)[-1]}") from None
            if warn:
                log.warning("the region of interest %d,%d,%d,%d runs off the %dx%d picture: using %d,%d,%d,%d",
                            x, y, w, h, dw, dh, *r)
    check_roi_shape(r[2], r[3], whole_picture=roi is None)
    return r


def iter_small_gray(
    path: str | Path,
    fps: float = 30.0,
    width: int = 128,
    roi: tuple[int, int, int, int] | None = None,
    geometry: list | None = None,
    shrink: str = "area",
    source_times: bool = False,
    align: bool = False,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(t, gray)`` at ``fps``: ``(h, w)`` uint8 luma of the display picture (or of ``roi``),
    shrunk so that its width is at most ``width`` pixels, but enlarged where needed so that its
    shorter side is at least ``MIN_FLOW_SIDE`` pixels (tiny or flat regions of interest).

    ``roi`` is ``(x, y, w, h)`` in display pixels; it is clipped to the frame, and a rectangle that
    misses the frame raises :class:`~folai.errors.FolaiError`. If ``geometry`` is a list, the
    :class:`FrameGeometry` used is appended to it before the first frame is yielded. ``shrink``
    is :func:`folai.media.iter_video_frames`' (``"blocks"``: faster, nearly the same picture);
    with ``source_times`` it yields ``(t, gray, source_t)``, and with ``align`` starts at the first
    frame's phase, as that function does.
    """
    from .. import media

    info = media.probe_video(path)  # remembered: the pipeline has usually probed this file already
    dw, dh = info.width, info.height
    r = resolve_roi(roi, dw, dh)
    scale = min(1.0, width / float(r[2]))
    # OpenCV's DIS flow crashes the process on frames under ~32 px high (e.g. 100x20): enlarge
    # small or flat analysis frames so their shorter side is at least MIN_FLOW_SIDE.
    scale = max(scale, MIN_FLOW_SIDE / float(min(r[2], r[3])))
    out_w = max(2, int(round(r[2] * scale)))
    out_h = max(2, int(round(r[3] * scale)))
    if geometry is not None:
        geometry.append(FrameGeometry(dw, dh, r, (out_w, out_h)))
    crop = None if r == (0, 0, dw, dh) else r
    yield from media.iter_video_frames(path, fps=fps, size=(out_w, out_h), gray="luma", crop=crop, shrink=shrink,
                                       source_times=source_times, align=align)


def threaded(it: Iterator, maxsize: int = 16, batch: int = 4) -> Iterator:
    """Run iterator ``it`` in a background thread (bounded queue), re-raising its exceptions here.

    Decoding (PyAV, which releases the GIL) then overlaps with the consumer's optical flow (OpenCV,
    which releases it too). Items travel in batches of ``batch`` (fewer queue hand-offs between the
    threads); at most about ``maxsize`` items wait in the queue.
    """
    batch = max(1, int(batch))
    q: queue.Queue = queue.Queue(maxsize=max(1, maxsize // batch))
    stop = threading.Event()

    def put(msg) -> bool:
        while not stop.is_set():
            try:
                q.put(msg, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        items: list = []
        try:
            for item in it:
                items.append(item)
                if len(items) >= batch:
                    if not put(("items", items)):
                        return
                    items = []
            if items and not put(("items", items)):
                return
            put(("end", None))
        except BaseException as e:  # forwarded to the consumer, after the items before it
            if items and not put(("items", items)):
                return
            put(("error", e))
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
            if kind == "items":
                yield from val
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

    def __init__(self, preset: str = "ultrafast", top_fraction: float = 0.05, compensate: bool | str = True,
                 time_scale: float = 1.0) -> None:
        if compensate not in (True, False, "auto"):
            raise ValueError(f"compensate must be True, False or 'auto', got {compensate!r}")
        # True: camera motion (the picture's median flow) removed; "auto": the statistics both
        # ways (columns 10..14: speed, vx, vy, cx, moving with it removed), to be blended where the
        # camera moves (motion.camera_weight)
        self.compensate = compensate
        self.size = 17 if compensate == "auto" else 12  # values per frame pair
        # the last two values: the mean absolute grey-level difference of the two frames (a low
        # frame rate's speed is read from it: the flow cannot follow motion that far per frame),
        # and the change of their mean grey level (a fade or a flicker changes every pixel the same
        # way, so the two are alike; a moving object changes pixels both ways)
        self.diff_column = self.size - 2
        self.bright_column = self.size - 1
        # the values that are speeds (they scale with the time between frames)
        self.velocity_columns = ([0, 1, 2, 5, 6, 7, 8] + ([10, 11, 12] if compensate == "auto" else [])
                                 + [self.diff_column, self.bright_column])
        # speeds are given per time_scale frame intervals (rate / 30 for a video analysed at `rate`
        # frames/s: per 1/30 s), so that the same motion measures the same at any frame rate
        self.time_scale = float(time_scale)
        self.stride = 4 if preset in ("ultrafast", "fast") else 2
        self._dis = make_dis(preset)
        import cv2

        self._cv2 = cv2
        self.top_fraction = float(top_fraction)
        self._prev: np.ndarray | None = None
        self._hist: np.ndarray | None = None  # grey-level histogram of the previous frame
        self._mean = 0.0  # mean grey level of the previous frame
        self._blank = BlankTest()

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        """Feed the next frame; returns (11,) float32 [speed, vx, vy, cx, moving_fraction, top,
        bottom, left, right, change, diff] of the motion from the previous frame to this one (zeros
        for the first frame), and with ``compensate="auto"`` (16,): 5 more before ``diff``, the
        first five with the camera's motion removed.

        cx is the magnitude-weighted x of the moving region in [0, 1] of the analysed width;
        top .. right are the mean flow speeds in strips along the picture's four borders (1/16 of
        the analysed width deep, at least 2 flow cells): where an arm or a tool enters the picture.
        change is the L1 distance (0..2) between the two frames' 16-bin grey-level histograms:
        motion within a shot barely moves it (at most 0.3 on 18 real clips), a cut to another
        shot does (:func:`scene_cuts`). diff is the mean absolute grey-level difference of the two
        frames (0..255, per 1/30 s like the speeds).
        """
        prev, self._prev = self._prev, gray
        blank = self._blank(prev, gray)
        sample = gray[::2, ::2]  # every 4th pixel: as good a histogram, a quarter of the work
        hist = np.bincount((sample >> 4).ravel(), minlength=16) / float(sample.size)
        prev_hist, self._hist = self._hist, hist
        cv2 = self._cv2
        mean = float(cv2.mean(gray)[0])
        prev_mean, self._mean = self._mean, mean
        if prev is None or prev.shape != gray.shape:
            return np.zeros(self.size, np.float32)
        change = float(np.abs(hist - prev_hist).sum())
        diff = float(cv2.mean(cv2.absdiff(prev, gray))[0])  # (integer sums: exact)
        scale = 100.0 / gray.shape[1] * self.time_scale
        st = self.stride
        # (h, w, 2) pixels per frame; none for a blank picture (a title card, a black ending) in
        # either frame: DIS would return the noise's on flat colour, large and random
        flow = np.zeros(gray.shape + (2,), np.float32) if blank else self._dis.calc(prev, gray, None)
        # DIS "ultrafast"/"fast" estimate flow on a 4x coarser grid and upsample it, so the centres
        # of 4x4 blocks carry all of its information: statistics there cost 16x less
        sub = flow[st // 2 :: st, st // 2 :: st]
        fx = np.ascontiguousarray(sub[..., 0]).ravel()
        fy = np.ascontiguousarray(sub[..., 1]).ravel()
        if self.compensate is True:
            # camera motion: the median flow of the picture, removed so that a pan or a shaking
            # camera does not look like moving objects
            fx = fx - _median(fx)
            fy = fy - _median(fy)
        m, region = self._region(fx, fy, sub.shape[1], gray.shape[1], scale)
        g = m.reshape(sub.shape[:2])
        b = max(2, int(round(gray.shape[1] / 16 / st)))
        b = min(b, max(1, min(g.shape) // 4))
        out = [*region, _mean64(g[:b]) * scale, _mean64(g[-b:]) * scale, _mean64(g[:, :b]) * scale,
               _mean64(g[:, -b:]) * scale, change]
        if self.compensate == "auto":
            # the camera's motion: the median flow (of every 3rd cell: cheaper, as good an estimate)
            few_x, few_y = fx[::3], fy[::3]
            half = few_x.size // 2
            gx = np.partition(few_x, half)[half]
            gy = np.partition(few_y, half)[half]
            cfx, cfy = fx - gx, fy - gy
            cm = _magnitude(cfx, cfy)
            c_speed = _mean64(cm) * scale
            if c_speed < (1.0 - AUTO_SHARE) * region[0]:
                out += self._region(cfx, cfy, sub.shape[1], gray.shape[1], scale, m=cm)[1]
            else:  # the camera explains little of the motion: nothing to compensate (as measured)
                out += [c_speed, *region[1:]]
        out += [diff * self.time_scale, (mean - prev_mean) * self.time_scale]
        return np.array(out, np.float32)

    def _region(self, fx: np.ndarray, fy: np.ndarray, cols: int, width: int, scale: float, m=None):
        """(magnitudes, (speed, vx, vy, cx, moving)) of flow cells ``fx``, ``fy`` (``cols`` per row;
        ``m``: their magnitudes, if known)."""
        st = self.stride
        m = (_magnitude(fx, fy) if m is None else m).ravel()
        # float64 sums: a float32 sum depends on the array's memory alignment (SIMD loops), which
        # would make the same video measure differently from run to run in the last bit
        speed = _mean64(m) * scale
        n = m.size
        k = max(1, int(math.ceil(self.top_fraction * n)))
        idx = m.argpartition(n - k)[n - k :]
        mt = m[idx]
        vx = _mean64(fx[idx]) * scale
        vy = _mean64(fy[idx]) * scale
        wsum = float(_sum64(mt))
        xs = (idx % cols) * st + st // 2 + 0.5
        cx = float(_sum64(xs * mt) / wsum) / width if wsum > 0 else 0.5
        moving = np.count_nonzero(m > 0.25 / scale) / n  # share of pixels moving > 0.25 % width/frame
        return m, (speed, vx, vy, cx, moving)


def _sum64(x: np.ndarray) -> np.float64:
    """The float64 sum of all of ``x`` (``x.sum(dtype=float64)`` without its Python wrapper:
    these statistics are a few hundred values, where the wrapper cost as much as the sum)."""
    return _ADD(x, axis=None, dtype=np.float64)


def _mean64(x: np.ndarray) -> float:
    """``float(x.mean(dtype=float64))``, bit for bit (the same sum, divided by the count)."""
    return float(_ADD(x, axis=None, dtype=np.float64) / x.size)


_ADD = np.add.reduce


def _median(x: np.ndarray) -> np.floating:
    """``np.median(x)`` of a 1-D float array, bit for bit (NaN and signed zeros included), at a
    third of its cost: a few hundred values per frame, where np.median's Python wrapper cost
    more than the partition."""
    n = x.size
    h = n // 2
    zero = x.dtype.type(0)  # (np.median sums from zero: a -0.0 middle value gives +0.0)
    if n % 2:
        p = np.partition(x, (h, n - 1))  # (the last: the largest, or a NaN, as np.median checks)
        r = (zero + p[h]) / x.dtype.type(1)
    else:
        p = np.partition(x, (h - 1, h, n - 1))
        r = (zero + p[h - 1] + p[h]) / x.dtype.type(2)
    return x.dtype.type(np.nan) if np.isnan(p[-1]) else r


#: grey levels: a block of the analysed frame whose standard deviation is under this is flat: flat
#: colour with the codec's noise measures 0.0-1.2 (title cards, black endings)
BLANK_STD = 3.0
#: pixels: the side of the blocks measured
BLANK_BLOCK = 8
#: a frame pair shows a blank picture (a title card, a black ending) when each frame has at least
#: this share of flat blocks and nothing changes (see STILL_SPREAD): its flow is zero. The flow on
#: flat colour is noise, large and random: a 2 s card after a walk had lost all its steps or added
#: 4-5, and added 3-5 false hits to a hit video. Cards measure 1.00 (0.97 with 5 grey levels of
#: noise at 160 px); real footage has many flat blocks (smooth walls and tables: up to 68 % of a
#: Greatest Hits clip's at the default width, more at larger widths; a small object or walker on a
#: plain wall, a night scene: 96-98 %), where a share of 0.9 zeroed pairs in which a small walker
#: moved too little for the change test, and lost its steps (found by a review)
BLANK_SHARE = 0.98
#: nothing changes between the two frames of a blank pair: no block's mean absolute difference
#: reaches the flat blocks' median + STILL_SPREAD robust deviations (1.48 x their median absolute
#: deviation) + STILL_PAD, nor STILL_MIN grey levels. A block's mean over 64 pixels varies little
#: with noise alone; a threshold of 3 x the median was too coarse (a small walker's blocks change
#: by ~2 grey levels against the noise's 0.8). Every block is tested, the flat ones too: a stick
#: one pixel wide in the analysed picture is flat to a test that reads every other pixel, and it
#: moves (found by a review)
STILL_SPREAD = 8.0
STILL_PAD = 0.3
STILL_MIN = 1.0
#: a pair whose one frame is blank and the other has under this share of flat blocks cuts into or
#: out of a blank picture: its flow is zero too (across a cut from a walk to a card DIS returns a
#: burst that had broken the walking test). Frames of one shot on a plain wall hover together
#: around BLANK_SHARE, far above this
CUT_SHARE = 0.5


def _block_mean(img: np.ndarray, block: int = BLANK_BLOCK) -> np.ndarray:
    """(rows, cols) mean of ``img`` over whole ``block``-square blocks (a remainder of under a
    block at the right and bottom edges is left out: whole blocks keep OpenCV's area resampling
    on its fast path), float32."""
    import cv2

    h, w = img.shape
    H, W = max(1, h // block), max(1, w // block)
    return cv2.resize(img[: H * block, : W * block].astype(np.float32, copy=False), (W, H), interpolation=cv2.INTER_AREA)


def _flat_blocks(gray: np.ndarray) -> np.ndarray:
    """(rows, cols) bool: the BLANK_BLOCK-square blocks of ``gray`` (whole blocks, as
    :func:`_block_mean`) whose grey levels' standard deviation is under BLANK_STD, measured on
    every other pixel each way: 16 of a block's 64, as good a test of flatness at ~25 us a frame
    (all of them, at any size, had cost stage 1 ~6 % more CPU). The variance is compared with
    BLANK_STD squared: the same blocks as the square root against BLANK_STD (the square root is
    correctly rounded and increasing), two array operations fewer per frame."""
    h, w = gray.shape
    H, W = max(1, h // BLANK_BLOCK), max(1, w // BLANK_BLOCK)
    x = gray[: H * BLANK_BLOCK : 2, : W * BLANK_BLOCK : 2].astype(np.float32)
    m = _block_mean(x, BLANK_BLOCK // 2)
    return _block_mean(x * x, BLANK_BLOCK // 2) - m * m < np.float32(BLANK_STD * BLANK_STD)


class BlankTest:
    """Fed every analysed frame in turn: whether the pair it ends shows a blank picture (each frame
    flat in at least BLANK_SHARE of its blocks, and nothing changing in the rest) or cuts into or
    out of one (see CUT_SHARE). A frame's blocks are measured once; a pair where neither frame is
    mostly flat (nearly every pair of real footage) costs nothing more."""

    def __init__(self) -> None:
        self._prev: tuple[np.ndarray, float] | None = None  # (flat blocks, their share) of the last frame

    def __call__(self, prev: np.ndarray | None, gray: np.ndarray) -> bool:
        """``prev``: the frame before ``gray`` (None for the first; one of another size starts anew)."""
        flat = _flat_blocks(gray)
        share = float(np.count_nonzero(flat)) / flat.size
        last, self._prev = self._prev, (flat, share)
        if prev is None or prev.shape != gray.shape or last is None or max(share, last[1]) < BLANK_SHARE:
            return False
        flat_prev, share_prev = last
        if min(share, share_prev) < CUT_SHARE:
            return True  # a cut into or out of a blank picture: nothing moved across it
        if min(share, share_prev) < BLANK_SHARE:
            return False
        import cv2

        d = _block_mean(cv2.absdiff(prev, gray))
        still = d[flat & flat_prev]  # (at least 96 % of the blocks: both frames are 98 % flat)
        med = float(np.median(still))
        spread = 1.4826 * float(np.median(np.abs(still - med)))
        return float(d.max()) < max(med + STILL_SPREAD * spread + STILL_PAD, STILL_MIN)


def _magnitude(fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """sqrt(fx^2 + fy^2), the same in every run: OpenCV's magnitude gives results that differ in
    the last bit with the arrays' memory alignment (its SIMD path against its scalar one), so the
    same video could be measured differently from one run to the next."""
    m = fx * fx
    m += fy * fy
    return np.sqrt(m, out=m)


#: compensate="auto": the compensated statistics are measured in full only for a frame pair whose
#: camera explains at least this share of the mean flow speed (far below where they start to count,
#: motion.CAMERA_FROM); elsewhere they are the raw ones, with the compensated speed
AUTO_SHARE = 0.2

#: a frame pair whose grey-level histograms differ by more than this (L1, 0..2) is a cut ...
CUT_CHANGE = 0.5
#: ... if that is also this many times the typical change around it (1 s median)
CUT_RATIO = 4.0


def scene_cuts(change: np.ndarray, fps: float) -> np.ndarray:
    """(T,) bool: the frame pairs that cut from one shot to another, from the per-pair histogram
    ``change`` of :class:`FlowFeatures`. A cut changes the picture's grey levels at once; motion,
    a pan or a slow fade within a shot does not (the 18 real clips of the benchmark, continuous
    shots: at most 0.30, median 0.01-0.02). The flow across a cut is meaningless, and a cut from a
    busy shot to a calm one would otherwise read as a sudden stop."""
    from scipy.ndimage import median_filter

    c = np.asarray(change, np.float64)
    if c.size == 0:
        return np.zeros(0, bool)
    typical = median_filter(c, size=max(3, int(round(fps)) | 1), mode="nearest")
    return (c > CUT_CHANGE) & (c > CUT_RATIO * typical)
