"""The demo page in a real browser: pick an example, Analyze, every output renders with real content, the chat
answers, a corrupt upload gives a readable message, and the server keeps serving.

Starts ``app.py`` in a subprocess with ``AVLLM_CHECKPOINT`` pointing to an untrained tiny checkpoint written to tmp,
and drives the system Chromium headless through Playwright. A full-page screenshot goes to pytest's tmp dir, or to
docs/screenshot_demo.png when the environment variable AVLLM_SCREENSHOT is set (so a test run changes no tracked
file).
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from browser_util import REPO, AppServer, browser_skip_reason, chromium, element_pixels, http_status

pytestmark = [pytest.mark.browser, pytest.mark.slow]

_reason = browser_skip_reason()
if _reason:
    pytest.skip(_reason, allow_module_level=True)

EXAMPLES = REPO / "examples"
EXAMPLE = "two_sources_take_turns.mp4"
# (tab to open, image outputs it holds)
TABS = (
    ("Sound", ("#waveform", "#spectrogram")),
    ("Maps", ("#ssl-maps", "#slot-maps", "#dense-maps")),
    ("Over time", ("#audio-slots", "#dense-time")),
    ("Overlay video", ("#frame-view",)),
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not (EXAMPLES / EXAMPLE).is_file() or not (EXAMPLES / "examples.json").is_file():
        pytest.skip("examples/ not generated (python examples/make_examples.py)")
    from avllm.checkpoint import save
    from model_factory import tiny_model

    d = tmp_path_factory.mktemp("browser")
    shipped = REPO / "assets" / "avllm-tiny"
    if os.environ.get("AVLLM_SCREENSHOT") and (shipped / "model.safetensors").is_file():
        ckpt = Path(shutil.copytree(shipped, d / "ckpt"))  # the picture in docs/ shows the shipped model
    else:
        ckpt = save(tiny_model(), d / "ckpt")
    corrupt = d / "broken.mp4"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    examples = d / "examples"  # one example with its ground truth: a short examples row
    examples.mkdir()
    shutil.copy(EXAMPLES / EXAMPLE, examples / EXAMPLE)
    shutil.copy(EXAMPLES / "examples.json", examples / "examples.json")
    return {"ckpt": ckpt, "corrupt": corrupt, "examples": examples, "dir": d}


@pytest.fixture(scope="module")
def server(setup):
    env = {"AVLLM_CHECKPOINT": str(setup["ckpt"]), "AVLLM_EXAMPLES_DIR": str(setup["examples"])}
    with AppServer(env=env, start_timeout=120) as s:
        yield s


def _check_image(page, sel, timeout_ms=60_000):
    img = page.locator(f"{sel} img").first
    img.wait_for(state="visible", timeout=timeout_ms)
    page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle())
    px = element_pixels(img)
    assert px.shape[0] > 50 and px.shape[1] > 150, sel
    assert px.std() > 15.0, f"{sel} looks blank"


def _open_tab(page, name):
    page.get_by_role("tab", name=name, exact=True).click()


def test_example_analyze_outputs_chat_error_and_recover(server, setup):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server.url)
        page.wait_for_selector("#analyze-button", timeout=60_000)
        assert "ckpt" in page.locator("#checkpoint-status").inner_text()

        # 1. pick the example (video, claim and question), Analyze
        example = page.locator("#examples tr.tr-body").first  # several inputs per example: a table row each
        assert EXAMPLE in example.inner_html()
        example.click()
        page.wait_for_selector("#video-input video", timeout=30_000)
        assert page.locator("#claim textarea, #claim input").first.input_value()  # the example's suggested claim
        page.click("#analyze-button")
        page.wait_for_function(
            "() => document.querySelector('#answers').innerText.includes('Grounding')", timeout=120_000
        )
        answers = page.locator("#answers").inner_text()
        assert "ground truth" in answers and "Fact-check" in answers and "AVQA" in answers
        assert "two_sources_take_turns.mp4" in page.locator("#media-info").inner_text()
        _check_image(page, "#boxes")

        # 2. every tab's outputs render with real content
        for tab, selectors in TABS:
            _open_tab(page, tab)
            for sel in selectors:
                _check_image(page, sel)
        _open_tab(page, "Overlay video")
        video = page.locator("#overlay-video video").first
        video.wait_for(state="attached", timeout=30_000)
        assert video.get_attribute("src")
        page.wait_for_function("(v) => v.readyState >= 1 && v.duration > 3.5", arg=video.element_handle(),
                               timeout=30_000)  # fmt: skip
        _open_tab(page, "JSON")
        page.wait_for_function(
            "() => document.querySelector('#json-file').innerText.includes('prediction.json')", timeout=30_000
        )
        assert page.locator("#json-file a").count() >= 1

        # 3. the chat answers a free question
        _open_tab(page, "Chat")
        box = page.locator("#chat-input textarea, #chat-input input").first
        box.fill("What makes the sound?")
        box.press("Enter")
        page.wait_for_selector("#chat .bot-row", timeout=60_000)
        assert "What makes the sound?" in page.locator("#chat").inner_text()

        # the screenshot: the page as a person first sees it after Analyze (the Sound tab)
        _open_tab(page, "Sound")
        page.wait_for_timeout(500)
        shot = (REPO / "docs" / "screenshot_demo.png") if os.environ.get("AVLLM_SCREENSHOT") else (
            setup["dir"] / "screenshot_demo.png")  # fmt: skip
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000

        # 4. a corrupt file: a readable message pops up, no traceback
        page.reload()
        page.wait_for_selector("#analyze-button", timeout=60_000)
        page.locator("#video-input input[type=file]").set_input_files(str(setup["corrupt"]))
        page.wait_for_timeout(1500)  # let the upload finish (the browser cannot preview it)
        page.click("#analyze-button")
        toast = page.get_by_text("could not be decoded", exact=False).first
        toast.wait_for(state="visible", timeout=60_000)
        assert "broken.mp4" in toast.inner_text()
        assert "Traceback" not in page.content()

    # 5. the server still serves
    assert http_status(server.url) == 200 and server.alive()
    log = server.log()
    assert "analyze failed" not in log and "Traceback" not in log, log[-3000:]
