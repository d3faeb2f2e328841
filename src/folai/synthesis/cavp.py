"""CAVP: Diff-Foley's contrastive audio-visual pretrained video encoder (video half only).

Architecture (Diff-Foley ``CAVP_Inference.encode_video`` with ``pool=False``, ``normalize=True``):
a SlowOnly ResNet3d-50 (mmaction style: stem conv (1, 7, 7) stride (1, 2, 2) + BN + ReLU, max-pool
(1, 3, 3) stride (1, 2, 2); four stages of 3/4/6/3 bottleneck blocks, widths 64..512 x 4, spatial
strides 1/2/2/2, no temporal stride; stages 3 and 4 use a (3, 1, 1) temporal kernel in each block's
first conv ("inflated"), stages 1 and 2 a (1, 1, 1) kernel), spatial average pooling, a Linear
2048 -> 512 per frame, then L2 normalisation. Input: RGB frames at 4 fps resized to 224 x 224,
values in [0, 1] (no mean/std normalisation, as Diff-Foley's ``ToTensor`` pipeline). Output: one
512-d embedding per input frame.

Module and parameter names follow the released checkpoint (``cavp_epoch66.ckpt``:
``state_dict`` -> ``video_encoder.layer1.0.conv1.conv.weight``, ``...conv1.bn.running_mean``,
``video_project_head.weight``...), so loading is a strict identity mapping after the explicit
rules in :data:`CKPT_PREFIX_STRIP` and :data:`CKPT_IGNORED_PREFIXES` (the audio half).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FolaiError

# explicit checkpoint key rules (Diff-Foley saves from DataParallel / Lightning)
CKPT_PREFIX_STRIP = ("module.",)
CKPT_IGNORED_PREFIXES = ("spec_encoder.", "spec_project_head.", "logit_scale")

FPS = 4.0
SIZE = 224


@dataclass(frozen=True)
class CAVPConfig:
    base_channels: int = 64
    stage_blocks: tuple[int, ...] = (3, 4, 6, 3)
    inflate: tuple[int, ...] = (0, 0, 1, 1)
    spatial_strides: tuple[int, ...] = (1, 2, 2, 2)
    embed_dim: int = 512
    expansion: int = 4

    @property
    def feat_dim(self) -> int:
        return self.base_channels * 2 ** (len(self.stage_blocks) - 1) * self.expansion


class ConvBN(nn.Module):
    """mmcv ConvModule(conv3d, BN3d, optional ReLU) with the same parameter names (``conv``, ``bn``)."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0, act=True):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm3d(cout)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.act else x


class Bottleneck3d(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, spatial_stride=1, inflate=False, downsample=None, expansion=4):
        super().__init__()
        k1, p1 = ((3, 1, 1), (1, 0, 0)) if inflate else ((1, 1, 1), (0, 0, 0))
        self.conv1 = ConvBN(inplanes, planes, k1, padding=p1)
        self.conv2 = ConvBN(planes, planes, (1, 3, 3), stride=(1, spatial_stride, spatial_stride), padding=(0, 1, 1))
        self.conv3 = ConvBN(planes, planes * expansion, 1, act=False)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


class ResNet3dSlowOnly(nn.Module):
    """(B, 3, T, H, W) -> (B, C, T) features (spatially averaged)."""

    def __init__(self, config: CAVPConfig):
        super().__init__()
        c = config
        self.conv1 = ConvBN(3, c.base_channels, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3))
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        inplanes = c.base_channels
        self.res_layers = []
        for i, n in enumerate(c.stage_blocks):
            planes = c.base_channels * 2**i
            stride = c.spatial_strides[i]
            down = None
            if stride != 1 or inplanes != planes * c.expansion:
                down = ConvBN(inplanes, planes * c.expansion, 1, stride=(1, stride, stride), act=False)
            blocks = [Bottleneck3d(inplanes, planes, stride, bool(c.inflate[i]), down, c.expansion)]
            inplanes = planes * c.expansion
            blocks += [Bottleneck3d(inplanes, planes, 1, bool(c.inflate[i]), None, c.expansion) for _ in range(1, n)]
            name = f"layer{i + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.res_layers.append(name)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        for name in self.res_layers:
            x = getattr(self, name)(x)
        return x.mean(dim=(3, 4))  # (B, C, T)


