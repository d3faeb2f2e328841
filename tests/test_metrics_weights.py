"""Real published checkpoints (never in CI): set FOLAI_PANNS_WEIGHTS, FOLAI_MSCLAP_WEIGHTS,
FOLAI_VGGISH_WEIGHTS, FOLAI_I3D_WEIGHTS (file paths or URLs) or FOLAI_CLAP_MODEL (hub id / folder)
and run ``pytest -m weights tests/test_metrics_weights.py``."""

import os

import numpy as np
import pytest

from folai.metrics.embedders import get_embedder

pytestmark = pytest.mark.weights

CASES = [("panns", "FOLAI_PANNS_WEIGHTS", 2048), ("msclap", "FOLAI_MSCLAP_WEIGHTS", 1024),
         ("vggish", "FOLAI_VGGISH_WEIGHTS", 128), ("laion_clap", "FOLAI_CLAP_MODEL", 512)]


@pytest.mark.parametrize("name,env,dim", CASES)
def test_published_audio_checkpoint_loads_strictly_and_embeds(name, env, dim):
    if not os.environ.get(env):
        pytest.skip(f"{env} not set")
    emb = get_embedder(name, os.environ[env])
    t = np.arange(44100 * 3) / 44100
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = emb.embed_audio(y, 44100)
    assert out.ndim == 2 and out.shape[1] == dim and np.isfinite(out).all()
    # a tone and noise must embed differently
    noise = (0.3 * np.random.default_rng(0).standard_normal(y.size)).astype(np.float32)
    assert not np.allclose(emb.embed_audio(noise, 44100)[0], out[0], atol=1e-3)


def test_published_i3d_checkpoint(tmp_path):
    if not os.environ.get("FOLAI_I3D_WEIGHTS"):
        pytest.skip("FOLAI_I3D_WEIGHTS not set")
    emb = get_embedder("i3d", os.environ["FOLAI_I3D_WEIGHTS"])
    frames = np.random.default_rng(0).integers(0, 255, (49, 224, 224, 3), dtype=np.uint8)
    out = emb.embed_frames(frames)
    assert out.shape == (2, 1024) and np.isfinite(out).all()
