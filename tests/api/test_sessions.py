"""Sessions that can be revoked (checklist A5, A6, A7): refresh-token families
in HttpOnly cookies with a CSRF double submit and an Origin check, atomic
rotation, reuse detection that revokes the family and its session on every
server instance, SESSION_MAX_AGE as an absolute lifetime, SESSION_IDLE_TIMEOUT,
logout, password change, the caller's session list, and revocation that holds
without Redis and fails closed without PostgreSQL."""
import os
import signal
import socket
import threading
import time
import uuid

import pytest

from conftest import SLOW, Api, assert_error, sha256_hex, uniq
from test_readyz import redis  # noqa: F401  (the private, killable Redis fixture)

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
RT = "breeze_refresh_token"
CSRF = "breeze_csrf_token"


# --------------------------------------------------------------------------- helpers


def cookie_login(base, email, password, headers=None):
    """A client that logged in itself, so its requests.Session holds the
    cookies; .token is the access token. Returns (client, response)."""
    c = Api(base)
    r = c.post(LOGIN, json={"email": email, "password": password}, token=None, headers=headers)
    assert r.status_code == 200, r.text
    c.token = r.json()["accessToken"]
    return c, r


def jar(c):
    """(refresh token, CSRF token) in C's cookie jar."""
    return c.s.cookies.get(RT), c.s.cookies.get(CSRF)


def refresh(c, **kw):
    """POST /auth/refresh with C's cookies and its CSRF cookie echoed; on 200
    C's access token is replaced (the jar takes the new cookies itself)."""
    r = c.post(REFRESH, token=None, headers={"X-Breeze-CSRF": jar(c)[1] or ""}, **kw)
    if r.status_code == 200:
        c.token = r.json()["accessToken"]
    return r


def raw(base, path, rt, csrf, headers=None):
    """POST PATH with exactly the cookies RT/CSRF (no jar), CSRF echoed."""
    h = {"Cookie": f"{RT}={rt}; {CSRF}={csrf}", "X-Breeze-CSRF": csrf}
    h.update(headers or {})
    return Api(base).post(path, token=None, headers=h)


def set_cookies(resp):
    return resp.raw.headers.getlist("Set-Cookie")


def cookie_attrs(resp, name):
    """The attributes of cookie NAME in RESP's Set-Cookie fields: {lower-case
    attribute: value or True}, plus "value"."""
    for line in set_cookies(resp):
        parts = [p.strip() for p in line.split(";")]
        k, _, v = parts[0].partition("=")
        if k == name:
            attrs = {"value": v}
            for p in parts[1:]:
                a, eq, av = p.partition("=")
                attrs[a.lower()] = av if eq else True
            return attrs
    return None


def no_token_cookie(resp):
    """No new refresh token in RESP (no Set-Cookie carrying a value)."""
    a = cookie_attrs(resp, RT)
    return a is None or a["value"] == ""


def me(c, token=None):
    return c.get("/api/v1/auth/me", token=token or c.token)


@pytest.fixture
def user(make_user, bootstrap):
    """A fresh user of its own (tests here revoke sessions; never the admin's)."""
    return make_user("org_viewer", orgId=bootstrap.orgId)


def audit_rows(sql, action, resource_id):
    return sql("SELECT actor_id, result, details FROM audit_log WHERE action = %s AND resource_id = %s",
               action, resource_id)


# --------------------------------------------------------------------------- cookies


def test_login_sets_cookie_attributes(api, user, sql):
    c, r = cookie_login(api.base, user.email, user.password)
    rt, csrf = jar(c)
    a = cookie_attrs(r, RT)
    assert a["value"] == rt and len(rt) == 43
    assert a["httponly"] is True and a["samesite"] == "Strict" and a["path"] == "/api/v1/auth"
    assert int(a["max-age"]) == 86400  # the session's remaining absolute lifetime
    assert "secure" not in a  # BREEZE_ENV=test over plain HTTP
    b = cookie_attrs(r, CSRF)
    assert b["value"] == csrf and "httponly" not in b  # the page must read it
    assert b["samesite"] == "Strict" and b["path"] == "/"
    # Never in a JSON body; stored only as its SHA-256.
    assert rt not in r.text and csrf not in r.text
    assert set(r.json()) == {"accessToken", "tokenType", "expiresIn", "user"}
    sid = me(c).json()["sessionId"]
    rows = sql("SELECT token_hash, generation, rotated_at FROM refresh_tokens WHERE session_id = %s", sid)
    assert rows == [(sha256_hex(rt), 0, None)]
    assert sql("SELECT refresh_family_id::text FROM sessions WHERE id = %s", sid) == [(sid,)]


