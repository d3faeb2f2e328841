"""``folai train synthesis``: train the envelope ControlNet and the CLAP/CAVP projections on a frozen SAO.

What trains: :class:`~folai.synthesis.controlnet.EnvelopeControlNet` (copied DiT blocks, zero convs /
projections, the new CLAP and CAVP Linears). What stays frozen: the DiT, the Oobleck VAE, SAO's
duration conditioners, CLAP and CAVP.

Objective (SPEC, stable-audio-tools' v-objective): t = sigmoid(randn), alpha = cos(t pi / 2),
sigma = sin(t pi / 2), x_t = alpha x_0 + sigma eps, target v = alpha eps - sigma x_0, loss = MSE of the
DiT + ControlNet prediction at timestep t (the same t the sampler feeds: atan(sigma/alpha) * 2 / pi).
Condition dropout 0.1: the whole cross-attention condition (CLAP, CAVP and duration tokens) is zeroed,
which is exactly the sampler's unconditional branch. AdamW lr 1e-4, betas (0.95, 0.999), weight decay
1e-3; mixed precision and gradient accumulation through HF accelerate; checkpoints hold the
trainable weights only (+ optimiser state) and resume exactly.

Multi-GPU: ``accelerate launch --multi_gpu --num_processes 8 -m folai train synthesis ...``
(see docs/neural-synthesis.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import FolaiError
from .conditioners import CLAP_SR, duration_tokens
from .controlnet import ControlNetConfig, EnvelopeControlNet, controlled_dit_forward

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Training hyper-parameters (defaults: SPEC / the paper)."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.95, 0.999)
    weight_decay: float = 1e-3
    batch_size: int = 12
    steps: int = 20000
    grad_accum: int = 1
    mixed_precision: str = "bf16"  # "no", "fp16", "bf16"
    cond_dropout: float = 0.1
    gamma: float = 0.2
    text_prob: float = 0.0  # chance to condition on the CLAP *text* embedding of the prompt instead of the audio
    gradient_checkpointing: bool = False
    save_every: int = 1000
    log_every: int = 50
    seed: int = 0
    num_workers: int = 2


class TrainModule(nn.Module):
    """What DDP wraps: frozen DiT + duration conditioners and the trainable ControlNet; forward = v prediction."""

    def __init__(self, dit: nn.Module, controlnet: EnvelopeControlNet, projection_model: nn.Module, checkpointing: bool = False):
        super().__init__()
        self.dit = dit
        self.controlnet = controlnet
        self.projection_model = projection_model
        self.checkpointing = checkpointing

    def forward(self, x_t, t, control, clap, clap_mask, cavp, cavp_mask, keep, seconds):
        """x_t, control: (B, C, L); t, keep, seconds: (B,); clap (B, 512) | None; cavp (B, T, 512) | None."""
        from diffusers.models.embeddings import get_1d_rotary_pos_embed

        B, C, L = x_t.shape
        cn = self.controlnet
        n_cavp = cavp.shape[1] if cavp is not None else cn.n_cavp_tokens(float(seconds[0]))
        cond = cn.condition_tokens(clap, cavp, B, n_cavp, clap_mask=clap_mask, cavp_mask=cavp_mask)
        dur_cross, glob = duration_tokens(self.projection_model, torch.zeros_like(seconds), seconds)
        cross = torch.cat([cond, dur_cross.to(cond.dtype)], dim=1) * keep.to(cond.dtype).view(-1, 1, 1)
        cos, sin = get_1d_rotary_pos_embed(self.dit.config.attention_head_dim // 2, L + 1, use_real=True,
                                           repeat_interleave_real=False)
        rot = (cos.to(x_t.device), sin.to(x_t.device))
        return controlled_dit_forward(self.dit, cn, x_t, t, cross, glob, rot, control, checkpointing=self.checkpointing)


def v_objective(x0: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(t (B,), x_t, v target) with t = sigmoid(randn) (stable-audio-tools' "logit-normal" timesteps)."""
    B = x0.shape[0]
    t = torch.sigmoid(torch.randn(B, generator=generator, device=generator.device)).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0.device, x0.dtype)
    a = torch.cos(t * math.pi / 2).view(-1, 1, 1)
    s = torch.sin(t * math.pi / 2).view(-1, 1, 1)
    return t, a * x0 + s * noise, a * noise - s * x0


