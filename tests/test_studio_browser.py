"""End to end in a real headless browser (Debian's chromium driven by Playwright): open a generated
video, estimate its envelope, render, add an event by clicking the timeline at a known time, render
again, download the audio and find a new onset at that time (+-20 ms).

Needs: apt-get install -y chromium; pip install playwright (no `playwright install`: it uses
/usr/bin/chromium). Set FOLAI_STUDIO_SCREENSHOT=docs/studio.png to also save a screenshot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"),
]

HITS = [0.6, 4.8]
CLICK_AT = 3.0
DURATION = 6.0
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def studio(tmp_path):
    from folai.studio import StudioServer

    with StudioServer("127.0.0.1", 0, workspace=tmp_path / "ws") as server:
        yield server


@pytest.fixture
def browser_page(tmp_path):
    try:  # chromium is here, so the test must run: a missing driver is a failure, not a skip
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("chromium is installed but Playwright for Python is not: pip install playwright")
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 860},
            accept_downloads=True,
        )
        ctx.set_default_timeout(60_000)
        try:
            yield ctx.pages[0] if ctx.pages else ctx.new_page()
        finally:
            ctx.close()


def wait_idle(page) -> None:
    page.wait_for_function("document.body.dataset.busy === '0'")


def download_wav(page, tmp_path: Path, name: str) -> tuple[np.ndarray, int]:
    with page.expect_download() as dl:
        page.click("#link-wav")
    path = tmp_path / name
    dl.value.save_as(path)
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    return audio.T, sr


def test_click_to_add_event_then_render_has_onset_there(studio, browser_page, tmp_path):
    from folai.metrics.sync import detect_onsets
    from folai.testing import make_hit_video

    video = tmp_path / "bounce.mp4"
    make_hit_video(video, duration=DURATION, hit_times=HITS, size=(320, 240), with_audio=False)
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(studio.url)
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#file-video", str(video))
    page.wait_for_function("document.getElementById('video-name').textContent.includes('bounce.mp4')")
    wait_idle(page)

    # stage 1 from the page, then a first render
    page.click("#btn-timing")
    page.wait_for_function("document.getElementById('message').textContent.includes('timing found')")
    wait_idle(page)
    page.fill("#in-prompt", "hitting wood with a stick")
    page.click("#btn-render")
    page.wait_for_function("document.body.dataset.renders === '1'")
    wait_idle(page)
    before, sr = download_wav(page, tmp_path, "before.wav")
    on_before = detect_onsets(before, sr)
    assert not np.any(np.abs(on_before - CLICK_AT) < 0.1), on_before

    # add an event by clicking the timeline at CLICK_AT with the Add tool
    page.click("#tool-add")
    box = page.locator("#timeline").bounding_box()
    x = box["x"] + CLICK_AT / DURATION * box["width"]
    # quieter than the detected hits, so their sound (and the audio far from the click) stays as it was
    level = 0.5 * min(lv for _, lv in page.evaluate("S.env.events"))
    y = box["y"] + page.evaluate(f"levelToY({level})")
    with page.expect_response(lambda r: r.url.endswith("/edit")) as resp:
        page.mouse.click(x, y)
    data = resp.value.json()
    assert resp.value.ok, data
    events = [t for t, _ in data["events"]]
    assert np.min(np.abs(np.asarray(events) - CLICK_AT)) < 0.01, events
    page.wait_for_function(f"document.body.dataset.envVersion === '{data['version']}'")

    page.click("#btn-render")
    page.wait_for_function("document.body.dataset.renders === '2'")
    wait_idle(page)
    assert "re-rendered 2.00–6.00 s only" in page.inner_text("#message")  # the sampler's 2 s blocks
    after, sr = download_wav(page, tmp_path, "after.wav")
    on_after = detect_onsets(after, sr)
    assert np.min(np.abs(on_after - CLICK_AT)) <= 0.02, (on_after, CLICK_AT)
    for h in HITS:  # the hits are still there
        assert np.min(np.abs(on_after - h)) <= 0.05, (on_after, h)
    np.testing.assert_array_equal(after[:, : 2 * sr], before[:, : 2 * sr])  # kept sample for sample

    # audition: playing the video plays the render in sync (the video's own sound muted)
    page.evaluate("document.getElementById('video').currentTime = 1.0")
    page.click("#btn-play")
    page.wait_for_function("document.getElementById('video').currentTime > 1.6", timeout=20_000)
    state = page.evaluate("""() => { const v = document.getElementById('video'), a = document.getElementById('audio');
        return {vt: v.currentTime, at: a.currentTime, ap: a.paused, muted: v.muted}; }""")
    page.click("#btn-play")
    assert not state["ap"] and state["muted"] and abs(state["at"] - state["vt"]) < 0.15, state
    # export: the render muxed onto the video
    page.click("#btn-export")
    page.wait_for_selector("#link-export:not([hidden])")
    wait_idle(page)
    with page.expect_download() as dl:
        page.click("#link-export")
    exported = tmp_path / "exported.mp4"
    dl.value.save_as(exported)
    from folai.media import probe_video, read_audio

    assert probe_video(exported).has_audio
    muxed = read_audio(exported, sr=sr, channels=1)[0]
    assert np.min(np.abs(detect_onsets(muxed, sr) - CLICK_AT)) <= 0.03

    # a selection on the timeline for the screenshot; errors show in the page, not as stack traces
    page.click("#tool-select")
    page.mouse.move(box["x"] + 3.6 / DURATION * box["width"], box["y"] + 60)
    page.mouse.down()
    page.mouse.move(box["x"] + 4.3 / DURATION * box["width"], box["y"] + 60, steps=5)
    page.mouse.up()
    page.evaluate("document.getElementById('video').currentTime = 3.0")
    page.wait_for_timeout(300)
    shot = os.environ.get("FOLAI_STUDIO_SCREENSHOT")
    if shot:
        page.screenshot(path=shot)
    assert not errors, errors


def test_timeline_drag_draw_delete_undo_and_csv(studio, browser_page, tmp_path):
    from folai.envelope import Envelope
    from folai.testing import make_static_video

    video = tmp_path / "still.mp4"
    make_static_video(video, duration=DURATION, size=(160, 120))
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(studio.url)
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#file-video", str(video))
    page.wait_for_function("document.getElementById('video-name').textContent.includes('still.mp4')")
    wait_idle(page)
    box = page.locator("#timeline").bounding_box()
    page.select_option("#sel-yscale", "1")  # level axis 0..1
    # page coordinates of a time / level, from the page's own mapping
    X = lambda t: box["x"] + page.evaluate(f"tToX({t})")  # noqa: E731
    Y = lambda lv: box["y"] + page.evaluate(f"levelToY({lv})")  # noqa: E731
    assert abs(X(DURATION / 2) - (box["x"] + box["width"] / 2)) < 1

    def edit(action) -> dict:
        with page.expect_response(lambda r: "/edit" in r.url or r.url.endswith(("/undo", "/redo"))) as resp:
            action()
        data = resp.value.json()  # read at once: the browser may evict the body later
        assert resp.value.ok, data
        page.wait_for_function(f"document.body.dataset.envVersion === '{data['version']}'")  # the page drew it
        return data

    # a region of interest drawn on the video, used by the timing
    page.click("#btn-roi")
    rb = page.locator("#roi").bounding_box()
    page.mouse.move(rb["x"] + 0.1 * rb["width"], rb["y"] + 0.1 * rb["height"])
    page.mouse.down()
    page.mouse.move(rb["x"] + 0.6 * rb["width"], rb["y"] + 0.7 * rb["height"], steps=5)
    page.mouse.up()
    roi = page.evaluate("S.roi")
    assert abs(roi[0] - 16) <= 2 and abs(roi[1] - 12) <= 2 and abs(roi[2] - 80) <= 2 and abs(roi[3] - 72) <= 2, roi
    with page.expect_request(lambda r: r.url.endswith("/timing")) as req:
        page.click("#btn-timing")
    assert req.value.post_data_json["roi"] == roi
    page.wait_for_function("document.getElementById('message').textContent.includes('timing found')")
    wait_idle(page)

    page.click("#tool-add")
    env = edit(lambda: page.mouse.click(X(1.0), Y(0.5)))
    (t, lv), = env["events"]
    # drag the event's dot later and lower with the select tool
    page.click("#tool-select")

    def drag():
        page.mouse.move(X(t), Y(lv))
        page.mouse.down()
        page.mouse.move(X(2.0), Y(0.25), steps=6)
        page.mouse.up()

    env = edit(drag)
    (t2, lv2), = env["events"]
    assert abs(t2 - 2.0) < 0.02 and abs(lv2 - 0.25) < 0.02, env["events"]
    env = edit(lambda: page.keyboard.press("Control+z"))
    assert abs(env["events"][0][0] - 1.0) < 0.01 and env["can_redo"]
    env = edit(lambda: page.click("#btn-redo"))
    assert abs(env["events"][0][0] - 2.0) < 0.02

    # freehand drawing: a sustained stretch
    page.click("#tool-draw")

    def draw_stroke():
        page.mouse.move(X(2.6), Y(0.2))
        page.mouse.down()
        page.mouse.move(X(3.4), Y(0.3), steps=12)
        page.mouse.up()

    env = edit(draw_stroke)
    v = np.asarray(env["values"])
    assert np.all(v[int(2.7 * 125) : int(3.3 * 125)] > 0.15)
    # select a range and delete it
    page.click("#tool-select")
    page.mouse.move(X(2.5), Y(0.9))
    page.mouse.down()
    page.mouse.move(X(3.6), Y(0.9), steps=5)
    page.mouse.up()
    env = edit(lambda: page.click("#btn-delete"))
    v = np.asarray(env["values"])
    assert v[int(2.5 * 125) : int(3.6 * 125)].max() == 0.0 and v.max() > 0.2

    # save the CSV, edit it outside, load it back
    with page.expect_download() as dl:
        page.click("#link-csv")
    saved = tmp_path / "saved.csv"
    dl.value.save_as(saved)
    Envelope.load_csv(saved).add_event(0.5, 0.4).save_csv(tmp_path / "edited.csv")
    with page.expect_response(lambda r: "/envelope.csv" in r.url and r.request.method == "POST") as resp:
        page.set_input_files("#file-csv", str(tmp_path / "edited.csv"))
    assert resp.value.ok
    wait_idle(page)
    assert [round(t, 1) for t, _ in page.evaluate("S.env.events")] == [0.5, 2.0]  # what the page now shows
    # a broken CSV: the page shows the loader's sentence
    (tmp_path / "broken.csv").write_text("time_s,rms\n0.0,0.1\n0.008,7\n")
    page.set_input_files("#file-csv", str(tmp_path / "broken.csv"))
    page.wait_for_function("document.getElementById('message').textContent.includes('line 3')")
    assert "values must be in [0, 1]" in page.inner_text("#message")
    assert not errors, errors


def test_a_reload_keeps_the_session_and_its_edits(studio, browser_page, tmp_path):
    # every page load opened a new, empty session: a reload lost all unsaved work
    from folai.testing import make_static_video

    video = tmp_path / "still.mp4"
    make_static_video(video, duration=DURATION, size=(160, 120))
    page = browser_page
    page.goto(studio.url)
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#file-video", str(video))
    page.wait_for_function("document.getElementById('video-name').textContent.includes('still.mp4')")
    wait_idle(page)
    sid = page.evaluate("S.sid")
    env = page.evaluate(f"fetch('/api/s/{sid}/edit', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, "
                        "body: JSON.stringify({op: 'add_event', time: 2.0, level: 0.7})}).then(r => r.json())")
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.evaluate("S.sid") == sid
    assert page.evaluate("document.body.dataset.envVersion") == str(env["version"])
    assert "still.mp4" in page.evaluate("document.getElementById('video-name').textContent")
