"""Check folai's TC-CLIP vision tower against the official code on the same random weights and input.

Usage::

    git clone https://github.com/naver-ai/tc-clip /tmp/tc-clip        # the official code
    pip install einops                                                 # it imports einops
    PYTHONPATH=src python benchmarks/compare_tcclip_official.py --official /tmp/tc-clip

The official ``clip`` package imports torchvision in its ``__init__`` and ``timm`` for one weight
initialiser; neither is needed for the vision tower's forward pass, so this script loads the
official modules without running that ``__init__`` and provides ``timm.models.layers.trunc_normal_``
from torch. The official code hard-codes 196 patches (224 px, patch 16), so the tiny tower here
keeps 224 px and shrinks the width, depth and frame count. The official model's state dict is
saved in the official checkpoint layout ({"model": {"image_encoder.*": ...}}) and loaded by folai's
loader, so the key mapping is checked as well. Prints the max abs difference; exits 1 if > 1e-4.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import types
from pathlib import Path

import torch


def load_official(repo: Path):
    if "timm" not in sys.modules:
        timm = types.ModuleType("timm")
        models = types.ModuleType("timm.models")
        layers = types.ModuleType("timm.models.layers")
        layers.trunc_normal_ = torch.nn.init.trunc_normal_
        timm.models, models.layers = models, layers
        sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})
    sys.path.insert(0, str(repo))
    clip_pkg = types.ModuleType("clip")
    clip_pkg.__path__ = [str(repo / "clip")]  # a package whose __init__ (torchvision) is not run
    sys.modules["clip"] = clip_pkg
    return importlib.import_module("clip.vision_transformer_tc")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", required=True, type=Path, help="checkout of github.com/naver-ai/tc-clip")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--context", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from folai.timing.tcclip import TCCLIPConfig, TCCLIPVision, tcclip_from_checkpoint

    mod = load_official(args.official)
    design = {
        "positional_embedding_type": "space",
        "vision_block": "TCAttentionBlock",
        "temporal_length": args.frames,
        "context_token_k": args.context,
        "seed_token_a": 0.3,
        "local_global_bias": True,
        "tome_r": 100,
        "tome_d": 0,
    }
    g = torch.Generator().manual_seed(args.seed)
    official = mod.TCVisionTransformer(
        input_resolution=224, patch_size=16, num_frames=args.frames, width=args.width, layers=args.layers,
        heads=args.heads, output_dim=32, design_details=design,
    ).eval()
    # random weights everywhere (incl. biases and the local/global bias table, which init to ~0)
    with torch.no_grad():
        for p in official.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    frames = torch.randn(2, args.frames, 3, 224, 224, generator=g)
    with torch.no_grad():
        cls_tokens, _, _, _ = official(frames, return_layer_num=[args.layers - 1])
    ref = cls_tokens[:, -1]  # (B, T, out) last layer, after ln_post and proj

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "tcclip_official_layout.pth"
        torch.save({"model": {f"image_encoder.{k}": v for k, v in official.state_dict().items()}, "epoch": 0}, ckpt)
        ours = tcclip_from_checkpoint(
            ckpt, heads=args.heads, num_frames=args.frames, context_tokens=args.context
        )
    assert isinstance(ours, TCCLIPVision) and isinstance(ours.config, TCCLIPConfig)
    with torch.no_grad():
        out = ours(frames)
    diff = (out - ref).abs().max().item()
    print(f"official output {tuple(ref.shape)}, folai output {tuple(out.shape)}, |ref| max {ref.abs().max().item():.3f}")
    print(f"tcclip-vs-official: max_abs_diff={diff:.3e}")
    return 0 if diff <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
