"""Stage 2, the paper's model: Stable Audio Open + the envelope ControlNet + CLAP / CAVP conditioning.

One pipeline object, :class:`FolaiStableAudioPipeline`, is shared by the ``stable-audio`` synthesis
backend (:class:`StableAudioSynth`), the trainer's demos and the benchmark.

Sampling follows Stable Audio Open in diffusers: v-prediction with
``CosineDPMSolverMultistepScheduler`` (sigma 0.3..500, exponential schedule, 2nd-order SDE DPM-Solver
with a Brownian-tree noise seeded from the generator), classifier-free guidance between the
condition and the unconditional embedding (all-zero cross-attention tokens, as SAO without a
negative prompt; a ``negative`` CLAP text embedding replaces the zeros when given). Defaults are the
paper's: 150 steps, guidance 2.

Durations: a clip up to the base model's maximum (47.55 s for SAO) is generated in one window whose
latent length is ceil(duration * 44100 / 2048) (SAO's ``seconds_total`` tells the model the length);
longer clips are generated in overlapping windows (``window`` s long, ``overlap`` s shared), each
conditioned on its own stretch of the envelope and of the video embeddings, and crossfaded linearly.

Example (tiny random weights, CPU)::

    >>> import numpy as np
    >>> from folai.synthesis.stable_audio import FolaiStableAudioPipeline
    >>> pipe = FolaiStableAudioPipeline.tiny(seed=0)
    >>> env = np.full((2, 2000), 0.5, np.float32)          # envelope at 44.1 kHz, (channels, samples)
    >>> audio = pipe.generate(env, steps=2, cfg=2.0, seed=1, progress=False)
    >>> audio.shape, audio.dtype
    ((2, 2000), dtype('float32'))
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..envelope import Envelope
from ..errors import FolaiError, WeightsUnavailableError
from .conditioners import CLAP_DEFAULT, ClapEncoder, duration_tokens
from .controlnet import EnvelopeControlNet, controlled_dit_forward

log = logging.getLogger(__name__)

DEFAULT_BASE = "stabilityai/stable-audio-open-1.0"
DEFAULT_STEPS = 150
DEFAULT_CFG = 2.0

# Stable Audio Open's scheduler settings (its scheduler_config.json)
SAO_SCHEDULER = dict(
    sigma_min=0.3,
    sigma_max=500.0,
    sigma_data=1.0,
    sigma_schedule="exponential",
    num_train_timesteps=1000,
    solver_order=2,
    prediction_type="v_prediction",
    rho=7.0,
    solver_type="midpoint",
    lower_order_final=True,
    euler_at_final=False,
    final_sigmas_type="zero",
)


def parse_dtype(dtype: Any, device: torch.device) -> torch.dtype:
    """'bf16'/'fp16'/'fp32'/torch.dtype/None -> torch.dtype (None: bf16 on a bf16-capable GPU, else fp32)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    names = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
             "half": torch.float16, "fp32": torch.float32, "float32": torch.float32}
    if str(dtype) not in names:
        raise FolaiError(f"unknown dtype '{dtype}'; choose one of bf16, fp16, fp32")
    return names[str(dtype)]


def parse_device(device: Any) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise FolaiError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu")
    return d


class ControlledDiT(nn.Module):
    """Frozen DiT + ControlNet as one module (what torch.compile wraps); forward = one v prediction."""

    def __init__(self, dit: nn.Module, controlnet: EnvelopeControlNet | None):
        super().__init__()
        self.dit = dit
        self.controlnet = controlnet

    def forward(self, x, t, cross, glob, rot_cos, rot_sin, control):
        return controlled_dit_forward(self.dit, self.controlnet, x, t, cross, glob, (rot_cos, rot_sin), control)


@dataclass
class Window:
    start: int  # first sample
    length: int  # samples


def plan_windows(n_samples: int, window: int, overlap: int) -> list[Window]:
    """Cover [0, n_samples) with windows of ``window`` samples sharing at least ``overlap`` samples.

    One window when n_samples <= window; otherwise equally long windows, the last one ending at
    n_samples (so it may share more than ``overlap`` with its predecessor).
    """
    if n_samples <= window:
        return [Window(0, n_samples)]
    if not 0 <= overlap < window:
        raise FolaiError(f"window overlap must be in [0, window) samples, got {overlap} for a window of {window}")
    step = window - overlap
    starts = list(range(0, n_samples - window, step)) + [n_samples - window]
    return [Window(s, window) for s in starts]


