"""Media I/O: frame timing after fps conversion, rotation, audio round trips, muxing, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from folai.errors import MediaError
from folai.media import iter_video_frames, probe_video, read_audio, read_video_frames
from folai.testing import make_clicks, make_hit_video, make_tone, make_video


def _index_frames(n, size=(64, 48)):
    """Frame k is a flat gray level 8 + 2k (distinct after lossy coding): decode -> index."""
    w, h = size

    def frame(k):
        return np.full((h, w, 3), 8 + 2 * k, dtype=np.uint8)

    return frame


def _source_frames(path):
    """(times, means) of every source frame, decoded directly with PyAV (the ground truth)."""
    import av

    with av.open(str(path)) as c:
        frames = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24").mean()) for f in c.decode(video=0)]
    t, m = zip(*frames)
    assert len(set(np.round(m, 3))) == len(m), "source frames must be distinguishable"
    return np.array(t), np.array(m)


def _check_by_timestamp(path, out, start=0.0):
    """Each output frame equals the last source frame with pts <= t (first frame before it)."""
    src_t, src_m = _source_frames(path)
    for t, fr in out:
        idx = max(0, int(np.searchsorted(src_t, t + 1e-6, side="right")) - 1)
        nearest = int(np.argmin(np.abs(src_m - fr.mean())))
        assert nearest == idx, (t, nearest, idx)


def test_hit_video_ground_truth(tmp_path):
    hv = make_hit_video(tmp_path / "hits.mp4", duration=4.0, hit_times=[1.0, 2.5, 3.2])
    assert list(hv.hit_frames) == [30, 75, 96]
    assert list(hv.hit_samples) == [44100, 110250, 141120]
    y = hv.positions[:, 1]
    floor = hv.floor_y - hv.square
    for f in hv.hit_frames:
        assert y[f] == floor and y[f - 1] < floor  # lands exactly on the hit frame
    frames = read_video_frames(hv.path, fps=30)
    assert frames.shape == (120, 120, 160, 3)
    # the square (bright) is drawn where positions say, in the decoded video
    x0, y0 = hv.positions[40]
    patch = frames[40, y0 + 3 : y0 + hv.square - 3, x0 + 3 : x0 + hv.square - 3].astype(int)
    assert patch.max(axis=2).mean() > 55 and patch.std(axis=(0, 1)).max() < 12  # uniform colour


def test_probe_and_audio_alignment(tmp_path):
    hv = make_hit_video(tmp_path / "hits.mp4", duration=3.0, hit_times=[1.0, 2.0])
    info = probe_video(hv.path)
    assert (info.width, info.height, info.rotation) == (160, 120, 0)
    assert info.fps == pytest.approx(30.0) and info.duration == pytest.approx(3.0, abs=0.04)
    assert info.has_audio and info.audio_rate == 44100
    a = read_audio(hv.path, 44100)
    assert a.shape == (1, 132300) and a.dtype == np.float32
    onsets = np.flatnonzero(np.abs(a[0]) > 0.3)
    assert abs(onsets[0] - hv.hit_samples[0]) <= 2  # AAC priming is removed


@pytest.mark.parametrize("src_fps", [25.0, 30000 / 1001, 60.0])
def test_fps_conversion_picks_frame_by_timestamp(tmp_path, src_fps):
    n = int(2 * src_fps)
    path = make_video(tmp_path / "v.mp4", _index_frames(n), fps=src_fps, n_frames=n, size=(64, 48))
    out = list(iter_video_frames(path, fps=30))
    assert len(out) == int(np.ceil(n / src_fps * 30 - 1e-6))
    assert [t for t, _ in out] == pytest.approx([k / 30 for k in range(len(out))])
    _check_by_timestamp(path, out)
