"""The acknowledge page in a real browser: Debian's chromium, driven by Selenium through
chromium-driver, against the app served over HTTP. The page renders (a screenshot is kept in the
test's artefacts), its button acknowledges, and the same page pressed again says it was used."""

from __future__ import annotations

import shutil
import tempfile
import threading

import pytest
from werkzeug.serving import make_server

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def served(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="opsguard-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=800,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _after_click(browser, button: str, shows: str):
    """Press a button and wait for the page it loads (the element with id `shows`)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    browser.find_element(By.CSS_SELECTOR, f"button[value={button}]").click()
    return WebDriverWait(browser, 20).until(expected_conditions.presence_of_element_located((By.ID, shows)))


def test_the_page_acknowledges_in_a_browser_and_a_second_press_is_refused(served, browser, conn, tmp_path):
    from selenium.webdriver.common.by import By

    conn.execute("SELECT ops.add_principal('bob', 'human', ARRAY['ops_responder'], 'admin')")
    incident = conn.execute("SELECT id FROM ops.trigger_incident('GET /checkout::error_rate', 'critical', 'GET /checkout', "
                            "'checkout answers 5xx')").fetchone()[0]
    token = conn.execute("SELECT r_token FROM ops._mint_page_token(NULL, %s, 'bob', 'link', now())",
                         (incident,)).fetchone()[0]

    page = f"{served}/p/{token}"
    browser.get(page)
    assert "GET /checkout::error_rate" in browser.find_element(By.TAG_NAME, "h1").text
    assert "checkout answers 5xx" in browser.find_element(By.TAG_NAME, "dl").text
    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 0
    print(f"screenshot of the page: {shot}")
    first_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")  # the same page open twice, as after reading the mail on two devices
    browser.get(page)
    second_tab = browser.current_window_handle

    browser.switch_to.window(first_tab)
    assert _after_click(browser, "acknowledge", "result").text.startswith("Acknowledged by bob at")
    assert conn.execute("SELECT status, acknowledged_by FROM ops.incidents WHERE id = %s",
                        (incident,)).fetchone() == ("acknowledged", "bob")
    browser.save_screenshot(str(tmp_path / "acknowledged.png"))

    browser.switch_to.window(second_tab)  # its form was loaded before the first press
    assert "already answered" in _after_click(browser, "resolve", "error").text
    assert browser.find_element(By.TAG_NAME, "h1").text == "Already used"

    browser.switch_to.window(first_tab)
    browser.back()  # no-store: the page is fetched again and offers no button any more
    assert "already used" in browser.find_element(By.ID, "reason").text
    assert not browser.find_elements(By.TAG_NAME, "button")
    assert conn.execute("SELECT status FROM ops.incidents WHERE id = %s", (incident,)).fetchone() == ("acknowledged",)
