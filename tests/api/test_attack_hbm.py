"""Attacks on the metrics history and liveness (migration 0019,
src/server/agents/metrics*.c, liveness*.c) and on webhook delivery fairness
(src/server/outbound/webhook_delivery.c). Each FINDING test fails while its
defect exists; Held tests document attacks that did not work."""
import datetime as dt
import hashlib
import hmac
import http.server
import json
import re
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import SERVER_BIN, SLOW, Api, assert_error, server_env

INTERVAL = 5  # HEARTBEAT_INTERVAL_SECONDS of the test servers
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def metrics(client, dev, **q):
    return client.get(f"/api/v1/devices/{dev}/metrics", params=q)


def maintain(services):
    p = subprocess.run([str(SERVER_BIN), "maintain"], env=server_env(services.env),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=120 * SLOW)
    assert p.returncode == 0, f"maintain failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def audit_count(sql, device_id, action):
    (n,), = sql("SELECT count(*) FROM audit_log WHERE resource = 'devices'"
                " AND resource_id = %s AND action = %s", device_id, action)
    return n


@pytest.fixture(scope="module")
def device(agents):
    d = agents.new_device()
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
    return d


# --------------------------------------------------------------------------- the metrics API


@pytest.mark.parametrize("rng", [
    {"from": "9999-12-31T00:00:00Z", "to": "9999-12-31T23:59:59-01:00"},
    {"from": "0001-01-01T00:00:00Z", "to": "0001-01-01T12:00:00Z"},
    {"from": "0001-01-01T00:00:00+01:00", "to": "0001-01-01T12:00:00Z"},
], ids=["year-10000", "year-1", "before-year-1"])
def test_metrics_range_at_the_calendar_edges_renders_valid_times(admin, device, rng):
    """FINDING (low): `from`/`to` are parsed by iso8601_parse_us (years
    0001-9999 plus any UTC offset, so 9999-12-31T23:59:59-01:00 is year
    10000 and 0001-01-01T00:00:00+01:00 is year 0), but echoed back with
    bz_format_iso8601 (gmtime + strftime "%Y"): the 200 body then carries
    "10000-01-01T00:59:59Z" or "1-01-01T00:00:00Z" — not RFC 3339
    date-times as docs/openapi.yaml's DeviceMetrics.from/to promise (a
    client parsing them fails). Fix: refuse a resolved time outside
    0001-01-01..9999-12-31 with 400 validation_error (or render with
    iso8601_format_us, which already range-checks)."""
    r = metrics(admin, device["agentId"], bucket="1h", **rng)
    if r.status_code == 400:
        assert_error(r, 400, "validation_error")
        return
    assert r.status_code == 200, r.text
    b = r.json()
    assert RFC3339.match(str(b["from"])) and RFC3339.match(str(b["to"])), b


