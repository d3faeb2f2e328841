"""RAFT optical flow (torchvision ``raft_large``) for the learned-timing features.

Real pretrained RAFT weights cannot be downloaded here, so the model runs with random weights
saved to a local state-dict file: that checks loading, shapes, dtypes, padding/resizing, caching
and the CLI path, not flow quality. The flow conventions (x then y, sign, pixels per frame at the
frame size given) are checked by swapping the network for an exact shift oracle with the same
call signature and comparing against OpenCV DIS on the same translating texture.

The tests that need torchvision skip without it; the missing-dependency message is tested in
every environment by hiding torchvision.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from folai.errors import FolaiError, MissingDependencyError, WeightsUnavailableError  # noqa: E402


def test_raft_without_torchvision_names_the_extra(monkeypatch):
    """Runs everywhere: torchvision is hidden, as on an install without the raft extra."""
    from folai.timing.features import get_flow

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")] + ["torchvision"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependencyError) as err:
        get_flow("raft", weights="whatever.pth")
    msg = str(err.value)
    assert "torchvision" in msg and "pip install 'folai[raft]'" in msg and "--flow dis" in msg


# ----------------------------------------------------------------------------- with torchvision


def _tv():
    return pytest.importorskip("torchvision", reason="RAFT needs torchvision (pip install 'folai[raft]')")


@pytest.fixture(scope="module")
def raft_weights(tmp_path_factory):
    """A raft_large state dict with random (seeded) weights in a local file: no download."""
    _tv()
    from torchvision.models.optical_flow import raft_large

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("raft") / "raft_large_random.pth"
    torch.save(raft_large(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def raft(raft_weights):
    from folai.timing.features import RAFTFlow

    return RAFTFlow(weights=str(raft_weights), device="cpu", iters=2, batch=2)


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), 3.0)
    img = (img - img.min()) / (img.max() - img.min()) * 255.0
    return img.astype(np.uint8)


def _translating(n: int, H: int, W: int, dx: int, dy: int) -> np.ndarray:
    """n frames whose content moves by (dx, dy) pixels per frame (right and down positive)."""
    m = 40
    big = _texture(H + 2 * m + abs(dy) * n, W + 2 * m + abs(dx) * n)
    oy, ox = m + (abs(dy) * n if dy > 0 else 0), m + (abs(dx) * n if dx > 0 else 0)
    return np.stack([big[oy - k * dy : oy - k * dy + H, ox - k * dx : ox - k * dx + W] for k in range(n)])


class _ShiftOracle(torch.nn.Module):
    """Same call as torchvision's RAFT; returns the exact global integer shift image1 -> image2.

    Output channel 0 is x, channel 1 y, so that image1(p) == image2(p + flow), torchvision's
    convention (flow = coords1 - coords0 of its coordinate grid, whose channel 0 is x). Only
    the top-left interior is compared, so the wrapper's right/bottom padding cannot fool it.
    """

    def __init__(self, radius: int = 12):
        super().__init__()
        self.radius = radius
        self.seen: list[tuple[int, int]] = []

    def forward(self, image1, image2, num_flow_updates: int = 12):
        n, _, h, w = image1.shape
        assert h % 8 == 0 and w % 8 == 0 and min(h, w) >= 128, (h, w)
        self.seen.append((h, w))
        r = self.radius
        out = torch.zeros(n, 2, h, w)
        for i in range(n):
            a = image1[i, :, r : h // 2, r : w // 2]
            best = None
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    b = image2[i, :, r + dy : h // 2 + dy, r + dx : w // 2 + dx]
                    cost = float((a - b).abs().mean())
                    if best is None or cost < best[0]:
                        best = (cost, dx, dy)
            out[i, 0], out[i, 1] = best[1], best[2]
        return [out * 0.5, out]  # like RAFT: one prediction per update, the last is the answer


def test_raft_random_weights_shapes_dtypes_padding(raft):
    rng = np.random.default_rng(1)
    for H, W in [(128, 128), (130, 150), (64, 96)]:  # exact, padded to x8, upsampled to >= 128
        frames = rng.integers(0, 256, (3, H, W, 3), dtype=np.uint8)
        out = raft(frames, None)
        assert out.shape == (3, H, W, 2) and out.dtype == np.float32 and np.isfinite(out).all()
        assert np.all(out[0] == 0) and np.abs(out[1:]).max() > 0  # first frame of a video has no flow
        # continuing from the previous block gives the same pairs as one call
        np.testing.assert_allclose(raft(frames[1:], frames[0]), out[1:], rtol=1e-4, atol=1e-4)
    assert raft(frames[:1], None).shape == (1, H, W, 2) and not raft(frames[:1], None).any()
    assert raft._geometry(130, 150) == (130, 150, 6, 2)
    assert raft._geometry(64, 96) == (128, 192, 0, 0)


def test_raft_conventions_match_dis(raft):
    """x then y, right/down positive, pixels per frame at the frames' size, as DISFlow."""
    from folai.timing.features import DISFlow, RAFTFlow, flow_to_image

    oracle = RAFTFlow.__new__(RAFTFlow)
    oracle.__dict__.update(raft.__dict__)
    oracle.model = _ShiftOracle()
    dis = DISFlow()
    for (H, W), (dx, dy) in [((128, 136), (3, 0)), ((130, 150), (0, -2)), ((64, 64), (2, 1))]:
        frames = _translating(3, H, W, dx, dy)
        o, d = oracle(frames, None), dis(frames, None)
        assert o.shape == d.shape == (3, H, W, 2) and o.dtype == d.dtype == np.float32
        inner = (slice(1, None), slice(16, H - 16), slice(16, W - 16))
        np.testing.assert_allclose(o[inner].mean(axis=(0, 1, 2)), (dx, dy), atol=1e-4)
        np.testing.assert_allclose(d[inner].mean(axis=(0, 1, 2)), (dx, dy), atol=0.3)
        assert np.all(o[0] == 0) and np.all(d[0] == 0)
        img = flow_to_image(o[1])
        assert img.shape == (H, W, 3) and img.dtype == np.uint8
        np.testing.assert_array_equal(img, flow_to_image(np.broadcast_to(np.float32([dx, dy]), (H, W, 2))))
    # upsampled frames: the network sees twice the motion, the wrapper scales it back
    assert oracle.model.seen[-1] == (128, 128)


