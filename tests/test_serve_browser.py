"""zoo serve's page in a real browser (Debian's chromium, headless, driven by Selenium through the system's
chromedriver): an image uploaded to a detector shows the known boxes and labels, a video uploaded to a video
classifier shows the labels and scores `zoo run --json` gives, and a live stream shows its video and labels.
A screenshot of each is kept in test-artifacts/screenshots/.

Skipped without /usr/bin/chromium, chromedriver or selenium, unless ZOO_REQUIRE_BROWSER=1 (CI), which fails instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import test_streams
from onnx_models import tiny_video_classifier
from test_serve_streams import WAIT_S, serving
from zoo_cli import invoke

from modelzoo.serve.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1100",
)  # fmt: skip

pytestmark = pytest.mark.usefixtures("in_tmp_dir")
camera = test_streams.camera
quick_timeouts = test_streams.quick_timeouts


def _missing() -> list:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install selenium)")
    return missing


@pytest.fixture
def browser(tmp_path, monkeypatch):
    missing = _missing()
    if missing:
        why = f"needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("ZOO_REQUIRE_BROWSER") == "1":
            pytest.fail(f"ZOO_REQUIRE_BROWSER=1, but the browser test {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never go online
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, what: str):
    """Poll `condition(driver)` until it is truthy; past WAIT_S, fail saying what the page shows."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition)
    except TimeoutException:
        shown = {name: d_text(driver, name) for name in ("status", "error", "summary", "live-status")}
        raise AssertionError(f"{what}: not within {WAIT_S} s; the page shows {shown}") from None


