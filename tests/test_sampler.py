"""The offline sampler: level following, onsets, determinism, local re-rendering, presets, references."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from folai.envelope import Envelope
from folai.errors import FolaiError
from folai.synthesis import get_synth
from folai.synthesis.presets import get_preset, list_presets, match_preset
from folai.synthesis.sampler import SamplerSynth, detect_events

SR = 44100


def _hit(rng, f0, decay, n):
    t = np.arange(n) / SR
    x = sum(np.sin(2 * np.pi * f0 * r * t + rng.uniform(0, 6)) * np.exp(-t / (decay / r**0.7)) / (1 + k)
            for k, r in enumerate((1.0, 2.4, 3.9)))
    x[:8] *= np.linspace(0, 1, 8)
    return x / np.abs(x).max()


def _scene(seed=0, seconds=6.0):
    """A recording-like signal: isolated hits at known times, and a sustained rub in the middle."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR))
    times = [0.4, 0.9, 1.6, 2.05, 4.3, 5.0, 5.5]
    for t in times:
        x = _hit(rng, rng.uniform(200, 900), rng.uniform(0.03, 0.12), int(0.4 * SR)) * rng.uniform(0.3, 1.0)
        p = int(t * SR)
        y[p : p + x.size] += x[: y.size - p]
    n = int(1.2 * SR)
    y[int(2.6 * SR) : int(2.6 * SR) + n] += 0.06 * rng.standard_normal(n) * np.hanning(n) ** 0.3
    y /= np.abs(y).max()
    return y, times


@pytest.fixture(scope="module")
def scene():
    y, times = _scene()
    return y, times, Envelope.from_audio(y, SR)


def _el1(audio, env):
    got = Envelope.from_audio(audio, SR).mono
    return float(np.mean(np.abs(got - env.mono[: got.size])))


@pytest.mark.parametrize("prompt", [None, "metal", "footsteps on gravel"])
def test_render_follows_its_envelope(scene, prompt):
    y, _, env = scene
    audio = SamplerSynth().render(env, duration=len(y) / SR, prompt=prompt, progress=False)
    assert audio.shape == (2, len(y)) and audio.dtype == np.float32
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.0
    el1 = _el1(audio, env)
    # the envelope is not trivially small: silence would score its mean
    assert env.mono.mean() > 0.01
    assert el1 <= 0.01, el1


def test_onsets_land_on_the_envelope_rises(scene):
    import librosa

    y, times, env = scene
    audio = SamplerSynth().render(env, duration=len(y) / SR, prompt="wood", progress=False)
    ref = librosa.onset.onset_detect(y=y.astype(np.float32), sr=SR, units="time")
    got = librosa.onset.onset_detect(y=audio.mean(axis=0), sr=SR, units="time")
    for t in times:  # every hit of the recording is heard in the render at the same time
        r = ref[np.argmin(np.abs(ref - t))]
        assert abs(r - t) < 0.03  # (librosa finds the hit in the recording)
        assert np.min(np.abs(got - r)) <= 0.02, (t, r, got)
    # the events found in the envelope sit on the true hit times, to a few ms
    ev = np.array([e.time for e in detect_events(env.mono)])
    for t in times:
        assert np.min(np.abs(ev - t)) <= 0.006, (t, ev)


def test_sharp_hand_drawn_events_sound_at_their_time():
    import librosa

    env = Envelope.zeros(3.0).add_event(0.5, 0.4).add_event(1.3, 0.2).add_event(2.2, 0.3, decay=0.2)
    audio = SamplerSynth().render(env, duration=3.0, progress=False)
    got = librosa.onset.onset_detect(y=audio.mean(axis=0), sr=SR, units="time")
    for t in (0.5, 1.3, 2.2):
        assert np.min(np.abs(got - t)) <= 0.02, (t, got)
    # nothing before the first event
    assert np.abs(audio[:, : int(0.45 * SR)]).max() == 0.0
    # an unsmoothed envelope is matched unsmoothed: the render's own unsmoothed RMS follows it
    got = Envelope.from_audio(audio, SR, smoothing=False).mono
    assert np.mean(np.abs(got - env.mono[: got.size])) <= 0.01


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_a_hit_typed_into_the_curve_as_one_or_two_rows_sounds(rows):
    # no recording's curve is under 3 frames wide, but a hand-edited CSV's is: the anti-flicker
    # rule (islands under 24 ms dropped) had rendered such hits as silence (found by a review)
    import librosa

    v = np.zeros(750, np.float32)
    hits = [0.4, 1.2, 2.0, 2.8, 3.6]
    for t in hits:
        v[int(round(t * 125)) : int(round(t * 125)) + rows] = 0.8
    env = Envelope(v[None], rate=125.0)
    audio = SamplerSynth().render(env, duration=6.0, progress=False, prompt="wood")
    assert np.abs(audio).max() > 0.5
    got = librosa.onset.onset_detect(y=audio.mean(axis=0), sr=SR, units="time")
    assert len(got) == len(hits), got
    assert all(np.min(np.abs(got - t)) <= 0.03 for t in hits), got


def test_motion_like_impacts_land_on_their_contact_frames():
    """Sharp impacts (16 ms linear attack peaking at the contact, two-slope decay), as stage 1 draws them."""
    t = np.arange(1000) / 125.0
    hits, levels = [0.5, 1.23, 2.0, 2.71, 3.5, 4.4, 5.05, 6.3, 7.1], [0.3, 0.1, 0.25, 0.05, 0.2, 0.3, 0.15, 0.08, 0.3]
    v = np.zeros_like(t)
    for h, lv in zip(hits, levels):
        dt = t - h
        shape = np.where((dt >= -0.016) & (dt < 0), 1 + dt / 0.016, 0.0)
        shape = np.where(dt >= 0, 0.75 * np.exp(-dt / 0.04) + 0.25 * np.exp(-dt / 0.15), shape)
        v = np.maximum(v, lv * shape)
    env = Envelope(v.astype(np.float32))
    ev = np.array([e.time for e in detect_events(env.mono)])
    assert len(ev) == len(hits) and np.max(np.abs(ev - hits)) <= 0.01, ev
    audio = SamplerSynth().render(env, duration=8.0, prompt="footsteps on concrete", progress=False)
    got = librosa_onsets(audio)
    assert all(np.min(np.abs(got - h)) <= 0.02 for h in hits), got
    assert len(got) <= len(hits) + 1, got


def librosa_onsets(audio):
    import librosa

    return librosa.onset.onset_detect(y=audio.mean(axis=0), sr=SR, units="time")


def test_same_seed_same_bytes_other_seed_other_sound(scene):
    y, _, env = scene
    s = SamplerSynth()
    a = s.render(env, duration=3.0, prompt="glass", seed=7, progress=False)
    b = SamplerSynth().render(env, duration=3.0, prompt="glass", seed=7, progress=False)
    c = s.render(env, duration=3.0, prompt="glass", seed=8, progress=False)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_render_span_is_bit_exact_with_the_full_render(scene):
    y, _, env = scene
    s = SamplerSynth()
    dur = len(y) / SR
    full = s.render(env, duration=dur, prompt="stone", seed=3, progress=False)
    for t0, t1 in [(0.0, 0.5), (1.3, 4.7), (3.99, 4.01), (5.2, dur), (2.0, 2.0)]:
        part = s.render_span(env, t0, t1, duration=dur, prompt="stone", seed=3, progress=False)
        a, b = int(round(t0 * SR)), int(round(t1 * SR))
        assert part.shape == (2, b - a)
        assert part.tobytes() == full[:, a:b].tobytes(), (t0, t1)
    # a fresh backend (nothing cached) computes the same stretch alone
    part = SamplerSynth().render_span(env, 4.1, 4.3, duration=dur, prompt="stone", seed=3, progress=False)
    assert part.tobytes() == full[:, int(round(4.1 * SR)) : int(round(4.3 * SR))].tobytes()
    with pytest.raises(FolaiError):
        s.render_span(env, 1.0, dur + 1.0, duration=dur, progress=False)


def test_editing_one_event_leaves_distant_audio_unchanged():
    env = Envelope.zeros(16.0)
    for t in np.arange(0.5, 15.5, 0.7):
        env = env.add_event(float(t), 0.3 + 0.1 * np.sin(t))
    env = Envelope.from_audio(env.to_audio_rate(16000, channels=1)[0] * np.random.default_rng(0).standard_normal(256000), 16000)
    edited = env.gain(0.5, 11.0, 11.6)  # one event, quieter
    s = SamplerSynth()
    a = s.render(env, duration=16.0, seed=1, progress=False)
    b = s.render(edited, duration=16.0, seed=1, progress=False)
    far = slice(0, int(4.0 * SR))
    assert a[:, far].tobytes() == b[:, far].tobytes()
    near = slice(int(11.0 * SR), int(11.6 * SR))
    assert not np.array_equal(a[:, near], b[:, near])
    # the edit is heard: the edited stretch is quieter
    assert np.sqrt(np.mean(b[:, near] ** 2)) < 0.8 * np.sqrt(np.mean(a[:, near] ** 2))


def test_silent_envelope_renders_silence_and_duration_is_honoured():
    s = SamplerSynth()
    out = s.render(Envelope.zeros(1.0), duration=2.5, progress=False)
    assert out.shape == (2, int(round(2.5 * SR))) and not np.any(out)
    env = Envelope.zeros(1.0).add_event(0.3, 0.5)
    out = s.render(env, duration=2.5, progress=False)
    assert np.any(out[:, : SR]) and not np.any(out[:, int(1.6 * SR) :])


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_renders(name):
    env = Envelope.zeros(1.6).add_event(0.2, 0.4).add_event(0.5, 0.2).draw([0.8, 0.9, 1.3, 1.4], [0, 0.08, 0.08, 0])
    audio = SamplerSynth().render(env, duration=1.6, prompt=name, progress=False)
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.0
    assert np.sqrt(np.mean(audio[:, : int(0.7 * SR)] ** 2)) > 1e-3  # the hits
    assert np.sqrt(np.mean(audio[:, int(0.95 * SR) : int(1.25 * SR)] ** 2)) > 1e-3  # the texture
    x = get_preset(name).impact(np.random.default_rng(0))
    assert np.isfinite(x).all() and 0.99 <= np.abs(x).max() <= 1.0
    # no DC: a thump's (or a bubble's) damped sine starting at phase 0 had made a sub-20 Hz pulse
    # on every hit (one-shots' mean 0.005-0.05 of their RMS, always positive; found by a review)
    dc = []
    for seed in range(8):
        x = get_preset(name).impact(np.random.default_rng(seed)).astype(np.float64)
        dc.append(x.mean() / np.sqrt(np.mean(x**2)))
    assert abs(np.mean(dc)) < 0.002 and np.max(np.abs(dc)) < 0.02, dc
    tex = get_preset(name).texture(np.random.default_rng(0), 4410)
    assert abs(np.sqrt(np.mean(tex**2)) - 1.0) < 1e-3


