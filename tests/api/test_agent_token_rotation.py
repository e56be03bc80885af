"""Agent token rotation (checklist G2, docs/agent-tokens.md): the two-phase
rotate/confirm with a 5-minute grace for the old token, the heartbeat that
confirms a pending token and asks for rotation ("rotateToken"), every 409,
retired-token reuse as a theft signal, the administrator's rotation request
and emergency reset, and tenancy of the device routes."""
import calendar
import json
import threading
import time

import pytest

from conftest import Api, assert_error, heartbeat_body, sha256_hex

DEVICES = "/api/v1/devices"
GRACE_S = 300
PENDING_TTL_S = 3600
MAX_AGE_S = 30 * 86400


def agent_path(agent_id, tail):
    return f"/api/v1/agents/{agent_id}/{tail}"


def rotate(api, d, token, **kw):
    return api.post(agent_path(d["agentId"], "rotate-token"), token=token, **kw)


def confirm(api, d, token, **kw):
    return api.post(agent_path(d["agentId"], "rotate-token/confirm"), token=token, **kw)


def rotate_ok(api, d, token):
    r = rotate(api, d, token, json={})
    assert r.status_code == 200, r.text
    return r.json()["authToken"]


def confirm_ok(api, d, token):
    r = confirm(api, d, token, json={})
    assert r.status_code == 200, r.text
    return r.json()


def states(sql, device_id):
    """{state: count} of the device's tokens."""
    rows = sql("SELECT state, count(*) FROM agent_tokens WHERE device_id = %s GROUP BY state",
               device_id)
    return dict(rows)


def token_row(sql, token):
    rows = sql("SELECT state, retired_reason, extract(epoch FROM expires_at)::bigint"
               "  FROM agent_tokens WHERE token_hash = %s", sha256_hex(token))
    assert len(rows) == 1
    return rows[0]


def audit(sql, device_id, action):
    return sql("SELECT details::text, actor_type, actor_id::text, ip_address, result"
               "  FROM audit_log WHERE resource_id = %s AND action = %s ORDER BY id",
               device_id, action)


def rotate_flag(agents, d, token):
    r = agents.heartbeat(d["agentId"], token)
    assert r.status_code == 200, r.text
    return r.json()["rotateToken"]


# ------------------------------------------------------------------ the two phases