def test_secure_cookies_in_production(spawn_server, bootstrap):
    import subprocess
    from conftest import SERVER_BIN, base_process_env
    out = subprocess.run([str(SERVER_BIN), "gen-secrets"], capture_output=True, text=True,
                         timeout=30, env=base_process_env())
    gen = dict(line.split("=", 1) for line in out.stdout.splitlines()
               if line and not line.startswith("#"))
    srv = spawn_server(BREEZE_ENV="production", **gen)
    _, r = cookie_login(srv.url, bootstrap.email, bootstrap.password)
    # SESSION_COOKIE_SECURE is on by itself in production: __Host- names
    # (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain), nothing unprefixed.
    assert cookie_attrs(r, RT) is None and cookie_attrs(r, CSRF) is None
    for name in ("__Host-" + RT, "__Host-" + CSRF):
        a = cookie_attrs(r, name)
        assert a["secure"] is True and a["path"] == "/" and "domain" not in a, a
        assert a["samesite"] == "Strict"
    assert cookie_attrs(r, "__Host-" + RT)["httponly"] is True


def secure_cookie_session(base, user):
    """A login to BASE (SESSION_COOKIE_SECURE on): the session and its two
    __Host- cookie values, read from Set-Cookie (a client does not send
    Secure cookies back over plain http, so the tests send them by hand)."""
    c = Api(base)
    r = c.post("/api/v1/auth/login", json={"email": user.email, "password": user.password})
    assert r.status_code == 200, r.text
    c.token = r.json()["accessToken"]
    return c, cookie_attrs(r, "__Host-" + RT)["value"], cookie_attrs(r, "__Host-" + CSRF)["value"]


def test_secure_cookies_are_the_only_ones_read(spawn_server, user):
    """With SESSION_COOKIE_SECURE the refresh reads only the __Host- pair: a
    sibling subdomain can plant the unprefixed names (Domain=<site>) but
    never a __Host- cookie, so what it plants must not count."""
    srv = spawn_server(SESSION_COOKIE_SECURE="true")
    c, rt, csrf = secure_cookie_session(srv.url, user)
    planted = f"breeze_refresh_token={rt}; breeze_csrf_token={csrf}"
    r = c.post("/api/v1/auth/refresh", headers={"Cookie": planted, "X-Breeze-CSRF": csrf})
    assert_error(r, 403, "csrf_failed")
    r = c.post("/api/v1/auth/refresh", headers={
        "Cookie": f"__Host-breeze_csrf_token={csrf}; breeze_refresh_token={rt}",
        "X-Breeze-CSRF": csrf})
    assert_error(r, 401, "invalid_refresh_token")
    r = c.post("/api/v1/auth/refresh", headers={
        "Cookie": f"__Host-breeze_csrf_token={csrf}; __Host-breeze_refresh_token={rt}",
        "X-Breeze-CSRF": csrf})
    assert r.status_code == 200, r.text
    assert cookie_attrs(r, "__Host-" + RT)["value"] not in ("", rt)


# --------------------------------------------------------------------------- rotation


def test_refresh_rotates_within_the_family(api, user, sql):
    c, _ = cookie_login(api.base, user.email, user.password)
    rt0, csrf0 = jar(c)
    first_access = c.token
    sid = me(c).json()["sessionId"]
    r = refresh(c)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"accessToken", "tokenType", "expiresIn"}
    assert 0 < r.json()["expiresIn"] <= 900
    rt1, csrf1 = jar(c)
    assert rt1 != rt0 and csrf1 != csrf0 and rt1 not in r.text
    assert me(c).json()["sessionId"] == sid  # same session
    assert me(c, token=first_access).status_code == 200  # the session is still live
    rows = sql("SELECT token_hash, generation, rotated_at IS NOT NULL FROM refresh_tokens"
               " WHERE session_id = %s ORDER BY generation", sid)
    assert rows == [(sha256_hex(rt0), 0, True), (sha256_hex(rt1), 1, False)]
    assert sql("SELECT refresh_generation FROM sessions WHERE id = %s", sid) == [(1,)]
    audits = audit_rows(sql, "auth.refresh", sid)
    assert len(audits) == 1 and audits[0][0] == user.id
    for _, _, details in audits:
        assert rt0 not in details and rt1 not in details


