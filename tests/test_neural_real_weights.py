"""Real-weight checks (never in CI): run with ``pytest -m weights tests/test_neural_real_weights.py``.

Environment:
  FOLAI_SAO      diffusers SAO folder or hub id (default stabilityai/stable-audio-open-1.0, needs a login)
  FOLAI_SAO_SAT  folder holding SAO's stable-audio-tools model.safetensors + model_config.json
  FOLAI_CAVP     Diff-Foley's cavp_epoch66.ckpt
"""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

pytestmark = pytest.mark.weights


def test_sat_checkpoint_equals_diffusers_weights():
    sat_dir = os.environ.get("FOLAI_SAO_SAT")
    if not sat_dir:
        pytest.skip("set FOLAI_SAO_SAT to SAO's stable-audio-tools folder")
    from folai.synthesis.sat_keys import load_sat_checkpoint
    from folai.synthesis.stable_audio import load_base

    ours = load_sat_checkpoint(sat_dir)
    ref = load_base(os.environ.get("FOLAI_SAO", "stabilityai/stable-audio-open-1.0"))
    for a, b in zip(ours, ref):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k].float(), sb[k].float()), k


def test_generate_one_second_with_real_sao():
    from folai.synthesis.stable_audio import FolaiStableAudioPipeline

    pipe = FolaiStableAudioPipeline.from_pretrained(os.environ.get("FOLAI_SAO", "stabilityai/stable-audio-open-1.0"),
                                                    clap=None, cavp=os.environ.get("FOLAI_CAVP"))
    env = np.zeros((2, 44100), np.float32)
    env[:, 10000:14000] = 0.8
    audio = pipe.generate(env, steps=10, seed=0, progress=False)
    assert audio.shape == (2, 44100) and np.isfinite(audio).all() and np.abs(audio).max() > 1e-3
