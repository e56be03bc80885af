"""Group commit of heartbeats (HEARTBEAT_GROUP_COMMIT, src/server/agents/
heartbeat_batch.c): concurrent plain heartbeats are looked up by one
statement and written by one statement in one transaction, each request is
answered only after its batch committed (a batch that fails is a 503 for
every row and writes nothing), each row gets its own outcome, a full queue
answers 503 with Retry-After, the device and organization limits hold
exactly, heartbeats that are not plain (new address, new hostname, probe,
retired or pending token) take the synchronous path with their audit rows,
and SIGTERM answers every queued heartbeat after its commit.

The committer is held inside its write statement by a lock on
device_heartbeats (taken before the statement touches any row), its lookup
by one on agent_tokens, so what queues behind it is known."""
import concurrent.futures
import contextlib
import json
import random
import signal
import threading
import time

import psycopg2
import pytest
import requests

from conftest import (SLOW, Api, ServerProc, assert_error, heartbeat_body, sanitizer_findings,
                      server_env, superuser_breeze_url, uniq)
from test_ratelimit import limits

# The committer waits on the test's lock longer than the default 3 s.
BATCH_ENV = {"HEARTBEAT_GROUP_COMMIT": "true", "DATABASE_LOCK_TIMEOUT_MS": "30000"}


@contextlib.contextmanager
def table_locked(services, table="device_heartbeats"):
    conn = psycopg2.connect(superuser_breeze_url(services.env))
    try:
        with conn.cursor() as cur:
            cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield conn
    finally:
        conn.rollback()
        conn.close()


def lock_waiters(sql):
    return sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'breeze-server'"
               " AND wait_event_type = 'Lock'")[0][0]


def wait_lock_waiter(sql, timeout=10 * SLOW):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock_waiters(sql) > 0:
            return
        time.sleep(0.02)
    pytest.fail("the committer is not waiting for the lock")


def beat(srv, d, token=None, headers=None, **overrides):
    """A heartbeat of device D that changes nothing audited (its own hostname)."""
    body = heartbeat_body(hostname=d["hostname"], **overrides)
    return Api(srv.url).post(f"/api/v1/agents/{d['agentId']}/heartbeat", json=body,
                             token=token or d["authToken"], headers=headers)


def queue_behind_lock(pool, srv, devices, sql, overrides=None):
    """Sends a heartbeat of each device; the first is the committer's batch,
    blocked on the lock, the others queue behind it (OVERRIDES: body members
    by device index). Returns the futures."""
    overrides = overrides or {}
    futs = [pool.submit(beat, srv, devices[0])]
    wait_lock_waiter(sql)
    futs += [pool.submit(beat, srv, d, **overrides.get(i, {}))
             for i, d in enumerate(devices[1:], 1)]
    time.sleep(0.5 * SLOW)  # checked and queued
    return futs


def metrics_rows(sql, ids):
    return dict(sql("SELECT device_id::text, count(*) FROM device_metrics"
                    " WHERE device_id = ANY(%s::uuid[]) GROUP BY 1", ids))


@pytest.fixture(scope="module")
def batch_server(services, bootstrap, workdir):
    """One group-committing server (behind a trusted proxy, for the address
    change) for the tests that need no other setting."""
    srv = ServerProc(server_env(services.env, TRUSTED_PROXY_CIDRS="127.0.0.1/32", **BATCH_ENV),
                     workdir / f"server-batch-{uniq('b')}.log")
    srv.start()
    try:
        srv.wait_up()
        yield srv
    finally:
        srv.stop()
        found = sanitizer_findings(srv.log_text())
        assert not found, f"sanitizer report in {srv.log_path}:\n" + "\n".join(found[:20])


@pytest.fixture
def devices(agents):
    """Four devices, each after one heartbeat (its source address known)."""
    out = [agents.new_device() for _ in range(4)]
    for d in out:
        r = agents.heartbeat(d["agentId"], d["authToken"], hostname=d["hostname"])
        assert r.status_code == 200, r.text
    return out