class SynthesisTrainer:
    """One object that owns the optimiser, the accelerate state, the steps and the checkpoints."""

    def __init__(self, pipe, config: TrainConfig, out_dir: str | os.PathLike, accelerator=None, device: Any = None):
        from ..errors import require

        accelerate = require("accelerate", "train")
        self.cfg = config
        self.out = Path(out_dir)
        cpu = device is not None and torch.device(device).type == "cpu"
        self.acc = accelerator or accelerate.Accelerator(
            mixed_precision=config.mixed_precision if not cpu else "no",
            gradient_accumulation_steps=config.grad_accum,
            cpu=cpu,
        )
        dev = self.acc.device
        self.pipe = pipe
        for m in (pipe.transformer, pipe.vae, pipe.projection_model):
            m.to(dev).eval().requires_grad_(False)
        if pipe.clap is not None:
            pipe.clap.to(dev)
        if pipe.cavp is not None:
            pipe.cavp.to(dev).eval().requires_grad_(False)
        self.controlnet = pipe.controlnet.to(device=dev, dtype=torch.float32).train().requires_grad_(True)
        pipe.device, pipe.offload = dev, False
        module = TrainModule(pipe.transformer, self.controlnet, pipe.projection_model, config.gradient_checkpointing)
        opt = torch.optim.AdamW(self.controlnet.parameters(), lr=config.lr, betas=tuple(config.betas),
                                weight_decay=config.weight_decay)
        self.module, self.opt = self.acc.prepare(module, opt)
        self.step = 0
        self._micro = 0  # micro-batches of the optimiser step under way (gradient accumulation)
        self.generator = torch.Generator(device="cpu").manual_seed(config.seed + 1000 * self.acc.process_index)

    # -- data -> tensors (frozen encoders, no grad)
    @torch.no_grad()
    def encode(self, batch: dict) -> dict:
        """A raw batch (audio/env/frames/prompt/seconds) or a cached one (latent_mean/...) -> model inputs."""
        dev = self.acc.device
        vae = self.pipe.vae
        if "latent_mean" in batch:
            mean, std = batch["latent_mean"].to(dev), batch["latent_std"].to(dev)
            control = batch["control"].to(dev)
            clap = batch["clap"].to(dev) if "clap" in batch else None
            clap_mask = batch.get("clap_mask")
            cavp = batch["cavp"].to(dev) if "cavp" in batch else None
            cavp_mask = batch.get("cavp_mask")
        else:
            audio, env = batch["audio"].to(dev), batch["env"].to(dev)  # (B, 2, N)
            hop = self.pipe.hop
            L = math.ceil(audio.shape[-1] / hop)
            pad = L * hop - audio.shape[-1]
            dist = vae.encode(torch.nn.functional.pad(audio, (0, pad))).latent_dist
            mean, std = dist.mean, dist.std
            control = vae.encode(torch.nn.functional.pad(env, (0, pad))).latent_dist.mean
            clap, clap_mask = self._clap(batch)
            cavp, cavp_mask = self._cavp(batch)
        noise = torch.randn(mean.shape, generator=self.generator).to(dev)
        out = {"x0": mean + std * noise, "control": control, "seconds": batch["seconds"].to(dev).float(),
               "clap": clap, "cavp": cavp}
        B = mean.shape[0]
        out["clap_mask"] = (clap_mask if clap_mask is not None else torch.ones(B)).to(dev)
        out["cavp_mask"] = (cavp_mask if cavp_mask is not None else torch.ones(B)).to(dev)
        return out

    def _clap(self, batch):
        clap_enc = self.pipe.clap
        if clap_enc is None or self.controlnet.clap_proj is None:
            return None, None
        import soxr

        B = batch["audio"].shape[0]
        use_text = [bool(p) and self.cfg.text_prob > 0 and float(torch.rand(1, generator=self.generator)) < self.cfg.text_prob
                    for p in batch.get("prompt", [""] * B)]
        mono = batch["audio"].mean(dim=1).cpu().numpy()
        waves = [soxr.resample(m, 44100, CLAP_SR) for m in mono]
        emb = clap_enc.embed_audio(waves)
        if any(use_text):
            txt = clap_enc.embed_text([p for p, u in zip(batch["prompt"], use_text) if u])
            idx = [i for i, u in enumerate(use_text) if u]
            emb[idx] = txt
        return emb, torch.ones(B)

    def _cavp(self, batch):
        cn = self.controlnet
        if cn.cavp_proj is None:
            return None, None
        B = batch["audio"].shape[0]
        T = cn.n_cavp_tokens(float(batch["seconds"][0]))
        emb = torch.zeros(B, T, cn.config.cavp_dim, device=self.acc.device)
        mask = torch.zeros(B)
        if self.pipe.cavp is not None:
            for i, fr in enumerate(batch.get("frames", [None] * B)):
                if fr is None or len(fr) == 0:
                    continue
                e = self.pipe.cavp.embed_frames(fr)  # (T_i, 512)
                idx = torch.clamp((torch.arange(T) * e.shape[0]) // T, max=e.shape[0] - 1)
                emb[i] = e[idx.to(e.device)].float()
                mask[i] = 1.0
        return emb, mask

    # -- loss and steps
    def loss(self, enc: dict, generator: torch.Generator | None = None, dropout: bool = True) -> torch.Tensor:
        g = generator or self.generator
        x0 = enc["x0"]
        t, x_t, v = v_objective(x0, g)
        B = x0.shape[0]
        p = self.cfg.cond_dropout if dropout else 0.0
        keep = (torch.rand(B, generator=g) >= p).float().to(x0.device)
        with self.acc.autocast():
            pred = self.module(x_t, t, enc["control"], enc["clap"], enc["clap_mask"], enc["cavp"], enc["cavp_mask"],
                               keep, enc["seconds"])
        return torch.nn.functional.mse_loss(pred.float(), v.float())

    def train_step(self, batch: dict) -> float:
        """One micro-batch: forward, backward, and an optimiser step when accumulation is complete.

        The noise and dropout generator is seeded at the start of each optimiser step from the
        seed and the step, so that a run resumed from a checkpoint draws what an uninterrupted one
        would (it had been reseeded once, at the resume, and the two runs differed)."""
        self.module.train()
        if self._micro == 0:  # (a prime apart per process: process 1 had drawn process 0's noise 1000 steps on)
            self.generator.manual_seed(self.cfg.seed + 1_000_000_007 * self.acc.process_index + self.step)
        self._micro = (self._micro + 1) % self.cfg.grad_accum
        enc = self.encode(batch)
        with self.acc.accumulate(self.module):
            loss = self.loss(enc)
            self.acc.backward(loss)
            if self.acc.sync_gradients:
                self.acc.clip_grad_norm_(self.controlnet.parameters(), 1.0)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        if self.acc.sync_gradients:
            self.step += 1
        return float(loss.detach())

    # -- checkpoints (trainable weights + optimiser only)
    def save_checkpoint(self) -> Path | None:
        self.acc.wait_for_everyone()
        if not self.acc.is_main_process:
            return None
        d = self.out / "checkpoints" / f"step-{self.step:07d}"
        net = self.acc.unwrap_model(self.module).controlnet
        net.save(d)
        from ..paths import atomic_output

        with atomic_output(d / "optimizer.pt") as tmp:
            torch.save(self.opt.state_dict(), tmp)
        scaler = getattr(self.acc, "scaler", None)
        if scaler is not None:  # (fp16: the loss scale it had reached)
            with atomic_output(d / "scaler.pt") as tmp:
                torch.save(scaler.state_dict(), tmp)
        with atomic_output(d / "trainer_state.json") as tmp:
            tmp.write_text(json.dumps({"step": self.step, "config": asdict(self.cfg)}, indent=2))
        net.save(self.out / "controlnet")  # the latest weights, ready for --controlnet
        return d

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        from ..weights import load_safetensors, load_state_dict_strict

        d = Path(path)
        if d.name == "checkpoints" or (d / "checkpoints").is_dir():
            d = latest_checkpoint(d if d.name == "checkpoints" else d / "checkpoints")
        if not (d / "trainer_state.json").exists():
            raise FolaiError(f"{d} is not a training checkpoint (no trainer_state.json)")
        net = self.acc.unwrap_model(self.module).controlnet
        load_state_dict_strict(net, load_safetensors(d / "controlnet.safetensors"), what=f"checkpoint {d}")
        self.opt.load_state_dict(torch.load(d / "optimizer.pt", map_location="cpu", weights_only=True))
        scaler = getattr(self.acc, "scaler", None)
        if scaler is not None and (d / "scaler.pt").exists():
            scaler.load_state_dict(torch.load(d / "scaler.pt", map_location="cpu", weights_only=True))
        self.step = int(json.loads((d / "trainer_state.json").read_text())["step"])
        self._micro = 0
        log.info("resumed from %s at step %d", d, self.step)


def latest_checkpoint(folder: Path) -> Path:
    steps = sorted(p for p in Path(folder).glob("step-*") if (p / "trainer_state.json").exists())
    if not steps:
        raise FolaiError(f"no checkpoints to resume from in {folder}")
    return steps[-1]


# ----------------------------------------------------------------------------- cache


@torch.no_grad()
def precompute(trainer: SynthesisTrainer, dataset, cache_dir: str | os.PathLike, progress: bool = True) -> Path:
    """Encode every item once (VAE latent mean/std, envelope latent, CLAP, CAVP) into ``cache_dir``."""
    from tqdm.auto import tqdm

    from ..weights import save_safetensors
    from .data_synth import collate

    d = Path(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    vae, dev = trainer.pipe.vae, trainer.acc.device
    names = []
    for i in tqdm(range(len(dataset)), disable=not progress, desc="pre-encoding"):
        b = collate([dataset[i]])
        hop = trainer.pipe.hop
        L = math.ceil(b["audio"].shape[-1] / hop)
        pad = L * hop - b["audio"].shape[-1]
        dist = vae.encode(torch.nn.functional.pad(b["audio"].to(dev), (0, pad))).latent_dist
        rec = {"latent_mean": dist.mean[0], "latent_std": dist.std[0],
               "control": vae.encode(torch.nn.functional.pad(b["env"].to(dev), (0, pad))).latent_dist.mean[0],
               "seconds": b["seconds"]}
        clap, cm = trainer._clap(b)
        if clap is not None:
            rec["clap"], rec["clap_mask"] = clap[0], cm
        cavp, vm = trainer._cavp(b)
        if cavp is not None:
            rec["cavp"], rec["cavp_mask"] = cavp[0], vm
        name = f"item-{i:07d}.safetensors"
        save_safetensors({k: v.float().cpu() for k, v in rec.items()}, d / name)
        names.append(name)
    from ..paths import atomic_output

    with atomic_output(d / "index.json") as tmp:
        tmp.write_text(json.dumps({"items": names}, indent=1))
    return d


class CachedDataset:
    """Items written by :func:`precompute`."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.dir = Path(cache_dir)
        idx = self.dir / "index.json"
        if not idx.exists():
            raise FolaiError(f"{self.dir} is not a pre-encoded cache (no index.json); create it with --precompute")
        self.names = json.loads(idx.read_text())["items"]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict:
        from ..weights import load_safetensors

        return load_safetensors(self.dir / self.names[i])


def collate_cached(items: list[dict]) -> dict:
    out = {}
    for k in items[0]:
        out[k] = torch.cat([it[k] for it in items]) if k in ("seconds", "clap_mask", "cavp_mask") else torch.stack([it[k] for it in items])
    return out


# ----------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    from ..data.chunks import add_dataset_arguments

    add_dataset_arguments(p, data_required=False)
    p.add_argument("--cache", metavar="DIR", help="pre-encoded cache: read it if it exists (skip VAE/CLAP/CAVP), "
                                                  "with --precompute write it")
    p.add_argument("--precompute", action="store_true", help="encode --data into --cache once, then exit")
    p.add_argument("--out", metavar="DIR", default="runs/synthesis", help="run folder (checkpoints/, controlnet/)")
    p.add_argument("--base", default=None, help="Stable Audio Open (hub id, diffusers folder or stable-audio-tools checkpoint)")
    p.add_argument("--clap", default="laion/clap-htsat-unfused", help="CLAP model (hub id or folder; 'none' to disable)")
    p.add_argument("--cavp", default=None, help="Diff-Foley CAVP checkpoint (cavp_epoch66.ckpt); omitted: no video condition")
    p.add_argument("--init-controlnet", default=None, help="start from a saved ControlNet folder instead of a fresh copy")
    p.add_argument("--gamma", type=float, default=d.gamma, help="fraction of DiT blocks copied (default 0.2 -> 5 of 24)")
    p.add_argument("--chunk-seconds", type=float, default=None,
                   help="training chunk length (default: the dataset's, 10 s; 2 s for walking-the-maps)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--grad-accum", type=int, default=d.grad_accum)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--cond-dropout", type=float, default=d.cond_dropout)
    p.add_argument("--text-prob", type=float, default=d.text_prob, help="chance of the CLAP text embedding of the prompt instead of the audio")
    p.add_argument("--mixed-precision", default=d.mixed_precision, choices=["no", "fp16", "bf16"])
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--save-every", type=int, default=d.save_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--num-workers", type=int, default=d.num_workers)
    p.add_argument("--seed", type=int, default=d.seed, help="training seed (the split has --split-seed)")
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="a checkpoint folder, or the run folder ('auto' = --out: its latest checkpoint, or a fresh "
                        "start if it has none); a run folder that holds checkpoints needs it")
    p.add_argument("--device", default=None, help="cpu or cuda (default: what accelerate picks)")
    p.add_argument("--tiny", action="store_true", help="toy random model + synthetic clicks: a CPU smoke test of the whole loop")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log.csv in the run folder has the losses)")


class EpochBatches:
    """Batches of indices, endlessly: epoch ``e`` is the permutation drawn from ``(seed, e)``,
    cut into ``batch_size`` (the last short batch dropped when there is a full one). ``start``
    skips that many batches without loading any data: a resumed run goes on with the batches an
    uninterrupted one would have had (the loader had restarted from the first epoch's first
    batch; found by a review)."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0) -> None:
        self.n, self.batch_size, self.seed, self.start = int(n), int(batch_size), int(seed), int(start)
        self.per_epoch = max(1, self.n // self.batch_size)

    def __iter__(self):
        epoch, j = divmod(self.start, self.per_epoch)
        while True:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            if self.n < self.batch_size:
                # a dataset smaller than a batch: its items cycled to a full one (a short batch
                # never came out of accelerate's shard of it, and a multi-process run hung;
                # found by a review)
                perm = np.resize(perm, self.batch_size)
            for k in range(j, self.per_epoch):
                yield perm[k * self.batch_size : (k + 1) * self.batch_size].tolist()
            epoch, j = epoch + 1, 0

    def __len__(self) -> int:
        return self.per_epoch


def run(args: argparse.Namespace) -> int:
    if getattr(args, "_import_error", None):
        raise FolaiError(f"training needs the neural extras ({args._import_error}); pip install 'folai[neural,train]'")
    from .stable_audio import DEFAULT_BASE, FolaiStableAudioPipeline

    cfg = TrainConfig(lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size, steps=args.steps,
                      grad_accum=args.grad_accum, mixed_precision=args.mixed_precision, cond_dropout=args.cond_dropout,
                      gamma=args.gamma, text_prob=args.text_prob, gradient_checkpointing=args.gradient_checkpointing,
                      save_every=args.save_every, log_every=args.log_every, seed=args.seed, num_workers=args.num_workers)
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise FolaiError("--steps, --batch-size and --grad-accum must be >= 1")
    if not 0.0 <= cfg.cond_dropout < 1.0:
        raise FolaiError(f"--cond-dropout must be in [0, 1), got {cfg.cond_dropout}")
    # the data is checked before any weights are loaded (minutes on a real model)
    cache_given = args.cache and (Path(args.cache) / "index.json").exists()
    if args.data and not Path(args.data).is_dir():
        raise FolaiError(f"dataset folder not found: {args.data}")
    if not (args.data or cache_given or args.tiny):
        raise FolaiError("give --data DIR (or an existing --cache DIR, or --tiny for a smoke test)")
    out = Path(args.out)
    done = sorted((out / "checkpoints").glob("step-*/trainer_state.json")) if not args.precompute else []
    if done and not args.resume:
        # (re-running on a used --out had started over, overwriting some checkpoints and leaving
        # later ones that a --resume auto then took; found by a review)
        raise FolaiError(f"{out} already holds checkpoints (up to {done[-1].parent.name}): pass --resume auto to go "
                         "on from the latest, or give a new --out")
    resume = args.resume
    if resume == "auto" and not done:
        log.info("no checkpoint in %s yet: starting", out)
        resume = None
    chunks = None
    if args.data and not (cache_given and not args.precompute):
        # (the dataset is read before the weights load: its errors had come after minutes of it)
        from .data_synth import synthesis_chunks

        chunks = synthesis_chunks(args, chunk_seconds=args.chunk_seconds)
        log.info("%s", chunks.summary())
    if args.tiny:
        pipe = FolaiStableAudioPipeline.tiny(seed=cfg.seed)
    else:
        clap = None if str(args.clap).lower() == "none" else args.clap
        pipe = FolaiStableAudioPipeline.from_pretrained(args.base or DEFAULT_BASE, controlnet=args.init_controlnet,
                                                        clap=clap, cavp=args.cavp, device="cpu", dtype="fp32")
    if args.init_controlnet is None:
        cc = ControlNetConfig.for_dit(pipe.transformer, gamma=cfg.gamma, use_clap=pipe.clap is not None,
                                      use_cavp=pipe.cavp is not None)
        pipe.controlnet = EnvelopeControlNet.from_dit(pipe.transformer, cc)
    trainer = SynthesisTrainer(pipe, cfg, args.out, device=args.device)

    from .data_synth import SynthesisDataset, collate, synthetic_items

    cache_ready = args.cache and (Path(args.cache) / "index.json").exists()
    if cache_ready and not args.precompute:
        dataset, coll = CachedDataset(args.cache), collate_cached
    elif args.data:
        dataset, coll = SynthesisDataset(chunks, use_video=pipe.cavp is not None), collate
    elif args.tiny:
        seconds = args.chunk_seconds or 0.04
        dataset, coll = synthetic_items(max(2, cfg.batch_size), seconds, seed=cfg.seed), collate
    else:
        raise FolaiError("give --data DIR (or an existing --cache DIR, or --tiny for a smoke test)")
    if args.precompute:
        if not args.cache:
            raise FolaiError("--precompute needs --cache DIR to write to")
        precompute(trainer, dataset, args.cache)
        log.info("pre-encoded %d items into %s", len(dataset), args.cache)
        return 0
    if resume:
        trainer.load_checkpoint(args.out if resume == "auto" else resume)
    if trainer.step >= cfg.steps:
        print(f"{out}: already trained to step {trainer.step} of {cfg.steps}; nothing to do")
        return 0
    # every process's micro-batches so far, in the order an uninterrupted run takes them
    batches = EpochBatches(len(dataset), cfg.batch_size, cfg.seed,
                           start=trainer.step * cfg.grad_accum * trainer.acc.num_processes)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=coll,
                                         num_workers=0 if args.tiny else cfg.num_workers)
    loader = trainer.acc.prepare(loader)
    from tqdm.auto import tqdm

    it = iter(loader)
    bar = tqdm(total=cfg.steps, initial=trainer.step, desc="train synthesis",
               disable=not trainer.acc.is_main_process or getattr(args, "no_progress", False))
    t0, losses, step_losses = time.time(), [], []
    log_csv = out / "log.csv"
    while trainer.step < cfg.steps:
        before = trainer.step
        step_losses.append(trainer.train_step(next(it)))
        if trainer.step == before:
            continue
        losses.append(float(np.mean(step_losses)))  # (one per optimiser step, over its micro-batches)
        step_losses = []
        bar.update(1)
        if trainer.step % cfg.log_every == 0 or trainer.step == cfg.steps:
            loss = float(np.mean(losses[-cfg.log_every:]))
            bar.set_postfix(loss=f"{loss:.4f}")
            log.info("step %d loss %.5f (%.1f s)", trainer.step, loss, time.time() - t0)
            if trainer.acc.is_main_process:  # (the run's record: it had kept none; found by a review)
                out.mkdir(parents=True, exist_ok=True)
                new_file = not log_csv.exists()
                with open(log_csv, "a", encoding="utf-8") as f:
                    if new_file:
                        f.write("step,loss,seconds\n")
                    f.write(f"{trainer.step},{loss:.6f},{time.time() - t0:.1f}\n")
        if trainer.step % cfg.save_every == 0 or trainer.step == cfg.steps:
            trainer.save_checkpoint()
    bar.close()
    if trainer.acc.is_main_process:
        print(f"trained {out}: step {trainer.step}, loss {np.mean(losses[-cfg.log_every:]):.4f} over the last "
              f"{min(len(losses), cfg.log_every)} steps; ControlNet in {out / 'controlnet'}, log in {log_csv}")
    return 0
