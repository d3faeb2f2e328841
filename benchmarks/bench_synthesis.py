"""Stage-2 neural synthesis speed: FolAI's SAO + envelope ControlNet vs plain diffusers StableAudioPipeline.

Full Stable Audio Open size with random weights (no download needed): 10 s of audio, 150 steps,
guidance 2, with the ControlNet (5 copied blocks), CLAP and CAVP tokens. Measures end-to-end wall
time (envelope VAE encode + sampling + VAE decode) and peak memory for

  1. FolaiStableAudioPipeline, eager;
  2. FolaiStableAudioPipeline, DiT + ControlNet step compiled with torch.compile (mode
     "reduce-overhead": CUDA graphs on a GPU), compile time reported separately;
  3. diffusers' StableAudioPipeline at the same settings (it always denoises the full 47.55 s
     latent window and crops afterwards — that is how diffusers runs SAO);

plus the time of one guided DiT step (batch 2) eager and compiled.

    python benchmarks/bench_synthesis.py                 # GPU, full size, bf16
    python benchmarks/bench_synthesis.py --tiny          # CPU, toy size: tests the script

On CPU "peak memory" is the process's maximum resident set size; on a GPU it is
torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from folai.synthesis.controlnet import EnvelopeControlNet  # noqa: E402
from folai.synthesis.stable_audio import (  # noqa: E402
    SAO_SCHEDULER,
    FolaiStableAudioPipeline,
    parse_dtype,
    tiny_components,
)


def full_components(device, dtype, seed=0):
    from diffusers import AutoencoderOobleck, StableAudioDiTModel, StableAudioProjectionModel

    torch.manual_seed(seed)
    with torch.device(device):
        dit = StableAudioDiTModel()  # SAO: 24 blocks, width 1536, 24 heads, 12 KV heads, sample_size 1024
        vae = AutoencoderOobleck()  # SAO Oobleck: 64 latent channels, 2048x
        proj = StableAudioProjectionModel(text_encoder_dim=768, conditioning_dim=768, min_value=0, max_value=512)
    for m in (dit, vae, proj):
        m.to(dtype=dtype)
    cn = EnvelopeControlNet.from_dit(dit)  # gamma 0.2 -> 5 blocks
    with torch.no_grad():  # non-zero, like a trained ControlNet (compute is the same either way)
        for m in [cn.env_in, *cn.out_projs]:
            m.weight.normal_(0, 0.01)
    return dict(transformer=dit, vae=vae, projection_model=proj, controlnet=cn, clap=None, cavp=None)


class Meter:
    def __init__(self, device):
        self.device = device

    def reset(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def peak_gib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated() / 2**30
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)


def timed(fn, meter, repeats=1):
    times = []
    out = None
    for _ in range(repeats):
        meter.reset()
        t0 = time.perf_counter()
        out = fn()
        meter.sync()
        times.append(time.perf_counter() - t0)
    return min(times), meter.peak_gib(), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="toy-size model (CPU test of this script)")
    ap.add_argument("--seconds", type=float, default=None, help="audio length (default 10 s; tiny: 0.04 s)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--cfg", type=float, default=2.0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None, help="bf16 / fp16 / fp32 (default: bf16 on GPU, fp32 on CPU)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--compile-mode", default="reduce-overhead")
    ap.add_argument("--skip-diffusers", action="store_true")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per variant (the best is reported)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = parse_dtype(args.dtype, device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # toy sizes: threads only add contention
    try:
        from diffusers.utils import logging as dlog

        dlog.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    if not args.tiny and device.type == "cpu":
        print("full SAO size on CPU would take hours; use --tiny on a machine without a GPU", file=sys.stderr)
        return 2
    seconds = args.seconds if args.seconds is not None else (0.04 if args.tiny else 10.0)
    meter = Meter(device)

    comps = tiny_components(seed=0, with_clap=False, with_cavp=False) if args.tiny else full_components(device, dtype)
    t0 = time.perf_counter()
    pipe = FolaiStableAudioPipeline(**comps).to(device, dtype)
    build_s = time.perf_counter() - t0
    sr = pipe.sample_rate
    n = int(round(seconds * sr))
    if n > pipe.max_seconds * sr:
        print(f"--seconds {seconds} is longer than the base model's window ({pipe.max_seconds:.3f} s)", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    env = np.zeros((2, n), np.float32)
    for t in rng.uniform(0, seconds, 12):
        i = int(t * sr)
        env[:, i : i + sr // 10] = np.exp(-np.arange(min(sr // 10, n - i)) / (0.02 * sr))
    cn_cfg = pipe.controlnet.config
    clap = torch.nn.functional.normalize(torch.randn(1, cn_cfg.clap_dim), dim=-1)
    cavp = torch.nn.functional.normalize(torch.randn(1, max(1, round(seconds * 4)), cn_cfg.cavp_dim), dim=-1)

    def ours():
        return pipe.generate(env, clap=clap, cavp=cavp, steps=args.steps, cfg=args.cfg, seed=0, progress=False)

    # one guided DiT + ControlNet step at batch 2
    L = pipe.latent_length(n)
    cross, glob = pipe._tokens(clap, cavp, seconds, pipe.controlnet.n_cavp_tokens(seconds))
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    cos, sin = (x.to(device) for x in get_1d_rotary_pos_embed(pipe.transformer.config.attention_head_dim // 2, L + 1,
                                                                use_real=True, repeat_interleave_real=False))
    step_in = (torch.randn(2, cn_cfg.latent_channels, L, device=device, dtype=dtype), torch.tensor([0.5], device=device),
               torch.cat([torch.zeros_like(cross), cross]), torch.cat([glob, glob]), cos, sin,
               torch.randn(2, cn_cfg.latent_channels, L, device=device, dtype=dtype))

    def one_step(fn, k=20):
        with torch.no_grad():
            for _ in range(3):
                fn(*step_in)
            meter.sync()
            t = time.perf_counter()
            for _ in range(k):
                fn(*step_in)
            meter.sync()
        return (time.perf_counter() - t) / k

    results = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
               "dtype": str(dtype).replace("torch.", ""), "size": "tiny" if args.tiny else "full SAO",
               "seconds": seconds, "steps": args.steps, "cfg": args.cfg, "latent_length": L,
               "controlnet_blocks": len(pipe.controlnet.blocks), "build_s": round(build_s, 2)}
    results["step_ms_eager"] = 1000 * one_step(pipe._model)
    base_only = lambda x, t, c, g, co, si, ctl: pipe._model.dit(  # noqa: E731 - the same step without the ControlNet
        x, t, encoder_hidden_states=c, global_hidden_states=g, rotary_embedding=(co, si)).sample
    results["step_ms_base_dit_eager"] = 1000 * one_step(base_only)
    ours()  # warm-up
    t, mem, audio = timed(ours, meter, args.repeats)
    assert audio.shape == (2, n) and np.isfinite(audio).all()
    results["eager_s"], results["eager_peak_gib"] = t, mem

    if not args.no_compile:
        pipe.compile(mode=args.compile_mode)
        t0 = time.perf_counter()
        ours()  # compiles (and records CUDA graphs)
        meter.sync()
        results["compile_warmup_s"] = time.perf_counter() - t0
        t, mem, audio_c = timed(ours, meter, args.repeats)
        results["compiled_s"], results["compiled_peak_gib"] = t, mem
        results["compiled_max_abs_diff_vs_eager"] = float(np.abs(audio_c - audio).max())
        results["step_ms_compiled"] = 1000 * one_step(pipe._denoiser)

    if not args.skip_diffusers:
        from diffusers import CosineDPMSolverMultistepScheduler, StableAudioPipeline

        sched = CosineDPMSolverMultistepScheduler(**SAO_SCHEDULER)
        ref = StableAudioPipeline(vae=pipe.vae, text_encoder=None, projection_model=pipe.projection_model, tokenizer=None,
                                  transformer=pipe.transformer, scheduler=sched)
        ref.set_progress_bar_config(disable=True)
        width = pipe.projection_model.config.text_encoder_dim
        emb = torch.randn(1, 128 if not args.tiny else 8, width, device=device, dtype=dtype)
        mask = torch.ones(emb.shape[:2], dtype=torch.long, device=device)

        def plain():
            g = torch.Generator(device).manual_seed(0)
            return ref(prompt_embeds=emb, attention_mask=mask, audio_end_in_s=seconds, num_inference_steps=args.steps,
                       guidance_scale=args.cfg, generator=g, output_type="pt").audios

        plain()
        t, mem, a = timed(plain, meter, args.repeats)
        results["diffusers_s"], results["diffusers_peak_gib"] = t, mem
        results["diffusers_latent_length"] = int(pipe.transformer.config.sample_size)

    w = max(len(k) for k in results)
    for k, v in results.items():
        print(f"{k:<{w}}  {v:.4g}" if isinstance(v, float) else f"{k:<{w}}  {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
