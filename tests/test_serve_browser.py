"""``fastgram serve`` driven by a real browser: headless Chromium (Debian's
``chromium`` package, through Playwright) uploads the bundled images, runs a
stylisation and reads the result back. Skipped, with the reason printed,
only where Playwright or Chromium is absent (``.ci/run`` installs both).

The screenshot of the page goes to the test's temporary folder, and to
``FASTGRAM_SCREENSHOT`` when that is set (the README's docs/serve_page.png
is made with ``FASTGRAM_SCREENSHOT=docs/serve_page.png``).
"""

import io
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from fastgram import data

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _skip_reason():
    try:
        import flask  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"browser test: {exc.name} is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return "browser test: no chromium here (apt-get install chromium)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


@pytest.fixture
def server():
    """``fastgram serve`` on a free port, with the starter model, on the CPU."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fastgram.cli", "serve", "--port", "0", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        line, deadline = "", time.monotonic() + 120
        while "http://" not in line:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                raise AssertionError(f"fastgram serve exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError("fastgram serve did not start in 120 s")
        yield line.split("open ", 1)[1].split(" ", 1)[0]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_browser_stylises_the_bundled_images(server, tmp_path):
    from playwright.sync_api import sync_playwright

    content_path, style_path = data.image_path("chelsea"), data.image_path("brick")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(server)
            page.wait_for_selector("#content-sample option", state="attached")
            # a text file first: the page shows the server's message
            page.set_input_files("#content-file", str(pathlib.Path(__file__)))
            page.set_input_files("#style-file", str(style_path))
            page.click("#run")
            page.wait_for_function("document.getElementById('error').textContent.length > 0")
            assert "is not an image" in page.text_content("#error")

            page.set_input_files("#content-file", str(content_path))
            page.eval_on_selector("#alpha", "e => { e.value = '0.8'; "
                                  "e.dispatchEvent(new Event('input')); }")
            assert page.text_content("#alpha-value") == "0.80"
            page.click("#run")
            page.wait_for_selector("#result", state="visible", timeout=120_000)
            page.wait_for_function("document.getElementById('result').complete && "
                                   "document.getElementById('result').naturalWidth > 0")
            assert page.text_content("#error") == ""
            assert page.eval_on_selector("#progress", "e => e.value") == 1
            assert page.text_content("#status").startswith("done in")
            shown = page.eval_on_selector("#result", "e => [e.naturalWidth, e.naturalHeight]")
            source = page.get_attribute("#result", "src")
            png = page.request.get(server.rstrip("/") + source).body()
            download = page.get_attribute("#download", "href")
            assert download.endswith("result.png?download=1")
            shot = tmp_path / "serve_page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    with Image.open(content_path) as original:
        content = np.asarray(original.convert("RGB"), dtype=np.float32) / 255
    result = Image.open(io.BytesIO(png))
    assert result.format == "PNG" and result.size == (451, 300) == tuple(shown)
    pixels = np.asarray(result.convert("RGB"), dtype=np.float32) / 255
    assert pixels.std() > 0.02  # an image, not a flat fill
    assert np.abs(pixels - content).mean() > 0.03  # stylised, not the photo sent back
    assert Image.open(shot).size[0] == 1100
    target = os.environ.get("FASTGRAM_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
