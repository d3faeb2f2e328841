"""generate replaces OUT.wav, OUT.envelope.csv and OUT.envelope.png (names the user did not type)
only where an earlier take wrote them and the CSV was not edited since (folai.marks)."""

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from folai import marks
from folai.cli import main
from folai.envelope import Envelope
from folai.testing import make_hit_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    p = tmp_path_factory.mktemp("g") / "clip.mp4"
    make_hit_video(p, duration=2.0, hit_times=[0.6, 1.4], size=(160, 120), with_audio=False)
    return p


def sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def gen(video, *extra):
    return main(["generate", str(video), "-q", *map(str, extra)])


def test_rerun_replaces_its_own_take_and_marks_it(video, tmp_path):
    out = tmp_path / "take.mp4"
    assert gen(video, "-o", out, "--seed", 1) == 0
    with sf.SoundFile(tmp_path / "take.wav") as f:
        assert f.software.startswith("folai")
        assert f.comment == marks.wav_comment((tmp_path / "take.envelope.csv").read_bytes())
    assert marks.png_is_ours(tmp_path / "take.envelope.png")
    assert cv2.imread(str(tmp_path / "take.envelope.png")) is not None  # the marked PNG still reads
    with sf.SoundFile(tmp_path / "take.wav", "r+"):  # the mark after the data: read/write still opens
        pass
    first = sha(tmp_path / "take.wav")
    assert gen(video, "-o", out, "--seed", 2) == 0  # an unedited take of its own: replaced
    assert sha(tmp_path / "take.wav") != first
    # a --no-video preview, then the full run under the same name
    prev = tmp_path / "prev.mp4"
    assert gen(video, "-o", prev, "--no-video") == 0 and not prev.exists()
    assert gen(video, "-o", prev) == 0 and prev.exists()


def test_cameras_wav_beside_the_output_is_kept(video, tmp_path, capsys):
    cam = tmp_path / "clip.wav"
    sf.write(cam, np.zeros((4410, 2)), 44100)
    before = {p.name: sha(p) for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert gen(video, "-o", tmp_path / "clip.mp4") == 1
    err = capsys.readouterr().err
    assert "clip.wav (no mark of folai generate" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1
    assert {p.name: sha(p) for p in tmp_path.iterdir()} == before  # nothing written, nothing replaced
    assert gen(video, "-o", tmp_path / "clip.mp4", "--overwrite") == 0
    assert sha(cam) != before["clip.wav"] and marks.wav_is_ours(cam)


def test_named_wav_is_the_callers_choice(video, tmp_path):
    wav = tmp_path / "mine.wav"
    sf.write(wav, np.zeros((4410, 2)), 44100)
    assert gen(video, "-o", wav, "--no-video") == 0  # -o names it: replaced, as any -o is
    assert marks.wav_is_ours(wav)


def test_edited_envelope_is_kept_and_the_way_to_render_it_said(video, tmp_path, capsys):
    out = tmp_path / "e.mp4"
    assert gen(video, "-o", out) == 0
    csv = tmp_path / "e.envelope.csv"
    env = Envelope.load_csv(csv)
    env.gain(0.5).save_csv(csv)  # the user's edit, in place
    edited = sha(csv)
    capsys.readouterr()
    assert gen(video, "-o", out) == 1
    err = capsys.readouterr().err
    assert "e.envelope.csv and " in err and "(not one take: the CSV edited since" in err and f"--envelope {csv}" in err
    assert sha(csv) == edited
    # what it says to do works, and the edit is still there
    take2 = tmp_path / "e.take2.mp4"
    assert f"-o {take2}" in err
    assert gen(video, "--envelope", csv, "-o", take2) == 0
    assert sha(csv) == edited


def test_envelope_without_its_wav_or_foreign_png(video, tmp_path, capsys):
    out = tmp_path / "n.mp4"
    assert gen(video, "-o", out) == 0
    (tmp_path / "n.wav").unlink()
    capsys.readouterr()
    assert gen(video, "-o", out) == 1
    assert "n.envelope.csv (no take of folai generate beside it records it" in capsys.readouterr().err
    assert gen(video, "-o", out, "--overwrite") == 0
    png = tmp_path / "n.envelope.png"
    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    png.write_bytes(buf.tobytes())  # somebody else's picture of that name
    assert gen(video, "-o", out) == 1
    assert "n.envelope.png (no mark of folai)" in capsys.readouterr().err
    assert not marks.png_is_ours(png)


def test_marks_read_only_what_they_mean(tmp_path):
    ok, buf = cv2.imencode(".png", np.full((5, 7, 3), 9, np.uint8))
    png = tmp_path / "a.png"
    png.write_bytes(marks.png_with_software(buf.tobytes()))
    assert marks.png_is_ours(png)
    assert cv2.imread(str(png)).shape == (5, 7, 3)
    (tmp_path / "b.png").write_bytes(b"not a png")
    assert not marks.png_is_ours(tmp_path / "b.png")
    (tmp_path / "c.wav").write_bytes(b"RIFF junk")
    assert not marks.wav_is_ours(tmp_path / "c.wav")
    assert marks.take_digest(tmp_path / "c.wav") is None and marks.file_digest(tmp_path / "none.csv") is None


def test_a_renamed_take_and_every_file_in_the_way_are_named(video, tmp_path, capsys):
    assert gen(video, "-o", tmp_path / "take3.mp4", "--seed", 3) == 0
    (tmp_path / "take3.wav").rename(tmp_path / "scene.wav")  # a take kept under another name
    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "scene.envelope.png").write_bytes(buf.tobytes())
    kept = sha(tmp_path / "scene.wav")
    capsys.readouterr()
    assert gen(video, "-o", tmp_path / "scene.mp4") == 1
    err = capsys.readouterr().err.strip()
    assert "scene.wav (no scene.envelope.csv of its take beside it" in err
    assert "scene.envelope.png (no mark of folai)" in err and len(err.splitlines()) == 1
    assert sha(tmp_path / "scene.wav") == kept


