"""VGGish (Hershey et al. 2017) as used by the FAVD toolkit (PEAVS / video_features).

Input: mono waveform, resampled to 16 kHz. Front end (numpy, as the reference): periodic-Hann
STFT magnitude with 25 ms windows (400 samples), 10 ms hop, FFT size 512, no padding; HTK-mel
matrix of 64 bands over 125-7500 Hz; ``log(mel + 0.01)``; non-overlapping examples of 96 frames
(0.96 s). Network: VGG features + 3 fully connected layers -> 128-d per example, after the last
ReLU. The FAVD toolkit leaves the PCA/quantisation post-processor off; ``postprocess=True``
applies it when the PCA parameters are in the checkpoint (``pproc.pca_eigen_vectors``,
``pproc.pca_means``).

Parameter names follow ``vggish-10086976.pth`` (``features.N.*``, ``embeddings.N.*``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .base import AudioEmbedder, checkpoint_identity, load_state_dict, load_strict, resolve_checkpoint

SR = 16000
WIN, HOP, NFFT = 400, 160, 512
N_MELS, FMIN, FMAX = 64, 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE = 96


def _hz_to_mel(f):
    return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_matrix(n_mels=N_MELS, n_bins=NFFT // 2 + 1, sr=SR, fmin=FMIN, fmax=FMAX) -> np.ndarray:
    """(n_bins, n_mels) triangular HTK-mel weights (magnitude spectrogram rows @ matrix)."""
    bins_mel = _hz_to_mel(np.linspace(0.0, sr / 2.0, n_bins))
    edges = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    lo, ce, hi = edges[:-2], edges[1:-1], edges[2:]
    up = (bins_mel[:, None] - lo[None]) / (ce - lo)[None]
    down = (hi[None] - bins_mel[:, None]) / (hi - ce)[None]
    w = np.maximum(0.0, np.minimum(up, down))
    w[0, :] = 0.0
    return w


def log_mel_examples(y: np.ndarray) -> np.ndarray:
    """16 kHz mono (N,) -> (n_examples, 96, 64) log-mel patches (none if shorter than 0.975 s)."""
    y = np.asarray(y, dtype=np.float64)
    if y.shape[0] < WIN:
        return np.zeros((0, EXAMPLE, N_MELS), np.float32)
    n_frames = 1 + (y.shape[0] - WIN) // HOP
    idx = np.arange(WIN)[None] + HOP * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi / WIN * np.arange(WIN))
    mag = np.abs(np.fft.rfft(y[idx] * window, NFFT))
    logmel = np.log(mag @ mel_matrix() + LOG_OFFSET)
    n_ex = 0 if logmel.shape[0] < EXAMPLE else 1 + (logmel.shape[0] - EXAMPLE) // EXAMPLE
    if n_ex == 0:
        return np.zeros((0, EXAMPLE, N_MELS), np.float32)
    return np.stack([logmel[i * EXAMPLE:(i + 1) * EXAMPLE] for i in range(n_ex)]).astype(np.float32)


@dataclass(frozen=True)
class VGGishConfig:
    channels: tuple = (64, 128, 256, 256, 512, 512)
    hidden: int = 4096
    embedding: int = 128

    @classmethod
    def tiny(cls) -> "VGGishConfig":
        return cls(channels=(4, 4, 8, 8, 8, 8), hidden=16, embedding=8)


class Postprocessor(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.pca_eigen_vectors = nn.Parameter(torch.eye(dim), requires_grad=False)
        self.pca_means = nn.Parameter(torch.zeros(dim, 1), requires_grad=False)

    def forward(self, x):
        pca = (self.pca_eigen_vectors @ (x.t() - self.pca_means)).t()
        return torch.round((torch.clamp(pca, -2.0, 2.0) + 2.0) * (255.0 / 4.0))


class VGGish(nn.Module):
    """(B, 1, 96, 64) log-mel patches -> (B, 128) embeddings."""

    def __init__(self, cfg: VGGishConfig = VGGishConfig(), postprocess: bool = False):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        plan = [c[0], "M", c[1], "M", c[2], c[3], "M", c[4], c[5], "M"]
        layers, cin = [], 1
        for v in plan:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(c[5] * 4 * 6, cfg.hidden), nn.ReLU(True),
            nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(True),
            nn.Linear(cfg.hidden, cfg.embedding), nn.ReLU(True),
        )
        if postprocess:
            self.pproc = Postprocessor(cfg.embedding)

    def forward(self, x):
        assert x.ndim == 4 and x.shape[1:] == (1, EXAMPLE, N_MELS), f"expected (B, 1, 96, 64), got {tuple(x.shape)}"
        x = self.features(x)                                   # (B, C, 6, 4)
        x = x.transpose(1, 3).transpose(1, 2).reshape(x.shape[0], -1)  # channels last, as the TF original
        x = self.embeddings(x)
        if hasattr(self, "pproc"):
            x = self.pproc(x)
        return x


class VGGishEmbedder(AudioEmbedder):
    name = "vggish"
    sample_rate = SR

    def key_options(self):
        return {"pca": hasattr(self.model, "pproc")}

    def embed_audio(self, y, sr):
        import torch

        from ..audio import resample

        y = np.asarray(y, dtype=np.float32)
        y = y.mean(axis=0) if y.ndim == 2 else y
        ex = log_mel_examples(resample(y, sr, SR))
        if ex.shape[0] == 0:
            return np.zeros((0, self.model.cfg.embedding), np.float32)
        with torch.inference_mode():
            out = self.model(torch.from_numpy(ex)[:, None].to(self.device))
        return out.float().cpu().numpy()


def load(weights: str, device: str = "cpu", config: VGGishConfig | None = None, postprocess: bool = False) -> VGGishEmbedder:
    path = resolve_checkpoint(weights, "VGGish")
    sd = load_state_dict(path, "VGGish")
    has_pca = any(k.startswith("pproc.") for k in sd)
    model = VGGish(config or VGGishConfig(), postprocess=postprocess and has_pca)
    load_strict(model, sd, "VGGish", ignore=() if (postprocess and has_pca) else ("pproc.",))
    return VGGishEmbedder(model, device, checkpoint_identity(path))
