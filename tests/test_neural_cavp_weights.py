"""CAVP architecture / checkpoint keys, CLAP wrapper and the weights resolver (CPU, no downloads)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from folai.errors import WeightsUnavailableError  # noqa: E402
from folai.synthesis.cavp import CAVPConfig, CAVPVideoEncoder  # noqa: E402
from folai.weights import (  # noqa: E402
    StateDictMismatch,
    is_local_ref,
    load_state_dict_strict,
    remap_state_dict,
    resolve,
)


def test_full_cavp_has_diff_foley_key_names_and_shapes():
    with torch.device("meta"):
        m = CAVPVideoEncoder()
    sd = m.state_dict()
    expect = {
        "video_encoder.conv1.conv.weight": (64, 3, 1, 7, 7),
        "video_encoder.conv1.bn.running_mean": (64,),
        "video_encoder.layer1.0.conv1.conv.weight": (64, 64, 1, 1, 1),  # not inflated
        "video_encoder.layer1.0.downsample.conv.weight": (256, 64, 1, 1, 1),
        "video_encoder.layer2.0.conv2.conv.weight": (128, 128, 1, 3, 3),
        "video_encoder.layer3.5.conv1.conv.weight": (256, 1024, 3, 1, 1),  # inflated 3x1x1
        "video_encoder.layer4.2.conv3.bn.weight": (2048,),
        "video_project_head.weight": (512, 2048),
    }
    for k, s in expect.items():
        assert tuple(sd[k].shape) == s, k
    assert "video_encoder.layer3.6.conv1.conv.weight" not in sd  # ResNet-50: 3/4/6/3 blocks
    assert sum(k.endswith("num_batches_tracked") for k in sd) == 53


def test_cavp_loads_a_diff_foley_style_checkpoint(tmp_path):
    torch.manual_seed(0)
    cfg = CAVPConfig(base_channels=4, stage_blocks=(1, 1, 1, 1), embed_dim=512)
    src = CAVPVideoEncoder(cfg).eval()
    with torch.no_grad():
        for k, v in src.state_dict().items():
            if "running_var" in k:
                v.uniform_(0.5, 1.5)
            elif v.is_floating_point():
                v.normal_(0, 0.3)
    ckpt = {"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}
    ckpt["state_dict"]["module.spec_encoder.conv_block1.conv1.weight"] = torch.zeros(2, 1, 3, 3)
    ckpt["state_dict"]["module.logit_scale"] = torch.tensor(2.0)
    ckpt["epoch"] = 66
    torch.save(ckpt, tmp_path / "cavp.ckpt")
    m = CAVPVideoEncoder.from_checkpoint(tmp_path / "cavp.ckpt", cfg)
    frames = (np.random.default_rng(0).random((5, 64, 80, 3)) * 255).astype(np.uint8)  # resized to 224 inside
    a, b = src.embed_frames(frames), m.embed_frames(frames)
    assert a.shape == (5, 512) and torch.equal(a, b)
    assert torch.allclose(a.norm(dim=-1), torch.ones(5), atol=1e-5)
    # one time step per frame: frame 4 changes, embedding 0 (temporal kernel reaches +-1 frame) does not
    f2 = frames.copy()
    f2[4] = 255 - f2[4]
    c = m.embed_frames(f2)
    assert torch.equal(c[0], a[0]) and not torch.allclose(c[4], a[4])
    bad = {"state_dict": dict(ckpt["state_dict"])}
    del bad["state_dict"]["module.video_project_head.bias"]
    torch.save(bad, tmp_path / "bad.ckpt")
    with pytest.raises(StateDictMismatch, match="video_project_head.bias"):
        CAVPVideoEncoder.from_checkpoint(tmp_path / "bad.ckpt", cfg)


def test_clap_wrapper_audio_embeddings():
    pytest.importorskip("transformers")
    from folai.synthesis.stable_audio import tiny_clap

    clap = tiny_clap(0)
    rng = np.random.default_rng(0)
    e = clap.embed_audio([rng.standard_normal(48000).astype(np.float32), rng.standard_normal(24000).astype(np.float32)])
    assert e.shape == (2, 512) and torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(e[0], e[1])


def test_resolver_and_strict_loading(tmp_path):
    assert not is_local_ref("stabilityai/stable-audio-open-1.0")
    assert is_local_ref("weights/model.safetensors") and is_local_ref(str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="not found"):
        resolve(tmp_path / "missing.safetensors", what="test")
    with pytest.raises(WeightsUnavailableError, match="lacks controlnet.json"):
        resolve(tmp_path, what="test", filenames=["controlnet.json"])
    with pytest.raises(WeightsUnavailableError, match="huggingface-cli"):
        resolve("nobody-here/no-such-model-xyz", what="test", offline=True)
    table = {"b": ("a", lambda t: t * 2), "c": ("a", None)}
    out = remap_state_dict({"a": torch.ones(2), "skip.x": torch.ones(1)}, table, ignore=["skip."])
    assert torch.equal(out["b"], torch.full((2,), 2.0)) and set(out) == {"b", "c"}
    with pytest.raises(StateDictMismatch, match="unknown"):
        remap_state_dict({"a": torch.ones(2), "z": torch.ones(1)}, table)
    lin = torch.nn.Linear(2, 3)
    with pytest.raises(StateDictMismatch, match="shape"):
        load_state_dict_strict(lin, {"weight": torch.ones(3, 3), "bias": torch.ones(3)})
