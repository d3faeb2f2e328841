"""The envelope ControlNet on Stable Audio Open's DiT, and the new condition projections.

Everything trainable in FolAI's stage 2 lives in :class:`EnvelopeControlNet`:

- ``blocks``: a copy of the first ``round(gamma * depth)`` DiT blocks (gamma 0.2 -> 5 of SAO's 24),
  initialised from the frozen DiT's weights;
- ``env_in``: a zero-initialised 1x1 Conv1d that maps the envelope's VAE latent (the envelope as a
  44.1 kHz stereo waveform, encoded by the frozen VAE) onto the DiT's pre-processed input latent;
- ``out_projs``: one zero-initialised Linear per copied block; block i's output goes through it
  and is added to the output of frozen block i;
- ``clap_proj`` / ``cavp_proj``: new Linears from the CLAP embedding (512) and the CAVP frame
  embeddings (512 per frame) to the DiT's cross-attention input width (768). Their tokens replace
  SAO's T5 text tokens; SAO's ``seconds_start`` / ``seconds_total`` tokens follow them.

Because ``env_in`` and ``out_projs`` start at zero, :func:`controlled_dit_forward` returns exactly
the frozen DiT's output at initialisation (tested).

The ControlNet is saved on its own: ``<dir>/controlnet.safetensors`` + ``<dir>/controlnet.json``
(the resolved :class:`ControlNetConfig`), never mixed with the SAO weights.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from ..errors import FolaiError, WeightsUnavailableError

WEIGHTS_NAME = "controlnet.safetensors"
CONFIG_NAME = "controlnet.json"


@dataclass
class ControlNetConfig:
    """Shape of the trainable part; ``depth``/``inner_dim``/``latent_channels``/``cross_dim`` come from the DiT."""

    gamma: float = 0.2
    depth: int = 24
    inner_dim: int = 1536
    latent_channels: int = 64
    cross_dim: int = 768  # DiT cross_attention_input_dim (SAO's T5 width)
    clap_dim: int = 512
    cavp_dim: int = 512
    use_clap: bool = True
    use_cavp: bool = True
    cavp_fps: float = 4.0

    @property
    def n_blocks(self) -> int:
        """Number of copied DiT blocks: round(gamma * depth), at least 1 (5 for SAO)."""
        return max(1, min(self.depth, int(round(self.gamma * self.depth))))

    @classmethod
    def for_dit(cls, dit: nn.Module, **overrides) -> "ControlNetConfig":
        c = dit.config
        return cls(
            depth=c.num_layers,
            inner_dim=c.num_attention_heads * c.attention_head_dim,
            latent_channels=c.in_channels,
            cross_dim=c.cross_attention_input_dim,
            **overrides,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "ControlNetConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise FolaiError(f"unknown ControlNet config field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        return cls(**d)


class EnvelopeControlNet(nn.Module):
    """Trainable ControlNet + condition projections for a frozen StableAudioDiTModel."""

    def __init__(self, config: ControlNetConfig, blocks: nn.ModuleList | None = None):
        super().__init__()
        self.config = config
        c = config
        if blocks is None:
            raise FolaiError("EnvelopeControlNet needs its copied blocks; build it with EnvelopeControlNet.from_dit(dit)")
        if len(blocks) != c.n_blocks:
            raise FolaiError(f"ControlNet config asks for {c.n_blocks} blocks but {len(blocks)} were given")
        self.blocks = blocks
        self.env_in = nn.Conv1d(c.latent_channels, c.latent_channels, 1)
        self.out_projs = nn.ModuleList([nn.Linear(c.inner_dim, c.inner_dim) for _ in range(c.n_blocks)])
        self.clap_proj = nn.Linear(c.clap_dim, c.cross_dim) if c.use_clap else None
        self.cavp_proj = nn.Linear(c.cavp_dim, c.cross_dim) if c.use_cavp else None
        self.zero_init()

    def zero_init(self) -> None:
        """Zero ``env_in`` and every ``out_projs`` layer (the ControlNet then adds exactly nothing)."""
        for m in [self.env_in, *self.out_projs]:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    @classmethod
    def from_dit(cls, dit: nn.Module, config: ControlNetConfig | None = None, **overrides) -> "EnvelopeControlNet":
        """Copy the first round(gamma * depth) blocks of ``dit`` (weights included) into a new ControlNet."""
        config = config or ControlNetConfig.for_dit(dit, **overrides)
        blocks = nn.ModuleList([copy.deepcopy(b) for b in dit.transformer_blocks[: config.n_blocks]])
        net = cls(config, blocks)
        ref = next(dit.parameters())
        net.to(device=ref.device, dtype=ref.dtype)
        for p in net.parameters():
            p.requires_grad_(True)
        return net

    # -- condition tokens
    def condition_tokens(
        self,
        clap: torch.Tensor | None,
        cavp: torch.Tensor | None,
        batch: int,
        n_cavp: int,
        keep: torch.Tensor | None = None,
        clap_mask: torch.Tensor | None = None,
        cavp_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Cross-attention tokens replacing SAO's T5 tokens: [CLAP (1 token), CAVP (n_cavp tokens)].

        clap: (B, clap_dim) or None (-> zero token); cavp: (B, T, cavp_dim) or None (-> zero tokens),
        resampled to ``n_cavp`` frames by nearest index. keep: (B,) bool/float — rows with 0 get all-zero
        tokens (condition dropout / the unconditional branch); clap_mask / cavp_mask: (B,) — rows with 0
        get a zero token for that condition only (an item without video, say). Returns (B, n_tokens, cross_dim).
        """
        ref = self.env_in.weight
        parts = []
        if self.clap_proj is not None:
            if clap is None:
                parts.append(ref.new_zeros(batch, 1, self.config.cross_dim))
            else:
                assert clap.ndim == 2 and clap.shape[-1] == self.config.clap_dim, f"clap must be (B, {self.config.clap_dim}), got {tuple(clap.shape)}"
                tok = self.clap_proj(clap.to(ref.dtype))[:, None]
                if clap_mask is not None:
                    tok = tok * clap_mask.to(tok.dtype).view(-1, 1, 1)
                parts.append(tok)
        if self.cavp_proj is not None and n_cavp > 0:
            if cavp is None:
                parts.append(ref.new_zeros(batch, n_cavp, self.config.cross_dim))
            else:
                assert cavp.ndim == 3 and cavp.shape[-1] == self.config.cavp_dim, f"cavp must be (B, T, {self.config.cavp_dim}), got {tuple(cavp.shape)}"
                if cavp.shape[1] != n_cavp:
                    idx = torch.clamp((torch.arange(n_cavp, device=cavp.device) * cavp.shape[1]) // n_cavp, max=cavp.shape[1] - 1)
                    cavp = cavp[:, idx]
                tok = self.cavp_proj(cavp.to(ref.dtype))
                if cavp_mask is not None:
                    tok = tok * cavp_mask.to(tok.dtype).view(-1, 1, 1)
                parts.append(tok)
        if not parts:
            return ref.new_zeros(batch, 0, self.config.cross_dim)
        tokens = torch.cat([p.expand(batch, -1, -1) if p.shape[0] == 1 and batch > 1 else p for p in parts], dim=1)
        if keep is not None:
            tokens = tokens * keep.to(tokens.dtype).view(-1, 1, 1)
        return tokens

    def n_cavp_tokens(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.config.cavp_fps))) if self.cavp_proj is not None else 0

    # -- persistence
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``controlnet.safetensors`` and ``controlnet.json`` into ``directory`` (created)."""
        from ..paths import atomic_output
        from ..weights import save_safetensors

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_safetensors(self.state_dict(), d / WEIGHTS_NAME, metadata={"format": "pt", "folai": "envelope-controlnet"})
        with atomic_output(d / CONFIG_NAME) as tmp:
            tmp.write_text(self.config.to_json())
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike, dit: nn.Module) -> "EnvelopeControlNet":
        """Load a ControlNet saved by :meth:`save` (a folder, or a hub id holding the two files) for ``dit``."""
        from ..weights import load_safetensors, load_state_dict_strict, resolve

        d = resolve(directory, what="FolAI ControlNet", filenames=[WEIGHTS_NAME, CONFIG_NAME])
        if d.is_file():
            d = d.parent
        try:
            cfg = ControlNetConfig.from_dict(json.loads((d / CONFIG_NAME).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise WeightsUnavailableError(f"{d / CONFIG_NAME} is not a readable ControlNet config ({e})") from e
        want = ControlNetConfig.for_dit(dit, gamma=cfg.gamma, clap_dim=cfg.clap_dim, cavp_dim=cfg.cavp_dim,
                                        use_clap=cfg.use_clap, use_cavp=cfg.use_cavp, cavp_fps=cfg.cavp_fps)
        if want != cfg:
            raise FolaiError(
                f"the ControlNet in {d} was trained for a DiT with depth {cfg.depth}, width {cfg.inner_dim}, "
                f"{cfg.latent_channels} latent channels; the base model has depth {want.depth}, width {want.inner_dim}, "
                f"{want.latent_channels} channels — use the base model it was trained on"
            )
        net = cls.from_dit(dit, cfg)
        load_state_dict_strict(net, load_safetensors(d / WEIGHTS_NAME), what=f"ControlNet {d}")
        return net


def controlled_dit_forward(
    dit: nn.Module,
    controlnet: EnvelopeControlNet | None,
    hidden_states: torch.Tensor,
    timestep: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    global_hidden_states: torch.Tensor,
    rotary_embedding: tuple[torch.Tensor, torch.Tensor] | None,
    control_latent: torch.Tensor | None = None,
    control_scale: float = 1.0,
    checkpointing: bool = False,
) -> torch.Tensor:
    """StableAudioDiTModel.forward with the envelope ControlNet added; returns the v prediction (B, C, L).

    hidden_states: (B, C, L) latents (already scaled by the scheduler); timestep: (1,) or (B,) in
    [0, 1]; encoder_hidden_states: (B, S, cross_dim) condition tokens incl. seconds tokens;
    global_hidden_states: (B, 1, global_dim); control_latent: (B, C, L) VAE latent of the envelope
    waveform. Without ``controlnet`` (or ``control_latent``) this is exactly the base DiT.
    """
    cross = dit.cross_attention_proj(encoder_hidden_states)
    glob = dit.global_proj(global_hidden_states)
    temb = dit.timestep_proj(dit.time_proj(timestep.to(dit.dtype)))
    glob = glob + temb.unsqueeze(1)

    x_in = dit.preprocess_conv(hidden_states) + hidden_states  # (B, C, L)
    x = torch.cat([glob, dit.proj_in(x_in.transpose(1, 2))], dim=-2)  # (B, 1 + L, D)

    use_control = controlnet is not None and control_latent is not None
    if use_control:
        assert control_latent.shape == hidden_states.shape, (
            f"control latent {tuple(control_latent.shape)} must match the latents {tuple(hidden_states.shape)}"
        )
        c_in = x_in + controlnet.env_in(control_latent.to(x_in.dtype))
        c = torch.cat([glob, dit.proj_in(c_in.transpose(1, 2))], dim=-2)
        n_ctrl = len(controlnet.blocks)
    else:
        n_ctrl = 0

    def run(block, h):
        if checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(
                block, h, None, cross, None, rotary_embedding, use_reentrant=False
            )
        return block(hidden_states=h, encoder_hidden_states=cross, rotary_embedding=rotary_embedding)

    for i, block in enumerate(dit.transformer_blocks):
        x = run(block, x)
        if i < n_ctrl:
            c = run(controlnet.blocks[i], c)
            x = x + control_scale * controlnet.out_projs[i](c)

    out = dit.proj_out(x).transpose(1, 2)[:, :, 1:]  # (B, C, L): drop the prepended global token
    return dit.postprocess_conv(out) + out