def test_metrics_timezone_offsets_and_fractions_held(admin, device):
    """Held: an offset is applied (not ignored), fractions are dropped, and a
    named zone or a DST-style string is a 400, never a 500."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    f = (now - dt.timedelta(hours=1)).astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    r = metrics(admin, device["agentId"], **{"from": f.isoformat(timespec="milliseconds")})
    assert r.status_code == 200, r.text
    assert r.json()["from"] == (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for bad in ("2026-03-29T02:30:00 Europe/Berlin", "2026-03-29T02:30:00CEST",
                "2026-03-29T02:30:00+24:00", "2026-03-29T24:00:00Z", "+2026-03-29",
                "2026-03-29T02:30:00Z\x00", "2026-W13-7"):
        assert_error(metrics(admin, device["agentId"], **{"from": bad}), 400, "validation_error")


def test_metrics_of_another_tenant_or_site_is_404_held(agents, tenants, device):
    """Held: B's admin and A's technician see no other tenant's history,
    whatever the range or bucket."""
    d = agents.new_device(org_id=tenants.b.id, site_id=tenants.b.site_id)
    for client in (tenants.a_admin.api, tenants.a_viewer.api):
        for q in ({}, {"bucket": "1d", "from": "2026-01-01T00:00:00Z",
                       "to": "2026-01-31T00:00:00Z"}):
            assert_error(metrics(client, d["agentId"], **q), 404, "not_found")


def test_heartbeat_with_out_of_range_metrics_is_400_not_500_held(agents, device):
    """Held: a metric beyond ±2^53 (1e308, or an overflowing literal) is
    a 400, so the real/bigint casts of the heartbeat statement never fail."""
    for m in ({"cpuPercent": 1e308}, {"memoryUsedBytes": 2 ** 63}, {"load1": -1e300},
              {"cpuPercent": "NaN"}, {"cpuPercent": None}):
        r = agents.heartbeat(device["agentId"], device["authToken"], metrics=m)
        assert r.status_code == 400, (m, r.status_code, r.text)
    r = agents.api.post(f"/api/v1/agents/{device['agentId']}/heartbeat",
                        data=b'{"status":"online","metrics":{"cpuPercent":1e999}}',
                        headers={"Content-Type": "application/json"},
                        token=device["authToken"])
    assert r.status_code == 400, r.text


# --------------------------------------------------------------------------- maintenance


@pytest.mark.parametrize("ts", ["infinity", "-infinity", "294276-12-31 12:00:00+00"])
def test_one_metrics_row_cannot_break_partition_maintenance(audit, sql, ts):
    """FINDING (medium): device_metrics_maintain creates a partition for
    every day the DEFAULT partition holds rows of. A row at ts 'infinity'
    ('-infinity', or the last representable day) lands in the DEFAULT; then
    to_char() of its day is NULL (format %I raises) or day + 1 is out of
    range, so every later run raises: no partition is created ahead any
    more, retention drops nothing (history grows without bound), and every
    heartbeat lands in the DEFAULT. breeze_app may INSERT such a row (any
    ts, any device id) but may not DELETE it, so a stolen breeze_app
    credential does far worse than the "drop metrics history early" that
    migration 0019 and docs/architecture.md name as the worst case; it
    persists until an owner deletes the row by hand. Fix: a CHECK on
    device_metrics (ts finite and within a sane window, e.g. isfinite(ts)
    AND ts > '2000-01-01'), and in the function skip (and count) days it
    cannot partition instead of raising; or revoke INSERT and write rows
    through a SECURITY DEFINER function that stamps ts itself."""
    conn = audit.connect("app")
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO device_metrics (device_id, org_id, ts, cpu_percent)"
                        " VALUES (%s, %s, %s::timestamptz, 1)",
                        (str(uuid.uuid4()), str(uuid.uuid4()), ts))
        with conn.cursor() as cur:
            try:
                cur.execute("SELECT created, dropped, moved"
                            " FROM device_metrics_maintain(now(), 3, 3650)")
                cur.fetchall()
                failed = None
            except Exception as e:  # noqa: BLE001 - any refusal is the finding
                failed = str(e).splitlines()[0]
        assert failed is None, f"one row at {ts!r} breaks every maintenance run: {failed}"
    finally:
        conn.close()
        sql("DELETE FROM device_metrics_default WHERE NOT isfinite(ts)"
            " OR ts > '10000-01-01'::timestamptz")


def test_app_role_cannot_hijack_maintenance_held(audit):
    """Held: breeze_app cannot create objects in public (to shadow a name or
    pre-create a day's partition the SECURITY DEFINER function would then
    skip), and the function refuses out-of-range arguments."""
    conn = audit.connect("app")
    try:
        with conn.cursor() as cur:
            with pytest.raises(Exception):
                cur.execute("CREATE TABLE public.device_metrics_p29990101 (x int)")
        with conn.cursor() as cur:
            with pytest.raises(Exception):
                cur.execute("CREATE FUNCTION public.to_regclass(text) RETURNS regclass"
                            " LANGUAGE sql AS 'SELECT NULL::regclass'")
        for args in ("now(), 32, 30", "now(), 3, 0", "NULL, 3, 30", "now(), -1, 30"):
            with conn.cursor() as cur:
                with pytest.raises(Exception):
                    cur.execute(f"SELECT device_metrics_maintain({args})")
    finally:
        conn.close()


# --------------------------------------------------------------------------- liveness


def test_concurrent_heartbeats_back_online_write_one_row_held(agents, sql, services, clock):
    """Held: after the sweep marked a device offline, eight heartbeats at
    once write exactly one device.online (UPDATE ... WHERE online = false);
    a second sweep writes no second device.offline."""
    d = agents.new_device()
    dev = d["agentId"]
    assert agents.heartbeat(dev, d["authToken"]).status_code == 200
    clock.advance(3 * INTERVAL + 2)
    maintain(services)
    maintain(services)
    assert audit_count(sql, dev, "device.offline") == 1
    codes, start = [], threading.Barrier(8)

    def beat():
        start.wait()
        codes.append(agents.heartbeat(dev, d["authToken"]).status_code)
    ts = [threading.Thread(target=beat) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(set(codes)) == [200], codes
    assert audit_count(sql, dev, "device.online") == 1
    maintain(services)
    assert audit_count(sql, dev, "device.offline") == 1


def test_decommissioned_device_is_not_swept_held(agents, admin, sql, services, clock):
    """Held: a decommissioned device is never announced offline, and a
    heartbeat after decommissioning announces nothing."""
    d = agents.new_device()
    dev = d["agentId"]
    assert agents.heartbeat(dev, d["authToken"]).status_code == 200
    r = admin.post(f"/api/v1/devices/{dev}/decommission")
    assert r.status_code in (200, 204), r.text
    clock.advance(3 * INTERVAL + 2)
    maintain(services)
    assert audit_count(sql, dev, "device.offline") == 0
    assert agents.heartbeat(dev, d["authToken"]).status_code in (401, 403)
    assert audit_count(sql, dev, "device.online") == 0


# --------------------------------------------------------------------------- webhooks


class Receiver:
    """Answers 200 to every POST; keeps (headers, body) of each."""

    def __init__(self):
        self.got, self.cv = [], threading.Condition()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.cv:
                    outer.got.append((dict(self.headers), body))
                    outer.cv.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.srv.server_port}/hook"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def wait(self, n, timeout):
        with self.cv:
            return self.cv.wait_for(lambda: len(self.got) >= n, timeout)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


WORKER = {"SSRF_ALLOWLIST": "127.0.0.1/32", "WEBHOOK_WORKER_INTERVAL_MS": "100"}


def hook(client, org_id, url, events=("*",)):
    r = client.post("/api/v1/webhooks", json={"orgId": org_id, "url": url,
                                              "events": list(events)})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def quiet_queue(sql):
    q = ("UPDATE webhook_deliveries SET status = 'failed', last_error = 'ended by the test',"
         " lease_id = NULL WHERE status IN ('pending', 'delivering')")
    sql(q)
    yield
    sql(q)


def test_site_limited_account_cannot_spend_the_test_budget(admin, make_org, make_user):
    """Held: a site-limited account (refused with 403: webhooks are
    organization-wide) does not spend the organization's
    RATE_LIMIT_WEBHOOK_TEST budget — webhook_get() does not find the
    webhook in a site-limited scope, so test_limit() counts nothing."""
    org = make_org()
    w = hook(admin, org.id, "https://hooks.example.com/budget")
    limited = make_user("org_admin", orgId=org.id, siteIds=[org.site_id]).api
    for _ in range(20):  # RATE_LIMIT_WEBHOOK_TEST default 20 per 600 s
        r = limited.post(f"/api/v1/webhooks/{w['id']}/test")
        if r.status_code == 429:
            break
        assert_error(r, 403, "forbidden")
    r = admin.post(f"/api/v1/webhooks/{w['id']}/test")
    assert r.status_code == 202, f"the admin's test was refused after 403s: {r.status_code} {r.text}"


def test_crashed_lease_is_resent_and_signed_v2_held(spawn_server, bootstrap, make_org, sql,
                                                    quiet_queue):
    """Held: a delivery left 'delivering' by a crashed instance (its lease
    ran out, attempts below the maximum) is claimed again and sent; the
    request carries X-Breeze-Event equal to the body's event and only the v2
    signature HMAC-SHA-256(secret, "<t>.<event>.<body>"), which a forged
    event header does not verify against."""
    rc = Receiver()
    try:
        org = make_org()
        srv = spawn_server(**WORKER)
        admin = Api(srv.url).login(bootstrap.email, bootstrap.password)
        w = hook(admin, org.id, rc.url)
        # Queued by hand as a crashed instance leaves it: leased, run out.
        (did,), = sql("INSERT INTO webhook_deliveries (webhook_id, org_id, event, payload, status,"
                      " attempts, lease_id, next_attempt_at) VALUES (%s, %s, 'webhook.test',"
                      " '{\"message\":\"crash\"}', 'delivering', 1, gen_random_uuid(),"
                      " now() - interval '1 second') RETURNING id::text", w["id"], org.id)
        assert rc.wait(1, 15 * SLOW), "the run-out lease was never sent again"
        headers, body = rc.got[0]
        h = {k.lower(): v for k, v in headers.items()}
        assert h["x-breeze-delivery-id"] == did
        assert json.loads(body)["event"] == h["x-breeze-event"] == "webhook.test"
        sig = dict(p.split("=", 1) for p in h["x-breeze-signature"].split(","))
        assert set(sig) == {"t", "v2"}, h["x-breeze-signature"]

        def mac(event):
            return hmac.new(w["secret"].encode(), f"{sig['t']}.{event}.".encode() + body,
                            hashlib.sha256).hexdigest()
        assert hmac.compare_digest(mac("webhook.test"), sig["v2"])
        assert not hmac.compare_digest(mac("device.enroll"), sig["v2"])
        assert not hmac.compare_digest(
            hmac.new(w["secret"].encode(), f"{sig['t']}.".encode() + body,
                     hashlib.sha256).hexdigest(), sig["v2"])
    finally:
        rc.close()


def test_skewed_instance_does_not_steal_a_live_lease(spawn_server, bootstrap, make_org, sql,
                                                     quiet_queue, tmp_path):
    """FINDING (low): leases are written and judged with each instance's
    own bz_now() (claim_sql's next_attempt_at = to_timestamp($1) + 120 s,
    expire_sql and the `live` count compare against to_timestamp($1)), not
    with the database's clock. An instance whose clock runs two minutes
    ahead of another's (NTP step, a VM resumed) sees every lease of the
    others as run out: it re-sends deliveries that are being sent right now
    (duplicate delivery), ignores them in the per-organization in-flight
    count (the cap "counted over all instances" no longer holds), and
    expire_sql fails a last attempt in flight, whose real outcome is then
    lost (done_sql matches no lease). Fix: take the lease times from the
    database (now()/clock_timestamp() in claim_sql, expire_sql and live),
    which all instances share, and keep bz_now() only for backoff."""
    rc = Receiver()
    try:
        org = make_org()
        skew = tmp_path / "clock-offset"
        skew.write_text("180\n")
        srv = spawn_server(**WORKER, BREEZE_TEST_CLOCK_FILE=str(skew))
        admin = Api(srv.url).login(bootstrap.email, bootstrap.password)
        w = hook(admin, org.id, rc.url)
        # Another instance claimed this one a second ago and is sending it.
        sql("INSERT INTO webhook_deliveries (webhook_id, org_id, event, payload, status,"
            " attempts, lease_id, next_attempt_at) VALUES (%s, %s, 'webhook.test',"
            " '{\"message\":\"in flight elsewhere\"}', 'delivering', 1, gen_random_uuid(),"
            " now() + interval '119 seconds')", w["id"], org.id)
        # Give the skewed instance's 100 ms poll a few seconds.
        stolen = rc.wait(1, 3)
        assert not stolen, "an instance with a skewed clock re-sent a delivery under a live lease"
    finally:
        rc.close()


class Hole:
    """Accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.conns, self.done = [], threading.Event()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/x"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.done.is_set():
            try:
                self.conns.append(self.sock.accept()[0])
            except socket.timeout:
                pass
            except OSError:
                return

    def close(self):
        self.done.set()
        for c in self.conns:
            c.close()
        self.sock.close()


