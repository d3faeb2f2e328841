"""Each embedder at tiny size with random weights: shapes, resampling, checkpoint loading, cache."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from folai.errors import WeightsUnavailableError  # noqa: E402
from folai.metrics.audio import resample  # noqa: E402
from folai.metrics.cache import EmbeddingCache  # noqa: E402
from folai.metrics.embedders import get_embedder  # noqa: E402
from folai.metrics.embedders import i3d, msclap, panns, vggish  # noqa: E402


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)


def noise(seconds, sr, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def test_panns_tiny_shapes_resampling_and_strict_load(tmp_path):
    cfg = panns.PannsConfig.tiny()
    model = panns.WavegramLogmelCnn14(cfg)
    ckpt = tmp_path / "panns.pth"
    torch.save({"model": model.state_dict(), "epoch": 3}, ckpt)   # the published file's layout
    emb = panns.load(str(ckpt), config=cfg)
    y = noise(2.0, 44100)
    out = emb.embed_audio(y, 44100)
    assert out.shape == (1, cfg.widths[-1]) and np.isfinite(out).all()
    # resampled to 32 kHz inside: giving 32 kHz audio directly gives the same embedding
    np.testing.assert_allclose(emb.embed_audio(resample(y, 44100, 32000), 32000), out, rtol=1e-4, atol=1e-5)
    # very short input is padded, not an error
    assert emb.embed_audio(noise(0.1, 32000), 32000).shape == (1, cfg.widths[-1])


def test_panns_full_size_keys_match_published_names():
    sd = panns.WavegramLogmelCnn14().state_dict()
    for k in ("pre_conv0.weight", "pre_block4.conv1.weight", "conv_block6.bn2.running_var", "fc_audioset.bias",
              "spectrogram_extractor.stft.conv_real.weight", "logmel_extractor.melW", "bn0.num_batches_tracked"):
        assert k in sd
    assert tuple(sd["fc1.weight"].shape) == (2048, 2048) and tuple(sd["conv_block2.conv1.weight"].shape) == (128, 128, 3, 3)
    assert tuple(sd["logmel_extractor.melW"].shape) == (513, 64)


def test_wrong_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"model": {"fc1.weight": torch.zeros(2, 2)}}, bad)
    with pytest.raises(WeightsUnavailableError, match="does not match the PANNs"):
        panns.load(str(bad), config=panns.PannsConfig.tiny())
    with pytest.raises(WeightsUnavailableError, match="not found"):
        panns.load(str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("name", ["panns", "msclap", "laion_clap", "vggish", "i3d"])
def test_missing_weights_name_the_file_to_get(name):
    with pytest.raises(WeightsUnavailableError, match=r"pass --"):
        get_embedder(name, None)


def test_vggish_tiny_examples_per_0_96_s_and_frontend():
    emb = vggish.VGGishEmbedder(vggish.VGGish(vggish.VGGishConfig.tiny()))
    out = emb.embed_audio(noise(3.0, 48000), 48000)
    assert out.shape == (3, 8)             # 3 s -> 3 examples of 0.96 s
    assert emb.embed_audio(noise(0.5, 16000), 16000).shape == (0, 8)
    ex = vggish.log_mel_examples(np.zeros(16000))
    assert ex.shape == (1, 96, 64) and np.allclose(ex, np.log(0.01))   # silence -> log offset
    m = vggish.mel_matrix()
    assert m.shape == (257, 64) and (m[0] == 0).all() and m.max() <= 1.0
    sd = vggish.VGGish().state_dict()
    assert tuple(sd["embeddings.0.weight"].shape) == (4096, 512 * 4 * 6) and "features.13.weight" in sd and "features.14.weight" not in sd


def test_vggish_load_ignores_pca_unless_asked(tmp_path):
    cfg = vggish.VGGishConfig.tiny()
    model = vggish.VGGish(cfg, postprocess=True)
    torch.save(model.state_dict(), tmp_path / "v.pth")
    plain = vggish.load(str(tmp_path / "v.pth"), config=cfg)
    pca = vggish.load(str(tmp_path / "v.pth"), config=cfg, postprocess=True)
    y = noise(2.0, 16000)
    assert plain.key != pca.key
    q = pca.embed_audio(y, 16000)
    assert np.all(q == np.round(q)) and q.min() >= 0 and q.max() <= 255   # quantised to 8 bit


def test_msclap_tiny_windows_and_keys(tmp_path):
    cfg = msclap.HTSATConfig.tiny()
    model = msclap.MSClapAudioEncoder(cfg)
    sd = {"audio_encoder." + k: v for k, v in model.state_dict().items()}
    sd["caption_encoder.projection.linear1.weight"] = torch.zeros(3, 3)   # text side is ignored
    sd["logit_scale"] = torch.tensor(1.0)
    torch.save({"model": sd}, tmp_path / "clap.pth")
    emb = msclap.load(str(tmp_path / "clap.pth"), config=cfg)
    out = emb.embed_audio(noise(2.5, 22050), 22050)
    assert out.shape == (3, cfg.d_proj) and np.isfinite(out).all()    # 7 s windows every 1 s
    full = msclap.MSClapAudioEncoder().state_dict()
    assert "base.htsat.layers.0.blocks.1.attn_mask" in full and "base.htsat.tscam_conv.weight" in full
    assert tuple(full["projection.linear1.weight"].shape) == (1024, 768)


def test_laion_clap_tiny_via_transformers():
    transformers = pytest.importorskip("transformers")
    from folai.metrics.embedders.laion_clap import LaionClapEmbedder

    cfg = transformers.ClapConfig(
        text_config=dict(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=40),
        audio_config=dict(hidden_size=16, depths=[1, 1], num_attention_heads=[1, 2], patch_embeds_hidden_size=8,
                          window_size=8, spec_size=256, num_hidden_layers=2),
        projection_dim=8,
    )

    class Tok:
        def __call__(self, texts, padding=True, return_tensors="pt"):
            ids = [[1] + [3 + ord(c) % 50 for c in t][:20] + [2] for t in texts]
            n = max(map(len, ids))
            return {"input_ids": torch.tensor([i + [0] * (n - len(i)) for i in ids]),
                    "attention_mask": torch.tensor([[1] * len(i) + [0] * (n - len(i)) for i in ids])}

    emb = LaionClapEmbedder(transformers.ClapModel(cfg), transformers.ClapFeatureExtractor(), Tok())
    y = noise(2.0, 44100)
    c = emb.embed_clip(y, 44100)
    assert c.shape == (8,) and np.linalg.norm(c) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(emb.embed_clip(y, 44100), c, atol=1e-6)      # deterministic
    assert emb.embed_audio(y, 44100).shape == (2, 8)                          # windows every 1 s
    t = emb.embed_text(["a stick hits wood"])
    assert t.shape == (1, 8)


def test_i3d_tiny_stacks_and_full_size_keys():
    emb = i3d.I3DEmbedder(i3d.I3D(i3d.I3DConfig.tiny()))
    frames = np.random.default_rng(0).integers(0, 255, (26, 32, 32, 3), dtype=np.uint8)
    out = emb.embed_frames(frames)      # stacks of 8 with step 8 needing one extra frame: 3 stacks
    assert out.shape == (3, emb.model.out_dim)
    with pytest.raises(Exception, match="too short"):
        emb.embed_frames(frames[:8])
    sd = i3d.I3D().state_dict()
    assert tuple(sd["conv3d_1a_7x7.conv3d.weight"].shape) == (64, 3, 7, 7, 7)
    assert tuple(sd["mixed_5c.branch_1.1.conv3d.weight"].shape) == (384, 192, 3, 3, 3)
    assert tuple(sd["conv3d_0c_1x1.conv3d.bias"].shape) == (400,) and i3d.I3D().out_dim == 1024


def test_i3d_loads_tf_converted_checkpoint_without_bn_counters(tmp_path):
    cfg = i3d.I3DConfig.tiny()
    sd = {k: v for k, v in i3d.I3D(cfg).state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "i3d_rgb.pt")
    emb = i3d.load(str(tmp_path / "i3d_rgb.pt"), config=cfg)
    assert emb.embed_frames(np.zeros((9, 32, 32, 3), np.uint8)).shape == (1, emb.model.out_dim)


def test_cache_avoids_recomputing_embeddings(tmp_path):
    import soundfile as sf

    f = tmp_path / "a.wav"
    sf.write(f, noise(1.5, 16000), 16000)
    emb = vggish.VGGishEmbedder(vggish.VGGish(vggish.VGGishConfig.tiny()))
    cache = EmbeddingCache(tmp_path / "cache")
    y, _ = sf.read(f, dtype="float32")
    a = cache.get_or_compute(f, emb.key, lambda: emb.embed_audio(y, 16000))
    b = cache.get_or_compute(f, emb.key, lambda: pytest.fail("recomputed"))
    np.testing.assert_array_equal(a, b)
    assert len(list((tmp_path / "cache" / emb.key).glob("*.npy"))) == 1