def test_refresh_without_cookie_or_with_garbage(api, user):
    c, _ = cookie_login(api.base, user.email, user.password)
    _, csrf = jar(c)
    r = Api(api.base).post(REFRESH, token=None,
                           headers={"Cookie": f"{CSRF}={csrf}", "X-Breeze-CSRF": csrf})
    assert_error(r, 401, "invalid_refresh_token")
    assert_error(raw(api.base, REFRESH, "x" * 43, csrf), 401, "invalid_refresh_token")
    assert_error(raw(api.base, REFRESH, "not-a-token", csrf), 401, "invalid_refresh_token")
    # The same cookie twice (e.g. tossed in by a sibling domain) is ambiguous: refused.
    rt, _ = jar(c)
    r = Api(api.base).post(REFRESH, token=None, headers={
        "Cookie": f"{RT}={rt}; {CSRF}={csrf}; {RT}={'A' * 43}", "X-Breeze-CSRF": csrf})
    assert_error(r, 401, "invalid_refresh_token")
    assert refresh(c).status_code == 200  # nothing of that consumed the real token


def test_fifty_parallel_refreshes_one_wins(api, user):
    c, _ = cookie_login(api.base, user.email, user.password)
    rt, csrf = jar(c)
    n = 50
    barrier = threading.Barrier(n)
    results = [None] * n

    def go(i):
        client = Api(api.base)
        barrier.wait()
        r = client.post(REFRESH, token=None,
                        headers={"Cookie": f"{RT}={rt}; {CSRF}={csrf}", "X-Breeze-CSRF": csrf})
        results[i] = (r.status_code, r.json(), set_cookies(r), cookie_attrs(r, RT))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120 * SLOW)
    assert all(res is not None for res in results)
    statuses = sorted(s for s, *_ in results)
    assert statuses == [200] + [401] * (n - 1), statuses
    for status, body, cookies, attrs in results:
        if status == 401:
            assert "accessToken" not in body
            assert attrs is None and cookies == [], cookies  # no tokens at all
        else:
            assert attrs["value"] and attrs["value"] != rt


def test_replay_after_rotation_logs_both_holders_out_everywhere(api, user, spawn_server, sql):
    """A7: the thief replays the rotated token: the family and its session are
    revoked, the legitimate holder's newer token is dead, and every access
    token with that sid is refused at once on another server instance."""
    second = spawn_server()
    victim, _ = cookie_login(api.base, user.email, user.password)
    stolen_rt, stolen_csrf = jar(victim)
    old_access = victim.token
    sid = me(victim).json()["sessionId"]
    assert refresh(victim).status_code == 200  # the victim rotates first
    other = Api(second.url, token=victim.token)
    assert me(other).status_code == 200
    assert me(other, token=old_access).status_code == 200

    r = raw(api.base, REFRESH, stolen_rt, stolen_csrf)  # the replay
    assert_error(r, 401, "refresh_token_reused")
    assert no_token_cookie(r)
    # At once, on the other instance too, for both access tokens.
    assert_error(me(other), 401, "unauthorized")
    assert_error(me(other, token=old_access), 401, "unauthorized")
    assert_error(me(victim), 401)
    # The victim's current refresh token is dead as well.
    assert_error(refresh(victim), 401, "session_revoked")
    assert_error(raw(second.url, REFRESH, stolen_rt, stolen_csrf), 401, "session_revoked")
    rows = audit_rows(sql, "auth.refresh.reuse_detected", sid)
    assert len(rows) == 1 and rows[0][0] == user.id and rows[0][1] == "failure"
    assert stolen_rt not in rows[0][2]
    assert sql("SELECT revoked_reason FROM sessions WHERE id = %s", sid) == [("refresh_token_reused",)]


def test_refresh_never_extends_session_max_age(spawn_server, bootstrap, make_user, clock):
    srv = spawn_server(SESSION_MAX_AGE="600", SESSION_IDLE_TIMEOUT="0")
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    c, r = cookie_login(srv.url, u.email, u.password)
    assert int(cookie_attrs(r, RT)["max-age"]) == 600
    clock.advance(500)
    r = refresh(c)
    assert r.status_code == 200, r.text
    assert int(cookie_attrs(r, RT)["max-age"]) <= 100  # what is left, not a new 600
    assert r.json()["expiresIn"] <= 100  # nor does the access token outlive it
    clock.advance(101)
    assert_error(refresh(c), 401, "session_expired")
    assert_error(me(c), 401)


