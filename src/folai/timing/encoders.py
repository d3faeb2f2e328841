"""Frame encoders for the learned timing model: per-frame features from RGB frames and optical flow.

Each encoder maps a block of ``t`` frames to ``(t, dim)`` float32 features:

- ``tcclip``    TC-CLIP ViT-B/16 (the paper's encoder) on RGB frames and on flow images, 512 + 512.
                Weights: an official TC-CLIP checkpoint file (``--encoder-weights PATH``).
- ``clip``      CLIP ViT-B/16 frame by frame (``transformers``' CLIPVisionModelWithProjection,
                ``openai/clip-vit-base-patch16`` or a local folder), RGB 512 + flow image 512.
- ``flowstats`` weight-free hand-made motion statistics, 512 per frame (see :class:`FlowStatsEncoder`);
                lets the whole stage train offline.

``streams`` selects "rgb+flow" (default; the paper's input, 1024-d for the CLIP encoders) or "rgb"
(the paper's RGB-only ablation, 512-d).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FolaiError, MissingDependencyError, WeightsUnavailableError

log = logging.getLogger(__name__)

__all__ = ["FrameEncoder", "FlowStatsEncoder", "CLIPEncoder", "TCCLIPEncoder", "get_encoder", "ENCODERS"]

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


class FrameEncoder:
    """Base class. ``encode(rgb, flow)``: rgb (t, S, S, 3) uint8, flow (t, S, S, 2) float32 pixels/frame
    (flow[i] = motion from frame i-1 to frame i; zeros for a video's first frame) -> (t, dim) float32.

    ``image_size`` is the square size S frames are resized/cropped to; ``window`` the number of frames
    the encoder wants per call (blocks are a multiple of it; the last one is padded and cut).
    ``needs_flow`` says whether optical flow must be computed. ``reset()`` is called per video.
    """

    name = "base"
    dim = 0
    image_size = 224
    window = 1
    needs_flow = True

    def reset(self) -> None:
        pass

    def encode(self, rgb: np.ndarray, flow: np.ndarray | None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What identifies this encoder's output in a feature cache."""
        return {"name": self.name, "dim": self.dim, "image_size": self.image_size}


# ----------------------------------------------------------------------------- flowstats


class FlowStatsEncoder(FrameEncoder):
    """512 weight-free statistics per frame, mostly of motion: optical flow and frame differences.

    Flow is measured in percent of the frame size per frame (resolution independent). Per frame:

    - 8 x 8 grid, 5 values per cell (320): mean horizontal flow u, mean vertical flow v, mean
      magnitude, mean |frame difference| (grey, x10) and mean |flow_t - flow_t-1| (acceleration:
      large where a moving object stops or bounces, i.e. where impacts happen);
    - 4 x 4 grid, 8 orientation bins of magnitude-weighted flow direction (128);
    - 4 x 4 grid, mean R, G, B in [0, 1] (48): a little appearance, e.g. what surface is hit;
    - global (16): fractions of pixels in 8 log-spaced magnitude bins, mean u, mean v, mean and max
      magnitude, mean frame difference, mean acceleration, fractions moving > 0.5 % and > 2 %.

    Values are compressed with sign(x) * log1p(|x|) so rare fast motions do not dominate.
    """

    name = "flowstats"
    dim = 512
    window = 1
    MAG_EDGES = np.array([0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0])  # percent of frame size per frame

    def __init__(self, image_size: int = 128):
        self.image_size = int(image_size)
        self.reset()

    def reset(self) -> None:
        self._prev_flow: np.ndarray | None = None
        self._prev_grey: np.ndarray | None = None

    @staticmethod
    def _grid_mean(x: np.ndarray, g: int) -> np.ndarray:
        """x: (H, W, ...) -> (g, g, ...) mean over equal cells (edges trimmed to a multiple of g)."""
        H, W = x.shape[:2]
        h, w = H // g, W // g
        x = x[: h * g, : w * g]
        return x.reshape(g, h, g, w, *x.shape[2:]).mean(axis=(1, 3))

    def encode(self, rgb: np.ndarray, flow: np.ndarray | None) -> np.ndarray:
        if flow is None:
            raise FolaiError("the flowstats encoder needs optical flow")
        t, S = rgb.shape[0], rgb.shape[1]
        if S < 8:
            raise FolaiError(f"flowstats needs frames of at least 8 x 8 pixels, got {S}")
        out = np.zeros((t, self.dim), dtype=np.float32)
        scale = 100.0 / S  # pixels/frame -> percent of the frame size per frame
        colour_all = rgb.astype(np.float32) / 255.0  # (t, S, S, 3)
        grey_all = colour_all.mean(axis=-1)  # (t, S, S)
        for i in range(t):
            f = flow[i].astype(np.float32) * scale  # (S, S, 2)
            mag = np.sqrt((f**2).sum(-1))
            grey = grey_all[i]
            diff = np.abs(grey - self._prev_grey) if self._prev_grey is not None else np.zeros_like(grey)
            acc = (
                np.sqrt(((f - self._prev_flow) ** 2).sum(-1)) if self._prev_flow is not None else np.zeros_like(mag)
            )
            cells = np.concatenate(
                [f, mag[..., None], diff[..., None] * 10.0, acc[..., None]], axis=-1
            )  # (S, S, 5)
            ang = np.arctan2(f[..., 1], f[..., 0])  # [-pi, pi]
            b = np.minimum(((ang + np.pi) / (2 * np.pi) * 8).astype(np.int64), 7)
            onehot = np.zeros((S, S, 8), np.float32)
            np.put_along_axis(onehot, b[..., None], mag[..., None], axis=-1)
            hist = np.bincount(np.searchsorted(self.MAG_EDGES, mag.ravel()), minlength=8)[:8] / mag.size
            glob = np.array([
                f[..., 0].mean(), f[..., 1].mean(), mag.mean(), mag.max(), diff.mean() * 10.0, acc.mean(),
                (mag > 0.5).mean(), (mag > 2.0).mean(),
            ])
            v = np.concatenate([
                self._grid_mean(cells, 8).reshape(-1),  # 320
                self._grid_mean(onehot, 4).reshape(-1),  # 128
                self._grid_mean(colour_all[i], 4).reshape(-1),  # 48
                hist, glob,  # 16
            ])
            out[i] = np.sign(v) * np.log1p(np.abs(v))
            self._prev_flow, self._prev_grey = f, grey
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "stats": "grid8x5+orient4x8+rgb4x3+global16", "version": 2}


