"""generate's overlapped path: chunks reach the WAV and the video's track in order, a backend
without render_span gives the same bytes, a failure mid-render leaves nothing behind."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from folai.errors import FolaiError
from folai.media import read_audio
from folai.pipeline import FoleyPipeline
from folai.testing import make_hit_video

HITS = [0.6, 1.7, 2.9, 4.1, 5.3]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    p = tmp_path_factory.mktemp("v") / "hits.mp4"
    make_hit_video(p, duration=6.0, hit_times=HITS, size=(128, 96), with_audio=False)
    return p


def _sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _packets(path):
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


class _WholeOnly:
    """The sampler seen through the minimal backend contract (no render_span)."""

    def __init__(self, inner):
        self.inner = inner
        self.sample_rate = inner.sample_rate

    def render(self, *args, **kwargs):
        return self.inner.render(*args, **kwargs)


class _FailsMidway:
    def __init__(self, inner):
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.calls = 0

    def render(self, *args, **kwargs):
        return self.inner.render(*args, **kwargs)

    def render_span(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 2:
            raise FolaiError("synthetic failure in the second chunk")
        return self.inner.render_span(*args, **kwargs)


def test_track_matches_wav_and_video_is_copied(video, tmp_path):
    res = FoleyPipeline().generate(video, tmp_path / "o.mp4", seed=2, progress=False)
    wav, sr = sf.read(res.wav, always_2d=True, dtype="float32")
    track = read_audio(res.video, sr, channels=2)
    assert track.shape == (2, wav.shape[0]) == (2, 6 * 44100)
    a, b = wav.T.mean(axis=0), track.mean(axis=0)
    # every chunk in place: the AAC track follows the WAV closely, sample for sample
    assert np.corrcoef(a, b)[0, 1] > 0.98
    assert np.abs(a - b).max() < 0.1
    assert _packets(res.video) == _packets(video)
    assert set(res.seconds) >= {"timing", "synthesis", "encode", "mux", "plot"}


def test_fast_aac_is_variable_rate_and_close_to_its_input(video, tmp_path):
    """generate's track is encoded at a variable bit rate (one quantiser search per frame: a
    constant rate searched up to six times per sparse frame, 3x the CPU) and stays close to the
    samples in its quiet tails as well as its hits."""
    from folai.media import AudioMux

    t = np.arange(6 * 44100) / 44100
    x = 0.5 * np.sin(2 * np.pi * 660 * t) * np.exp(-((t % 1.2) / 0.25))  # hits ringing to -50 dB
    x = np.stack([x, x]).astype(np.float32)
    out = tmp_path / "m.mp4"
    with AudioMux(video, out, 44100, channels=2, fast=True) as m:
        m.write(x)
        assert m._enc_cc.qscale  # (the options apply when the encoder opens, at the first frame)
    y = read_audio(out, 44100, channels=2)
    assert y.shape == x.shape
    for lo, hi in ((0, 0.1), (0.6, 1.1)):  # a hit, and its tail 25-40 dB under it
        seg = (t % 1.2 >= lo) & (t % 1.2 < hi) & (t > 0.05)
        err = np.sum((x[:, seg] - y[:, seg]).astype(np.float64) ** 2)
        assert 10 * np.log10(np.sum(x[:, seg].astype(np.float64) ** 2) / err) > 25, (lo, hi)


def test_backend_without_render_span_gives_the_same_bytes(video, tmp_path):
    a = FoleyPipeline().generate(video, tmp_path / "a.mp4", seed=4, progress=False)
    pipe = FoleyPipeline()
    pipe._synth = _WholeOnly(pipe.synth)
    b = pipe.generate(video, tmp_path / "b.mp4", seed=4, progress=False)
    assert _sha(a.wav) == _sha(b.wav)
    assert _sha(a.video) == _sha(b.video)
    assert _sha(a.envelope_png) == _sha(b.envelope_png)


def test_failure_mid_render_leaves_no_files(video, tmp_path):
    pipe = FoleyPipeline()
    pipe._synth = _FailsMidway(pipe.synth)
    with pytest.raises(FolaiError, match="second chunk"):
        pipe.generate(video, tmp_path / "f.mp4", seed=0, progress=False)
    assert list(tmp_path.iterdir()) == []


class _Prepared:
    """A backend with the optional prepare() hook: called once, before rendering, with the inputs."""

    def __init__(self, inner):
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.prepared = []

    def prepare(self, **kwargs):
        self.prepared.append(kwargs)

    def render(self, *args, **kwargs):
        assert self.prepared, "prepare() must have finished before rendering"
        return self.inner.render(*args, **kwargs)


def test_prepare_hook_runs_before_rendering(video, tmp_path):
    pipe = FoleyPipeline()
    pipe._synth = _Prepared(pipe.synth)
    pipe.generate(video, tmp_path / "p.mp4", prompt="metal", seed=7, progress=False, write_video=False)
    assert pipe.synth.prepared == [{"duration": pytest.approx(6.0, abs=0.05), "prompt": "metal",
                                    "references": [], "seed": 7}]


def test_second_encoder_takes_over_at_a_silence(video, tmp_path, monkeypatch):
    import folai.pipeline as P
    from folai.media import AudioMux

    seams = []
    branch = AudioMux.branch

    def spy(self, at):
        seams.append(at)
        return branch(self, at)

    monkeypatch.setattr(AudioMux, "branch", spy)
    a = FoleyPipeline().generate(video, tmp_path / "a.mp4", seed=1, progress=False)
    assert 1 <= len(seams) <= len(P.BRANCH_AFTER)
    assert seams[0] >= P.BRANCH_AFTER[0] * 6 * 44100 and all(s % 1024 == 0 for s in seams)
    n = len(seams)
    monkeypatch.setattr(P, "BRANCH_AFTER", ())  # one encoder for the whole track
    b = FoleyPipeline().generate(video, tmp_path / "b.mp4", seed=1, progress=False)
    assert len(seams) == n
    assert _sha(a.wav) == _sha(b.wav)
    assert _packets(a.video) == _packets(b.video)
    ta, tb = read_audio(a.video, 44100, channels=2), read_audio(b.video, 44100, channels=2)
    assert ta.shape == tb.shape == (2, 6 * 44100)
    s = seams[0]
    # identical up to the first seam, silent around each, and after it only the encoders' state differs
    assert np.array_equal(ta[:, : s - 4096], tb[:, : s - 4096])
    for s in seams:
        assert not ta[:, s - 2048 : s + 2048].any()
    assert np.abs(ta - tb).max() < 0.01


def test_find_seam_needs_silence_on_both_sides(video, tmp_path):
    from folai.media import AudioMux

    m = AudioMux(video, tmp_path / "m.mp4", 44100, channels=2, fast=True)
    try:
        x = np.full((2, 44100), 0.1, np.float32)
        assert m.find_seam(x, 0) is None
        x[:, 10000:20000] = 0
        at = m.find_seam(x, 0)
        assert at is not None and at % 1024 == 0 and 10000 + 4096 <= at <= 20000 - 4096
        # on the track's grid of AAC frames, wherever the chunk starts
        at2 = m.find_seam(x, 44100)
        assert at2 % 1024 == 0 and 44100 + 10000 + 4096 <= at2 <= 44100 + 20000 - 4096
        assert m.find_seam(x, 44100, after=44100 + 20000 - 4096 + 1) is None  # none at or after `after`
    finally:
        m.abort()
