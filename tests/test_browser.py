"""The demo page in a real browser: upload, Analyze, readable non-blank outputs, errors shown, server keeps serving.

Starts ``app.py`` in a subprocess and drives the system Chromium headless through Playwright. Saves a full-page
screenshot to docs/screenshot_demo.png.
"""

import re

import numpy as np
import pytest

from browser_util import REPO, AppServer, browser_skip_reason, chromium, element_pixels, http_status

pytestmark = [pytest.mark.browser, pytest.mark.slow]

_reason = browser_skip_reason()
if _reason:
    pytest.skip(_reason, allow_module_level=True)

OUTPUTS = ("#frame-strip", "#waveform", "#spectrogram")
SCREENSHOT = REPO / "docs" / "screenshot_demo.png"


def _scene_clip(path, seconds=3.0, fps=8.0, sr=48000):
    """A small clip worth looking at: a red disc crossing a gradient, a 440 Hz hum then a rising chirp."""
    from avllm.media import write_video

    t_count, h, w = int(seconds * fps), 96, 128
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.empty((t_count, h, w, 3), np.uint8)
    for i in range(t_count):
        frames[i] = np.stack([40 + xx * 0.5, 90 + yy * 0.6, np.full_like(xx, 160)], -1).astype(np.uint8)
        cx = 20 + i * (w - 40) / max(t_count - 1, 1)
        frames[i][(xx - cx) ** 2 + (yy - 48) ** 2 < 14**2] = (230, 40, 40)
    t = np.arange(int(seconds * sr)) / sr
    hum = 0.4 * np.sin(2 * np.pi * 440 * t) * ((t > 0.3) & (t < 1.3))
    chirp = 0.3 * np.sin(2 * np.pi * (500 * t + 900 * (t - 1.6) ** 2)) * ((t > 1.6) & (t < 2.7))
    noise = 0.01 * np.random.default_rng(0).standard_normal(t.shape)
    return write_video(path, frames, fps, (hum + chirp + noise).astype(np.float32), sr)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser_media")
    examples = d / "examples"
    examples.mkdir()
    corrupt = d / "broken.mp4"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return {
        "scene": _scene_clip(d / "scene.mp4"),
        "example": _scene_clip(examples / "example_scene.mp4", seconds=2.0),
        "examples_dir": examples,
        "corrupt": corrupt,
    }


@pytest.fixture(scope="module")
def server(clips):
    with AppServer(env={"AVLLM_EXAMPLES_DIR": str(clips["examples_dir"])}) as s:
        yield s


def _wait_outputs(page, timeout_ms=90_000):
    for sel in OUTPUTS:
        page.wait_for_selector(f"{sel} img", state="visible", timeout=timeout_ms)
    page.wait_for_function(
        "() => document.querySelector('#media-info').innerText.includes('duration')", timeout=timeout_ms
    )


def _upload_video(page, path):
    page.locator("#video-input input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#video-input video", timeout=30_000)


def test_upload_analyze_error_and_recover(server, clips):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server.url)
        page.wait_for_selector("#analyze-button", timeout=60_000)

        # 1. upload a clip, Analyze, and the three images are there and not blank
        _upload_video(page, clips["scene"])
        page.click("#analyze-button")
        _wait_outputs(page)
        for sel in OUTPUTS:
            img = page.locator(f"{sel} img").first
            page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle())
            px = element_pixels(img)
            assert px.shape[0] > 50 and px.shape[1] > 200, sel
            assert px.std() > 15.0, f"{sel} looks blank"
        info = page.locator("#media-info").inner_text()
        assert "scene.mp4" in info and "24 at 8 fps" in info and "128x96" in info
        assert re.search(r"duration\s+3\.0\d s", info), info  # AAC may add a few ms
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        # 2. a corrupt file: a readable error pops up, no traceback
        page.reload()
        page.wait_for_selector("#analyze-button", timeout=60_000)
        page.locator("#video-input input[type=file]").set_input_files(str(clips["corrupt"]))
        page.wait_for_timeout(1500)  # let the upload finish (the browser cannot preview it)
        page.click("#analyze-button")
        toast = page.get_by_text("could not be decoded", exact=False).first
        toast.wait_for(state="visible", timeout=60_000)
        assert "broken.mp4" in toast.inner_text()
        assert "Traceback" not in page.content()

        # 3. the server still serves: the page answers, and an example clip analyses normally
        assert http_status(server.url) == 200 and server.alive()
        page.reload()
        page.wait_for_selector("#analyze-button", timeout=60_000)
        example = page.locator("#examples button.gallery-item").first
        assert "example_scene.mp4" in example.inner_html()
        example.click()
        page.wait_for_selector("#video-input video", timeout=30_000)
        page.click("#analyze-button")
        _wait_outputs(page)
        assert re.search(r"duration\s+2\.0\d s", page.locator("#media-info").inner_text())
    log = server.log()
    assert "analyze failed" not in log and "Traceback" not in log, log[-3000:]
