"""Per-frame video features for the learned timing model, and their per-clip cache.

Pipeline for one video (SPEC "Stage 1 video model")::

    frames at 30 fps (optionally cropped to a region of interest)
      -> resize (short side) + centre crop to the encoder's square size S
      -> optical flow between consecutive frames (OpenCV DIS by default, or RAFT)
      -> flow rendered as an image (HSV colour wheel) for image encoders
      -> frame encoder (tcclip / clip / flowstats) -> (T, D) float32

The cache is one ``.safetensors`` file per video, holding ``features`` (T, D) and metadata (encoder
description, fps, flow method, format version, source size/mtime). A finished file whose metadata
matches is reused; anything else is recomputed. Files are written atomically, so a killed
extraction never leaves a half file that looks finished.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..errors import FolaiError, MediaError, MissingDependencyError, WeightsUnavailableError
from .encoders import FrameEncoder, get_encoder

log = logging.getLogger(__name__)

FEATURE_VERSION = 1
VIDEO_FPS = 30.0
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")

__all__ = [
    "FEATURE_VERSION",
    "VIDEO_FPS",
    "DISFlow",
    "RAFTFlow",
    "get_flow",
    "flow_to_image",
    "extract_video_features",
    "FeatureCache",
    "extract_folder",
    "iter_frames",
    "read_audio",
]


# ----------------------------------------------------------------------------- media access


def iter_frames(path: str | Path, fps: float = VIDEO_FPS, start: float = 0.0, end: float | None = None) -> Iterator[np.ndarray]:
    """RGB frames (H, W, 3) uint8 at ``fps``: frame k shows the source at t = start + k / fps."""
    from ..media import iter_video_frames

    for _, frame in iter_video_frames(path, fps=fps, start=start, end=end):
        yield frame


def read_audio(path: str | Path, sr: int, start: float = 0.0, duration: float | None = None) -> np.ndarray:
    """Mono float32 (N,) audio of a file or a video's audio track at ``sr``, from ``start`` for ``duration`` s."""
    from ..media import read_audio as media_read_audio

    return np.asarray(media_read_audio(path, sr, channels=1, start=start, duration=duration), dtype=np.float32)[0]


def video_duration(path: str | Path) -> float:
    from ..media import probe_video

    return float(probe_video(path).duration)


# ----------------------------------------------------------------------------- optical flow


class DISFlow:
    """OpenCV Dense Inverse Search optical flow (no weights; the default)."""

    name = "dis"

    def __init__(self, preset: str = "medium"):
        from ._flow import make_dis

        self.preset = preset
        self._dis = make_dis(preset)

    def __call__(self, frames: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
        """frames (t, S, S, 3) uint8, prev: the frame before frames[0] or None -> (t, S, S, 2) float32."""
        import cv2

        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        pg = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY) if prev is not None else None
        out = np.zeros((*frames.shape[:3], 2), np.float32)
        for i, g in enumerate(grey):
            if pg is not None:
                out[i] = self._dis.calc(pg, g, None)
            pg = g
        return out

    def describe(self) -> dict[str, Any]:
        return {"method": "dis", "preset": self.preset}


