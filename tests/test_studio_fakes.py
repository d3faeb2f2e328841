"""Stand-in stage backends for the studio tests, used only while the real motion timing / sampler
synthesis are not installed in this checkout (they are the defaults once merged)."""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np

from folai.envelope import Envelope


class FakeMotion:
    def estimate(self, video, *, roi=None, progress=True):
        from folai.media import probe_video
        from folai.timing import TimingResult

        d = probe_video(video).duration
        env = Envelope.zeros(d).add_event(0.5, 0.3)
        return TimingResult(env, None, {"events": [0.5]})


class FakeSampler:
    sample_rate = 44100

    def render(self, envelope, *, duration, prompt=None, references=(), video=None, pan=None, seed=0, progress=True):
        n = int(round(duration * self.sample_rate))
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((2, n)).astype(np.float32) * 0.5
        return np.clip(noise * envelope.to_audio_rate(self.sample_rate, n, 2), -1, 1)

    def affected_span(self, old, new, duration, **kw):
        diff = np.nonzero(np.any(old.values != new.values, axis=0))[0]
        if diff.size == 0:
            return None
        return (diff[0] - 1) / old.rate, (diff[-1] + 2) / old.rate

    def render_span(self, envelope, start, end, **kw):
        full = self.render(envelope, **kw)
        return full[:, int(round(start * self.sample_rate)) : int(round(end * self.sample_rate))]


def _present(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def install(monkeypatch) -> list[str]:
    """Register a fake 'motion' / 'sampler' for each real one that is absent; returns the fakes used."""
    from folai import synthesis, timing

    mod = types.ModuleType("folai_studio_test_fakes")
    mod.FakeMotion, mod.FakeSampler = FakeMotion, FakeSampler
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    used = []
    if not _present("folai.timing.motion"):
        monkeypatch.setitem(timing.TIMING_BACKENDS, "motion", f"{mod.__name__}:FakeMotion")
        used.append("motion")
    if not _present("folai.synthesis.sampler"):
        monkeypatch.setitem(synthesis.SYNTH_BACKENDS, "sampler", f"{mod.__name__}:FakeSampler")
        used.append("sampler")
    return used
