"""Webhook delivery fairness and retention (docs/webhooks.md, "Fairness" and
"Retention"): one organization never holds more than
WEBHOOK_ORG_MAX_IN_FLIGHT senders while the others are served; test
deliveries are limited per organization (429 with Retry-After, audited
once, not spendable by another tenant); audit retention removes the
deliveries of the rows it prunes, whatever their state, and finished
deliveries older than the cutoff."""
import http.server
import socket
import threading
import time
import uuid

import pytest

from conftest import Api, SLOW

WORKER = {"SSRF_ALLOWLIST": "127.0.0.1/32", "WEBHOOK_WORKER_INTERVAL_MS": "100"}


def hook(client, org_id, url, events=("*",)):
    r = client.post("/api/v1/webhooks", json={"orgId": org_id, "url": url,
                                              "events": list(events)})
    assert r.status_code == 201, r.text
    return r.json()


def wait_for(pred, timeout=20 * SLOW):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return None


# ---------------------------------------------------------------- per-organization cap


class Hole:
    """Accepts connections and never answers; counts them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.conns = []
        self.done = threading.Event()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/x"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.done.is_set():
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except socket.timeout:
                pass
            except OSError:
                return

    def close(self):
        self.done.set()
        for c in self.conns:
            c.close()
        self.sock.close()


class Good:
    """Answers 200 to every POST; counts them."""

    def __init__(self):
        self.got = threading.Event()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.got.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.srv.server_port}/x"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def quiet_queue(sql):
    """Ends deliveries other tests left pending, so the spawned worker sees
    only this test's own."""
    q = ("UPDATE webhook_deliveries SET status = 'failed', last_error = 'ended by the test',"
         " lease_id = NULL WHERE status IN ('pending', 'delivering')")
    sql(q)
    yield
    sql(q)


def test_one_organization_holds_at_most_its_cap_of_senders(spawn_server, bootstrap, make_org,
                                                           sql, quiet_queue):
    hole, good = Hole(), Good()
    try:
        srv = spawn_server(**WORKER, WEBHOOK_WORKER_THREADS="4", WEBHOOK_ORG_MAX_IN_FLIGHT="2")
        admin = Api(srv.url).login(bootstrap.email, bootstrap.password)
        a, b = make_org(client=admin), make_org(client=admin)
        wa, wb = hook(admin, a.id, hole.url), hook(admin, b.id, good.url)
        for _ in range(6):
            assert admin.post(f"/api/v1/webhooks/{wa['id']}/test").status_code == 202
        assert wait_for(lambda: len(hole.conns) >= 2), "the slow receiver got no request"
        # Two senders are idle and A has four more rows due: without the cap
        # they would take them within a poll interval (100 ms).
        time.sleep(1.0)
        assert len(hole.conns) == 2, f"{len(hole.conns)} of A's deliveries sent at once"
        live = sql("SELECT count(*) FROM webhook_deliveries WHERE org_id = %s"
                   " AND status = 'delivering'", a.id)[0][0]
        assert live == 2
        # Meanwhile another organization is served at once by the free senders.
        assert admin.post(f"/api/v1/webhooks/{wb['id']}/test").status_code == 202
        assert good.got.wait(5 * SLOW), "tenant B waited behind tenant A"
    finally:
        hole.close()
        good.close()


# ---------------------------------------------------------------- test deliveries: 429