def test_idle_timeout(spawn_server, bootstrap, make_user, clock):
    srv = spawn_server(SESSION_IDLE_TIMEOUT="600")
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    c, _ = cookie_login(srv.url, u.email, u.password)
    clock.advance(400)
    assert me(c).status_code == 200  # an access-token request counts as use
    clock.advance(400)
    assert me(c).status_code == 200  # 400 s since the last use
    assert refresh(c).status_code == 200  # and so does a refresh
    clock.advance(601)
    assert_error(refresh(c), 401, "session_expired")
    assert_error(me(c), 401)  # its unexpired access token is refused too
    # The list shows it no more.
    c2, _ = cookie_login(srv.url, u.email, u.password)
    ids = [s["id"] for s in c2.get("/api/v1/auth/sessions").json()["sessions"]]
    assert len(ids) == 1


# --------------------------------------------------------------------------- CSRF and Origin


def test_csrf_missing_or_mismatched(api, user):
    c, _ = cookie_login(api.base, user.email, user.password)
    rt, csrf = jar(c)
    for path in (REFRESH, LOGOUT):
        assert_error(c.post(path, token=None), 403, "csrf_failed")  # no header
        assert_error(c.post(path, token=None, headers={"X-Breeze-CSRF": "A" * 43}), 403,
                     "csrf_failed")
        assert_error(c.post(path, token=None, headers={"X-Breeze-CSRF": ""}), 403, "csrf_failed")
        # Header without the cookie.
        r = Api(api.base).post(path, token=None,
                               headers={"Cookie": f"{RT}={rt}", "X-Breeze-CSRF": csrf})
        assert_error(r, 403, "csrf_failed")
    assert refresh(c).status_code == 200  # none of that consumed the token


def test_cross_site_origin_refused(api, user, spawn_server):
    c, _ = cookie_login(api.base, user.email, user.password)
    rt, csrf = jar(c)
    evil = {"Origin": "https://evil.example"}
    assert_error(raw(api.base, REFRESH, rt, csrf, evil), 403, "origin_not_allowed")
    assert_error(raw(api.base, LOGOUT, rt, csrf, evil), 403, "origin_not_allowed")
    assert_error(raw(api.base, REFRESH, rt, csrf, {"Origin": "null"}), 403, "origin_not_allowed")
    r = Api(api.base).post(LOGIN, json={"email": user.email, "password": user.password},
                           headers=evil, token=None)
    assert_error(r, 403, "origin_not_allowed")
    assert no_token_cookie(r)
    assert refresh(c).status_code == 200

    srv = spawn_server(ALLOWED_ORIGINS="https://rmm.example.test,http://127.0.0.1:9")
    ok = {"Origin": "https://RMM.example.test:443"}  # the same origin, normalized
    c2, _ = cookie_login(srv.url, user.email, user.password, headers=ok)
    rt, csrf = jar(c2)
    assert raw(srv.url, REFRESH, rt, csrf, ok).status_code == 200
    for bad in ("https://rmm.example.test.evil.example", "http://rmm.example.test",
                "https://rmm.example.test:8443", "https://evil.example"):
        assert_error(raw(srv.url, REFRESH, "A" * 43, csrf, {"Origin": bad}), 403,
                     "origin_not_allowed")


# --------------------------------------------------------------------------- logout


def test_logout_then_replay(api, user, sql):
    c, _ = cookie_login(api.base, user.email, user.password)
    rt, csrf = jar(c)
    sid = me(c).json()["sessionId"]
    r = c.post(LOGOUT, token=None, headers={"X-Breeze-CSRF": csrf})
    assert r.status_code == 200 and r.json() == {"sessionId": sid}
    for name in (RT, CSRF):
        a = cookie_attrs(r, name)
        assert a["value"] == "" and a["max-age"] == "0"
    assert jar(c) == (None, None)
    assert_error(me(c), 401)
    assert_error(raw(api.base, REFRESH, rt, csrf), 401, "session_revoked")
    assert len(audit_rows(sql, "auth.logout", sid)) == 1
    # Logging out again: still revoked, nothing new to audit.
    assert raw(api.base, LOGOUT, rt, csrf).status_code == 200
    assert len(audit_rows(sql, "auth.logout", sid)) == 1


