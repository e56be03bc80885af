"""Attacks on issue 10 (agent token rotation, probe suspension, review, IP
history, agent files). Every test here demonstrates a finding and fails on
the code it was written against; see the docstring of each test."""
import http.server
import threading
import time
import uuid

import requests

from conftest import SLOW, assert_error, heartbeat_body, sha256_hex
from test_agent_e2e import agent_dir, agent_id_of, enroll, token_of  # noqa: F401
from test_agent_rotation_e2e import secrets_of, start_agent, stop_agent, wait_for
from test_ratelimit import limits
from test_readyz import redis  # noqa: F401

AGENTS = "/api/v1/agents"


def hb(api, agent_id, token):
    return api.post(f"{AGENTS}/{agent_id}/heartbeat", json=heartbeat_body(), token=token)


def rotate(api, agent_id, token):
    r = api.post(f"{AGENTS}/{agent_id}/rotate-token", json={}, token=token)
    assert r.status_code == 200, r.text
    return r.json()["authToken"]


def confirm(api, agent_id, token):
    return api.post(f"{AGENTS}/{agent_id}/rotate-token/confirm", json={}, token=token)


def token_state(sql, token):
    rows = sql("SELECT state FROM agent_tokens WHERE token_hash = %s", sha256_hex(token))
    return rows[0][0] if rows else None


# --------------------------------------------------------------------- 1. grace


def test_previous_token_is_never_accepted_again_after_its_grace(agents, api, clock, sql):
    """docs/agent-tokens.md: the previous token is accepted for exactly 300 s
    "and then never again". Its row stays state 'previous' with an
    expires_at in the past, so the refusal rests only on the clock: when the
    server's clock steps back (NTP correction, VM restore, a second instance
    whose clock lags), the token that was already refused — and audited as
    agent.token.retired_use, a theft signal — is accepted again."""
    d = agents.new_device()
    agent_id, old = d["agentId"], d["authToken"]
    new = rotate(api, agent_id, old)
    assert confirm(api, agent_id, new).status_code == 200
    clock.advance(301)
    assert_error(hb(api, agent_id, old), 401)  # grace over: retired for good
    assert sql("SELECT count(*) FROM audit_log WHERE resource_id = %s"
               " AND action = 'agent.token.retired_use'", agent_id) == [(1,)]
    clock.set_offset(0)  # the server's clock steps back five minutes
    r = hb(api, agent_id, old)
    assert r.status_code == 401, (
        f"a previous token refused after its grace works again: {r.status_code} "
        f"(state {token_state(sql, old)})")


def test_expired_pending_token_stays_dead_when_the_clock_steps_back(agents, api, clock, sql):
    """Same for a pending token whose hour is over: refused (409
    rotation_expired) at +3601 s, it is still state 'pending' in the
    database, and a clock step back brings it to life — a heartbeat with it
    even confirms it, retiring the current token."""
    d = agents.new_device()
    agent_id, old = d["agentId"], d["authToken"]
    pending = rotate(api, agent_id, old)
    clock.advance(3601)
    assert_error(confirm(api, agent_id, pending), 409, "rotation_expired")
    clock.set_offset(0)
    r = hb(api, agent_id, pending)
    assert r.status_code == 401, (
        f"an expired pending token works again: {r.status_code}; old token now "
        f"{token_state(sql, old)}, pending now {token_state(sql, pending)}")


# --------------------------------------------------------------------- 2. rate limits


def test_mismatched_path_requests_are_rate_limited_before_db_writes(spawn_server, redis, agents):
    """R3 (120 requests per device per minute) is checked only after the token
    was accepted for its own path. A valid token aimed at an unknown (or a
    same-organization) device id is answered 403 for ever, never 429, and
    every such request runs a transaction with a guarded UPDATE of
    agent_tokens (mismatch_audited_at): a thief or a looping agent can make
    unlimited authenticated, DB-writing requests. With a per-device limit of
    3 per minute, the 10th request is still a 403."""
    srv = spawn_server(**limits(RATE_LIMIT_AGENT_DEVICE="3/60"), REDIS_URL=redis.url)
    key = agents.create_key()["key"]
    body = {"enrollmentKey": key, "enrollmentSecret": agents.secret,
            "hostname": f"rl-{uuid.uuid4().hex[:8]}", "osType": "linux"}
    r = requests.post(f"{srv.url}{AGENTS}/enroll", json=body, timeout=30)
    assert r.status_code == 201, r.text
    token = r.json()["authToken"]
    codes = []
    for _ in range(10):
        other = str(uuid.uuid4())
        codes.append(requests.post(f"{srv.url}{AGENTS}/{other}/heartbeat", json=heartbeat_body(),
                                   headers={"Authorization": f"Bearer {token}"},
                                   timeout=30).status_code)
    assert 429 in codes, f"10 requests of one token, limit 3/min, never refused: {codes}"