def crossfade(parts: Sequence[np.ndarray], windows: Sequence[Window], n_samples: int) -> np.ndarray:
    """Overlap-add (C, length) parts with complementary linear fades over each shared stretch."""
    C = parts[0].shape[0]
    out = np.zeros((C, n_samples), np.float64)
    wsum = np.zeros(n_samples, np.float64)
    for k, (a, w) in enumerate(zip(parts, windows)):
        g = np.ones(w.length)
        if k > 0:
            ov = windows[k - 1].start + windows[k - 1].length - w.start
            if ov > 0:
                g[:ov] = np.minimum(g[:ov], (np.arange(ov) + 0.5) / ov)
        if k + 1 < len(windows):
            ov = w.start + w.length - windows[k + 1].start
            if ov > 0:
                g[-ov:] = np.minimum(g[-ov:], 1.0 - (np.arange(ov) + 0.5) / ov)
        out[:, w.start : w.start + w.length] += a[:, : w.length] * g
        wsum[w.start : w.start + w.length] += g
    return (out / np.maximum(wsum, 1e-8)).astype(np.float32)


class FolaiStableAudioPipeline:
    """SAO DiT + Oobleck VAE + duration conditioners (frozen), envelope ControlNet, CLAP and CAVP encoders."""

    def __init__(
        self,
        transformer,
        vae,
        projection_model,
        controlnet: EnvelopeControlNet | None = None,
        clap: ClapEncoder | None = None,
        cavp=None,
        scheduler_config: dict | None = None,
    ):
        self.transformer = transformer.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False)
        self.projection_model = projection_model.eval().requires_grad_(False)
        if controlnet is None:
            log.warning("no trained ControlNet given: the envelope and the CLAP/CAVP projections start at zero / random "
                        "and the output will not follow the envelope; pass --controlnet PATH")
            controlnet = EnvelopeControlNet.from_dit(transformer)
        self.controlnet = controlnet.eval().requires_grad_(False)
        self.clap = clap
        self.cavp = cavp.eval().requires_grad_(False) if cavp is not None else None
        self.scheduler_config = dict(SAO_SCHEDULER, **(scheduler_config or {}))
        self.device = next(transformer.parameters()).device
        self.dtype = next(transformer.parameters()).dtype
        self.offload = False
        self._model = ControlledDiT(self.transformer, self.controlnet)
        self._denoiser = self._model
        self._compiled = False

    # -- properties
    @property
    def sample_rate(self) -> int:
        return int(self.vae.config.sampling_rate)

    @property
    def hop(self) -> int:
        return int(self.vae.hop_length)

    @property
    def max_seconds(self) -> float:
        """Longest clip the base model generates in one window (47.55 s for SAO)."""
        return self.transformer.config.sample_size * self.hop / self.sample_rate

    def latent_length(self, n_samples: int) -> int:
        return max(1, math.ceil(n_samples / self.hop))

    # -- construction
    @classmethod
    def from_pretrained(
        cls,
        base: str | os.PathLike = DEFAULT_BASE,
        controlnet: str | os.PathLike | None = None,
        clap: str | os.PathLike | None = CLAP_DEFAULT,
        cavp: str | os.PathLike | None = None,
        device: Any = None,
        dtype: Any = None,
        offload: bool = False,
        offline: bool = False,
    ) -> "FolaiStableAudioPipeline":
        """Load SAO from a hub id, a diffusers folder or a stable-audio-tools checkpoint, plus the FolAI parts.

        base: ``stabilityai/stable-audio-open-1.0`` (gated), a local diffusers folder (``transformer/``,
        ``vae/``, ``projection_model/``) or a stable-audio-tools folder / ``model.safetensors`` with
        ``model_config.json``. controlnet: a folder saved by EnvelopeControlNet.save (or hub id).
        clap: ClapModel hub id or folder (None: no CLAP). cavp: path of Diff-Foley's CAVP checkpoint
        (None: no video conditioning).
        """
        dev = parse_device(device)
        dt = parse_dtype(dtype, dev)
        dit, vae, proj = load_base(base, offline=offline)
        cn = EnvelopeControlNet.load(controlnet, dit) if controlnet is not None else None
        clap_enc = ClapEncoder.from_pretrained(clap, offline=offline) if clap is not None else None
        cavp_enc = None
        if cavp is not None:
            from .cavp import CAVPVideoEncoder

            cavp_enc = CAVPVideoEncoder.from_checkpoint(cavp)
        pipe = cls(dit, vae, proj, cn, clap_enc, cavp_enc, scheduler_config=load_scheduler_config(base, offline))
        if offload:
            pipe.enable_cpu_offload(dev, dt)
        else:
            pipe.to(dev, dt)
        return pipe

    @classmethod
    def tiny(cls, seed: int = 0, sample_size: int = 64, with_clap: bool = True, with_cavp: bool = True) -> "FolaiStableAudioPipeline":
        """A random pipeline with the real architecture at toy width (tests, ``--tiny`` smoke runs)."""
        comps = tiny_components(seed=seed, sample_size=sample_size, with_clap=with_clap, with_cavp=with_cavp)
        return cls(**comps)

    def to(self, device: Any = None, dtype: Any = None) -> "FolaiStableAudioPipeline":
        dev = parse_device(device) if device is not None else self.device
        dt = parse_dtype(dtype, dev) if dtype is not None else self.dtype
        for m in (self.transformer, self.controlnet, self.projection_model):
            m.to(device=dev, dtype=dt)
        self.vae.to(device=dev, dtype=torch.float32 if dt == torch.float16 else dt)  # fp16 VAE decodes can overflow
        if self.cavp is not None:
            self.cavp.to(device=dev, dtype=dt)
        if self.clap is not None:
            self.clap.to(device=dev)
        self.device, self.dtype, self.offload = dev, dt, False
        return self

    def enable_cpu_offload(self, device: Any = "cuda", dtype: Any = None) -> "FolaiStableAudioPipeline":
        """Keep every model on the CPU and move each to ``device`` only while it runs (small GPUs)."""
        self.to("cpu", parse_dtype(dtype, parse_device(device)))
        self.device = parse_device(device)
        self.offload = True
        return self

    @contextlib.contextmanager
    def _on_device(self, *modules) -> Iterator[None]:
        if not self.offload:
            yield
            return
        for m in modules:
            m.to(self.device)
        try:
            yield
        finally:
            for m in modules:
                m.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def compile(self, mode: str = "reduce-overhead", fullgraph: bool = False) -> "FolaiStableAudioPipeline":
        """torch.compile the DiT + ControlNet step (``reduce-overhead`` = CUDA graphs on a GPU)."""
        self._denoiser = torch.compile(self._model, mode=mode, fullgraph=fullgraph, dynamic=False)
        self._compiled = True
        return self

    # -- conditions
    @torch.no_grad()
    def encode_envelope(self, env_wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Envelope waveform (B, 2, N) or (2, N) in [0, 1] at 44.1 kHz -> VAE latent mean (B, C, ceil(N / hop))."""
        x = torch.as_tensor(np.asarray(env_wave, dtype=np.float32)) if not torch.is_tensor(env_wave) else env_wave.float()
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1] != self.vae.config.audio_channels:
            raise FolaiError(f"the envelope waveform must be ({self.vae.config.audio_channels}, N) at the audio rate, got {tuple(x.shape)}")
        L = self.latent_length(x.shape[-1])
        x = torch.nn.functional.pad(x, (0, L * self.hop - x.shape[-1]))
        with self._on_device(self.vae):
            vp = next(self.vae.parameters())
            lat = self.vae.encode(x.to(vp.device, vp.dtype)).latent_dist.mean
        return lat[..., :L].to(self.device, torch.float32)

    def embed_prompt(self, text: str) -> torch.Tensor:
        if self.clap is None:
            raise FolaiError("a text prompt needs CLAP; load the pipeline with clap='laion/clap-htsat-unfused' (or a local copy)")
        with self._on_device(self.clap.model):
            return self.clap.embed_text([text]).to(self.device)

    def embed_references(self, paths: Sequence[str | os.PathLike]) -> torch.Tensor:
        if self.clap is None:
            raise FolaiError("reference audio needs CLAP; load the pipeline with clap='laion/clap-htsat-unfused' (or a local copy)")
        with self._on_device(self.clap.model):
            return self.clap.embed_references(paths).to(self.device)

    def embed_video(self, video: str | os.PathLike, duration: float | None = None) -> torch.Tensor:
        """(1, T, 512) CAVP embeddings of the video's frames at 4 fps."""
        if self.cavp is None:
            raise FolaiError("video conditioning needs CAVP; pass cavp=PATH to Diff-Foley's cavp_epoch66.ckpt")
        from .cavp import read_cavp_frames

        frames = read_cavp_frames(video, 0.0, duration)
        if len(frames) == 0:
            raise FolaiError(f"no frames could be read from {video} for CAVP")
        with self._on_device(self.cavp):
            return self.cavp.embed_frames(frames)[None].float().to(self.device)

    def _tokens(self, clap, cavp, seconds: float, n_cavp: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross tokens (1, S, D), global (1, 1, G)) for one window."""
        dev = self.device
        with self._on_device(self.projection_model, self.controlnet):
            cond = self.controlnet.condition_tokens(
                None if clap is None else clap.to(dev), None if cavp is None else cavp.to(dev), 1, n_cavp
            )
            sec = torch.tensor([0.0], device=dev)
            tot = torch.tensor([float(seconds)], device=dev)
            dur_cross, glob = duration_tokens(self.projection_model, sec, tot)
        return torch.cat([cond.to(self.dtype), dur_cross.to(self.dtype)], dim=1), glob.to(self.dtype)

    # -- sampling
    @torch.no_grad()
    def sample_latents(
        self,
        control: torch.Tensor,
        cross: torch.Tensor,
        glob: torch.Tensor,
        negative_cross: torch.Tensor | None,
        steps: int,
        cfg: float,
        generator: torch.Generator,
        progress: bool = True,
    ) -> torch.Tensor:
        """Denoise from noise to latents (1, C, L) for one window; ``control`` (1, C, L) envelope latent."""
        from diffusers import CosineDPMSolverMultistepScheduler
        from diffusers.models.embeddings import get_1d_rotary_pos_embed

        from tqdm.auto import tqdm

        sched = CosineDPMSolverMultistepScheduler(**self.scheduler_config)
        sched.set_timesteps(steps, device=self.device)
        C, L = control.shape[1], control.shape[2]
        latents = torch.randn((1, C, L), generator=generator, dtype=torch.float32).to(self.device)
        latents = latents * sched.init_noise_sigma
        do_cfg = cfg > 1.0
        if do_cfg:
            neg = negative_cross if negative_cross is not None else torch.zeros_like(cross)
            cross_in = torch.cat([neg, cross])
            glob_in = torch.cat([glob, glob])
            control_in = torch.cat([control, control])
        else:
            cross_in, glob_in, control_in = cross, glob, control
        cos, sin = get_1d_rotary_pos_embed(
            self.transformer.config.attention_head_dim // 2, L + glob.shape[1], use_real=True, repeat_interleave_real=False
        )
        cos, sin = cos.to(self.device), sin.to(self.device)
        control_in = control_in.to(self.dtype)
        with self._on_device(self.transformer, self.controlnet), warnings.catch_warnings():
            # torchsde's Brownian tree warns when queried at sigma = 0 (the scheduler's final step); harmless
            warnings.filterwarnings("ignore", message="Should have", category=UserWarning)
            for t in tqdm(sched.timesteps, disable=not progress, desc="stable-audio", leave=False):
                x = torch.cat([latents, latents]) if do_cfg else latents
                x = sched.scale_model_input(x, t).to(self.dtype)
                if self._compiled:
                    torch.compiler.cudagraph_mark_step_begin()  # CUDA-graph outputs are reused between steps
                    v = self._denoiser(x, t.reshape(1), cross_in, glob_in, cos, sin, control_in).float().clone()
                else:
                    v = self._denoiser(x, t.reshape(1), cross_in, glob_in, cos, sin, control_in).float()
                if do_cfg:
                    v_u, v_c = v.chunk(2)
                    v = v_u + cfg * (v_c - v_u)
                latents = sched.step(v, t, latents, generator=generator).prev_sample
        return latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        with self._on_device(self.vae):
            vp = next(self.vae.parameters())
            return self.vae.decode(latents.to(vp.device, vp.dtype)).sample.float()

    @torch.no_grad()
    def generate(
        self,
        envelope_wave: np.ndarray | torch.Tensor,
        *,
        clap: torch.Tensor | None = None,
        cavp: torch.Tensor | None = None,
        negative_clap: torch.Tensor | None = None,
        steps: int = DEFAULT_STEPS,
        cfg: float = DEFAULT_CFG,
        seed: int = 0,
        window: float | None = None,
        overlap: float = 1.0,
        progress: bool = True,
    ) -> np.ndarray:
        """Audio (2, N) float32 in [-1, 1] following ``envelope_wave`` (2, N) (the envelope at 44.1 kHz).

        clap: (1, 512) CLAP audio/text embedding or None; cavp: (1, T, 512) CAVP embeddings at 4 fps
        covering the same span, or None; negative_clap: (1, 512) embedding for the unconditional
        branch (default: SAO's all-zero embedding). Windows: ``window`` s (default: the base maximum)
        sharing ``overlap`` s, crossfaded. Same arguments and seed -> the same audio.
        """
        env = torch.as_tensor(np.asarray(envelope_wave, dtype=np.float32)) if not torch.is_tensor(envelope_wave) else envelope_wave.float().cpu()
        if env.ndim != 2 or env.shape[0] != self.vae.config.audio_channels:
            raise FolaiError(f"envelope_wave must be ({self.vae.config.audio_channels}, N), got {tuple(env.shape)}")
        if steps < 1:
            raise FolaiError(f"steps must be >= 1, got {steps}")
        if cfg < 0:
            raise FolaiError(f"guidance scale must be >= 0, got {cfg}")
        N = env.shape[1]
        if N == 0:
            raise FolaiError("the requested duration is zero samples long")
        sr = self.sample_rate
        max_win = int(self.transformer.config.sample_size) * self.hop
        win = max_win if window is None else min(max_win, int(round(window * sr)))
        if win < self.hop * 2:
            raise FolaiError(f"window must be at least {2 * self.hop / sr:.3f} s")
        ov = int(round(overlap * sr))
        ov = min(ov, win // 2)
        windows = plan_windows(N, win, ov)
        if cavp is not None:
            assert cavp.ndim == 3, f"cavp must be (1, T, D), got {tuple(cavp.shape)}"
            need = max(1, math.ceil(N / sr * self.controlnet.config.cavp_fps))
            if cavp.shape[1] < need:  # a video shorter than the audio: hold its last frame
                cavp = torch.cat([cavp, cavp[:, -1:].expand(-1, need - cavp.shape[1], -1)], dim=1)
        neg_cross = None
        parts = []
        for k, w in enumerate(windows):
            seconds = w.length / sr
            n_cavp = self.controlnet.n_cavp_tokens(seconds)
            cavp_k = None
            if cavp is not None:
                fps = self.controlnet.config.cavp_fps
                T = cavp.shape[1]
                i0 = min(T - 1, int(math.floor(w.start / sr * fps)))
                i1 = max(i0 + 1, min(T, int(math.ceil((w.start + w.length) / sr * fps))))
                cavp_k = cavp[:, i0:i1]
            cross, glob = self._tokens(clap, cavp_k, seconds, n_cavp)
            if negative_clap is not None:
                neg_cross, _ = self._tokens(negative_clap, None, seconds, n_cavp)
            control = self.encode_envelope(env[:, w.start : w.start + w.length])
            gen = torch.Generator("cpu").manual_seed(int(seed) * 1_000_003 + k)
            lat = self.sample_latents(control, cross, glob, neg_cross, steps, cfg, gen, progress=progress)
            audio = self.decode(lat)[0, :, : w.length].cpu().numpy()
            parts.append(audio)
        out = parts[0] if len(parts) == 1 else crossfade(parts, windows, N)
        return np.clip(out, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- loading


def load_base(base: str | os.PathLike, offline: bool = False):
    """(transformer, vae, projection_model) from a hub id, a diffusers folder or a stable-audio-tools checkpoint."""
    from diffusers import AutoencoderOobleck, StableAudioDiTModel, StableAudioProjectionModel

    from ..weights import from_pretrained_or_explain, is_local_ref

    s = os.fspath(base)
    p = Path(s).expanduser()
    if is_local_ref(s):
        if not p.exists():
            raise WeightsUnavailableError(
                f"the Stable Audio Open weights were not found at {p}; pass the hub id {DEFAULT_BASE} "
                "(after accepting its licence and `huggingface-cli login`) or a downloaded folder"
            )
        folder = p if p.is_dir() else p.parent
        if (folder / "model_config.json").exists():
            from .sat_keys import load_sat_checkpoint

            return load_sat_checkpoint(p)
        if not (folder / "transformer").is_dir():
            raise WeightsUnavailableError(
                f"{p} is neither a diffusers Stable Audio folder (transformer/, vae/, projection_model/) nor a "
                "stable-audio-tools checkpoint (model.safetensors + model_config.json)"
            )
        s = str(folder)
    kw = dict(gated=True, offline=offline)
    dit = from_pretrained_or_explain(StableAudioDiTModel.from_pretrained, s, what="Stable Audio Open DiT", subfolder="transformer", **kw)
    vae = from_pretrained_or_explain(AutoencoderOobleck.from_pretrained, s, what="Stable Audio Open VAE", subfolder="vae", **kw)
    proj = from_pretrained_or_explain(StableAudioProjectionModel.from_pretrained, s, what="Stable Audio Open conditioners",
                                      subfolder="projection_model", **kw)
    return dit, vae, proj


def load_scheduler_config(base: str | os.PathLike, offline: bool = False) -> dict:
    """The base's ``scheduler/scheduler_config.json`` restricted to SAO's scheduler fields ({} if absent)."""
    import inspect

    from diffusers import CosineDPMSolverMultistepScheduler

    try:
        cfg = CosineDPMSolverMultistepScheduler.load_config(os.fspath(base), subfolder="scheduler", local_files_only=offline)
    except Exception:  # a stable-audio-tools checkpoint or no scheduler folder: SAO's settings
        return {}
    allowed = set(inspect.signature(CosineDPMSolverMultistepScheduler.__init__).parameters) - {"self"}
    return {k: v for k, v in cfg.items() if k in allowed}


def tiny_components(seed: int = 0, sample_size: int = 64, with_clap: bool = True, with_cavp: bool = True) -> dict:
    """Random toy-width components with SAO's architecture (CPU, seconds to build)."""
    from diffusers import AutoencoderOobleck, StableAudioDiTModel, StableAudioProjectionModel

    from .cavp import CAVPConfig, CAVPVideoEncoder
    from .controlnet import ControlNetConfig

    torch.manual_seed(seed)
    dit = StableAudioDiTModel(
        sample_size=sample_size, in_channels=8, num_layers=5, attention_head_dim=8, num_attention_heads=4,
        num_key_value_attention_heads=2, out_channels=8, cross_attention_dim=16, time_proj_dim=16,
        global_states_input_dim=32, cross_attention_input_dim=16,
    )
    # DiT output convs start at zero in SAO training; randomise every weight so tests see real signal
    with torch.no_grad():
        for name, p in dit.named_parameters():
            if p.ndim >= 2 and ("postprocess" in name or "preprocess" in name):
                p.normal_(0, 0.1)
    vae = AutoencoderOobleck(encoder_hidden_size=16, downsampling_ratios=[2, 4, 4], channel_multiples=[1, 2, 2],
                             decoder_channels=8, decoder_input_channels=8, audio_channels=2, sampling_rate=44100)
    proj = StableAudioProjectionModel(text_encoder_dim=16, conditioning_dim=16, min_value=0, max_value=512)
    clap = None
    if with_clap:
        clap = tiny_clap(seed)
    cavp = CAVPVideoEncoder(CAVPConfig(base_channels=4, stage_blocks=(1, 1, 1, 1), embed_dim=512)) if with_cavp else None
    cn = EnvelopeControlNet.from_dit(dit, ControlNetConfig.for_dit(dit, gamma=0.4, use_clap=with_clap, use_cavp=with_cavp))
    return dict(transformer=dit, vae=vae, projection_model=proj, controlnet=cn, clap=clap, cavp=cavp)


def tiny_clap(seed: int = 0) -> ClapEncoder:
    """A random toy ClapModel (512-d projection) with the default feature extractor (no tokenizer)."""
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig

    torch.manual_seed(seed)
    text = ClapTextConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                          projection_dim=512, max_position_embeddings=40)
    audio = ClapAudioConfig(window_size=4, num_mel_bins=64, spec_size=128, patch_size=4, patch_stride=(4, 4),
                            depths=[1, 1], num_attention_heads=[1, 1], hidden_size=16, patch_embeds_hidden_size=8,
                            projection_dim=512, enable_fusion=False, num_classes=4)
    cfg = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=512)
    model = ClapModel(cfg)
    fe = ClapFeatureExtractor(feature_size=64, max_length_s=1, truncation="rand_trunc", padding="repeatpad")
    return ClapEncoder(model, fe, None)