def app_url(env, name):
    url = env["DATABASE_URL"]
    return url + ("&" if "?" in url else "?") + "application_name=" + name


def test_postgres_down_fails_closed(spawn_server, services, bootstrap, make_user, sql):
    """A6: without PostgreSQL an authenticated request is 503, never a pass,
    and logout is 503 (not 200) until the revocation can be committed."""
    name = "bz-sess-" + uuid.uuid4().hex[:8]
    srv = spawn_server(DATABASE_URL=app_url(services.env, name), DATABASE_POOL_SIZE="2",
                       DATABASE_REQUEST_DEADLINE_MS="3000")
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    c, _ = cookie_login(srv.url, u.email, u.password)
    rt, csrf = jar(c)
    assert me(c).status_code == 200
    try:
        sql("ALTER ROLE breeze_app NOLOGIN")
        sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", name)
        time.sleep(0.2)
        assert_error(me(c), 503)
        assert_error(c.get("/api/v1/auth/sessions"), 503)
        assert_error(raw(srv.url, LOGOUT, rt, csrf), 503)
        assert_error(raw(srv.url, REFRESH, rt, csrf), 503)
    finally:
        sql("ALTER ROLE breeze_app LOGIN")
    deadline = time.monotonic() + 10 * SLOW
    while me(c).status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover"
        time.sleep(0.2)
    r = raw(srv.url, LOGOUT, rt, csrf)
    assert r.status_code == 200, r.text
    assert_error(me(c), 401)


# --------------------------------------------------------------------------- Redis


def redis_cmd(r, *args):
    """Sends one command (RESP) to the private Redis R; returns the first reply line."""
    def enc(*a):
        return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in
                                             (s.encode() for s in a))
    with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
        s.sendall(enc("AUTH", r.password) + enc(*args))
        data = b""
        while data.count(b"\r\n") < 2:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n")[1]


def test_revocation_holds_with_redis_stopped_and_flushed(spawn_server, redis, bootstrap,  # noqa: F811
                                                        make_user):
    """A6: PostgreSQL is the record of every revocation (this server keeps no
    Redis cache of sessions): with Redis stopped or flushed a revoked session
    stays revoked and a live one keeps working, refresh included."""
    srv = spawn_server(REDIS_URL=redis.url)
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    gone, _ = cookie_login(srv.url, u.email, u.password)
    live, _ = cookie_login(srv.url, u.email, u.password)
    gone_rt, gone_csrf = jar(gone)
    assert raw(srv.url, LOGOUT, gone_rt, gone_csrf).status_code == 200

    def check():
        assert_error(me(gone), 401)
        assert_error(raw(srv.url, REFRESH, gone_rt, gone_csrf), 401, "session_revoked")
        assert me(live).status_code == 200
        assert refresh(live).status_code == 200
        assert me(live).status_code == 200

    check()
    redis.stop()
    try:
        check()
    finally:
        redis.start()
    assert redis_cmd(redis, "FLUSHALL") == b"+OK"
    check()


# --------------------------------------------------------------------------- grace


def test_reuse_grace_seconds(spawn_server, bootstrap, make_user, clock, sql):
    srv = spawn_server(REFRESH_REUSE_GRACE_SECONDS="30")
    u = make_user("org_viewer", orgId=bootstrap.orgId)
    c, _ = cookie_login(srv.url, u.email, u.password)
    rt0, csrf0 = jar(c)
    sid = me(c).json()["sessionId"]
    assert refresh(c).status_code == 200
    # The immediate predecessor within the grace: a benign race.
    r = raw(srv.url, REFRESH, rt0, csrf0)
    assert_error(r, 401, "refresh_raced")
    assert no_token_cookie(r) and set_cookies(r) == []
    assert me(c).status_code == 200 and refresh(c).status_code == 200
    # rt0 is now two generations old: always reuse, grace or not.
    assert_error(raw(srv.url, REFRESH, rt0, csrf0), 401, "refresh_token_reused")
    assert_error(me(c), 401)
    assert len(audit_rows(sql, "auth.refresh.reuse_detected", sid)) == 1

    # The immediate predecessor after the grace is reuse too.
    c, _ = cookie_login(srv.url, u.email, u.password)
    rt0, csrf0 = jar(c)
    assert refresh(c).status_code == 200
    clock.advance(31)
    assert_error(raw(srv.url, REFRESH, rt0, csrf0), 401, "refresh_token_reused")
    assert_error(refresh(c), 401, "session_revoked")