def test_old_backlogs_of_stuck_tenants_do_not_starve_a_new_tenant(spawn_server, bootstrap,
                                                                 make_org, sql, quiet_queue):
    """FINDING (medium): claim_sql picks "oldest first across
    organizations" among the organizations under their cap. When as many
    organizations as there are senders have stuck receivers (a single
    partner creates organizations at will), every sender that finishes a
    10 s attempt frees its organization's slot and the next claim takes
    that same organization's next backlog row again, because a backlog
    queued earlier is always older than another tenant's fresh delivery.
    Tenant B then waits for the whole backlog (rows x 10 s), not "one
    attempt's timeout per round, not a queue's length" as docs/webhooks.md
    ("Fairness") promises. Here: 2 senders, 2 stuck organizations with 10
    rows each queued an hour ago; B's delivery should go out at the next
    free sender (≈10 s) but waits ≈100 s. Fix: order eligible
    organizations by when they were last served (e.g. a per-organization
    last_claimed_at, or the org's oldest row's age capped at "now"), i.e.
    round-robin over organizations rather than oldest row first."""
    holes, rc = [Hole(), Hole()], Receiver()
    try:
        srv = spawn_server(**WORKER, WEBHOOK_WORKER_THREADS="2", WEBHOOK_ORG_MAX_IN_FLIGHT="1")
        admin = Api(srv.url).login(bootstrap.email, bootstrap.password)
        stuck = []
        for h in holes:
            org = make_org(client=admin)
            stuck.append((org, hook(admin, org.id, h.url)))
        b = make_org(client=admin)
        wb = hook(admin, b.id, rc.url)
        for org, w in stuck:
            sql("INSERT INTO webhook_deliveries (webhook_id, org_id, event, payload,"
                " next_attempt_at, created_at) SELECT %s, %s, 'webhook.test', '{}',"
                " now() - interval '1 hour' + g * interval '1 second',"
                " now() - interval '1 hour' + g * interval '1 second'"
                " FROM generate_series(1, 10) g", w["id"], org.id)
        deadline = time.monotonic() + 5 * SLOW
        while sum(len(h.conns) for h in holes) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert admin.post(f"/api/v1/webhooks/{wb['id']}/test").status_code == 202
        # Both senders are held for 10 s; the next free one must serve B.
        assert rc.wait(1, 14 * SLOW), \
            "tenant B waited behind the stuck tenants' whole backlog"
    finally:
        rc.close()
        for h in holes:
            h.close()