def test_batched_heartbeat_writes_what_the_synchronous_one_writes(batch_server, devices, sql):
    d = devices[0]
    before = metrics_rows(sql, [d["agentId"]])[d["agentId"]]
    r = beat(batch_server, d, uptimeSeconds=777, agentVersion="9.9.9", osVersion="Debian 13")
    assert r.status_code == 200, r.text
    assert r.json() == {"config": {"heartbeatIntervalSeconds": 5}, "commands": [],
                        "rotateToken": False}
    assert int(r.headers["X-RateLimit-Limit"]) > 0 and "X-RateLimit-Remaining" in r.headers
    rows = sql("SELECT h.uptime_seconds, h.agent_version, d.agent_version, d.os_version,"
               "       h.metrics->>'load1', h.inventory->>'kernel', d.online,"
               "       d.last_seen_at = h.received_at"
               "  FROM device_heartbeats h JOIN devices d ON d.id = h.device_id"
               " WHERE h.device_id = %s", d["agentId"])
    assert rows == [(777, "9.9.9", "9.9.9", "Debian 13", "0.5", "6.1.0-18-amd64", True, True)]
    # The metrics history row, as the synchronous path writes it.
    assert metrics_rows(sql, [d["agentId"]])[d["agentId"]] == before + 1
    assert sql("SELECT cpu_percent, mem_used_bytes, load15 FROM device_metrics"
               " WHERE device_id = %s ORDER BY ts DESC LIMIT 1",
               d["agentId"]) == [(12.5, 2 << 30, pytest.approx(0.3))]
    # No metrics: no history row, the latest metrics are {}.
    r = beat(batch_server, d, metrics=None)
    assert r.status_code == 200, r.text
    assert metrics_rows(sql, [d["agentId"]])[d["agentId"]] == before + 1
    assert sql("SELECT metrics::text FROM device_heartbeats WHERE device_id = %s",
               d["agentId"]) == [("{}",)]


def test_concurrent_heartbeats_commit_in_one_transaction(batch_server, devices, services, sql):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        with table_locked(services):
            futs = queue_behind_lock(pool, batch_server, devices, sql)
            assert not any(f.done() for f in futs)  # none answered before its commit
            assert lock_waiters(sql) == 1  # one statement for every waiting row
        answers = [f.result() for f in futs]
    assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
    # The three queued rows were written by one transaction.
    ids = [d["agentId"] for d in devices[1:]]
    assert sql("SELECT count(DISTINCT xmin::text) FROM device_heartbeats"
               " WHERE device_id = ANY(%s::uuid[])", ids) == [(1,)]


def test_synchronous_path_without_group_commit(spawn_server, devices, services, sql):
    """HEARTBEAT_GROUP_COMMIT=false: each heartbeat is its own statement."""
    srv = spawn_server(HEARTBEAT_GROUP_COMMIT="false", DATABASE_LOCK_TIMEOUT_MS="30000")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        with table_locked(services):
            futs = [pool.submit(beat, srv, d) for d in devices[:3]]
            deadline = time.monotonic() + 10 * SLOW
            while lock_waiters(sql) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert lock_waiters(sql) == 3
        assert [f.result().status_code for f in futs] == [200] * 3


def test_failed_batch_is_503_for_every_row_and_writes_nothing(batch_server, devices, services,
                                                              sql):
    """A 200 only after COMMIT: a batch whose statement fails answers every
    row 503 heartbeat_not_written with Retry-After, and none of its rows is
    written (not the history, not the device)."""
    ids = [d["agentId"] for d in devices]
    sql("CREATE FUNCTION pg_temp_fail_batch() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.agent_version = 'fail-batch' THEN"
        "   RAISE EXCEPTION 'test: batch fails'; END IF; RETURN NEW; END $$")
    sql("CREATE TRIGGER test_fail_batch BEFORE INSERT OR UPDATE ON device_heartbeats"
        " FOR EACH ROW EXECUTE FUNCTION pg_temp_fail_batch()")
    try:
        before_rows = metrics_rows(sql, ids)
        before_seen = dict(sql("SELECT id::text, last_seen_at FROM devices"
                               " WHERE id = ANY(%s::uuid[])", ids))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            with table_locked(services):
                futs = queue_behind_lock(pool, batch_server, devices, sql,
                                         {2: {"agentVersion": "fail-batch"}})
            answers = [f.result() for f in futs]
    finally:
        sql("DROP TRIGGER test_fail_batch ON device_heartbeats")
        sql("DROP FUNCTION pg_temp_fail_batch()")
    assert answers[0].status_code == 200, answers[0].text
    for r in answers[1:]:
        assert_error(r, 503, "heartbeat_not_written")
        assert int(r.headers["Retry-After"]) >= 1
    after_rows = metrics_rows(sql, ids)
    after_seen = dict(sql("SELECT id::text, last_seen_at FROM devices"
                          " WHERE id = ANY(%s::uuid[])", ids))
    for i in ids[1:]:
        assert after_rows[i] == before_rows[i] and after_seen[i] == before_seen[i]
    assert after_rows[ids[0]] == before_rows[ids[0]] + 1


