"""GET /metrics (checklist M1; docs/monitoring.md): Prometheus text format
behind a bearer token (401 without it, 404 when no token is configured),
accepted by `promtool check metrics`, labelled only from fixed sets (route
templates, never paths or ids), and each series moves when its event
happens."""
import re
import secrets
import shutil
import subprocess
import time

import pytest

from conftest import SLOW, Api, assert_error, uniq
from test_sessions import REFRESH, cookie_login, jar, raw

PROMTOOL = shutil.which("promtool")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(base, token):
    r = Api(base).get("/metrics", token=None, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return r.text


def parse(text):
    """{(name, frozenset(labels.items())): float} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def metrics(api, env):
    token = env["METRICS_SCRAPE_TOKEN"]
    return lambda: parse(scrape(api.base, token))


# --------------------------------------------------------------------------- access


def test_scrape_needs_the_bearer_token(api, env):
    for headers in ({}, {"Authorization": "Bearer wrong"},
                    {"Authorization": "Bearer " + env["METRICS_SCRAPE_TOKEN"] + "x"},
                    {"Authorization": "Basic " + env["METRICS_SCRAPE_TOKEN"]},
                    {"Authorization": env["METRICS_SCRAPE_TOKEN"]}):
        r = Api(api.base).get("/metrics", token=None, headers=headers)
        assert_error(r, 401, "unauthorized")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert "breeze_" not in r.text
    # The scheme is case-insensitive (RFC 9110 §11.1).
    r = Api(api.base).get("/metrics", token=None,
                          headers={"Authorization": "bearer " + env["METRICS_SCRAPE_TOKEN"]})
    assert r.status_code == 200


def test_no_token_configured_is_404(spawn_server):
    srv = spawn_server(METRICS_SCRAPE_TOKEN=None)
    for headers in ({}, {"Authorization": "Bearer anything"}):
        assert_error(Api(srv.url).get("/metrics", token=None, headers=headers), 404, "not_found")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_accepts_the_live_output(api, env, admin):
    admin.get("/api/v1/orgs")  # at least one labelled request series
    text = scrape(api.base, env["METRICS_SCRAPE_TOKEN"])
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), \
        p.stdout + p.stderr


def test_labels_hold_no_ids_and_routes_are_templates(metrics, admin, tenants):
    device_path = f"/api/v1/devices/{tenants.a.id}"  # any uuid: 404, still labelled
    admin.get(device_path)
    admin.get("/api/v1/no/such/" + tenants.a.id)
    s = metrics()
    routes = {dict(l).get("route") for (n, l) in s if n == "breeze_http_requests_total"}
    assert "/api/v1/devices/:id" in routes and "(unmatched)" in routes, routes
    for (name, labels) in s:
        for k, v in labels:
            assert not UUID.search(v), (name, k, v)
            assert tenants.a.name not in v and "@" not in v, (name, k, v)
    assert all(dict(l)["status"] in ("1xx", "2xx", "3xx", "4xx", "5xx")
               for (n, l) in s if n == "breeze_http_requests_total")


# --------------------------------------------------------------------------- series


def test_http_series_move(metrics, api):
    before = metrics()
    api.get("/healthz")
    api.get("/healthz", params={"nope": "1"})
    after = metrics()
    key = dict(method="GET", route="/healthz")
    assert value(after, "breeze_http_requests_total", status="2xx", **key) >= \
        value(before, "breeze_http_requests_total", status="2xx", **key) + 1
    assert value(after, "breeze_http_requests_total", status="4xx", **key) >= \
        value(before, "breeze_http_requests_total", status="4xx", **key) + 1
    c = "breeze_http_request_duration_seconds_count"
    assert value(after, c, route="/healthz") >= value(before, c, route="/healthz") + 2
    inf = value(after, "breeze_http_request_duration_seconds_bucket", route="/healthz", le="+Inf")
    assert inf == value(after, c, route="/healthz")
    assert value(after, "breeze_http_requests_in_flight") >= 1  # the scrape itself


def test_dependency_and_pool_gauges(metrics):
    s = metrics()
    assert value(s, "breeze_postgres_up") == 1 and value(s, "breeze_redis_up") == 1
    assert value(s, "breeze_ratelimit_backend", backend="redis") == 1
    assert value(s, "breeze_ratelimit_backend", backend="local") == 0
    size = value(s, "breeze_db_pool_connections")
    assert size >= 1 and 0 <= value(s, "breeze_db_pool_connections_in_use") <= size
    assert value(s, "breeze_db_pool_wait_seconds_count") >= 1
    assert value(s, "process_resident_memory_bytes") > 1 << 20
    assert value(s, "process_open_fds") > 3 and value(s, "process_cpu_seconds_total") > 0
    start = value(s, "process_start_time_seconds")
    assert time.time() - 86400 < start <= time.time() + 5


def test_redis_down_shows(spawn_server, env):
    srv = spawn_server(REDIS_URL="redis://127.0.0.1:1/0")
    s = parse(scrape(srv.url, env["METRICS_SCRAPE_TOKEN"]))
    assert value(s, "breeze_redis_up") == 0 and value(s, "breeze_postgres_up") == 1


def test_login_series_and_audit_rows(metrics, api, bootstrap):
    before = metrics()
    r = api.post("/api/v1/auth/login", json={"email": bootstrap.email, "password": "wrong-" + uniq()},
                 token=None)
    assert_error(r, 401)
    api.login(bootstrap.email, bootstrap.password)
    after = metrics()
    for result in ("failure", "success"):
        assert value(after, "breeze_auth_logins_total", result=result) >= \
            value(before, "breeze_auth_logins_total", result=result) + 1, result
    assert value(after, "breeze_audit_rows_written_total") >= \
        value(before, "breeze_audit_rows_written_total") + 2


def test_mfa_failure_counted(metrics, api):
    before = value(metrics(), "breeze_auth_mfa_failures_total")
    r = api.post("/api/v1/auth/mfa/verify", json={"mfaToken": "x" * 43, "code": "123456"},
                 token=None)
    assert r.status_code == 401
    assert value(metrics(), "breeze_auth_mfa_failures_total") >= before + 1


def test_refresh_reuse_counted(metrics, api, bootstrap):
    before = value(metrics(), "breeze_auth_refresh_reuse_detected_total")
    c, _ = cookie_login(api.base, bootstrap.email, bootstrap.password)
    rt0, csrf0 = jar(c)
    assert c.post(REFRESH, token=None, headers={"X-Breeze-CSRF": csrf0}).status_code == 200
    assert_error(raw(api.base, REFRESH, rt0, csrf0), 401, "refresh_token_reused")
    assert value(metrics(), "breeze_auth_refresh_reuse_detected_total") == before + 1


def test_rate_limit_rejection_by_limiter(spawn_server, env, bootstrap):
    srv = spawn_server(RATE_LIMIT_LOGIN_IP="1/600")
    c = Api(srv.url)
    body = {"email": bootstrap.email, "password": "wrong-" + uniq()}
    # Redis holds the window for every server of the session: the first
    # login may already be over the limit, the second certainly is.
    first = c.post("/api/v1/auth/login", json=body, token=None)
    assert_error(c.post("/api/v1/auth/login", json=body, token=None), 429, "rate_limited")
    s = parse(scrape(srv.url, env["METRICS_SCRAPE_TOKEN"]))
    refused = 1 + (first.status_code == 429)
    assert value(s, "breeze_ratelimit_rejections_total", limiter="login_ip") == refused
    assert value(s, "breeze_ratelimit_rejections_total", limiter="api_user") == 0


def test_agent_series(metrics, agents, tenants, api):
    before = metrics()
    x = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    y = agents.new_device(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    assert agents.heartbeat(x["agentId"], x["authToken"]).status_code == 200
    key = agents.create_key(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    assert agents.enroll(key["key"], secret="wrong-" + secrets.token_hex(8)).status_code == 403
    # A cross-tenant probe suspends the prober's token (G6).
    assert agents.heartbeat(y["agentId"], x["authToken"]).status_code == 401
    after = metrics()
    assert value(after, "breeze_agent_heartbeats_total") >= \
        value(before, "breeze_agent_heartbeats_total") + 1
    for result in ("success", "failure"):
        assert value(after, "breeze_agent_enrollments_total", result=result) >= \
            value(before, "breeze_agent_enrollments_total", result=result) + 1, result
    assert value(after, "breeze_agent_token_suspensions_total") >= \
        value(before, "breeze_agent_token_suspensions_total") + 1


def test_audit_verification_result_and_time(spawn_server, env, audit):
    """The worker's verification of every chain sets the last result, its
    time and the broken chains; a chain broken behind the triggers' back
    makes the result 0."""
    org = audit.new_org()
    audit.insert(org, 3)
    conn = audit.connect("super", autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute("UPDATE audit_log SET details = '{\"i\": 99}' WHERE chain_id = %s AND seq = 2",
                    (org,))
    conn.commit()
    t0 = time.time()
    srv = spawn_server(AUDIT_VERIFY_INTERVAL_SECONDS="1")
    deadline = time.time() + 30 * SLOW
    while True:
        s = parse(scrape(srv.url, env["METRICS_SCRAPE_TOKEN"]))
        if value(s, "breeze_audit_chain_verify_last_timestamp_seconds") > 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert value(s, "breeze_audit_chain_verify_last_timestamp_seconds") >= int(t0) - 1
    assert value(s, "breeze_audit_chain_verify_last_success") == 0
    assert value(s, "breeze_audit_chain_verify_last_broken_chains") >= 1
    assert '"audit.verify.broken"' in srv.log_text() and org in srv.log_text()
