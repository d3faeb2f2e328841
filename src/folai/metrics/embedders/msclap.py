"""Microsoft CLAP 2023 audio encoder (HTSAT + projection) as used for FAD-C (fadtk "clap-2023").

Architecture (msclap ``HTSATWrapper`` with its ``config`` module, and ``AudioEncoder``):
log-mel front end (STFT 1024 / hop 320, 64 mel bands; filters stored in the checkpoint), BatchNorm
over mel bands, the spectrogram (at most 1024 frames) bicubically stretched to 1024 frames and
folded into a 256x256 image (4 time slices stacked along frequency), an HTSAT Swin transformer
(patch 4, embed 96, depths 2-2-6-2, heads 4-8-16-32, window 8, token-semantic head), the mean of
the final normed tokens (768-d "latent_output"), then ``Projection`` (Linear 768->1024, GELU,
Linear 1024->1024, residual, LayerNorm) -> 1024-d.

Input: mono audio resampled to 44.1 kHz (msclap's 2023 ``sampling_rate``). FAD-C rows follow
fadtk: 7 s windows every 1 s, zero-padded to 7 s, one 1024-d row per window.

Weights: ``CLAP_weights_2023.pth``; its ``"model"`` state dict's ``audio_encoder.*`` keys load
strictly into this module (text-encoder keys are not used).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import AudioEmbedder, checkpoint_identity, load_state_dict, load_strict, resolve_checkpoint
from .frontends import LogmelFilterBank, Spectrogram


@dataclass(frozen=True)
class HTSATConfig:
    spec_size: int = 256
    mel_bins: int = 64
    window_size_fft: int = 1024
    hop_size: int = 320
    front_sr: int = 32000        # msclap's HTSAT config builds its mel filters for 32 kHz
    fmin: float = 50.0
    fmax: float = 14000.0
    patch_size: int = 4
    embed_dim: int = 96
    depths: tuple = (2, 2, 6, 2)
    num_heads: tuple = (4, 8, 16, 32)
    window: int = 8
    mlp_ratio: float = 4.0
    num_classes: int = 527
    out_emb: int = 768
    d_proj: int = 1024
    sample_rate: int = 44100
    duration_s: int = 7

    @classmethod
    def tiny(cls) -> "HTSATConfig":
        return cls(embed_dim=8, depths=(1, 1), num_heads=(1, 2), num_classes=5, out_emb=16, d_proj=12)


def _partition(x, w):
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def _reverse(win, w, h, wd):
    b = win.shape[0] // ((h // w) * (wd // w))
    x = win.view(b, h // w, wd // w, w, w, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, -1)


class WindowAttention(nn.Module):
    def __init__(self, dim, window, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * window - 1) + rel[..., 1])
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.window = window

    def forward(self, x, mask=None):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1)[None]
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b // nw, nw, self.heads, n, n) + mask[None, :, None]
            attn = attn.view(-1, self.heads, n, n)
        attn = attn.softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim, res, heads, window, shift, mlp_ratio):
        super().__init__()
        self.res = res
        if min(res) <= window:
            shift, window = 0, min(res)
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = None
        if shift > 0:
            h, w = res
            img = torch.zeros(1, h, w, 1)
            cnt = 0
            for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                    img[:, hs, ws, :] = cnt
                    cnt += 1
            mw = _partition(img, window).squeeze(-1)
            mask = mw[:, None, :] - mw[:, :, None]
            mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
        self.register_buffer("attn_mask", mask)

    def forward(self, x):
        h, w = self.res
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
        y = self.attn(_partition(y, self.window), self.attn_mask)
        y = _reverse(y.view(-1, self.window, self.window, c), self.window, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, res, dim):
        super().__init__()
        self.res = res
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x):
        h, w = self.res
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class BasicLayer(nn.Module):
    def __init__(self, dim, res, depth, heads, window, mlp_ratio, downsample):
        super().__init__()
        self.blocks = nn.ModuleList(
            [SwinBlock(dim, res, heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio) for i in range(depth)]
        )
        self.downsample = PatchMerging(res, dim) if downsample else None

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(1, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class HTSAT(nn.Module):
    """(B, N) waveform -> (B, embed_dim * 2^(L-1)) latent output (mean of the final tokens)."""

    def __init__(self, cfg: HTSATConfig):
        super().__init__()
        self.cfg = cfg
        self.freq_ratio = cfg.spec_size // cfg.mel_bins
        self.spectrogram_extractor = Spectrogram(cfg.window_size_fft, cfg.hop_size)
        self.logmel_extractor = LogmelFilterBank(cfg.front_sr, cfg.window_size_fft, cfg.mel_bins, cfg.fmin, cfg.fmax)
        self.bn0 = nn.BatchNorm2d(cfg.mel_bins)
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.embed_dim)
        grid = cfg.spec_size // cfg.patch_size
        self.layers = nn.ModuleList()
        for i, (d, h) in enumerate(zip(cfg.depths, cfg.num_heads)):
            res = (grid // 2**i, grid // 2**i)
            self.layers.append(BasicLayer(cfg.embed_dim * 2**i, res, d, h, cfg.window, cfg.mlp_ratio, i < len(cfg.depths) - 1))
        self.num_features = cfg.embed_dim * 2 ** (len(cfg.depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)
        sf = cfg.spec_size // 2 ** (len(cfg.depths) - 1) // cfg.patch_size // self.freq_ratio
        self.tscam_conv = nn.Conv2d(self.num_features, cfg.num_classes, kernel_size=(sf, 3), padding=(0, 1))
        self.head = nn.Linear(cfg.num_classes, cfg.num_classes)

    def to_image(self, x):
        """(B, 1, T, F) log-mel -> (B, 1, spec, spec): stretch T to spec*ratio, fold time into frequency."""
        b, c, t, f = x.shape
        tt, tf = self.cfg.spec_size * self.freq_ratio, self.cfg.spec_size // self.freq_ratio
        if t > tt or f > tf:
            raise ValueError(f"spectrogram {t}x{f} is larger than the HTSAT input {tt}x{tf}; use shorter windows")
        if t < tt:
            x = F.interpolate(x, (tt, f), mode="bicubic", align_corners=True)
        if f < tf:
            x = F.interpolate(x, (x.shape[2], tf), mode="bicubic", align_corners=True)
        x = x.permute(0, 1, 3, 2)
        x = x.reshape(b, c, x.shape[2], self.freq_ratio, x.shape[3] // self.freq_ratio).permute(0, 1, 3, 2, 4)
        return x.reshape(b, c, -1, x.shape[-1])

    def forward(self, wave):
        x = self.logmel_extractor(self.spectrogram_extractor(wave))   # (B, 1, T, mel)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        x = self.patch_embed(self.to_image(x))
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).mean(dim=1)   # latent_output: average over all tokens


class Projection(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)

    def forward(self, x):
        e1 = self.linear1(x)
        return self.layer_norm(e1 + self.linear2(F.gelu(e1)))


class _Base(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.htsat = HTSAT(cfg)


class MSClapAudioEncoder(nn.Module):
    """(B, N) 44.1 kHz waveform -> (B, 1024) projected CLAP audio embedding."""

    def __init__(self, cfg: HTSATConfig = HTSATConfig()):
        super().__init__()
        self.cfg = cfg
        self.base = _Base(cfg)
        self.projection = Projection(self.base.htsat.num_features, cfg.d_proj)

    def forward(self, wave):
        return self.projection(self.base.htsat(wave))


class MSClapEmbedder(AudioEmbedder):
    name = "msclap-2023"

    def __init__(self, model: MSClapAudioEncoder, device="cpu", identity="random"):
        self.sample_rate = model.cfg.sample_rate
        super().__init__(model, device, identity)

    def key_options(self):
        return {"window_s": self.model.cfg.duration_s, "hop_s": 1}

    def _forward(self, wave):
        n = self.model.cfg.duration_s * self.sample_rate
        chunks = []
        for start in range(0, wave.shape[-1], self.sample_rate):
            c = wave[:, start:start + n]
            chunks.append(F.pad(c, (0, n - c.shape[-1])))
        return torch.cat([self.model(c) for c in chunks])  # (n_windows, 1024)


def load(weights: str, device: str = "cpu", config: HTSATConfig | None = None) -> MSClapEmbedder:
    path = resolve_checkpoint(weights, "Microsoft CLAP 2023")
    sd = load_state_dict(path, "Microsoft CLAP 2023", subkey="model")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    sd = {k[len("audio_encoder."):]: v for k, v in sd.items() if k.startswith("audio_encoder.")}
    model = MSClapAudioEncoder(config or HTSATConfig())
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = v
    load_strict(model, sd, "Microsoft CLAP 2023 audio encoder")
    return MSClapEmbedder(model, device, checkpoint_identity(path))