# --------------------------------------------------------------------- 3. agent lockout


class _Proxy(http.server.ThreadingHTTPServer):
    daemon_threads = True


def confirm_dropping_proxy(upstream):
    """An HTTP proxy to UPSTREAM that forwards everything except the confirm
    route, which it answers 503 (the confirm's answer never reaches the
    agent: network loss, a load balancer timing out)."""

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(n) if n else b""
            if self.path.endswith("/rotate-token/confirm"):
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            hdrs = {k: v for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")}
            r = requests.post(upstream + self.path, data=data, headers=hdrs, timeout=30)
            self.send_response(r.status_code)
            for k, v in r.headers.items():
                if k.lower() in ("content-type", "retry-after"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

    p = _Proxy(("127.0.0.1", 0), H)
    threading.Thread(target=p.serve_forever, daemon=True).start()
    return p, f"http://127.0.0.1:{p.server_address[1]}"


def test_agent_is_not_locked_out_when_its_confirm_answer_is_lost(server, agents, api, clock, sql,
                                                                  agent_dir):
    """Issue 10: "rotation never locks an agent out". The confirm reaches the
    server and commits, but its answer is lost; the agent keeps both tokens
    (authToken = old, pendingToken = new, the server's current token). If no
    heartbeat is accepted before the old token's 300 s grace ends (the
    network stays down a few minutes, or the heartbeat interval is longer),
    the next heartbeat is made with the old token, gets 401, and the agent
    exits with "run `breeze-agent enroll` again" (exit 6, which the systemd
    unit's RestartPreventExitStatus does not restart) — although
    secrets.yaml holds the token the server accepts. It never tries its
    pending token after a 401."""
    proxy, url = confirm_dropping_proxy(server.url)
    try:
        r = enroll(type("S", (), {"url": url})(), agents, agent_dir)[0]
        assert r.returncode == 0, r.stdout + r.stderr
        agent_id = agent_id_of(r.stdout)
        old = token_of(agent_dir)
        new = rotate(api, agent_id, old)
        # The confirm that committed on the server but whose answer was lost.
        assert confirm(api, agent_id, new).status_code == 200
        path = agent_dir / "secrets.yaml"
        path.write_text(path.read_text().rstrip("\n") + f"\npendingToken: {new}\n")
        clock.advance(301)  # the outage outlasted the grace
        proc, log = start_agent(agent_dir)
        try:
            wait_for(lambda: sql("SELECT last_seen_at FROM devices WHERE id = %s",
                                 agent_id)[0][0], "a heartbeat with the token the server holds",
                     proc, log, timeout=20)
        finally:
            stop_agent(proc)
        assert "pendingToken" not in secrets_of(agent_dir) or token_of(agent_dir) == new
    finally:
        proxy.shutdown()


# --------------------------------------------------------------------- 4. probe vs rotation


def _wait_backend(db, where, what, timeout=15):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        with db.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE " + where)
            if cur.fetchone()[0] > 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"no backend {what}")


def test_probe_racing_a_rotation_suspends_every_token(agents, tenants, api, sql, db, services):
    """docs/probes-and-addresses.md: a suspension turns "the token, and every
    other live token of its device" into 'suspended'. suspend_rows() updates
    the token rows first and takes the device row lock only afterwards,
    while rotate-token takes the device lock first and then inserts the
    pending row. A probe that runs while a rotation of the same device is
    between its INSERT and its COMMIT does not see the new pending row: the
    rotation commits and hands out a token, the suspension then commits,
    and the device is 'suspended' with a live 'pending' token that was never
    suspended (it answers 403 device_suspended on its own path instead of
    the opaque 401, and a later review records it as 'reviewed', not as
    suspended by the probe). The interleaving is forced by holding the
    audit chain's advisory lock of the prober's organization, which
    rotate-token needs after its INSERT."""
    import psycopg2

    x = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    y = agents.new_device(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    from conftest import superuser_breeze_url
    hold = psycopg2.connect(superuser_breeze_url(services.env))
    out = {}
    try:
        with hold.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('breeze.audit_seal'), hashtext(%s))",
                        (tenants.a.id,))
        t1 = threading.Thread(target=lambda: out.__setitem__(
            "rotate", api.post(f"{AGENTS}/{x['agentId']}/rotate-token", json={},
                               token=x["authToken"])))
        t1.start()
        _wait_backend(db, "wait_event_type = 'Lock' AND wait_event = 'advisory'",
                      "rotate-token waiting on the audit chain")
        t2 = threading.Thread(target=lambda: out.__setitem__(
            "probe", hb(api, y["agentId"], x["authToken"])))
        t2.start()
        _wait_backend(db, "wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')",
                      "the probe waiting on the device row")
    finally:
        hold.rollback()
        hold.close()
    t1.join(30 * SLOW)
    t2.join(30 * SLOW)
    assert_error(out["probe"], 401)
    states = sorted(sql("SELECT state FROM agent_tokens WHERE device_id = %s", x["agentId"]))
    assert sql("SELECT status FROM devices WHERE id = %s", x["agentId"]) == [("suspended",)]
    if out["rotate"].status_code == 200:
        pending = out["rotate"].json()["authToken"]
        r = hb(api, x["agentId"], pending)
        assert r.status_code == 401, f"pending token after suspension: {r.status_code} {r.text}"
    assert all(s in ("suspended", "retired") for (s,) in states), (
        f"suspended device keeps live tokens: {states}; rotate answered "
        f"{out['rotate'].status_code}")