def test_rotate_and_confirm(agents, api, sql):
    d = agents.new_device()
    old = d["authToken"]
    t0 = time.time()
    # No body at all is accepted, as is {}.
    r = rotate(api, d, old)
    assert r.status_code == 200, r.text
    body = r.json()
    new = body["authToken"]
    assert new.startswith("brz_") and new != old
    exp = calendar.timegm(time.strptime(body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(exp - (t0 + PENDING_TTL_S)) < 5
    assert token_row(sql, new)[0] == "pending"
    assert token_row(sql, old)[0] == "current"
    # Only the hash is stored.
    assert sql("SELECT count(*) FROM agent_tokens WHERE token_hash = %s", new) == [(0,)]
    (details, actor_type, actor_id, ip, result), = audit(sql, d["agentId"],
                                                         "agent.token.rotation_started")
    assert (actor_type, actor_id, ip) == ("agent", d["agentId"], "127.0.0.1")
    assert new not in details and sha256_hex(new) not in details
    # Both tokens work until the confirm.
    assert agents.heartbeat(d["agentId"], old).status_code == 200
    c = confirm(api, d, new)
    assert c.status_code == 200, c.text
    cb = c.json()
    assert cb["confirmed"] is True
    state, _, prev_exp = token_row(sql, old)
    assert state == "previous"
    assert cb["previousTokenExpiresAt"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                         time.gmtime(prev_exp))
    assert token_row(sql, new)[:2] == ("current", None)
    assert states(sql, d["agentId"]) == {"current": 1, "previous": 1}
    (details, actor_type, _, _, _), = audit(sql, d["agentId"], "agent.token.rotated")
    assert actor_type == "agent" and json.loads(details)["via"] == "confirm"
    assert agents.heartbeat(d["agentId"], new).status_code == 200
    assert agents.heartbeat(d["agentId"], old).status_code == 200  # grace


def test_previous_expires_exactly_300_s_after_confirm(agents, api, sql):
    d = agents.new_device()
    new = rotate_ok(api, d, d["authToken"])
    (before,), = sql("SELECT extract(epoch FROM now())::bigint")
    confirm_ok(api, d, new)
    (confirmed_at,), = sql("SELECT extract(epoch FROM activated_at)::bigint FROM agent_tokens"
                           " WHERE token_hash = %s", sha256_hex(new))
    assert token_row(sql, d["authToken"])[2] == confirmed_at + GRACE_S
    assert confirmed_at >= before - 1


def test_rotation_body_must_be_empty(agents, api):
    d = agents.new_device()
    assert_error(rotate(api, d, d["authToken"], json={"force": True}), 400, "validation_error")
    new = rotate_ok(api, d, d["authToken"])
    assert_error(confirm(api, d, new, json={"x": 1}), 400, "validation_error")
    assert confirm(api, d, new).status_code == 200  # no body at all


def test_rotation_with_heartbeats_in_flight(agents, api, sql):
    """Heartbeats in parallel threads with whatever token the agent holds
    (the old one until the confirm, then the new one; requests already sent
    with the old one land in its grace): none fails."""
    d = agents.new_device()
    holder = {"token": d["authToken"]}
    failures, counts = [], [0]
    stop = threading.Event()

    def beat():
        client = api.clone(token=None)
        while not stop.is_set():
            tok = holder["token"]
            r = client.post(agent_path(d["agentId"], "heartbeat"), json=heartbeat_body(),
                            token=tok)
            counts[0] += 1
            if r.status_code != 200:
                failures.append((r.status_code, r.text[:200]))

    threads = [threading.Thread(target=beat) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            time.sleep(0.2)
            new = rotate_ok(api, d, holder["token"])
            time.sleep(0.1)
            confirm_ok(api, d, new)
            holder["token"] = new
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert counts[0] > 10
    assert states(sql, d["agentId"]) == {"current": 1, "previous": 1, "retired": 2}
    assert rotate_flag(agents, d, holder["token"]) is False


# ------------------------------------------------------------------ grace boundary


def _at(clock, instant, fn):
    """Runs FN with every server's bz_now() equal to INSTANT (epoch seconds),
    retrying when the real clock ticked into the next second meanwhile."""
    for _ in range(10):
        t0 = time.time()
        clock.set_offset(instant - int(t0))
        r = fn()
        if int(time.time()) == int(t0):
            return r
    pytest.fail("could not hit a whole second")


def test_grace_boundary(agents, api, sql, clock):
    d = agents.new_device()
    old = d["authToken"]
    new = rotate_ok(api, d, old)
    confirm_ok(api, d, new)
    end = token_row(sql, old)[2]
    # 4:59 after the confirm: still accepted, and not asked to rotate.
    r = _at(clock, end - 1, lambda: agents.heartbeat(d["agentId"], old))
    assert r.status_code == 200, r.text
    assert r.json()["rotateToken"] is False
    # 5:00 and later: never again; it is a theft signal.
    clock.set_offset(end - int(time.time()))
    assert_error(agents.heartbeat(d["agentId"], old), 401, "unauthorized")
    clock.set_offset(end + 1 - int(time.time()))
    assert_error(agents.heartbeat(d["agentId"], old), 401, "unauthorized")
    assert agents.heartbeat(d["agentId"], new).status_code == 200


# ------------------------------------------------------------------ pending expiry


def test_pending_expiry(agents, api, sql, clock):
    d = agents.new_device()
    cur = d["authToken"]
    new = rotate_ok(api, d, cur)
    clock.advance(PENDING_TTL_S + 1)
    assert_error(confirm(api, d, new), 409, "rotation_expired")
    # An agent offline longer than the pending lifetime keeps working.
    assert agents.heartbeat(d["agentId"], cur).status_code == 200
    assert_error(agents.heartbeat(d["agentId"], new), 401, "unauthorized")
    assert_error(rotate(api, d, new), 401, "unauthorized")
    # No theft signal for a token that was never in service.
    assert audit(sql, d["agentId"], "agent.token.retired_use") == []
    # The next rotation retires the dead one and starts afresh.
    newer = rotate_ok(api, d, cur)
    assert token_row(sql, new)[:2] == ("retired", "expired")
    confirm_ok(api, d, newer)
    assert token_row(sql, cur)[0] == "previous"


# ------------------------------------------------------------------ every 409


def test_rotate_with_the_previous_token_is_superseded(agents, api):
    d = agents.new_device()
    new = rotate_ok(api, d, d["authToken"])
    confirm_ok(api, d, new)
    assert_error(rotate(api, d, d["authToken"]), 409, "token_superseded")
    assert_error(confirm(api, d, d["authToken"]), 409, "token_superseded")


def test_rotate_with_the_pending_token_is_superseded(agents, api, sql):
    d = agents.new_device()
    new = rotate_ok(api, d, d["authToken"])
    assert_error(rotate(api, d, new), 409, "token_superseded")
    assert states(sql, d["agentId"]) == {"current": 1, "pending": 1}


def test_second_rotation_while_one_is_pending(agents, api):
    d = agents.new_device()
    rotate_ok(api, d, d["authToken"])
    assert_error(rotate(api, d, d["authToken"]), 409, "rotation_in_progress")


def test_racing_rotations_exactly_one_wins(agents, api, sql):
    d = agents.new_device()
    n = 8
    barrier = threading.Barrier(n)
    results = [None] * n

    def go(i):
        client = api.clone(token=None)
        barrier.wait()
        results[i] = rotate(client, d, d["authToken"], json={})

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * (n - 1), [r.text for r in results]
    for r in results:
        if r.status_code == 409:
            assert_error(r, 409, "rotation_in_progress")
    assert states(sql, d["agentId"]) == {"current": 1, "pending": 1}
    assert len(audit(sql, d["agentId"], "agent.token.rotation_started")) == 1


def test_confirm_twice(agents, api, sql):
    d = agents.new_device()
    new = rotate_ok(api, d, d["authToken"])
    confirm_ok(api, d, new)
    assert_error(confirm(api, d, new), 409, "already_confirmed")
    assert len(audit(sql, d["agentId"], "agent.token.rotated")) == 1


def test_confirm_with_a_random_or_foreign_token(agents, api):
    d = agents.new_device()
    other = agents.new_device()
    assert_error(confirm(api, d, "brz_" + "0" * 64), 401, "unauthorized")
    assert_error(confirm(api, d, other["authToken"]), 403)


# ------------------------------------------------------------------ heartbeat confirms


def test_heartbeat_with_pending_token_confirms(agents, api, sql):
    d = agents.new_device()
    new = rotate_ok(api, d, d["authToken"])
    r = agents.heartbeat(d["agentId"], new)
    assert r.status_code == 200, r.text
    assert r.json()["rotateToken"] is False
    assert token_row(sql, new)[0] == "current"
    assert token_row(sql, d["authToken"])[0] == "previous"
    (details, actor_type, _, ip, _), = audit(sql, d["agentId"], "agent.token.rotated")
    assert json.loads(details)["via"] == "heartbeat" and ip == "127.0.0.1"
    # The agent's own confirm after it: already done.
    assert_error(confirm(api, d, new), 409, "already_confirmed")
    (seen,), = sql("SELECT count(*) FROM device_heartbeats WHERE device_id = %s", d["agentId"])
    assert seen == 1


def test_confirm_racing_heartbeats(agents, api, sql):
    """A confirm and heartbeats with the same pending token at once: every
    heartbeat succeeds, the confirm is 200 or already_confirmed, one rotation
    is audited, never two current tokens."""
    for _ in range(3):
        d = agents.new_device()
        new = rotate_ok(api, d, d["authToken"])
        barrier = threading.Barrier(4)
        out = {}

        def run(name, fn):
            client = api.clone(token=None)
            barrier.wait()
            out[name] = fn(client)

        jobs = [("confirm", lambda c: confirm(c, d, new, json={}))]
        for i in range(3):
            jobs.append((f"hb{i}", lambda c: c.post(agent_path(d["agentId"], "heartbeat"),
                                                    json=heartbeat_body(), token=new)))
        threads = [threading.Thread(target=run, args=j) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(3):
            assert out[f"hb{i}"].status_code == 200, out[f"hb{i}"].text
        c = out["confirm"]
        if c.status_code != 200:
            assert_error(c, 409, "already_confirmed")
        assert states(sql, d["agentId"]) == {"current": 1, "previous": 1}
        assert len(audit(sql, d["agentId"], "agent.token.rotated")) == 1


# ------------------------------------------------------------------ rotateToken


def test_rotate_token_flag_by_age(agents, api, clock):
    d = agents.new_device()
    assert rotate_flag(agents, d, d["authToken"]) is False
    clock.advance(MAX_AGE_S - 60)
    assert rotate_flag(agents, d, d["authToken"]) is False
    clock.advance(120)
    assert rotate_flag(agents, d, d["authToken"]) is True
    new = rotate_ok(api, d, d["authToken"])
    # A rotation in progress: not asked again.
    assert rotate_flag(agents, d, d["authToken"]) is False
    confirm_ok(api, d, new)
    assert rotate_flag(agents, d, new) is False
    assert rotate_flag(agents, d, d["authToken"]) is False  # previous: never asked


def test_max_age_is_configurable(spawn_server, agents, clock):
    srv = spawn_server(AGENT_TOKEN_MAX_AGE_DAYS="1")
    d = agents.new_device()
    client = Api(srv.url)
    hb = lambda: client.post(agent_path(d["agentId"], "heartbeat"), json=heartbeat_body(),
                             token=d["authToken"])
    assert hb().json()["rotateToken"] is False
    clock.advance(86400 + 60)
    assert hb().json()["rotateToken"] is True


def test_rotate_token_flag_by_admin_request(agents, api, admin, sql):
    d = agents.new_device()
    assert rotate_flag(agents, d, d["authToken"]) is False
    r = admin.post(f"{DEVICES}/{d['agentId']}/rotate-agent-token")
    assert r.status_code == 202, r.text
    assert r.json()["id"] == d["agentId"]
    assert rotate_flag(agents, d, d["authToken"]) is True
    # Asking again changes nothing and is audited once.
    assert admin.post(f"{DEVICES}/{d['agentId']}/rotate-agent-token", json={}).status_code == 202
    rows = audit(sql, d["agentId"], "device.agent_token.rotation_requested")
    assert len(rows) == 1 and rows[0][1] == "user" and rows[0][2] == admin.user["id"]
    new = rotate_ok(api, d, d["authToken"])
    assert rotate_flag(agents, d, d["authToken"]) is False
    confirm_ok(api, d, new)
    assert rotate_flag(agents, d, new) is False


# ------------------------------------------------------------------ retired tokens


def test_retired_token_reuse_is_audited_once_a_minute(agents, api, sql, clock):
    d = agents.new_device()
    old = d["authToken"]
    new = rotate_ok(api, d, old)
    confirm_ok(api, d, new)
    clock.advance(GRACE_S + 1)
    plain = assert_error(agents.api.post(agent_path(d["agentId"], "heartbeat"),
                                         json=heartbeat_body(), token="brz_" + "1" * 64), 401)
    got = assert_error(agents.heartbeat(d["agentId"], old), 401, "unauthorized")
    assert got == plain  # the same body as a bad token: the thief learns nothing
    for _ in range(3):
        assert_error(agents.heartbeat(d["agentId"], old), 401)
        assert_error(rotate(api, d, old), 401)
    rows = audit(sql, d["agentId"], "agent.token.retired_use")
    assert len(rows) == 1
    details, actor_type, actor_id, ip, result = rows[0]
    assert (actor_type, actor_id, ip, result) == ("agent", d["agentId"], "127.0.0.1", "denied")
    assert json.loads(details) == {"state": "previous", "reason": "grace_over",
                                   "sourceIp": "127.0.0.1"}
    assert old not in details and sha256_hex(old) not in details and old[4:] not in details
    clock.advance(61)
    assert_error(confirm(api, d, old), 401)
    assert len(audit(sql, d["agentId"], "agent.token.retired_use")) == 2
    assert agents.heartbeat(d["agentId"], new).status_code == 200


def test_an_older_previous_token_is_retired_at_the_next_confirm(agents, api, sql):
    d = agents.new_device()
    t1 = d["authToken"]
    t2 = rotate_ok(api, d, t1)
    confirm_ok(api, d, t2)
    t3 = rotate_ok(api, d, t2)
    confirm_ok(api, d, t3)
    assert token_row(sql, t1)[:2] == ("retired", "rotated")
    assert token_row(sql, t2)[0] == "previous"
    assert_error(agents.heartbeat(d["agentId"], t1), 401)
    (details, *_), = audit(sql, d["agentId"], "agent.token.retired_use")
    assert json.loads(details)["reason"] == "rotated"


# ------------------------------------------------------------------ reset


def test_reset_refuses_every_token(agents, api, admin, sql):
    d = agents.new_device()
    t1 = d["authToken"]
    t2 = rotate_ok(api, d, t1)
    confirm_ok(api, d, t2)
    t3 = rotate_ok(api, d, t2)  # pending
    r = admin.post(f"{DEVICES}/{d['agentId']}/reset-agent-token")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == d["agentId"]
    assert states(sql, d["agentId"]) == {"retired": 3}
    for tok in (t1, t2, t3):
        assert_error(agents.heartbeat(d["agentId"], tok), 401, "unauthorized")
    assert_error(rotate(api, d, t2), 401)
    assert_error(confirm(api, d, t3), 401)
    (details, actor_type, actor_id, _, _), = audit(sql, d["agentId"], "device.agent_token.reset")
    assert (actor_type, actor_id) == ("user", admin.user["id"])
    assert json.loads(details)["retiredCount"] == 3
    reasons = {json.loads(x[0])["reason"] for x in audit(sql, d["agentId"],
                                                           "agent.token.retired_use")}
    assert "reset" in reasons
    # The device stays active; only a new enrolment brings the agent back.
    (status,), = sql("SELECT status FROM devices WHERE id = %s", d["agentId"])
    assert status == "active"
    assert_error(admin.post(f"{DEVICES}/{d['agentId']}/rotate-agent-token"), 409, "no_agent_token")
    again = admin.post(f"{DEVICES}/{d['agentId']}/reset-agent-token", json={})
    assert again.status_code == 200
    assert len(audit(sql, d["agentId"], "device.agent_token.reset")) == 2


def test_reset_and_request_of_a_decommissioned_device(agents, admin):
    d = agents.new_device()
    assert admin.post(f"{DEVICES}/{d['agentId']}/decommission").status_code == 200
    for route in ("reset-agent-token", "rotate-agent-token"):
        assert_error(admin.post(f"{DEVICES}/{d['agentId']}/{route}"), 409,
                     "device_decommissioned")


def test_decommission_retires_pending_and_previous_tokens(agents, api, admin, sql):
    d = agents.new_device()
    t1 = d["authToken"]
    t2 = rotate_ok(api, d, t1)
    confirm_ok(api, d, t2)
    t3 = rotate_ok(api, d, t2)
    assert states(sql, d["agentId"]) == {"current": 1, "previous": 1, "pending": 1}
    assert admin.post(f"{DEVICES}/{d['agentId']}/decommission").status_code == 200
    assert states(sql, d["agentId"]) == {"retired": 3}
    for tok in (t1, t2, t3):
        assert_error(agents.heartbeat(d["agentId"], tok), 401)
    assert_error(confirm(api, d, t3), 401)


# ------------------------------------------------------------------ tenancy and permissions


def test_other_tenant_gets_404(agents, tenants, sql):
    d = agents.new_device(None, tenants.a.id, tenants.a.site_id)
    for route in ("rotate-agent-token", "reset-agent-token"):
        assert_error(tenants.b_admin.api.post(f"{DEVICES}/{d['agentId']}/{route}"), 404,
                     "not_found")
    assert states(sql, d["agentId"]) == {"current": 1}
    assert rotate_flag(agents, d, d["authToken"]) is False
    # The tenant's own admin may; a viewer may not.
    assert_error(tenants.a_viewer.api.post(f"{DEVICES}/{d['agentId']}/reset-agent-token"), 403)
    r = tenants.a_admin.api.post(f"{DEVICES}/{d['agentId']}/rotate-agent-token")
    assert r.status_code == 202, r.text
    assert rotate_flag(agents, d, d["authToken"]) is True


def test_unknown_device(admin):
    assert_error(admin.post(f"{DEVICES}/00000000-0000-4000-8000-000000000000/reset-agent-token"),
                 404)


# ------------------------------------------------------------------ rate limit


def test_rotation_routes_are_rate_limited(spawn_server, agents):
    srv = spawn_server(RATE_LIMIT_AGENT_DEVICE="2/60")
    d = agents.new_device()
    client = Api(srv.url)
    assert client.post(agent_path(d["agentId"], "heartbeat"), json=heartbeat_body(),
                       token=d["authToken"]).status_code == 200
    assert rotate(client, d, d["authToken"]).status_code == 200
    r = rotate(client, d, d["authToken"])
    assert_error(r, 429, "rate_limited")
    assert r.headers["Retry-After"]
