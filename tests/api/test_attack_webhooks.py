"""Attack tests on webhooks and the SSRF guard (issue 12 §1–§2). Each test
here demonstrates a finding of the security review of the merged webhooks;
they fail until the product is fixed."""
import json
import threading
import time
import uuid

import pytest

from conftest import Api, SLOW

WORKER = {"SSRF_ALLOWLIST": "127.0.0.1/32", "WEBHOOK_WORKER_INTERVAL_MS": "100"}


@pytest.fixture(autouse=True)
def no_foreign_deliveries(sql):
    """Ends deliveries other tests left pending (before and after), so the
    workers spawned here only see this test's own."""
    q = ("UPDATE webhook_deliveries SET status = 'failed', last_error = 'ended by the test',"
         " lease_id = NULL WHERE status IN ('pending', 'delivering')")
    sql(q)
    yield
    sql(q)


def hook(client, org_id, url, events=("*",)):
    return client.post("/api/v1/webhooks", json={"orgId": org_id, "url": url,
                                                 "events": list(events)})


def delivery(sql, did):
    return sql("SELECT status, attempts, last_status, last_error FROM webhook_deliveries"
               " WHERE id = %s", did)[0]


def wait_for(pred, timeout=20 * SLOW):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return None


# ---------------------------------------------------------------- input → 500


def test_short_url_accepted_by_curl_is_not_a_500(admin, make_org):
    """`http:/x` is a valid URL to curl_url (host x) but 7 characters, under
    the table's CHECK (length(url) BETWEEN 8 AND 2048): the INSERT fails and
    the client gets 500 for its own input."""
    org = make_org()
    for url in ("http:/x", "http:/a/"):
        r = hook(admin, org.id, url)
        assert r.status_code in (201, 400), (url, r.status_code, r.text)


def test_deliveries_cursor_out_of_range_is_400(admin, make_org):
    """cursor_parse() lets 20 digits through; a value outside bigint (or an
    epoch offset outside timestamptz) makes PostgreSQL fail: 500."""
    org = make_org()
    r = hook(admin, org.id, "https://hooks.example.com/x")
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    for us in ("99999999999999999999", "9223372036854775807"):
        r = admin.get(f"/api/v1/webhooks/{wid}/deliveries",
                      params={"cursor": f"{us}.{uuid.uuid4()}"})
        assert r.status_code == 400, (us, r.status_code, r.text)


# ---------------------------------------------------------------- save-time check


@pytest.mark.parametrize("url", [
    "http://127.0.0.1./x",
    "http://169.254.169.254./latest/meta-data/",
    "http://0x7f.1./x",
    "http://10.0.0.1./x",
    "http://127.0.0.1%2e/x",
])
def test_ip_literal_with_trailing_dot_refused_when_saved(admin, make_org, url):
    """docs/webhooks.md: an IP literal is judged by the address rules when
    saved. curl_url does not normalise an IPv4 literal with a trailing dot,
    so inet_pton fails and the host passes as a *name*: 201."""
    org = make_org()
    r = hook(admin, org.id, url)
    assert r.status_code == 400, (url, r.status_code, r.text)


# ---------------------------------------------------------------- readers


def test_read_only_roles_do_not_see_the_receivers_token(tenants):
    """docs/webhooks.md keeps a URL's path and query out of the audit log
    because they "often carry the receiver's own token" (Slack, Teams and
    most SaaS inbound hooks: the URL *is* the credential). Yet every
    webhooks:read role — org_viewer, partner_viewer, partner_technician —
    gets the whole URL from GET and from the list, and with it the power
    to post to the receiver."""
    token = "T0KEN-" + uuid.uuid4().hex
    r = hook(tenants.a_admin.api, tenants.a.id, f"https://hooks.example.com/services/{token}?k={token}")
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    for who in (tenants.a_viewer.api, tenants.tech_a.api):
        g = who.get(f"/api/v1/webhooks/{wid}")
        assert g.status_code == 200, g.text
        assert token not in g.text, "a read-only user reads the receiver's token"
        assert token not in who.get("/api/v1/webhooks", params={"orgId": tenants.a.id}).text


# ---------------------------------------------------------------- DNS oracle


def test_tenant_cannot_learn_internal_dns_answers_from_the_audit_log(
        spawn_server, make_org, make_user, sql):
    """docs/webhooks.md: "reading the delivery log does not reveal internal
    DNS answers" — but the resolved address of a refused delivery is written
    to the *organization's* audit chain, which the same org_admin (who has
    webhooks:write and audit:read) reads at GET /api/v1/audit. Any tenant
    admin can so resolve the operator's internal names (here `vm`, which
    /etc/hosts maps to 127.0.0.1) one webhook at a time."""
    org = make_org()
    oa = make_user("org_admin", orgId=org.id)
    srv = spawn_server(WEBHOOK_WORKER_INTERVAL_MS="100")
    me = Api(srv.url).login(oa.email, oa.password)
    r = hook(me, org.id, "http://vm:9/probe", events=["device.enroll"])
    assert r.status_code == 201, r.text
    d = me.post(f"/api/v1/webhooks/{r.json()['id']}/test").json()
    assert wait_for(lambda: delivery(sql, d["id"])[1] >= 1 and
                    delivery(sql, d["id"])[0] == "pending"), "no attempt made"
    assert "127.0.0.1" not in (delivery(sql, d["id"])[3] or "")
    r = me.get("/api/v1/audit", params={"orgId": org.id, "action": "outbound.blocked"})
    assert r.status_code in (200, 403, 404), r.text
    assert "127.0.0.1" not in r.text, "the tenant reads where an internal name points"