def test_each_request_gets_its_own_rows_outcome(batch_server, devices, services, sql):
    """A device reset between its lookup and its write is refused 401 and not
    written (as the synchronous path answers); one suspended while it
    waited for its lookup gets the synchronous path's 403."""
    reset, ok, suspended = devices[0], devices[1], devices[2]
    before = sql("SELECT received_at FROM device_heartbeats WHERE device_id = %s",
                 reset["agentId"])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        with table_locked(services):
            futs = queue_behind_lock(pool, batch_server, [reset, ok, suspended], sql)
            # Looked up, waiting for its write: reset.
            sql("UPDATE devices SET credential_version = credential_version + 1 WHERE id = %s",
                reset["agentId"])
            sql("UPDATE devices SET status = 'suspended', suspended_at = now(),"
                " suspension_reason = 'token_probe', reenrollment_blocked = true"
                " WHERE id = %s", suspended["agentId"])
        answers = [f.result() for f in futs]
    assert_error(answers[0], 401, "unauthorized")
    assert answers[1].status_code == 200, answers[1].text
    assert_error(answers[2], 403, "device_suspended")
    assert sql("SELECT received_at FROM device_heartbeats WHERE device_id = %s",
               reset["agentId"]) == before


def test_full_queue_is_503_with_retry_after(spawn_server, devices, services, sql):
    srv = spawn_server(HEARTBEAT_QUEUE_MAX="1", **BATCH_ENV)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        with table_locked(services):
            futs = queue_behind_lock(pool, srv, devices[:2], sql)
            r = beat(srv, devices[2])
            # A bad token is refused the same way: nothing is looked up.
            bad = beat(srv, devices[3], token="brz_" + "0" * 64)
        answers = [f.result() for f in futs]
    for x in (r, bad):
        assert_error(x, 503, "heartbeat_queue_full")
        assert x.headers["Retry-After"] == "1"
    assert [a.status_code for a in answers] == [200, 200]
    # Room again once the batch committed.
    assert beat(srv, devices[2]).status_code == 200


def test_token_lookups_are_one_statement_and_exact(batch_server, devices, services, sql):
    """Heartbeats waiting for their lookup are one statement waiting on the
    lock; a token retired while they wait is refused 401 (and audited as a
    retired token's use), the others pass."""
    retired = devices[3]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        with table_locked(services, "agent_tokens") as locker:
            futs = [pool.submit(beat, batch_server, d) for d in devices]
            wait_lock_waiter(sql)
            time.sleep(0.5 * SLOW)
            assert lock_waiters(sql) == 1
            assert not any(f.done() for f in futs)
            with locker.cursor() as cur:
                cur.execute("UPDATE agent_tokens SET state = 'retired', retired_at = now(),"
                            " retired_reason = 'reset', expires_at = NULL"
                            " WHERE device_id = %s", (retired["agentId"],))
            locker.commit()
        answers = [f.result() for f in futs]
    assert [r.status_code for r in answers[:3]] == [200] * 3, [r.text for r in answers]
    assert_error(answers[3], 401, "unauthorized")
    assert sql("SELECT count(*) FROM audit_log WHERE action = 'agent.token.retired_use'"
               " AND resource_id = %s", retired["agentId"]) == [(1,)]