# ----------------------------------------------------------------------------- CLIP family


def _normalise(frames: np.ndarray, mean: np.ndarray = CLIP_MEAN, std: np.ndarray = CLIP_STD):
    """(t, S, S, 3) uint8 -> (t, 3, S, S) float32 tensor, CLIP-normalised."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)
    x = (x - torch.from_numpy(mean)) / torch.from_numpy(std)
    return x.permute(0, 3, 1, 2).contiguous()


class _TwoStreamEncoder(FrameEncoder):
    """Shared logic: the same image model on RGB frames and on flow images, 512 each, concatenated."""

    per_stream = 512

    def __init__(self, streams: str = "rgb+flow", device: str | None = None, batch_size: int = 32):
        import torch

        if streams not in ("rgb+flow", "rgb"):
            raise FolaiError(f"unknown streams '{streams}'; choose 'rgb+flow' or 'rgb'")
        self.streams = streams
        self.needs_flow = streams == "rgb+flow"
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.per_stream * (2 if self.streams == "rgb+flow" else 1)

    def _embed(self, images: np.ndarray) -> np.ndarray:  # pragma: no cover - per subclass
        raise NotImplementedError

    def encode(self, rgb: np.ndarray, flow: np.ndarray | None) -> np.ndarray:
        from .features import flow_to_image

        parts = [self._embed(rgb)]
        if self.streams == "rgb+flow":
            if flow is None:
                raise FolaiError(f"the {self.name} encoder with streams 'rgb+flow' needs optical flow")
            parts.append(self._embed(np.stack([flow_to_image(f) for f in flow])))
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "streams": self.streams}


def _weights_digest(weights: str | None) -> str | None:
    """SHA-256 (16 hex digits) of a local weights file, or of every file of a weights folder; None
    for a hub id. The feature cache is keyed by it: by the path alone, weights replaced at the
    same path reused the features of the old ones (found by a review)."""
    from ..weights import content_sha256

    if not weights or not Path(str(weights)).exists():
        return None
    return content_sha256(weights)[:16]


def _weights_id(weights: str | None) -> str | None:
    """What a run records of its encoder weights: a local file or folder as its absolute path (a
    relative one, as typed, had worked only from the folder of the extraction; found by a
    review), a hub id as it is."""
    if not weights:
        return weights
    p = Path(str(weights)).expanduser()
    return str(p.resolve()) if p.exists() else str(weights)


class CLIPEncoder(_TwoStreamEncoder):
    """CLIP ViT-B/16 frame by frame via transformers (``image_embeds``, 512-d per frame per stream).

    weights: a hub id (default ``openai/clip-vit-base-patch16``) or a local folder; or pass an
    already built ``CLIPVisionModelWithProjection`` as ``model`` (tests use a tiny random one).
    """

    name = "clip"

    def __init__(
        self,
        weights: str | None = None,
        model: Any = None,
        streams: str = "rgb+flow",
        device: str | None = None,
        batch_size: int = 32,
    ):
        super().__init__(streams=streams, device=device, batch_size=batch_size)
        if model is None:
            try:
                from transformers import CLIPVisionModelWithProjection
            except ImportError as e:
                raise MissingDependencyError(
                    f"the clip encoder needs transformers ({e}); install it with pip install 'folai[learned]'"
                ) from e
            weights = weights or "openai/clip-vit-base-patch16"
            try:
                model = CLIPVisionModelWithProjection.from_pretrained(weights)
            except OSError as e:
                raise WeightsUnavailableError(
                    f"cannot load CLIP weights '{weights}' ({str(e).splitlines()[0]}); pass a local folder with "
                    "--encoder-weights, or connect once to download openai/clip-vit-base-patch16"
                ) from e
        self.weights = _weights_id(weights) or getattr(model, "name_or_path", "") or "custom"
        self.model = model.to(self.device).eval()
        self.image_size = int(model.config.image_size)
        self.per_stream = int(model.config.projection_dim)

    def _embed(self, images: np.ndarray) -> np.ndarray:
        import torch

        outs = []
        with torch.no_grad():
            for b in range(0, len(images), self.batch_size):
                x = _normalise(images[b : b + self.batch_size]).to(self.device)
                outs.append(self.model(pixel_values=x).image_embeds.float().cpu().numpy())
        return np.concatenate(outs, axis=0)

    def describe(self) -> dict[str, Any]:
        digest = _weights_digest(self.weights)
        return {**super().describe(), "weights": str(self.weights), **({"weights_sha256": digest} if digest else {})}


class TCCLIPEncoder(_TwoStreamEncoder):
    """TC-CLIP (the paper's encoder): windows of ``num_frames`` consecutive frames, 512-d per frame.

    weights: path to an official TC-CLIP checkpoint (.pth with a "model" entry) or a .safetensors
    of the vision tower; or pass a :class:`folai.timing.tcclip.TCCLIPVision` as ``model``.
    """

    name = "tcclip"

    def __init__(
        self,
        weights: str | None = None,
        model: Any = None,
        streams: str = "rgb+flow",
        device: str | None = None,
        batch_size: int = 2,
        **overrides: Any,
    ):
        super().__init__(streams=streams, device=device, batch_size=batch_size)
        from .tcclip import tcclip_from_checkpoint

        if model is None:
            if not weights:
                raise WeightsUnavailableError(
                    "the tcclip encoder needs an official TC-CLIP checkpoint: download one from "
                    "github.com/naver-ai/tc-clip (e.g. the zero-shot K-400 ViT-B/16) and pass --encoder-weights PATH"
                )
            model = tcclip_from_checkpoint(weights, **overrides)
        self.weights = _weights_id(weights) or "custom"
        self.model = model.to(self.device).eval()
        self.image_size = model.config.image_size
        self.window = model.config.num_frames
        self.per_stream = model.config.output_dim

    def _embed(self, images: np.ndarray) -> np.ndarray:
        import torch

        t, T = len(images), self.window
        pad = (-t) % T
        if pad:
            images = np.concatenate([images, np.repeat(images[-1:], pad, axis=0)])
        x = _normalise(images).reshape(-1, T, 3, self.image_size, self.image_size)  # (windows, T, 3, S, S)
        outs = []
        with torch.no_grad():
            for b in range(0, len(x), self.batch_size):
                outs.append(self.model(x[b : b + self.batch_size].to(self.device)).float().cpu().numpy())
        return np.concatenate(outs, axis=0).reshape(-1, self.per_stream)[:t]

    def describe(self) -> dict[str, Any]:
        digest = _weights_digest(self.weights)
        return {**super().describe(), "weights": str(self.weights), "tcclip": json.dumps(self.model.config.to_dict()),
                **({"weights_sha256": digest} if digest else {})}


ENCODERS = {"tcclip": TCCLIPEncoder, "clip": CLIPEncoder, "flowstats": FlowStatsEncoder}


def get_encoder(name: str, **options: Any) -> FrameEncoder:
    """Build encoder ``name`` ("tcclip", "clip", "flowstats"); options go to its constructor."""
    if name not in ENCODERS:
        raise FolaiError(f"unknown frame encoder '{name}'; choose one of: {', '.join(ENCODERS)}")
    if name == "flowstats":
        options = {k: v for k, v in options.items() if k in ("image_size",)}
    return ENCODERS[name](**options)