# ----------------------------------------------------------------------------- backend


class StableAudioSynth:
    """``folai.synthesis.get_synth("stable-audio", ...)``: the paper's stage 2 as a synthesis backend."""

    sample_rate = 44100

    def __init__(
        self,
        controlnet: str | os.PathLike | None = None,
        base: str | os.PathLike | None = None,
        steps: int | None = None,
        cfg: float | None = None,
        negative: str | None = None,
        device: Any = None,
        dtype: Any = None,
        clap: str | os.PathLike | None = CLAP_DEFAULT,
        cavp: str | os.PathLike | None = None,
        offload: bool = False,
        window: float | None = None,
        overlap: float = 1.0,
        offline: bool = False,
        pipeline: FolaiStableAudioPipeline | None = None,
    ):
        self.steps = int(steps) if steps is not None else DEFAULT_STEPS
        self.cfg = float(cfg) if cfg is not None else DEFAULT_CFG
        if self.steps < 1:
            raise FolaiError(f"--steps must be >= 1, got {self.steps}")
        if self.cfg < 0:
            raise FolaiError(f"--cfg must be >= 0, got {self.cfg}")
        self.negative = negative
        self.window, self.overlap = window, overlap
        self.pipe = pipeline or FolaiStableAudioPipeline.from_pretrained(
            base or DEFAULT_BASE, controlnet=controlnet, clap=clap, cavp=cavp, device=device, dtype=dtype,
            offload=offload, offline=offline,
        )
        self.sample_rate = self.pipe.sample_rate

    def render(
        self,
        envelope: Envelope,
        *,
        duration: float,
        prompt: str | None = None,
        references: Sequence[str | os.PathLike] = (),
        video: str | os.PathLike | None = None,
        pan: np.ndarray | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> np.ndarray:
        """(2, round(duration * 44100)) float32 audio following ``envelope``."""
        if duration <= 0:
            raise FolaiError(f"duration must be > 0 s, got {duration}")
        sr = self.sample_rate
        n = int(round(duration * sr))
        if envelope.start == 0.0 and envelope.duration < duration:
            envelope = envelope.fit(duration)  # silence after the envelope's end, not its last value held
        env_wave = envelope.to_audio_rate(sr, n_samples=n, channels=2)  # (2, n)
        clap = None
        if references:
            clap = self.pipe.embed_references(list(references))
        elif prompt:
            clap = self.pipe.embed_prompt(prompt)
        neg = self.pipe.embed_prompt(self.negative) if self.negative else None
        cavp = self.pipe.embed_video(video, duration) if (video is not None and self.pipe.cavp is not None) else None
        audio = self.pipe.generate(env_wave, clap=clap, cavp=cavp, negative_clap=neg, steps=self.steps, cfg=self.cfg,
                                   seed=seed, window=self.window, overlap=self.overlap, progress=progress)
        if pan is not None:
            audio = apply_pan(audio, pan)
        return audio


def apply_pan(audio: np.ndarray, pan: np.ndarray) -> np.ndarray:
    """Constant-power pan (values in [-1 left, +1 right], any length, stretched over the clip) of stereo audio."""
    p = np.clip(np.asarray(pan, dtype=np.float64).reshape(-1), -1.0, 1.0)
    if p.size == 0:
        return audio
    n = audio.shape[1]
    pp = np.interp(np.linspace(0, p.size - 1, n), np.arange(p.size), p) if p.size > 1 else np.full(n, p[0])
    theta = (pp + 1.0) * np.pi / 4.0
    gains = np.stack([np.cos(theta), np.sin(theta)]) * np.sqrt(2.0)
    mono = audio.mean(axis=0, keepdims=True)
    return np.clip(mono * gains, -1.0, 1.0).astype(np.float32)