def test_answer_order_bad_token_with_bad_body(batch_server, devices):
    """A bad token is a 401 whatever the body; a good token with a bad body a 400."""
    d = devices[0]
    c = Api(batch_server.url)
    url = f"/api/v1/agents/{d['agentId']}/heartbeat"
    assert_error(c.post(url, json={"nope": 1}, token="brz_" + "1" * 64), 401, "unauthorized")
    assert_error(c.post(url, json={"metrics": {"cpuPercent": "x"}}, token="brz_" + "1" * 64),
                 401, "unauthorized")
    assert_error(c.post(url, json={"nope": 1}, token=d["authToken"]), 400, "validation_error")
    assert_error(c.post(url, json={"metrics": {"cpuPercent": "x"}}, token=d["authToken"]), 400)


def audit(sql, action, device_id):
    return sql("SELECT details::text FROM audit_log WHERE action = %s AND resource_id = %s"
               " ORDER BY seq", action, device_id)


def test_slow_path_changes_are_audited_with_group_commit(batch_server, agents, sql):
    """New address (G7), new hostname and back from offline are not plain:
    written synchronously with their audit rows in the same transaction."""
    d = agents.new_device()
    xff = lambda ip: {"X-Forwarded-For": ip}  # noqa: E731
    assert beat(batch_server, d, headers=xff("198.51.100.7")).status_code == 200
    n = len(audit(sql, "agent.source.ip.changed", d["agentId"]))
    assert beat(batch_server, d, headers=xff("198.51.100.7")).status_code == 200
    assert len(audit(sql, "agent.source.ip.changed", d["agentId"])) == n
    assert beat(batch_server, d, headers=xff("203.0.113.9")).status_code == 200
    rows = audit(sql, "agent.source.ip.changed", d["agentId"])
    assert len(rows) == n + 1
    assert json.loads(rows[-1][0]) == {"previousIp": "198.51.100.7", "newIp": "203.0.113.9"}

    renamed = dict(d, hostname=d["hostname"] + "-renamed")
    assert beat(batch_server, renamed, headers=xff("203.0.113.9")).status_code == 200
    assert sql("SELECT hostname FROM devices WHERE id = %s", d["agentId"]) == [
        (renamed["hostname"],)]
    assert len(audit(sql, "device.renamed", d["agentId"])) == 1

    sql("UPDATE devices SET online = false WHERE id = %s", d["agentId"])
    assert beat(batch_server, renamed, headers=xff("203.0.113.9")).status_code == 200
    assert len(audit(sql, "device.online", d["agentId"])) == 1
    assert sql("SELECT online FROM devices WHERE id = %s", d["agentId"]) == [(True,)]


