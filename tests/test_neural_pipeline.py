"""FolaiStableAudioPipeline / StableAudioSynth at toy size on CPU: shapes, determinism, windows, errors."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from folai.envelope import Envelope  # noqa: E402
from folai.errors import FolaiError, WeightsUnavailableError  # noqa: E402
from folai.synthesis import get_synth  # noqa: E402
from folai.synthesis.stable_audio import (  # noqa: E402
    FolaiStableAudioPipeline,
    StableAudioSynth,
    crossfade,
    plan_windows,
)

SR = 44100


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(1)
    p = FolaiStableAudioPipeline.tiny(seed=0)
    with torch.no_grad():  # a "trained" ControlNet: non-zero so the envelope matters
        g = torch.Generator().manual_seed(3)
        for m in [p.controlnet.env_in, *p.controlnet.out_projs]:
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.2)
    return p


def _env(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.random((2, n)), 0, 1).astype(np.float32)


@pytest.mark.parametrize("n", [300, 1500, 2048])
def test_shapes_and_determinism(pipe, n):
    assert n <= pipe.max_seconds * SR  # one window
    env = _env(n)
    a = pipe.generate(env, steps=3, cfg=2.0, seed=7, progress=False)
    b = pipe.generate(env, steps=3, cfg=2.0, seed=7, progress=False)
    c = pipe.generate(env, steps=3, cfg=2.0, seed=8, progress=False)
    assert a.shape == (2, n) and a.dtype == np.float32
    assert np.isfinite(a).all() and np.abs(a).max() <= 1.0 and np.abs(a).max() > 0
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_envelope_and_conditions_change_the_output(pipe):
    env = _env(1000)
    base = pipe.generate(env, steps=2, seed=1, progress=False)
    assert not np.array_equal(base, pipe.generate(env * 0.1, steps=2, seed=1, progress=False))
    clap = torch.nn.functional.normalize(torch.randn(1, 512), dim=-1)
    assert not np.array_equal(base, pipe.generate(env, clap=clap, steps=2, seed=1, progress=False))
    neg = torch.nn.functional.normalize(torch.randn(1, 512), dim=-1)
    assert not np.array_equal(base, pipe.generate(env, negative_clap=neg, steps=2, seed=1, progress=False))


def test_plan_windows_and_crossfade():
    w = plan_windows(1000, 400, 100)
    assert w[0].start == 0 and w[-1].start + w[-1].length == 1000
    assert all(b.start - a.start <= 300 for a, b in zip(w, w[1:]))
    assert plan_windows(300, 400, 100) == plan_windows(300, 400, 100)[:1]
    parts = [np.ones((2, x.length), np.float32) * 0.5 for x in w]
    assert np.allclose(crossfade(parts, w, 1000), 0.5)


def test_windowed_long_generation(pipe, monkeypatch):
    win = int(pipe.transformer.config.sample_size) * pipe.hop  # the base maximum (2048 samples here)
    n = int(2.6 * win)
    env = _env(n, seed=2)
    seen = []
    orig = pipe.encode_envelope

    def spy(x):
        seen.append(np.asarray(x).copy())
        return orig(x)

    monkeypatch.setattr(pipe, "encode_envelope", spy)
    cavp = torch.randn(1, 8, 512)
    a = pipe.generate(env, cavp=cavp, steps=2, seed=3, overlap=0.005, progress=False)
    windows = plan_windows(n, win, int(round(0.005 * SR)))
    assert len(windows) >= 3 and len(seen) == len(windows)
    for w, s in zip(windows, seen):  # each window conditioned on its own stretch of the envelope
        assert np.array_equal(s, env[:, w.start : w.start + w.length])
    assert a.shape == (2, n) and np.isfinite(a).all()
    monkeypatch.undo()
    b = pipe.generate(env, cavp=cavp, steps=2, seed=3, overlap=0.005, progress=False)
    assert np.array_equal(a, b)
    # a shorter window setting gives more windows, same length
    c = pipe.generate(env[:, :3000], steps=2, seed=3, window=0.03, overlap=0.005, progress=False)
    assert c.shape == (2, 3000)


def test_backend_render_with_references_video_and_pan(pipe, tmp_path):
    from folai.media import write_audio
    from folai.testing import make_clicks, make_hit_video

    ref = tmp_path / "ref.wav"
    write_audio(ref, make_clicks(0.5, SR, times=[0.1, 0.3])[None], SR)
    vid = tmp_path / "v.mp4"
    make_hit_video(vid, duration=1.0, fps=10, size=(64, 48), hit_times=[0.5], with_audio=False)
    synth = StableAudioSynth(pipeline=pipe, steps=2, cfg=2.0)
    env = Envelope(np.linspace(0, 1, 10, dtype=np.float32)[None], rate=125.0)
    d = 0.03
    plain = synth.render(env, duration=d, seed=0, progress=False)
    with_ref = synth.render(env, duration=d, references=[ref], seed=0, progress=False)
    with_vid = synth.render(env, duration=d, video=vid, seed=0, progress=False)
    assert plain.shape == with_ref.shape == with_vid.shape == (2, round(d * SR))
    assert not np.array_equal(plain, with_ref) and not np.array_equal(plain, with_vid)
    left = synth.render(env, duration=d, pan=np.array([-1.0]), seed=0, progress=False)
    assert np.abs(left[1]).max() < 1e-6 < np.abs(left[0]).max()
    with pytest.raises(FolaiError, match="duration"):
        synth.render(env, duration=0, progress=False)
    with pytest.raises(FolaiError, match="CLAP"):
        FolaiStableAudioPipeline.tiny(with_clap=False).embed_prompt("metal")


def test_cpu_offload_mode_gives_the_same_audio(pipe):
    env = _env(500)
    a = pipe.generate(env, steps=2, seed=4, progress=False)
    pipe.enable_cpu_offload("cpu")
    try:
        b = pipe.generate(env, steps=2, seed=4, progress=False)
    finally:
        pipe.to("cpu")
    assert np.array_equal(a, b)


def test_missing_weights_give_instructions(tmp_path, monkeypatch):
    with pytest.raises(WeightsUnavailableError, match="not found"):
        FolaiStableAudioPipeline.from_pretrained(tmp_path / "nowhere", clap=None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsUnavailableError, match="model_config.json"):
        FolaiStableAudioPipeline.from_pretrained(tmp_path / "empty", clap=None)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsUnavailableError, match="huggingface-cli login") as e:
        get_synth("stable-audio", base="stabilityai/stable-audio-open-1.0", clap=None, offline=True, device="cpu")
    assert "licence" in str(e.value) and "--local-dir" in str(e.value)
    with pytest.raises(WeightsUnavailableError, match="cavp_epoch66"):
        from folai.synthesis.cavp import CAVPVideoEncoder

        CAVPVideoEncoder.from_checkpoint(tmp_path / "cavp.ckpt")


def test_from_pretrained_diffusers_folder_with_controlnet(pipe, tmp_path):
    for name, m in (("transformer", pipe.transformer), ("vae", pipe.vae), ("projection_model", pipe.projection_model)):
        m.save_pretrained(tmp_path / "sao" / name)
    pipe.controlnet.save(tmp_path / "cn")
    loaded = FolaiStableAudioPipeline.from_pretrained(tmp_path / "sao", controlnet=tmp_path / "cn", clap=None,
                                                      device="cpu", dtype="fp32")
    env = _env(700)
    a = pipe.generate(env, steps=2, seed=5, progress=False)
    b = loaded.generate(env, steps=2, seed=5, progress=False)
    assert np.array_equal(a, b)


def test_documented_examples_run():
    import doctest

    import folai.synthesis.stable_audio as sa
    import folai.weights as w

    for mod in (sa, w):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.attempted > 0 and res.failed == 0, mod.__name__


def _tiny_roberta_tokenizer(tmp_path):
    import json

    from transformers import RobertaTokenizer

    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", "\u0120"] + [chr(c) for c in range(97, 123)])}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    return RobertaTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))


def test_text_prompt_and_negative(tmp_path):
    p = FolaiStableAudioPipeline.tiny(seed=0, with_cavp=False)
    p.clap.tokenizer = _tiny_roberta_tokenizer(tmp_path)
    e = p.clap.embed_text(["metal hit", "wood"])
    assert e.shape == (2, 512) and torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)
    env = Envelope(np.full((1, 10), 0.5, np.float32), rate=125.0)
    plain = StableAudioSynth(pipeline=p, steps=2).render(env, duration=0.02, seed=0, progress=False)
    prompt = StableAudioSynth(pipeline=p, steps=2).render(env, duration=0.02, prompt="metal hit", seed=0, progress=False)
    neg = StableAudioSynth(pipeline=p, steps=2, negative="music").render(env, duration=0.02, seed=0, progress=False)
    assert not np.array_equal(plain, prompt) and not np.array_equal(plain, neg)
