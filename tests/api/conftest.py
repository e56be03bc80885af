"""
Black-box API test fixtures: a private PostgreSQL + Redis (scripts/dev-services),
a migrated and bootstrapped database, the real breeze-server on a free loopback
port, and logged-in clients per role and per tenant so isolation tests stay short.

Run from the repository root:

    BREEZE_BUILD_DIR=build /usr/bin/python3 -m pytest -q tests/api

With an ASan/UBSan build (BREEZE_BUILD_DIR=build-sanitize) every server and agent
log is scanned when its process ends; a sanitizer report fails the session.
"""
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import types
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import requests

import openapi_contract

REPO = Path(__file__).resolve().parents[2]
_build = os.environ.get("BREEZE_BUILD_DIR", "build")
BUILD = Path(_build) if os.path.isabs(_build) else REPO / _build
SERVER_BIN = BUILD / "breeze-server"
AGENT_BIN = BUILD / "breeze-agent"
DEV_SERVICES = REPO / "scripts" / "dev-services"

ADMIN_EMAIL = "admin@breeze.test"
ADMIN_NAME = "Bootstrap Admin"

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

# Every process log written during the session (servers, agents); scanned for
# sanitizer reports at the end (pytest_sessionfinish).
LOG_FILES = []
_LOG_LOCK = threading.Lock()
_FINDINGS = []