# ---------------------------------------------------------------- head-of-line


def test_one_tenants_slow_receiver_does_not_stall_other_tenants(spawn_server, bootstrap, make_org,
                                                                 sql):
    """One worker thread per instance sends claimed rows one by one, each
    allowed SEND_TIMEOUT_MS (10 s). A tenant with a receiver that never
    answers and a few POST /test calls (no limit per webhook or per
    organization) holds the worker for 10 s per row: every other tenant's
    deliveries wait behind them (12 queued tests ≈ 2 minutes; a thousand ≈
    3 hours)."""
    import socket
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(256)  # accepts, never answers
    good_got = threading.Event()

    import http.server

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            good_got.set()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass
    good = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    good.daemon_threads = True
    threading.Thread(target=good.serve_forever, daemon=True).start()
    try:
        srv = spawn_server(**WORKER)
        admin = Api(srv.url).login(bootstrap.email, bootstrap.password)
        a, b = make_org(client=admin), make_org(client=admin)
        wa = hook(admin, a.id, f"http://127.0.0.1:{hole.getsockname()[1]}/x").json()
        wb = hook(admin, b.id, f"http://127.0.0.1:{good.server_port}/x").json()
        for _ in range(12):
            assert admin.post(f"/api/v1/webhooks/{wa['id']}/test").status_code == 202
        time.sleep(0.05)
        assert admin.post(f"/api/v1/webhooks/{wb['id']}/test").status_code == 202
        assert good_got.wait(15 * SLOW), "tenant B's delivery is stuck behind tenant A's"
    finally:
        good.shutdown()
        good.server_close()
        hole.close()


# ---------------------------------------------------------------- lifecycle


def test_deleting_an_organization_does_not_leave_live_webhooks(admin, make_org, sql):
    """Webhooks are not among an organization's holdings (orgs.c
    holdings(): devices, users, keys), so DELETE /organizations/:id of an
    organization with a webhook succeeds and leaves the webhook enabled,
    with its pending deliveries still claimed and sent by the worker — and
    no route can reach it any more (every scope excludes a deleted
    organization), so nobody can delete or disable it."""
    org = make_org()
    r = hook(admin, org.id, "https://hooks.example.com/x", events=["device.enroll"])
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    d = admin.post(f"/api/v1/webhooks/{wid}/test")
    assert d.status_code == 202, d.text
    r = admin.delete(f"/api/v1/organizations/{org.id}")
    if r.status_code == 409:
        return  # refusing while webhooks exist is a fix too
    assert r.status_code == 204, r.text
    enabled, deleted = sql("SELECT enabled, deleted_at IS NOT NULL FROM webhooks WHERE id = %s",
                           wid)[0]
    status = sql("SELECT status FROM webhook_deliveries WHERE id = %s", d.json()["id"])[0][0]
    assert (enabled, deleted, status) != (True, False, "pending"), \
        "a deleted organization's webhook stays live and its delivery stays queued"
    assert not enabled or deleted
    assert status != "pending"


def test_audit_retention_also_removes_the_copies_in_webhook_deliveries(audit, admin, sql):
    """The trigger copies each audit row's details into
    webhook_deliveries.payload, a table nothing ever prunes (breeze_app has
    no DELETE on it; retention.c does not know it): audit retention
    (AUDIT_RETENTION_DAYS, per organization) is bypassed for every event
    an enabled webhook subscribed to — IP addresses, e-mail addresses and
    the rest of the details stay forever."""
    org = audit.new_org()
    r = hook(admin, org, "https://hooks.example.com/x", events=["*"])
    assert r.status_code == 201, r.text
    ids = audit.insert(org, 3, action="device.update",
                       details=json.dumps({"email": "pii-subject@example.test"}))
    assert sql("SELECT count(*) FROM webhook_deliveries WHERE audit_id = ANY(%s)", ids)[0][0] == 3
    p = audit.cli("prune", "--org", org, "--older-than-days", "0")
    assert p.returncode == 0, p.stdout + p.stderr
    left = {r[0] for r in sql("SELECT id FROM audit_log WHERE id = ANY(%s)", ids)}
    pruned = [i for i in ids if i not in left]
    assert pruned, "nothing was pruned"
    kept = sql("SELECT count(*) FROM webhook_deliveries WHERE audit_id = ANY(%s)"
               " AND payload::text LIKE '%%pii-subject%%'", pruned)[0][0]
    assert kept == 0, f"{kept} pruned audit rows live on in webhook_deliveries.payload"
