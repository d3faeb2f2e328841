"""Stage 1 offline: motion timing. Video -> RMS envelope from dense optical flow, no weights.

How it works (details and the reasons in ``docs/motion.md``):

1. Frames are decoded at about 30 fps (the video's own rate, or every 2nd, 3rd ... frame: never a
   frame twice, :func:`analysis_rate`), reduced to luma and shrunk to ``width`` pixels (128 by
   default; a region of interest is cropped at full resolution first); DIS optical flow (OpenCV,
   preset "ultrafast") runs between consecutive frames. Per frame pair we keep the mean flow speed
   (in % of the picture width per 1/30 s) and the velocity and horizontal position of the fastest-moving
   5 % of the picture. Decoding runs in a second thread, so the stage costs little more than
   decoding the video.
2. **Impacts** are where motion stops abruptly: the speed falls from a peak to at most
   ``drop_ratio`` of it within ``window`` frames (or, a bounce, the moving region's velocity turns
   back against a near-vertical downward approach, within one frame pair or over two when the
   contact falls mid-interval). The contact is placed inside the frame
   interval where the object stopped, at the share of it the object still travelled (sub-frame).
   Its strength is the speed lost, weighted by the direction of approach: things fall and are
   struck downwards, while an upward movement that stops (a stick at the top of its back-swing, a
   hand lifting) makes no sound, so the weight is ``clip(down_bias + cos(angle to down), 0, 1)``;
   with ``arm_prior`` "down" is bent towards the direction away from the picture border where the
   arm comes in (motion along the borders, :meth:`MotionFeatures.strike_direction`): a stick
   pushed in from the left strikes rightwards.
3. Candidates weaker than ``min_drop`` (absolute, % width/frame), than ``noise_floor`` times the
   typical frame-to-frame speed change around them, or than ``rel_threshold`` times the strongest
   candidate within ``ref_window`` seconds are dropped; of candidates closer than ``min_gap`` the
   strongest wins. Single-pair speed spikes (flow glitches, cuts) are capped first. With
   ``rhythm`` (default), strikes repeated at a steady swing are then checked against its beat
   (the swing's period from the autocorrelation of the motion along the strike direction): weak
   events off the beat are dropped, a strike and its rebound are told apart by which is on the
   beat, and weak stops on the beat that the floors rejected are kept.
4. **Envelope**: each impact is a fast attack (``attack`` s) peaking at the contact time, then
   the two-slope decay of a real impact's smoothed RMS (``decay``, ``tail``, ``tail_share``). Its
   peak is ``level * (strength / local reference) ** level_gamma``: like the SPEC target, which is
   computed on peak-normalised audio, the strongest impact of a stretch gets the typical level of
   a real Greatest Hits impact and weaker ones scale with the speed they lost. After an impact, motion
   that goes on at a comparable speed without lifting (sliding, scratching, rubbing) keeps a
   **sustained** level (``sustain``) until it stops or lifts. Everything else is silence, so a
   static video gives an all-zero envelope.
5. **Pan** per envelope frame: the horizontal position of the moving region at each impact, held
   until the next one, in [-1, 1] of the full frame.

**Footsteps** (``mode="steps"``, or ``mode="auto"`` with a prompt about walking, running,
stomping, ...) use another detector, :mod:`folai.timing._gait`: steps at the lowest points of the
walking body's (or the carried camera's) vertical bob, at a cadence estimated from its rhythm.

Example::

    from folai.timing import get_timing
    res = get_timing("motion").estimate("clip.mp4")
    res.envelope.values.shape     # (1, duration * 16000 // 128), 125 frames/s
    res.info["events"]            # impact times in seconds
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..envelope import DEFAULT, Envelope
from ..errors import FolaiError
from . import TimingResult
from ._flow import FlowFeatures, FrameGeometry, iter_small_gray, scene_cuts, single_threaded_cv2, threaded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MotionConfig:
    """Options of :class:`MotionTiming` (all keyword arguments of its constructor)."""

    fps: float = 30.0  # analysis frame rate
    width: int = 128  # analysis width in pixels (of the frame, or of the roi)
    preset: str = "ultrafast"  # DIS optical flow preset: ultrafast | fast | medium
    top_fraction: float = 0.05  # share of pixels forming the "moving region"
    # remove camera motion (the picture's median flow): True, False, or "auto": where the camera's
    # own motion makes most of the picture's (a pan, a tracking shot), not elsewhere (camera_weight)
    compensate: bool | str = "auto"
    # impact detection
    window: int = 4  # frames: the peak speed is looked for this far back
    drop_ratio: float = 0.5  # the speed must fall to at most this share of the peak
    down_bias: float = 0.3  # direction weight clip(down_bias + cos(angle to the strike direction), 0, 1)
    arm_prior: bool = True  # strike direction: gravity plus "away from the border the arm comes in at"
    arm_window: float = 10.0  # seconds over which the arm's border is estimated (centred)
    arm_floor: float = 0.05  # % of width per frame: border motion more uneven than this shows an arm
    min_drop: float = 0.05  # % of width per frame: weaker speed drops are noise
    noise_floor: float = 1.0  # ... and drops under this times the typical frame-to-frame jitter (2 s)
    rel_threshold: float = 0.1  # share of the strongest impact nearby (within ref_window)
    ref_window: float = 5.0  # seconds each side for the local reference strength
    min_gap: float = 0.13  # seconds between two impacts
    hold: bool = False  # the pair after the drop must stay slow too (off: struck things rebound)
    approach: float = 0.3  # the pair before the peak must move at >= this share of the peak
    reversal: bool = True  # also detect bounces: the motion turns back without slowing down
    reverse_ratio: float = 0.25  # ... to at least this share of the approach velocity, backwards
    reverse_bias: float = -0.5  # direction weight of bounces: clip(reverse_bias + cos(angle to the strike direction), 0, 1):
    # only bounces of things moving (nearly) straight down count, at half weight at most
    # rhythm: strikes repeated at a steady swing (a stick beating a surface) are looked for on its
    # beat (MotionTiming._on_the_beat): the swing's period is the first strong peak of the
    # autocorrelation of the motion along the strike direction, within rhythm_period seconds
    rhythm: bool = True
    rhythm_period: tuple[float, float] = (0.3, 2.0)  # seconds: the swing periods looked for
    rhythm_tol: float = 0.1  # share of the period a beat may be off its neighbours' (plus one frame pair)
    rhythm_drop: float = 0.3  # a weaker event (share of the local reference) off the beat of stronger ones is dropped
    rhythm_add: float = 0.03  # a weak stop one period from an event is a beat down to this share of the reference
    rhythm_level: float = 0.5  # ... and heard at least at this share of its neighbours' strength
    spike: float = 1.5  # a pair faster than this times both neighbours is capped there (flow glitch)
    timing: str = "share"  # contact time: "share" of the slow interval, or "half" (half-peak crossing)
    # envelope shape and levels
    level: float = 0.09  # peak of the strongest impact in a stretch (median real GH peak ~0.08)
    level_gamma: float = 1.0  # level follows the speed lost (sound amplitude ~ impact velocity)
    attack: float = 0.016  # seconds of linear rise ending at the contact
    decay: float = 0.04  # seconds, time constant of the main decay
    tail: float = 0.15  # seconds, time constant of the tail
    tail_share: float = 0.25  # share of the tail in the decay
    sustain: float = 0.25  # sustained level (x impact level) while sliding after a contact; 0 = off
    sustain_speed: float = 0.15  # sliding = the object moves at >= this share of its approach speed
    sustain_min: float = 0.3  # seconds: shorter motion after a contact is the hit settling, not a slide
    # what to listen for: "impacts" (hits, landings, slides), "steps" (footsteps from the walking
    # body's bob, see _gait.py) or "auto" (steps when the prompt talks about walking, else impacts)
    mode: str = "auto"
    min_cadence: float = 1.3  # steps per second (slow walk)
    max_cadence: float = 3.6  # steps per second (running)
    step_lead: float | None = -0.1  # step periods from the sound of a step to the walker's lowest point
    # (positive: the sound comes first). -0.1, a tenth of a step after the lowest point, is what game
    # footage shows (Walking The Maps); None: the biomechanical model of a live-action walker (0.12 when
    # walking, 0.3 running, see _gait.py)
    step_level: float = 0.15  # peak of a footstep (real isolated footsteps: ~0.13-0.17 in the SPEC envelope)
    step_attack: float = 0.016  # seconds
    step_decay: float = 0.05  # seconds: a footstep (heel + toe) lasts longer than a knock
    step_tail: float = 0.2  # seconds
    step_tail_share: float = 0.3

    def __post_init__(self) -> None:
        checks = [
            (self.fps > 0, "fps must be > 0"),
            (self.width >= 16, "width must be >= 16 pixels"),
            (0 < self.top_fraction <= 1, "top_fraction must be in (0, 1]"),
            (self.window >= 1, "window must be >= 1 frame"),
            (0 < self.drop_ratio < 1, "drop_ratio must be in (0, 1)"),
            (self.min_drop >= 0, "min_drop must be >= 0"),
            (self.arm_window > 0 and self.arm_floor >= 0, "arm_window must be > 0 s and arm_floor >= 0"),
            (0 <= self.rel_threshold <= 1, "rel_threshold must be in [0, 1]"),
            (self.ref_window > 0, "ref_window must be > 0 s"),
            (self.min_gap >= 0, "min_gap must be >= 0 s"),
            (0 < self.rhythm_period[0] < self.rhythm_period[1], "rhythm_period must be (low, high) with 0 < low < high s"),
            (self.rhythm_tol >= 0 and self.rhythm_drop >= 0 and self.rhythm_add >= 0 and self.rhythm_level >= 0,
             "rhythm_tol, rhythm_drop, rhythm_add and rhythm_level must be >= 0"),
            (0 < self.level <= 1, "level must be in (0, 1]"),
            (self.level_gamma >= 0, "level_gamma must be >= 0"),
            (self.attack >= 0 and self.decay > 0 and self.tail > 0, "attack must be >= 0, decay and tail > 0 s"),
            (0 <= self.tail_share <= 1, "tail_share must be in [0, 1]"),
            (self.sustain >= 0, "sustain must be >= 0"),
            (self.mode in ("auto", "impacts", "steps"), f"mode must be auto, impacts or steps, got {self.mode!r}"),
            (self.compensate in (True, False, "auto"), f"compensate must be True, False or 'auto', got {self.compensate!r}"),
            (0 < self.min_cadence < self.max_cadence, "cadence range must satisfy 0 < min_cadence < max_cadence"),
            (0 < self.step_level <= 1, "step_level must be in (0, 1]"),
            (self.step_lead is None or -0.5 <= self.step_lead <= 0.5, "step_lead must be in [-0.5, 0.5] step periods"),
            (self.step_attack >= 0 and self.step_decay > 0 and self.step_tail > 0,
             "step_attack must be >= 0, step_decay and step_tail > 0 s"),
            (0 <= self.step_tail_share <= 1, "step_tail_share must be in [0, 1]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise FolaiError(f"motion timing option error: {msg}")


@dataclass
class Impact:
    """One detected contact."""

    time: float  # seconds
    strength: float  # speed lost x direction weight, % of width per frame
    level: float  # envelope peak in [0, 1]
    pan: float  # [-1, 1]
    sample: int  # index of the first frame pair after the drop (motion features index)
    peak: int = 0  # index of the fastest pair before the contact
    approach: float = 0.0  # peak speed before the contact


@dataclass
class MotionFeatures:
    """Per-frame motion features; index k describes the motion from frame k-1 to frame k
    (k = 0 is all zeros), i.e. around time t0 + (k - 0.5) / fps."""

    speed: np.ndarray  # (T,) mean flow speed, % of width per frame
    vx: np.ndarray  # (T,) velocity of the moving region (x right), % width per frame
    vy: np.ndarray  # (T,) (y down)
    cx: np.ndarray  # (T,) x of the moving region, [0, 1] of the analysed width
    moving: np.ndarray  # (T,) share of pixels that move
    fps: float
    geometry: FrameGeometry | None = None
    edges: np.ndarray | None = None  # (T, 4) flow speed along the top, bottom, left, right borders
    cuts: np.ndarray | None = None  # (T,) bool: the pair cuts to another shot (no motion measured)
    camera: np.ndarray | None = None  # (T,) weight of the camera-compensated statistics (compensate="auto")
    held: int = 0  # held frames whose motion was shared with the next new picture (spread_held_frames)
    # (T,) how much of each pair's change is a uniform change of brightness: |change of the mean
    # grey level| / mean |grey-level difference| (at most 1), ~1 for a fade or a flicker, small for
    # motion; signed like the change (+ brighter)
    uniform: np.ndarray | None = None
    # seconds: the time of frame 0 (the video's first frame's phase on the analysis grid, 0 for
    # most files): event times are measured from it
    t0: float = 0.0

    def strike_direction(self, cfg: "MotionConfig") -> np.ndarray:
        """(T, 2) unit vector (x right, y down) per frame pair: the direction strikes are expected
        to move in. Gravity (down) plus, when ``cfg.arm_prior`` is on and motion crosses the
        picture's borders unevenly, the direction away from the border where the arm (or the
        tool) comes in, in equal parts: a stick swung by a hand above the picture strikes down,
        one pushed in from the left strikes rightwards and a little down. Border motion that is
        mostly along the bottom cancels gravity and leaves it as it was."""
        T = len(self.speed)
        u = np.zeros((T, 2))
        u[:, 1] = 1.0
        if not cfg.arm_prior or self.edges is None or T == 0:
            return u
        # the median over a window centred on each second (cut at the clip's ends, no padding): an
        # arm moves across its border for much of the time, while an object landing near a border
        # only smears the flow there for a frame or two
        edges = np.asarray(self.edges, np.float64)
        half = max(1, int(round(0.5 * cfg.arm_window * self.fps)))
        centres = np.unique(np.r_[np.arange(0, T, max(1, int(round(self.fps)))), T - 1])
        med = np.stack([np.median(edges[max(0, c - half) : c + half + 1], axis=0) for c in centres])
        e = np.stack([np.interp(np.arange(T), centres, med[:, i]) for i in range(4)], axis=1)
        v = np.stack([e[:, 2] - e[:, 3], e[:, 0] - e[:, 1]], axis=1)  # inwards from the busier borders
        n = np.linalg.norm(v, axis=1)
        ok = n >= cfg.arm_floor
        unit = np.where(ok[:, None], v / np.maximum(n, 1e-12)[:, None], 0.0)
        w = u + unit
        wn = np.linalg.norm(w, axis=1)
        # motion along the bottom border alone (an arm from below, or a thing sliding along the
        # floor) cancels gravity: no clear direction then, so gravity stays
        return np.where((wn >= 0.5)[:, None], w / np.maximum(wn, 1e-12)[:, None], u)

    @property
    def duration(self) -> float:
        return len(self.speed) / self.fps


#: a ringing material's decay (MotionTiming.impact_decay) is given in full to a hit followed by
#: silence for RING_GAP[1] s or more, not at all to one followed by the next within RING_GAP[0] s
#: (in between, the two shapes are mixed): struck every 0.1 s, metal's rings piled up into a
#: drone that kept 0.83 of the peak between hits, and the hits lost their attacks
RING_GAP = (0.15, 0.5)
#: ... counting only the next hits at least this share of its level: a faint bounce or tap after a
#: loud strike does not stop its ring (it had cut a struck pipe's ring by 20 dB)
RING_NEXT = 0.5


def _events_envelope(t_env: np.ndarray, times, levels, attack: float, decay: float, tail: float,
                     tail_share: float, ring: tuple[float, float, float] | None = None) -> np.ndarray:
    """Sum of impact shapes (power-summed) at ``times`` with peak ``levels``, sampled at ``t_env``.
    ``ring``: a longer (decay, tail, tail_share) for hits with room to ring (:data:`RING_GAP`)."""
    env = np.zeros(len(t_env), np.float64)
    longest = max(decay, tail, *(ring[:2] if ring else ()))
    span = attack + 12.0 * longest  # beyond this an impact is < 1e-5 of its peak
    times = np.asarray(times, np.float64)
    lvs = np.asarray(levels, np.float64)

    def room(t_s: float, lv: float) -> float:
        # seconds to the next hit at least half as loud (a faint bounce does not stop a ring)
        later = times[(times > t_s) & (lvs >= RING_NEXT * lv)]
        return float(later.min() - t_s) if later.size else np.inf

    for t_s, lv in zip(times.tolist(), lvs.tolist()):
        i0 = max(0, int(np.floor((t_s - attack) * DEFAULT.rate)))
        i1 = min(len(t_env), int(np.ceil((t_s + span) * DEFAULT.rate)) + 1)
        if i1 <= i0:
            continue
        shape = impact_shape(t_env[i0:i1] - t_s, attack, decay, tail, tail_share)
        if ring is not None:
            w = float(np.clip((room(t_s, lv) - RING_GAP[0]) / (RING_GAP[1] - RING_GAP[0]), 0.0, 1.0))
            if w > 0:
                shape = (1.0 - w) * shape + w * impact_shape(t_env[i0:i1] - t_s, attack, *ring)
        env[i0:i1] += (lv * shape) ** 2
    return np.sqrt(env)


class MotionTiming:
    """Optical-flow timing backend (name ``"motion"``); keyword options are :class:`MotionConfig` fields."""

    def __init__(self, **options) -> None:
        names = {f.name for f in dataclasses.fields(MotionConfig)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise FolaiError(
                f"unknown motion timing option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(names))}"
            )
        self.config = MotionConfig(**options)

    # ------------------------------------------------------------------ public API
    def estimate(
        self,
        video: str | Path,
        *,
        roi: tuple[int, int, int, int] | None = None,
        progress: bool = True,
        prompt: str | None = None,
    ) -> TimingResult:
        """The video's envelope (mono, 125 frames/s, ``duration * 16000 // 128`` frames from t = 0),
        pan per envelope frame and diagnostics (``info["events"]``: impact times in seconds)."""
        if roi is not None:
            roi = tuple(int(v) for v in roi)
            if len(roi) != 4 or roi[2] <= 0 or roi[3] <= 0 or roi[0] < 0 or roi[1] < 0:
                raise FolaiError(f"roi must be (x, y, w, h) with x, y >= 0 and w, h > 0, got {roi}")
        if self.resolve_mode(prompt) == "steps":
            return self.steps_from_features(self.gait_features(video, roi=roi, progress=progress))
        feats = self.features(video, roi=roi, progress=progress)
        return self.from_features(feats, prompt=prompt)

    def resolve_mode(self, prompt: str | None = None) -> str:
        """``"steps"`` or ``"impacts"``: the configured mode, or with ``mode="auto"`` what the prompt
        describes (footsteps, walking, running, ... -> steps)."""
        if self.config.mode != "auto":
            return self.config.mode
        return "steps" if prompt_wants_steps(prompt) else "impacts"

    def _rate(self, video: str | Path) -> float:
        """The frame rate ``video`` is analysed at: :func:`analysis_rate` of its own and ``fps``."""
        from ..media import probe_video

        info = probe_video(video)
        rate = info.fps
        if info.typical_fps and not (rate and abs(info.typical_fps - rate) <= 0.1 * rate):
            # the average is off the rate the frames come at: a variable-rate file with holds (a
            # screen recording that sends no frame while nothing changes) averaged 2.9 fps for
            # 30 fps pictures, and was analysed as a slide show
            rate = info.typical_fps
        return analysis_rate(rate, self.config.fps)

    def _flow_rows(self, video, flow, desc: str, roi, progress: bool, rate: float,
                   shrink: str = "area") -> tuple[np.ndarray, list, float]:
        """Decode ``video`` at ``rate`` frames/s (small grey frames, decoding in a thread) and apply
        ``flow`` to each frame: ((T, flow.size) float32 rows, [FrameGeometry], the time of the
        first frame); ``shrink`` as in :func:`iter_small_gray`. The frames are taken on a grid
        aligned to the video's first frame (``align``): row k is the motion up to the k-th frame,
        at ``t0 + k / rate``."""
        from tqdm.auto import tqdm

        cfg = self.config
        total = _expected_frames(video, rate) if progress else None
        geometry: list[FrameGeometry] = []
        rows: list[np.ndarray] = []
        vel = getattr(flow, "velocity_columns", slice(None))
        with single_threaded_cv2(), tqdm(total=total, desc=desc, unit="frame", disable=not progress, leave=False) as bar:
            frames = threaded(iter_small_gray(video, fps=rate, width=cfg.width, roi=roi, geometry=geometry,
                                              shrink=shrink, source_times=True, align=True))
            t0 = None  # the time of the first output frame
            last_t = None  # time of the last source frame analysed
            repeats = 0  # output slots since then that showed that frame again
            try:
                for t, gray, src_t in frames:
                    bar.update(1)
                    if t0 is None:
                        t0 = t
                    if last_t is not None and src_t <= last_t:
                        # the same picture again (a variable-frame-rate file, a dropped frame): no
                        # new motion to measure, and a pair without motion would read as a stop
                        repeats += 1
                        continue
                    row = flow(gray)
                    if last_t is not None:
                        # the motion since the last picture, per output slot: frames further apart
                        # than 1 / rate (dropped) moved further, repeated slots share the motion
                        # (pictures closer than half a slot, a burst in a variable-rate file, count
                        # as half a slot apart: their flow is mostly noise to magnify)
                        c = min(2.0, 1.0 / (rate * (src_t - last_t)))
                        if repeats or abs(c - 1.0) > 0.02:
                            row = row.copy()
                            row[vel] *= np.float32(c)
                    rows.extend([row] * (repeats + 1))
                    repeats = 0
                    last_t = src_t
                if repeats and rows:  # the last picture held to the end: no new motion, no stop either
                    rows.extend([rows[-1]] * repeats)
            finally:
                frames.close()  # the decoding thread has ended before OpenCV's threads come back
        return (np.stack(rows) if rows else np.zeros((0, flow.size), np.float32)), geometry, float(t0 or 0.0)

    # ------------------------------------------------------------------ footsteps
    def gait_features(
        self, video: str | Path, *, roi: tuple[int, int, int, int] | None = None, progress: bool = True
    ):
        """Decode ``video`` and compute the per-frame gait features (camera and per-cell vertical flow)."""
        from ._gait import GaitFeatures, GaitFlow

        cfg = self.config
        rate = self._rate(video)
        flow = GaitFlow(cfg.preset, time_scale=rate / cfg.fps)
        f, geometry, t0 = self._flow_rows(video, flow, "motion (steps)", roi, progress, rate)
        feats = GaitFeatures.from_rows(f, rate, (flow.rows, flow.cols))
        feats.geometry = geometry[0] if geometry else None
        feats.t0 = t0
        return feats

    def steps_from_features(self, feats) -> TimingResult:
        """Footstep times, envelope and pan (each step at the walker's side) from gait features."""
        from ._gait import GaitConfig, detect_steps

        cfg = self.config
        gcfg = GaitConfig(min_cadence=cfg.min_cadence, max_cadence=cfg.max_cadence)
        if cfg.step_lead is not None:
            gcfg.lead_walk = gcfg.lead_run = float(cfg.step_lead)
        steps = detect_steps(feats, gcfg)
        t0 = float(feats.t0)  # the first frame's time: the steps' times are from it
        if t0:
            steps.times = np.asarray(steps.times, np.float64) + t0
        n_env = DEFAULT.n_frames(t0 + feats.duration)
        t_env = np.arange(n_env) / DEFAULT.rate
        # footsteps are much alike: the level varies gently with the bob (x0.6 .. x1 of step_level)
        ref = float(steps.strength.max()) if len(steps.times) else 1.0
        levels = cfg.step_level * np.clip(np.sqrt(steps.strength / ref), 0.6, 1.0) if len(steps.times) else []
        env = _events_envelope(t_env, steps.times, levels, cfg.step_attack, cfg.step_decay, cfg.step_tail,
                               cfg.step_tail_share)
        envelope = Envelope(np.clip(env, 0.0, 1.0).astype(np.float32)[None], rate=DEFAULT.rate, start=0.0)
        geom = getattr(feats, "geometry", None)
        info = {
            "mode": "steps",
            "events": [round(float(t), 4) for t in steps.times],
            "levels": [round(float(v), 4) for v in levels],
            "strengths": [round(float(v), 4) for v in steps.strength],
            "cadence": round(steps.cadence, 3),
            "periodicity": round(steps.periodicity, 3),
            "gait": steps.info,
            "fps": feats.fps,
            "frames": int(len(feats.cam_vy)),
            "analysis_size": geom.size if geom else None,
            "roi": geom.roi if geom else None,
        }
        log.info("motion timing (steps): %d steps in %.2f s, cadence %.2f/s", len(steps.times), feats.duration,
                 steps.cadence)
        # the pan follows the walker: each step at its side of the picture (centred where the camera
        # bobs, first person), held from the step's attack to the next one's, as impacts' are
        pan = np.zeros(n_env, np.float32)
        for i, (t, x) in enumerate(zip(steps.times, steps.x)):
            start = 0 if i == 0 else int(np.searchsorted(t_env, t - cfg.step_attack))
            pan[start:] = _picture_pan(float(x), geom)
        info["pans"] = [round(float(_picture_pan(float(x), geom)), 3) for x in steps.x]
        return TimingResult(envelope=envelope, pan=pan, info=info)

    def features(
        self, video: str | Path, *, roi: tuple[int, int, int, int] | None = None, progress: bool = True
    ) -> MotionFeatures:
        """Decode ``video`` and compute the per-frame motion features (streaming, constant memory)."""
        cfg = self.config
        rate = self._rate(video)
        # speeds per 1/fps s whatever the video's frame rate, so that the thresholds mean the same
        flow = FlowFeatures(cfg.preset, cfg.top_fraction, cfg.compensate, time_scale=rate / cfg.fps)
        # frames shrunk by whole blocks first (a tenth of the cost): impacts are large motions, and
        # onset F1 on 13 real clips x 3 analysis widths was the same (0.567) either way. The
        # footsteps keep the one-step area average: their bob is a sub-pixel motion, and on 5 real
        # clips x 5 widths the two-step shrink found fewer of them (step F1 0.31-0.37 vs 0.40).
        f, geometry, t0 = self._flow_rows(video, flow, "motion", roi, progress, rate, shrink="blocks")
        held = 0
        if rate >= LOW_RATE:  # (below it one still pair lasts over 50 ms: a rest, as after a landing)
            f, held = spread_held_frames(f, flow.velocity_columns, cfg.min_drop)
        main = [f[:, i] for i in range(5)]  # speed, vx, vy, cx, moving
        camera = None
        if cfg.compensate == "auto":
            camera = camera_weight(f[:, 0], f[:, 10], rate)
            if camera.any():
                main = [(1.0 - camera) * a + camera * b for a, b in zip(main, (f[:, 10 + i] for i in range(5)))]
        if rate < LOW_RATE:  # the flow's speed would miss fast objects: the frames' difference
            d = difference_speed(f[:, flow.diff_column], f[:, 0])
            main[0] = d if camera is None or not camera.any() else (1.0 - camera) * d + camera * f[:, 10]
        speed, vx, vy, cx, moving = main
        bright = f[:, flow.bright_column]
        uniform = np.sign(bright) * np.minimum(np.abs(bright) / np.maximum(f[:, flow.diff_column], 1e-3), 1.0)
        return MotionFeatures(
            speed=speed, vx=vx, vy=vy, cx=cx, moving=moving, fps=rate, uniform=uniform,
            geometry=geometry[0] if geometry else None, edges=f[:, 5:9], cuts=scene_cuts(f[:, 9], rate),
            camera=camera, held=held, t0=t0,
        )

    def from_features(self, feats: MotionFeatures, prompt: str | None = None) -> TimingResult:
        """Impacts, envelope and pan from precomputed features (what :meth:`estimate` does after decoding).
        A ``prompt`` naming a material that rings (metal, glass) gives the impacts its decay."""
        cfg = self.config
        impacts = self.detect(feats)
        t0 = float(feats.t0)  # the first frame's time: the impacts' are from it
        if t0:
            impacts = [dataclasses.replace(imp, time=imp.time + t0) for imp in impacts]
        n_env = DEFAULT.n_frames(t0 + feats.duration)
        t_env = np.arange(n_env) / DEFAULT.rate
        ring = self._ring(prompt)
        shape = ring or (cfg.decay, cfg.tail, cfg.tail_share)
        env = _events_envelope(t_env, [imp.time for imp in impacts], [imp.level for imp in impacts],
                               cfg.attack, cfg.decay, cfg.tail, cfg.tail_share, ring=ring)
        sus = self._sustain(feats, impacts, t_env)
        env = np.maximum(env, sus)
        pan = np.zeros(n_env, np.float32)
        for i, imp in enumerate(impacts):
            start = 0 if i == 0 else int(np.searchsorted(t_env, imp.time - cfg.attack))
            pan[start:] = imp.pan
        envelope = Envelope(np.clip(env, 0.0, 1.0).astype(np.float32)[None], rate=DEFAULT.rate, start=0.0)
        geom = feats.geometry
        info = {
            "mode": "impacts",
            "events": [round(imp.time, 4) for imp in impacts],
            "impact_decay": [round(v, 4) for v in shape],  # (decay, tail, tail_share) of hits with room to ring
            "levels": [round(imp.level, 4) for imp in impacts],
            "strengths": [round(imp.strength, 4) for imp in impacts],
            "fps": feats.fps,
            "frames": int(len(feats.speed)),
            "cuts": int(np.count_nonzero(feats.cuts)) if feats.cuts is not None else 0,
            "camera_share": round(float(np.mean(feats.camera)), 3) if feats.camera is not None and len(feats.camera) else 0.0,
            "held_frames": int(feats.held),
            "analysis_size": geom.size if geom else None,
            "roi": geom.roi if geom else None,
        }
        log.info("motion timing: %d impacts in %.2f s", len(impacts), feats.duration)
        return TimingResult(envelope=envelope, pan=pan, info=info)

    def impact_decay(self, prompt: str | None = None) -> tuple[float, float, float]:
        """(decay, tail, tail_share) of the impacts' envelope: the configured shape (a real Greatest
        Hits impact's), or, when ``prompt`` names a material whose hits ring longer (metal, glass:
        ``Preset.ring``, its natural hit's envelope) and the shape was left at its defaults, that
        material's: a struck pipe rings for a second, and the sampler rings as long as the
        envelope says. A hit followed by the next within :data:`RING_GAP` rings less (rapid
        strikes keep their attacks)."""
        cfg = self.config
        return self._ring(prompt) or (cfg.decay, cfg.tail, cfg.tail_share)

    def _ring(self, prompt: str | None) -> tuple[float, float, float] | None:
        """The prompt's ringing material's shape (``Preset.ring``), unless the shape was set by hand."""
        from ..synthesis.presets import prompt_ring

        cfg, default = self.config, MotionConfig()
        if (cfg.decay, cfg.tail, cfg.tail_share) != (default.decay, default.tail, default.tail_share):
            return None
        return prompt_ring(prompt)

    # ------------------------------------------------------------------ detection
    def detect(self, feats: MotionFeatures) -> list[Impact]:
        """Impacts (sorted by time) from the motion features."""
        cfg = self.config
        s = np.asarray(feats.speed, np.float64)
        fps = feats.fps
        # below LOW_RATE a pair spans over 50 ms: one fast pair is a stroke, not a glitch, the
        # approach may last one pair, and the look-back spans the same time as at cfg.fps
        low = fps < LOW_RATE
        window = max(2, math.ceil(cfg.window * fps / cfg.fps)) if low else cfg.window
        if cfg.spike > 0 and len(s) >= 3 and not low:
            # a single pair much faster than both neighbours is a flow glitch (or a cut), not motion
            nb = np.maximum(np.r_[s[1], s[:-1]], np.r_[s[1:], s[-2]])
            s = np.minimum(s, cfg.spike * nb)
        vx = np.asarray(feats.vx, np.float64)
        vy = np.asarray(feats.vy, np.float64)
        T = len(s)
        strike = feats.strike_direction(cfg)  # (T, 2) where things are expected to be struck towards
        cands: list[tuple[float, float, int, int, float]] = []  # time, strength, peak idx, end idx, peak
        k = 2
        while k < T:
            lo = max(1, k - window)
            j = lo + int(np.argmax(s[lo:k]))
            pk = s[j]
            held = not cfg.hold or k + 1 >= T or s[k + 1] <= cfg.drop_ratio * pk
            seen = low or s[j - 1] >= cfg.approach * pk  # moving for two pairs: not a cut or a glitch
            if pk > 0 and s[k] <= cfg.drop_ratio * pk and held and seen:
                # contact inside the frame interval of the first slow pair after the last fast one
                # (pair i+1 spans frames i -> i+1): the object moved at s[i] until the contact and
                # covered the share s[i+1] / s[i] of that interval before stopping
                half = 0.5 * pk
                i = j
                while i < k - 1 and s[i + 1] > half:
                    i += 1
                if cfg.timing == "half":
                    a, b = s[i], s[i + 1]
                    frac = min(1.0, (a - half) / (a - b)) if a > b else 0.5
                    t_c = (i - 0.5 + frac) / fps
                else:
                    t_c = (i + min(1.0, s[i + 1] / s[i])) / fps
                # direction of approach: per-component median over the peak and the two pairs
                # before it, so that one wrong flow field cannot turn a lift into a fall
                ax, ay = np.median(vx[max(1, j - 2) : j + 1]), np.median(vy[max(1, j - 2) : j + 1])
                norm = float(np.hypot(ax, ay))
                cos_strike = (ax * strike[j, 0] + ay * strike[j, 1]) / norm if norm > 0 else 0.0
                weight = float(np.clip(cfg.down_bias + cos_strike, 0.0, 1.0))
                cands.append((t_c, (pk - s[k]) * weight, j, k, pk))
                k += 1
                while k < T and s[k] <= s[k - 1]:  # ride the rest of the fall
                    k += 1
            else:
                k += 1
        if cfg.reversal:
            cands += self._reversals(s, vx, vy, fps, strike)
        if feats.uniform is not None and len(cands):
            # motion that is a fade or a dissolve: the flow reads the brightness ramp as motion, which
            # "stops" when the fade ends. A fade changes the brightness the same way for many frames,
            # uniformly; a real strike's approach may darken or lighten the picture too (a dark stick
            # over a bright scene: uniform shares of 0.9 in one Greatest Hits clip), but not for
            # FADE_PAIRS pairs in one direction
            u = np.asarray(feats.uniform, np.float64)

            def fade(j: int) -> bool:
                lo = j - FADE_PAIRS + 1
                if lo < 1:
                    return False
                w = u[lo : j + 1]
                return bool(abs(np.sign(w).sum()) == FADE_PAIRS and np.median(np.abs(w)) >= UNIFORM_MAX)

            cands = [c for c in cands if not fade(c[2])]
        if feats.cuts is not None and np.any(feats.cuts):
            # no stop across a cut to another shot: the pictures on either side are not one motion
            run = np.concatenate([[0], np.cumsum(np.asarray(feats.cuts, bool), dtype=np.int64)])
            cands = [c for c in cands if run[min(T, c[3] + 2)] == run[max(0, c[2] - 1)]]
        weak = [c for c in cands if c[1] > 0]  # before the floors: stops a beat may bring back
        if cfg.noise_floor > 0 and T > 0:
            from scipy.ndimage import median_filter

            # flow noise: the typical change of speed between frame pairs over 2 s; a stop must
            # lose several times that to count
            jitter = median_filter(np.abs(np.diff(s, prepend=s[0])), size=int(2 * fps) | 1, mode="nearest")
            cands = [c for c in cands if c[1] >= cfg.noise_floor * jitter[c[3]]]
        cands = [c for c in cands if c[1] >= cfg.min_drop and c[1] > 0]
        if not cands:
            return []
        times = np.array([c[0] for c in cands])
        strength = np.array([c[1] for c in cands])
        order_t = np.argsort(times)
        ts, ss = times[order_t], strength[order_t]
        lo = np.searchsorted(ts, ts - cfg.ref_window, side="left")
        hi = np.searchsorted(ts, ts + cfg.ref_window, side="right")
        ref = np.empty_like(strength)
        ref[order_t] = [ss[a:b].max() for a, b in zip(lo, hi)]
        keep_mask = strength >= cfg.rel_threshold * ref
        order = [i for i in np.argsort(-strength) if keep_mask[i]]
        kept = [order[n] for n in spaced([times[i] for i in order], cfg.min_gap)]
        kept.sort(key=lambda i: times[i])
        chosen = [(cands[i], float(ref[i])) for i in kept]
        if cfg.rhythm and len(chosen) >= 3:
            chosen = self._on_the_beat(feats, strike, chosen, weak, ts, ss)
        out = []
        for (t_c, st, j, k_end, pk), r_i in chosen:
            level = float(np.clip(cfg.level * (st / r_i) ** cfg.level_gamma, 0.0, 1.0))
            out.append(Impact(time=float(t_c), strength=float(st), level=level, pan=self._pan(feats, j),
                              sample=int(k_end), peak=int(j), approach=float(pk)))
        return out

    def _on_the_beat(self, feats: MotionFeatures, strike: np.ndarray, chosen: list, weak: list,
                     ts: np.ndarray, ss: np.ndarray) -> list:
        """The chosen impacts ``[(candidate, local reference)]`` (sorted by time) checked against the
        swing's rhythm: people beating a surface with a stick strike at a steady beat, and the
        motion shows some strikes poorly (a blurred stick, a soft target) while the back-swing
        and the rebound make stops of their own between the beats.

        The period ``P`` is the swing's (:func:`swing_periods`, of the motion along the strike
        direction, per stretch of video). Then, where the events themselves keep it:

        * an event weaker than ``rhythm_drop`` of its reference that lies half a period from a
          stronger one (within ``tol``, ``rhythm_tol * P`` plus one frame pair) and a whole
          period (or two) from none is off the beat: dropped;
        * an event near a beat (within a quarter period of one period from another event) that
          has a rival stop within ``min_gap`` closer to that beat (by a frame pair or more, at
          least half as strong) is moved to the rival: of a strike and its rebound the beat tells
          which is the contact;
        * a stop the floors rejected (``weak``: at least ``rhythm_add`` of the strongest impact
          within ``ref_window``) one period (within ``tol``) from an event, at least a quarter
          period (and ``min_gap``) from every event, and inside a run of beats (an event within
          two periods on either side, not before the beating starts) is a beat: kept, and heard
          at least at ``rhythm_level`` of its neighbours' strength (the motion under-reads a
          poorly seen strike, and a steady beat is struck alike).

        Each rule looks only at events a period or two apart, so motion without a steady beat
        (whose autocorrelation peak means little) is rarely touched.

        Candidates are ``(time, strength, peak index, end index, peak speed)`` as in :meth:`detect`;
        ``ts``, ``ss``: all candidates' times (sorted) and strengths, for the references."""
        cfg = self.config
        fps = feats.fps
        proj = np.asarray(feats.vx, np.float64) * strike[:, 0] + np.asarray(feats.vy, np.float64) * strike[:, 1]
        periods = swing_periods(proj, fps, *cfg.rhythm_period)
        if not np.isfinite(periods).any():
            return chosen
        T = len(periods)
        far = 2.0 * cfg.rhythm_period[1] * (1.0 + cfg.rhythm_tol) + 1.0 / fps + cfg.min_gap  # no rule looks further

        def period_at(t: float) -> float:  # (times here are from the first frame, as detect's)
            return float(periods[min(T - 1, max(0, int(round(t * fps))))])

        def near(times: np.ndarray, t: float) -> slice:
            """The sorted ``times`` within ``far`` of ``t`` (each rule looks a period or two away:
            the neighbours only, so that a long video's thousands of events stay linear)."""
            return slice(int(np.searchsorted(times, t - far)), int(np.searchsorted(times, t + far, side="right")))

        t = np.array([c[0][0] for c in chosen])
        st = np.array([c[0][1] for c in chosen])
        rel = st / np.array([c[1] for c in chosen])
        # off the beat: half a period from a stronger event and not a whole one (or two) from any
        keep = np.ones(len(chosen), bool)
        for i in range(len(chosen)):
            P = period_at(t[i])
            if not (np.isfinite(P) and rel[i] < cfg.rhythm_drop):
                continue
            tol = cfg.rhythm_tol * P + 1.0 / fps
            w = near(t, t[i])
            d = np.abs(t[w] - t[i])[st[w] > st[i]]
            on = any(np.any(np.abs(d - m * P) <= tol) for m in (1, 2))
            off = any(np.any(np.abs(d - (m - 0.5) * P) <= tol) for m in (1, 2))
            keep[i] = on or not off
        out = [c for c, k in zip(chosen, keep) if k]
        tk = np.array([c[0][0] for c in out])
        weak = sorted(weak, key=lambda q: q[0])
        tw = np.array([q[0] for q in weak])
        # of a stop and a rival within min_gap, the one nearer the beat its neighbours predict
        for n, (c, r_c) in enumerate(out):
            P = period_at(c[0])
            if not np.isfinite(P) or len(tk) < 2:
                continue
            w = near(tk, c[0])
            others = np.delete(tk[w], n - w.start)

            def off_beat(x: float) -> float:
                return float(np.min(np.abs(np.abs(others - x) - P))) if len(others) else np.inf

            best, dev = c, off_beat(c[0])
            if dev > 0.25 * P:
                continue
            lo, hi = np.searchsorted(tw, c[0] - cfg.min_gap), np.searchsorted(tw, c[0] + cfg.min_gap, side="right")
            for q in weak[lo:hi]:
                if 0 < abs(q[0] - c[0]) < cfg.min_gap and q[1] >= 0.5 * c[1]:
                    dq = off_beat(q[0])
                    if dq < dev - 1.0 / fps:
                        best, dev = q, dq
            if best is not c:  # the contact is the rival's; the strength stays the event's
                out[n] = ((best[0], c[1]) + tuple(best[2:]), r_c)
        # two events either side of a beat may both have moved onto the same rival stop, or one
        # next to another event: of events closer than min_gap the strongest stays, as in detect
        # (found by a review)
        out.sort(key=lambda c: -c[0][1])
        out = [out[n] for n in spaced([c[0][0] for c in out], cfg.min_gap)]
        out.sort(key=lambda c: c[0][0])
        tk = np.array([c[0][0] for c in out])
        sk = np.array([c[0][1] for c in out])
        # beats the floors missed: weak stops one period from an event
        added = []
        for c in weak:
            P = period_at(c[0])
            if not np.isfinite(P):
                continue
            w = near(tk, c[0])
            d = np.abs(tk[w] - c[0])
            if np.any(d < max(cfg.min_gap, 0.25 * P)):
                continue  # (nearer than a quarter period to an event, a stop is its rebound)
            lo, hi = np.searchsorted(ts, c[0] - cfg.ref_window), np.searchsorted(ts, c[0] + cfg.ref_window, side="right")
            r_c = float(ss[lo:hi].max()) if hi > lo else float(ss.max())
            if c[1] < cfg.rhythm_add * r_c:
                continue
            tol = cfg.rhythm_tol * P + 1.0 / fps
            # within a run of beats (an event within two periods on either side), not before it
            # starts or after it ends: one period from an event
            before, after = tk[w] < c[0], tk[w] > c[0]
            inside = np.any(before & (d <= 2 * P + tol)) and np.any(after & (d <= 2 * P + tol))
            dev = np.abs(d - P)
            if inside and np.any(dev <= tol):
                nb = sk[w][d <= P + tol]
                beat = ((c[0], max(c[1], cfg.rhythm_level * float(np.median(nb)))) + tuple(c[2:]), r_c)
                added.append((float(dev.min()), -c[1], beat, max(cfg.min_gap, 0.5 * P)))
        # one beat per missing beat: of stops closer than half the local period (min_gap had let two
        # stops 0.14 s apart fill one slot of a 0.5 s beat), the one nearest the beat, then the
        # strongest (a rebound can move more than the poorly seen strike; found by reviews)
        added.sort(key=lambda a: a[:2])
        new = [added[n][2] for n in spaced([a[2][0][0] for a in added], [a[3] for a in added])]
        return sorted(out + new, key=lambda c: c[0][0])

    def _reversals(self, s: np.ndarray, vx: np.ndarray, vy: np.ndarray, fps: float, strike: np.ndarray) -> list:
        """Bounces: the moving region's velocity turns back against its approach between two pairs
        (a struck stick rebounding within one frame shows no drop in speed, only a turn), or over
        the next two, when the pair that holds the contact still moves on (or back) a little: the
        frame falls mid-turn, part approach and part rebound. The contact is where the velocity
        along the approach crosses zero (linear between the pair centres)."""
        cfg = self.config
        out = []
        T = len(s)
        for k in range(3, T):
            ax, ay = vx[k - 2] + vx[k - 1], vy[k - 2] + vy[k - 1]
            na = float(np.hypot(ax, ay))
            if na <= 0:
                continue
            ux, uy = ax / na, ay / na
            p_prev2 = vx[k - 2] * ux + vy[k - 2] * uy
            p_prev = vx[k - 1] * ux + vy[k - 1] * uy
            if not (p_prev > 0 and p_prev2 > 0):
                continue
            back = -cfg.reverse_ratio * p_prev
            p_now = vx[k] * ux + vy[k] * uy
            if p_now < back:
                end, t = k, k - 1.5 + p_prev / (p_prev - p_now)
            elif k + 1 < T and (p_next := vx[k + 1] * ux + vy[k + 1] * uy) < back:
                # the turn spans pair k: back only in the pair after it
                end = k + 1
                t = k - 0.5 + p_now / (p_now - p_next) if p_now > 0 else k - 1.5 + p_prev / (p_prev - p_now)
            else:
                continue
            pk = max(s[k - 2], s[k - 1])
            if pk <= 0 or s[k - 2] < cfg.approach * pk:
                continue
            weight = float(np.clip(cfg.reverse_bias + ux * strike[k - 1, 0] + uy * strike[k - 1, 1], 0.0, 1.0))
            out.append((t / fps, pk * weight, k - 1, end, pk))
        return out

    def _pan(self, feats: MotionFeatures, j: int) -> float:
        return _picture_pan(float(feats.cx[j]), feats.geometry)

    def _sustain(self, feats: MotionFeatures, impacts: list[Impact], t_env: np.ndarray) -> np.ndarray:
        """Sustained level while the object keeps moving after a contact without lifting (sliding)."""
        cfg = self.config
        out = np.zeros(len(t_env), np.float64)
        if cfg.sustain <= 0 or not impacts:
            return out
        s, vx, vy = feats.speed, feats.vx, feats.vy
        T = len(s)
        level = np.zeros(T, np.float64)  # per frame pair
        starts = [imp.sample for imp in impacts] + [T]
        r = np.hypot(vx, vy)  # speed of the moving region itself
        for n, imp in enumerate(impacts):
            j = imp.peak
            ra = float(r[max(1, j - 1) : j + 1].max())  # the object's approach speed
            if ra <= 0:
                continue
            floor = cfg.sustain_speed * ra
            m = imp.sample
            while m < starts[n + 1]:
                lifting = r[m] > 0 and vy[m] / r[m] < -0.5
                if r[m] < floor or s[m] < 0.2 * cfg.min_drop or lifting:
                    break
                m += 1
            if (m - imp.sample) / feats.fps >= cfg.sustain_min:  # a slide, not the settling of a hit
                seg = slice(imp.sample, m)
                level[seg] = cfg.sustain * imp.level * np.minimum(1.0, np.sqrt(r[seg] / ra))
        if not level.any():
            return out
        t_feat = feats.t0 + (np.arange(T) - 0.5) / feats.fps
        out = np.interp(t_env, t_feat, level, left=0.0, right=0.0)
        return out


def prompt_wants_steps(prompt: str | None) -> bool:
    """Whether a prompt describes footsteps (walking, running, stomping, heels, ...): the rule the
    footsteps presets use too (:func:`folai.synthesis.presets.wants_steps`), so that both stages
    read a prompt the same way."""
    from ..synthesis.presets import wants_steps

    return wants_steps(prompt)


def impact_shape(dt: np.ndarray, attack: float, decay: float, tail: float, tail_share: float) -> np.ndarray:
    """Normalised impact envelope (peak 1 at dt = 0): linear attack over ``attack`` s, then
    ``(1 - tail_share) * exp(-dt / decay) + tail_share * exp(-dt / tail)``."""
    dt = np.asarray(dt, np.float64)
    out = np.zeros_like(dt)
    if attack > 0:
        rise = (dt >= -attack) & (dt < 0)
        out[rise] = 1.0 + dt[rise] / attack
    after = dt >= 0
    d = dt[after]
    out[after] = (1.0 - tail_share) * np.exp(-d / decay) + tail_share * np.exp(-d / tail)
    return out


def spaced(times: list[float], gap) -> list[int]:
    """Greedy thinning: the indices of ``times``, taken in the order given (the strongest first),
    of each time at least ``gap`` (one for all, or one per time: its own) from every one taken
    before it. Linear in practice (a sorted list
    of the times taken and their nearest neighbours; comparing with every time taken before had
    made an hour of video's detection quadratic: 10 s of its 15)."""
    out: list[int] = []
    taken: list[float] = []  # sorted
    gaps = gap if isinstance(gap, (list, tuple, np.ndarray)) else None
    for n, x in enumerate(times):
        if gaps is not None:
            gap = gaps[n]
        i = bisect.bisect_left(taken, x)
        if (i == 0 or x - taken[i - 1] >= gap) and (i == len(taken) or taken[i] - x >= gap):
            out.append(n)
            taken.insert(i, x)
    return out


#: swing_periods: the period is estimated over stretches of this many seconds (a steady beat may
#: change its pace along a long video); shorter videos, up to 1.5 stretches, are one stretch
RHYTHM_STRETCH = 10.0
#: ... and is the first autocorrelation peak at least this share of the highest one (not its multiples)
RHYTHM_FIRST = 0.8


def swing_periods(x: np.ndarray, fps: float, lo: float, hi: float) -> np.ndarray:
    """(T,) the period in seconds of a repeated motion ``x`` (one value per frame pair: the velocity
    along the strike direction, which turns at each strike and each back-swing), NaN where it
    has none: per stretch of :data:`RHYTHM_STRETCH` s (overlapping by half, each frame pair taking
    the stretch centred nearest), the first peak of the autocorrelation between ``lo`` and ``hi``
    seconds that reaches :data:`RHYTHM_FIRST` of the highest one there (not a multiple of the
    period), if that autocorrelation is positive. Costs ``O(T * hi * fps)``."""
    x = np.asarray(x, np.float64)
    T = len(x)
    out = np.full(T, np.nan)
    if T == 0:
        return out
    # (lags from 2: the search reads one lag either side of its range, from a - 1, and a lag of 0
    # had been an empty slice under ~6.7 frames/s, a crash; found by a review)
    a, b = max(2, int(math.floor(lo * fps))), int(math.ceil(hi * fps)) + 1
    n = int(round(RHYTHM_STRETCH * fps))
    if T <= 1.5 * n:
        bounds = [(0, T)]
    else:
        starts = np.unique(np.r_[np.arange(0, T - n, n // 2), T - n])
        bounds = [(int(s0), int(s0) + n) for s0 in starts]
    centres = np.array([0.5 * (s0 + s1) for s0, s1 in bounds])
    # each frame pair's nearest centre (ties to the earlier), without a (T, stretches) table
    owner = np.searchsorted(0.5 * (centres[:-1] + centres[1:]), np.arange(T), side="left")
    for w, (s0, s1) in enumerate(bounds):
        seg = x[s0:s1] - np.mean(x[s0:s1])
        energy = float(np.dot(seg, seg))
        hi_lag = min(b, len(seg) - 1)
        if hi_lag - a < 3 or not energy > 0:
            continue
        ac = np.array([np.dot(seg[:-lag], seg[lag:]) for lag in range(a - 1, hi_lag + 1)]) / energy
        peaks = np.flatnonzero((ac[1:-1] >= ac[:-2]) & (ac[1:-1] >= ac[2:]) & (ac[1:-1] > 0)) + 1
        if not len(peaks):
            continue
        first = peaks[np.argmax(ac[peaks] >= RHYTHM_FIRST * ac[peaks].max())]
        out[owner == w] = (a - 1 + first) / fps
    return out


#: a stop whose approach changes the picture's brightness uniformly by this share or more of its
#: grey-level change (a fade, a flicker) is not an impact
UNIFORM_MAX = 0.5
#: ... over this many frame pairs in a row, brightening or darkening all along
FADE_PAIRS = 6

def _picture_pan(cx: float, g) -> float:
    """The pan in [-1, 1] of horizontal position ``cx`` (0..1 of the analysed picture, that is of
    the roi when there is one: ``g`` is its :class:`FrameGeometry`) in the whole picture."""
    if g is None:
        return float(np.clip(2.0 * cx - 1.0, -1.0, 1.0))
    x = g.roi[0] + cx * g.roi[2]
    return float(np.clip(2.0 * x / g.display_w - 1.0, -1.0, 1.0))


#: below this analysis rate (frames/s) a frame pair spans over 50 ms: an impact's speed is read
#: from the frames' difference (the flow loses fast objects that move that far between frames),
#: and the detector's frame-count rules become time rules (see MotionTiming.detect)
LOW_RATE = 20.0


def difference_speed(diff: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """The frames' mean absolute difference ``diff`` in the units of the flow ``speed`` (% of the
    width per 1/30 s): scaled so that both have the same median over the pairs that move more
    than the median. The difference needs no correspondence between the frames, so it still
    shows a thin, fast object that the flow cannot follow, and its stop; the flow's own speed is
    kept when nothing moves."""
    diff = np.asarray(diff, np.float64)
    speed = np.asarray(speed, np.float64)
    moving = speed > np.median(speed) if len(speed) else speed.astype(bool)
    if not moving.any():
        return speed
    d = float(np.median(diff[moving]))
    if not d > 0:
        return speed
    return diff * (float(np.median(speed[moving])) / d)


#: spread_held_frames: a pair under HELD_DIP of the speed of the moving pairs on both sides is a
#: held frame, if such pairs are at least HELD_SHARE of the pairs that move and HELD_MIN in all
HELD_DIP, HELD_SHARE, HELD_MIN = 0.2, 0.1, 3


def spread_held_frames(rows: np.ndarray, velocity_columns, floor: float) -> tuple[np.ndarray, int]:
    """Feature rows with the motion of animation "on twos" and of frame-repeating conversions
    shared out: (rows, number of held frames shared).

    Animation is often drawn on twos (each drawing held for 2 frames), and 24 or 25 fps material is
    put in 30 fps files by showing every 4th or 5th picture twice (the copy is not bit-identical
    once encoded): a moving object then shows almost no motion in one pair and twice its motion in
    the next. Read as it is, that is a stop every few frames, or, where every other pair is still,
    the capping of lone fast pairs erases the motion altogether. A held frame is a pair with under
    HELD_DIP of the speed of the pairs on both sides, which move (above ``floor``); only where such
    dips make at least HELD_SHARE of the moving pairs (and HELD_MIN in all) are they taken for
    held frames, and each then shares the motion of the pair after it, as a variable-frame-rate
    file's repeated slots do. A bounce or a brief stop now and then is left as it is."""
    s = np.asarray(rows[:, 0], np.float64)
    T = len(s)
    if T < 3:
        return rows, 0
    moving = s > floor
    held = np.zeros(T, bool)
    held[1:-1] = moving[:-2] & moving[2:] & (s[1:-1] < HELD_DIP * np.minimum(s[:-2], s[2:]))
    n = int(np.count_nonzero(held))
    if n < HELD_MIN or n < HELD_SHARE * int(np.count_nonzero(moving)):
        return rows, 0
    out = rows.copy()
    for k in np.flatnonzero(held):
        out[[k, k + 1]] = rows[k + 1]  # where the motion is, and how much of the picture moves
        out[k : k + 2, velocity_columns] = rows[k + 1, velocity_columns] / np.float32(2.0)
    return out, n


#: camera_weight: the share of the picture's mean flow speed that the camera's motion explains,
#: (median over 0.3 s) from which the compensated statistics take over, and where they have fully
CAMERA_FROM, CAMERA_FULL = 0.35, 0.65


def camera_weight(speed: np.ndarray, compensated: np.ndarray, fps: float) -> np.ndarray:
    """(T,) weight in [0, 1] of the camera-compensated statistics, per frame pair (``compensate="auto"``).

    Where the camera moves (a pan, a tracking shot, a walking camera) most of the picture's flow is
    its own, and removing the median flow takes most of the mean speed away: a pan that stops
    would otherwise read as an impact. Where the camera stands (or only shakes a little) the
    object's motion is most of the flow, and the raw statistics are kept (removing the median
    there shifts the moving region's speed and direction: on the 13 Greatest Hits clips of the
    benchmark, filmed hand-held, compensating everywhere scored onset F1 0.577 against 0.580). The
    share is a median over 0.3 s; the weight is held for 0.5 s either side and smoothed over 0.5 s,
    so that switching never makes a step in the speed (a step down would be a stop)."""
    from scipy.ndimage import maximum_filter1d, median_filter, uniform_filter1d

    s = np.asarray(speed, np.float64)
    if s.size == 0:
        return np.zeros(0)
    share = np.clip((s - np.asarray(compensated, np.float64)) / np.maximum(s, 1e-6), 0.0, 1.0)
    share = median_filter(share, size=max(3, int(round(0.3 * fps)) | 1), mode="nearest")
    w = np.clip((share - CAMERA_FROM) / (CAMERA_FULL - CAMERA_FROM), 0.0, 1.0)
    # held for 0.5 s either side (the last moments of a pan are the camera's too, and where nothing
    # moves both ways measure the same), then eased over 0.5 s
    w = maximum_filter1d(w, size=max(3, int(round(fps)) | 1), mode="nearest")
    return np.clip(uniform_filter1d(w, size=max(3, int(round(0.5 * fps)) | 1), mode="nearest"), 0.0, 1.0)


def analysis_rate(source_fps: float | None, fps: float) -> float:
    """The frame rate a video of ``source_fps`` is analysed at, for a wanted rate ``fps``: the
    source's own rate, or a whole fraction of it (every 2nd, 3rd ... frame), the nearest to ``fps``.

    Sampling a 25 fps video at 30 fps would show every 5th frame twice: a frame pair with no motion
    at all, which reads as a sudden stop (a false impact 5 times a second), and 50 fps sampled at 30
    alternates one and two frames of motion per pair. A source rate that is unknown, or not a
    plausible frame rate (variable-rate files may state none), gives ``fps``."""
    if source_fps is None or not math.isfinite(source_fps) or not 1.0 <= source_fps <= 1000.0:
        return float(fps)
    step = max(1, int(round(source_fps / fps)))
    return float(source_fps) / step


def _expected_frames(video: str | Path, fps: float) -> int | None:
    """Frames the analysis will see, from the (remembered) probe of the video (for the progress bar)."""
    from ..media import probe_video

    try:
        duration = probe_video(video).duration
    except Exception:
        return None
    return int(np.ceil(duration * fps)) if duration > 0 else None
