"""PANNs Wavegram-Logmel-Cnn14 (Kong et al. 2020) as used for FAD-P (fadtk "panns-wavegram-logmel").

Input: mono waveform at 32 kHz. Output per clip: the 2048-d ``embedding`` (after ``fc1`` and ReLU),
one row per file, as fadtk takes it. Parameter names follow the published checkpoint
``Wavegram_Logmel_Cnn14_mAP=0.439.pth`` (its ``"model"`` state dict), which loads strictly.

``PannsConfig.tiny()`` builds the same architecture at small width for tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import AudioEmbedder, checkpoint_identity, load_state_dict, load_strict, resolve_checkpoint
from .frontends import LogmelFilterBank, Spectrogram


@dataclass(frozen=True)
class PannsConfig:
    sample_rate: int = 32000
    window_size: int = 1024
    hop_size: int = 320
    mel_bins: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    classes_num: int = 527
    widths: tuple = (64, 128, 256, 512, 1024, 2048)   # conv_block1..6 outputs
    pre_widths: tuple = (64, 64, 128, 128)            # pre_conv0, pre_block1..3

    @classmethod
    def tiny(cls) -> "PannsConfig":
        return cls(widths=(4, 8, 8, 8, 8, 16), pre_widths=(4, 4, 8, 32), classes_num=5)


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x, pool_size=(2, 2)):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool_size)


class ConvPreWavBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv1d(cout, cout, 3, padding=2, dilation=2, bias=False)
        self.bn1 = nn.BatchNorm1d(cout)
        self.bn2 = nn.BatchNorm1d(cout)

    def forward(self, x, pool_size: int):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool1d(x, kernel_size=pool_size)


class WavegramLogmelCnn14(nn.Module):
    """(B, N) waveform at 32 kHz -> dict(embedding (B, 2048), clipwise_output (B, 527))."""

    def __init__(self, cfg: PannsConfig = PannsConfig()):
        super().__init__()
        self.cfg = cfg
        p0, p1, p2, p3 = cfg.pre_widths
        w = cfg.widths
        if p3 % 32:
            raise ValueError("the last wavegram width must be a multiple of 32 (it is folded into 32 frequency rows)")
        self.pre_conv0 = nn.Conv1d(1, p0, kernel_size=11, stride=5, padding=5, bias=False)
        self.pre_bn0 = nn.BatchNorm1d(p0)
        self.pre_block1 = ConvPreWavBlock(p0, p1)
        self.pre_block2 = ConvPreWavBlock(p1, p2)
        self.pre_block3 = ConvPreWavBlock(p2, p3)
        self.pre_block4 = ConvBlock(p3 // 32, w[0])
        self.spectrogram_extractor = Spectrogram(cfg.window_size, cfg.hop_size)
        self.logmel_extractor = LogmelFilterBank(cfg.sample_rate, cfg.window_size, cfg.mel_bins, cfg.fmin, cfg.fmax)
        self.bn0 = nn.BatchNorm2d(cfg.mel_bins)
        self.conv_block1 = ConvBlock(1, w[0])
        self.conv_block2 = ConvBlock(2 * w[0], w[1])
        self.conv_block3 = ConvBlock(w[1], w[2])
        self.conv_block4 = ConvBlock(w[2], w[3])
        self.conv_block5 = ConvBlock(w[3], w[4])
        self.conv_block6 = ConvBlock(w[4], w[5])
        self.fc1 = nn.Linear(w[5], w[5])
        self.fc_audioset = nn.Linear(w[5], cfg.classes_num)

    def forward(self, wave: torch.Tensor) -> dict:
        assert wave.ndim == 2, f"expected (B, N) waveforms, got {tuple(wave.shape)}"
        # wavegram branch: (B, N) -> (B, w0, frames/2, 16)
        a = F.relu(self.pre_bn0(self.pre_conv0(wave[:, None, :])))
        a = self.pre_block1(a, 4)
        a = self.pre_block2(a, 4)
        a = self.pre_block3(a, 4)
        a = a.reshape(a.shape[0], -1, 32, a.shape[-1]).transpose(2, 3)
        a = self.pre_block4(a, pool_size=(2, 1))
        # log-mel branch: (B, 1, frames, mel) -> (B, w0, frames/2, mel/2)
        x = self.logmel_extractor(self.spectrogram_extractor(wave))
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        x = self.conv_block1(x, (2, 2))
        t = min(x.shape[2], a.shape[2])  # the two branches can differ by a frame on odd lengths
        x = torch.cat((x[:, :, :t], a[:, :, :t]), dim=1)
        for blk in (self.conv_block2, self.conv_block3, self.conv_block4, self.conv_block5):
            x = blk(x, (2, 2))
        x = self.conv_block6(x, (1, 1))
        x = x.mean(dim=3)
        x = x.max(dim=2).values + x.mean(dim=2)
        emb = F.relu(self.fc1(x))
        return {"embedding": emb, "clipwise_output": torch.sigmoid(self.fc_audioset(emb))}


MIN_SAMPLES = 32000  # the conv stack needs ~1 s at 32 kHz (6 halvings of the time axis)


class PannsEmbedder(AudioEmbedder):
    name = "panns-wavegram-logmel"

    def __init__(self, model: WavegramLogmelCnn14, device="cpu", identity="random"):
        self.sample_rate = model.cfg.sample_rate
        super().__init__(model, device, identity)

    def _forward(self, wave):
        if wave.shape[-1] < MIN_SAMPLES:
            wave = F.pad(wave, (0, MIN_SAMPLES - wave.shape[-1]))
        return self.model(wave)["embedding"]  # (1, 2048)


def load(weights: str, device: str = "cpu", config: PannsConfig | None = None) -> PannsEmbedder:
    path = resolve_checkpoint(weights, "PANNs Wavegram-Logmel-Cnn14")
    model = WavegramLogmelCnn14(config or PannsConfig())
    load_strict(model, load_state_dict(path, "PANNs Wavegram-Logmel-Cnn14", subkey="model"), "PANNs Wavegram-Logmel-Cnn14")
    return PannsEmbedder(model, device, checkpoint_identity(path))
