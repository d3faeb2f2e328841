"""I3D (Inception-v1 inflated to 3D; Carreira & Zisserman 2017), RGB stream, as the FAVD toolkit
(PEAVS, through v-iashin/video_features) extracts it.

Video preprocessing (as the toolkit): frames sampled at 25 fps, resized so the short side is
256 px (bilinear, aspect kept), centre-cropped to 224x224, scaled to [-1, 1]; stacks of 24
consecutive frames with step 24 (a stack is used only when the frame after it exists, since
the toolkit computes flow between neighbours); each stack -> the 1024-d output of the final
average pool, averaged over time.

Deviation, stated: the toolkit adds the flow-stream features (PWC-Net optical flow) to the RGB
features; this project has no PWC-Net, so FAVD here uses the RGB stream only (``streams``
records it in the cache key and the report). Values are therefore not numerically comparable
with the paper's FAVD column.

Parameter names follow video_features' ``i3d_rgb.pt`` (``conv3d_1a_7x7.conv3d.weight``,
``mixed_4b.branch_1.0.batch3d.running_mean``, ``conv3d_0c_1x1.conv3d.bias``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import FolaiError, MediaError
from ..cache import model_key
from .base import checkpoint_identity, load_state_dict, load_strict, resolve_checkpoint

MIXED = {
    "mixed_3b": (64, 96, 128, 16, 32, 32),
    "mixed_3c": (128, 128, 192, 32, 96, 64),
    "mixed_4b": (192, 96, 208, 16, 48, 64),
    "mixed_4c": (160, 112, 224, 24, 64, 64),
    "mixed_4d": (128, 128, 256, 24, 64, 64),
    "mixed_4e": (112, 144, 288, 32, 64, 64),
    "mixed_4f": (256, 160, 320, 32, 128, 128),
    "mixed_5b": (256, 160, 320, 32, 128, 128),
    "mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _same_pad(kernel, stride):
    """TF 'SAME' padding as F.pad order (w_l, w_r, h_t, h_b, t_f, t_b)."""
    pads = []
    for k, s in zip(kernel, stride):
        total = max(k - s, 0)
        pads.append((total // 2, total - total // 2))
    (t0, t1), (h0, h1), (w0, w1) = pads
    return (w0, w1, h0, h1, t0, t1)


class Unit3D(nn.Module):
    def __init__(self, cin, cout, kernel=(1, 1, 1), stride=(1, 1, 1), relu=True, bias=False, bn=True):
        super().__init__()
        self.pad = _same_pad(kernel, stride)
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride=stride, bias=bias)
        if bn:
            self.batch3d = nn.BatchNorm3d(cout)
        self.relu = relu

    def forward(self, x):
        x = self.conv3d(F.pad(x, self.pad))
        if hasattr(self, "batch3d"):
            x = self.batch3d(x)
        return F.relu(x) if self.relu else x


class MaxPoolSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.pad = _same_pad(kernel, stride)
        self.pool = nn.MaxPool3d(kernel, stride, ceil_mode=True)

    def forward(self, x):
        return self.pool(F.pad(x, self.pad))  # zero padding, as the reference port


class Mixed(nn.Module):
    def __init__(self, cin, c):
        super().__init__()
        self.branch_0 = Unit3D(cin, c[0])
        self.branch_1 = nn.Sequential(Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3)))
        self.branch_2 = nn.Sequential(Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3)))
        self.branch_3 = nn.Sequential(MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5]))

    def forward(self, x):
        return torch.cat([self.branch_0(x), self.branch_1(x), self.branch_2(x), self.branch_3(x)], 1)


@dataclass(frozen=True)
class I3DConfig:
    scale: float = 1.0          # channel multiplier (tests use a tiny one)
    num_classes: int = 400
    in_channels: int = 3        # 3 for RGB (2 for the flow stream)
    crop: int = 224
    short_side: int = 256
    fps: float = 25.0
    stack: int = 24
    step: int = 24

    @classmethod
    def tiny(cls) -> "I3DConfig":
        return cls(scale=1 / 16, num_classes=7, crop=32, short_side=36, fps=25.0, stack=8, step=8)


class I3D(nn.Module):
    """(B, 3, T, H, W) in [-1, 1] -> (B, 1024) features (``features=True``) or class logits."""

    def __init__(self, cfg: I3DConfig = I3DConfig()):
        super().__init__()
        self.cfg = cfg

        def s(c):
            return max(1, int(round(c * cfg.scale)))

        mixed = {k: tuple(s(c) for c in v) for k, v in MIXED.items()}
        self.conv3d_1a_7x7 = Unit3D(cfg.in_channels, s(64), (7, 7, 7), (2, 2, 2))
        self.maxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.conv3d_2b_1x1 = Unit3D(s(64), s(64))
        self.conv3d_2c_3x3 = Unit3D(s(64), s(192), (3, 3, 3))
        self.maxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        cin = s(192)
        for name in ("mixed_3b", "mixed_3c", "mixed_4b", "mixed_4c", "mixed_4d", "mixed_4e", "mixed_4f",
                     "mixed_5b", "mixed_5c"):
            if name == "mixed_4b":
                self.maxPool3d_4a_3x3 = MaxPoolSame((3, 3, 3), (2, 2, 2))
            if name == "mixed_5b":
                self.maxPool3d_5a_2x2 = MaxPoolSame((2, 2, 2), (2, 2, 2))
            setattr(self, name, Mixed(cin, mixed[name]))
            c = mixed[name]
            cin = c[0] + c[2] + c[4] + c[5]
        self.out_dim = cin
        self.conv3d_0c_1x1 = Unit3D(cin, cfg.num_classes, relu=False, bias=True, bn=False)

    def forward(self, x, features: bool = True):
        assert x.ndim == 5 and x.shape[1] == self.cfg.in_channels, f"expected (B, C, T, H, W), got {tuple(x.shape)}"
        x = self.conv3d_1a_7x7(x)
        x = self.maxPool3d_2a_3x3(x)
        x = self.conv3d_2b_1x1(x)
        x = self.conv3d_2c_3x3(x)
        x = self.maxPool3d_3a_3x3(x)
        x = self.mixed_3c(self.mixed_3b(x))
        x = self.maxPool3d_4a_3x3(x)
        for n in ("mixed_4b", "mixed_4c", "mixed_4d", "mixed_4e", "mixed_4f"):
            x = getattr(self, n)(x)
        x = self.maxPool3d_5a_2x2(x)
        x = self.mixed_5c(self.mixed_5b(x))
        # average pool (2, 7, 7) with stride 1 at 224 px input: time pairs x full spatial extent
        x = F.avg_pool3d(x, (min(2, x.shape[2]), x.shape[3], x.shape[4]), stride=1)
        if features:
            return x.flatten(3).mean(dim=(2, 3))  # (B, 1024)
        return self.conv3d_0c_1x1(x).flatten(2).mean(2)


def read_frames(path: str | Path, fps: float, short_side: int, crop: int) -> np.ndarray:
    """(T, crop, crop, 3) uint8 RGB frames at ``fps`` (``folai.media.iter_video_frames``: the source
    frame shown at each time), short side resized to ``short_side`` (bilinear), centre-cropped."""
    import cv2

    from ...media import iter_video_frames

    out = []
    for _, img in iter_video_frames(path, fps=fps):
        h, w = img.shape[:2]
        sc = short_side / min(h, w)
        img = cv2.resize(img, (max(crop, round(w * sc)), max(crop, round(h * sc))), interpolation=cv2.INTER_LINEAR)
        h, w = img.shape[:2]
        y0, x0 = (h - crop) // 2, (w - crop) // 2
        out.append(np.ascontiguousarray(img[y0:y0 + crop, x0:x0 + crop]))
    if not out:
        raise MediaError(f"{path} has no decodable video frames")
    return np.stack(out)


class I3DEmbedder:
    """``embed_video(path)`` -> (n_stacks, 1024) I3D RGB features (the FAVD video side)."""

    name = "i3d-rgb"

    def __init__(self, model: I3D, device: str = "cpu", identity: str = "random"):
        self.model = model.eval().to(device)
        self.device = device
        c = model.cfg
        self.key = model_key(self.name, weights=identity, fps=c.fps, crop=c.crop, stack=c.stack, step=c.step, streams="rgb")

    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 -> (n_stacks, D)."""
        c = self.model.cfg
        n = 0 if frames.shape[0] < c.stack + 1 else 1 + (frames.shape[0] - 1 - c.stack) // c.step
        if n == 0:
            raise FolaiError(
                f"the video is too short for I3D: it needs at least {c.stack + 1} frames at {c.fps:g} fps, got {frames.shape[0]}"
            )
        x = torch.from_numpy(frames).float().div_(127.5).sub_(1.0)  # [-1, 1]
        x = x.permute(3, 0, 1, 2)  # (3, T, H, W)
        feats = []
        with torch.inference_mode():
            for i in range(n):
                clip = x[:, i * c.step:i * c.step + c.stack][None].to(self.device)
                feats.append(self.model(clip, features=True).float().cpu())
        return torch.cat(feats).numpy()

    def embed_video(self, path) -> np.ndarray:
        c = self.model.cfg
        return self.embed_frames(read_frames(path, c.fps, c.short_side, c.crop))


def load(weights: str, device: str = "cpu", config: I3DConfig | None = None) -> I3DEmbedder:
    path = resolve_checkpoint(weights, "I3D RGB")
    model = I3D(config or I3DConfig())
    sd = load_state_dict(path, "I3D RGB")
    # checkpoints converted from TensorFlow carry no BatchNorm step counters; add them
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = v
    load_strict(model, sd, "I3D RGB")
    return I3DEmbedder(model, device, checkpoint_identity(path))