@pytest.mark.parametrize(
    "prompt,name",
    [
        ("hitting metal with a stick", "metal"),
        ("A person hits wood", "wood"),
        ("a person hit glass with a wooden stick", "glass"),
        ("footsteps on gravel", "footsteps-gravel"),
        ("someone walking in the snow", "footsteps-snow"),
        ("running on a concrete street", "footsteps-concrete"),
        ("footsteps", "footsteps-wood"),
        ("splashing in a puddle", "water"),
        ("rustling dry leaves", "leaves"),
        ("scratching a cardboard box", "paper"),
        ("plastic", "plastic"),
        ("footsteps-dirt", "footsteps-dirt"),
        ("hitting rocks", "stone"),
        ("dragging a jacket", "cloth"),
        # the Greatest Hits prompt template names the material hit with a wooden stick
        ("A person scratch multiple times on metal with a wooden stick", "metal"),
        ("A person hit once on carpet with a wooden stick", "cloth"),
        ("A person hit multiple times on drywall with a wooden stick", "plastic"),
        ("A person hit once on leaf with a wooden stick", "leaves"),
        ("A person scratch once on rock with a wooden stick", "stone"),
        ("A person hit multiple times on wood with a wooden stick", "wood"),
        # plurals are the material too (an action word matched first had made them all wood)
        ("hitting bottles", "glass"),
        ("knocking on windows", "glass"),
        ("hitting pipes", "metal"),
        ("hitting pots and pans", "metal"),
        ("boxes falling", "plastic"),
        # run words that are not a gait (they had picked footsteps-wood / footsteps-metal)
        ("running water", "water"),
        ("the water is running", "water"),
        ("a run of hits on a metal pan", "metal"),
        # a review of 220 prompts (sixth session): walking words the footsteps presets did not know,
        # the striker's material winning over the thing struck, ambiguous short words, negations,
        # appliances that "run", surfaces the footsteps did not know
        ("a jogger on asphalt", "footsteps-concrete"),
        ("soldiers marched down the street", "footsteps-concrete"),
        ("tiptoeing across a wooden floor", "footsteps-wood"),
        ("trudging through snow", "footsteps-snow"),
        ("footsteps_gravel", "footsteps-gravel"),
        ("barefoot on a wooden deck", "footsteps-wood"),
        ("footfalls on gravel", "footsteps-gravel"),
        ("a metal spoon tapping a wine glass", "glass"),
        ("a wooden stick hitting metal", "metal"),
        ("a wooden mallet hitting a metal pipe", "metal"),
        ("A man in a leather jacket hits a metal pipe", "metal"),
        ("field recording of footsteps on concrete", "footsteps-concrete"),
        ("walking on a hard wood floor", "footsteps-wood"),
        ("Can you make a glass breaking sound?", "glass"),
        ("As the camera pans, a man hits a glass bottle", "glass"),
        ("in any case, hit glass", "glass"),
        ("rustling wet leaves", "leaves"),
        ("ice cubes in a glass", "glass"),
        ("no footsteps, just cloth rustling", "cloth"),
        ("without glass, only wood", "wood"),
        # negations a review found read as the material itself
        ("anything but metal: wood", "wood"),
        ("everything except glass, plastic", "plastic"),
        ("everything except for glass, plastic", "plastic"),
        ("nothing metallic, a stone", "stone"),
        ("nothing but metal", "metal"),
        ("walking on cobblestones", "footsteps-concrete"),
        ("walking on the beach", "footsteps-dirt"),
        ("walking on a tiled floor", "footsteps-concrete"),
        ("walking on a tin roof", "footsteps-metal"),
        ("walking on a frozen lake", "footsteps-snow"),
        ("a hammer on an anvil", "metal"),
        ("jingling keys", "metal"),
        ("closing a kitchen drawer", "wood"),
        ("a dripping tap", "water"),
    ],
)
def test_prompt_matching(prompt, name):
    assert match_preset(prompt) == name


@pytest.mark.parametrize("prompt", [
    "a jogger on asphalt", "a man stomped on the floor", "soldiers marched down the street", "high heels on marble",
    "boots on wet gravel", "sneakers on a basketball court", "footsteps_gravel", "she walked across the room",
    "sprinting on a track", "the car is running", "running water", "no footsteps, just cloth rustling",
    "hitting metal with a stick", "footfalls on gravel",
])
def test_both_stages_read_a_walker_the_same_way(prompt):
    # the synth's and the motion timing's lists of walking words differed: 13 of 220 prompts got
    # footsteps from one stage and impacts from the other
    from folai.synthesis.presets import wants_steps
    from folai.timing.motion import prompt_wants_steps

    try:
        steps_preset = match_preset(prompt).startswith("footsteps")
    except FolaiError:
        steps_preset = False
    assert prompt_wants_steps(prompt) is wants_steps(prompt) is steps_preset


def _natural_envelope(preset, seed: int = 0, n: int = 24) -> np.ndarray:
    """Mean SPEC envelope (peak 1, 125 frames/s, 1.5 s from the peak) of ``n`` natural hits."""
    rng = np.random.default_rng(seed)
    curves = []
    for _ in range(n):
        x = preset.impact(rng, 1.0, 1.0)
        y = np.zeros(2 * SR)
        y[SR // 5 : SR // 5 + x.size] = x[: y.size - SR // 5]
        e = Envelope.from_audio(y, SR).values[0]
        p = int(np.argmax(e))
        c = e[p : p + 188] / e[p]
        curves.append(np.pad(c, (0, 188 - c.size)))
    return np.mean(curves, axis=0)


def test_ringing_materials_carry_the_envelope_of_their_own_hits():
    """Preset.ring (what a prompt's material gives stage 1's impacts) is the shape of the preset's
    own natural hit, and only the materials that ring past the default impact shape have one."""
    from folai.synthesis.presets import PRESETS
    from folai.timing.motion import MotionConfig, impact_shape

    cfg = MotionConfig()
    dt = np.arange(188) / 125.0
    default = impact_shape(dt, 0.0, cfg.decay, cfg.tail, cfg.tail_share)
    at = int(0.3 * 125)
    for name, pr in PRESETS.items():
        if pr.footstep:
            continue
        c = _natural_envelope(pr)
        if pr.ring is None:  # rings no longer than a real Greatest Hits impact's envelope
            assert c[at] < 2 * default[at], name
        else:
            assert c[at] > 4 * default[at], name
            model = impact_shape(dt, 0.0, *pr.ring)
            assert np.abs(model - c).max() < 0.06 and np.abs(model - c).mean() < 0.015, name
    assert {n for n, p in PRESETS.items() if p.ring} == {"metal", "glass"}


@pytest.mark.parametrize(("prompt", "rings"), [
    ("hitting metal with a stick", True), ("a spoon tapping a wine glass", True), ("glass", True),
    ("hitting wood", False), (None, False), ("footsteps on metal", False), ("quantum chromodynamics", False),
])
def test_a_ringing_material_gives_the_impacts_its_decay(prompt, rings):
    from folai.timing.motion import MotionConfig, MotionTiming

    shape = MotionTiming().impact_decay(prompt)
    cfg = MotionConfig()
    assert (shape != (cfg.decay, cfg.tail, cfg.tail_share)) is rings
    # a shape the user chose is kept
    assert MotionTiming(decay=0.02).impact_decay(prompt) == (0.02, cfg.tail, cfg.tail_share)


@pytest.mark.parametrize(("prompt", "said"), [
    ("a dog barking in the street", "no built-in sound makes 'barking'"),
    ("thunder over the sea", "no built-in sound makes 'thunder'"),
    ("car engine", "no built-in sound makes 'engine'"),
    ("mettal", "did you mean 'metal'"),
    # only negated materials: the advice to name a material had read as if "metal" were not understood
    ("no metal", "the materials it names are negated \\('no metal'\\)"),
    ("anything but glass", "the materials it names are negated"),
])
def test_prompts_no_preset_makes_are_refused_clearly(prompt, said):
    # a setting word had picked a preset ("a dog barking in the street" -> stone); a typo got no hint
    with pytest.raises(FolaiError, match=said):
        match_preset(prompt)


def test_unknown_prompt_lists_the_presets():
    with pytest.raises(FolaiError) as err:
        SamplerSynth().render(Envelope.zeros(1.0), duration=1.0, prompt="quantum chromodynamics", progress=False)
    msg = str(err.value)
    assert "quantum chromodynamics" in msg
    for name in ("wood", "metal", "footsteps-gravel", "snow"):
        assert name in msg


def _write(path, y):
    sf.write(str(path), np.asarray(y, dtype=np.float32), SR)
    return path


def test_bad_references_are_clear_errors(tmp_path):
    env = Envelope.zeros(1.0).add_event(0.3, 0.4)
    s = SamplerSynth()
    cases = {
        "silent": _write(tmp_path / "silent.wav", np.zeros(SR)),
        "short": _write(tmp_path / "short.wav", np.sin(np.arange(400) * 0.3)),
        "missing": tmp_path / "missing.wav",
    }
    (tmp_path / "notaudio.wav").write_text("hello")
    cases["notaudio"] = tmp_path / "notaudio.wav"
    for what, path in cases.items():
        with pytest.raises(FolaiError) as err:
            s.render(env, duration=1.0, references=[path], progress=False)
        assert str(path.name) in str(err.value), what
    # a real but very quiet take (-86 dBFS) is refused with its level and the floor, not just "silent"
    quiet = tmp_path / "quiet.wav"
    sf.write(str(quiet), (5e-5 * np.sin(np.arange(SR) * 0.3) * np.hanning(SR)).astype(np.float32), SR, subtype="FLOAT")
    with pytest.raises(FolaiError, match=r"quiet.wav is silent \(peak -86 dBFS, under the -80 dBFS floor\)"):
        s.render(env, duration=1.0, references=[quiet], progress=False)
    with pytest.raises(FolaiError, match=r"all zeros"):
        s.render(env, duration=1.0, references=[cases["silent"]], progress=False)


def _takes_file(tmp_path, freqs=(300.0, 520.0, 850.0, 1400.0)):
    y = np.zeros(int(0.3 * SR * len(freqs) + 0.2 * SR))
    t = np.arange(int(0.2 * SR)) / SR
    for k, f in enumerate(freqs):
        p = int((0.05 + 0.3 * k) * SR)
        y[p : p + t.size] += np.sin(2 * np.pi * f * t) * np.exp(-t / 0.05)
    return _write(tmp_path / "takes.wav", 0.8 * y)


def test_references_round_robin_never_repeats_a_take(tmp_path):
    freqs = (300.0, 520.0, 850.0, 1400.0)
    ref = _takes_file(tmp_path, freqs)
    times = np.arange(0.3, 7.5, 0.3)
    env = Envelope.zeros(8.0)
    for t in times:
        env = env.add_event(float(t), 0.4, decay=0.05)
    audio = SamplerSynth().render(env, duration=8.0, references=[ref], progress=False).mean(axis=0)
    used = []
    for t in times:  # which take: the nearest take frequency to the event's spectral peak
        seg = audio[int(t * SR) : int(t * SR) + 4096] * np.hanning(4096)
        f = np.argmax(np.abs(np.fft.rfft(seg))) * SR / 4096
        used.append(int(np.argmin([abs(np.log(f / g)) for g in freqs])))
    assert all(a != b for a, b in zip(used, used[1:])), used
    assert len(set(used)) >= 3, used


@pytest.mark.parametrize("rate", [24.0, 25.0, 30.0])
def test_a_level_typed_at_a_video_frame_rate_starts_on_its_row(rate):
    # one row per video frame, 0 until 1.0 s then 0.3 held: the 33-42 ms ramp between two rows had
    # read as a box-smoothed rise, and the sound began ~34 ms late and held 2.5 dB loud (a review)
    def box(r):
        t = np.arange(int(3 * r) + 1) / r
        v = np.where((t >= 1.0 - 1e-9) & (t < 2.0 - 1e-9), 0.3, 0.0)
        return Envelope.from_csv_string("time_s,rms\n" + "".join(f"{a:.6f},{b}\n" for a, b in zip(t, v)))

    def read(y):
        y = y.mean(axis=0)
        first = np.nonzero(np.abs(y) > 0.01)[0][0] / SR
        return first, float(np.sqrt(np.mean(y[int(1.2 * SR) : int(1.9 * SR)] ** 2)))

    want_first, want_held = read(SamplerSynth().render(box(125.0), duration=3.0, progress=False))
    first, held = read(SamplerSynth().render(box(rate), duration=3.0, progress=False))
    assert abs(want_first - 1.0) < 0.005 and abs(first - want_first) < 0.002, (first, want_first)
    assert held == pytest.approx(want_held, rel=0.03)


def test_cutting_a_long_reference_shows_a_bar(tmp_path, capsys, monkeypatch):
    # an hour of reference is cut into takes in about a minute: it had shown nothing meanwhile
    import folai.synthesis.sampler as sampler
    from folai.pipeline import FoleyPipeline

    ref = _takes_file(tmp_path, (300.0, 520.0, 850.0))
    monkeypatch.setattr(sampler, "_BAR_FROM", 1)  # (a short file stands for a long one)
    FoleyPipeline().check(references=[ref], progress=False)
    assert "cutting takes" not in capsys.readouterr().err
    FoleyPipeline().check(references=[ref], progress=True)
    assert f"cutting takes from {ref.name}" in capsys.readouterr().err
    monkeypatch.setattr(sampler, "_BAR_FROM", 3)
    FoleyPipeline().check(references=[ref], progress=True)  # one block: too short for a bar
    assert "cutting takes" not in capsys.readouterr().err
    # a backend's check of any form: given progress where it takes it, called either way
    got = []

    class Keywords:
        def check(self, **kw):
            got.append(kw)

    pipe = FoleyPipeline()
    for backend, want in ((Keywords(), True), (type("Plain", (), {"check": lambda self, prompt, references: got.append(1)})(), 1)):
        pipe._synth = backend
        pipe.check(prompt="wood", progress=True)
        assert got.pop() == ({"prompt": "wood", "references": [], "progress": True} if want is True else want)
    pipe._synth = type("Builtin", (), {})()
    pipe._synth.check = {}.update  # (no signature to read)
    pipe.check(prompt="wood", progress=True)


def test_noisy_decay_is_one_take_and_distinct_knocks_are_each_one(tmp_path):
    """A noise burst decaying over ~0.4 s (a scrape, a crumple): librosa marks its flux every
    35-80 ms, and cut there every piece was shorter than a take, so the recording was refused.
    Only onsets where the level rises cut takes: it is one take, and a recording of separate
    knocks still gives one take per knock."""
    from folai.synthesis.sampler import _ReferenceSource

    rng = np.random.default_rng(0)
    rng.standard_normal(200)
    burst = rng.standard_normal(16000) * np.exp(-np.arange(16000) / 800) * 0.5  # at 8 kHz
    sf.write(str(tmp_path / "burst.wav"), burst, 8000, subtype="PCM_16")
    src = _ReferenceSource([tmp_path / "burst.wav"])
    assert len(src.takes) == 1 and 0.3 < src.takes[0].size / SR < 0.6

    for k, seed in ((3, 1), (5, 2)):
        r = np.random.default_rng(seed)
        y = r.standard_normal(int(SR * (0.4 + 0.45 * k))) * 0.002  # a quiet room
        for j in range(k):
            a = int(SR * (0.1 + 0.45 * j))
            m = y.size - a
            y[a:] += r.standard_normal(m) * np.exp(-np.arange(m) / (SR * r.uniform(0.015, 0.06))) * r.uniform(0.2, 0.9)
        path = _write(tmp_path / f"knocks{k}.wav", np.clip(y, -1, 1))
        assert len(_ReferenceSource([path]).takes) == k


def test_pan_places_events(scene):
    env = Envelope.zeros(2.0).add_event(0.5, 0.4).add_event(1.4, 0.4)
    pan = np.where(env.times < 1.0, -1.0, 0.8)
    out = SamplerSynth().render(env, duration=2.0, pan=pan, progress=False)
    first, second = out[:, : SR], out[:, SR:]
    assert np.sum(first[0] ** 2) > 100 * np.sum(first[1] ** 2)
    assert np.sum(second[1] ** 2) > 5 * np.sum(second[0] ** 2)
    centre = SamplerSynth(pan_mode="center").render(env, duration=2.0, pan=pan, progress=False)
    assert np.array_equal(centre[0], centre[1])


def test_backend_registry_and_options():
    s = get_synth("sampler", variation=0.5)
    assert isinstance(s, SamplerSynth) and s.sample_rate == SR
    with pytest.raises(FolaiError):
        SamplerSynth(pan_mode="sideways")
    assert "wood" in list_presets() and len(list_presets()) >= 19


def test_stereo_envelope_is_panned_by_its_balance():
    mono = Envelope.zeros(2.0).add_event(0.5, 0.4).add_event(1.4, 0.4)
    v = np.stack([mono.values[0], mono.values[0]])
    v[1, :125] *= 0.2  # first event mostly left, second centred
    out = SamplerSynth().render(Envelope(v), duration=2.0, progress=False)
    first, second = out[:, :SR], out[:, SR:]
    assert np.sum(first[0] ** 2) > 4 * np.sum(first[1] ** 2)
    assert np.allclose(np.sum(second[0] ** 2), np.sum(second[1] ** 2), rtol=0.05)


@pytest.mark.parametrize("gap", [0.05, 0.08])
def test_a_hit_on_one_side_right_after_one_on_the_other_keeps_each_channel(gap):
    """A right-only hit 50-80 ms after a left-only one: each channel as with its hit alone. Read
    at the equal-power level, the second hit's size was taken as a plain difference of levels
    (too small) and the level matching lifted the first hit's tail instead: +3.9 dB in the left
    channel, and at 50 ms the sides came out reversed."""
    rate = 125.0
    t = np.arange(int(2.0 * rate)) / rate

    def hit(at):
        return np.where(t >= at, 0.8 * np.exp(-np.maximum(t - at, 0) / 0.08), 0.0)

    def render(left, right):
        env = Envelope(np.stack([left, right]).astype(np.float32), rate=rate)
        return SamplerSynth().render(env, duration=2.0, prompt="knocking on wood", progress=False)

    def db(x, t0, t1):
        return 10 * np.log10(np.mean(x[int(t0 * SR) : int(t1 * SR)].astype(np.float64) ** 2) + 1e-24)

    zero = np.zeros_like(t)
    both, alone_l, alone_r = render(hit(0.5), hit(0.5 + gap)), render(hit(0.5), zero), render(zero, hit(0.5 + gap))
    w = (0.5 + gap, 0.55 + gap)  # the 50 ms after the right hit
    assert abs(db(both[0], *w) - db(alone_l[0], *w)) < 1.5
    assert abs(db(both[1], *w) - db(alone_r[1], *w)) < 1.5
    assert db(both[1], *w) > db(both[0], *w)


def test_envelope_start_is_its_time_in_the_render():
    env = Envelope.zeros(2.0).add_event(0.5, 0.4)
    moved = Envelope(env.values, start=3.0)
    a = SamplerSynth().render(env, duration=2.0, progress=False)
    b = SamplerSynth().render(moved, duration=5.0, progress=False)
    assert not np.any(b[:, : 3 * SR])
    # the same sound 3 s later (its randomness is keyed by time, so compare loudness and onset)
    onset_a = np.argmax(np.abs(a[0]) > 0.05)
    onset_b = np.argmax(np.abs(b[0]) > 0.05)
    assert abs(onset_b - onset_a - 3 * SR) <= 0.002 * SR
    assert np.isclose(np.abs(a).max(), np.abs(b).max(), rtol=1e-3)


def test_check_fails_fast_on_unusable_conditions(tmp_path):
    s = SamplerSynth()
    s.check(prompt="footsteps on snow")
    s.check(references=[_takes_file(tmp_path)])
    with pytest.raises(FolaiError):
        s.check(prompt="zzz qqq")
    with pytest.raises(FolaiError):
        s.check(references=[_write(tmp_path / "quiet.wav", np.zeros(SR))])


@pytest.mark.parametrize("prompt", ["wood", "footsteps on grass"])
def test_variation_zero_repeats_one_sound_and_one_varies(prompt):
    env = Envelope.zeros(3.0).add_event(0.512, 0.3, decay=0.05).add_event(2.0, 0.3, decay=0.05)  # on frames

    def attacks(variation):
        a = SamplerSynth(variation=variation).render(env, duration=3.0, prompt=prompt, progress=False)[0]
        n = int(0.02 * SR)
        x, y = (a[int(t * SR) - 200 : int(t * SR) + n] for t in (0.512, 2.0))
        return float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))

    # (0.92-0.98: the texture under a hit's tail is the bank's at the hit's time, not the one-shot's;
    # 0.95 until the thump presets' one-shots lost their sub-20 Hz pulse, which had dominated the
    # first 20 ms of footsteps on grass)
    assert attacks(0.0) > 0.9
    assert attacks(1.0) < 0.8