class CAVPVideoEncoder(nn.Module):
    """Diff-Foley's CAVP video encoder: frames (B, T, 3, H, W) in [0, 1] -> (B, T, 512), L2-normalised."""

    def __init__(self, config: CAVPConfig = CAVPConfig()):
        super().__init__()
        self.config = config
        self.video_encoder = ResNet3dSlowOnly(config)
        self.video_project_head = nn.Linear(config.feat_dim, config.embed_dim)

    def forward(self, frames: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        assert frames.ndim == 5 and frames.shape[2] == 3, f"frames must be (B, T, 3, H, W), got {tuple(frames.shape)}"
        feat = self.video_encoder(frames.permute(0, 2, 1, 3, 4))  # (B, C, T)
        feat = self.video_project_head(feat.transpose(1, 2))  # (B, T, D)
        return F.normalize(feat, dim=-1) if normalize else feat

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, config: CAVPConfig = CAVPConfig()) -> "CAVPVideoEncoder":
        """Load Diff-Foley's released CAVP checkpoint (``cavp_epoch66.ckpt`` or a safetensors export)."""
        from ..errors import WeightsUnavailableError
        from ..weights import load_torch_checkpoint

        p = Path(path).expanduser()
        if not p.exists():
            raise WeightsUnavailableError(
                f"the CAVP checkpoint was not found at {p}; download Diff-Foley's cavp_epoch66.ckpt "
                "(https://huggingface.co/SimianLuo/Diff-Foley, file diff_foley_ckpt/cavp_epoch66.ckpt) and pass its path"
            )
        model = cls(config)
        model.load_state_dict_from_checkpoint(load_torch_checkpoint(p), what=f"CAVP checkpoint {p}")
        return model.eval()

    def load_state_dict_from_checkpoint(self, state: dict, what: str = "CAVP checkpoint") -> None:
        from ..weights import load_state_dict_strict

        clean = {}
        for k, v in state.items():
            for pre in CKPT_PREFIX_STRIP:
                if k.startswith(pre):
                    k = k[len(pre):]
            if k.startswith(CKPT_IGNORED_PREFIXES):
                continue
            clean[k] = v
        load_state_dict_strict(self, clean, what=what)

    @torch.no_grad()
    def embed_frames(self, frames: np.ndarray | torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """uint8 (T, H, W, 3) RGB frames (4 fps, 224 x 224) -> (T, 512) embeddings on the encoder's device.

        ``chunk``: encode at most this many frames at a time (Diff-Foley encodes in batches of frames);
        None encodes the whole clip at once.
        """
        ref = next(self.parameters())
        x = torch.as_tensor(np.asarray(frames))
        if x.ndim != 4 or x.shape[-1] != 3:
            raise FolaiError(f"CAVP needs (T, H, W, 3) RGB frames, got shape {tuple(x.shape)}")
        x = x.to(ref.device).permute(0, 3, 1, 2).to(ref.dtype) / 255.0  # (T, 3, H, W)
        if x.shape[-2:] != (SIZE, SIZE):
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        step = chunk or x.shape[0]
        outs = [self(x[i : i + step][None])[0] for i in range(0, x.shape[0], step)]
        return torch.cat(outs, dim=0)


def read_cavp_frames(video: str | os.PathLike, start: float = 0.0, duration: float | None = None) -> np.ndarray:
    """RGB frames of ``video`` at 4 fps, 224 x 224, as (T, 224, 224, 3) uint8 (folai.media)."""
    from ..media import read_video_frames

    end = None if duration is None else start + duration
    return read_video_frames(video, fps=FPS, size=(SIZE, SIZE), start=start, end=end)