def test_heartbeat_in_flight_during_a_reset_is_not_recorded_after_it(agents, admin, api, sql, db,
                                                                     services):
    """docs/agent-tokens.md: reset "retires every pending, current and
    previous token of the device at once". The heartbeat authenticates its
    token with an unlocked read, and its write (heartbeat_sql) is guarded
    only by devices.status = 'active' — which a reset leaves as it is. A
    heartbeat that read the token before the reset committed waits for the
    reset's device lock and is then recorded (200, last_seen_at, source
    address, inventory) after the reset: a stolen token's request lands
    after the emergency reset that was meant to cut it off. Forced by
    holding the organization's audit-chain lock, which the reset needs
    after retiring the tokens."""
    import psycopg2
    from conftest import superuser_breeze_url

    d = agents.new_device()
    agent_id, token = d["agentId"], d["authToken"]
    org = sql("SELECT org_id::text FROM devices WHERE id = %s", agent_id)[0][0]
    hold = psycopg2.connect(superuser_breeze_url(services.env))
    out = {}
    try:
        with hold.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('breeze.audit_seal'), hashtext(%s))",
                        (org,))
        t1 = threading.Thread(target=lambda: out.__setitem__(
            "reset", admin.post(f"/api/v1/devices/{agent_id}/reset-agent-token")))
        t1.start()
        _wait_backend(db, "wait_event_type = 'Lock' AND wait_event = 'advisory'",
                      "the reset waiting on the audit chain")
        t2 = threading.Thread(target=lambda: out.__setitem__("hb", hb(api, agent_id, token)))
        t2.start()
        _wait_backend(db, "wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')",
                      "the heartbeat waiting on the device row")
    finally:
        hold.rollback()
        hold.close()
    t1.join(30 * SLOW)
    t2.join(30 * SLOW)
    assert out["reset"].status_code == 200, out["reset"].text
    assert token_state(sql, token) == "retired"
    assert out["hb"].status_code == 401, (
        f"heartbeat with the reset token accepted after the reset committed: "
        f"{out['hb'].status_code}; last_seen_at = "
        f"{sql('SELECT last_seen_at FROM devices WHERE id = %s', agent_id)[0][0]}")


# --------------------------------------------------------------------- 5. audit flooding


def test_retired_token_reuse_cannot_flood_through_two_instances_with_skewed_clocks(
        agents, api, admin, sql, spawn_server, workdir):
    """docs/agent-tokens.md: agent.token.retired_use is written "at most once
    per token per minute on all server instances together, so a replaying
    thief cannot flood the audit log". The guard (tokens.c,
    agents_token_retired_use) also passes when the stored stamp lies AHEAD
    of the instance's clock. With two instances whose clocks differ by more
    than a minute (here 120 s), a thief alternating between them passes the
    guard every time: the instance ahead passes because the stamp is a
    minute behind it, the one behind because the stamp is ahead of it. Each
    request writes an audit row, and 401 answers are not rate limited."""
    skew = workdir / f"clock-skew-{uuid.uuid4().hex[:8]}"
    skew.write_text("120\n")
    ahead = spawn_server(BREEZE_TEST_CLOCK_FILE=str(skew))
    d = agents.new_device()
    agent_id, token = d["agentId"], d["authToken"]
    assert admin.post(f"/api/v1/devices/{agent_id}/reset-agent-token").status_code == 200
    for i in range(10):
        url = (ahead.url if i % 2 else api.base) + f"{AGENTS}/{agent_id}/heartbeat"
        r = requests.post(url, json=heartbeat_body(), headers={"Authorization": f"Bearer {token}"},
                          timeout=30)
        assert r.status_code == 401
    (n,), = sql("SELECT count(*) FROM audit_log WHERE resource_id = %s"
                " AND action = 'agent.token.retired_use'", agent_id)
    assert n <= 2, f"10 uses of one retired token within seconds wrote {n} retired_use rows"