@pytest.mark.parametrize("jitter", [0, 1])
def test_quantised_and_jittery_envelopes_still_give_one_sound_per_hit(scene, jitter):
    """A classifier's envelope (mu-law classes, argmax jitter of +-1 class) is not read as many hits."""
    y, times, env = scene
    cls = env.to_classes()
    cls = np.clip(cls + np.random.default_rng(1).integers(-jitter, jitter + 1, cls.shape), 0, 63)
    noisy = Envelope.from_classes(cls)
    audio = SamplerSynth().render(noisy, duration=len(y) / SR, progress=False)
    got = librosa_onsets(audio)
    assert all(np.min(np.abs(got - t)) <= 0.025 for t in times), got
    assert len(got) <= len(times) + 3, got
    assert _el1(audio, env) <= 0.01


def test_recorded_knocks_close_together_or_over_a_texture_are_each_an_event():
    # a review of the first onset fixes: (1) the second of two recorded knocks 140-200 ms apart was
    # lost (its candidate frame sat in the trough of the first's decay, under the frame before, and
    # every later frame read as fallen); (2) knocks 5-7 dB over a noisy texture were lost (the
    # box-smoothed RMS rises by ~20 %, under a 25 % rule meant for a classifier's flicker)
    rng = np.random.default_rng(1)

    def knock(n, decay):
        return rng.standard_normal(n) * np.exp(-np.arange(n) / (decay * SR))

    for gap in (0.14, 0.16, 0.2):
        y = np.zeros(4 * SR)
        for t in (1.0, 1.0 + gap, 2.5, 2.5 + gap):
            y[int(t * SR) : int(t * SR) + int(0.3 * SR)] += 0.3 * knock(int(0.3 * SR), 0.08)
        got = np.array([e.time for e in detect_events(Envelope.from_audio(y.astype(np.float32), SR).mono)])
        assert all(np.any(np.abs(got - t) < 0.05) for t in (1.0, 1.0 + gap, 2.5, 2.5 + gap)), (gap, got)
    times = np.sort(0.5 + np.cumsum(rng.uniform(0.25, 0.6, 12)))
    for over_db in (5.0, 7.0):
        y = rng.standard_normal(8 * SR) * 10 ** (-30 / 20)
        for t in times:
            y[int(t * SR) : int(t * SR) + int(0.3 * SR)] += knock(int(0.3 * SR), 0.025) * 10 ** ((-30 + over_db) / 20)
        env = Envelope.from_audio(y.astype(np.float32), SR)
        got = np.array([e.time for e in SamplerSynth()._cached_plan(env, y.size, None, (), None, 0).events])
        assert sum(np.any(np.abs(got - t) < 0.05) for t in times) >= 10, (over_db, got)  # (first fix: 0)


def test_sensitivity_finds_the_onsets_of_a_quiet_curve():
    # the classes floor was not scaled by `sensitivity`: a curve 4x quieter with sensitivity 4 lost
    # a quarter of its hits (found by a review)
    rng = np.random.default_rng(2)
    y = np.zeros(6 * SR)
    for t in np.arange(0.3, 5.7, 0.45):
        y[int(t * SR) : int(t * SR) + 8000] += rng.uniform(0.2, 1.0) * rng.standard_normal(8000) * np.exp(-np.arange(8000) / 900)
    v = Envelope.from_audio(y.astype(np.float32), SR).mono.astype(np.float64)
    loud = [e.time for e in detect_events(v)]
    k = float(v.max()) / 0.005  # its peak at 0.005
    quiet = [e.time for e in detect_events(v / k, sensitivity=k)]
    assert np.allclose(loud, quiet)


@pytest.mark.parametrize("mode", ["flip", "pm1", "runs"])
def test_a_steady_level_that_flickers_is_not_read_as_knocks(mode):
    # a classifier's output on a steady scrape or rain flips between neighbouring classes (+-1 a
    # frame, or held for 3-12 frames): 40-130 knocks in 20 s came out, each near full scale (found
    # by a review). (A level with 3 % of Gaussian jitter on every frame still gives 10-15, as before.)
    from folai.envelope import mu_classes

    rng = np.random.default_rng(0)
    T = 20 * 125
    for level in (0.01, 0.02, 0.05, 0.15):
        c0 = int(mu_classes(np.array([level]))[0])
        if mode == "flip":
            c = c0 + rng.integers(0, 2, T)
        elif mode == "pm1":
            c = c0 + rng.integers(-1, 2, T)
        else:
            c = np.repeat(c0 + rng.integers(-1, 2, T), rng.integers(3, 13, T))[:T]
        env = Envelope.from_classes(c[None])
        ev = SamplerSynth()._cached_plan(env, 20 * SR, None, (), None, 0).events  # (the render's reading)
        assert len(ev) <= 2 and all(e.time < 0.1 for e in ev), (level, [round(e.time, 2) for e in ev])


