"""benchmarks/bench_aac.py measures what it says: the decoded track is aligned with its input
(a misalignment would show as a low SNR), the bit rate is the stream's, and every setting it
compares is one FFmpeg's AAC encoder accepts."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("bench_aac")


def _tones(n):
    t = np.arange(n) / 44100
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-((t % 0.5) / 0.1))
    return np.stack([x, 0.7 * x]).astype(np.float32)


def test_encode_round_trip_is_aligned(bench):
    x = _tones(44100)
    opts, br = bench.settings()["VBR q 4 fast (default)"]
    cpu, snr, kbps = bench.encode(x, opts, br)
    assert cpu >= 0 and snr > 25 and 20 < kbps < 300
    # shifted by one AAC frame the same comparison fails: the alignment is what makes the SNR
    y = np.concatenate([np.zeros((2, 1024), np.float32), x[:, :-1024]], axis=1)
    ref = x.astype(np.float64)
    assert 10 * np.log10(np.sum(ref**2) / np.sum((ref - y) ** 2)) < 5


def test_every_setting_encodes(bench):
    x = _tones(44100)
    for name, (opts, br) in bench.settings().items():
        cpu, snr, kbps = bench.encode(x, opts, br)
        assert snr > 10 and kbps > 0, name  # accepted and decoded back in place (quality: the benchmark)
