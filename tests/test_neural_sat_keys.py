"""stable-audio-tools checkpoint -> diffusers modules through the explicit key tables (tiny, CPU)."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusers import AutoencoderOobleck, StableAudioDiTModel, StableAudioProjectionModel  # noqa: E402
from diffusers.models.embeddings import get_1d_rotary_pos_embed  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from folai.errors import WeightsUnavailableError  # noqa: E402
from folai.synthesis import sat_keys as sk  # noqa: E402
from folai.weights import StateDictMismatch  # noqa: E402

# A tiny stable-audio-tools model_config.json in Stable Audio Open's layout
SAT_CONFIG = {
    "model_type": "diffusion_cond",
    "sample_size": 2048,
    "sample_rate": 44100,
    "audio_channels": 2,
    "model": {
        "pretransform": {
            "type": "autoencoder",
            "config": {
                "encoder": {"type": "oobleck", "config": {"in_channels": 2, "channels": 16, "c_mults": [1, 2],
                                                          "strides": [2, 4], "latent_dim": 16, "use_snake": True}},
                "decoder": {"type": "oobleck", "config": {"out_channels": 2, "channels": 8, "c_mults": [1, 2],
                                                          "strides": [2, 4], "latent_dim": 8, "use_snake": True,
                                                          "final_tanh": False}},
                "bottleneck": {"type": "vae"},
                "latent_dim": 8,
                "downsampling_ratio": 8,
                "io_channels": 2,
            },
        },
        "conditioning": {
            "configs": [
                {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": 128}},
                {"id": "seconds_start", "type": "number", "config": {"min_val": 0, "max_val": 512}},
                {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 512}},
            ],
            "cond_dim": 16,
        },
        "diffusion": {
            "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
            "global_cond_ids": ["seconds_start", "seconds_total"],
            "type": "dit",
            "config": {"io_channels": 8, "embed_dim": 32, "depth": 2, "num_heads": 4, "cond_token_dim": 16,
                       "global_cond_dim": 32, "project_cond_tokens": False, "transformer_type": "continuous_transformer"},
        },
        "io_channels": 8,
    },
}


def _randomise(m, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return m


@pytest.fixture(scope="module")
def modules():
    torch.set_num_threads(1)
    dit_kw, vae_kw, proj_kw = sk.diffusers_kwargs(SAT_CONFIG)
    dit = _randomise(StableAudioDiTModel(**dit_kw), 0).eval()
    vae = _randomise(AutoencoderOobleck(**vae_kw), 1).eval()
    proj = _randomise(StableAudioProjectionModel(**proj_kw), 2).eval()
    return dit, vae, proj


def _outputs(dit, vae, proj):
    g = torch.Generator().manual_seed(5)
    c = dit.config
    L = 10
    x = torch.randn(2, c.in_channels, L, generator=g)
    rot = get_1d_rotary_pos_embed(c.attention_head_dim // 2, L + 1, use_real=True, repeat_interleave_real=False)
    with torch.no_grad():
        v = dit(x, torch.rand(2, generator=g), encoder_hidden_states=torch.randn(2, 3, 16, generator=g),
                global_hidden_states=torch.randn(2, 1, 32, generator=g), rotary_embedding=rot).sample
        audio = torch.randn(1, 2, 64, generator=g)
        lat = vae.encode(audio).latent_dist.mean
        dec = vae.decode(torch.randn(1, 8, 6, generator=g)).sample
        p = proj(start_seconds=torch.tensor([1.0]), end_seconds=torch.tensor([9.0]))
    return v, lat, dec, p.seconds_start_hidden_states, p.seconds_end_hidden_states


def test_sat_layout_has_stable_audio_tools_names_and_shapes(modules):
    dit, vae, proj = modules
    sat = sk.to_sat_state_dict(dit.state_dict(), vae.state_dict(), proj.state_dict(), 2, 2)
    # names as stable-audio-tools' DiffusionTransformer / OobleckEncoder / NumberConditioner register them
    expect = {
        "model.model.timestep_features.weight": (128, 1),  # SAT fixes 256 Fourier features
        "model.model.to_timestep_embed.0.weight": (32, 256),
        "model.model.to_cond_embed.2.weight": (16, 16),
        "model.model.to_global_embed.0.weight": (32, 32),
        "model.model.preprocess_conv.weight": (8, 8, 1),
        "model.model.transformer.project_in.weight": (32, 8),
        "model.model.transformer.layers.1.pre_norm.gamma": (32,),
        "model.model.transformer.layers.1.pre_norm.beta": (32,),
        "model.model.transformer.layers.0.self_attn.to_qkv.weight": (96, 32),
        "model.model.transformer.layers.0.cross_attn.to_q.weight": (32, 32),
        "model.model.transformer.layers.0.cross_attn.to_kv.weight": (32, 16),
        "model.model.transformer.layers.0.ff.ff.0.proj.weight": (256, 32),
        "model.model.transformer.layers.0.ff.ff.2.bias": (32,),
        "pretransform.model.encoder.layers.0.weight_v": (16, 2, 7),
        "pretransform.model.encoder.layers.1.layers.0.layers.0.alpha": (16,),
        "pretransform.model.encoder.layers.1.layers.4.weight_g": (16, 1, 1),
        "pretransform.model.encoder.layers.3.beta": (32,),
        "pretransform.model.decoder.layers.1.layers.1.weight_v": (16, 8, 8),
        "pretransform.model.decoder.layers.4.weight_v": (2, 8, 7),
        "conditioner.conditioners.seconds_total.embedder.embedding.0.weights": (128,),
        "conditioner.conditioners.seconds_start.embedder.embedding.1.weight": (16, 257),
    }
    for k, shape in expect.items():
        assert k in sat, k
        assert tuple(sat[k].shape) == shape, (k, tuple(sat[k].shape))
    assert "pretransform.model.decoder.layers.4.bias" not in sat  # last decoder conv has no bias


def test_random_sat_checkpoint_loads_and_matches_outputs(modules, tmp_path):
    dit, vae, proj = modules
    sat = sk.to_sat_state_dict(dit.state_dict(), vae.state_dict(), proj.state_dict(), 2, 2)
    # stable-audio-tools also stores the rotary buffer; it must be accepted and ignored
    sat["model.model.transformer.rotary_pos_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, 32, 2).float() / 32))
    save_file({k: v.contiguous() for k, v in sat.items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "model_config.json").write_text(json.dumps(SAT_CONFIG))
    dit2, vae2, proj2 = sk.load_sat_checkpoint(tmp_path)
    want, got = _outputs(dit, vae, proj), _outputs(dit2, vae2, proj2)
    for a, b in zip(want, got):
        assert a.abs().sum() > 0
        assert torch.equal(a, b)
    # the file path form works too
    dit3, _, _ = sk.load_sat_checkpoint(tmp_path / "model.safetensors")
    assert torch.equal(_outputs(dit3, vae, proj)[0], want[0])


def test_loading_is_strict(modules):
    dit, vae, proj = modules
    sat = sk.to_sat_state_dict(dit.state_dict(), vae.state_dict(), proj.state_dict(), 2, 2)
    extra = dict(sat, **{"model.model.transformer.layers.0.self_attn.q_norm.weight": torch.ones(8)})
    with pytest.raises(StateDictMismatch, match="q_norm"):
        sk.split_state_dict(extra, 2, 2)
    missing = dict(sat)
    del missing["model.model.transformer.layers.1.cross_attn.to_kv.weight"]
    with pytest.raises(StateDictMismatch, match="to_kv"):
        sk.split_state_dict(missing, 2, 2)


def test_missing_files_and_sao_config():
    with pytest.raises(WeightsUnavailableError, match="model_config.json"):
        sk.load_sat_checkpoint("/nonexistent/sat")
    sao = json.loads(json.dumps(SAT_CONFIG))
    sao["sample_size"] = 2097152
    sao["model"]["pretransform"]["config"].update(downsampling_ratio=2048)
    sao["model"]["pretransform"]["config"]["encoder"]["config"].update(channels=128, c_mults=[1, 2, 4, 8, 16], strides=[2, 4, 4, 8, 8], latent_dim=128)
    sao["model"]["pretransform"]["config"]["decoder"]["config"].update(channels=128, c_mults=[1, 2, 4, 8, 16], strides=[2, 4, 4, 8, 8], latent_dim=64)
    sao["model"]["conditioning"]["cond_dim"] = 768
    sao["model"]["diffusion"]["config"].update(io_channels=64, embed_dim=1536, depth=24, num_heads=24, cond_token_dim=768, global_cond_dim=1536)
    dit_kw, vae_kw, proj_kw = sk.diffusers_kwargs(sao)
    assert dit_kw == dict(sample_size=1024, in_channels=64, num_layers=24, attention_head_dim=64, num_attention_heads=24,
                          num_key_value_attention_heads=12, out_channels=64, cross_attention_dim=768, time_proj_dim=256,
                          global_states_input_dim=1536, cross_attention_input_dim=768)
    assert vae_kw["downsampling_ratios"] == [2, 4, 4, 8, 8] and vae_kw["encoder_hidden_size"] == 128
