"""TC-CLIP vision encoder (Temporally Contextualized CLIP, Kim et al., ECCV 2024), ViT-B/16.

A re-implementation of the vision side of the official code (github.com/naver-ai/tc-clip,
``clip/vision_transformer_tc.py``, ``clip/transformer_blocks_tc.py``, ``tome/merge.py``), written
from its description and checked against it numerically (``benchmarks/compare_tcclip_official.py``).

How it works, per window of T frames (T = 16 in the official checkpoints):

1. Each frame is patchified (Conv2d 16x16), gets a class token and the (spatial) positional
   embedding; all frames' tokens are concatenated: (B, T*N, D) with N = 1 + patches.
2. Every block runs *temporally contextualised* attention: the queries of frame t attend to the
   keys of frame t (local) and to k context tokens shared by all frames (global; none in the first
   block), with a learned per-head local/global bias (blocks >= 1).
3. After the attention of each block, the context tokens for the next block are summarised:
   the ``int(patches * seed_token_a)`` patches per frame with the highest class-token attention
   (head mean) are gathered from all frames and merged by ToMe bipartite soft matching (size-
   weighted means) down to k tokens; they pass the block's MLP with the frame tokens.
4. The last block's class tokens pass ``ln_post`` and ``proj``: one 512-d feature per frame.

Parameter names equal the official ones (``conv1``, ``class_embedding``, ``positional_embedding``,
``ln_pre``, ``transformer.resblocks.{i}.attn.{q,k,v,out}_proj``,
``transformer.resblocks.{i}.attn.local_global_bias_table``, ``...ln_1``, ``...mlp.c_fc``,
``...mlp.c_proj``, ``...ln_2``, ``ln_post``, ``proj``), so loading a checkpoint is a prefix strip:
see :data:`CHECKPOINT_PREFIXES` and :func:`load_tcclip_state_dict`.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import FolaiError, WeightsUnavailableError

log = logging.getLogger(__name__)

__all__ = ["TCCLIPConfig", "TCCLIPVision", "load_tcclip_state_dict", "tcclip_from_checkpoint", "CHECKPOINT_PREFIXES"]


@dataclass(frozen=True)
class TCCLIPConfig:
    """Sizes of the TC-CLIP vision tower (defaults: ViT-B/16 as in the official checkpoints)."""

    image_size: int = 224
    patch_size: int = 16
    width: int = 768
    layers: int = 12
    heads: int = 12
    output_dim: int = 512
    num_frames: int = 16  # temporal window T of the official configs (num_frames: 16)
    context_tokens: int = 96  # k (context_token_k)
    seed_token_a: float = 0.3  # fraction of patches per frame taken as seeds
    tome_r: int = 100  # tokens merged per ToMe step
    local_global_bias: bool = True

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def n_seeds(self) -> int:
        return int(self.n_patches * self.seed_token_a)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


class _LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (as CLIP's), returned in the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def _tome_schedule(start: int, final: int, r: int) -> list[int]:
    """Tokens removed at each merge step to go from ``start`` to ``final`` tokens, at most ``r`` and
    at most half of the remaining tokens per step (ToMe's bipartite matching limit)."""
    steps: list[int] = []
    cnt = start
    for _ in range(max(0, (start - final) // r)):
        steps.append(min(r, cnt // 2))
        cnt -= steps[-1]
    while cnt > final:
        steps.append(min(cnt - final, cnt // 2))
        cnt -= steps[-1]
    return steps


def _bipartite_merge(x: torch.Tensor, size: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One ToMe step: split tokens alternately into sets A (even) and B (odd); merge the r tokens of A
    most similar (cosine) to their best partner in B into that partner, averaging by token size.

    x: (B, L, D); size: (B, L, 1). Returns the merged tokens (B, L - r, D) ordered as
    [unmerged A tokens (by decreasing similarity rank), B tokens] and their sizes.
    """
    L = x.shape[1]
    r = min(r, L // 2)
    if r <= 0:
        return x, size
    with torch.no_grad():
        m = x / x.norm(dim=-1, keepdim=True)
        sim = m[:, ::2] @ m[:, 1::2].transpose(1, 2)  # (B, |A|, |B|)
        best, partner = sim.max(dim=-1)  # (B, |A|)
        order = best.argsort(dim=-1, descending=True)[..., None]  # (B, |A|, 1)
        keep_idx, move_idx = order[:, r:], order[:, :r]
        dest_idx = partner[..., None].gather(1, move_idx)  # (B, r, 1)

    def merge(t: torch.Tensor) -> torch.Tensor:
        a, b = t[:, ::2], t[:, 1::2]
        c = t.shape[-1]
        kept = a.gather(1, keep_idx.expand(-1, -1, c))
        moved = a.gather(1, move_idx.expand(-1, -1, c))
        b = b.scatter_reduce(1, dest_idx.expand(-1, -1, c), moved, reduce="sum")
        return torch.cat([kept, b], dim=1)

    merged = merge(x * size)
    new_size = merge(size)
    return merged / new_size, new_size


class TCAttention(nn.Module):
    """Per-frame attention over [own frame tokens, shared context tokens] with local/global bias."""

    def __init__(self, cfg: TCCLIPConfig, first: bool):
        super().__init__()
        d = cfg.width
        self.cfg = cfg
        self.first = first
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        if not first and cfg.local_global_bias:
            # (heads, 1, 2): column 0 biases local keys, column 1 the context keys
            self.local_global_bias_table = nn.Parameter(torch.zeros(cfg.heads, 1, 2))
            nn.init.trunc_normal_(self.local_global_bias_table, std=0.02)
        else:
            self.local_global_bias_table = None

    def forward(self, x: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T*N [+ k], D) -> (attended frame tokens (B, T*N, D), seed index (B, T, n_seeds))."""
        cfg = self.cfg
        B, _, D = x.shape
        N = 1 + cfg.n_patches
        TN, BT, H = T * N, B * T, cfg.heads
        hd = D // H
        q = self.q_proj(x[:, :TN]).reshape(BT, N, D)
        k = self.k_proj(x)
        v = self.v_proj(x)
        if self.first:
            k, v = k.reshape(BT, N, D), v.reshape(BT, N, D)
        else:
            kc = k[:, TN:].unsqueeze(1).expand(-1, T, -1, -1).reshape(BT, -1, D)
            vc = v[:, TN:].unsqueeze(1).expand(-1, T, -1, -1).reshape(BT, -1, D)
            k = torch.cat([k[:, :TN].reshape(BT, N, D), kc], dim=1)
            v = torch.cat([v[:, :TN].reshape(BT, N, D), vc], dim=1)
        q = q.reshape(BT, N, H, hd).transpose(1, 2)
        k = k.reshape(BT, -1, H, hd).transpose(1, 2)
        v = v.reshape(BT, -1, H, hd).transpose(1, 2)
        attn = (q * hd**-0.5) @ k.transpose(-2, -1)  # (BT, H, N, N [+ k])
        if self.local_global_bias_table is not None:
            nk = attn.shape[-1]
            bias = torch.cat(
                [
                    self.local_global_bias_table[:, :, 0:1].expand(H, 1, N),
                    self.local_global_bias_table[:, :, 1:2].expand(H, 1, nk - N),
                ],
                dim=-1,
            )  # (H, 1, nk)
            attn = attn + bias.unsqueeze(0)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(B, TN, D)
        out = self.out_proj(out)
        # seeds: patches with the highest class-token attention (mean over heads)
        cls_attn = attn[:, :, 0, 1 : 1 + cfg.n_patches].reshape(B, T, H, cfg.n_patches).mean(dim=2)
        seed = cls_attn.topk(cfg.n_seeds, dim=-1, largest=True, sorted=True).indices  # (B, T, s)
        return out, seed


class TCBlock(nn.Module):
    def __init__(self, cfg: TCCLIPConfig, index: int):
        super().__init__()
        d = cfg.width
        self.cfg = cfg
        self.attn = TCAttention(cfg, first=index == 0)
        self.ln_1 = _LayerNorm(d)
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(d, 4 * d)), ("gelu", _QuickGELU()), ("c_proj", nn.Linear(4 * d, d))])
        )
        self.ln_2 = _LayerNorm(d)

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        cfg = self.cfg
        N = 1 + cfg.n_patches
        a, seed = self.attn(self.ln_1(x), T)
        x = x[:, : T * N] + a  # frame tokens; the old context tokens are dropped
        ctx = self._context_tokens(x, seed, T)
        x = torch.cat([x, ctx], dim=1)
        return x + self.mlp(self.ln_2(x))

    def _context_tokens(self, x: torch.Tensor, seed: torch.Tensor, T: int) -> torch.Tensor:
        cfg = self.cfg
        B, _, D = x.shape
        N, P = 1 + cfg.n_patches, cfg.n_patches
        patches = x.reshape(B, T, N, D)[:, :, 1:].reshape(B, T * P, D)
        flat = (seed + torch.arange(T, device=x.device).view(1, T, 1) * P).reshape(B, -1)  # (B, T*s)
        tokens = patches.gather(1, flat.unsqueeze(-1).expand(-1, -1, D))
        size = torch.ones_like(tokens[..., :1])
        for r in _tome_schedule(tokens.shape[1], cfg.context_tokens, cfg.tome_r):
            tokens, size = _bipartite_merge(tokens, size, r)
        return tokens


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _quick_gelu(x)


class _Transformer(nn.Module):
    def __init__(self, cfg: TCCLIPConfig):
        super().__init__()
        self.resblocks = nn.ModuleList(TCBlock(cfg, i) for i in range(cfg.layers))


class TCCLIPVision(nn.Module):
    """TC-CLIP vision tower: (B, T, 3, H, W) normalised frames -> (B, T, output_dim) frame features.

    ``T`` must equal ``config.num_frames`` for checkpoints trained with that window; the encoder
    wrapper (:class:`folai.timing.encoders.TCCLIPEncoder`) cuts longer videos into such windows.
    """

    def __init__(self, config: TCCLIPConfig = TCCLIPConfig()):
        super().__init__()
        c = config
        if c.image_size % c.patch_size:
            raise FolaiError(f"TC-CLIP image_size {c.image_size} must be a multiple of patch_size {c.patch_size}")
        if c.width % c.heads:
            raise FolaiError(f"TC-CLIP width {c.width} must be divisible by heads {c.heads}")
        self.config = c
        scale = c.width**-0.5
        self.conv1 = nn.Conv2d(3, c.width, kernel_size=c.patch_size, stride=c.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(c.width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(c.n_patches + 1, c.width))
        self.ln_pre = _LayerNorm(c.width)
        self.transformer = _Transformer(c)
        self.ln_post = _LayerNorm(c.width)
        self.proj = nn.Parameter(scale * torch.randn(c.width, c.output_dim))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        c = self.config
        if frames.ndim != 5 or frames.shape[2] != 3 or frames.shape[-1] != c.image_size or frames.shape[-2] != c.image_size:
            raise ValueError(f"expected frames (B, T, 3, {c.image_size}, {c.image_size}), got {tuple(frames.shape)}")
        B, T = frames.shape[:2]
        x = self.conv1(frames.reshape(B * T, *frames.shape[2:]))  # (BT, D, g, g)
        x = x.flatten(2).transpose(1, 2)  # (BT, P, D)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # (BT, N, D)
        x = self.ln_pre(x.reshape(B, T * x.shape[1], -1))  # (B, T*N, D)
        for blk in self.transformer.resblocks:
            x = blk(x, T)
        N = 1 + c.n_patches
        cls_tokens = x[:, : T * N].reshape(B, T, N, -1)[:, :, 0]  # (B, T, D)
        return self.ln_post(cls_tokens) @ self.proj  # (B, T, output_dim)


# ----------------------------------------------------------------------------- checkpoints

# Official TC-CLIP checkpoints (``torch.save({"model": state_dict, ...})`` by the training code)
# store the vision tower under these prefixes; the first that matches is stripped. Everything else
# in the file (prompt learner, text encoder, logit scale, optimiser) is not part of the vision
# tower and is ignored on purpose. A plain OpenAI CLIP state dict ("visual." prefix, fused
# ``attn.in_proj_weight``) is also accepted: its q/k/v are split by IN_PROJ_SPLIT.
CHECKPOINT_PREFIXES = ("module.image_encoder.", "image_encoder.", "module.visual.", "visual.", "")
IN_PROJ_SPLIT = {
    "attn.in_proj_weight": ("attn.q_proj.weight", "attn.k_proj.weight", "attn.v_proj.weight"),
    "attn.in_proj_bias": ("attn.q_proj.bias", "attn.k_proj.bias", "attn.v_proj.bias"),
}


def _vision_part(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in CHECKPOINT_PREFIXES:
        if prefix + "conv1.weight" in sd:
            out = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
            break
    else:
        raise WeightsUnavailableError(
            "no TC-CLIP vision tower found in the checkpoint (looked for 'image_encoder.conv1.weight', "
            "'visual.conv1.weight' or 'conv1.weight'); pass an official TC-CLIP .pth file"
        )
    split: dict[str, torch.Tensor] = {}
    for k, v in out.items():
        for fused, parts in IN_PROJ_SPLIT.items():
            if k.endswith(fused):
                for name, chunk in zip(parts, v.chunk(3, dim=0)):
                    split[k[: -len(fused)] + name] = chunk
                break
        else:
            split[k] = v
    return split


def config_from_state_dict(sd: dict[str, torch.Tensor], **overrides: Any) -> TCCLIPConfig:
    """Infer the tower's sizes from a vision state dict (heads = width // 64, as CLIP)."""
    width, _, patch, _ = sd["conv1.weight"].shape
    layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    pos = sd["positional_embedding"]
    if pos.ndim == 3:
        raise FolaiError("checkpoint uses joint spatio-temporal positional embeddings; only 'space' is supported")
    grid = int(round(math.sqrt(pos.shape[0] - 1)))
    lgb = any(k.endswith("local_global_bias_table") for k in sd)
    base = dict(
        image_size=grid * patch,
        patch_size=patch,
        width=width,
        layers=layers,
        heads=max(1, width // 64),
        output_dim=sd["proj"].shape[1],
        local_global_bias=lgb,
    )
    base.update(overrides)
    return TCCLIPConfig(**base)


def load_tcclip_state_dict(model: TCCLIPVision, sd: dict[str, torch.Tensor]) -> None:
    """Load a (possibly prefixed / fused-qkv) state dict strictly into ``model``."""
    vision = _vision_part(sd)
    own = model.state_dict()
    missing = sorted(set(own) - set(vision))
    unexpected = sorted(set(vision) - set(own))
    if missing or unexpected:
        raise WeightsUnavailableError(
            f"TC-CLIP checkpoint does not match the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    bad = [k for k in own if own[k].shape != vision[k].shape]
    if bad:
        raise WeightsUnavailableError(
            f"TC-CLIP checkpoint shapes differ for {bad[:5]}: e.g. {tuple(vision[bad[0]].shape)} vs {tuple(own[bad[0]].shape)}"
        )
    model.load_state_dict({k: v.float() for k, v in vision.items()}, strict=True)


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict inside a TC-CLIP checkpoint (.pth with a 'model' entry, or .safetensors)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsUnavailableError(
            f"TC-CLIP checkpoint not found: {p}; download an official checkpoint (e.g. the zero-shot "
            "K-400 model from github.com/naver-ai/tc-clip) and pass its path"
        )
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    obj = torch.load(str(p), map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsUnavailableError(f"{p} is not a state-dict checkpoint")
    return {k: v for k, v in obj.items() if torch.is_tensor(v)}


def tcclip_from_checkpoint(path: str | Path, **overrides: Any) -> TCCLIPVision:
    """Build a TC-CLIP vision tower with the sizes and weights of ``path``.

    ``overrides`` set what the checkpoint cannot tell (num_frames, context_tokens, seed_token_a,
    tome_r); the defaults are those of the official ViT-B/16 configs.
    """
    sd = _vision_part(read_checkpoint(path))
    cfg = config_from_state_dict(sd, **overrides)
    model = TCCLIPVision(cfg)
    load_tcclip_state_dict(model, sd)
    log.info("loaded TC-CLIP vision tower from %s (%s)", path, cfg)
    return model.eval()
