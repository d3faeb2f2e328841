"""Footstep ("gait") timing for :mod:`folai.timing.motion`: step times from the bob of a walking body.

Why this works (details in ``docs/motion.md``): a walking or running body rises and falls once per
step. In walking the centre of mass is highest at mid-stance and lowest during double support, just
after the heel strikes; in running it is lowest at mid-stance, a little later after foot strike.
A camera carried by the walker (first person, or a third-person camera that follows the character
rigidly) bobs the same way, and the picture moves the opposite way. Foot contacts themselves are
often invisible (feet cropped, a few dark pixels), the bob is not: it involves the whole upper
body, or the whole picture.

Pipeline:

1. :class:`GaitFlow` reduces each frame pair's dense optical flow (DIS, 128 px) to the mean
   vertical velocity of each cell of a ``6 x 8`` grid (down = positive).
2. :func:`detect_steps`: each cell's velocity (slow drift removed) is scored for periodicity in the
   cadence band (``min_cadence``..``max_cadence`` steps/s): the share of its spectrum within
   +-15 % of its strongest in-band frequency. The cadence is the peak of the periodicity-weighted
   sum of the cells' spectra (plus half the power at twice the frequency: a bob's harmonics),
   estimated over sliding windows (``window`` s) so that it may change along a long video.
3. Each cell is demodulated at the local cadence (complex baseband, Gaussian window of about one
   step): a slowly varying amplitude and phase. Periodic cells move along one phase axis, possibly
   in two opposite groups (the body going down while a carried camera makes the scene go up). If
   one group covers at least half the cells, the whole picture bobs: the camera does, and the
   walker's motion is that group's opposite; otherwise the periodic group with the most weight is
   the walker's body, taken as it is.
4. Steps are where the walker's bob passes its lowest point (its vertical velocity crosses from
   down to up), moved by a lead: :class:`folai.timing.motion.MotionConfig` sets ``step_lead``
   (default -0.1 step period, i.e. later, as measured on game footage); by default here, the
   biomechanical lead of a live-action walker (``lead_walk`` = 0.12 step period when
   walking: the centre of mass is lowest during double support, just after the heel strike;
   ``lead_run`` = 0.3 when running: lowest at mid-stance), blended between 2.2 and
   ``run_cadence`` steps/s. Because the phase comes from a narrow band around the cadence, steps
   stay regularly spaced where the cue is weak.
5. Steps are kept only where the bob is clearly there: its amplitude above an absolute floor
   (``min_amplitude``, flow noise) and above ``rel_amplitude`` of the clip's typical amplitude,
   and the periodic cells regular (``min_regularity``: ``(r(P) - r(P/2)) / 2`` of their
   autocorrelation at the step period P, 1 for a steady bob, ~0 for noise). A static video, or
   motion without a walking rhythm, gives no steps.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ._flow import BlankTest


class GaitFlow:
    """Per frame pair: the picture's median flow and the mean vertical flow of each grid cell.

    Returns ``(2 + rows * cols,)`` float32: ``[med_vx, med_vy, cell_vy...]`` in % of the analysed
    width per frame, y down (zeros for the first frame). Cells are row-major from the top left.
    """

    def __init__(self, preset: str = "ultrafast", rows: int = 6, cols: int = 8, time_scale: float = 1.0) -> None:
        from ._flow import make_dis

        self.time_scale = float(time_scale)  # as FlowFeatures': velocities per 1/30 s at any frame rate

        self._dis = make_dis(preset)
        self.stride = 4 if preset in ("ultrafast", "fast") else 2
        self.rows, self.cols = int(rows), int(cols)
        self._prev: np.ndarray | None = None
        self._sums: tuple | None = None
        self._blank = BlankTest()

    velocity_columns = slice(None)  # every value is a velocity

    @property
    def size(self) -> int:
        return 2 + self.rows * self.cols

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        prev, self._prev = self._prev, gray
        out = np.zeros(self.size, np.float32)
        blank = self._blank(prev, gray)
        if prev is None or prev.shape != gray.shape:
            return out
        if blank:
            # a blank picture (a title card, a black ending) in either frame: no motion. The flow
            # on flat colour is the noise's, and it had broken the walking test of a clip with a
            # still shot in it (all steps lost) or made phantom steps
            return out
        flow = self._dis.calc(prev, gray, None)
        st = self.stride
        sub = flow[st // 2 :: st, st // 2 :: st]  # DIS' own coarse grid (see _flow.FlowFeatures)
        h, w = sub.shape[:2]
        scale = 100.0 / gray.shape[1] * self.time_scale
        if self._sums is None or self._sums[0] != (h, w):
            # cell membership as two averaging matrices: cell means = R @ fy @ C
            rb = np.minimum(np.arange(h) * self.rows // max(h, 1), self.rows - 1)
            cb = np.minimum(np.arange(w) * self.cols // max(w, 1), self.cols - 1)
            R = np.zeros((self.rows, h), np.float32)
            R[rb, np.arange(h)] = 1.0
            C = np.zeros((w, self.cols), np.float32)
            C[np.arange(w), cb] = 1.0
            R /= np.maximum(R.sum(axis=1, keepdims=True), 1.0)
            C /= np.maximum(C.sum(axis=0, keepdims=True), 1.0)
            self._sums = ((h, w), R, C)
        _, R, C = self._sums
        fy = np.ascontiguousarray(sub[..., 1])
        out[0] = float(np.median(sub[..., 0])) * scale
        out[1] = float(np.median(fy)) * scale
        out[2:] = (R @ fy @ C).ravel() * scale
        return out


@dataclass
class GaitFeatures:
    """Per frame pair (index k: frames k-1 -> k, around time t0 + (k - 0.5) / fps)."""

    cam_vx: np.ndarray  # (T,) median flow of the picture, % width / frame
    cam_vy: np.ndarray  # (T,) (y down)
    cell_vy: np.ndarray  # (T, N) mean vertical flow of each cell (y down)
    fps: float
    rows: int = 6
    cols: int = 8
    geometry: object = None  # folai.timing._flow.FrameGeometry of the analysed frames
    t0: float = 0.0  # seconds: the time of frame 0 (MotionFeatures.t0)

    @classmethod
    def from_rows(cls, rows: np.ndarray, fps: float, grid: tuple[int, int]) -> "GaitFeatures":
        n = grid[0] * grid[1]
        rows = np.asarray(rows, np.float64).reshape(-1, 2 + n)
        return cls(rows[:, 0], rows[:, 1], rows[:, 2:], float(fps), grid[0], grid[1])

    @property
    def duration(self) -> float:
        return len(self.cam_vy) / self.fps

    def signals(self) -> tuple[np.ndarray, list[str]]:
        """(S, T) vertical velocity of each grid cell as seen in the picture, down = positive."""
        names = [f"cell{r},{c}" for r in range(self.rows) for c in range(self.cols)]
        return np.ascontiguousarray(self.cell_vy.T), names


@dataclass
class GaitConfig:
    min_cadence: float = 1.3  # steps per second: slow walk
    max_cadence: float = 3.6  # ... running
    window: float = 6.0  # seconds: cadence estimated over sliding windows this long
    lead_walk: float = 0.12  # the body is lowest this share of a step period after the contact (walking)
    lead_run: float = 0.3  # ... (running, mid-stance)
    run_cadence: float = 2.6  # steps/s from which the gait counts as running (lead blends over 2.2..this)
    min_amplitude: float = 0.02  # % of width per frame: weaker bobs (velocity amplitude) are flow noise
    rel_amplitude: float = 0.25  # steps need a local bob >= this share of the clip's typical bob
    min_regularity: float = 0.2  # (r(period) - r(period / 2)) / 2 of the bobbing signals needed (0..1)
    taper: float = 0.5  # Tukey window of the spectra (1 = Hann, 0 = rectangular: sharper on short clips)
    camera_area: float = 0.5  # periodic motion over at least this share of the picture = a bobbing camera
    smooth: float = 0.3  # step periods: Gaussian window (sigma) of the demodulation (phase may follow a step's irregularity)


@dataclass
class GaitSteps:
    times: np.ndarray  # (K,) step times, seconds
    strength: np.ndarray  # (K,) local bob amplitude (velocity, % width / frame)
    cadence: float  # median cadence over the steps (steps / s), 0 if none
    periodicity: float  # median regularity of the bob over the windows (0..1)
    info: dict = field(default_factory=dict)
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) the walker's position, 0..1 of the width


def _spectra(x: np.ndarray, fps: float, freqs: np.ndarray, taper: float = 1.0) -> np.ndarray:
    """Power of each row of ``x`` (S, L) at ``freqs`` (Tukey window ``taper``: 1 = Hann, 0 = none;
    mean removed), (S, F)."""
    from scipy.signal.windows import tukey

    L = x.shape[-1]
    win = tukey(L, taper)
    xc = (x - x.mean(axis=-1, keepdims=True)) * win
    t = np.arange(L) / fps
    basis = np.exp(-2j * np.pi * freqs[:, None] * t[None, :])  # (F, L)
    return np.abs(xc @ basis.T) ** 2


def _highpass(x: np.ndarray, fps: float, cutoff: float) -> np.ndarray:
    """Remove what varies slower than ``cutoff`` Hz (normalised Gaussian smoothing, edge-safe)."""
    sigma = fps / (2 * np.pi * cutoff)
    return x - _gauss_smooth(x, sigma)


def _gauss_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along the last axis, normalised at the edges (no zero padding bias)."""
    from scipy.ndimage import gaussian_filter1d

    if sigma <= 0:
        return x
    ones = np.ones(x.shape[-1])
    num = gaussian_filter1d(x, sigma, axis=-1, mode="constant", truncate=3.0)
    den = gaussian_filter1d(ones, sigma, mode="constant", truncate=3.0)
    return num / den