def _is_sanitized():
    try:
        with open(SERVER_BIN, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZED = _is_sanitized()
# Instrumented binaries are several times slower; timeouts scale with them.
SLOW = 4 if SANITIZED else 1


def register_log(path):
    with _LOG_LOCK:
        LOG_FILES.append(Path(path))


def sanitizer_findings(text):
    """Lines of TEXT that look like an ASan/UBSan/LSan report."""
    return [ln for ln in text.splitlines() if any(p in ln for p in SANITIZER_PATTERNS)]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env_file(path):
    env = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        env[k.strip()] = v.strip()
    return env


def base_process_env():
    """The inherited environment minus anything that could configure Breeze."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "ASAN_OPTIONS", "UBSAN_OPTIONS",
            "LSAN_OPTIONS")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


def uniq(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


def assert_error(resp, status, code=None):
    """RESP has STATUS and the standard error body (with CODE when given)."""
    assert resp.status_code == status, f"want {status}, got {resp.status_code}: {resp.text[:500]}"
    body = resp.json()
    assert isinstance(body.get("error"), dict), body
    assert isinstance(body["error"].get("code"), str) and re.fullmatch(r"[a-z0-9_]+", body["error"]["code"]), body
    assert isinstance(body["error"].get("message"), str), body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


# --------------------------------------------------------------------------- HTTP client


_UNSET = object()
RENEW_LOGIN_S = 600  # a client made by Api.login() signs in again after this


def http_session():
    """A requests.Session whose every response is validated against
    docs/openapi.yaml (tests/api/openapi_contract.py): a response the spec does
    not allow fails the test that received it. Use it (or Api) for every
    request to a breeze-server; only raw-socket tests go around it."""
    return openapi_contract.session()


class Api:
    """requests wrapper with a base URL and an optional bearer token; every
    response is validated against docs/openapi.yaml (http_session)."""

    def __init__(self, base_url, token=None, timeout=30 * SLOW):
        self.base = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.s = http_session()
        self.user = None  # login response's "user", when made by login()
        self._login = None  # (email, password, monotonic time), when made by login()

    def clone(self, token=_UNSET):
        """A new client (own connection pool: requests.Session is not thread-safe)."""
        return Api(self.base, self.token if token is _UNSET else token, self.timeout)

    def request(self, method, path, *, json=_UNSET, data=None, headers=None, token=_UNSET, **kw):
        h = {}
        if token is _UNSET and self._login and time.monotonic() - self._login[2] > RENEW_LOGIN_S:
            self._renew()
        tok = self.token if token is _UNSET else token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        if headers:
            h.update(headers)
        args = dict(data=data, headers=h, timeout=self.timeout, **kw)
        if json is not _UNSET:
            args["json"] = json
        return self.s.request(method, self.base + path, **args)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=_UNSET, **kw):
        return self.request("POST", path, json=json, **kw)

    def patch(self, path, json=_UNSET, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def login(self, email, password):
        r = self.post("/api/v1/auth/login", json={"email": email, "password": password}, token=None)
        assert r.status_code == 200, f"login {email}: {r.status_code} {r.text[:300]}"
        body = r.json()
        c = self.clone(token=body["accessToken"])
        c.user = body["user"]
        c._login = (email, password, time.monotonic())
        return c

    def _renew(self):
        """Signs in again: access tokens live 15 minutes (config.c), and a
        session-wide client such as `admin` outlives that in a slow run. If
        that fails (password changed, MFA on, user disabled), the old token
        stays and no renewal is tried again."""
        email, password, _ = self._login
        self._login = None
        r = self.post("/api/v1/auth/login", json={"email": email, "password": password}, token=None)
        body = r.json() if r.status_code == 200 else {}
        if "accessToken" in body:
            self.token, self.user = body["accessToken"], body["user"]
            self._login = (email, password, time.monotonic())


# --------------------------------------------------------------------------- processes


class ServerProc:
    """A breeze-server serve process with its stderr in a log file."""

    def __init__(self, env, log_path, env_file=None, port=None):
        self.port = port or free_port()
        self.env = dict(env)
        self.env["LISTEN_ADDR"] = f"127.0.0.1:{self.port}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.env_file = env_file
        self.proc = None
        self.returncode = None

    def start(self):
        args = [str(SERVER_BIN), "serve", "--allow-root"]
        if self.env_file:
            args += ["--env-file", str(self.env_file)]
        self._log = open(self.log_path, "ab")
        register_log(self.log_path)
        self.proc = subprocess.Popen(args, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log, start_new_session=True)
        return self

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_up(self, path="/readyz", timeout=20 * SLOW):
        """Polls PATH until 200; fails with the log tail if the process dies."""
        deadline = time.monotonic() + timeout
        last = None
        http = http_session()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"breeze-server exited with {self.proc.returncode} before becoming "
                            f"ready:\n{self.log_text()[-3000:]}")
            try:
                r = http.get(self.url + path, timeout=5)
                last = r.status_code
                if r.status_code == 200:
                    return self
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.1)
        pytest.fail(f"breeze-server not ready on {self.url}{path} after {timeout}s (last: {last})"
                    f"\n{self.log_text()[-3000:]}")

    def stop(self, sig=signal.SIGTERM, timeout=30 * SLOW):
        """Signals the server and returns its exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.returncode = None
                self._log.close()
                return None
        self.returncode = self.proc.returncode
        self._log.close()
        return self.returncode


# --------------------------------------------------------------------------- services


@pytest.fixture(scope="session")
def workdir():
    # Short path under /tmp: PostgreSQL's socket path must fit in sun_path, and
    # the cluster runs as the 'postgres' user, who must traverse the directory.
    d = Path(tempfile.mkdtemp(prefix="bzapi-", dir="/tmp"))
    d.chmod(0o711)
    TEST_CLOCK.path = d / "clock-offset"
    yield d
    # Scanned here, before the logs are removed; reported by pytest_sessionfinish.
    _FINDINGS.extend(scan_logs())
    if os.environ.get("BREEZE_KEEP_TMP") != "1" and not _FINDINGS:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def services(workdir):
    """PostgreSQL + Redis for the session; stopped at the end even on failure."""
    assert SERVER_BIN.exists(), f"{SERVER_BIN} not built (cmake --build {BUILD})"
    svc = workdir / "svc"
    try:
        r = subprocess.run([str(DEV_SERVICES), "start", str(svc)], capture_output=True, text=True,
                           timeout=180)
        assert r.returncode == 0, f"dev-services start failed:\n{r.stdout}\n{r.stderr}"
        env_file = svc / "breeze.env"
        yield types.SimpleNamespace(dir=svc, env_file=env_file, env=read_env_file(env_file))
    finally:
        subprocess.run([str(DEV_SERVICES), "stop", str(svc)], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def env(services):
    """The KEY=VALUE pairs of the services' env file."""
    return services.env


@pytest.fixture(scope="session")
def env_file(services):
    return services.env_file


def superuser_breeze_url(env):
    u = urlsplit(env["SUPERUSER_DATABASE_URL"])
    return urlunsplit((u.scheme, u.netloc, "/breeze", u.query, u.fragment))


@pytest.fixture(scope="session")
def migrated(services):
    r = subprocess.run([str(SERVER_BIN), "migrate", "--env-file", str(services.env_file)],
                       env=base_process_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"migrate failed:\n{r.stdout}\n{r.stderr}"
    return True


@pytest.fixture(scope="session")
def bootstrap(services, migrated):
    """The first partner/org/site/admin; returns ids plus the admin's e-mail and password."""
    password = "Adm1n-" + secrets.token_hex(12)
    r = subprocess.run(
        [str(SERVER_BIN), "bootstrap", "--env-file", str(services.env_file), "--password-stdin",
         "--email", ADMIN_EMAIL, "--name", ADMIN_NAME, "--partner", "Test Partner",
         "--org", "Home Org", "--site", "Home Site"],
        input=password + "\n", env=base_process_env(), capture_output=True, text=True,
        timeout=120)
    assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}"
    assert password not in r.stdout + r.stderr
    ids = json.loads(r.stdout.strip().splitlines()[-1])
    for k in ("partnerId", "orgId", "siteId", "userId"):
        assert re.fullmatch(r"[0-9a-f-]{36}", ids[k]), ids
    # Migration 0009 makes the built-in admin roles force MFA (checklist A2).
    # So that the tests that log in as an administrator keep working, the
    # session runs with it off; the MFA tests (test_mfa.py) switch it back on
    # in try/finally and check what the migration set (force_mfa_roles).
    conn = psycopg2.connect(superuser_breeze_url(services.env))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM roles WHERE builtin AND force_mfa ORDER BY name")
            forced = [row[0] for row in cur.fetchall()]
            cur.execute("UPDATE roles SET force_mfa = false WHERE builtin")  # MFA tests: see above
    finally:
        conn.close()
    return types.SimpleNamespace(email=ADMIN_EMAIL, password=password, force_mfa_roles=forced,
                                 **ids)


class TestClock:
    """The servers' injectable clock: every serve process of the session reads
    its offset from one file (BREEZE_TEST_CLOCK_FILE, honoured only with
    BREEZE_ENV=test). Use the `clock` fixture, which puts it back to 0."""

    def __init__(self):
        self.path = None
        self.offset = 0
        self._mtime_ns = 0

    def env(self):
        return {"BREEZE_TEST_CLOCK_FILE": str(self.path)} if self.path else {}

    def set_offset(self, seconds):
        """Makes every server's clock run SECONDS (int, may be negative) ahead."""
        self.offset = int(seconds)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{self.offset}\n")
        # A strictly newer mtime, so a rewrite within one timestamp tick is seen.
        self._mtime_ns = max(self._mtime_ns + 1000, time.time_ns())
        os.utime(tmp, ns=(self._mtime_ns, self._mtime_ns))
        os.replace(tmp, self.path)

    def advance(self, seconds):
        self.set_offset(self.offset + int(seconds))


TEST_CLOCK = TestClock()


@pytest.fixture
def clock():
    """clock.advance(s) / clock.set_offset(s): moves every server's bz_now()."""
    yield TEST_CLOCK
    if TEST_CLOCK.offset != 0:
        TEST_CLOCK.set_offset(0)


# Servers started by the fixtures run no retention worker: its first run, a
# minute after start, would prune the aged rows test_audit_retention.py builds
# while a test inspects them. test_retention_worker_in_serve turns it on.
# Nor its daily verification of every chain (a minute after start too):
# test_metrics.py turns it on for the server it spawns.
NO_RETENTION_WORKER = {"AUDIT_RETENTION_INTERVAL_SECONDS": "0", "AUDIT_VERIFY_INTERVAL_SECONDS": "0"}

# Nor a webhook delivery worker: every server shares one database, so a
# worker of the session server would claim deliveries meant for the receiver
# of a test's own server (with its SSRF_ALLOWLIST). test_webhooks.py turns
# it on for the servers it spawns.
NO_WEBHOOK_WORKER = {"WEBHOOK_WORKER_INTERVAL_MS": "0"}

# Nor an offline sweep: tests that move the clock would see device.offline
# rows appear under them. test_device_metrics.py turns it on where it is the
# subject. (Partition maintenance stays on: it writes no audit rows.)
NO_DEVICE_SWEEP = {"DEVICE_SWEEP_INTERVAL_SECONDS": "0"}


# Generous rate limits (docs/rate-limiting.md) for the session-wide servers
# and spawned ones: hundreds of tests log in as the same admin from one
# address. The rate-limit tests (test_ratelimit*.py) override these with the
# checklist defaults or tiny limits.
GENEROUS_LIMITS = {
    "RATE_LIMIT_LOGIN": "100000/1", "RATE_LIMIT_LOGIN_IP": "100000/1",
    "RATE_LIMIT_API_USER": "100000/1", "RATE_LIMIT_AGENT_DEVICE": "100000/1",
    "AGENT_ORG_RATE_LIMIT_PER_MIN": "100000", "RATE_LIMIT_ENROLL": "100000/1",
    "RATE_LIMIT_MFA": "100000/1",
}


def server_env(env, **overrides):
    """A complete environment for a serve process: base env + env file + overrides.
    A value of None removes the variable."""
    e = base_process_env()
    e.update(env)
    e.update(TEST_CLOCK.env())
    e["BREEZE_ENV"] = "test"
    e["HEARTBEAT_INTERVAL_SECONDS"] = "5"
    e.update(NO_RETENTION_WORKER)
    e.update(NO_WEBHOOK_WORKER)
    e.update(NO_DEVICE_SWEEP)
    e.update(GENEROUS_LIMITS)
    for k, v in overrides.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = str(v)
    # The test clock is honoured only with BREEZE_ENV=test (production refuses
    # it): a server started in another environment gets it only when asked.
    if e.get("BREEZE_ENV") != "test" and "BREEZE_TEST_CLOCK_FILE" not in overrides:
        e.pop("BREEZE_TEST_CLOCK_FILE", None)
    return e


@pytest.fixture(scope="session")
def server(services, bootstrap, workdir):
    """The main server (BREEZE_ENV=test, 5 s heartbeat interval), via --env-file."""
    e = base_process_env()
    # The process environment wins over the env file (envfile_load never overrides).
    e.update(TEST_CLOCK.env())
    e["BREEZE_ENV"] = "test"
    e["HEARTBEAT_INTERVAL_SECONDS"] = "5"
    e.update(NO_RETENTION_WORKER)
    e.update(NO_WEBHOOK_WORKER)
    e.update(NO_DEVICE_SWEEP)
    e.update(GENEROUS_LIMITS)
    srv = ServerProc(e, workdir / "server.log", env_file=services.env_file)
    srv.start()
    try:
        srv.wait_up()
        yield srv
    finally:
        rc = srv.stop()
        found = sanitizer_findings(srv.log_text())
        assert not found, "sanitizer report in server log:\n" + "\n".join(found[:20])
        assert rc == 0, f"server did not exit 0 on SIGTERM (rc={rc})\n{srv.log_text()[-2000:]}"


@pytest.fixture(scope="session")
def api(server):
    """Unauthenticated client of the main server."""
    return Api(server.url)


@pytest.fixture(scope="session")
def admin(api, bootstrap):
    """The bootstrap partner_admin, logged in."""
    return api.login(bootstrap.email, bootstrap.password)


@pytest.fixture(scope="session")
def db(services, migrated):
    """Superuser connection to database breeze (autocommit), for assertions."""
    conn = psycopg2.connect(superuser_breeze_url(services.env))
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def sql(db):
    """sql(query, *params) -> list of rows."""
    def run(query, *params):
        with db.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []
    return run


# --------------------------------------------------------------------------- tenants


@pytest.fixture(scope="session")
def make_org(admin):
    """make_org(name=None, client=admin) -> namespace(id, name, site_id, site) under the partner."""
    def make(name=None, client=None):
        client = client or admin
        name = name or uniq("org")
        r = client.post("/api/v1/organizations", json={"name": name})
        assert r.status_code == 201, r.text
        org = r.json()
        r = client.post(f"/api/v1/organizations/{org['id']}/sites", json={"name": "Main site"})
        assert r.status_code == 201, r.text
        site = r.json()
        return types.SimpleNamespace(id=org["id"], name=name, org=org, site_id=site["id"], site=site)
    return make


@pytest.fixture(scope="session")
def make_user(admin, api):
    """make_user(role, client=admin, **fields) -> namespace(id, email, password, api, body)."""
    def make(role, client=None, **fields):
        client = client or admin
        email = fields.pop("email", None) or f"{uniq(role)}@example.test"
        password = "Pw-" + secrets.token_hex(10)
        body = {"email": email, "name": f"User {role}", "role": role, "password": password, **fields}
        r = client.post("/api/v1/users", json=body)
        assert r.status_code == 201, r.text
        created = r.json()
        return types.SimpleNamespace(id=created["id"], email=email, password=password,
                                     api=api.login(email, password), body=created)
    return make


@pytest.fixture(scope="session")
def tenants(bootstrap, make_org, make_user):
    """Two organizations A and B under the partner, each with an org_admin; an
    org_viewer of A; a partner_technician limited to A."""
    a = make_org(uniq("Tenant A"))
    b = make_org(uniq("Tenant B"))
    return types.SimpleNamespace(
        partner_id=bootstrap.partnerId,
        a=a,
        b=b,
        a_admin=make_user("org_admin", orgId=a.id),
        b_admin=make_user("org_admin", orgId=b.id),
        a_viewer=make_user("org_viewer", orgId=a.id),
        tech_a=make_user("partner_technician", orgIds=[a.id]),
    )


# --------------------------------------------------------------------------- agents


def enroll_body(key, secret, **overrides):
    body = {
        "enrollmentKey": key,
        "enrollmentSecret": secret,
        "hostname": uniq("host"),
        "osType": "linux",
        "osVersion": "Debian GNU/Linux 12 (bookworm)",
        "architecture": "x86_64",
        "agentVersion": "0.1.0",
        "hardware": {"cpuCount": 2, "memoryTotalBytes": 8 << 30, "diskTotalBytes": 100 << 30,
                     "kernel": "6.1.0-18-amd64", "cpuModel": "Test CPU"},
    }
    body.update(overrides)
    return body


def heartbeat_body(**overrides):
    body = {
        "status": "online",
        "agentVersion": "0.1.0",
        "uptimeSeconds": 12345,
        "hostname": "hb-host",
        "osType": "linux",
        "osVersion": "Debian GNU/Linux 12 (bookworm)",
        "kernel": "6.1.0-18-amd64",
        "architecture": "x86_64",
        "metrics": {"cpuPercent": 12.5, "memoryUsedBytes": 2 << 30, "memoryTotalBytes": 8 << 30,
                    "diskUsedBytes": 40 << 30, "diskTotalBytes": 100 << 30, "load1": 0.5,
                    "load5": 0.4, "load15": 0.3, "cpuCount": 2},
    }
    body.update(overrides)
    return body


class Agents:
    """Enrolment keys, enrolment and heartbeats against the main server."""

    def __init__(self, api, admin, env, home):
        self.api = api
        self.admin = admin
        self.secret = env["AGENT_ENROLLMENT_SECRET"]
        self.home = home  # (org_id, site_id) of the bootstrap organization

    def create_key(self, client=None, org_id=None, site_id=None, **fields):
        client = client or self.admin
        body = {"orgId": org_id or self.home[0], "siteId": site_id or self.home[1],
                "name": uniq("key"), **fields}
        r = client.post("/api/v1/enrollment-keys", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def enroll(self, key, secret=_UNSET, client=None, **overrides):
        body = enroll_body(key, self.secret if secret is _UNSET else secret, **overrides)
        return (client or self.api).post("/api/v1/agents/enroll", json=body, token=None)

    def new_device(self, client=None, org_id=None, site_id=None, **overrides):
        """Creates a key and enrols one device with it; returns the 201 body plus
        hostname and the key body."""
        key = self.create_key(client, org_id, site_id)
        hostname = overrides.pop("hostname", None) or uniq("host")
        r = self.enroll(key["key"], hostname=hostname, **overrides)
        assert r.status_code == 201, r.text
        d = r.json()
        d["hostname"] = hostname
        d["enrollmentKey"] = key
        return d

    def heartbeat(self, agent_id, token, client=None, **overrides):
        return (client or self.api).post(f"/api/v1/agents/{agent_id}/heartbeat",
                                         json=heartbeat_body(**overrides), token=token)


@pytest.fixture(scope="session")
def agents(api, admin, env, bootstrap):
    return Agents(api, admin, env, (bootstrap.orgId, bootstrap.siteId))


# --------------------------------------------------------------------------- extra servers


@pytest.fixture
def spawn_server(services, bootstrap, workdir):
    """spawn_server(wait='/readyz', **env_overrides) -> a started ServerProc with
    its whole configuration in the environment (no --env-file). Stopped at the
    end of the test; its log is scanned for sanitizer reports."""
    started = []

    def spawn(wait="/readyz", **overrides):
        log = workdir / f"server-extra-{uuid.uuid4().hex[:8]}.log"
        srv = ServerProc(server_env(services.env, **overrides), log)
        started.append(srv)
        srv.start()
        if wait:
            srv.wait_up(wait)
        return srv

    yield spawn
    for srv in started:
        srv.stop()
    for srv in started:
        found = sanitizer_findings(srv.log_text())
        assert not found, f"sanitizer report in {srv.log_path}:\n" + "\n".join(found[:20])


@pytest.fixture
def run_server(services, migrated, workdir):
    """run_server(args=('--allow-root',), timeout=..., **env_overrides) -> CompletedProcess
    of a serve that is expected to refuse to start (killed after TIMEOUT if it does not)."""
    def run(args=("--allow-root",), timeout=15 * SLOW, **overrides):
        e = server_env(services.env, **overrides)
        if "LISTEN_ADDR" not in overrides:
            e["LISTEN_ADDR"] = f"127.0.0.1:{free_port()}"
        p = subprocess.Popen([str(SERVER_BIN), "serve", *args], env=e, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)
            try:
                out, err = p.communicate(timeout=30 * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
        log = workdir / f"serve-refused-{uuid.uuid4().hex[:8]}.log"
        log.write_text(out + err)
        register_log(log)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)
    return run


# --------------------------------------------------------------------------- session end


def scan_logs():
    """(path, findings) for every registered log holding a sanitizer report."""
    bad = []
    with _LOG_LOCK:
        paths = list(dict.fromkeys(LOG_FILES))
    for path in paths:
        try:
            found = sanitizer_findings(path.read_text(errors="replace"))
        except OSError:
            continue
        if found:
            bad.append((path, found))
    return bad


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "normal_only: runs in the normal build only; the ASan/UBSan run skips it "
        "(it reaches no server C code that the other tests do not run under the sanitizers)")
    # The browser tests' shared fixtures (one Chromium, one server), global.
    import web_browser
    config.pluginmanager.register(web_browser, "web_browser")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """With a sanitizer build, normal_only tests are skipped (the normal run has
    them), unless BREEZE_SANITIZE_ALL=1."""
    if not SANITIZED or os.environ.get("BREEZE_SANITIZE_ALL") == "1":
        return
    skip = pytest.mark.skip(reason="normal_only: run by the normal build, not under the sanitizers")
    for item in items:
        if item.get_closest_marker("normal_only"):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A response that violated docs/openapi.yaml fails the test that received
    it, even when the ContractViolation raised in the request was swallowed
    (a worker thread, a broad except)."""
    outcome = yield
    rep = outcome.get_result()
    found = openapi_contract.take_violations()
    if found and rep.passed:
        rep.outcome = "failed"
        rep.longrepr = ("response(s) violating docs/openapi.yaml during " + rep.when + ":\n  "
                        + "\n  ".join(found[:20]))


def pytest_sessionfinish(session, exitstatus):
    """Fails the session if any server or agent log holds a sanitizer report
    (the directory is then kept for inspection)."""
    seen = {p for p, _ in _FINDINGS}
    bad = list(_FINDINGS) + [(p, f) for p, f in scan_logs() if p not in seen]
    if bad:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        for path, found in bad:
            msg = f"SANITIZER REPORT in {path}:\n  " + "\n  ".join(found[:20])
            if tr is not None:
                tr.write_line(msg, red=True)
            else:
                print(msg)
        session.exitstatus = 1


# ============================================================ audit tests: begin
# Additive helpers for tests/api/test_audit_*.py (owned by the audit tests;
# nothing above this line depends on them). Canonical form: audit_canonical.py.

AUDIT_COLS = ("id, org_id::text AS org_id, partner_id::text AS partner_id, site_id::text AS site_id,"
              " seq, ts, actor_type, actor_id, action, resource,"
              " resource_id, details, ip_address, result, prev_checksum, checksum")


class AuditTools:
    """Database roles, fresh organizations, raw audit inserts, chain reads and
    the `breeze-server audit …` CLI, for the audit tests."""

    def __init__(self, env, env_file, partner_id):
        self.env = env
        self.env_file = env_file
        self.partner_id = partner_id
        self.urls = {"app": env["DATABASE_URL"], "admin": env["AUDIT_ADMIN_DATABASE_URL"],
                     "owner": env["MIGRATION_DATABASE_URL"], "super": superuser_breeze_url(env)}
        self._conns = []
        self._su = None

    def connect(self, who="app", autocommit=True):
        """A new connection as 'app' (breeze_app), 'admin' (breeze_audit_admin),
        'owner' or 'super'; closed at the end of the session if still open."""
        # A failing test must fail, not hang behind a lock it left behind.
        conn = psycopg2.connect(self.urls[who],
                                options="-c lock_timeout=15000 -c statement_timeout=120000"
                                        " -c idle_in_transaction_session_timeout=60000")
        conn.autocommit = autocommit
        self._conns.append(conn)
        return conn

    def su(self, query, *params):
        """Runs QUERY as the superuser (autocommit); returns rows (or [])."""
        if self._su is None or self._su.closed:
            self._su = self.connect("super")
        with self._su.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def new_org(self, name=None):
        """A new organization of the bootstrap partner with an empty audit chain
        (created in SQL, so no organization.create row starts its chain)."""
        return self.su("INSERT INTO organizations (partner_id, name) VALUES (%s, %s) RETURNING id::text",
                       self.partner_id, name or uniq("audit-org"))[0][0]

    def insert(self, org_id, n=1, conn=None, **fields):
        """Inserts N audit rows as breeze_app (or on CONN); returns their ids.
        FIELDS override the columns; a callable value is called with the index."""
        own = conn is None
        conn = conn or self.connect("app")
        ids = []
        try:
            with conn.cursor() as cur:
                for i in range(n):
                    row = {"org_id": org_id, "actor_type": "system", "action": "test.event",
                           "resource": "tests", "details": json.dumps({"i": i})}
                    row.update({k: (v(i) if callable(v) else v) for k, v in fields.items()})
                    cols = ", ".join(row)
                    cur.execute(f"INSERT INTO audit_log ({cols}) VALUES ({', '.join(['%s'] * len(row))})"
                                " RETURNING id", list(row.values()))
                    ids.append(cur.fetchone()[0])
        finally:
            if own:
                conn.close()
        return ids

    def rows(self, org_id, where="", *params):
        """The chain of ORG_ID (None: the system chain) as dicts, by seq."""
        chain = org_id or "00000000-0000-0000-0000-000000000000"
        with self._su_cursor() as cur:
            cur.execute(f"SELECT {AUDIT_COLS} FROM audit_log WHERE chain_id = %s {where} ORDER BY seq",
                        (chain, *params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def count(self, org_id, action=None):
        chain = org_id or "00000000-0000-0000-0000-000000000000"
        return self.su("SELECT count(*) FROM audit_log WHERE chain_id = %s"
                       " AND (%s::text IS NULL OR action = %s)", chain, action, action)[0][0]

    def head(self, org_id):
        """(seq, checksum) from audit_chain_heads, or None."""
        chain = org_id or "00000000-0000-0000-0000-000000000000"
        r = self.su("SELECT seq, checksum FROM audit_chain_heads WHERE chain_id = %s", chain)
        return r[0] if r else None

    def _su_cursor(self):
        if self._su is None or self._su.closed:
            self._su = self.connect("super")
        return self._su.cursor()

    def cli(self, *args, env_file=_UNSET, timeout=120 * SLOW):
        """Runs `breeze-server audit ARGS --env-file F` (no --env-file when
        ENV_FILE is None); returns the CompletedProcess (text)."""
        cmd = [str(SERVER_BIN), "audit", *map(str, args)]
        ef = self.env_file if env_file is _UNSET else env_file
        if ef is not None:
            cmd += ["--env-file", str(ef)]
        p = subprocess.run(cmd, env=base_process_env(), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        found = sanitizer_findings(p.stderr)
        assert not found, f"sanitizer report from {' '.join(cmd[1:3])}:\n" + "\n".join(found[:20])
        return p

    def cli_json(self, *args, **kw):
        """(CompletedProcess, parsed stdout) of an `audit … --json` command."""
        p = self.cli(*args, "--json", **kw)
        try:
            doc = json.loads(p.stdout)
        except ValueError:
            pytest.fail(f"audit {' '.join(map(str, args))} --json: stdout is not JSON "
                        f"(rc={p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        return p, doc

    def verify(self, org_id, *extra):
        """`audit verify --org ORG_ID --json` -> (exit status, the org's chain report, whole doc)."""
        p, doc = self.cli_json("verify", "--org", org_id, *extra)
        chains = [c for c in doc.get("chains", []) if c.get("orgId") == org_id]
        assert len(chains) == 1, f"verify --org {org_id}: want one chain report, got {doc}"
        return p.returncode, chains[0], doc

    def close(self):
        for c in self._conns:
            if not c.closed:
                c.close()


@pytest.fixture(scope="session")
def audit(env, env_file, bootstrap):
    tools = AuditTools(env, env_file, bootstrap.partnerId)
    yield tools
    tools.close()
# ============================================================== audit tests: end