@pytest.mark.parametrize("prompt", ["wood", "gravel"])
def test_a_quiet_tap_alone_is_as_loud_as_its_curve(prompt):
    # a lone quiet tap, the loudest in its 5 s, was sharpened towards full scale: +10 dB over its
    # curve, and identical taps came out 9 dB apart near and far from a loud hit (found by a review)
    from folai.metrics.sync import eval_rms

    env = Envelope.zeros(9.0).add_event(1.0, 0.2, decay=0.08).add_event(3.0, 0.02, decay=0.08)
    env = env.add_event(7.5, 0.02, decay=0.08)
    audio = SamplerSynth().render(env, duration=9.0, prompt=prompt, seed=0, progress=False).mean(axis=0)

    def energy_db(t):  # the render's mean square over the hit's first 0.5 s against the curve's
        r = eval_rms(audio[int((t - 0.02) * SR) : int((t + 0.5) * SR)])
        e = env.mono[int((t - 0.02) * 125) : int((t + 0.5) * 125)]
        return 10 * np.log10(np.mean(r**2) / np.mean(e.astype(np.float64) ** 2))

    near, far = energy_db(3.0), energy_db(7.5)
    assert far < 6.0 and abs(far - near) < 6.0, (near, far)  # (before: +10 dB, 8.5-9 dB apart)


@pytest.mark.parametrize("rate", [6.0, 8.0, 10.0])
def test_hits_close_together_are_each_placed_at_their_own_time(rate):
    # a sharp hit followed 60-140 ms later by a louder one took that one's top as its own: it failed
    # the sharpness test and was read as a smoothed rise, ~60 ms late with silence at its time, or
    # lost; on the motion timing's curves at 6-10 hits/s, ghosts played 64-76 ms before hits
    # (found by a review)
    from folai.timing.motion import _events_envelope

    for gap in (0.06, 0.08, 0.1, 0.12):
        for first, second in ((0.1, 0.3), (0.2, 0.3), (0.3, 0.3)):
            env = Envelope.zeros(2.0).add_event(1.0, first, decay=0.08).add_event(1.0 + gap, second, decay=0.08)
            got = np.array([e.time for e in detect_events(env.mono)])
            assert got.size == 2 and np.all(np.abs(got - [1.0, 1.0 + gap]) < 0.02), (gap, first, second, got)
    rng = np.random.default_rng(int(rate))
    times = np.arange(0.5, 7.5, 1.0 / rate) + rng.uniform(-0.01, 0.01, int(np.ceil(7 * rate)))
    t = np.arange(8 * 125) / 125.0
    env = _events_envelope(t, times, 0.09 * rng.uniform(0.6, 1.4, times.size), 0.016, 0.04, 0.15, 0.25)
    got = np.array([e.time for e in detect_events(env)])
    assert all(np.min(np.abs(got - x)) < 0.02 for x in times)  # none lost or moved
    assert all(np.min(np.abs(times - x)) < 0.02 for x in got)  # no ghost


# ----------------------------------------------------------------------------- speed work keeps the sound


def test_prepare_changes_nothing_but_when_the_work_is_done(scene, tmp_path):
    y, _, env = scene
    dur = len(y) / SR
    plain = SamplerSynth().render(env, duration=dur, prompt="metal", seed=5, progress=False)
    s = SamplerSynth()
    s.prepare(duration=dur, prompt="metal", references=[], seed=5)
    assert s.render(env, duration=dur, prompt="metal", seed=5, progress=False).tobytes() == plain.tobytes()
    # prepared for another seed or sound: still the render of what is asked
    s.prepare(duration=dur, prompt="glass", references=[], seed=1)
    assert s.render(env, duration=dur, prompt="metal", seed=5, progress=False).tobytes() == plain.tobytes()
    ref = tmp_path / "knocks.wav"
    sf.write(ref, y[: int(2.5 * SR)], SR)
    a = SamplerSynth().render(env, duration=dur, references=[ref], seed=2, progress=False)
    r = SamplerSynth()
    r.prepare(duration=dur, references=[ref], seed=2)
    assert r.render(env, duration=dur, references=[ref], seed=2, progress=False).tobytes() == a.tobytes()
    with pytest.raises(FolaiError):
        SamplerSynth().prepare(duration=dur, prompt="no such material at all")


def test_chunks_in_any_order_are_the_full_render(scene):
    """The one-shot cache forgets sounds that ended; stretches asked for backwards still match."""
    y, _, env = scene
    dur = len(y) / SR
    s = SamplerSynth()
    full = s.render(env, duration=dur, prompt="wood", seed=4, progress=False)
    bounds = [0.0, 2.0, 4.0, dur]
    for t0, t1 in reversed(list(zip(bounds[:-1], bounds[1:]))):
        part = s.render_span(env, t0, t1, duration=dur, prompt="wood", seed=4, progress=False)
        assert part.tobytes() == full[:, int(round(t0 * SR)) : int(round(t1 * SR))].tobytes(), (t0, t1)
    chunks = [SamplerSynth().render_span(env, 0.0, 2.0, duration=dur, prompt="wood", seed=4, progress=False)]
    chunks += [s.render_span(env, t0, t1, duration=dur, prompt="wood", seed=4, progress=False)
               for t0, t1 in zip(bounds[1:-1], bounds[2:])]
    assert np.concatenate(chunks, axis=1).tobytes() == full.tobytes()


def test_fast_building_blocks_match_their_definitions():
    from scipy import ndimage

    from folai.envelope import DEFAULT, smooth
    from folai.synthesis import sampler as S
    from folai.synthesis.presets import _damped_sines

    rng = np.random.default_rng(0)
    # modes: amp * sin(2 pi f t + ph) * exp(-t / d), cut where they died (-70 dB)
    modes = [(0.8, 520.0, 0.3, 0.05), (0.5, 1300.0, 1.0, 0.02), (0.3, 12000.0, 2.0, 0.3), (0.4, 95.0, 0.0, 0.02)]
    n = 50000
    t = np.arange(n) / SR
    direct = sum(a * np.sin(2 * np.pi * f * t + ph) * np.exp(-t / d) for a, f, ph, d in modes)
    got = _damped_sines(modes, n, SR)
    assert np.abs(got - direct).max() < 1e-3 * np.abs(direct).max()
    assert np.abs(got - direct)[:2000].max() < 1e-9
    # block window: frames -> samples, frame RMS, SPEC envelope at 16 kHz, limiter
    L = S._BLOCK + 2 * S._CTX
    nf = L * 160 // 441 // 128
    v = rng.random(nf)
    pos = np.arange(L) / S._HOP44
    assert np.allclose(S._frames_to_samples(v), np.interp(pos, np.arange(nf), v), atol=1e-12)
    assert np.allclose(S._frames_to_samples(v, 3, 9), S._frames_to_samples(v)[3 * S._ALIGN : 9 * S._ALIGN])
    y = rng.standard_normal(L) * (rng.random(L) < 0.3)
    c = np.concatenate([[0.0], np.cumsum(y * y)])
    centres = np.round(np.arange(nf) * S._HOP44).astype(np.int64)
    lo, hi = np.clip(centres - 176, 0, L), np.clip(centres + 177, 0, L)
    assert np.allclose(S._frame_rms(y, nf), np.sqrt((c[hi] - c[lo]) / 353.0), atol=1e-9)
    s0 = 7 * S._ALIGN
    y[:s0] = 0.0
    assert np.allclose(S._frame_rms(y[s0:], nf, s0), S._frame_rms(y, nf), atol=1e-9)
    y16 = rng.standard_normal(nf * 128)
    yp = np.pad(y16, 256)
    ref = np.array([np.sqrt(np.mean(yp[128 * f : 128 * f + 512] ** 2)) for f in range(nf)])
    assert np.allclose(S._spec_envelope16(y16, nf, 1), ref, atol=1e-12)
    assert np.allclose(S._spec_envelope16(y16, nf, DEFAULT.smooth_kernel), smooth(ref, DEFAULT.smooth_kernel, "box"),
                       atol=1e-12)
    over = np.ones(5000)
    over[[1000, 1040, 3000]] = [2.0, 1.5, 4.0]
    lg = S._limiter_gain(over)
    need = 1.0 / np.maximum(over, 1.0)
    assert np.all(lg <= need + 1e-12) and lg[:800].min() == 1.0
    want = ndimage.uniform_filter1d(ndimage.minimum_filter1d(need, 89, mode="nearest"), 89, mode="nearest")
    assert np.allclose(lg, want)
    # one-shot level: a line through one value per frame, from any sample on
    w = rng.random(40)
    for c0 in (-300, 0, 17):
        knots = np.round(c0 + np.arange(40) * S._HOP44).astype(np.int64)
        a, b = max(0, int(knots[2])), int(knots[-1])
        got = S._knot_interp(w, c0, a, b, 0.5, 0.0)
        assert np.abs(got - np.interp(np.arange(a, b), knots, w)).max() < 2e-3  # centres rounded to samples


def test_event_whose_only_missing_level_is_before_its_onset():
    """An event whose envelope window starts a frame before the onset and whose one-shot peaks
    later: only that first frame asks for more level than the one-shot gives. The tail then lies
    wholly before the onset: nothing is added (it used to raise a broadcasting error; found on a
    footsteps envelope with steps 70 ms apart)."""
    from folai.synthesis.sampler import SR, _with_tail

    rng = np.random.default_rng(0)
    n = 13717
    t = np.arange(n) / SR
    x = rng.standard_normal(n) * np.exp(-t / 0.04) * np.clip(t / 0.002, 0.0, 1.0)  # loudest after frame 0
    want = np.array([0.0913, 0.069, 0.0468, 0.0, 0.0, 0.0, 0.0])
    calls = []

    def texture(r, m):
        calls.append(m)
        return r.standard_normal(m)

    y = _with_tail(x.copy(), want, -0.00823, texture, np.random.default_rng(1))
    assert y.shape == (n,) and np.all(np.isfinite(y)) and np.max(np.abs(y)) > 0
    assert calls  # a tail was asked for ...
    silent_tex = _with_tail(x.copy(), want, -0.00823, lambda r, m: np.zeros(m), np.random.default_rng(1))
    np.testing.assert_array_equal(y, silent_tex)  # ... and none of it lands after the onset



def test_random_clustered_envelopes_render():
    """30 random envelopes of events in close pairs (10-150 ms apart, any attack / decay / tail,
    any preset and seed), as a hand-edited envelope may hold: each renders to finite audio of the
    right length. (2 of these 30 raised before the fix above; 10 of 400 in a longer run.)"""
    from folai.envelope import DEFAULT
    from folai.timing.motion import _events_envelope

    rng = np.random.default_rng(2)
    presets = sorted(list_presets())
    T = DEFAULT.n_frames(1.0)
    t = np.arange(T) / DEFAULT.rate
    for _ in range(30):
        k = int(rng.integers(1, 8))
        times = np.sort(rng.uniform(0.0, 1.0, k))
        times = np.concatenate([times, times + rng.uniform(0.01, 0.15, k)])
        v = _events_envelope(t, times, rng.uniform(0.01, 0.3, len(times)), float(rng.uniform(0.001, 0.03)),
                             float(rng.uniform(0.01, 0.2)), float(rng.uniform(0.05, 0.5)), float(rng.uniform(0, 0.6)))
        env = Envelope(np.clip(v, 0, 1).astype(np.float32)[None], rate=DEFAULT.rate, start=0.0)
        prompt, seed = presets[int(rng.integers(0, len(presets)))], int(rng.integers(0, 1000))
        y = SamplerSynth().render(env, duration=1.0, prompt=prompt, seed=seed, progress=False)
        assert y.shape == (2, 44100) and np.all(np.isfinite(y)), (prompt, seed)


def test_rising_onset_near_the_end_of_a_recording():
    """An onset less than 60 ms before the end of the file (a rest that is not whole 10 ms blocks)."""
    from folai.synthesis.sampler import _rising_onsets

    y = np.random.default_rng(0).standard_normal(10000) * 0.01
    y[9000:] += 1.0
    assert list(_rising_onsets(y, np.array([9000, 9995]))) == [9000]



