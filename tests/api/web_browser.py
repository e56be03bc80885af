"""Shared pieces of the dashboard's browser tests (tests/api/test_web_*.py):
Debian's headless Chromium driven by chromedriver through python3-selenium
(the system browser: nothing is downloaded), a breeze-server of the module
whose origin is in ALLOWED_ORIGINS (the cookie routes refuse any other),
and the checks every test ends with: no JavaScript dialog opened and no
console error logged (the browser log, goog:loggingPrefs).

Screenshots of each page go to <build dir>/test-output/web/ (kept after the
run; a few are copied into docs/images/ for the README)."""
import shutil
import time
import uuid
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import BUILD, SLOW, ServerProc, free_port, sanitizer_findings, server_env

SHOTS = BUILD / "test-output" / "web"
WAIT_S = 15 * SLOW


def chromium_missing():
    return shutil.which("chromium") is None or shutil.which("chromedriver") is None


# Host names under SITE resolve to 127.0.0.1 in the test browser (and
# *.localhost is a secure context, so Secure and __Host- cookies work over
# plain http there): two of them are sibling subdomains of one site.
SITE = "breeze.localhost"


def start_server(services, workdir, host="127.0.0.1", **overrides):
    """A serve process whose own origin (http://HOST:port) is allowed to
    call the cookie routes."""
    port = free_port()
    env = server_env(services.env, ALLOWED_ORIGINS=f"http://{host}:{port}", **overrides)
    srv = ServerProc(env, workdir / f"server-web-{uuid.uuid4().hex[:8]}.log", port=port)
    srv.start()
    srv.wait_up()
    srv.url = f"http://{host}:{port}"
    return srv


def stop_server(srv):
    srv.stop()
    found = sanitizer_findings(srv.log_text())
    assert not found, f"sanitizer report in {srv.log_path}:\n" + "\n".join(found[:20])


class Browser:
    """One headless Chromium for a test module."""

    def __init__(self, downloads):
        self.downloads = Path(downloads)
        o = webdriver.ChromeOptions()
        o.binary_location = shutil.which("chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-sync",
                    "--disable-component-update", "--disable-features=Translate,OptimizationHints",
                    f"--host-resolver-rules=MAP *.{SITE} 127.0.0.1"):
            o.add_argument(arg)
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # An alert stays open (and is found by check()) instead of being
        # dismissed silently.
        o.set_capability("unhandledPromptBehavior", "ignore")
        o.add_experimental_option("prefs", {
            "download.default_directory": str(self.downloads),
            "download.prompt_for_download": False,
        })
        service = Service(executable_path=shutil.which("chromedriver"))
        self.d = webdriver.Chrome(options=o, service=service)
        self.d.set_page_load_timeout(WAIT_S)
        self.d.execute_cdp_cmd("Browser.setDownloadBehavior",
                               {"behavior": "allow", "downloadPath": str(self.downloads)})

    def quit(self):
        self.d.quit()

    # ---- finding and waiting

    def wait(self, cond, timeout=WAIT_S):
        """COND's first true value; an element it read that a page redrew
        meanwhile (stale) counts as not yet."""
        return WebDriverWait(self.d, timeout,
                             ignored_exceptions=(StaleElementReferenceException,)).until(cond)

    def el(self, css, timeout=WAIT_S):
        """The visible element CSS, waited for."""
        return self.wait(EC.visibility_of_element_located((By.CSS_SELECTOR, css)), timeout)

    def text_of(self, css, want, timeout=WAIT_S):
        """Waits until element CSS's text contains WANT; returns its text."""
        self.wait(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), want), timeout)
        return self.d.find_element(By.CSS_SELECTOR, css).text

    def path_is(self, path, timeout=WAIT_S):
        self.wait(lambda d: d.execute_script("return location.pathname") == path, timeout)

    def path(self):
        return self.d.execute_script("return location.pathname")

    def type(self, css, text):
        e = self.el(css)
        e.clear()
        e.send_keys(text)
        return e

    def click(self, css):
        self.wait(EC.element_to_be_clickable((By.CSS_SELECTOR, css))).click()

    # ---- state between tests

    def reset(self, base):
        """Back to a fresh visitor of BASE: no cookies, no page (so no token
        in memory), one window."""
        for h in self.d.window_handles[1:]:
            self.d.switch_to.window(h)
            self.d.close()
        self.d.switch_to.window(self.d.window_handles[0])
        self.d.get(base + "/healthz")
        self.d.delete_all_cookies()
        self.d.get("about:blank")

    def shot(self, name):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.d.save_screenshot(str(SHOTS / f"{name}.png"))

    # ---- the checks every test ends with

    def problems(self):
        """Open dialogs and console errors since the last call. Failed
        requests the page expects (a 401 from a dead session, a 429) are
        logged by Chromium with source 'network' and are not errors of the
        page; everything else at SEVERE is."""
        out = []
        try:
            a = self.d.switch_to.alert
            out.append(f"JavaScript dialog: {a.text!r}")
            a.dismiss()
        except NoAlertPresentException:
            pass
        for e in self.d.get_log("browser"):
            if e["level"] == "SEVERE" and e.get("source") != "network":
                out.append(f"console: {e['message']}")
        return out


def login(b, base, email, password):
    b.d.get(base + "/login")
    b.type("#email", email)
    b.type("#password", password)
    b.click("#login-submit")


def wait_signed_in(b, name):
    b.text_of("#user-name", name)


def settle(b, seconds=0.3):
    """Lets queued page work run out (fetches answered, handlers run) before
    the logs are read: asynchronous errors would otherwise be missed."""
    b.d.execute_async_script(
        "const done = arguments[arguments.length - 1]; setTimeout(done, arguments[0]);",
        int(seconds * 1000))
    time.sleep(0)


@pytest.fixture
def no_page_errors(browser):
    """Fails the test on a JavaScript dialog or console error."""
    browser.problems()  # what earlier tests left is theirs
    yield
    settle(browser)
    found = browser.problems()
    assert not found, "\n".join(found)