def test_probe_is_suspended_with_group_commit(batch_server, agents, tenants, sql):
    """G6: another tenant's device path takes the synchronous path: the
    prober's token and device are suspended, the answer is the opaque 401."""
    x = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    y = agents.new_device(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    bad = beat(batch_server, y, token="brz_" + "1" * 64)
    r = beat(batch_server, y, token=x["authToken"])
    assert_error(r, 401, "unauthorized")
    assert r.content == bad.content
    assert sql("SELECT state FROM agent_tokens WHERE device_id = %s", x["agentId"]) == [
        ("suspended",)]
    assert sql("SELECT status FROM devices WHERE id = %s", x["agentId"]) == [("suspended",)]
    assert len(audit(sql, "agent.probe.detected", y["agentId"])) == 1
    assert_error(beat(batch_server, x), 401)
    assert beat(batch_server, y).status_code == 200


def test_pending_token_confirms_with_group_commit(batch_server, agents, sql):
    d = agents.new_device()
    c = Api(batch_server.url)
    r = c.post(f"/api/v1/agents/{d['agentId']}/rotate-token", json={}, token=d["authToken"])
    assert r.status_code == 200, r.text
    new = r.json()["authToken"]
    assert beat(batch_server, d, token=new).status_code == 200
    assert len(audit(sql, "agent.token.rotated", d["agentId"])) == 1
    assert sql("SELECT count(*) FROM agent_tokens WHERE device_id = %s AND state = 'current'",
               d["agentId"]) == [(1,)]


def test_device_and_org_limits_hold_exactly(spawn_server, agents, make_org, admin):
    """R3, R4 with group commit: of concurrent heartbeats exactly the limit
    is admitted (batched or, for a device twice in one batch, synchronous),
    the others are 429 with Retry-After and the X-RateLimit-* headers."""
    srv = spawn_server(**limits(RATE_LIMIT_AGENT_DEVICE="3/60", AGENT_ORG_RATE_LIMIT_PER_MIN="5"),
                       **BATCH_ENV)
    org = make_org()
    a, b, c, e = (agents.new_device(admin, org.id, org.site_id) for _ in range(4))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: beat(srv, a), range(5)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 200, 200, 429, 429], [r.text for r in answers]
    for r in answers:
        assert "X-RateLimit-Limit" in r.headers and "X-RateLimit-Reset" in r.headers
        if r.status_code == 429:
            assert_error(r, 429, "rate_limited")
            assert int(r.headers["Retry-After"]) >= 1
    # The organization: 3 of 5 used by A (its refusals count nothing).
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda d: beat(srv, d), (b, c, e)))
    assert sorted(r.status_code for r in answers) == [200, 200, 429], [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 429)
    assert "agent_org" in refused.json()["error"]["message"]
    assert refused.headers["Retry-After"] == "60"


def test_sigterm_answers_every_queued_heartbeat_after_its_commit(spawn_server, devices,
                                                                 services, sql):
    srv = spawn_server(HTTP_DRAIN_SECONDS="20", **BATCH_ENV)
    ids = [d["agentId"] for d in devices]
    before = metrics_rows(sql, ids)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        with table_locked(services):
            futs = queue_behind_lock(pool, srv, devices, sql)
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3 * SLOW)
            assert srv.proc.poll() is None  # still draining: they wait
            assert not any(f.done() for f in futs)
        answers = [f.result() for f in futs]
    assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
    assert all(r.headers.get("Connection", "").lower() == "close" for r in answers)
    after = metrics_rows(sql, ids)
    assert all(after[i] == before[i] + 1 for i in ids)  # every 200 was committed
    assert srv.proc.wait(timeout=20 * SLOW) == 0, srv.log_text()[-2000:]


def test_sigterm_under_load_loses_no_acknowledged_heartbeat(spawn_server, agents, sql):
    """Heartbeats from many devices on 16 connections, SIGTERM in the middle:
    every 200 received has its committed row (device_metrics), and every
    other answer is a 503 or no answer at all."""
    srv = spawn_server(HTTP_DRAIN_SECONDS="20", **BATCH_ENV)
    devs = [agents.new_device() for _ in range(12)]
    for d in devs:  # addresses known: plain from now on
        assert beat(srv, d).status_code == 200
    ids = [d["agentId"] for d in devs]
    before = metrics_rows(sql, ids)
    acked = {i: 0 for i in ids}
    other, lock, stop = [], threading.Lock(), threading.Event()

    def load():
        s = requests.Session()
        while not stop.is_set():
            d = random.choice(devs)
            try:
                r = s.post(f"{srv.url}/api/v1/agents/{d['agentId']}/heartbeat",
                           json=heartbeat_body(hostname=d["hostname"]),
                           headers={"Authorization": f"Bearer {d['authToken']}"}, timeout=30)
            except requests.RequestException:
                if srv.proc.poll() is not None:
                    return
                continue
            with lock:
                if r.status_code == 200:
                    acked[d["agentId"]] += 1
                else:
                    other.append(r.status_code)

    threads = [threading.Thread(target=load) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(1.0 * SLOW)
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=30 * SLOW) == 0, srv.log_text()[-2000:]
    stop.set()
    for t in threads:
        t.join(timeout=30)
    after = metrics_rows(sql, ids)
    assert sum(acked.values()) > 0
    for i in ids:
        assert after.get(i, 0) - before.get(i, 0) >= acked[i], (i, acked, after, before)
    assert set(other) <= {503}, other