def test_strict_by_default_even_for_the_predecessor(api, user):
    c, _ = cookie_login(api.base, user.email, user.password)
    rt0, csrf0 = jar(c)
    assert refresh(c).status_code == 200
    assert_error(raw(api.base, REFRESH, rt0, csrf0), 401, "refresh_token_reused")
    assert_error(refresh(c), 401, "session_revoked")


# --------------------------------------------------------------------------- password


def test_password_change_revokes_other_sessions(api, user, sql):
    mine, _ = cookie_login(api.base, user.email, user.password)
    other, _ = cookie_login(api.base, user.email, user.password)
    path = "/api/v1/auth/password"
    new = "New-" + uuid.uuid4().hex
    r = mine.post(path, json={"currentPassword": "wrong-" + user.password, "newPassword": new})
    assert_error(r, 403, "invalid_current_password")
    assert sql("SELECT count(*) FROM audit_log WHERE action = 'auth.password.change.failed'"
               " AND actor_id = %s AND result = 'failure'", user.id) == [(1,)]
    assert me(other).status_code == 200  # nothing changed
    for bad in ("short", user.email.upper(), "x" * 1025):
        r = mine.post(path, json={"currentPassword": user.password, "newPassword": bad})
        assert_error(r, 400, "validation_error")
        assert r.json()["error"]["field"] == "newPassword"
    assert_error(mine.post(path, json={"newPassword": new}), 400, "validation_error")
    r = mine.post(path, json={"currentPassword": user.password, "newPassword": new})
    assert r.status_code == 200 and r.json() == {"revokedSessions": 2}  # other + make_user's
    assert me(mine).status_code == 200 and refresh(mine).status_code == 200
    assert_error(me(other), 401)
    assert_error(refresh(other), 401, "session_revoked")
    assert_error(api.post(LOGIN, json={"email": user.email, "password": user.password}), 401)
    assert cookie_login(api.base, user.email, new)[1].status_code == 200
    rows = audit_rows(sql, "auth.password.change", user.id)
    assert len(rows) == 1 and new not in rows[0][2] and user.password not in rows[0][2]


# --------------------------------------------------------------------------- session list


def test_session_list_and_revoke(api, user, make_user, bootstrap, sql):
    a, _ = cookie_login(api.base, user.email, user.password,
                        headers={"User-Agent": "breeze-test/1.0"})
    b, _ = cookie_login(api.base, user.email, user.password)
    sid_a, sid_b = me(a).json()["sessionId"], me(b).json()["sessionId"]
    r = a.get("/api/v1/auth/sessions")
    assert r.status_code == 200
    sessions = {s["id"]: s for s in r.json()["sessions"]}
    assert {sid_a, sid_b} <= set(sessions)
    assert sessions[sid_a]["current"] is True and sessions[sid_b]["current"] is False
    assert sessions[sid_a]["userAgent"] == "breeze-test/1.0"
    assert sessions[sid_a]["ip"] == "127.0.0.1"
    assert sessions[sid_a]["expiresAt"] > sessions[sid_a]["createdAt"]

    stranger = make_user("org_viewer", orgId=bootstrap.orgId)
    theirs = me(stranger.api).json()["sessionId"]
    assert_error(a.delete(f"/api/v1/auth/sessions/{theirs}"), 404, "not_found")
    assert me(stranger.api).status_code == 200  # untouched
    assert_error(a.delete(f"/api/v1/auth/sessions/{uuid.uuid4()}"), 404)
    assert_error(a.delete("/api/v1/auth/sessions/not-a-uuid"), 404)
    assert theirs not in {s["id"] for s in a.get("/api/v1/auth/sessions").json()["sessions"]}

    r = a.delete(f"/api/v1/auth/sessions/{sid_b}")
    assert r.status_code == 204, r.text
    assert_error(me(b), 401)
    assert_error(refresh(b), 401, "session_revoked")
    assert_error(a.delete(f"/api/v1/auth/sessions/{sid_b}"), 404)
    assert sid_b not in {s["id"] for s in a.get("/api/v1/auth/sessions").json()["sessions"]}
    rows = audit_rows(sql, "auth.session.revoke", sid_b)
    assert len(rows) == 1 and rows[0][0] == user.id
    # Revoking the current session logs the caller out.
    assert a.delete(f"/api/v1/auth/sessions/{sid_a}").status_code == 204
    assert_error(me(a), 401)