@pytest.mark.parametrize("extra, said", [(("--roi", "0,0,1,1"), "too small"), (("--step-lead", "5"), "step_lead"),
                                         (("--envelope", "{short}"), "would replace")])
def test_bad_input_is_said_before_the_refusal(video, tmp_path, capsys, extra, said):
    sf.write(tmp_path / "clip.wav", np.zeros((4410, 2)), 44100)
    short = tmp_path / "short.csv"
    short.write_text("time_s,rms\n0,0.1\n0.008,0.2\n0.016,0.1\n")  # fitted to the video: a note
    capsys.readouterr()
    assert gen(video, "-o", tmp_path / "clip.mov", *[a.format(short=short) for a in extra]) == 1
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1, err


def test_the_way_to_render_an_edit_works_with_spaces_in_its_path(video, tmp_path, capsys):
    import shlex

    d = tmp_path / "my takes"
    d.mkdir()
    out = d / "scene 1.mp4"
    assert gen(video, "-o", out) == 0
    csv = d / "scene 1.envelope.csv"
    Envelope.load_csv(csv).gain(0.5).save_csv(csv)
    capsys.readouterr()
    assert gen(video, "-o", out) == 1
    err = capsys.readouterr().err
    hint = err[err.index("--envelope"):].rstrip().rstrip(")")
    assert main(["generate", str(video), "-q", *shlex.split(hint)]) == 0
    assert (d / "scene 1.take2.mp4").exists()


def test_an_envelope_edited_during_the_run_is_kept(video, tmp_path, monkeypatch):
    # checked once more before the files are put in place: a long analysis leaves minutes to edit
    from folai.pipeline import FoleyPipeline

    out = tmp_path / "d.mp4"
    assert gen(video, "-o", out) == 0
    csv = tmp_path / "d.envelope.csv"
    estimate = FoleyPipeline.estimate

    def edit_meanwhile(self, *a, **k):
        Envelope.load_csv(csv).gain(0.5).save_csv(csv)
        return estimate(self, *a, **k)

    monkeypatch.setattr(FoleyPipeline, "estimate", edit_meanwhile)
    edited_wav = sha(tmp_path / "d.wav")
    assert gen(video, "-o", out, "--seed", 4) == 1
    assert Envelope.load_csv(csv).values.max() > 0 and sha(tmp_path / "d.wav") == edited_wav
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.envelope.csv", "d.envelope.png", "d.mp4", "d.wav"]


def test_a_wav_preview_is_told_to_stay_a_wav(video, tmp_path, capsys):
    import shlex

    w = tmp_path / "w.wav"
    assert gen(video, "-o", w, "--no-video") == 0
    csv = tmp_path / "w.envelope.csv"
    Envelope.load_csv(csv).gain(0.5).save_csv(csv)
    capsys.readouterr()
    assert gen(video, "-o", w, "--no-video") == 1
    err = capsys.readouterr().err
    assert "edited since folai wrote it with w.wav" in err
    hint = err[err.index("--envelope"):].rstrip().rstrip(")")
    assert hint.endswith("--no-video")
    assert main(["generate", str(video), "-q", *shlex.split(hint)]) == 0
    assert (tmp_path / "w.take2.wav").exists() and not (tmp_path / "w.take2.mp4").exists()


def test_a_take_renamed_over_another_takes_envelope_names_both(video, tmp_path, capsys):
    assert gen(video, "-o", tmp_path / "a.mp4") == 0
    assert gen(video, "-o", tmp_path / "b.mp4", "--roi", "0,0,120,90") == 0
    (tmp_path / "a.wav").replace(tmp_path / "b.wav")
    capsys.readouterr()
    assert gen(video, "-o", tmp_path / "b.mp4") == 1
    err = capsys.readouterr().err
    assert f"b.envelope.csv and {tmp_path / 'b.wav'} (not one take" in err and "move them away" in err