def _raft_device(device: str | None):
    """torch.device for RAFT: the given one (checked), else CUDA when available, else CPU."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise FolaiError(f"unknown device '{device}' for RAFT; use cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FolaiError(f"device '{device}' was asked for RAFT but this torch build sees no CUDA GPU; use --device cpu")
    return dev


def _file_digest(path: Path, n: int = 16) -> str:
    from ..weights import content_sha256

    return content_sha256(path)[:n]


class RAFTFlow:
    """RAFT (torchvision ``raft_large``), as in the paper. Needs the ``raft`` extra (torchvision).

    weights: None -> torchvision's ``Raft_Large_Weights.DEFAULT`` (downloaded by torchvision when
    online, cached afterwards); or a local file holding a ``raft_large`` state dict (as written by
    ``torch.save(raft_large(...).state_dict(), PATH)``; the original princeton-vl ``raft-*.pth``
    files use other key names and are refused).

    Output follows :class:`DISFlow`: (t, H, W, 2) float32, channel 0 = x (right positive), 1 = y
    (down positive), in pixels per frame at the size of the frames given, flow[k] mapping frame k-1
    to frame k (so a pixel at p in frame k-1 is at p + flow[k] in frame k), zero for the very first
    frame of a video. Frames are scaled to [-1, 1] as torchvision's ``OpticalFlow`` transform does.
    ``raft_large`` needs inputs of at least 128 x 128 (its correlation pyramid) with sides divisible
    by 8: smaller frames are upsampled (bilinear) to 128 on the short side and the flow is resized
    back and rescaled to the frames' pixels; sides are then padded (edge-replicated) to a multiple
    of 8 and the padding cropped from the flow. Pairs run in batches of ``batch``.
    """

    name = "raft"
    MIN_SIZE = 128  # torchvision raft_large: feature maps (1/8 of the input) must be >= 16

    def __init__(self, weights: str | None = None, device: str | None = None, iters: int = 12, batch: int = 8):
        import torch

        try:
            from torchvision.models.optical_flow import Raft_Large_Weights, raft_large
        except ImportError as e:
            raise MissingDependencyError(
                f"RAFT optical flow needs torchvision ({e}); install it with pip install 'folai[raft]' "
                "(a torchvision build matching your torch), or use the default --flow dis"
            ) from e
        if int(iters) < 1 or int(batch) < 1:
            raise FolaiError(f"RAFT needs iters >= 1 and batch >= 1, got iters={iters} and batch={batch}")
        self.device = _raft_device(device)
        self.iters = int(iters)
        self.batch = int(batch)
        self.weights = weights
        if weights:
            path = Path(weights)
            if not path.is_file():
                raise WeightsUnavailableError(
                    f"RAFT weights file not found: {weights} (pass --flow-weights a raft_large state dict, "
                    "or leave it out to use torchvision's weights)"
                )
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:
                raise WeightsUnavailableError(
                    f"cannot read RAFT weights {path} ({type(e).__name__}); expected a raft_large state dict "
                    "saved with torch.save(model.state_dict(), PATH)"
                ) from e
            model = raft_large(weights=None)
            try:
                if not isinstance(state, dict):
                    raise TypeError(f"the file holds a {type(state).__name__}, not a dict of tensors")
                model.load_state_dict(state)
            except (RuntimeError, TypeError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise WeightsUnavailableError(
                    f"{path} is not a torchvision raft_large state dict ({first[:300]}); the original "
                    "princeton-vl RAFT checkpoints and raft_small weights do not fit"
                ) from e
            self._weights_id = {"weights": path.name, "weights_sha256": _file_digest(path)}
        else:
            try:
                model = raft_large(weights=Raft_Large_Weights.DEFAULT)
            except Exception as e:  # no network and nothing cached
                raise WeightsUnavailableError(
                    f"cannot get RAFT weights ({e}); connect once so torchvision can download them, or pass "
                    "--flow-weights PATH to a raft_large state dict"
                ) from e
            self._weights_id = {"weights": f"torchvision:{Raft_Large_Weights.DEFAULT}"}
        self.model = model.to(self.device).eval()

    def _geometry(self, H: int, W: int) -> tuple[int, int, int, int]:
        """(h, w) the frames are resized to (>= MIN_SIZE on the short side) and (ph, pw) padding to x8."""
        import math

        s = max(1.0, self.MIN_SIZE / min(H, W))
        h, w = (H, W) if s == 1.0 else (max(self.MIN_SIZE, math.ceil(H * s)), max(self.MIN_SIZE, math.ceil(W * s)))
        return h, w, (-h) % 8, (-w) % 8

    def __call__(self, frames: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
        """frames (t, H, W, 3) uint8, prev: the frame before frames[0] or None -> (t, H, W, 2) float32."""
        import torch
        import torch.nn.functional as F

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"RAFT expects frames of shape (t, H, W, 3), got {frames.shape}")
        t, H, W = frames.shape[:3]
        out = np.zeros((t, H, W, 2), np.float32)
        seq = np.concatenate([prev[None], frames]) if prev is not None else frames
        first = 0 if prev is not None else 1  # out index of the first pair (seq[0] -> seq[1])
        h, w, ph, pw = self._geometry(H, W)
        for b in range(0, len(seq) - 1, self.batch):
            chunk = torch.from_numpy(np.ascontiguousarray(seq[b : b + self.batch + 1])).to(self.device)
            x = chunk.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)  # [-1, 1], as torchvision's preset
            if (h, w) != (H, W):
                x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            with torch.inference_mode():
                fl = self.model(x[:-1], x[1:], num_flow_updates=self.iters)[-1][..., :h, :w].float()
                if (h, w) != (H, W):
                    fl = F.interpolate(fl, size=(H, W), mode="bilinear", align_corners=False)
                    fl = fl * torch.tensor([W / w, H / h], device=fl.device).view(1, 2, 1, 1)
            out[first + b : first + b + len(fl)] = fl.permute(0, 2, 3, 1).cpu().numpy()
        return out

    def describe(self) -> dict[str, Any]:
        return {"method": "raft", "model": "raft_large", **self._weights_id, "iters": self.iters}


def get_flow(method: str = "dis", **options: Any):
    if method == "dis":
        return DISFlow(**{k: v for k, v in options.items() if k in ("preset",)})
    if method == "raft":
        return RAFTFlow(**{k: v for k, v in options.items() if k in ("weights", "device", "iters")})
    raise FolaiError(f"unknown optical flow method '{method}'; choose 'dis' or 'raft'")


def flow_to_image(flow: np.ndarray, min_scale: float | None = None) -> np.ndarray:
    """(H, W, 2) flow -> (H, W, 3) uint8 RGB on the HSV colour wheel.

    Hue = direction, saturation = 1, value = magnitude / max(magnitude of this frame, min_scale).
    ``min_scale`` (default 1 % of the frame width, in pixels) keeps sensor noise dark on still frames.
    """
    import cv2

    H, W = flow.shape[:2]
    min_scale = 0.01 * W if min_scale is None else min_scale
    mag, ang = cv2.cartToPolar(flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32))
    hsv = np.zeros((H, W, 3), np.uint8)
    hsv[..., 0] = (ang * (90.0 / np.pi)).astype(np.uint8)  # OpenCV hue range 0..180
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(mag / max(float(mag.max()), min_scale) * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


# ----------------------------------------------------------------------------- extraction


def _square(frame: np.ndarray, size: int, roi: tuple[int, int, int, int] | None) -> np.ndarray:
    """Crop to roi (x, y, w, h), resize the short side to ``size`` and centre-crop to size x size."""
    import cv2

    if roi is not None:
        x, y, w, h = roi
        frame = frame[max(0, y) : y + h, max(0, x) : x + w]
        if frame.size == 0:
            raise FolaiError(f"region of interest {roi} lies outside the video frame")
    H, W = frame.shape[:2]
    s = size / min(H, W)
    nh, nw = max(size, int(round(H * s))), max(size, int(round(W * s)))
    img = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y0, x0 = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(img[y0 : y0 + size, x0 : x0 + size])


def extract_video_features(
    video: str | Path,
    encoder: FrameEncoder,
    flow=None,
    fps: float = VIDEO_FPS,
    roi: tuple[int, int, int, int] | None = None,
    block: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """(T, encoder.dim) float32 features of ``video`` at ``fps`` (T = frames decoded).

    Memory stays flat: frames are processed in blocks of ``block`` frames (rounded up to a multiple
    of the encoder's window).
    """
    from tqdm.auto import tqdm

    if encoder.needs_flow and flow is None:
        flow = DISFlow()
    block = max(encoder.window, -(-block // encoder.window) * encoder.window)
    encoder.reset()
    feats: list[np.ndarray] = []
    buf: list[np.ndarray] = []
    prev: np.ndarray | None = None
    bar = tqdm(desc=Path(video).name, unit="frame", disable=not progress, leave=False)

    def flush() -> None:
        nonlocal prev
        frames = np.stack(buf)
        fl = flow(frames, prev) if encoder.needs_flow else None
        feats.append(encoder.encode(frames, fl))
        prev = frames[-1]
        bar.update(len(buf))
        buf.clear()

    for frame in iter_frames(video, fps=fps):
        buf.append(_square(frame, encoder.image_size, roi))
        if len(buf) == block:
            flush()
    if buf:
        flush()
    bar.close()
    if not feats:
        raise MediaError(f"no frames could be decoded from {video}")
    out = np.concatenate(feats).astype(np.float32)
    assert out.ndim == 2 and out.shape[1] == encoder.dim, out.shape
    return out


@dataclass
class FeatureCache:
    """Feature files under ``root``: ``root/<video path relative to data_root>.safetensors``."""

    root: Path
    data_root: Path | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.data_root = Path(self.data_root) if self.data_root is not None else None

    def path_for(self, video: str | Path) -> Path:
        v = Path(video)
        rel = None
        if self.data_root is not None:
            try:
                rel = v.resolve().relative_to(self.data_root.resolve())
            except ValueError:
                rel = None
        if rel is None:
            rel = Path(v.name)
        return self.root / rel.with_suffix(rel.suffix + ".safetensors")

    @staticmethod
    def signature(encoder: FrameEncoder, flow, fps: float) -> dict[str, str]:
        return {
            "encoder": encoder.name,
            "encoder_config": json.dumps(encoder.describe(), sort_keys=True),
            "flow": json.dumps(flow.describe() if (flow is not None and encoder.needs_flow) else None, sort_keys=True),
            "fps": repr(float(fps)),
            "version": str(FEATURE_VERSION),
        }

    @staticmethod
    def _source(video: Path) -> dict[str, str]:
        st = video.stat()
        return {"source_size": str(st.st_size), "source_mtime": str(int(st.st_mtime))}

    def is_done(self, video: str | Path, signature: dict[str, str]) -> bool:
        p = self.path_for(video)
        if not p.is_file():
            return False
        meta = self.metadata(p)
        want = {**signature, **self._source(Path(video))}
        return all(meta.get(k) == v for k, v in want.items())

    @staticmethod
    def metadata(path: str | Path) -> dict[str, str]:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="np") as f:
                return dict(f.metadata() or {})
        except Exception:
            return {}

    def save(self, video: str | Path, features: np.ndarray, signature: dict[str, str]) -> Path:
        from safetensors.numpy import save_file

        from ..paths import atomic_output

        p = self.path_for(video)
        p.parent.mkdir(parents=True, exist_ok=True)
        meta = {**signature, **self._source(Path(video)), "n_frames": str(len(features)), "dim": str(features.shape[1]),
                "source": str(Path(video).name)}
        with atomic_output(p, inputs=[video]) as tmp:
            save_file({"features": np.ascontiguousarray(features, dtype=np.float32)}, str(tmp), metadata=meta)
        return p

    def load(self, video: str | Path) -> tuple[np.ndarray, dict[str, str]]:
        from safetensors.numpy import load_file

        p = self.path_for(video)
        if not p.is_file():
            raise FolaiError(
                f"no cached features for {video} (expected {p}); run 'folai extract' on the data folder first"
            )
        return load_file(str(p))["features"], self.metadata(p)


def list_videos(root: str | Path, suffixes: Iterable[str] = VIDEO_SUFFIXES) -> list[Path]:
    r = Path(root)
    if r.is_file():
        return [r]
    if not r.is_dir():
        raise FolaiError(f"video folder not found: {r}")
    suf = tuple(s.lower() for s in suffixes)
    return sorted(p for p in r.rglob("*") if p.is_file() and p.suffix.lower() in suf and not p.name.startswith("."))


def extract_folder(
    videos: str | Path | list[Path],
    out: str | Path,
    encoder: str | FrameEncoder = "flowstats",
    flow: str | Any = "dis",
    fps: float = VIDEO_FPS,
    data_root: str | Path | None = None,
    encoder_options: dict[str, Any] | None = None,
    flow_options: dict[str, Any] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, int]:
    """Extract and cache features for every video under ``videos``; skip finished ones.

    Returns counts {"done": newly extracted, "skipped": already cached, "total": videos,
    "failed": unreadable videos} and ``"errors"``: one line per unreadable video. A video that
    cannot be read (a truncated or corrupt file among a dataset's thousand) is said and passed
    over: it had stopped the whole run, and a re-run stopped at the same file (found by a review).
    """
    from ..errors import MediaError

    from tqdm.auto import tqdm

    if isinstance(videos, (str, Path)):
        root = Path(videos)
        vids = list_videos(root)
        data_root = data_root or (root if root.is_dir() else root.parent)
    else:
        vids = [Path(v) for v in videos]
    if not vids:
        raise FolaiError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) found in {videos}")
    enc = get_encoder(encoder, **(encoder_options or {})) if isinstance(encoder, str) else encoder
    fl = (get_flow(flow, **(flow_options or {})) if isinstance(flow, str) else flow) if enc.needs_flow else None
    cache = FeatureCache(Path(out), data_root)
    sig = FeatureCache.signature(enc, fl, fps)
    done = skipped = 0
    errors: list[str] = []
    for v in tqdm(vids, desc=f"extract {enc.name}", unit="video", disable=not progress):
        if not overwrite and cache.is_done(v, sig):
            skipped += 1
            continue
        try:
            feats = extract_video_features(v, enc, fl, fps=fps, progress=False)
        except MediaError as e:
            log.warning("skipped %s: %s", v, e)
            errors.append(f"{v}: {e}")
            continue
        cache.save(v, feats, sig)
        done += 1
    log.info("features: %d extracted, %d already cached, %d unreadable, in %s", done, skipped, len(errors), out)
    return {"done": done, "skipped": skipped, "total": len(vids), "failed": len(errors), "errors": errors}