def _sharp_hits(times, duration=3.0):
    """An envelope like the motion timing's: sharp impacts (16 ms attack, fast-then-slow decay)."""
    from folai.timing.motion import _events_envelope

    t = np.arange(int(duration * 125)) / 125.0
    return Envelope(_events_envelope(t, times, [0.09] * len(times), 0.016, 0.04, 0.15, 0.25)[None], rate=125.0)


def _onsets(synth, env, duration):
    from folai.metrics.sync import detect_onsets

    return detect_onsets(synth.render(env, duration=duration, seed=0).mean(axis=0), 44100)


def test_edits_that_hold_a_level_do_not_move_the_hits():
    # rounding the values (a spreadsheet), a flat drawn level or a gate leave frames standing still;
    # they once made the whole curve count as a classifier's steps: smoothed, and every sharp hit
    # placed ~50 ms late
    s = SamplerSynth()
    env = _sharp_hits([1.0, 2.0])
    ref = _onsets(s, env, 3.0)
    assert len(ref) == 2 and np.all(np.abs(ref - [1.0, 2.0]) < 0.02)
    rounded = Envelope(np.round(env.values, 3), rate=125.0)
    for edited in (rounded, env.gate(0.05), env.draw([2.4, 2.9], [0.02, 0.02])):
        on = _onsets(s, edited, 3.0)
        assert np.abs(on[:2] - ref).max() < 0.005, on


def test_a_drawn_box_starts_with_its_drawing():
    # a flat level drawn from 1.0 to 2.0 s: one onset at 1.0 s and nothing before it (it was 57 ms
    # late, with a swell from -7 dB starting 130 ms before the box)
    from folai.metrics.sync import eval_rms

    s = SamplerSynth()
    box = Envelope.zeros(4.0).draw([1.0, 1.999], [0.8, 0.8])
    y = s.render(box, duration=4.0, seed=0).mean(axis=0)
    from folai.metrics.sync import detect_onsets

    on = detect_onsets(y, 44100)
    assert len(on) >= 1 and abs(on[0] - 1.0) < 0.02, on
    rms = eval_rms(y)
    t = np.arange(rms.size) * 128 / 44100
    assert rms[t < 0.97].max() < 1e-3


def test_a_reference_with_its_channels_out_of_phase_is_usable(tmp_path):
    # right = -left (a miswired cable, an M/S pair read as L/R): the mono mean is silence, and the
    # recording was refused as "silent"
    from folai.synthesis.sampler import _ReferenceSource

    rng = np.random.default_rng(0)
    x = np.zeros(int(1.5 * SR))
    for t in (0.2, 0.7, 1.2):
        i = int(t * SR)
        x[i : i + 4000] += rng.standard_normal(4000) * np.exp(-np.arange(4000) / 600) * 0.5
    sf.write(str(tmp_path / "oop.wav"), np.stack([x, -x], axis=1), SR, subtype="PCM_16")
    src = _ReferenceSource([tmp_path / "oop.wav"])
    assert len(src.takes) == 3


def test_every_bit_of_the_seed_counts():
    # only the low 32 bits were used: --seed 0 and --seed 4294967296 gave the same sound
    env = Envelope.zeros(2.0).add_event(0.5, 0.4, decay=0.05).add_event(1.2, 0.3, decay=0.05)
    s = SamplerSynth()
    a, b, c = (s.render(env, duration=2.0, seed=k) for k in (0, 2**32, 0))
    assert not np.array_equal(a, b)
    assert np.array_equal(a, c)


def test_reference_takes_start_at_their_attack(tmp_path):
    # onsets come backtracked up to tens of ms before a hit; placed at the event, that quiet
    # pre-roll put the hit late, behind texture the level matching filled it with (a flam)
    from folai.synthesis.sampler import _ReferenceSource
    from folai.testing import make_clicks

    rng = np.random.default_rng(0)
    y = np.asarray(make_clicks(8.0, SR, times=[0.5, 1.3, 2.1, 2.9, 3.7, 4.5, 5.3, 6.1], decay=0.05)).reshape(-1)
    y = y[: 8 * SR] + 1e-4 * rng.standard_normal(8 * SR)
    sf.write(str(tmp_path / "clicks.wav"), y, SR)
    src = _ReferenceSource([tmp_path / "clicks.wav"])
    assert len(src.takes) == 8
    leads = [np.flatnonzero(np.abs(t) >= 0.3)[0] / SR for t in src.takes]
    assert max(leads) <= 0.0025, leads


@pytest.mark.parametrize("ramp", [0.024, 0.04])
def test_a_drawn_ramp_is_a_hit_where_it_tops_out(ramp):
    # a rise drawn over 24-40 ms (or a jump in a 24-30 fps curve, brought to 125 frames/s) was read
    # as a box-smoothed one: the hit landed ~45 ms late and sounded twice
    from folai.metrics.sync import detect_onsets

    t = np.arange(375) / 125.0
    v = np.where(t < 1.5 - ramp, 0.0, np.where(t < 1.5, (t - (1.5 - ramp)) / ramp * 0.5, 0.5 * np.exp(-(t - 1.5) / 0.15)))
    on = detect_onsets(SamplerSynth().render(Envelope(v[None].astype(np.float32)), duration=3.0).mean(axis=0), SR)
    assert len(on) == 1 and abs(on[0] - 1.5) < 0.015, on


@pytest.mark.parametrize("rate", [24.0, 30.0])
def test_a_curve_at_a_video_frame_rate(rate):
    from folai.metrics.sync import detect_onsets

    t = np.arange(int(3 * rate)) / rate
    v = np.where(t < 1.5, 0.0, 0.5 * np.exp(-(t - 1.5) / 0.15))
    on = detect_onsets(SamplerSynth().render(Envelope(v[None].astype(np.float32), rate=rate), duration=3.0).mean(axis=0), SR)
    assert len(on) == 1 and abs(on[0] - 1.5) < 0.015, on


@pytest.mark.parametrize("right_db", [None, -12.0, 0.0])
def test_a_stereo_envelope_gets_its_own_balance(right_db):
    # its balance came out pulled towards the centre: a left-only hit leaked -16 dB into the right
    # channel, -12 dB came out as -8.6 dB, and a one-sided level sat 3 dB under its channel
    from folai.metrics.sync import eval_rms

    m = Envelope.zeros(3.0).add_event(1.0, 0.3).mono
    r = np.zeros_like(m) if right_db is None else m * 10 ** (right_db / 20)
    y = SamplerSynth().render(Envelope(np.stack([m, r]).astype(np.float32)), duration=3.0)
    left, right = eval_rms(y[0]).max(), eval_rms(y[1]).max()
    if right_db is None:
        assert right < 1e-6 < left
    else:
        assert 20 * np.log10(right / left) == pytest.approx(right_db, abs=0.5)
    plateau = np.where(np.arange(375) / 125 > 1.0, 0.2, 0.0)
    y = SamplerSynth().render(Envelope(np.stack([plateau, 0 * plateau]).astype(np.float32)), duration=3.0)
    seg = slice(int(1.5 * SR), int(2.5 * SR))
    assert np.sqrt(np.mean(y[0][seg] ** 2)) == pytest.approx(0.2, rel=0.1)  # the left level itself
    assert np.abs(y[1][seg]).max() < 1e-6


def test_the_clip_edges_sound():
    # the audible mask was closed and opened as if silence lay beyond both ends of the curve: a hit
    # in the last ~45 ms of a clip was silent, and a sound from t = 0 started ~40 ms late
    s = SamplerSynth()
    for t in (4.96, 4.97):
        y = s.render(Envelope.zeros(5.0).add_event(t, 0.5), duration=5.0).mean(axis=0)
        assert np.abs(y[int(t * SR) - 200 :]).max() > 0.5
    y = s.render(Envelope.zeros(5.0).draw([0.0, 4.99], [0.3, 0.3]), duration=5.0).mean(axis=0)
    first, steady = np.sqrt(np.mean(y[:441] ** 2)), np.sqrt(np.mean(y[SR : 2 * SR] ** 2))
    assert 20 * np.log10(first / steady) > -6.0  # was -33 dB


@pytest.mark.parametrize("rate", [125.0, 100.0, 50.0])
def test_a_two_row_attack_keeps_its_ring(rate):
    # a hit whose attack takes two rows (0 -> 0.3 -> 1.0, or any jump at 50/100 rows/s brought to
    # 125 frames/s) was measured from its first row: the ring fell to digital silence where the
    # curve passed that row's value, at 0.88 s, while the CSV still asked for 0.22 at 1.0 s
    t = np.arange(int(3 * rate)) / rate
    v = np.where(t >= 0.4 - 1e-9, np.exp(-np.maximum(t - 0.4, 0) / 0.4), 0.0)
    if rate == 125.0:
        v[int(round(0.392 * rate))] = 0.3
    y = SamplerSynth().render(Envelope(v[None].astype(np.float32), rate=rate), duration=3.0, prompt="metal")
    got = Envelope.from_audio(y, SR, smoothing=False).mono  # peak-normalised, as the CSV's values
    for s in (1.0, 1.2):  # the curve: 0.22 and 0.14
        assert got[int(s * 125)] == pytest.approx(np.exp(-(s - 0.4) / 0.4), rel=0.3), (s, got[int(s * 125)])


@pytest.mark.parametrize("ramp,rate", [(0.032, 125.0), (None, 29.97), (None, 24.0), (None, 25.0)])
def test_a_ringing_hit_drawn_with_a_ramp_is_on_time(ramp, rate):
    # a long ring (0.5 s) does not fall by a fifth within 8 frames of its top, so a short drawn
    # ramp or a one-row jump at a video frame rate was read as box-smoothed: 8-38 ms late
    from folai.metrics.sync import detect_onsets

    t = np.arange(int(4 * rate)) / rate
    hit = 1.5 if ramp is None else 1.5
    if ramp is None:
        hit = t[np.searchsorted(t, 1.5)]  # on the grid
        v = np.where(t < hit - 1e-9, 0.0, 0.5 * np.exp(-(t - hit) / 0.5))
    else:
        v = np.where(t < hit - ramp, 0.0, np.where(t < hit, (t - (hit - ramp)) / ramp * 0.5, 0.5 * np.exp(-(t - hit) / 0.5)))
    y = SamplerSynth().render(Envelope(v[None].astype(np.float32), rate=rate), duration=4.0, prompt="metal")
    on = detect_onsets(y.mean(axis=0), SR)
    assert len(on) >= 1 and abs(on[0] - hit) < 0.015, (on, hit)


@pytest.mark.parametrize("gap", [0.15, 0.25])
def test_a_quieter_hit_soon_after_a_louder_one_peaks_at_its_level(gap):
    # the louder hit's ceiling covered the next 0.3 s, so the quieter one's attack reached full
    # scale (1.0 where 0.5 of the first was asked: +6 dB)
    env = Envelope.zeros(2.0).add_event(0.5, 0.6, decay=0.06, attack=0.001).add_event(0.5 + gap, 0.3, decay=0.06, attack=0.001)
    a = SamplerSynth().render(env, duration=2.0, prompt="wood").mean(axis=0)
    first = np.abs(a[int(0.49 * SR) : int(0.55 * SR)]).max()
    q = int((0.5 + gap) * SR)
    second = np.abs(a[q - 100 : q + int(0.1 * SR)]).max()
    assert 0.3 < second / first < 0.7, (first, second)


def _knocks(path, freqs=(250.0, 330.0, 440.0, 580.0, 770.0), lead=0.3, gap=0.8, noise=0.0, dc=0.0, hum=0.0, seed=0,
            jitter=0.0):
    """A recording of knocks (decaying tones, one per frequency) after ``lead`` s of room: noise
    (RMS), an offset and a 50 Hz hum (amplitudes) under all of it; each knock up to ``jitter`` s off
    its place on the grid."""
    rng = np.random.default_rng(seed)
    n = int((lead + gap * len(freqs) + jitter + 0.3) * SR)
    t = np.arange(n) / SR
    y = noise * rng.standard_normal(n) + dc + hum * np.sin(2 * np.pi * 50 * t)
    k = np.arange(int(0.4 * SR)) / SR
    off = rng.uniform(0, jitter, len(freqs)) if jitter else np.zeros(len(freqs))
    for i, f in enumerate(freqs):
        p = int((lead + gap * i + off[i]) * SR)
        y[p : p + k.size] += 0.8 * np.sin(2 * np.pi * f * k) * np.exp(-k / 0.06)
    return _write(path, y)


