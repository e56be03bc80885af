"""Shared pieces of the dashboard's browser tests (tests/api/test_web_*.py,
test_attack_web*.py), loaded as a plugin by conftest.py: Debian's headless
Chromium driven by chromedriver through python3-selenium (the system
browser: nothing is downloaded), and the checks every test ends with: no
JavaScript dialog opened and no console error logged (the browser log,
goog:loggingPrefs).

The session has ONE Chromium (`browser`) and ONE breeze-server whose
origin is in ALLOWED_ORIGINS (`web`; the cookie routes refuse any other):
starting them per module cost more than many of the tests. A test starts
from whatever page and session the previous one left, so each module says
what it needs: `browser.reset()` for a fresh visitor, sign_in_admin() for
the bootstrap administrator (signs in only when the page is not already
his), `browser.downloads_to()` for a download directory of its own. A
module that needs another server configuration starts it with
start_server().

Every test that takes the `browser` fixture is marked normal_only
(conftest.py): the ASan/UBSan run skips it. What a browser test adds over
the API tests is the dashboard's JavaScript, which the sanitizers do not
see; every route and answer it gets from the server is also asked for by
an API test (test_dashboard_answers.py has those only the pages asked for;
README.md, "The two commands").

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

from conftest import ADMIN_NAME, BUILD, SLOW, ServerProc, free_port, sanitizer_findings, \
    server_env

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
    """One headless Chromium (the session's, see `browser` below)."""

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

    def downloads_to(self, directory):
        """Downloads go to DIRECTORY (created) from now on."""
        self.downloads = Path(directory)
        self.downloads.mkdir(parents=True, exist_ok=True)
        self.d.execute_cdp_cmd("Browser.setDownloadBehavior",
                               {"behavior": "allow", "downloadPath": str(self.downloads)})

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


def signed_in_email(b):
    """The e-mail address the current page shows as signed in ('' if none)."""
    return b.d.execute_script(
        "const e = document.getElementById('user-email'); return e ? e.textContent : ''")


def sign_in_admin(b, web, bootstrap):
    """The browser signed in at WEB as the bootstrap administrator: kept if
    the current page already is his (the session's browser moves from module
    to module), else a fresh visitor who signs in. Returns B."""
    if not b.d.current_url.startswith(web.url + "/") or signed_in_email(b) != bootstrap.email:
        b.reset(web.url)
        login(b, web.url, bootstrap.email, bootstrap.password)
        wait_signed_in(b, ADMIN_NAME)
    return b


def settle(b, seconds=0.3):
    """Lets queued page work run out (fetches answered, handlers run) before
    the logs are read: asynchronous errors would otherwise be missed."""
    b.d.execute_async_script(
        "const done = arguments[arguments.length - 1]; setTimeout(done, arguments[0]);",
        int(seconds * 1000))
    time.sleep(0)


# ------------------------------------------------------------ fixtures and hooks


@pytest.fixture(scope="session")
def web(services, bootstrap, workdir):
    """The browser tests' breeze-server: one for the session, its own origin
    allowed (start_server())."""
    srv = start_server(services, workdir)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def browser(workdir):
    """The session's headless Chromium; downloads go to <workdir>/downloads
    unless a module says otherwise (Browser.downloads_to)."""
    if chromium_missing():
        pytest.skip("chromium/chromedriver not installed (scripts/install-deps)")
    b = Browser(workdir / "downloads")
    yield b
    b.quit()


def pytest_collection_modifyitems(config, items):
    """Every test that takes `browser` is normal_only (see the docstring)."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.normal_only)


@pytest.fixture
def no_page_errors(browser):
    """Fails the test on a JavaScript dialog or console error."""
    browser.problems()  # what earlier tests left is theirs
    yield
    settle(browser)
    found = browser.problems()
    assert not found, "\n".join(found)
