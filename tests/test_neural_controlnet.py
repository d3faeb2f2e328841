"""The envelope ControlNet: zero-init identity, wiring, persistence (tiny DiT, CPU)."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusers.models.embeddings import get_1d_rotary_pos_embed  # noqa: E402

from folai.errors import FolaiError  # noqa: E402
from folai.synthesis.controlnet import ControlNetConfig, EnvelopeControlNet, controlled_dit_forward  # noqa: E402
from folai.synthesis.stable_audio import tiny_components  # noqa: E402


@pytest.fixture(scope="module")
def dit():
    torch.set_num_threads(1)
    return tiny_components(seed=0, with_clap=False, with_cavp=False)["transformer"]


def _inputs(dit, B=2, L=12, S=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = dit.config
    x = torch.randn(B, c.in_channels, L, generator=g)
    t = torch.rand(B, generator=g)
    cross = torch.randn(B, S, c.cross_attention_input_dim, generator=g)
    glob = torch.randn(B, 1, c.global_states_input_dim, generator=g)
    rot = get_1d_rotary_pos_embed(c.attention_head_dim // 2, L + 1, use_real=True, repeat_interleave_real=False)
    control = torch.randn(B, c.in_channels, L, generator=g)
    return x, t, cross, glob, rot, control


def test_sao_gets_five_blocks_and_gamma_is_config():
    assert ControlNetConfig(depth=24, gamma=0.2).n_blocks == 5  # the paper's 5, not int(4.8) = 4
    assert ControlNetConfig(depth=24, gamma=0.5).n_blocks == 12
    assert ControlNetConfig(depth=5, gamma=0.01).n_blocks == 1


def test_at_init_output_equals_base_dit_exactly(dit):
    cn = EnvelopeControlNet.from_dit(dit, gamma=0.4)
    assert len(cn.blocks) == 2
    x, t, cross, glob, rot, control = _inputs(dit)
    with torch.no_grad():
        base = dit(x, t, encoder_hidden_states=cross, global_hidden_states=glob, rotary_embedding=rot).sample
        ours = controlled_dit_forward(dit, cn, x, t, cross, glob, rot, control)
    assert base.abs().max() > 0
    assert torch.equal(ours, base)


def test_copied_blocks_start_equal_but_are_independent(dit):
    cn = EnvelopeControlNet.from_dit(dit, gamma=0.4)
    for cb, fb in zip(cn.blocks, dit.transformer_blocks):
        for (n1, p1), (n2, p2) in zip(cb.named_parameters(), fb.named_parameters()):
            assert n1 == n2 and torch.equal(p1, p2)
            assert p1.data_ptr() != p2.data_ptr()
    assert all(p.requires_grad for p in cn.parameters())


def test_controlnet_path_is_wired_to_envelope_and_blocks(dit):
    cn = EnvelopeControlNet.from_dit(dit, gamma=0.4)
    x, t, cross, glob, rot, control = _inputs(dit)
    with torch.no_grad():
        base = controlled_dit_forward(dit, cn, x, t, cross, glob, rot, control)
        for p in [cn.env_in.weight, *[m.weight for m in cn.out_projs]]:
            p.normal_(0, 0.05)
        a = controlled_dit_forward(dit, cn, x, t, cross, glob, rot, control)
        b = controlled_dit_forward(dit, cn, x, t, cross, glob, rot, control * 0.0)
    assert not torch.allclose(a, base)
    assert not torch.allclose(a, b), "the envelope latent must change the output once env_in is non-zero"


def test_condition_tokens_shapes_and_masks(dit):
    cn = EnvelopeControlNet.from_dit(dit, gamma=0.4)
    clap = torch.randn(3, 512)
    cavp = torch.randn(3, 7, 512)
    tok = cn.condition_tokens(clap, cavp, 3, 4)  # CAVP resampled from 7 to 4 frames
    assert tok.shape == (3, 1 + 4, dit.config.cross_attention_input_dim)
    keep = torch.tensor([1.0, 0.0, 1.0])
    tk = cn.condition_tokens(clap, cavp, 3, 4, keep=keep, cavp_mask=torch.tensor([1.0, 1.0, 0.0]))
    assert torch.equal(tk[1], torch.zeros_like(tk[1]))
    assert torch.equal(tk[2, 1:], torch.zeros_like(tk[2, 1:])) and tk[2, 0].abs().sum() > 0
    none = cn.condition_tokens(None, None, 2, 4)
    assert none.shape == (2, 5, dit.config.cross_attention_input_dim) and not none.any()


def test_save_load_roundtrip_and_mismatch(dit, tmp_path):
    cn = EnvelopeControlNet.from_dit(dit, gamma=0.4)
    with torch.no_grad():
        for p in cn.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    cn.save(tmp_path / "cn")
    assert (tmp_path / "cn" / "controlnet.safetensors").exists() and (tmp_path / "cn" / "controlnet.json").exists()
    back = EnvelopeControlNet.load(tmp_path / "cn", dit)
    sd0, sd1 = cn.state_dict(), back.state_dict()
    assert sd0.keys() == sd1.keys() and all(torch.equal(sd0[k], sd1[k]) for k in sd0)
    # the SAO weights are not in the ControlNet file: only copied blocks + new layers
    assert not any(k.startswith(("transformer_blocks", "proj_in", "time_proj")) for k in sd1)
    other = tiny_components(seed=1, with_clap=False, with_cavp=False)["transformer"]
    other.register_to_config(num_layers=6)  # pretend a different base
    with pytest.raises(FolaiError, match="base model"):
        EnvelopeControlNet.load(tmp_path / "cn", other)


def test_full_sao_size_controlnet_shape_on_meta():
    from diffusers import StableAudioDiTModel

    with torch.device("meta"):
        sao = StableAudioDiTModel()  # SAO defaults: 24 blocks, width 1536
        cn = EnvelopeControlNet.from_dit(sao)
    assert len(cn.blocks) == 5 and cn.config.inner_dim == 1536 and cn.config.cross_dim == 768
    per_block = sum(p.numel() for p in sao.transformer_blocks[0].parameters())
    n = sum(p.numel() for p in cn.parameters())
    extra = 5 * (1536 * 1536 + 1536) + 64 * 64 + 64 + 2 * (512 * 768 + 768)
    assert n == 5 * per_block + extra
