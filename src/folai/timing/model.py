"""The paper's stage-1 "video model": per-frame video features -> 64 envelope classes per frame.

Architecture (SPEC "Stage 1 video model", RegNet-style upsampling branch)::

    features (B, T_video, D)                       D = 1024 for TC-CLIP RGB+flow
      -> 3 x [Conv1d(k) -> BatchNorm1d -> ReLU -> Upsample(size=T_i, linear)]
                                                     T_video -> T_1 -> T_2 -> T_env
      -> 2-layer bidirectional LSTM                  (B, T_env, 2 * lstm_hidden)
      -> Linear -> (B, T_env, 64) class logits

The three upsample sizes are a geometric progression from the video rate to the envelope rate:
T_i = round(T_video * (T_env / T_video) ** (i / 3)) for i = 1, 2, and T_3 = T_env exactly
(300 -> 483 -> 777 -> 1250 for 10 s; 60 -> 97 -> 155 -> 250 for 2 s).
T_env is derived from the input length: ``n_env_frames(T_video / fps)`` with the SPEC envelope rate
(125 frames/s, ``samples // hop``), so any length works; the config's ``duration`` is the training
window, and :func:`predict_windows` covers clips of any length with overlapping windows.

Example::

    >>> import torch
    >>> from folai.timing.model import VideoEnvelopeNet, model_config
    >>> cfg = model_config("tiny", input_dim=512)
    >>> net = VideoEnvelopeNet(cfg).eval()
    >>> net(torch.zeros(2, cfg.n_video_frames, 512)).shape        # (B, T_env, classes)
    torch.Size([2, 250, 64])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from ..envelope import EnvelopeConfig
from ..errors import FolaiError

__all__ = ["VideoEnvelopeConfig", "VideoEnvelopeNet", "model_config", "PRESETS", "predict_windows"]


@dataclass(frozen=True)
class VideoEnvelopeConfig:
    """Sizes of :class:`VideoEnvelopeNet`; lengths are derived from ``duration``.

    duration:     training window in seconds (10 for Greatest Hits, 2 for Walking The Maps).
    fps:          video feature rate (30 frames/s).
    input_dim:    feature size per video frame (1024 = TC-CLIP RGB 512 + flow 512).
    conv_channels, kernel_size: the three Conv1d layers.
    lstm_hidden:  hidden size per direction of the 2-layer BiLSTM.
    n_classes:    mu-law classes (64 for mu = 127).
    env_sr, env_hop: the SPEC envelope (16 kHz, hop 128 -> 125 frames/s).
    """

    duration: float = 10.0
    fps: float = 30.0
    input_dim: int = 1024
    conv_channels: int = 512
    kernel_size: int = 5
    lstm_hidden: int = 512
    lstm_layers: int = 2
    dropout: float = 0.0
    n_classes: int = 64
    env_sr: int = 16000
    env_hop: int = 128

    def __post_init__(self) -> None:
        if self.duration <= 0 or self.fps <= 0:
            raise FolaiError(f"model duration and fps must be > 0, got duration={self.duration}, fps={self.fps}")
        if self.kernel_size % 2 == 0:
            raise FolaiError(f"conv kernel_size must be odd to keep the length, got {self.kernel_size}")

    @property
    def env_rate(self) -> float:
        return self.env_sr / self.env_hop

    @property
    def n_video_frames(self) -> int:
        """Video frames in one window (300 for 10 s at 30 fps)."""
        return int(round(self.duration * self.fps))

    @property
    def n_env_frames(self) -> int:
        """Envelope frames in one window (1250 for 10 s)."""
        return self.env_frames_for(self.n_video_frames)

    def env_frames_for(self, n_video_frames: int) -> int:
        """Envelope frames for ``n_video_frames`` of video (samples // hop, as the envelope)."""
        seconds = n_video_frames / self.fps
        return EnvelopeConfig(sr=self.env_sr, hop_length=self.env_hop).n_frames(seconds)

    def upsample_sizes(self, n_video_frames: int | None = None) -> list[int]:
        """The three Upsample output lengths (geometric, last = envelope frames)."""
        tv = self.n_video_frames if n_video_frames is None else n_video_frames
        te = self.env_frames_for(tv)
        ratio = te / tv
        return [int(round(tv * ratio ** (1 / 3))), int(round(tv * ratio ** (2 / 3))), te]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VideoEnvelopeConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise FolaiError(f"unknown model config keys {sorted(unknown)}; known keys: {sorted(names)}")
        return cls(**d)


PRESETS: dict[str, dict[str, Any]] = {
    # the paper's Greatest Hits setting: 10 s windows, 300 -> 1250 frames
    "10s": dict(duration=10.0),
    # the paper's Walking The Maps fine-tune: 2 s windows, 60 -> 250 frames
    "2s": dict(duration=2.0),
    # a few thousand parameters: tests and the CPU benchmark
    "tiny": dict(duration=2.0, conv_channels=32, kernel_size=5, lstm_hidden=32),
}


def model_config(name: str = "10s", **overrides: Any) -> VideoEnvelopeConfig:
    """A named preset ("10s", "2s", "tiny") with ``overrides``; raises on an unknown name."""
    if name not in PRESETS:
        raise FolaiError(f"unknown model preset '{name}'; choose one of: {', '.join(PRESETS)}")
    return VideoEnvelopeConfig(**{**PRESETS[name], **overrides})


class VideoEnvelopeNet(nn.Module):
    """Video features (B, T_video, D) -> envelope class logits (B, T_env, n_classes)."""

    def __init__(self, config: VideoEnvelopeConfig):
        super().__init__()
        self.config = config
        c = config
        chans = [c.input_dim, c.conv_channels, c.conv_channels, c.conv_channels]
        self.convs = nn.ModuleList(
            nn.Conv1d(chans[i], chans[i + 1], c.kernel_size, padding=c.kernel_size // 2) for i in range(3)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(c.conv_channels) for _ in range(3))
        self.lstm = nn.LSTM(
            c.conv_channels,
            c.lstm_hidden,
            num_layers=c.lstm_layers,
            batch_first=True,
            bidirectional=True,
            dropout=c.dropout if c.lstm_layers > 1 else 0.0,
        )
        self.head = nn.Linear(2 * c.lstm_hidden, c.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.config.input_dim:
            raise ValueError(f"expected features (B, T, {self.config.input_dim}), got {tuple(x.shape)}")
        sizes = self.config.upsample_sizes(x.shape[1])
        h = x.transpose(1, 2)  # (B, D, T_video)
        for conv, norm, size in zip(self.convs, self.norms, sizes):
            h = torch.relu(norm(conv(h)))
            h = nn.functional.interpolate(h, size=size, mode="linear", align_corners=False)  # Upsample
        h = h.transpose(1, 2)  # (B, T_env, C)
        h, _ = self.lstm(h)  # (B, T_env, 2H)
        return self.head(h)  # (B, T_env, n_classes)


@torch.no_grad()
def predict_windows(
    model: VideoEnvelopeNet,
    features: torch.Tensor | np.ndarray,
    overlap: float = 0.5,
    batch_size: int = 8,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Class probabilities for a clip of any length by overlapping windows of the training length.

    features: (T_video, D). Returns (T_env, n_classes) float32 probabilities on the CPU, where
    T_env = ``config.env_frames_for(T_video)``. Windows of ``config.n_video_frames`` frames advance
    by ``(1 - overlap)`` of a window; overlapping outputs are averaged with a triangular weight so
    that window edges (where the BiLSTM has least context) count least. A clip shorter than one
    window is zero-padded to a window and the output cut.
    """
    cfg = model.config
    feats = torch.as_tensor(np.asarray(features) if not torch.is_tensor(features) else features).float()
    if feats.ndim != 2 or feats.shape[1] != cfg.input_dim:
        raise FolaiError(
            f"features must be (frames, {cfg.input_dim}) for this checkpoint, got {tuple(feats.shape)}; "
            "extract them with the encoder the checkpoint was trained on"
        )
    if not 0.0 <= overlap < 1.0:
        raise FolaiError(f"window overlap must be in [0, 1), got {overlap}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    tv_total = feats.shape[0]
    te_total = cfg.env_frames_for(tv_total)
    W, We = cfg.n_video_frames, cfg.n_env_frames
    hop = max(1, int(round(W * (1.0 - overlap))))
    starts = list(range(0, max(1, tv_total - W + 1), hop))
    if tv_total > W and starts[-1] + W < tv_total:
        starts.append(tv_total - W)
    windows = []
    for s in starts:
        w = feats[s : s + W]
        if w.shape[0] < W:
            w = torch.cat([w, w.new_zeros(W - w.shape[0], w.shape[1])])
        windows.append(w)
    ramp = torch.minimum(torch.arange(We) + 1.0, We - torch.arange(We).float()).float()
    ramp = ramp / ramp.max()
    acc = torch.zeros(max(te_total, We), cfg.n_classes)
    wsum = torch.zeros(max(te_total, We), 1)
    was_training = model.training
    model.eval()
    try:
        for b in range(0, len(windows), batch_size):
            batch = torch.stack(windows[b : b + batch_size]).to(device)
            probs = model(batch).softmax(-1).float().cpu()  # (b, We, C)
            for j, p in enumerate(probs):
                s = starts[b + j]
                e0 = int(round(s * cfg.env_rate / cfg.fps))
                e1 = min(e0 + We, acc.shape[0])
                acc[e0:e1] += p[: e1 - e0] * ramp[: e1 - e0, None]
                wsum[e0:e1] += ramp[: e1 - e0, None]
    finally:
        model.train(was_training)
    out = acc / wsum.clamp_min(1e-8)
    return out[:te_total]


def n_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))
