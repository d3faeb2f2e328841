"""Datasets in their own layouts: chunking, splits, prompts, targets, and a 1-step training smoke test each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from folai.data.chunks import (
    GreatestHits,
    VideoFolder,
    WalkingTheMaps,
    chunk_starts,
    detect_dataset,
    get_dataset,
    greatest_hits_prompt,
    parse_times,
    split_items,
)
from folai.errors import FolaiError

torch.set_num_threads(1)


def _clip(rng, duration, size=32):
    from folai.data.synthetic import simulate_clip

    return simulate_clip(rng, duration=duration, size=size)


def test_split_sizes_are_the_papers_and_seeded():
    ids = [f"v{i:04d}" for i in range(977)]
    s = split_items(ids, seed=0)
    assert [len(s[k]) for k in ("train", "val", "test")] == [732, 49, 196]
    assert not (set(s["train"]) & set(s["val"])) and not (set(s["train"]) & set(s["test"]))
    assert split_items(list(reversed(ids)), seed=0) == s  # order of discovery does not matter
    assert split_items(ids, seed=1)["val"] != s["val"]
    small = split_items(["a", "b", "c", "d"], seed=0)
    assert len(small["val"]) == 1 and len(small["test"]) == 1 and len(small["train"]) == 2


def test_chunk_starts():
    assert chunk_starts(25.0, 10.0) == [0.0, 10.0]
    assert chunk_starts(19.99, 10.0) == [0.0, 10.0]  # within tolerance of a full chunk
    assert chunk_starts(1.5, 2.0) == []


def test_greatest_hits_prompt_and_times(tmp_path):
    t = tmp_path / "x_times.txt"
    t.write_text("0.5 wood hit static\n1.25 wood scratch None\n2.0 plastic-bag hit deform\nnot a line\n")
    hits = parse_times(t)
    assert [h["time"] for h in hits] == [0.5, 1.25, 2.0]
    assert hits[1]["reaction"] is None
    assert greatest_hits_prompt(hits) == "A person hits multiple times on wood with a wooden stick"
    assert greatest_hits_prompt(hits[2:]) == "A person hits once on plastic bag with a wooden stick"
    assert greatest_hits_prompt(hits[1:2]) == "A person scratches once on wood with a wooden stick"
    assert greatest_hits_prompt([]) is None
    # labels as written in the files (any case); unlabelled hits still count for the frequency
    odd = [{"time": 0.1, "material": "Wood", "action": "Scratch"}, {"time": 0.2, "material": None, "action": None}]
    assert greatest_hits_prompt(odd) == "A person scratches multiple times on wood with a wooden stick"


# ----------------------------------------------------------------------------- layouts


def _write(clip, video, audio=None, embed=False):
    from folai.data.synthetic import write_clip

    write_clip(clip, video, audio, embed_audio=embed)


@pytest.fixture(scope="module")
def gh_root(tmp_path_factory):
    """Greatest Hits layout: <id>_denoised.mp4, <id>_denoised.wav, <id>_times.txt (4 s videos)."""
    root = tmp_path_factory.mktemp("gh")
    rng = np.random.default_rng(1)
    for i in range(4):
        vid = f"2015-02-1{i}-12-00-00"
        c = _clip(rng, 4.0)
        _write(c, root / f"{vid}_denoised.mp4", root / f"{vid}_denoised.wav")
        (root / f"{vid}_times.txt").write_text("".join(f"{t:.4f} {c.material} hit static\n" for t, _ in c.hits))
    return root


@pytest.fixture(scope="module")
def wtm_root(tmp_path_factory):
    """Walking The Maps layout: <youtube_id>_<start>_<end>.mp4; one with audio/<name>.wav, others embedded."""
    root = tmp_path_factory.mktemp("wtm")
    (root / "audio").mkdir()
    rng = np.random.default_rng(2)
    names = ["dQw4w9W_XcQ_12_16", "dQw4w9W_XcQ_30_33", "a-b_c_0_4.5", "zzzzzzzzzzz_100.5_104"]
    for n in names:
        c = _clip(rng, 4.0 if not n.endswith("33") else 3.0)
        if n.startswith("a-b"):
            _write(c, root / f"{n}.mp4", root / "audio" / f"{n}.wav")
        else:
            _write(c, root / f"{n}.mp4", embed=True)
    return root


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    (root / "sub").mkdir()
    rng = np.random.default_rng(3)
    for i, p in enumerate([root / "a.mp4", root / "sub" / "b.mp4", root / "c.mp4"]):
        _write(_clip(rng, 2.5), p, embed=True)
    (root / "a.txt").write_text("glass clinks\n")
    return root


def test_greatest_hits_chunks_prompts_and_official_lists(gh_root, tmp_path):
    ds = GreatestHits(gh_root, "all", chunk_seconds=2.0)
    assert len(ds) == 8  # 4 videos x 2 chunks of 2 s
    c = ds[0]
    assert c.audio.name.endswith("_denoised.wav") and c.duration == 2.0
    assert all(c.start <= h["time"] < c.end for h in c.meta["hits"])
    with_hits = [c for c in ds if c.meta["hits"]]
    assert with_hits and all(c.prompt.startswith("A person hits") for c in with_hits)
    # default: seeded split by video, no video in two splits
    parts = {s: {c.video for c in GreatestHits(gh_root, s, chunk_seconds=2.0)} for s in ("train", "val", "test")}
    assert sum(len(v) for v in parts.values()) == 4 and not (parts["train"] & parts["val"])
    # official lists win
    lists = tmp_path / "splits"
    lists.mkdir()
    vids = sorted(p.name[: -len("_denoised.mp4")] for p in gh_root.glob("*_denoised.mp4"))
    (lists / "train.txt").write_text("\n".join(vids[:3]) + "\n")
    (lists / "val.txt").write_text(f"{vids[3]}_denoised.mp4\n")
    val = GreatestHits(gh_root, "val", chunk_seconds=2.0, split_dir=lists)
    assert {c.video.name for c in val} == {f"{vids[3]}_denoised.mp4"}
    assert detect_dataset(gh_root) == "greatest-hits"
    assert GreatestHits(gh_root, "all").chunk_seconds == 10.0  # the paper's chunks...
    assert len(GreatestHits(gh_root, "all")) == 0  # ...which 4 s videos cannot fill


def test_walking_the_maps_names_audio_and_source_split(wtm_root):
    ds = WalkingTheMaps(wtm_root, "all")
    assert ds.chunk_seconds == 2.0
    by_name = {c.video.stem: c for c in ds}
    assert set(by_name) == {"dQw4w9W_XcQ_12_16", "dQw4w9W_XcQ_30_33", "a-b_c_0_4.5", "zzzzzzzzzzz_100.5_104"}
    assert by_name["a-b_c_0_4.5"].audio.parent.name == "audio"  # AudioSep track beside the videos
    assert by_name["dQw4w9W_XcQ_12_16"].audio.suffix == ".mp4"  # else the video's own audio
    assert by_name["zzzzzzzzzzz_100.5_104"].meta["youtube_id"] == "zzzzzzzzzzz"
    assert by_name["a-b_c_0_4.5"].meta == {"youtube_id": "a-b_c", "source_start": 0.0, "source_end": 4.5}
    assert len([c for c in ds if c.video.stem == "dQw4w9W_XcQ_30_33"]) == 1  # 3 s -> one 2 s chunk
    assert all(c.prompt == "footstep sounds" for c in ds)
    # both clips of one YouTube video land in the same split
    for split in ("train", "val", "test"):
        yts = [c.meta["youtube_id"] for c in WalkingTheMaps(wtm_root, split)]
        if "dQw4w9W_XcQ" in yts:
            stems = {c.video.stem for c in WalkingTheMaps(wtm_root, split)}
            assert {"dQw4w9W_XcQ_12_16", "dQw4w9W_XcQ_30_33"} <= stems
    assert detect_dataset(wtm_root) == "walking-the-maps"
    assert get_dataset("walking-maps", wtm_root, "all").name == "walking-the-maps"  # the older name still works
    # a stray file among the clips (an intro.mp4) had made the layout "folder": split by file,
    # one YouTube video's clips in every split, and no AudioSep tracks (found by a review)
    import shutil

    shutil.copy(by_name["dQw4w9W_XcQ_12_16"].video, wtm_root / "intro.mp4")
    try:
        assert detect_dataset(wtm_root) == "walking-the-maps"
        assert {c.video.stem for c in get_dataset("auto", wtm_root, "all")} == set(by_name)
    finally:
        (wtm_root / "intro.mp4").unlink()  # (the folder is the module's)


def test_folder_dataset(folder_root):
    ds = VideoFolder(folder_root, "all", chunk_seconds=2.0)
    assert len(ds) == 3 and {c.audio for c in ds} == {c.video for c in ds}
    assert {c.clip_id for c in ds} == {"a@0", "sub/b@0", "c@0"}
    assert [c.prompt for c in ds if c.clip_id == "a@0"] == ["glass clinks"]
    assert detect_dataset(folder_root) == "folder"
    with pytest.raises(FolaiError, match="unknown split"):
        VideoFolder(folder_root, "dev")
    with pytest.raises(FolaiError, match="unknown dataset"):
        get_dataset("kinetics", folder_root)


def test_folder_prompts_csv_audio_files_and_short_files(tmp_path):
    """prompts.csv beats a .txt; audio-only files only on request (video=None); short files only with min_seconds."""
    from folai.data.synthetic import write_wav
    from folai.data.timing import TimingDataset

    rng = np.random.default_rng(4)
    _write(_clip(rng, 2.5), tmp_path / "v.mp4", tmp_path / "v.wav")  # v.wav is v.mp4's target audio
    (tmp_path / "v.txt").write_text("sidecar prompt\n")
    sr = 16000
    for name, seconds in (("s", 2.5), ("short", 1.0), ("tiny", 0.2)):
        write_wav(tmp_path / f"{name}.wav", rng.normal(0, 0.1, int(seconds * sr)), sr)
    (tmp_path / "prompts.csv").write_text("file,prompt\nv.mp4,csv prompt\ns.wav,rain on a tin roof\n")

    videos_only = VideoFolder(tmp_path, "all", chunk_seconds=2.0)
    assert [(c.clip_id, c.audio.name, c.prompt) for c in videos_only] == [("v@0", "v.wav", "csv prompt")]
    both = {c.clip_id: c for c in VideoFolder(tmp_path, "all", chunk_seconds=2.0, audio_files=True)}
    assert set(both) == {"v@0", "s@0"}  # v.wav is a sidecar, not a file of its own; short/tiny < 2 s
    assert both["s@0"].video is None and both["s@0"].audio.name == "s.wav"
    assert both["s@0"].prompt == "rain on a tin roof"
    padded = {c.clip_id: c for c in VideoFolder(tmp_path, "all", chunk_seconds=2.0, audio_files=True, min_seconds=0.5)}
    assert set(padded) == {"v@0", "s@0", "short@0"} and padded["short@0"].duration == 2.0
    # the timing model needs videos
    with pytest.raises(FolaiError, match="no video"):
        TimingDataset(list(padded.values()), tmp_path / "feats", progress=False)
    with pytest.raises(FolaiError, match="no split lists"):
        VideoFolder(tmp_path, "train", split_dir=tmp_path / "nowhere")


def test_greatest_hits_without_the_wav_uses_the_video_track(tmp_path):
    rng = np.random.default_rng(5)
    _write(_clip(rng, 2.0), tmp_path / "2015-03-01_denoised.mp4", embed=True)
    (tmp_path / "2015-03-01_times.txt").write_text("0.5 Metal hit static\n")
    (c,) = GreatestHits(tmp_path, "all", chunk_seconds=2.0)
    assert c.audio == c.video and c.prompt == "A person hits once on metal with a wooden stick"


def test_both_trainers_take_the_same_dataset_options():
    import argparse

    from folai.data.chunks import dataset_from_args
    from folai.synthesis import train as synthesis_train
    from folai.timing import train as timing_train

    def dataset_flags(mod):
        p = argparse.ArgumentParser()
        mod.add_arguments(p)
        group = next(g for g in p._action_groups if g.title == "dataset")
        return {a.option_strings[0]: (a.choices, a.default) for a in group._group_actions}

    flags = dataset_flags(timing_train)
    assert set(flags) == {"--data", "--dataset", "--split", "--split-dir", "--split-seed"}
    assert flags == dataset_flags(synthesis_train)
    assert set(flags["--dataset"][0]) == {"auto", "greatest-hits", "walking-the-maps", "folder"}
    args = argparse.Namespace(data="/nonexistent", dataset="folder", split="val", split_dir=None, split_seed=3)
    with pytest.raises(FolaiError, match="not found"):
        dataset_from_args(args)


def test_targets_come_from_the_chunks_own_audio(tmp_path):
    """A click at 3.0 s is centred on envelope frame 125 of the chunk starting at 2 s (1 s in)."""
    from folai.data.chunks import Chunk
    from folai.data.synthetic import write_wav
    from folai.data.timing import chunk_envelope

    sr = 16000
    y = np.zeros(4 * sr, np.float32)
    y[3 * sr : 3 * sr + 160] = 0.5
    y[int(0.5 * sr) : int(0.5 * sr) + 160] = 0.25
    write_wav(tmp_path / "a.wav", y, sr)
    c0 = Chunk(tmp_path / "v.mp4", 0.0, 2.0, tmp_path / "a.wav", None, "v@0")
    c1 = Chunk(tmp_path / "v.mp4", 2.0, 2.0, tmp_path / "a.wav", None, "v@2")
    e0, e1 = chunk_envelope(c0), chunk_envelope(c1)
    assert e0.n_frames == e1.n_frames == 250
    centre = lambda e: float((np.arange(e.n_frames) * e.mono).sum() / e.mono.sum())  # noqa: E731
    assert abs(centre(e1) - 125) <= 1.5 and abs(centre(e0) - 62.5) <= 1.5
    # each chunk is peak-normalised on its own: the quieter click still reaches the same level
    assert e0.mono.max() == pytest.approx(e1.mono.max(), rel=0.05)  # not half as loud


# ----------------------------------------------------------------------------- 1-step training per dataset


@pytest.mark.parametrize("kind", ["greatest-hits", "walking-the-maps", "folder"])
def test_one_training_step_per_dataset(kind, gh_root, wtm_root, folder_root, tmp_path):
    from folai.data.timing import TimingDataset
    from folai.timing.features import extract_folder
    from folai.timing.model import model_config
    from folai.timing.train import train_config, train_timing

    root = {"greatest-hits": gh_root, "walking-the-maps": wtm_root, "folder": folder_root}[kind]
    feats = tmp_path / "feats"
    extract_folder(root, feats, encoder="flowstats", encoder_options={"image_size": 32},
                   flow_options={"preset": "ultrafast"}, progress=False)
    chunks = get_dataset(kind, root, "all", chunk_seconds=2.0)
    ds = TimingDataset(chunks, feats, progress=False)
    item = ds[0]
    assert item["features"].shape == (60, 512) and item["targets"].shape == (250, 64)
    assert torch.allclose(item["targets"].sum(-1), torch.ones(250))
    assert int(item["targets"].argmax(-1)[0]) == int(item["classes"][0])
    mcfg = model_config("tiny", input_dim=512, conv_channels=8, lstm_hidden=8)
    out = train_timing(ds, ds, tmp_path / "run", mcfg,
                       train_config("tiny", epochs=1, batch_size=2, max_steps_per_epoch=1),
                       device="cpu", progress=False)
    assert np.isfinite(out["val_loss"]) and np.isfinite(out["el1"])
    row = (tmp_path / "run" / "log.csv").read_text().splitlines()[1].split(",")
    assert row[1] == "1"  # exactly one optimisation step
    # missing features are reported, not silently skipped
    with pytest.raises(FolaiError, match="no cached features"):
        TimingDataset(chunks, tmp_path / "empty", progress=False)


def test_documented_examples_run():
    import doctest

    import folai.data.chunks

    res = doctest.testmod(folai.data.chunks, verbose=False)
    assert res.attempted > 0 and res.failed == 0


def test_a_clip_too_short_for_a_chunk_is_said_with_its_length(tmp_path, caplog):
    # the warning gave the shorter of the video and its audio as the video's length (found by a
    # review of training); it now says that the audio track counts
    import logging

    import soundfile as sf

    rng = np.random.default_rng(0)
    _write(_clip(rng, 3.0), tmp_path / "long.mp4", embed=True)
    sf.write(tmp_path / "long.wav", np.zeros(int(0.5 * 44100), np.float32), 44100)  # the audio: 0.5 s
    with caplog.at_level(logging.WARNING, logger="folai.data.chunks"):
        ds = VideoFolder(tmp_path, "all", chunk_seconds=2.0)
    assert len(ds) == 0
    assert "long.mp4 with its audio track long.wav lasts 0.50 s (the shorter of the two)" in caplog.text, caplog.text


def test_phone_video_names_are_not_walking_the_maps_clips(tmp_path):
    # VID_20240101_120000 matches <id>_<start>_<end>: half such names in a folder of home videos
    # had made it Walking The Maps, the other videos left out (found by a review)
    rng = np.random.default_rng(0)
    for name in ("VID_20240101_120000", "VID_20240102_093015", "beach", "kids_party"):
        _write(_clip(rng, 2.5), tmp_path / f"{name}.mp4", embed=True)
    assert detect_dataset(tmp_path) == "folder"
