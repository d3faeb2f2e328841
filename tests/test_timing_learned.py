"""Learned timing (the paper's video model): shapes, metrics, encoders, features cache, training, inference."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from folai.errors import FolaiError, MissingDependencyError, WeightsUnavailableError
from folai.metrics.timing import TimingMetrics, acc_at_k, decode_logits, envelope_l1, tolerance_accuracy
from folai.timing.model import VideoEnvelopeNet, model_config, predict_windows

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- model


@pytest.mark.parametrize("preset,tv,te", [("10s", 300, 1250), ("2s", 60, 250)])
def test_model_shapes_follow_the_duration(preset, tv, te):
    cfg = model_config(preset, input_dim=16, conv_channels=8, lstm_hidden=8)
    assert (cfg.n_video_frames, cfg.n_env_frames) == (tv, te)
    sizes = cfg.upsample_sizes()
    assert sizes[-1] == te and tv < sizes[0] < sizes[1] < te
    net = VideoEnvelopeNet(cfg).eval()
    out = net(torch.randn(2, tv, 16))
    assert out.shape == (2, te, 64)
    # the real presets keep the SPEC sizes: 1024-d input, 3 convs, 2-layer BiLSTM, 64 classes
    full = model_config(preset)
    assert full.input_dim == 1024 and full.lstm_layers == 2 and full.n_classes == 64


def test_unknown_preset_raises():
    with pytest.raises(FolaiError, match="unknown model preset"):
        model_config("huge")


def test_predict_windows_any_length_and_equal_to_one_window():
    torch.manual_seed(0)
    cfg = model_config("tiny", input_dim=12, conv_channels=8, lstm_hidden=8)
    net = VideoEnvelopeNet(cfg).eval()
    feats = torch.randn(cfg.n_video_frames, 12)
    with torch.no_grad():
        direct = net(feats[None]).softmax(-1)[0]
    assert torch.allclose(predict_windows(net, feats), direct, atol=1e-6)
    long = torch.randn(173, 12)  # 5.77 s: several overlapping windows
    out = predict_windows(net, long, overlap=0.5)
    assert out.shape == (cfg.env_frames_for(173), 64)
    assert torch.allclose(out.sum(-1), torch.ones(out.shape[0]), atol=1e-5)
    short = predict_windows(net, torch.randn(20, 12))
    assert short.shape == (cfg.env_frames_for(20), 64)
    with pytest.raises(FolaiError, match="features must be"):
        predict_windows(net, torch.randn(60, 13))


# ----------------------------------------------------------------------------- metrics


def test_acc_at_k_and_tolerance_on_hand_made_logits():
    logits = np.array([[0.0, 3.0, 2.0, 1.0], [5.0, 1.0, 0.0, 2.0], [0.0, 1.0, 2.0, 3.0]])
    target = np.array([2, 1, 3])  # ranks of the targets: 2nd, 3rd, 1st
    assert acc_at_k(logits, target, 1) == pytest.approx(1 / 3)
    assert acc_at_k(logits, target, 2) == pytest.approx(2 / 3)
    assert acc_at_k(logits, target, 3) == pytest.approx(1.0)
    assert tolerance_accuracy(logits, target, 0) == pytest.approx(1 / 3)  # argmax 1, 0, 3
    assert tolerance_accuracy(logits, target, 1) == pytest.approx(1.0)  # |1-2| = 1, |0-1| = 1, 0
    assert tolerance_accuracy(logits, target, 1) != tolerance_accuracy(logits, target, 0)
    assert envelope_l1(np.array([0.0, 0.5, 1.0]), np.array([0.1, 0.5, 0.7])) == pytest.approx(0.4 / 3)
    # decoding: class 0 -> rms 0, class 63 -> just under 1 (mu-law expand)
    one_hot = np.eye(64)[[0, 63]]
    dec = decode_logits(one_hot)
    assert dec[0] == 0.0 and 0.9 < dec[1] <= 1.0


def test_timing_metrics_accumulates_like_the_functions():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 50, 64))
    cls = rng.integers(0, 64, size=(3, 50))
    rms = rng.uniform(0, 1, size=(3, 50))
    m = TimingMetrics()
    m.update(logits[:1], cls[:1], rms[:1])
    m.update(logits[1:], cls[1:], rms[1:])
    out = m.compute()
    for k in (1, 5, 10):
        assert out[f"acc@{k}"] == pytest.approx(acc_at_k(logits, cls, k))
    assert out["acc+-1"] == pytest.approx(tolerance_accuracy(logits, cls, 1))
    assert out["el1"] == pytest.approx(envelope_l1(decode_logits(logits), rms))
    assert out["frames"] == 150


# ----------------------------------------------------------------------------- TC-CLIP


def _tiny_tcclip(**kw):
    from folai.timing.tcclip import TCCLIPConfig, TCCLIPVision

    cfg = TCCLIPConfig(**{**dict(image_size=32, patch_size=8, width=32, layers=2, heads=2, output_dim=8,
                                 num_frames=4, context_tokens=4, seed_token_a=0.5, tome_r=3), **kw})
    torch.manual_seed(0)
    m = TCCLIPVision(cfg).eval()
    with torch.no_grad():  # make the local/global bias non-trivial
        for blk in m.transformer.resblocks[1:]:
            blk.attn.local_global_bias_table.normal_(0, 0.5)
    return m


def test_tcclip_shapes_and_temporal_context():
    m = _tiny_tcclip()
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        y = m(x)
        x2 = x.clone()
        x2[:, 0] += 1.0  # change only frame 0
        y2 = m(x2)
    assert y.shape == (2, 4, 8)
    # with 2 blocks, frame 3 sees frame 0 through the context tokens
    assert (y2[:, 3] - y[:, 3]).abs().max() > 1e-4
    # a single block has no context keys yet (first block is local): frames stay independent
    m1 = _tiny_tcclip(layers=1)
    with torch.no_grad():
        z, z2 = m1(x), m1(x2)
    assert torch.allclose(z[:, 1:], z2[:, 1:], atol=1e-6)
    assert (z[:, 0] - z2[:, 0]).abs().max() > 1e-4


def test_tcclip_loads_official_and_openai_layouts(tmp_path):
    from folai.timing.tcclip import tcclip_from_checkpoint

    m = _tiny_tcclip()
    sd = m.state_dict()
    x = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        ref = m(x)
    over = dict(heads=2, num_frames=4, context_tokens=4, seed_token_a=0.5, tome_r=3)
    # official training checkpoint: {"model": {"module.image_encoder.*", prompt learner, text encoder...}}
    official = {f"module.image_encoder.{k}": v for k, v in sd.items()}
    official["module.prompt_learner.ctx"] = torch.zeros(4, 8)
    official["module.logit_scale"] = torch.tensor(4.6)
    torch.save({"model": official, "epoch": 3}, tmp_path / "tc.pth")
    m2 = tcclip_from_checkpoint(tmp_path / "tc.pth", **over)
    with torch.no_grad():
        assert torch.allclose(m2(x), ref, atol=1e-6)
    # OpenAI CLIP layout: "visual." prefix and fused in_proj q/k/v
    fused = {}
    for k, v in sd.items():
        if ".attn.q_proj." in k:
            kind = k.rsplit(".", 1)[1]
            parts = [sd[k.replace("q_proj", n)] for n in ("q_proj", "k_proj", "v_proj")]
            fused["visual." + k.replace(f"q_proj.{kind}", f"in_proj_{kind}")] = torch.cat(parts)
        elif ".attn.k_proj." in k or ".attn.v_proj." in k:
            continue
        else:
            fused["visual." + k] = v
    torch.save(fused, tmp_path / "clip.pth")
    m3 = tcclip_from_checkpoint(tmp_path / "clip.pth", **over)
    with torch.no_grad():
        assert torch.allclose(m3(x), ref, atol=1e-6)
    # a key missing -> a clear error, never a silent partial load
    bad = dict(official)
    bad.pop("module.image_encoder.ln_post.weight")
    torch.save({"model": bad}, tmp_path / "bad.pth")
    with pytest.raises(WeightsUnavailableError, match="missing"):
        tcclip_from_checkpoint(tmp_path / "bad.pth", **over)
    with pytest.raises(WeightsUnavailableError, match="not found"):
        tcclip_from_checkpoint(tmp_path / "nope.pth")


OFFICIAL = os.environ.get("FOLAI_TCCLIP_OFFICIAL", "/tmp/tc-clip")


@pytest.mark.skipif(not Path(OFFICIAL, "clip", "vision_transformer_tc.py").is_file(),
                    reason="official TC-CLIP code not available (set FOLAI_TCCLIP_OFFICIAL to a checkout)")
def test_tcclip_matches_official_code():
    pytest.importorskip("einops")
    import subprocess

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "compare_tcclip_official.py"), "--official", OFFICIAL,
         "--width", "32", "--layers", "2", "--heads", "2", "--frames", "2", "--context", "8"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    diff = float(r.stdout.strip().splitlines()[-1].split("=")[1])
    assert diff <= 1e-4


# ----------------------------------------------------------------------------- encoders


def test_tcclip_encoder_windows_and_streams():
    from folai.timing.encoders import TCCLIPEncoder

    m = _tiny_tcclip()
    enc = TCCLIPEncoder(model=m, device="cpu")
    rgb = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)  # 1.5 windows
    flow = np.random.default_rng(1).normal(size=(6, 32, 32, 2)).astype(np.float32)
    out = enc.encode(rgb, flow)
    assert out.shape == (6, 16) and enc.dim == 16 and enc.window == 4
    rgb_only = TCCLIPEncoder(model=m, device="cpu", streams="rgb").encode(rgb, None)
    assert rgb_only.shape == (6, 8)
    np.testing.assert_allclose(rgb_only, out[:, :8], atol=1e-5)


def test_clip_encoder_tiny_random_model():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from folai.timing.encoders import CLIPEncoder, _normalise

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                           num_attention_heads=2, projection_dim=8)
    model = CLIPVisionModelWithProjection(cfg).eval()
    enc = CLIPEncoder(model=model, device="cpu", batch_size=2)
    rgb = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    flow = np.zeros((5, 32, 32, 2), np.float32)
    out = enc.encode(rgb, flow)
    assert out.shape == (5, 16) and enc.image_size == 32
    with torch.no_grad():
        ref = model(pixel_values=_normalise(rgb)).image_embeds.numpy()
    np.testing.assert_allclose(out[:, :8], ref, atol=1e-5)
    with pytest.raises(WeightsUnavailableError, match="CLIP weights"):
        CLIPEncoder(weights=str(Path("/nonexistent/clip-folder")))


def test_flowstats_sees_motion_and_stillness():
    from folai.timing.encoders import FlowStatsEncoder

    enc = FlowStatsEncoder(image_size=32)
    rgb = np.zeros((3, 32, 32, 3), np.uint8)
    still = enc.encode(rgb, np.zeros((3, 32, 32, 2), np.float32))
    assert still.shape == (3, 512) and np.all(still[:, :496] == 0)  # no motion, black frames
    assert np.allclose(still[:, 496], np.log1p(1.0)) and np.all(still[:, 497:] == 0)  # all pixels in the still bin
    enc.reset()
    flow = np.zeros((3, 32, 32, 2), np.float32)
    flow[1, :8, :8, 1] = 3.0  # downward motion top-left in frame 1, stops in frame 2
    f = enc.encode(rgb, flow)
    assert np.abs(f[1]).max() > 0
    cells = f[:, :320].reshape(3, 8, 8, 5)
    assert cells[1, 0, 0, 1] > 0 and cells[1, 7, 7, 2] == 0  # v > 0 top-left, no motion bottom-right
    assert cells[1, 0, 0, 4] > 0 and cells[2, 0, 0, 4] > 0  # acceleration when motion starts and stops
    assert cells[2, 0, 0, 2] == 0  # no motion any more in frame 2
    colour = FlowStatsEncoder(image_size=32).encode(np.full((1, 32, 32, 3), 255, np.uint8), np.zeros((1, 32, 32, 2), np.float32))
    assert np.allclose(colour[0, 448:496], np.log1p(1.0))  # the 4 x 4 mean-colour block of a white frame


def test_flow_image_colour_wheel():
    from folai.timing.features import flow_to_image

    img = flow_to_image(np.zeros((8, 8, 2), np.float32))
    assert img.shape == (8, 8, 3) and img.max() == 0
    right = np.zeros((8, 8, 2), np.float32)
    right[..., 0] = 2.0
    r = flow_to_image(right)
    assert r[0, 0, 0] == 255 and r[0, 0, 1] < 10  # hue 0 = red
    down = np.zeros((8, 8, 2), np.float32)
    down[..., 1] = 2.0
    assert not np.array_equal(flow_to_image(down), r)


def test_raft_without_torchvision_says_which_extra():
    from folai.timing.features import get_flow

    try:
        import torchvision  # noqa: F401
    except Exception:
        with pytest.raises(MissingDependencyError, match=r"folai\[raft\]"):
            get_flow("raft")
    else:  # pragma: no cover - only where torchvision is installed
        pytest.skip("torchvision installed: RAFT needs weights, covered by @weights tests")


# ----------------------------------------------------------------------------- features, training, inference


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """6 synthetic 2 s clips (mp4 + wav, folder layout) and their flowstats features."""
    from folai.data.synthetic import simulate_clip, write_clip
    from folai.timing.features import extract_folder

    root = tmp_path_factory.mktemp("clips")
    data, feats = root / "data", root / "feats"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        c = simulate_clip(rng, duration=2.0, size=32)
        write_clip(c, data / f"c{i}.mp4", data / f"c{i}.wav")
    res = extract_folder(data, feats, encoder="flowstats", encoder_options={"image_size": 32},
                         flow_options={"preset": "ultrafast"}, progress=False)
    assert res == {"done": 6, "skipped": 0, "total": 6, "failed": 0, "errors": []}
    return data, feats


def test_feature_cache_is_reused_and_invalidated(clips, tmp_path):
    from folai.timing.features import FeatureCache, extract_folder

    data, feats = clips
    first = {p: p.stat().st_mtime_ns for p in feats.rglob("*.safetensors")}
    again = extract_folder(data, feats, encoder="flowstats", encoder_options={"image_size": 32},
                           flow_options={"preset": "ultrafast"}, progress=False)
    assert again == {"done": 0, "skipped": 6, "total": 6, "failed": 0, "errors": []}
    assert {p: p.stat().st_mtime_ns for p in feats.rglob("*.safetensors")} == first
    x, meta = FeatureCache(feats, data).load(data / "c0.mp4")
    assert x.shape == (60, 512) and meta["encoder"] == "flowstats" and meta["fps"] == "30.0"
    assert meta["version"] == "1"
    # another encoder setting is not mistaken for a finished clip
    other = extract_folder([data / "c0.mp4"], tmp_path / "f2", encoder="flowstats", data_root=data,
                           encoder_options={"image_size": 16}, progress=False)
    assert other["done"] == 1
    changed = extract_folder([data / "c0.mp4"], tmp_path / "f2", encoder="flowstats", data_root=data,
                             encoder_options={"image_size": 32}, progress=False)
    assert changed["done"] == 1


def _datasets(clips):
    from folai.data.chunks import VideoFolder
    from folai.data.timing import TimingDataset

    data, feats = clips
    ch = VideoFolder(data, "all", chunk_seconds=2.0)
    ds = TimingDataset(ch, feats, progress=False)
    return ds


def test_extract_passes_over_an_unreadable_video_and_says_so(clips, tmp_path, capsys):
    # one truncated file among a dataset's videos stopped the whole extraction, and a re-run
    # stopped at the same file (found by a review); now the others are extracted, the command
    # names the bad one and exits 1
    import shutil

    from folai.cli import main

    data, _ = clips
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    bad = sorted(copy.glob("*.mp4"))[0]
    bad.write_bytes(bad.read_bytes()[:3000])
    rc = main(["extract", str(copy), "--out", str(tmp_path / "f"), "--image-size", "32"])
    out, err = capsys.readouterr()
    n = len(list(copy.glob("*.mp4")))
    assert rc == 1 and f"{n - 1} extracted" in out and "1 unreadable" in out and bad.name in err, (out, err)


def test_checkpoint_round_trip_and_resume_equals_uninterrupted(clips, tmp_path, monkeypatch):
    import folai.timing.train as tr
    from folai.timing.learned import load_model
    from folai.timing.train import train_config, train_timing

    ds = _datasets(clips)
    mcfg = model_config("tiny", input_dim=ds.feature_dim, conv_channels=8, lstm_hidden=8)
    # uninterrupted: 3 epochs
    straight = tmp_path / "straight"
    train_timing(ds, ds, straight, mcfg, train_config("tiny", batch_size=3, epochs=3), device="cpu", progress=False)
    # the same run killed while saving its third epoch, then started again with the same command
    run = tmp_path / "run"
    real_save, calls = tr._atomic_torch_save, []

    def dying_save(obj, path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_save(obj, path)

    monkeypatch.setattr(tr, "_atomic_torch_save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train_timing(ds, ds, run, mcfg, train_config("tiny", batch_size=3, epochs=3), device="cpu", progress=False)
    monkeypatch.setattr(tr, "_atomic_torch_save", real_save)
    assert {p.name for p in run.iterdir()} >= {"config.json", "last.safetensors", "best.safetensors", "state.pt", "log.csv"}
    assert not list(run.glob("*.part*"))  # no half-written files
    out = train_timing(ds, ds, run, mcfg, train_config("tiny", batch_size=3, epochs=3), device="cpu", progress=False)
    rows = (run / "log.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]
    a, conf = load_model(straight / "last.safetensors")
    b, _ = load_model(run / "last.safetensors")
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(va, vb, atol=1e-6), k
    assert conf["model"]["input_dim"] == 512 and conf["features"]["encoder"] == "flowstats"
    assert np.isfinite(out["el1"]) and 0 <= out["acc@5"] <= 1
    # the run folder resolves to best.safetensors, whose metadata records its epoch and metrics
    from folai.timing.learned import load_checkpoint, resolve_checkpoint

    assert resolve_checkpoint(run).name == "best.safetensors"
    assert "el1" in load_checkpoint(run)[1]["val"]
    # other settings on a run folder are refused, not ignored (a new --lr or model size had
    # trained the old run on without a word), and a cosine schedule is not extended past its end
    # (its learning rate had hit 0 and climbed again; both found by a review)
    with pytest.raises(FolaiError, match=r"other settings \(lr 0.003 -> 0.0001"):
        train_timing(ds, ds, run, mcfg, train_config("tiny", batch_size=3, epochs=3, lr=1e-4), device="cpu",
                     progress=False)
    bigger = model_config("tiny", input_dim=ds.feature_dim, conv_channels=16, lstm_hidden=8)
    with pytest.raises(FolaiError, match="conv_channels 8 -> 16"):
        train_timing(ds, ds, run, bigger, train_config("tiny", batch_size=3, epochs=3), device="cpu", progress=False)
    with pytest.raises(FolaiError, match="cosine schedule was planned for 3 epochs"):
        train_timing(ds, ds, run, mcfg, train_config("tiny", batch_size=3, epochs=5), device="cpu", progress=False)


def test_learned_timing_backend_estimates_an_envelope(clips, tmp_path):
    from folai.timing import get_timing
    from folai.timing.train import train_config, train_timing

    data, _ = clips
    ds = _datasets(clips)
    mcfg = model_config("tiny", input_dim=ds.feature_dim, conv_channels=8, lstm_hidden=8)
    train_timing(ds, ds, tmp_path / "run", mcfg, train_config("tiny", batch_size=3, epochs=1), device="cpu", progress=False)
    timing = get_timing("learned", checkpoint=str(tmp_path / "run"), device="cpu")
    res = timing.estimate(data / "c1.mp4", progress=False)
    env = res.envelope
    assert env.rate == 125.0 and env.channels == 1
    assert env.n_frames == 250  # 2 s video
    assert np.all((env.values >= 0) & (env.values <= 1))
    assert res.info["encoder"] == "flowstats"
    # the backend decodes exactly what the model predicts
    from folai.envelope import classes_to_rms

    feats = timing.features(data / "c1.mp4")
    with torch.no_grad():
        cls = timing.model(torch.from_numpy(feats)[None]).argmax(-1)[0].numpy()
    np.testing.assert_allclose(env.mono, classes_to_rms(cls), atol=1e-6)
    with pytest.raises(WeightsUnavailableError):
        get_timing("learned", checkpoint=str(tmp_path / "missing-run"))
    # features from RAFT with the user's own weights file: inference had used torchvision's
    # instead (a download, or another flow than training saw; found by a review)
    raft = get_timing("learned", checkpoint=str(tmp_path / "run"), device="cpu")
    raft.flow_method, raft.flow_cfg = "raft", {"method": "raft", "weights": "mine.pth", "weights_sha256": "ab12"}
    with pytest.raises(WeightsUnavailableError, match="RAFT weights mine.pth .*--flow-weights"):
        raft._build_encoder()
    # through the CLI, as users call it
    from folai.cli import main
    from folai.envelope import Envelope

    assert main(["envelope", str(data / "c1.mp4"), "--timing", "learned", "--checkpoint", str(tmp_path / "run"),
                 "--device", "cpu", "-o", str(tmp_path / "e.csv")]) == 0
    np.testing.assert_allclose(Envelope.load_csv(tmp_path / "e.csv").mono, env.mono, atol=1e-6)


def test_fine_tune_from_checkpoint_keeps_weights_shape(clips, tmp_path):
    from folai.timing.learned import load_checkpoint
    from folai.timing.train import train_config, train_timing

    ds = _datasets(clips)
    mcfg = model_config("tiny", input_dim=ds.feature_dim, conv_channels=8, lstm_hidden=8)
    train_timing(ds, ds, tmp_path / "base", mcfg, train_config("tiny", batch_size=3, epochs=1), device="cpu", progress=False)
    # fine-tune: the preset's sizes differ (default tiny), the checkpoint's sizes win
    train_timing(ds, ds, tmp_path / "ft", model_config("tiny"), train_config("tiny", batch_size=3, epochs=1, lr=1e-3),
                 init=tmp_path / "base", device="cpu", progress=False)
    sd0, _ = load_checkpoint(tmp_path / "base" / "last.safetensors")
    sd1, conf = load_checkpoint(tmp_path / "ft" / "last.safetensors")
    assert conf["model"]["conv_channels"] == 8
    assert not torch.equal(sd0["head.weight"], sd1["head.weight"])
    # its own command, run again, resumes (it had been refused: the preset's sizes are not the
    # run's, found by a review), and may raise its epochs
    out = train_timing(ds, ds, tmp_path / "ft", model_config("tiny"),
                       train_config("tiny", batch_size=3, epochs=1, lr=1e-3), init=tmp_path / "base", device="cpu",
                       progress=False)
    assert "el1" not in out  # (nothing left to train)


def test_extract_and_train_commands(clips, tmp_path, capsys):
    from folai.cli import main

    data, _ = clips
    feats = tmp_path / "feats"
    assert main(["extract", str(data), "--out", str(feats), "--image-size", "32"]) == 0
    assert "6 extracted" in capsys.readouterr().out
    assert main(["extract", str(data), "--out", str(tmp_path / "f1"), "--image-size", "32", "--pattern", "c1*.mp4"]) == 0
    assert "1 extracted" in capsys.readouterr().out and (tmp_path / "f1" / "c1.mp4.safetensors").is_file()
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"preset": "tiny", "model": {"conv_channels": 8, "lstm_hidden": 8},
                               "train": {"epochs": 1, "batch_size": 2}}))
    rc = main(["train", "timing", "--features", str(feats), "--data", str(data), "--out", str(tmp_path / "run"),
               "--config", str(cfg), "--dataset", "folder", "--device", "cpu", "--no-progress"])
    assert rc == 0
    said = capsys.readouterr().out
    assert "1 epoch, val E-L1" in said and "nan" not in said  # (it said "epoch 0")
    # a finished run started again (how a run is resumed) has nothing to do: it said "val E-L1 nan"
    assert main(["train", "timing", "--features", str(feats), "--data", str(data), "--out", str(tmp_path / "run"),
                 "--config", str(cfg), "--dataset", "folder", "--device", "cpu", "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "already trained 1 epoch: nothing to do" in said and "nan" not in said
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    assert conf["data"]["dataset"] == "folder" and conf["model"]["duration"] == 2.0
    assert main(["train", "timing", "--features", str(feats), "--data", str(data), "--out", str(tmp_path / "r2"),
                 "--config", "nonsense"]) == 1
    capsys.readouterr()
    # a dataset too small to hold a validation clip out: the error says which split is empty (it
    # said "the dataset split has no chunks"; found by a review)
    import shutil

    small = tmp_path / "small"
    small.mkdir()
    for name in ("c0", "c1"):
        for suffix in (".mp4", ".wav"):
            if (data / f"{name}{suffix}").exists():
                shutil.copy(data / f"{name}{suffix}", small / f"{name}{suffix}")
    assert main(["train", "timing", "--features", str(feats), "--data", str(small), "--out", str(tmp_path / "r3"),
                 "--config", str(cfg), "--dataset", "folder", "--device", "cpu", "--no-progress"]) == 1
    assert "the val split of" in capsys.readouterr().err


# ----------------------------------------------------------------------------- real weights (never in CI)


@pytest.mark.weights
def test_real_clip_vit_b16_gives_1024_features(tmp_path):
    from folai.data.synthetic import simulate_clip, write_clip
    from folai.timing.encoders import CLIPEncoder
    from folai.timing.features import extract_video_features

    write_clip(simulate_clip(np.random.default_rng(0), duration=1.0, size=64), tmp_path / "v.mp4")
    enc = CLIPEncoder(os.environ.get("FOLAI_CLIP_WEIGHTS", "openai/clip-vit-base-patch16"))
    x = extract_video_features(tmp_path / "v.mp4", enc)
    assert x.shape == (30, 1024) and np.isfinite(x).all()


@pytest.mark.weights
@pytest.mark.skipif(not os.environ.get("FOLAI_TCCLIP_CKPT"), reason="set FOLAI_TCCLIP_CKPT to an official TC-CLIP .pth")
def test_real_tcclip_checkpoint_loads_strictly(tmp_path):
    from folai.timing.tcclip import tcclip_from_checkpoint

    m = tcclip_from_checkpoint(os.environ["FOLAI_TCCLIP_CKPT"])
    assert m.config.width == 768 and m.config.layers == 12 and m.config.output_dim == 512
    with torch.no_grad():
        y = m(torch.zeros(1, 16, 3, 224, 224))
    assert y.shape == (1, 16, 512)


def test_documented_examples_run():
    import doctest

    import folai.metrics.timing
    import folai.timing.model

    for mod in (folai.timing.model, folai.metrics.timing):
        res = doctest.testmod(mod, verbose=False)
        assert res.attempted > 0 and res.failed == 0, mod.__name__


def test_encoder_weights_are_recorded_by_absolute_path_and_can_be_given_again(tmp_path, monkeypatch):
    # features extracted with a relative --encoder-weights (as the docs show) recorded it as typed:
    # the trained run's timing then worked only from that folder, and envelope / generate had no
    # flag to point at the weights (found by a review)
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from folai.cli import main
    from folai.timing.encoders import CLIPEncoder

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, projection_dim=8)
    CLIPVisionModelWithProjection(cfg).save_pretrained(tmp_path / "tinyclip")
    monkeypatch.chdir(tmp_path)
    enc = CLIPEncoder(weights="tinyclip", device="cpu")
    assert enc.weights == str((tmp_path / "tinyclip").resolve())
    assert CLIPEncoder(weights=enc.weights, device="cpu").weights == enc.weights
    # the flags exist, and are refused without the learned timing
    from folai.testing import make_static_video

    video = str(make_static_video(tmp_path / "x.mp4", duration=0.5))
    with pytest.raises(FolaiError, match="--encoder-weights is only used with --timing learned"):
        main(["envelope", video, "-o", "x.csv", "--encoder-weights", "tinyclip", "--debug"])
    with pytest.raises(FolaiError, match="--flow-weights is only used with --timing learned"):
        main(["envelope", video, "-o", "x.csv", "--flow-weights", "raft.pth", "--debug"])


def test_feature_cache_knows_encoder_weights_by_their_contents(tmp_path):
    # the cache key held the weights' path: weights replaced at the same path reused the old
    # ones' features (found by a review)
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from folai.timing.encoders import CLIPEncoder
    from folai.timing.features import FeatureCache

    cfg = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, projection_dim=8)
    sigs = []
    for seed in (0, 1, 0):
        torch.manual_seed(seed)
        CLIPVisionModelWithProjection(cfg).save_pretrained(tmp_path / "clip")  # the same path each time
        sigs.append(FeatureCache.signature(CLIPEncoder(weights=str(tmp_path / "clip"), device="cpu"), None, 30.0))
    assert sigs[0] != sigs[1] and sigs[0] == sigs[2]
