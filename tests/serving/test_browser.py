"""The web page in headless Chromium: pick a user, record a click, watch the list change.

Needs the Debian packages ``chromium`` and ``chromium-driver`` and the ``selenium`` package;
skipped, saying which is missing, when they are not installed. The screenshot is kept under
``artifacts/serving/`` (or $FACETREC_ARTIFACTS).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .conftest import KEY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)
ARTIFACTS = Path(os.environ.get("FACETREC_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts")) / "serving"


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="browser test needs `pip install selenium`")
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("browser test needs Chromium and its driver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def listed(driver) -> list[str]:
    """The listed item ids, read in one script call (the list may be re-rendered meanwhile)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#recs li[data-item]')].map(e => e.dataset.item)"
    )


def test_a_click_on_the_page_changes_the_recommendations(browser, server, data):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    user = str(data.interactions.users.id_of(11))
    browser.get(f"{server.url}/#key={KEY}")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#users option"))  # the user picker is filled
    browser.find_element(By.ID, "user").send_keys(user)
    browser.find_element(By.ID, "load").click()
    wait.until(lambda d: len(listed(d)) == 10)
    before = listed(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "#interests .group h3")  # labelled interest groups
    assert browser.find_elements(By.CSS_SELECTOR, "#history li")
    assert "Because you liked" in browser.find_element(By.ID, "recs").text

    clicked = before[0]
    browser.find_element(By.CSS_SELECTOR, f"button.click[data-item='{clicked}']").click()
    wait.until(lambda d: listed(d) and clicked not in listed(d))
    after = listed(browser)
    assert after != before and clicked not in after
    assert browser.find_element(By.ID, "status").text == ""
    history = server.client.get(f"/users/{user}/history", params={"limit": 1}).json()["events"]
    assert history[-1]["item"] == clicked

    loaded = browser.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
    browser.execute_script(
        "const s = document.getElementById('lambda'); s.value = '0.1'; s.dispatchEvent(new Event('change'));"
    )
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") != loaded)
    assert len(listed(browser)) == 10

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "web_page.png"))