def _regularity(x: np.ndarray, w: np.ndarray, period: float) -> float:
    """How regular the periodic signals of ``x`` (S, L) are at ``period`` frames: the weighted mean
    of ``(r(period) - r(period / 2)) / 2`` (normalised autocorrelation ``r``), 1 for a steady bob,
    about 0 for noise or a random shake (which stay alike, or not, at both lags)."""
    use = w >= 0.3 * (w.max() + 1e-12)

    def ac(lag_f: float) -> np.ndarray:
        lag = max(1, int(round(lag_f)))
        if lag >= x.shape[1] - 2:
            return np.zeros(int(use.sum()))
        xa, xb = x[use, :-lag], x[use, lag:]
        return (xa * xb).sum(axis=1) / np.sqrt((xa * xa).sum(axis=1) * (xb * xb).sum(axis=1) + 1e-12)

    r = 0.5 * (ac(period) - ac(0.5 * period))
    return float((w[use] * r).sum() / (w[use].sum() + 1e-12))


def _bob(z: np.ndarray, w: np.ndarray, cfg: "GaitConfig", cols: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The walker's vertical velocity (complex baseband, down = positive) from the cells' ones.

    Periodic cells move along one axis of phase, possibly in two opposite groups (the body going
    down while a carried camera makes the scene go up). The group that covers most of the picture
    is the scene: if it covers at least ``camera_area`` of the cells, the picture bobs because the
    camera does, and the walker's motion is its opposite; otherwise the moving thing is the
    walker's body and its motion is taken as is. Returns (T,) baseband, (T,) 1.0 where the
    camera interpretation was used, and (T,) the walker's horizontal position in [0, 1] of the
    picture (from its cells' columns, ``cols`` per row; 0.5 for a first-person view: see below).
    """
    S, T = z.shape
    wmax = w.max(axis=0, keepdims=True) + 1e-12
    wu = np.where(w >= 0.3 * wmax, w, 0.0)
    mag = np.abs(z) + 1e-12
    # axis of the phases (angle doubled so that opposite phases agree)
    ax = np.angle((wu * z * z / mag).sum(axis=0)) / 2
    a = (z * np.exp(-1j * ax)[None]).real  # signed amplitude along the axis
    amax = np.abs(a).max(axis=0, keepdims=True) + 1e-12
    pos = a >= 0.4 * amax
    neg = a <= -0.4 * amax
    n_pos, n_neg = pos.sum(axis=0), neg.sum(axis=0)
    # the scene: the larger group
    scene_pos = n_pos >= n_neg
    scene = np.where(scene_pos[None], pos, neg)
    camera = np.maximum(n_pos, n_neg) >= cfg.camera_area * S
    ws = np.where(scene, np.maximum(w, 1e-6), 0.0)
    z_scene = (ws * z).sum(axis=0) / (ws.sum(axis=0) + 1e-12)
    # body: the group with the most periodic weight (a lone walker in a still scene has no other group)
    wp = (np.where(pos, w * np.abs(a), 0.0)).sum(axis=0)
    wn = (np.where(neg, w * np.abs(a), 0.0)).sum(axis=0)
    body = np.where((wp >= wn)[None], pos, neg)
    wb = np.where(body, np.maximum(w, 1e-6), 0.0)
    z_body = (wb * z).sum(axis=0) / (wb.sum(axis=0) + 1e-12)
    # where the walker is: the body's cells (by their bob's strength); where the camera bobs, the
    # cells that bob against the scene, as a third-person camera that follows part of the walker's
    # bob sees it (the scene's cells moving one way, the walker's less so or the other way: its
    # cells mix both). Without such cells the walker is the viewer: centred
    cw = np.where(body, w * a * a, 0.0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (frames without a scene group: NaN -> 0)
        s_med = np.nan_to_num(np.nanmedian(np.where(scene, a, np.nan), axis=0))
    dev = (a - s_med[None]) * np.where(scene_pos, -1.0, 1.0)[None]  # > 0: against the scene
    dmax = dev.max(axis=0)
    walker = dev >= 0.5 * np.maximum(dmax, 1e-12)[None]
    cw = np.where(camera[None], np.where(walker, w * np.maximum(dev, 0.0) ** 2, 0.0), cw)
    seen = ~camera | (dmax >= _X_OTHER * np.abs(s_med))
    # the weighted mean of the cells within a quarter of the picture of their weighted median: as
    # fine as a mean where the walker spans two columns, and cells far from it (noise, a second
    # mover) do not pull it
    xs = ((np.arange(S) % max(1, cols)) + 0.5) / max(1, cols)
    med = _weighted_median(xs, cw)
    near = np.abs(xs[:, None] - med[None]) <= 0.25
    wnear = np.where(near, cw, 0.0)
    tot = wnear.sum(axis=0)
    x_body = (wnear * xs[:, None]).sum(axis=0) / np.where(tot > 0, tot, 1.0)
    x_body = np.where(seen & np.isfinite(med) & (tot > 0), x_body, 0.5)
    return np.where(camera, -z_scene, z_body), camera.astype(np.float64), x_body


#: under a bobbing camera, cells bobbing against the scene by at least this share of the scene's
#: bob show a walker the camera follows (third person); less, and the walker is the viewer
_X_OTHER = 0.5


def _weighted_median(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(T,) weighted median of the values ``x`` (S,) with weights ``w`` (S, T), interpolated between
    the values (each at the middle of its weight's share of the cumulative sum: not only the cell
    centres); NaN where all weights are 0."""
    order = np.argsort(x, kind="stable")
    xs, ws = x[order].astype(np.float64), w[order].astype(np.float64)
    tot = ws.sum(axis=0)
    mid = (np.cumsum(ws, axis=0) - 0.5 * ws) / np.where(tot > 0, tot, 1.0)[None]
    out = np.full(w.shape[1], np.nan)
    for t in np.flatnonzero(tot > 0):
        keep = ws[:, t] > 0
        out[t] = np.interp(0.5, mid[keep, t], xs[keep])
    return out


def detect_steps(feats: GaitFeatures, cfg: GaitConfig | None = None) -> GaitSteps:
    """Step times from the vertical bob (see the module docstring)."""
    cfg = cfg or GaitConfig()
    fps = feats.fps
    sig, names = feats.signals()
    S, T = sig.shape
    empty = GaitSteps(np.zeros(0), np.zeros(0), 0.0, 0.0, {"reason": "too short"})
    if T < int(fps / cfg.min_cadence * 1.5) + 2:
        return empty
    sig = sig.copy()
    sig[:, 0] = 0.0  # pair 0 has no motion (first frame)
    # velocities: drop what is slower than a half-cadence (camera drift, slow pans)
    x = _highpass(sig, fps, 0.5 * cfg.min_cadence)
    x[:, 0] = 0.0

    # -- cadence: periodicity-weighted spectra over sliding windows
    f_lo, f_hi = cfg.min_cadence, cfg.max_cadence
    freqs = np.arange(0.4, min(0.5 * fps, 8.0) + 1e-9, 0.05)
    band = (freqs >= f_lo) & (freqs <= f_hi)
    W = min(T, max(int(round(cfg.window * fps)), int(3 * fps / f_lo)))
    hop = max(1, int(round(fps)))
    starts = list(range(0, max(1, T - W + 1), hop))
    if starts[-1] + W < T:
        starts.append(T - W)
    centres, cads, concs, wsig = [], [], [], []
    for s0 in starts:
        seg = x[:, s0 : s0 + W]
        P = _spectra(seg, fps, freqs, cfg.taper)  # (S, F)
        tot = P.sum(axis=1) + 1e-12
        # periodicity of each signal: power within +-15 % of its band peak / total power
        Pn = P / tot[:, None]
        conc = np.zeros(S)
        pk = np.argmax(np.where(band[None], Pn, -1), axis=1)
        for i in range(S):
            f0 = freqs[pk[i]]
            near = np.abs(freqs - f0) <= 0.15 * f0 + 0.1
            conc[i] = Pn[i, near].sum()
        amp = np.sqrt(P[:, band].sum(axis=1) / W)  # rough velocity amplitude in band
        w = conc**4 * np.minimum(1.0, amp / max(cfg.min_amplitude, 1e-9))
        comb = (w[:, None] * Pn).sum(axis=0)
        # a bob has its fundamental at the cadence and harmonics above: add half of the power at 2f
        harm = comb + 0.5 * np.interp(2 * freqs, freqs, comb, right=0.0)
        f0 = float(freqs[band][np.argmax(harm[band])])
        centres.append((s0 + W / 2) / fps)
        cads.append(f0)
        concs.append(_regularity(seg, w, fps / f0))
        wsig.append(w)
    centres = np.asarray(centres)
    cads = np.asarray(cads)
    if len(cads) > 2:
        from scipy.ndimage import median_filter

        cads = median_filter(cads, size=3, mode="nearest")
    t_pair = (np.arange(T) - 0.5) / fps
    f_t = np.interp(t_pair, centres, cads)
    conc_t = np.interp(t_pair, centres, np.asarray(concs))
    w_t = np.stack([np.interp(t_pair, centres, np.asarray(wsig)[:, i]) for i in range(S)])  # (S, T)

    # -- demodulation at the local cadence
    phase_ref = 2 * np.pi * np.cumsum(f_t) / fps
    carrier = np.exp(-1j * phase_ref)
    sigma = cfg.smooth * fps / float(np.median(cads))
    zc = x * carrier[None]
    z = _gauss_smooth(zc.real, sigma) + 1j * _gauss_smooth(zc.imag, sigma)  # (S, T) baseband
    Z, camera_share, x_t = _bob(z, w_t, cfg, feats.cols)
    amp_t = 2 * np.abs(Z)  # velocity amplitude of the combined bob
    theta = phase_ref + np.angle(Z)  # phase of the velocity: v ~ cos(theta)
    # lowest point of the body = velocity crosses from down (+) to up (-): theta = pi/2 (mod 2 pi)
    lead = np.interp(f_t, [2.2, cfg.run_cadence], [cfg.lead_walk, cfg.lead_run])
    target = theta - np.pi / 2 + 2 * np.pi * lead  # crosses 2 pi k at the contact
    u = np.unwrap(target) / (2 * np.pi)
    ks = np.floor(u)
    times, strength = [], []
    for k in range(1, T):
        if ks[k] > ks[k - 1]:
            frac = (ks[k] - u[k - 1]) / max(u[k] - u[k - 1], 1e-9)
            tt = (t_pair[k - 1] + frac / fps)
            times.append(tt)
            strength.append(float(amp_t[k - 1] + frac * (amp_t[k] - amp_t[k - 1])))
    times = np.asarray(times)
    strength = np.asarray(strength)
    typical = float(np.percentile(amp_t, 75)) if T else 0.0
    info = {
        "cadence_track": [round(float(c), 3) for c in cads],
        "regularity_track": [round(float(c), 3) for c in concs],
        "amplitude_p75": round(typical, 4),
        "camera_share": round(float(np.mean(camera_share)), 3),
        "weights": {names[i]: round(float(w_t[i].mean()), 3) for i in np.argsort(-w_t.mean(axis=1))[:5]},
    }
    if len(times):
        idx = np.clip(np.round(times * fps + 0.5).astype(int), 0, T - 1)
        ok = (
            (strength >= cfg.min_amplitude)
            & (strength >= cfg.rel_amplitude * typical)
            & (conc_t[idx] >= cfg.min_regularity)
            & (times >= 0)
            & (times <= feats.duration)
        )
        times, strength = times[ok], strength[ok]
    cad = float(np.median(np.interp(times, t_pair, f_t))) if len(times) else 0.0
    # where the walker is at each step: its body's position, smoothed as the demodulation is (the
    # cells' weights flicker from frame to frame)
    xs = _gauss_smooth(x_t[None], sigma)[0] if T else x_t
    x_steps = np.interp(times, t_pair, xs) if len(times) else np.zeros(0)
    return GaitSteps(times, strength, cad, float(np.median(concs)), info, x_steps)
