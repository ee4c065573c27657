"""`wildsep demo`: the page in a real headless Chromium (Debian's, driven by selenium through
/usr/bin/chromedriver) on a tiny TUSS with random weights — upload, duplicate prompts, one
playable, downloadable output with a spectrogram per prompt, identical to the Separator's;
a bad upload shows a one-line error, not a stack trace. Plus the page's helpers."""

from __future__ import annotations

import io
import os
import shutil
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.tiny import TINY_SEPARATOR
from wildsep.inference import Separator
from wildsep.models import from_preset
from wildsep.webdemo import DemoApp, parse_prompts, read_upload, spectrogram_image

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Flags that keep a headless Chromium quiet and off the network (no sync, updates, QUIC).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,2000",
)
TIMEOUT = 60  # seconds for the page to answer (2 shared cores)


def test_spectrogram_puts_a_tone_on_its_frequency_row() -> None:
    rate = 8000
    t = np.arange(rate) / rate
    for freq in (500.0, 1000.0, 3000.0):
        image = spectrogram_image(np.sin(2 * np.pi * freq * t), rate)
        n_fft = 2 * (image.shape[0] - 1)  # F = n_fft / 2 + 1 rows, highest frequency on top
        assert n_fft == 256  # about 32 ms at 8 kHz
        brightest = image[:, image.shape[1] // 2].astype(int).sum(-1).argmax()
        expected_row = image.shape[0] - 1 - round(freq / (rate / n_fft))
        assert abs(brightest - expected_row) <= 1
        assert image.dtype == np.uint8 and image.shape[2] == 3
    long = spectrogram_image(np.random.default_rng(0).standard_normal(60 * rate), rate)
    assert long.shape[1] <= 1001  # at most max_frames (+1 centred frame)
    assert spectrogram_image(np.ones(10), rate).shape[1] >= 1  # shorter than one window


def test_prompts_and_uploads_are_checked(tmp_path: Path) -> None:
    assert parse_prompts("speech, speech sfx,,") == ["speech", "speech", "sfx"]
    assert parse_prompts(None) == []
    good = tmp_path / "a.wav"
    sf.write(str(good), np.full((800, 2), 0.1), 8000)
    audio, rate = read_upload(str(good), max_seconds=1.0)
    assert audio.shape == (2, 800) and rate == 8000
    with pytest.raises(ValueError, match="up to 0 s"):
        read_upload(str(good), max_seconds=0.05)
    bad = tmp_path / "b.wav"
    bad.write_text("not audio")
    with pytest.raises(ValueError, match="unreadable"):
        read_upload(str(bad), max_seconds=10)
    with pytest.raises(ValueError, match="upload or record"):
        read_upload(None, max_seconds=10)


# ---------------------------------------------------------------------------------------------
# In the browser


def _browser_or_skip() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        reason = f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver"
        if os.environ.get("WILDSEP_REQUIRE_BROWSER"):
            pytest.fail(f"WILDSEP_REQUIRE_BROWSER is set but {reason}")
        pytest.skip(reason)


def test_a_missing_browser_skips_only_when_not_required(monkeypatch) -> None:
    import tests.demo.test_webdemo as this

    monkeypatch.setattr(this, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("WILDSEP_REQUIRE_BROWSER", "1")  # as .ci/run sets it: CI must not skip
    with pytest.raises(pytest.fail.Exception, match="WILDSEP_REQUIRE_BROWSER is set"):
        this._browser_or_skip()
    monkeypatch.delenv("WILDSEP_REQUIRE_BROWSER")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        this._browser_or_skip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def separator(tmp_path_factory: pytest.TempPathFactory) -> Separator:
    """The demo model: a tiny TUSS with random weights, exported and loaded back."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("demo_model")
    from_preset("tuss-medium", **TINY_SEPARATOR).save_pretrained(folder)
    return Separator.from_pretrained(folder, device="cpu")


@pytest.fixture(scope="module")
def page(separator: Separator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """(driver, url): the demo served on a free local port and a headless Chromium on it."""
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    cache = tmp_path_factory.mktemp("gradio")
    old = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(cache)  # Gradio's copies of files: under the test's tmp
    app = DemoApp(separator, "tiny-tuss")
    _, url, _ = app.launch(port=_free_port(), block=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver, url
    finally:
        driver.quit()
        app.close()
        shutil.rmtree(cache, ignore_errors=True)
        if old is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old


def _load(driver, url: str, upload: Path, prompts: str | None) -> None:
    """Open a fresh page, upload `upload`, set the prompts and press Separate."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, TIMEOUT)
    wait.until(ec.element_to_be_clickable((By.ID, "separate")))
    driver.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(upload))
    wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=audio-player-Mixture]"))
    )
    if prompts is not None:
        box = driver.find_element(By.CSS_SELECTOR, "#prompts textarea")
        box.clear()
        box.send_keys(prompts)
    driver.find_element(By.ID, "separate").click()


@pytest.mark.slow
def test_page_separates_an_upload_with_duplicate_prompts(page, separator, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver, url = page
    rng = np.random.default_rng(3)
    mixture = (0.1 * rng.standard_normal((12000, 2))).astype(np.float32)  # 0.75 s stereo
    upload = tmp_path / "mixture.wav"
    sf.write(str(upload), mixture, 16000, subtype="FLOAT")
    _load(driver, url, upload, "speech, speech, sfx")

    names = ["speech_1", "speech_2", "sfx"]
    link = "a[data-testid=download-link][download='{}.wav']"
    WebDriverWait(driver, TIMEOUT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, link.format(names[-1])))
    )
    expected = separator.separate(mixture.T, 16000, ["speech", "speech", "sfx"])
    for k, name in enumerate(names):
        slot = driver.find_element(By.ID, f"output-{k}")
        assert slot.is_displayed()
        assert slot.find_elements(By.CSS_SELECTOR, f"[data-testid=audio-player-{name}]")
        href = driver.find_element(By.CSS_SELECTOR, link.format(name)).get_attribute("href")
        with urllib.request.urlopen(href, timeout=TIMEOUT) as response:  # the local server
            data, rate = sf.read(io.BytesIO(response.read()), dtype="float32", always_2d=True)
        assert rate == 16000 and data.shape == (12000, 2)
        np.testing.assert_allclose(data.T, expected[k], atol=1e-6)
        image = driver.find_element(By.CSS_SELECTOR, f"#spectrogram-{k} img")
        assert image.is_displayed() and image.get_attribute("naturalWidth") not in (None, "0")
    assert not driver.find_elements(By.CSS_SELECTOR, "#output-3 audio")  # no fourth output


@pytest.mark.slow
def test_a_bad_upload_shows_an_error_not_a_stack_trace(page, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, url = page
    upload = tmp_path / "broken.wav"
    upload.write_text("<html>this download failed</html>")
    _load(driver, url, upload, "speech, sfxbg")

    def error_shown(d):
        text = d.find_element(By.TAG_NAME, "body").text
        return text if "broken.wav: unreadable" in text else False

    text = WebDriverWait(driver, TIMEOUT).until(error_shown)
    assert "Traceback" not in driver.page_source and 'File "' not in text
    assert not driver.find_elements(By.CSS_SELECTOR, "#output-0 audio")


def test_demo_command_reports_a_missing_model_in_one_line(tmp_path, capsys) -> None:
    from wildsep import cli

    assert cli.main(["demo", "--model", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1