def test_test_deliveries_are_limited_per_organization(admin, make_org, make_user, sql):
    a, b = make_org(), make_org()
    wa1 = hook(admin, a.id, "https://hooks.example.com/one")
    wa2 = hook(admin, a.id, "https://hooks.example.com/two")
    wb = hook(admin, b.id, "https://hooks.example.com/three")
    # Another organization's admin cannot spend A's budget: 404, not counted.
    other = make_user("org_admin", orgId=b.id)
    r = other.api.post(f"/api/v1/webhooks/{wa1['id']}/test")
    assert r.status_code == 404, r.text
    r = admin.post(f"/api/v1/webhooks/{wa1['id']}/test")
    assert r.status_code == 202, r.text
    limit = int(r.headers["X-RateLimit-Limit"])
    assert int(r.headers["X-RateLimit-Remaining"]) == limit - 1
    # Both webhooks of A draw on one budget.
    for i in range(1, limit):
        w = (wa1, wa2)[i % 2]
        r = admin.post(f"/api/v1/webhooks/{w['id']}/test")
        assert r.status_code == 202, (i, r.text)
    for w in (wa2, wa1):
        r = admin.post(f"/api/v1/webhooks/{w['id']}/test")
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "rate_limited"
        assert "webhook_test" in r.json()["error"]["message"]
        assert r.headers["Retry-After"].isdigit() and int(r.headers["Retry-After"]) >= 1
    queued = sql("SELECT count(*) FROM webhook_deliveries WHERE org_id = %s"
                 " AND event = 'webhook.test'", a.id)[0][0]
    assert queued == limit, "a refused test delivery was queued"
    audited = sql("SELECT count(*) FROM audit_log WHERE org_id = %s"
                  " AND action = 'webhook.test.rate_limited'", a.id)[0][0]
    assert audited == 1, "refusals are audited once per organization and window"
    # B has its own budget.
    assert admin.post(f"/api/v1/webhooks/{wb['id']}/test").status_code == 202


def test_unknown_webhook_test_is_404_not_429(admin):
    r = admin.post(f"/api/v1/webhooks/{uuid.uuid4()}/test")
    assert r.status_code == 404, r.text


# ---------------------------------------------------------------- retention


def test_retention_removes_the_deliveries_of_pruned_rows_in_any_state(audit, admin, sql):
    org = audit.new_org()
    hook(admin, org, "https://hooks.example.com/x", events=["device.update"])
    ids = audit.insert(org, 4, action="device.update")
    for aid, status in zip(ids, ("delivered", "failed", "pending", "pending")):
        sql("UPDATE webhook_deliveries SET status = %s WHERE audit_id = %s", status, aid)
    p = audit.cli("prune", "--org", org, "--older-than-days", "0")
    assert p.returncode == 0, p.stdout + p.stderr
    left = {r[0] for r in sql("SELECT id FROM audit_log WHERE id = ANY(%s)", ids)}
    pruned = [i for i in ids if i not in left]
    assert pruned and ids[-1] in left  # the head is never pruned
    gone = sql("SELECT count(*) FROM webhook_deliveries WHERE audit_id = ANY(%s)", pruned)[0][0]
    assert gone == 0, "a delivery outlived its pruned audit row"
    # A pending delivery of a kept row stays.
    assert sql("SELECT status FROM webhook_deliveries WHERE audit_id = %s", ids[-1]) == [("pending",)]


def test_retention_removes_finished_deliveries_older_than_the_cutoff(audit, admin, sql):
    org = audit.new_org()
    w = hook(admin, org, "https://hooks.example.com/x", events=["device.update"])
    gone_audit_id = 2 ** 62  # no such audit row

    def add(status, age_days, audit_id=None):
        return sql("INSERT INTO webhook_deliveries (webhook_id, org_id, audit_id, event, payload,"
                   " status, created_at) VALUES (%s, %s, %s, 'webhook.test', '{}', %s,"
                   " now() - make_interval(days => %s)) RETURNING id",
                   w["id"], org, audit_id, status, age_days)[0][0]
    old_delivered, old_failed = add("delivered", 40), add("failed", 40)
    old_orphan = add("pending", 40, gone_audit_id)
    old_pending, young_delivered = add("pending", 40), add("delivered", 1)
    p = audit.cli("prune", "--org", org, "--older-than-days", "30")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "removed 3 finished webhook deliveries" in p.stdout, p.stdout
    left = {r[0] for r in sql("SELECT id FROM webhook_deliveries WHERE webhook_id = %s", w["id"])}
    assert not left & {old_delivered, old_failed, old_orphan}
    # Still waiting with no audit row behind it (a test delivery), or young: kept.
    assert {old_pending, young_delivered} <= left
