"""Load a stable-audio-tools checkpoint (``model.safetensors`` + ``model_config.json``) into diffusers modules.

The key mapping is an explicit table, expanded per block from the rows below (stable-audio-tools
name on the left, diffusers name on the right, transform in brackets):

DiT (``model.model.`` prefix -> ``StableAudioDiTModel``)::

    timestep_features.weight                  -> time_proj.weight                    [squeeze (128, 1) -> (128,)]
    to_timestep_embed.{0,2}.{weight,bias}     -> timestep_proj.{0,2}.{weight,bias}
    to_global_embed.{0,2}.weight              -> global_proj.{0,2}.weight
    to_cond_embed.{0,2}.weight                -> cross_attention_proj.{0,2}.weight
    preprocess_conv.weight / postprocess_conv.weight  -> same names
    transformer.project_in.weight / project_out.weight -> proj_in.weight / proj_out.weight
    transformer.layers.{i}.pre_norm.{gamma,beta}          -> transformer_blocks.{i}.norm1.{weight,bias}
    transformer.layers.{i}.self_attn.to_qkv.weight        -> ...attn1.to_{q,k,v}.weight   [split in 3 along dim 0]
    transformer.layers.{i}.self_attn.to_out.weight        -> ...attn1.to_out.0.weight
    transformer.layers.{i}.cross_attend_norm.{gamma,beta} -> ...norm2.{weight,bias}
    transformer.layers.{i}.cross_attn.to_q.weight         -> ...attn2.to_q.weight
    transformer.layers.{i}.cross_attn.to_kv.weight        -> ...attn2.to_{k,v}.weight     [split in 2 along dim 0]
    transformer.layers.{i}.cross_attn.to_out.weight       -> ...attn2.to_out.0.weight
    transformer.layers.{i}.ff_norm.{gamma,beta}           -> ...norm3.{weight,bias}
    transformer.layers.{i}.ff.ff.0.proj.{weight,bias}     -> ...ff.net.0.proj.{weight,bias}  (SwiGLU in-projection)
    transformer.layers.{i}.ff.ff.2.{weight,bias}          -> ...ff.net.2.{weight,bias}
    ignored: transformer.rotary_pos_emb.inv_freq (a derived buffer; diffusers recomputes it)

Oobleck VAE (``pretransform.model.`` prefix -> ``AutoencoderOobleck``); WN = weight_g, weight_v, bias::

    encoder.layers.0 (WN)                         -> encoder.conv1
    encoder.layers.{b+1}.layers.{0,1,2}           -> encoder.block.{b}.res_unit{1,2,3}
    encoder.layers.{b+1}.layers.3.{alpha,beta}    -> encoder.block.{b}.snake1   [(C,) -> (1, C, 1)]
    encoder.layers.{b+1}.layers.4 (WN)            -> encoder.block.{b}.conv1
    encoder.layers.{n+1}.{alpha,beta}             -> encoder.snake1
    encoder.layers.{n+2} (WN)                     -> encoder.conv2
    decoder.layers.0 (WN)                         -> decoder.conv1
    decoder.layers.{b+1}.layers.0.{alpha,beta}    -> decoder.block.{b}.snake1
    decoder.layers.{b+1}.layers.1 (WN)            -> decoder.block.{b}.conv_t1
    decoder.layers.{b+1}.layers.{2,3,4}           -> decoder.block.{b}.res_unit{1,2,3}
    decoder.layers.{n+1}.{alpha,beta}             -> decoder.snake1
    decoder.layers.{n+2}.{weight_g,weight_v}      -> decoder.conv2 (no bias)
    residual unit .layers.{0,1,2,3}               -> .snake1, .conv1, .snake2, .conv2

Duration conditioners (``conditioner.conditioners.`` prefix -> ``StableAudioProjectionModel``)::

    seconds_start.embedder.embedding.0.weights     -> start_number_conditioner.time_positional_embedding.0.weights
    seconds_start.embedder.embedding.1.{weight,bias} -> start_number_conditioner.time_positional_embedding.1.{weight,bias}
    seconds_total.*                                -> end_number_conditioner.*

SAO's T5 encoder is not stored in the checkpoint; FolAI replaces its tokens by CLAP/CAVP anyway.
Loading is strict: every checkpoint key must be mapped or listed as ignored, every module key filled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import WeightsUnavailableError

DIT_PREFIX = "model.model."
VAE_PREFIX = "pretransform.model."
COND_PREFIX = "conditioner.conditioners."
IGNORED = (DIT_PREFIX + "transformer.rotary_pos_emb.inv_freq",)

Table = dict[str, tuple[str, Callable | None]]


def _chunk(n: int, i: int) -> Callable:
    return lambda t: torch.chunk(t, n, dim=0)[i].contiguous()


def _squeeze1(t):
    return t.reshape(-1)


def _snake(t):
    return t.reshape(1, -1, 1)


def dit_table(depth: int) -> Table:
    """{diffusers key: (stable-audio-tools key, transform)} for a DiT with ``depth`` blocks."""
    P = DIT_PREFIX
    t: Table = {
        "time_proj.weight": (P + "timestep_features.weight", _squeeze1),
        "preprocess_conv.weight": (P + "preprocess_conv.weight", None),
        "postprocess_conv.weight": (P + "postprocess_conv.weight", None),
        "proj_in.weight": (P + "transformer.project_in.weight", None),
        "proj_out.weight": (P + "transformer.project_out.weight", None),
    }
    for j in (0, 2):
        for w in ("weight", "bias"):
            t[f"timestep_proj.{j}.{w}"] = (P + f"to_timestep_embed.{j}.{w}", None)
        t[f"global_proj.{j}.weight"] = (P + f"to_global_embed.{j}.weight", None)
        t[f"cross_attention_proj.{j}.weight"] = (P + f"to_cond_embed.{j}.weight", None)
    for i in range(depth):
        s, d = P + f"transformer.layers.{i}.", f"transformer_blocks.{i}."
        for sat_norm, dn in (("pre_norm", "norm1"), ("cross_attend_norm", "norm2"), ("ff_norm", "norm3")):
            t[d + dn + ".weight"] = (s + sat_norm + ".gamma", None)
            t[d + dn + ".bias"] = (s + sat_norm + ".beta", None)
        for k, name in enumerate("qkv"):
            t[d + f"attn1.to_{name}.weight"] = (s + "self_attn.to_qkv.weight", _chunk(3, k))
        t[d + "attn1.to_out.0.weight"] = (s + "self_attn.to_out.weight", None)
        t[d + "attn2.to_q.weight"] = (s + "cross_attn.to_q.weight", None)
        t[d + "attn2.to_k.weight"] = (s + "cross_attn.to_kv.weight", _chunk(2, 0))
        t[d + "attn2.to_v.weight"] = (s + "cross_attn.to_kv.weight", _chunk(2, 1))
        t[d + "attn2.to_out.0.weight"] = (s + "cross_attn.to_out.weight", None)
        for w in ("weight", "bias"):
            t[d + f"ff.net.0.proj.{w}"] = (s + f"ff.ff.0.proj.{w}", None)
            t[d + f"ff.net.2.{w}"] = (s + f"ff.ff.2.{w}", None)
    return t


_WN = ("weight_g", "weight_v", "bias")


def _wn(t: Table, dst: str, src: str, bias: bool = True) -> None:
    for w in _WN if bias else _WN[:2]:
        t[f"{dst}.{w}"] = (f"{src}.{w}", None)


def _snake_rows(t: Table, dst: str, src: str) -> None:
    for w in ("alpha", "beta"):
        t[f"{dst}.{w}"] = (f"{src}.{w}", _snake)


def _res_unit(t: Table, dst: str, src: str) -> None:
    _snake_rows(t, dst + ".snake1", src + ".layers.0")
    _wn(t, dst + ".conv1", src + ".layers.1")
    _snake_rows(t, dst + ".snake2", src + ".layers.2")
    _wn(t, dst + ".conv2", src + ".layers.3")


def vae_table(n_blocks: int) -> Table:
    """{diffusers key: (stable-audio-tools key, transform)} for an Oobleck VAE with ``n_blocks`` strides."""
    P = VAE_PREFIX
    t: Table = {}
    _wn(t, "encoder.conv1", P + "encoder.layers.0")
    for b in range(n_blocks):
        s, d = P + f"encoder.layers.{b + 1}", f"encoder.block.{b}"
        for r in range(3):
            _res_unit(t, f"{d}.res_unit{r + 1}", f"{s}.layers.{r}")
        _snake_rows(t, d + ".snake1", s + ".layers.3")
        _wn(t, d + ".conv1", s + ".layers.4")
    _snake_rows(t, "encoder.snake1", P + f"encoder.layers.{n_blocks + 1}")
    _wn(t, "encoder.conv2", P + f"encoder.layers.{n_blocks + 2}")
    _wn(t, "decoder.conv1", P + "decoder.layers.0")
    for b in range(n_blocks):
        s, d = P + f"decoder.layers.{b + 1}", f"decoder.block.{b}"
        _snake_rows(t, d + ".snake1", s + ".layers.0")
        _wn(t, d + ".conv_t1", s + ".layers.1")
        for r in range(3):
            _res_unit(t, f"{d}.res_unit{r + 1}", f"{s}.layers.{r + 2}")
    _snake_rows(t, "decoder.snake1", P + f"decoder.layers.{n_blocks + 1}")
    _wn(t, "decoder.conv2", P + f"decoder.layers.{n_blocks + 2}", bias=False)
    return t


def projection_table() -> Table:
    t: Table = {}
    for sat, ours in (("seconds_start", "start_number_conditioner"), ("seconds_total", "end_number_conditioner")):
        s = COND_PREFIX + f"{sat}.embedder.embedding."
        d = f"{ours}.time_positional_embedding."
        t[d + "0.weights"] = (s + "0.weights", None)
        t[d + "1.weight"] = (s + "1.weight", None)
        t[d + "1.bias"] = (s + "1.bias", None)
    return t


# ----------------------------------------------------------------------------- configs


def diffusers_kwargs(config: dict) -> tuple[dict, dict, dict]:
    """(DiT kwargs, Oobleck kwargs, projection kwargs) from a stable-audio-tools ``model_config.json``."""
    try:
        m = config["model"]
        dit = m["diffusion"]["config"]
        pre = m["pretransform"]["config"]
        enc, dec = pre["encoder"]["config"], pre["decoder"]["config"]
        conds = {c["id"]: c["config"] for c in m["conditioning"]["configs"]}
        cond_dim = m["conditioning"]["cond_dim"]
        head_dim = dit["embed_dim"] // dit["num_heads"]
        ratio = int(pre.get("downsampling_ratio", 1))
        dit_kw = dict(
            sample_size=int(config["sample_size"]) // ratio,
            in_channels=dit["io_channels"],
            num_layers=dit["depth"],
            attention_head_dim=head_dim,
            num_attention_heads=dit["num_heads"],
            num_key_value_attention_heads=dit["cond_token_dim"] // head_dim,
            out_channels=dit["io_channels"],
            cross_attention_dim=dit["cond_token_dim"],
            time_proj_dim=256,
            global_states_input_dim=dit["global_cond_dim"],
            cross_attention_input_dim=dit["cond_token_dim"],
        )
        vae_kw = dict(
            encoder_hidden_size=enc["channels"],
            downsampling_ratios=list(enc["strides"]),
            channel_multiples=list(enc["c_mults"]),
            decoder_channels=dec["channels"],
            decoder_input_channels=dec["latent_dim"],
            audio_channels=pre.get("io_channels", config.get("audio_channels", 2)),
            sampling_rate=int(config["sample_rate"]),
        )
        proj_kw = dict(
            text_encoder_dim=cond_dim,
            conditioning_dim=cond_dim,
            min_value=conds["seconds_start"]["min_val"],
            max_value=conds["seconds_start"]["max_val"],
        )
    except (KeyError, TypeError, ZeroDivisionError) as e:
        raise WeightsUnavailableError(
            f"model_config.json is not a stable-audio-tools DiT + Oobleck config (missing {e}); expected Stable Audio Open's layout"
        ) from e
    return dit_kw, vae_kw, proj_kw


def split_state_dict(state: dict, dit_depth: int, vae_blocks: int) -> tuple[dict, dict, dict]:
    """Strictly map a stable-audio-tools state dict to (DiT, Oobleck, projection) diffusers state dicts."""
    from ..weights import remap_state_dict

    tables = (dit_table(dit_depth), vae_table(vae_blocks), projection_table())
    allowed = {src for t in tables for (src, _) in t.values()} | set(IGNORED)
    unknown = sorted(k for k in state if k not in allowed)
    if unknown:
        from ..weights import StateDictMismatch

        raise StateDictMismatch(
            f"the stable-audio-tools checkpoint has {len(unknown)} key(s) this loader does not know "
            f"(e.g. {', '.join(unknown[:4])}); expected Stable Audio Open's DiT + Oobleck layout"
        )
    parts = []
    for prefix, table in zip((DIT_PREFIX, VAE_PREFIX, COND_PREFIX), tables):
        sub = {k: v for k, v in state.items() if k.startswith(prefix)}
        parts.append(remap_state_dict(sub, table, ignore=IGNORED, what=f"stable-audio-tools checkpoint ({prefix}*)"))
    return tuple(parts)


def to_sat_state_dict(dit_sd: dict, vae_sd: dict, proj_sd: dict, dit_depth: int, vae_blocks: int) -> dict:
    """The inverse mapping: diffusers state dicts -> one stable-audio-tools state dict (fused qkv/kv)."""
    out: dict[str, Any] = {}
    pending: dict[str, list] = {}
    for sd, table in ((dit_sd, dit_table(dit_depth)), (vae_sd, vae_table(vae_blocks)), (proj_sd, projection_table())):
        for ours, (src, fn) in table.items():
            v = sd[ours]
            if fn is _squeeze1:
                out[src] = v.reshape(-1, 1)
            elif fn is _snake:
                out[src] = v.reshape(-1)
            elif fn is None:
                out[src] = v
            else:
                pending.setdefault(src, []).append((ours, v))
    for src, items in pending.items():
        order = ["to_q", "to_k", "to_v"] if src.endswith("to_qkv.weight") else ["to_k", "to_v"]
        items.sort(key=lambda kv: order.index(kv[0].rsplit(".", 2)[-2]))
        out[src] = torch.cat([v for _, v in items], dim=0)
    return out


def load_sat_checkpoint(path: str | os.PathLike, dtype: torch.dtype | None = None):
    """(transformer, vae, projection_model) from a stable-audio-tools folder or ``model.safetensors`` file.

    The folder (or the file's folder) must hold ``model_config.json`` next to the weights.
    """
    from diffusers import AutoencoderOobleck, StableAudioDiTModel, StableAudioProjectionModel

    from ..weights import load_state_dict_strict, load_torch_checkpoint

    p = Path(path).expanduser()
    folder = p if p.is_dir() else p.parent
    weights = p if p.is_file() else next(
        (folder / n for n in ("model.safetensors", "model.ckpt") if (folder / n).exists()), None
    )
    cfg_path = folder / "model_config.json"
    if weights is None or not cfg_path.exists():
        raise WeightsUnavailableError(
            f"{p} is not a stable-audio-tools checkpoint: expected model.safetensors (or model.ckpt) and "
            "model_config.json in one folder, e.g. from `huggingface-cli download stabilityai/stable-audio-open-1.0 "
            "model.safetensors model_config.json --local-dir DIR`"
        )
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise WeightsUnavailableError(f"{cfg_path} is not valid JSON ({e})") from e
    dit_kw, vae_kw, proj_kw = diffusers_kwargs(config)
    state = load_torch_checkpoint(weights)
    dit_sd, vae_sd, proj_sd = split_state_dict(state, dit_kw["num_layers"], len(vae_kw["downsampling_ratios"]))
    dit = StableAudioDiTModel(**dit_kw)
    vae = AutoencoderOobleck(**vae_kw)
    proj = StableAudioProjectionModel(**proj_kw)
    load_state_dict_strict(dit, dit_sd, what=f"DiT of {weights}")
    load_state_dict_strict(vae, vae_sd, what=f"VAE of {weights}")
    load_state_dict_strict(proj, proj_sd, what=f"duration conditioners of {weights}")
    if dtype is not None:
        dit, vae, proj = dit.to(dtype), vae.to(dtype), proj.to(dtype)
    return dit.eval(), vae.eval(), proj.eval()
