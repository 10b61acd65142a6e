"""The explorer served as a web app (`make explore`: scripts/dev/explore.py, Voilà on 127.0.0.1), driven by headless
Chromium through Selenium: the values on the page are the library's exact risks after a, M and the schedule change,
a γ above the stability bound is refused naming the bound, and no Python traceback reaches the page.

Needs a Chromium or Chrome and its matching ChromeDriver: SKETCHLAW_CHROME and SKETCHLAW_CHROMEDRIVER when set (GitHub
CI sets them to setup-chrome's), else Debian's chromium and chromium-driver on PATH (.ci/run installs them), else a
google-chrome with a chromedriver on PATH; skips, saying so, where either is missing.
SKETCHLAW_SCREENSHOT=path saves the page as the README shows it (docs/explore.png).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sketchlaw import api
from sketchlaw.present.explore import Setting

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SKETCHLAW_CHROME") or next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = os.environ.get("SKETCHLAW_CHROMEDRIVER") or shutil.which("chromedriver")
START_TIMEOUT_S = 120
UPDATE_TIMEOUT_S = 120  # a bound for a failure under load, not a timing: the benchmark measures redraws

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="no headless browser: install Debian's chromium and chromium-driver "
                              "(apt-get install chromium chromium-driver; .ci/run does), or set SKETCHLAW_CHROME "
                              "and SKETCHLAW_CHROMEDRIVER to a Chrome and its ChromeDriver"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server and every process it started (kernels run in sessions of their own), then SIGKILL what is
    left after 10 s."""
    import psutil

    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=10)
    for p in alive:
        p.kill()
    proc.wait(timeout=10)


@pytest.fixture
def app(tmp_path):
    port = _free_port()
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "dev" / "explore.py"), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the app did not start: {(tmp_path / 'voila.log').read_text()[-2000:]}")
                time.sleep(0.3)
        yield url, proc
    finally:
        _stop(proc)
        log.close()
    assert proc.poll() is not None


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # the system driver: no download
    try:
        yield driver
    finally:
        driver.quit()


def _updates(driver) -> int:
    from selenium.webdriver.common.by import By

    done = driver.find_elements(By.CSS_SELECTOR, ".sk-done")
    return int(done[0].get_attribute("data-updates")) if done else 0


def _wait(driver, condition, what: str, timeout: float = UPDATE_TIMEOUT_S):
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    # an element read while the kernel replaces it (the status line at each redraw) is read again at the next poll
    wait = WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,))
    try:
        return wait.until(lambda d: condition(d))
    except TimeoutException:
        pytest.fail(f"timed out waiting for {what}; page text: {driver.find_element('tag name', 'body').text[-1500:]}")


def _wait_update(driver, before: int) -> None:
    _wait(driver, lambda d: _updates(d) > before, f"redraw number {before + 1}")


def _table(driver) -> list[dict]:
    from selenium.webdriver.common.by import By

    table = driver.find_element(By.ID, "sketchlaw-data")
    names = [th.get_attribute("textContent") for th in table.find_elements(By.TAG_NAME, "th")]
    return [dict(zip(names, (td.get_attribute("textContent") for td in tr.find_elements(By.TAG_NAME, "td"))))
            for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def _assert_page_is_the_library(driver, setting: Setting) -> int:
    """Every 'risk vs N' row on the page equals sketchlaw.api.risk_curve for the setting to 1e-12 relative."""
    rows = [r for r in _table(driver) if r["panel"] == "risk vs N"]
    want = api.risk_curve(setting.a, setting.M, setting.N_grid, **setting.common())
    assert len(rows) == len(want) > 0
    for got, (_, w) in zip(rows, want.iterrows()):
        assert (int(got["seed"]), int(got["M"]), int(got["N"])) == (w["seed"], w["M"], w["N"])
        for col in ("risk", "approx", "bias", "variance"):
            assert float(got[col]) == pytest.approx(w[col], rel=1e-12, abs=0), (col, got, dict(w))
    return len(rows)


def _no_traceback(driver) -> None:
    text = driver.find_element("tag name", "body").text
    assert "Traceback" not in text and "Error" not in text.replace("refused", ""), text[-2000:]


def test_the_app_shows_the_librarys_exact_risk(app, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    url, _ = app
    browser.get(url)
    _wait(browser, lambda d: _updates(d) >= 1, "the first drawing", START_TIMEOUT_S)
    _no_traceback(browser)
    setting = Setting()
    _assert_page_is_the_library(browser, setting)

    # a: typed into the slider's readout (Enter commits it)
    n = _updates(browser)
    readout = browser.find_element(By.CSS_SELECTOR, ".sk-a .widget-readout")
    readout.click()
    readout.send_keys(Keys.CONTROL, "a")
    readout.send_keys("1.5", Keys.ENTER)
    _wait_update(browser, n)
    setting = Setting(a=1.5)
    _assert_page_is_the_library(browser, setting)

    # M and the schedule: dropdowns
    n = _updates(browser)
    Select(browser.find_element(By.CSS_SELECTOR, ".sk-M select")).select_by_visible_text("64")
    _wait_update(browser, n)
    setting = Setting(a=1.5, M=64)
    _assert_page_is_the_library(browser, setting)
    n = _updates(browser)
    Select(browser.find_element(By.CSS_SELECTOR, ".sk-schedule select")).select_by_visible_text("constant")
    _wait_update(browser, n)
    setting = Setting(a=1.5, M=64, schedule="constant")
    rows = _assert_page_is_the_library(browser, setting)
    assert rows == setting.n_seeds * len(setting.N_grid)
    _no_traceback(browser)
    if os.environ.get("SKETCHLAW_SCREENSHOT"):
        browser.execute_script("document.querySelector('.sk-figure').scrollIntoView(false)")
        browser.save_screenshot(os.environ["SKETCHLAW_SCREENSHOT"])

    # γ above the bound: refused, the message naming this setting's bound; the figure keeps the last accepted values
    bound = api.stability_bound(1.5, 64, seeds=setting.seeds)
    gamma = browser.find_element(By.CSS_SELECTOR, ".sk-gamma input")
    gamma.send_keys(Keys.CONTROL, "a")
    gamma.send_keys(f"{2 * bound:.4f}", Keys.ENTER)
    message = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".sk-refused"), "the refusal")[0].text
    assert "stability bound" in message and f"{bound:.6g}" in message, message
    _assert_page_is_the_library(browser, setting)
    assert "Traceback" not in browser.find_element("tag name", "body").text

    # and the command line prints the same numbers for a point on the page
    row = next(r for r in _table(browser) if r["panel"] == "risk vs N" and r["seed"] == "1" and r["N"] == "1000000")
    cli = subprocess.run([sys.executable, "-m", "sketchlaw.cli", "risk", "--a", "1.5", "--M", "64", "--N", "1000000",
                          "--schedule", "constant", "--seed", "1"], capture_output=True, text=True, check=True)
    point = json.loads(cli.stdout)
    for col in ("risk", "approx", "bias", "variance"):
        assert float(row[col]) == pytest.approx(point[col], rel=1e-12, abs=0), (col, row, point)