def d_text(driver, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').textContent")


def open_page(driver, base: str, models: int = 1) -> None:
    driver.get(base + "/")
    wait_for(driver, lambda d: d_text(d, "status") == f"{models} model", "the page lists the served model")
    # the model's option fields come with its info, fetched after the listing
    has_options = "return document.querySelector('[data-option]') !== null"
    wait_for(driver, lambda d: d.execute_script(has_options), "the model's options are shown")


def upload(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By

    chooser = driver.find_element(By.ID, "file")
    driver.execute_script("arguments[0].hidden = false", chooser)  # the page hides it behind "choose a file"
    chooser.send_keys(str(path))
    driver.find_element(By.ID, "run").click()


def label_rows(driver, list_id: str) -> list:
    """(label, score text) of each row the page shows in the list `list_id`."""
    rows = driver.execute_script(
        f"return [...document.querySelectorAll('#{list_id} li')].map("
        "(li) => [li.children[0].textContent, li.children[2].textContent])"
    )
    return [tuple(row) for row in rows]


def screenshot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    print(f"screenshot: {path}")
    return path


def test_an_image_on_the_detector_shows_the_known_boxes(browser, tmp_path):
    import httpx
    from detection_onnx import designed_detector
    from test_detection import designed_case, photo, save_png

    values, expected = designed_case(640, 272)
    model = str(designed_detector(tmp_path / "designed.onnx", values))
    image = save_png(tmp_path / "street.png", photo(272, 640))
    with serving(create_app(["yolo11n"], model_path=model)) as base:
        with open(image, "rb") as handle:
            served = httpx.post(f"{base}/v1/models/yolo11n/predict", files={"file": handle}, timeout=WAIT_S).json()
        assert served["detections"] == expected
        open_page(browser, base)
        upload(browser, image)
        wait_for(browser, lambda d: len(label_rows(d, "labels")) == len(expected), "the detections are listed")
        rows = label_rows(browser, "labels")
        canvas = browser.execute_script(
            "const c = document.getElementById('canvas');"
            "const at = (x, y) => [...c.getContext('2d').getImageData(x, y, 1, 1).data].slice(0, 3);"
            "return {hidden: c.hidden, width: c.width, height: c.height, edge: at(20, 80), inside: at(60, 80)}"
        )
        shot = screenshot(browser, "detector-image")
    assert (
        rows
        == [(f"{d['label']} [{', '.join(str(round(v)) for v in d['box'])}]", f"{d['score']:.3f}") for d in expected]
        == [
            ("person [20, 30, 120, 130]", "0.900"),
            ("person [70, 30, 170, 130]", "0.850"),
            ("car [25, 30, 125, 130]", "0.600"),
            ("bus [610, 232, 640, 272]", "0.260"),
        ]
    )
    # the boxes are drawn on the picture: box A's left edge (x=20) in class 0's colour, hsl(0 80% 50%)
    assert not canvas["hidden"] and (canvas["width"], canvas["height"]) == (640, 272)
    assert np.abs(np.array(canvas["edge"]) - [230, 26, 26]).max() <= 3
    assert np.abs(np.array(canvas["inside"]) - [230, 26, 26]).max() > 30
    assert shot.stat().st_size > 10_000


def test_a_video_on_the_video_classifier_shows_zoo_run_labels(browser, tmp_path, capsys):
    from videos import write_video

    tiny = str(tiny_video_classifier(tmp_path / "tiny.onnx"))
    video = write_video(tmp_path / "clip.avi", 40, 15.0)
    cli = invoke(capsys, "run", "r3d_18", video, "--model", tiny, "--top-k", "4", "--json")
    assert cli.code == 0, cli.err
    expected = [(p["label"], f"{p['score']:.3f}") for p in json.loads(cli.out)["predictions"]]
    with serving(create_app(["r3d_18"], model_path=tiny)) as base:
        open_page(browser, base)
        browser.execute_script("document.querySelector('[data-option=top_k]').value = '4'")
        upload(browser, video)
        wait_for(browser, lambda d: len(label_rows(d, "labels")) == 4, "the top labels are listed")
        rows = label_rows(browser, "labels")
        summary = d_text(browser, "summary")
        screenshot(browser, "video-classifier-upload")
    assert rows == expected
    assert summary.startswith("r3d_18 on clip.avi: 1 clip(s), onnxruntime")


def test_a_live_stream_shows_its_video_and_labels(browser, tmp_path, camera, quick_timeouts):
    import httpx

    camera.state.jpegs, _ = test_streams.served_jpegs(tmp_path, 60)
    camera.state.pace = 0.05  # 3 s of frames, then the camera hangs up and refuses to reconnect
    camera.state.later = "refuse"
    tiny = str(tiny_video_classifier(tmp_path / "tiny.onnx"))
    with serving(create_app(["r3d_18"], model_path=tiny)) as base:
        open_page(browser, base)
        browser.find_element("id", "stream-input").send_keys(camera.url)
        browser.find_element("id", "stream-stride").send_keys("8")
        browser.execute_script("document.querySelector('[data-option=top_k]').value = '3'")
        browser.find_element("id", "stream-start").click()
        wait_for(
            browser,
            lambda d: d.execute_script("return document.getElementById('live-video').naturalWidth") == 160,
            "the stream's video shows",
        )
        wait_for(browser, lambda d: label_rows(d, "live-labels"), "a window's labels show")
        screenshot(browser, "live-stream")
        wait_for(browser, lambda d: d_text(d, "live-status").startswith("stream lost"), "the stream's end shows")
        rows = label_rows(browser, "live-labels")
        listed = httpx.get(f"{base}/v1/streams", timeout=WAIT_S).json()
        streams_shown = d_text(browser, "streams")
        screenshot(browser, "live-stream-ended")

        camera.state.later, camera.state.loop = "serve", True  # now a camera that never stops: Stop stops it
        browser.find_element("id", "stream-start").click()
        wait_for(browser, lambda d: "window" in d_text(d, "live-status"), "the second stream's windows show")
        browser.find_element("id", "stream-stop").click()
        wait_for(browser, lambda d: d_text(d, "live-status").startswith("stream stopped"), "the stop shows")
        left = httpx.get(f"{base}/v1/streams", timeout=WAIT_S).json()
    assert len(listed) == 1 and listed[0]["status"] == "lost" and listed[0]["windows"] >= 2
    last = listed[0]["last"]["predictions"]
    assert rows == [(p["label"], f"{p['score']:.3f}") for p in last]  # the last window's, as its event said
    assert f"r3d_18 on {camera.url}: lost, {listed[0]['windows']} window(s)" in streams_shown
    assert [stream["id"] for stream in left] == [listed[0]["id"]]  # the stopped one is gone