def test_raft_weights_errors(tmp_path, raft_weights):
    from folai.timing.features import RAFTFlow

    with pytest.raises(WeightsUnavailableError, match="RAFT weights file not found"):
        RAFTFlow(weights=str(tmp_path / "missing.pth"), device="cpu")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="cannot read RAFT weights"):
        RAFTFlow(weights=str(tmp_path / "junk.pth"), device="cpu")
    torch.save({"fnet.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(WeightsUnavailableError, match="not a torchvision raft_large state dict"):
        RAFTFlow(weights=str(tmp_path / "other.pth"), device="cpu")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(WeightsUnavailableError, match="not a torchvision raft_large state dict"):
        RAFTFlow(weights=str(tmp_path / "tensor.pth"), device="cpu")
    with pytest.raises(FolaiError, match="unknown device"):
        RAFTFlow(weights=str(raft_weights), device="gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(FolaiError, match="sees no CUDA GPU"):
            RAFTFlow(weights=str(raft_weights), device="cuda")


def test_raft_describe_identifies_the_weights(raft, raft_weights, tmp_path):
    from folai.timing.features import RAFTFlow

    d = raft.describe()
    assert d["method"] == "raft" and d["model"] == "raft_large" and d["iters"] == 2
    assert d["weights"] == raft_weights.name and len(d["weights_sha256"]) == 16
    sd = torch.load(raft_weights, weights_only=True)
    sd["update_block.flow_head.conv2.bias"] = sd["update_block.flow_head.conv2.bias"] + 1.0
    torch.save(sd, tmp_path / raft_weights.name)
    other = RAFTFlow(weights=str(tmp_path / raft_weights.name), device="cpu", iters=2)
    assert other.describe()["weights_sha256"] != d["weights_sha256"]  # same name, other weights


def test_extract_cli_with_raft_flow(tmp_path, raft_weights):
    import json

    from folai.cli import main
    from folai.testing import make_hit_video
    from folai.timing.features import FeatureCache

    vids = tmp_path / "videos"
    vids.mkdir()
    make_hit_video(vids / "clip.mp4", duration=0.4, size=(96, 72), hit_times=[0.2], with_audio=False)
    out = tmp_path / "feats"
    args = ["extract", str(vids), "--out", str(out), "--encoder", "flowstats", "--image-size", "64",
            "--flow", "raft", "--flow-weights", str(raft_weights), "--device", "cpu"]
    assert main(args) == 0
    cache = FeatureCache(out, vids)
    feats, meta = cache.load(vids / "clip.mp4")
    assert feats.shape == (12, 512) and feats.dtype == np.float32 and np.isfinite(feats).all()
    flow = json.loads(meta["flow"])
    assert meta["encoder"] == "flowstats" and flow["method"] == "raft" and flow["weights"] == raft_weights.name
    mtime = cache.path_for(vids / "clip.mp4").stat().st_mtime_ns
    assert main(args) == 0  # finished and matching: skipped
    assert cache.path_for(vids / "clip.mp4").stat().st_mtime_ns == mtime
    # DIS features differ (other flow), and a missing weights file is a one-line CLI error
    assert main(args[:-6] + ["--flow", "dis", "--overwrite"]) == 0
    assert json.loads(FeatureCache.metadata(cache.path_for(vids / "clip.mp4"))["flow"])["method"] == "dis"
    assert main(args[:-3] + [str(tmp_path / "nope.pth"), "--device", "cpu"]) == 1
