"""Spectrogram front ends whose parameters carry the names the published PANNs / HTSAT
checkpoints use (``spectrogram_extractor.stft.conv_real.weight``, ``...conv_imag.weight``,
``logmel_extractor.melW``): the STFT is a strided Conv1d with windowed DFT kernels, the mel
filter bank a matrix (librosa's Slaney mel filters), log power in dB with ``amin``/``ref``.
The values are rebuilt here from the formulas and then overwritten by the checkpoint's.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class STFT(nn.Module):
    """(B, N) -> real, imag: (B, 1, frames, n_fft // 2 + 1); centred, hann window."""

    def __init__(self, n_fft: int, hop_length: int, pad_mode: str = "reflect"):
        super().__init__()
        self.n_fft, self.hop_length, self.pad_mode = n_fft, hop_length, pad_mode
        bins = n_fft // 2 + 1
        n = np.arange(n_fft)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)  # periodic hann
        ang = -2 * np.pi * np.outer(n, np.arange(bins)) / n_fft  # (n_fft, bins)
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop_length, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop_length, bias=False)
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.tensor((np.cos(ang) * window[:, None]).T[:, None, :], dtype=torch.float32))
            self.conv_imag.weight.copy_(torch.tensor((np.sin(ang) * window[:, None]).T[:, None, :], dtype=torch.float32))
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor):
        x = x[:, None, :]
        pad = self.n_fft // 2
        mode = self.pad_mode if x.shape[-1] > pad else "constant"
        x = F.pad(x, (pad, pad), mode=mode)
        real = self.conv_real(x)[:, None].transpose(2, 3)
        imag = self.conv_imag(x)[:, None].transpose(2, 3)
        return real, imag


class Spectrogram(nn.Module):
    """(B, N) -> power spectrogram (B, 1, frames, n_fft // 2 + 1)."""

    def __init__(self, n_fft: int, hop_length: int, pad_mode: str = "reflect"):
        super().__init__()
        self.stft = STFT(n_fft, hop_length, pad_mode)

    def forward(self, x):
        real, imag = self.stft(x)
        return real**2 + imag**2


class LogmelFilterBank(nn.Module):
    """Power spectrogram (..., bins) -> log-mel in dB (..., n_mels); no top_db clipping."""

    def __init__(self, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, amin: float = 1e-10, ref: float = 1.0):
        super().__init__()
        import librosa

        self.amin, self.ref = amin, ref
        mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).T  # (bins, n_mels)
        self.melW = nn.Parameter(torch.tensor(mel, dtype=torch.float32), requires_grad=False)

    def forward(self, spec):
        mel = torch.matmul(spec, self.melW)
        db = 10.0 * torch.log10(torch.clamp(mel, min=self.amin))
        return db - 10.0 * float(np.log10(max(self.amin, self.ref)))