# --------------------------------------------------------------------- 6. re-enrolment block


def test_reenrolment_block_matches_the_same_dns_name(agents, tenants, api):
    """docs/probes-and-addresses.md: while a device is suspended, enrolment of
    "the same hostname (case-insensitive, as DNS names are)" is refused with
    409 device_under_review. The comparison is lower(a) = lower(b) on the
    raw strings, and BODY_TEXT accepts surrounding spaces, so the same DNS
    name written as an absolute name ("host.") or with a space around it
    enrols as a new device (201) while the suspended one awaits review."""
    x = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    y = agents.new_device(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    assert_error(hb(api, y["agentId"], x["authToken"]), 401)  # x is now suspended
    got = {}
    for h in (x["hostname"] + ".", " " + x["hostname"], x["hostname"] + " "):
        key = agents.create_key(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
        got[h] = agents.enroll(key["key"], hostname=h).status_code
    assert set(got.values()) == {409}, f"the suspended device's hostname re-enrolled: {got}"


def test_probe_racing_a_confirm_neither_deadlocks_nor_skips_the_suspension(
        agents, tenants, api, sql, db, services, clock):
    """tokens.c says every change of a device's token states takes the device
    row lock first, "in one lock order: never two current tokens, never a
    deadlock". The probe suspension (probe.c, suspend_rows) is the
    exception: it locks the live token rows first and the device row
    second, while a confirm locks the device row first and the token rows
    second. A confirm that holds the device lock while the probe holds the
    current token's row is a deadlock; PostgreSQL aborts one side. When the
    suspension is the victim, the probe is still answered 401 but nothing is
    suspended, and the confirm then demotes the probing token to 'previous':
    it keeps working for its 5-minute grace and the device stays active.
    Forced by holding a share lock on the expired previous token, which the
    confirm retires first."""
    import psycopg2
    from conftest import superuser_breeze_url

    x = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    y = agents.new_device(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    xi, t0 = x["agentId"], x["authToken"]
    t1 = rotate(api, xi, t0)
    assert confirm(api, xi, t1).status_code == 200
    clock.advance(301)  # t0: previous, grace over (not live: the probe leaves it alone)
    t2 = rotate(api, xi, t1)
    hold = psycopg2.connect(superuser_breeze_url(services.env))
    out = {}
    try:
        with hold.cursor() as cur:
            cur.execute("SELECT 1 FROM agent_tokens WHERE token_hash = %s FOR SHARE",
                        (sha256_hex(t0),))
        c = threading.Thread(target=lambda: out.__setitem__("confirm", confirm(api, xi, t2)))
        c.start()
        _wait_backend(db, "wait_event_type = 'Lock' AND query LIKE '%retired_reason = ''rotated''%'",
                      "the confirm waiting on the previous token")
        p = threading.Thread(target=lambda: out.__setitem__("probe", hb(api, y["agentId"], t1)))
        p.start()
        # The probe waits on the device row: in its UPDATE (the order the
        # finding was about) or, in the device-first order, its row lock.
        _wait_backend(db, "wait_event_type = 'Lock' AND (query LIKE 'UPDATE devices SET status = ''suspended''%'"
                          " OR query LIKE 'SELECT 1 FROM devices WHERE id = $1::uuid FOR UPDATE%')",
                      "the probe waiting on the device row")
    finally:
        hold.rollback()
        hold.close()
    c.join(30 * SLOW)
    p.join(30 * SLOW)
    assert_error(out["probe"], 401)
    states = {s: n for s, n in sql("SELECT state, count(*) FROM agent_tokens WHERE device_id = %s"
                                   " GROUP BY state", xi)}
    status = sql("SELECT status FROM devices WHERE id = %s", xi)[0][0]
    after = hb(api, xi, t1).status_code
    assert out["confirm"].status_code < 500, (
        f"confirm answered {out['confirm'].status_code} {out['confirm'].text}")
    assert status == "suspended" and after == 401, (
        f"cross-tenant probe did not suspend: device {status}, tokens {states}, "
        f"probing token on its own path now answers {after}; confirm answered "
        f"{out['confirm'].status_code}")
