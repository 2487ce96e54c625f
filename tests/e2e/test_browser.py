"""A deploy as a person sees it: headless Chromium signs in, a bumped marker deploys, a reload.

Uses Debian's `chromium` and `chromium-driver` through Selenium (tests/requirements-e2e.txt); no
browser is downloaded. Each step's screenshot is saved, numbered, in tests/artifacts/e2e/ (the
logout message test's in its folder logout-message/). The README's picture of the logout message
is redrawn from the same page, into docs/logout-message.png, with RELEASE_DOCS_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.harness import PASSWORD, ROOT, Heroku

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.e2e

SCREENSHOTS = ROOT / "tests" / "artifacts" / "e2e"
DOCS_SCREENSHOT = (
    ROOT / "docs" / "logout-message.png"
    if os.environ.get("RELEASE_DOCS_SCREENSHOTS") == "1"
    else SCREENSHOTS / "logout-message" / "as-in-the-readme.png"
)
DOCS_SCREENSHOT_SIZE = (900, 500)
# The example project's FORCE_LOGOUT_MESSAGE.
LOGOUT_MESSAGE = "You were signed out because the site was updated. Please sign in again."
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--password-store=basic",
    "--window-size=1024,768",
)
WAIT = 15.0


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium driven by chromedriver, both from Debian's packages."""
    webdriver: Any = pytest.importorskip(
        "selenium.webdriver",
        reason="Selenium is missing: pip install -r tests/requirements-e2e.txt",
    )
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("Chromium is not installed: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (*CHROMIUM_ARGUMENTS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(argument)
    service = webdriver.ChromeService(
        executable_path=driver, log_output=str(tmp_path / "chromedriver.log")
    )
    session: WebDriver = webdriver.Chrome(options=options, service=service)
    try:
        session.set_page_load_timeout(30)
        yield session
    finally:
        session.quit()


class Browser:
    """A person at Chromium: signs in, reads the home page's status line, and keeps a
    screenshot of each step, numbered in order (01-sign-in-page.png, ...), in `folder`."""

    def __init__(self, driver: WebDriver, folder: Path) -> None:
        self.driver = driver
        self.folder = folder
        self.steps = 0
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()

    def screenshot(self, step: str) -> None:
        self.steps += 1
        name = f"{self.steps:02d}-{re.sub(r'[^a-z0-9]+', '-', step.lower()).strip('-')}.png"
        assert self.driver.save_screenshot(str(self.folder / name)), f"No screenshot of {step}"

    def wait_for(self, condition: Any, what: str) -> None:
        from selenium.webdriver.support.wait import WebDriverWait

        WebDriverWait(self.driver, WAIT).until(condition, f"waited {WAIT:.0f} s for {what}")

    def status(self, expected: str) -> str:
        """The home page's status line, once it says `expected`."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions

        where = (By.ID, "status")
        present = expected_conditions.text_to_be_present_in_element(where, expected)
        self.wait_for(present, f"the home page to say {expected!r}")
        text: str = self.driver.find_element(*where).text
        return text

    def sign_in(self, username: str) -> None:
        """Fill in and send the sign-in form, from the sign-in page."""
        from selenium.webdriver.common.by import By

        self.wait_for(lambda driver: driver.title == "Sign in", "the sign-in page")
        self.screenshot("sign-in page")
        self.driver.find_element(By.NAME, "username").send_keys(username)
        self.driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        self.screenshot("sign-in form filled in")
        self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()

    def follow(self, link_text: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.LINK_TEXT, link_text).click()

    def messages(self) -> list[str]:
        """The messages the page shows above its content."""
        from selenium.webdriver.common.by import By

        return [
            element.text for element in self.driver.find_elements(By.CSS_SELECTOR, "#messages li")
        ]

    def save_viewport(self, path: Path, size: tuple[int, int]) -> None:
        """A screenshot of the page laid out in a viewport of exactly `size`, saved at `path`."""
        width, height = size
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        try:
            assert self.driver.save_screenshot(str(path)), f"No screenshot saved at {path}"
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_a_deploy_with_a_bumped_marker_sends_the_browser_back_to_sign_in(
    heroku: Heroku, chromium: WebDriver
) -> None:
    browser = Browser(chromium, SCREENSHOTS)
    app = heroku.create_app("shop")
    first = app.deploy(heroku.build(1))
    assert first.succeeded, first.output
    app.create_users("ada")

    chromium.get(f"{app.web.url}/accounts/login/")
    browser.sign_in("ada")
    assert browser.status("Signed in as") == "Signed in as ada."
    browser.screenshot("signed in")

    bump = app.deploy(heroku.build(2))
    assert bump.decision == "log everyone out", bump.output
    chromium.refresh()

    assert browser.status("You are not signed in.") == "You are not signed in."
    browser.screenshot("reloaded after the deploy: signed out")
    browser.follow("Sign in")
    browser.sign_in("ada")
    assert browser.status("Signed in as") == "Signed in as ada."
    browser.screenshot("signed in again")


def test_a_user_signed_out_by_a_deploy_is_told_why_once(
    heroku: Heroku, chromium: WebDriver
) -> None:
    browser = Browser(chromium, SCREENSHOTS / "logout-message")
    app = heroku.create_app("news")
    first = app.deploy(heroku.build(1))
    assert first.succeeded, first.output
    app.create_users("ada")

    chromium.get(f"{app.web.url}/accounts/login/")
    browser.sign_in("ada")
    assert browser.status("Signed in as") == "Signed in as ada."
    assert browser.messages() == []

    bump = app.deploy(heroku.build(2))
    assert bump.decision == "log everyone out", bump.output
    chromium.refresh()
    assert browser.status("You are not signed in.") == "You are not signed in."
    browser.screenshot("reloaded after the deploy: signed out")

    browser.follow("Sign in")
    browser.wait_for(lambda driver: driver.title == "Sign in", "the sign-in page")
    assert browser.messages() == [LOGOUT_MESSAGE]
    browser.screenshot("the sign-in page says why")
    browser.save_viewport(DOCS_SCREENSHOT, DOCS_SCREENSHOT_SIZE)

    chromium.refresh()
    browser.wait_for(lambda driver: driver.title == "Sign in", "the sign-in page")
    assert browser.messages() == [], "the message is shown once"
    browser.sign_in("ada")
    assert browser.status("Signed in as") == "Signed in as ada."
    assert browser.messages() == []
    browser.screenshot("signed in again")