def _take_pitch(x):
    spec = np.abs(np.fft.rfft(x[: int(0.2 * SR)] * np.hanning(min(x.size, int(0.2 * SR)))))
    return np.fft.rfftfreq(min(x.size, int(0.2 * SR)), 1 / SR)[int(np.argmax(spec))]


@pytest.mark.parametrize("room", [dict(noise=0.03), dict(dc=0.02), dict(hum=0.1), dict(dc=0.3)])
def test_a_recordings_head_of_room_noise_hum_or_offset_is_not_a_take(tmp_path, room):
    # the file's start always counted as a take: noise, hum or a DC offset before the first knock
    # became one, scaled to full scale, and events played it; an offset also hid the knocks
    from folai.synthesis.sampler import _ReferenceSource

    freqs = (250.0, 330.0, 440.0, 580.0, 770.0)
    src = _ReferenceSource([_knocks(tmp_path / "r.wav", freqs, **room)])
    pitches = sorted(_take_pitch(t) for t in src.takes)
    assert len(pitches) == len(freqs) and np.allclose(pitches, freqs, rtol=0.04), pitches
    for t in src.takes:
        assert abs(float(np.mean(t))) < 0.01  # no offset left in a take
        assert np.abs(t[:22]).max() < 0.3  # it starts (1 ms) before its attack, not on a step
    # a trimmed one-shot that starts at sample 0 is still a take
    one = _write(tmp_path / "one.wav", 0.8 * np.sin(2 * np.pi * 440 * np.arange(SR // 2) / SR) * np.exp(-np.arange(SR // 2) / SR / 0.06))
    assert len(_ReferenceSource([one]).takes) == 1


def test_references_rotate_through_their_takes(tmp_path):
    # a uniform draw that only avoided the last take left 2 of 5 takes in some windows of 5
    # events, and A-B-A-B runs; the same file given twice could play one take twice in a row
    from folai.synthesis.sampler import _ReferenceSource

    ref = _knocks(tmp_path / "r.wav")
    env = Envelope.zeros(61.0)
    for t in np.arange(0.5, 60.0, 0.3):
        env = env.add_event(float(t), 0.3, decay=0.05)
    s = SamplerSynth()
    for refs in ([ref], [ref, ref]):
        plan = s._plan(env, int(61 * SR), None, refs, None, 0)
        takes = plan.takes
        assert len(set(takes)) == 5 and len(takes) > 150
        assert all(len(set(takes[i : i + 3])) == 3 for i in range(len(takes) - 2))  # no A-B-A
        counts = np.bincount(takes)
        assert counts.min() > 0.6 * counts.mean()
    assert len(_ReferenceSource([ref, ref]).takes) == 5


def test_reference_one_shots_keep_their_attack_and_their_brightness(tmp_path):
    # the start variation (up to 2 ms) cut into the attack of 1 one-shot in 20; the pitch
    # variation (linear interpolation) dulled a bright take by 2-4 dB above 10 kHz
    from folai.synthesis.sampler import Event, _ReferenceSource

    rng = np.random.default_rng(3)
    y = np.zeros(3 * SR)
    for p in (0.3, 1.3, 2.3):
        q = int(p * SR)
        y[q : q + 4410] += rng.standard_normal(4410) * np.exp(-np.arange(4410) / 600)  # bright noise bursts
    src = _ReferenceSource([_write(tmp_path / "bright.wav", 0.5 * y)])
    ev = Event(time=1.0, level=0.5, strength=0.5, decay=0.05, sharp=True)

    def band(x, lo, hi):
        f = np.fft.rfftfreq(x.size, 1 / SR)
        return float(np.sum(np.abs(np.fft.rfft(x)) ** 2 * ((f >= lo) & (f < hi))))

    for k in range(40):
        x = src.impact(np.random.default_rng(k), ev, 1.0, k % len(src.takes))
        take = src.takes[k % len(src.takes)]
        assert np.abs(x[:4]).max() < 0.3 * np.abs(x).max()
        hf = 10 * np.log10(band(x, 12000, 18000) / band(x, 500, 4000)) - 10 * np.log10(band(take, 12000, 18000) / band(take, 500, 4000))
        assert hf > -1.0, (k, hf)


def test_a_long_ring_is_one_take_of_up_to_two_seconds(tmp_path):
    # takes were cut at 1.2 s (the documented limit is 2 s)
    from folai.synthesis.sampler import _ReferenceSource

    t = np.arange(5 * SR) / SR
    ring = _write(tmp_path / "ring.wav", 0.8 * np.sin(2 * np.pi * 620 * t) * np.exp(-t / 1.5))
    (take,) = _ReferenceSource([ring]).takes
    assert take.size >= int(1.9 * SR)


@pytest.mark.parametrize("rate", [10.0, 5.0])
def test_hits_typed_at_a_coarse_rate_sound_on_their_rows(rate):
    # interpolated to 125 frames/s, a 0 -> level step between two rows 100 ms apart became a
    # 100 ms ramp, read as a box-smoothed rise: the hit sounded 30-48 ms before its row
    from folai.metrics.sync import detect_onsets

    t = np.arange(int(3 * rate)) / rate
    hits = [0.4, 1.2, 2.0]
    v = np.zeros_like(t)
    for h, lv in zip(hits, (0.1, 0.2, 0.05)):
        v = np.maximum(v, np.where(t >= h - 1e-9, lv * np.exp(-np.maximum(t - h, 0) / 0.08), 0.0))
    on = detect_onsets(SamplerSynth().render(Envelope(v[None].astype(np.float32), rate=rate), duration=3.0).mean(axis=0), SR)
    assert len(on) == 3 and np.max(np.abs(on - hits)) < 0.015, on


def test_a_drawn_level_far_away_does_not_change_a_smoothed_envelopes_sound(scene):
    # the roughness check and the matching kernel were decided over the whole curve: a flat level
    # drawn at 24 s (its still frames made the whole curve "quantised") re-smoothed the curve and
    # changed the sound from 0.6 s on, polarity flips and an onset 11 ms off included
    y, times, env = scene  # a recording's SPEC (box-smoothed) envelope
    n = int(env.rate * 30)
    long = Envelope(np.pad(env.values, ((0, 0), (0, n - env.n_frames))), rate=env.rate)
    edited = long.draw([24.0, 24.001, 26.0, 26.001], [0.0, 0.1, 0.1, 0.0])
    s = SamplerSynth()
    a = s.render(long, duration=30.0, prompt="wood")
    b = s.render(edited, duration=30.0, prompt="wood")
    far = int((24.0 - s.peak_window - 2.4 - 0.1) * SR)
    assert np.array_equal(a[:, :far], b[:, :far])
    assert not np.array_equal(a, b)


@pytest.mark.parametrize(("gap", "ring"), [(0.5, 0.2), (0.3, 0.1)])
def test_a_short_hit_after_a_ringing_one_is_on_time(gap, ring):
    # in a box-smoothed envelope an earlier ring leaving the box makes a short hit's plateau fall a
    # little on every frame; read as an unsmoothed ring, the hit was placed ~45 ms early
    from folai.metrics.sync import detect_onsets
    from folai.testing import make_clicks

    y = make_clicks(3.0, SR, [1.0], amplitude=0.3, decay=ring, length=2.0, seed=0)
    y = y + make_clicks(3.0, SR, [1.0 + gap], amplitude=0.84, decay=0.0054, length=2.0, seed=1)
    env = Envelope.from_audio(y, SR)
    ev = [e.time for e in detect_events(env.mono)]
    assert min(abs(np.array(ev) - (1.0 + gap))) < 0.01, ev
    on = detect_onsets(SamplerSynth().render(env, duration=3.0, prompt="metal").mean(axis=0), SR)
    assert min(abs(on - (1.0 + gap))) < 0.015, on


def test_a_swell_typed_at_10_rows_per_second_stays_a_swell():
    # the coarse-rate rule made every rise from 0 a hit: a spurious event, and the level squashed
    # under its ceiling (5-8 dB low for 0.3 s)
    t = np.arange(30) / 10.0
    v = np.clip((t - 0.1) / 4.0, 0, 0.25)  # (a texture's RMS at full-scale peaks: ~0.3)
    env = Envelope(v[None].astype(np.float32), rate=10.0)
    s = SamplerSynth()
    plan = s._plan(env, int(3 * SR), "gravel", [], None, 0)
    assert not [e for e in plan.events if e.time < 2.0]
    from folai.metrics.sync import eval_rms

    got = eval_rms(s.render(env, duration=3.0, prompt="gravel").mean(axis=0))  # 44.1 kHz, 128 hop
    f = np.arange(int(0.4 * SR / 128), int(2.0 * SR / 128))
    want = np.interp(f * 128 / SR, t, v)
    db = 20 * np.log10(np.convolve(got, np.ones(41) / 41, mode="same")[f] / want)
    assert np.max(np.abs(db)) < 2.0


def test_a_fast_click_train_reference_gives_a_take_per_click(tmp_path):
    # at 12-20 clicks a second every stretch is under the 0.1 s take minimum: such a recording
    # gave one take, or was refused as having "no usable sound"
    from folai.synthesis.sampler import _ReferenceSource

    y = np.zeros(SR)
    k = np.arange(1200)
    for i, p in enumerate(range(2000, SR - 1500, SR // 20)):
        y[p : p + k.size] += 0.8 * np.sin(2 * np.pi * (500 + 40 * (i % 5)) * k / SR) * np.exp(-k / 150)
    src = _ReferenceSource([_write(tmp_path / "train.wav", y)])
    assert len(src.takes) >= 10


@pytest.mark.parametrize("second", ["right", "both"])
def test_a_stereo_envelopes_hit_has_its_own_balance_after_a_hit_on_the_other_side(second):
    # the balance at an onset still held the tail of an earlier hit on the other side: a right-only
    # hit 0.6 s after a left-only one had its left channel at -11.8 dB, an even one leaned -3.6 dB
    m1 = Envelope.zeros(3.0).add_event(0.8, 0.3).mono
    m2 = Envelope.zeros(3.0).add_event(1.4, 0.3).mono
    left, right = (m1, m2) if second == "right" else (m1 + m2, m2)
    y = SamplerSynth().render(Envelope(np.stack([left, right]).astype(np.float32)), duration=3.0)
    a, b = int(1.39 * SR), int(1.5 * SR)
    lv, rv = (float(np.sqrt(np.mean(c[a:b].astype(np.float64) ** 2))) for c in y)
    if second == "right":
        assert lv < 1e-4 * rv, (lv, rv)
    else:
        assert abs(20 * np.log10(rv / lv)) < 1.0, (lv, rv)


def _hit_train(seconds, seed=0, every=0.7):
    """A long recording: hits every ``every`` s over room noise and a DC offset."""
    rng = np.random.default_rng(seed)
    y = 0.002 * rng.standard_normal(int(seconds * SR)) + 0.01
    n = int(0.35 * SR)
    for t in np.arange(0.3, seconds - 0.5, every):
        x = _hit(rng, rng.uniform(250, 900), rng.uniform(0.03, 0.08), n) * rng.uniform(0.3, 0.9)
        y[int(t * SR) : int(t * SR) + n] += x
    return y


def test_a_long_reference_is_analysed_in_blocks_as_at_once(monkeypatch):
    # a 20-minute reference took 2.1 GB and 17 s (librosa's spectrogram of the whole file, twice):
    # a long recording is now filtered and its onsets found in blocks (here 4 s ones), which must
    # find what the whole-file analysis finds
    from folai.synthesis import sampler

    y = _hit_train(14.0).astype(np.float32)
    whole_dc = sampler._no_dc(y)
    whole_on = sampler._onsets(whole_dc)
    monkeypatch.setattr(sampler, "_REF_BLOCK", 4.0)
    assert len(list(sampler._blocks(y.size))) == 4
    dc = sampler._no_dc(y)
    assert np.abs(dc - whole_dc).max() < 1e-5
    # each block's detector is relative to its block (a flicker of the room noise at the start
    # passes it there); the onsets where the level rises, those that make takes, are the same: one
    # per hit, within one 512-sample hop of the whole-file analysis
    on = sampler._rising_onsets(dc, sampler._onsets(dc))
    whole_on = sampler._rising_onsets(whole_dc, whole_on)
    assert on.size == whole_on.size == 19
    assert np.abs(on - whole_on).max() <= 512
    assert np.all(np.diff(on) > 0)


def test_a_long_references_takes_and_texture_material(tmp_path, monkeypatch):
    from folai.synthesis import sampler

    path = _write(tmp_path / "long.wav", _hit_train(30.0, seed=1))
    whole = sampler._ReferenceSource([path])
    monkeypatch.setattr(sampler, "_REF_BLOCK", 7.0)
    monkeypatch.setattr(sampler, "_MATERIAL_MAX", 12.0)
    monkeypatch.setattr(sampler, "_MATERIAL_PIECE", 3.0)
    blocks = sampler._ReferenceSource([path])
    # the same takes (one per hit), and texture grains from 4 excerpts of 3 s, not the whole file
    assert len(blocks.takes) == len(whole.takes) == 42
    assert all(a.size == b.size and np.abs(a - b).max() < 1e-4 for a, b in zip(blocks.takes, whole.takes))
    assert whole.material.size == 30 * SR and blocks.material.size == 4 * 3 * SR
    assert blocks._grain_starts.size > 100
    tex = blocks.texture(np.random.default_rng(0), SR)
    assert np.isfinite(tex).all() and abs(float(np.sqrt(np.mean(tex.astype(np.float64) ** 2))) - 1.0) < 1e-3


def test_grain_starts_skip_onsets_and_quiet_parts(tmp_path):
    # the grain rule, now vectorised, against its definition: no grain starts within (onset - 80 ms,
    # onset + 60 ms), nor where its 80 ms are under 1 % of the loudest grain's RMS
    from folai.synthesis import sampler

    rng = np.random.default_rng(0)
    y = np.zeros(3 * SR)
    y[SR : 2 * SR] = 0.3 * rng.standard_normal(SR)  # steady noise from 1 to 2 s, silence around it
    k = np.arange(int(0.2 * SR))
    for t in (1.3, 1.6, 2.4):
        y[int(t * SR) : int(t * SR) + k.size] += np.sin(2 * np.pi * 700 * k / SR) * np.exp(-k / 800)
    s = sampler._ReferenceSource([_write(tmp_path / "r.wav", y)])
    m, g = s.material, int(0.08 * SR)
    starts = np.arange(0, m.size - g, 441)
    on = sampler._onsets(m)
    assert on.size >= 2
    expect = np.ones(starts.size, dtype=bool)
    for o in on:
        expect &= ~((starts + g > o) & (starts < o + int(0.06 * SR)))
    r = np.array([np.sqrt(np.mean(m[p : p + g].astype(np.float64) ** 2)) for p in starts])
    expect &= r > 0.01 * r.max()
    assert 0 < expect.sum() < starts.size // 2
    assert np.array_equal(s._grain_starts, starts[expect])


def test_onsets_of_a_recording_just_over_one_block_are_not_counted_twice(monkeypatch):
    # 60-61 s: the first block's context reached the end and its onsets were kept unfiltered, so
    # the last second's onsets came twice (found by a review; harmless then, takes are unique)
    from folai.synthesis import sampler

    monkeypatch.setattr(sampler, "_REF_BLOCK", 4.0)
    y = _hit_train(4.8, seed=2, every=0.3).astype(np.float32)
    assert len(list(sampler._blocks(y.size))) == 2
    on = sampler._onsets(y)
    assert on.size > 10 and np.all(np.diff(on) > 0) and np.sum(on >= 4 * SR) >= 1


def test_a_stereo_envelope_is_not_rendered_from_a_mono_plan_with_the_same_bytes():
    # the plan cache keyed on the values' bytes only: a stereo (2, T) curve rendered after a mono
    # one of 2T frames holding the same bytes got the mono render (found by a review)
    rng = np.random.default_rng(0)
    T = Envelope.zeros(2.0).n_frames
    v = (rng.random(2 * T) * (rng.random(2 * T) < 0.02) * 0.4).astype(np.float32)
    mono, stereo = Envelope(v[None]), Envelope(v.reshape(2, T))
    s = SamplerSynth()
    s.render(mono, duration=2.0, seed=0, progress=False)
    got = s.render(stereo, duration=2.0, seed=0, progress=False)
    np.testing.assert_array_equal(got, SamplerSynth().render(stereo, duration=2.0, seed=0, progress=False))


def _partial_knocks(seconds, times, freqs, seed=0, peak=0.5):
    """Knocks (a decaying partial series over a 4 ms noise click) at ``times`` s, one pitch each."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.4 * SR)) / SR
    y = np.zeros(int(seconds * SR))
    for at, f0 in zip(times, freqs):
        h = sum(np.sin(2 * np.pi * f0 * r * t + rng.uniform(0, 6)) * np.exp(-t / (0.05 / (k + 1))) / (k + 1)
                for k, r in enumerate((1, 2.3, 3.9, 5.4)))
        h = h + rng.standard_normal(t.size) * np.exp(-t / 0.004) * 0.5
        a = int(at * SR)
        y[a : a + t.size] += peak * h / np.abs(h).max()
    return y


def _pitch(take):
    """The strongest frequency over 150 Hz of a take's first 0.2 s (Hz, 5 Hz bins)."""
    spec = np.abs(np.fft.rfft(take[: int(0.2 * SR)], n=8820))
    spec[:30] = 0.0
    return float(np.argmax(spec) * SR / 8820)


def test_a_surround_reference_is_read_from_its_channels_mean(tmp_path):
    # 5.1 with the knocks in L, R and C and room tone in the surrounds: the out-of-phase guard
    # compared the mean with the loudest channel, fired for any such file, and read the takes from
    # a surround channel (one take of room tone; found by a review)
    from folai.synthesis.sampler import _ReferenceSource

    freqs = (300.0, 420.0, 520.0)
    front = _partial_knocks(8.0, (0.5, 3.0, 5.5), freqs)
    rng = np.random.default_rng(1)
    x = np.zeros((front.size, 6))
    x[:, 0] = x[:, 1] = 0.7 * front
    x[:, 2] = front
    x[:, 4], x[:, 5] = (0.04 * rng.standard_normal(front.size) for _ in range(2))
    sf.write(str(tmp_path / "knocks51.wav"), x, SR, subtype="PCM_24")
    src = _ReferenceSource([tmp_path / "knocks51.wav"])
    assert sorted(round(_pitch(k) / 10) * 10 for k in src.takes) == [300, 420, 520]


def test_mains_hum_under_the_hits_does_not_hide_them(tmp_path):
    # 50 Hz hum 10 dB under the knocks: the broadband rise test dropped their onsets, and the
    # whole file (hum and knocks) became one take played at every event (found by a review)
    from folai.synthesis.sampler import _ReferenceSource

    freqs = (300.0, 420.0, 520.0, 610.0, 710.0, 830.0)
    y = _partial_knocks(3.8, [0.3 + 0.5 * i for i in range(6)], freqs)
    y += 10 ** (-16 / 20) * np.sin(2 * np.pi * 50 * np.arange(y.size) / SR)
    src = _ReferenceSource([_write(tmp_path / "hum.wav", y)])
    assert sorted(round(_pitch(k) / 10) * 10 for k in src.takes) == [300, 420, 520, 610, 710, 830]


def _silent_runs(audio, env, level=0.2):
    """The longest run of envelope frames (125/s) at ``level`` of the curve's peak or more where
    the render is silent (32 ms RMS under 1e-4)."""
    e = env.resample(125.0).mono
    y = np.asarray(audio).mean(axis=0)
    best = run = 0
    for f in range(e.size):
        c = int(round((env.start + f / 125.0) * SR))
        w = y[max(0, c - 706) : c + 706]
        silent = e[f] >= level * e.max() and (w.size == 0 or float(np.sqrt(np.mean(w * w))) < 1e-4)
        run = run + 1 if silent else 0
        best = max(best, run)
    return best


def _typing(seconds=8.0, seed=2, smoothing=True):
    """Keys 30-250 ms apart, at random levels: a curve with more sounds than onsets a detector reads."""
    rng = np.random.default_rng(seed)
    z, t = np.zeros(int(seconds * SR)), 0.2
    k = np.arange(300)
    while t < seconds - 0.2:
        a = int(t * SR)
        z[a : a + 300] += rng.uniform(0.2, 0.9) * np.sin(k * rng.uniform(0.5, 1.5)) * np.exp(-k / 50)
        t += rng.exponential(0.12) + 0.03
    return Envelope.from_audio(z.astype(np.float32), SR, smoothing=smoothing)


def test_sounds_too_dense_to_read_as_onsets_are_not_rendered_as_silence():
    # a typing curve measured from a recording: after a loud key the curve stayed at 20-45 % of its
    # peak for 0.3 s (three quieter keys), and the render was digital silence there: the event's
    # recovered RMS had ended and no texture was planned (found by a review)
    env = _typing()
    for prompt in ("wood", "plastic"):
        audio = SamplerSynth().render(env, duration=env.end, prompt=prompt, progress=False)
        assert _silent_runs(audio, env) < 10, prompt  # (80 ms: more than a smoothed curve's rise before an onset)


def test_takes_cut_out_of_digital_silence_leave_no_silent_gaps(tmp_path, caplog):
    # 5 ms ticks between digital silence (a gated recording): the limiter's ceiling after a take was
    # 0, 0 / 0 gave NaNs, and whole blocks came out silent with a "non-finite samples" warning
    y = np.zeros(4 * SR)
    k = np.arange(220)
    for h in np.arange(0.2, 3.9, 0.25):
        a = int(h * SR)
        y[a : a + 220] = 0.7 * np.sin(k * 1.3) * np.exp(-k / 40)
    ref = _write(tmp_path / "ticks.wav", y)
    for seed, seconds, smoothing in ((2, 8.0, True), (10, 4.0, True), (3, 4.0, False)):
        env = _typing(seconds, seed, smoothing)
        caplog.clear()
        with caplog.at_level("WARNING"):
            audio = SamplerSynth().render(env, duration=env.end, references=[ref], progress=False)
        assert "non-finite" not in caplog.text, seed
        assert np.all(np.isfinite(audio))
        assert _silent_runs(audio, env) < 10, seed


def test_a_trimmed_click_is_a_reference(tmp_path):
    # a 30 ms click was refused as too short, while the same click with 21 ms of silence after it
    # was taken (found by a review); under 20 ms is still refused
    from folai.synthesis.sampler import _ReferenceSource

    k = np.arange(int(0.03 * SR))
    click = 0.8 * np.sin(k * 0.4) * np.exp(-k / 200)
    src = _ReferenceSource([_write(tmp_path / "click.wav", click)])
    assert len(src.takes) == 1
    with pytest.raises(FolaiError, match="too short"):
        _ReferenceSource([_write(tmp_path / "tick.wav", click[: int(0.015 * SR)])])


def test_a_reference_with_nan_samples_is_read_as_zeros(tmp_path, caplog):
    # a float WAV with one NaN (a plugin's glitch in an export) ended in librosa's "Audio buffer is
    # not finite everywhere" as an internal error (found by a review)
    y = _partial_knocks(2.0, (0.2, 0.8, 1.4), (300.0, 520.0, 850.0))
    y[30000] = np.nan
    sf.write(str(tmp_path / "nan.wav"), y, SR, subtype="FLOAT")
    env = Envelope.zeros(2.0).add_event(0.5, 0.4)
    with caplog.at_level("WARNING"):
        audio = SamplerSynth().render(env, duration=2.0, references=[tmp_path / "nan.wav"], progress=False)
    assert "NaN or infinite" in caplog.text and "nan.wav" in caplog.text
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() > 0.1


def test_a_reference_with_one_huge_glitch_sample_keeps_its_takes(tmp_path, caplog):
    # a float WAV with one finite but huge sample (1e6, a plugin's glitch) was normalised by it and
    # refused as having "no usable sound" (found by a review)
    from folai.media import read_audio
    from folai.synthesis.sampler import _ReferenceSource

    y = _partial_knocks(2.0, (0.2, 0.8, 1.4), (300.0, 520.0, 850.0))
    y[30000] = 1e6
    sf.write(str(tmp_path / "glitch.wav"), y, SR, subtype="FLOAT")
    with caplog.at_level("WARNING"):
        src = _ReferenceSource([tmp_path / "glitch.wav"])
    assert len(src.takes) == 3
    assert "isolated samples over +18 dBFS" in caplog.text and "glitch.wav" in caplog.text
    # a float file at the scale of 16-bit integers is loud, not damaged: read as it is
    loud = _partial_knocks(2.0, (0.2, 0.8), (300.0, 520.0)) * 20000.0
    sf.write(str(tmp_path / "loud.wav"), loud, SR, subtype="FLOAT")
    assert np.abs(read_audio(tmp_path / "loud.wav", None)).max() == pytest.approx(np.abs(loud).max())
    # an impulse response or a click track at the scale of 16-bit integers, with nothing else in
    # it, is what it is (a review found such files zeroed)
    ir = np.zeros(SR)
    ir[::4410] = 32767.0
    sf.write(str(tmp_path / "clicks.wav"), ir, SR, subtype="FLOAT")
    assert np.abs(read_audio(tmp_path / "clicks.wav", None)).max() == pytest.approx(32767.0)
    # and a sample far over full scale in the middle of loud sound is sound (a hot float mix)
    z = _partial_knocks(2.0, (0.2,), (300.0,))
    z /= np.abs(z).max()
    k = int(np.argmax(np.abs(z)))
    z[k + 1] = 12.0
    sf.write(str(tmp_path / "over.wav"), z, SR, subtype="FLOAT")
    assert np.abs(read_audio(tmp_path / "over.wav", None)).max() == pytest.approx(12.0)

def test_a_crackly_reference_is_cut_into_takes(tmp_path):
    # crumpled paper or foil: crackles of 2-6 ms, ~30 a second, over a quiet room. A stretch whose
    # loudest crackle came at its end was trimmed to under 10 ms, and measuring its level then
    # failed on no 10 ms block at all: an internal error (found while testing the roll fix)
    from folai.synthesis.sampler import _ReferenceSource

    for seed in range(8):
        rng = np.random.default_rng(seed)
        y = rng.standard_normal(int(1.5 * SR)) * 0.003
        t = 0.05
        while t < 1.4:
            a, n = int(t * SR), int(rng.uniform(0.002, 0.006) * SR)
            y[a : a + n] += rng.standard_normal(n) * np.exp(-np.arange(n) / (n / 3)) * rng.uniform(0.05, 0.6)
            t += rng.exponential(1 / 30)
        src = _ReferenceSource([_write(tmp_path / "crumple.wav", 0.7 * y / np.abs(y).max())])  # (seed 6 failed)
        assert len(src.takes) >= 8 and min(x.size for x in src.takes) >= int(0.02 * SR), seed


def test_a_low_bodied_knock_with_a_rattle_is_one_take(tmp_path):
    # the 200 Hz re-test for hum ran in every file: in a clean one, librosa's onsets on the rattle
    # in a low-bodied knock's decay rose over 200 Hz, and 3 knocks fell into 10-20 pieces of
    # 30-70 ms (found by a review of the hum fix). It runs only where a low tone fills the quiet.
    from scipy.signal import butter, sosfiltfilt

    from folai.synthesis.sampler import _ReferenceSource

    rng = np.random.default_rng(3)
    t = np.arange(int(0.8 * SR)) / SR
    y = np.zeros(int(3.3 * SR))
    band = butter(4, (2000.0, 6000.0), btype="bandpass", fs=SR, output="sos")
    for k in range(3):
        env = np.exp(-t / 0.15)
        x = np.sin(2 * np.pi * 120.0 * t) * env + 0.3 * rng.standard_normal(t.size) * np.exp(-t / 0.003)
        r, c = np.zeros(t.size), 0.03
        while c < 0.6:  # a loose part rattling: clicks every 25-50 ms, with the body's decay
            i = int(c * SR)
            r[i : i + 200] += rng.standard_normal(200) * np.exp(-np.arange(200) / 30) * env[i]
            c += rng.uniform(0.025, 0.05)
        r = sosfiltfilt(band, r)
        head = slice(0, int(0.3 * SR))
        r *= 10 ** (-14 / 20) * np.sqrt(np.mean(x[head] ** 2)) / np.sqrt(np.mean(r[head] ** 2))
        a = int((0.2 + k) * SR)
        y[a : a + t.size] += x + r
    src = _ReferenceSource([_write(tmp_path / "rattle.wav", 0.8 * y / np.abs(y).max())])
    assert len(src.takes) == 3


def test_a_slow_ring_hands_over_to_texture_without_a_new_onset():
    # a drawn hit with a 1 s decay: the one-shot stops 2 s after its onset. The curve then had no
    # source (silence from 2.5 s), and with the first texture fill a texture switched on where the
    # event's shape ended (4.4 s), or, counted to the one-shot's end, at 2.5 s with the level
    # matching's jump: both heard and detected as a hit (found by a review)
    import librosa

    env = Envelope.zeros(7.0).add_event(0.5, 0.8, decay=1.0)
    e = env.mono
    for prompt in (None, "metal", "glass"):
        a = SamplerSynth().render(env, duration=7.0, prompt=prompt, progress=False).mean(axis=0)
        on = librosa.onset.onset_detect(y=a, sr=SR, units="time")
        assert np.allclose(on, [0.51], atol=0.03), (prompt, on)
        for t in (2.4, 2.6, 3.0, 4.0):  # the level follows the curve through the hand-over
            rms = float(np.sqrt(np.mean(a[int(t * SR) - 706 : int(t * SR) + 706] ** 2)))
            assert 0.5 < rms / e[int(t * 125)] < 2.0, (prompt, t)


def test_the_fill_leaves_clean_hits_and_their_tails_alone():
    # counted from the sound's first frame, a smoothed curve's rise before it read as lacking: the
    # fill spilled ~100 ms past every onset and switched off the guard on tails (found by a review)
    from folai.synthesis.sampler import SamplerSynth as S

    y = _partial_knocks(4.0, (0.3, 1.1, 1.9, 2.7), (300.0, 420.0, 520.0, 610.0))
    for smoothing in (True, False):
        env = Envelope.from_audio(y.astype(np.float32), SR, smoothing=smoothing)
        plan = S()._plan(env, int(4.0 * SR), None, [], None, 0)
        assert len(plan.events) == 4 and not np.any(plan.q > 0), smoothing


def test_a_texture_skirt_never_swells_over_the_curve_it_ends():
    # the skirt fell at 1 dB per frame from the loudest frame of the texture's stretch: after a fall
    # steeper than that it stood over the curve's last frames, a swell after the curve went silent
    # (found by a review)
    from folai.synthesis.sampler import SamplerSynth as S

    for seed in range(4):
        env = _typing(4.0, seed)
        plan = S()._plan(env, int(env.end * SR), "wood", [], None, 0)
        tg, sk = plan.e, plan.skirt
        edge = np.flatnonzero((tg[:-1] > 0) & (tg[1:] == 0)) + 1
        assert np.all(sk[edge] <= tg[edge - 1] + 1e-12), seed
        edge = np.flatnonzero((tg[1:] > 0) & (tg[:-1] == 0))
        assert np.all(sk[edge] <= tg[edge + 1] + 1e-12), seed


@pytest.mark.parametrize("codec, rate", [("libmp3lame", 44100), ("aac", 48000), ("libopus", 48000), ("pad", 44100),
                                         ("flip", 44100)])
def test_a_copy_of_a_reference_adds_no_takes(tmp_path, codec, rate):
    # the same recording given as .wav and .mp3 (or resampled to 48 kHz, or with silence added in
    # front, or its polarity flipped): its takes differ in their samples, so the digest kept both,
    # and the round robin played one knock twice in a row, once from each file
    import soundfile as sf

    from folai.synthesis.sampler import _ReferenceSource
    from folai.testing import make_audio_file

    wav = _knocks(tmp_path / "k.wav", noise=0.002, jitter=0.2)  # played by hand, off the grid
    y, sr = sf.read(wav, always_2d=True)
    if rate != sr:
        import soxr

        y = soxr.resample(y, sr, rate)
    if codec == "pad":
        copy = _write(tmp_path / "k2.wav", np.pad(y[:, 0], (2205 + 17, 0)))  # 50 ms and a bit
    elif codec == "flip":
        copy = _write(tmp_path / "k2.wav", -y[:, 0])
    else:
        ext = {"libmp3lame": ".mp3", "aac": ".m4a", "libopus": ".mkv"}[codec]
        copy = make_audio_file(tmp_path / f"k{ext}", y.T.astype(np.float32), rate, codec=codec)
    assert len(_ReferenceSource([wav]).takes) == 5
    assert len(_ReferenceSource([copy]).takes) == 5  # the copy alone: its own five
    assert len(_ReferenceSource([wav, copy]).takes) == 5
    assert len(_ReferenceSource([copy, wav]).takes) == 5
    # another recording of other knocks keeps its takes beside them
    other = _knocks(tmp_path / "o.wav", freqs=(200.0, 390.0, 610.0), seed=1, noise=0.002)
    assert len(_ReferenceSource([wav, copy, other]).takes) == 8


def test_takes_alike_in_other_files_are_kept_unless_the_file_is_a_copy(tmp_path):
    # what is not a copy: the same knocks recorded again at other times (a second performance),
    # other sounds on the very same grid (a pattern exported once per sound), one-shot files of one
    # object (a sample pack's round robin: no timing to tell a copy by)
    from folai.synthesis.sampler import _ReferenceSource

    a = _knocks(tmp_path / "a.wav", noise=0.002)
    again = _knocks(tmp_path / "b.wav", noise=0.002, seed=3, lead=0.45, gap=0.7)
    grid = _knocks(tmp_path / "c.wav", freqs=(1900.0, 2300.0, 2900.0, 3700.0, 4700.0), noise=0.002)
    assert len(_ReferenceSource([a, again]).takes) == 10
    assert len(_ReferenceSource([a, grid]).takes) == 10
    shots = [_knocks(tmp_path / f"s{i}.wav", freqs=(440.0,), noise=0.002, seed=i) for i in range(3)]
    assert len(_ReferenceSource(shots).takes) == 3
    # two performances of one block on a sequencer's grid (pitch +-1 % a hit): timing lines up at
    # every step of the grid, so it tells nothing (a review had them merged, 12 takes -> 7)
    rng = np.random.default_rng(5)
    played = [_knocks(tmp_path / f"g{i}.wav", freqs=tuple(600 * (1 + 0.01 * rng.standard_normal(6))), gap=0.5,
                      noise=0.002, seed=10 + i) for i in range(2)]
    assert len(_ReferenceSource(played).takes) == 12
    # ... or in one irregular phrase (a sequenced part rendered twice): distinct hits of one object,
    # each striking its modes in other proportions, with a burst of noise (a third review had them
    # merged under a looser likeness)
    phrase = [0.3, 0.95, 1.32, 2.1, 2.55, 3.4, 3.71, 4.52]
    modes = np.array([420.0, 1130.0, 2310.0, 3700.0])
    k = np.arange(int(0.3 * SR)) / SR
    for take in range(2):
        rng = np.random.default_rng(20 + take)
        y = 0.002 * rng.standard_normal(int(5.2 * SR))
        for t0 in phrase:
            amp = rng.uniform(0.4, 1.0, modes.size)
            hit = (amp[:, None] * np.sin(2 * np.pi * modes[:, None] * k) * np.exp(-k / 0.08)).sum(axis=0)
            hit[:220] += 0.5 * rng.standard_normal(220)
            p = int(t0 * SR)
            y[p : p + k.size] += 0.25 * hit
        _write(tmp_path / f"p{take}.wav", y)
    assert len(_ReferenceSource([tmp_path / "p0.wav", tmp_path / "p1.wav"]).takes) == 16


@pytest.mark.parametrize("room", [dict(noise=0.03), dict(hum=0.1)])
def test_a_reference_given_twice_adds_no_head_of_room_noise(tmp_path, room):
    # a file whose hits were all given before had added its head (room noise, hum) as a take,
    # scaled to full scale (found by a review)
    import shutil

    from folai.synthesis.sampler import _ReferenceSource

    wav = _knocks(tmp_path / "k.wav", **room)
    shutil.copy(wav, tmp_path / "k2.wav")
    assert len(_ReferenceSource([wav, tmp_path / "k2.wav"]).takes) == 5
